/* The CPU backend's fast paths (vectorised, threaded; cpu_simd.h) give the
 * bytes its kept reference loops give.
 *
 * Each case runs with the fast paths switched off (ct_cpu_set_fast_paths:
 * the reference loops, one thread) and on, on 1, 2 and 3 threads (once with
 * the baseline SSE2 clones instead of the AVX2 ones), and the output bytes
 * must be identical: the fast paths change the speed of the
 * reference backend, never a result (the F32 float-math paths of
 * cpu_vmath.h excepted: test_ew_float.c compares them within a tolerance;
 * and the F32 SGD, Adam and AdamW updates, in float arithmetic as PyTorch's:
 * compared here within a stated tolerance, over one step and over 300,
 * while their F64 updates stay the reference's bytes). Inputs include NaN, infinities and
 * signed zeros, sizes with odd tails around the vector widths and the
 * parallel thresholds, and every mix of frozen and decayed elements.
 * The F32 convolutions are the exception: their fast paths sum in another
 * order (tests/test_conv_fast.c compares them with a tolerance), so here
 * they are only checked to be the same on 1, 2 and 3 threads.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/device.h"
#include "cpu_par_cases.h"

/* ---- optimizer updates ---------------------------------------------------- */

typedef struct fast_cfg {
    const char *name;
    ct_optim_kind kind;
    double momentum, dampening, weight_decay, l1;
    bool nesterov;
    int64_t t;
    bool amsgrad, maximize;
} fast_cfg;

static const fast_cfg cfgs[] = {
    {"sgd", CT_OPTIM_SGD, 0, 0, 0, 0, false, 3, false, false},
    {"sgd wd l1", CT_OPTIM_SGD, 0, 0, 1e-2, 1e-3, false, 3, false, false},
    {"sgd momentum first step", CT_OPTIM_SGD, 0.9, 0.1, 1e-2, 0, false, 1, false, false},
    {"sgd momentum dampening", CT_OPTIM_SGD, 0.9, 0.1, 1e-2, 0, false, 4, false, false},
    {"sgd nesterov l1", CT_OPTIM_SGD, 0.9, 0, 0, 1e-3, true, 2, false, false},
    {"adam", CT_OPTIM_ADAM, 0, 0, 0, 0, false, 1, false, false},
    {"adam coupled wd l1", CT_OPTIM_ADAM, 0, 0, 1e-2, 1e-3, false, 7, false, false},
    {"adamw", CT_OPTIM_ADAMW, 0, 0, 0.1, 0, false, 5, false, false},
    {"adamw l1", CT_OPTIM_ADAMW, 0, 0, 0.1, 1e-3, false, 2, false, false},
    {"adamw amsgrad", CT_OPTIM_ADAMW, 0, 0, 0.1, 0, false, 4, true, false},
    {"adam maximize", CT_OPTIM_ADAM, 0, 0, 1e-2, 0, false, 3, false, true},
    {"adam coupled wd", CT_OPTIM_ADAM, 0, 0, 1e-2, 0, false, 3, false, false},
    {"sgd nesterov wd maximize", CT_OPTIM_SGD, 0.9, 0, 1e-2, 0, true, 2, false, true},
};

/* Flags: a random mix, none frozen, all frozen, runs of 13 frozen among
 * runs of 29 unfrozen (the word-at-a-time scan's edges). */
enum { PAT_MIX, PAT_NONE, PAT_ALL, PAT_RUNS, PAT_COUNT };

static uint8_t flag_at(int pat, int64_t j, uint64_t r) {
    switch (pat) {
    case PAT_MIX: return r % 8 == 0 ? CT_PFLAG_FROZEN : r % 8 < 5 ? CT_PFLAG_DECAY : 0;
    case PAT_NONE: return r % 2 ? CT_PFLAG_DECAY : 0;
    case PAT_ALL: return CT_PFLAG_FROZEN | (r % 2 ? CT_PFLAG_DECAY : 0);
    default: return (j % 42 < 13 ? CT_PFLAG_FROZEN : 0) | (r % 3 ? CT_PFLAG_DECAY : 0);
    }
}

