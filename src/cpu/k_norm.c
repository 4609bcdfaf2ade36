/* CPU reference kernels: batch norm and layer norm, forward and backward.
 *
 * Batch norm sees x as [N, C, S] (S: the product of the axes after the
 * channel axis) and works channel by channel; layer norm sees x as [R, D]
 * and works row by row. Statistics are computed in double with two passes
 * (the mean, then the squared deviations from it), which keeps the variance
 * accurate when the mean is large next to the spread. The backward kernels
 * recompute the statistics from x instead of keeping them from the forward
 * pass: one pass over x is cheaper than a buffer the planner must keep
 * alive across the whole step, and each gradient stays one node.
 *
 * Nothing is allocated: batch norm needs a few doubles per channel, and
 * layer norm's parameter gradients (sums over rows, per feature) take
 * their accumulators from a fixed block on the stack, NORM_BLOCK features
 * at a time.
 */
#include <math.h>

#include "cpu/cpu_util.h"

#define NORM_BLOCK 2048 /* doubles: 16 KiB of stack; a row longer than this recomputes its statistics per block */
#define PAR_MIN 4096    /* elements below which threads cost more than they save */

/* ---- shared checks ------------------------------------------------------ */

static ct_status check_numel(const char *op, const char *what, const ct_tview *v, int64_t want) {
    if (v->numel != want)
        return ct_error(CT_ERR_SHAPE, "cpu %s: %s has %lld elements, expected %lld", op, what,
                        (long long)v->numel, (long long)want);
    if (!ct_dtype_is_float(v->dtype))
        return ct_error(CT_ERR_DTYPE, "cpu %s: %s is %s, need a float dtype", op, what, ct_dtype_name(v->dtype));
    return CT_OK;
}

static ct_status check_inputs(const ct_kargs *k, const char *op, int want) {
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    if (k->n_in != want)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: expected %d inputs, got %d", op, want, k->n_in);
    return CT_OK;
}

/* The argument checks both norms' backward kernels share: which gradient
 * (attr.which) and whether the weight comes as the input after the
 * `base` ones (dx only, when the forward had one). */
static ct_status check_grad_inputs(const ct_kargs *k, const char *op, int base, bool *has_w) {
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    int which = k->attr->which;
    if (which < CT_NORM_GRAD_X || which > CT_NORM_GRAD_BIAS)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: unknown gradient %d", op, which);
    *has_w = which == CT_NORM_GRAD_X && k->attr->has_weight;
    return check_inputs(k, op, base + *has_w);
}

/* ---- batch norm --------------------------------------------------------- */

typedef struct bn_dims {
    int64_t n, c, s, cnt; /* cnt = n * s: values per channel */
} bn_dims;

static ct_status bn_dims_of(const char *op, const ct_tview *x, bn_dims *d) {
    if (x->shape.ndim < 2)
        return ct_error(CT_ERR_SHAPE, "cpu %s: x has %d axes, need at least 2", op, x->shape.ndim);
    int64_t outer, len, inner;
    ct_axis_split(&x->shape, 1, &outer, &len, &inner);
    *d = (bn_dims){outer, len, inner, outer * inner};
    return CT_OK;
}

/* Mean and biased variance of channel c, two passes in double. */
static void bn_batch_stats(const ct_tview *x, const bn_dims *d, int64_t c, double *mean, double *var) {
    double sum = 0.0;
    for (int64_t n = 0; n < d->n; n++) {
        int64_t base = (n * d->c + c) * d->s;
        for (int64_t j = 0; j < d->s; j++) sum += ct_ld(x->data, x->dtype, base + j);
    }
    double m = sum / (double)d->cnt, sq = 0.0;
    for (int64_t n = 0; n < d->n; n++) {
        int64_t base = (n * d->c + c) * d->s;
        for (int64_t j = 0; j < d->s; j++) {
            double t = ct_ld(x->data, x->dtype, base + j) - m;
            sq += t * t;
        }
    }
    *mean = m;
    *var = sq / (double)d->cnt;
}

/* Training with one value per channel has no variance to normalise by (and
 * an unbiased running variance of 0/0): PyTorch refuses it, so do we, and
 * before anything is written. */
static ct_status bn_training_ok(const char *op, const ct_tview *x, const bn_dims *d) {
    if (d->cnt > 1) return CT_OK;
    char s[96];
    return ct_error(CT_ERR_INVALID_ARG,
                    "%s: training needs more than 1 value per channel, got x %s (use a larger batch, or "
                    "evaluation mode)",
                    op, ct_shape_str(x->shape, s, sizeof s));
}

