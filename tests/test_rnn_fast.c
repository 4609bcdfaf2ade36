/* The recurrent op's F32 fast path (src/cpu/k_rnn_fast.c) against the
 * reference kernels (ct_cpu_set_fast_paths(false): k_rnn.c's loops, each
 * unit in double): the forward record and every rnn_grad output (the
 * gates' gradient, dh0, dc0) of every cell, both directions, odd sizes,
 * within a stated tolerance; the same bytes on 1, 2 and 3 threads, and
 * from the AVX-512 and the AVX2 product kernels.
 *
 * Tolerance. Both paths take the hidden product in float (the reference
 * through OpenBLAS's sgemm, the fast path through its own kernel with fused
 * multiply-adds: the same H or G*H terms, rounded differently); the fast
 * path then rounds to float at every operation of the cell (SLEEF's
 * sigmoid and tanh within 2.5 and 1 ULP) where the reference computes the
 * cell in double and rounds once per stored value. Per step that is a few
 * float ULPs (6e-8 relative) of values of order one; the recurrence
 * carries the previous step's difference along, damped by the gates. Over
 * these cases (at most 7 steps, inputs of order one, weights in PyTorch's
 * init range) the largest difference measured is 2.1e-7 of 1 + max|ref|
 * (the test logs it). The bound, |fast - ref| <= 2e-5 (1 + max|ref|),
 * leaves a factor of about 100 for other CPUs' vector units and seeds, and
 * still fails on any wrong term: scaling one carried value by 1 + 1e-4
 * fails it. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rnn.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/device.h"

#define TOL 2e-5
/* With half products (attr.half) both paths round the same operands, but a
 * carried dhp (or, in later steps, a state) that differs in float's last
 * place can round to the neighbouring half value: one term off by half's
 * unit in the last place (2^-8 for BF16) times a weight. TOL_HALF allows
 * a few such terms; the test below shows that rounding itself moves the
 * results by far more. */
#define TOL_HALF 2e-3

typedef struct rcase {
    int cell;
    bool reverse;
    int64_t B, T, H;
    bool dr_h; /* RNN_GRAD's dR holds the h columns only, [B, T, H] */
    ct_dtype half; /* attr.half: the products' operands (F32: none) */
} rcase;

static uint64_t next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* n floats uniform in (-scale, scale), never zero. */
static float *fill(int64_t n, float scale, uint64_t seed) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        double u = ((double)(next(&seed) >> 11) + 0.5) / 9007199254740992.0;
        p[i] = (float)((2.0 * u - 1.0) * scale);
    }
    return p;
}

/* Runs one kernel (op RNN, or RNN_GRAD for `which`) on `threads` threads,
 * fast paths on or off; returns its output (malloc'd, out_n floats). */
static float *run(const rcase *c, ct_op op, int which, float **in, int64_t out_n, bool fast, int threads) {
    int64_t B = c->B, T = c->T, H = c->H, G = ct_rnn_gates(c->cell), W = ct_rnn_record_units(c->cell);
    int n = c->cell == CT_LSTM ? 5 : 4;
    ct_shape xs = {3, {B, T, G * H}}, rs = {3, {B, T, W * H}}, ws = {2, {G * H, H}}, bs = {1, {G * H}},
             hs = {2, {B, H}};
    ct_tview v[5];
    if (op == CT_OP_RNN) {
        v[0] = (ct_tview){in[0], CT_F32, xs, B * T * G * H};
        v[1] = (ct_tview){in[1], CT_F32, ws, G * H * H};
        v[2] = (ct_tview){in[2], CT_F32, bs, G * H};
    } else {
        v[0] = (ct_tview){in[0], CT_F32, rs, B * T * W * H};
        v[1] = c->dr_h ? (ct_tview){in[1], CT_F32, {3, {B, T, H}}, B * T * H}
                       : (ct_tview){in[1], CT_F32, rs, B * T * W * H};
        v[2] = (ct_tview){in[2], CT_F32, ws, G * H * H};
    }
    v[3] = (ct_tview){in[3], CT_F32, hs, B * H};
    if (n > 4) v[4] = (ct_tview){in[4], CT_F32, hs, B * H};
    ct_shape os = op == CT_OP_RNN ? rs : which == CT_RNN_GRAD_GATES ? xs : hs;
    float *out = malloc((size_t)out_n * sizeof(float));
    memset(out, 0x7f, (size_t)out_n * sizeof(float)); /* poison: every value must be written */
    ct_attrs a = {0};
    a.cell = c->cell, a.reverse = c->reverse, a.which = which, a.half = c->half;
    ct_kargs k = {.op = op, .attr = &a, .n_in = n, .in = v, .out = {out, CT_F32, os, out_n}};
    const ct_backend *be = ct_cpu_backend();
    size_t sb = be->scratch_bytes(&k);
    k.scratch = sb ? malloc(sb) : NULL;
    if (k.scratch) memset(k.scratch, 0x5a, sb);
    omp_set_num_threads(threads);
    ct_cpu_set_fast_paths(fast);
    ct_status st = be->kernels[op](&k);
    ct_cpu_set_fast_paths(true);
    cr_assert_eq(st, CT_OK, "%s", ct_last_error());
    free(k.scratch);
    return out;
}

