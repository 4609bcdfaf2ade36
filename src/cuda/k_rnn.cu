// CUDA kernels of the fused recurrent op and its backward (the op:
// core/rnn.h; each unit's arithmetic, shared with the CPU reference
// src/cpu/k_rnn.c: core/rnn_cell.h).
//
// The steps depend on one another, so each step is a launch (all on the
// context's stream, so a CUDA Graph captures them like any other kernel):
//
//   forward    rnn_fwd_step: one thread per (batch row, unit) computes its
//              G hidden products hp = b_hh + h_prev . W_hh rows (reading
//              W_hh transposed, staged once per call in scratch, so that
//              the threads of a warp read consecutive addresses), then the
//              cell, and writes the unit's record. h_prev (and c_prev) are
//              the previous step's record as stored, or h0 (c0), as on the
//              CPU.
//   backward   per step walked backwards, rnn_bwd_cell: one thread per
//              (row, unit) takes the carried dh, dc and the record's
//              gradient, writes the gates' gradient (when it is the
//              output) and dhp to scratch, and the next carries' own
//              parts (f dc; z dh); then rnn_bwd_hidden: one thread per
//              (row, unit k) adds W_hh^T dhp, reading W_hh's column k
//              (consecutive k: consecutive addresses).
//
// Each output element is written by one thread and every sum runs in a
// fixed order (over k, or over the G*H gate rows): no atomics, the same
// bits run to run. Compute type: float for F32/F16/BF16 storage, double for
// F64, as every kernel here; the CPU computes in double (the parity
// tolerances in tests/test_cuda_parity_rnn.c).
//
// Under an FP16/BF16 policy (attr.half) the per-step products take half
// operands (h_prev or dhp, and W_hh, rounded; rnn_half), float sums.
//
// Cost: the input projection is one cuBLAS product in the graph before
// the op; the per-step products here are plain dot products (H
// multiply-adds per gate and unit), not tensor-core GEMMs. cuDNN's RNN API
// is not used yet (docs/language_models.md).
#include "cuda/cuda_common.cuh"

extern "C" {
#include "core/rnn.h"
}
#include "core/rnn_cell.h"

struct rnn_args {
    int cell, G, W, which, drw; // drw: dR's columns per unit, W or 1 (its h columns only)
    bool reverse;
    int64_t B, T, H, GH;
    const void *xp, *w, *b, *h0, *c0, *r, *dr;
    int xpdt, wdt, bdt, h0dt, c0dt, rdt, drdt;
    void *out;
    int odt;
    int half; // the products' operands rounded to this (F16, BF16) under a policy, or F32
};

// v as a product's half operand holds it (the CPU's ct_round_half): under
// an FP16/BF16 policy the per-step products take half operands, as the
// policy's other products do; sums, state and cell stay float.
template <typename C>
__device__ __forceinline__ C rnn_half(C v, int half) {
    if (half == CT_BF16) return (C)__bfloat162float(__float2bfloat16_rn((float)v));
    if (half == CT_F16) return (C)__half2float(__float2half_rn((float)v));
    return v;
}

__host__ __device__ __forceinline__ int64_t rnn_step_t(const rnn_args &a, int64_t s) {
    return a.reverse ? a.T - 1 - s : s;
}

// The state unit u of row b starts step s from: h0 / c0 at s = 0, else
// the record of step s - 1 (src: the record; col 0 for h, 1 for c).
template <typename C>
__device__ __forceinline__ C rnn_prev(const rnn_args &a, const void *rec, int rdt, int64_t s, int64_t b, int64_t u,
                                      int col) {
    if (s == 0) return col == 0 ? ct_ld<C>(a.h0, a.h0dt, b * a.H + u) : ct_ld<C>(a.c0, a.c0dt, b * a.H + u);
    int64_t tp = rnn_step_t(a, s - 1);
    return ct_ld<C>(rec, rdt, (b * a.T + tp) * a.W * a.H + col * a.H + u);
}

// wt [H, GH] = W_hh [GH, H] transposed, in the compute type.
template <typename C>
__global__ void rnn_transpose(rnn_args a, C *wt) {
    CT_GRID_STRIDE(i, a.GH * a.H) {
        int64_t j = i / a.H, k = i - j * a.H;
        wt[k * a.GH + j] = rnn_half<C>(ct_ld<C>(a.w, a.wdt, i), a.half);
    }
}

