/* The recurrent fast path's hidden products (k_rnn_fast.c): C [m, N] =
 * A [m, K] B with B packed once per kernel call into panels of 16 columns.
 *
 * Each step of a recurrence multiplies a few batch rows by the same W_hh;
 * sgemm packs W_hh again at every call (a third of a step's time for 16
 * rows), so the fast path packs it once and runs this kernel over the
 * packed panels: blocks of 6 rows by 16 columns, accumulated in registers
 * over k in order. Every element of C is the same sequence of operations
 * (from 0, k = 0 .. K-1, then C's old value added when accumulating)
 * whatever the block it falls in, its row's position or the thread, so
 * results do not depend on how rows are split. With AVX2 and FMA each term
 * is one fused multiply-add; the baseline build (no FMA: multiply, then
 * add) gives other last bits, as OpenBLAS's kernels do on different CPUs.
 *
 * Under a BF16 policy the operands are BF16 (k_rnn_fast.c rounds them): on
 * a CPU with AVX512-BF16, B's panels hold pairs of k (two BF16 in a
 * uint32) and each vdpbf16ps adds two k's products into the F32
 * accumulators, 8 rows by 32 columns as the AVX-512 F32 kernel, half its
 * instructions and half the bytes of B. The pairs are another order of the
 * same sums, so these results differ from the F32 kernel's on the same
 * rounded values in the last bits. Without the instruction the callers
 * round to half and use the F32 kernels (ct_rnn_round_rows). */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "core/bf16_bits.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"

#if CT_SIMD_X86
#include <immintrin.h>
#endif

#define NR CT_RNN_PANEL_COLS
#define MR 6  /* rows per register block */

int64_t ct_rnn_panels_size(int64_t K, int64_t N) { return (N + NR - 1) / NR * NR * K; }

/* Panels [p0, p1) of B (K x N: B(k, j) = b[k * N + j], or b[j * K + k]
 * when trans), zero beyond column N. */
void ct_rnn_pack_panels(const float *b, int64_t K, int64_t N, bool trans, float *dst, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
        float *d = dst + p * NR * K;
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < NR; j++) {
                int64_t col = p * NR + j;
                d[k * NR + j] = col >= N ? 0.0f : trans ? b[col * K + k] : b[k * N + col];
            }
    }
}

/* Stores a block's row: n columns of acc (16 values) to c, added to c's
 * values when accumulating. */
static CT_ALWAYS_INLINE void store_row(float *c, const float *acc, int64_t n, bool accumulate) {
    for (int64_t j = 0; j < n; j++) c[j] = accumulate ? c[j] + acc[j] : acc[j];
}

/* ---- baseline: plain C, one multiply and one add per term ---------------- */

static void block_base(int rows, int64_t K, const float *a, int64_t lda, const float *bp, float *c, int64_t ldc,
                       int64_t n, bool accumulate) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < K; k++) {
        const float *bk = bp + k * NR;
        for (int r = 0; r < rows; r++) {
            float av = a[r * lda + k];
            CT_SIMD_LOOP
            for (int j = 0; j < NR; j++) acc[r][j] = acc[r][j] + av * bk[j];
        }
    }
    for (int r = 0; r < rows; r++) store_row(c + r * ldc, acc[r], n, accumulate);
}

#if CT_SIMD_X86
/* ---- AVX2 + FMA: 6 x 16 accumulators in registers ------------------------ */

/* One row of a block to c: lo, hi are its 16 columns. */
__attribute__((target("avx2,fma"))) static CT_ALWAYS_INLINE void store_fma(float *c, __m256 lo, __m256 hi, int64_t n,
                                                                          bool accumulate) {
    if (n == NR) {
        if (accumulate) {
            lo = _mm256_add_ps(_mm256_loadu_ps(c), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(c + 8), hi);
        }
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
    } else {
        float t[NR];
        _mm256_storeu_ps(t, lo);
        _mm256_storeu_ps(t + 8, hi);
        store_row(c, t, n, accumulate);
    }
}

/* Named accumulators, not an array: gcc keeps an array of vectors on the
 * stack and stores it at every k. A block of fewer than 6 rows reads row 0
 * again for the rows it lacks and does not store them. */
#define ROW_PTR(r) const float *a##r = a + (r < rows ? r : 0) * lda;
#define ROW_ACC(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();
#define ROW_FMA(r)                                                                                                 \
    {                                                                                                              \
        __m256 av = _mm256_broadcast_ss(a##r + k);                                                                 \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                                                                \
        c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);                                                                \
    }
