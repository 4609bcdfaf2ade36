// CUDA kernels: fused scaled dot-product attention, forward and backward,
// flash-attention style (the op: core/attention.h; the CPU reference:
// src/cpu/k_attention.c, whose formulas these follow).
//
// q, k, v, dy and the output are [BH, T, D] row-major. Nothing of size
// T x T is ever stored: a block owns ATT_ROWS_PER_BLOCK query rows (or key
// rows, for dk/dv) of one (b, h) and walks the other side in tiles of 32
// rows staged in shared memory, one row per lane of a warp:
//
//   forward   each warp owns ATT_ROWS query rows; lane j scores key k0 + j
//             against them (a dot product over D from shared memory), and
//             the rows' running maximum m, sum l and output accumulator
//             (D values, ATT_NPL per lane, lane + 32 t) are rescaled once per
//             tile by exp(m_old - m_new): the online softmax. y = acc / l.
//   stats     the forward again, ending in lse = m + log l and
//             delta = dy . y per row, written to scratch (first pass of the
//             backward: the rows' softmax without storing it).
//   dq        per query block, over key tiles: p = exp(s - lse),
//             dS = p (dy . v_j - delta), dq += dS k_j; dq *= scale.
//   dk, dv    per key block, over query tiles: p = exp(s - lse_i),
//             dv += p dy_i; dk += p (dy_i . v_j - delta_i) q_i, dk *= scale.
//
// Every output element is written by one thread, and every sum runs in a
// fixed order (over d in a lane, keys or queries in tile order, warp sums
// as a fixed butterfly), so results are the same bits run to run: no
// atomics. Each masked key (j > i when causal, or past T) is left out of
// the sums exactly where the CPU leaves it out, so an inf or NaN there
// changes nothing on either side.
//
// Precision: the compute type C is float for F32, F16 and BF16 storage
// (FP32 accumulation; one rounding into the output's dtype) and double for
// F64, as every kernel here. The CPU computes in double; the float error
// budget and the parity tolerances are in tests/test_cuda_parity_attention.c
// (checked there against an emulation of this arithmetic on the CPU).
//
// Limits: D <= 256 (ATT_NPL values per lane); tiles of 32 rows of D + 1
// values in shared memory (the padding keeps a lane's row in its own bank),
// so D = 256 in double needs about 197 KiB of shared memory: more than
// 48 KiB is asked for per kernel with cudaFuncSetAttribute, and more than
// the device allows is CT_ERR_UNSUPPORTED, naming D.
#include "cuda/cuda_common.cuh"

extern "C" {
#include "core/attention.h"
}

#define ATT_TILE 32                             // rows of the walked side per tile: one per lane
#define ATT_WARPS 4                             // warps per block
#define ATT_ROWS 4                              // rows a warp owns
#define ATT_ROWS_PER_BLOCK (ATT_WARPS * ATT_ROWS) // rows a block owns
#define ATT_NPL 8                               // values of a row per lane: D <= 32 * ATT_NPL
#define ATT_MAX_D (32 * ATT_NPL)
#define ATT_FULL 0xffffffffu

struct att_args {
    const void *q, *k, *v, *dy;
    void *out;
    int qdt, kdt, vdt, dydt, odt;
    int64_t bh, t;
    int d, ld;  // head size; the shared-memory row stride (odd: d or d + 1)
    double scale;
    bool causal;
    void *stats; // scratch: lse [bh * t], then delta [bh * t], in the compute type
};

// rows [row0, row0 + rows) of (b, h) = bh of src into dst (stride ld),
// zero past T, by the whole block.
template <typename C>
__device__ void att_load(C *dst, const att_args &a, const void *src, int dt, int64_t bh, int64_t row0, int rows) {
    for (int idx = threadIdx.x; idx < rows * a.d; idx += blockDim.x) {
        int r = idx / a.d, c = idx - r * a.d;
        int64_t row = row0 + r;
        dst[r * a.ld + c] = row < a.t ? ct_ld<C>(src, dt, (bh * a.t + row) * a.d + c) : (C)0;
    }
}

// For query row i and a tile of keys from k0: how many of the tile's keys
// it sees (j < T, and j <= i when causal), from the first. Warp-uniform:
// it depends on the warp's row only.
__device__ __forceinline__ int att_span_keys(const att_args &a, int64_t k0, int64_t i) {
    int64_t end = a.t < k0 + ATT_TILE ? a.t : k0 + ATT_TILE;
    if (a.causal && i + 1 < end) end = i + 1;
    return end > k0 ? (int)(end - k0) : 0;
}

