// CUDA kernels of fake quantization and its straight-through backward: the
// formula of core/fakequant.h (the one the CPU computes), in float for float
// storage and in double for F64, one thread per element.
#include "core/fakequant.h"
#include "cuda/cuda_common.cuh"

struct fq_dev {
    const void *x, *scale, *zp, *dy;
    int xdt, sdt, zdt, dydt;
    int64_t n, len, inner;
    double qmin, qmax;
};

// dy == nullptr: the forward value; else dy where inside, 0 outside.
template <typename C>
__global__ void fq_kernel(fq_dev a, void *out, int odt) {
    CT_GRID_STRIDE(i, a.n) {
        int64_t c = (i / a.inner) % a.len;
        C x = ct_ld<C>(a.x, a.xdt, i), s = ct_ld<C>(a.scale, a.sdt, c), z = ct_ld<C>(a.zp, a.zdt, c);
        bool inside;
        C y;
        if constexpr (sizeof(C) == sizeof(double))
            y = ct_fq_f64(x, s, z, a.qmin, a.qmax, &inside);
        else
            y = ct_fq_f32(x, s, z, (float)a.qmin, (float)a.qmax, &inside);
        if (a.dy) y = inside ? ct_ld<C>(a.dy, a.dydt, i) : (C)0;
        ct_st<C>(out, odt, i, y);
    }
}

static ct_status fq_launch(const ct_kargs *k, const char *op, bool grad) {
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    int n_in = grad ? 4 : 3;
    for (int i = 0; i < n_in; i++)
        if (!ct_dtype_is_float(k->in[i].dtype))
            return ct_cuda_arg_error(CT_ERR_DTYPE, op, "input %d is %s; it takes floats", i,
                                     ct_dtype_name(k->in[i].dtype));
    const ct_tview &x = k->in[0];
    fq_dev a = {x.data, k->in[1].data, k->in[2].data, grad ? k->in[3].data : nullptr,
                x.dtype, k->in[1].dtype, k->in[2].dtype, grad ? (int)k->in[3].dtype : 0,
                x.numel, 1, 1, (double)k->attr->quant_min, (double)k->attr->quant_max};
    int axis = k->attr->axis;
    if (axis >= x.shape.ndim) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "axis %d out of range", axis);
    if (axis >= 0) {
        a.len = x.shape.dim[axis];
        for (int d = axis + 1; d < x.shape.ndim; d++) a.inner *= x.shape.dim[d];
    }
    if (k->in[1].numel != a.len || k->in[2].numel != a.len || k->out.numel != a.n || (grad && k->in[3].numel != a.n))
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "the scale, zero point or gradient does not fit x");
    if (a.n == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    if (ct_cuda_is_f64(k->out.dtype))
        fq_kernel<double><<<ct_cuda_blocks(a.n), CT_CUDA_THREADS, 0, st>>>(a, k->out.data, k->out.dtype);
    else
        fq_kernel<float><<<ct_cuda_blocks(a.n), CT_CUDA_THREADS, 0, st>>>(a, k->out.data, k->out.dtype);
    CT_CUDA_LAUNCHED("fake_quant", "%s over %lld elements", op, (long long)a.n);
    return CT_OK;
}

static ct_status k_fake_quant(const ct_kargs *k) { return fq_launch(k, "fake_quant", false); }
static ct_status k_fake_quant_grad(const ct_kargs *k) { return fq_launch(k, "fake_quant_grad", true); }

void ct_cuda_register_fakequant(ct_kernel_fn *t) {
    t[CT_OP_FAKE_QUANT] = k_fake_quant;
    t[CT_OP_FAKE_QUANT_GRAD] = k_fake_quant_grad;
}
