/* The CPU backend's pieces for model compression (docs/compression.md):
 * the kl_div kernel of distillation (k_kl.c) and the mask pass of pruning
 * (k_mask.c), registered by cpu_backend.c. */
#ifndef CT_CPU_COMPRESS_H
#define CT_CPU_COMPRESS_H

#include "core/backend.h"

void ct_cpu_register_kl(ct_kernel_fn *t);
/* backend.h's mask_apply: x[i] = 0 wherever mask[i] == 0. */
ct_status ct_cpu_mask_apply(void *x, const uint8_t *mask, ct_dtype dtype, size_t n);

#endif