// For key row j and a tile of queries from q0: the first and one past the
// last tile position whose query sees key j (i < T, and i >= j when
// causal). Warp-uniform, as above.
__device__ __forceinline__ void att_span_queries(const att_args &a, int64_t q0, int64_t j, int *lo, int *hi) {
    int64_t end = a.t < q0 + ATT_TILE ? a.t : q0 + ATT_TILE;
    int64_t start = a.causal && j > q0 ? j : q0;
    if (start > end) start = end;
    *lo = (int)(start - q0);
    *hi = end > start ? (int)(end - q0) : *lo;
}

// acc[t] += w * x[c] for c = lane + 32 t < d: one term of a row's output.
template <typename C>
__device__ __forceinline__ void att_axpy(C (&acc)[ATT_NPL], C w, const C *x, int d, int lane) {
#pragma unroll
    for (int t = 0; t < ATT_NPL; t++) {
        int c = lane + 32 * t;
        if (c < d) acc[t] += w * x[c];
    }
}

// ---------------------------------------------------------------- forward and row statistics

// One key tile of the online softmax for one query row: its score against
// this lane's key is s (unscaled), and it sees the tile's first n keys.
// The row's maximum m, sum l and output acc are rescaled to the new
// maximum and the tile's terms added. Warp-uniform (n is).
template <typename C>
__device__ __forceinline__ void att_online(const att_args &a, C s, int n, const C *vs, int lane, C *m, C *l,
                                           C (&acc)[ATT_NPL]) {
    if (n == 0) return; // no key of this tile for this row
    const bool seen = lane < n;
    C sc = seen ? s * (C)a.scale : (C)-INFINITY;
    C mn = ct_nanmax(*m, ct_warp_max(sc));
    C alpha = exp(*m - mn); // 0 on the first tile (m = -inf, mn finite: key 0 is always seen)
    C p = seen ? exp(sc - mn) : (C)0;
    *l = *l * alpha + ct_warp_sum(p);
#pragma unroll
    for (int t = 0; t < ATT_NPL; t++) acc[t] *= alpha;
    for (int jj = 0; jj < n; jj++) att_axpy<C>(acc, __shfl_sync(ATT_FULL, p, jj), vs + jj * a.ld, a.d, lane);
    *m = mn;
}

// Query row i's end: y = acc / l into the output, or (STATS) its
// log-sum-exp m + log l and delta = dy . y into the scratch. Warp-uniform.
template <typename C, bool STATS>
__device__ __forceinline__ void att_finish(const att_args &a, int64_t bh, int64_t i, int lane, C m, C l,
                                           const C (&acc)[ATT_NPL]) {
    if (i >= a.t) return; // a row past T: computed, never stored
    const int64_t base = (bh * a.t + i) * a.d;
    C dsum = 0;
#pragma unroll
    for (int t = 0; t < ATT_NPL; t++) {
        int c = lane + 32 * t;
        if (c >= a.d) continue;
        if (STATS)
            dsum += ct_ld<C>(a.dy, a.dydt, base + c) * (acc[t] / l);
        else
            ct_st<C>(a.out, a.odt, base + c, acc[t] / l);
    }
    if (!STATS) return;
    dsum = ct_warp_sum(dsum);
    if (lane == 0) {
        C *st = (C *)a.stats;
        st[bh * a.t + i] = m + log(l);
        st[a.bh * a.t + bh * a.t + i] = dsum;
    }
}

