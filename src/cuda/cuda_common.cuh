// Internal to src/cuda: what every CUDA kernel file shares.
//
// - The per-process context: the device in use, the one stream every
//   kernel, copy and cuBLAS call is queued on (so their order is the
//   program's order and a whole step can be captured as a CUDA Graph), the
//   cuBLAS handle, and the mapped host word through which kernels report
//   errors found in the data (an index out of range).
// - Checked calls: every CUDA, cuBLAS and cuDNN call goes through
//   CT_CUDA_TRY / CT_CUBLAS_TRY / CT_CUDNN_TRY, which turn a failure into a
//   ct_status whose message names the call, the library's error text and
//   the sizes involved.
// - Element access: kernels load any storage dtype into their compute type
//   (float, or double for F64) and store back with the storage type's
//   rounding, exactly as the CPU reference does (cpu/cpu_util.h), so one
//   kernel serves F32, F64, F16 and BF16 and mixed-dtype inputs.
// - Shapes: the [outer, len, inner] split around an axis and the broadcast
//   strides used by the elementwise kernels.
#ifndef CT_CUDA_COMMON_CUH
#define CT_CUDA_COMMON_CUH

#include <cstddef>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "core/backend.h"
#include "core/error.h"
#include "ctrain/ops.h"
}

// ---------------------------------------------------------------- context

// An error a kernel found in the data. Kernels fill it (first writer wins)
// and carry on without touching memory out of range; the host reports it at
// the next synchronisation (a download or ct_program_read), because kernels
// run asynchronously and ct_program_run has already returned.
struct ct_cuda_data_error {
    int code;          // 0: none; otherwise a ct_cuda_err_kind
    int pad;
    long long pos;     // position of the offending element
    long long value;   // its value
    long long bound;   // the valid range is [0, bound)
};
enum ct_cuda_err_kind {
    CT_CUDA_ERR_NONE = 0,
    CT_CUDA_ERR_EMBED_INDEX,
    CT_CUDA_ERR_LABEL,
    CT_CUDA_ERR_LOSS_SCALE, // amp_unscale met a scale <= 0 or inf (value: the float's bits)
    CT_CUDA_ERR_AMP_STEP    // a gated optimizer step saw t - skipped < 1 (value: t, bound: skipped)
};

struct ct_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;                   // cuBLAS workspace: fixed, so graph capture needs no allocation
    size_t blas_ws_bytes;
    ct_cuda_data_error *err_host;    // mapped pinned memory, read by the host
    ct_cuda_data_error *err_dev;     // the same memory, as the device sees it
    double *red;                     // small device buffer for sumsq partials and results
    int max_pitch;                   // cudaDevAttrMaxPitch: the widest pitch cudaMemcpy2DAsync takes
    size_t red_bytes;
};

// The context of the device ct_cuda_backend() selected; NULL before that.
ct_cuda_ctx *ct_cuda_ctx_get(void);
// Creates the context for `device` if needed (ct_cuda_backend calls it).
ct_status ct_cuda_ctx_init(int device);
// Reports (and clears) an error a kernel left in the data-error word.
ct_status ct_cuda_check_data_error(void);

// Records a data error (the first one wins) for the host to report.
static __device__ __forceinline__ void ct_cuda_report(ct_cuda_data_error *err, int code, long long pos,
                                                      long long value, long long bound) {
    if (err && atomicCAS(&err->code, 0, code) == 0) {
        err->pos = pos;
        err->value = value;
        err->bound = bound;
        __threadfence_system();
    }
}

// ---------------------------------------------------------------- checked calls

