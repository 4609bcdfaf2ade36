// The CUDA backend table (core/backend.h): device memory, copies, the
// per-process context, and the kernel table the k_*.cu files fill. An op
// whose entry is NULL is reported by ct_device_implements() as missing on
// CUDA, so the table is the one place that says what the backend can run.
//
// One process drives one GPU (docs/distributed.md), so a single table
// and a single context serve whichever device ct_cuda_backend() selected.
// Everything is queued on the context's one stream: kernels, cuBLAS, and
// the copies, which keeps their order the program's order without any
// device-wide synchronisation, and lets a whole step be captured.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/cuda_query.h"
#include "cuda/cuda_common.cuh"
#include "cuda/cuda_compress.cuh"

// cuBLAS's workspace, set once so that matrix products never allocate
// (which graph capture forbids). 32 MiB covers Hopper's largest kernels.
#define BLAS_WS_BYTES ((size_t)32 << 20)
// Room for the partial sums of sumsq (one double per block, one flag).
#define RED_BYTES ((size_t)8192)

static ct_cuda_ctx g_ctx;
static bool g_ready;
static std::mutex g_lock;

ct_cuda_ctx *ct_cuda_ctx_get(void) { return g_ready ? &g_ctx : nullptr; }

ct_status ct_cuda_ctx_init(int device) {
    std::lock_guard<std::mutex> guard(g_lock);
    if (g_ready) {
        if (g_ctx.device == device) return CT_OK;
        return ct_error(CT_ERR_UNSUPPORTED,
                        "cannot use cuda:%d: this process already drives cuda:%d (one GPU per process; "
                        "start one process per GPU)",
                        device, g_ctx.device);
    }
    ct_cuda_ctx c = {};
    c.device = device;
    CT_CUDA_TRY(cudaSetDevice(device), "device %d", device);
    CT_CUDA_TRY(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking), "device %d", device);
    CT_CUDA_TRY(cudaDeviceGetAttribute(&c.max_pitch, cudaDevAttrMaxPitch, device), "device %d", device);
    CT_CUDA_TRY(cudaHostAlloc((void **)&c.err_host, sizeof *c.err_host, cudaHostAllocMapped), "%zu bytes",
                sizeof *c.err_host);
    memset(c.err_host, 0, sizeof *c.err_host);
    CT_CUDA_TRY(cudaHostGetDevicePointer((void **)&c.err_dev, c.err_host, 0), "%zu bytes", sizeof *c.err_host);
    c.red_bytes = RED_BYTES;
    CT_CUDA_TRY(cudaMalloc((void **)&c.red, c.red_bytes), "%zu bytes", c.red_bytes);
    c.blas_ws_bytes = BLAS_WS_BYTES;
    CT_CUDA_TRY(cudaMalloc(&c.blas_ws, c.blas_ws_bytes), "cuBLAS workspace of %zu bytes", c.blas_ws_bytes);
    CT_CUBLAS_TRY(cublasCreate(&c.blas), "device %d", device);
    // Every kernel runs on c.stream (ct_cuda_stream), so the handle is bound
    // to it once. cublasSetStream puts the handle back on cuBLAS's default
    // workspace pool (documented), which may allocate, also inside a
    // captured step: the fixed workspace goes on after it.
    CT_CUBLAS_TRY(cublasSetStream(c.blas, c.stream), "device %d", device);
    CT_CUBLAS_TRY(cublasSetWorkspace(c.blas, c.blas_ws, c.blas_ws_bytes), "%zu bytes", c.blas_ws_bytes);
    // FP32 stays FP32 unless a program asks for TF32 (k_matmul.cu picks
    // the compute type per call); the handle's default must not override it.
    // Split-K partial sums are added in FP32: by default cuBLAS may add them
    // in the output type (F16/BF16), which would round more than once.
    CT_CUBLAS_TRY(cublasSetMathMode(c.blas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                            CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
                  "device %d", device);
    g_ctx = c;
    g_ready = true;
    return CT_OK;
}

ct_status ct_cuda_check_data_error(void) {
    if (!g_ready) return CT_OK;
    volatile ct_cuda_data_error *e = g_ctx.err_host;
    int code = e->code;
    if (code == CT_CUDA_ERR_NONE) return CT_OK;
    long long pos = e->pos, value = e->value, bound = e->bound;
    memset((void *)g_ctx.err_host, 0, sizeof *g_ctx.err_host);
    if (code == CT_CUDA_ERR_LOSS_SCALE) {
        unsigned bits = (unsigned)value;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        return ct_error(CT_ERR_NUMERIC,
                        "amp_unscale: the loss scale is %g (found on the GPU during an earlier step, which was "
                        "skipped)",
                        (double)scale);
    }
    if (code == CT_CUDA_ERR_AMP_STEP)
        return ct_error(CT_ERR_INVALID_ARG,
                        "optim_update: step %lld less %lld skipped steps is < 1 (found on the GPU during an earlier "
                        "step, which wrote nothing): the optimizer's step count and the loss scaler's state disagree",
                        value, bound);
    if (code == CT_CUDA_ERR_EMBED_INDEX)
        return ct_error(CT_ERR_INVALID_ARG,
                        "embedding: index %lld at position %lld is outside [0, %lld) (found on the GPU during "
                        "an earlier run; the results of that run are invalid)",
                        value, pos, bound);
    return ct_error(CT_ERR_INVALID_ARG,
                    "cross_entropy: label %lld in row %lld is outside [0, %lld) (found on the GPU during an "
                    "earlier run; the results of that run are invalid)",
                    value, pos, bound);
}

