/* Internal: the CPU matmul's BF16 and F32 products through oneDNN
 * (k_matmul_dnnl.c); without oneDNN in the build, get returns NULL and the
 * reference's path (OpenBLAS, BF16 widened to F32) runs. */
#ifndef CT_CPU_MATMUL_H
#define CT_CPU_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "ctrain/dtype.h"

typedef struct ct_dnnl_mm ct_dnnl_mm;

/* The cached product C[m, n] = op(A) op(B) of A stored [m, k] (or [k, m]
 * when ta) and B stored [k, n] (or [n, k] when tb), both of dtype in: BF16
 * (C F32 or BF16) or F32 (C F32); created on first ask; NULL when oneDNN is
 * absent, refuses the shape or the dtypes, the cache is full, or the fast
 * paths are off (CTRAIN_CPU_REFERENCE). */
const ct_dnnl_mm *ct_cpu_dnnl_mm_get(int64_t m, int64_t n, int64_t k, bool ta, bool tb, ct_dtype in,
                                     ct_dtype out);
/* Its scratchpad, which the caller provides to every run. */
size_t ct_cpu_dnnl_mm_scratch(const ct_dnnl_mm *e);
ct_status ct_cpu_dnnl_mm_run(const ct_dnnl_mm *e, const void *a, const void *b, void *c, void *scratch);

/* Row-major C[m, n] = op(A) op(B) in F32 with oneDNN's sgemm (A stored
 * [m, k] or [k, m] when ta, lda its row stride; B likewise): false when
 * oneDNN is not built in or the fast paths are off, and the caller runs
 * OpenBLAS's. */
bool ct_cpu_dnnl_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float *c, int64_t ldc);

#endif