/* Fast against reference within TOL, and the same bytes on 1, 2, 3 threads;
 * returns the largest difference relative to 1 + max|ref|. */
static double check(const rcase *c, ct_op op, int which, float **in, int64_t out_n, const char *what) {
    float *ref = run(c, op, which, in, out_n, false, 2);
    /* 1, 2, 3 threads; then the baseline build (SSE2, products without
     * FMA: other last bits, the same tolerance) on 2 threads; then the
     * AVX2 product kernel and cell clones where the CPU has AVX-512 (the
     * same bits) */
    float *fast[5];
    for (int t = 0; t < 5; t++) {
        ct_cpu_set_baseline_only(t == 3);
        ct_cpu_set_no_avx512(t == 4);
        fast[t] = run(c, op, which, in, out_n, true, t >= 3 ? 2 : t + 1);
        ct_cpu_set_no_avx512(false);
        ct_cpu_set_baseline_only(false);
    }
    double mx = 0, worst = 0;
    for (int64_t i = 0; i < out_n; i++) mx = fmax(mx, fabs(ref[i]));
    /* with BF16 products the AVX-512 kernel takes two k per instruction
     * (AVX512-BF16) where the AVX2 one takes one: other sums, checked
     * against the reference as the baseline is */
    const bool pairs = c->half == CT_BF16 && ct_rnn_bf16_dot();
    const double tol = c->half == CT_F32 ? TOL : TOL_HALF;
    for (int f = 0; f < 5; f++) {
        if (f != 0 && f != 3 && !(f == 4 && pairs)) continue;
        for (int64_t i = 0; i < out_n; i++) {
            double d = fabs((double)fast[f][i] - ref[i]) / (1 + mx);
            cr_assert(d <= tol, "cell %d%s B %lld T %lld H %lld %s[%lld]%s: fast %.9g, reference %.9g", c->cell,
                      c->reverse ? " reverse" : "", (long long)c->B, (long long)c->T, (long long)c->H, what,
                      (long long)i, f == 3 ? " (baseline)" : f == 4 ? " (AVX2)" : "", fast[f][i], ref[i]);
            worst = fmax(worst, d);
        }
    }
    for (int t = 1; t < 5; t++)
        if (t != 3 && !(t == 4 && pairs))
            cr_assert_eq(memcmp(fast[0], fast[t], (size_t)out_n * sizeof(float)), 0,
                         "cell %d B %lld T %lld H %lld %s: %s differs from 1 thread", c->cell, (long long)c->B,
                         (long long)c->T, (long long)c->H, what, t == 4 ? "the AVX2 kernel" : "2 or 3 threads");
    cr_assert_gt(mx, 0.01, "%s: all near zero", what);
    free(ref);
    for (int t = 0; t < 5; t++) free(fast[t]);
    return worst;
}

/* dR as the h columns alone ([B, T, H]) gives the bytes of the full dR
 * with those columns and zeros elsewhere, on the reference and on the fast
 * path, for every gradient. */
