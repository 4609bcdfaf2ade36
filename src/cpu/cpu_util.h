/* Internal: element access for the CPU reference kernels.
 *
 * Reference kernels are written once, in double: they load each element as
 * a double whatever its storage type and store the result back with the
 * storage type's rounding. That keeps one readable loop per op for F64, F32,
 * F16 and BF16; matrix products go to BLAS. Hot kernels add F32 loops with
 * typed pointers around the same double arithmetic, and OpenMP over
 * independent elements or rows, so their results do not change by a bit.
 */
#ifndef CT_CPU_UTIL_H
#define CT_CPU_UTIL_H

#include <stdint.h>
#include <string.h>

#include "core/backend.h"
#include "core/bf16_bits.h"
#include "core/error.h"

static inline double ct_ld(const void *p, ct_dtype dt, int64_t i) {
    switch (dt) {
    case CT_F32: return ((const float *)p)[i];
    case CT_F64: return ((const double *)p)[i];
    case CT_F16: return ct_f16_to_f32(((const uint16_t *)p)[i]);
    case CT_BF16: return ct_bf16_to_f32(((const uint16_t *)p)[i]);
    case CT_I32: return ((const int32_t *)p)[i];
    case CT_U8: return ((const uint8_t *)p)[i];
    default: return 0.0;
    }
}

static inline void ct_st(void *p, ct_dtype dt, int64_t i, double v) {
    switch (dt) {
    case CT_F32: ((float *)p)[i] = (float)v; break;
    case CT_F64: ((double *)p)[i] = v; break;
    case CT_F16: ((uint16_t *)p)[i] = ct_f32_to_f16((float)v); break;
    case CT_BF16: ((uint16_t *)p)[i] = ct_f32_to_bf16((float)v); break;
    /* float -> int truncates toward zero, as torch's .to() does; values
     * outside the range saturate and NaN becomes 0, where a bare C cast
     * would be undefined behaviour. */
    case CT_I32: ((int32_t *)p)[i] = (int32_t)(v != v ? 0.0 : v < -2147483648.0 ? -2147483648.0
                                              : v > 2147483647.0 ? 2147483647.0 : v); break;
    case CT_U8: ((uint8_t *)p)[i] = (uint8_t)(v != v || v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v); break;
    default: break;
    }
}

/* x as a product's half operand holds it: rounded to F16 or BF16 (half)
 * and back, NaN kept; half F32 leaves x as it is. BF16 inline (its bits,
 * core/bf16_bits.h): it runs over whole weight matrices. */
static inline float ct_round_half(float x, ct_dtype half) {
    if (half == CT_BF16) {
        uint32_t u;
        memcpy(&u, &x, sizeof u);
        u = ct_bf16_to_bits(ct_bf16_from_bits(u));
        memcpy(&x, &u, sizeof x);
        return x;
    }
    return half == CT_F16 ? ct_f16_to_f32(ct_f32_to_f16(x)) : x;
}

/* Row-major strides of a shape, in elements. */
static inline void ct_strides(const ct_shape *s, int64_t *stride) {
    int64_t acc = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= s->dim[d];
    }
}

/* Offset in `in` (whose shape is broadcast to `out`, NumPy rules: aligned
 * from the right, size-1 axes stretch) of the element at flat index i of
 * `out`. */
static inline int64_t ct_bcast_offset(const ct_shape *out, const ct_shape *in, int64_t i) {
    int64_t off = 0, stride = 1;
    int shift = out->ndim - in->ndim;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int64_t idx = i % out->dim[d];
        i /= out->dim[d];
        int di = d - shift;
        if (di >= 0) {
            if (in->dim[di] != 1) off += idx * stride;
            stride *= in->dim[di];
        }
    }
    return off;
}

/* Splits a shape around `axis` into outer * len * inner (row-major). */
static inline void ct_axis_split(const ct_shape *s, int axis, int64_t *outer, int64_t *len,
                                 int64_t *inner) {
    int64_t o = 1, in = 1;
    for (int d = 0; d < axis; d++) o *= s->dim[d];
    for (int d = axis + 1; d < s->ndim; d++) in *= s->dim[d];
    *outer = o;
    *len = s->dim[axis];
    *inner = in;
}