template <typename C>
__global__ void rnn_fwd_step(rnn_args a, const C *wt, int64_t s) {
    int64_t t = rnn_step_t(a, s);
    CT_GRID_STRIDE(i, a.B * a.H) {
        int64_t b = i / a.H, u = i - b * a.H;
        C x[4], hp[4], rec[6];
        for (int j = 0; j < a.G; j++) {
            x[j] = ct_ld<C>(a.xp, a.xpdt, (b * a.T + t) * a.GH + j * a.H + u);
            hp[j] = (C)0;
        }
        for (int64_t k = 0; k < a.H; k++) {
            C hk = rnn_half<C>(rnn_prev<C>(a, a.out, a.odt, s, b, k, 0), a.half);
            const C *wk = wt + k * a.GH + u;
            for (int j = 0; j < a.G; j++) hp[j] += hk * wk[j * a.H];
        }
        for (int j = 0; j < a.G; j++) hp[j] += ct_ld<C>(a.b, a.bdt, j * a.H + u);
        C hprev = rnn_prev<C>(a, a.out, a.odt, s, b, u, 0);
        C cprev = a.cell == CT_LSTM ? rnn_prev<C>(a, a.out, a.odt, s, b, u, 1) : (C)0;
        ct_rnn_cell_fwd(a.cell, x, hp, hprev, cprev, rec);
        int64_t ro = (b * a.T + t) * a.W * a.H + u;
        for (int j = 0; j < a.W; j++) ct_st<C>(a.out, a.odt, ro + j * a.H, rec[j]);
    }
}

// Carries for step s: dh, dc (read), dh_next, dc_next (written), dhp [B, GH].
template <typename C>
struct rnn_carry {
    const C *dh, *dc;
    C *dh_next, *dc_next, *dhp;
};

template <typename C>
__global__ void rnn_bwd_cell(rnn_args a, rnn_carry<C> c, int64_t s) {
    int64_t t = rnn_step_t(a, s);
    CT_GRID_STRIDE(i, a.B * a.H) {
        int64_t b = i / a.H, u = i - b * a.H, ro = (b * a.T + t) * a.W * a.H + u;
        C rec[6], drec[6], dx[4], dhp[4], dcp, dhd;
        for (int j = 0; j < a.W; j++) {
            rec[j] = ct_ld<C>(a.r, a.rdt, ro + j * a.H);
            drec[j] = j < a.drw ? ct_ld<C>(a.dr, a.drdt, (b * a.T + t) * a.drw * a.H + u + j * a.H) : (C)0;
        }
        C hprev = rnn_prev<C>(a, a.r, a.rdt, s, b, u, 0);
        C cprev = a.cell == CT_LSTM ? rnn_prev<C>(a, a.r, a.rdt, s, b, u, 1) : (C)0;
        ct_rnn_cell_bwd(a.cell, rec, drec, c.dh[i], c.dc[i], hprev, cprev, dx, dhp, &dcp, &dhd);
        for (int j = 0; j < a.G; j++) {
            c.dhp[b * a.GH + j * a.H + u] = dhp[j];
            if (a.which == CT_RNN_GRAD_GATES) ct_st<C>(a.out, a.odt, (b * a.T + t) * a.GH + j * a.H + u, dx[j]);
        }
        c.dc_next[i] = dcp;
        c.dh_next[i] = dhd;
    }
}

// dh_next[b, k] += sum over the gate rows j of dhp[b, j] W_hh[j, k].
template <typename C>
__global__ void rnn_bwd_hidden(rnn_args a, rnn_carry<C> c) {
    CT_GRID_STRIDE(i, a.B * a.H) {
        int64_t b = i / a.H, k = i - b * a.H;
        C acc = (C)0;
        const C *d = c.dhp + b * a.GH;
        for (int64_t j = 0; j < a.GH; j++)
            acc += rnn_half<C>(d[j], a.half) * rnn_half<C>(ct_ld<C>(a.w, a.wdt, j * a.H + k), a.half);
        c.dh_next[i] += acc;
    }
}