/* Inputs: x, running_mean, running_var, [weight], [bias]. */
static ct_status k_batch_norm(const ct_kargs *k) {
    const char *op = "batch_norm";
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    bool has_w = k->attr->has_weight, has_b = k->attr->has_bias;
    ct_status st = check_inputs(k, op, 3 + has_w + has_b);
    if (st != CT_OK) return st;
    const ct_tview *x = &k->in[0], *rm = &k->in[1], *rv = &k->in[2];
    const ct_tview *w = has_w ? &k->in[3] : NULL, *b = has_b ? &k->in[3 + has_w] : NULL;
    bn_dims d;
    if ((st = bn_dims_of(op, x, &d)) != CT_OK || (st = check_numel(op, "x", x, x->numel)) != CT_OK ||
        (st = check_numel(op, "output", &k->out, x->numel)) != CT_OK ||
        (st = check_numel(op, "running_mean", rm, d.c)) != CT_OK ||
        (st = check_numel(op, "running_var", rv, d.c)) != CT_OK ||
        (w && (st = check_numel(op, "weight", w, d.c)) != CT_OK) ||
        (b && (st = check_numel(op, "bias", b, d.c)) != CT_OK))
        return st;
    bool training = k->training;
    if (training && (st = bn_training_ok(op, x, &d)) != CT_OK) return st;
    double momentum = k->attr->alpha, eps = k->attr->eps;
    /* PyTorch's running variance is the unbiased batch variance. */
    double unbias = training ? (double)d.cnt / (double)(d.cnt - 1) : 1.0;
    const ct_tview *out = &k->out;

    /* Channels are independent (each reads its own x and statistics and
     * writes its own y and running values), so they split across threads
     * without changing any result. */
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t c = 0; c < d.c; c++) {
        double mean, var;
        if (training) {
            bn_batch_stats(x, &d, c, &mean, &var);
        } else {
            mean = ct_ld(rm->data, rm->dtype, c);
            var = ct_ld(rv->data, rv->dtype, c);
        }
        double rstd = 1.0 / sqrt(var + eps);
        double scale = w ? ct_ld(w->data, w->dtype, c) : 1.0;
        double shift = b ? ct_ld(b->data, b->dtype, c) : 0.0;
        for (int64_t n = 0; n < d.n; n++) {
            int64_t base = (n * d.c + c) * d.s;
            for (int64_t j = 0; j < d.s; j++) {
                double v = ct_ld(x->data, x->dtype, base + j);
                ct_st(out->data, out->dtype, base + j, (v - mean) * rstd * scale + shift);
            }
        }
        if (training) {
            /* In place: the running statistics are buffers, whose memory
             * outlives the run (see ct_batch_norm_op). */
            double m0 = ct_ld(rm->data, rm->dtype, c), v0 = ct_ld(rv->data, rv->dtype, c);
            ct_st(rm->data, rm->dtype, c, (1.0 - momentum) * m0 + momentum * mean);
            ct_st(rv->data, rv->dtype, c, (1.0 - momentum) * v0 + momentum * var * unbias);
        }
    }
    return CT_OK;
}

/* Inputs: x, running_mean, running_var, dy, and the weight for dx when the
 * forward had one. With xhat = (x - mean) * rstd and m = N * S values per
 * channel:
 *   dbias   = sum dy
 *   dweight = sum dy * xhat
 *   dx (training) = w * rstd * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m)
 *   dx (evaluation, constant statistics) = w * rstd * dy */
