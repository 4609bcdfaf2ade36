/* CPU reference kernels of the fused recurrent op and its backward (the op:
 * core/rnn.h; each unit's arithmetic: core/rnn_cell.h).
 *
 * The recurrence as written: each step's hidden product h_prev W_hh^T
 * (forward) or dhp W_hh (backward) is one OpenBLAS product over the batch,
 * as the matmul op's are: dgemm for F64 (double sums), sgemm for the other
 * dtypes (float sums over H or G*H terms, W_hh rounded to float once per
 * call; under an FP16/BF16 policy, attr.half, both operands rounded to
 * that half dtype, as the policy's other products take them). That
 * product is the whole cost of a step, and sgemm runs it about twice as
 * fast; the F64 gradient checks and the PyTorch reference run the
 * dgemm path. Everything else (biases, gates, the cell, the carried
 * gradients) is a plain loop over (batch row, unit) in double (rows split
 * across threads), with the
 * state read from the record as stored, which is what the CUDA kernels do,
 * so both run one recurrence.
 *
 * Scratch, in doubles: W_hh [GH, H], then h_prev and c_prev [B, H], hp
 * [B, GH], the carried dh and dc [B, H], dx and dhp [B, GH]; then for the
 * float path W_hh [GH, H], one [B, H] and one [B, GH] in float. The
 * declared scratch is the larger of that and the F32 fast path's.
 *
 * F32 operands with float math on (ct_cpu_float_math()) take the fast path
 * instead (k_rnn_fast.c: float state and cell, SLEEF's gates, one thread per
 * block of batch rows for the whole recurrence); every other case runs the
 * loops here. */
#include <cblas.h>
#include <string.h>

#include "core/rnn.h"
#include "core/rnn_cell.h"
#include "cpu/cpu_util.h"

/* Batch rows are independent in a step's cell loop: they split across
 * OpenMP threads above this many record values, without changing a bit. */
#define PAR_MIN 8192

typedef struct rk {
    int cell, G, W, drw; /* drw: dR's columns per unit, W or 1 (its h columns only) */
    bool reverse;
    int64_t B, T, H, GH;
    const ct_tview *xp, *r, *dr, *w, *b, *h0, *c0;
    double *wd, *hprev, *cprev, *hp, *dh, *dc, *dx, *dhp;
    bool f64;             /* the products in double (F64 operands) or float */
    ct_dtype half;        /* float products' operands rounded to F16 / BF16 (attr.half), or F32 */
    float *wf, *bh, *bgh; /* the float path's W_hh, [B, H] and [B, GH] */
} rk;

static size_t scratch_doubles(int64_t B, int64_t H, int64_t GH) {
    return (size_t)(GH * H + 4 * B * H + 3 * B * GH) + (size_t)(GH * H + B * H + B * GH + 2) / 2;
}

size_t ct_cpu_rnn_scratch(const ct_kargs *k) {
    if ((k->op != CT_OP_RNN && k->op != CT_OP_RNN_GRAD) || k->n_in < 4) return 0;
    const ct_shape *w = &k->in[k->op == CT_OP_RNN ? 1 : 2].shape; /* w_hh */
    if (w->ndim != 2 || k->in[3].shape.ndim != 2) return 0;
    int64_t B = k->in[3].shape.dim[0];
    size_t ref = scratch_doubles(B, w->dim[1], w->dim[0]) * sizeof(double);
    size_t fast = ct_cpu_rnn_fast_scratch(B, w->dim[1], w->dim[0]);
    return ref > fast ? ref : fast;
}

/* Checks the views against one another (the builder's rules again: tests
 * call kernels directly) and fills r. */
