/* CPU reference kernels: fused scaled dot-product attention, forward and
 * backward (the op: core/attention.h).
 *
 * q, k, v, dy and the output are seen as [BH, T, D] (batch and heads
 * folded), row-major. Everything is computed in double, as in every CPU
 * kernel. For query row i, over the keys it sees (j <= i when causal):
 *   s_j = scale * (q_i . k_j),  p_j = exp(s_j - max) / sum,  y_i = sum_j p_j v_j
 * with the maximum subtracted first and a NaN winning it, as softmax does.
 * The backward recomputes p from q and k:
 *   delta_i = sum_j p_ij (dy_i . v_j)          (= dy_i . y_i)
 *   dq_i = scale * sum_j p_ij (dy_i . v_j - delta_i) k_j
 *   dk_j = scale * sum_i p_ij (dy_i . v_j - delta_i) q_i,  dv_j = sum_i p_ij dy_i.
 * dk and dv run key by key: a first pass keeps every row's max, sum and
 * delta, then each key's column of p is recomputed with the same arithmetic
 * as its row's, so every formula sees the same double p_ij.
 *
 * Scratch: 4 T doubles per (b, h): a row or column of p, a row of
 * dy_i . v_j, and the rows' max, sum and delta (dk, dv). Each (b, h) reads
 * its own slices and writes its own output and scratch, so the (b, h)
 * pairs split across OpenMP threads without changing a bit; nothing else
 * is split (no sum is). Plain loops: this is the reference the CUDA
 * kernels are checked against, not a fast path.
 */
#include <math.h>

#include "core/attention.h"
#include "cpu/cpu_util.h"

#define PAR_MIN 4096 /* multiply-adds below which threads cost more than they save */
#define SCRATCH_ROWS 4 /* doubles per (b, h): SCRATCH_ROWS * T */

typedef struct att {
    const ct_tview *q, *k, *v, *dy;
    int64_t bh, t, d;
    double scale;
    bool causal;
} att;

size_t ct_cpu_attention_scratch(const ct_kargs *k) {
    if (k->n_in < 1 || k->in[0].shape.ndim != 4) return 0;
    const ct_shape *s = &k->in[0].shape;
    return (size_t)(s->dim[0] * s->dim[1] * s->dim[2]) * SCRATCH_ROWS * sizeof(double);
}

/* Checks the views: n_in inputs and the output, float, one element count,
 * the first input of four axes; fills a. */
static ct_status att_args(const ct_kargs *k, const char *op, int n_in, att *a) {
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    ct_status st = ct_op_check_inputs("cpu", k->op, k->n_in); /* the arity of op_list.h */
    if (st != CT_OK) return st;
    const ct_shape *s = &k->in[0].shape;
    if (s->ndim != 4) return ct_error(CT_ERR_SHAPE, "cpu %s: q has %d axes, need [B, H, T, D]", op, s->ndim);
    static const char *const names[5] = {"q", "k", "v", "dy", "output"};
    for (int i = 0; i <= n_in; i++) {
        const ct_tview *v = i < n_in ? &k->in[i] : &k->out;
        const char *what = names[i < n_in ? i : 4];
        if (!ct_dtype_is_float(v->dtype))
            return ct_error(CT_ERR_DTYPE, "cpu %s: %s is %s, need a float dtype", op, what, ct_dtype_name(v->dtype));
        if (v->numel != k->in[0].numel)
            return ct_error(CT_ERR_SHAPE, "cpu %s: %s has %lld elements, q has %lld", op, what, (long long)v->numel,
                            (long long)k->in[0].numel);
    }
    if (!k->scratch && s->dim[0] * s->dim[1] * s->dim[2] > 0)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: no scratch (it needs %zu bytes)", op, ct_cpu_attention_scratch(k));
    *a = (att){.q = &k->in[0], .k = &k->in[1], .v = &k->in[2], .dy = n_in > 3 ? &k->in[3] : NULL,
               .bh = s->dim[0] * s->dim[1], .t = s->dim[2], .d = s->dim[3], .scale = k->attr->alpha,
               .causal = k->attr->causal};
    return CT_OK;
}

/* Rows ra of x and rb of y (flat row indices), dotted in double. */
static double dot(const ct_tview *x, int64_t ra, const ct_tview *y, int64_t rb, int64_t d) {
    double s = 0.0;
    for (int64_t c = 0; c < d; c++) s += ct_ld(x->data, x->dtype, ra * d + c) * ct_ld(y->data, y->dtype, rb * d + c);
    return s;
}

static int64_t n_keys(const att *a, int64_t i) { return a->causal ? i + 1 : a->t; }

static double score(const att *a, int64_t bh, int64_t i, int64_t j) {
    return a->scale * dot(a->q, bh * a->t + i, a->k, bh * a->t + j, a->d);
}

static double prob(double s, double m, double sum) { return exp(s - m) / sum; }

/* Row i's scores into s[0..n), their maximum (a NaN wins) and the sum of
 * exp(s - max); returns n, the number of keys the row sees. */
