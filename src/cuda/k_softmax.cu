// CUDA kernels: softmax and log-softmax over any axis, and their gradients.
//
// Over the last axis (inner == 1, the usual case) a block owns a row: the
// maximum and the sum of exponentials are block reductions with warp
// shuffles, and the block is sized to the row so short rows (10 classes)
// do not leave most threads idle. Over another axis a thread owns one
// (outer, inner) column and walks it. The maximum propagates NaN, so a NaN
// anywhere in a row makes the row NaN, as on the CPU.
#include "cuda/cuda_common.cuh"


template <typename C>
__global__ void softmax_rows(const void *x, int xdt, void *out, int odt, int64_t rows, int64_t len, bool log_form) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t base = r * len;
        C m, sum;
        ct_block_max_sumexp<C>(x, xdt, base, len, sh, &m, &sum);
        C log_sum = log(sum);
        for (int64_t l = threadIdx.x; l < len; l += blockDim.x) {
            C z = ct_ld<C>(x, xdt, base + l) - m;
            ct_st<C>(out, odt, base + l, log_form ? z - log_sum : exp(z) / sum);
        }
    }
}

template <typename C>
__global__ void softmax_cols(const void *x, int xdt, void *out, int odt, int64_t outer, int64_t len, int64_t inner,
                             bool log_form) {
    CT_GRID_STRIDE(t, outer * inner) {
        int64_t base = (t / inner) * len * inner + t % inner;
        C m = (C)-INFINITY;
        for (int64_t l = 0; l < len; l++) m = ct_nanmax(m, ct_ld<C>(x, xdt, base + l * inner));
        // One thread walks the whole axis: a running float sum would drift
        // like len ulps (the row kernels' trees stay near sqrt(len)), so it
        // adds in double, as col_sum_kernel does.
        double acc = 0;
        for (int64_t l = 0; l < len; l++) acc += (double)exp(ct_ld<C>(x, xdt, base + l * inner) - m);
        C sum = (C)acc, log_sum = log(sum);
        for (int64_t l = 0; l < len; l++) {
            C z = ct_ld<C>(x, xdt, base + l * inner) - m;
            ct_st<C>(out, odt, base + l * inner, log_form ? z - log_sum : exp(z) / sum);
        }
    }
}

// softmax:     dx = y * (dy - sum(dy * y))
// log_softmax: dx = dy - exp(y) * sum(dy)
template <typename C>
__global__ void softmax_grad_rows(const void *y, int ydt, const void *dy, int dydt, void *out, int odt, int64_t rows,
                                  int64_t len, bool log_form) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t base = r * len;
        C dot = 0;
        for (int64_t l = threadIdx.x; l < len; l += blockDim.x) {
            C g = ct_ld<C>(dy, dydt, base + l);
            dot += log_form ? g : g * ct_ld<C>(y, ydt, base + l);
        }
        dot = ct_block_sum(dot, sh);
        for (int64_t l = threadIdx.x; l < len; l += blockDim.x) {
            C g = ct_ld<C>(dy, dydt, base + l), yi = ct_ld<C>(y, ydt, base + l);
            ct_st<C>(out, odt, base + l, log_form ? g - exp(yi) * dot : yi * (g - dot));
        }
    }
}

template <typename C>
__global__ void softmax_grad_cols(const void *y, int ydt, const void *dy, int dydt, void *out, int odt, int64_t outer,
                                  int64_t len, int64_t inner, bool log_form) {
    CT_GRID_STRIDE(t, outer * inner) {
        int64_t base = (t / inner) * len * inner + t % inner;
        double acc = 0;  // in double: see softmax_cols
        for (int64_t l = 0; l < len; l++) {
            C g = ct_ld<C>(dy, dydt, base + l * inner);
            acc += (double)(log_form ? g : g * ct_ld<C>(y, ydt, base + l * inner));
        }
        C dot = (C)acc;
        for (int64_t l = 0; l < len; l++) {
            int64_t i = base + l * inner;
            C g = ct_ld<C>(dy, dydt, i), yi = ct_ld<C>(y, ydt, i);
            ct_st<C>(out, odt, i, log_form ? g - exp(yi) * dot : yi * (g - dot));
        }
    }
}

