/* CUDA devices on this machine, as the CUDA runtime sees them.
 *
 * For listings such as `ctrain info` and for choosing a device before
 * compiling a program. Every function exists in every build: a build without
 * CUDA reports no devices and says why, so a caller never needs #ifdefs.
 *
 *     char why[256];
 *     int n = ct_cuda_device_count(why, sizeof why);
 *     if (n == 0) printf("no GPU: %s\n", why);
 *     for (int i = 0; i < n; i++) {
 *         char name[256]; size_t mem; int major, minor;
 *         if (ct_cuda_device_info(i, name, sizeof name, &mem, &major, &minor) == CT_OK)
 *             printf("cuda:%d %s, %zu MiB, sm_%d%d\n", i, name, mem >> 20, major, minor);
 *     }
 */
#ifndef CTRAIN_CUDA_H
#define CTRAIN_CUDA_H

#include <stddef.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The number of CUDA devices this process can use. When it is 0, `why`
 * (if not NULL; always NUL-terminated when cap > 0) says why in one line:
 * a build without CUDA, no NVIDIA driver, a driver older than the CUDA
 * runtime this library was built with, or no visible GPU. When devices are
 * found, `why` is set to "". Never sets ct_last_error(). */
int ct_cuda_device_count(char *why, size_t cap);

/* Properties of device i (0 <= i < ct_cuda_device_count()): its name (cut
 * to cap - 1 bytes), total memory in bytes and compute capability. Any
 * output pointer may be NULL. Errors: CT_ERR_UNSUPPORTED in a build without
 * CUDA, CT_ERR_DEVICE for no such device or a runtime failure. */
ct_status ct_cuda_device_info(int i, char *name, size_t cap, size_t *total_mem, int *cc_major,
                              int *cc_minor);

/* Free and total memory of device i in bytes, as cudaMemGetInfo reports
 * them (either pointer may be NULL): what a test uses to see that a step
 * allocates nothing. Errors: CT_ERR_UNSUPPORTED in a build without CUDA,
 * CT_ERR_DEVICE for no such device or a runtime failure. */
ct_status ct_cuda_mem_info(int i, size_t *free_bytes, size_t *total_bytes);

/* The CUDA version the installed driver supports and the one of the CUDA
 * runtime in use, both as 1000 * major + 10 * minor (12040 for 12.4); 0 for
 * "none". Errors: CT_ERR_UNSUPPORTED in a build without CUDA (both set to 0). */
ct_status ct_cuda_versions(int *driver_version, int *runtime_version);

#ifdef __cplusplus
}
#endif
#endif