template <typename C, bool STATS>
__global__ void att_forward(att_args a) {
    extern __shared__ __align__(16) unsigned char att_smem[];
    C *qs = (C *)att_smem, *ks = qs + ATT_ROWS_PER_BLOCK * a.ld, *vs = ks + ATT_TILE * a.ld;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nqt = (a.t + ATT_ROWS_PER_BLOCK - 1) / ATT_ROWS_PER_BLOCK;
    for (int64_t blk = blockIdx.x; blk < a.bh * nqt; blk += gridDim.x) {
        const int64_t bh = blk / nqt, q0 = (blk % nqt) * ATT_ROWS_PER_BLOCK;
        __syncthreads(); // the previous block's readers are done
        att_load<C>(qs, a, a.q, a.qdt, bh, q0, ATT_ROWS_PER_BLOCK);
        C m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][ATT_NPL];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            m[r] = (C)-INFINITY, l[r] = 0;
#pragma unroll
            for (int t = 0; t < ATT_NPL; t++) acc[r][t] = 0;
        }
        const int64_t kend = a.causal && q0 + ATT_ROWS_PER_BLOCK < a.t ? q0 + ATT_ROWS_PER_BLOCK : a.t;
        for (int64_t k0 = 0; k0 < kend; k0 += ATT_TILE) {
            __syncthreads();
            att_load<C>(ks, a, a.k, a.kdt, bh, k0, ATT_TILE);
            att_load<C>(vs, a, a.v, a.vdt, bh, k0, ATT_TILE);
            __syncthreads();
            C s[ATT_ROWS];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) s[r] = 0;
            for (int c = 0; c < a.d; c++) {
                C kv = ks[lane * a.ld + c];
#pragma unroll
                for (int r = 0; r < ATT_ROWS; r++) s[r] += qs[(warp * ATT_ROWS + r) * a.ld + c] * kv;
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++)
                att_online<C>(a, s[r], att_span_keys(a, k0, q0 + warp * ATT_ROWS + r), vs, lane, &m[r], &l[r], acc[r]);
        }
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++)
            att_finish<C, STATS>(a, bh, q0 + warp * ATT_ROWS + r, lane, m[r], l[r], acc[r]);
    }
}

// ---------------------------------------------------------------- dq

template <typename C>
__global__ void att_grad_q(att_args a) {
    extern __shared__ __align__(16) unsigned char att_smem[];
    C *qs = (C *)att_smem, *dys = qs + ATT_ROWS_PER_BLOCK * a.ld;
    C *ks = dys + ATT_ROWS_PER_BLOCK * a.ld, *vs = ks + ATT_TILE * a.ld;
    const C *lse = (const C *)a.stats, *delta = lse + a.bh * a.t;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nqt = (a.t + ATT_ROWS_PER_BLOCK - 1) / ATT_ROWS_PER_BLOCK;
    for (int64_t blk = blockIdx.x; blk < a.bh * nqt; blk += gridDim.x) {
        const int64_t bh = blk / nqt, q0 = (blk % nqt) * ATT_ROWS_PER_BLOCK;
        __syncthreads();
        att_load<C>(qs, a, a.q, a.qdt, bh, q0, ATT_ROWS_PER_BLOCK);
        att_load<C>(dys, a, a.dy, a.dydt, bh, q0, ATT_ROWS_PER_BLOCK);
        C acc[ATT_ROWS][ATT_NPL], rl[ATT_ROWS], rd[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int64_t i = q0 + warp * ATT_ROWS + r;
            rl[r] = i < a.t ? lse[bh * a.t + i] : (C)0;
            rd[r] = i < a.t ? delta[bh * a.t + i] : (C)0;
#pragma unroll
            for (int t = 0; t < ATT_NPL; t++) acc[r][t] = 0;
        }
        const int64_t kend = a.causal && q0 + ATT_ROWS_PER_BLOCK < a.t ? q0 + ATT_ROWS_PER_BLOCK : a.t;
        for (int64_t k0 = 0; k0 < kend; k0 += ATT_TILE) {
            __syncthreads();
            att_load<C>(ks, a, a.k, a.kdt, bh, k0, ATT_TILE);
            att_load<C>(vs, a, a.v, a.vdt, bh, k0, ATT_TILE);
            __syncthreads();
            C s[ATT_ROWS], dp[ATT_ROWS];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) s[r] = 0, dp[r] = 0;
            for (int c = 0; c < a.d; c++) {
                C kv = ks[lane * a.ld + c], vv = vs[lane * a.ld + c];
#pragma unroll
                for (int r = 0; r < ATT_ROWS; r++) {
                    s[r] += qs[(warp * ATT_ROWS + r) * a.ld + c] * kv;
                    dp[r] += dys[(warp * ATT_ROWS + r) * a.ld + c] * vv;
                }
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                const int n = att_span_keys(a, k0, q0 + warp * ATT_ROWS + r);
                C ds = lane < n ? exp(s[r] * (C)a.scale - rl[r]) * (dp[r] - rd[r]) : (C)0;
                for (int jj = 0; jj < n; jj++) att_axpy<C>(acc[r], __shfl_sync(ATT_FULL, ds, jj), ks + jj * a.ld, a.d, lane);
            }
        }
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int64_t i = q0 + warp * ATT_ROWS + r;
            if (i >= a.t) continue;
#pragma unroll
            for (int t = 0; t < ATT_NPL; t++) {
                int c = lane + 32 * t;
                if (c < a.d) ct_st<C>(a.out, a.odt, (bh * a.t + i) * a.d + c, (C)a.scale * acc[r][t]);
            }
        }
    }
}

