/* CPU reference kernels: binary and unary elementwise ops, the unary ops'
 * gradient, casts, copies, and the BROADCAST_TO / SUM_TO pair.
 *
 * These are the values every other backend is checked against, so each op
 * is one plain loop that loads elements as double and stores them with the
 * output's rounding (cpu_util.h). Kernels check the shapes they rely on,
 * because a wrong shape here would otherwise read out of bounds instead of
 * failing a test.
 *
 * Speed without changing a bit: elements are independent, so large tensors
 * split across OpenMP threads (each element computed exactly as alone), and
 * F32 operands, the common case, are read and written through typed
 * pointers, so the dtype switch of ct_ld/ct_st leaves the inner loop; the
 * arithmetic stays the double arithmetic of the generic loop.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

/* math.h's M_* constants are not C11. */
#define CT_SQRT1_2 0.70710678118654752440      /* 1/sqrt(2) */
#define CT_SQRT_2_OVER_PI 0.79788456080286535588 /* sqrt(2/pi) */
#define CT_INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2*pi) */
#define CT_GELU_TANH_C 0.044715                /* PyTorch's cubic coefficient */

/* Elements below which a parallel region costs more than the loop. */
#define PAR_MIN ((int64_t)1 << 15)
/* Same-shape operands are cut into rows of this many elements to share them
 * out (the cut changes nothing: every element is computed alone). */
#define FLAT_ROW ((int64_t)4096)

static const char *const op_names[] = {
#define X(e, name, diff, internal) name,
#include "core/op_list.h"
#undef X
};

static const char *op_name(int op) {
    return op >= 0 && op < CT_OP_COUNT ? op_names[op] : "?";
}

/* True when `in` broadcasts to `out` by NumPy rules (which is also what
 * ct_bcast_offset assumes: `in` has no more axes than `out`). */
static bool broadcasts_to(const ct_shape *in, const ct_shape *out) {
    if (in->ndim > out->ndim) return false;
    int shift = out->ndim - in->ndim;
    for (int d = 0; d < in->ndim; d++)
        if (in->dim[d] != 1 && in->dim[d] != out->dim[d + shift]) return false;
    return true;
}

static ct_status shape_error(ct_op op, const char *what, const ct_shape *a, const ct_shape *b) {
    char sa[96], sb[96];
    return ct_error(CT_ERR_SHAPE, "cpu %s: %s %s vs %s", op_name(op), what,
                    ct_shape_str(*a, sa, sizeof sa), ct_shape_str(*b, sb, sizeof sb));
}

static ct_status check_arity(const ct_kargs *k, ct_op op, int n_in) {
    if (k->n_in != n_in)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: expected %d inputs, got %d", op_name(op), n_in,
                        k->n_in);
    return CT_OK;
}

/* ---- binary ------------------------------------------------------------ */

static double binary_fn(ct_op op, double a, double b) {
    switch (op) {
    case CT_OP_ADD: return a + b;
    case CT_OP_SUB: return a - b;
    case CT_OP_MUL: return a * b;
    default: return a / b; /* CT_OP_DIV */
    }
}

/* Row length m when `in`, broadcast to `out`, repeats with period m along
 * out's flat index (its shape, without leading 1s, is out's trailing axes:
 * a bias row, or a scalar with m = 1); 0 otherwise. */
static int64_t row_period(const ct_shape *in, const ct_shape *out) {
    int lead = 0;
    while (lead < in->ndim && in->dim[lead] == 1) lead++;
    int64_t m = 1;
    for (int d = lead; d < in->ndim; d++) {
        if (in->dim[d] != out->dim[out->ndim - in->ndim + d]) return 0;
        m *= in->dim[d];
    }
    return m;
}

/* out = a op b where each operand is either out's shape (full) or repeats
 * with period m (row); rows split across threads. Only full operands may
 * leave a tail of fewer than m elements. */
