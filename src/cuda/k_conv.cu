// CUDA convolution: forward, gradient of the input (cuDNN's backward data),
// gradient of the weight (backward filter) through cuDNN, and the gradient
// of the bias and the bias addition as small kernels of our own.
//
// Plans. Everything cuDNN needs for one convolution - the tensor, filter
// and convolution descriptors, the algorithm and its workspace size - is a
// plan, made once per (direction, dtype, shapes, window) and kept for the
// life of the process in a small list. The algorithm is chosen when the
// program is compiled: the backend's scratch_bytes hook makes the plan and
// answers with its workspace size, so the program's one scratch area (sized
// for its hungriest kernel) is the workspace and a step never allocates.
// A kernel then only finds its plan again. The choice takes cuDNN's
// heuristic ranking (cudnnGet*Algorithm_v7: no trial runs, so compiling
// touches no data) and keeps the first algorithm that is
//   - deterministic (cuDNN's own flag; the project promises run-to-run
//     identical results, which rules out the atomics-based backward
//     algorithms),
//   - within CONV_WS_LIMIT bytes of workspace,
//   - accepted with the math mode the dtype asks for (below),
// falling back to the implicit-GEMM algorithms, which need no workspace.
// A plan first made by a kernel call (a caller that never asked
// scratch_bytes) is chosen with no workspace at all, since nothing sized
// the scratch for it.
//
// Dtypes. F32 runs in FP32 with CUDNN_FMA_MATH: cuDNN's default would
// allow TF32 tensor cores on Ampere and later, which the F32 contract
// (the CPU's results within 1e-5) does not allow. F16 and BF16 tensors
// compute in FP32 (cuDNN's "pseudo half" configurations) with tensor cores;
// F64 computes in double. The bias is added by our kernel in the compute
// type after the convolution, and its gradient sums in double, one block
// per channel in a fixed order (deterministic, and the CPU's precision).
//
// Mixed precision. Under an FP16/BF16 policy the forward takes F16/BF16 x
// and weight and gives an F32 output, plus an F32 bias (amp.h); the three
// gradient ops keep one dtype (half for the input and weight gradients,
// F32 for the bias's), so only the forward is mixed. The legacy API has no
// half-in, float-out configuration, so the forward runs as the half
// convolution ("pseudo half": FP32 accumulation, the result rounded once
// to the half type) into a half buffer carved from the program's scratch
// after the workspace (scratch_bytes asks for both), and one kernel widens
// it to F32 and adds the F32 bias in FP32. This was preferred to cuDNN's
// graph API, whose runtime-fusion engines can write an F32 output
// directly, because it keeps one code path, one plan cache and cuDNN's
// ranked legacy algorithms for every dtype, and because the result is
// what PyTorch's autocast gives (its convolution outputs F16/BF16). The
// price is one more rounding than the CPU's (which rounds the FP32 sum
// once into F32): the result differs from the CPU's by up to one half
// ulp of the pre-bias sum (2^-11 relative in F16, 2^-8 in BF16), and an
// F16 sum beyond 65504 becomes inf where the CPU stays finite.
//
// Plans and the cuDNN handle live as long as the process and are not
// destroyed at exit: cuDNN 9 loads its sub-libraries on first use, after
// any exit handler of ours would be registered, so their own exit-time
// teardown would run before it, and destroying descriptors then could call
// into torn-down state. The process's exit reclaims them.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>

#include "core/ew_math.h"
#include "cuda/cuda_common.cuh"

extern "C" {
#include "core/conv_geom.h"
}

// The most workspace one convolution may take: cuDNN's fastest algorithms
// for large layers want tens of MiB; beyond this the next one is chosen.
#define CONV_WS_LIMIT ((size_t)256 << 20)

enum conv_dir { DIR_FWD = 0, DIR_BWD_DATA, DIR_BWD_FILTER };

struct conv_key {
    int dir, dtype;
    int x[4], w[4], y[4];
    int stride[2], pad[2], dil[2], groups;
};

struct conv_plan {
    conv_key key;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int algo;
    size_t ws;
    conv_plan *next;
};

static std::mutex g_lock;
static cudnnHandle_t g_dnn;
static cudaStream_t g_dnn_stream;
static conv_plan *g_plans;