// ---------------------------------------------------------------- dk and dv

template <typename C, bool WANT_K>
__global__ void att_grad_kv(att_args a) {
    extern __shared__ __align__(16) unsigned char att_smem[];
    C *kb = (C *)att_smem, *vb = kb + ATT_ROWS_PER_BLOCK * a.ld;
    C *qs = vb + ATT_ROWS_PER_BLOCK * a.ld, *dys = qs + ATT_TILE * a.ld;
    C *lse_s = dys + ATT_TILE * a.ld, *del_s = lse_s + ATT_TILE;
    const C *lse = (const C *)a.stats, *delta = lse + a.bh * a.t;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nkt = (a.t + ATT_ROWS_PER_BLOCK - 1) / ATT_ROWS_PER_BLOCK;
    for (int64_t blk = blockIdx.x; blk < a.bh * nkt; blk += gridDim.x) {
        const int64_t bh = blk / nkt, k0 = (blk % nkt) * ATT_ROWS_PER_BLOCK;
        __syncthreads();
        att_load<C>(kb, a, a.k, a.kdt, bh, k0, ATT_ROWS_PER_BLOCK);
        if (WANT_K) att_load<C>(vb, a, a.v, a.vdt, bh, k0, ATT_ROWS_PER_BLOCK);
        C acc[ATT_ROWS][ATT_NPL];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++)
#pragma unroll
            for (int t = 0; t < ATT_NPL; t++) acc[r][t] = 0;
        // The first query that sees any key of the block: k0 when causal.
        for (int64_t q0 = a.causal ? k0 : 0; q0 < a.t; q0 += ATT_TILE) {
            __syncthreads();
            att_load<C>(qs, a, a.q, a.qdt, bh, q0, ATT_TILE);
            att_load<C>(dys, a, a.dy, a.dydt, bh, q0, ATT_TILE);
            if (threadIdx.x < ATT_TILE) {
                int64_t i = q0 + threadIdx.x;
                lse_s[threadIdx.x] = i < a.t ? lse[bh * a.t + i] : (C)0;
                del_s[threadIdx.x] = i < a.t ? delta[bh * a.t + i] : (C)0;
            }
            __syncthreads();
            C s[ATT_ROWS], dp[ATT_ROWS];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) s[r] = 0, dp[r] = 0;
            for (int c = 0; c < a.d; c++) {
                C qv = qs[lane * a.ld + c], dv = dys[lane * a.ld + c];
#pragma unroll
                for (int r = 0; r < ATT_ROWS; r++) {
                    s[r] += qv * kb[(warp * ATT_ROWS + r) * a.ld + c];
                    if (WANT_K) dp[r] += dv * vb[(warp * ATT_ROWS + r) * a.ld + c];
                }
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                int lo, hi;
                att_span_queries(a, q0, k0 + warp * ATT_ROWS + r, &lo, &hi);
                const bool seen = lane >= lo && lane < hi;
                C p = seen ? exp(s[r] * (C)a.scale - lse_s[lane]) : (C)0;
                C w = WANT_K ? p * (dp[r] - del_s[lane]) : p;
                const C *x = WANT_K ? qs : dys;
                for (int ii = lo; ii < hi; ii++) att_axpy<C>(acc[r], __shfl_sync(ATT_FULL, w, ii), x + ii * a.ld, a.d, lane);
            }
        }
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int64_t j = k0 + warp * ATT_ROWS + r;
            if (j >= a.t) continue;
#pragma unroll
            for (int t = 0; t < ATT_NPL; t++) {
                int c = lane + 32 * t;
                if (c < a.d) ct_st<C>(a.out, a.odt, (bh * a.t + j) * a.d + c, WANT_K ? (C)a.scale * acc[r][t] : acc[r][t]);
            }
        }
    }
}

