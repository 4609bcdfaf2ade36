// The flat-buffer hooks on the GPU: the fused optimizer update, the sum of
// squares behind gradient-norm clipping (with the host finishing the sum, or
// all on the device: clip_norm), scale-and-clamp, axpby, and the loss sum
// of a fused step (loss_acc).
//
// Each is one elementwise pass over the flat buffers, computed in double
// and rounded once into the buffer's dtype, exactly as src/cpu/cpu_optim.c
// does, so an optimizer step on the GPU matches the CPU to the rounding of
// the last store. The exception is SGD, Adam and AdamW over F32 buffers,
// which compute in float as PyTorch does and as the CPU's fast path does
// (sgd_f32 and adam_f32 below, src/cpu/cpu_optim_fast.c): the same
// operations, each rounded alike, so again the same bits. The per-step scalars (bias corrections, decayed learning
// rate) are computed once, in double, with the CPU's formulas: on the host
// for a plain step; on the device for a step gated by the loss scaler,
// because the step they use, t - skipped, is only known there (the scaler's
// state stays in device memory so that skipping needs no host read).
#include <cmath>

#include "cuda/cuda_common.cuh"
extern "C" {
#include "ctrain/optim.h"
}

#define SUMSQ_BLOCKS 512 // partial sums of sumsq; 2 * 512 doubles fit the context's buffer

// The scalars that depend on the step t (t >= 1).
struct step_k {
    bool first;
    double clr, step_size, bc2_sqrt;
};

struct optim_k {
    int kind, dt;
    int64_t n;
    void *w, *s0, *s1, *s2;
    const void *g;
    const uint8_t *flags;
    bool nesterov, amsgrad, centered, decoupled, maximize;
    double lr, mu, damp, b1, b2, eps, alpha, wd, l1, lr_decay;
    double shrink;
    // the F32 updates' loop invariants rounded to float once (cpu_optim_fast.c)
    float f_wd, f_l1, f_mu, f_damp1, f_lerp_w, f_b2, f_c2, f_eps;
    bool f_lerp_lo;
    int64_t t;               // attempted steps, this one included
    step_k at_t;             // for step t (no scaler, no dev)
    const ct_amp_state *amp; // NULL, or the scaler's state (device memory)
    const ct_step_dev *dev;  // NULL, or t and lr in device memory (a replayed step)
};

// The CPU's per-step scalars, in the same order of operations; host code
// for a plain step, device code for a gated one.
__host__ __device__ static step_k step_scalars(const optim_k &a, int64_t t, double lr) {
    step_k s;
    s.first = t == 1;
    s.clr = lr / (1 + (double)(t - 1) * a.lr_decay);
    s.step_size = lr / (1 - pow(a.b1, (double)t));
    s.bc2_sqrt = sqrt(1 - pow(a.b2, (double)t));
    return s;
}

__device__ __forceinline__ double sign_of(double w) { return (double)((w > 0) - (w < 0)); }

__device__ __forceinline__ double effective_grad(const optim_k &a, uint8_t f, double w, double g) {
    if (a.maximize) g = -g;
    if (f & CT_PFLAG_DECAY) {
        // Rounded as the CPU rounds (no fused multiply-add): RMSprop's
        // centered variance below cancels, and magnifies a last-bit
        // difference in g.
        if (a.wd != 0 && !a.decoupled) g = __dadd_rn(g, __dmul_rn(a.wd, w));
        if (a.l1 != 0) g += a.l1 * sign_of(w);
    }
    return g;
}

// SGD, Adam and AdamW over F32 buffers in float: src/cpu/cpu_optim_fast.c
// operation for operation (PyTorch's formulas; the step's scalars computed
// in double, then rounded to float once), each product, quotient, sum and
// root rounded on its own with the __f*_rn intrinsics (no fused
// multiply-add, IEEE division and square root), so the GPU's bits are the
// CPU's.

