/* The F32 fast path of the fused attention (src/cpu/k_attention_fast.c)
 * against the double reference kernels (ct_cpu_set_fast_paths(false)), on
 * fresh random inputs: forward and each gradient, causal or not, T across
 * one row block and several with a partial last one (1, 7, 64, 65, 130),
 * D = 8, 32, 64, one head or six; bitwise identical for 1, 2 and 3
 * threads; NaN rows where the reference has them. Where SLEEF is not built
 * in the fast path does not run and the comparisons are skipped. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/attention.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"

static ct_kernel_fn table[CT_OP_COUNT];
static int threads0;

static void init(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_attention(table);
    threads0 = omp_get_max_threads();
}

static void fini(void) {
    ct_cpu_set_fast_paths(true);
    omp_set_num_threads(threads0);
}

TestSuite(attention_fast, .init = init, .fini = fini);

#define SH(b, h, t, d) ((ct_shape){.ndim = 4, .dim = {b, h, t, d}})

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float uni(float lo, float hi) { /* fresh per call: xorshift */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) * 0x1p-24);
}

typedef struct acase {
    ct_shape s;
    bool causal;
    double scale;
} acase;

typedef struct bufs {
    float *x[4], *out; /* q, k, v, dy; the output */
    int64_t n;
} bufs;

static bufs make(ct_shape s) {
    bufs b = {.n = s.dim[0] * s.dim[1] * s.dim[2] * s.dim[3]};
    for (int i = 0; i <= 4; i++) {
        float *p = malloc((size_t)b.n * sizeof(float));
        cr_assert_not_null(p);
        /* q, k in [-2, 2] (scores of either sign and some spread), v and dy
         * in [-1, 1]; never exactly zero in practice */
        for (int64_t e = 0; e < b.n; e++) p[e] = i < 2 ? uni(-2.f, 2.f) : uni(-1.f, 1.f);
        if (i < 4) b.x[i] = p;
        else b.out = p;
    }
    return b;
}

static void drop(bufs *b) {
    for (int i = 0; i < 4; i++) free(b->x[i]);
    free(b->out);
}

/* Runs the forward (which < 0) or gradient `which` into b->out. */
static void run(const acase *c, bufs *b, int which) {
    ct_tview in[4];
    for (int i = 0; i < 4; i++) in[i] = (ct_tview){b->x[i], CT_F32, c->s, b->n};
    ct_attrs attr = {.alpha = c->scale, .causal = c->causal, .which = which < 0 ? 0 : which};
    ct_op op = which < 0 ? CT_OP_ATTENTION : CT_OP_ATTENTION_GRAD;
    ct_kargs k = {.op = op, .attr = &attr, .n_in = which < 0 ? 3 : 4, .in = in, .out = {b->out, CT_F32, c->s, b->n}};
    size_t bytes = ct_cpu_attention_scratch(&k);
    k.scratch = malloc(bytes ? bytes : 8);
    cr_assert_not_null(k.scratch);
    memset(k.scratch, 0xa5, bytes); /* stale scratch must not matter */
    cr_assert_eq(table[op](&k), CT_OK, "%s", ct_last_error());
    free(k.scratch);
}

/* Fast against reference for one case and output.
 *
 * Tolerance: |fast - ref| <= 1e-5 |ref| + 5e-7 (T + D) max|ref|.
 * The fast path rounds every product and partial sum to float
 * (u = 2^-24 = 6e-8): a dot product of D terms or a sum of up to T terms
 * is off by up to about n u times the sum of the terms' magnitudes
 * (worst case; sqrt(n) u typically), and for these outputs that sum is of
 * the order of the largest output (P's rows sum to 1; dS = P (dP - delta)
 * cancels, so a small gradient element is made of terms as large as the
 * others and only an absolute bound is meaningful). The errors compound
 * through s -> exp -> P -> (dP, dS) -> output, one n u sum or 1 ULP at
 * each step, hence about 8 u per term summed over T + D terms; the
 * relative term covers exp's 1 ULP and the final roundings. Measured
 * worst on these cases: about a tenth of the bound (T = 65, D = 32). */