static void binary_rows(ct_op op, const ct_tview *a, bool a_full, const ct_tview *b, bool b_full,
                        const ct_tview *o, int64_t m) {
    const int64_t rows = m > 0 ? o->numel / m : 0;
    if (a->dtype == CT_F32 && b->dtype == CT_F32 && o->dtype == CT_F32) {
        const float *pa = a->data, *pb = b->data;
        float *po = o->data;
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const float *ra = a_full ? pa + r * m : pa, *rb = b_full ? pb + r * m : pb;
            float *ro = po + r * m;
            for (int64_t j = 0; j < m; j++) ro[j] = (float)binary_fn(op, ra[j], rb[j]);
        }
    } else {
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < m; j++) {
                int64_t i = r * m + j;
                double va = ct_ld(a->data, a->dtype, a_full ? i : j);
                double vb = ct_ld(b->data, b->dtype, b_full ? i : j);
                ct_st(o->data, o->dtype, i, binary_fn(op, va, vb));
            }
    }
    /* the tail of a full-by-full product cut into FLAT_ROW pieces */
    for (int64_t i = rows * m; i < o->numel; i++)
        ct_st(o->data, o->dtype, i, binary_fn(op, ct_ld(a->data, a->dtype, i), ct_ld(b->data, b->dtype, i)));
}

