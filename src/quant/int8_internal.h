/* Internal: the packed int8 weight layout shared by the kernels, and the
 * bridge to the CUDA int8 product (src/cuda/k_int8.cu; a fallback that says
 * "unsupported" when CUDA is not built). Included from C++ too. */
#ifndef CT_QUANT_INT8_INTERNAL_H
#define CT_QUANT_INT8_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output channels per packed block: one 512-bit vector of int32 sums. */
#define CT_INT8_NB 16

/* Weights [n, k] twice: row-major for the portable loops, and packed for
 * VNNI: k padded to kp (a multiple of 4) with zeros, n padded to whole
 * blocks of 16 with zero rows, and within block j the 4-byte groups
 * interleaved, group g of channel c at ((j * kp/4 + g) * 16 + c) * 4, so one
 * 64-byte load holds 4 consecutive k of 16 channels (vpdpbusd's operand). */
struct ct_int8_dnnl;
struct ct_int8_matrix {
    int64_t n, k, kp, nblocks;
    int8_t *rows;   /* [n, k] */
    int8_t *packed; /* [nblocks, kp / 4, 16, 4], 64-byte aligned */
    struct ct_int8_dnnl *onednn; /* oneDNN's primitive and weights, or NULL (int8_onednn.c) */
};

/* oneDNN's int8 matmul (int8_onednn.c; stubs that say no without it):
 * whether it can run here, a primitive for weights w [n, k] (NULL if not),
 * and c [m, n] = a [m, k] (stride lda) . w^T. */
bool ct_int8_onednn_available(void);
struct ct_int8_dnnl *ct_int8_onednn_prepare(const int8_t *w, int64_t n, int64_t k);
void ct_int8_onednn_free(struct ct_int8_dnnl *d);
ct_status ct_int8_onednn_run(const struct ct_int8_dnnl *d, const uint8_t *a, int64_t m, int64_t lda, int32_t *c);

/* c [m, n] = a [m, k] (stride lda) . w^T with AVX-512 VNNI. Only called
 * when the CPU has it (int8_gemm.c checks). */
void ct_int8_gemm_vnni(const struct ct_int8_matrix *w, const uint8_t *a, int64_t m, int64_t lda, int32_t *c);
/* True if this CPU and build can run ct_int8_gemm_vnni. */
bool ct_int8_vnni_available(void);
/* ct_quant_act with AVX-512 (inv = 1 / scale), the same bytes; and whether
 * to use it: the CPU has VNNI and the portable kernel was not asked for. */
void ct_quant_act_avx512(const float *x, int64_t n, float inv, int32_t zero_point, uint8_t *q);
bool ct_int8_use_avx512(void);

/* The s8 x s8 -> s32 product on CUDA device `ordinal` (host pointers in
 * and out). CT_ERR_UNSUPPORTED without CUDA. */
ct_status ct_cuda_int8_matmul_s8(int ordinal, const int8_t *a, const int8_t *w, int64_t m, int64_t n, int64_t k,
                                 int32_t *c);

#ifdef __cplusplus
}
#endif
#endif