template <typename C>
__global__ void rnn_fill(C *p, int64_t n) {
    CT_GRID_STRIDE(i, n) p[i] = (C)0;
}

template <typename C>
__global__ void rnn_store(rnn_args a, const C *src) {
    CT_GRID_STRIDE(i, a.B * a.H) ct_st<C>(a.out, a.odt, i, src[i]);
}

// ---------------------------------------------------------------- host side

// The checks of the CPU kernel (rk_args), then a.
static ct_status rnn_args_of(const ct_kargs *k, const char *op, rnn_args *a) {
    ct_status st = ct_cuda_check_args(k, true);
    if (st != CT_OK) return st;
    int cell = k->attr->cell, G = ct_rnn_gates(cell);
    if (G == 0) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "unknown cell %d", cell);
    int n = cell == CT_LSTM ? 5 : 4;
    if (k->n_in != n) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "expected %d inputs, got %d", n, k->n_in);
    bool grad = k->op == CT_OP_RNN_GRAD;
    const ct_tview &w = k->in[grad ? 2 : 1], &seq = k->in[0];
    if (w.shape.ndim != 2 || seq.shape.ndim != 3 || w.shape.dim[0] != G * w.shape.dim[1])
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "w_hh must be [G*H, H] and the sequence [B, T, .]");
    *a = rnn_args{};
    a->cell = cell, a->G = G, a->W = ct_rnn_record_units(cell), a->reverse = k->attr->reverse;
    a->which = grad ? k->attr->which : 0;
    a->B = seq.shape.dim[0], a->T = seq.shape.dim[1], a->H = w.shape.dim[1], a->GH = G * a->H;
    a->w = w.data, a->wdt = w.dtype;
    a->h0 = k->in[3].data, a->h0dt = k->in[3].dtype;
    if (n > 4) a->c0 = k->in[4].data, a->c0dt = k->in[4].dtype;
    if (grad) {
        a->r = seq.data, a->rdt = seq.dtype, a->dr = k->in[1].data, a->drdt = k->in[1].dtype;
    } else {
        a->xp = seq.data, a->xpdt = seq.dtype, a->b = k->in[2].data, a->bdt = k->in[2].dtype;
    }
    a->out = k->out.data, a->odt = k->out.dtype;
    a->half = k->out.dtype == CT_F32 ? ct_rnn_products_dtype(k->attr) : CT_F32;
    int64_t want_seq = a->B * a->T * (grad ? a->W * a->H : a->GH);
    a->drw = grad && k->in[1].numel == a->B * a->T * a->H ? 1 : a->W;
    if (seq.numel != want_seq || (grad && k->in[1].numel != a->B * a->T * a->drw * a->H) ||
        k->in[3].numel != a->B * a->H ||
        (n > 4 && k->in[4].numel != a->B * a->H))
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "the operands' sizes disagree");
    for (int i = 0; i < n; i++)
        if (!ct_dtype_is_float(k->in[i].dtype)) return ct_cuda_arg_error(CT_ERR_DTYPE, op, "operand %d is not float", i);
    return CT_OK;
}

size_t ct_cuda_rnn_scratch(const ct_kargs *k) {
    if ((k->op != CT_OP_RNN && k->op != CT_OP_RNN_GRAD) || k->n_in < 4) return 0;
    const ct_shape &w = k->in[k->op == CT_OP_RNN ? 1 : 2].shape;
    if (w.ndim != 2 || k->in[3].shape.ndim != 2) return 0;
    size_t cs = ct_cuda_is_f64(k->out.dtype) ? sizeof(double) : sizeof(float);
    int64_t B = k->in[3].shape.dim[0], H = w.dim[1], GH = w.dim[0];
    if (k->op == CT_OP_RNN) return (size_t)(GH * H) * cs;
    return (size_t)(4 * B * H + B * GH) * cs;
}