// The process's cuDNN handle, on the backend's stream. Called with g_lock held.
static ct_status dnn_handle(cudaStream_t st, cudnnHandle_t *out) {
    if (!g_dnn) {
        // Headers and library must agree on the major version: the legacy
        // API's structures changed between majors.
        size_t v = cudnnGetVersion();
        if (v / (CUDNN_MAJOR >= 9 ? 10000 : 1000) != CUDNN_MAJOR)
            return ct_error(CT_ERR_DEVICE, "cuDNN: the library loaded is version %zu, but ctrain was built with the "
                                           "headers of cuDNN %d.%d; install the matching libcudnn",
                            v, CUDNN_MAJOR, CUDNN_MINOR);
        CT_CUDNN_TRY(cudnnCreate(&g_dnn), "creating the cuDNN handle (cuDNN %zu)", v);
        g_dnn_stream = nullptr;
    }
    if (g_dnn_stream != st || !g_dnn_stream) {
        CT_CUDNN_TRY(cudnnSetStream(g_dnn, st), "cuDNN on the backend's stream");
        g_dnn_stream = st;
    }
    *out = g_dnn;
    return CT_OK;
}

// ---------------------------------------------------------------- shapes

struct conv_views {
    const ct_tview *x, *w, *y; // one of them is the output
    int dir;
};

static conv_views views_of(const ct_kargs *k) {
    switch (k->op) {
    case CT_OP_CONV2D: return {&k->in[0], &k->in[1], &k->out, DIR_FWD};
    case CT_OP_CONV2D_GRAD_INPUT: return {&k->out, &k->in[1], &k->in[0], DIR_BWD_DATA};
    default: return {&k->in[0], &k->out, &k->in[1], DIR_BWD_FILTER};
    }
}

static bool is_half(ct_dtype dt) { return dt == CT_F16 || dt == CT_BF16; }

// The precision policy's forward: F16/BF16 x and weight, F32 output.
static bool is_mixed(const ct_kargs *k) {
    return k->op == CT_OP_CONV2D && k->out.dtype == CT_F32 && k->n_in >= 2 && is_half(k->in[0].dtype);
}

// The CPU kernels' checks (src/cpu/k_conv.c), and cuDNN's int limits.
static ct_status check(const ct_kargs *k, conv_views *v) {
    const char *op = ct_op_name(k->op);
    ct_status s = ct_cuda_check_args(k, true); // the gradients' fixed arity
    if (s != CT_OK) return s;
    int want = 2 + (k->attr->has_bias ? 1 : 0); // CONV2D's, which the bias decides
    if (k->op == CT_OP_CONV2D && k->n_in != want)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "expected %d inputs, got %d", want, k->n_in);
    // The CPU's rule: one float dtype, or the mixed forward (x and weight
    // in F16/BF16, output and bias in F32).
    ct_dtype dt = k->out.dtype, conv_dt = is_mixed(k) ? k->in[0].dtype : dt;
    bool ok = ct_dtype_is_float(dt);
    for (int i = 0; i < k->n_in; i++) ok = ok && k->in[i].dtype == (i < 2 ? conv_dt : dt);
    if (!ok)
        return ct_cuda_arg_error(CT_ERR_DTYPE, op,
                                 "inputs and output must share one float dtype, or be F16/BF16 x and weight with an "
                                 "F32 output and bias (output %s, x %s)",
                                 ct_dtype_name(dt), ct_dtype_name(k->n_in ? k->in[0].dtype : dt));
    *v = views_of(k);
    const ct_window2d *win = &k->attr->win;
    const ct_shape &xs = v->x->shape, &ws = v->w->shape, &ys = v->y->shape;
    ok = xs.ndim == 4 && ws.ndim == 4 && ys.ndim == 4 && win->groups >= 1;
    if (ok) {
        int64_t c = xs.dim[1], o = ws.dim[0];
        ok = c % win->groups == 0 && o % win->groups == 0 && ws.dim[1] * win->groups == c &&
             ws.dim[2] == win->kernel[0] && ws.dim[3] == win->kernel[1] && ys.dim[0] == xs.dim[0] && ys.dim[1] == o &&
             ys.dim[2] == ct_window_out(xs.dim[2], win->kernel[0], win->stride[0], win->pad[0], win->dilation[0]) &&
             ys.dim[3] == ct_window_out(xs.dim[3], win->kernel[1], win->stride[1], win->pad[1], win->dilation[1]);
    }
    if (ok && k->op == CT_OP_CONV2D && k->attr->has_bias)
        ok = k->in[2].shape.ndim == 1 && k->in[2].shape.dim[0] == ws.dim[0];
    if (!ok)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "x, weight and y do not fit the window (groups %d)", win->groups);
    for (const ct_tview *t : {v->x, v->w, v->y})
        if (t->numel > INT_MAX)
            return ct_cuda_arg_error(CT_ERR_UNSUPPORTED, op,
                                     "a tensor of %lld elements is more than cuDNN's 2^31 - 1 (split the batch)",
                                     (long long)t->numel);
    return CT_OK;
}

