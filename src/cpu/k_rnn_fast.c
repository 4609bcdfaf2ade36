/* The F32 fast path of the fused recurrent op and its backward (the op:
 * core/rnn.h; the reference: k_rnn.c), for F32 operands when
 * ct_cpu_float_math() says float math may run.
 *
 * Float throughout, as the CUDA kernels compute F32 recurrences and as
 * PyTorch's CPU nn.LSTM/nn.GRU do: the state is read from the record as
 * stored (float), the hidden product goes into a float [rows, G*H] buffer,
 * the biases and the input projection are added in float, and the gates go
 * through SLEEF's float sigmoid and tanh (cpu_vmath.h) over contiguous
 * blocks of H units (the product gives each gate's H pre-activations side
 * by side in a row, and the record keeps the LSTM's and GRU's gates in the
 * same order). The backward is the cell's (core/rnn_cell.h) in float,
 * written as loops over the H units of a row, and its carried product dh =
 * dhp W_hh is one product per step. The reference computes each unit in
 * double and rounds to float when it stores; the difference is float
 * rounding (a few ULP per step, carried through the recurrence), measured
 * by tests/test_rnn_fast.c.
 *
 * The products: W_hh is packed once per call into 16-column panels (W_hh^T
 * forward, W_hh backward) and every step multiplies by the panels
 * (rnn_gemm.c), where sgemm would pack W_hh again at each of the T calls.
 *
 * No per-step synchronisation: the batch rows are cut into blocks whose
 * size depends on B only (at most ROWS_MAX rows, as even as possible), and
 * one thread runs the whole recurrence of a block. Every block computes the
 * same arithmetic on whatever thread runs it, so the results do not depend
 * on the number of threads; the threads meet twice per call (after packing,
 * at the end), where the reference met twice per step.
 *
 * Under an FP16/BF16 policy (attr.half) the hidden products take half
 * operands as the policy's other products do: W_hh rounded once when
 * packed, each step's rows of h (or dhp) when multiplied; sums, state and
 * cell stay float. With BF16 on a CPU with AVX512-BF16 the panels hold BF16
 * pairs and each instruction takes two k (rnn_gemm.c); otherwise the
 * rounded values go through the float kernel.
 *
 * Scratch, in floats: the panels, then rows of the whole batch (a block
 * uses its rows): hp and gx [B, G*H], then three [B, H]: dh, dc and a
 * temporary; then ah [B, G*H] (a half policy's rounded rows); then [B, 6H]
 * for a dR of h columns only (bwd_block). */
#include <omp.h>
#include <string.h>

#include "core/rnn.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"

/* Rows per block, at most: enough rows to fill the product's 6-row
 * register blocks, few enough that a batch of 32 gives each of two cores a
 * block. */
#define ROWS_MAX 16

typedef struct rf {
    int cell, G, W, which; /* which: -1 forward, else a ct_rnn_grad */
    bool reverse, dr_h;    /* dr_h: dR holds the h columns only, [B, T, H] */
    ct_dtype half;         /* the products' operand dtype: F32, or a policy's F16 / BF16 */
    bool dot;              /* BF16 operands on AVX512-BF16 (BF16 pairs in wp and ah) */
    int64_t B, T, H, GH, WH, rows, nblk;
    const float *xp, *w, *b, *h0, *c0, *r, *dr;
    float *out, *wp, *hp, *gx, *dh, *dc, *t1, *dz, *ah;
} rf;

/* W_hh's panels: W_hh^T [H, GH] for the forward, W_hh [GH, H] backward */
static int64_t panels_size(int64_t H, int64_t GH) {
    int64_t f = ct_rnn_panels_size(H, GH), b = ct_rnn_panels_size(GH, H);
    return f > b ? f : b;
}

/* The last part, B rows of the widest record (6H), is where a dR of h
 * columns only is widened row by row, its other columns zero. */
size_t ct_cpu_rnn_fast_scratch(int64_t B, int64_t H, int64_t GH) {
    return (size_t)(panels_size(H, GH) + B * (3 * GH + 3 * H) + B * 6 * H) * sizeof(float);
}

