// The CUDA backend's pieces for model compression (docs/compression.md):
// the kl_div kernel of distillation (k_kl.cu) and the mask pass of pruning
// (k_mask.cu), registered by cuda_backend.cu.
#ifndef CT_CUDA_COMPRESS_CUH
#define CT_CUDA_COMPRESS_CUH

#include "core/backend.h"

void ct_cuda_register_kl(ct_kernel_fn *t);
// backend.h's mask_apply: x[i] = 0 wherever mask[i] == 0.
ct_status ct_cuda_mask_apply(void *x, const uint8_t *mask, ct_dtype dtype, size_t n);

#endif