static ct_optim_args args_of(const fast_cfg *c, ct_dtype dt, int64_t n, void *out, const void *grads,
                             const uint8_t *flags, int64_t t) {
    size_t es = ct_dtype_size(dt);
    unsigned char *o = out;
    return (ct_optim_args){.kind = c->kind, .dtype = dt, .n = (size_t)n, .params = o, .grads = grads,
                           .state0 = o + n * es, .state1 = o + 2 * n * es, .state2 = o + 3 * n * es,
                           .flags = flags, .t = t, .lr = 1e-2, .momentum = c->momentum,
                           .dampening = c->dampening, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                           .weight_decay = c->weight_decay, .l1 = c->l1, .nesterov = c->nesterov,
                           .amsgrad = c->amsgrad, .maximize = c->maximize,
                           .decoupled = c->kind == CT_OPTIM_ADAMW};
}

/* Params and three state buffers after one update (malloc'd, 4n floats). */
static uint8_t *flags_of(int64_t n, int pat) {
    uint8_t *flags = malloc((size_t)n + 1);
    uint64_t s = 7 + (uint64_t)pat;
    for (int64_t j = 0; j < n; j++) flags[j] = flag_at(pat, j, cpc_next(&s));
    return flags;
}

/* The first byte where a and b differ (n when none), counting two F32 NaNs
 * as equal whatever their sign and payload: IEEE leaves which operand's NaN
 * a sum returns to the order of its operands, and a compiler may swap the
 * operands of an addition (clang does, vectorising the same loop), so a sum
 * that meets NaNs of both signs may give either. Every other value,
 * signed zeros and infinities included, must match to the bit. */
static size_t first_difference(const unsigned char *a, const unsigned char *b, size_t n, ct_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue;
        if (dt != CT_F32) return i;
        size_t w = i / 4 * 4;
        float x, y;
        memcpy(&x, a + w, 4), memcpy(&y, b + w, 4);
        if (!(x != x && y != y)) return i;
        i = w + 3; /* both NaN: the next element */
    }
    return n;
}

static float *run_update(const fast_cfg *c, int64_t n, int pat, bool fast, int threads) {
    uint8_t *flags = flags_of(n, pat);
    float *grads = cpc_fill(CT_F32, n, CPC_SPECIAL, 11 + (uint64_t)n, 0);
    float *out = malloc(4 * (size_t)n * sizeof(float) + 4);
    float *init[4] = {cpc_fill(CT_F32, n, CPC_SPECIAL, 21 + (uint64_t)n, 0),
                      cpc_fill(CT_F32, n, CPC_RANDOM, 31 + (uint64_t)n, 0),
                      cpc_fill(CT_F32, n, CPC_POSITIVE, 41 + (uint64_t)n, 0),
                      cpc_fill(CT_F32, n, CPC_POSITIVE, 51 + (uint64_t)n, 0)};
    for (int b = 0; b < 4; b++) {
        memcpy(out + b * n, init[b], (size_t)n * sizeof(float));
        free(init[b]);
    }
    ct_optim_args a = args_of(c, CT_F32, n, out, grads, flags, c->t);
    omp_set_num_threads(threads);
    ct_cpu_set_fast_paths(fast);
    ct_status st = ct_cpu_backend()->optim_update(&a);
    ct_cpu_set_fast_paths(true);
    cr_assert_eq(st, CT_OK, "%s: %s", c->name, ct_last_error());
    free(grads);
    free(flags);
    return out;
}

/* One float step against the reference's: the same NaNs and infinities,
 * finite values within 8 float ulps (2^-20) of the largest magnitude they
 * are computed from (an update near cancellation is no more exact than its
 * terms): the result, the value before, and for the parameters lr times
 * the gradient and the first state (the step's terms: SGD's buffer,
 * Adam's moment; lr is 1e-2 here). Frozen elements keep every bit. The
 * long-run bound is float_updates_near_reference_over_steps'. */
