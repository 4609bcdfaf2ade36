/* The int8 product with AVX-512 VNNI (vpdpbusd: 4 uint8 x int8 products
 * summed into each int32 lane, no saturation, so the result is exact).
 *
 * Only this file is compiled for the instructions (a target attribute, not
 * a build flag), and nothing here runs unless CPUID says the CPU has them:
 * the same binary runs on any x86-64 and falls back to the portable loops.
 * Tile: 4 rows of a x 4 blocks of 16 output channels = 16 accumulators,
 * per step of 4 k: 4 weight loads, 4 broadcasts of a, 16 vpdpbusd.
 */
#include <string.h>

#include "quant/int8_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define MR 4 /* rows of a per tile */
#define NR 4 /* blocks of 16 channels per tile */

bool ct_int8_vnni_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

/* The 4 bytes a[g*4 .. g*4+3] of a row as one int32, zero past k. */
static inline int32_t group(const uint8_t *row, int64_t g, int64_t k) {
    int32_t v = 0;
    int64_t start = g * 4, len = k - start < 4 ? k - start : 4;
    memcpy(&v, row + start, (size_t)len);
    return v;
}

/* mr rows (<= MR) x nb blocks (<= NR) starting at row i, block j. */
VNNI_TARGET static inline void tile(const struct ct_int8_matrix *w, const uint8_t *a, int64_t lda, int64_t i,
                                    int mr, int64_t j, int nb, int32_t *c) {
    __m512i acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int b = 0; b < NR; b++) acc[r][b] = _mm512_setzero_si512();
    int64_t groups = w->kp / 4, full = w->k / 4;
    const int8_t *wp = w->packed + j * groups * CT_INT8_NB * 4;
    for (int64_t g = 0; g < groups; g++) {
        __m512i wv[NR];
        for (int b = 0; b < nb; b++)
            wv[b] = _mm512_load_si512((const void *)(wp + ((b * groups + g) * CT_INT8_NB) * 4));
        for (int r = 0; r < mr; r++) {
            const uint8_t *row = a + (i + r) * lda;
            int32_t v;
            if (g < full)
                memcpy(&v, row + g * 4, 4);
            else
                v = group(row, g, w->k);
            __m512i av = _mm512_set1_epi32(v);
            for (int b = 0; b < nb; b++) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], av, wv[b]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int b = 0; b < nb; b++) {
            int64_t o = (j + b) * CT_INT8_NB, left = w->n - o;
            __mmask16 mask = left >= CT_INT8_NB ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            _mm512_mask_storeu_epi32(c + (i + r) * w->n + o, mask, acc[r][b]);
        }
}

VNNI_TARGET void ct_int8_gemm_vnni(const struct ct_int8_matrix *w, const uint8_t *a, int64_t m, int64_t lda,
                                   int32_t *c) {
    int64_t mt = (m + MR - 1) / MR, nt = (w->nblocks + NR - 1) / NR;
#pragma omp parallel for schedule(static) collapse(2) if (m * w->n * w->k >= (1 << 20))
    for (int64_t ti = 0; ti < mt; ti++)
        for (int64_t tj = 0; tj < nt; tj++) {
            int64_t i = ti * MR, j = tj * NR;
            int mr = m - i < MR ? (int)(m - i) : MR;
            int nb = w->nblocks - j < NR ? (int)(w->nblocks - j) : NR;
            if (mr == MR && nb == NR)
                tile(w, a, lda, i, MR, j, NR, c); /* constant bounds: the compiler unrolls */
            else
                tile(w, a, lda, i, mr, j, nb, c);
        }
}

/* ct_quant_act 16 values at a time, bit for bit the scalar loop: the
 * product in float, rounding by the default MXCSR mode (half to even, as
 * rintf), and x * inv clamped to +-1024 first so that a huge value or inf
 * saturates instead of converting to INT_MIN (NaN becomes -1024: the max's
 * second operand, then 0, as the scalar loop's NaN). */
VNNI_TARGET void ct_quant_act_avx512(const float *x, int64_t n, float inv, int32_t zero_point, uint8_t *q) {
    const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-1024.0f), hi = _mm512_set1_ps(1024.0f);
    const __m512i zp = _mm512_set1_epi32(zero_point), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vinv);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
        r = _mm512_min_epi32(_mm512_max_epi32(r, zero), top);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, m, r);
    }
}

#else
bool ct_int8_vnni_available(void) { return false; }
void ct_quant_act_avx512(const float *x, int64_t n, float inv, int32_t zero_point, uint8_t *q) {
    (void)x, (void)n, (void)inv, (void)zero_point, (void)q;
}
void ct_int8_gemm_vnni(const struct ct_int8_matrix *w, const uint8_t *a, int64_t m, int64_t lda, int32_t *c) {
    (void)w, (void)a, (void)m, (void)lda, (void)c;
}
#endif
