// CUDA matrix products: every MATMUL goes to cuBLAS.
//
// ctrain's tensors are row-major and cuBLAS is column-major, so
// C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, which is the same
// memory seen the other way: B comes first and the sizes swap. Batches go
// through cublasGemmStridedBatchedEx, with a stride of 0 for an operand
// without batch axes; a weight shared across a batch ([B.., M, K] @ [K, N])
// becomes one tall GEMM instead; any other broadcast of batch axes is one
// call per batch element.
//
// F32 is computed in FP32 (CUBLAS_COMPUTE_32F) unless the product's node
// allows TF32 (ct_graph_set_tf32), which permits TF32 tensor cores (inputs rounded
// to 10-bit mantissas, FP32 accumulation: PyTorch's allow_tf32). F16 and
// BF16 accumulate in FP32 and round once into the output, as the CPU does;
// F64 is FP64 throughout.
#include <climits>

#include "cuda/cuda_common.cuh"

struct mm_geom {
    int64_t m, n, k;
    ct_shape batch_out, batch_a, batch_b;
    int64_t batch, batch_a_n, batch_b_n;
};

static ct_shape leading(const ct_shape &s) {
    ct_shape b = {};
    b.ndim = s.ndim - 2;
    for (int d = 0; d < b.ndim; d++) b.dim[d] = s.dim[d];
    return b;
}

static ct_status mm_resolve(const ct_kargs *k, mm_geom *g) {
    const ct_shape &a = k->in[0].shape, &b = k->in[1].shape, &o = k->out.shape;
    char sa[96], sb[96], so[96];
    if (a.ndim < 2 || b.ndim < 2 || o.ndim < 2)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "matmul", "operands %s and %s, output %s: each needs at least 2 axes",
                                 ct_shape_str(a, sa, sizeof sa), ct_shape_str(b, sb, sizeof sb),
                                 ct_shape_str(o, so, sizeof so));
    bool ta = k->attr->trans_a, tb = k->attr->trans_b;
    int64_t am = a.dim[a.ndim - 2], ak = a.dim[a.ndim - 1], bk = b.dim[b.ndim - 2], bn = b.dim[b.ndim - 1];
    g->m = ta ? ak : am;
    g->k = ta ? am : ak;
    int64_t kb = tb ? bn : bk;
    g->n = tb ? bk : bn;
    g->batch_out = leading(o);
    g->batch_a = leading(a);
    g->batch_b = leading(b);
    g->batch = ct_cuda_numel(g->batch_out);
    g->batch_a_n = ct_cuda_numel(g->batch_a);
    g->batch_b_n = ct_cuda_numel(g->batch_b);
    int want_nd = a.ndim > b.ndim ? a.ndim : b.ndim;
    if (g->k != kb || o.dim[o.ndim - 2] != g->m || o.dim[o.ndim - 1] != g->n || o.ndim != want_nd ||
        !ct_cuda_broadcasts_to(g->batch_a, g->batch_out) || !ct_cuda_broadcasts_to(g->batch_b, g->batch_out))
        return ct_cuda_arg_error(CT_ERR_SHAPE, "matmul", "a %s%s and b %s%s do not give output %s",
                                 ct_shape_str(a, sa, sizeof sa), ta ? " (transposed)" : "",
                                 ct_shape_str(b, sb, sizeof sb), tb ? " (transposed)" : "",
                                 ct_shape_str(o, so, sizeof so));
    if (g->m > INT_MAX || g->n > INT_MAX || g->k > INT_MAX || g->batch * g->m > INT_MAX)
        return ct_cuda_arg_error(CT_ERR_UNSUPPORTED, "matmul", "sizes m=%lld n=%lld k=%lld batch=%lld exceed cuBLAS's int range",
                                 (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    return CT_OK;
}

struct mm_types {
    cudaDataType_t data;      // the operands
    cudaDataType_t out;       // the product: the operands' type, or F32 under mixed precision
    cublasComputeType_t compute;
    bool f64;
};

// Half-precision operands may write an F32 product (the mixed-precision
// policy, amp.h): cuBLAS accumulates in FP32 either way.
static mm_types types_for(ct_dtype in, ct_dtype out, bool tf32) {
    bool f32_out = out == CT_F32;
    switch (in) {
    case CT_F64: return {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F, true};
    case CT_F16: return {CUDA_R_16F, f32_out ? CUDA_R_32F : CUDA_R_16F, CUBLAS_COMPUTE_32F, false};
    case CT_BF16: return {CUDA_R_16BF, f32_out ? CUDA_R_32F : CUDA_R_16BF, CUBLAS_COMPUTE_32F, false};
    default: return {CUDA_R_32F, CUDA_R_32F, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, false};
    }
}

// One strided-batched product in row-major terms: C[i] (m x n) =
// op(A[i]) op(B[i]) for i < count, operand strides in elements.
static ct_status gemm(cublasHandle_t h, const mm_types &t, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                      const void *a, long long sa, const void *b, long long sb, void *c, long long sc, int64_t count) {
    int lda = (int)(ta ? m : k), ldb = (int)(tb ? k : n), ldc = (int)n;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (ldc < 1) ldc = 1;
    const double one64 = 1.0, zero64 = 0.0;
    const float one32 = 1.0f, zero32 = 0.0f;
    const void *alpha = t.f64 ? (const void *)&one64 : (const void *)&one32;
    const void *beta = t.f64 ? (const void *)&zero64 : (const void *)&zero32;
    CT_CUBLAS_TRY(cublasGemmStridedBatchedEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
                                             (int)m, (int)k, alpha, b, t.data, ldb, sb, a, t.data, lda, sa, beta, c,
                                             t.out, ldc, sc, (int)count, t.compute, CUBLAS_GEMM_DEFAULT),
                  "C[%lld x %lld] = A%s[%lld x %lld] B%s[%lld x %lld], batch %lld", (long long)m, (long long)n,
                  ta ? "^T" : "", (long long)m, (long long)k, tb ? "^T" : "", (long long)k, (long long)n,
                  (long long)count);
    return CT_OK;
}

