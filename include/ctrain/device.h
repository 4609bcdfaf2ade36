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

/* ---- device memory --------------------------------------------------------
 * Raw buffers on a device, for measuring it (a copy's bandwidth) and for
 * data a program does not own. On the CPU they are host memory. */

/* bytes (> 0) of memory on d, or NULL with the error set (bad device, out of
 * memory). Free with ct_device_free on the same device. */
void *ct_device_alloc(ct_device d, size_t bytes);
void ct_device_free(ct_device d, void *ptr);
/* Copies bytes between two buffers of device d (the regions may overlap).
 * The copy may still be running on return (see ct_device_sync).
 * CT_ERR_UNSUPPORTED if d's backend has no device-to-device copy. */
ct_status ct_device_copy(ct_device d, void *dst, const void *src, size_t bytes);
/* Waits until every operation queued on d (kernels of its programs,
 * optimizer updates, copies) has finished; immediate on the CPU. What a
 * timer must call before reading the clock. */
ct_status ct_device_sync(ct_device d);

#ifdef __cplusplus
}
#endif
#endif
