/* Single CPU kernels timed alone, through the backend's kernel table: the
 * figures behind docs/cpu_backend.md's notes on the recurrent products and
 * layer norm's row loops. Not part of the build (it reads the library's
 * internal headers); for a quiet machine:
 *
 *     cmake --build build-cpu
 *     gcc -O2 -fopenmp -Iinclude -Isrc benchmarks/cpu_kernels.c build-cpu/libctrain.a \
 *         $(pkg-config --libs openblas) -lsleef -ldnnl -lcjson -lz -lm -o /tmp/cpu_kernels
 *     /tmp/cpu_kernels            # OMP_NUM_THREADS=1 for one core
 *
 * Each figure is the median of 15 timings of a batch of calls, after
 * warm-up calls. Sizes are the bench workloads': lstm-char's layer (batch
 * 32, 64 steps, 256 units) and one 16-row block of its step product
 * (16 x 256 x 1024), gpt-char's layer norms ([768, 128]), its GELU and
 * bias add ([768, 512]) and the permute that splits its heads. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/attention.h"
#include "core/backend.h"
#include "core/rnn.h"
#include "cpu/cpu_util.h"
#include "ctrain/device.h"

#define TIMINGS 15

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Values in (-scale, scale), never zero, from a fixed sequence. */
static float *values(int64_t n, float scale, uint32_t seed) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = scale * (((float)(seed >> 8) + 0.5f) / 16777216.0f * 2.0f - 1.0f);
    }
    return p;
}

/* Median microseconds per call of fn(ctx), calls per timing. */
static double time_us(void (*fn)(void *), void *ctx, int calls) {
    double t[TIMINGS];
    for (int i = 0; i < 3; i++) fn(ctx);
    for (int r = 0; r < TIMINGS; r++) {
        double t0 = now();
        for (int i = 0; i < calls; i++) fn(ctx);
        t[r] = (now() - t0) / calls * 1e6;
    }
    qsort(t, TIMINGS, sizeof t[0], cmp);
    return t[TIMINGS / 2];
}

/* ---- one block of a recurrent step's product: F32 panels and BF16 pairs */

typedef struct gemm_ctx {
    int64_t m, n, k;
    const float *a, *wp;
    const uint32_t *ab, *wb;
    float *c;
} gemm_ctx;

static void gemm_f32(void *p) {
    gemm_ctx *g = p;
    ct_rnn_panel_gemm(g->m, g->n, g->k, g->a, g->k, g->wp, g->c, g->n, false);
}

static void gemm_bf16(void *p) {
    gemm_ctx *g = p;
    ct_rnn_panel_gemm_bf16(g->m, g->n, g->k, g->ab, g->wb, g->c, g->n, false);
}

static void panel_products(void) {
    const int64_t m = 16, shapes[2][2] = {{1024, 256}, {256, 1024}}; /* N, K: forward, backward */
    for (int s = 0; s < 2; s++) {
        int64_t n = shapes[s][0], k = shapes[s][1], np = (n + CT_RNN_PANEL_COLS - 1) / CT_RNN_PANEL_COLS;
        float *a = values(m * k, 1.0f, 1), *b = values(k * n, 0.1f, 2), *c = malloc((size_t)(m * n) * sizeof(float));
        float *wp = malloc((size_t)ct_rnn_panels_size(k, n) * sizeof(float));
        uint32_t *wb = malloc((size_t)ct_rnn_panels_size(k, n) * sizeof(uint32_t));
        uint32_t *ab = malloc((size_t)(m * ct_rnn_pairs(k)) * sizeof(uint32_t));
        ct_rnn_pack_panels(b, k, n, false, wp, 0, np);
        ct_rnn_pack_panels_bf16(b, k, n, false, wb, 0, np);
        ct_rnn_rows_bf16(a, k, m, k, ab);
        gemm_ctx g = {m, n, k, a, wp, ab, wb, c};
        double f = time_us(gemm_f32, &g, 200), h = time_us(gemm_bf16, &g, 200), flop = 2.0 * (double)(m * n * k);
        printf("step product %lld x %lld x %lld, one thread: F32 panels %.1f us (%.0f GFLOP/s), BF16 pairs%s "
               "%.1f us (%.0f GFLOP/s)\n",
               (long long)m, (long long)k, (long long)n, f, flop / f * 1e-3,
               ct_rnn_bf16_dot() ? "" : " (no AVX512-BF16: plain C)", h, flop / h * 1e-3);
        free(a), free(b), free(c), free(wp), free(wb), free(ab);
    }
}

/* ---- the LSTM layer's recurrence, forward and the gates' gradient ------- */

typedef struct kernel_ctx {
    ct_kargs k;
} kernel_ctx;