static ct_status rk_args(const ct_kargs *k, const char *op, rk *r) {
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    int cell = k->attr->cell, G = ct_rnn_gates(cell);
    if (G == 0) return ct_error(CT_ERR_INTERNAL, "cpu %s: unknown cell %d", op, cell);
    int n = cell == CT_LSTM ? 5 : 4;
    if (k->n_in != n) return ct_error(CT_ERR_INTERNAL, "cpu %s: expected %d inputs, got %d", op, n, k->n_in);
    bool grad = k->op == CT_OP_RNN_GRAD;
    const ct_tview *w = &k->in[grad ? 2 : 1], *seq = &k->in[0];
    if (w->shape.ndim != 2 || seq->shape.ndim != 3 || w->shape.dim[0] != G * w->shape.dim[1])
        return ct_error(CT_ERR_SHAPE, "cpu %s: w_hh must be [G*H, H] and the sequence [B, T, .]", op);
    *r = (rk){.cell = cell, .G = G, .W = ct_rnn_record_units(cell), .reverse = k->attr->reverse,
              .B = seq->shape.dim[0], .T = seq->shape.dim[1], .H = w->shape.dim[1], .w = w, .h0 = &k->in[3],
              .c0 = n > 4 ? &k->in[4] : NULL};
    r->GH = G * r->H;
    if (grad) r->r = &k->in[0], r->dr = &k->in[1];
    else r->xp = &k->in[0], r->b = &k->in[2];
    int64_t want_seq = r->B * r->T * (grad ? r->W * r->H : r->GH);
    r->drw = grad && k->in[1].numel == r->B * r->T * r->H ? 1 : r->W;
    if (seq->numel != want_seq || (grad && k->in[1].numel != r->B * r->T * r->drw * r->H) ||
        r->h0->numel != r->B * r->H ||
        (r->c0 && r->c0->numel != r->B * r->H))
        return ct_error(CT_ERR_SHAPE, "cpu %s: the operands' sizes disagree", op);
    for (int i = 0; i < n; i++)
        if (!ct_dtype_is_float(k->in[i].dtype)) return ct_error(CT_ERR_DTYPE, "cpu %s: operand %d is not float", op, i);
    if (r->B * r->T > 0 && !k->scratch) return ct_error(CT_ERR_INTERNAL, "cpu %s: no scratch", op);
    double *p = k->scratch;
    r->wd = p, p += r->GH * r->H;
    r->hprev = p, p += r->B * r->H;
    r->cprev = p, p += r->B * r->H;
    r->hp = p, p += r->B * r->GH;
    r->dh = p, p += r->B * r->H;
    r->dc = p, p += r->B * r->H;
    r->dx = p, p += r->B * r->GH;
    r->dhp = p, p += r->B * r->GH;
    r->f64 = w->dtype == CT_F64;
    r->half = r->f64 ? CT_F32 : ct_rnn_products_dtype(k->attr);
    r->wf = (float *)p, r->bh = r->wf + r->GH * r->H, r->bgh = r->bh + r->B * r->H;
    return CT_OK;
}

/* The time index of the s-th step walked. */
static int64_t step_t(const rk *r, int64_t s) { return r->reverse ? r->T - 1 - s : s; }

/* h_prev and c_prev of every batch row for step s: h0, c0 at s = 0, else
 * the record of step s - 1 as stored. */
static void load_prev(const rk *r, const ct_tview *rec, int64_t s) {
    int64_t tp = s > 0 ? step_t(r, s - 1) : -1, WH = r->W * r->H;
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t u = 0; u < r->H; u++) {
            int64_t i = b * r->H + u, ri = (b * r->T + tp) * WH + u;
            r->hprev[i] = tp < 0 ? ct_ld(r->h0->data, r->h0->dtype, i) : ct_ld(rec->data, rec->dtype, ri);
            if (r->c0) r->cprev[i] = tp < 0 ? ct_ld(r->c0->data, r->c0->dtype, i) : ct_ld(rec->data, rec->dtype, ri + r->H);
        }
}

static void widen_w(const rk *r) {
    for (int64_t i = 0; i < r->GH * r->H; i++) r->wd[i] = ct_ld(r->w->data, r->w->dtype, i);
    if (!r->f64)
        for (int64_t i = 0; i < r->GH * r->H; i++) r->wf[i] = ct_round_half((float)r->wd[i], r->half);
}

/* hp [B, GH] = h_prev [B, H] W_hh^T. */
static void product_fwd(const rk *r) {
    int B = (int)r->B, H = (int)r->H, GH = (int)r->GH;
    if (r->f64) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, GH, H, 1.0, r->hprev, H, r->wd, H, 0.0, r->hp, GH);
        return;
    }
    for (int64_t i = 0; i < r->B * r->H; i++) r->bh[i] = ct_round_half((float)r->hprev[i], r->half);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, GH, H, 1.0f, r->bh, H, r->wf, H, 0.0f, r->bgh, GH);
    for (int64_t i = 0; i < r->B * r->GH; i++) r->hp[i] = r->bgh[i];
}

/* dh [B, H] += dhp [B, GH] W_hh. */
static void product_bwd(const rk *r) {
    int B = (int)r->B, H = (int)r->H, GH = (int)r->GH;
    if (r->f64) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, GH, 1.0, r->dhp, GH, r->wd, H, 1.0, r->dh, H);
        return;
    }
    for (int64_t i = 0; i < r->B * r->GH; i++) r->bgh[i] = ct_round_half((float)r->dhp[i], r->half);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, GH, 1.0f, r->bgh, GH, r->wf, H, 0.0f, r->bh, H);
    for (int64_t i = 0; i < r->B * r->H; i++) r->dh[i] += r->bh[i];
}