/* The time index of the s-th step walked. */
static int64_t step_t(const rf *f, int64_t s) { return f->reverse ? f->T - 1 - s : s; }

/* C [m, N] (+)= A [m, K] W_hh's panels, rows from batch row b0 on. Under a
 * half policy A's rows are rounded to half first (into ah), as the panels
 * were when packed: half operands, float sums, as every other product of
 * the policy (on AVX512-BF16 as BF16 pairs, two k per instruction). */
static CT_ALWAYS_INLINE void hidden_product(const rf *f, int64_t b0, int64_t m, int64_t N, int64_t K,
                                            const float *a, int64_t lda, float *c, int64_t ldc, bool acc) {
    if (f->half == CT_F32) {
        ct_rnn_panel_gemm(m, N, K, a, lda, f->wp, c, ldc, acc);
        return;
    }
    float *ah = f->ah + b0 * f->GH; /* m rows of K <= GH */
    if (f->dot) {
        ct_rnn_rows_bf16(a, lda, m, K, (uint32_t *)ah);
        ct_rnn_panel_gemm_bf16(m, N, K, (const uint32_t *)ah, (const uint32_t *)f->wp, c, ldc, acc);
        return;
    }
    ct_rnn_round_rows(a, lda, m, K, f->half, ah);
    ct_rnn_panel_gemm(m, N, K, ah, K, f->wp, c, ldc, acc);
}

/* Where row b0's previous state (h, or c at col H) of step s is, and the
 * stride between rows: the record of step s - 1, or h0 / c0 at s = 0. */
static const float *prev_state(const rf *f, const float *rec, int64_t b0, int64_t s, int col, int64_t *ld) {
    if (s == 0) {
        *ld = f->H;
        return (col ? f->c0 : f->h0) + b0 * f->H;
    }
    *ld = f->T * f->WH;
    return rec + (b0 * f->T + step_t(f, s - 1)) * f->WH + col;
}

/* Asks for n floats from p into the caches (L2) ahead of use: the next
 * step's rows of the input projection, the record and its gradient are T
 * rows apart in memory, one per batch row, a stream the hardware
 * prefetcher meets late (in perf, the forward's first pass over each input
 * row took two thirds of the cell's own loop samples). The product of the
 * step between hides the wait: the LSTM layer's forward a few percent
 * faster in three interleaved runs of benchmarks/cpu_kernels.c. */
static CT_ALWAYS_INLINE void prefetch_floats(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 2);
}

/* ---- forward: one row of one step --------------------------------------- */

/* pre = x + (hp + b), the reference's order, over n values. */
static CT_ALWAYS_INLINE void add_pre(float *restrict pre, const float *restrict x, const float *restrict b, int64_t n) {
    CT_SIMD_LOOP
    for (int64_t j = 0; j < n; j++) pre[j] = x[j] + (pre[j] + b[j]);
}

/* The record row rec of one batch row at one step, from its hidden product
 * hp (G*H, overwritten), input projection x and previous state hprev,
 * cprev; t is H floats of room. */
