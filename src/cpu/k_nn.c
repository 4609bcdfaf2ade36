/* CPU neural-network ops: embedding and its gradient, dropout (and channel
 * dropout, the same kernel), and the losses (cross-entropy with label
 * smoothing and its gradient, MSE, BCE with logits).
 *
 * Everything is computed in double and rounded once into the output, so
 * these kernels are the reference the CUDA ones are compared against.
 * Cross-entropy shares its rows out across OpenMP threads; its one sum
 * across rows is still taken serially, in row order.
 * F32 cross-entropy takes its rows' log-sum-exp and its gradient in float
 * with vector exp where SLEEF is built in, as the CUDA kernels do
 * (cpu_fast_softmax.c).
 * Errors in the data (an index or label out of range) are found here, at run
 * time, and reported naming the position and the value.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/rng.h"

/* Logits below which the loss kernels stay on one thread (they call exp
 * per element), and the rows whose losses wait on the stack to be summed. */
#define PAR_MIN_EXP ((int64_t)1 << 12)
#define CE_BLOCK 256

static int64_t numel_of(const ct_shape *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->dim[d];
    return n;
}

/* Adds len elements of src (any float dtype) starting at off into acc. */
static void add_into(double *acc, const void *src, ct_dtype dt, int64_t off, int64_t len) {
    switch (dt) {
    case CT_F32: {
        const float *p = (const float *)src + off;
        for (int64_t j = 0; j < len; j++) acc[j] += p[j];
        break;
    }
    case CT_F64: {
        const double *p = (const double *)src + off;
        for (int64_t j = 0; j < len; j++) acc[j] += p[j];
        break;
    }
    default:
        for (int64_t j = 0; j < len; j++) acc[j] += ct_ld(src, dt, off + j);
        break;
    }
}

static ct_status need_float(const char *op, const char *what, ct_dtype dt) {
    if (!ct_dtype_is_float(dt))
        return ct_error(CT_ERR_DTYPE, "%s: %s is %s, need a float dtype", op, what, ct_dtype_name(dt));
    return CT_OK;
}

static ct_status need_i32(const char *op, const char *what, ct_dtype dt) {
    if (dt != CT_I32)
        return ct_error(CT_ERR_DTYPE, "%s: %s is %s, need i32", op, what, ct_dtype_name(dt));
    return CT_OK;
}

/* All indices are checked before anything is written or accumulated, so a
 * bad batch fails the same way whatever the order of the work. */
static ct_status check_indices(const char *op, const int32_t *idx, int64_t n, int64_t v) {
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= v)
            return ct_error(CT_ERR_INVALID_ARG, "%s: index %d at position %lld is outside [0, %lld)", op,
                            idx[i], (long long)i, (long long)v);
    return CT_OK;
}

/* ---- embedding ---------------------------------------------------------- */

static ct_status k_embedding(const ct_kargs *k) {
    const ct_tview *w = &k->in[0], *ix = &k->in[1];
    ct_status s;
    if ((s = ct_op_check_inputs("cpu", k->op, k->n_in)) != CT_OK) return s;
    if ((s = need_float("embedding", "weight", w->dtype)) != CT_OK) return s;
    if ((s = need_i32("embedding", "indices", ix->dtype)) != CT_OK) return s;
    if (w->shape.ndim != 2)
        return ct_error(CT_ERR_SHAPE, "embedding: weight has %d axes, need 2", w->shape.ndim);
    int64_t v = w->shape.dim[0], d = w->shape.dim[1], n = numel_of(&ix->shape);
    if (numel_of(&k->out.shape) != n * d)
        return ct_error(CT_ERR_SHAPE, "embedding: output has %lld elements, want %lld x %lld",
                        (long long)numel_of(&k->out.shape), (long long)n, (long long)d);
    const int32_t *idx = ix->data;
    if ((s = check_indices("embedding", idx, n, v)) != CT_OK) return s;
    if (w->dtype == k->out.dtype) {
        size_t row = (size_t)d * ct_dtype_size(w->dtype);
        if (row > 0)
            for (int64_t i = 0; i < n; i++)
                memcpy((char *)k->out.data + (size_t)i * row, (const char *)w->data + (size_t)idx[i] * row,
                       row);
    } else {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d; j++)
                ct_st(k->out.data, k->out.dtype, i * d + j, ct_ld(w->data, w->dtype, idx[i] * d + j));
    }
    return CT_OK;
}

