/* The device's peak, measured rather than taken from a data sheet: once per
 * invocation, the best of a few large square matrix products through the
 * engine at the run's precision (on the CPU that is OpenBLAS's sgemm, the
 * fastest thing the machine does), and the best of a few large
 * device-to-device copies (memcpy on the CPU), counted as bytes read plus
 * bytes written. Workloads are then reported as a fraction of these: how
 * much of what this machine demonstrably can do they get.
 *
 * The best repetition, not the median: a peak is what the device reaches,
 * and noise only ever slows a run down.
 */
#include <string.h>

#include "bench.h"

typedef struct copy_state {
    ct_device d;
    void *dst, *src;
    size_t bytes;
} copy_state;

static ct_status copy_step(void *state) {
    copy_state *c = state;
    return ct_device_copy(c->d, c->dst, c->src, c->bytes);
}

static void peak_flops(const bench_opts *o, bench_peak *out) {
    int64_t n = o->quick ? 128 : o->device.kind == CT_DEVICE_CPU ? 2048 : 8192;
    ct_dtype dt = bench_precision_dtype(o->precision);
    void *state = NULL;
    bench_setup setup = {0};
    bench_stats stats;
    ct_status st = bench_matmul_setup_mkn(o, n, n, n, dt, &state, &setup);
    if (st == CT_OK) st = bench_measure(o->device, bench_matmul_step, state, 1, 1, o->quick ? 3 : 5, &stats);
    bench_matmul_teardown(state);
    if (st != CT_OK) {
        snprintf(out->gflops_what, sizeof out->gflops_what, "matmul probe failed: %.60s", bench_last_error());
        bench_clear_error();
        return;
    }
    out->gflops = setup.flops_per_step / stats.min / 1e9;
    out->timer = stats.timer;
    snprintf(out->gflops_what, sizeof out->gflops_what, "matmul %lldx%lldx%lld %s", (long long)n, (long long)n,
             (long long)n, o->precision == BENCH_TF32 ? "tf32" : ct_dtype_name(dt));
}

static void peak_bandwidth(const bench_opts *o, bench_peak *out) {
    size_t mib = o->quick ? 4 : o->device.kind == CT_DEVICE_CPU ? 256 : 1024;
    copy_state c = {o->device, NULL, NULL, mib << 20};
    bench_stats stats;
    ct_status st = CT_ERR_OOM;
    if ((c.src = ct_device_alloc(c.d, c.bytes)) && (c.dst = ct_device_alloc(c.d, c.bytes))) {
        /* Both buffers are written once first: untouched pages would make
         * the first copy a page-fault benchmark, and reading never-written
         * host pages reads one shared zero page, which stays in cache. */
        st = ct_device_copy(c.d, c.dst, c.src, c.bytes);
        if (st == CT_OK) st = ct_device_copy(c.d, c.src, c.dst, c.bytes);
        if (st == CT_OK) st = bench_measure(c.d, copy_step, &c, 1, 1, 5, &stats);
    }
    ct_device_free(c.d, c.src);
    ct_device_free(c.d, c.dst);
    if (st != CT_OK) {
        snprintf(out->gbps_what, sizeof out->gbps_what, "copy probe failed: %.60s", bench_last_error());
        bench_clear_error();
        return;
    }
    out->gbps = 2.0 * (double)c.bytes / stats.min / 1e9;
    out->timer = stats.timer;
    snprintf(out->gbps_what, sizeof out->gbps_what, "copy %zu MiB", mib);
}

void bench_measure_peak(const bench_opts *o, bench_peak *out) {
    memset(out, 0, sizeof *out);
    peak_flops(o, out);
    peak_bandwidth(o, out);
}
