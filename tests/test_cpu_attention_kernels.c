/* The CPU attention kernels (src/cpu/k_attention.c), called directly,
 * against the plain loops they were first written as: every dot product
 * summed over d in order, each score's exp recomputed for p, y and dq by
 * columns, dk and dv key by key over a recomputed column of p. The kernels
 * widen k and v to double once, transposed, and run rows where these loops
 * run columns; the arithmetic per element is meant to be the same, so the
 * output bytes must be identical: for every storage dtype (and a mix of
 * them), odd shapes (T = 1, D = 1, lengths that fit no vector), causal or
 * not, and inputs with NaN, infinities and signed zeros. A NaN only has to
 * be a NaN: its sign and payload are the compiler's (C lets it swap the
 * operands of + and *, and x86 returns the first operand's NaN), so
 * neither these loops nor the kernels fix them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/attention.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"

static ct_kernel_fn table[CT_OP_COUNT];

/* The reference loops: F32 would otherwise take the float fast path
 * (k_attention_fast.c, tested in test_attention_fast.c). */
static void fill_table(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_attention(table);
    ct_cpu_set_fast_paths(false);
}

static void restore(void) { ct_cpu_set_fast_paths(true); }

TestSuite(cpu_attention_kernels, .init = fill_table, .fini = restore);

/* ---- the plain loops (the oracle) ---------------------------------------- */

typedef struct ref {
    const ct_tview *q, *k, *v, *dy;
    int64_t bh, t, d;
    double scale;
    bool causal;
} ref;

static double ref_dot(const ct_tview *x, int64_t ra, const ct_tview *y, int64_t rb, int64_t d) {
    double s = 0.0;
    for (int64_t c = 0; c < d; c++) s += ct_ld(x->data, x->dtype, ra * d + c) * ct_ld(y->data, y->dtype, rb * d + c);
    return s;
}

static int64_t ref_keys(const ref *a, int64_t i) { return a->causal ? i + 1 : a->t; }

static double ref_score(const ref *a, int64_t bh, int64_t i, int64_t j) {
    return a->scale * ref_dot(a->q, bh * a->t + i, a->k, bh * a->t + j, a->d);
}

static double ref_prob(double s, double m, double sum) { return exp(s - m) / sum; }

static int64_t ref_row(const ref *a, int64_t bh, int64_t i, double *s, double *m, double *sum) {
    int64_t n = ref_keys(a, i);
    double mx = -INFINITY, acc = 0.0;
    for (int64_t j = 0; j < n; j++) {
        s[j] = ref_score(a, bh, i, j);
        if (!isnan(mx) && (s[j] > mx || isnan(s[j]))) mx = s[j];
    }
    for (int64_t j = 0; j < n; j++) acc += exp(s[j] - mx);
    *m = mx;
    *sum = acc;
    return n;
}

static void ref_combine(const ct_tview *out, int64_t r, const double *w, int64_t n, const ct_tview *x, int64_t base,
                        int64_t d, double mul) {
    for (int64_t c = 0; c < d; c++) {
        double acc = 0.0;
        for (int64_t j = 0; j < n; j++) acc += w[j] * ct_ld(x->data, x->dtype, (base + j) * d + c);
        ct_st(out->data, out->dtype, r * d + c, mul * acc);
    }
}

static void ref_forward(const ref *a, const ct_tview *out, double *p) {
    for (int64_t bh = 0; bh < a->bh; bh++)
        for (int64_t i = 0; i < a->t; i++) {
            double m, sum;
            int64_t n = ref_row(a, bh, i, p, &m, &sum);
            for (int64_t j = 0; j < n; j++) p[j] = ref_prob(p[j], m, sum);
            ref_combine(out, bh * a->t + i, p, n, a->v, bh * a->t, a->d, 1.0);
        }
}

static void ref_grad_q(const ref *a, const ct_tview *out, double *p) {
    double *dp = p + a->t;
    for (int64_t bh = 0; bh < a->bh; bh++) {
        int64_t base = bh * a->t;
        for (int64_t i = 0; i < a->t; i++) {
            double m, sum, delta = 0.0;
            int64_t n = ref_row(a, bh, i, p, &m, &sum);
            for (int64_t j = 0; j < n; j++) {
                p[j] = ref_prob(p[j], m, sum);
                dp[j] = ref_dot(a->dy, base + i, a->v, base + j, a->d);
                delta += p[j] * dp[j];
            }
            for (int64_t j = 0; j < n; j++) p[j] *= dp[j] - delta;
            ref_combine(out, base + i, p, n, a->k, base, a->d, a->scale);
        }
    }
}