/* Doubles of the stack accumulator EMBEDDING_GRAD sums into. */
#define EMB_BLOCK 4096

/* EMBEDDING_GRAD sums, per weight row, the dy rows of every position that
 * picked it, in position order and in double, then rounds once: the result
 * is deterministic and as accurate for F16/BF16 as for F32. The output is
 * covered in blocks of rows that fit the stack accumulator, and each block
 * scans all indices; that costs N * V * D / EMB_BLOCK index compares on top
 * of the N * D additions, and needs no scratch (a per-row list of positions
 * would, and the backend gives every kernel the same shared area). */
static ct_status k_embedding_grad(const ct_kargs *k) {
    const ct_tview *ix = &k->in[0], *dy = &k->in[1], *o = &k->out;
    ct_status s;
    if ((s = ct_op_check_inputs("cpu", k->op, k->n_in)) != CT_OK) return s;
    if ((s = need_i32("embedding_grad", "indices", ix->dtype)) != CT_OK) return s;
    if ((s = need_float("embedding_grad", "dy", dy->dtype)) != CT_OK) return s;
    if ((s = need_float("embedding_grad", "output", o->dtype)) != CT_OK) return s;
    if (o->shape.ndim != 2)
        return ct_error(CT_ERR_SHAPE, "embedding_grad: output has %d axes, need 2", o->shape.ndim);
    int64_t v = o->shape.dim[0], d = o->shape.dim[1], n = numel_of(&ix->shape);
    if (numel_of(&dy->shape) != n * d)
        return ct_error(CT_ERR_SHAPE, "embedding_grad: dy has %lld elements, want %lld x %lld",
                        (long long)numel_of(&dy->shape), (long long)n, (long long)d);
    const int32_t *idx = ix->data;
    if ((s = check_indices("embedding_grad", idx, n, v)) != CT_OK) return s;

    double acc[EMB_BLOCK];
    int64_t cols = d < EMB_BLOCK ? d : EMB_BLOCK;
    int64_t rows = cols > 0 ? EMB_BLOCK / cols : 0;
    for (int64_t j0 = 0; j0 < d; j0 += cols) {
        int64_t len = d - j0 < cols ? d - j0 : cols;
        for (int64_t r0 = 0; r0 < v; r0 += rows) {
            int64_t nr = v - r0 < rows ? v - r0 : rows;
            for (int64_t j = 0; j < nr * len; j++) acc[j] = 0.0;
            for (int64_t i = 0; i < n; i++) {
                int64_t r = idx[i] - r0;
                if (r >= 0 && r < nr) add_into(acc + r * len, dy->data, dy->dtype, i * d + j0, len);
            }
            for (int64_t r = 0; r < nr; r++)
                for (int64_t j = 0; j < len; j++)
                    ct_st(o->data, o->dtype, (r0 + r) * d + j0 + j, acc[r * len + j]);
        }
    }
    return CT_OK;
}

/* ---- dropout ------------------------------------------------------------ */