static ct_status split(const ct_kargs *k, int64_t *outer, int64_t *len, int64_t *inner) {
    const char *op = ct_op_name(k->op);
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0];
    int axis = k->attr->axis;
    if (axis < 0 || axis >= x.shape.ndim)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "axis %d out of range for %d dims", axis, x.shape.ndim);
    ct_cuda_axis_split(x.shape, axis, outer, len, inner);
    for (int j = 1; j < k->n_in; j++)
        if (k->in[j].numel != x.numel)
            return ct_cuda_arg_error(CT_ERR_SHAPE, op, "input %d has %lld elements, expected %lld", j,
                                     (long long)k->in[j].numel, (long long)x.numel);
    if (k->out.numel != x.numel)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "output has %lld elements, expected %lld", (long long)k->out.numel,
                                 (long long)x.numel);
    return CT_OK;
}


static ct_status softmax_fwd(const ct_kargs *k) {
    int64_t outer = 0, len = 0, inner = 0;
    ct_status s = split(k, &outer, &len, &inner);
    if (s != CT_OK) return s;
    if (k->out.numel == 0) return CT_OK;
    const ct_tview &x = k->in[0], &o = k->out;
    bool log_form = k->op == CT_OP_LOG_SOFTMAX, f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    if (inner == 1) {
        int th = ct_cuda_row_threads(len);
        if (f64)
            softmax_rows<double><<<ct_cuda_rows_grid(outer), th, 0, st>>>(x.data, x.dtype, o.data, o.dtype, outer, len, log_form);
        else
            softmax_rows<float><<<ct_cuda_rows_grid(outer), th, 0, st>>>(x.data, x.dtype, o.data, o.dtype, outer, len, log_form);
    } else {
        unsigned b = ct_cuda_blocks(outer * inner);
        if (f64)
            softmax_cols<double><<<b, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, o.data, o.dtype, outer, len, inner,
                                                                log_form);
        else
            softmax_cols<float><<<b, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, o.data, o.dtype, outer, len, inner,
                                                               log_form);
    }
    CT_CUDA_LAUNCHED("softmax", "%s over [%lld, %lld, %lld]", ct_op_name(k->op), (long long)outer, (long long)len,
                     (long long)inner);
    return CT_OK;
}

static ct_status softmax_bwd(const ct_kargs *k) {
    int64_t outer = 0, len = 0, inner = 0;
    ct_status s = split(k, &outer, &len, &inner);
    if (s != CT_OK) return s;
    if (k->out.numel == 0) return CT_OK;
    const ct_tview &y = k->in[0], &dy = k->in[1], &o = k->out;
    bool log_form = k->op == CT_OP_LOG_SOFTMAX_GRAD, f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    if (inner == 1) {
        int th = ct_cuda_row_threads(len);
        if (f64)
            softmax_grad_rows<double><<<ct_cuda_rows_grid(outer), th, 0, st>>>(y.data, y.dtype, dy.data, dy.dtype, o.data,
                                                                       o.dtype, outer, len, log_form);
        else
            softmax_grad_rows<float><<<ct_cuda_rows_grid(outer), th, 0, st>>>(y.data, y.dtype, dy.data, dy.dtype, o.data,
                                                                      o.dtype, outer, len, log_form);
    } else {
        unsigned b = ct_cuda_blocks(outer * inner);
        if (f64)
            softmax_grad_cols<double><<<b, CT_CUDA_THREADS, 0, st>>>(y.data, y.dtype, dy.data, dy.dtype, o.data, o.dtype,
                                                                     outer, len, inner, log_form);
        else
            softmax_grad_cols<float><<<b, CT_CUDA_THREADS, 0, st>>>(y.data, y.dtype, dy.data, dy.dtype, o.data, o.dtype,
                                                                    outer, len, inner, log_form);
    }
    CT_CUDA_LAUNCHED("softmax_grad", "%s over [%lld, %lld, %lld]", ct_op_name(k->op), (long long)outer,
                     (long long)len, (long long)inner);
    return CT_OK;
}

void ct_cuda_register_softmax(ct_kernel_fn *t) {
    t[CT_OP_SOFTMAX] = softmax_fwd;
    t[CT_OP_LOG_SOFTMAX] = softmax_fwd;
    t[CT_OP_SOFTMAX_GRAD] = softmax_bwd;
    t[CT_OP_LOG_SOFTMAX_GRAD] = softmax_bwd;
}
