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
 *
 * The arithmetic is fixed (tests/test_cpu_attention_kernels.c keeps the
 * plain loops that first defined it): every dot product sums over d in
 * order from 0.0, the max and sum of exp over j in order, each p_ij is
 * exp(s_ij - max_i) / sum_i, and every output element sums its terms in
 * order of j (y, dq) or of i (dk, dv) from 0.0 before the final multiply.
 * (A NaN's sign and payload are left to the compiler, as C does.) The loops are arranged for
 * speed around that: each (b, h) first widens its keys (and values) to
 * double once, transposed, so that a row's scores (and dy_i . v_j) run
 * over contiguous keys, each key's own sum still in order of d; exp(s - max)
 * is kept from the sum for p; dk and dv go row by row, adding row i's term
 * to every key's accumulator, which is the same order of i as a key's
 * column. So the results are those of the plain loops, bit for bit.
 *
 * Scratch per (b, h) (att_scratch): k and v transposed, one [T, D] matrix
 * (v or k row-major, or the dk / dv accumulators), three rows of D and two
 * of T. Each (b, h) reads its own slices and writes its own output and
 * scratch, so the (b, h) pairs split across OpenMP threads without
 * changing a bit; nothing else is split (no sum is).
 */
#include <math.h>
#include <string.h>

#include "core/attention.h"
#include "cpu/cpu_util.h"

#define PAR_MIN 4096 /* multiply-adds below which threads cost more than they save */

typedef struct att {
    const ct_tview *q, *k, *v, *dy;
    int64_t bh, t, d;
    double scale;
    bool causal;
} att;

/* One (b, h)'s scratch: kt, vt [D, T] (keys, values transposed), mat
 * [T, D], rows x, y, acc of D and s, dp of T. */
typedef struct bh_scratch {
    double *kt, *vt, *mat, *x, *y, *acc, *s, *dp;
} bh_scratch;

static int64_t att_scratch(int64_t t, int64_t d) { return 3 * t * d + 3 * d + 2 * t; }

size_t ct_cpu_attention_scratch(const ct_kargs *k) {
    if (k->n_in < 1 || k->in[0].shape.ndim != 4) return 0;
    const ct_shape *s = &k->in[0].shape;
    if (s->dim[0] * s->dim[1] * s->dim[2] == 0) return 0;
    size_t ref = (size_t)(s->dim[0] * s->dim[1] * att_scratch(s->dim[2], s->dim[3])) * sizeof(double);
    size_t fast = k->in[0].dtype == CT_F32 ? ct_cpu_attention_fast_scratch(s->dim[2]) : 0;
    return ref > fast ? ref : fast; /* the F32 fast path uses the same area */
}

static bh_scratch scratch_of(const att *a, double *scratch, int64_t bh) {
    int64_t t = a->t, d = a->d;
    double *p = scratch + bh * att_scratch(t, d);
    bh_scratch w = {.kt = p, .vt = p + t * d, .mat = p + 2 * t * d};
    w.x = w.mat + t * d;
    w.y = w.x + d;
    w.acc = w.y + d;
    w.s = w.acc + d;
    w.dp = w.s + t;
    return w;
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

/* ---- widening to double: F32 and F64 typed, the others through ct_ld ---- */

/* dst[0..n) = x's elements off..off+n, as doubles. */
static void load(const ct_tview *x, int64_t off, int64_t n, double *restrict dst) {
    if (x->dtype == CT_F32) {
        const float *src = (const float *)x->data + off;
        for (int64_t i = 0; i < n; i++) dst[i] = src[i];
    } else if (x->dtype == CT_F64) {
        memcpy(dst, (const double *)x->data + off, (size_t)n * sizeof(double));
    } else {
        for (int64_t i = 0; i < n; i++) dst[i] = ct_ld(x->data, x->dtype, off + i);
    }
}

/* dst [d, t] = the transpose of x's [t, d] rows from flat row `row`. */
static void load_t(const ct_tview *x, int64_t row, int64_t t, int64_t d, double *restrict dst) {
    if (x->dtype == CT_F32) {
        const float *src = (const float *)x->data + row * d;
        for (int64_t j = 0; j < t; j++)
            for (int64_t c = 0; c < d; c++) dst[c * t + j] = src[j * d + c];
    } else {
        for (int64_t j = 0; j < t; j++)
            for (int64_t c = 0; c < d; c++) dst[c * t + j] = ct_ld(x->data, x->dtype, (row + j) * d + c);
    }
}

/* out's elements off..off+n = mul * acc[0..n), rounded to out's dtype. */
static void store(const ct_tview *out, int64_t off, const double *restrict acc, int64_t n, double mul) {
    if (out->dtype == CT_F32) {
        float *dst = (float *)out->data + off;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(mul * acc[i]);
    } else {
        for (int64_t i = 0; i < n; i++) ct_st(out->data, out->dtype, off + i, mul * acc[i]);
    }
}

/* ---- one row ------------------------------------------------------------- */

static int64_t n_keys(const att *a, int64_t i) { return a->causal ? i + 1 : a->t; }

/* out[j] = x . column j of mt ([d, t]), j < n, each summed in order of c
 * from 0.0: the keys run side by side (they vectorise), each alone. */
static void dots(const double *restrict x, const double *restrict mt, int64_t t, int64_t d, int64_t n,
                 double *restrict out) {
    for (int64_t j = 0; j < n; j++) out[j] = 0.0;
    for (int64_t c = 0; c < d; c++) {
        const double xc = x[c], *col = mt + c * t;
        for (int64_t j = 0; j < n; j++) out[j] += xc * col[j];
    }
}

/* Row i's probabilities into w->s (q_i in w->x): scores, their maximum (a
 * NaN wins), exp(s - max) kept and summed in order, then divided by the
 * sum. Returns n, the number of keys the row sees. */
static int64_t row_probs(const att *a, const bh_scratch *w, int64_t i) {
    int64_t n = n_keys(a, i);
    double *restrict s = w->s;
    dots(w->x, w->kt, a->t, a->d, n, s);
    double mx = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        s[j] = a->scale * s[j];
        if (!isnan(mx) && (s[j] > mx || isnan(s[j]))) mx = s[j];
    }
    for (int64_t j = 0; j < n; j++) {
        s[j] = exp(s[j] - mx);
        sum += s[j];
    }
    for (int64_t j = 0; j < n; j++) s[j] /= sum;
    return n;
}

/* Row i's dS (dy_i in w->y) over its p in w->s, in place:
 * p_j (dy_i . v_j - delta), delta = sum_j p_j (dy_i . v_j) in order. */
static void row_ds(const att *a, const bh_scratch *w, int64_t n) {
    double *restrict p = w->s, *restrict dp = w->dp;
    dots(w->y, w->vt, a->t, a->d, n, dp);
    double delta = 0.0;
    for (int64_t j = 0; j < n; j++) delta += p[j] * dp[j];
    for (int64_t j = 0; j < n; j++) p[j] *= dp[j] - delta;
}

/* acc[0..d) = sum_{j < n} w[j] * row j of m ([t, d]), each column summed in
 * order of j from 0.0. */
static void combine(const double *restrict wt, int64_t n, const double *restrict m, int64_t d,
                    double *restrict acc) {
    for (int64_t c = 0; c < d; c++) acc[c] = 0.0;
    for (int64_t j = 0; j < n; j++) {
        const double wj = wt[j], *row = m + j * d;
        for (int64_t c = 0; c < d; c++) acc[c] += wj * row[c];
    }
}

/* Row j of m ([t, d]) += w[j] * x, j < n: row i's terms of dk or dv. */
static void scatter(const double *restrict wt, int64_t n, const double *restrict x, int64_t d,
                    double *restrict m) {
    for (int64_t j = 0; j < n; j++) {
        const double wj = wt[j];
        double *row = m + j * d;
        for (int64_t c = 0; c < d; c++) row[c] += wj * x[c];
    }
}

/* ---- the kernels ---------------------------------------------------------- */

static ct_status k_attention(const ct_kargs *k) {
    att a;
    ct_status st = att_args(k, "attention", 3, &a);
    if (st != CT_OK || ct_cpu_attention_f32(k, -1)) return st;
    double *scratch = k->scratch;
    const ct_tview *out = &k->out;
#pragma omp parallel for schedule(static) if (a.bh > 1 && out->numel * a.t >= PAR_MIN)
    for (int64_t bh = 0; bh < a.bh; bh++) {
        bh_scratch w = scratch_of(&a, scratch, bh);
        int64_t base = bh * a.t;
        load_t(a.k, base, a.t, a.d, w.kt);
        load(a.v, base * a.d, a.t * a.d, w.mat);
        for (int64_t i = 0; i < a.t; i++) {
            load(a.q, (base + i) * a.d, a.d, w.x);
            int64_t n = row_probs(&a, &w, i);
            combine(w.s, n, w.mat, a.d, w.acc);
            store(out, (base + i) * a.d, w.acc, a.d, 1.0);
        }
    }
    return CT_OK;
}

/* dq, dk or dv of one (b, h), row by row: dq's row i is row i's dS times
 * k; dk and dv add row i's dS (or p) times q_i (or dy_i) to every key's
 * accumulator and are stored at the end. */
static void grad_bh(const att *a, int which, const ct_tview *out, bh_scratch *w, int64_t bh) {
    int64_t base = bh * a->t, t = a->t, d = a->d;
    load_t(a->k, base, t, d, w->kt);
    if (which != CT_ATTN_GRAD_V) load_t(a->v, base, t, d, w->vt);
    if (which == CT_ATTN_GRAD_Q)
        load(a->k, base * d, t * d, w->mat);
    else
        for (int64_t e = 0; e < t * d; e++) w->mat[e] = 0.0;
    for (int64_t i = 0; i < t; i++) {
        load(a->q, (base + i) * d, d, w->x);
        load(a->dy, (base + i) * d, d, w->y);
        int64_t n = row_probs(a, w, i);
        if (which != CT_ATTN_GRAD_V) row_ds(a, w, n);
        if (which == CT_ATTN_GRAD_Q) {
            combine(w->s, n, w->mat, d, w->acc);
            store(out, (base + i) * d, w->acc, d, a->scale);
        } else {
            scatter(w->s, n, which == CT_ATTN_GRAD_K ? w->x : w->y, d, w->mat);
        }
    }
    if (which != CT_ATTN_GRAD_Q) store(out, base * d, w->mat, t * d, which == CT_ATTN_GRAD_K ? a->scale : 1.0);
}

static ct_status k_attention_grad(const ct_kargs *k);

/* CT_ATTN_GRAD_QKV: dq, dk, dv into out's three [B, H, T, D] parts; one
 * pass on the F32 fast path, else the three reference gradients in turn. */
static ct_status grad_all(const ct_kargs *k) {
    ct_attrs a = *k->attr;
    ct_kargs part = *k;
    part.attr = &a;
    part.out.shape = k->in[0].shape, part.out.numel = k->in[0].numel;
    if (k->out.numel != 3 * k->in[0].numel)
        return ct_error(CT_ERR_SHAPE, "cpu attention_grad: the output has %lld elements, need 3 x q's %lld",
                        (long long)k->out.numel, (long long)k->in[0].numel);
    att check;
    ct_status st = att_args(&part, "attention_grad", 4, &check);
    if (st != CT_OK || ct_cpu_attention_f32(k, CT_ATTN_GRAD_QKV)) return st;
    size_t third = (size_t)part.out.numel * ct_dtype_size(k->out.dtype);
    for (int which = CT_ATTN_GRAD_Q; which <= CT_ATTN_GRAD_V && st == CT_OK; which++) {
        a.which = which;
        part.out.data = (char *)k->out.data + (size_t)which * third;
        st = k_attention_grad(&part);
    }
    return st;
}

static ct_status k_attention_grad(const ct_kargs *k) {
    if (k->attr && k->attr->which == CT_ATTN_GRAD_QKV) return grad_all(k);
    att a;
    ct_status st = att_args(k, "attention_grad", 4, &a);
    if (st != CT_OK) return st;
    int which = k->attr->which;
    if (which != CT_ATTN_GRAD_Q && which != CT_ATTN_GRAD_K && which != CT_ATTN_GRAD_V)
        return ct_error(CT_ERR_INTERNAL, "cpu attention_grad: unknown gradient %d", which);
    if (ct_cpu_attention_f32(k, which)) return CT_OK;
    double *scratch = k->scratch;
    const ct_tview *out = &k->out;
#pragma omp parallel for schedule(static) if (a.bh > 1 && out->numel * a.t >= PAR_MIN)
    for (int64_t bh = 0; bh < a.bh; bh++) {
        bh_scratch w = scratch_of(&a, scratch, bh);
        grad_bh(&a, which, out, &w, bh);
    }
    return CT_OK;
}

void ct_cpu_register_attention(ct_kernel_fn *t) {
    t[CT_OP_ATTENTION] = k_attention;
    t[CT_OP_ATTENTION_GRAD] = k_attention_grad;
}
