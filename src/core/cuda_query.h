/* Internal: questions to the CUDA runtime, answered in plain C types.
 *
 * The only bridge from C code to src/cuda besides ct_cuda_backend(): the C
 * sources never include a CUDA header, so what they need to know about the
 * machine (how many GPUs, why none) comes through here. src/cuda/ implements
 * these when CUDA is built; src/core/device.c has the fallbacks otherwise.
 * Included from C++ (.cu) too, hence the guards.
 */
#ifndef CT_CORE_CUDA_QUERY_H
#define CT_CORE_CUDA_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How many CUDA devices are usable. CT_OK with *count >= 1 and why = "";
 * otherwise *count = 0 and why (NUL-terminated if cap > 0) says why:
 * CT_ERR_UNSUPPORTED in a build without CUDA, CT_ERR_DEVICE for no driver,
 * a driver too old for the runtime, no device, or another runtime error.
 * Does not touch ct_last_error(): "no GPU" is an answer, not a failure. */
ct_status ct_cuda_query(int *count, char *why, size_t cap);

/* Name, total memory and compute capability of device i; any output may be
 * NULL. Sets ct_last_error() on failure (CT_ERR_DEVICE, CT_ERR_UNSUPPORTED). */
ct_status ct_cuda_device_props(int i, char *name, size_t cap, size_t *total_mem, int *cc_major,
                               int *cc_minor);

/* cudaMemGetInfo of device i (either output may be NULL). */
ct_status ct_cuda_query_mem(int i, size_t *free_bytes, size_t *total_bytes);

/* Driver and runtime CUDA versions (1000 * major + 10 * minor, 0 if none). */
ct_status ct_cuda_query_versions(int *driver_version, int *runtime_version);

/* True if the CUDA backend compiled in has a kernel for op (a ct_op);
 * answers without touching a GPU. */
bool ct_cuda_implements(int op);

/* Whether the CUDA backend's table keeps core/backend.h's rules
 * (ct_backend_valid), answered without touching a GPU: CT_OK, or
 * CT_ERR_INTERNAL naming the broken rule; CT_ERR_UNSUPPORTED in a build
 * without CUDA. ct_cuda_backend() refuses a table that breaks them. */
ct_status ct_cuda_backend_check(void);

#ifdef __cplusplus
}
#endif
#endif