/* Kernel registration: each k_*.c file fills its ops' entries. */
void ct_cpu_register_elementwise(ct_kernel_fn *t);
void ct_cpu_register_reduce(ct_kernel_fn *t);
void ct_cpu_register_matmul(ct_kernel_fn *t);
void ct_cpu_register_shape(ct_kernel_fn *t);
void ct_cpu_register_nn(ct_kernel_fn *t);
void ct_cpu_register_norm(ct_kernel_fn *t);
void ct_cpu_register_conv(ct_kernel_fn *t);
void ct_cpu_register_pool(ct_kernel_fn *t);
void ct_cpu_register_attention(ct_kernel_fn *t);
void ct_cpu_register_rnn(ct_kernel_fn *t);
void ct_cpu_register_fakequant(ct_kernel_fn *t);
/* Scratch needs (bytes) of the ops that have any; 0 otherwise. */
size_t ct_cpu_matmul_scratch(const ct_kargs *k);
size_t ct_cpu_conv_scratch(const ct_kargs *k);
size_t ct_cpu_pool_scratch(const ct_kargs *k);
size_t ct_cpu_attention_scratch(const ct_kargs *k);
size_t ct_cpu_rnn_scratch(const ct_kargs *k);
size_t ct_cpu_norm_scratch(const ct_kargs *k);
/* The F32 fast path of attention (k_attention_fast.c): the scratch it needs
 * for T positions (ct_cpu_attention_scratch declares at least this much for
 * F32), and the kernel, for the forward (which < 0) or gradient `which` of
 * checked arguments; false, doing nothing, unless every operand is F32 and
 * ct_cpu_float_math(). */
size_t ct_cpu_attention_fast_scratch(int64_t t);
bool ct_cpu_attention_f32(const ct_kargs *k, int which);
/* The flat-buffer hooks of the backend (cpu_optim.c). */
ct_status ct_cpu_optim_update(const ct_optim_args *a);
ct_status ct_cpu_sumsq(const void *x, ct_dtype dtype, size_t n, double *out, bool *finite);
ct_status ct_cpu_scale_clamp(void *x, ct_dtype dtype, size_t n, double scale, double clamp);
ct_status ct_cpu_axpby(double a, const void *x, double b, void *y, ct_dtype dtype, size_t n);
/* The vectorised F32 elementwise paths (cpu_fast_ew.c): true when one ran
 * (binary rows: with relu applied to the output when asked). */
bool ct_cpu_fast_binary_rows(ct_op op, const ct_tview *a, bool a_full, const ct_tview *b, bool b_full,
                             const ct_tview *o, int64_t m, int64_t rows, bool relu);
/* A relu fused into the kernel that made o (ct_attrs.fused_relu), for the
 * paths that do not apply it as they go (k_elementwise.c): o = relu(o) in
 * place; and its gradient form, o *= (x > 0 ? 1 : 0). */
void ct_cpu_relu_inplace(const ct_tview *o);
void ct_cpu_relu_mask(const ct_tview *o, const ct_tview *x);
bool ct_cpu_fast_sum_rows(const ct_tview *x, const ct_tview *o, int64_t rows, int64_t m);
bool ct_cpu_fast_cast(const ct_tview *x, const ct_tview *o);
/* The float-math F32 paths of the transcendental unary ops and their
 * gradient (cpu_fast_unary.c): true when one ran. */
struct ct_ew_params;
bool ct_cpu_fast_unary(const struct ct_ew_params *p, const ct_tview *x, const ct_tview *o);
bool ct_cpu_fast_unary_grad(const struct ct_ew_params *p, const ct_tview *x, const ct_tview *dy, const ct_tview *o);
/* Softmax, log-softmax (last axis, rows of len) and their gradients, and
 * cross-entropy's gradient, in float math (cpu_fast_softmax.c): true when
 * one ran. ct_cpu_rows_lse_vf: the log-sum-exps of `rows` rows of c > 0
 * floats, into lse[rows], threaded by rows. */
bool ct_cpu_fast_softmax(const ct_tview *x, const ct_tview *o, int64_t rows, int64_t len, bool log_form);
bool ct_cpu_fast_softmax_grad(const ct_tview *y, const ct_tview *dy, const ct_tview *o, int64_t rows, int64_t len,
                              bool log_form);
void ct_cpu_rows_lse_vf(const float *x, int64_t rows, int64_t c, float *lse);
bool ct_cpu_fast_xent_grad(const ct_tview *lg, const int32_t *labels, const ct_tview *o, int64_t n, int64_t c,
                           double g, double on, double off);