template <typename C>
static ct_status rnn_forward_run(const rnn_args &a, C *wt, cudaStream_t s) {
    rnn_transpose<C><<<ct_cuda_blocks(a.GH * a.H), CT_CUDA_THREADS, 0, s>>>(a, wt);
    CT_CUDA_LAUNCHED("rnn (W_hh transposed)", "[%lld, %lld]", (long long)a.GH, (long long)a.H);
    for (int64_t st = 0; st < a.T; st++) {
        rnn_fwd_step<C><<<ct_cuda_blocks(a.B * a.H), CT_CUDA_THREADS, 0, s>>>(a, wt, st);
        CT_CUDA_LAUNCHED("rnn", "step %lld of %lld, B %lld, H %lld", (long long)st, (long long)a.T, (long long)a.B,
                         (long long)a.H);
    }
    return CT_OK;
}

template <typename C>
static ct_status rnn_grad_run(const rnn_args &a, C *scratch, cudaStream_t s) {
    int64_t BH = a.B * a.H;
    C *dh[2] = {scratch, scratch + BH}, *dc[2] = {scratch + 2 * BH, scratch + 3 * BH}, *dhp = scratch + 4 * BH;
    rnn_fill<C><<<ct_cuda_blocks(4 * BH), CT_CUDA_THREADS, 0, s>>>(scratch, 4 * BH);
    CT_CUDA_LAUNCHED("rnn_grad (zero carries)", "%lld values", (long long)(4 * BH));
    int cur = 0;
    for (int64_t st = a.T - 1; st >= 0; st--) {
        rnn_carry<C> c = {dh[cur], dc[cur], dh[1 - cur], dc[1 - cur], dhp};
        rnn_bwd_cell<C><<<ct_cuda_blocks(BH), CT_CUDA_THREADS, 0, s>>>(a, c, st);
        CT_CUDA_LAUNCHED("rnn_grad (cells)", "step %lld of %lld", (long long)st, (long long)a.T);
        rnn_bwd_hidden<C><<<ct_cuda_blocks(BH), CT_CUDA_THREADS, 0, s>>>(a, c);
        CT_CUDA_LAUNCHED("rnn_grad (W_hh^T dhp)", "step %lld of %lld", (long long)st, (long long)a.T);
        cur = 1 - cur;
    }
    if (a.which == CT_RNN_GRAD_GATES) return CT_OK;
    rnn_store<C><<<ct_cuda_blocks(BH), CT_CUDA_THREADS, 0, s>>>(a, a.which == CT_RNN_GRAD_H0 ? dh[cur] : dc[cur]);
    CT_CUDA_LAUNCHED("rnn_grad (initial state)", "[%lld, %lld]", (long long)a.B, (long long)a.H);
    return CT_OK;
}

static ct_status k_rnn(const ct_kargs *k) {
    rnn_args a;
    ct_status st = rnn_args_of(k, "rnn", &a);
    if (st != CT_OK || a.B * a.T == 0) return st;
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, "rnn", "needs scratch, got none");
    cudaStream_t s = ct_cuda_stream(k);
    return ct_cuda_is_f64(k->out.dtype) ? rnn_forward_run<double>(a, (double *)k->scratch, s)
                                        : rnn_forward_run<float>(a, (float *)k->scratch, s);
}

static ct_status k_rnn_grad(const ct_kargs *k) {
    const char *op = "rnn_grad";
    rnn_args a;
    ct_status st = rnn_args_of(k, op, &a);
    if (st != CT_OK) return st;
    if (a.which < CT_RNN_GRAD_GATES || a.which > CT_RNN_GRAD_C0 || (a.which == CT_RNN_GRAD_C0 && a.cell != CT_LSTM))
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "unknown gradient %d", a.which);
    int64_t want = a.which == CT_RNN_GRAD_GATES ? a.B * a.T * a.GH : a.B * a.H;
    if (k->out.numel != want) return ct_cuda_arg_error(CT_ERR_SHAPE, op, "the output has the wrong size");
    if (a.B * a.T == 0) return CT_OK;
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "needs scratch, got none");
    cudaStream_t s = ct_cuda_stream(k);
    return ct_cuda_is_f64(k->out.dtype) ? rnn_grad_run<double>(a, (double *)k->scratch, s)
                                        : rnn_grad_run<float>(a, (float *)k->scratch, s);
}

void ct_cuda_register_rnn(ct_kernel_fn *t) {
    t[CT_OP_RNN] = k_rnn;
    t[CT_OP_RNN_GRAD] = k_rnn_grad;
}
