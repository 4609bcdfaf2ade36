/* Int8 quantization: quantization parameters, int8 matrix products with
 * int32 accumulation, and the quantized linear layer that `ctrain quantize`
 * writes and `ctrain eval` runs (docs/compression.md, "Quantization").
 *
 * The scheme is PyTorch's eager-mode x86 one:
 *   weights      int8, symmetric per output channel: scale[o] = max|w[o,:]| / 127
 *                (at least FLT_EPSILON), q = clamp(round(w / scale), -127, 127),
 *                as torch's PerChannelMinMaxObserver(qint8, per_channel_symmetric,
 *                quant_min=-127, quant_max=127); the range stays symmetric so
 *                that -q never overflows.
 *   activations  uint8, affine per tensor from a calibrated range [lo, hi]:
 *                scale = (max(hi, 0) - min(lo, 0)) / 255 (at least FLT_EPSILON),
 *                zero_point = clamp(0 - round(min(lo, 0) / scale), 0, 255),
 *                q = clamp(round(x * (1 / scale)) + zero_point, 0, 255), as
 *                torch's MinMaxObserver(quint8) and quantize_per_tensor.
 * round() is round-half-to-even everywhere (torch.round, nearbyint).
 *
 * A product of activations a (uint8, [M, K]) and weights w (int8, [N, K]) is
 * acc[m, n] = sum_k a[m, k] * w[n, k] in int32, exactly; the real value is
 * then a_scale * w_scale[n] * (acc[m, n] - a_zero_point * sum_k w[n, k]).
 */
#ifndef CTRAIN_QUANT_H
#define CTRAIN_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/device.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CT_QUANT_WMAX 127 /* weights lie in [-127, 127] */
#define CT_QUANT_AMAX 255 /* activations in [0, 255] */

/* ------------------------------------------------------------ parameters */

/* x rounded half to even, as torch.round (nearbyint in the default mode). */
float ct_quant_round(float x);

/* Per-output-channel symmetric quantization of w [rows, cols] (row-major):
 * scales[r] and q[r, :] as in the scheme above. A row of zeros gets the
 * scale FLT_EPSILON and zeros. Non-finite weights: CT_ERR_NUMERIC naming the
 * row; nothing else can fail. */
ct_status ct_quant_weights(const float *w, int64_t rows, int64_t cols, int8_t *q, float *scales);

/* The activation parameters of a calibrated range lo <= hi (finite):
 * CT_ERR_INVALID_ARG otherwise. */
ct_status ct_quant_act_params(float lo, float hi, float *scale, int32_t *zero_point);

/* q[i] = clamp(round(x[i] * (1 / scale)) + zero_point, 0, 255). */
void ct_quant_act(const float *x, int64_t n, float scale, int32_t zero_point, uint8_t *q);

/* The p-th percentile (0 <= p <= 100) of v[0..n) with linear interpolation
 * between the order statistics (torch.quantile's default, rank p/100 *
 * (n - 1)); v is reordered. n >= 1. */
float ct_quant_percentile(float *v, int64_t n, double p);

/* -------------------------------------------------------- int8 products */

/* Which CPU kernel ct_int8_matmul uses. AUTO: oneDNN's matmul in a build
 * with oneDNN (its own choice of AMX or VNNI kernels for the CPU), else
 * ctrain's AVX-512 VNNI kernel where the CPU has it (checked at run time
 * with CPUID), else the portable C loops. All give the same int32 sums. */
typedef enum ct_int8_kernel { CT_INT8_AUTO = 0, CT_INT8_PORTABLE, CT_INT8_VNNI, CT_INT8_ONEDNN } ct_int8_kernel;

/* Selects the kernel for the whole process (tests compare them). VNNI on a
 * CPU without it (or a build for another architecture), ONEDNN in a build
 * without oneDNN: CT_ERR_UNSUPPORTED. */
ct_status ct_int8_set_kernel(ct_int8_kernel k);
/* "onednn", "avx512-vnni" or "portable": the kernel the next product will
 * use (a matrix oneDNN could not take falls back to the next). */
const char *ct_int8_kernel_name(void);

/* Int8 weights [n, k], packed once for the products (padded, interleaved). */
typedef struct ct_int8_matrix ct_int8_matrix;