// A failed CUDA call: "<call> failed on cuda:N: <text> (<name>): <details>";
// an out-of-memory error adds how much memory the device has free. The
// sticky "last error" is cleared so that it does not resurface in an
// unrelated check. Returns CT_ERR_OOM or CT_ERR_DEVICE.
ct_status ct_cuda_fail(cudaError_t e, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ct_status ct_cublas_fail(cublasStatus_t s, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// As ct_cuda_fail, with cudnnGetErrorString's text and the status number;
// CT_ERR_UNSUPPORTED for a configuration cuDNN does not support, CT_ERR_OOM
// for an allocation it could not make.
ct_status ct_cudnn_fail(cudnnStatus_t s, const char *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CT_CUDA_TRY(call, ...)                                                  \
    do {                                                                        \
        cudaError_t ct_e_ = (call);                                             \
        if (ct_e_ != cudaSuccess) return ct_cuda_fail(ct_e_, #call, __VA_ARGS__); \
    } while (0)

#define CT_CUBLAS_TRY(call, ...)                                                         \
    do {                                                                                 \
        cublasStatus_t ct_s_ = (call);                                                   \
        if (ct_s_ != CUBLAS_STATUS_SUCCESS) return ct_cublas_fail(ct_s_, #call, __VA_ARGS__); \
    } while (0)

#define CT_CUDNN_TRY(call, ...)                                                        \
    do {                                                                               \
        cudnnStatus_t ct_s_ = (call);                                                  \
        if (ct_s_ != CUDNN_STATUS_SUCCESS) return ct_cudnn_fail(ct_s_, #call, __VA_ARGS__); \
    } while (0)

// After a kernel launch: a bad configuration is reported here, naming the
// kernel; faults inside the kernel surface at the next synchronisation.
#define CT_CUDA_LAUNCHED(name, ...)                                                   \
    do {                                                                              \
        cudaError_t ct_e_ = cudaGetLastError();                                       \
        if (ct_e_ != cudaSuccess) return ct_cuda_fail(ct_e_, "launch of " name, __VA_ARGS__); \
    } while (0)

// "cuda <op>: " errors for bad arguments, mirroring the CPU kernels' checks.
ct_status ct_cuda_arg_error(ct_status s, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// The checks every kernel starts with: the number of inputs the op list
// gives the op (core/op_list.h; VAR ops check theirs against their
// attributes), and, with need_attr, that there are attributes.
ct_status ct_cuda_check_args(const ct_kargs *k, bool need_attr);

// ---------------------------------------------------------------- launching

#define CT_CUDA_THREADS 256

// Blocks for a grid-stride loop over n elements: enough to fill the GPU,
// capped so that the count never overflows; every kernel loops.
static inline unsigned ct_cuda_blocks(int64_t n, int threads = CT_CUDA_THREADS) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)b;
}

// Blocks for kernels where a block owns a row (channel, output...) and
// loops over rows by gridDim.x: at least one, whatever the count.
static inline unsigned ct_cuda_rows_grid(int64_t rows) {
    return (unsigned)(rows < 1 ? 1 : rows < 65535 * 8 ? rows : 65535 * 8);
}

// Threads of a block that owns a row of len elements: short rows (ten
// classes) do not leave most of a large block idle.
static inline int ct_cuda_row_threads(int64_t len) { return len <= 64 ? 32 : len <= 512 ? 128 : 256; }

// The stream a kernel is queued on: the context's one stream. ct_kargs
// names no stream (core/backend.h); kernels pass their arguments only so
// that every launch site reads alike.
static inline cudaStream_t ct_cuda_stream(const ct_kargs *) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    return c ? c->stream : nullptr;
}

#define CT_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---------------------------------------------------------------- elements

template <typename C>
__device__ __forceinline__ C ct_ld(const void *p, int dt, int64_t i) {
    switch (dt) {
    case CT_F32: return (C)((const float *)p)[i];
    case CT_F64: return (C)((const double *)p)[i];
    case CT_F16: return (C)__half2float(((const __half *)p)[i]);
    case CT_BF16: return (C)__bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case CT_I32: return (C)((const int32_t *)p)[i];
    case CT_U8: return (C)((const uint8_t *)p)[i];
    default: return (C)0;
    }
}

// Integer stores truncate toward zero and saturate, NaN becoming 0, as the
// CPU's ct_st does (a bare conversion of NaN or of a value out of range is
// not defined in C, and differs between CPU and GPU in practice).
template <typename C>
__device__ __forceinline__ void ct_st(void *p, int dt, int64_t i, C v) {
    switch (dt) {
    case CT_F32: ((float *)p)[i] = (float)v; break;
    case CT_F64: ((double *)p)[i] = (double)v; break;
    case CT_F16: ((__half *)p)[i] = __float2half_rn((float)v); break;
    case CT_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v); break;
    case CT_I32: {
        double d = (double)v;
        d = d != d ? 0.0 : d < -2147483648.0 ? -2147483648.0 : d > 2147483647.0 ? 2147483647.0 : d;
        ((int32_t *)p)[i] = (int32_t)d;
        break;
    }
    case CT_U8: {
        double d = (double)v;
        d = d != d || d < 0.0 ? 0.0 : d > 255.0 ? 255.0 : d;
        ((uint8_t *)p)[i] = (uint8_t)d;
        break;
    }
    default: break;
    }
}

// The compute type of a kernel whose output has dtype dt: double for F64,
// float otherwise. Launchers branch once on this.
static inline bool ct_cuda_is_f64(ct_dtype dt) { return dt == CT_F64; }

// NaN-propagating maximum: NaN wins, as the CPU's row_max makes it win.
template <typename C>
__device__ __forceinline__ C ct_nanmax(C a, C b) {
    return (a > b || a != a) ? a : b;
}

// ---------------------------------------------------------------- reductions

template <typename C>
__device__ __forceinline__ C ct_warp_sum(C v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename C>
__device__ __forceinline__ C ct_warp_max(C v) {
    for (int o = 16; o > 0; o >>= 1) v = ct_nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `sh` holds 32 values. The order of additions is
// fixed by the block size, so results are reproducible run to run.
template <typename C>
__device__ __forceinline__ C ct_block_sum(C v, C *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = ct_warp_sum(v);
    __syncthreads(); // sh may still be read from a previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (C)0;
    return ct_warp_sum(v);
}

template <typename C>
__device__ __forceinline__ C ct_block_max(C v, C *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = ct_warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (C)-INFINITY;
    return ct_warp_max(v);
}

// The maximum (NaN-propagating) of the len elements at off, and the sum of
// exp(x - max) over them, by the block: the shared first half of softmax
// and of the cross-entropy's log-sum-exp. Every thread gets both.
template <typename C>
__device__ __forceinline__ void ct_block_max_sumexp(const void *x, int xdt, int64_t off, int64_t len, C *sh, C *max,
                                                    C *sumexp) {
    C m = (C)-INFINITY;
    for (int64_t l = threadIdx.x; l < len; l += blockDim.x) m = ct_nanmax(m, ct_ld<C>(x, xdt, off + l));
    m = ct_block_max(m, sh);
    C sum = 0;
    for (int64_t l = threadIdx.x; l < len; l += blockDim.x) sum += exp(ct_ld<C>(x, xdt, off + l) - m);
    *max = m;
    *sumexp = ct_block_sum(sum, sh);
}

// ---------------------------------------------------------------- shapes

static inline int64_t ct_cuda_numel(const ct_shape &s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

static inline void ct_cuda_axis_split(const ct_shape &s, int axis, int64_t *outer, int64_t *len,
                                      int64_t *inner) {
    int64_t o = 1, in = 1;
    for (int d = 0; d < axis; d++) o *= s.dim[d];
    for (int d = axis + 1; d < s.ndim; d++) in *= s.dim[d];
    *outer = o;
    *len = s.dim[axis];
    *inner = in;
}

// An output shape and, per input, the stride of each output axis in that
// input (0 where the input is broadcast along it): the flat offset of
// output element i in input j is sum_d idx_d(i) * stride[j][d].
struct ct_bcast {
    int nd;
    int64_t dim[CT_MAX_DIMS];
    int64_t stride[2][CT_MAX_DIMS];
};

// True when `in` broadcasts to `out` (NumPy rules, in has no more axes).
bool ct_cuda_broadcasts_to(const ct_shape &in, const ct_shape &out);
// Fills b.stride[j] for input shape `in` against b's output shape.
void ct_cuda_bcast_strides(ct_bcast *b, int j, const ct_shape &in);
void ct_cuda_bcast_init(ct_bcast *b, const ct_shape &out);

__device__ __forceinline__ void ct_bcast_offsets(const ct_bcast &b, int64_t i, int64_t *o0, int64_t *o1) {
    int64_t a = 0, c = 0;
    for (int d = b.nd - 1; d >= 0; d--) {
        int64_t idx = i % b.dim[d];
        i /= b.dim[d];
        a += idx * b.stride[0][d];
        c += idx * b.stride[1][d];
    }
    *o0 = a;
    *o1 = c;
}

// ---------------------------------------------------------------- registration

void ct_cuda_register_elementwise(ct_kernel_fn *t);
void ct_cuda_register_reduce(ct_kernel_fn *t);
void ct_cuda_register_softmax(ct_kernel_fn *t);
void ct_cuda_register_loss(ct_kernel_fn *t);
void ct_cuda_register_norm(ct_kernel_fn *t);
void ct_cuda_register_shape(ct_kernel_fn *t);
void ct_cuda_register_matmul(ct_kernel_fn *t);
void ct_cuda_register_nn(ct_kernel_fn *t);
void ct_cuda_register_conv(ct_kernel_fn *t);
void ct_cuda_register_fakequant(ct_kernel_fn *t);
void ct_cuda_register_pool(ct_kernel_fn *t);
void ct_cuda_register_attention(ct_kernel_fn *t);
void ct_cuda_register_rnn(ct_kernel_fn *t);

// Scratch needs of the ops that have any (bytes; 0 otherwise).
size_t ct_cuda_loss_scratch(const ct_kargs *k);
size_t ct_cuda_norm_scratch(const ct_kargs *k);
size_t ct_cuda_nn_scratch(const ct_kargs *k);
size_t ct_cuda_reduce_scratch(const ct_kargs *k);
size_t ct_cuda_conv_scratch(const ct_kargs *k);
size_t ct_cuda_pool_scratch(const ct_kargs *k);
size_t ct_cuda_attention_scratch(const ct_kargs *k);
size_t ct_cuda_rnn_scratch(const ct_kargs *k);

// The flat-buffer hooks (optim.cu).
ct_status ct_cuda_optim_update(const ct_optim_args *a);
ct_status ct_cuda_sumsq(const void *x, ct_dtype dtype, size_t n, double *out, bool *finite);
ct_status ct_cuda_scale_clamp(void *x, ct_dtype dtype, size_t n, double scale, double clamp);
ct_status ct_cuda_axpby(double a, const void *x, double b, void *y, ct_dtype dtype, size_t n);
ct_status ct_cuda_clip_norm(void *g, ct_dtype dtype, size_t n, double max_norm, ct_step_dev *sd);
ct_status ct_cuda_loss_acc(const void *loss, ct_dtype dtype, double weight, ct_step_dev *sd);

// Stream capture of a fused step (cuda_graph.cu).
ct_status ct_cuda_graph_begin(void);
ct_status ct_cuda_graph_end(bool keep, void **exec);
ct_status ct_cuda_graph_launch(void *exec);
void ct_cuda_graph_free(void *exec);
// The dropout step counter's source (core/backend.h's set_step_source):
// NULL, or a uint32 in device memory that the dropout kernels launched
// from this thread read instead of ct_kargs.step. Per thread, as the
// kernel arguments it replaces were per call.
void ct_cuda_set_step_source(const uint32_t *step_dev);
const uint32_t *ct_cuda_step_source(void);

// The loss scaler's hooks (amp.cu): state in device memory, no host read.
ct_status ct_cuda_amp_unscale(void *g, ct_dtype dtype, size_t n, ct_amp_state *st);
ct_status ct_cuda_amp_update(ct_amp_state *st, double growth, double backoff, int32_t growth_interval);

// The timing events (cuda_timer.cu): core/backend.h's event hooks.
ct_status ct_cuda_event_new(void **ev);
ct_status ct_cuda_event_record(void *ev);
ct_status ct_cuda_event_elapsed(void *start, void *stop, double *seconds);
void ct_cuda_event_free(void *ev);

// Sums n values of `part` (compute type C, device memory) into out[0]
// (stored as dtype dt), scaled by `mul`, in one block: the second pass of
// the losses' and full reductions' two-pass sums (deterministic).
ct_status ct_cuda_finish_sum(const void *part, bool f64, int64_t n, double mul, void *out, ct_dtype dt,
                             cudaStream_t s);

#endif
