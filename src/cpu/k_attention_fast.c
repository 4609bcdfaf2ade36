/* The F32 fast path of the fused attention (core/attention.h): forward and
 * the three gradients in float, as the CUDA kernel and PyTorch compute them
 * (docs/cpu_backend.md, "float math"). k_attention.c calls it when every
 * operand is F32 and ct_cpu_float_math(); everything else runs the double
 * reference there.
 *
 * A head's query rows go in blocks of QB. For rows [i0, i0 + m) the block
 * sees keys [0, n) (n = i0 + m when causal, else T), and per block:
 *   S  = scale * Q_b K^T          [m, n]   sgemm
 *   P  = softmax of each row of S over the keys that row sees (exp by
 *        ct_vexpf)
 *   y_b = P V                                            (forward)
 *   dP = dY_b V^T (sgemm), delta_i = sum_j P_ij dP_ij, dS = P * (dP - delta)
 *   dq_b = scale * dS K                                  (dq)
 *   dk += scale * dS^T Q_b, dv += P^T dY_b               (dk, dv)
 * The last three products are sgemms over the keys every row of the block
 * sees ([0, i0) when causal, all T otherwise); when causal the diagonal
 * square [i0, i0 + m) goes through loops over the keys each row sees only
 * (diag_rows, diag_cols), so nothing a row does not see reaches it, not
 * even a NaN or an infinity through 0 * inf, as in the reference and the
 * CUDA kernel, and the masked half of the square costs nothing.
 *
 * CT_ATTN_GRAD_QKV (all three gradients into one [3, B, H, T, D] output)
 * runs these per block with P and dP computed once: dv's terms from P,
 * then dS in place, dq's rows and dk's terms (head_all). The products and
 * their order are the separate gradients', so are the bytes.
 *
 * The block is the forward's and dq's unit of work: (head, block) pairs
 * split across threads. dk and dv (and the three together) sum over every
 * query row of a head, so their unit is the head: its blocks in order, one after the other, so
 * every element's sum has the same order whatever the thread count. Every
 * sgemm runs on one thread (OpenBLAS's OpenMP build does inside a parallel
 * region, and with one OpenMP thread it has one too), and each sgemm's
 * arithmetic depends only on its own shapes, fixed by QB: results do not
 * depend on the number of threads, bit for bit. (OpenBLAS's pthread build,
 * linked only where the OpenMP one is missing or with clang, may thread a
 * product above its size threshold, about 2^18 multiply-adds, whose inner
 * blocking then differs from the single-threaded one: with it, results
 * may change with the thread count in the last bits for large T and D.)
 *
 * Row sums and maxima run in LANES independent partial results combined in
 * a fixed order at the end (they vectorise, and their order is fixed).
 *
 * Scratch: one slot of two [QB, T] float blocks (S or P or dS, and dP) per
 * thread, carved out of the area ct_cpu_attention_scratch declares (at
 * least MIN_SLOTS slots, more where the reference's area is larger); the
 * threads are capped at the slots there are, which changes no result.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/attention.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"

#define QB 32        /* query rows per block: fixed, so the arithmetic never depends on threads */
#define MIN_SLOTS 16 /* per-thread slots the scratch always has room for */
#define LANES 8      /* partial sums and maxima per row */
#define CH 32        /* columns of a diagonal product held in registers */

/* The row loops, compiled for this CPU's vector unit (pick_fns). */
typedef struct row_fns {
    void (*softmax)(float *, int64_t, int64_t, int64_t, bool);
    void (*ds)(float *, const float *, int64_t, int64_t, int64_t, bool);
    void (*diag_rows)(const float *, int64_t, int64_t, const float *, int64_t, float, float *);
    void (*diag_cols)(const float *, int64_t, int64_t, const float *, int64_t, float, float *);
} row_fns;

typedef struct fatt {
    const float *q, *k, *v, *dy;
    float *out;
    int64_t t, d;
    float scale;
    bool causal;
    row_fns fn;
} fatt;