// The gradient as the algorithms see it: negated when maximizing, the
// coupled penalties on decayed elements, from the weight before the step.
__device__ __forceinline__ float grad_f32(const optim_k &a, uint8_t f, float w, float g) {
    if (a.maximize) g = -g;
    if (f & CT_PFLAG_DECAY) {
        if (a.wd != 0 && !a.decoupled) g = __fadd_rn(g, __fmul_rn(a.f_wd, w));
        if (a.l1 != 0) g = __fadd_rn(g, __fmul_rn(a.f_l1, (float)((w > 0) - (w < 0))));
    }
    return g;
}

// torch's buf.mul_(mu).add_(g, alpha=1 - dampening), the buffer starting as
// the first gradient; Nesterov's g.add(buf, alpha=mu); p.add_(g, alpha=-lr).
__device__ __forceinline__ void sgd_f32(const optim_k &a, const step_k &sc, double lr, uint8_t f, int64_t i) {
    float *pw = (float *)a.w;
    const float w = pw[i];
    float g = grad_f32(a, f, w, ((const float *)a.g)[i]);
    if (a.mu != 0) {
        float *pb = (float *)a.s0;
        const float buf = sc.first ? g : __fadd_rn(__fmul_rn(pb[i], a.f_mu), __fmul_rn(a.f_damp1, g));
        pb[i] = buf;
        g = a.nesterov ? __fadd_rn(g, __fmul_rn(a.f_mu, buf)) : buf;
    }
    pw[i] = __fsub_rn(w, __fmul_rn((float)lr, g));
}

__device__ __forceinline__ void adam_f32(const optim_k &a, const step_k &sc, double shrink, uint8_t f, int64_t i) {
    float *pw = (float *)a.w, *pm = (float *)a.s0, *pv = (float *)a.s1;
    float w = pw[i];
    const float g = grad_f32(a, f, w, ((const float *)a.g)[i]);
    if (a.decoupled && (f & CT_PFLAG_DECAY)) w = __fmul_rn(w, (float)shrink);
    const float m0 = pm[i];
    // torch.lerp(m, g, 1 - b1), its two-sided form
    const float m = __fadd_rn(a.f_lerp_lo ? m0 : g, __fmul_rn(a.f_lerp_w, __fsub_rn(g, m0)));
    float v = __fadd_rn(__fmul_rn(pv[i], a.f_b2), __fmul_rn(__fmul_rn(a.f_c2, g), g));
    pm[i] = m;
    pv[i] = v;
    if (a.amsgrad) {
        float *pmax = (float *)a.s2;
        const float vmax = pmax[i];
        v = (v != v || v > vmax) ? v : vmax; // torch.maximum: NaN propagates
        pmax[i] = v;
    }
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), (float)sc.bc2_sqrt), a.f_eps);
    pw[i] = __fsub_rn(w, __fdiv_rn(__fmul_rn((float)sc.step_size, m), denom));
}