static void run_kernel(void *p) {
    kernel_ctx *c = p;
    ct_status st = ct_cpu_backend()->kernels[c->k.op](&c->k);
    if (st != CT_OK) {
        fprintf(stderr, "cpu_kernels: %s\n", ct_last_error());
        exit(1);
    }
}

static void lstm_layer(void) {
    const int64_t B = 32, T = 64, H = 256, G = 4, W = 6;
    float *x = values(B * T * G * H, 0.5f, 3), *w = values(G * H * H, 0.06f, 4), *b = values(G * H, 0.06f, 5);
    float *h0 = values(B * H, 0.5f, 6), *dy = values(B * T * H, 0.5f, 7), *rec = malloc((size_t)(B * T * W * H) * 4);
    float *dx = malloc((size_t)(B * T * G * H) * sizeof(float));
    const ct_shape xs = {3, {B, T, G * H}}, rs = {3, {B, T, W * H}}, ws = {2, {G * H, H}}, hs = {2, {B, H}};
    const ct_dtype halves[2] = {CT_F32, CT_BF16};
    for (int hi = 0; hi < 2; hi++) {
        ct_attrs a = {0};
        a.cell = CT_LSTM, a.half = halves[hi];
        ct_tview fin[5] = {{x, CT_F32, xs, B * T * G * H}, {w, CT_F32, ws, G * H * H}, {b, CT_F32, {1, {G * H}}, G * H},
                           {h0, CT_F32, hs, B * H}, {h0, CT_F32, hs, B * H}};
        kernel_ctx f = {{.op = CT_OP_RNN, .attr = &a, .n_in = 5, .in = fin, .out = {rec, CT_F32, rs, B * T * W * H}}};
        f.k.scratch = malloc(ct_cpu_backend()->scratch_bytes(&f.k));
        double tf = time_us(run_kernel, &f, 3);
        ct_attrs ag = a;
        ag.which = CT_RNN_GRAD_GATES;
        ct_tview gin[5] = {{rec, CT_F32, rs, B * T * W * H}, {dy, CT_F32, {3, {B, T, H}}, B * T * H}, fin[1], fin[3],
                           fin[4]};
        kernel_ctx g = {{.op = CT_OP_RNN_GRAD, .attr = &ag, .n_in = 5, .in = gin,
                         .out = {dx, CT_F32, xs, B * T * G * H}}};
        g.k.scratch = malloc(ct_cpu_backend()->scratch_bytes(&g.k));
        double tg = time_us(run_kernel, &g, 3);
        printf("lstm layer B %lld T %lld H %lld, %d threads, %s products: forward %.2f ms, gates' gradient %.2f ms\n",
               (long long)B, (long long)T, (long long)H, omp_get_max_threads(), ct_dtype_name(halves[hi]), tf * 1e-3,
               tg * 1e-3);
        free(f.k.scratch), free(g.k.scratch);
    }
    free(x), free(w), free(b), free(h0), free(dy), free(rec), free(dx);
}

/* ---- layer norm's gradients on gpt-char's [768, 128] -------------------- */

static void layer_norm_grads(void) {
    const int64_t rows = 768, dim = 128;
    float *x = values(rows * dim, 1.0f, 8), *dy = values(rows * dim, 1.0f, 9), *w = values(dim, 1.0f, 10);
    float *out = malloc((size_t)(rows * dim) * sizeof(float));
    const ct_shape xs = {2, {rows, dim}}, vs = {1, {dim}};
    const char *names[3] = {"input", "weight", "bias"};
    for (int which = CT_NORM_GRAD_X; which <= CT_NORM_GRAD_BIAS; which++) {
        ct_attrs a = {0};
        a.which = which, a.eps = 1e-5, a.has_weight = true, a.has_bias = true;
        ct_tview in[3] = {{x, CT_F32, xs, rows * dim}, {dy, CT_F32, xs, rows * dim}, {w, CT_F32, vs, dim}};
        bool full = which == CT_NORM_GRAD_X;
        kernel_ctx c = {{.op = CT_OP_LAYER_NORM_GRAD, .attr = &a, .n_in = full ? 3 : 2, .in = in,
                         .out = {out, CT_F32, full ? xs : vs, full ? rows * dim : dim}}};
        size_t sb = ct_cpu_backend()->scratch_bytes(&c.k);
        c.k.scratch = sb ? malloc(sb) : NULL;
        printf("layer norm [%lld, %lld] %s gradient, %d threads: %.1f us\n", (long long)rows, (long long)dim,
               names[which], omp_get_max_threads(), time_us(run_kernel, &c, 200));
        free(c.k.scratch);
    }
    free(x), free(dy), free(w), free(out);
}

/* ---- gpt-char's elementwise work and the heads' permute ------------------ */

