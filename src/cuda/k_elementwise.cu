// CUDA kernels: binary ops with broadcasting, unary ops and their fused
// gradient (UNARY_GRAD), casts, copies and BROADCAST_TO.
//
// The formulas are the CPU reference's (src/cpu/k_elementwise.c), including
// its conventions at kinks and for NaN, evaluated in float (double for
// F64). Same-shape operands take a path without index arithmetic; anything
// else computes each operand's offset from per-axis strides that are 0
// along broadcast axes.
#include "cuda/cuda_common.cuh"

#define CT_SQRT1_2 0.70710678118654752440
#define CT_SQRT_2_OVER_PI 0.79788456080286535588
#define CT_INV_SQRT_2PI 0.39894228040143267794
#define CT_GELU_TANH_C 0.044715

// ---------------------------------------------------------------- binary

template <typename C>
__device__ __forceinline__ C binary_fn(int op, C a, C b) {
    switch (op) {
    case CT_OP_ADD: return a + b;
    case CT_OP_SUB: return a - b;
    case CT_OP_MUL: return a * b;
    default: return a / b;
    }
}

template <typename C>
__global__ void binary_same(int op, const void *a, int adt, const void *b, int bdt, void *o, int odt, int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<C>(o, odt, i, binary_fn<C>(op, ct_ld<C>(a, adt, i), ct_ld<C>(b, bdt, i)));
}

template <typename C>
__global__ void binary_bcast(int op, ct_bcast g, const void *a, int adt, const void *b, int bdt, void *o, int odt,
                             int64_t n) {
    CT_GRID_STRIDE(i, n) {
        int64_t oa, ob;
        ct_bcast_offsets(g, i, &oa, &ob);
        ct_st<C>(o, odt, i, binary_fn<C>(op, ct_ld<C>(a, adt, oa), ct_ld<C>(b, bdt, ob)));
    }
}

static ct_status check_arity(const ct_kargs *k, int n_in) {
    if (k->n_in != n_in)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, ct_cuda_op_name(k->op), "expected %d inputs, got %d", n_in,
                                 k->n_in);
    return CT_OK;
}

static ct_status shape_error(const ct_kargs *k, const char *what, const ct_shape &a, const ct_shape &b) {
    char sa[96], sb[96];
    return ct_cuda_arg_error(CT_ERR_SHAPE, ct_cuda_op_name(k->op), "%s %s vs %s", what, ct_shape_str(a, sa, sizeof sa),
                             ct_shape_str(b, sb, sizeof sb));
}

static ct_status k_binary(const ct_kargs *k) {
    ct_status s = check_arity(k, 2);
    if (s != CT_OK) return s;
    const ct_tview &a = k->in[0], &b = k->in[1], &o = k->out;
    if (!ct_cuda_broadcasts_to(a.shape, o.shape))
        return shape_error(k, "first operand does not broadcast to output", a.shape, o.shape);
    if (!ct_cuda_broadcasts_to(b.shape, o.shape))
        return shape_error(k, "second operand does not broadcast to output", b.shape, o.shape);
    if (o.numel == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    bool f64 = ct_cuda_is_f64(o.dtype);
    if (ct_shape_equal(a.shape, o.shape) && ct_shape_equal(b.shape, o.shape)) {
        if (f64)
            binary_same<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, a.data, a.dtype, b.data, b.dtype, o.data,
                                                                    o.dtype, o.numel);
        else
            binary_same<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, a.data, a.dtype, b.data, b.dtype, o.data,
                                                                   o.dtype, o.numel);
    } else {
        ct_bcast g;
        ct_cuda_bcast_init(&g, o.shape);
        ct_cuda_bcast_strides(&g, 0, a.shape);
        ct_cuda_bcast_strides(&g, 1, b.shape);
        if (f64)
            binary_bcast<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, g, a.data, a.dtype, b.data, b.dtype,
                                                                     o.data, o.dtype, o.numel);
        else
            binary_bcast<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(k->op, g, a.data, a.dtype, b.data, b.dtype,
                                                                    o.data, o.dtype, o.numel);
    }
    CT_CUDA_LAUNCHED("binary", "%s over %lld elements", ct_cuda_op_name(k->op), (long long)o.numel);
    return CT_OK;
}

