/* Float math over arrays with SLEEF's vector functions (cpu_vmath.h).
 *
 * One function table per instruction set, picked once from CPUID: AVX-512F
 * (16 lanes), AVX2 with FMA (8; SLEEF's avx2 functions use FMA), else SSE2
 * (4). A tail shorter than a vector is copied into a padded vector, so
 * every element goes through the same function whatever its position. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_vmath.h"

#if defined(CTRAIN_HAVE_SLEEF) && CT_SIMD_X86
#include <immintrin.h>
#define CT_VMATH 1
/* sleef.h declares its AVX and AVX-512 functions only when the translation
 * unit itself is compiled for those units (__AVX__, __AVX512F__); the
 * library is built for baseline x86-64 and picks at run time, so the ones
 * used are declared here, as sleef.h would. */
/* Each with the target of its vector type: clang rejects (-Werror) a
 * declaration passing __m512 or __m256 in a function without those units. */
#define SLEEF_DECL(f, v, tgt) tgt v f(v);
#define SLEEF_FOR(fn, u) \
    SLEEF_DECL(Sleef_##fn##f16_##u##avx512f, __m512, __attribute__((target("avx512f")))) \
    SLEEF_DECL(Sleef_##fn##f8_##u##avx2, __m256, __attribute__((target("avx2,fma")))) \
    SLEEF_DECL(Sleef_##fn##f4_##u##sse2, __m128, )
SLEEF_FOR(exp, u10)
SLEEF_FOR(expm1, u10)
SLEEF_FOR(log, u10)
SLEEF_FOR(log1p, u10)
SLEEF_FOR(tanh, u10)
SLEEF_FOR(erf, u10)
SLEEF_FOR(erfc, u15)
#else
#define CT_VMATH 0
#endif

bool ct_cpu_float_math(void) { return CT_VMATH && ct_cpu_fast_paths_enabled(); }

#if CT_VMATH
enum { ISA_SSE2, ISA_AVX2, ISA_AVX512 };

static int isa(void) {
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f")                                      ? ISA_AVX512
            : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? ISA_AVX2
                                                                                   : ISA_SSE2;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    /* the tests' switch to the baseline clones applies here too */
    return ct_cpu_has_avx2() ? v : ISA_SSE2;
}

/* One loop per (function, instruction set): full vectors, then the tail
 * through a padded vector (padding 1.0f: finite for every function). */
#define VLOOP(NAME, TGT, W, VT, LOAD, STORE, SET1, FN)                               \
    static TGT void NAME(const float *x, float *y, int64_t n) {                      \
        int64_t i = 0;                                                               \
        for (; i + W <= n; i += W) STORE(y + i, FN(LOAD(x + i)));                    \
        if (i < n) {                                                                 \
            float buf[W];                                                            \
            for (int j = 0; j < W; j++) buf[j] = i + j < n ? x[i + j] : 1.0f;        \
            STORE(buf, FN(LOAD(buf)));                                               \
            memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));                     \
        }                                                                            \
    }

#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2,fma")))
#define T128

#define VFUNC(name, f512, f256, f128)                                                                      \
    VLOOP(name##_512, T512, 16, __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, f512)            \
    VLOOP(name##_256, T256, 8, __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, f256)             \
    VLOOP(name##_128, T128, 4, __m128, _mm_loadu_ps, _mm_storeu_ps, _mm_set1_ps, f128)                      \
    void ct_v##name(const float *x, float *y, int64_t n) {                                                 \
        switch (isa()) {                                                                                   \
        case ISA_AVX512: name##_512(x, y, n); break;                                                       \
        case ISA_AVX2: name##_256(x, y, n); break;                                                         \
        default: name##_128(x, y, n); break;                                                               \
        }                                                                                                  \
    }

VFUNC(expf, Sleef_expf16_u10avx512f, Sleef_expf8_u10avx2, Sleef_expf4_u10sse2)
VFUNC(expm1f, Sleef_expm1f16_u10avx512f, Sleef_expm1f8_u10avx2, Sleef_expm1f4_u10sse2)
VFUNC(logf, Sleef_logf16_u10avx512f, Sleef_logf8_u10avx2, Sleef_logf4_u10sse2)
VFUNC(log1pf, Sleef_log1pf16_u10avx512f, Sleef_log1pf8_u10avx2, Sleef_log1pf4_u10sse2)
VFUNC(tanhf, Sleef_tanhf16_u10avx512f, Sleef_tanhf8_u10avx2, Sleef_tanhf4_u10sse2)
VFUNC(erff, Sleef_erff16_u10avx512f, Sleef_erff8_u10avx2, Sleef_erff4_u10sse2)
VFUNC(erfcf, Sleef_erfcf16_u15avx512f, Sleef_erfcf8_u15avx2, Sleef_erfcf4_u15sse2)

const char *ct_cpu_vmath_isa(void) {
    static const char *names[] = {"SSE2", "AVX2", "AVX-512"};
    return names[isa()];
}

#else /* no SLEEF: scalar float libm (the fast paths that use these are off) */

const char *ct_cpu_vmath_isa(void) { return "none (no SLEEF)"; }

#define SFUNC(name, f) \
    void ct_v##name(const float *x, float *y, int64_t n) { for (int64_t i = 0; i < n; i++) y[i] = f(x[i]); }
SFUNC(expf, expf)
SFUNC(expm1f, expm1f)
SFUNC(logf, logf)
SFUNC(log1pf, log1pf)
SFUNC(tanhf, tanhf)
SFUNC(erff, erff)
SFUNC(erfcf, erfcf)
#endif

/* The stable form of core/ew_math.h's ct_ew_sigmoid (what the CUDA kernels
 * compute in float): e = exp(-|x|), then 1 / (1 + e) for x >= 0 and
 * e / (1 + e) below, so no exp overflows. Blocks of 256 on the stack; the
 * loops around the exp vectorise (division rounds as its scalar form). */
static CT_ALWAYS_INLINE void sigmoid_body(const float *x, float *y, int64_t n) {
    float e[256];
    for (int64_t i = 0; i < n; i += 256) {
        int64_t m = n - i < 256 ? n - i : 256;
        CT_SIMD_LOOP
        for (int64_t j = 0; j < m; j++) e[j] = -fabsf(x[i + j]);
        ct_vexpf(e, e, m);
        CT_SIMD_LOOP
        for (int64_t j = 0; j < m; j++) {
            float d = 1.0f + e[j];
            y[i + j] = x[i + j] >= 0.0f ? 1.0f / d : e[j] / d;
        }
    }
}

/* The loops compiled per instruction set, as the range kernels' clones:
 * the same operations on wider vectors, the same bits (the recurrent
 * kernels' cells spent about a third of their time in the baseline loops
 * and the exp). */
static void sigmoid_base(const float *x, float *y, int64_t n) { sigmoid_body(x, y, n); }
static CT_TARGET_AVX2 void sigmoid_avx2(const float *x, float *y, int64_t n) { sigmoid_body(x, y, n); }
static CT_TARGET_AVX512 void sigmoid_avx512(const float *x, float *y, int64_t n) { sigmoid_body(x, y, n); }

void ct_vsigmoidf(const float *x, float *y, int64_t n) {
    void (*const clones[3])(const float *, float *, int64_t) = {sigmoid_base, sigmoid_avx2, sigmoid_avx512};
    clones[ct_cpu_simd_level()](x, y, n);
}