static int64_t slot_floats(int64_t t) { return 2 * QB * t; }

size_t ct_cpu_attention_fast_scratch(int64_t t) { return (size_t)(MIN_SLOTS * slot_floats(t)) * sizeof(float); }

/* ---- rows: compiled for SSE2 and for AVX2, chosen at run time -------------- */

static CT_ALWAYS_INLINE float row_max(const float *restrict x, int64_t n) {
    float m[LANES];
    for (int l = 0; l < LANES; l++) m[l] = -INFINITY;
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
    for (; j < n; j++) m[0] = x[j] > m[0] ? x[j] : m[0];
    for (int h = LANES / 2; h > 0; h /= 2)
        for (int l = 0; l < h; l++) m[l] = m[l + h] > m[l] ? m[l + h] : m[l];
    return m[0];
}

/* sum_j x[j] * (y ? y[j] : 1), in LANES partial sums. */
static CT_ALWAYS_INLINE float row_dot(const float *restrict x, const float *restrict y, int64_t n) {
    float s[LANES] = {0};
    int64_t j = 0;
    if (y) {
        for (; j + LANES <= n; j += LANES)
            for (int l = 0; l < LANES; l++) s[l] += x[j + l] * y[j + l];
        for (; j < n; j++) s[0] += x[j] * y[j];
    } else {
        for (; j + LANES <= n; j += LANES)
            for (int l = 0; l < LANES; l++) s[l] += x[j + l];
        for (; j < n; j++) s[0] += x[j];
    }
    for (int h = LANES / 2; h > 0; h /= 2)
        for (int l = 0; l < h; l++) s[l] += s[l + h];
    return s[0];
}

/* The rows of a block [m, n] of scores from query row i0 -> probabilities
 * over the keys each sees (nk: i0 + r + 1 when causal; the others become
 * exp(-inf) = 0 and are never read: the products run over the keys seen
 * only). One ct_vexpf call for the whole block rather than one per short
 * row. A NaN score makes its row NaN (its exp and so the sum are NaN), as
 * in the reference. */
static CT_ALWAYS_INLINE void softmax_body(float *s, int64_t m, int64_t n, int64_t i0, bool causal) {
    for (int64_t r = 0; r < m; r++) {
        float *restrict x = s + r * n;
        int64_t nk = causal ? i0 + r + 1 : n;
        float mx = row_max(x, nk);
        for (int64_t j = 0; j < nk; j++) x[j] -= mx;
        for (int64_t j = nk; j < n; j++) x[j] = -INFINITY; /* exp: 0 */
    }
    ct_vexpf(s, s, m * n); /* one call for the block: each element is computed alone */
    for (int64_t r = 0; r < m; r++) {
        float *restrict x = s + r * n;
        int64_t nk = causal ? i0 + r + 1 : n;
        float inv = 1.0f / row_dot(x, NULL, nk);
        for (int64_t j = 0; j < nk; j++) x[j] *= inv;
    }
}

/* P in s -> dS = P (dP - delta) in place, delta_r = sum_j P_rj dP_rj over
 * the keys row r sees. */
static CT_ALWAYS_INLINE void ds_body(float *s, const float *dp, int64_t m, int64_t n, int64_t i0, bool causal) {
    for (int64_t r = 0; r < m; r++) {
        int64_t nk = causal ? i0 + r + 1 : n;
        float *restrict p = s + r * n;
        const float *restrict g = dp + r * n;
        float delta = row_dot(p, g, nk);
        for (int64_t j = 0; j < nk; j++) p[j] *= g[j] - delta;
    }
}

/* The causal diagonal of a block, row-wise: out row r += sum over keys
 * j = 0..r of (alpha w[r][j]) x[j] (w's rows ldw apart, x's and out's d),
 * in order of j: only the keys a row sees, so a non-finite value in a key
 * it does not see cannot reach it (0 * inf would be NaN). Columns go in
 * chunks of CH held in registers over the sum. */