static void ref_grad_kv(const ref *a, bool want_k, const ct_tview *out, double *col) {
    double *rmax = col + a->t, *rsum = rmax + a->t, *delta = rsum + a->t;
    for (int64_t bh = 0; bh < a->bh; bh++) {
        int64_t base = bh * a->t;
        for (int64_t i = 0; i < a->t; i++) {
            int64_t n = ref_row(a, bh, i, col, &rmax[i], &rsum[i]);
            double dl = 0.0;
            for (int64_t j = 0; want_k && j < n; j++)
                dl += ref_prob(col[j], rmax[i], rsum[i]) * ref_dot(a->dy, base + i, a->v, base + j, a->d);
            delta[i] = dl;
        }
        for (int64_t j = 0; j < a->t; j++) {
            int64_t i0 = a->causal ? j : 0;
            for (int64_t i = i0; i < a->t; i++) {
                double p = ref_prob(ref_score(a, bh, i, j), rmax[i], rsum[i]);
                col[i - i0] = want_k ? p * (ref_dot(a->dy, base + i, a->v, base + j, a->d) - delta[i]) : p;
            }
            ref_combine(out, base + j, col, a->t - i0, want_k ? a->q : a->dy, base + i0, a->d,
                        want_k ? a->scale : 1.0);
        }
    }
}

/* ---- inputs --------------------------------------------------------------- */

static uint64_t lcg_state = 0x9E3779B97F4A7C15ull;
static double rnd(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * 0x1p-53 * 2.0 - 1.0;
}

/* specials: 0 none, 1 signed zeros, 2 also NaN and infinities. */
static ct_tview make(ct_dtype dt, ct_shape s, double range, int specials) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    ct_tview v = {.data = malloc((size_t)(n ? n : 1) * ct_dtype_size(dt)), .dtype = dt, .shape = s, .numel = n};
    cr_assert_not_null(v.data);
    for (int64_t i = 0; i < n; i++) {
        double x = range * rnd();
        /* Rare specials, at fixed places: a NaN poisons its rows, an
         * infinity makes -inf / +inf scores (exp(inf - inf) is NaN), and
         * zeros of both signs test the sums that start from 0.0. */
        if (specials > 1 && i % 97 == 41) x = NAN;
        if (specials > 1 && i % 89 == 17) x = i % 2 ? INFINITY : -INFINITY;
        if (specials && i % 13 == 5) x = i % 2 ? -0.0 : 0.0;
        ct_st(v.data, dt, i, x);
    }
    return v;
}

/* ---- one case ------------------------------------------------------------- */

typedef struct kcase {
    ct_shape s;
    ct_dtype dt[5]; /* q, k, v, dy, output */
    bool causal;
    int specials; /* make()'s */
    double scale, range;
} kcase;

/* Runs op (which: a gradient, or -1 for the forward) through the kernel and
 * the oracle and compares the output bytes. */