static ct_status k_batch_norm_grad(const ct_kargs *k) {
    const char *op = "batch_norm_grad";
    bool has_w = false;
    ct_status st = check_grad_inputs(k, op, 4, &has_w);
    if (st != CT_OK) return st;
    int which = k->attr->which;
    const ct_tview *x = &k->in[0], *rm = &k->in[1], *rv = &k->in[2], *dy = &k->in[3];
    const ct_tview *w = has_w ? &k->in[4] : NULL, *out = &k->out;
    bn_dims d;
    if ((st = bn_dims_of(op, x, &d)) != CT_OK || (st = check_numel(op, "x", x, x->numel)) != CT_OK ||
        (st = check_numel(op, "dy", dy, x->numel)) != CT_OK ||
        (st = check_numel(op, "output", out, which == CT_NORM_GRAD_X ? x->numel : d.c)) != CT_OK ||
        (st = check_numel(op, "running_mean", rm, d.c)) != CT_OK ||
        (st = check_numel(op, "running_var", rv, d.c)) != CT_OK ||
        (w && (st = check_numel(op, "weight", w, d.c)) != CT_OK))
        return st;
    bool training = k->training;
    if (training && (st = bn_training_ok(op, x, &d)) != CT_OK) return st;
    double eps = k->attr->eps, inv_cnt = 1.0 / (double)d.cnt;

#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t c = 0; c < d.c; c++) {
        double mean = 0.0, var = 0.0;
        if (which != CT_NORM_GRAD_BIAS) {
            if (training) {
                bn_batch_stats(x, &d, c, &mean, &var);
            } else {
                mean = ct_ld(rm->data, rm->dtype, c);
                var = ct_ld(rv->data, rv->dtype, c);
            }
        }
        double rstd = 1.0 / sqrt(var + eps);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        if (which != CT_NORM_GRAD_X || training) {
            for (int64_t n = 0; n < d.n; n++) {
                int64_t base = (n * d.c + c) * d.s;
                for (int64_t j = 0; j < d.s; j++) {
                    double g = ct_ld(dy->data, dy->dtype, base + j);
                    sum_dy += g;
                    if (which != CT_NORM_GRAD_BIAS)
                        sum_dy_xhat += g * (ct_ld(x->data, x->dtype, base + j) - mean) * rstd;
                }
            }
        }
        if (which == CT_NORM_GRAD_BIAS) {
            ct_st(out->data, out->dtype, c, sum_dy);
            continue;
        }
        if (which == CT_NORM_GRAD_WEIGHT) {
            ct_st(out->data, out->dtype, c, sum_dy_xhat);
            continue;
        }
        double scale = (w ? ct_ld(w->data, w->dtype, c) : 1.0) * rstd;
        double mean_dy = sum_dy * inv_cnt, mean_dy_xhat = sum_dy_xhat * inv_cnt;
        for (int64_t n = 0; n < d.n; n++) {
            int64_t base = (n * d.c + c) * d.s;
            for (int64_t j = 0; j < d.s; j++) {
                double g = ct_ld(dy->data, dy->dtype, base + j);
                double r;
                if (training) {
                    double xhat = (ct_ld(x->data, x->dtype, base + j) - mean) * rstd;
                    r = scale * (g - mean_dy - xhat * mean_dy_xhat);
                } else {
                    r = scale * g;
                }
                ct_st(out->data, out->dtype, base + j, r);
            }
        }
    }
    return CT_OK;
}

/* ---- layer norm --------------------------------------------------------- */

/* Mean and reciprocal standard deviation of row r of x [R, D]. */
static void ln_row_stats(const ct_tview *x, int64_t r, int64_t dim, double eps, double *mean, double *rstd) {
    int64_t base = r * dim;
    double sum = 0.0;
    for (int64_t j = 0; j < dim; j++) sum += ct_ld(x->data, x->dtype, base + j);
    double m = sum / (double)dim, sq = 0.0;
    for (int64_t j = 0; j < dim; j++) {
        double t = ct_ld(x->data, x->dtype, base + j) - m;
        sq += t * t;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(sq / (double)dim + eps);
}

static ct_status ln_dims_of(const char *op, const ct_tview *x, int64_t *rows, int64_t *dim) {
    if (x->shape.ndim < 1) return ct_error(CT_ERR_SHAPE, "cpu %s: x is a scalar", op);
    *dim = x->shape.dim[x->shape.ndim - 1];
    *rows = *dim ? x->numel / *dim : 0;
    return CT_OK;
}

/* Inputs: x, [weight], [bias]. */
static ct_status k_layer_norm(const ct_kargs *k) {
    const char *op = "layer_norm";
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    bool has_w = k->attr->has_weight, has_b = k->attr->has_bias;
    ct_status st = check_inputs(k, op, 1 + has_w + has_b);
    if (st != CT_OK) return st;
    const ct_tview *x = &k->in[0], *out = &k->out;
    const ct_tview *w = has_w ? &k->in[1] : NULL, *b = has_b ? &k->in[1 + has_w] : NULL;
    int64_t rows, dim;
    if ((st = ln_dims_of(op, x, &rows, &dim)) != CT_OK || (st = check_numel(op, "x", x, x->numel)) != CT_OK ||
        (st = check_numel(op, "output", out, x->numel)) != CT_OK ||
        (w && (st = check_numel(op, "weight", w, dim)) != CT_OK) ||
        (b && (st = check_numel(op, "bias", b, dim)) != CT_OK))
        return st;
    double eps = k->attr->eps;
    if (ct_cpu_fast_layer_norm(x, w, b, out, rows, dim, eps)) return CT_OK; /* cpu_fast_norm.c */

#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        double mean, rstd;
        ln_row_stats(x, r, dim, eps, &mean, &rstd);
        int64_t base = r * dim;
        for (int64_t j = 0; j < dim; j++) {
            double v = (ct_ld(x->data, x->dtype, base + j) - mean) * rstd;
            if (w) v *= ct_ld(w->data, w->dtype, j);
            if (b) v += ct_ld(b->data, b->dtype, j);
            ct_st(out->data, out->dtype, base + j, v);
        }
    }
    return CT_OK;
}

