/* Internal: the elementwise math, written once for the CPU and CUDA kernels.
 *
 * The binary ops, every unary op's f(x) and f'(x) (with PyTorch's
 * conventions at kinks and for NaN), the sigmoid, the normal CDF and the
 * GELU constants. The CPU compiles this as C with ct_real = double: its
 * kernels compute in double whatever the storage dtype. nvcc compiles it as
 * C++ templates on ct_real, instantiated with float for F32/F16/BF16 and
 * double for F64: every constant is cast to ct_real and the operations come
 * in the same order for both, so each backend gets the arithmetic it has
 * always had (the CUDA kernels' float results are what the parity suite
 * checks against the CPU's double ones). Nothing here differs between the
 * two; a formula that must (for exactness on one backend) belongs in that
 * backend's kernel, with a comment saying why.
 *
 * A new unary op is two functions here (f and f') and a case in each switch
 * of ct_ew_unary / ct_ew_unary_deriv; the kernels of both backends take
 * every op of class UNARY (core/op_list.h) and come here for the math.
 */
#ifndef CT_CORE_EW_MATH_H
#define CT_CORE_EW_MATH_H

#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/node.h"
#include "ctrain/ops.h"
#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
#define CT_EW_FN template <typename ct_real> __host__ __device__ __forceinline__
#else
#define CT_EW_FN static inline
typedef double ct_real;
#endif

/* math.h's M_* constants are not C11. */
#define CT_SQRT1_2 0.70710678118654752440        /* 1/sqrt(2) */
#define CT_SQRT_2_OVER_PI 0.79788456080286535588 /* sqrt(2/pi) */
#define CT_INV_SQRT_2PI 0.39894228040143267794   /* 1/sqrt(2*pi) */
#define CT_GELU_TANH_C 0.044715                  /* PyTorch's cubic coefficient */

/* The attributes a unary op reads (from its node's ct_attrs), small enough
 * to pass to a CUDA kernel by value. */
typedef struct ct_ew_params {
    int op;        /* the unary op (for UNARY_GRAD: the forward op) */
    double alpha;  /* SCALE: factor; POW: exponent; LEAKY_RELU: slope; SOFTPLUS: beta */
    int approx;    /* GELU: ct_gelu_approx */
    double threshold; /* SOFTPLUS */
} ct_ew_params;

static inline ct_ew_params ct_ew_params_of(int op, const ct_attrs *a) {
    ct_ew_params p;
    p.op = op;
    p.alpha = a->alpha;
    p.approx = a->approx;
    p.threshold = a->threshold;
    return p;
}

/* ---- binary ---------------------------------------------------------------- */

CT_EW_FN ct_real ct_ew_binary(int op, ct_real a, ct_real b) {
    switch (op) {
    case CT_OP_ADD: return a + b;
    case CT_OP_SUB: return a - b;
    case CT_OP_MUL: return a * b;
    default: return a / b; /* CT_OP_DIV */
    }
}

/* ---- helpers of the unary ops ---------------------------------------------- */

/* Only ever exponentiates a non-positive number, so large |x| gives 0 or 1
 * instead of inf/inf. */
CT_EW_FN ct_real ct_ew_sigmoid(ct_real x) {
    if (x >= (ct_real)0) return (ct_real)1 / ((ct_real)1 + exp(-x));
    ct_real e = exp(x);
    return e / ((ct_real)1 + e);
}

/* Standard normal CDF; erfc keeps the relative accuracy for very negative x
 * where 1 + erf(.) would cancel to nothing. */
CT_EW_FN ct_real ct_ew_normal_cdf(ct_real x) { return (ct_real)0.5 * erfc(-x * (ct_real)CT_SQRT1_2); }

CT_EW_FN ct_real ct_ew_gelu_tanh_inner(ct_real x) {
    return (ct_real)CT_SQRT_2_OVER_PI * (x + (ct_real)CT_GELU_TANH_C * x * x * x);
}

CT_EW_FN ct_real ct_ew_gelu(ct_real x, int approx) {
    if (approx == CT_GELU_TANH) return (ct_real)0.5 * x * ((ct_real)1 + tanh(ct_ew_gelu_tanh_inner(x)));
    return x * ct_ew_normal_cdf(x);
}

CT_EW_FN ct_real ct_ew_gelu_deriv(ct_real x, int approx) {
    if (approx == CT_GELU_TANH) {
        ct_real t = tanh(ct_ew_gelu_tanh_inner(x));
        ct_real dinner = (ct_real)CT_SQRT_2_OVER_PI * ((ct_real)1 + (ct_real)3 * (ct_real)CT_GELU_TANH_C * x * x);
        return (ct_real)0.5 * ((ct_real)1 + t) + (ct_real)0.5 * x * ((ct_real)1 - t * t) * dinner;
    }
    return ct_ew_normal_cdf(x) + x * (ct_real)CT_INV_SQRT_2PI * exp((ct_real)-0.5 * x * x);
}