static conv_key key_of(const ct_kargs *k, const conv_views &v) {
    conv_key key;
    memset(&key, 0, sizeof key); // padding too: keys are compared with memcmp
    key.dir = v.dir;
    key.dtype = v.w->dtype; // the convolution's dtype: x's and w's, the output's too unless mixed
    for (int d = 0; d < 4; d++) {
        key.x[d] = (int)v.x->shape.dim[d];
        key.w[d] = (int)v.w->shape.dim[d];
        key.y[d] = (int)v.y->shape.dim[d];
    }
    const ct_window2d *win = &k->attr->win;
    for (int i = 0; i < 2; i++) {
        key.stride[i] = win->stride[i];
        key.pad[i] = win->pad[i];
        key.dil[i] = win->dilation[i];
    }
    key.groups = win->groups;
    return key;
}

static cudnnDataType_t dnn_type(int dt) {
    switch (dt) {
    case CT_F64: return CUDNN_DATA_DOUBLE;
    case CT_F16: return CUDNN_DATA_HALF;
    case CT_BF16: return CUDNN_DATA_BFLOAT16;
    default: return CUDNN_DATA_FLOAT;
    }
}

// ---------------------------------------------------------------- choosing

// One candidate of cuDNN's ranking, whichever direction it came from.
struct candidate {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
};

#define MAX_ALGOS 16

static ct_status rank(cudnnHandle_t h, const conv_plan *p, candidate *out, int *n) {
    int got = 0;
    *n = 0;
    switch (p->key.dir) {
    case DIR_FWD: {
        cudnnConvolutionFwdAlgoPerf_t r[MAX_ALGOS];
        CT_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd, p->yd, MAX_ALGOS, &got, r),
                     "ranking forward algorithms");
        for (int i = 0; i < got; i++) out[i] = {(int)r[i].algo, r[i].status, r[i].determinism, r[i].mathType};
        break;
    }
    case DIR_BWD_DATA: {
        cudnnConvolutionBwdDataAlgoPerf_t r[MAX_ALGOS];
        CT_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd, p->xd, MAX_ALGOS, &got, r),
                     "ranking backward-data algorithms");
        for (int i = 0; i < got; i++) out[i] = {(int)r[i].algo, r[i].status, r[i].determinism, r[i].mathType};
        break;
    }
    default: {
        cudnnConvolutionBwdFilterAlgoPerf_t r[MAX_ALGOS];
        CT_CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->xd, p->yd, p->cd, p->wd, MAX_ALGOS, &got, r),
                     "ranking backward-filter algorithms");
        for (int i = 0; i < got; i++) out[i] = {(int)r[i].algo, r[i].status, r[i].determinism, r[i].mathType};
        break;
    }
    }
    *n = got < MAX_ALGOS ? got : MAX_ALGOS;
    return CT_OK;
}

// The workspace algo needs with the descriptor's current math type; false
// when cuDNN refuses the combination.
static bool ws_of(cudnnHandle_t h, const conv_plan *p, int algo, size_t *ws) {
    cudnnStatus_t s;
    switch (p->key.dir) {
    case DIR_FWD:
        s = cudnnGetConvolutionForwardWorkspaceSize(h, p->xd, p->wd, p->cd, p->yd, (cudnnConvolutionFwdAlgo_t)algo, ws);
        break;
    case DIR_BWD_DATA:
        s = cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->wd, p->yd, p->cd, p->xd,
                                                         (cudnnConvolutionBwdDataAlgo_t)algo, ws);
        break;
    default:
        s = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->xd, p->yd, p->cd, p->wd,
                                                           (cudnnConvolutionBwdFilterAlgo_t)algo, ws);
        break;
    }
    return s == CUDNN_STATUS_SUCCESS;
}

