// The int8 product on the GPU: cuBLASLt with int8 operands and int32
// accumulation (CUDA_R_8I inputs, CUBLAS_COMPUTE_32I, CUDA_R_32I output), the
// GPU side of ct_int8_matmul_s8 (include/ctrain/quant.h).
//
// cuBLASLt's int8 products in the plain column-major order want the "TN"
// form (A transposed, B not) and leading dimensions that are multiples of 4.
// Row-major c [m, n] = a [m, k] . w [n, k]^T is, column-major,
// c^T [n, m] = (w^T)^T [n, k] . a^T [k, m]: w^T is the column-major [k, n]
// matrix the row-major w already is, used transposed; a^T likewise, used as
// it is. k and n are padded to multiples of 4 with zeros on the host (zeros
// add nothing to the sums), so any size works and the int32 results are
// exact: bit for bit those of the CPU loop, which tests/test_cuda_parity_int8.c
// checks.
#include <cublasLt.h>

#include <cstring>
#include <vector>

#include "cuda/cuda_common.cuh"
#include "quant/int8_internal.h"

namespace {

struct lt_call {
    cublasLtHandle_t h = nullptr;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    int8_t *da = nullptr, *dw = nullptr;
    int32_t *dc = nullptr;
    ~lt_call() {
        if (la) cublasLtMatrixLayoutDestroy(la);
        if (lb) cublasLtMatrixLayoutDestroy(lb);
        if (lc) cublasLtMatrixLayoutDestroy(lc);
        if (op) cublasLtMatmulDescDestroy(op);
        if (h) cublasLtDestroy(h);
        cudaFree(da);
        cudaFree(dw);
        cudaFree(dc);
    }
};

// The descriptors of the TN product [np, kp] x [kp, m] -> [np, m].
ct_status describe(lt_call &L, int64_t m, int64_t np, int64_t kp) {
    CT_CUBLAS_TRY(cublasLtCreate(&L.h), "int8 matmul");
    CT_CUBLAS_TRY(cublasLtMatmulDescCreate(&L.op, CUBLAS_COMPUTE_32I, CUDA_R_32I), "int8 matmul");
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CT_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(L.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "int8 matmul");
    CT_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(L.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "int8 matmul");
    CT_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&L.la, CUDA_R_8I, (uint64_t)kp, (uint64_t)np, kp), "w [%lld, %lld]",
                  (long long)np, (long long)kp);
    CT_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&L.lb, CUDA_R_8I, (uint64_t)kp, (uint64_t)m, kp), "a [%lld, %lld]",
                  (long long)m, (long long)kp);
    CT_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&L.lc, CUDA_R_32I, (uint64_t)np, (uint64_t)m, np), "c [%lld, %lld]",
                  (long long)m, (long long)np);
    return CT_OK;
}

ct_status run(lt_call &L, const int8_t *a, const int8_t *w, int64_t m, int64_t n, int64_t k, int32_t *c) {
    int64_t kp = (k + 3) / 4 * 4, np = (n + 3) / 4 * 4;
    std::vector<int8_t> ap((size_t)(m * kp), 0), wp((size_t)(np * kp), 0);
    for (int64_t i = 0; i < m; i++) std::memcpy(&ap[(size_t)(i * kp)], a + i * k, (size_t)k);
    for (int64_t o = 0; o < n; o++) std::memcpy(&wp[(size_t)(o * kp)], w + o * k, (size_t)k);
    std::vector<int32_t> cp((size_t)(np * m));
    CT_CUDA_TRY(cudaMalloc(&L.da, ap.size()), "int8 matmul: a");
    CT_CUDA_TRY(cudaMalloc(&L.dw, wp.size()), "int8 matmul: w");
    CT_CUDA_TRY(cudaMalloc(&L.dc, cp.size() * sizeof(int32_t)), "int8 matmul: c");
    CT_CUDA_TRY(cudaMemcpy(L.da, ap.data(), ap.size(), cudaMemcpyHostToDevice), "int8 matmul: a");
    CT_CUDA_TRY(cudaMemcpy(L.dw, wp.data(), wp.size(), cudaMemcpyHostToDevice), "int8 matmul: w");
    ct_status st = describe(L, m, np, kp);
    if (st != CT_OK) return st;
    int32_t alpha = 1, beta = 0;
    CT_CUBLAS_TRY(cublasLtMatmul(L.h, L.op, &alpha, L.dw, L.la, L.da, L.lb, &beta, L.dc, L.lc, L.dc, L.lc, nullptr,
                                 nullptr, 0, 0),
                  "int8 matmul [%lld, %lld] x [%lld, %lld]", (long long)m, (long long)k, (long long)n, (long long)k);
    CT_CUDA_TRY(cudaMemcpy(cp.data(), L.dc, cp.size() * sizeof(int32_t), cudaMemcpyDeviceToHost), "int8 matmul: c");
    for (int64_t i = 0; i < m; i++) std::memcpy(c + i * n, &cp[(size_t)(i * np)], (size_t)n * sizeof(int32_t));
    return CT_OK;
}

} // namespace

extern "C" ct_status ct_cuda_int8_matmul_s8(int ordinal, const int8_t *a, const int8_t *w, int64_t m, int64_t n,
                                            int64_t k, int32_t *c) {
    CT_CUDA_TRY(cudaSetDevice(ordinal), "int8 matmul on cuda:%d", ordinal);
    lt_call L;
    return run(L, a, w, m, n, k, c);
}