static void check_h_columns(const rcase *c, float **gin, uint64_t seed) {
    int64_t B = c->B, T = c->T, H = c->H, G = ct_rnn_gates(c->cell), W = ct_rnn_record_units(c->cell);
    float *dy = fill(B * T * H, 1.0f, seed), *full = calloc((size_t)(B * T * W * H), sizeof(float));
    for (int64_t i = 0; i < B * T; i++) memcpy(full + i * W * H, dy + i * H, (size_t)H * sizeof(float));
    float *in_full[5] = {gin[0], full, gin[2], gin[3], gin[4]}, *in_h[5] = {gin[0], dy, gin[2], gin[3], gin[4]};
    rcase ch = *c;
    ch.dr_h = true;
    for (int which = CT_RNN_GRAD_GATES; which <= (c->cell == CT_LSTM ? CT_RNN_GRAD_C0 : CT_RNN_GRAD_H0); which++) {
        int64_t n = which == CT_RNN_GRAD_GATES ? B * T * G * H : B * H;
        for (int fast = 0; fast <= 1; fast++) {
            float *a = run(c, CT_OP_RNN_GRAD, which, in_full, n, fast, 2);
            float *b = run(&ch, CT_OP_RNN_GRAD, which, in_h, n, fast, 2);
            cr_assert_eq(memcmp(a, b, (size_t)n * sizeof(float)), 0, "cell %d B %lld T %lld H %lld gradient %d%s: "
                         "dR of h columns differs from the full dR", c->cell, (long long)B, (long long)T, (long long)H,
                         which, fast ? " (fast)" : "");
            free(a), free(b);
        }
    }
    free(dy), free(full);
}

/* One case: the forward, then each gradient from the reference's record. */
static double check_case(const rcase *c, uint64_t seed) {
    int64_t B = c->B, T = c->T, H = c->H, G = ct_rnn_gates(c->cell), W = ct_rnn_record_units(c->cell);
    float ws = (float)(1.0 / sqrt((double)H)); /* PyTorch's init range */
    float *fin[5] = {fill(B * T * G * H, 1.0f, seed), fill(G * H * H, ws, seed + 1), fill(G * H, ws, seed + 2),
                     fill(B * H, 1.0f, seed + 3), fill(B * H, 1.0f, seed + 4)};
    double worst = check(c, CT_OP_RNN, 0, fin, B * T * W * H, "record");
    float *rec = run(c, CT_OP_RNN, 0, fin, B * T * W * H, false, 1);
    float *gin[5] = {rec, fill(B * T * W * H, 1.0f, seed + 5), fin[1], fin[3], fin[4]};
    worst = fmax(worst, check(c, CT_OP_RNN_GRAD, CT_RNN_GRAD_GATES, gin, B * T * G * H, "dgates"));
    worst = fmax(worst, check(c, CT_OP_RNN_GRAD, CT_RNN_GRAD_H0, gin, B * H, "dh0"));
    if (c->cell == CT_LSTM) worst = fmax(worst, check(c, CT_OP_RNN_GRAD, CT_RNN_GRAD_C0, gin, B * H, "dc0"));
    check_h_columns(c, gin, seed + 6);
    free(rec), free(gin[1]);
    for (int i = 0; i < 5; i++) free(fin[i]);
    return worst;
}

Test(rnn_fast, matches_reference_and_threads_agree) {
    const int cells[] = {CT_RNN_TANH, CT_RNN_RELU, CT_LSTM, CT_GRU};
    const int64_t Bs[] = {1, 3, 33}, Hs[] = {5, 17, 64}, Ts[] = {1, 7};
    double worst = 0;
    uint64_t seed = 1;
    for (int ci = 0; ci < 4; ci++)
        for (int rev = 0; rev < 2; rev++)
            for (int bi = 0; bi < 3; bi++)
                for (int hi = 0; hi < 3; hi++)
                    for (int ti = 0; ti < 2; ti++) {
                        rcase c = {cells[ci], rev == 1, Bs[bi], Ts[ti], Hs[hi], false, CT_F32};
                        worst = fmax(worst, check_case(&c, seed += 10));
                    }
    cr_log_info("largest difference: %.3g of 1 + max|ref|", worst);
    /* where float math is on the fast path ran: it is not the reference */
    if (ct_cpu_float_math()) cr_assert_gt(worst, 0.0, "the fast path did not run");
}