#define ROW_STORE(r) \
    if (r < rows) store_fma(c + r * ldc, c##r##0, c##r##1, n, accumulate);

__attribute__((target("avx2,fma"))) static void block_fma(int rows, int64_t K, const float *a, int64_t lda,
                                                          const float *bp, float *c, int64_t ldc, int64_t n,
                                                          bool accumulate) {
    ROW_PTR(0) ROW_PTR(1) ROW_PTR(2) ROW_PTR(3) ROW_PTR(4) ROW_PTR(5)
    ROW_ACC(0) ROW_ACC(1) ROW_ACC(2) ROW_ACC(3) ROW_ACC(4) ROW_ACC(5)
    for (int64_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(bp + k * NR), b1 = _mm256_loadu_ps(bp + k * NR + 8);
        ROW_FMA(0) ROW_FMA(1) ROW_FMA(2) ROW_FMA(3) ROW_FMA(4) ROW_FMA(5)
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3) ROW_STORE(4) ROW_STORE(5)
}

static bool has_fma(void) {
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("fma") ? 1 : 0;
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v == 1 && ct_cpu_has_avx2();
}

/* ---- AVX-512: 8 rows x two panels (32 columns) in 16 registers --------- */

/* One row's 16 columns of one panel to c (n of them), as store_fma. */
__attribute__((target("avx512f"))) static CT_ALWAYS_INLINE void store_512(float *c, __m512 v, int64_t n,
                                                                         bool accumulate) {
    if (n <= 0) return;
    __mmask16 m = n >= NR ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), v);
    _mm512_mask_storeu_ps(c, m, v);
}

#define ROW8_PTR(r) const float *a##r = a + (r < rows ? r : 0) * lda;
#define ROW8_ACC(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();
#define ROW8_FMA(r)                                                                                                \
    {                                                                                                              \
        __m512 av = _mm512_set1_ps(a##r[k]);                                                                       \
        c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                                                                \
        if (two) c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);                                                       \
    }
