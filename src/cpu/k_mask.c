/* The CPU mask pass of pruning (backend.h's mask_apply): entries of a flat
 * buffer whose mask byte is 0 are set to exactly +0, the others are left
 * bit for bit. The trainer runs it over the parameters after every update
 * and over the optimizer state when masks change (src/train/prune.c), so
 * pruned weights stay zero whatever the optimizer does. Independent
 * elements: split across OpenMP threads, identical bytes either way. */
#include <string.h>

#include "cpu/cpu_compress.h"
#include "cpu/cpu_util.h"

#define MASK_PAR_MIN ((size_t)1 << 16)

ct_status ct_cpu_mask_apply(void *x, const uint8_t *mask, ct_dtype dtype, size_t n) {
    if (dtype != CT_F32 && dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "cpu mask_apply: %s buffer; f32 or f64 expected", ct_dtype_name(dtype));
    if (n && (!x || !mask)) return ct_error(CT_ERR_INVALID_ARG, "cpu mask_apply: buffer is NULL");
    int64_t len = (int64_t)n;
    if (dtype == CT_F32) {
        float *p = x;
#pragma omp parallel for schedule(static) if (n >= MASK_PAR_MIN)
        for (int64_t i = 0; i < len; i++)
            if (!mask[i]) p[i] = 0.0f;
    } else {
        double *p = x;
#pragma omp parallel for schedule(static) if (n >= MASK_PAR_MIN)
        for (int64_t i = 0; i < len; i++)
            if (!mask[i]) p[i] = 0.0;
    }
    return CT_OK;
}