// F32 and F64 must not meet tensor cores (TF32); half types may.
static cudnnMathType_t math_for(int dt, cudnnMathType_t suggested) {
    return dt == CT_F32 || dt == CT_F64 ? CUDNN_FMA_MATH : suggested;
}

static ct_status choose(cudnnHandle_t h, conv_plan *p, size_t limit) {
    const char *dirs[] = {"forward", "backward data", "backward filter"};
    candidate c[MAX_ALGOS];
    int n = 0;
    if (rank(h, p, c, &n) != CT_OK) n = 0; // no ranking: the fallback below may still do
    for (int i = 0; i < n; i++) {
        if (c[i].status != CUDNN_STATUS_SUCCESS || c[i].determinism != CUDNN_DETERMINISTIC) continue;
        CT_CUDNN_TRY(cudnnSetConvolutionMathType(p->cd, math_for(p->key.dtype, c[i].math)), "math type");
        size_t ws = 0;
        if (!ws_of(h, p, c[i].algo, &ws) || ws > limit) continue;
        p->algo = c[i].algo;
        p->ws = ws;
        return CT_OK;
    }
    // Implicit GEMM: deterministic, supported for every configuration, and
    // without workspace (forward) or with very little (backward).
    int fallback = p->key.dir == DIR_FWD ? (int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
                   : p->key.dir == DIR_BWD_DATA ? (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
                                                : (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    CT_CUDNN_TRY(cudnnSetConvolutionMathType(p->cd, math_for(p->key.dtype, CUDNN_DEFAULT_MATH)), "math type");
    size_t ws = 0;
    if (!ws_of(h, p, fallback, &ws) || ws > limit)
        return ct_error(CT_ERR_UNSUPPORTED,
                        "cuda conv2d: cuDNN offers no deterministic %s algorithm within %zu bytes of workspace%s for "
                        "x [%d, %d, %d, %d], weight [%d, %d, %d, %d], groups %d (%s)",
                        dirs[p->key.dir], limit,
                        limit ? "" : " (none was set aside for it when the program was compiled)",
                        p->key.x[0], p->key.x[1], p->key.x[2], p->key.x[3], p->key.w[0],
                        p->key.w[1], p->key.w[2], p->key.w[3], p->key.groups, ct_dtype_name((ct_dtype)p->key.dtype));
    p->algo = fallback;
    p->ws = ws;
    return CT_OK;
}

static ct_status describe(conv_plan *p) {
    const conv_key &k = p->key;
    cudnnDataType_t t = dnn_type(k.dtype), compute = k.dtype == CT_F64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    CT_CUDNN_TRY(cudnnCreateTensorDescriptor(&p->xd), "x descriptor");
    CT_CUDNN_TRY(cudnnCreateTensorDescriptor(&p->yd), "y descriptor");
    CT_CUDNN_TRY(cudnnCreateFilterDescriptor(&p->wd), "weight descriptor");
    CT_CUDNN_TRY(cudnnCreateConvolutionDescriptor(&p->cd), "convolution descriptor");
    CT_CUDNN_TRY(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, t, k.x[0], k.x[1], k.x[2], k.x[3]),
                 "x [%d, %d, %d, %d]", k.x[0], k.x[1], k.x[2], k.x[3]);
    CT_CUDNN_TRY(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, t, k.y[0], k.y[1], k.y[2], k.y[3]),
                 "y [%d, %d, %d, %d]", k.y[0], k.y[1], k.y[2], k.y[3]);
    CT_CUDNN_TRY(cudnnSetFilter4dDescriptor(p->wd, t, CUDNN_TENSOR_NCHW, k.w[0], k.w[1], k.w[2], k.w[3]),
                 "weight [%d, %d, %d, %d]", k.w[0], k.w[1], k.w[2], k.w[3]);
    CT_CUDNN_TRY(cudnnSetConvolution2dDescriptor(p->cd, k.pad[0], k.pad[1], k.stride[0], k.stride[1], k.dil[0],
                                                 k.dil[1], CUDNN_CROSS_CORRELATION, compute),
                 "padding %dx%d, stride %dx%d, dilation %dx%d", k.pad[0], k.pad[1], k.stride[0], k.stride[1], k.dil[0],
                 k.dil[1]);
    CT_CUDNN_TRY(cudnnSetConvolutionGroupCount(p->cd, k.groups), "groups %d", k.groups);
    // Before the ranking, so that cuDNN ranks what may run (no TF32 for F32).
    CT_CUDNN_TRY(cudnnSetConvolutionMathType(p->cd, math_for(k.dtype, CUDNN_DEFAULT_MATH)), "math type");
    // cuDNN's own output size must be ours (PyTorch's rule, rounded down).
    int n = 0, c = 0, h = 0, w = 0;
    CT_CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &n, &c, &h, &w), "output size");
    if (n != k.y[0] || c != k.y[1] || h != k.y[2] || w != k.y[3])
        return ct_error(CT_ERR_INTERNAL, "cuda conv2d: cuDNN's output [%d, %d, %d, %d] is not y [%d, %d, %d, %d]", n,
                        c, h, w, k.y[0], k.y[1], k.y[2], k.y[3]);
    return CT_OK;
}