static ct_status binary(const ct_kargs *k, ct_op op) {
    ct_status s = check_arity(k, op, 2);
    if (s != CT_OK) return s;
    const ct_tview *a = &k->in[0], *b = &k->in[1], *o = &k->out;
    if (!broadcasts_to(&a->shape, &o->shape))
        return shape_error(op, "first operand does not broadcast to output", &a->shape, &o->shape);
    if (!broadcasts_to(&b->shape, &o->shape))
        return shape_error(op, "second operand does not broadcast to output", &b->shape,
                           &o->shape);

    bool a_full = ct_shape_equal(a->shape, o->shape), b_full = ct_shape_equal(b->shape, o->shape);
    if (a_full && b_full) {
        /* one row of the whole tensor would run on one thread: split it */
        binary_rows(op, a, true, b, true, o, o->numel >= PAR_MIN ? FLAT_ROW : o->numel);
        return CT_OK;
    }
    int64_t ma = a_full ? 0 : row_period(&a->shape, &o->shape);
    int64_t mb = b_full ? 0 : row_period(&b->shape, &o->shape);
    if ((a_full || ma > 0) && (b_full || mb > 0) && (a_full || b_full || ma == mb)) {
        binary_rows(op, a, a_full, b, b_full, o, a_full ? mb : ma);
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
    for (int64_t i = 0; i < o->numel; i++) {
        double va = ct_ld(a->data, a->dtype, ct_bcast_offset(&o->shape, &a->shape, i));
        double vb = ct_ld(b->data, b->dtype, ct_bcast_offset(&o->shape, &b->shape, i));
        ct_st(o->data, o->dtype, i, binary_fn(op, va, vb));
    }
    return CT_OK;
}

static ct_status k_add(const ct_kargs *k) { return binary(k, CT_OP_ADD); }
static ct_status k_sub(const ct_kargs *k) { return binary(k, CT_OP_SUB); }
static ct_status k_mul(const ct_kargs *k) { return binary(k, CT_OP_MUL); }
static ct_status k_div(const ct_kargs *k) { return binary(k, CT_OP_DIV); }

/* ---- unary ------------------------------------------------------------- */

static double sigmoid(double x) {
    /* Only ever exponentiate a non-positive number, so large |x| gives 0 or 1
     * instead of inf/inf. */
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* Standard normal CDF; erfc keeps the relative accuracy for very negative x
 * where 1 + erf(.) would cancel to nothing. */
static double normal_cdf(double x) { return 0.5 * erfc(-x * CT_SQRT1_2); }

static double gelu_tanh_inner(double x) {
    return CT_SQRT_2_OVER_PI * (x + CT_GELU_TANH_C * x * x * x);
}

static bool is_unary(int op) {
    switch (op) {
    case CT_OP_NEG: case CT_OP_SCALE: case CT_OP_EXP: case CT_OP_LOG: case CT_OP_SQRT:
    case CT_OP_POW: case CT_OP_ABS: case CT_OP_RELU: case CT_OP_LEAKY_RELU: case CT_OP_GELU:
    case CT_OP_TANH: case CT_OP_SIGMOID: case CT_OP_SILU:
        return true;
    default:
        return false;
    }
}

/* f(x) for a unary op; `a` carries alpha (SCALE, POW, LEAKY_RELU) and approx
 * (GELU). */
static double unary_fn(int op, const ct_attrs *a, double x) {
    switch (op) {
    case CT_OP_NEG: return -x;
    case CT_OP_SCALE: return a->alpha * x;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return log(x);
    case CT_OP_SQRT: return sqrt(x);
    case CT_OP_POW: return pow(x, a->alpha);
    case CT_OP_ABS: return fabs(x);
    /* NaN must come out as NaN (as in PyTorch), not as 0 */
    case CT_OP_RELU: return isnan(x) ? x : (x > 0 ? x : 0.0);
    case CT_OP_LEAKY_RELU: return x > 0 ? x : a->alpha * x;
    case CT_OP_GELU:
        if (a->approx == CT_GELU_TANH) return 0.5 * x * (1.0 + tanh(gelu_tanh_inner(x)));
        return x * normal_cdf(x);
    case CT_OP_TANH: return tanh(x);
    case CT_OP_SIGMOID: return sigmoid(x);
    case CT_OP_SILU: return x * sigmoid(x);
    default: return NAN;
    }
}

/* f'(x) with PyTorch's conventions at the kinks: |x|' and relu' are 0 at 0,
 * leaky_relu' is the slope at 0. */
static double unary_deriv(int op, const ct_attrs *a, double x) {
    switch (op) {
    case CT_OP_NEG: return -1.0;
    case CT_OP_SCALE: return a->alpha;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return 1.0 / x;
    case CT_OP_SQRT: return 0.5 / sqrt(x);
    case CT_OP_POW:
        /* x^0 is constant; without this, x = 0 would give 0 * inf = NaN */
        if (a->alpha == 0.0) return 0.0;
        return a->alpha * pow(x, a->alpha - 1.0);
    case CT_OP_ABS: return (double)((x > 0) - (x < 0));
    case CT_OP_RELU: return x > 0 ? 1.0 : 0.0;
    case CT_OP_LEAKY_RELU: return x > 0 ? 1.0 : a->alpha;
    case CT_OP_GELU:
        if (a->approx == CT_GELU_TANH) {
            double t = tanh(gelu_tanh_inner(x));
            double dinner = CT_SQRT_2_OVER_PI * (1.0 + 3.0 * CT_GELU_TANH_C * x * x);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner;
        }
        return normal_cdf(x) + x * CT_INV_SQRT_2PI * exp(-0.5 * x * x);
    case CT_OP_TANH: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    case CT_OP_SIGMOID: {
        double s = sigmoid(x);
        return s * (1.0 - s);
    }
    case CT_OP_SILU: {
        double s = sigmoid(x);
        return s * (1.0 + x * (1.0 - s));
    }
    default: return NAN;
    }
}

static ct_status same_numel(ct_op op, const ct_tview *in, const ct_tview *out) {
    if (in->numel != out->numel) return shape_error(op, "input and output differ", &in->shape,
                                                    &out->shape);
    return CT_OK;
}

static ct_status unary(const ct_kargs *k, ct_op op) {
    ct_status s = check_arity(k, op, 1);
    if (s == CT_OK) s = same_numel(op, &k->in[0], &k->out);
    if (s != CT_OK) return s;
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op_name(op));
    const ct_tview *x = &k->in[0], *o = &k->out;
    const ct_attrs *at = k->attr;
    const int64_t n = o->numel;
    if (x->dtype == CT_F32 && o->dtype == CT_F32) {
        const float *xs = x->data;
        float *os = o->data;
        if (op == CT_OP_RELU) { /* the hot one: its own loop, which vectorises */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t i = 0; i < n; i++) {
                double v = xs[i];
                os[i] = (float)(isnan(v) ? v : (v > 0 ? v : 0.0));
            }
            return CT_OK;
        }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) os[i] = (float)unary_fn(op, at, xs[i]);
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) ct_st(o->data, o->dtype, i, unary_fn(op, at, ct_ld(x->data, x->dtype, i)));
    return CT_OK;
}