static CT_ALWAYS_INLINE void cell_fwd_row(const rf *f, float *restrict hp, const float *restrict x,
                                          const float *restrict hprev, const float *restrict cprev,
                                          float *restrict rec, float *restrict t) {
    const int64_t H = f->H;
    if (f->cell == CT_LSTM) {
        add_pre(hp, x, f->b, 4 * H);
        ct_vsigmoidf(hp, rec + 2 * H, 2 * H); /* i, f */
        ct_vtanhf(hp + 2 * H, rec + 4 * H, H); /* g */
        ct_vsigmoidf(hp + 3 * H, rec + 5 * H, H); /* o */
        const float *gi = rec + 2 * H, *gf = rec + 3 * H, *gg = rec + 4 * H, *go = rec + 5 * H;
        float *c = rec + H;
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) c[u] = gf[u] * cprev[u] + gi[u] * gg[u];
        ct_vtanhf(c, t, H);
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) rec[u] = go[u] * t[u];
    } else if (f->cell == CT_GRU) {
        add_pre(hp, x, f->b, 2 * H);
        ct_vsigmoidf(hp, rec + H, 2 * H); /* r, z */
        const float *gr = rec + H, *gz = rec + 2 * H, *bn = f->b + 2 * H, *xn = x + 2 * H;
        float *hn = rec + 4 * H, *hpn = hp + 2 * H;
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) {
            hn[u] = hpn[u] + bn[u];
            t[u] = xn[u] + gr[u] * hn[u];
        }
        ct_vtanhf(t, rec + 3 * H, H); /* n */
        const float *gn = rec + 3 * H;
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) rec[u] = (1.0f - gz[u]) * gn[u] + gz[u] * hprev[u];
    } else {
        add_pre(hp, x, f->b, H);
        if (f->cell == CT_RNN_TANH) {
            ct_vtanhf(hp, rec, H);
        } else {
            /* relu as PyTorch's: NaN passes through */
            CT_SIMD_LOOP
            for (int64_t u = 0; u < H; u++) rec[u] = hp[u] < 0.0f ? 0.0f : hp[u];
        }
    }
}

/* The whole forward recurrence of rows [b0, b1). */
static CT_ALWAYS_INLINE void fwd_block(const rf *f, int64_t b0, int64_t b1) {
    const int64_t H = f->H, GH = f->GH, T = f->T, WH = f->WH;
    float *hp = f->hp + b0 * GH;
    for (int64_t s = 0; s < T; s++) {
        int64_t t = step_t(f, s), ldh, ldc = 0;
        const float *hprev = prev_state(f, f->out, b0, s, 0, &ldh);
        const float *cprev = f->c0 ? prev_state(f, f->out, b0, s, (int)H, &ldc) : NULL;
        hidden_product(f, b0, b1 - b0, GH, H, hprev, ldh, hp, GH, false);
        for (int64_t b = b0; b < b1; b++) {
            int64_t i = b - b0;
            cell_fwd_row(f, hp + i * GH, f->xp + (b * T + t) * GH, hprev + i * ldh, cprev ? cprev + i * ldc : NULL,
                         f->out + (b * T + t) * WH, f->t1 + b * H);
            if (s + 1 < T) prefetch_floats(f->xp + (b * T + step_t(f, s + 1)) * GH, GH);
        }
    }
}

/* ---- backward: one row of one step -------------------------------------- */

/* From the record row rec and its gradient dr at this step, the carried dh
 * and dc (updated in place to what passes to the previous step, less the
 * W_hh product) and the previous state: dx (the gates' pre-activations'
 * gradient) and dhp (the hidden product's: dx but for the GRU's n gate).
 * t is H floats of room. */
static CT_ALWAYS_INLINE void cell_bwd_row(const rf *f, const float *restrict rec, const float *restrict dr,
                                          float *restrict dh, float *restrict dc, const float *restrict hprev,
                                          const float *restrict cprev, float *restrict dx, float *restrict dhp,
                                          float *restrict t) {
    const int64_t H = f->H;
    if (f->cell == CT_LSTM) {
        const float *c = rec + H, *gi = rec + 2 * H, *gf = rec + 3 * H, *gg = rec + 4 * H, *go = rec + 5 * H;
        ct_vtanhf(c, t, H);
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) {
            float tc = t[u], dhv = dr[u] + dh[u];
            float dcv = dr[H + u] + dc[u] + dhv * go[u] * (1.0f - tc * tc);
            dx[u] = (dcv * gg[u] + dr[2 * H + u]) * gi[u] * (1.0f - gi[u]);
            dx[H + u] = (dcv * cprev[u] + dr[3 * H + u]) * gf[u] * (1.0f - gf[u]);
            dx[2 * H + u] = (dcv * gi[u] + dr[4 * H + u]) * (1.0f - gg[u] * gg[u]);
            dx[3 * H + u] = (dhv * tc + dr[5 * H + u]) * go[u] * (1.0f - go[u]);
            dc[u] = dcv * gf[u];
        }
    } else if (f->cell == CT_GRU) {
        const float *gr = rec + H, *gz = rec + 2 * H, *gn = rec + 3 * H, *hn = rec + 4 * H;
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) {
            float dhv = dr[u] + dh[u], r = gr[u], z = gz[u], n = gn[u];
            float dn = (dhv * (1.0f - z) + dr[3 * H + u]) * (1.0f - n * n);
            float d0 = (dn * hn[u] + dr[H + u]) * r * (1.0f - r);
            float d1 = (dhv * (hprev[u] - n) + dr[2 * H + u]) * z * (1.0f - z);
            dx[u] = d0, dx[H + u] = d1, dx[2 * H + u] = dn;
            dhp[u] = d0, dhp[H + u] = d1, dhp[2 * H + u] = dn * r + dr[4 * H + u];
            dh[u] = dhv * z;
        }
    } else {
        const bool relu = f->cell == CT_RNN_RELU;
        CT_SIMD_LOOP
        for (int64_t u = 0; u < H; u++) {
            float dhv = dr[u] + dh[u], h = rec[u];
            dx[u] = relu ? (h > 0.0f ? dhv : 0.0f) : dhv * (1.0f - h * h);
        }
    }
    (void)t;
}

