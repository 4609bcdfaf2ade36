// CUDA kernels: SUM, MEAN and MAX over one axis or all elements, MAX's
// gradient, and SUM_TO (the adjoint of broadcasting).
//
// A tensor is seen as [outer, len, inner] around the axis, as on the CPU.
// When inner is 1 (the reduced axis is the last one, or everything) each
// row is reduced by a block with warp shuffles, split over several blocks
// with a second, fixed-order pass when rows are long; otherwise one thread
// owns one output element and walks the axis, which keeps neighbouring
// threads on neighbouring addresses. Every sum has a fixed order for given
// shapes, so results are reproducible run to run (no atomics).
#include <climits>

#include "cuda/cuda_common.cuh"

// Parts a long row is split into (blocks per row) and the scratch they need.
#define MAX_PARTS 64
#define PART_MIN 8192 // elements per part below which one block does the row

static int64_t parts_for(int64_t len) {
    int64_t p = len / PART_MIN;
    return p < 1 ? 1 : p > MAX_PARTS ? MAX_PARTS : p;
}

// ---------------------------------------------------------------- the second pass

template <typename C>
__global__ void sum_parts_kernel(const C *part, int64_t rows, int64_t n, double mul, void *out, int odt) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        C acc = 0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += part[r * n + i];
        acc = ct_block_sum(acc, sh);
        if (threadIdx.x == 0) ct_st<C>(out, odt, r, acc * (C)mul);
    }
}

ct_status ct_cuda_finish_sum(const void *part, bool f64, int64_t n, double mul, void *out, ct_dtype dt,
                             cudaStream_t s) {
    if (f64)
        sum_parts_kernel<double><<<1, 1024, 0, s>>>((const double *)part, 1, n, mul, out, dt);
    else
        sum_parts_kernel<float><<<1, 1024, 0, s>>>((const float *)part, 1, n, mul, out, dt);
    CT_CUDA_LAUNCHED("sum_parts", "%lld partial sums", (long long)n);
    return CT_OK;
}

// ---------------------------------------------------------------- sum / mean

// Block (p, r) sums elements p, p + P, ... (in strides of the block) of row
// r; with one part it writes the scaled result, otherwise a partial.
template <typename C>
__global__ void row_sum_kernel(const void *x, int xdt, int64_t rows, int64_t len, int64_t parts, double mul,
                               C *part, void *out, int odt) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        C acc = 0;
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < len; i += parts * blockDim.x)
            acc += ct_ld<C>(x, xdt, r * len + i);
        acc = ct_block_sum(acc, sh);
        if (threadIdx.x == 0) {
            if (parts == 1)
                ct_st<C>(out, odt, r, acc * (C)mul);
            else
                part[r * parts + blockIdx.x] = acc;
        }
    }
}

// One thread per (o, j) output: walks the axis.
template <typename C>
__global__ void col_sum_kernel(const void *x, int xdt, int64_t outer, int64_t len, int64_t inner, double mul,
                               void *out, int odt) {
    CT_GRID_STRIDE(t, outer * inner) {
        int64_t o = t / inner, j = t % inner;
        // In double, as the CPU: one running float sum over the whole axis
        // drifts like n ulps (530001 terms: 6e-5 relative, 12x the parity
        // tolerance), where the row kernels' trees stay near sqrt(n).
        double acc = 0;
        for (int64_t l = 0; l < len; l++) acc += ct_ld<double>(x, xdt, (o * len + l) * inner + j);
        ct_st<C>(out, odt, t, (C)(acc * mul));
    }
}

// ---------------------------------------------------------------- max / argmax

// The CPU's choice of maximum: the first NaN if any, else the first of
// equal maxima. Combining (value, index) pairs this way is associative and
// commutative, so a tree gives the same index as the sequential scan.
template <typename C>
__device__ __forceinline__ void argmax_combine(C &v, int64_t &i, C ov, int64_t oi) {
    bool n = v != v, on = ov != ov;
    bool take;
    if (n && on) take = oi < i;
    else if (n) take = false;
    else if (on) take = true;
    else if (ov > v) take = true;
    else if (ov < v) take = false;
    else take = oi < i;
    if (take) {
        v = ov;
        i = oi;
    }
}

