/* Devices: where a program runs.
 *
 * The CPU backend is always there and is the reference every other backend is
 * checked against. CUDA devices are present only in builds with CUDA and on
 * machines with a driver and a GPU.
 */
#ifndef CTRAIN_DEVICE_H
#define CTRAIN_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_device_kind { CT_DEVICE_CPU = 0, CT_DEVICE_CUDA } ct_device_kind;

typedef struct ct_device {
    ct_device_kind kind;
    int index; /* which GPU; 0 for the CPU */
} ct_device;

/* Parses "cpu", "cuda" or "cuda:N", and "auto": cuda:0 when this build
 * has CUDA and a usable GPU (ct_device_check), else the CPU. Errors:
 * anything else. */
ct_status ct_device_parse(const char *text, ct_device *out);
/* Writes "cpu" or "cuda:N" into buf; returns buf. */
char *ct_device_str(ct_device d, char *buf, size_t cap);

/* CT_OK if programs can be compiled for d here; otherwise the reason
 * (CT_ERR_UNSUPPORTED: a build without CUDA; CT_ERR_DEVICE: no driver, no
 * such GPU) in ct_last_error(). */
ct_status ct_device_check(ct_device d);

/* True if the backend of `kind` compiled into this library implements op. */
bool ct_device_implements(ct_device_kind kind, int op);

/* The build options, e.g. "cuda=off blas=openblas openmp=on". */
const char *ct_build_info(void);
/* The git commit the library was configured from (40 hex digits), or
 * "unknown" when it was not built from a git checkout. Static string. */
const char *ct_build_commit(void);
/* The BLAS library behind the CPU's matrix products and how it runs, e.g.
 * "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, 2 threads".
 * Static string, never NULL. */
const char *ct_blas_info(void);
/* The CPU's vector units (CPUID) and what the CPU backend's fast paths run
 * on, e.g. "AVX FMA F16C AVX2 AVX512F ... ; fast paths: AVX2; float math:
 * SLEEF AVX-512; bf16 products: oneDNN". Static string, never NULL. */
const char *ct_cpu_features(void);
/* Whether the CPU multiplies BF16 operands natively (oneDNN's bf16 matmul,
 * on the CPU's bf16 units where it has them) rather than widening them to
 * F32 for sgemm: oneDNN built in and the fast paths on. */
bool ct_cpu_bf16_native(void);
/* Sets the number of CPU threads of this thread's later kernels and of the
 * OpenBLAS products (OpenMP's omp_set_num_threads, and OpenBLAS's own
 * setting for its pthread build); n from 1 to 4096. Without a call, the
 * OMP_NUM_THREADS environment variable decides, else every core. */
ct_status ct_cpu_set_threads(int n);

/* ---- device memory --------------------------------------------------------
 * Raw buffers on a device, for measuring it (a copy's bandwidth) and for
 * data a program does not own. On the CPU they are host memory. */

/* bytes (> 0) of memory on d, or NULL with the error set (bad device, out of
 * memory). Free with ct_device_free on the same device. */
void *ct_device_alloc(ct_device d, size_t bytes);
void ct_device_free(ct_device d, void *ptr);
/* Copies bytes between two buffers of device d. On the CPU the regions may
 * overlap (memmove); on a GPU they must not (CT_ERR_INVALID_ARG), as
 * cudaMemcpyAsync requires. The copy may still be running on return (see
 * ct_device_sync). CT_ERR_UNSUPPORTED if d's backend has no device-to-device
 * copy. */
ct_status ct_device_copy(ct_device d, void *dst, const void *src, size_t bytes);
/* Waits until every operation queued on d (kernels of its programs,
 * optimizer updates, copies) has finished; immediate on the CPU. What a
 * timer must call before reading the clock. */
ct_status ct_device_sync(ct_device d);

/* ---- timing work on a device ----------------------------------------------
 * A timer measures the time the device spends between two points of its
 * queue. On a GPU, start and stop record events on the backend's stream, so
 * the figure is the device's own clock between the two events: it leaves out
 * the host's wait for the GPU to finish and the launch of the first kernel,
 * and keeps any idle time in between (a host too slow to feed the GPU shows
 * as time). Where the backend has no events (the CPU), start and stop wait
 * for the device (ct_device_sync) and read the host's monotonic clock.
 *
 *     ct_device_timer *t = ct_device_timer_new(d);
 *     ct_device_timer_start(t);
 *     ... queue work on d: ct_program_run, ct_optimizer_step, copies ...
 *     double s;
 *     ct_device_timer_stop(t, &s);
 *     ct_device_timer_free(t);
 *
 * A timer may be started and stopped any number of times; it belongs to one
 * thread at a time. */
typedef struct ct_device_timer ct_device_timer;

/* A timer for work queued on d, or NULL with the error set: d cannot be used
 * here (CT_ERR_UNSUPPORTED for a GPU in a build without CUDA, CT_ERR_DEVICE
 * without a driver or such a GPU; ct_device_check's messages), the events
 * could not be created (CT_ERR_DEVICE), or out of memory. The caller frees
 * it with ct_device_timer_free. */
ct_device_timer *ct_device_timer_new(ct_device d);
/* Marks the start: records the start event on d's queue (asynchronous, it
 * does not wait for work already queued), or waits for the device and reads
 * the clock. Starting again restarts. CT_ERR_INVALID_ARG for a NULL timer;
 * CT_ERR_DEVICE if the device failed. */
ct_status ct_device_timer_start(ct_device_timer *t);
/* Marks the stop, waits until the device has reached it, and sets *seconds
 * to the time since the start (>= 0). Errors: CT_ERR_INVALID_ARG for a NULL
 * timer or seconds; CT_ERR_STATE if the timer was not started since its last
 * stop; CT_ERR_DEVICE if the device failed (a kernel's fault is reported
 * here, as by ct_device_sync). On error *seconds is 0 and the timer needs a
 * new start. */
ct_status ct_device_timer_stop(ct_device_timer *t, double *seconds);
/* How t measures: "cuda events" or "monotonic clock" (static strings), or
 * NULL for a NULL timer. */
const char *ct_device_timer_method(const ct_device_timer *t);
/* Releases t and its events; NULL is ignored. */
void ct_device_timer_free(ct_device_timer *t);

#ifdef __cplusplus
}
#endif
#endif