// ---------------------------------------------------------------- unary

template <typename C>
__device__ __forceinline__ C sigmoid_of(C x) {
    if (x >= (C)0) return (C)1 / ((C)1 + exp(-x));
    C e = exp(x);
    return e / ((C)1 + e);
}

template <typename C>
__device__ __forceinline__ C normal_cdf(C x) {
    return (C)0.5 * erfc(-x * (C)CT_SQRT1_2);
}

template <typename C>
__device__ __forceinline__ C gelu_tanh_inner(C x) {
    return (C)CT_SQRT_2_OVER_PI * (x + (C)CT_GELU_TANH_C * x * x * x);
}

// The attributes a unary op reads, passed by value.
struct unary_attr {
    int op;
    double alpha;
    int approx;
};

template <typename C>
__device__ C unary_fn(const unary_attr &a, C x) {
    switch (a.op) {
    case CT_OP_NEG: return -x;
    case CT_OP_SCALE: return (C)a.alpha * x;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return log(x);
    case CT_OP_SQRT: return sqrt(x);
    case CT_OP_POW: return pow(x, (C)a.alpha);
    case CT_OP_ABS: return fabs(x);
    case CT_OP_RELU: return x != x ? x : (x > (C)0 ? x : (C)0);
    case CT_OP_LEAKY_RELU: return x > (C)0 ? x : (C)a.alpha * x;
    case CT_OP_GELU:
        if (a.approx == CT_GELU_TANH) return (C)0.5 * x * ((C)1 + tanh(gelu_tanh_inner(x)));
        return x * normal_cdf(x);
    case CT_OP_TANH: return tanh(x);
    case CT_OP_SIGMOID: return sigmoid_of(x);
    case CT_OP_SILU: return x * sigmoid_of(x);
    default: return (C)NAN;
    }
}

template <typename C>
__device__ C unary_deriv(const unary_attr &a, C x) {
    switch (a.op) {
    case CT_OP_NEG: return (C)-1;
    case CT_OP_SCALE: return (C)a.alpha;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return (C)1 / x;
    case CT_OP_SQRT: return (C)0.5 / sqrt(x);
    case CT_OP_POW:
        if (a.alpha == 0.0) return (C)0;
        return (C)a.alpha * pow(x, (C)(a.alpha - 1.0));
    case CT_OP_ABS: return (C)((x > (C)0) - (x < (C)0));
    case CT_OP_RELU: return x > (C)0 ? (C)1 : (C)0;
    case CT_OP_LEAKY_RELU: return x > (C)0 ? (C)1 : (C)a.alpha;
    case CT_OP_GELU:
        if (a.approx == CT_GELU_TANH) {
            C t = tanh(gelu_tanh_inner(x));
            C dinner = (C)CT_SQRT_2_OVER_PI * ((C)1 + (C)3 * (C)CT_GELU_TANH_C * x * x);
            return (C)0.5 * ((C)1 + t) + (C)0.5 * x * ((C)1 - t * t) * dinner;
        }
        return normal_cdf(x) + x * (C)CT_INV_SQRT_2PI * exp((C)-0.5 * x * x);
    case CT_OP_TANH: {
        C t = tanh(x);
        return (C)1 - t * t;
    }
    case CT_OP_SIGMOID: {
        C s = sigmoid_of(x);
        return s * ((C)1 - s);
    }
    case CT_OP_SILU: {
        C s = sigmoid_of(x);
        return s * ((C)1 + x * ((C)1 - s));
    }
    default: return (C)NAN;
    }
}

template <typename C>
__global__ void unary_kernel(unary_attr a, const void *x, int xdt, void *o, int odt, int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<C>(o, odt, i, unary_fn<C>(a, ct_ld<C>(x, xdt, i)));
}

template <typename C>
__global__ void unary_grad_kernel(unary_attr a, const void *x, int xdt, const void *dy, int dydt, void *o, int odt,
                                  int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<C>(o, odt, i, ct_ld<C>(dy, dydt, i) * unary_deriv<C>(a, ct_ld<C>(x, xdt, i)));
}

