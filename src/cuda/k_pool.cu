// CUDA pooling (max, average) and their gradients: hand-written kernels
// rather than cuDNN's, because they can reproduce the CPU reference
// (src/cpu/k_pool.c) bit for bit, which cuDNN does not promise:
//   - max pooling takes the FIRST maximum of a window in row-major order,
//     a NaN being the maximum (the first NaN), and sends the window's
//     gradient there (cuDNN picks its own element among ties and has no
//     NaN rule);
//   - every sum (average pooling, both gradients) is taken in double in
//     the CPU's order and rounded once.
// So the parity suite asks for exact equality, in every dtype.
//
// The gradients gather instead of scattering: each dx element sums the dy
// of the windows holding it, in row-major window order - the order in
// which the CPU's scatter adds into that element - so there are no
// atomics and the result is deterministic. Max pooling's backward first
// finds each window's argmax again from x (nothing is kept from the
// forward pass, as on the CPU) into int32 scratch, one per window.
#include <climits>
#include <cmath>

#include "cuda/cuda_common.cuh"

extern "C" {
#include "core/conv_geom.h"
}

struct pool_geom {
    int64_t planes, h, w, oh, ow; // planes = N * C
    int kh, kw, sh, sw, ph, pw;
};

// The CPU kernels' checks: x is the forward's input (the output of
// AVG_POOL2D_GRAD), y the forward's output or dy.
static ct_status geom_of(const ct_kargs *k, const ct_tview &x, const ct_tview &y, pool_geom *g) {
    const char *op = ct_op_name(k->op);
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "no attributes");
    bool ok = ct_dtype_is_float(k->out.dtype);
    for (int i = 0; i < k->n_in; i++) ok = ok && k->in[i].dtype == k->out.dtype;
    if (!ok) return ct_cuda_arg_error(CT_ERR_DTYPE, op, "inputs and output must share one float dtype");
    const ct_window2d *win = &k->attr->win;
    ok = x.shape.ndim == 4 && y.shape.ndim == 4 && x.shape.dim[0] == y.shape.dim[0] &&
         x.shape.dim[1] == y.shape.dim[1];
    for (int i = 0; ok && i < 2; i++)
        ok = win->pad[i] >= 0 && 2 * win->pad[i] <= win->kernel[i] && win->dilation[i] == 1 &&
             y.shape.dim[2 + i] == ct_window_out(x.shape.dim[2 + i], win->kernel[i], win->stride[i], win->pad[i], 1);
    if (!ok) return ct_cuda_arg_error(CT_ERR_SHAPE, op, "x and y do not fit the window");
    *g = pool_geom{x.shape.dim[0] * x.shape.dim[1], x.shape.dim[2], x.shape.dim[3], y.shape.dim[2], y.shape.dim[3],
                   win->kernel[0], win->kernel[1], win->stride[0], win->stride[1], win->pad[0], win->pad[1]};
    if (g->h * g->w > INT_MAX)
        return ct_cuda_arg_error(CT_ERR_UNSUPPORTED, op, "a plane of %lld x %lld elements is more than 2^31 - 1",
                                 (long long)g->h, (long long)g->w);
    return CT_OK;
}

// The part of window (oh, ow) inside the input: rows [h0, h1), columns [w0, w1).
__device__ __forceinline__ void window(const pool_geom &g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                                       int64_t *w0, int64_t *w1) {
    int64_t hs = oh * g.sh - g.ph, ws = ow * g.sw - g.pw;
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = hs + g.kh < g.h ? hs + g.kh : g.h;
    *w1 = ws + g.kw < g.w ? ws + g.kw : g.w;
}

// The windows holding input row (or column) i: outputs [lo, hi).
__device__ __forceinline__ void holders(int64_t i, int k, int stride, int pad, int64_t outs, int64_t *lo,
                                        int64_t *hi) {
    int64_t first = i + pad - k + 1, last = i + pad;
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last / stride + 1;
    if (*hi > outs) *hi = outs;
}

// Plane-local index of the first maximum of window (oh, ow) of plane pl; a
// NaN wins (the first one). Comparing in float is comparing in double: the
// conversion is exact.
template <typename C>
__device__ int64_t window_argmax(const void *x, int dt, const pool_geom &g, int64_t pl, int64_t oh, int64_t ow) {
    int64_t h0, h1, w0, w1;
    window(g, oh, ow, &h0, &h1, &w0, &w1);
    int64_t base = pl * g.h * g.w, best = h0 * g.w + w0;
    C m = (C)-INFINITY;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            int64_t at = ih * g.w + iw;
            C v = ct_ld<C>(x, dt, base + at);
            if (v > m) {
                m = v;
                best = at;
            } else if (v != v) {
                return at;
            }
        }
    return best;
}