static ct_status k_dropout(const ct_kargs *k) {
    const ct_tview *x = &k->in[0], *o = &k->out;
    ct_status s;
    if ((s = ct_op_check_inputs("cpu", k->op, k->n_in)) != CT_OK) return s;
    double p = k->attr->alpha;
    if ((s = need_float("dropout", "x", x->dtype)) != CT_OK) return s;
    if (x->dtype != o->dtype)
        return ct_error(CT_ERR_DTYPE, "dropout: input %s, output %s", ct_dtype_name(x->dtype),
                        ct_dtype_name(o->dtype));
    if (!(p >= 0.0 && p <= 1.0))
        return ct_error(CT_ERR_INVALID_ARG, "dropout: p = %g is outside [0, 1]", p);
    int64_t n = numel_of(&x->shape);
    if (numel_of(&o->shape) != n)
        return ct_error(CT_ERR_SHAPE, "dropout: input has %lld elements, output %lld", (long long)n,
                        (long long)numel_of(&o->shape));
    /* DROPOUT2D shares this kernel: its elements draw in groups of `per`
     * (one channel of [N, C, ...]), element i taking draw i / per. */
    int64_t per = 1;
    if (k->op == CT_OP_DROPOUT2D) {
        if (x->shape.ndim < 2)
            return ct_error(CT_ERR_SHAPE, "dropout2d: input has %d axes, need [N, C, ...]", x->shape.ndim);
        int64_t channels = x->shape.dim[0] * x->shape.dim[1];
        per = channels > 0 ? n / channels : 1;
    }
    if (n == 0) return CT_OK;
    size_t bytes = (size_t)n * ct_dtype_size(x->dtype);
    if (!k->training || p == 0.0) {
        if (o->data != x->data) memmove(o->data, x->data, bytes);
        return CT_OK;
    }
    if (p == 1.0) {
        memset(o->data, 0, bytes); /* zero bits are +0 in every float dtype */
        return CT_OK;
    }
    /* The mask is a pure function of (seed, stream, step, i): the backward
     * node reruns this kernel on dy and must drop the same elements. */
    double scale = 1.0 / (1.0 - p);
    uint32_t stream = k->attr->stream;
    if (x->dtype == CT_F32) {
        const float *xi = x->data;
        float *oi = o->data;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_EXP)
        for (int64_t i = 0; i < n; i++) {
            bool keep = ct_philox_uniform(k->seed, stream, k->step, (uint64_t)(i / per)) >= p;
            oi[i] = keep ? (float)(xi[i] * scale) : 0.0f;
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_EXP)
        for (int64_t i = 0; i < n; i++) {
            bool keep = ct_philox_uniform(k->seed, stream, k->step, (uint64_t)(i / per)) >= p;
            ct_st(o->data, o->dtype, i, keep ? ct_ld(x->data, x->dtype, i) * scale : 0.0);
        }
    }
    return CT_OK;
}

/* ---- cross-entropy ------------------------------------------------------ */

/* Shared checks of CROSS_ENTROPY and its gradient; sets n and c. */
static ct_status ce_check(const char *op, const ct_kargs *k, int64_t *n, int64_t *c) {
    const ct_tview *lg = &k->in[0], *lb = &k->in[1];
    ct_status s;
    if ((s = ct_op_check_inputs("cpu", k->op, k->n_in)) != CT_OK) return s;
    if ((s = need_float(op, "logits", lg->dtype)) != CT_OK) return s;
    if ((s = need_i32(op, "labels", lb->dtype)) != CT_OK) return s;
    if ((s = need_float(op, "output", k->out.dtype)) != CT_OK) return s;
    char a[96], b[96];
    if (lg->shape.ndim != 2 || numel_of(&lb->shape) != lg->shape.dim[0])
        return ct_error(CT_ERR_SHAPE, "%s: logits %s and labels %s (need [N, C] and [N])", op,
                        ct_shape_str(lg->shape, a, sizeof a), ct_shape_str(lb->shape, b, sizeof b));
    *n = lg->shape.dim[0];
    *c = lg->shape.dim[1];
    const int32_t *y = lb->data;
    for (int64_t i = 0; i < *n; i++)
        if (y[i] < 0 || y[i] >= *c)
            return ct_error(CT_ERR_INVALID_ARG, "%s: label %d in row %lld is outside [0, %lld)", op, y[i],
                            (long long)i, (long long)*c);
    return CT_OK;
}

/* log-sum-exp of one row of logits, in double, shifted by the row's max so
 * that large logits do not overflow. */
static double row_lse(const void *x, ct_dtype dt, int64_t off, int64_t c) {
    double m = -INFINITY;
    for (int64_t j = 0; j < c; j++) {
        double v = ct_ld(x, dt, off + j);
        if (v > m) m = v;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < c; j++) sum += exp(ct_ld(x, dt, off + j) - m);
    return m + log(sum);
}

/* row_lse() on a float row: the same double arithmetic, typed loads (the
 * fast path; cpu_simd.h). */