static void check_near(const fast_cfg *c, int64_t n, int pat, const uint8_t *flags, const float *ref,
                       const float *got) {
    float *g = cpc_fill(CT_F32, n, CPC_SPECIAL, 11 + (uint64_t)n, 0);
    float *before[2] = {cpc_fill(CT_F32, n, CPC_SPECIAL, 21 + (uint64_t)n, 0),
                        cpc_fill(CT_F32, n, CPC_RANDOM, 31 + (uint64_t)n, 0)};
    for (int64_t j = 0; j < 4 * n; j++) {
        float r = ref[j], f = got[j];
        bool frozen = flags[j % n] & CT_PFLAG_FROZEN;
        if (frozen || r != r || f != f || isinf(r) || isinf(f)) {
            cr_assert((r != r && f != f) || memcmp(&r, &f, 4) == 0, "%s, n %lld, flags %d, [%lld]: %g vs reference %g",
                      c->name, (long long)n, pat, (long long)j, f, r);
            continue;
        }
        double scale = fabs(r);
        if (j < 2 * n) scale = fmax(scale, fabs(before[j / n][j % n]));
        if (j < n) scale = fmax(scale, 1e-2 * (fabs(g[j]) + fabs(before[1][j])));
        cr_assert(fabs((double)f - r) <= 0x1p-20 * scale, "%s, n %lld, flags %d, [%lld]: %.9g vs reference %.9g",
                  c->name, (long long)n, pat, (long long)j, f, r);
    }
    free(g);
    free(before[0]);
    free(before[1]);
}

/* SGD, Adam and AdamW on F32 run in float arithmetic (cpu_optim_fast.c):
 * near the reference's bytes (check_near), and the same bytes on 1, 2 and
 * 3 threads, baseline (SSE2) clones or AVX2. */
Test(cpu_fast, optimizer_updates_near_reference) {
    const int64_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 33, 100, 1001, 40001, 70001};
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int pat = 0; pat < PAT_COUNT; pat++) {
                const fast_cfg *c = &cfgs[ci];
                const int64_t n = sizes[si];
                float *ref = run_update(c, n, pat, false, 1);
                uint8_t *flags = flags_of(n, pat);
                /* real values: the update changed something where few are frozen */
                float *before = cpc_fill(CT_F32, n, CPC_SPECIAL, 21 + (uint64_t)n, 0);
                if ((pat == PAT_MIX || pat == PAT_NONE) && n > 8)
                    cr_assert(memcmp(ref, before, (size_t)n * sizeof(float)) != 0,
                              "%s, n %lld, flags %d: nothing updated", c->name, (long long)n, pat);
                free(before);
                float *one = NULL;
                for (int run = 1; run <= 4; run++) {
                    /* 1: the best clones this CPU has, on 1 thread; 2: the
                     * baseline (SSE2) ones and 3: AVX2 (no AVX-512), on 2
                     * and 3 threads; 4: the best again, on 3 threads */
                    const int threads = run == 4 ? 3 : run;
                    ct_cpu_set_baseline_only(run == 2);
                    ct_cpu_set_no_avx512(run == 3);
                    float *fast = run_update(c, n, pat, true, threads);
                    ct_cpu_set_baseline_only(false);
                    ct_cpu_set_no_avx512(false);
                    if (run == 1) { /* near the reference; the others, its bytes exactly */
                        check_near(c, n, pat, flags, ref, fast);
                        one = fast;
                        continue;
                    }
                    /* every byte for the same clones; across clones, NaN
                     * payloads aside (first_difference says why) */
                    size_t bytes = 4 * (size_t)n * sizeof(float);
                    size_t first = first_difference((const unsigned char *)one, (const unsigned char *)fast, bytes,
                                                     run == 4 ? CT_U8 : CT_F32);
                    cr_assert_eq(first, bytes, "%s, n %lld, flags %d, run %d (%d threads): differs at byte %zu",
                                 c->name, (long long)n, pat, run, threads, first);
                    free(fast);
                }
                free(one);
                free(ref);
                free(flags);
            }
}

