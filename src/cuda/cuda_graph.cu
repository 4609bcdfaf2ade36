// Stream capture for the fused training step (core/backend.h's graph
// capture group: graph_* and set_step_source, used by
// src/train/step_graph.c and ct_program_run_dev).
//
// Every kernel, cuBLAS call and copy of the backend goes to the context's
// one stream, so capturing that stream records a whole training step. The
// capture mode is thread-local: a call that is not allowed while capturing
// (cudaMalloc, a synchronisation) made by this thread fails the capture
// instead of silently running outside the graph, which is how a step that
// would allocate or wait is caught; other threads (the data loader's) are
// left alone. An error between begin and end leaves the stream capturing,
// so the caller always ends the capture, discarding the graph then.
#include "cuda/cuda_common.cuh"

static ct_cuda_ctx *ctx(const char *fn) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) ct_error(CT_ERR_STATE, "%s: the CUDA backend is not initialised", fn);
    return c;
}

ct_status ct_cuda_graph_begin(void) {
    ct_cuda_ctx *c = ctx("cuda graph_begin");
    if (!c) return CT_ERR_STATE;
    CT_CUDA_TRY(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal),
                "capturing the training step on cuda:%d", c->device);
    return CT_OK;
}

ct_status ct_cuda_graph_end(bool keep, void **exec) {
    if (exec) *exec = nullptr;
    ct_cuda_ctx *c = ctx("cuda graph_end");
    if (!c) return CT_ERR_STATE;
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (!keep || e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        if (!keep) {
            // The caller reports the error that stopped the capture; an
            // invalidated capture's own error is a consequence of it.
            cudaGetLastError();
            return CT_OK;
        }
        return ct_cuda_fail(e, "cudaStreamEndCapture",
                            "the training step could not be captured on cuda:%d (did a kernel allocate or "
                            "synchronise?)",
                            c->device);
    }
    cudaGraphExec_t ge = nullptr;
    e = cudaGraphInstantiate(&ge, g, 0);
    size_t nodes = 0;
    cudaGraphGetNodes(g, nullptr, &nodes);
    cudaGraphDestroy(g);
    if (e != cudaSuccess)
        return ct_cuda_fail(e, "cudaGraphInstantiate", "a training step of %zu nodes on cuda:%d", nodes, c->device);
    *exec = ge;
    return CT_OK;
}

ct_status ct_cuda_graph_launch(void *exec) {
    ct_cuda_ctx *c = ctx("cuda graph_launch");
    if (!c) return CT_ERR_STATE;
    if (!exec) return ct_error(CT_ERR_INVALID_ARG, "cuda graph_launch: no graph");
    CT_CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)exec, c->stream), "replaying the training step on cuda:%d",
                c->device);
    return CT_OK;
}

void ct_cuda_graph_free(void *exec) {
    // As cuda_free: a failure here is teardown and leaves nothing to do.
    if (exec && cudaGraphExecDestroy((cudaGraphExec_t)exec) != cudaSuccess) cudaGetLastError();
}

// The step counter the dropout kernels read (set_step_source). A kernel
// launch copies its arguments, so a captured dropout node holds the pointer
// given at capture time and each replay reads the counter's value then:
// the host uploads it before every launch (src/train/step_graph.c).
// Thread-local, as a kernel's arguments were: a run on another thread
// (an evaluation program) keeps the host's counter.
static thread_local const uint32_t *t_step_source;

void ct_cuda_set_step_source(const uint32_t *step_dev) { t_step_source = step_dev; }

const uint32_t *ct_cuda_step_source(void) { return t_step_source; }
