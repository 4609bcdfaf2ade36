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

/* Parses "cpu", "cuda" or "cuda:N". Errors: anything else. */
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

#ifdef __cplusplus
}
#endif
#endif