/* SGD, Adam and AdamW in float (cpu_optim_fast.c) against the double
 * reference over many steps from the same start (zero state, as a run
 * starts), each step's gradients fresh random values in three classes of
 * magnitude (1, 1e-2, 1e-4: a spread of second moments). The two
 * trajectories part by roundings that accumulate; the error of a buffer is
 * the largest difference over the largest reference value within each
 * class (relative to the class's scale: a moment that crosses zero is no
 * more exact than its terms). Measured over 300 steps of 4099 elements
 * (AVX2 and SSE2 give the same bits; printed per configuration):
 * parameters 5.7e-7 (SGD), 4.8e-7 (Adam) and 4.3e-6 (AdamW: its factor
 * 1 - lr * wd rounded to float, as PyTorch rounds it, is 1.3e-8 off, which
 * the 300 steps compound); SGD's buffer 6.2e-7; Adam's first moments
 * 1.8e-6, second moments 4.4e-6 (the mean of b2 = 0.999 remembers a
 * thousand steps of roundings). Asserted: 2e-5 for each, every step.
 * L1 is left to the one-step check: its sign(w) jumps where the weights
 * sit (L1 drives them to zero), so two trajectories a rounding apart part
 * by a whole step there, in double as in float. */
static double worst_err(const float *f, const float *r, int64_t n) {
    double diff[3] = {0, 0, 0}, size[3] = {0, 0, 0}, worst = 0;
    for (int64_t j = 0; j < n; j++) {
        double d = fabs((double)f[j] - r[j]);
        diff[j % 3] = d > diff[j % 3] || d != d ? d : diff[j % 3]; /* a NaN stays */
        size[j % 3] = fmax(size[j % 3], fabs((double)r[j]));
    }
    for (int k = 0; k < 3; k++) worst = fmax(worst, diff[k] != diff[k] ? INFINITY : diff[k] / size[k]);
    return worst;
}

Test(cpu_fast, float_updates_near_reference_over_steps) {
    const int64_t n = 4099, steps = 300;
    const int cases[] = {0, 3, 12, 5, 11, 7, 9, 10}; /* the entries of cfgs without L1 */
    uint8_t *flags = malloc((size_t)n);
    float *grads = malloc((size_t)n * 4), *mag = malloc((size_t)n * 4);
    float *buf[2] = {malloc(4 * (size_t)n * 4), malloc(4 * (size_t)n * 4)};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const fast_cfg *c = &cfgs[cases[ci]];
        double worst[3] = {0, 0, 0};
        uint64_t s = 3 + ci;
        for (int64_t j = 0; j < n; j++) {
            flags[j] = flag_at(PAT_MIX, j, cpc_next(&s));
            mag[j] = j % 3 == 0 ? 1.0f : j % 3 == 1 ? 1e-2f : 1e-4f;
        }
        float *init = cpc_fill(CT_F32, n, CPC_RANDOM, 77 + ci, 0);
        for (int k = 0; k < 2; k++) {
            memcpy(buf[k], init, (size_t)n * 4);
            memset(buf[k] + n, 0, 3 * (size_t)n * 4); /* zero moments, as a run starts */
        }
        free(init);
        for (int64_t t = 1; t <= steps; t++) {
            for (int64_t j = 0; j < n; j++)
                grads[j] = mag[j] * (float)((double)(cpc_next(&s) >> 11) / 4503599627370496.0 - 1.0);
            for (int k = 0; k < 2; k++) { /* 0: the reference, 1: the float path on 2 threads */
                ct_optim_args a = args_of(c, CT_F32, n, buf[k], grads, flags, t);
                ct_cpu_set_fast_paths(k == 1);
                omp_set_num_threads(k + 1);
                cr_assert_eq(ct_cpu_backend()->optim_update(&a), CT_OK);
            }
            ct_cpu_set_fast_paths(true);
            double e[3] = {worst_err(buf[1], buf[0], n), worst_err(buf[1] + n, buf[0] + n, n),
                           worst_err(buf[1] + 2 * n, buf[0] + 2 * n, n)};
            for (int b = 0; b < 3; b++) {
                cr_assert(e[b] <= 2e-5, "%s, step %lld, buffer %d: relative error %.3g", c->name, (long long)t, b,
                          e[b]);
                worst[b] = fmax(worst[b], e[b]);
            }
        }
        /* frozen elements kept every bit on both paths */
        float *start = cpc_fill(CT_F32, n, CPC_RANDOM, 77 + ci, 0);
        for (int64_t j = 0; j < n; j++)
            if (flags[j] & CT_PFLAG_FROZEN) cr_assert(buf[1][j] == start[j] && buf[0][j] == start[j]);
        free(start);
        fprintf(stderr, "%s, float over %lld steps: worst relative error params %.2g, state0 %.2g, state1 %.2g\n",
                c->name, (long long)steps, worst[0], worst[1], worst[2]);
    }
    free(flags);
    free(grads);
    free(mag);
    free(buf[0]);
    free(buf[1]);
}