// Element i of every update that is not an F32 SGD or Adam(W) one: the
// reference's arithmetic, in double, whatever the storage dtype.
__device__ __forceinline__ void update_double(const optim_k &a, const step_k &sc, double lr, double shrink, uint8_t f,
                                              int64_t i) {
    int dt = a.dt;
    double w = ct_ld<double>(a.w, dt, i);
    double g = effective_grad(a, f, w, ct_ld<double>(a.g, dt, i));
    switch (a.kind) {
    case CT_OPTIM_SGD:
        if (a.mu != 0) {
            // PyTorch starts the buffer at the first gradient
            double buf = sc.first ? g : a.mu * ct_ld<double>(a.s0, dt, i) + (1 - a.damp) * g;
            ct_st<double>(a.s0, dt, i, buf);
            g = a.nesterov ? g + a.mu * buf : buf;
        }
        ct_st<double>(a.w, dt, i, w - lr * g);
        break;
    case CT_OPTIM_ADAGRAD: {
        double sum = ct_ld<double>(a.s0, dt, i) + g * g;
        ct_st<double>(a.s0, dt, i, sum);
        ct_st<double>(a.w, dt, i, w - sc.clr * (g / (sqrt(sum) + a.eps)));
        break;
    }
    case CT_OPTIM_RMSPROP: {
        // sq - ga * ga cancels when the gradient's mean is near its
        // root mean square: with the multiply-adds nvcc would fuse
        // (--fmad=true), the last-bit differences from the CPU's
        // roundings grow past 1e-11 relative in F64 updates. Every
        // product and sum that feeds it is rounded as the CPU's.
        double sq = __dadd_rn(__dmul_rn(a.alpha, ct_ld<double>(a.s0, dt, i)),
                              __dmul_rn(__dmul_rn(1 - a.alpha, g), g));
        ct_st<double>(a.s0, dt, i, sq);
        double var = sq;
        if (a.centered) {
            double ga = __dadd_rn(__dmul_rn(a.alpha, ct_ld<double>(a.s2, dt, i)), __dmul_rn(1 - a.alpha, g));
            ct_st<double>(a.s2, dt, i, ga);
            var = __dsub_rn(var, __dmul_rn(ga, ga));
        }
        double avg = sqrt(var) + a.eps;
        if (a.mu > 0) {
            double buf = a.mu * ct_ld<double>(a.s1, dt, i) + g / avg;
            ct_st<double>(a.s1, dt, i, buf);
            ct_st<double>(a.w, dt, i, w - lr * buf);
        } else {
            ct_st<double>(a.w, dt, i, w - lr * (g / avg));
        }
        break;
    }
    default: { // Adam, AdamW
        if (a.decoupled && (f & CT_PFLAG_DECAY)) w *= shrink;
        double m = a.b1 * ct_ld<double>(a.s0, dt, i) + (1 - a.b1) * g;
        double v = a.b2 * ct_ld<double>(a.s1, dt, i) + (1 - a.b2) * g * g;
        ct_st<double>(a.s0, dt, i, m);
        ct_st<double>(a.s1, dt, i, v);
        if (a.amsgrad) {
            double vmax = ct_ld<double>(a.s2, dt, i);
            if (v != v || v > vmax) vmax = v;
            ct_st<double>(a.s2, dt, i, vmax);
            v = vmax;
        }
        ct_st<double>(a.w, dt, i, w - sc.step_size * (m / (sqrt(v) / sc.bc2_sqrt + a.eps)));
        break;
    }
    }
}

__global__ void optim_kernel(optim_k a, ct_cuda_data_error *err) {
    __shared__ step_k gated;
    step_k sc = a.at_t;
    double lr = a.lr, shrink = a.shrink;
    if (a.dev) {
        // A replayed step: this step's t and lr were uploaded before the
        // launch. The products are rounded as the host's (no FMA), so the
        // captured and the plain update agree bit for bit.
        lr = a.dev->lr;
        shrink = __dsub_rn(1.0, __dmul_rn(lr, a.wd));
        a.t = a.dev->t;
    }
    if (a.amp || a.dev) {
        int64_t t = a.t;
        if (a.amp) {
            // The scaler's verdict, written by amp_unscale earlier on the
            // stream: on inf/NaN nothing is written. Every thread reads the
            // same word, so the whole grid returns (before the barrier).
            if (a.amp->found_inf) return;
            t -= a.amp->skipped;
            if (t < 1) {
                if (blockIdx.x == 0 && threadIdx.x == 0)
                    ct_cuda_report(err, CT_CUDA_ERR_AMP_STEP, 0, (long long)a.t, (long long)a.amp->skipped);
                return;
            }
        }
        // One thread per block evaluates the pow()s, the others wait.
        if (threadIdx.x == 0) gated = step_scalars(a, t, lr);
        __syncthreads();
        sc = gated;
    }
    CT_GRID_STRIDE(i, a.n) {
        uint8_t f = a.flags[i];
        if (f & CT_PFLAG_FROZEN) continue;
        if (a.dt == CT_F32 && a.kind == CT_OPTIM_SGD)
            sgd_f32(a, sc, lr, f, i);
        else if (a.dt == CT_F32 && (a.kind == CT_OPTIM_ADAM || a.kind == CT_OPTIM_ADAMW))
            adam_f32(a, sc, shrink, f, i);
        else
            update_double(a, sc, lr, shrink, f, i);
    }
}

static ct_status check_dtype(ct_dtype dt, const char *fn) {
    if (dt != CT_F32 && dt != CT_F64)
        return ct_error(CT_ERR_DTYPE, "cuda %s: buffers must be f32 or f64, got %s", fn, ct_dtype_name(dt));
    return CT_OK;
}

