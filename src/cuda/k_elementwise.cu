// CUDA kernels: binary ops with broadcasting, unary ops and their fused
// gradient (UNARY_GRAD), casts, copies and BROADCAST_TO.
//
// The formulas are the CPU reference's, from the one header both backends
// use (core/ew_math.h), including its conventions at kinks and for NaN,
// evaluated in float (double for F64). One kernel serves every op of class
// UNARY, one every op of class BINARY (core/op_list.h). Same-shape operands
// take a path without index arithmetic; anything else computes each
// operand's offset from per-axis strides that are 0 along broadcast axes.
#include "core/ew_math.h"
#include "cuda/cuda_common.cuh"

// ---------------------------------------------------------------- binary

// relu: a relu fused into the op (ct_attrs.fused_relu). It commutes with
// the rounding to a half output, so applying it before the store gives
// what the relu kernel gives after it.
template <typename C>
__device__ __forceinline__ void store(void *o, int odt, int64_t i, C v, bool relu) {
    ct_st<C>(o, odt, i, relu ? ct_ew_relu<C>(v) : v);
}

template <typename C>
__global__ void binary_same(int op, const void *a, int adt, const void *b, int bdt, void *o, int odt, int64_t n,
                            bool relu) {
    CT_GRID_STRIDE(i, n) store<C>(o, odt, i, ct_ew_binary<C>(op, ct_ld<C>(a, adt, i), ct_ld<C>(b, bdt, i)), relu);
}

template <typename C>
__global__ void binary_bcast(int op, ct_bcast g, const void *a, int adt, const void *b, int bdt, void *o, int odt,
                             int64_t n, bool relu) {
    CT_GRID_STRIDE(i, n) {
        int64_t oa, ob;
        ct_bcast_offsets(g, i, &oa, &ob);
        store<C>(o, odt, i, ct_ew_binary<C>(op, ct_ld<C>(a, adt, oa), ct_ld<C>(b, bdt, ob)), relu);
    }
}

static ct_status shape_error(const ct_kargs *k, const char *what, const ct_shape &a, const ct_shape &b) {
    char sa[96], sb[96];
    return ct_cuda_arg_error(CT_ERR_SHAPE, ct_op_name(k->op), "%s %s vs %s", what, ct_shape_str(a, sa, sizeof sa),
                             ct_shape_str(b, sb, sizeof sb));
}

static ct_status k_binary(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &a = k->in[0], &b = k->in[1], &o = k->out;
    if (!ct_cuda_broadcasts_to(a.shape, o.shape))
        return shape_error(k, "first operand does not broadcast to output", a.shape, o.shape);
    if (!ct_cuda_broadcasts_to(b.shape, o.shape))
        return shape_error(k, "second operand does not broadcast to output", b.shape, o.shape);
    if (o.numel == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    bool f64 = ct_cuda_is_f64(o.dtype), relu = k->attr && k->attr->fused_relu;
    if (ct_shape_equal(a.shape, o.shape) && ct_shape_equal(b.shape, o.shape)) {
        if (f64)
            binary_same<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, a.data, a.dtype, b.data, b.dtype, o.data,
                                                                    o.dtype, o.numel, relu);
        else
            binary_same<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, a.data, a.dtype, b.data, b.dtype, o.data,
                                                                   o.dtype, o.numel, relu);
    } else {
        ct_bcast g;
        ct_cuda_bcast_init(&g, o.shape);
        ct_cuda_bcast_strides(&g, 0, a.shape);
        ct_cuda_bcast_strides(&g, 1, b.shape);
        if (f64)
            binary_bcast<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, g, a.data, a.dtype, b.data, b.dtype,
                                                                     o.data, o.dtype, o.numel, relu);
        else
            binary_bcast<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, g, a.data, a.dtype, b.data, b.dtype,
                                                                    o.data, o.dtype, o.numel, relu);
    }
    CT_CUDA_LAUNCHED("binary", "%s over %lld elements", ct_op_name(k->op), (long long)o.numel);
    return CT_OK;
}

// ---------------------------------------------------------------- unary

template <typename C>
__global__ void unary_kernel(ct_ew_params a, const void *x, int xdt, void *o, int odt, int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<C>(o, odt, i, ct_ew_unary<C>(&a, ct_ld<C>(x, xdt, i)));
}

template <typename C>
__global__ void unary_grad_kernel(ct_ew_params a, const void *x, int xdt, const void *dy, int dydt, void *o, int odt,
                                  int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<C>(o, odt, i, ct_ld<C>(dy, dydt, i) * ct_ew_unary_deriv<C>(&a, ct_ld<C>(x, xdt, i)));
}

static ct_status k_unary(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    if (x.numel != o.numel) return shape_error(k, "input and output differ", x.shape, o.shape);
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, ct_op_name(k->op), "no attributes");
    if (o.numel == 0) return CT_OK;
    ct_ew_params a = ct_ew_params_of(k->op, k->attr);
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    if (ct_cuda_is_f64(o.dtype))
        unary_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, o.data, o.dtype, o.numel);
    else
        unary_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, o.data, o.dtype, o.numel);
    CT_CUDA_LAUNCHED("unary", "%s over %lld elements", ct_op_name(k->op), (long long)o.numel);
    return CT_OK;
}