/* The whole backward recurrence of rows [b0, b1); dx to the output when it
 * is the gates' gradient, else to gx; dh0 or dc0 to the output at the end. */
static CT_ALWAYS_INLINE void bwd_block(const rf *f, int64_t b0, int64_t b1) {
    const int64_t H = f->H, GH = f->GH, T = f->T, WH = f->WH, n = b1 - b0;
    const bool gates = f->which == CT_RNN_GRAD_GATES, gru = f->cell == CT_GRU;
    float *dh = f->dh + b0 * H, *dc = f->dc + b0 * H, *dz = f->dz + b0 * WH;
    memset(dh, 0, (size_t)(n * H) * sizeof(float));
    memset(dc, 0, (size_t)(n * H) * sizeof(float));
    if (f->dr_h) memset(dz, 0, (size_t)(n * WH) * sizeof(float));
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t t = step_t(f, s), ldh, ldc = 0;
        const float *hprev = prev_state(f, f->r, b0, s, 0, &ldh);
        const float *cprev = f->c0 ? prev_state(f, f->r, b0, s, (int)H, &ldc) : NULL;
        /* dx rows: in the output (stride T*GH) or in gx */
        float *dx = gates ? f->out + (b0 * T + t) * GH : f->gx + b0 * GH;
        int64_t ldx = gates ? T * GH : GH;
        for (int64_t b = b0; b < b1; b++) {
            int64_t i = b - b0, ro = (b * T + t) * WH;
            const float *dr = f->dr + ro;
            if (f->dr_h) { /* the row's h columns into its zero-filled record row */
                memcpy(dz + i * WH, f->dr + (b * T + t) * H, (size_t)H * sizeof(float));
                dr = dz + i * WH;
            }
            cell_bwd_row(f, f->r + ro, dr, dh + i * H, dc + i * H, hprev + i * ldh,
                         cprev ? cprev + i * ldc : NULL, dx + i * ldx, f->hp + b * GH, f->t1 + b * H);
            if (s > 0) { /* step s - 1's record row and its gradient */
                int64_t rp = b * T + step_t(f, s - 1);
                prefetch_floats(f->r + rp * WH, WH);
                prefetch_floats(f->dr + rp * (f->dr_h ? H : WH), f->dr_h ? H : WH);
            }
        }
        /* dh = dh_direct (the GRU's z dh, else nothing) + dhp W_hh */
        const float *dhp = gru ? f->hp + b0 * GH : dx;
        hidden_product(f, b0, n, H, GH, dhp, gru ? GH : ldx, dh, H, gru);
    }
    if (!gates) memcpy(f->out + b0 * H, f->which == CT_RNN_GRAD_H0 ? dh : dc, (size_t)(n * H) * sizeof(float));
}