// Arg-max of a row of a [rows, len, inner] tensor (column j) by the block.
template <typename C>
__device__ int64_t block_argmax(const void *x, int xdt, int64_t base, int64_t len, int64_t inner) {
    __shared__ C shv[32];
    __shared__ int64_t shi[32];
    C v = (C)-INFINITY;
    int64_t idx = LLONG_MAX;
    for (int64_t l = threadIdx.x; l < len; l += blockDim.x) argmax_combine(v, idx, ct_ld<C>(x, xdt, base + l * inner), l);
    for (int o = 16; o > 0; o >>= 1)
        argmax_combine(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
        shv[warp] = v;
        shi[warp] = idx;
    }
    __syncthreads();
    v = lane < nw ? shv[lane] : (C)-INFINITY;
    idx = lane < nw ? shi[lane] : LLONG_MAX;
    for (int o = 16; o > 0; o >>= 1)
        argmax_combine(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
    return idx;
}

template <typename C>
__device__ int64_t seq_argmax(const void *x, int xdt, int64_t base, int64_t len, int64_t inner) {
    C v = ct_ld<C>(x, xdt, base);
    int64_t best = 0;
    if (v != v) return 0;
    for (int64_t l = 1; l < len; l++) {
        C w = ct_ld<C>(x, xdt, base + l * inner);
        if (w != w) return l;
        if (w > v) {
            v = w;
            best = l;
        }
    }
    return best;
}

// MAX (dy == NULL: writes the maximum) or MAX_GRAD (writes dy at the
// arg-max and 0 elsewhere along the row).
template <typename C>
__global__ void row_max_kernel(const void *x, int xdt, int64_t rows, int64_t len, const void *dy, int dydt,
                               void *out, int odt) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t at = block_argmax<C>(x, xdt, r * len, len, 1);
        if (!dy) {
            if (threadIdx.x == 0) ct_st<C>(out, odt, r, ct_ld<C>(x, xdt, r * len + at));
        } else {
            C g = ct_ld<C>(dy, dydt, r);
            for (int64_t l = threadIdx.x; l < len; l += blockDim.x) ct_st<C>(out, odt, r * len + l, l == at ? g : (C)0);
        }
    }
}

template <typename C>
__global__ void col_max_kernel(const void *x, int xdt, int64_t outer, int64_t len, int64_t inner, const void *dy,
                               int dydt, void *out, int odt) {
    CT_GRID_STRIDE(t, outer * inner) {
        int64_t o = t / inner, j = t % inner, base = o * len * inner + j;
        int64_t at = seq_argmax<C>(x, xdt, base, len, inner);
        if (!dy) {
            ct_st<C>(out, odt, t, ct_ld<C>(x, xdt, base + at * inner));
        } else {
            C g = ct_ld<C>(dy, dydt, t);
            for (int64_t l = 0; l < len; l++) ct_st<C>(out, odt, base + l * inner, l == at ? g : (C)0);
        }
    }
}

// ---------------------------------------------------------------- host side

static ct_status split(const ct_kargs *k, int64_t *outer, int64_t *len, int64_t *inner) {
    const char *op = ct_op_name(k->op);
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0];
    int axis = k->attr->axis;
    if (axis == CT_AXIS_ALL) {
        *outer = 1;
        *len = x.numel;
        *inner = 1;
        return CT_OK;
    }
    if (axis < 0 || axis >= x.shape.ndim)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "axis %d out of range for %d dims", axis, x.shape.ndim);
    ct_cuda_axis_split(x.shape, axis, outer, len, inner);
    return CT_OK;
}


size_t ct_cuda_reduce_scratch(const ct_kargs *k) {
    if (k->op != CT_OP_SUM && k->op != CT_OP_MEAN) return 0;
    int64_t outer = 0, len = 0, inner = 0;
    if (split(k, &outer, &len, &inner) != CT_OK || inner != 1) return 0;
    int64_t parts = parts_for(len);
    return parts > 1 ? (size_t)(outer * parts) * sizeof(double) : 0;
}