static CT_ALWAYS_INLINE void diag_rows_body(const float *w, int64_t ldw, int64_t m, const float *x, int64_t d,
                                            float alpha, float *out) {
    for (int64_t r = 0; r < m; r++) {
        float *restrict o = out + r * d;
        int64_t c0 = 0;
        for (; c0 + CH <= d; c0 += CH) {
            float acc[CH];
            for (int c = 0; c < CH; c++) acc[c] = o[c0 + c];
            for (int64_t j = 0; j <= r; j++) {
                const float a = alpha * w[r * ldw + j], *restrict xj = x + j * d + c0;
                for (int c = 0; c < CH; c++) acc[c] += a * xj[c];
            }
            for (int c = 0; c < CH; c++) o[c0 + c] = acc[c];
        }
        for (int64_t j = 0; j <= r && c0 < d; j++) {
            const float a = alpha * w[r * ldw + j], *restrict xj = x + j * d;
            for (int64_t c = c0; c < d; c++) o[c] += a * xj[c];
        }
    }
}

/* The causal diagonal, column-wise (dk, dv): out row j += sum over rows
 * r = j..m-1 of (alpha w[r][j]) x[r], in order of r. */
static CT_ALWAYS_INLINE void diag_cols_body(const float *w, int64_t ldw, int64_t m, const float *x, int64_t d,
                                            float alpha, float *out) {
    for (int64_t j = 0; j < m; j++) {
        float *restrict o = out + j * d;
        int64_t c0 = 0;
        for (; c0 + CH <= d; c0 += CH) {
            float acc[CH];
            for (int c = 0; c < CH; c++) acc[c] = o[c0 + c];
            for (int64_t r = j; r < m; r++) {
                const float a = alpha * w[r * ldw + j], *restrict xr = x + r * d + c0;
                for (int c = 0; c < CH; c++) acc[c] += a * xr[c];
            }
            for (int c = 0; c < CH; c++) o[c0 + c] = acc[c];
        }
        for (int64_t r = j; r < m && c0 < d; r++) {
            const float a = alpha * w[r * ldw + j], *restrict xr = x + r * d;
            for (int64_t c = c0; c < d; c++) o[c] += a * xr[c];
        }
    }
}

#define ROW_FNS(SUF, TARGET)                                                                                       \
    static TARGET void softmax_##SUF(float *s, int64_t m, int64_t n, int64_t i0, bool causal) {                    \
        softmax_body(s, m, n, i0, causal);                                                                         \
    }                                                                                                              \
    static TARGET void ds_##SUF(float *s, const float *dp, int64_t m, int64_t n, int64_t i0, bool causal) {       \
        ds_body(s, dp, m, n, i0, causal);                                                                          \
    }                                                                                                              \
    static TARGET void diag_rows_##SUF(const float *w, int64_t ldw, int64_t m, const float *x, int64_t d,          \
                                       float alpha, float *out) {                                                  \
        diag_rows_body(w, ldw, m, x, d, alpha, out);                                                               \
    }                                                                                                              \
    static TARGET void diag_cols_##SUF(const float *w, int64_t ldw, int64_t m, const float *x, int64_t d,          \
                                       float alpha, float *out) {                                                  \
        diag_cols_body(w, ldw, m, x, d, alpha, out);                                                               \
    }
ROW_FNS(base, )
ROW_FNS(avx2, CT_TARGET_AVX2)
ROW_FNS(avx512, CT_TARGET_AVX512)

static row_fns pick_fns(void) {
    const row_fns clones[3] = {{softmax_base, ds_base, diag_rows_base, diag_cols_base},
                               {softmax_avx2, ds_avx2, diag_rows_avx2, diag_cols_avx2},
                               {softmax_avx512, ds_avx512, diag_rows_avx512, diag_cols_avx512}};
    return clones[ct_cpu_simd_level()];
}