static double row_lse_f32(const float *x, int64_t c) {
    double m = -INFINITY;
    for (int64_t j = 0; j < c; j++) {
        double v = x[j];
        if (v > m) m = v;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < c; j++) sum += exp(x[j] - m);
    return m + log(sum);
}

/* The loss of the row at off (label y, smoothing eps) from its
 * log-sum-exp. */
static double ce_loss_lse(const ct_tview *lg, int32_t y, int64_t off, int64_t c, double eps, double lse) {
    double loss = -(1.0 - eps) * (ct_ld(lg->data, lg->dtype, off + y) - lse);
    if (eps != 0.0) {
        double sum_logp = 0.0;
        for (int64_t j = 0; j < c; j++) sum_logp += ct_ld(lg->data, lg->dtype, off + j) - lse;
        loss -= eps / (double)c * sum_logp;
    }
    return loss;
}

/* The loss of row i, its log-sum-exp in double. */
static double ce_row_loss(const ct_tview *lg, int32_t y, int64_t i, int64_t c, double eps) {
    int64_t off = i * c;
    double lse = lg->dtype == CT_F32 && ct_cpu_fast_paths_enabled() ? row_lse_f32((const float *)lg->data + off, c)
                                                                     : row_lse(lg->data, lg->dtype, off, c);
    return ce_loss_lse(lg, y, off, c, eps, lse);
}

static ct_status k_cross_entropy(const ct_kargs *k) {
    int64_t n, c;
    ct_status s = ce_check("cross_entropy", k, &n, &c);
    if (s != CT_OK) return s;
    const ct_tview *lg = &k->in[0];
    const int32_t *y = k->in[1].data;
    double eps = k->attr->alpha, total = 0.0;
    /* F32 with float math: a block's log-sum-exps in float first, threaded
     * by rows (cpu_fast_softmax.c); what is left of a row's loss is O(1)
     * without smoothing. */
    const bool vf = lg->dtype == CT_F32 && c > 0 && ct_cpu_float_math();
    /* Rows' losses are computed in parallel, a block at a time, then added
     * to the total in row order: the sum is the serial one, bit for bit. */
    double part[CE_BLOCK];
    float lse[CE_BLOCK];
    for (int64_t r0 = 0; r0 < n; r0 += CE_BLOCK) {
        int64_t nr = n - r0 < CE_BLOCK ? n - r0 : CE_BLOCK;
        if (vf) ct_cpu_rows_lse_vf((const float *)lg->data + r0 * c, nr, c, lse);
#pragma omp parallel for schedule(static) if (nr * c >= PAR_MIN_EXP && (!vf || eps != 0.0))
        for (int64_t r = 0; r < nr; r++)
            part[r] = vf ? ce_loss_lse(lg, y[r0 + r], (r0 + r) * c, c, eps, lse[r])
                         : ce_row_loss(lg, y[r0 + r], r0 + r, c, eps);
        for (int64_t r = 0; r < nr; r++) total += part[r];
    }
    /* An empty batch gives NaN, as PyTorch's mean reduction does. */
    ct_st(k->out.data, k->out.dtype, 0, total / (double)n);
    return CT_OK;
}

