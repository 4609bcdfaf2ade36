/* The int8 product with AVX-512 VNNI (vpdpbusd: 4 uint8 x int8 products
 * summed into each int32 lane, no saturation, so the result is exact).
 *
 * Only this file is compiled for the instructions (a target attribute, not
 * a build flag), and nothing here runs unless CPUID says the CPU has them:
 * the same binary runs on any x86-64 and falls back to the portable loops.
 * Tile: 4 rows of a x 4 blocks of 16 output channels = 16 accumulators,
 * per step of 4 k: 4 weight loads, 4 broadcasts of a, 16 vpdpbusd (edge
 * tiles, with fewer rows or blocks, take a generic loop).
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

/* The full tile, written out: 16 accumulators that stay in registers (the
 * generic tile's arrays with run-time bounds end up on the stack). */
#define DP4(r, a)                                                  \
    do {                                                           \
        __m512i av_ = _mm512_set1_epi32(a);                        \
        c##r##0 = _mm512_dpbusd_epi32(c##r##0, av_, w0);           \
        c##r##1 = _mm512_dpbusd_epi32(c##r##1, av_, w1);           \
        c##r##2 = _mm512_dpbusd_epi32(c##r##2, av_, w2);           \
        c##r##3 = _mm512_dpbusd_epi32(c##r##3, av_, w3);           \
    } while (0)
#define STORE4(r)                                                  \
    do {                                                           \
        int32_t *row_ = c + (i + r) * w->n + j * CT_INT8_NB;       \
        _mm512_mask_storeu_epi32(row_, mask[0], c##r##0);          \
        _mm512_mask_storeu_epi32(row_ + 16, mask[1], c##r##1);     \
        _mm512_mask_storeu_epi32(row_ + 32, mask[2], c##r##2);     \
        _mm512_mask_storeu_epi32(row_ + 48, mask[3], c##r##3);     \
    } while (0)

VNNI_TARGET static void tile_full(const struct ct_int8_matrix *w, const uint8_t *a, int64_t lda, int64_t i, int64_t j,
                                  int32_t *c) {
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
            c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    int64_t groups = w->kp / 4, full = w->k / 4, bstride = groups * CT_INT8_NB * 4;
    const int8_t *wp = w->packed + j * bstride;
    const uint8_t *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    for (int64_t g = 0; g < groups; g++) {
        const int8_t *wg = wp + g * CT_INT8_NB * 4;
        __m512i w0 = _mm512_load_si512((const void *)wg), w1 = _mm512_load_si512((const void *)(wg + bstride)),
                w2 = _mm512_load_si512((const void *)(wg + 2 * bstride)),
                w3 = _mm512_load_si512((const void *)(wg + 3 * bstride));
        int32_t v0, v1, v2, v3;
        if (g < full) {
            memcpy(&v0, a0 + g * 4, 4), memcpy(&v1, a1 + g * 4, 4);
            memcpy(&v2, a2 + g * 4, 4), memcpy(&v3, a3 + g * 4, 4);
        } else {
            v0 = group(a0, g, w->k), v1 = group(a1, g, w->k), v2 = group(a2, g, w->k), v3 = group(a3, g, w->k);
        }
        DP4(0, v0);
        DP4(1, v1);
        DP4(2, v2);
        DP4(3, v3);
    }
    __mmask16 mask[NR];
    for (int b = 0; b < NR; b++) {
        int64_t left = w->n - (j + b) * CT_INT8_NB;
        mask[b] = left >= CT_INT8_NB ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    }
    STORE4(0);
    STORE4(1);
    STORE4(2);
    STORE4(3);
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
                tile_full(w, a, lda, i, j, c);
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