static ct_status k_rnn(const ct_kargs *k) {
    rk r;
    ct_status st = rk_args(k, "rnn", &r);
    if (st != CT_OK || r.B * r.T == 0) return st;
    if (ct_cpu_rnn_fast(k, r.cell, r.reverse, r.B, r.T, r.H, -1)) return CT_OK;
    widen_w(&r);
    const ct_tview *out = &k->out;
    int64_t H = r.H, GH = r.GH, WH = r.W * H;
    for (int64_t s = 0; s < r.T; s++) {
        int64_t t = step_t(&r, s);
        load_prev(&r, out, s);
        product_fwd(&r);
#pragma omp parallel for schedule(static) if (r.B > 1 && r.B * H * r.W >= PAR_MIN)
        for (int64_t b = 0; b < r.B; b++)
            for (int64_t u = 0; u < H; u++) {
                double x[4], hp[4], rec[6];
                int64_t xo = (b * r.T + t) * GH + u, ro = (b * r.T + t) * WH + u;
                for (int j = 0; j < r.G; j++) {
                    x[j] = ct_ld(r.xp->data, r.xp->dtype, xo + j * H);
                    hp[j] = r.hp[b * GH + j * H + u] + ct_ld(r.b->data, r.b->dtype, j * H + u);
                }
                ct_rnn_cell_fwd(r.cell, x, hp, r.hprev[b * H + u], r.cprev[b * H + u], rec);
                for (int j = 0; j < r.W; j++) ct_st(out->data, out->dtype, ro + j * H, rec[j]);
            }
    }
    return CT_OK;
}

/* One step of the backward, the s-th walked: dx and dhp of every unit from
 * the carried dh, dc and dR at this step; then the carries for step s - 1
 * (dc_prev; dh_direct + W_hh^T dhp, one product). dx goes to out when it is
 * the gates' gradient. */
static void grad_step(const rk *r, int64_t s, const ct_tview *out, bool store_dx) {
    int64_t t = step_t(r, s), H = r->H, GH = r->GH, WH = r->W * H;
    load_prev(r, r->r, s);
#pragma omp parallel for schedule(static) if (r->B > 1 && r->B * H * r->W >= PAR_MIN)
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t u = 0; u < H; u++) {
            double rec[6], drec[6], dx[4], dhp[4], dcp, dhd;
            int64_t i = b * H + u, ro = (b * r->T + t) * WH + u;
            for (int j = 0; j < r->W; j++) {
                rec[j] = ct_ld(r->r->data, r->r->dtype, ro + j * H);
                drec[j] = j < r->drw ? ct_ld(r->dr->data, r->dr->dtype, (b * r->T + t) * r->drw * H + u + j * H) : 0.0;
            }
            ct_rnn_cell_bwd(r->cell, rec, drec, r->dh[i], r->dc[i], r->hprev[i], r->cprev[i], dx, dhp, &dcp, &dhd);
            for (int j = 0; j < r->G; j++) {
                r->dx[b * GH + j * H + u] = dx[j];
                r->dhp[b * GH + j * H + u] = dhp[j];
                if (store_dx) ct_st(out->data, out->dtype, (b * r->T + t) * GH + j * H + u, dx[j]);
            }
            r->dc[i] = dcp;
            r->dh[i] = dhd;
        }
    product_bwd(r);
}

static ct_status k_rnn_grad(const ct_kargs *k) {
    rk r;
    ct_status st = rk_args(k, "rnn_grad", &r);
    if (st != CT_OK) return st;
    int which = k->attr->which;
    if (which < CT_RNN_GRAD_GATES || which > CT_RNN_GRAD_C0 || (which == CT_RNN_GRAD_C0 && !r.c0))
        return ct_error(CT_ERR_INTERNAL, "cpu rnn_grad: unknown gradient %d", which);
    int64_t want = which == CT_RNN_GRAD_GATES ? r.B * r.T * r.GH : r.B * r.H;
    if (k->out.numel != want) return ct_error(CT_ERR_SHAPE, "cpu rnn_grad: the output has the wrong size");
    if (r.B * r.T == 0) return CT_OK;
    if (ct_cpu_rnn_fast(k, r.cell, r.reverse, r.B, r.T, r.H, which)) return CT_OK;
    widen_w(&r);
    memset(r.dh, 0, (size_t)(r.B * r.H) * sizeof(double));
    memset(r.dc, 0, (size_t)(r.B * r.H) * sizeof(double));
    for (int64_t s = r.T - 1; s >= 0; s--) grad_step(&r, s, &k->out, which == CT_RNN_GRAD_GATES);
    if (which != CT_RNN_GRAD_GATES) {
        const double *src = which == CT_RNN_GRAD_H0 ? r.dh : r.dc;
        for (int64_t i = 0; i < r.B * r.H; i++) ct_st(k->out.data, k->out.dtype, i, src[i]);
    }
    return CT_OK;
}

void ct_cpu_register_rnn(ct_kernel_fn *t) {
    t[CT_OP_RNN] = k_rnn;
    t[CT_OP_RNN_GRAD] = k_rnn_grad;
}