/* F64 buffers keep the reference's double loops: the bytes of every F64
 * SGD, Adam and AdamW update of cfgs are the reference's with the fast
 * paths on. */
Test(cpu_fast, f64_updates_are_the_reference) {
    const int64_t n = 40001;
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const fast_cfg *c = &cfgs[ci];
        uint8_t *flags = malloc((size_t)n);
        uint64_t s = 5;
        for (int64_t j = 0; j < n; j++) flags[j] = flag_at(PAT_MIX, j, cpc_next(&s));
        double *g = cpc_fill(CT_F64, n, CPC_SPECIAL, 9, 0);
        double *out[2];
        for (int k = 0; k < 2; k++) {
            out[k] = malloc(4 * (size_t)n * 8);
            for (int b = 0; b < 4; b++) {
                double *init = cpc_fill(CT_F64, n, b == 0 ? CPC_SPECIAL : CPC_POSITIVE, 10 + (uint64_t)b, 0);
                memcpy(out[k] + b * n, init, (size_t)n * 8);
                free(init);
            }
            ct_optim_args a = args_of(c, CT_F64, n, out[k], g, flags, c->t);
            ct_cpu_set_fast_paths(k == 1);
            omp_set_num_threads(k == 1 ? 2 : 1);
            cr_assert_eq(ct_cpu_backend()->optim_update(&a), CT_OK);
        }
        ct_cpu_set_fast_paths(true);
        cr_assert(memcmp(out[0], out[1], 4 * (size_t)n * 8) == 0, "%s: f64 differs from the reference", c->name);
        free(out[0]);
        free(out[1]);
        free(g);
        free(flags);
    }
}

/* The flat-buffer hooks beside the update: the sum of squares behind
 * clipping by norm, scale-and-clamp, and axpby (gradient accumulation). */
Test(cpu_fast, flat_buffer_hooks_match_reference) {
    const ct_backend *be = ct_cpu_backend();
    const int64_t sizes[] = {1, 9, 17, 1001, 70001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int64_t n = sizes[si];
        float *x = cpc_fill(CT_F32, n, CPC_SPECIAL, 5 + (uint64_t)n, 0);
        float *y0 = cpc_fill(CT_F32, n, CPC_RANDOM, 6 + (uint64_t)n, 0);
        float *fin = cpc_fill(CT_F32, n, CPC_RANDOM, 7 + (uint64_t)n, 0);
        for (int fast = 0; fast <= 1; fast++) {
            double ss[2];
            bool ok[2];
            float *r[2][3];
            for (int pass = 0; pass < 2; pass++) {
                /* pass 0: the reference on 1 thread; pass 1: `fast` on 2 */
                ct_cpu_set_fast_paths(pass == 1 && fast);
                omp_set_num_threads(pass + 1);
                cr_assert_eq(be->sumsq(fin, CT_F32, (size_t)n, &ss[pass], &ok[pass]), CT_OK);
                for (int h = 0; h < 3; h++) r[pass][h] = malloc((size_t)n * 4);
                memcpy(r[pass][0], x, (size_t)n * 4);
                cr_assert_eq(be->scale_clamp(r[pass][0], CT_F32, (size_t)n, 0.37, 0.5), CT_OK);
                memcpy(r[pass][1], y0, (size_t)n * 4);
                cr_assert_eq(be->axpby(0.3, x, 0.7, r[pass][1], CT_F32, (size_t)n), CT_OK);
                memcpy(r[pass][2], y0, (size_t)n * 4);
                cr_assert_eq(be->axpby(1.5, x, 0.0, r[pass][2], CT_F32, (size_t)n), CT_OK);
            }
            ct_cpu_set_fast_paths(true);
            cr_assert(memcmp(&ss[0], &ss[1], sizeof ss[0]) == 0 && ok[0] == ok[1] && ok[0],
                      "sumsq, n %lld: %.17g vs %.17g", (long long)n, ss[0], ss[1]);
            for (int h = 0; h < 3; h++) {
                cr_assert(memcmp(r[0][h], r[1][h], (size_t)n * 4) == 0, "hook %d, n %lld, fast %d differs", h,
                          (long long)n, fast);
                free(r[0][h]);
                free(r[1][h]);
            }
        }
        /* and the non-finite buffer is seen as such by both */
        for (int fast = 0; fast <= 1; fast++) {
            double s;
            bool f = true;
            ct_cpu_set_fast_paths(fast);
            cr_assert_eq(be->sumsq(x, CT_F32, (size_t)n, &s, &f), CT_OK);
            cr_assert(n < 6 || !f, "n %lld: NaN/inf not reported", (long long)n);
        }
        ct_cpu_set_fast_paths(true);
        free(x);
        free(y0);
        free(fin);
    }
}

