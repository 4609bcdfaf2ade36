// The CUDA backend table (core/backend.h): device memory now, kernels as
// they are written. An op whose entry is NULL is reported by
// ct_device_implements() as missing on CUDA, so the table is the one place
// that says what the CUDA backend can run.
//
// The memory entries work on the calling thread's current device, which
// ct_cuda_backend() selects: one process drives one GPU (DESIGN.md, data
// parallel), so a single table serves whichever device that is.
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "core/cuda_query.h"
// The core headers are C; their declarations must keep C linkage here.
extern "C" {
#include "core/backend.h"
#include "core/error.h"
}

static int current_device(void) {
    int d = -1;
    if (cudaGetDevice(&d) != cudaSuccess) cudaGetLastError();
    return d;
}

static void *cuda_alloc(size_t bytes) {
    void *p = nullptr;
    // A zero-byte request still gets a real pointer: callers treat NULL as
    // failure.
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        ct_error(e == cudaErrorMemoryAllocation ? CT_ERR_OOM : CT_ERR_DEVICE,
                 "cudaMalloc of %zu bytes on cuda:%d failed: %s", bytes, current_device(),
                 cudaGetErrorString(e));
        return nullptr;
    }
    return p;
}

static void cuda_free(void *p) {
    // Errors here are from teardown (the runtime already unloading at exit)
    // and leave nothing to recover.
    if (p && cudaFree(p) != cudaSuccess) cudaGetLastError();
}

static ct_status check(cudaError_t e, const char *what, size_t bytes) {
    if (e == cudaSuccess) return CT_OK;
    cudaGetLastError();
    return ct_error(CT_ERR_DEVICE, "%s of %zu bytes on cuda:%d failed: %s", what, bytes,
                    current_device(), cudaGetErrorString(e));
}

static ct_status cuda_zero(void *p, size_t bytes) {
    return check(cudaMemset(p, 0, bytes), "cudaMemset", bytes);
}

static ct_status cuda_upload(void *dst, const void *src, size_t bytes) {
    return check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload (cudaMemcpy)", bytes);
}

static ct_status cuda_download(void *dst, const void *src, size_t bytes) {
    return check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "download (cudaMemcpy)",
                 bytes);
}

static ct_status cuda_copy(void *dst, const void *src, size_t bytes) {
    return check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "device copy (cudaMemcpy)", bytes);
}

static ct_status cuda_sync(void) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) return CT_OK;
    cudaGetLastError();
    return ct_error(CT_ERR_DEVICE, "cuda:%d: a queued kernel failed: %s", current_device(),
                    cudaGetErrorString(e));
}

static ct_backend make_table(void) {
    ct_backend b = {};
    b.name = "cuda";
    b.kind = CT_DEVICE_CUDA;
    b.alloc = cuda_alloc;
    b.free = cuda_free;
    b.zero = cuda_zero;
    b.upload = cuda_upload;
    b.download = cuda_download;
    b.sync = cuda_sync;
    b.copy = cuda_copy;
    b.scratch_bytes = nullptr;
    // Kernels: none yet; each src/cuda/k_*.cu will register its ops here.
    return b;
}

// A function-local static: built on first use, thread-safely, whatever the
// order in which the library's static initialisers run.
static const ct_backend *table(void) {
    static const ct_backend b = make_table();
    return &b;
}

bool ct_cuda_implements(int op) {
    return op >= 0 && op < CT_OP_COUNT && table()->kernels[op] != nullptr;
}

const ct_backend *ct_cuda_backend(int device_index) {
    char why[512];
    int n = 0;
    if (ct_cuda_query(&n, why, sizeof why) != CT_OK) {
        ct_error(CT_ERR_DEVICE, "cannot use cuda:%d: %s", device_index, why);
        return nullptr;
    }
    if (device_index < 0 || device_index >= n) {
        ct_error(CT_ERR_DEVICE, "cannot use cuda:%d: this machine has %d CUDA device%s", device_index,
                 n, n == 1 ? "" : "s");
        return nullptr;
    }
    cudaError_t e = cudaSetDevice(device_index);
    if (e != cudaSuccess) {
        cudaGetLastError();
        ct_error(CT_ERR_DEVICE, "cudaSetDevice(%d) failed: %s", device_index, cudaGetErrorString(e));
        return nullptr;
    }
    return table();
}