#define ROW8_STORE(r)                                                                                              \
    if (r < rows) {                                                                                                \
        store_512(c + r * ldc, c##r##0, n, accumulate);                                                            \
        if (two) store_512(c + r * ldc + NR, c##r##1, n - NR, accumulate);                                         \
    }

/* Rows [0, rows) (at most 8) of one panel (two: also the next, NR * K
 * floats on) into n columns of c. Each element is the same chain of fused
 * multiply-adds as block_fma's, so the two kernels give the same bits. */
__attribute__((target("avx512f"))) static CT_ALWAYS_INLINE void block_512_n(const bool two, int rows, int64_t K,
                                                                           const float *a, int64_t lda,
                                                                           const float *bp, float *c, int64_t ldc,
                                                                           int64_t n, bool accumulate) {
    const float *bq = bp + NR * K;
    ROW8_PTR(0) ROW8_PTR(1) ROW8_PTR(2) ROW8_PTR(3) ROW8_PTR(4) ROW8_PTR(5) ROW8_PTR(6) ROW8_PTR(7)
    ROW8_ACC(0) ROW8_ACC(1) ROW8_ACC(2) ROW8_ACC(3) ROW8_ACC(4) ROW8_ACC(5) ROW8_ACC(6) ROW8_ACC(7)
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(bp + k * NR), b1 = two ? _mm512_loadu_ps(bq + k * NR) : b0;
        ROW8_FMA(0) ROW8_FMA(1) ROW8_FMA(2) ROW8_FMA(3) ROW8_FMA(4) ROW8_FMA(5) ROW8_FMA(6) ROW8_FMA(7)
    }
    ROW8_STORE(0) ROW8_STORE(1) ROW8_STORE(2) ROW8_STORE(3) ROW8_STORE(4) ROW8_STORE(5) ROW8_STORE(6) ROW8_STORE(7)
}

__attribute__((target("avx512f"))) static void block_512(bool two, int rows, int64_t K, const float *a, int64_t lda,
                                                         const float *bp, float *c, int64_t ldc, int64_t n,
                                                         bool accumulate) {
    if (two) block_512_n(true, rows, K, a, lda, bp, c, ldc, n, accumulate);
    else block_512_n(false, rows, K, a, lda, bp, c, ldc, n, accumulate);
}

/* The CPU's AVX-512 clones (ct_cpu_has_avx512, which the tests switch
 * off to compare this kernel with the AVX2 one: the same bits). */
static bool has_avx512(void) { return ct_cpu_has_avx512() && has_fma(); }

static void gemm_512(int64_t m, int64_t N, int64_t K, const float *a, int64_t lda, const float *bp, float *c,
                     int64_t ldc, bool accumulate) {
    for (int64_t p = 0; p * NR < N; p += 2) {
        int64_t n = N - p * NR < 2 * NR ? N - p * NR : 2 * NR;
        for (int64_t i = 0; i < m; i += 8)
            block_512(n > NR, m - i < 8 ? (int)(m - i) : 8, K, a + i * lda, lda, bp + p * NR * K,
                      c + i * ldc + p * NR, ldc, n, accumulate);
    }
}
#endif

/* ---- BF16 operands: AVX512-BF16's dot product of k pairs ---------------- */

int64_t ct_rnn_pairs(int64_t K) { return (K + 1) / 2; }

/* Two floats as one BF16 pair (lo: the even k). */
static inline uint32_t bf16_pair(float lo, float hi) {
    uint32_t a, b;
    memcpy(&a, &lo, sizeof a);
    memcpy(&b, &hi, sizeof b);
    return (uint32_t)ct_bf16_from_bits(a) | (uint32_t)ct_bf16_from_bits(b) << 16;
}

/* b (K x N as the product reads it) at (k, col), zero outside it. */
static inline float b_at(const float *b, int64_t K, int64_t N, bool trans, int64_t k, int64_t col) {
    return k >= K || col >= N ? 0.0f : trans ? b[col * K + k] : b[k * N + col];
}

static void pack_bf16_plain(const float *b, int64_t K, int64_t N, bool trans, uint32_t *dst, int64_t p0,
                            int64_t p1) {
    const int64_t K2 = ct_rnn_pairs(K);
    for (int64_t p = p0; p < p1; p++) {
        uint32_t *d = dst + p * NR * K2;
        /* the outer loop walks b's rows: W_hh^T is read as W_hh's rows */
        for (int64_t o = 0; o < (trans ? NR : K2); o++)
            for (int64_t i = 0; i < (trans ? K2 : NR); i++) {
                int64_t kp = trans ? i : o, j = trans ? o : i, col = p * NR + j;
                d[kp * NR + j] = bf16_pair(b_at(b, K, N, trans, 2 * kp, col), b_at(b, K, N, trans, 2 * kp + 1, col));
            }
    }
}

static void rows_bf16_plain(const float *a, int64_t lda, int64_t m, int64_t K, uint32_t *dst) {
    const int64_t K2 = ct_rnn_pairs(K);
    for (int64_t r = 0; r < m; r++)
        for (int64_t kp = 0; kp < K2; kp++) {
            const float *ar = a + r * lda;
            dst[r * K2 + kp] = bf16_pair(ar[2 * kp], 2 * kp + 1 < K ? ar[2 * kp + 1] : 0.0f);
        }
}

#if CT_SIMD_X86
#define CT_TARGET_BF16 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))

#define ROWH_PTR(r) const int *a##r = (const int *)a + (r < rows ? r : 0) * K2;
#define ROWH_DOT(r)                                                                                                \
    {                                                                                                              \
        __m512i av = _mm512_set1_epi32(a##r[kp]);                                                                  \
        c##r##0 = _mm512_dpbf16_ps(c##r##0, (__m512bh)av, (__m512bh)b0);                                           \
        if (two) c##r##1 = _mm512_dpbf16_ps(c##r##1, (__m512bh)av, (__m512bh)b1);                                  \
    }

/* block_512_n with BF16 pairs: 8 rows by one or two panels, two k per
 * instruction. */
CT_TARGET_BF16 static CT_ALWAYS_INLINE void block_bf16_n(const bool two, int rows, int64_t K2, const uint32_t *a,
                                                        const uint32_t *bp, float *c, int64_t ldc, int64_t n,
                                                        bool accumulate) {
    const uint32_t *bq = bp + NR * K2;
    ROWH_PTR(0) ROWH_PTR(1) ROWH_PTR(2) ROWH_PTR(3) ROWH_PTR(4) ROWH_PTR(5) ROWH_PTR(6) ROWH_PTR(7)
    ROW8_ACC(0) ROW8_ACC(1) ROW8_ACC(2) ROW8_ACC(3) ROW8_ACC(4) ROW8_ACC(5) ROW8_ACC(6) ROW8_ACC(7)
    for (int64_t kp = 0; kp < K2; kp++) {
        __m512i b0 = _mm512_loadu_si512(bp + kp * NR), b1 = two ? _mm512_loadu_si512(bq + kp * NR) : b0;
        ROWH_DOT(0) ROWH_DOT(1) ROWH_DOT(2) ROWH_DOT(3) ROWH_DOT(4) ROWH_DOT(5) ROWH_DOT(6) ROWH_DOT(7)
    }
    ROW8_STORE(0) ROW8_STORE(1) ROW8_STORE(2) ROW8_STORE(3) ROW8_STORE(4) ROW8_STORE(5) ROW8_STORE(6) ROW8_STORE(7)
}

/* A's rows by the CPU's own conversion (32 floats an instruction), which
 * flushes denormals to zero as the dot product treats its inputs anyway
 * (and keeps a NaN a NaN): the products' results are those of the plain
 * rounding. */
CT_TARGET_BF16 static void rows_bf16_dot(const float *a, int64_t lda, int64_t m, int64_t K, uint32_t *dst) {
    const int64_t K2 = ct_rnn_pairs(K);
    for (int64_t r = 0; r < m; r++) {
        const float *ar = a + r * lda;
        uint32_t *d = dst + r * K2;
        for (int64_t j = 0; j < K; j += 32) {
            int64_t n = K - j < 32 ? K - j : 32, nl = n < 16 ? n : 16, nh = n - nl;
            __m512 lo = _mm512_maskz_loadu_ps((__mmask16)(nl >= 16 ? 0xffff : (1u << nl) - 1u), ar + j);
            __m512 hi = _mm512_maskz_loadu_ps((__mmask16)(nh >= 16 ? 0xffff : (1u << nh) - 1u), ar + j + 16);
            __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            int64_t w = (n + 1) / 2; /* uint32 pairs written */
            _mm512_mask_storeu_epi32(d + j / 2, (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1u), v);
        }
    }
}

/* 16 words of v's low half with the 16 of its high half, interleaved:
 * BF16 pairs of two rows' 16 floats converted together. */
CT_TARGET_BF16 static CT_ALWAYS_INLINE __m512i interleave_halves(__m512i v) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, v);
}