#define UNARY_KERNEL(fn, OP) \
    static ct_status fn(const ct_kargs *k) { return unary(k, CT_OP_##OP); }
UNARY_KERNEL(k_neg, NEG)
UNARY_KERNEL(k_scale, SCALE)
UNARY_KERNEL(k_exp, EXP)
UNARY_KERNEL(k_log, LOG)
UNARY_KERNEL(k_sqrt, SQRT)
UNARY_KERNEL(k_pow, POW)
UNARY_KERNEL(k_abs, ABS)
UNARY_KERNEL(k_relu, RELU)
UNARY_KERNEL(k_leaky_relu, LEAKY_RELU)
UNARY_KERNEL(k_gelu, GELU)
UNARY_KERNEL(k_tanh, TANH)
UNARY_KERNEL(k_sigmoid, SIGMOID)
UNARY_KERNEL(k_silu, SILU)
#undef UNARY_KERNEL

static ct_status k_unary_grad(const ct_kargs *k) {
    const ct_op op = CT_OP_UNARY_GRAD;
    ct_status s = check_arity(k, op, 2);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *dy = &k->in[1], *o = &k->out;
    if (x->numel != o->numel || dy->numel != o->numel)
        return shape_error(op, "x and dy differ", &x->shape, &dy->shape);
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op_name(op));
    if (!is_unary(k->attr->fwd_op))
        return ct_error(CT_ERR_INTERNAL, "cpu unary_grad: forward op %d (%s) is not unary",
                        k->attr->fwd_op, op_name(k->attr->fwd_op));
    const ct_attrs *at = k->attr;
    const int fop = at->fwd_op;
    const int64_t n = o->numel;
    if (x->dtype == CT_F32 && dy->dtype == CT_F32 && o->dtype == CT_F32) {
        const float *xs = x->data, *dys = dy->data;
        float *os = o->data;
        if (fop == CT_OP_RELU) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t i = 0; i < n; i++) {
                double d = xs[i] > 0 ? 1.0 : 0.0;
                os[i] = (float)((double)dys[i] * d);
            }
            return CT_OK;
        }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) os[i] = (float)((double)dys[i] * unary_deriv(fop, at, xs[i]));
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double d = unary_deriv(fop, at, ct_ld(x->data, x->dtype, i));
        ct_st(o->data, o->dtype, i, ct_ld(dy->data, dy->dtype, i) * d);
    }
    return CT_OK;
}

/* ---- conversion and movement --------------------------------------------- */

static ct_status k_cast(const ct_kargs *k) {
    ct_status s = check_arity(k, CT_OP_CAST, 1);
    if (s == CT_OK) s = same_numel(CT_OP_CAST, &k->in[0], &k->out);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
    for (int64_t i = 0; i < o->numel; i++)
        ct_st(o->data, o->dtype, i, ct_ld(x->data, x->dtype, i));
    return CT_OK;
}

static ct_status k_copy(const ct_kargs *k) {
    ct_status s = check_arity(k, CT_OP_COPY, 1);
    if (s == CT_OK) s = same_numel(CT_OP_COPY, &k->in[0], &k->out);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    if (x->dtype != o->dtype)
        return ct_error(CT_ERR_DTYPE, "cpu copy: %s input, %s output (use cast)",
                        ct_dtype_name(x->dtype), ct_dtype_name(o->dtype));
    /* bytes, not values: a copy must keep every bit (NaN payloads, -0) */
    if (o->numel > 0 && x->data != o->data)
        memmove(o->data, x->data, (size_t)o->numel * ct_dtype_size(o->dtype));
    return CT_OK;
}

static ct_status k_broadcast_to(const ct_kargs *k) {
    const ct_op op = CT_OP_BROADCAST_TO;
    ct_status s = check_arity(k, op, 1);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    if (!broadcasts_to(&x->shape, &o->shape))
        return shape_error(op, "input does not broadcast to output", &x->shape, &o->shape);
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
    for (int64_t i = 0; i < o->numel; i++)
        ct_st(o->data, o->dtype, i,
              ct_ld(x->data, x->dtype, ct_bcast_offset(&o->shape, &x->shape, i)));
    return CT_OK;
}