// The plan for these views, made (and its algorithm chosen under `limit`
// bytes of workspace) if there is none yet.
static ct_status plan_for(const ct_kargs *k, const conv_views &v, size_t limit, conv_plan **out) {
    conv_key key = key_of(k, v);
    std::lock_guard<std::mutex> guard(g_lock);
    cudnnHandle_t h = nullptr;
    ct_status s = dnn_handle(ct_cuda_stream(k), &h);
    if (s != CT_OK) return s;
    for (conv_plan *p = g_plans; p; p = p->next)
        if (memcmp(&p->key, &key, sizeof key) == 0) {
            *out = p;
            return CT_OK;
        }
    conv_plan *p = (conv_plan *)calloc(1, sizeof *p);
    if (!p) return ct_error(CT_ERR_OOM, "cuda conv2d: out of host memory for a plan");
    p->key = key;
    if ((s = describe(p)) == CT_OK) s = choose(h, p, limit);
    if (s != CT_OK) {
        // Whatever was created goes; destroying a NULL descriptor is harmless.
        cudnnDestroyTensorDescriptor(p->xd);
        cudnnDestroyTensorDescriptor(p->yd);
        cudnnDestroyFilterDescriptor(p->wd);
        cudnnDestroyConvolutionDescriptor(p->cd);
        free(p);
        return s;
    }
    p->next = g_plans;
    g_plans = p;
    *out = p;
    return CT_OK;
}

// An empty x, weight or y leaves nothing for cuDNN (it rejects zero sizes):
// the output is zero, plus the bias in the forward direction.
static bool empty(const conv_views &v) { return v.x->numel == 0 || v.w->numel == 0 || v.y->numel == 0; }

// Scratch of a convolution: cuDNN's workspace first, then, for a mixed
// forward, the half-precision result at the next 256-byte boundary (the
// alignment cudaMalloc gives the scratch itself).
static size_t half_y_offset(const conv_plan *p) { return (p->ws + 255) / 256 * 256; }
static size_t half_y_bytes(const ct_kargs *k) {
    return is_mixed(k) ? (size_t)k->out.numel * ct_dtype_size(k->in[0].dtype) : 0;
}
static size_t scratch_need(const ct_kargs *k, const conv_plan *p) {
    size_t hy = half_y_bytes(k);
    return hy ? half_y_offset(p) + hy : p->ws;
}

size_t ct_cuda_conv_scratch(const ct_kargs *k) {
    if (k->op != CT_OP_CONV2D && k->op != CT_OP_CONV2D_GRAD_INPUT && k->op != CT_OP_CONV2D_GRAD_WEIGHT) return 0;
    conv_views v;
    conv_plan *p = nullptr;
    // An error here is reported again by the kernel when it runs.
    if (check(k, &v) != CT_OK || empty(v) || plan_for(k, v, CONV_WS_LIMIT, &p) != CT_OK) return 0;
    return scratch_need(k, p);
}

// ---------------------------------------------------------------- bias

