// Turning CUDA, cuBLAS and cuDNN failures into ct_status values with messages a
// user can act on, and the small host-side helpers every kernel file uses
// (argument checks, broadcast strides).
#include <cstdarg>
#include <cstdio>

#include "cuda/cuda_common.cuh"


static int device_now(void) {
    int d = -1;
    if (cudaGetDevice(&d) != cudaSuccess) {
        cudaGetLastError();
        d = -1;
    }
    return d;
}

ct_status ct_cuda_fail(cudaError_t e, const char *call, const char *fmt, ...) {
    char details[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof details, fmt, ap);
    va_end(ap);
    // Clear the non-sticky last error so it is not reported again by a
    // later, unrelated check. (Sticky errors - a kernel fault - stay: the
    // context is then unusable and every later call says so.)
    cudaGetLastError();
    int dev = device_now();
    if (e == cudaErrorMemoryAllocation) {
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
        return ct_error(CT_ERR_OOM, "%s failed on cuda:%d: out of memory (%s; %zu of %zu bytes free)", call, dev,
                        details, free_b, total_b);
    }
    return ct_error(CT_ERR_DEVICE, "%s failed on cuda:%d: %s (%s): %s", call, dev, cudaGetErrorString(e),
                    cudaGetErrorName(e), details);
}

ct_status ct_cublas_fail(cublasStatus_t s, const char *call, const char *fmt, ...) {
    char details[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof details, fmt, ap);
    va_end(ap);
    ct_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? CT_ERR_OOM
                   : s == CUBLAS_STATUS_NOT_SUPPORTED ? CT_ERR_UNSUPPORTED
                                                      : CT_ERR_DEVICE;
    return ct_error(st, "%s failed on cuda:%d: %s (%s): %s", call, device_now(), cublasGetStatusString(s),
                    cublasGetStatusName(s), details);
}

ct_status ct_cudnn_fail(cudnnStatus_t s, const char *call, const char *fmt, ...) {
    char details[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof details, fmt, ap);
    va_end(ap);
    // cuDNN 9 numbers its statuses by category (3000s: not supported);
    // cuDNN 8 has one code for each.
#if CUDNN_MAJOR >= 9
    bool unsupported = CUDNN_STATUS_CATEGORY(s) == CUDNN_STATUS_NOT_SUPPORTED;
    bool oom = s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
               s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
#else
    bool unsupported = s == CUDNN_STATUS_NOT_SUPPORTED;
    bool oom = s == CUDNN_STATUS_ALLOC_FAILED;
#endif
    ct_status st = oom ? CT_ERR_OOM : unsupported ? CT_ERR_UNSUPPORTED : CT_ERR_DEVICE;
    return ct_error(st, "%s failed on cuda:%d: %s (cuDNN status %d): %s", call, device_now(), cudnnGetErrorString(s),
                    (int)s, details);
}

ct_status ct_cuda_arg_error(ct_status s, const char *op, const char *fmt, ...) {
    char details[384] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof details, fmt, ap);
    va_end(ap);
    return ct_error(s, "cuda %s: %s", op, details);
}

ct_status ct_cuda_check_args(const ct_kargs *k, bool need_attr) {
    ct_status s = ct_op_check_inputs("cuda", k->op, k->n_in);
    if (s == CT_OK && need_attr && !k->attr) s = ct_cuda_arg_error(CT_ERR_INTERNAL, ct_op_name(k->op), "no attributes");
    return s;
}

bool ct_cuda_broadcasts_to(const ct_shape &in, const ct_shape &out) {
    if (in.ndim > out.ndim) return false;
    int shift = out.ndim - in.ndim;
    for (int d = 0; d < in.ndim; d++)
        if (in.dim[d] != 1 && in.dim[d] != out.dim[d + shift]) return false;
    return true;
}

void ct_cuda_bcast_init(ct_bcast *b, const ct_shape &out) {
    *b = ct_bcast{};
    b->nd = out.ndim;
    for (int d = 0; d < out.ndim; d++) b->dim[d] = out.dim[d];
}

void ct_cuda_bcast_strides(ct_bcast *b, int j, const ct_shape &in) {
    int shift = b->nd - in.ndim;
    int64_t acc = 1;
    for (int d = b->nd - 1; d >= 0; d--) {
        int di = d - shift;
        if (di < 0) {
            b->stride[j][d] = 0;
            continue;
        }
        b->stride[j][d] = in.dim[di] == 1 ? 0 : acc;
        acc *= in.dim[di];
    }
}
