/* The quantized linear layer: the input quantized to uint8 with its
 * calibrated parameters, an int8 product with int32 sums, and the result
 * dequantised in F32 with the bias added:
 *
 *   y[m, o] = in_scale * w_scale[o] * (acc[m, o] - in_zero_point * rowsum[o]) + bias[o]
 *
 * The zero-point term is folded into one precomputed row sum per channel,
 * so the product itself never sees the zero point.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/quant.h"
#include "quant/int8_internal.h"

static ct_status check_params(const int8_t *q, const float *w_scale, int64_t out, int64_t in, float in_scale,
                              int32_t in_zero_point) {
    if (!(in_scale > 0) || !isfinite(in_scale))
        return ct_error(CT_ERR_INVALID_ARG, "the input scale %g is not positive and finite", in_scale);
    if (in_zero_point < 0 || in_zero_point > CT_QUANT_AMAX)
        return ct_error(CT_ERR_INVALID_ARG, "the input zero point %d is not in [0, 255]", (int)in_zero_point);
    for (int64_t o = 0; o < out; o++)
        if (!(w_scale[o] > 0) || !isfinite(w_scale[o]))
            return ct_error(CT_ERR_INVALID_ARG, "the weight scale of channel %lld (%g) is not positive and finite",
                            (long long)o, w_scale[o]);
    for (int64_t i = 0; i < out * in; i++)
        if (q[i] < -CT_QUANT_WMAX)
            return ct_error(CT_ERR_INVALID_ARG, "weight %lld is -128: int8 weights lie in [-127, 127]", (long long)i);
    return CT_OK;
}

ct_status ct_qlinear_init(ct_qlinear *l, const int8_t *q, const float *w_scale, const float *bias, int64_t out,
                          int64_t in, float in_scale, int32_t in_zero_point) {
    memset(l, 0, sizeof *l);
    if (!q || !w_scale || out < 1 || in < 1) return ct_error(CT_ERR_INVALID_ARG, "ct_qlinear_init: bad arguments");
    ct_status st = check_params(q, w_scale, out, in, in_scale, in_zero_point);
    if (st != CT_OK) return st;
    l->in = in, l->out = out, l->in_scale = in_scale, l->in_zero_point = in_zero_point;
    if (!(l->w = ct_int8_pack(q, out, in))) return ct_last_status();
    l->w_scale = malloc((size_t)out * sizeof *l->w_scale);
    l->w_rowsum = malloc((size_t)out * sizeof *l->w_rowsum);
    l->bias = bias ? malloc((size_t)out * sizeof *l->bias) : NULL;
    if (!l->w_scale || !l->w_rowsum || (bias && !l->bias)) {
        ct_qlinear_free(l);
        return ct_error(CT_ERR_OOM, "ct_qlinear_init: out of memory");
    }
    memcpy(l->w_scale, w_scale, (size_t)out * sizeof *w_scale);
    if (bias) memcpy(l->bias, bias, (size_t)out * sizeof *bias);
    for (int64_t o = 0; o < out; o++) {
        int32_t s = 0;
        for (int64_t k = 0; k < in; k++) s += q[o * in + k];
        l->w_rowsum[o] = s;
    }
    return CT_OK;
}

void ct_qlinear_free(ct_qlinear *l) {
    if (!l) return;
    ct_int8_matrix_free(l->w);
    free(l->w_scale);
    free(l->w_rowsum);
    free(l->bias);
    memset(l, 0, sizeof *l);
}

/* Rows of the quantized input are padded to a multiple of 4 bytes (the
 * kernels read whole groups), then the int32 sums. */
static int64_t row_stride(const ct_qlinear *l) { return (l->in + 3) / 4 * 4; }

size_t ct_qlinear_scratch(const ct_qlinear *l, int64_t m) {
    size_t qa = (size_t)(m * row_stride(l));
    return (qa + 63) / 64 * 64 + (size_t)(m * l->out) * sizeof(int32_t);
}

ct_status ct_qlinear_forward(const ct_qlinear *l, const float *x, int64_t m, float *y, void *scratch) {
    if (!l || !l->w || !x || !y || !scratch || m < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_qlinear_forward: NULL argument or m < 0");
    int64_t lda = row_stride(l);
    uint8_t *qa = scratch;
    int32_t *acc = (int32_t *)(void *)((char *)scratch + ((size_t)(m * lda) + 63) / 64 * 64);
#pragma omp parallel for schedule(static) if (m * l->in >= (1 << 16))
    for (int64_t i = 0; i < m; i++) {
        ct_quant_act(x + i * l->in, l->in, l->in_scale, l->in_zero_point, qa + i * lda);
        memset(qa + i * lda + l->in, 0, (size_t)(lda - l->in));
    }
    ct_status st = ct_int8_matmul(l->w, qa, m, lda, acc);
    if (st != CT_OK) return st;
#pragma omp parallel for schedule(static) if (m * l->out >= (1 << 16))
    for (int64_t i = 0; i < m; i++)
        for (int64_t o = 0; o < l->out; o++) {
            int32_t v = acc[i * l->out + o] - l->in_zero_point * l->w_rowsum[o];
            float r = l->in_scale * l->w_scale[o] * (float)v;
            y[i * l->out + o] = l->bias ? r + l->bias[o] : r;
        }
    return CT_OK;
}
