/* The CPU backend's fast paths (vectorised, threaded; cpu_simd.h) give the
 * bytes its kept reference loops give.
 *
 * Each case runs with the fast paths switched off (ct_cpu_set_fast_paths:
 * the reference loops, one thread) and on, on 1, 2 and 3 threads (once with
 * the baseline SSE2 clones instead of the AVX2 ones), and the output bytes
 * must be identical: the fast paths change the speed of the
 * reference backend, never a result (the F32 float-math paths of
 * cpu_vmath.h excepted: test_ew_float.c compares them within a tolerance). Inputs include NaN, infinities and
 * signed zeros, sizes with odd tails around the vector widths and the
 * parallel thresholds, and every mix of frozen and decayed elements.
 * The F32 convolutions are the exception: their fast paths sum in another
 * order (tests/test_conv_fast.c compares them with a tolerance), so here
 * they are only checked to be the same on 1, 2 and 3 threads.
 */
#include <criterion/criterion.h>
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
} fast_cfg;

static const fast_cfg cfgs[] = {
    {"sgd", CT_OPTIM_SGD, 0, 0, 0, 0, false, 3},
    {"sgd wd l1", CT_OPTIM_SGD, 0, 0, 1e-2, 1e-3, false, 3},
    {"sgd momentum first step", CT_OPTIM_SGD, 0.9, 0.1, 1e-2, 0, false, 1},
    {"sgd momentum dampening", CT_OPTIM_SGD, 0.9, 0.1, 1e-2, 0, false, 4},
    {"sgd nesterov l1", CT_OPTIM_SGD, 0.9, 0, 0, 1e-3, true, 2},
    {"adam", CT_OPTIM_ADAM, 0, 0, 0, 0, false, 1},
    {"adam coupled wd l1", CT_OPTIM_ADAM, 0, 0, 1e-2, 1e-3, false, 7},
    {"adamw", CT_OPTIM_ADAMW, 0, 0, 0.1, 0, false, 5},
    {"adamw l1", CT_OPTIM_ADAMW, 0, 0, 0.1, 1e-3, false, 2},
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

/* Params and two state buffers after one update (malloc'd, 3n floats). */
static float *run_update(const fast_cfg *c, int64_t n, int pat, bool fast, int threads) {
    uint8_t *flags = malloc((size_t)n + 1);
    uint64_t s = 7 + (uint64_t)pat;
    for (int64_t j = 0; j < n; j++) flags[j] = flag_at(pat, j, cpc_next(&s));
    float *grads = cpc_fill(CT_F32, n, CPC_SPECIAL, 11 + (uint64_t)n, 0);
    float *out = malloc(3 * (size_t)n * sizeof(float) + 4);
    float *init[3] = {cpc_fill(CT_F32, n, CPC_SPECIAL, 21 + (uint64_t)n, 0),
                      cpc_fill(CT_F32, n, CPC_RANDOM, 31 + (uint64_t)n, 0),
                      cpc_fill(CT_F32, n, CPC_POSITIVE, 41 + (uint64_t)n, 0)};
    for (int b = 0; b < 3; b++) {
        memcpy(out + b * n, init[b], (size_t)n * sizeof(float));
        free(init[b]);
    }
    ct_optim_args a = {.kind = c->kind, .dtype = CT_F32, .n = (size_t)n, .params = out, .grads = grads,
                       .state0 = out + n, .state1 = out + 2 * n, .flags = flags, .t = c->t, .lr = 1e-2,
                       .momentum = c->momentum, .dampening = c->dampening, .beta1 = 0.9, .beta2 = 0.999,
                       .eps = 1e-8, .weight_decay = c->weight_decay, .l1 = c->l1, .nesterov = c->nesterov,
                       .decoupled = c->kind == CT_OPTIM_ADAMW};
    omp_set_num_threads(threads);
    ct_cpu_set_fast_paths(fast);
    ct_status st = ct_cpu_backend()->optim_update(&a);
    ct_cpu_set_fast_paths(true);
    cr_assert_eq(st, CT_OK, "%s: %s", c->name, ct_last_error());
    free(grads);
    free(flags);
    return out;
}

Test(cpu_fast, optimizer_updates_match_reference) {
    const int64_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 33, 100, 1001, 40001, 70001};
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int pat = 0; pat < PAT_COUNT; pat++) {
                const int64_t n = sizes[si];
                float *ref = run_update(&cfgs[ci], n, pat, false, 1);
                /* real values: the update changed something where few are frozen */
                float *before = cpc_fill(CT_F32, n, CPC_SPECIAL, 21 + (uint64_t)n, 0);
                if ((pat == PAT_MIX || pat == PAT_NONE) && n > 8)
                    cr_assert(memcmp(ref, before, (size_t)n * sizeof(float)) != 0,
                              "%s, n %lld, flags %d: nothing updated", cfgs[ci].name, (long long)n, pat);
                free(before);
                for (int threads = 1; threads <= 3; threads++) {
                    /* on 2 threads, the baseline (SSE2) clones instead of AVX2 */
                    ct_cpu_set_baseline_only(threads == 2);
                    float *fast = run_update(&cfgs[ci], n, pat, true, threads);
                    ct_cpu_set_baseline_only(false);
                    size_t bytes = 3 * (size_t)n * sizeof(float), first = bytes;
                    for (size_t b = 0; b < bytes && first == bytes; b++)
                        if (((unsigned char *)ref)[b] != ((unsigned char *)fast)[b]) first = b;
                    cr_assert_eq(first, bytes, "%s, n %lld, flags %d, %d threads: differs at byte %zu",
                                 cfgs[ci].name, (long long)n, pat, threads, first);
                    free(fast);
                }
                free(ref);
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

Test(cpu_fast, kernel_cases_match_reference) {
    for (int i = 0; i < CPC_COUNT; i++) {
        /* float math: near the reference, not its bytes (test_ew_float.c) */
        if (cpc_float_math(i)) continue;
        /* BLAS products run on OpenMP's threads: compare at one count
         * (test_cpu_parallel.c says why) */
        bool blas = cpc_blas_backed(i), reorders = cpc_fast_reorders(i);
        size_t nr, nf;
        ct_status sr, sf;
        /* a fast path that sums in its own order is its own reference, on 1 thread */
        ct_cpu_set_fast_paths(reorders);
        unsigned char *ref = cpc_run(i, blas && !reorders ? 2 : 1, 0xa5, &nr, &sr);
        ct_cpu_set_fast_paths(true);
        cr_assert_eq(sr, CT_OK, "%s: %s", cpc_name(i), ct_last_error());
        for (int threads = blas ? 2 : 1; threads <= 3; threads++) {
            ct_cpu_set_baseline_only(threads == 3);
            unsigned char *fast = cpc_run(i, threads, (unsigned char)(0x30 + threads), &nf, &sf);
            ct_cpu_set_baseline_only(false);
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
