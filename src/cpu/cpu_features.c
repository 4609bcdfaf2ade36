/* What the CPU backend's fast paths run on: the vector units of this CPU
 * (CPUID), the instruction set the fast paths picked, and the switch that
 * runs the reference loops instead (cpu_simd.h).
 */
#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cpu/cpu_matmul.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/device.h"

#if CT_SIMD_X86
#include <cpuid.h>
#endif

/* Set by the tests to run the baseline (SSE2) clones on an AVX2 machine. */
static atomic_bool baseline_only;

void ct_cpu_set_baseline_only(bool on) { atomic_store_explicit(&baseline_only, on, memory_order_relaxed); }

/* Set by the tests to run the AVX2 clones on an AVX-512 machine. */
static atomic_bool no_avx512;

void ct_cpu_set_no_avx512(bool on) { atomic_store_explicit(&no_avx512, on, memory_order_relaxed); }

bool ct_cpu_has_avx512(void) {
#if CT_SIMD_X86
    if (atomic_load_explicit(&no_avx512, memory_order_relaxed) || !ct_cpu_has_avx2()) return false;
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v == 1;
#else
    return false;
#endif
}

bool ct_cpu_has_avx2(void) {
#if CT_SIMD_X86
    if (atomic_load_explicit(&baseline_only, memory_order_relaxed)) return false;
    /* __builtin_cpu_supports also checks that the OS saves the AVX state. */
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v == 1;
#else
    return false;
#endif
}

bool ct_cpu_has_avx512_bf16(void) {
#if CT_SIMD_X86
    if (!ct_cpu_has_avx512()) return false;
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v == 1;
#else
    return false;
#endif
}

/* -1: not yet read from the environment; 0: reference loops; 1: fast. */
static atomic_int fast_paths = -1;

bool ct_cpu_fast_paths_enabled(void) {
    int v = atomic_load_explicit(&fast_paths, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("CTRAIN_CPU_REFERENCE");
        v = e && e[0] && strcmp(e, "0") != 0 ? 0 : 1;
        atomic_store_explicit(&fast_paths, v, memory_order_relaxed);
    }
    return v == 1;
}

void ct_cpu_set_fast_paths(bool on) { atomic_store_explicit(&fast_paths, on ? 1 : 0, memory_order_relaxed); }

#if CT_SIMD_X86
/* Appends name to buf when bit `bit` of reg is set. */
static void feature(char *buf, size_t cap, unsigned reg, int bit, const char *name) {
    if (reg >> bit & 1u) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", len ? " " : "", name);
    }
}
#endif

const char *ct_cpu_features(void) {
    static char info[512];
    if (info[0]) return info;
    char units[192] = "";
#if CT_SIMD_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        feature(units, sizeof units, c, 28, "AVX");
        feature(units, sizeof units, c, 12, "FMA");
        feature(units, sizeof units, c, 29, "F16C");
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        feature(units, sizeof units, b, 5, "AVX2");
        feature(units, sizeof units, b, 16, "AVX512F");
        feature(units, sizeof units, b, 30, "AVX512BW");
        feature(units, sizeof units, c, 11, "AVX512_VNNI");
        feature(units, sizeof units, d, 23, "AVX512_FP16");
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        feature(units, sizeof units, a, 4, "AVX_VNNI");
        feature(units, sizeof units, a, 5, "AVX512_BF16");
    }
#endif
    bool fast = ct_cpu_fast_paths_enabled();
    bool f32_dnnl = ct_cpu_dnnl_mm_get(16, 16, 16, false, false, CT_F32, CT_F32) != NULL;
    snprintf(info, sizeof info,
             "%s; fast paths: %s; float math: %s%s; f32 products: %s; bf16 products: %s; "
             "recurrent bf16 step products: %s",
             units[0] ? units : "no vector extensions found",
             !fast                  ? "off (CTRAIN_CPU_REFERENCE)"
             : ct_cpu_has_avx512() ? "AVX-512"
             : ct_cpu_has_avx2()   ? "AVX2"
                                   : "SSE2",
             ct_cpu_float_math() ? "SLEEF " : "off", ct_cpu_float_math() ? ct_cpu_vmath_isa() : "",
             f32_dnnl ? "oneDNN (K < 2048), else BLAS" : "BLAS", ct_cpu_bf16_native() ? "oneDNN" : "widened to F32",
             ct_rnn_bf16_dot() ? "AVX512-BF16 pairs" : "rounded, F32 kernels");
    return info;
}

ct_status ct_cpu_set_threads(int n) {
    if (n < 1 || n > 4096)
        return ct_error(CT_ERR_INVALID_ARG, "ct_cpu_set_threads: %d threads, must be 1 to 4096", n);
    omp_set_num_threads(n);
    /* The OpenMP build of OpenBLAS follows omp_set_num_threads; its
     * pthread build has its own count. */
    openblas_set_num_threads(n);
    return CT_OK;
}
