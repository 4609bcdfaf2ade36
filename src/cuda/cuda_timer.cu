// Timing events (core/backend.h's event hooks, behind ct_device_timer): CUDA
// events recorded on the context's one stream, where every kernel, copy and
// cuBLAS call of the engine is queued, so the interval between two events is
// exactly the device's time for the work queued between them.
#include "cuda/cuda_common.cuh"

ct_status ct_cuda_event_new(void **ev) {
    *ev = nullptr;
    cudaEvent_t e = nullptr;
    // Default flags: timing enabled (the staging events of uploads disable
    // it, which would make cudaEventElapsedTime fail), and no blocking sync,
    // so waiting for the stop event does not add a sleep's wake-up latency.
    CT_CUDA_TRY(cudaEventCreate(&e), "timing event");
    *ev = (void *)e;
    return CT_OK;
}

ct_status ct_cuda_event_record(void *ev) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) return ct_error(CT_ERR_STATE, "cuda timer: the CUDA context is not initialised");
    CT_CUDA_TRY(cudaEventRecord((cudaEvent_t)ev, c->stream), "timing event on the backend's stream");
    return CT_OK;
}

ct_status ct_cuda_event_elapsed(void *start, void *stop, double *seconds) {
    *seconds = 0.0;
    // A kernel's fault surfaces here, as at any synchronisation.
    CT_CUDA_TRY(cudaEventSynchronize((cudaEvent_t)stop), "waiting for the timer's stop event");
    float ms = 0.0f;
    CT_CUDA_TRY(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)stop), "timer's start to stop");
    *seconds = 1e-3 * (double)ms;
    // As cuda_sync: errors kernels found in the data are reported at the
    // first synchronisation after them.
    return ct_cuda_check_data_error();
}

void ct_cuda_event_free(void *ev) {
    // As cuda_free: a failure here is teardown's and leaves nothing to do.
    if (ev && cudaEventDestroy((cudaEvent_t)ev) != cudaSuccess) cudaGetLastError();
}