/* ---- blocks ----------------------------------------------------------------- */

static int64_t keys_of(const fatt *a, int64_t i0, int64_t m) { return a->causal ? i0 + m : a->t; }

/* P of head h's rows [i0, i0 + m) into s ([m, n], n = keys_of). */
static void block_probs(const fatt *a, int64_t h, int64_t i0, int64_t m, int64_t n, float *s) {
    int64_t t = a->t, d = a->d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)d, a->scale, a->q + (h * t + i0) * d,
                (int)d, a->k + h * t * d, (int)d, 0.0f, s, (int)n);
    a->fn.softmax(s, m, n, i0, a->causal);
}

/* dS of the same rows over P in s, in place (dp: scratch of [m, n]). */
static void block_ds(const fatt *a, int64_t h, int64_t i0, int64_t m, int64_t n, float *s, float *dp) {
    int64_t t = a->t, d = a->d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)d, 1.0f, a->dy + (h * t + i0) * d,
                (int)d, a->v + h * t * d, (int)d, 0.0f, dp, (int)n);
    a->fn.ds(s, dp, m, n, i0, a->causal);
}

/* out rows = alpha W X for the m rows of a block (W = P or dS, [m, n] with
 * rows n apart; X = v or k of the head): causal, keys [0, i0), which every
 * row of the block sees, by sgemm, the diagonal square by diag_rows. */
static void rows_out(const fatt *a, const float *w, int64_t m, int64_t n, int64_t i0, const float *x, float alpha,
                     float *out) {
    int64_t d = a->d, full = a->causal ? i0 : n; /* keys every row sees */
    if (full > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d, (int)full, alpha, w, (int)n, x,
                    (int)d, 0.0f, out, (int)d);
    else
        memset(out, 0, (size_t)(m * d) * sizeof(float));
    if (a->causal) a->fn.diag_rows(w + i0, n, m, x + i0 * d, d, alpha, out);
}

/* acc (a head's [T, D] dk or dv) += alpha W^T X for one block's m rows
 * (X = q or dy of those rows); causal: keys [0, i0) by sgemm, the diagonal
 * by diag_cols. */
static void kv_terms(const fatt *a, const float *w, int64_t m, int64_t n, int64_t i0, const float *x, float alpha,
                     float *acc) {
    int64_t d = a->d, full = a->causal ? i0 : n;
    if (full > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)full, (int)d, (int)m, alpha, w, (int)n, x, (int)d,
                    1.0f, acc, (int)d);
    if (a->causal) a->fn.diag_cols(w + i0, n, m, x, d, alpha, acc + i0 * d);
}

/* The forward (which < 0) or dq of block b of head h: out rows = P v or
 * scale dS k. */
static void row_block(const fatt *a, int which, int64_t h, int64_t b, float *w) {
    int64_t t = a->t, d = a->d, i0 = b * QB, m = t - i0 < QB ? t - i0 : QB, n = keys_of(a, i0, m);
    float *s = w, *dp = w + QB * t, *out = a->out + (h * t + i0) * d;
    block_probs(a, h, i0, m, n, s);
    if (which != CT_ATTN_GRAD_Q) {
        rows_out(a, s, m, n, i0, a->v + h * t * d, 1.0f, out);
        return;
    }
    block_ds(a, h, i0, m, n, s, dp);
    rows_out(a, s, m, n, i0, a->k + h * t * d, a->scale, out);
}

/* dk or dv of head h: its blocks in order, each adding its rows' terms
 * (scale dS^T q or P^T dy). */