static void compare(const acase *c, int which) {
    bufs b = make(c->s);
    ct_cpu_set_fast_paths(false);
    run(c, &b, which);
    float *want = malloc((size_t)b.n * sizeof(float));
    cr_assert_not_null(want);
    memcpy(want, b.out, (size_t)b.n * sizeof(float));
    ct_cpu_set_fast_paths(true);
    run(c, &b, which);
    double mx = 0;
    for (int64_t e = 0; e < b.n; e++) mx = fmax(mx, fabs(want[e]));
    double atol = 5e-7 * (double)(c->s.dim[2] + c->s.dim[3]) * mx;
    for (int64_t e = 0; e < b.n; e++) {
        double err = fabs((double)b.out[e] - want[e]), tol = 1e-5 * fabs(want[e]) + atol;
        cr_assert(err <= tol,
                  "[%lld %lld %lld %lld] causal %d scale %g which %d: element %lld is %.9g, reference %.9g "
                  "(error %.3g, tolerance %.3g)",
                  (long long)c->s.dim[0], (long long)c->s.dim[1], (long long)c->s.dim[2], (long long)c->s.dim[3],
                  c->causal, c->scale, which, (long long)e, b.out[e], want[e], err, tol);
    }
    free(want);
    drop(&b);
}

static void matches_reference_all(void) {
    const int64_t ts[] = {1, 7, 64, 65, 130}, ds[] = {8, 32, 64};
    for (int ti = 0; ti < 5; ti++)
        for (int di = 0; di < 3; di++)
            for (int heads = 0; heads < 2; heads++)
                for (int causal = 0; causal <= 1; causal++) {
                    int64_t t = ts[ti], d = ds[di];
                    acase c = {.s = heads ? SH(2, 3, t, d) : SH(1, 1, t, d), .causal = causal,
                               .scale = 1.0 / sqrt((double)d)};
                    for (int which = -1; which <= CT_ATTN_GRAD_V; which++) compare(&c, which);
                }
}

Test(attention_fast, matches_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the fast path is off");
    matches_reference_all();
}

/* The row functions' other clones (the best one runs above): AVX2 where
 * the CPU has AVX-512, and the baseline. */
Test(attention_fast, other_clones_match_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the fast path is off");
    ct_cpu_set_no_avx512(true);
    matches_reference_all();
    ct_cpu_set_no_avx512(false);
    ct_cpu_set_baseline_only(true);
    matches_reference_all();
    ct_cpu_set_baseline_only(false);
}

/* A larger scale: peaked rows, exp far down its range for most keys. */
Test(attention_fast, matches_reference_peaked) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the fast path is off");
    for (int causal = 0; causal <= 1; causal++) {
        acase c = {.s = SH(1, 2, 65, 32), .causal = causal, .scale = 1.5};
        for (int which = -1; which <= CT_ATTN_GRAD_V; which++) compare(&c, which);
    }
}

/* The same bytes with 1, 2 and 3 threads: head-block units for the forward
 * and dq, whole heads for dk and dv, whichever thread runs them. */
Test(attention_fast, bitwise_identical_across_threads) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the fast path is off");
    const acase cases[] = {{SH(2, 3, 130, 64), true, 0.125}, {SH(2, 3, 65, 32), false, 0.2},
                           {SH(1, 1, 130, 8), true, 0.35}};
    for (int ci = 0; ci < 3; ci++) {
        const acase *c = &cases[ci];
        for (int which = -1; which <= CT_ATTN_GRAD_V; which++) {
            bufs b = make(c->s);
            float *first = malloc((size_t)b.n * sizeof(float));
            cr_assert_not_null(first);
            for (int th = 1; th <= 3; th++) {
                omp_set_num_threads(th);
                run(c, &b, which);
                if (th == 1)
                    memcpy(first, b.out, (size_t)b.n * sizeof(float));
                else
                    cr_assert(memcmp(first, b.out, (size_t)b.n * sizeof(float)) == 0,
                              "case %d which %d: %d threads differ from 1", ci, which, th);
            }
            omp_set_num_threads(threads0);
            free(first);
            drop(&b);
        }
    }
}

/* QKV (one node for all three gradients, stacked [3, B, H, T, D]) gives
 * the separate gradients' bytes exactly: on the fast path it runs their
 * products in their order with the softmax shared, on the reference it
 * runs them. On 1, 2 and 3 threads. */