// y[n, o, :, :] = src[n, o, :, :] + b[o] (b NULL: no bias), in the compute
// type; the CPU adds the bias to its FP32 (F64) products the same way. src
// is y itself (the bias added in place), or a mixed forward's half result,
// widened to y's F32 (exactly) before the F32 bias is added.
// relu: a relu fused into the convolution (ct_attrs.fused_relu), applied
// before the store (it commutes with the rounding to y's dtype).
template <typename C>
__global__ void bias_add_kernel(const void *src, int sdt, void *y, int ydt, const void *b, int bdt, int64_t n,
                                int64_t o, int64_t hw, bool relu) {
    CT_GRID_STRIDE(i, n) {
        C v = ct_ld<C>(src, sdt, i);
        if (b) v += ct_ld<C>(b, bdt, i / hw % o);
        ct_st<C>(y, ydt, i, relu ? ct_ew_relu<C>(v) : v);
    }
}

// db[o] = sum over n, h, w of dy: one block per channel, in double.
__global__ void bias_grad_kernel(const void *dy, int dt, void *db, int64_t n, int64_t o, int64_t hw) {
    __shared__ double sh[32];
    for (int64_t c = blockIdx.x; c < o; c += gridDim.x) {
        double acc = 0.0;
        for (int64_t t = threadIdx.x; t < n * hw; t += blockDim.x) {
            int64_t s = t / hw, e = t % hw;
            acc += ct_ld<double>(dy, dt, (s * o + c) * hw + e);
        }
        acc = ct_block_sum(acc, sh);
        if (threadIdx.x == 0) ct_st<double>(db, dt, c, acc);
    }
}

// The forward's last pass: y = src + bias, then the fused relu if any, src
// being y (in place) or the half result of a mixed forward. Nothing to do
// for y itself without a bias or a relu.
static ct_status finish_forward(const ct_kargs *k, const void *src, ct_dtype sdt, cudaStream_t st) {
    const ct_tview &y = k->out;
    const void *b = k->attr->has_bias ? k->in[2].data : nullptr;
    ct_dtype bdt = k->attr->has_bias ? k->in[2].dtype : y.dtype;
    int64_t o = y.shape.dim[1], hw = y.shape.dim[2] * y.shape.dim[3];
    bool relu = k->attr->fused_relu;
    if (y.numel == 0 || (!b && !relu && src == y.data)) return CT_OK;
    unsigned g = ct_cuda_blocks(y.numel);
    if (ct_cuda_is_f64(y.dtype))
        bias_add_kernel<double><<<g, CT_CUDA_THREADS, 0, st>>>(src, sdt, y.data, y.dtype, b, bdt, y.numel, o, hw,
                                                               relu);
    else
        bias_add_kernel<float><<<g, CT_CUDA_THREADS, 0, st>>>(src, sdt, y.data, y.dtype, b, bdt, y.numel, o, hw,
                                                              relu);
    CT_CUDA_LAUNCHED("conv2d (bias)", "y of %lld elements, %lld channels, %s into %s", (long long)y.numel,
                     (long long)o, ct_dtype_name(sdt), ct_dtype_name(y.dtype));
    return CT_OK;
}

static ct_status k_conv2d_grad_bias(const ct_kargs *k) {
    const char *op = "conv2d_grad_bias";
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &dy = k->in[0], &db = k->out;
    if (!ct_dtype_is_float(db.dtype) || dy.dtype != db.dtype)
        return ct_cuda_arg_error(CT_ERR_DTYPE, op, "dy %s and output %s must share one float dtype",
                                 ct_dtype_name(dy.dtype), ct_dtype_name(db.dtype));
    if (dy.shape.ndim != 4 || db.shape.ndim != 1 || db.shape.dim[0] != dy.shape.dim[1])
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "dy must be [N, O, OH, OW] and the output [O]");
    int64_t n = dy.shape.dim[0], o = dy.shape.dim[1], hw = dy.shape.dim[2] * dy.shape.dim[3];
    if (o == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    bias_grad_kernel<<<ct_cuda_rows_grid(o), CT_CUDA_THREADS, 0, st>>>(dy.data, dy.dtype, db.data, n, o, hw);
    CT_CUDA_LAUNCHED("conv2d_grad_bias", "dy [%lld, %lld, %lld]", (long long)n, (long long)o, (long long)hw);
    return CT_OK;
}

// ---------------------------------------------------------------- convolution

