/* F32 fast paths of the unary ops whose math is a transcendental function
 * (exp, log, tanh, the sigmoid, SiLU, softplus, GELU in both forms) and of
 * their gradient UNARY_GRAD: float arithmetic with SLEEF's vector functions
 * (cpu_vmath.h), where the reference loops of k_elementwise.c call libm's
 * scalar functions in double.
 *
 * The formulas are core/ew_math.h's, instantiated on float as the CUDA
 * kernels do (the same constants cast to float, the same order of
 * operations): GELU's normal CDF through erfc (evaluated here from a fitted
 * polynomial and SLEEF's exp, normal_cdf_block), the stable sigmoid,
 * softplus as log1p(exp(-|z|)) + max(z, 0). So an F32 result here is what the CUDA
 * kernel and PyTorch compute, within the vector functions' 1-1.5 ULP; the
 * reference's double result rounded once may differ by a few ULP, and the
 * tests (tests/test_ew_float.c) state by how much.
 *
 * Work goes in blocks of BLK elements: the arithmetic before the vector
 * function into a stack buffer, the function over the buffer, the
 * arithmetic after it; the arithmetic loops vectorise (float, no FMA: the
 * library is compiled with -ffp-contract=off), and every element is
 * computed alone, so the bytes do not depend on the thread count or on an
 * element's position. Threads take fixed contiguous ranges (ct_par_ranges).
 */
#include <math.h>

#include "core/ew_math.h"
#include "cpu/cpu_half.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"

/* Elements below which one thread runs the loop: the vector functions take
 * about a nanosecond an element, a parallel region some microseconds. */
#define PAR_MIN ((int64_t)1 << 14)
#define BLK 256

typedef struct un_job {
    int op, approx;
    float alpha, threshold; /* SOFTPLUS: beta and threshold */
    const float *x, *dy;    /* dy: UNARY_GRAD only */
    void *o;                /* float, or (the forward with a fused cast) F16 / BF16 */
    ct_dtype odt;
    bool grad;
} un_job;

#define C_SQRT1_2 ((float)CT_SQRT1_2)
#define C_S2PI ((float)CT_SQRT_2_OVER_PI)
#define C_ISQ2PI ((float)CT_INV_SQRT_2PI)
#define C_TANH_C ((float)CT_GELU_TANH_C)

/* erfc(z) = t exp(P(t) - z^2) for z >= 0, t = 1 / (1 + z / 2): P is a
 * degree-9 fit of ln(erfc(z)) + z^2 - ln(t), smooth on t in (0, 1]
 * (tools/fit_erfc.py derives it and checks the float evaluation below:
 * within 3.1 eps (1 + z^2) of erfc, where SLEEF's erfcf is within 1.5 ULP
 * but takes ten times as long, about 3 ns an element here, which made the
 * GPT's GELU and its gradient a sixth of its step). The z^2 term is the
 * condition of erfc at z, which rounding the argument -x / sqrt 2 already
 * costs the reference's formula. */
static const float ERFC_P[10] = {-1.26544142f, 0.998492181f,  0.387901366f, 0.0283557642f, 0.0201810598f,
                                 -0.116724543f, -0.651365817f, 1.12251925f,  -0.666125834f, 0.14220801f};

/* phi[j] = Phi(x[j]) = erfc(-x / sqrt 2) / 2, with erfc(z) = 2 - erfc(-z)
 * for z < 0; t and e are scratch. NaN stays NaN, Phi(+-inf) is 1 and 0. */
static CT_ALWAYS_INLINE void normal_cdf_block(const float *x, float *phi, float *e, int64_t n) {
    float t[BLK];
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) {
        const float z = fabsf(-x[j] * C_SQRT1_2), u = 1.0f / (1.0f + 0.5f * z);
        float p = ERFC_P[9];
        for (int c = 8; c >= 0; c--) p = p * u + ERFC_P[c];
        t[j] = u, e[j] = p - z * z;
    }
    ct_vexpf(e, e, n);
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) {
        const float h = 0.5f * (t[j] * e[j]); /* erfc(|z|) / 2 */
        phi[j] = x[j] <= 0.0f ? h : 1.0f - h;
    }
}

/* GELU over one block, forward (o = f(x)) or gradient (o = dy * f'(x)). */
static CT_ALWAYS_INLINE void gelu_block(const un_job *k, const float *x, const float *dy, float *o, int64_t n) {
    float a[BLK], b[BLK];
    if (k->approx == CT_GELU_TANH) {
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) a[j] = C_S2PI * (x[j] + C_TANH_C * x[j] * x[j] * x[j]);
        ct_vtanhf(a, a, n);
        if (!k->grad) {
            CT_SIMD_LOOP
            for (int64_t j = 0; j < n; j++) o[j] = 0.5f * x[j] * (1.0f + a[j]);
            return;
        }
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) {
            float t = a[j], dinner = C_S2PI * (1.0f + 3.0f * C_TANH_C * x[j] * x[j]);
            o[j] = dy[j] * (0.5f * (1.0f + t) + 0.5f * x[j] * (1.0f - t * t) * dinner);
        }
        return;
    }
    /* exact: x * Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 */
    normal_cdf_block(x, a, b, n);
    if (!k->grad) {
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = x[j] * a[j];
        return;
    }
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) b[j] = -0.5f * x[j] * x[j];
    ct_vexpf(b, b, n);
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) o[j] = dy[j] * (a[j] + x[j] * C_ISQ2PI * b[j]);
}