template <typename C>
__global__ void max_pool_kernel(const void *x, void *y, int dt, pool_geom g) {
    CT_GRID_STRIDE(i, g.planes * g.oh * g.ow) {
        int64_t ow = i % g.ow, oh = i / g.ow % g.oh, pl = i / (g.oh * g.ow);
        int64_t at = window_argmax<C>(x, dt, g, pl, oh, ow);
        ct_st<C>(y, dt, i, ct_ld<C>(x, dt, pl * g.h * g.w + at));
    }
}

template <typename C>
__global__ void argmax_kernel(const void *x, int dt, pool_geom g, int32_t *arg) {
    CT_GRID_STRIDE(i, g.planes * g.oh * g.ow) {
        int64_t ow = i % g.ow, oh = i / g.ow % g.oh, pl = i / (g.oh * g.ow);
        arg[i] = (int32_t)window_argmax<C>(x, dt, g, pl, oh, ow);
    }
}

// dx[pl, ih, iw] = sum of dy over the windows whose argmax it is; with a
// fused relu (ct_attrs.fused_relu: x is a relu's output), times
// relu'(x) = (x > 0 ? 1 : 0), as relu's UNARY_GRAD would have.
__global__ void max_pool_grad_kernel(const int32_t *arg, const void *dy, void *dx, int dt, pool_geom g,
                                     const void *relu_x, int xdt) {
    CT_GRID_STRIDE(i, g.planes * g.h * g.w) {
        int64_t iw = i % g.w, ih = i / g.w % g.h, pl = i / (g.h * g.w);
        int64_t hlo, hhi, wlo, whi;
        holders(ih, g.kh, g.sh, g.ph, g.oh, &hlo, &hhi);
        holders(iw, g.kw, g.sw, g.pw, g.ow, &wlo, &whi);
        int32_t self = (int32_t)(ih * g.w + iw);
        double acc = 0.0;
        for (int64_t oh = hlo; oh < hhi; oh++)
            for (int64_t ow = wlo; ow < whi; ow++) {
                int64_t o = (pl * g.oh + oh) * g.ow + ow;
                if (arg[o] == self) acc += ct_ld<double>(dy, dt, o);
            }
        if (relu_x) acc *= ct_ld<double>(relu_x, xdt, i) > 0.0 ? 1.0 : 0.0;
        ct_st<double>(dx, dt, i, acc);
    }
}

__global__ void avg_pool_kernel(const void *x, void *y, int dt, pool_geom g, double inv) {
    CT_GRID_STRIDE(i, g.planes * g.oh * g.ow) {
        int64_t ow = i % g.ow, oh = i / g.ow % g.oh, pl = i / (g.oh * g.ow);
        int64_t h0, h1, w0, w1;
        window(g, oh, ow, &h0, &h1, &w0, &w1);
        double acc = 0.0;
        for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) acc += ct_ld<double>(x, dt, (pl * g.h + ih) * g.w + iw);
        ct_st<double>(y, dt, i, acc * inv);
    }
}

__global__ void avg_pool_grad_kernel(const void *dy, void *dx, int dt, pool_geom g, double inv) {
    CT_GRID_STRIDE(i, g.planes * g.h * g.w) {
        int64_t iw = i % g.w, ih = i / g.w % g.h, pl = i / (g.h * g.w);
        int64_t hlo, hhi, wlo, whi;
        holders(ih, g.kh, g.sh, g.ph, g.oh, &hlo, &hhi);
        holders(iw, g.kw, g.sw, g.pw, g.ow, &wlo, &whi);
        double acc = 0.0;
        for (int64_t oh = hlo; oh < hhi; oh++)
            for (int64_t ow = wlo; ow < whi; ow++) acc += ct_ld<double>(dy, dt, (pl * g.oh + oh) * g.ow + ow);
        ct_st<double>(dx, dt, i, acc * inv);
    }
}

// ---------------------------------------------------------------- launchers

static ct_status k_max_pool2d(const ct_kargs *k) {
    pool_geom g;
    ct_status s = ct_cuda_check_args(k, false);
    if (s == CT_OK) s = geom_of(k, k->in[0], k->out, &g);
    if (s != CT_OK || k->out.numel == 0) return s;
    cudaStream_t st = ct_cuda_stream(k);
    unsigned b = ct_cuda_blocks(k->out.numel);
    if (ct_cuda_is_f64(k->out.dtype))
        max_pool_kernel<double><<<b, CT_CUDA_THREADS, 0, st>>>(k->in[0].data, k->out.data, k->out.dtype, g);
    else
        max_pool_kernel<float><<<b, CT_CUDA_THREADS, 0, st>>>(k->in[0].data, k->out.data, k->out.dtype, g);
    CT_CUDA_LAUNCHED("max_pool2d", "%lld outputs", (long long)k->out.numel);
    return CT_OK;
}