static int64_t row_scores(const att *a, int64_t bh, int64_t i, double *s, double *m, double *sum) {
    int64_t n = n_keys(a, i);
    double mx = -INFINITY, acc = 0.0;
    for (int64_t j = 0; j < n; j++) {
        s[j] = score(a, bh, i, j);
        if (!isnan(mx) && (s[j] > mx || isnan(s[j]))) mx = s[j];
    }
    for (int64_t j = 0; j < n; j++) acc += exp(s[j] - mx);
    *m = mx;
    *sum = acc;
    return n;
}

/* out row r = mul * sum_{j < n} w[j] * x row (base + j), column by column. */
static void combine(const ct_tview *out, int64_t r, const double *w, int64_t n, const ct_tview *x, int64_t base,
                    int64_t d, double mul) {
    for (int64_t c = 0; c < d; c++) {
        double acc = 0.0;
        for (int64_t j = 0; j < n; j++) acc += w[j] * ct_ld(x->data, x->dtype, (base + j) * d + c);
        ct_st(out->data, out->dtype, r * d + c, mul * acc);
    }
}

static ct_status k_attention(const ct_kargs *k) {
    att a;
    ct_status st = att_args(k, "attention", 3, &a);
    if (st != CT_OK) return st;
    double *scratch = k->scratch;
    const ct_tview *out = &k->out;
#pragma omp parallel for schedule(static) if (a.bh > 1 && out->numel * a.t >= PAR_MIN)
    for (int64_t bh = 0; bh < a.bh; bh++) {
        double *p = scratch + bh * SCRATCH_ROWS * a.t;
        for (int64_t i = 0; i < a.t; i++) {
            double m, sum;
            int64_t n = row_scores(&a, bh, i, p, &m, &sum);
            for (int64_t j = 0; j < n; j++) p[j] = prob(p[j], m, sum);
            combine(out, bh * a.t + i, p, n, a.v, bh * a.t, a.d, 1.0);
        }
    }
    return CT_OK;
}

/* dq, one query row at a time. */
static void grad_q(const att *a, const ct_tview *out, double *scratch) {
#pragma omp parallel for schedule(static) if (a->bh > 1 && out->numel * a->t >= PAR_MIN)
    for (int64_t bh = 0; bh < a->bh; bh++) {
        double *p = scratch + bh * SCRATCH_ROWS * a->t, *dp = p + a->t;
        int64_t base = bh * a->t;
        for (int64_t i = 0; i < a->t; i++) {
            double m, sum, delta = 0.0;
            int64_t n = row_scores(a, bh, i, p, &m, &sum);
            for (int64_t j = 0; j < n; j++) {
                p[j] = prob(p[j], m, sum);
                dp[j] = dot(a->dy, base + i, a->v, base + j, a->d);
                delta += p[j] * dp[j];
            }
            for (int64_t j = 0; j < n; j++) p[j] *= dp[j] - delta; /* dS */
            combine(out, base + i, p, n, a->k, base, a->d, a->scale);
        }
    }
}

/* dk or dv, one key at a time: every row's max, sum (and, for dk, delta)
 * first, then the key's column of p (or of dS), then its output row. */
static void grad_kv(const att *a, bool want_k, const ct_tview *out, double *scratch) {
#pragma omp parallel for schedule(static) if (a->bh > 1 && out->numel * a->t >= PAR_MIN)
    for (int64_t bh = 0; bh < a->bh; bh++) {
        double *col = scratch + bh * SCRATCH_ROWS * a->t;
        double *rmax = col + a->t, *rsum = rmax + a->t, *delta = rsum + a->t;
        int64_t base = bh * a->t;
        for (int64_t i = 0; i < a->t; i++) {
            int64_t n = row_scores(a, bh, i, col, &rmax[i], &rsum[i]);
            double dl = 0.0;
            for (int64_t j = 0; want_k && j < n; j++)
                dl += prob(col[j], rmax[i], rsum[i]) * dot(a->dy, base + i, a->v, base + j, a->d);
            delta[i] = dl;
        }
        for (int64_t j = 0; j < a->t; j++) {
            int64_t i0 = a->causal ? j : 0; /* the first query that sees key j */
            for (int64_t i = i0; i < a->t; i++) {
                double p = prob(score(a, bh, i, j), rmax[i], rsum[i]);
                col[i - i0] = want_k ? p * (dot(a->dy, base + i, a->v, base + j, a->d) - delta[i]) : p;
            }
            combine(out, base + j, col, a->t - i0, want_k ? a->q : a->dy, base + i0, a->d,
                    want_k ? a->scale : 1.0);
        }
    }
}

static ct_status k_attention_grad(const ct_kargs *k) {
    att a;
    ct_status st = att_args(k, "attention_grad", 4, &a);
    if (st != CT_OK) return st;
    int which = k->attr->which;
    if (which == CT_ATTN_GRAD_Q)
        grad_q(&a, &k->out, k->scratch);
    else if (which == CT_ATTN_GRAD_K || which == CT_ATTN_GRAD_V)
        grad_kv(&a, which == CT_ATTN_GRAD_K, &k->out, k->scratch);
    else
        return ct_error(CT_ERR_INTERNAL, "cpu attention_grad: unknown gradient %d", which);
    return CT_OK;
}

void ct_cpu_register_attention(ct_kernel_fn *t) {
    t[CT_OP_ATTENTION] = k_attention;
    t[CT_OP_ATTENTION_GRAD] = k_attention_grad;
}