/* A batch of many blocks (rows split unevenly) and the lstm-char sizes. */
Test(rnn_fast, large_cases) {
    const rcase cs[] = {{CT_LSTM, false, 50, 5, 256, false, CT_F32}, {CT_GRU, true, 37, 4, 128, false, CT_F32},
                        {CT_LSTM, true, 32, 3, 256, false, CT_F32},
                        {CT_LSTM, false, 32, 3, 256, false, CT_BF16}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_case(&cs[i], 1000 + i);
}

/* F64 operands never take the float path: fast paths on or off, the same
 * bytes (gradient checks rely on it). */
Test(rnn_fast, f64_is_the_reference) {
    int64_t B = 3, T = 4, H = 7, G = 4, W = 6;
    double *x = malloc(sizeof(double) * B * T * G * H), *w = malloc(sizeof(double) * G * H * H),
           *b = malloc(sizeof(double) * G * H), *h0 = malloc(sizeof(double) * B * H), *out[2];
    uint64_t s = 5;
    for (int64_t i = 0; i < B * T * G * H; i++) x[i] = (double)(next(&s) >> 11) / 9007199254740992.0 - 0.5;
    for (int64_t i = 0; i < G * H * H; i++) w[i] = (double)(next(&s) >> 11) / 9007199254740992.0 - 0.5;
    for (int64_t i = 0; i < G * H; i++) b[i] = 0.1;
    for (int64_t i = 0; i < B * H; i++) h0[i] = 0.2;
    ct_tview v[5] = {{x, CT_F64, {3, {B, T, G * H}}, B * T * G * H}, {w, CT_F64, {2, {G * H, H}}, G * H * H},
                     {b, CT_F64, {1, {G * H}}, G * H}, {h0, CT_F64, {2, {B, H}}, B * H},
                     {h0, CT_F64, {2, {B, H}}, B * H}};
    ct_attrs a = {0};
    a.cell = CT_LSTM;
    for (int f = 0; f < 2; f++) {
        out[f] = malloc(sizeof(double) * B * T * W * H);
        ct_kargs k = {.op = CT_OP_RNN, .attr = &a, .n_in = 5, .in = v,
                      .out = {out[f], CT_F64, {3, {B, T, W * H}}, B * T * W * H}};
        size_t sb = ct_cpu_backend()->scratch_bytes(&k);
        k.scratch = malloc(sb);
        ct_cpu_set_fast_paths(f == 1);
        cr_assert_eq(ct_cpu_backend()->kernels[CT_OP_RNN](&k), CT_OK);
        ct_cpu_set_fast_paths(true);
        free(k.scratch);
    }
    cr_assert_eq(memcmp(out[0], out[1], sizeof(double) * B * T * W * H), 0);
    free(x), free(w), free(b), free(h0), free(out[0]), free(out[1]);
}

/* Half products (an FP16/BF16 policy's recurrence, attr.half): the fast
 * path against the reference with the same rounding, every cell, both
 * directions, forward and every gradient. */
Test(rnn_fast, half_products_match_reference) {
    const int cells[] = {CT_RNN_TANH, CT_RNN_RELU, CT_LSTM, CT_GRU};
    const ct_dtype halves[] = {CT_BF16, CT_F16};
    const int64_t Bs[] = {3, 33}, Hs[] = {17, 64};
    double worst = 0;
    uint64_t seed = 77;
    for (int ci = 0; ci < 4; ci++)
        for (int hi = 0; hi < 2; hi++)
            for (int bi = 0; bi < 2; bi++)
                for (int ui = 0; ui < 2; ui++) {
                    rcase c = {cells[ci], (bi + ui) % 2 == 1, Bs[bi], 7, Hs[ui], false, halves[hi]};
                    worst = fmax(worst, check_case(&c, seed += 10));
                }
    cr_log_info("half products: largest difference %.3g of 1 + max|ref|", worst);
}

/* x as a half operand holds it, from the public conversions. */
static double as_half(float x, ct_dtype half) {
    return half == CT_BF16 ? ct_bf16_to_f32(ct_f32_to_bf16(x)) : ct_f16_to_f32(ct_f32_to_f16(x));
}

/* What half products mean, computed here in double: one step of a relu
 * RNN (no transcendental in the way), forward h = relu(x + (sum_k
 * half(h0_k) half(W_uk) + b)) and backward dh0_k = sum_u half(dx_u)
 * half(W_uk), dx = dR where h > 0. Both paths agree with it to float
 * summation error, and differ from the unrounded sums by far more. */
Test(rnn_fast, half_products_round_both_operands) {
    const int64_t B = 3, H = 64;
    const ct_dtype halves[] = {CT_BF16, CT_F16};
    for (int hi = 0; hi < 2; hi++) {
        ct_dtype hd = halves[hi];
        rcase c = {CT_RNN_RELU, false, B, 1, H, false, hd};
        float *in[5] = {fill(B * H, 1.0f, 11), fill(H * H, 0.5f, 12), fill(H, 0.5f, 13), fill(B * H, 1.0f, 14),
                        fill(B * H, 1.0f, 14)};
        float *dr = fill(B * H, 1.0f, 15);
        for (int fast = 0; fast <= 1; fast++) {
            float *h = run(&c, CT_OP_RNN, 0, in, B * H, fast, 2);
            float *gin[5] = {h, dr, in[1], in[3], in[4]};
            float *dh0 = run(&c, CT_OP_RNN_GRAD, CT_RNN_GRAD_H0, gin, B * H, fast, 2);
            double far = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t u = 0; u < H; u++) {
                    double s = 0, s_plain = 0, g = 0;
                    for (int64_t k = 0; k < H; k++) {
                        s += as_half(in[3][b * H + k], hd) * as_half(in[1][u * H + k], hd);
                        s_plain += (double)in[3][b * H + k] * in[1][u * H + k];
                        float dx = h[b * H + k] > 0 ? dr[b * H + k] : 0.0f;
                        g += as_half(dx, hd) * as_half(in[1][k * H + u], hd);
                    }
                    double want = fmax(in[0][b * H + u] + (s + in[2][u]), 0.0);
                    double plain = fmax(in[0][b * H + u] + (s_plain + in[2][u]), 0.0);
                    cr_assert(fabs(h[b * H + u] - want) <= 1e-5 * (1 + fabs(want)),
                              "%s forward%s [%lld, %lld]: %.9g, expected %.9g", ct_dtype_name(hd),
                              fast ? " (fast)" : "", (long long)b, (long long)u, h[b * H + u], want);
                    cr_assert(fabs(dh0[b * H + u] - g) <= 1e-5 * (1 + fabs(g)),
                              "%s dh0%s [%lld, %lld]: %.9g, expected %.9g", ct_dtype_name(hd), fast ? " (fast)" : "",
                              (long long)b, (long long)u, dh0[b * H + u], g);
                    far = fmax(far, fabs(want - plain));
                }
            /* the rounding is visible: well above the agreement asked */
            cr_assert_gt(far, hd == CT_BF16 ? 1e-3 : 1e-4, "%s: rounding made no difference", ct_dtype_name(hd));
            free(h), free(dh0);
        }
        free(dr);
        for (int i = 0; i < 5; i++) free(in[i]);
    }
}