size_t ct_cuda_pool_scratch(const ct_kargs *k) {
    // MAX_POOL2D_GRAD: one argmax per window (dy's elements).
    if (k->op != CT_OP_MAX_POOL2D_GRAD || k->n_in != 2) return 0;
    return (size_t)k->in[1].numel * sizeof(int32_t);
}

// Inputs: x, dy.
static ct_status k_max_pool2d_grad(const ct_kargs *k) {
    pool_geom g;
    ct_status s = ct_cuda_check_args(k, false);
    if (s == CT_OK) s = geom_of(k, k->in[0], k->in[1], &g);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &dy = k->in[1], &dx = k->out;
    if (dx.numel != x.numel)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "max_pool2d_grad", "dx has %lld elements, x %lld", (long long)dx.numel,
                                 (long long)x.numel);
    if (dx.numel == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    if (dy.numel == 0) { // no window: nothing flows back (a relu's mask keeps the zeros)
        size_t bytes = (size_t)dx.numel * ct_dtype_size(dx.dtype);
        CT_CUDA_TRY(cudaMemsetAsync(dx.data, 0, bytes, st), "max_pool2d_grad: %zu bytes", bytes);
        return CT_OK;
    }
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, "max_pool2d_grad", "needs scratch, got none");
    int32_t *arg = (int32_t *)k->scratch;
    unsigned b = ct_cuda_blocks(dy.numel);
    if (ct_cuda_is_f64(x.dtype))
        argmax_kernel<double><<<b, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, g, arg);
    else
        argmax_kernel<float><<<b, CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, g, arg);
    CT_CUDA_LAUNCHED("max_pool2d_grad (argmax)", "%lld windows", (long long)dy.numel);
    const void *relu_x = k->attr->fused_relu ? x.data : nullptr;
    max_pool_grad_kernel<<<ct_cuda_blocks(dx.numel), CT_CUDA_THREADS, 0, st>>>(arg, dy.data, dx.data, dx.dtype, g,
                                                                            relu_x, x.dtype);
    CT_CUDA_LAUNCHED("max_pool2d_grad", "%lld elements of dx", (long long)dx.numel);
    return CT_OK;
}

static double inv_area(const pool_geom &g) { return 1.0 / ((double)g.kh * g.kw); }

static ct_status k_avg_pool2d(const ct_kargs *k) {
    pool_geom g;
    ct_status s = ct_cuda_check_args(k, false);
    if (s == CT_OK) s = geom_of(k, k->in[0], k->out, &g);
    if (s != CT_OK || k->out.numel == 0) return s;
    avg_pool_kernel<<<ct_cuda_blocks(k->out.numel), CT_CUDA_THREADS, 0, ct_cuda_stream(k)>>>(
        k->in[0].data, k->out.data, k->out.dtype, g, inv_area(g));
    CT_CUDA_LAUNCHED("avg_pool2d", "%lld outputs", (long long)k->out.numel);
    return CT_OK;
}

// Input: dy; the output dx has x's shape.
static ct_status k_avg_pool2d_grad(const ct_kargs *k) {
    pool_geom g;
    ct_status s = ct_cuda_check_args(k, false);
    if (s == CT_OK) s = geom_of(k, k->out, k->in[0], &g);
    if (s != CT_OK || k->out.numel == 0) return s;
    avg_pool_grad_kernel<<<ct_cuda_blocks(k->out.numel), CT_CUDA_THREADS, 0, ct_cuda_stream(k)>>>(
        k->in[0].data, k->out.data, k->out.dtype, g, inv_area(g));
    CT_CUDA_LAUNCHED("avg_pool2d_grad", "%lld elements of dx", (long long)k->out.numel);
    return CT_OK;
}

void ct_cuda_register_pool(ct_kernel_fn *t) {
    t[CT_OP_MAX_POOL2D] = k_max_pool2d;
    t[CT_OP_MAX_POOL2D_GRAD] = k_max_pool2d_grad;
    t[CT_OP_AVG_POOL2D] = k_avg_pool2d;
    t[CT_OP_AVG_POOL2D_GRAD] = k_avg_pool2d_grad;
}