static cudaStream_t stream(void) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    return c ? c->stream : nullptr;
}

ct_status ct_cuda_optim_update(const ct_optim_args *a) {
    if (!a) return ct_error(CT_ERR_INVALID_ARG, "cuda optim_update: args are NULL");
    ct_status st = check_dtype(a->dtype, "optim_update");
    if (st != CT_OK) return st;
    if (a->n == 0) return CT_OK;
    if (a->t < 1)
        return ct_error(CT_ERR_INVALID_ARG, "cuda optim_update: step t must be >= 1, got %lld", (long long)a->t);
    if (!a->params || !a->grads || !a->flags)
        return ct_error(CT_ERR_INVALID_ARG, "cuda optim_update: params, grads and flags are required");
    bool need0 = false, need1 = false, need2 = false;
    switch (a->kind) {
    case CT_OPTIM_SGD: need0 = a->momentum != 0; break;
    case CT_OPTIM_ADAGRAD: need0 = true; break;
    case CT_OPTIM_RMSPROP: need0 = true, need1 = a->momentum > 0, need2 = a->centered; break;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW: need0 = need1 = true, need2 = a->amsgrad; break;
    default: return ct_error(CT_ERR_INVALID_ARG, "cuda optim_update: unknown optimizer kind %d", a->kind);
    }
    if ((need0 && !a->state0) || (need1 && !a->state1) || (need2 && !a->state2))
        return ct_error(CT_ERR_INTERNAL, "cuda optim_update: %s is missing a state buffer",
                        ct_optim_kind_name((ct_optim_kind)a->kind));
    optim_k k = {};
    k.kind = a->kind, k.dt = a->dtype, k.n = (int64_t)a->n;
    k.w = a->params, k.g = a->grads, k.s0 = a->state0, k.s1 = a->state1, k.s2 = a->state2, k.flags = a->flags;
    k.nesterov = a->nesterov, k.amsgrad = a->amsgrad, k.centered = a->centered;
    k.decoupled = a->decoupled, k.maximize = a->maximize;
    k.lr = a->lr, k.mu = a->momentum, k.damp = a->dampening, k.b1 = a->beta1, k.b2 = a->beta2, k.eps = a->eps;
    k.alpha = a->alpha, k.wd = a->weight_decay, k.l1 = a->l1, k.lr_decay = a->lr_decay;
    k.shrink = 1 - a->lr * a->weight_decay;
    // lerp's weight and 1 - weight in float, as torch.lerp takes them
    const float w1 = (float)(1 - a->beta1);
    k.f_lerp_lo = fabsf(w1) < 0.5f;
    k.f_lerp_w = k.f_lerp_lo ? w1 : w1 - 1.0f;
    k.f_wd = (float)a->weight_decay, k.f_l1 = (float)a->l1, k.f_eps = (float)a->eps;
    k.f_b2 = (float)a->beta2, k.f_c2 = (float)(1 - a->beta2);
    k.f_mu = (float)a->momentum, k.f_damp1 = (float)(1 - a->dampening);
    k.t = a->t;
    k.amp = a->amp;
    k.dev = a->dev;
    if (!a->amp && !a->dev) k.at_t = step_scalars(k, a->t, k.lr);
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    optim_kernel<<<ct_cuda_blocks(k.n), CT_CUDA_THREADS, 0, stream()>>>(k, c ? c->err_dev : nullptr);
    CT_CUDA_LAUNCHED("optim_update", "%s over %zu elements", ct_optim_kind_name((ct_optim_kind)a->kind), a->n);
    return CT_OK;
}

// ---------------------------------------------------------------- sumsq

// Block b sums the squares of its grid-stride share in double and says
// whether all were finite: part[b] and part[SUMSQ_BLOCKS + b].
__global__ void sumsq_parts(const void *x, int dt, int64_t n, double *part) {
    __shared__ double sh[32];
    double acc = 0, bad = 0;
    CT_GRID_STRIDE(i, n) {
        double v = ct_ld<double>(x, dt, i);
        acc += v * v;
        if (!isfinite(v)) bad = 1;
    }
    acc = ct_block_sum(acc, sh);
    bad = ct_block_sum(bad, sh);
    if (threadIdx.x == 0) {
        part[blockIdx.x] = acc;
        part[SUMSQ_BLOCKS + blockIdx.x] = bad;
    }
}

