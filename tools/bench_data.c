/* Synthetic data for the benchmarks, and what each precision means here.
 *
 * Benchmarks need no dataset: inputs are standard normal values and labels
 * uniform over the classes, both from the engine's Philox streams, so a
 * seed gives the same data on every machine. (The PyTorch twins draw their
 * own values; only the shapes and distributions have to match for a
 * throughput comparison.)
 */
#include <stdlib.h>

#include "bench.h"

const char *bench_precision_name(bench_precision p) {
    static const char *names[] = {"fp32", "tf32", "fp16", "bf16"};
    return p >= 0 && p < BENCH_PRECISION_COUNT ? names[p] : "?";
}

ct_dtype bench_precision_dtype(bench_precision p) {
    switch (p) {
    case BENCH_FP16: return CT_F16;
    case BENCH_BF16: return CT_BF16;
    default: return CT_F32;
    }
}

const char *bench_precision_unsupported(const bench_opts *o) {
    /* TF32 is a mode of NVIDIA tensor cores for F32 matrix products, which
     * ct_graph_set_tf32 allows on a GPU; the CPU backend ignores that flag,
     * so a CPU figure under that name would be an fp32 one. */
    if (o->precision == BENCH_TF32 && o->device.kind == CT_DEVICE_CPU)
        return "tf32 is a GPU flag (NVIDIA tensor cores, ct_graph_set_tf32); the CPU backend has no tf32 mode";
    return NULL;
}

const char *bench_precision_unsupported_for(const bench_workload *w, const bench_opts *o) {
    (void)w;
    return bench_precision_unsupported(o);
}

void *bench_random_values(uint64_t seed, uint32_t stream, size_t n, ct_dtype dt) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) return bench_oom(n * sizeof *f), NULL;
    ct_init rule = ct_init_normal(0.0, 1.0);
    if (ct_init_fill(&rule, (ct_shape){1, {(int64_t)n}}, CT_F32, seed, stream, f) != CT_OK) {
        bench_set_error("synthetic data: %s", ct_last_error());
        free(f);
        return NULL;
    }
    if (dt == CT_F32) return f;
    /* Half types are narrowed in place: element i of the 2-byte array never
     * overwrites a float that is still to be read. */
    uint16_t *h = (uint16_t *)f;
    for (size_t i = 0; i < n; i++) h[i] = dt == CT_F16 ? ct_f32_to_f16(f[i]) : ct_f32_to_bf16(f[i]);
    return f;
}

int32_t *bench_random_labels(uint64_t seed, uint32_t stream, size_t n, int classes) {
    int32_t *y = malloc((n ? n : 1) * sizeof *y);
    if (!y) return bench_oom(n * sizeof *y), NULL;
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)(ct_philox_u32(seed, stream, 0, i) % (uint32_t)classes);
    return y;
}