static ct_status k_unary_grad(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &dy = k->in[1], &o = k->out;
    if (x.numel != o.numel || dy.numel != o.numel) return shape_error(k, "x and dy differ", x.shape, dy.shape);
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, "unary_grad", "no attributes");
    const int fop = k->attr->fwd_op;
    if (ct_op_class_of(fop) != CT_OPC_UNARY)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, "unary_grad", "forward op %d (%s) is not unary", fop,
                                 ct_op_name(fop) ? ct_op_name(fop) : "?");
    if (o.numel == 0) return CT_OK;
    ct_ew_params a = ct_ew_params_of(fop, k->attr);
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    if (ct_cuda_is_f64(o.dtype))
        unary_grad_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, dy.data, dy.dtype, o.data,
                                                                      o.dtype, o.numel);
    else
        unary_grad_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, dy.data, dy.dtype, o.data,
                                                                     o.dtype, o.numel);
    CT_CUDA_LAUNCHED("unary_grad", "%s' over %lld elements", ct_op_name(k->attr->fwd_op), (long long)o.numel);
    return CT_OK;
}

// ---------------------------------------------------------------- casts and copies

// Casts go through double, as the CPU's ct_ld/ct_st do: every I32 value is
// exact in double, and float -> half rounds once from the float value.
__global__ void cast_kernel(const void *x, int xdt, void *o, int odt, int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<double>(o, odt, i, ct_ld<double>(x, xdt, i));
}

static ct_status k_cast(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    if (x.numel != o.numel) return shape_error(k, "input and output differ", x.shape, o.shape);
    if (o.numel == 0) return CT_OK;
    cast_kernel<<<ct_cuda_blocks(o.numel), CT_CUDA_THREADS, 0, ct_cuda_stream(k)>>>(x.data, x.dtype, o.data, o.dtype,
                                                                                    o.numel);
    CT_CUDA_LAUNCHED("cast", "%s -> %s over %lld elements", ct_dtype_name(x.dtype), ct_dtype_name(o.dtype),
                     (long long)o.numel);
    return CT_OK;
}

static ct_status k_copy(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    if (x.numel != o.numel) return shape_error(k, "input and output differ", x.shape, o.shape);
    if (x.dtype != o.dtype)
        return ct_cuda_arg_error(CT_ERR_DTYPE, "copy", "%s input, %s output (use cast)", ct_dtype_name(x.dtype),
                                 ct_dtype_name(o.dtype));
    size_t bytes = (size_t)o.numel * ct_dtype_size(o.dtype);
    if (bytes == 0 || x.data == o.data) return CT_OK;
    // bytes, not values: a copy keeps every bit (NaN payloads, -0)
    CT_CUDA_TRY(cudaMemcpyAsync(o.data, x.data, bytes, cudaMemcpyDeviceToDevice, ct_cuda_stream(k)), "copy of %zu bytes",
                bytes);
    return CT_OK;
}

template <typename C>
__global__ void broadcast_kernel(ct_bcast g, const void *x, int xdt, void *o, int odt, int64_t n) {
    CT_GRID_STRIDE(i, n) {
        int64_t ox, unused;
        ct_bcast_offsets(g, i, &ox, &unused);
        ct_st<C>(o, odt, i, ct_ld<C>(x, xdt, ox));
    }
}

static ct_status k_broadcast_to(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    if (!ct_cuda_broadcasts_to(x.shape, o.shape))
        return shape_error(k, "input does not broadcast to output", x.shape, o.shape);
    if (o.numel == 0) return CT_OK;
    ct_bcast g;
    ct_cuda_bcast_init(&g, o.shape);
    ct_cuda_bcast_strides(&g, 0, x.shape);
    ct_cuda_bcast_strides(&g, 1, x.shape);
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    if (ct_cuda_is_f64(o.dtype))
        broadcast_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(g, x.data, x.dtype, o.data, o.dtype, o.numel);
    else
        broadcast_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(g, x.data, x.dtype, o.data, o.dtype, o.numel);
    CT_CUDA_LAUNCHED("broadcast_to", "%lld elements", (long long)o.numel);
    return CT_OK;
}

void ct_cuda_register_elementwise(ct_kernel_fn *t) {
    for (int op = 0; op < CT_OP_COUNT; op++) {
        if (ct_op_class_of(op) == CT_OPC_BINARY) t[op] = k_binary;
        if (ct_op_class_of(op) == CT_OPC_UNARY) t[op] = k_unary;
    }
    t[CT_OP_UNARY_GRAD] = k_unary_grad;
    t[CT_OP_CAST] = k_cast;
    t[CT_OP_COPY] = k_copy;
    t[CT_OP_BROADCAST_TO] = k_broadcast_to;
}