/* Layer norm's F32 paths (cpu_fast_norm.c): true when one ran. */
bool ct_cpu_fast_layer_norm(const ct_tview *x, const ct_tview *w, const ct_tview *b, const ct_tview *out,
                            int64_t rows, int64_t dim, double eps);
bool ct_cpu_fast_layer_norm_grad_x(const ct_tview *x, const ct_tview *dy, const ct_tview *w, const ct_tview *out,
                                   int64_t rows, int64_t dim, double eps);
bool ct_cpu_fast_layer_norm_grad_param(const ct_tview *x, const ct_tview *dy, const ct_tview *out, bool bias,
                                       int64_t rows, int64_t dim, double eps, void *stats);
/* Scratch bytes of the weight gradient's row statistics (stats above). */
size_t ct_cpu_layer_norm_stats_bytes(int64_t rows);
/* The recurrent op's F32 float-math path (k_rnn_fast.c), after k_rnn.c
 * checked the operands: which is -1 for RNN, else RNN_GRAD's ct_rnn_grad;
 * true when it ran. Its scratch (bytes) for B rows, H units, G*H gates. */
bool ct_cpu_rnn_fast(const ct_kargs *k, int cell, bool reverse, int64_t B, int64_t T, int64_t H, int which);
size_t ct_cpu_rnn_fast_scratch(int64_t B, int64_t H, int64_t GH);
/* Its hidden products (rnn_gemm.c): B [K, N] packed into panels of 16
 * columns (b[k * N + j], or b[j * K + k] when trans; panels [p0, p1) of
 * ct_rnn_panels_size floats), and C [m, N] = A [m, K] B, plus C's old
 * values when accumulating. */
#define CT_RNN_PANEL_COLS 16
int64_t ct_rnn_panels_size(int64_t K, int64_t N);
void ct_rnn_pack_panels(const float *b, int64_t K, int64_t N, bool trans, float *dst, int64_t p0, int64_t p1);
void ct_rnn_panel_gemm(int64_t m, int64_t N, int64_t K, const float *a, int64_t lda, const float *bp, float *c,
                       int64_t ldc, bool accumulate);
/* The same product with BF16 operands on AVX512-BF16 (a dot product of two
 * k at once, F32 sums): B packed into panels of 16 columns of k pairs (each
 * uint32 two BF16, k even in the low half, zero-padded: 16 ct_rnn_pairs(K)
 * uint32 a panel, within ct_rnn_panels_size(K, N) in all), A's m rows of K
 * as pairs too (rows of ct_rnn_pairs(K) uint32). ct_rnn_bf16_dot() says
 * whether the CPU has the instruction (and AVX-512 is not switched off). */
bool ct_rnn_bf16_dot(void);
int64_t ct_rnn_pairs(int64_t K);
void ct_rnn_pack_panels_bf16(const float *b, int64_t K, int64_t N, bool trans, uint32_t *dst, int64_t p0, int64_t p1);
void ct_rnn_rows_bf16(const float *a, int64_t lda, int64_t m, int64_t K, uint32_t *dst);
void ct_rnn_panel_gemm_bf16(int64_t m, int64_t N, int64_t K, const uint32_t *a, const uint32_t *bp, float *c,
                            int64_t ldc, bool accumulate);
/* m rows of K values from a (row stride lda) rounded to half (F16, BF16)
 * into dst [m, K]: ct_round_half's values (F16 by AVX-512's conversion
 * where there is one), a NaN kept a NaN. dst may be a when lda is K. */
void ct_rnn_round_rows(const float *a, int64_t lda, int64_t m, int64_t K, ct_dtype half, float *dst);
/* The vectorised F32 updates, SGD, Adam and AdamW in float arithmetic with
 * PyTorch's formulas (cpu_optim_fast.c): true when one ran. Not the
 * reference's bits; the CUDA kernel's F32 updates compute the same. */
bool ct_cpu_optim_fast(const ct_optim_args *a);
/* The loss scaler's hooks (cpu_amp.c). */
ct_status ct_cpu_amp_unscale(void *g, ct_dtype dtype, size_t n, ct_amp_state *st);
ct_status ct_cpu_amp_update(ct_amp_state *st, double growth, double backoff, int32_t growth_interval);

#endif