// ---------------------------------------------------------------- memory

static void *cuda_alloc(size_t bytes) {
    void *p = nullptr;
    // A zero-byte request still gets a real pointer: callers treat NULL as
    // failure.
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        ct_cuda_fail(e, "cudaMalloc", "%zu bytes asked", bytes);
        return nullptr;
    }
    return p;
}

static void cuda_free(void *p) {
    // Errors here are from teardown (the runtime already unloading at exit)
    // and leave nothing to recover.
    if (p && cudaFree(p) != cudaSuccess) cudaGetLastError();
}

static cudaStream_t stream(void) { return g_ready ? g_ctx.stream : nullptr; }

static ct_status cuda_zero(void *p, size_t bytes) {
    if (bytes == 0) return CT_OK;
    CT_CUDA_TRY(cudaMemsetAsync(p, 0, bytes, stream()), "%zu bytes at %p", bytes, p);
    return CT_OK;
}

// Uploads go through pinned staging buffers so that the copy is truly
// asynchronous: the caller's memory is copied into a staging slot at once
// (so it may be reused on return), and the DMA from the slot runs on the
// stream behind the work already queued. The slots take turns; an event
// per slot says when its previous DMA is done and the slot may be refilled.
// A fused training step uploads three times (x, y, the step's scalars), so
// four slots let the host queue the next step while the current one runs.
// Large uploads (weights at compile time) go straight from pageable memory.
#define STAGE_SLOTS 4
#define STAGE_MAX ((size_t)64 << 20)

struct stage_slot {
    void *host;
    size_t cap;
    cudaEvent_t done;
    bool used;
};
static stage_slot g_stage[STAGE_SLOTS];
static int g_stage_next;

static ct_status staged_upload(void *dst, const void *src, size_t bytes) {
    stage_slot *s = &g_stage[g_stage_next];
    g_stage_next = (g_stage_next + 1) % STAGE_SLOTS;
    if (s->used) CT_CUDA_TRY(cudaEventSynchronize(s->done), "staging slot of %zu bytes", s->cap);
    if (s->cap < bytes) {
        if (s->host) cudaFreeHost(s->host);
        s->host = nullptr;
        s->cap = 0;
        size_t cap = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
        CT_CUDA_TRY(cudaHostAlloc(&s->host, cap, cudaHostAllocDefault), "pinned staging buffer of %zu bytes", cap);
        s->cap = cap;
    }
    if (!s->used) CT_CUDA_TRY(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming), "staging event");
    memcpy(s->host, src, bytes);
    CT_CUDA_TRY(cudaMemcpyAsync(dst, s->host, bytes, cudaMemcpyHostToDevice, stream()), "upload of %zu bytes", bytes);
    CT_CUDA_TRY(cudaEventRecord(s->done, stream()), "upload of %zu bytes", bytes);
    s->used = true;
    return CT_OK;
}

static ct_status cuda_upload(void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return CT_OK;
    if (bytes <= STAGE_MAX) return staged_upload(dst, src, bytes);
    CT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "upload of %zu bytes", bytes);
    // From pageable memory the copy may still read src after returning on
    // some drivers; waiting keeps the caller's buffer free to reuse.
    CT_CUDA_TRY(cudaStreamSynchronize(stream()), "upload of %zu bytes", bytes);
    return CT_OK;
}

static ct_status cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return CT_OK;
    // On the backend's stream, in order with the kernels that wrote src.
    CT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "device copy of %zu bytes",
                bytes);
    return CT_OK;
}

static ct_status cuda_sync(void) {
    cudaError_t e = g_ready ? cudaStreamSynchronize(g_ctx.stream) : cudaDeviceSynchronize();
    if (e != cudaSuccess) return ct_cuda_fail(e, "cudaStreamSynchronize", "waiting for queued kernels");
    return ct_cuda_check_data_error();
}

// A download is where values reach the host, so it is also where errors
// from earlier kernels (faults, bad indices) are reported.
static ct_status cuda_download(void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return cuda_sync();
    CT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "download of %zu bytes", bytes);
    return cuda_sync();
}