static CT_ALWAYS_INLINE void run_block(const rf *f, int64_t blk) {
    int64_t b0 = blk * f->rows, b1 = b0 + f->rows < f->B ? b0 + f->rows : f->B;
    if (b0 >= b1) return;
    if (f->which < 0) fwd_block(f, b0, b1);
    else bwd_block(f, b0, b1);
}

static void run_block_base(const rf *f, int64_t blk) { run_block(f, blk); }
static CT_TARGET_AVX2 void run_block_avx2(const rf *f, int64_t blk) { run_block(f, blk); }
static CT_TARGET_AVX512 void run_block_avx512(const rf *f, int64_t blk) { run_block(f, blk); }

/* Panels [p0, p1) of W_hh (K x N as the product reads it), its values
 * rounded to the products' half dtype. */
static void pack(const rf *f, int64_t K, int64_t N, bool trans, int64_t p0, int64_t p1) {
    if (f->dot) {
        ct_rnn_pack_panels_bf16(f->w, K, N, trans, (uint32_t *)f->wp, p0, p1);
        return;
    }
    ct_rnn_pack_panels(f->w, K, N, trans, f->wp, p0, p1);
    if (f->half != CT_F32) {
        float *w = f->wp + p0 * CT_RNN_PANEL_COLS * K;
        ct_rnn_round_rows(w, 0, 1, (p1 - p0) * CT_RNN_PANEL_COLS * K, f->half, w);
    }
}

/* Packs W_hh's panels (split across the threads by panel), then runs
 * every block, each on one thread. */
static void run_blocks(const rf *f) {
    void (*const clones[3])(const rf *, int64_t) = {run_block_base, run_block_avx2, run_block_avx512};
    void (*fn)(const rf *, int64_t) = clones[ct_cpu_simd_level()];
    bool grad = f->which >= 0;
    int64_t K = grad ? f->GH : f->H, N = grad ? f->H : f->GH;
    int64_t np = (N + CT_RNN_PANEL_COLS - 1) / CT_RNN_PANEL_COLS;
    int max = omp_get_max_threads(), nt = f->nblk < max ? (int)f->nblk : max;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int64_t n = omp_get_num_threads(), t = omp_get_thread_num();
        pack(f, K, N, !grad, np * t / n, np * (t + 1) / n);
#pragma omp barrier
        for (int64_t blk = t; blk < f->nblk; blk += n) fn(f, blk);
    }
}

bool ct_cpu_rnn_fast(const ct_kargs *k, int cell, bool reverse, int64_t B, int64_t T, int64_t H, int which) {
    if (!ct_cpu_float_math() || k->out.dtype != CT_F32) return false;
    for (int i = 0; i < k->n_in; i++)
        if (k->in[i].dtype != CT_F32) return false;
    int G = ct_rnn_gates(cell), W = ct_rnn_record_units(cell);
    if (B * T == 0) return false;
    bool grad = which >= 0;
    rf f = {.cell = cell, .G = G, .W = W, .which = which, .reverse = reverse, .B = B,
            .T = T, .H = H, .GH = G * H, .out = k->out.data, .w = k->in[grad ? 2 : 1].data,
            .h0 = k->in[3].data, .c0 = cell == CT_LSTM ? k->in[4].data : NULL};
    f.WH = f.W * H;
    f.half = ct_rnn_products_dtype(k->attr);
    f.dot = f.half == CT_BF16 && ct_rnn_bf16_dot();
    f.nblk = (B + ROWS_MAX - 1) / ROWS_MAX;
    f.rows = (B + f.nblk - 1) / f.nblk;
    if (grad) f.r = k->in[0].data, f.dr = k->in[1].data, f.dr_h = k->in[1].numel == B * T * H && W > 1;
    else f.xp = k->in[0].data, f.b = k->in[2].data;
    float *p = k->scratch;
    f.wp = p, p += panels_size(H, f.GH);
    f.hp = p, p += B * f.GH;
    f.gx = p, p += B * f.GH;
    f.dh = p, p += B * H;
    f.dc = p, p += B * H;
    f.t1 = p, p += B * H;
    f.ah = p, p += B * f.GH;
    f.dz = p;
    run_blocks(&f);
    return true;
}
