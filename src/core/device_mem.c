/* Raw device memory and synchronisation (ctrain/device.h): thin wrappers
 * over the backend of a device, for callers that measure a device or keep
 * data outside a program. */

#include <stdint.h>

#include "core/backend.h"
#include "core/error.h"
#include "ctrain/device.h"

/* NULL with the error set when d cannot be used here. */
static const ct_backend *backend_of(ct_device d) {
    if (ct_device_check(d) != CT_OK) return NULL;
    return d.kind == CT_DEVICE_CPU ? ct_cpu_backend() : ct_cuda_backend(d.index);
}

void *ct_device_alloc(ct_device d, size_t bytes) {
    if (bytes == 0) return ct_error(CT_ERR_INVALID_ARG, "ct_device_alloc: 0 bytes asked for"), NULL;
    const ct_backend *be = backend_of(d);
    return be ? be->alloc(bytes) : NULL;
}

void ct_device_free(ct_device d, void *ptr) {
    if (!ptr) return;
    const ct_backend *be = backend_of(d);
    if (be) be->free(ptr);
}

ct_status ct_device_copy(ct_device d, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return CT_OK;
    if (!dst || !src) return ct_error(CT_ERR_INVALID_ARG, "ct_device_copy: %s is NULL", dst ? "src" : "dst");
    const ct_backend *be = backend_of(d);
    if (!be) return ct_last_status();
    if (!be->copy)
        return ct_error(CT_ERR_UNSUPPORTED, "ct_device_copy: the %s backend has no device-to-device copy", be->name);
    /* Only the CPU's copy is a memmove: cudaMemcpyAsync's regions "may not
     * overlap", and an overlapping copy there gives undefined bytes. A copy
     * onto itself changes nothing and is skipped. */
    uintptr_t d0 = (uintptr_t)dst, s0 = (uintptr_t)src;
    if (be->kind != CT_DEVICE_CPU && d0 < s0 + bytes && s0 < d0 + bytes) {
        if (d0 == s0) return CT_OK;
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_device_copy: on the %s backend the regions must not overlap (%zu bytes from %p to %p)",
                        be->name, bytes, src, dst);
    }
    return be->copy(dst, src, bytes);
}

ct_status ct_device_sync(ct_device d) {
    const ct_backend *be = backend_of(d);
    if (!be) return ct_last_status();
    return be->sync();
}
