// The CUDA mask pass of pruning (backend.h's mask_apply): entries of a
// flat buffer whose mask byte is 0 become +0, the others keep their bits,
// exactly as the CPU's k_mask.c. Run by src/train/prune.c after every
// optimizer update (and over the optimizer state when the masks change).
#include "cuda/cuda_common.cuh"
#include "cuda/cuda_compress.cuh"

__global__ void mask_kernel(void *x, const uint8_t *mask, int dt, int64_t n) {
    CT_GRID_STRIDE(i, n) {
        if (mask[i]) continue;
        if (dt == CT_F32) static_cast<float *>(x)[i] = 0.0f;
        else static_cast<double *>(x)[i] = 0.0;
    }
}

ct_status ct_cuda_mask_apply(void *x, const uint8_t *mask, ct_dtype dtype, size_t n) {
    if (dtype != CT_F32 && dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "cuda mask_apply: %s buffer; f32 or f64 expected", ct_dtype_name(dtype));
    if (n && (!x || !mask)) return ct_error(CT_ERR_INVALID_ARG, "cuda mask_apply: buffer is NULL");
    if (n == 0) return CT_OK;
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    mask_kernel<<<ct_cuda_blocks((int64_t)n), CT_CUDA_THREADS, 0, c ? c->stream : nullptr>>>(x, mask, dtype,
                                                                                            (int64_t)n);
    CT_CUDA_LAUNCHED("mask_apply", "%zu elements", n);
    return CT_OK;
}