/* The BF16 panels and rows made by the CPU's conversion (AVX512-BF16)
 * hold the bytes of the plain rounding (ct_cpu_set_no_avx512 switches to
 * it), for both layouts, odd K and N, and partial panels. Inputs are never
 * denormal: there the instruction flushes to zero, as the dot product
 * treats its inputs anyway. */
Test(rnn_fast, bf16_packing_matches_plain_rounding) {
    if (!ct_rnn_bf16_dot()) cr_log_info("no AVX512-BF16 here: both sides are the plain rounding");
    const int64_t Ks[] = {1, 7, 32, 33, 256}, Ns[] = {5, 16, 17, 64};
    for (int ki = 0; ki < 5; ki++)
        for (int ni = 0; ni < 4; ni++)
            for (int trans = 0; trans <= 1; trans++) {
                int64_t K = Ks[ki], N = Ns[ni], np = (N + CT_RNN_PANEL_COLS - 1) / CT_RNN_PANEL_COLS;
                int64_t words = ct_rnn_panels_size(K, N);
                float *b = fill(K * N, 3.0f, (uint64_t)(K * 100 + N * 2 + trans));
                b[0] = NAN;
                uint32_t *w[2], *r[2];
                for (int plain = 0; plain <= 1; plain++) {
                    w[plain] = malloc((size_t)words * sizeof(uint32_t));
                    r[plain] = malloc((size_t)(3 * ct_rnn_pairs(K)) * sizeof(uint32_t));
                    memset(w[plain], 0xa5, (size_t)words * sizeof(uint32_t));
                    ct_cpu_set_no_avx512(plain == 1);
                    ct_rnn_pack_panels_bf16(b, K, N, trans == 1, w[plain], 0, np);
                    ct_rnn_rows_bf16(b, K, 3 > N ? N : 3, K, r[plain]); /* rows of K from b */
                    ct_cpu_set_no_avx512(false);
                }
                int64_t used = np * CT_RNN_PANEL_COLS * ct_rnn_pairs(K);
                cr_assert_eq(memcmp(w[0], w[1], (size_t)used * sizeof(uint32_t)), 0,
                             "K %lld N %lld%s: the panels differ", (long long)K, (long long)N, trans ? " (trans)" : "");
                int64_t rows = 3 > N ? N : 3;
                cr_assert_eq(memcmp(r[0], r[1], (size_t)(rows * ct_rnn_pairs(K)) * sizeof(uint32_t)), 0,
                             "K %lld: the rows differ", (long long)K);
                free(b), free(w[0]), free(w[1]), free(r[0]), free(r[1]);
            }
}

