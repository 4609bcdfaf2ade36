/* Timing work on a device (ctrain/device.h): two events on the backend's
 * queue where the backend has them, else the host's monotonic clock read
 * after waiting for the device.
 *
 * Events are the honest clock for an asynchronous device: the host's clock
 * after a sync also counts the latency of the sync itself and of the first
 * launch, which on short GPU steps is a large share of the figure. The
 * fallback is exact on the CPU, whose kernels have finished when they
 * return.
 */
#include <stdlib.h>
#include <time.h>

#include "core/backend.h"
#include "core/error.h"
#include "ctrain/device.h"

struct ct_device_timer {
    const ct_backend *be;
    void *start_ev, *stop_ev; /* both NULL: the host clock */
    struct timespec t0;       /* the host clock's start */
    bool started;             /* a start since the last stop */
};

#define HOST_METHOD "monotonic clock"

/* The events are one optional group of the backend, all set or all NULL
 * (ct_backend_valid), so one member answers for them all. */
static bool has_events(const ct_backend *be) { return be->event_new != NULL; }

ct_device_timer *ct_device_timer_new(ct_device d) {
    if (ct_device_check(d) != CT_OK) return NULL;
    const ct_backend *be = d.kind == CT_DEVICE_CPU ? ct_cpu_backend() : ct_cuda_backend(d.index);
    if (!be) return NULL;
    ct_device_timer *t = calloc(1, sizeof *t);
    if (!t) return ct_error(CT_ERR_OOM, "ct_device_timer_new: out of memory (%zu bytes)", sizeof *t), NULL;
    t->be = be;
    if (has_events(be) && (be->event_new(&t->start_ev) != CT_OK || be->event_new(&t->stop_ev) != CT_OK)) {
        /* The hook's message (the runtime's error text) stays the error. */
        ct_device_timer_free(t);
        return NULL;
    }
    return t;
}

ct_status ct_device_timer_start(ct_device_timer *t) {
    if (!t) return ct_error(CT_ERR_INVALID_ARG, "ct_device_timer_start: timer is NULL");
    t->started = false;
    ct_status st;
    if (t->start_ev) {
        st = t->be->event_record(t->start_ev);
    } else {
        st = t->be->sync();
        clock_gettime(CLOCK_MONOTONIC, &t->t0);
    }
    t->started = st == CT_OK;
    return st;
}

ct_status ct_device_timer_stop(ct_device_timer *t, double *seconds) {
    if (seconds) *seconds = 0.0;
    if (!t || !seconds)
        return ct_error(CT_ERR_INVALID_ARG, "ct_device_timer_stop: %s is NULL", t ? "seconds" : "timer");
    if (!t->started)
        return ct_error(CT_ERR_STATE, "ct_device_timer_stop: the timer is not running (ct_device_timer_start "
                                      "first; each start allows one stop)");
    t->started = false;
    double s = 0.0;
    ct_status st;
    if (t->stop_ev) {
        st = t->be->event_record(t->stop_ev);
        if (st == CT_OK) st = t->be->event_elapsed(t->start_ev, t->stop_ev, &s);
    } else {
        st = t->be->sync();
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        s = (double)(t1.tv_sec - t->t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t->t0.tv_nsec);
    }
    /* Event clocks have a resolution of about half a microsecond: an empty
     * interval may come out a hair below zero. */
    if (st == CT_OK) *seconds = s > 0.0 ? s : 0.0;
    return st;
}

const char *ct_device_timer_method(const ct_device_timer *t) {
    if (!t) return NULL;
    return t->start_ev ? t->be->event_method : HOST_METHOD;
}

void ct_device_timer_free(ct_device_timer *t) {
    if (!t) return;
    if (t->start_ev) t->be->event_free(t->start_ev);
    if (t->stop_ev) t->be->event_free(t->stop_ev);
    free(t);
}