/* ---- every kernel case of cpu_par_cases.h -------------------------------- */

Test(cpu_fast, kernel_cases_match_reference) {
    for (int i = 0; i < CPC_COUNT; i++) {
        /* float math: near the reference, not its bytes (test_ew_float.c) */
        if (cpc_float_math(i)) continue;
        /* BLAS products run on OpenMP's threads: compare at one count
         * (test_cpu_parallel.c says why) */
        /* the float-arithmetic optimizer updates too (float_updates_near_reference_over_steps) */
        bool blas = cpc_blas_backed(i), reorders = cpc_fast_reorders(i) || cpc_optim_float(i);
        size_t nr, nf;
        ct_status sr, sf;
        /* a fast path that sums in its own order is its own reference, on 1 thread */
        ct_cpu_set_fast_paths(reorders);
        unsigned char *ref = cpc_run(i, blas && !reorders ? 2 : 1, 0xa5, &nr, &sr);
        ct_cpu_set_fast_paths(true);
        cr_assert_eq(sr, CT_OK, "%s: %s", cpc_name(i), ct_last_error());
        for (int threads = blas ? 2 : 1; threads <= 3; threads++) {
            ct_cpu_set_baseline_only(threads == 3);
            ct_cpu_set_no_avx512(threads == 2); /* AVX2; on 1 thread the best clones */
            unsigned char *fast = cpc_run(i, threads, (unsigned char)(0x30 + threads), &nf, &sf);
            ct_cpu_set_baseline_only(false);
            ct_cpu_set_no_avx512(false);
            cr_assert_eq(sf, CT_OK, "%s: %s", cpc_name(i), ct_last_error());
            cr_assert_eq(nf, nr);
            /* the optimizer cases (after the kernels) compare every byte */
            size_t first = first_difference(ref, fast, nr, i < CPC_N_KERNELS ? cpc_cases[i].out_dt : CT_F64);
            cr_assert_eq(first, nr, "%s on %d threads: fast path differs from the reference at byte %zu of %zu",
                         cpc_name(i), threads, first, nr);
            free(fast);
        }
        free(ref);
    }
}

Test(cpu_fast, features_are_reported) {
    const char *f = ct_cpu_features();
    cr_assert_not_null(f);
    cr_assert(strstr(f, "fast paths: "), "'%s'", f);
}

Test(cpu_fast, set_threads) {
    cr_assert_eq(ct_cpu_set_threads(0), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "ct_cpu_set_threads"), "%s", ct_last_error());
    cr_assert_eq(ct_cpu_set_threads(4097), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_cpu_set_threads(3), CT_OK);
    cr_assert_eq(omp_get_max_threads(), 3);
    cr_assert_eq(ct_cpu_set_threads(1), CT_OK);
    cr_assert_eq(omp_get_max_threads(), 1);
}
