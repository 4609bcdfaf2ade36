/* Timing a workload's step: warm-up, then repetitions of timed steps.
 *
 * Warm-up steps come first and are not timed: they fault in the arena,
 * let BLAS spawn its threads and caches fill (and on a GPU, load modules
 * and tune libraries). Then each repetition times `steps` consecutive steps
 * and divides, so the per-call overhead of the clock is spread; the
 * repetitions give the median (the figure reported) and the spread
 * (min/max and the quartiles), which says how far to trust it.
 *
 * The clock is a timer with two hooks. Both wait for the device before
 * reading the host's monotonic clock, which is exact on the CPU and, on a
 * GPU, includes the host's launch gaps as a user's training loop does. A
 * device-event timer (elapsed time between two events recorded on the
 * device's queue) slots in as another bench_timer once the library exposes
 * events; nothing else here changes.
 */
#include <stdlib.h>
#include <time.h>

#include "bench.h"

typedef struct bench_timer {
    ct_status (*start)(ct_device d, struct timespec *t0);
    ct_status (*stop)(ct_device d, const struct timespec *t0, double *seconds);
} bench_timer;

static ct_status host_start(ct_device d, struct timespec *t0) {
    ct_status st = ct_device_sync(d);
    clock_gettime(CLOCK_MONOTONIC, t0);
    return st;
}

static ct_status host_stop(ct_device d, const struct timespec *t0, double *seconds) {
    ct_status st = ct_device_sync(d);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *seconds = (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
    return st;
}

static const bench_timer host_timer = {host_start, host_stop};

static const bench_timer *timer_for(ct_device d) {
    (void)d; /* the CUDA event timer goes here */
    return &host_timer;
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
    const bench_timer *timer = timer_for(d);
    ct_status st = CT_OK;
    for (long i = 0; i < warmup && st == CT_OK; i++) st = step(state);
    if (st != CT_OK) return st;
    double *per_step = malloc((size_t)reps * sizeof *per_step);
    if (!per_step) return bench_oom((size_t)reps * sizeof *per_step);
    for (long r = 0; r < reps && st == CT_OK; r++) {
        struct timespec t0;
        double seconds = 0.0;
        st = timer->start(d, &t0);
        for (long i = 0; i < steps && st == CT_OK; i++) st = step(state);
        if (st == CT_OK) st = timer->stop(d, &t0, &seconds);
        per_step[r] = seconds / (double)steps;
    }
    if (st == CT_OK) {
        qsort(per_step, (size_t)reps, sizeof *per_step, cmp_double);
        int n = (int)reps;
        *out = (bench_stats){.median = quantile(per_step, n, 0.5),
                             .min = per_step[0],
                             .max = per_step[n - 1],
                             .q1 = quantile(per_step, n, 0.25),
                             .q3 = quantile(per_step, n, 0.75),
                             .reps = n};
    }
    free(per_step);
    return st;
}
