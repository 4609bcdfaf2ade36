/* Quantization parameters and the rounding of values to int8 / uint8.
 *
 * Written to give PyTorch's numbers bit for bit (tests/ref/quant_reference.py
 * computes them with torch.ao.quantization's observers): the scales are
 * computed in float as torch computes them, the division of a value by its
 * scale is a multiplication by the float reciprocal (as quantize_per_tensor
 * and fake_quantize do), and every rounding is half to even.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "ctrain/quant.h"
#include "quant/int8_internal.h"

float ct_quant_round(float x) {
    return nearbyintf(x); /* the default rounding mode: half to even */
}

ct_status ct_quant_weights(const float *w, int64_t rows, int64_t cols, int8_t *q, float *scales) {
    for (int64_t r = 0; r < rows; r++) {
        const float *row = w + r * cols;
        float amax = 0;
        for (int64_t k = 0; k < cols; k++) {
            if (!isfinite(row[k]))
                return ct_error(CT_ERR_NUMERIC, "quantizing weights: row %lld holds %g", (long long)r, row[k]);
            amax = fmaxf(amax, fabsf(row[k]));
        }
        /* torch: max_val_pos / ((quant_max - quant_min) / 2), then at least eps. */
        float s = amax / (float)((CT_QUANT_WMAX - -CT_QUANT_WMAX) / 2.0f);
        if (s < FLT_EPSILON) s = FLT_EPSILON;
        scales[r] = s;
        float inv = 1.0f / s;
        for (int64_t k = 0; k < cols; k++) {
            float v = ct_quant_round(row[k] * inv);
            q[r * cols + k] = (int8_t)fminf(fmaxf(v, -CT_QUANT_WMAX), CT_QUANT_WMAX);
        }
    }
    return CT_OK;
}

ct_status ct_quant_act_params(float lo, float hi, float *scale, int32_t *zero_point) {
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return ct_error(CT_ERR_INVALID_ARG, "activation range [%g, %g] is not a finite interval", lo, hi);
    /* The range always holds 0, so that 0 (padding, ReLU's zeros) is exact. */
    float neg = fminf(lo, 0), pos = fmaxf(hi, 0);
    float s = (pos - neg) / (float)CT_QUANT_AMAX;
    if (s < FLT_EPSILON) s = FLT_EPSILON;
    float zp = 0 - ct_quant_round(neg / s);
    *scale = s;
    *zero_point = (int32_t)fminf(fmaxf(zp, 0), CT_QUANT_AMAX);
    return CT_OK;
}

void ct_quant_act(const float *x, int64_t n, float scale, int32_t zero_point, uint8_t *q) {
    float inv = 1.0f / scale;
    if (ct_int8_use_avx512()) {
        ct_quant_act_avx512(x, n, inv, zero_point, q);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float v = rintf(x[i] * inv) + (float)zero_point;
        /* comparisons, not fminf/fmaxf: a NaN fails both and gives 0 */
        q[i] = v > (float)CT_QUANT_AMAX ? (uint8_t)CT_QUANT_AMAX : v >= 0 ? (uint8_t)v : 0;
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float ct_quant_percentile(float *v, int64_t n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    double rank = p / 100.0 * (double)(n - 1);
    int64_t i = (int64_t)floor(rank);
    if (i >= n - 1) return v[n - 1];
    double f = rank - (double)i;
    return (float)((double)v[i] + f * ((double)v[i + 1] - (double)v[i]));
}