/* Softplus over one block: log1p(exp(-|z|)) + max(z, 0), over beta, and x
 * itself where z = beta x passes the threshold; its derivative is
 * sigmoid(z), and 1 past the threshold. */
static CT_ALWAYS_INLINE void softplus_block(const un_job *k, const float *x, const float *dy, float *o, int64_t n) {
    float z[BLK], e[BLK];
    const float beta = k->alpha, thr = k->threshold;
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) z[j] = beta * x[j];
    if (k->grad) {
        ct_vsigmoidf(z, e, n);
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = dy[j] * (z[j] > thr ? 1.0f : e[j]);
        return;
    }
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) e[j] = -fabsf(z[j]);
    ct_vexpf(e, e, n);
    ct_vlog1pf(e, e, n);
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) o[j] = z[j] > thr ? x[j] : (e[j] + (z[j] > 0.0f ? z[j] : 0.0f)) / beta;
}

/* The other ops over one block: one vector function, then the arithmetic
 * of f or dy * f'. */
static CT_ALWAYS_INLINE void simple_block(const un_job *k, const float *x, const float *dy, float *o, int64_t n) {
    float f[BLK];
    /* f itself goes straight to the output */
    float *fo = !k->grad && k->op != CT_OP_SILU ? o : f;
    switch (k->op) {
    case CT_OP_EXP: ct_vexpf(x, fo, n); break;
    case CT_OP_LOG: ct_vlogf(x, fo, n); break;
    case CT_OP_TANH: ct_vtanhf(x, fo, n); break;
    default: ct_vsigmoidf(x, fo, n); break; /* SIGMOID, SILU */
    }
    if (fo == o) return;
    if (!k->grad) { /* SILU */
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = x[j] * f[j];
        return;
    }
    switch (k->op) {
    case CT_OP_EXP:
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = dy[j] * f[j];
        break;
    case CT_OP_TANH:
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = dy[j] * (1.0f - f[j] * f[j]);
        break;
    case CT_OP_SIGMOID:
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = dy[j] * (f[j] * (1.0f - f[j]));
        break;
    default: /* SILU */
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) o[j] = dy[j] * (f[j] * (1.0f + x[j] * (1.0f - f[j])));
        break;
    }
}

/* Elements [lo, hi), BLK at a time. o may be x or dy (in place): each block
 * reads its inputs before it writes. A half output (a fused cast): each
 * block into the stack, then rounded as CAST rounds (cpu_half.h). */
static CT_ALWAYS_INLINE void un_body(const un_job *k, int64_t lo, int64_t hi) {
    float tmp[BLK];
    for (int64_t i = lo; i < hi; i += BLK) {
        const int64_t n = hi - i < BLK ? hi - i : BLK;
        const float *x = k->x + i, *dy = k->grad ? k->dy + i : NULL;
        float *o = k->odt == CT_F32 ? (float *)k->o + i : tmp;
        if (k->op == CT_OP_GELU) gelu_block(k, x, dy, o, n);
        else if (k->op == CT_OP_SOFTPLUS) softplus_block(k, x, dy, o, n);
        else simple_block(k, x, dy, o, n);
        if (o == tmp) ct_cpu_put_half(k->o, k->odt, i, tmp, n);
    }
}
CT_RANGE_KERNEL(un_worker, un_body, un_job)

/* Whether op has a float path: forward, or (grad) its derivative. LOG's
 * derivative is 1 / x, no transcendental, left to the reference. */
static bool has_path(int op, bool grad) {
    switch (op) {
    case CT_OP_EXP: case CT_OP_TANH: case CT_OP_SIGMOID: case CT_OP_SILU: case CT_OP_SOFTPLUS:
    case CT_OP_GELU: return true;
    case CT_OP_LOG: return !grad;
    default: return false;
    }
}

static bool run(const ct_ew_params *p, const ct_tview *x, const ct_tview *dy, const ct_tview *o) {
    const un_job k = {p->op, p->approx, (float)p->alpha, (float)p->threshold, x->data, dy ? dy->data : NULL,
                      o->data, o->dtype, dy != NULL};
    ct_par_ranges(o->numel, PAR_MIN, un_worker(), &k);
    return true;
}

/* The output F32, or F16 / BF16: a cast fused into the op
 * (core/program_fuse.c), each value rounded from the float the F32 output
 * would hold. */
bool ct_cpu_fast_unary(const ct_ew_params *p, const ct_tview *x, const ct_tview *o) {
    if (x->dtype != CT_F32 || (o->dtype != CT_F32 && !ct_cpu_is_half(o->dtype)) || !has_path(p->op, false) ||
        !ct_cpu_float_math())
        return false;
    return run(p, x, NULL, o);
}

bool ct_cpu_fast_unary_grad(const ct_ew_params *p, const ct_tview *x, const ct_tview *dy, const ct_tview *o) {
    if (x->dtype != CT_F32 || dy->dtype != CT_F32 || o->dtype != CT_F32 || !has_path(p->op, true) ||
        !ct_cpu_float_math())
        return false;
    return run(p, x, dy, o);
}