static void head_kv(const fatt *a, int which, int64_t h, float *w) {
    int64_t t = a->t, d = a->d;
    float *s = w, *dp = w + QB * t, *acc = a->out + h * t * d;
    memset(acc, 0, (size_t)(t * d) * sizeof(float));
    for (int64_t i0 = 0; i0 < t; i0 += QB) {
        int64_t m = t - i0 < QB ? t - i0 : QB, n = keys_of(a, i0, m);
        block_probs(a, h, i0, m, n, s);
        if (which == CT_ATTN_GRAD_V) {
            kv_terms(a, s, m, n, i0, a->dy + (h * t + i0) * d, 1.0f, acc);
            continue;
        }
        block_ds(a, h, i0, m, n, s, dp);
        kv_terms(a, s, m, n, i0, a->q + (h * t + i0) * d, a->scale, acc);
    }
}

/* dq, dk and dv of head h at once (CT_ATTN_GRAD_QKV: out holds the three,
 * each [B, H, T, D], one after the other). Per block P once: dv's terms
 * from it, then dS in place, dq's rows and dk's terms. These are the
 * separate gradients' products in their order, so the bytes are theirs;
 * the softmax and dY V^T run once instead of three and two times. */
static void head_all(const fatt *a, int64_t h, int64_t bh, float *w) {
    int64_t t = a->t, d = a->d, off = h * t * d;
    float *s = w, *dp = w + QB * t, *dq = a->out + off, *dk = dq + bh * t * d, *dv = dk + bh * t * d;
    memset(dk, 0, (size_t)(t * d) * sizeof(float));
    memset(dv, 0, (size_t)(t * d) * sizeof(float));
    for (int64_t i0 = 0; i0 < t; i0 += QB) {
        int64_t m = t - i0 < QB ? t - i0 : QB, n = keys_of(a, i0, m), rows = off + i0 * d;
        block_probs(a, h, i0, m, n, s);
        kv_terms(a, s, m, n, i0, a->dy + rows, 1.0f, dv);
        block_ds(a, h, i0, m, n, s, dp);
        rows_out(a, s, m, n, i0, a->k + off, a->scale, dq + i0 * d);
        kv_terms(a, s, m, n, i0, a->q + rows, a->scale, dk);
    }
}

/* ---- the entry ---------------------------------------------------------------- */

static bool all_f32(const ct_kargs *k) {
    for (int i = 0; i < k->n_in; i++)
        if (k->in[i].dtype != CT_F32) return false;
    return k->out.dtype == CT_F32;
}

bool ct_cpu_attention_f32(const ct_kargs *k, int which) {
    if (!all_f32(k) || !ct_cpu_float_math()) return false;
    const ct_shape *s = &k->in[0].shape;
    int64_t bh = s->dim[0] * s->dim[1], t = s->dim[2], d = s->dim[3];
    if (k->out.numel == 0) return true;
    fatt a = {.q = k->in[0].data, .k = k->in[1].data, .v = k->in[2].data, .dy = which >= 0 ? k->in[3].data : NULL,
              .out = k->out.data, .t = t, .d = d, .scale = (float)k->attr->alpha, .causal = k->attr->causal,
              .fn = pick_fns()};
    int64_t slot = slot_floats(t), slots = (int64_t)(ct_cpu_attention_scratch(k) / sizeof(float)) / slot;
    int64_t nb = (t + QB - 1) / QB;
    bool by_head = which == CT_ATTN_GRAD_K || which == CT_ATTN_GRAD_V || which == CT_ATTN_GRAD_QKV;
    int64_t units = by_head ? bh : bh * nb;
    int nthr = omp_get_max_threads();
    if (nthr > slots) nthr = (int)slots; /* never below MIN_SLOTS: a team of 1 only when 1 thread is wanted */
    float *scratch = k->scratch;
#pragma omp parallel num_threads(nthr)
    {
        float *w = scratch + omp_get_thread_num() * slot;
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            if (which == CT_ATTN_GRAD_QKV)
                head_all(&a, u, bh, w);
            else if (by_head)
                head_kv(&a, which, u, w);
            else
                row_block(&a, which, u / nb, u % nb, w);
        }
    }
    return true;
}
