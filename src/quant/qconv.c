/* The quantized convolution: the input quantized once, unfolded into
 * uint8 patches (im2col; padding is the zero point, so it dequantises to an
 * exact 0), one int8 product with the flattened weights, and the sums
 * dequantised into [N, out, OH, OW]. The patch layout, (channel, ky, kx)
 * fastest last, is PyTorch's flattening of a weight [out, C, KH, KW]. */
#include <string.h>

#include "core/error.h"
#include "ctrain/quant.h"
#include "quant/int8_internal.h"

typedef struct conv_dims {
    int64_t oh, ow, rows, k, kp; /* rows = n * oh * ow patches of k (kp padded) bytes */
} conv_dims;

static ct_status dims_of(const ct_qlinear *l, const ct_qconv2d_geom *g, int64_t n, conv_dims *d) {
    if (!l || !g || g->stride < 1 || g->pad < 0 || g->kh < 1 || g->kw < 1 || g->c < 1 || n < 0)
        return ct_error(CT_ERR_INVALID_ARG, "quantized conv2d: bad geometry or arguments");
    int64_t hp = g->h + 2 * g->pad - g->kh, wp = g->w + 2 * g->pad - g->kw;
    if (hp < 0 || wp < 0)
        return ct_error(CT_ERR_SHAPE, "quantized conv2d: kernel %lldx%lld does not fit input %lldx%lld (padding %d)",
                        (long long)g->kh, (long long)g->kw, (long long)g->h, (long long)g->w, g->pad);
    d->oh = hp / g->stride + 1, d->ow = wp / g->stride + 1;
    d->k = g->c * g->kh * g->kw, d->kp = (d->k + 3) / 4 * 4, d->rows = n * d->oh * d->ow;
    if (d->k != l->in)
        return ct_error(CT_ERR_SHAPE, "quantized conv2d: weights take %lld inputs, the patches have %lld",
                        (long long)l->in, (long long)d->k);
    return CT_OK;
}

static size_t round64(size_t b) { return (b + 63) / 64 * 64; }

size_t ct_qconv2d_scratch(const ct_qlinear *l, const ct_qconv2d_geom *g, int64_t n) {
    conv_dims d = {0};
    if (dims_of(l, g, n, &d) != CT_OK) return 0;
    return round64((size_t)(n * g->c * g->h * g->w)) + round64((size_t)(d.rows * d.kp)) +
           (size_t)(d.rows * l->out) * sizeof(int32_t);
}

/* The patch of output position (b, oy, ox) into row. */
static void unfold(const ct_qconv2d_geom *g, const conv_dims *d, const uint8_t *xq, uint8_t zp, int64_t b,
                   int64_t oy, int64_t ox, uint8_t *row) {
    int64_t col = 0;
    for (int64_t ci = 0; ci < g->c; ci++) {
        const uint8_t *plane = xq + (b * g->c + ci) * g->h * g->w;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = oy * g->stride - g->pad + ky;
            for (int64_t kx = 0; kx < g->kw; kx++, col++) {
                int64_t ix = ox * g->stride - g->pad + kx;
                row[col] = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w ? plane[iy * g->w + ix] : zp;
            }
        }
    }
    memset(row + d->k, 0, (size_t)(d->kp - d->k));
}

ct_status ct_qconv2d_forward(const ct_qlinear *l, const ct_qconv2d_geom *g, const float *x, int64_t n, float *y,
                             void *scratch) {
    conv_dims d = {0};
    ct_status st = dims_of(l, g, n, &d);
    if (st != CT_OK) return st;
    if (!x || !y || !scratch) return ct_error(CT_ERR_INVALID_ARG, "quantized conv2d: NULL buffer");
    int64_t plane = g->c * g->h * g->w, spatial = d.oh * d.ow;
    uint8_t *xq = scratch, *patches = xq + round64((size_t)(n * plane));
    int32_t *acc = (int32_t *)(void *)(patches + round64((size_t)(d.rows * d.kp)));
    uint8_t zp = (uint8_t)l->in_zero_point;
#pragma omp parallel for schedule(static) if (n * plane >= (1 << 16))
    for (int64_t b = 0; b < n; b++) ct_quant_act(x + b * plane, plane, l->in_scale, l->in_zero_point, xq + b * plane);
#pragma omp parallel for schedule(static) if (d.rows * d.k >= (1 << 16))
    for (int64_t r = 0; r < d.rows; r++)
        unfold(g, &d, xq, zp, r / spatial, r % spatial / d.ow, r % d.ow, patches + r * d.kp);
    if ((st = ct_int8_matmul(l->w, patches, d.rows, d.kp, acc)) != CT_OK) return st;
#pragma omp parallel for schedule(static) if (d.rows * l->out >= (1 << 16))
    for (int64_t r = 0; r < d.rows; r++) {
        int64_t b = r / spatial, pos = r % spatial;
        for (int64_t o = 0; o < l->out; o++) {
            int32_t v = acc[r * l->out + o] - l->in_zero_point * l->w_rowsum[o];
            float val = l->in_scale * l->w_scale[o] * (float)v;
            y[(b * l->out + o) * spatial + pos] = l->bias ? val + l->bias[o] : val;
        }
    }
    return CT_OK;
}