static void check_one(const kcase *c, int which) {
    ct_tview in[4];
    for (int i = 0; i < 4; i++) in[i] = make(c->dt[i], c->s, c->range, c->specials);
    ct_tview got = make(c->dt[4], c->s, 1.0, 0), want = make(c->dt[4], c->s, 1.0, 0);
    ct_attrs attr = {.alpha = c->scale, .causal = c->causal, .which = which < 0 ? 0 : which};
    ct_op op = which < 0 ? CT_OP_ATTENTION : CT_OP_ATTENTION_GRAD;
    ct_kargs k = {.op = op, .attr = &attr, .n_in = which < 0 ? 3 : 4, .in = in, .out = got};
    size_t bytes = ct_cpu_attention_scratch(&k);
    k.scratch = malloc(bytes ? bytes : 8);
    cr_assert_not_null(k.scratch);
    memset(k.scratch, 0xa5, bytes); /* stale scratch must not matter */
    cr_assert_eq(table[op](&k), CT_OK, "%s", ct_last_error());

    ref a = {.q = &in[0], .k = &in[1], .v = &in[2], .dy = &in[3], .bh = c->s.dim[0] * c->s.dim[1],
             .t = c->s.dim[2], .d = c->s.dim[3], .scale = c->scale, .causal = c->causal};
    double *tmp = malloc((size_t)(4 * a.t + 1) * sizeof *tmp);
    cr_assert_not_null(tmp);
    if (which < 0)
        ref_forward(&a, &want, tmp);
    else if (which == CT_ATTN_GRAD_Q)
        ref_grad_q(&a, &want, tmp);
    else
        ref_grad_kv(&a, which == CT_ATTN_GRAD_K, &want, tmp);

    size_t es = ct_dtype_size(got.dtype);
    int64_t first = got.numel;
    for (int64_t e = 0; e < got.numel && first == got.numel; e++) {
        bool both_nan = isnan(ct_ld(got.data, got.dtype, e)) && isnan(ct_ld(want.data, want.dtype, e));
        if (!both_nan && memcmp((char *)got.data + e * es, (char *)want.data + e * es, es) != 0) first = e;
    }
    cr_assert_eq(first, got.numel,
                 "shape [%lld %lld %lld %lld] %s causal %d specials %d which %d: element %lld of %lld is %.9g, want %.9g",
                 (long long)c->s.dim[0], (long long)c->s.dim[1], (long long)c->s.dim[2], (long long)c->s.dim[3],
                 ct_dtype_name(c->dt[0]), c->causal, c->specials, which, (long long)first, (long long)got.numel,
                 first < got.numel ? ct_ld(got.data, got.dtype, first) : 0.0,
                 first < got.numel ? ct_ld(want.data, want.dtype, first) : 0.0);
    free(tmp);
    free(k.scratch);
    for (int i = 0; i < 4; i++) free(in[i].data);
    free(got.data);
    free(want.data);
}

static void check_all(kcase c) {
    for (int causal = 0; causal <= 1; causal++) {
        c.causal = causal;
        for (int which = -1; which <= CT_ATTN_GRAD_V; which++) check_one(&c, which);
    }
}

#define SH(b, h, t, d) ((ct_shape){.ndim = 4, .dim = {b, h, t, d}})
#define ALL(dt) {dt, dt, dt, dt, dt}

static const ct_shape shapes[] = {SH(1, 1, 1, 1), SH(2, 3, 7, 5), SH(1, 2, 33, 17), SH(3, 1, 13, 1),
                                  SH(1, 1, 1, 9), SH(2, 2, 64, 32)};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

Test(cpu_attention_kernels, f32_matches_plain_loops) {
    for (int i = 0; i < N_SHAPES; i++) check_all((kcase){.s = shapes[i], .dt = ALL(CT_F32), .scale = 0.37, .range = 2});
}

Test(cpu_attention_kernels, f64_f16_bf16_match_plain_loops) {
    const ct_dtype dts[3] = {CT_F64, CT_F16, CT_BF16};
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < N_SHAPES; i++)
            check_all((kcase){.s = shapes[i], .dt = ALL(dts[d]), .scale = 0.41, .range = 3});
}

Test(cpu_attention_kernels, mixed_dtypes_match_plain_loops) {
    for (int i = 0; i < N_SHAPES; i++)
        check_all((kcase){.s = shapes[i], .dt = {CT_F16, CT_F32, CT_BF16, CT_F64, CT_F32}, .scale = 0.5, .range = 2});
}

/* Large scores (exp underflows to 0 for most keys) and the specials. */
Test(cpu_attention_kernels, extreme_values_match_plain_loops) {
    const ct_dtype dts[2] = {CT_F32, CT_F64};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < N_SHAPES; i++) {
            check_all((kcase){.s = shapes[i], .dt = ALL(dts[d]), .scale = 3.0, .range = 30});
            check_all((kcase){.s = shapes[i], .dt = ALL(dts[d]), .scale = 0.3, .range = 2, .specials = 1});
            check_all((kcase){.s = shapes[i], .dt = ALL(dts[d]), .scale = 0.3, .range = 2, .specials = 2});
        }
}
