/* Device timers (ct_device_timer): on the CPU, the monotonic clock after the
 * backend's sync, checked against known sleeps; bad arguments and calls out
 * of order give errors; a GPU timer where no GPU can be used fails with the
 * reason. On a machine with a GPU the same sleeps are timed by CUDA events,
 * which measure the device's idle time between them just as well. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include <ctrain/ctrain.h>

#include "cuda_parity.h"

TestSuite(device_timer, .timeout = 60);

static const ct_device cpu = {CT_DEVICE_CPU, 0};
static const ct_device gpu = {CT_DEVICE_CUDA, 0};

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The machine is shared: a sleep may overrun by a lot, never underrun. The
 * lower bound allows the event clocks' half-microsecond resolution. */
#define SLACK 0.25

static void check_sleeps(ct_device d) {
    ct_device_timer *t = ct_device_timer_new(d);
    cr_assert_not_null(t, "%s", ct_last_error());
    const long ms[] = {40, 15, 70};
    for (int i = 0; i < 3; i++) {
        double s = -1.0;
        cr_assert_eq(ct_device_timer_start(t), CT_OK, "%s", ct_last_error());
        sleep_ms(ms[i]);
        cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK, "%s", ct_last_error());
        double want = 1e-3 * (double)ms[i];
        cr_assert(s >= want - 1e-5 && s < want + SLACK, "slept %ld ms, timer says %.6f s", ms[i], s);
    }
    /* What happens before the start is not counted; starting again
     * restarts. */
    double s = -1.0;
    cr_assert_eq(ct_device_timer_start(t), CT_OK);
    sleep_ms(300);
    cr_assert_eq(ct_device_timer_start(t), CT_OK);
    sleep_ms(20);
    cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK, "%s", ct_last_error());
    cr_assert(s >= 0.02 - 1e-5 && s < 0.3, "20 ms after the restart, timer says %.6f s", s);
    /* An empty interval is a tiny non-negative time. */
    cr_assert_eq(ct_device_timer_start(t), CT_OK);
    cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK);
    cr_assert(s >= 0.0 && s < 0.01, "empty interval: %.6f s", s);
    ct_device_timer_free(t);
}

Test(device_timer, cpu_measures_known_sleeps) {
    check_sleeps(cpu);
    ct_device_timer *t = ct_device_timer_new(cpu);
    cr_assert_str_eq(ct_device_timer_method(t), "monotonic clock");
    ct_device_timer_free(t);
}

/* The work between start and stop counts: a host-memory copy of 64 MiB
 * through the device API takes a measurable time, and twice the copies take
 * longer than one (by a wide margin, to stay robust on a busy machine). */
Test(device_timer, cpu_measures_work) {
    size_t bytes = (size_t)64 << 20;
    unsigned char *a = ct_device_alloc(cpu, bytes), *b = ct_device_alloc(cpu, bytes);
    cr_assert(a && b, "%s", ct_last_error());
    for (size_t i = 0; i < bytes; i += 4096) a[i] = (unsigned char)(i * 2654435761u >> 24);
    cr_assert_eq(ct_device_copy(cpu, b, a, bytes), CT_OK);
    ct_device_timer *t = ct_device_timer_new(cpu);
    cr_assert_not_null(t, "%s", ct_last_error());
    double one = 1e30, many = 1e30;
    for (int rep = 0; rep < 3; rep++) { /* the best of three, as noise only adds */
        double s;
        cr_assert_eq(ct_device_timer_start(t), CT_OK);
        cr_assert_eq(ct_device_copy(cpu, b, a, bytes), CT_OK);
        cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK);
        one = s < one ? s : one;
        cr_assert_eq(ct_device_timer_start(t), CT_OK);
        for (int i = 0; i < 8; i++) cr_assert_eq(ct_device_copy(cpu, i % 2 ? a : b, i % 2 ? b : a, bytes), CT_OK);
        cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK);
        many = s < many ? s : many;
    }
    cr_assert(one > 0.0, "one copy of 64 MiB took %.9f s", one);
    cr_assert(many > 2.0 * one, "8 copies %.6f s, one %.6f s", many, one);
    cr_assert_eq(b[4096], a[4096]);
    ct_device_timer_free(t);
    ct_device_free(cpu, a);
    ct_device_free(cpu, b);
}