/* Packs w [n, k] (row-major, values in [-127, 127]). NULL on OOM or bad
 * sizes (ct_last_error says which). */
ct_int8_matrix *ct_int8_pack(const int8_t *w, int64_t n, int64_t k);
void ct_int8_matrix_free(ct_int8_matrix *w);
int64_t ct_int8_matrix_rows(const ct_int8_matrix *w); /* n */
int64_t ct_int8_matrix_cols(const ct_int8_matrix *w); /* k */

/* c[m, n] = sum_k a[m, k] * w[n, k] in int32 (exact: |acc| < 2^31 for
 * k < 66000). a is uint8 [m, k] with row stride lda >= k; c is [m, n]. */
ct_status ct_int8_matmul(const ct_int8_matrix *w, const uint8_t *a, int64_t m, int64_t lda, int32_t *c);

/* c[m, n] = sum_k a[m, k] * w[n, k] with both operands int8 and int32
 * accumulation, on a device: on the CPU a plain loop, on a CUDA device
 * cuBLASLt (CUDA_R_8I inputs, CUBLAS_COMPUTE_32I). All pointers are host
 * memory; the device copies in and out. This is the GPU int8 path and its
 * parity reference (uint8 activations become int8 by subtracting 128 from
 * the values and the zero point). */
ct_status ct_int8_matmul_s8(ct_device dev, const int8_t *a, const int8_t *w, int64_t m, int64_t n, int64_t k,
                            int32_t *c);

/* ------------------------------------------------- quantized linear layer */

/* y = x @ W^T + b computed as uint8 x int8 -> int32, then dequantised. */
typedef struct ct_qlinear {
    ct_int8_matrix *w;   /* [out, in] */
    float *w_scale;      /* [out] */
    int32_t *w_rowsum;   /* [out]: sum_k q[o, k], for the zero-point term */
    float *bias;         /* [out] or NULL */
    float in_scale;      /* the input's activation parameters */
    int32_t in_zero_point;
    int64_t in, out;
} ct_qlinear;

/* Builds a layer from int8 weights q [out, in], their scales, an optional
 * bias (all copied) and the input's parameters. CT_ERR_INVALID_ARG for a
 * scale that is not positive and finite, a zero point outside [0, 255] or a
 * weight of -128. */
ct_status ct_qlinear_init(ct_qlinear *l, const int8_t *q, const float *w_scale, const float *bias, int64_t out,
                          int64_t in, float in_scale, int32_t in_zero_point);
void ct_qlinear_free(ct_qlinear *l);

/* Scratch bytes ct_qlinear_forward needs for m rows. */
size_t ct_qlinear_scratch(const ct_qlinear *l, int64_t m);
/* y [m, out] (F32) from x [m, in] (F32): quantize x, int8 product,
 * y = in_scale * w_scale[o] * (acc - zp * rowsum[o]) + bias[o]. */
ct_status ct_qlinear_forward(const ct_qlinear *l, const float *x, int64_t m, float *y, void *scratch);

/* --------------------------------------------- quantized convolution */

/* A 2-d convolution's geometry for ct_qconv2d_forward: input channels and
 * size, kernel size, and one stride and zero padding for both axes. */
typedef struct ct_qconv2d_geom {
    int64_t c, h, w, kh, kw;
    int stride, pad;
} ct_qconv2d_geom;

/* Scratch bytes ct_qconv2d_forward needs for a batch of n. */
size_t ct_qconv2d_scratch(const ct_qlinear *l, const ct_qconv2d_geom *g, int64_t n);
/* torch.nn.Conv2d (dilation 1, groups 1) in int8: l holds the weights
 * [out, C, KH, KW] flattened to [out, C * KH * KW] (l->in must be that) and
 * the input's parameters. x [n, C, H, W] is quantized, unfolded into patches
 * (padding reads as the zero point: an exact 0), multiplied in int8 and
 * dequantised as ct_qlinear_forward's; y is [n, out, OH, OW] (F32).
 * CT_ERR_SHAPE when the kernel does not fit or l->in differs. */
ct_status ct_qconv2d_forward(const ct_qlinear *l, const ct_qconv2d_geom *g, const float *x, int64_t n, float *y,
                             void *scratch);

#ifdef __cplusplus
}
#endif
#endif
