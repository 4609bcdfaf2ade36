/* Internal: the CPU backend's fast paths, vectorised and threaded without
 * changing a bit (docs/cpu_backend.md).
 *
 * A fast path is a loop over a range [lo, hi) of independent elements,
 * written once as an always-inline body and compiled three times: for the
 * baseline x86-64 (SSE2) the library is built for, with AVX2 and with
 * AVX-512 enabled, chosen at run time from CPUID. The arithmetic is the
 * reference's, in the same order and precision (double per element where the reference
 * computes in double): vector adds, multiplies, divides, square roots and
 * conversions round exactly as their scalar forms do, and the library is
 * compiled with -ffp-contract=off, so no multiply-add is fused. Only FMA
 * would change results, and no clone enables it.
 *
 * ct_par_ranges() shares [0, n) out as one contiguous chunk per OpenMP
 * thread (what schedule(static) does); every element is computed alone, so
 * the result does not depend on the number of threads.
 *
 * ct_cpu_fast_paths_enabled() is the switch the tests use to run the kept
 * reference loops instead (CTRAIN_CPU_REFERENCE=1 in the environment, or
 * ct_cpu_set_fast_paths(false)), and compare the bytes.
 */
#ifndef CT_CPU_SIMD_H
#define CT_CPU_SIMD_H

#include <omp.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CT_SIMD_X86 1
#define CT_TARGET_AVX2 __attribute__((target("avx2")))
#define CT_TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512dq")))
#else
#define CT_SIMD_X86 0
#define CT_TARGET_AVX2
#define CT_TARGET_AVX512
#endif
#define CT_ALWAYS_INLINE inline __attribute__((always_inline))
/* Before a fast path's loop: its iterations are independent (the loops
 * touch element i only), which the compiler cannot always prove for five
 * buffers; OpenMP's simd says so without changing any element's arithmetic.
 * gcc only: clang warns (an error with -Werror) where it cannot vectorise
 * a loop so marked, as in the -O1 sanitizer build; it still vectorises
 * what it can prove. */
#if defined(__GNUC__) && !defined(__clang__)
#define CT_SIMD_LOOP _Pragma("omp simd")
#else
#define CT_SIMD_LOOP
#endif

/* A range worker: computes elements [lo, hi) of the job described by ctx. */
typedef void (*ct_range_fn)(const void *ctx, int64_t lo, int64_t hi);

/* Whether this CPU runs AVX2 code (CPUID, asked once), unless the tests
 * asked for the baseline clones (ct_cpu_set_baseline_only). */
bool ct_cpu_has_avx2(void);
void ct_cpu_set_baseline_only(bool on);
/* Whether this CPU runs the AVX-512 clones (F, VL, BW, DQ), unless the
 * tests asked for the baseline ones or for no AVX-512 (ct_cpu_set_no_avx512:
 * the AVX2 clones then run, so a machine with AVX-512 tests all three). */
bool ct_cpu_has_avx512(void);
void ct_cpu_set_no_avx512(bool on);
/* Whether the AVX-512 clones run and the CPU has AVX512-BF16 (its dot
 * product of BF16 pairs). */
bool ct_cpu_has_avx512_bf16(void);
/* Whether the fast paths run (default) or the reference loops do. */
bool ct_cpu_fast_paths_enabled(void);
void ct_cpu_set_fast_paths(bool on);

/* Which clones run: 2 AVX-512, 1 AVX2, 0 the baseline (as the switches
 * above say). */
static inline int ct_cpu_simd_level(void) {
    return !CT_SIMD_X86 ? 0 : ct_cpu_has_avx512() ? 2 : ct_cpu_has_avx2() ? 1 : 0;
}

/* relu in float with ct_ew_relu's bits (core/ew_math.h: a NaN stays NaN,
 * a negative or -0 gives +0), as selects, so a fast path's loop over it
 * vectorises without branches. */
static CT_ALWAYS_INLINE float ct_relu_f32(float v) { return v != v ? v : (v > 0.0f ? v : 0.0f); }

/* Defines `static ct_range_fn NAME(void)`, which returns the worker that
 * runs BODY(const CTX *ctx, int64_t lo, int64_t hi) compiled for the best
 * instruction set this CPU has: baseline, AVX2 or AVX-512 (16 floats a
 * vector: the same operations on twice the lanes, so the same bits, and
 * half the instructions of the compute-bound loops, GELU's and the
 * softmax's). BODY must be static CT_ALWAYS_INLINE so each clone gets its
 * own copy compiled for its target. */
#define CT_RANGE_KERNEL(NAME, BODY, CTX)                                                           \
    static void NAME##_base(const void *c, int64_t lo, int64_t hi) { BODY((const CTX *)c, lo, hi); } \
    static CT_TARGET_AVX2 void NAME##_avx2(const void *c, int64_t lo, int64_t hi) {                 \
        BODY((const CTX *)c, lo, hi);                                                              \
    }                                                                                              \
    static CT_TARGET_AVX512 void NAME##_avx512(const void *c, int64_t lo, int64_t hi) {             \
        BODY((const CTX *)c, lo, hi);                                                              \
    }                                                                                              \
    static ct_range_fn NAME(void) {                                                                \
        const ct_range_fn clones[3] = {NAME##_base, NAME##_avx2, NAME##_avx512};                   \
        return clones[ct_cpu_simd_level()];                                                        \
    }

/* Runs fn over [0, n): on one thread below par_min elements, else one
 * contiguous chunk per thread, chunk starts on 64-byte boundaries of
 * 4-byte elements (so threads do not share a cache line of the output). */
static inline void ct_par_ranges(int64_t n, int64_t par_min, ct_range_fn fn, const void *ctx) {
    if (n <= 0) return;
    if (n < par_min || omp_get_max_threads() == 1) {
        fn(ctx, 0, n);
        return;
    }
#pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = (n + nt - 1) / nt;
        per = (per + 15) / 16 * 16;
        int64_t lo = t * per, hi = lo + per < n ? lo + per : n;
        if (lo < hi) fn(ctx, lo, hi);
    }
}

#endif