static void qkv_matches_separate(const acase *c, bool fast) {
    bufs b = make(c->s);
    float *sep = malloc((size_t)(3 * b.n) * sizeof(float)), *all = malloc((size_t)(3 * b.n) * sizeof(float));
    cr_assert(sep && all);
    ct_cpu_set_fast_paths(fast);
    for (int which = CT_ATTN_GRAD_Q; which <= CT_ATTN_GRAD_V; which++) {
        run(c, &b, which);
        memcpy(sep + which * b.n, b.out, (size_t)b.n * sizeof(float));
    }
    for (int64_t e = 0; e < 3 * b.n; e++) all[e] = NAN; /* poisoned: every element must be written */
    ct_tview in[4];
    for (int i = 0; i < 4; i++) in[i] = (ct_tview){b.x[i], CT_F32, c->s, b.n};
    ct_shape s3 = {5, {3, c->s.dim[0], c->s.dim[1], c->s.dim[2], c->s.dim[3]}};
    ct_attrs attr = {.alpha = c->scale, .causal = c->causal, .which = CT_ATTN_GRAD_QKV};
    ct_kargs k = {.op = CT_OP_ATTENTION_GRAD, .attr = &attr, .n_in = 4, .in = in, .out = {all, CT_F32, s3, 3 * b.n}};
    size_t bytes = ct_cpu_attention_scratch(&k);
    k.scratch = malloc(bytes ? bytes : 8);
    cr_assert_not_null(k.scratch);
    cr_assert_eq(table[CT_OP_ATTENTION_GRAD](&k), CT_OK, "%s", ct_last_error());
    for (int64_t e = 0; e < 3 * b.n; e++)
        cr_assert(memcmp(&all[e], &sep[e], sizeof(float)) == 0, "fast %d causal %d T %lld: element %lld is %.9g, not %.9g",
                  fast, c->causal, (long long)c->s.dim[2], (long long)e, all[e], sep[e]);
    ct_cpu_set_fast_paths(true);
    free(k.scratch), free(sep), free(all);
    drop(&b);
}

Test(attention_fast, qkv_is_the_three_gradients) {
    const acase cases[] = {{SH(2, 3, 65, 32), true, 0.18}, {SH(1, 2, 64, 16), false, 0.25},
                           {SH(3, 1, 7, 8), true, 0.35}, {SH(1, 1, 130, 64), true, 0.125}};
    for (int th = 1; th <= 3; th++) { /* the separate ones are the same on any count (above), so QKV too */
        omp_set_num_threads(th);
        for (int ci = 0; ci < 4; ci++) {
            qkv_matches_separate(&cases[ci], false);
            if (ct_cpu_float_math()) qkv_matches_separate(&cases[ci], true);
        }
    }
    omp_set_num_threads(threads0);
}

/* A NaN in q poisons its row's output, an infinite k every row that sees
 * it, as in the reference: the same elements are NaN. */
Test(attention_fast, nan_rows_as_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the fast path is off");
    for (int causal = 0; causal <= 1; causal++) {
        acase c = {.s = SH(1, 2, 40, 8), .causal = causal, .scale = 0.3};
        for (int which = -1; which <= CT_ATTN_GRAD_V; which++) {
            bufs b = make(c.s);
            b.x[0][5 * 8 + 3] = NAN;            /* q, head 0, row 5 */
            b.x[1][(40 + 17) * 8 + 1] = INFINITY; /* k, head 1, key 17 */
            ct_cpu_set_fast_paths(false);
            run(&c, &b, which);
            unsigned char *ref_nan = malloc((size_t)b.n);
            cr_assert_not_null(ref_nan);
            for (int64_t e = 0; e < b.n; e++) ref_nan[e] = isnan(b.out[e]);
            ct_cpu_set_fast_paths(true);
            run(&c, &b, which);
            for (int64_t e = 0; e < b.n; e++)
                cr_assert_eq(isnan(b.out[e]) != 0, ref_nan[e], "causal %d which %d element %lld: NaN %d, reference %d",
                             causal, which, (long long)e, isnan(b.out[e]) != 0, ref_nan[e]);
            free(ref_nan);
            drop(&b);
        }
    }
}