static ct_status k_conv(const ct_kargs *k) {
    const char *op = ct_op_name(k->op);
    conv_views v;
    ct_status s = check(k, &v);
    if (s != CT_OK) return s;
    cudaStream_t st = ct_cuda_stream(k);
    const ct_tview &out = k->out;
    if (empty(v)) {
        size_t bytes = (size_t)out.numel * ct_dtype_size(out.dtype);
        if (bytes) CT_CUDA_TRY(cudaMemsetAsync(out.data, 0, bytes, st), "%s: %zu bytes", op, bytes);
        return k->op == CT_OP_CONV2D ? finish_forward(k, out.data, out.dtype, st) : CT_OK;
    }
    conv_plan *p = nullptr;
    if ((s = plan_for(k, v, 0, &p)) != CT_OK) return s;
    size_t half_y = half_y_bytes(k);
    if (scratch_need(k, p) > 0 && !k->scratch)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op,
                                 "needs %zu bytes of scratch (%zu of workspace, %zu for the half result), got none",
                                 scratch_need(k, p), p->ws, half_y);
    // cuDNN's y: the output, or for a mixed forward the half buffer after
    // the workspace, widened into the output by finish_forward.
    void *y_dnn = half_y ? (char *)k->scratch + half_y_offset(p) : out.data;
    ct_dtype y_dnn_dt = half_y ? (ct_dtype)p->key.dtype : out.dtype;
    // Scaling factors are double for double data, float otherwise (cuDNN's rule).
    double one_d = 1.0, zero_d = 0.0;
    float one_f = 1.0f, zero_f = 0.0f;
    bool f64 = p->key.dtype == CT_F64;
    const void *one = f64 ? (const void *)&one_d : (const void *)&one_f;
    const void *zero = f64 ? (const void *)&zero_d : (const void *)&zero_f;
    cudnnHandle_t h = g_dnn;
    const conv_key &kk = p->key;
    switch (v.dir) {
    case DIR_FWD:
        CT_CUDNN_TRY(cudnnConvolutionForward(h, one, p->xd, v.x->data, p->wd, v.w->data, p->cd,
                                             (cudnnConvolutionFwdAlgo_t)p->algo, k->scratch, p->ws, zero, p->yd,
                                             y_dnn),
                     "x [%d, %d, %d, %d], weight [%d, %d, %d, %d] (%s), algorithm %d, %zu bytes of workspace",
                     kk.x[0], kk.x[1], kk.x[2], kk.x[3], kk.w[0], kk.w[1], kk.w[2], kk.w[3],
                     ct_dtype_name((ct_dtype)kk.dtype), p->algo, p->ws);
        return finish_forward(k, y_dnn, y_dnn_dt, st);
    case DIR_BWD_DATA:
        CT_CUDNN_TRY(cudnnConvolutionBackwardData(h, one, p->wd, v.w->data, p->yd, v.y->data, p->cd,
                                                  (cudnnConvolutionBwdDataAlgo_t)p->algo, k->scratch, p->ws, zero,
                                                  p->xd, out.data),
                     "dy [%d, %d, %d, %d], weight [%d, %d, %d, %d], algorithm %d, %zu bytes of workspace", kk.y[0],
                     kk.y[1], kk.y[2], kk.y[3], kk.w[0], kk.w[1], kk.w[2], kk.w[3], p->algo, p->ws);
        return CT_OK;
    default:
        CT_CUDNN_TRY(cudnnConvolutionBackwardFilter(h, one, p->xd, v.x->data, p->yd, v.y->data, p->cd,
                                                    (cudnnConvolutionBwdFilterAlgo_t)p->algo, k->scratch, p->ws, zero,
                                                    p->wd, out.data),
                     "x [%d, %d, %d, %d], dy [%d, %d, %d, %d], algorithm %d, %zu bytes of workspace", kk.x[0], kk.x[1],
                     kk.x[2], kk.x[3], kk.y[0], kk.y[1], kk.y[2], kk.y[3], p->algo, p->ws);
        return CT_OK;
    }
}

void ct_cuda_register_conv(ct_kernel_fn *t) {
    t[CT_OP_CONV2D] = k_conv;
    t[CT_OP_CONV2D_GRAD_INPUT] = k_conv;
    t[CT_OP_CONV2D_GRAD_WEIGHT] = k_conv;
    t[CT_OP_CONV2D_GRAD_BIAS] = k_conv2d_grad_bias;
}