static ct_status k_sum_mean(const ct_kargs *k) {
    int64_t outer = 0, len = 0, inner = 0;
    ct_status s = split(k, &outer, &len, &inner);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    if (o.numel != outer * inner)
        return ct_cuda_arg_error(CT_ERR_SHAPE, ct_op_name(k->op), "output has %lld elements, expected %lld",
                                 (long long)o.numel, (long long)(outer * inner));
    if (o.numel == 0) return CT_OK;
    // mean of nothing is 0 * inf = NaN, as 0/0 is on the CPU
    double mul = k->op == CT_OP_MEAN ? 1.0 / (double)len : 1.0;
    if (k->op == CT_OP_MEAN && len == 0) mul = NAN;
    bool f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    if (inner == 1) {
        int64_t parts = parts_for(len);
        if (parts > 1 && !k->scratch)
            return ct_cuda_arg_error(CT_ERR_INTERNAL, ct_op_name(k->op), "needs scratch, got none");
        dim3 grid((unsigned)parts, (unsigned)(outer < 65535 ? outer : 65535));
        if (f64)
            row_sum_kernel<double><<<grid, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, parts, mul,
                                                                     (double *)k->scratch, o.data, o.dtype);
        else
            row_sum_kernel<float><<<grid, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, parts, mul,
                                                                    (float *)k->scratch, o.data, o.dtype);
        CT_CUDA_LAUNCHED("row_sum", "%lld rows of %lld", (long long)outer, (long long)len);
        if (parts > 1) {
            if (f64)
                sum_parts_kernel<double><<<ct_cuda_rows_grid(outer), 64, 0, st>>>((const double *)k->scratch, outer, parts, mul,
                                                                          o.data, o.dtype);
            else
                sum_parts_kernel<float><<<ct_cuda_rows_grid(outer), 64, 0, st>>>((const float *)k->scratch, outer, parts, mul,
                                                                         o.data, o.dtype);
            CT_CUDA_LAUNCHED("sum_parts", "%lld rows of %lld parts", (long long)outer, (long long)parts);
        }
        return CT_OK;
    }
    unsigned blocks = ct_cuda_blocks(outer * inner);
    if (f64)
        col_sum_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, inner, mul, o.data,
                                                                   o.dtype);
    else
        col_sum_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, inner, mul, o.data,
                                                                  o.dtype);
    CT_CUDA_LAUNCHED("col_sum", "[%lld, %lld, %lld]", (long long)outer, (long long)len, (long long)inner);
    return CT_OK;
}

// MAX (grad false) and MAX_GRAD (grad true) share the arg-max search.
static ct_status max_common(const ct_kargs *k, bool grad) {
    int64_t outer = 0, len = 0, inner = 0;
    ct_status s = split(k, &outer, &len, &inner);
    if (s != CT_OK) return s;
    const char *op = ct_op_name(k->op);
    const ct_tview &x = k->in[0], &o = k->out;
    const ct_tview *dy = grad ? &k->in[1] : nullptr;
    if (dy && dy->numel != outer * inner)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "dy has %lld elements, expected %lld", (long long)dy->numel,
                                 (long long)(outer * inner));
    int64_t want = grad ? x.numel : outer * inner;
    if (o.numel != want)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "output has %lld elements, expected %lld", (long long)o.numel,
                                 (long long)want);
    if (len == 0) {
        if (grad) return CT_OK;
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "reducing an empty axis has no maximum");
    }
    if (outer * inner == 0) return CT_OK;
    bool f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    const void *dyp = dy ? dy->data : nullptr;
    int dydt = dy ? dy->dtype : 0;
    if (inner == 1) {
        if (f64)
            row_max_kernel<double><<<ct_cuda_rows_grid(outer), CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, dyp, dydt,
                                                                                 o.data, o.dtype);
        else
            row_max_kernel<float><<<ct_cuda_rows_grid(outer), CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, dyp, dydt,
                                                                                o.data, o.dtype);
    } else {
        unsigned blocks = ct_cuda_blocks(outer * inner);
        if (f64)
            col_max_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, inner, dyp, dydt,
                                                                       o.data, o.dtype);
        else
            col_max_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, outer, len, inner, dyp, dydt,
                                                                      o.data, o.dtype);
    }
    CT_CUDA_LAUNCHED("max", "%s over [%lld, %lld, %lld]", op, (long long)outer, (long long)len, (long long)inner);
    return CT_OK;
}

static ct_status k_max(const ct_kargs *k) { return max_common(k, false); }
static ct_status k_max_grad(const ct_kargs *k) { return max_common(k, true); }

// ---------------------------------------------------------------- sum_to

// Geometry of SUM_TO: x's axes (right-aligned to nd), the output's, and the
// reduced axes (where the output has 1 and x more).
struct sum_to_geom {
    int nd, nred;
    int64_t odim[CT_MAX_DIMS], xstride[CT_MAX_DIMS];
    int64_t rdim[CT_MAX_DIMS], rstride[CT_MAX_DIMS]; // reduced axes: size and stride in x
    int64_t count;                                   // x elements per output element
};

__device__ __forceinline__ int64_t sum_to_base(const sum_to_geom &g, int64_t oi) {
    int64_t base = 0;
    for (int d = g.nd - 1; d >= 0; d--) {
        base += (oi % g.odim[d]) * g.xstride[d];
        oi /= g.odim[d];
    }
    return base;
}