/* pack_bf16_plain by the CPU's conversion (its results in the products are
 * the same: see rows_bf16_dot). W_hh^T's columns are W_hh's rows, whose k
 * pairs are adjacent floats: 32 of a row converted at once, then spread
 * down the panel's column; W_hh's own panels pair two rows' 16 columns. */
CT_TARGET_BF16 static void pack_bf16_dot(const float *b, int64_t K, int64_t N, bool trans, uint32_t *dst, int64_t p0,
                                         int64_t p1) {
    const int64_t K2 = ct_rnn_pairs(K);
    for (int64_t p = p0; p < p1; p++) {
        uint32_t *d = dst + p * NR * K2;
        const int64_t n = N - p * NR < NR ? N - p * NR : NR;
        const __mmask16 cols = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
        if (!trans) {
            for (int64_t kp = 0; kp < K2; kp++) {
                const float *r0 = b + 2 * kp * N + p * NR;
                __m512 lo = _mm512_maskz_loadu_ps(cols, r0);
                __m512 hi = 2 * kp + 1 < K ? _mm512_maskz_loadu_ps(cols, r0 + N) : _mm512_setzero_ps();
                _mm512_storeu_si512(d + kp * NR, interleave_halves((__m512i)_mm512_cvtne2ps_pbh(hi, lo)));
            }
            continue;
        }
        for (int64_t j = 0; j < NR; j++) {
            if (j >= n) { /* past N: zero */
                for (int64_t kp = 0; kp < K2; kp++) d[kp * NR + j] = 0;
                continue;
            }
            uint32_t t[16];
            for (int64_t k = 0; k < K; k += 32) {
                int64_t m = K - k < 32 ? K - k : 32, ml = m < 16 ? m : 16, mh = m - ml;
                const float *r = b + (p * NR + j) * K + k;
                __m512 lo = _mm512_maskz_loadu_ps((__mmask16)(ml >= 16 ? 0xffff : (1u << ml) - 1u), r);
                __m512 hi = _mm512_maskz_loadu_ps((__mmask16)(mh >= 16 ? 0xffff : (1u << mh) - 1u), r + 16);
                _mm512_storeu_si512(t, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                for (int64_t i = 0; i < 16 && k / 2 + i < K2; i++) d[(k / 2 + i) * NR + j] = t[i];
            }
        }
    }
}

CT_TARGET_BF16 static void gemm_bf16(int64_t m, int64_t N, int64_t K, const uint32_t *a, const uint32_t *bp, float *c,
                                     int64_t ldc, bool accumulate) {
    const int64_t K2 = ct_rnn_pairs(K);
    for (int64_t p = 0; p * NR < N; p += 2) {
        int64_t n = N - p * NR < 2 * NR ? N - p * NR : 2 * NR;
        for (int64_t i = 0; i < m; i += 8) {
            int rows = m - i < 8 ? (int)(m - i) : 8;
            if (n > NR) block_bf16_n(true, rows, K2, a + i * K2, bp + p * NR * K2, c + i * ldc + p * NR, ldc, n,
                                     accumulate);
            else block_bf16_n(false, rows, K2, a + i * K2, bp + p * NR * K2, c + i * ldc + p * NR, ldc, n,
                              accumulate);
        }
    }
}

/* F16 rounding by the CPU's conversion (AVX-512F's vcvtps2ph, round to
 * nearest even, and back): ct_f32_to_f16's values, NaN kept a NaN, sixteen
 * a time where the scalar conversion is a call per value. */
__attribute__((target("avx512f"))) static void round_f16_512(const float *a, int64_t lda, int64_t m, int64_t K,
                                                              float *dst) {
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < K; j += 16) {
            int64_t n = K - j < 16 ? K - j : 16;
            __mmask16 mk = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
            __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mk, a + r * lda + j),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm512_mask_storeu_ps(dst + r * K + j, mk, _mm512_cvtph_ps(h));
        }
}
#endif