/* Sizes of s right-aligned into nd axes (missing leading axes are 1). */
static void align_dims(const ct_shape *s, int nd, int64_t *dim) {
    int shift = nd - s->ndim;
    for (int d = 0; d < nd; d++) dim[d] = d < shift ? 1 : s->dim[d - shift];
}

/* Each output element is the sum of the x elements that BROADCAST_TO would
 * have filled from it, visited in row-major order and summed in double; no
 * scratch, and the order does not depend on anything but the shapes. */
static ct_status k_sum_to(const ct_kargs *k) {
    const ct_op op = CT_OP_SUM_TO;
    ct_status s = check_arity(k, op, 1);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    int nd = x->shape.ndim > o->shape.ndim ? x->shape.ndim : o->shape.ndim;
    int64_t xdim[CT_MAX_DIMS], odim[CT_MAX_DIMS], xstride[CT_MAX_DIMS];
    align_dims(&x->shape, nd, xdim);
    align_dims(&o->shape, nd, odim);
    for (int d = 0; d < nd; d++)
        if (odim[d] != xdim[d] && odim[d] != 1)
            return shape_error(op, "output is not a broadcast source of input", &o->shape,
                               &x->shape);
    int64_t acc = 1;
    for (int d = nd - 1; d >= 0; d--) {
        xstride[d] = acc;
        acc *= xdim[d];
    }

    int red[CT_MAX_DIMS], nred = 0;
    int64_t count = 1; /* x elements per output element */
    for (int d = 0; d < nd; d++) {
        if (odim[d] == 1 && xdim[d] != 1) {
            red[nred++] = d;
            count *= xdim[d];
        }
    }

    /* Output elements are independent sums, each in its own fixed order. */
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t oi = 0; oi < o->numel; oi++) {
        int64_t base = 0, rem = oi;
        for (int d = nd - 1; d >= 0; d--) {
            base += (rem % odim[d]) * xstride[d];
            rem /= odim[d];
        }
        int64_t ridx[CT_MAX_DIMS] = {0};
        double sum = 0.0;
        for (int64_t r = 0; r < count; r++) {
            int64_t off = base;
            for (int q = 0; q < nred; q++) off += ridx[q] * xstride[red[q]];
            sum += ct_ld(x->data, x->dtype, off);
            for (int q = nred - 1; q >= 0; q--) { /* odometer, last axis fastest */
                if (++ridx[q] < xdim[red[q]]) break;
                ridx[q] = 0;
            }
        }
        ct_st(o->data, o->dtype, oi, sum);
    }
    return CT_OK;
}

void ct_cpu_register_elementwise(ct_kernel_fn *t) {
    t[CT_OP_ADD] = k_add;
    t[CT_OP_SUB] = k_sub;
    t[CT_OP_MUL] = k_mul;
    t[CT_OP_DIV] = k_div;
    t[CT_OP_NEG] = k_neg;
    t[CT_OP_SCALE] = k_scale;
    t[CT_OP_EXP] = k_exp;
    t[CT_OP_LOG] = k_log;
    t[CT_OP_SQRT] = k_sqrt;
    t[CT_OP_POW] = k_pow;
    t[CT_OP_ABS] = k_abs;
    t[CT_OP_RELU] = k_relu;
    t[CT_OP_LEAKY_RELU] = k_leaky_relu;
    t[CT_OP_GELU] = k_gelu;
    t[CT_OP_TANH] = k_tanh;
    t[CT_OP_SIGMOID] = k_sigmoid;
    t[CT_OP_SILU] = k_silu;
    t[CT_OP_UNARY_GRAD] = k_unary_grad;
    t[CT_OP_CAST] = k_cast;
    t[CT_OP_COPY] = k_copy;
    t[CT_OP_BROADCAST_TO] = k_broadcast_to;
    t[CT_OP_SUM_TO] = k_sum_to;
}
