/* CPU reference kernels: SUM, MEAN and MAX over one axis or all elements,
 * MAX's gradient, and softmax / log-softmax with their gradients.
 *
 * Every op here works on a tensor seen as [outer, len, inner] around its
 * axis (len = all elements for CT_AXIS_ALL), so any axis, not only the last,
 * is one loop nest. Sums are in double and in index order, which makes the
 * results deterministic and accurate enough to check GPU kernels against.
 * Rows (o, j) are independent, so large tensors share them out across
 * OpenMP threads; a row is never split, so no sum changes its order.
 * F32 softmax over the last axis computes in float with vector exp where
 * SLEEF is built in, as the CUDA kernel does (cpu_fast_softmax.c).
 */
#include <math.h>
#include <stdbool.h>

#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

/* Elements below which a parallel region costs more than the loop: cheap
 * sums and copies, and the rows of softmax, which call exp per element. */
#define PAR_MIN ((int64_t)1 << 15)
#define PAR_MIN_EXP ((int64_t)1 << 12)

/* Splits `in`'s shape around the axis in k->attr into outer * len * inner;
 * all_ok says whether CT_AXIS_ALL is allowed (the whole tensor as one row). */
static ct_status split(const ct_kargs *k, ct_op op, bool all_ok, int64_t *outer,
                       int64_t *len, int64_t *inner) {
    ct_status s = ct_op_check_inputs("cpu", op, k->n_in);
    if (s != CT_OK) return s;
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", ct_op_name(op));
    const ct_tview *x = &k->in[0];
    int axis = k->attr->axis;
    if (all_ok && axis == CT_AXIS_ALL) {
        *outer = 1;
        *len = x->numel;
        *inner = 1;
        return CT_OK;
    }
    if (axis < 0 || axis >= x->shape.ndim)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: axis %d out of range for %d dims", ct_op_name(op),
                        axis, x->shape.ndim);
    ct_axis_split(&x->shape, axis, outer, len, inner);
    return CT_OK;
}

static ct_status numel_error(ct_op op, const char *what, int64_t got, int64_t want) {
    return ct_error(CT_ERR_SHAPE, "cpu %s: %s has %lld elements, expected %lld", ct_op_name(op), what,
                    (long long)got, (long long)want);
}

/* Position of the maximum of row (o, j) along the axis: the first NaN if
 * there is one (NaN is the max, as in PyTorch), else the first of equal
 * maxima. len must be > 0. */
static int64_t row_argmax(const ct_tview *x, int64_t o, int64_t len, int64_t inner, int64_t j) {
    int64_t base = o * len * inner + j;
    int64_t best = 0;
    double m = ct_ld(x->data, x->dtype, base);
    if (isnan(m)) return 0;
    for (int64_t l = 1; l < len; l++) {
        double v = ct_ld(x->data, x->dtype, base + l * inner);
        if (isnan(v)) return l;
        if (v > m) {
            m = v;
            best = l;
        }
    }
    return best;
}

static double row_max(const ct_tview *x, int64_t o, int64_t len, int64_t inner, int64_t j) {
    return ct_ld(x->data, x->dtype, (o * len + row_argmax(x, o, len, inner, j)) * inner + j);
}

static ct_status reduce(const ct_kargs *k, ct_op op) {
    int64_t outer, len, inner;
    ct_status s = split(k, op, true, &outer, &len, &inner);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *out = &k->out;
    if (out->numel != outer * inner) return numel_error(op, "output", out->numel, outer * inner);
    if (op == CT_OP_MAX && len == 0)
        return ct_error(CT_ERR_SHAPE, "cpu max: reducing an empty axis has no maximum");
    /* A sum over leading axes (a bias gradient: rows of [len, inner]) is
     * SUM_TO's fast loop: the same double sums in row order, vectorised
     * across columns instead of walking each column down the rows. */
    if (op == CT_OP_SUM && outer == 1 && inner > 1 && ct_cpu_fast_sum_rows(x, out, len, inner)) return CT_OK;

#pragma omp parallel for collapse(2) schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < inner; j++) {
            double r;
            if (op == CT_OP_MAX) {
                r = row_max(x, o, len, inner, j);
            } else {
                double sum = 0.0;
                for (int64_t l = 0; l < len; l++)
                    sum += ct_ld(x->data, x->dtype, (o * len + l) * inner + j);
                /* mean of nothing is 0/0 = NaN, as in PyTorch */
                r = op == CT_OP_MEAN ? sum / (double)len : sum;
            }
            ct_st(out->data, out->dtype, o * inner + j, r);
        }
    }
    return CT_OK;
}

static ct_status k_sum(const ct_kargs *k) { return reduce(k, CT_OP_SUM); }
static ct_status k_mean(const ct_kargs *k) { return reduce(k, CT_OP_MEAN); }
static ct_status k_max(const ct_kargs *k) { return reduce(k, CT_OP_MAX); }

