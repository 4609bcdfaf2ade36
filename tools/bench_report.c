/* Reporting benchmark results: the figures derived from a measured step
 * time, and the readable table on stdout (bench_json.c writes the record).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MIB (1024.0 * 1024.0)

/* ---- derived figures ------------------------------------------------------ */

double bench_steps_per_s(const bench_result *r) {
    return r->status == BENCH_OK && r->stats.median > 0 ? 1.0 / r->stats.median : 0.0;
}

double bench_samples_per_s(const bench_result *r) {
    return r->setup.samples_per_step * bench_steps_per_s(r);
}

double bench_gflops(const bench_result *r) { return r->setup.flops_per_step * bench_steps_per_s(r) / 1e9; }

double bench_gbps(const bench_result *r) { return r->setup.bytes_per_step * bench_steps_per_s(r) / 1e9; }

double bench_peak_fraction(const bench_result *r, const bench_peak *peak) {
    if (r->setup.metric == BENCH_METRIC_FLOPS)
        return peak->gflops > 0 ? bench_gflops(r) / peak->gflops : 0.0;
    return peak->gbps > 0 ? bench_gbps(r) / peak->gbps : 0.0;
}

size_t bench_device_bytes(const bench_setup *s) { return s->mem.total + s->optim_bytes; }

/* ---- the table ------------------------------------------------------------ */

void bench_print_header(FILE *out, const bench_opts *o, const bench_peak *peak) {
    char dev[32], cpu[128];
    ct_device_str(o->device, dev, sizeof dev);
    bench_cpu_model(cpu, sizeof cpu);
    fprintf(out, "ctrain %s bench on %s, %s; host %s, %ld cores; %s\n", ct_version(), dev,
            bench_precision_name(o->precision), cpu, sysconf(_SC_NPROCESSORS_ONLN), ct_blas_info());
    if (peak->gflops > 0)
        fprintf(out, "peak (measured): %.1f GFLOP/s (%s)", peak->gflops, peak->gflops_what);
    else
        fprintf(out, "peak: no FLOP/s figure (%s)", peak->gflops_what);
    if (peak->gbps > 0)
        fprintf(out, ", %.1f GB/s (%s)\n", peak->gbps, peak->gbps_what);
    else
        fprintf(out, ", no GB/s figure (%s)\n", peak->gbps_what);
    fprintf(out, "%ld warm-up steps, then %ld repetitions of %ld steps; time per step: median [min - max]",
            o->warmup, o->reps, o->steps);
    if (peak->timer) fprintf(out, "; timed by %s", peak->timer);
    fprintf(out, "\n");
    /* Only OpenBLAS's pthread build keeps a second pool of threads that
     * competes with OpenMP's (docs/cpu_backend.md); with its OpenMP build
     * there is one pool and nothing to set. */
    const char *wait = getenv("OMP_WAIT_POLICY");
    bool one_pool = strstr(ct_blas_info(), "OpenMP's pool") != NULL;
    if (o->device.kind == CT_DEVICE_CPU && !one_pool && (!wait || strcmp(wait, "passive") != 0))
        fprintf(out, "note: OpenBLAS runs its own threads beside OpenMP's and OMP_WAIT_POLICY is not 'passive': "
                     "on few cores the CPU figures may be up to 2x low\n");
    fprintf(out, "\n");
    fprintf(out, "%-14s %-30s %6s %27s %9s %10s %15s %6s %8s\n", "workload", "config", "batch",
            "time/step [min - max]", "steps/s", "samples/s", "achieved", "%peak", "mem MiB");
}

/* Three significant digits, without an exponent (a rate, a time). */
static const char *rate_str(double v, char *buf, size_t cap) {
    snprintf(buf, cap, v >= 100.0 ? "%.0f" : "%.3g", v);
    return buf;
}

void bench_print_result(FILE *out, const bench_result *r, const bench_peak *peak) {
    if (r->status != BENCH_OK) {
        fprintf(out, "%-14s %s: %s\n", r->w->name, r->status == BENCH_UNSUPPORTED ? "unsupported" : "FAILED",
                r->reason);
        return;
    }
    const bench_setup *s = &r->setup;
    char batch[16] = "-", samples[32] = "-", steps[32], spread[128], achieved[32], frac[16] = "-";
    if (s->batch_size) snprintf(batch, sizeof batch, "%ld", s->batch_size);
    if (s->samples_per_step > 0) rate_str(bench_samples_per_s(r), samples, sizeof samples);
    /* A language model's samples are tokens: the column says so per row. */
    if (s->samples_per_step > 0 && s->sample_unit && strcmp(s->sample_unit, "tokens") == 0) {
        size_t len = strlen(samples);
        snprintf(samples + len, sizeof samples - len, " tok");
    }
    /* One unit for the median and its spread, chosen by the median. */
    double scale = r->stats.median >= 1.0 ? 1.0 : r->stats.median >= 1e-3 ? 1e3 : 1e6;
    const char *unit = scale == 1.0 ? "s" : scale == 1e3 ? "ms" : "us";
    char med[32], lo[32], hi[32];
    snprintf(spread, sizeof spread, "%s %s [%s - %s]", rate_str(scale * r->stats.median, med, sizeof med), unit,
             rate_str(scale * r->stats.min, lo, sizeof lo), rate_str(scale * r->stats.max, hi, sizeof hi));
    if (s->metric == BENCH_METRIC_FLOPS)
        snprintf(achieved, sizeof achieved, "%.1f GFLOP/s", bench_gflops(r));
    else
        snprintf(achieved, sizeof achieved, "%.2f GB/s", bench_gbps(r));
    double f = bench_peak_fraction(r, peak);
    if (f > 0) snprintf(frac, sizeof frac, "%.0f%%", 100.0 * f);
    fprintf(out, "%-14s %-30s %6s %27s %9s %10s %15s %6s %8.1f\n", r->w->name, s->config, batch, spread,
            rate_str(bench_steps_per_s(r), steps, sizeof steps), samples, achieved, frac, (double)bench_device_bytes(s) / MIB);
    if (s->dtype_note[0]) fprintf(out, "%-14s   (%s)\n", "", s->dtype_note);
}
