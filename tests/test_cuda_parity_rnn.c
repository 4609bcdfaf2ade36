/* GPU vs CPU: the fused recurrent op (CT_OP_RNN) and its backward
 * (CT_OP_RNN_GRAD: the gates' gradient, dh0, dc0, from a full record
 * gradient dR and from its h columns alone) for every cell (tanh and
 * relu RNN, LSTM, GRU), both directions, in F32, F64, F16 and BF16
 * (tests/cuda_parity.h: fresh random inputs, poisoned outputs, every
 * element checked).
 *
 * Shapes: odd lengths (T = 1, 17, 41), hidden sizes that are not a
 * multiple of a warp (5, 33) and one larger than a block (300), batches of
 * 1 to 4. W_hh is drawn in [-0.2, 0.2] so that the recurrences contract (a
 * relu RNN with larger weights grows without bound, and every difference
 * with it), and the backward's record in [-0.9, 0.9] (its gates multiply
 * the carried gradients: f for the LSTM's dc, z for the GRU's dh).
 *
 * Tolerances. The CPU computes in double and rounds once per stored value;
 * the GPU computes in float for F32/F16/BF16 (double for F64). Both read
 * each step's state back from the record as stored, so in F16 and BF16 a
 * state that rounds the other way on one side carries one unit of the last
 * place into the next steps; the contracting recurrences keep that from
 * growing. Bounds: F32 rtol 1e-4, atol 1e-4; F64 1e-10; F16 1e-2; BF16
 * 6e-2 (a few units of the last place of the stored state), with an
 * absolute bound of 1e-7 for dh0 and dc0 (small after many steps). They have not
 * yet been checked on a GPU.
 *
 * Half products: F32 operands with attr.half (an FP16/BF16 policy's
 * recurrence) round h_prev / dhp and W_hh to half in every step's product
 * on both sides. A state or dhp that differs in float's last place between
 * the two can round to the neighbouring half value: one term off by a unit
 * of half's last place (4e-3 for BF16) times a weight (at most 0.2), damped
 * by the recurrence; rtol and atol 1e-2 for BF16, 2e-3 for F16. */
#include "cuda_parity.h"

#include "core/rnn.h"

typedef struct rnn_spec {
    const char *what;
    int64_t b, t, h;
} rnn_spec;

static const rnn_spec rnn_specs[] = {
    {"T 17, H 33", 3, 17, 33},
    {"T 1, H 5", 2, 1, 5},
    {"T 41, H 300 (more than a block)", 1, 41, 300},
    {"batch 4, T 6, H 64", 4, 6, 64},
};
#define N_RNN_SPECS ((int)(sizeof rnn_specs / sizeof rnn_specs[0]))

static const char *const rnn_which_names[4] = {"forward", "gates", "h0", "c0"};

static void rnn_tol(cp_case *c) {
    switch (c->out_dtype) {
    case CT_F64: c->rtol = 1e-10, c->atol = 1e-10; break;
    case CT_F32: c->rtol = 1e-4, c->atol = 1e-4; break;
    case CT_F16: c->rtol = 1e-2, c->atol = 1e-2; break;
    default: c->rtol = 6e-2, c->atol = 6e-2; break;
    }
}