ct_status ct_cuda_sumsq(const void *x, ct_dtype dtype, size_t n, double *out, bool *finite) {
    ct_status st = check_dtype(dtype, "sumsq");
    if (st != CT_OK) return st;
    if (n && !x) return ct_error(CT_ERR_INVALID_ARG, "cuda sumsq: buffer is NULL");
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) return ct_error(CT_ERR_STATE, "cuda sumsq: the CUDA backend is not initialised");
    double total = 0;
    bool all = true;
    if (n) {
        int64_t blocks = ((int64_t)n + CT_CUDA_THREADS - 1) / CT_CUDA_THREADS;
        if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
        sumsq_parts<<<(unsigned)blocks, CT_CUDA_THREADS, 0, c->stream>>>(x, dtype, (int64_t)n, c->red);
        CT_CUDA_LAUNCHED("sumsq", "%zu elements", n);
        // The norm is wanted on the host (the API returns it), so the
        // partials come back and are added there, in block order.
        double host[2 * SUMSQ_BLOCKS];
        CT_CUDA_TRY(cudaMemcpyAsync(host, c->red, sizeof host, cudaMemcpyDeviceToHost, c->stream), "sumsq: %zu bytes",
                    sizeof host);
        CT_CUDA_TRY(cudaStreamSynchronize(c->stream), "sumsq over %zu elements", n);
        for (int64_t b = 0; b < blocks; b++) {
            total += host[b];
            if (host[SUMSQ_BLOCKS + b] != 0) all = false;
        }
    }
    if (out) *out = total;
    if (finite) *finite = all;
    return CT_OK;
}

// ---------------------------------------------------------------- clip_norm, loss_acc

// The host's sumsq finish (above) on the device: the partials added in block
// order, so the norm is the one ct_clip_grad_norm computes, then
// clip_grad_norm_'s factor. One thread: at most SUMSQ_BLOCKS additions.
__global__ void clip_finish_kernel(const double *part, int64_t blocks, double max_norm, ct_step_dev *sd) {
    double total = 0;
    bool finite = true;
    for (int64_t b = 0; b < blocks; b++) {
        total += part[b];
        if (part[SUMSQ_BLOCKS + b] != 0) finite = false;
    }
    double norm = sqrt(total);
    // A factor from an inf or NaN norm would wipe the gradients out; they
    // are left as they are (the step is skipped by the loss scaler, or the
    // loss shows the divergence), and the norm says so.
    double coef = finite && isfinite(norm) ? max_norm / (norm + 1e-6) : 1.0;
    sd->norm = finite ? norm : nan("");
    sd->coef = coef < 1 ? coef : 1.0;
}

// x *= *coef, the factor read from device memory (written just before on
// the stream), untouched when it is 1 as the host rule leaves them.
__global__ void scale_by_kernel(void *x, int dt, int64_t n, const double *coef) {
    const double c = *coef;
    if (!(c < 1)) return;
    CT_GRID_STRIDE(i, n) ct_st<double>(x, dt, i, ct_ld<double>(x, dt, i) * c);
}

ct_status ct_cuda_clip_norm(void *g, ct_dtype dtype, size_t n, double max_norm, ct_step_dev *sd) {
    ct_status st = check_dtype(dtype, "clip_norm");
    if (st != CT_OK) return st;
    if ((n && !g) || !sd) return ct_error(CT_ERR_INVALID_ARG, "cuda clip_norm: NULL buffer or state");
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) return ct_error(CT_ERR_STATE, "cuda clip_norm: the CUDA backend is not initialised");
    int64_t blocks = ((int64_t)n + CT_CUDA_THREADS - 1) / CT_CUDA_THREADS;
    if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
    if (n) {
        sumsq_parts<<<(unsigned)blocks, CT_CUDA_THREADS, 0, c->stream>>>(g, dtype, (int64_t)n, c->red);
        CT_CUDA_LAUNCHED("clip_norm (sums)", "%zu elements", n);
    }
    clip_finish_kernel<<<1, 1, 0, c->stream>>>(c->red, blocks, max_norm, sd);
    CT_CUDA_LAUNCHED("clip_norm (factor)", "max_norm %g over %zu elements", max_norm, n);
    if (n) {
        scale_by_kernel<<<ct_cuda_blocks((int64_t)n), CT_CUDA_THREADS, 0, c->stream>>>(g, dtype, (int64_t)n,
                                                                                        &sd->coef);
        CT_CUDA_LAUNCHED("clip_norm (scale)", "%zu elements", n);
    }
    return CT_OK;
}