void ct_rnn_round_rows(const float *a, int64_t lda, int64_t m, int64_t K, ct_dtype half, float *dst) {
#if CT_SIMD_X86
    if (half == CT_F16 && has_avx512()) {
        round_f16_512(a, lda, m, K, dst);
        return;
    }
#endif
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < K; j++) dst[r * K + j] = ct_round_half(a[r * lda + j], half);
}

bool ct_rnn_bf16_dot(void) {
#if CT_SIMD_X86
    return ct_cpu_has_avx512_bf16() && has_fma();
#else
    return false;
#endif
}

void ct_rnn_pack_panels_bf16(const float *b, int64_t K, int64_t N, bool trans, uint32_t *dst, int64_t p0,
                             int64_t p1) {
#if CT_SIMD_X86
    if (ct_rnn_bf16_dot()) {
        pack_bf16_dot(b, K, N, trans, dst, p0, p1);
        return;
    }
#endif
    pack_bf16_plain(b, K, N, trans, dst, p0, p1);
}

void ct_rnn_rows_bf16(const float *a, int64_t lda, int64_t m, int64_t K, uint32_t *dst) {
#if CT_SIMD_X86
    if (ct_rnn_bf16_dot()) {
        rows_bf16_dot(a, lda, m, K, dst);
        return;
    }
#endif
    rows_bf16_plain(a, lda, m, K, dst);
}

void ct_rnn_panel_gemm_bf16(int64_t m, int64_t N, int64_t K, const uint32_t *a, const uint32_t *bp, float *c,
                            int64_t ldc, bool accumulate) {
#if CT_SIMD_X86
    if (ct_rnn_bf16_dot()) {
        gemm_bf16(m, N, K, a, bp, c, ldc, accumulate);
        return;
    }
#endif
    /* without the instruction (callers check ct_rnn_bf16_dot() first): the
     * same sums in plain float, the even k of each pair first */
    const int64_t K2 = ct_rnn_pairs(K);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < N; j++) {
            const uint32_t *col = bp + j / NR * NR * K2 + j % NR;
            float acc = 0.0f;
            for (int64_t kp = 0; kp < K2; kp++) {
                uint32_t x = a[i * K2 + kp], y = col[kp * NR];
                acc += ct_bf16_to_f32((uint16_t)x) * ct_bf16_to_f32((uint16_t)y);
                acc += ct_bf16_to_f32((uint16_t)(x >> 16)) * ct_bf16_to_f32((uint16_t)(y >> 16));
            }
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc : acc;
        }
}

void ct_rnn_panel_gemm(int64_t m, int64_t N, int64_t K, const float *a, int64_t lda, const float *bp, float *c,
                       int64_t ldc, bool accumulate) {
    void (*blk)(int, int64_t, const float *, int64_t, const float *, float *, int64_t, int64_t, bool) = block_base;
#if CT_SIMD_X86
    if (has_avx512()) {
        gemm_512(m, N, K, a, lda, bp, c, ldc, accumulate);
        return;
    }
    if (has_fma()) blk = block_fma;
#endif
    for (int64_t p = 0; p * NR < N; p++) {
        int64_t n = N - p * NR < NR ? N - p * NR : NR;
        for (int64_t i = 0; i < m; i += MR)
            blk(m - i < MR ? (int)(m - i) : MR, K, a + i * lda, lda, bp + p * NR * K, c + i * ldc + p * NR, ldc, n,
                accumulate);
    }
}
