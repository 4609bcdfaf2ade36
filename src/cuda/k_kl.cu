// CUDA kernel of kl_div (PyTorch's F.kl_div, reduction='batchmean'): the
// sum of xlogy(t, t) - t * input over every element, divided by the first
// axis' size. One block adds block-strided partial sums in double and
// reduces them in a fixed order: no atomics, no scratch, the same bits on
// every run. The loss of distillation is [batch, classes], small enough
// that one block is not the step's bottleneck.
#include "cuda/cuda_common.cuh"
#include "cuda/cuda_compress.cuh"

__global__ void kl_div_kernel(const void *x, int xdt, const void *t, int tdt, int64_t n, double inv_batch, void *out,
                              int odt) {
    __shared__ double sh[32];
    double acc = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        double p = ct_ld<double>(t, tdt, i);
        acc += (p != 0.0 ? p * log(p) : 0.0) - p * ct_ld<double>(x, xdt, i);
    }
    acc = ct_block_sum(acc, sh);
    if (threadIdx.x == 0) ct_st<double>(out, odt, 0, acc * inv_batch);
}

static ct_status k_kl_div(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &a = k->in[0], &t = k->in[1], &o = k->out;
    if (!ct_dtype_is_float(a.dtype) || !ct_dtype_is_float(t.dtype) || !ct_dtype_is_float(o.dtype))
        return ct_cuda_arg_error(CT_ERR_DTYPE, "kl_div", "input %s, target %s, output %s: floats needed",
                                 ct_dtype_name(a.dtype), ct_dtype_name(t.dtype), ct_dtype_name(o.dtype));
    if (!ct_shape_equal(a.shape, t.shape) || a.shape.ndim < 1 || a.shape.dim[0] < 1) {
        char sa[96], sb[96];
        return ct_cuda_arg_error(CT_ERR_SHAPE, "kl_div", "input %s and target %s: same shape [N, ...] needed",
                                 ct_shape_str(a.shape, sa, sizeof sa), ct_shape_str(t.shape, sb, sizeof sb));
    }
    kl_div_kernel<<<1, CT_CUDA_THREADS, 0, ct_cuda_stream(k)>>>(a.data, a.dtype, t.data, t.dtype, a.numel,
                                                                1.0 / (double)a.shape.dim[0], o.data, o.dtype);
    CT_CUDA_LAUNCHED("kl_div", "%lld elements", (long long)a.numel);
    return CT_OK;
}

void ct_cuda_register_kl(ct_kernel_fn *t) { t[CT_OP_KL_DIV] = k_kl_div; }