static size_t cuda_scratch_bytes(const ct_kargs *k) {
    size_t s = ct_cuda_loss_scratch(k);
    size_t t = ct_cuda_norm_scratch(k);
    if (t > s) s = t;
    t = ct_cuda_nn_scratch(k);
    if (t > s) s = t;
    t = ct_cuda_reduce_scratch(k);
    if (t > s) s = t;
    t = ct_cuda_conv_scratch(k);
    if (t > s) s = t;
    t = ct_cuda_pool_scratch(k);
    if (t > s) s = t;
    t = ct_cuda_attention_scratch(k);
    if (t > s) s = t;
    t = ct_cuda_rnn_scratch(k);
    if (t > s) s = t;
    return s;
}

// core/backend.h's groups, in its order. The CUDA backend has every
// optional member: the timing events, the device-side clipping and loss
// sum, mixed precision, and graph capture.
static ct_backend make_table(void) {
    ct_backend b = {};
    // identity
    b.name = "cuda";
    b.kind = CT_DEVICE_CUDA;
    // memory, all on the context's stream
    b.alloc = cuda_alloc;
    b.free = cuda_free;
    b.zero = cuda_zero;
    b.upload = cuda_upload;
    b.download = cuda_download;
    b.copy = cuda_copy;
    b.sync = cuda_sync;
    // events (cuda_timer.cu)
    b.event_new = ct_cuda_event_new;
    b.event_record = ct_cuda_event_record;
    b.event_elapsed = ct_cuda_event_elapsed;
    b.event_free = ct_cuda_event_free;
    b.event_method = "cuda events";
    // kernels and scratch (the k_*.cu files)
    b.scratch_bytes = cuda_scratch_bytes;
    b.fuses_relu = true; // conv2d, add and max_pool2d_grad honour attr.fused_relu
    ct_cuda_register_elementwise(b.kernels);
    ct_cuda_register_reduce(b.kernels);
    ct_cuda_register_softmax(b.kernels);
    ct_cuda_register_loss(b.kernels);
    ct_cuda_register_norm(b.kernels);
    ct_cuda_register_shape(b.kernels);
    ct_cuda_register_matmul(b.kernels);
    ct_cuda_register_nn(b.kernels);
    ct_cuda_register_conv(b.kernels);
    ct_cuda_register_pool(b.kernels);
    ct_cuda_register_attention(b.kernels);
    ct_cuda_register_kl(b.kernels);
    ct_cuda_register_rnn(b.kernels);
    ct_cuda_register_fakequant(b.kernels);
    // flat-buffer and optimizer updates (optim.cu)
    b.optim_update = ct_cuda_optim_update;
    b.sumsq = ct_cuda_sumsq;
    b.scale_clamp = ct_cuda_scale_clamp;
    b.axpby = ct_cuda_axpby;
    b.mask_apply = ct_cuda_mask_apply; // k_mask.cu
    b.clip_norm = ct_cuda_clip_norm;
    b.loss_acc = ct_cuda_loss_acc;
    // mixed precision (amp.cu)
    b.amp_unscale = ct_cuda_amp_unscale;
    b.amp_update = ct_cuda_amp_update;
    // graph capture (cuda_graph.cu)
    b.graph_begin = ct_cuda_graph_begin;
    b.graph_end = ct_cuda_graph_end;
    b.graph_launch = ct_cuda_graph_launch;
    b.graph_free = ct_cuda_graph_free;
    b.set_step_source = ct_cuda_set_step_source;
    return b;
}

// A function-local static: built on first use, thread-safely, whatever the
// order in which the library's static initialisers run.
static const ct_backend *table(void) {
    static const ct_backend b = make_table();
    return &b;
}

// Why the table breaks core/backend.h's rules (ct_backend_valid), or
// NULL; checked once, the message kept for every later caller.
static const char *table_fault(void) {
    static char why[256];
    static const bool ok = ct_backend_valid(table(), why, sizeof why);
    return ok ? nullptr : why;
}

ct_status ct_cuda_backend_check(void) {
    const char *fault = table_fault();
    return fault ? ct_error(CT_ERR_INTERNAL, "%s", fault) : CT_OK;
}

bool ct_cuda_implements(int op) {
    return op >= 0 && op < CT_OP_COUNT && table()->kernels[op] != nullptr;
}

const ct_backend *ct_cuda_backend(int device_index) {
    char why[512];
    int n = 0;
    if (ct_cuda_query(&n, why, sizeof why) != CT_OK) {
        ct_error(CT_ERR_DEVICE, "cannot use cuda:%d: %s", device_index, why);
        return nullptr;
    }
    if (device_index < 0 || device_index >= n) {
        ct_error(CT_ERR_DEVICE, "cannot use cuda:%d: this machine has %d CUDA device%s", device_index,
                 n, n == 1 ? "" : "s");
        return nullptr;
    }
    if (ct_cuda_backend_check() != CT_OK || ct_cuda_ctx_init(device_index) != CT_OK) return nullptr;
    return table();
}