/* PyTorch's softplus: log(1 + exp(beta x)) / beta, and x itself where
 * beta x > threshold. log1p(exp(-|z|)) + max(z, 0) is log(1 + exp(z)),
 * PyTorch's log1p(exp(z)), in a form whose exp never overflows. */
CT_EW_FN ct_real ct_ew_softplus(ct_real x, double beta, double threshold) {
    ct_real z = (ct_real)beta * x;
    if (z > (ct_real)threshold) return x;
    return (log1p(exp(-fabs(z))) + (z > (ct_real)0 ? z : (ct_real)0)) / (ct_real)beta;
}

/* d softplus / dx = sigmoid(beta x), and 1 where x passes through. */
CT_EW_FN ct_real ct_ew_softplus_deriv(ct_real x, double beta, double threshold) {
    ct_real z = (ct_real)beta * x;
    return z > (ct_real)threshold ? (ct_real)1 : ct_ew_sigmoid(z);
}

/* NaN must come out as NaN (as in PyTorch), not as 0; x != x is isnan(x)
 * in both languages. */
CT_EW_FN ct_real ct_ew_relu(ct_real x) { return x != x ? x : (x > (ct_real)0 ? x : (ct_real)0); }

/* ---- unary: f(x) and f'(x) ------------------------------------------------- */

CT_EW_FN ct_real ct_ew_unary(const ct_ew_params *p, ct_real x) {
    switch (p->op) {
    case CT_OP_NEG: return -x;
    case CT_OP_SCALE: return (ct_real)p->alpha * x;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return log(x);
    case CT_OP_SQRT: return sqrt(x);
    case CT_OP_POW: return pow(x, (ct_real)p->alpha);
    case CT_OP_ABS: return fabs(x);
    case CT_OP_RELU: return ct_ew_relu(x);
    case CT_OP_LEAKY_RELU: return x > (ct_real)0 ? x : (ct_real)p->alpha * x;
    case CT_OP_GELU: return ct_ew_gelu(x, p->approx);
    case CT_OP_TANH: return tanh(x);
    case CT_OP_SIGMOID: return ct_ew_sigmoid(x);
    case CT_OP_SILU: return x * ct_ew_sigmoid(x);
    case CT_OP_SOFTPLUS: return ct_ew_softplus(x, p->alpha, p->threshold);
    default: return (ct_real)NAN; /* not a unary op */
    }
}

/* f'(x) with PyTorch's conventions at the kinks: |x|' and relu' are 0 at 0,
 * leaky_relu' is the slope at 0. */
CT_EW_FN ct_real ct_ew_unary_deriv(const ct_ew_params *p, ct_real x) {
    switch (p->op) {
    case CT_OP_NEG: return (ct_real)-1;
    case CT_OP_SCALE: return (ct_real)p->alpha;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return (ct_real)1 / x;
    case CT_OP_SQRT: return (ct_real)0.5 / sqrt(x);
    case CT_OP_POW:
        /* x^0 is constant; without this, x = 0 would give 0 * inf = NaN */
        if (p->alpha == 0.0) return (ct_real)0;
        return (ct_real)p->alpha * pow(x, (ct_real)(p->alpha - 1.0));
    case CT_OP_ABS: return (ct_real)((x > (ct_real)0) - (x < (ct_real)0));
    case CT_OP_RELU: return x > (ct_real)0 ? (ct_real)1 : (ct_real)0;
    case CT_OP_LEAKY_RELU: return x > (ct_real)0 ? (ct_real)1 : (ct_real)p->alpha;
    case CT_OP_GELU: return ct_ew_gelu_deriv(x, p->approx);
    case CT_OP_TANH: {
        ct_real t = tanh(x);
        return (ct_real)1 - t * t;
    }
    case CT_OP_SIGMOID: {
        ct_real s = ct_ew_sigmoid(x);
        return s * ((ct_real)1 - s);
    }
    case CT_OP_SILU: {
        ct_real s = ct_ew_sigmoid(x);
        return s * ((ct_real)1 + x * ((ct_real)1 - s));
    }
    case CT_OP_SOFTPLUS: return ct_ew_softplus_deriv(x, p->alpha, p->threshold);
    default: return (ct_real)NAN; /* not a unary op */
    }
}

#endif