static ct_status k_max_grad(const ct_kargs *k) {
    const ct_op op = CT_OP_MAX_GRAD;
    int64_t outer, len, inner;
    ct_status s = split(k, op, true, &outer, &len, &inner);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *dy = &k->in[1], *out = &k->out;
    if (dy->numel != outer * inner) return numel_error(op, "dy", dy->numel, outer * inner);
    if (out->numel != x->numel) return numel_error(op, "output", out->numel, x->numel);

    if (len == 0) return CT_OK; /* x and out are empty */
#pragma omp parallel for collapse(2) schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < inner; j++) {
            int64_t at = row_argmax(x, o, len, inner, j);
            double g = ct_ld(dy->data, dy->dtype, o * inner + j);
            for (int64_t l = 0; l < len; l++)
                ct_st(out->data, out->dtype, (o * len + l) * inner + j, l == at ? g : 0.0);
        }
    }
    return CT_OK;
}

/* ---- softmax ------------------------------------------------------------- */

static ct_status softmax(const ct_kargs *k, ct_op op) {
    int64_t outer, len, inner;
    ct_status s = split(k, op, false, &outer, &len, &inner);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *out = &k->out;
    if (out->numel != x->numel) return numel_error(op, "output", out->numel, x->numel);
    if (len == 0) return CT_OK;
    /* F32 over the last axis: float math (cpu_fast_softmax.c) */
    if (inner == 1 && ct_cpu_fast_softmax(x, out, outer, len, op == CT_OP_LOG_SOFTMAX)) return CT_OK;

#pragma omp parallel for collapse(2) schedule(static) if (x->numel >= PAR_MIN_EXP)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < inner; j++) {
            int64_t base = o * len * inner + j;
            /* subtracting the max keeps every exp <= 1; a NaN max makes the
             * whole row NaN, as it should */
            double m = row_max(x, o, len, inner, j);
            double sum = 0.0;
            for (int64_t l = 0; l < len; l++)
                sum += exp(ct_ld(x->data, x->dtype, base + l * inner) - m);
            double log_sum = log(sum);
            /* each x is read before its own y is written, so out may alias x */
            for (int64_t l = 0; l < len; l++) {
                double z = ct_ld(x->data, x->dtype, base + l * inner) - m;
                double y = op == CT_OP_LOG_SOFTMAX ? z - log_sum : exp(z) / sum;
                ct_st(out->data, out->dtype, base + l * inner, y);
            }
        }
    }
    return CT_OK;
}

static ct_status k_softmax(const ct_kargs *k) { return softmax(k, CT_OP_SOFTMAX); }
static ct_status k_log_softmax(const ct_kargs *k) { return softmax(k, CT_OP_LOG_SOFTMAX); }

/* Both gradients are dy minus a per-row correction:
 *   softmax:     dx = y * (dy - sum(dy * y))
 *   log_softmax: dx = dy - exp(y) * sum(dy) */
static ct_status softmax_grad(const ct_kargs *k, ct_op op) {
    int64_t outer, len, inner;
    ct_status s = split(k, op, false, &outer, &len, &inner);
    if (s != CT_OK) return s;
    const ct_tview *y = &k->in[0], *dy = &k->in[1], *out = &k->out;
    if (dy->numel != y->numel) return numel_error(op, "dy", dy->numel, y->numel);
    if (out->numel != y->numel) return numel_error(op, "output", out->numel, y->numel);
    bool log_form = op == CT_OP_LOG_SOFTMAX_GRAD;
    if (len > 0 && inner == 1 && ct_cpu_fast_softmax_grad(y, dy, out, outer, len, log_form)) return CT_OK;

#pragma omp parallel for collapse(2) schedule(static) if (y->numel >= PAR_MIN_EXP)
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < inner; j++) {
            int64_t base = o * len * inner + j;
            double dot = 0.0;
            for (int64_t l = 0; l < len; l++) {
                double g = ct_ld(dy->data, dy->dtype, base + l * inner);
                dot += log_form ? g : g * ct_ld(y->data, y->dtype, base + l * inner);
            }
            for (int64_t l = 0; l < len; l++) {
                int64_t i = base + l * inner;
                double g = ct_ld(dy->data, dy->dtype, i), yi = ct_ld(y->data, y->dtype, i);
                ct_st(out->data, out->dtype, i, log_form ? g - exp(yi) * dot : yi * (g - dot));
            }
        }
    }
    return CT_OK;
}

static ct_status k_softmax_grad(const ct_kargs *k) { return softmax_grad(k, CT_OP_SOFTMAX_GRAD); }
static ct_status k_log_softmax_grad(const ct_kargs *k) {
    return softmax_grad(k, CT_OP_LOG_SOFTMAX_GRAD);
}

void ct_cpu_register_reduce(ct_kernel_fn *t) {
    t[CT_OP_SUM] = k_sum;
    t[CT_OP_MEAN] = k_mean;
    t[CT_OP_MAX] = k_max;
    t[CT_OP_MAX_GRAD] = k_max_grad;
    t[CT_OP_SOFTMAX] = k_softmax;
    t[CT_OP_LOG_SOFTMAX] = k_log_softmax;
    t[CT_OP_SOFTMAX_GRAD] = k_softmax_grad;
    t[CT_OP_LOG_SOFTMAX_GRAD] = k_log_softmax_grad;
}