__global__ void loss_acc_kernel(const void *loss, int dt, double weight, ct_step_dev *sd) {
    double v = ct_ld<double>(loss, dt, 0) * weight;
    sd->loss_last = v;
    sd->loss_sum += v;
}

ct_status ct_cuda_loss_acc(const void *loss, ct_dtype dtype, double weight, ct_step_dev *sd) {
    if (!loss || !sd) return ct_error(CT_ERR_INVALID_ARG, "cuda loss_acc: NULL loss or state");
    if (!ct_dtype_is_float(dtype))
        return ct_error(CT_ERR_DTYPE, "cuda loss_acc: the loss must be a float, got %s", ct_dtype_name(dtype));
    loss_acc_kernel<<<1, 1, 0, stream()>>>(loss, dtype, weight, sd);
    CT_CUDA_LAUNCHED("loss_acc", "a %s loss, weight %g", ct_dtype_name(dtype), weight);
    return CT_OK;
}

// ---------------------------------------------------------------- scale_clamp, axpby

__global__ void scale_clamp_kernel(void *x, int dt, int64_t n, double scale, double clamp) {
    CT_GRID_STRIDE(i, n) {
        double v = ct_ld<double>(x, dt, i) * scale;
        // NaN fails both comparisons and passes through, as in torch.clamp
        if (clamp > 0) v = v > clamp ? clamp : v < -clamp ? -clamp : v;
        ct_st<double>(x, dt, i, v);
    }
}

ct_status ct_cuda_scale_clamp(void *x, ct_dtype dtype, size_t n, double scale, double clamp) {
    ct_status st = check_dtype(dtype, "scale_clamp");
    if (st != CT_OK) return st;
    if (n && !x) return ct_error(CT_ERR_INVALID_ARG, "cuda scale_clamp: buffer is NULL");
    if (n == 0) return CT_OK;
    scale_clamp_kernel<<<ct_cuda_blocks((int64_t)n), CT_CUDA_THREADS, 0, stream()>>>(x, dtype, (int64_t)n, scale, clamp);
    CT_CUDA_LAUNCHED("scale_clamp", "%zu elements", n);
    return CT_OK;
}

// b == 0 does not read y (BLAS's beta = 0 rule), so y may start as garbage.
__global__ void axpby_kernel(double a, const void *x, double b, void *y, int dt, int64_t n) {
    CT_GRID_STRIDE(i, n) {
        // __dmul_rn/__dadd_rn: no fused multiply-add, each product rounded
        // as the CPU's is, so the result is the CPU's bit for bit.
        double v = __dmul_rn(a, ct_ld<double>(x, dt, i));
        if (b != 0) v = __dadd_rn(v, __dmul_rn(b, ct_ld<double>(y, dt, i)));
        ct_st<double>(y, dt, i, v);
    }
}

ct_status ct_cuda_axpby(double a, const void *x, double b, void *y, ct_dtype dtype, size_t n) {
    ct_status st = check_dtype(dtype, "axpby");
    if (st != CT_OK) return st;
    if (n && (!x || !y)) return ct_error(CT_ERR_INVALID_ARG, "cuda axpby: buffer is NULL");
    if (n == 0) return CT_OK;
    axpby_kernel<<<ct_cuda_blocks((int64_t)n), CT_CUDA_THREADS, 0, stream()>>>(a, x, b, y, dtype, (int64_t)n);
    CT_CUDA_LAUNCHED("axpby", "%zu elements", n);
    return CT_OK;
}