// ---------------------------------------------------------------- launchers

// Shared memory of each kernel, in compute-type elements.
static size_t att_smem_elems(int kind, int ld) {
    size_t rows = kind == 0 ? ATT_ROWS_PER_BLOCK + 2 * ATT_TILE    // forward, stats: q block, k and v tiles
                            : 2 * ATT_ROWS_PER_BLOCK + 2 * ATT_TILE; // dq: q, dy blocks, k, v tiles; dk/dv: k, v blocks, q, dy tiles
    return rows * (size_t)ld + (kind == 2 ? 2 * ATT_TILE : 0);
}

// Lets `fn` have `bytes` of dynamic shared memory: above the default 48 KiB
// it is asked for (the device's opt-in maximum), beyond that it is refused.
template <typename F>
static ct_status att_smem_setup(F *fn, size_t bytes, const char *op, const att_args &a) {
    if (bytes <= 48 * 1024) return CT_OK;
    ct_cuda_ctx *cx = ct_cuda_ctx_get();
    int dev = cx ? cx->device : 0, optin = 0;
    CT_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "device %d", dev);
    if (bytes > (size_t)optin)
        return ct_cuda_arg_error(CT_ERR_UNSUPPORTED, op,
                                 "head size D = %d needs %zu bytes of shared memory per block; cuda:%d allows %d", a.d,
                                 bytes, dev, optin);
    CT_CUDA_TRY(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), "%zu bytes", bytes);
    return CT_OK;
}

template <typename F>
static ct_status att_launch(F *fn, int kind, const att_args &a, size_t csize, cudaStream_t s, const char *op) {
    size_t bytes = att_smem_elems(kind, a.ld) * csize;
    ct_status st = att_smem_setup(fn, bytes, op, a);
    if (st != CT_OK) return st;
    int64_t blocks = a.bh * ((a.t + ATT_ROWS_PER_BLOCK - 1) / ATT_ROWS_PER_BLOCK);
    fn<<<ct_cuda_rows_grid(blocks), ATT_WARPS * 32, bytes, s>>>(a);
    CT_CUDA_LAUNCHED("attention", "%s: [%lld, %lld, %d], %zu bytes of shared memory", op, (long long)a.bh,
                     (long long)a.t, a.d, bytes);
    return CT_OK;
}

// The checks both kernels start with (the CPU's, as cuda errors); fills a.
static ct_status att_args_of(const ct_kargs *k, const char *op, int n_in, att_args *a) {
    ct_status st = ct_cuda_check_args(k, true); // attributes, and the arity of op_list.h
    if (st != CT_OK) return st;
    const ct_shape &s = k->in[0].shape;
    if (s.ndim != 4) return ct_cuda_arg_error(CT_ERR_SHAPE, op, "q has %d axes, need [B, H, T, D]", s.ndim);
    static const char *const names[5] = {"q", "k", "v", "dy", "output"};
    for (int i = 0; i <= n_in; i++) {
        const ct_tview &v = i < n_in ? k->in[i] : k->out;
        const char *what = names[i < n_in ? i : 4];
        if (!ct_dtype_is_float(v.dtype))
            return ct_cuda_arg_error(CT_ERR_DTYPE, op, "%s is %s, need a float dtype", what, ct_dtype_name(v.dtype));
        if (v.numel != k->in[0].numel)
            return ct_cuda_arg_error(CT_ERR_SHAPE, op, "%s has %lld elements, q has %lld", what, (long long)v.numel,
                                     (long long)k->in[0].numel);
    }
    if (s.dim[3] > ATT_MAX_D)
        return ct_cuda_arg_error(CT_ERR_UNSUPPORTED, op, "head size D = %lld; the GPU kernels take D <= %d",
                                 (long long)s.dim[3], ATT_MAX_D);
    *a = att_args{};
    a->q = k->in[0].data, a->k = k->in[1].data, a->v = k->in[2].data, a->dy = n_in > 3 ? k->in[3].data : nullptr;
    a->qdt = k->in[0].dtype, a->kdt = k->in[1].dtype, a->vdt = k->in[2].dtype, a->dydt = n_in > 3 ? k->in[3].dtype : 0;
    a->out = k->out.data, a->odt = k->out.dtype;
    a->bh = s.dim[0] * s.dim[1], a->t = s.dim[2], a->d = (int)s.dim[3];
    a->ld = a->d % 2 ? a->d : a->d + 1;
    a->scale = k->attr->alpha, a->causal = k->attr->causal;
    return CT_OK;
}