static ct_status k_matmul(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    ct_dtype dt = k->in[0].dtype, odt = k->out.dtype;
    bool mixed = (dt == CT_F16 || dt == CT_BF16) && odt == CT_F32;
    if (k->in[1].dtype != dt || (odt != dt && !mixed) || !ct_dtype_is_float(dt))
        return ct_cuda_arg_error(CT_ERR_DTYPE, "matmul",
                                 "operands %s and %s with output %s (need one float dtype, or F16/BF16 into F32)",
                                 ct_dtype_name(k->in[0].dtype), ct_dtype_name(k->in[1].dtype), ct_dtype_name(odt));
    mm_geom g;
    s = mm_resolve(k, &g);
    if (s != CT_OK) return s;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    size_t es = ct_dtype_size(dt), oes = ct_dtype_size(odt);
    if (g.k == 0) {
        // an empty sum is zero (and cuBLAS may reject k = 0 leading dims)
        size_t bytes = (size_t)(g.batch * g.m * g.n) * oes;
        CT_CUDA_TRY(cudaMemsetAsync(k->out.data, 0, bytes, st), "matmul with k = 0: %zu bytes", bytes);
        return CT_OK;
    }
    // The handle is bound to the context's one stream, with its fixed
    // workspace, once for good (ct_cuda_ctx_init): nothing to set per call.
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) return ct_cuda_arg_error(CT_ERR_STATE, "matmul", "the CUDA backend is not initialised");
    mm_types t = types_for(dt, odt, k->attr->tf32);
    bool ta = k->attr->trans_a, tb = k->attr->trans_b;
    const void *a = k->in[0].data, *b = k->in[1].data;
    void *o = k->out.data;
    long long sa = g.m * g.k, sb = g.k * g.n, sc = g.m * g.n;
    // A weight without batch axes applied to [B.., M, K]: one tall GEMM.
    if (!ta && g.batch_b_n == 1) return gemm(c->blas, t, ta, tb, g.batch * g.m, g.n, g.k, a, 0, b, 0, o, 0, 1);
    bool a_ok = g.batch_a_n == 1 || g.batch_a_n == g.batch, b_ok = g.batch_b_n == 1 || g.batch_b_n == g.batch;
    if (a_ok && b_ok)
        return gemm(c->blas, t, ta, tb, g.m, g.n, g.k, a, g.batch_a_n == 1 ? 0 : sa, b, g.batch_b_n == 1 ? 0 : sb, o, sc,
                    g.batch);
    // Partly broadcast batch axes ([2, 1, ...] @ [1, 3, ...]): one call each.
    ct_bcast bc;
    ct_cuda_bcast_init(&bc, g.batch_out);
    ct_cuda_bcast_strides(&bc, 0, g.batch_a);
    ct_cuda_bcast_strides(&bc, 1, g.batch_b);
    for (int64_t i = 0; i < g.batch; i++) {
        int64_t rem = i, oa = 0, ob = 0;
        for (int d = bc.nd - 1; d >= 0; d--) {
            int64_t idx = rem % bc.dim[d];
            rem /= bc.dim[d];
            oa += idx * bc.stride[0][d];
            ob += idx * bc.stride[1][d];
        }
        s = gemm(c->blas, t, ta, tb, g.m, g.n, g.k, (const char *)a + (size_t)(oa * sa) * es, 0,
                 (const char *)b + (size_t)(ob * sb) * es, 0, (char *)o + (size_t)(i * sc) * oes, 0, 1);
        if (s != CT_OK) return s;
    }
    return CT_OK;
}

void ct_cuda_register_matmul(ct_kernel_fn *t) { t[CT_OP_MATMUL] = k_matmul; }