/* The weight gradient's fast path keeps every row's mean and rstd
 * (cpu_fast_norm.c); the other gradients need no scratch. */
size_t ct_cpu_norm_scratch(const ct_kargs *k) {
    if (!k->attr || k->attr->which != CT_NORM_GRAD_WEIGHT || k->n_in < 1 || k->in[0].shape.ndim < 1) return 0;
    int64_t dim = k->in[0].shape.dim[k->in[0].shape.ndim - 1];
    return ct_cpu_layer_norm_stats_bytes(dim ? k->in[0].numel / dim : 0);
}

/* Inputs: x, dy, and the weight for dx when the forward had one. With
 * xhat = (x - mean) * rstd per row and g = dy * w:
 *   dx      = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat))
 *   dweight = sum over rows of dy * xhat,   dbias = sum over rows of dy */
static ct_status k_layer_norm_grad(const ct_kargs *k) {
    const char *op = "layer_norm_grad";
    bool has_w = false;
    ct_status st = check_grad_inputs(k, op, 2, &has_w);
    if (st != CT_OK) return st;
    int which = k->attr->which;
    const ct_tview *x = &k->in[0], *dy = &k->in[1], *w = has_w ? &k->in[2] : NULL, *out = &k->out;
    int64_t rows, dim;
    if ((st = ln_dims_of(op, x, &rows, &dim)) != CT_OK || (st = check_numel(op, "x", x, x->numel)) != CT_OK ||
        (st = check_numel(op, "dy", dy, x->numel)) != CT_OK ||
        (st = check_numel(op, "output", out, which == CT_NORM_GRAD_X ? x->numel : dim)) != CT_OK ||
        (w && (st = check_numel(op, "weight", w, dim)) != CT_OK))
        return st;
    double eps = k->attr->eps;

    /* the same bits, typed and vectorised (cpu_fast_norm.c) */
    if (which == CT_NORM_GRAD_X ? ct_cpu_fast_layer_norm_grad_x(x, dy, w, out, rows, dim, eps)
                                : ct_cpu_fast_layer_norm_grad_param(x, dy, out, which == CT_NORM_GRAD_BIAS, rows,
                                                                    dim, eps, k->scratch))
        return CT_OK;
    if (which == CT_NORM_GRAD_X) {
        double inv_dim = 1.0 / (double)dim;
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            double mean, rstd;
            ln_row_stats(x, r, dim, eps, &mean, &rstd);
            int64_t base = r * dim;
            double sum_g = 0.0, sum_g_xhat = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                double g = ct_ld(dy->data, dy->dtype, base + j) * (w ? ct_ld(w->data, w->dtype, j) : 1.0);
                sum_g += g;
                sum_g_xhat += g * (ct_ld(x->data, x->dtype, base + j) - mean) * rstd;
            }
            double mean_g = sum_g * inv_dim, mean_g_xhat = sum_g_xhat * inv_dim;
            for (int64_t j = 0; j < dim; j++) {
                double g = ct_ld(dy->data, dy->dtype, base + j) * (w ? ct_ld(w->data, w->dtype, j) : 1.0);
                double xhat = (ct_ld(x->data, x->dtype, base + j) - mean) * rstd;
                ct_st(out->data, out->dtype, base + j, rstd * (g - mean_g - xhat * mean_g_xhat));
            }
        }
        return CT_OK;
    }

    /* Sums over rows, per feature: NORM_BLOCK features at a time, each
     * block one sweep over the rows in order (deterministic). */
    double acc[NORM_BLOCK];
    for (int64_t j0 = 0; j0 < dim; j0 += NORM_BLOCK) {
        int64_t len = dim - j0 < NORM_BLOCK ? dim - j0 : NORM_BLOCK;
        for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t base = r * dim + j0;
            if (which == CT_NORM_GRAD_BIAS) {
                for (int64_t j = 0; j < len; j++) acc[j] += ct_ld(dy->data, dy->dtype, base + j);
            } else {
                double mean, rstd;
                ln_row_stats(x, r, dim, eps, &mean, &rstd);
                for (int64_t j = 0; j < len; j++)
                    acc[j] += ct_ld(dy->data, dy->dtype, base + j) * (ct_ld(x->data, x->dtype, base + j) - mean) * rstd;
            }
        }
        for (int64_t j = 0; j < len; j++) ct_st(out->data, out->dtype, j0 + j, acc[j]);
    }
    return CT_OK;
}

void ct_cpu_register_norm(ct_kernel_fn *t) {
    t[CT_OP_BATCH_NORM] = k_batch_norm;
    t[CT_OP_BATCH_NORM_GRAD] = k_batch_norm_grad;
    t[CT_OP_LAYER_NORM] = k_layer_norm;
    t[CT_OP_LAYER_NORM_GRAD] = k_layer_norm_grad;
}