__device__ __forceinline__ int64_t sum_to_off(const sum_to_geom &g, int64_t r) {
    int64_t off = 0;
    for (int q = g.nred - 1; q >= 0; q--) {
        off += (r % g.rdim[q]) * g.rstride[q];
        r /= g.rdim[q];
    }
    return off;
}

// Few outputs with many terms each: a block per output.
template <typename C>
__global__ void sum_to_block_kernel(sum_to_geom g, const void *x, int xdt, void *out, int odt, int64_t n_out) {
    __shared__ C sh[32];
    for (int64_t oi = blockIdx.x; oi < n_out; oi += gridDim.x) {
        int64_t base = sum_to_base(g, oi);
        C acc = 0;
        for (int64_t r = threadIdx.x; r < g.count; r += blockDim.x) acc += ct_ld<C>(x, xdt, base + sum_to_off(g, r));
        acc = ct_block_sum(acc, sh);
        if (threadIdx.x == 0) ct_st<C>(out, odt, oi, acc);
    }
}

// Many outputs: a thread per output (bias gradients: neighbouring threads
// read neighbouring columns).
template <typename C>
__global__ void sum_to_thread_kernel(sum_to_geom g, const void *x, int xdt, void *out, int odt, int64_t n_out) {
    CT_GRID_STRIDE(oi, n_out) {
        int64_t base = sum_to_base(g, oi);
        double acc = 0;  // one thread per output: in double, as col_sum_kernel
        for (int64_t r = 0; r < g.count; r++) acc += ct_ld<double>(x, xdt, base + sum_to_off(g, r));
        ct_st<C>(out, odt, oi, (C)acc);
    }
}

static ct_status k_sum_to(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    sum_to_geom g = {};
    g.nd = x.shape.ndim > o.shape.ndim ? x.shape.ndim : o.shape.ndim;
    int64_t xdim[CT_MAX_DIMS];
    for (int d = 0; d < g.nd; d++) {
        int xs = g.nd - x.shape.ndim, os = g.nd - o.shape.ndim;
        xdim[d] = d < xs ? 1 : x.shape.dim[d - xs];
        g.odim[d] = d < os ? 1 : o.shape.dim[d - os];
        if (g.odim[d] != xdim[d] && g.odim[d] != 1) {
            char a[96], b[96];
            return ct_cuda_arg_error(CT_ERR_SHAPE, "sum_to", "output %s is not a broadcast source of input %s",
                                     ct_shape_str(o.shape, a, sizeof a), ct_shape_str(x.shape, b, sizeof b));
        }
    }
    int64_t acc = 1;
    for (int d = g.nd - 1; d >= 0; d--) {
        g.xstride[d] = acc;
        acc *= xdim[d];
    }
    g.count = 1;
    for (int d = 0; d < g.nd; d++) {
        if (g.odim[d] == 1 && xdim[d] != 1) {
            g.rdim[g.nred] = xdim[d];
            g.rstride[g.nred] = g.xstride[d];
            g.nred++;
            g.count *= xdim[d];
        }
    }
    // Output axes of size 1 contribute nothing to the base offset, so the
    // stride there does not matter; reduced axes are walked by sum_to_off.
    if (o.numel == 0) return CT_OK;
    bool f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    if (o.numel < 1024 && g.count >= 1024) {
        if (f64)
            sum_to_block_kernel<double><<<ct_cuda_rows_grid(o.numel), CT_CUDA_THREADS, 0, st>>>(g, x.data, x.dtype, o.data,
                                                                                        o.dtype, o.numel);
        else
            sum_to_block_kernel<float><<<ct_cuda_rows_grid(o.numel), CT_CUDA_THREADS, 0, st>>>(g, x.data, x.dtype, o.data,
                                                                                       o.dtype, o.numel);
    } else {
        unsigned blocks = ct_cuda_blocks(o.numel);
        if (f64)
            sum_to_thread_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(g, x.data, x.dtype, o.data, o.dtype,
                                                                             o.numel);
        else
            sum_to_thread_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(g, x.data, x.dtype, o.data, o.dtype,
                                                                            o.numel);
    }
    CT_CUDA_LAUNCHED("sum_to", "%lld outputs of %lld terms", (long long)o.numel, (long long)g.count);
    return CT_OK;
}

void ct_cuda_register_reduce(ct_kernel_fn *t) {
    t[CT_OP_SUM] = k_sum_mean;
    t[CT_OP_MEAN] = k_sum_mean;
    t[CT_OP_MAX] = k_max;
    t[CT_OP_MAX_GRAD] = k_max_grad;
    t[CT_OP_SUM_TO] = k_sum_to;
}