/* which: -1 the forward op, else a ct_rnn_grad. */
/* dr_h: RNN_GRAD's dR is the h columns only, [B, T, H] (core/rnn.h). */
static cp_case rnn_case(const rnn_spec *s, int cell, bool reverse, ct_dtype dt, int which, bool dr_h, char *name,
                        size_t cap) {
    int64_t G = ct_rnn_gates(cell), W = ct_rnn_record_units(cell), B = s->b, T = s->t, H = s->h;
    snprintf(name, cap, "rnn %s %s%s%s %s %s", ct_rnn_cell_name((ct_rnn_cell)cell), rnn_which_names[which + 1],
             reverse ? " reverse" : "", dr_h ? " (dR of h columns)" : "", s->what, ct_dtype_name(dt));
    cp_case c = {.name = name, .op = which < 0 ? CT_OP_RNN : CT_OP_RNN_GRAD,
                 .attr = {.cell = cell, .reverse = reverse, .which = which < 0 ? 0 : which},
                 .n_in = cell == CT_LSTM ? 5 : 4, .out_dtype = dt};
    ct_shape state = CP_SHAPE(B, H), w = CP_SHAPE(G * H, H);
    if (which < 0) {
        c.out_shape = CP_SHAPE(B, T, W * H);
        c.in[0] = cp_f(dt, CP_SHAPE(B, T, G * H));
        c.in[1] = cp_range(dt, w, -0.2, 0.2);
        c.in[2] = cp_f(dt, CP_SHAPE(G * H));
    } else {
        c.out_shape = which == CT_RNN_GRAD_GATES ? CP_SHAPE(B, T, G * H) : state;
        c.in[0] = cp_range(dt, CP_SHAPE(B, T, W * H), -0.9, 0.9);
        c.in[1] = cp_f(dt, dr_h ? CP_SHAPE(B, T, H) : CP_SHAPE(B, T, W * H));
        c.in[2] = cp_range(dt, w, -0.2, 0.2);
    }
    c.in[3] = cp_f(dt, state);
    c.in[4] = cp_f(dt, state);
    rnn_tol(&c);
    /* dh0 after many contracting steps is small: mostly a relative bound */
    if (which == CT_RNN_GRAD_H0 || which == CT_RNN_GRAD_C0) c.atol = dt == CT_F64 ? 1e-14 : 1e-7;
    return c;
}

static void rnn_run_all(int cell, int which) {
    for (int si = 0; si < N_RNN_SPECS; si++)
        /* after 41 contracting steps dh0 underflows F16: the shorter cases */
        for (int di = 0; di < CP_N_FLOAT_DTYPES; di++)
            for (int rev = 0; rev <= 1; rev++)
                for (int dr_h = 0; dr_h <= (which >= 0); dr_h++) {
                    if (which >= CT_RNN_GRAD_H0 && rnn_specs[si].t > 20) continue;
                    char name[192];
                    cp_case c = rnn_case(&rnn_specs[si], cell, rev, cp_float_dtype(di), which, dr_h, name,
                                         sizeof name);
                    cp_run(&c);
                }
}

OP_TEST(cuda_parity, rnn_forward, CT_OP_RNN) {
    CP_NEED_GPU();
    for (int cell = CT_RNN_TANH; cell <= CT_GRU; cell++) rnn_run_all(cell, -1);
}

OP_TEST(cuda_parity, rnn_grad_gates, CT_OP_RNN_GRAD) {
    CP_NEED_GPU();
    for (int cell = CT_RNN_TANH; cell <= CT_GRU; cell++) rnn_run_all(cell, CT_RNN_GRAD_GATES);
}

OP_TEST(cuda_parity, rnn_grad_initial_states, CT_OP_RNN_GRAD) {
    CP_NEED_GPU();
    for (int cell = CT_RNN_TANH; cell <= CT_GRU; cell++) rnn_run_all(cell, CT_RNN_GRAD_H0);
    rnn_run_all(CT_LSTM, CT_RNN_GRAD_C0);
}

/* F32 recurrences built under an FP16/BF16 policy: half operands in every
 * step's product. which: -1 the forward, else the gates' gradient. */
static void rnn_half_run(int which) {
    const ct_dtype halves[2] = {CT_BF16, CT_F16};
    for (int cell = CT_RNN_TANH; cell <= CT_GRU; cell++)
        for (int hi = 0; hi < 2; hi++)
            for (int si = 0; si < N_RNN_SPECS; si++) {
                char name[192], full[224];
                cp_case c = rnn_case(&rnn_specs[si], cell, si % 2 == 1, CT_F32, which, false, name, sizeof name);
                snprintf(full, sizeof full, "%s, %s products", name, ct_dtype_name(halves[hi]));
                c.name = full;
                c.attr.half = halves[hi];
                c.rtol = c.atol = halves[hi] == CT_BF16 ? 1e-2 : 2e-3;
                cp_run(&c);
            }
}

OP_TEST(cuda_parity, rnn_half_products_forward, CT_OP_RNN) {
    CP_NEED_GPU();
    rnn_half_run(-1);
}

OP_TEST(cuda_parity, rnn_half_products_grad, CT_OP_RNN_GRAD) {
    CP_NEED_GPU();
    rnn_half_run(CT_RNN_GRAD_GATES);
}