static bool is_unary(int op) {
    switch (op) {
    case CT_OP_NEG: case CT_OP_SCALE: case CT_OP_EXP: case CT_OP_LOG: case CT_OP_SQRT:
    case CT_OP_POW: case CT_OP_ABS: case CT_OP_RELU: case CT_OP_LEAKY_RELU: case CT_OP_GELU:
    case CT_OP_TANH: case CT_OP_SIGMOID: case CT_OP_SILU:
        return true;
    default:
        return false;
    }
}

static ct_status k_unary(const ct_kargs *k) {
    ct_status s = check_arity(k, 1);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    if (x.numel != o.numel) return shape_error(k, "input and output differ", x.shape, o.shape);
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, ct_cuda_op_name(k->op), "no attributes");
    if (o.numel == 0) return CT_OK;
    unary_attr a = {k->op, k->attr->alpha, k->attr->approx};
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    if (ct_cuda_is_f64(o.dtype))
        unary_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, o.data, o.dtype, o.numel);
    else
        unary_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, o.data, o.dtype, o.numel);
    CT_CUDA_LAUNCHED("unary", "%s over %lld elements", ct_cuda_op_name(k->op), (long long)o.numel);
    return CT_OK;
}

static ct_status k_unary_grad(const ct_kargs *k) {
    ct_status s = check_arity(k, 2);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &dy = k->in[1], &o = k->out;
    if (x.numel != o.numel || dy.numel != o.numel) return shape_error(k, "x and dy differ", x.shape, dy.shape);
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, "unary_grad", "no attributes");
    if (!is_unary(k->attr->fwd_op))
        return ct_cuda_arg_error(CT_ERR_INTERNAL, "unary_grad", "forward op %d (%s) is not unary", k->attr->fwd_op,
                                 ct_cuda_op_name(k->attr->fwd_op));
    if (o.numel == 0) return CT_OK;
    unary_attr a = {k->attr->fwd_op, k->attr->alpha, k->attr->approx};
    cudaStream_t st = ct_cuda_stream(k);
    unsigned blocks = ct_cuda_blocks(o.numel);
    if (ct_cuda_is_f64(o.dtype))
        unary_grad_kernel<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, dy.data, dy.dtype, o.data,
                                                                      o.dtype, o.numel);
    else
        unary_grad_kernel<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(a, x.data, x.dtype, dy.data, dy.dtype, o.data,
                                                                     o.dtype, o.numel);
    CT_CUDA_LAUNCHED("unary_grad", "%s' over %lld elements", ct_cuda_op_name(k->attr->fwd_op), (long long)o.numel);
    return CT_OK;
}

// ---------------------------------------------------------------- casts and copies

// Casts go through double, as the CPU's ct_ld/ct_st do: every I32 value is
// exact in double, and float -> half rounds once from the float value.
__global__ void cast_kernel(const void *x, int xdt, void *o, int odt, int64_t n) {
    CT_GRID_STRIDE(i, n) ct_st<double>(o, odt, i, ct_ld<double>(x, xdt, i));
}

static ct_status k_cast(const ct_kargs *k) {
    ct_status s = check_arity(k, 1);
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
    ct_status s = check_arity(k, 1);
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
    ct_status s = check_arity(k, 1);
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
    t[CT_OP_ADD] = k_binary;
    t[CT_OP_SUB] = k_binary;
    t[CT_OP_MUL] = k_binary;
    t[CT_OP_DIV] = k_binary;
    const int unary_ops[] = {CT_OP_NEG, CT_OP_SCALE, CT_OP_EXP,        CT_OP_LOG,  CT_OP_SQRT,
                             CT_OP_POW, CT_OP_ABS,   CT_OP_RELU,       CT_OP_LEAKY_RELU,
                             CT_OP_GELU, CT_OP_TANH, CT_OP_SIGMOID,    CT_OP_SILU};
    for (int op : unary_ops) t[op] = k_unary;
    t[CT_OP_UNARY_GRAD] = k_unary_grad;
    t[CT_OP_CAST] = k_cast;
    t[CT_OP_COPY] = k_copy;
    t[CT_OP_BROADCAST_TO] = k_broadcast_to;
}
