/* Matrix-product micro-benchmarks: C[M, N] = A[M, K] @ B[K, N] through the
 * engine's matmul op, in the run's precision (F32, or F16/BF16 storage with
 * F32 accumulation). 2MNK floating-point operations; (MK + KN + MN) elements
 * moved at the least.
 *
 * Three shapes: square (compute-bound), skinny (few rows: every element of
 * B is used M times only, so reading B bounds it - a decoder step, a small
 * batch), tall (many rows of a narrow layer). Sizes differ by device so that
 * each takes a measurable, not a punishing, time.
 */
#include <stdlib.h>

#include "bench.h"

const bench_matmul_shape bench_matmul_square = {"square", {1024, 1024, 1024}, {8192, 8192, 8192}};
const bench_matmul_shape bench_matmul_skinny = {"skinny", {16, 4096, 4096}, {16, 16384, 16384}};
const bench_matmul_shape bench_matmul_tall = {"tall", {16384, 256, 256}, {1048576, 256, 256}};

typedef struct matmul_state {
    ct_graph *g;
    ct_program *p;
} matmul_state;

void bench_matmul_teardown(void *state) {
    matmul_state *s = state;
    if (!s) return;
    ct_program_free(s->p);
    ct_graph_free(s->g);
    free(s);
}

/* Uploads seeded values into input `name` of n elements. */
static ct_status fill_input(ct_program *p, const char *name, uint64_t seed, uint32_t stream, size_t n,
                            ct_dtype dt) {
    void *host = bench_random_values(seed, stream, n, dt);
    if (!host) return CT_ERR_OOM;
    ct_status st = ct_program_set_input(p, name, host, n * ct_dtype_size(dt));
    free(host);
    return st;
}

ct_status bench_matmul_setup_mkn(const bench_opts *o, int64_t m, int64_t k, int64_t n, ct_dtype dt,
                                 void **state, bench_setup *out) {
    matmul_state *s = calloc(1, sizeof *s);
    if (!s) return bench_oom(sizeof *s);
    ct_status st;
    if (!(s->g = ct_graph_new())) {
        st = bench_oom(0);
        goto fail;
    }
    /* tf32 (GPU only): the product may round its F32 operands to TF32. */
    if (o->precision == BENCH_TF32 && (st = ct_graph_set_tf32(s->g, true)) != CT_OK) goto fail;
    ct_node a = ct_input(s->g, "a", dt, (ct_shape){2, {m, k}});
    ct_node b = ct_input(s->g, "b", dt, (ct_shape){2, {k, n}});
    ct_node c = ct_matmul(s->g, a, b, false, false);
    if ((st = ct_graph_status(s->g)) != CT_OK) goto fail;
    ct_compile_opts co = {.device = o->device, .outputs = &c, .n_outputs = 1};
    if (!(s->p = ct_compile(s->g, &co))) {
        st = ct_last_status();
        goto fail;
    }
    if ((st = fill_input(s->p, "a", o->seed, 1, (size_t)(m * k), dt)) != CT_OK ||
        (st = fill_input(s->p, "b", o->seed, 2, (size_t)(k * n), dt)) != CT_OK)
        goto fail;
    snprintf(out->config, sizeof out->config, "%lldx%lldx%lld %s", (long long)m, (long long)k, (long long)n,
             ct_dtype_name(dt));
    out->flops_per_step = 2.0 * (double)m * (double)n * (double)k;
    out->bytes_per_step = (double)(m * k + k * n + m * n) * (double)ct_dtype_size(dt);
    out->metric = BENCH_METRIC_FLOPS;
    if (o->precision == BENCH_TF32)
        snprintf(out->dtype_note, sizeof out->dtype_note, "F32 operands, TF32 allowed (tensor cores)");
    else if (dt != CT_F32 && o->device.kind == CT_DEVICE_CPU)
        snprintf(out->dtype_note, sizeof out->dtype_note, "the CPU widens half-precision operands to F32 for sgemm");
    ct_program_memory(s->p, &out->mem);
    *state = s;
    return CT_OK;
fail:
    bench_matmul_teardown(s);
    return st;
}

ct_status bench_matmul_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out) {
    const bench_matmul_shape *shape = w->params;
    const int64_t *mkn = o->device.kind == CT_DEVICE_CPU ? shape->cpu : shape->cuda;
    int64_t m = mkn[0], k = mkn[1], n = mkn[2];
    if (o->quick) {
        /* Keep each shape's character at a size that takes microseconds. */
        m = m <= 16 ? 4 : m >= 16384 ? 512 : 64;
        k = k >= 4096 ? 128 : k >= 1024 ? 64 : 32;
        n = k;
    }
    ct_status st = bench_matmul_setup_mkn(o, m, k, n, bench_precision_dtype(o->precision), state, out);
    /* Few rows: B is read once for every M rows, so the copy rate bounds it. */
    if (st == CT_OK && shape == &bench_matmul_skinny) out->metric = BENCH_METRIC_BYTES;
    return st;
}

ct_status bench_matmul_step(void *state) {
    matmul_state *s = state;
    return ct_program_run(s->p);
}