Test(device_timer, bad_arguments_and_order) {
    double s = 5.0;
    cr_assert_eq(ct_device_timer_start(NULL), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "ct_device_timer_start: timer is NULL"), "%s", ct_last_error());
    cr_assert_eq(ct_device_timer_stop(NULL, &s), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "timer is NULL"), "%s", ct_last_error());
    cr_assert_eq(s, 0.0, "a failed stop leaves 0, not a stale figure");
    cr_assert_null(ct_device_timer_method(NULL));
    ct_device_timer_free(NULL);

    ct_device_timer *t = ct_device_timer_new(cpu);
    cr_assert_not_null(t, "%s", ct_last_error());
    s = 5.0;
    cr_assert_eq(ct_device_timer_stop(t, &s), CT_ERR_STATE, "stop before any start");
    cr_assert(strstr(ct_last_error(), "not running"), "%s", ct_last_error());
    cr_assert_eq(s, 0.0);
    cr_assert_eq(ct_device_timer_start(t), CT_OK);
    cr_assert_eq(ct_device_timer_stop(t, NULL), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "seconds is NULL"), "%s", ct_last_error());
    /* The failed stop did not consume the start. */
    cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_device_timer_stop(t, &s), CT_ERR_STATE, "a second stop for one start");
    ct_device_timer_free(t);

    cr_assert_null(ct_device_timer_new((ct_device){CT_DEVICE_CPU, 3}));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "index 3"), "%s", ct_last_error());
    cr_assert_null(ct_device_timer_new((ct_device){(ct_device_kind)7, 0}));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_device_timer_new((ct_device){CT_DEVICE_CUDA, -1}));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
}

Test(device_timer, gpu_timer_without_gpu_says_why) {
    bool no_cuda = strncmp(ct_build_info(), "cuda=off", 8) == 0;
    if (!no_cuda && ct_device_check(gpu) == CT_OK) cr_skip_test("a GPU is present: gpu_measures_known_sleeps runs");
    ct_clear_error();
    cr_assert_null(ct_device_timer_new(gpu));
    if (no_cuda) {
        cr_assert_eq(ct_last_status(), CT_ERR_UNSUPPORTED);
        cr_assert(strstr(ct_last_error(), "no CUDA support"), "%s", ct_last_error());
    } else {
        cr_assert_eq(ct_last_status(), CT_ERR_DEVICE);
        cr_assert(strstr(ct_last_error(), "cannot use cuda:0"), "%s", ct_last_error());
    }
}

Test(device_timer, gpu_measures_known_sleeps) {
    /* skips without a GPU; fails where one is there but unusable, or
     * when CTRAIN_REQUIRE_GPU is set (tests/cuda_parity.h) */
    const char *why = cp_no_gpu();
    if (why) cr_skip_test("no GPU: %s", why);
    check_sleeps(gpu);
    ct_device_timer *t = ct_device_timer_new(gpu);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_assert_str_eq(ct_device_timer_method(t), "cuda events");
    /* Work queued on the stream is inside the interval: copies of 256 MiB
     * take well over a microsecond even on the fastest GPU. */
    size_t bytes = (size_t)256 << 20;
    void *a = ct_device_alloc(gpu, bytes), *b = ct_device_alloc(gpu, bytes);
    cr_assert(a && b, "%s", ct_last_error());
    double s = 0.0;
    cr_assert_eq(ct_device_timer_start(t), CT_OK, "%s", ct_last_error());
    for (int i = 0; i < 4; i++) cr_assert_eq(ct_device_copy(gpu, i % 2 ? a : b, i % 2 ? b : a, bytes), CT_OK);
    cr_assert_eq(ct_device_timer_stop(t, &s), CT_OK, "%s", ct_last_error());
    /* 2 GiB moved: at most ~10 TB/s, so >= 0.2 ms. */
    cr_assert(s > 2e-4 && s < 5.0, "4 copies of 256 MiB: %.6f s", s);
    ct_device_timer_free(t);
    ct_device_free(gpu, a);
    ct_device_free(gpu, b);
}