static ct_status k_cross_entropy_grad(const ct_kargs *k) {
    int64_t n, c;
    ct_status s = ce_check("cross_entropy_grad", k, &n, &c);
    if (s != CT_OK) return s;
    if (numel_of(&k->in[2].shape) != 1)
        return ct_error(CT_ERR_SHAPE, "cross_entropy_grad: dloss must be a scalar");
    if (numel_of(&k->out.shape) != n * c)
        return ct_error(CT_ERR_SHAPE, "cross_entropy_grad: output has %lld elements, want %lld x %lld",
                        (long long)numel_of(&k->out.shape), (long long)n, (long long)c);
    const ct_tview *lg = &k->in[0];
    const int32_t *y = k->in[1].data;
    double eps = k->attr->alpha;
    double g = ct_ld(k->in[2].data, k->in[2].dtype, 0) / (double)n;
    double off_target = eps / (double)c, on_target = 1.0 - eps + off_target;
    if (c > 0 && ct_cpu_fast_xent_grad(lg, y, &k->out, n, c, g, on_target, off_target))
        return CT_OK; /* float math (cpu_fast_softmax.c) */
    if (lg->dtype == CT_F32 && k->out.dtype == CT_F32 && ct_cpu_fast_paths_enabled()) {
        /* typed loads and stores, the same arithmetic (cpu_simd.h) */
        const float *x = lg->data;
        float *o = k->out.data;
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN_EXP)
        for (int64_t i = 0; i < n; i++) {
            const float *xr = x + i * c;
            float *orow = o + i * c;
            double lse = row_lse_f32(xr, c);
            for (int64_t j = 0; j < c; j++) {
                double p = exp(xr[j] - lse);
                double t = j == y[i] ? on_target : off_target;
                orow[j] = (float)(g * (p - t));
            }
        }
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN_EXP)
    for (int64_t i = 0; i < n; i++) {
        int64_t off = i * c;
        double lse = row_lse(lg->data, lg->dtype, off, c);
        for (int64_t j = 0; j < c; j++) {
            double p = exp(ct_ld(lg->data, lg->dtype, off + j) - lse);
            double t = j == y[i] ? on_target : off_target;
            ct_st(k->out.data, k->out.dtype, off + j, g * (p - t));
        }
    }
    return CT_OK;
}

/* ---- elementwise losses ------------------------------------------------- */

static ct_status pair_check(const char *op, const ct_kargs *k, int64_t *n) {
    const ct_tview *a = &k->in[0], *b = &k->in[1];
    ct_status s;
    if ((s = ct_op_check_inputs("cpu", k->op, k->n_in)) != CT_OK) return s;
    if ((s = need_float(op, "first input", a->dtype)) != CT_OK) return s;
    if ((s = need_float(op, "second input", b->dtype)) != CT_OK) return s;
    if ((s = need_float(op, "output", k->out.dtype)) != CT_OK) return s;
    if (!ct_shape_equal(a->shape, b->shape)) {
        char sa[96], sb[96];
        return ct_error(CT_ERR_SHAPE, "%s: inputs %s and %s differ", op,
                        ct_shape_str(a->shape, sa, sizeof sa), ct_shape_str(b->shape, sb, sizeof sb));
    }
    *n = numel_of(&a->shape);
    return CT_OK;
}

static ct_status k_mse(const ct_kargs *k) {
    int64_t n;
    ct_status s = pair_check("mse", k, &n);
    if (s != CT_OK) return s;
    const ct_tview *a = &k->in[0], *b = &k->in[1];
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = ct_ld(a->data, a->dtype, i) - ct_ld(b->data, b->dtype, i);
        total += d * d;
    }
    ct_st(k->out.data, k->out.dtype, 0, total / (double)n);
    return CT_OK;
}

static ct_status k_bce_with_logits(const ct_kargs *k) {
    int64_t n;
    ct_status s = pair_check("bce_with_logits", k, &n);
    if (s != CT_OK) return s;
    const ct_tview *xv = &k->in[0], *tv = &k->in[1];
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double x = ct_ld(xv->data, xv->dtype, i), t = ct_ld(tv->data, tv->dtype, i);
        /* The log1p(exp(-|x|)) form never overflows, for any sign of x. */
        total += (x > 0.0 ? x : 0.0) - x * t + log1p(exp(-fabs(x)));
    }
    ct_st(k->out.data, k->out.dtype, 0, total / (double)n);
    return CT_OK;
}

void ct_cpu_register_nn(ct_kernel_fn *t) {
    t[CT_OP_EMBEDDING] = k_embedding;
    t[CT_OP_EMBEDDING_GRAD] = k_embedding_grad;
    t[CT_OP_DROPOUT] = k_dropout;
    t[CT_OP_DROPOUT2D] = k_dropout;
    t[CT_OP_CROSS_ENTROPY] = k_cross_entropy;
    t[CT_OP_CROSS_ENTROPY_GRAD] = k_cross_entropy_grad;
    t[CT_OP_MSE] = k_mse;
    t[CT_OP_BCE_WITH_LOGITS] = k_bce_with_logits;
}