static void gpt_elementwise(void) {
    const int64_t n = 768 * 512, heads = 768 * 384;
    float *x = values(n, 3.0f, 11), *dy = values(n, 1.0f, 12), *b = values(512, 1.0f, 13);
    float *out = malloc((size_t)n * sizeof(float));
    const ct_shape s = {2, {768, 512}};
    ct_attrs gelu = {0}, grad = {0}, none = {0}, perm = {.perm = {2, 0, 3, 1, 4}};
    grad.fwd_op = CT_OP_GELU;
    ct_tview in[2] = {{x, CT_F32, s, n}, {dy, CT_F32, s, n}};
    kernel_ctx f = {{.op = CT_OP_GELU, .attr = &gelu, .n_in = 1, .in = in, .out = {out, CT_F32, s, n}}};
    kernel_ctx g = {{.op = CT_OP_UNARY_GRAD, .attr = &grad, .n_in = 2, .in = in, .out = {out, CT_F32, s, n}}};
    ct_tview bias[2] = {{x, CT_F32, s, n}, {b, CT_F32, {1, {512}}, 512}};
    kernel_ctx a = {{.op = CT_OP_ADD, .attr = &none, .n_in = 2, .in = bias, .out = {out, CT_F32, s, n}}};
    ct_tview qkv = {x, CT_F32, {5, {12, 64, 3, 4, 32}}, heads};
    kernel_ctx pm = {{.op = CT_OP_PERMUTE, .attr = &perm, .n_in = 1, .in = &qkv,
                      .out = {out, CT_F32, {5, {3, 12, 4, 64, 32}}, heads}}};
    uint16_t *half = malloc((size_t)n * sizeof *half);
    ct_attrs to_bf16 = {.dtype = CT_BF16};
    kernel_ctx cs = {{.op = CT_OP_CAST, .attr = &to_bf16, .n_in = 1, .in = in, .out = {half, CT_BF16, s, n}}};
    int t = omp_get_max_threads();
    printf("cast [768, 512] f32 -> bf16, %d threads: %.1f us\n", t, time_us(run_kernel, &cs, 50));
    free(half);
    printf("gelu [768, 512], %d threads: %.1f us\n", t, time_us(run_kernel, &f, 50));
    printf("gelu gradient [768, 512], %d threads: %.1f us\n", t, time_us(run_kernel, &g, 50));
    printf("bias add [768, 512] + [512], %d threads: %.1f us\n", t, time_us(run_kernel, &a, 50));
    printf("permute [12, 64, 3, 4, 32] -> [3, 12, 4, 64, 32], %d threads: %.1f us\n", t, time_us(run_kernel, &pm, 50));
    free(x), free(dy), free(b), free(out);
}

/* ---- gpt-char's attention: [12, 4, 64, 32], causal ---------------------- */

static void gpt_attention(void) {
    const int64_t n = 12 * 4 * 64 * 32;
    const ct_shape s = {4, {12, 4, 64, 32}}, s3 = {5, {3, 12, 4, 64, 32}};
    float *q = values(n, 1.0f, 14), *k = values(n, 1.0f, 15), *v = values(n, 1.0f, 16), *dy = values(n, 1.0f, 17);
    float *out = malloc((size_t)(3 * n) * sizeof(float));
    ct_attrs fa = {.alpha = 0.1767767, .causal = true}, ga = fa;
    ga.which = CT_ATTN_GRAD_QKV;
    ct_tview in[4] = {{q, CT_F32, s, n}, {k, CT_F32, s, n}, {v, CT_F32, s, n}, {dy, CT_F32, s, n}};
    kernel_ctx f = {{.op = CT_OP_ATTENTION, .attr = &fa, .n_in = 3, .in = in, .out = {out, CT_F32, s, n}}};
    kernel_ctx g = {{.op = CT_OP_ATTENTION_GRAD, .attr = &ga, .n_in = 4, .in = in, .out = {out, CT_F32, s3, 3 * n}}};
    f.k.scratch = malloc(ct_cpu_backend()->scratch_bytes(&f.k));
    g.k.scratch = malloc(ct_cpu_backend()->scratch_bytes(&g.k));
    int t = omp_get_max_threads();
    printf("attention [12, 4, 64, 32] causal, %d threads: forward %.1f us, gradients %.1f us\n", t,
           time_us(run_kernel, &f, 20), time_us(run_kernel, &g, 20));
    free(f.k.scratch), free(g.k.scratch), free(q), free(k), free(v), free(dy), free(out);
}

int main(void) {
    printf("%s\n", ct_cpu_features());
    panel_products();
    lstm_layer();
    layer_norm_grads();
    gpt_elementwise();
    gpt_attention();
    return 0;
}