size_t ct_cuda_attention_scratch(const ct_kargs *k) {
    if (k->op != CT_OP_ATTENTION_GRAD || k->n_in < 1 || k->in[0].shape.ndim != 4) return 0;
    const ct_shape &s = k->in[0].shape;
    size_t csize = ct_cuda_is_f64(k->out.dtype) ? sizeof(double) : sizeof(float);
    return 2 * (size_t)(s.dim[0] * s.dim[1] * s.dim[2]) * csize;
}

template <typename C>
static ct_status att_forward_run(const att_args &a, cudaStream_t s) {
    return att_launch(att_forward<C, false>, 0, a, sizeof(C), s, "attention");
}

template <typename C>
static ct_status att_grad_one(const att_args &a, int which, cudaStream_t s) {
    const char *op = "attention_grad";
    if (which == CT_ATTN_GRAD_Q) return att_launch(att_grad_q<C>, 1, a, sizeof(C), s, op);
    if (which == CT_ATTN_GRAD_K) return att_launch(att_grad_kv<C, true>, 2, a, sizeof(C), s, op);
    return att_launch(att_grad_kv<C, false>, 2, a, sizeof(C), s, op);
}

// The row statistics once, then the gradient asked for; QKV: dq, dk, dv
// into the output's three [B, H, T, D] parts, from the same statistics.
template <typename C>
static ct_status att_grad_run(att_args a, int which, void *scratch, cudaStream_t s) {
    a.stats = scratch;
    ct_status st = att_launch(att_forward<C, true>, 0, a, sizeof(C), s, "attention_grad");
    if (st != CT_OK || which != CT_ATTN_GRAD_QKV) return st != CT_OK ? st : att_grad_one<C>(a, which, s);
    size_t third = (size_t)(a.bh * a.t * a.d) * ct_dtype_size((ct_dtype)a.odt);
    char *out = (char *)a.out;
    for (int w = CT_ATTN_GRAD_Q; w <= CT_ATTN_GRAD_V && st == CT_OK; w++) {
        a.out = out + (size_t)w * third;
        st = att_grad_one<C>(a, w, s);
    }
    return st;
}

static ct_status k_attention(const ct_kargs *k) {
    att_args a;
    ct_status st = att_args_of(k, "attention", 3, &a);
    if (st != CT_OK || a.bh * a.t == 0 || a.d == 0) return st;
    cudaStream_t s = ct_cuda_stream(k);
    return ct_cuda_is_f64(k->out.dtype) ? att_forward_run<double>(a, s) : att_forward_run<float>(a, s);
}

static ct_status k_attention_grad(const ct_kargs *k) {
    const char *op = "attention_grad";
    int which = k->attr ? k->attr->which : CT_ATTN_GRAD_Q; // no attributes: att_args_of says so
    if (which < CT_ATTN_GRAD_Q || which > CT_ATTN_GRAD_QKV)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "unknown gradient %d", which);
    ct_kargs part = *k; // QKV: checked as one [B, H, T, D] gradient, the output 3 of them
    if (which == CT_ATTN_GRAD_QKV) {
        if (k->n_in < 1 || k->out.numel != 3 * k->in[0].numel)
            return ct_cuda_arg_error(CT_ERR_SHAPE, op, "the output has %lld elements, need 3 x q's",
                                     (long long)k->out.numel);
        part.out.shape = k->in[0].shape, part.out.numel = k->in[0].numel;
    }
    att_args a;
    ct_status st = att_args_of(&part, op, 4, &a);
    if (st != CT_OK) return st;
    if (a.bh * a.t == 0 || a.d == 0) return CT_OK;
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "needs scratch, got none");
    cudaStream_t s = ct_cuda_stream(k);
    return ct_cuda_is_f64(k->out.dtype) ? att_grad_run<double>(a, which, k->scratch, s)
                                        : att_grad_run<float>(a, which, k->scratch, s);
}

void ct_cuda_register_attention(ct_kernel_fn *t) {
    t[CT_OP_ATTENTION] = k_attention;
    t[CT_OP_ATTENTION_GRAD] = k_attention_grad;
}
