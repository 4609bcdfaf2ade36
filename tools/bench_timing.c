/* Timing a workload's step: warm-up, then repetitions of timed steps.
 *
 * Warm-up steps come first and are not timed: they fault in the arena,
 * let BLAS spawn its threads and caches fill (and on a GPU, load modules
 * and tune libraries). Then each repetition times `steps` consecutive steps
 * and divides, so the per-call overhead of the clock is spread; the
 * repetitions give the median (the figure reported) and the spread
 * (min/max and the quartiles), which says how far to trust it.
 *
 * The clock is the library's device timer (ct_device_timer), one per
 * measurement: on a GPU two CUDA events on the backend's stream, so a
 * repetition is the device's own time from its first queued step to the end
 * of its last, idle gaps included (a host that cannot keep the GPU fed shows
 * as time, as in a user's training loop) but not the latency of waiting for
 * the GPU; on the CPU the monotonic clock after the backend's sync, which is
 * exact there. Which one measured is recorded with the figures.
 */
#include <stdlib.h>
#include <time.h>

#include "bench.h"

/* The process's CPU time so far (every thread, user + system), seconds. */
static double cpu_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v[0..n) by linear interpolation (numpy's
 * default), so the Python twins compute the same figure. */
static double quantile(const double *v, int n, double q) {
    double pos = q * (double)(n - 1);
    int lo = (int)pos;
    if (lo >= n - 1) return v[n - 1];
    double frac = pos - (double)lo;
    return v[lo] + frac * (v[lo + 1] - v[lo]);
}

ct_status bench_measure(ct_device d, ct_status (*step)(void *), void *state, long warmup, long steps, long reps,
                        bench_stats *out) {
    ct_status st = CT_OK;
    for (long i = 0; i < warmup && st == CT_OK; i++) st = step(state);
    if (st != CT_OK) return st;
    ct_device_timer *timer = ct_device_timer_new(d);
    if (!timer) return ct_last_status();
    double *per_step = malloc(2 * (size_t)reps * sizeof *per_step);
    if (!per_step) {
        ct_device_timer_free(timer);
        return bench_oom(2 * (size_t)reps * sizeof *per_step);
    }
    double *cpu_per_step = per_step + reps;
    for (long r = 0; r < reps && st == CT_OK; r++) {
        double seconds = 0.0, cpu0 = cpu_seconds();
        st = ct_device_timer_start(timer);
        for (long i = 0; i < steps && st == CT_OK; i++) st = step(state);
        if (st == CT_OK) st = ct_device_timer_stop(timer, &seconds);
        per_step[r] = seconds / (double)steps;
        cpu_per_step[r] = (cpu_seconds() - cpu0) / (double)steps;
    }
    if (st == CT_OK) {
        qsort(per_step, (size_t)reps, sizeof *per_step, cmp_double);
        qsort(cpu_per_step, (size_t)reps, sizeof *cpu_per_step, cmp_double);
        int n = (int)reps;
        *out = (bench_stats){.median = quantile(per_step, n, 0.5),
                             .cpu_median = quantile(cpu_per_step, n, 0.5),
                             .min = per_step[0],
                             .max = per_step[n - 1],
                             .q1 = quantile(per_step, n, 0.25),
                             .q3 = quantile(per_step, n, 0.75),
                             .reps = n,
                             .timer = ct_device_timer_method(timer)};
    }
    ct_device_timer_free(timer);
    free(per_step);
    return st;
}