/* The half rounding of the products' rows (ct_rnn_round_rows: F16 by
 * AVX-512's conversion where there is one) gives ct_round_half's values:
 * ordinary values, F16's overflow and subnormal range, ties, signed zeros,
 * infinities (a NaN stays a NaN). */
Test(rnn_fast, round_rows_matches_scalar_rounding) {
    const int64_t n = 4099;
    float *a = fill(n, 1.0f, 91), *out = malloc((size_t)n * sizeof(float));
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65519.0f, 65520.0f, -70000.0f,
                             6.1e-5f, 5.96e-8f, 2.98e-8f, 3e-8f, -1e-9f, 1.00048828125f, 1.00146484375f,
                             1.001953125f + 4.8828125e-4f, 3.0e38f, 1e-40f};
    const int ns = (int)(sizeof special / sizeof special[0]);
    for (int64_t i = 0; i < n; i++) a[i] *= powf(2.0f, (float)(i % 61) - 40.0f); /* F16's range and past it */
    for (int i = 0; i < ns; i++) a[i * 7] = special[i];
    const ct_dtype halves[] = {CT_F16, CT_BF16};
    for (int hi = 0; hi < 2; hi++)
        for (int plain = 0; plain <= 1; plain++) {
            ct_cpu_set_no_avx512(plain == 1);
            ct_rnn_round_rows(a, 0, 1, n, halves[hi], out);
            ct_cpu_set_no_avx512(false);
            for (int64_t i = 0; i < n; i++) {
                float want = ct_round_half(a[i], halves[hi]);
                if (isnan(want)) {
                    cr_assert(isnan(out[i]), "%s: %g gave %g", ct_dtype_name(halves[hi]), a[i], out[i]);
                    continue;
                }
                cr_assert_eq(memcmp(&out[i], &want, sizeof want), 0, "%s%s: %.9g gave %.9g, expected %.9g",
                             ct_dtype_name(halves[hi]), plain ? " (plain)" : "", a[i], out[i], want);
            }
        }
    free(a), free(out);
}
