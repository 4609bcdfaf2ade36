// The loss scaler's hooks on the GPU (core/backend.h): the fused unscale
// and inf/NaN check over the flat gradient buffer, and GradScaler's scale
// update. Both read and write the scaler's state (ct_amp_state) where it
// lives, in device memory, and neither copies anything to the host: the
// decision to skip a step travels from the unscale pass to the optimizer
// kernel (optim.cu) and to the scale update through that struct, in stream
// order, so a whole mixed-precision step can be queued (and captured)
// without a synchronisation. The rules are src/cpu/cpu_amp.c's, operation
// for operation, so the two backends agree bit for bit.
#include <cmath>

#include "cuda/cuda_common.cuh"

static cudaStream_t stream(void) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    return c ? c->stream : nullptr;
}

// A scale the CPU would refuse (not > 0, or inf: what ~166 consecutive
// backoffs from 2^16 or a corrupt state leave) cannot be refused here
// without a host read, so the kernel reports it through the data-error
// word (read at the next synchronisation) and marks the step skipped, so
// that the optimizer writes nothing. The float's bits travel as the value.
static __device__ bool scale_is_bad(ct_amp_state *st, float s, ct_cuda_data_error *err) {
    if (s > 0.0f && !isinf(s)) return false;
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        st->found_inf = 1;
        ct_cuda_report(err, CT_CUDA_ERR_LOSS_SCALE, 0, (long long)__float_as_uint(s), 0);
    }
    return true;
}

// g[i] /= scale, and found_inf = 1 when any g[i] was inf or NaN. found_inf
// was cleared just before, on the same stream, so the flag describes this
// pass only. The division is the CPU's: a float quotient is correctly
// rounded on both sides (nvcc's default -prec-div=true; the CPU divides in
// double and rounds, which gives the same float), so any scale, not only a
// power of two, unscales identically.
template <typename T>
__global__ void unscale_kernel(T *g, int64_t n, ct_amp_state *st, ct_cuda_data_error *err) {
    const float s = st->scale;
    if (scale_is_bad(st, s, err)) return;
    const T scale = (T)s;
    bool bad = false;
    CT_GRID_STRIDE(i, n) {
        T v = g[i];
        bad |= !isfinite(v);
        g[i] = v / scale; // unscaled whatever the verdict, as GradScaler does
    }
    // Every writer writes the same 1: the race is benign, and no thread
    // needs to read the flag back within the pass.
    if (bad) st->found_inf = 1;
}

ct_status ct_cuda_amp_unscale(void *g, ct_dtype dtype, size_t n, ct_amp_state *st) {
    if (dtype != CT_F32 && dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "cuda amp_unscale: gradients must be f32 or f64, got %s", ct_dtype_name(dtype));
    if (!st || (n && !g)) return ct_error(CT_ERR_INVALID_ARG, "cuda amp_unscale: NULL buffer or state");
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) return ct_error(CT_ERR_STATE, "cuda amp_unscale: the CUDA backend is not initialised");
    CT_CUDA_TRY(cudaMemsetAsync(&st->found_inf, 0, sizeof st->found_inf, c->stream), "amp_unscale: clearing the flag");
    // Launched even for n == 0: the scale is still checked, as on the CPU.
    unsigned blocks = ct_cuda_blocks((int64_t)n);
    if (dtype == CT_F32)
        unscale_kernel<float><<<blocks, CT_CUDA_THREADS, 0, c->stream>>>((float *)g, (int64_t)n, st, c->err_dev);
    else
        unscale_kernel<double><<<blocks, CT_CUDA_THREADS, 0, c->stream>>>((double *)g, (int64_t)n, st, c->err_dev);
    CT_CUDA_LAUNCHED("amp_unscale", "%zu %s gradients", n, ct_dtype_name(dtype));
    return CT_OK;
}

// GradScaler's update, one thread (the state is one struct). The products
// are taken in double and rounded to float once, as the CPU does, so the
// overflow test ("a scale that would not be a finite float is not grown")
// is decided on the same value.
__global__ void update_kernel(ct_amp_state *st, double growth, double backoff, int32_t growth_interval) {
    if (st->found_inf) {
        st->scale = (float)((double)st->scale * backoff);
        st->growth_tracker = 0;
        st->skipped++;
        return;
    }
    int32_t successful = st->growth_tracker + 1;
    if (successful >= growth_interval) {
        float grown = (float)((double)st->scale * growth);
        if (isfinite(grown)) st->scale = grown;
        successful = 0;
    }
    st->growth_tracker = successful;
}

ct_status ct_cuda_amp_update(ct_amp_state *st, double growth, double backoff, int32_t growth_interval) {
    if (!st) return ct_error(CT_ERR_INVALID_ARG, "cuda amp_update: state is NULL");
    if (growth_interval < 1)
        return ct_error(CT_ERR_INVALID_ARG, "cuda amp_update: growth_interval %d < 1", (int)growth_interval);
    update_kernel<<<1, 1, 0, stream()>>>(st, growth, backoff, growth_interval);
    CT_CUDA_LAUNCHED("amp_update", "growth %g, backoff %g, interval %d", growth, backoff, (int)growth_interval);
    return CT_OK;
}
