// What the CUDA runtime says about this machine, in words a user can act on
// (see core/cuda_query.h). "No GPU" has several causes that look alike from
// cudaGetDeviceCount alone, so the driver and runtime versions are asked
// first to tell "no driver" and "driver too old" from "no device".
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include <cuda_runtime.h>

#include "core/cuda_query.h"
extern "C" {
#include "core/error.h"
}

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...) {
    if (!why || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

ct_status ct_cuda_query(int *count, char *why, size_t cap) {
    int n = 0, drv = 0, rt = 0;
    if (count) *count = 0;
    say(why, cap, "%s", "");
    // Both succeed without a driver; the driver version is then 0.
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    if (drv == 0) {
        // Also what the toolkit's stub libcuda.so reports, if one is on the
        // library path instead of the real driver.
        say(why, cap, "no CUDA device: no NVIDIA driver is loaded (libcuda.so.1 is missing or "
                      "unusable)");
        return CT_ERR_DEVICE;
    }
    // Within a major version newer runtimes run on older drivers (minor
    // version compatibility); across majors they do not.
    if (drv / 1000 < rt / 1000) {
        say(why, cap,
            "no CUDA device: the NVIDIA driver supports CUDA %d.%d, but this build of ctrain "
            "uses the CUDA %d.%d runtime; install a newer driver",
            drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
        return CT_ERR_DEVICE;
    }
    cudaError_t e = cudaGetDeviceCount(&n);
    // The error is not sticky, but it stays as the "last error" and would be
    // picked up by an unrelated check later.
    cudaGetLastError();
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n <= 0)) {
        const char *visible = getenv("CUDA_VISIBLE_DEVICES");
        if (visible)
            say(why, cap, "no CUDA device found (CUDA_VISIBLE_DEVICES=\"%.64s\")", visible);
        else
            say(why, cap, "no CUDA device found");
        return CT_ERR_DEVICE;
    }
    if (e == cudaErrorInsufficientDriver) {
        say(why, cap,
            "no CUDA device: the NVIDIA driver (CUDA %d.%d) is too old for the CUDA %d.%d "
            "runtime; install a newer driver",
            drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
        return CT_ERR_DEVICE;
    }
    if (e != cudaSuccess) {
        say(why, cap, "no CUDA device: cudaGetDeviceCount failed: %s (%s)", cudaGetErrorString(e),
            cudaGetErrorName(e));
        return CT_ERR_DEVICE;
    }
    if (count) *count = n;
    return CT_OK;
}

ct_status ct_cuda_device_props(int i, char *name, size_t cap, size_t *total_mem, int *cc_major,
                               int *cc_minor) {
    if (name && cap > 0) name[0] = '\0';
    if (total_mem) *total_mem = 0;
    if (cc_major) *cc_major = 0;
    if (cc_minor) *cc_minor = 0;
    char why[512];
    int n = 0;
    if (ct_cuda_query(&n, why, sizeof why) != CT_OK) return ct_error(CT_ERR_DEVICE, "%s", why);
    if (i < 0 || i >= n)
        return ct_error(CT_ERR_DEVICE, "no CUDA device cuda:%d (this machine has %d: cuda:0 to cuda:%d)",
                        i, n, n - 1);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, i);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return ct_error(CT_ERR_DEVICE, "cudaGetDeviceProperties(cuda:%d) failed: %s", i,
                        cudaGetErrorString(e));
    }
    if (name && cap > 0) snprintf(name, cap, "%s", p.name);
    if (total_mem) *total_mem = p.totalGlobalMem;
    if (cc_major) *cc_major = p.major;
    if (cc_minor) *cc_minor = p.minor;
    return CT_OK;
}

ct_status ct_cuda_query_mem(int i, size_t *free_bytes, size_t *total_bytes) {
    if (free_bytes) *free_bytes = 0;
    if (total_bytes) *total_bytes = 0;
    if (ct_cuda_device_props(i, nullptr, 0, nullptr, nullptr, nullptr) != CT_OK) return ct_last_status();
    // cudaMemGetInfo answers for the current device: switch to i and back.
    int cur = 0;
    cudaError_t e = cudaGetDevice(&cur);
    if (e == cudaSuccess) e = cudaSetDevice(i);
    size_t f = 0, t = 0;
    if (e == cudaSuccess) e = cudaMemGetInfo(&f, &t);
    cudaSetDevice(cur);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return ct_error(CT_ERR_DEVICE, "cudaMemGetInfo(cuda:%d) failed: %s", i, cudaGetErrorString(e));
    }
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return CT_OK;
}

ct_status ct_cuda_query_versions(int *driver_version, int *runtime_version) {
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    if (driver_version) *driver_version = drv;
    if (runtime_version) *runtime_version = rt;
    return CT_OK;
}
