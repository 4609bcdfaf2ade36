/* Builder and shape rule of the fused recurrent op (core/rnn.h).
 *
 * One op per layer and direction, the recurrence inside the kernel: as a
 * graph of per-step ops a sequence of T steps would be T times a dozen
 * nodes (each a kernel launch and an arena buffer), and the graph would
 * change with T. Fused, the graph is the same size for every length, stays
 * plannable and capturable, and a backend is free to run the steps as it
 * likes (OpenBLAS products per step on the CPU, per-step cell kernels on
 * the GPU). The cost: the record R keeps W values per unit and step alive
 * from the forward pass to the backward (6 per unit for an LSTM, what its
 * backward needs without recomputation), as autograd would. */
#include "core/rnn.h"
#include "core/shape_util.h"
#include "ctrain/amp.h" /* the ct_precision enum only */
#include "ctrain/ops.h"

int ct_rnn_gates(int cell) {
    switch (cell) {
    case CT_RNN_TANH:
    case CT_RNN_RELU: return 1;
    case CT_LSTM: return 4;
    case CT_GRU: return 3;
    default: return 0;
    }
}

int ct_rnn_record_units(int cell) {
    switch (cell) {
    case CT_RNN_TANH:
    case CT_RNN_RELU: return 1;
    case CT_LSTM: return 6;
    case CT_GRU: return 5;
    default: return 0;
    }
}

const char *ct_rnn_cell_name(ct_rnn_cell cell) {
    switch (cell) {
    case CT_RNN_TANH: return "rnn_tanh";
    case CT_RNN_RELU: return "rnn_relu";
    case CT_LSTM: return "lstm";
    case CT_GRU: return "gru";
    default: return NULL;
    }
}

/* One operand's shape against what it must be; false (recorded) if not. */
static bool shape_is(ct_graph *g, const char *what, ct_node x, ct_shape want) {
    char s0[CT_SHAPE_STR], s1[CT_SHAPE_STR];
    const ct_nodeinfo *n = &g->nodes[x];
    if (ct_shape_equal(n->shape, want)) return true;
    ct_graph_fail(g, CT_ERR_SHAPE, "rnn: %s is %s; it must be %s", what, SHP(n->shape, s0), SHP(want, s1));
    return false;
}

/* xp's dtype and shape [B, T, G*H] with T >= 1 decide the others'. */
static bool operands_ok(ct_graph *g, int cell, const ct_node *in, int n) {
    static const char *const names[5] = {"xp", "w_hh", "b_hh", "h0", "c0"};
    char s[CT_SHAPE_STR];
    const ct_nodeinfo *nx = &g->nodes[in[0]], *nw = &g->nodes[in[1]];
    for (int i = 0; i < n; i++) {
        const ct_nodeinfo *ni = &g->nodes[in[i]];
        if (!ct_dtype_is_float(ni->dtype) || ni->dtype != nx->dtype) {
            ct_graph_fail(g, CT_ERR_DTYPE, "rnn: %s is %s; every operand must have xp's float dtype (%s)", names[i],
                          ct_dtype_name(ni->dtype), ct_dtype_name(nx->dtype));
            return false;
        }
    }
    int64_t G = ct_rnn_gates(cell);
    if (nw->shape.ndim != 2 || nw->shape.dim[0] != G * nw->shape.dim[1] || nw->shape.dim[1] < 1) {
        ct_graph_fail(g, CT_ERR_SHAPE, "rnn: w_hh is %s; it must be [%lld * H, H] for a %s cell", SHP(nw->shape, s),
                      (long long)G, ct_rnn_cell_name((ct_rnn_cell)cell));
        return false;
    }
    int64_t H = nw->shape.dim[1];
    if (nx->shape.ndim != 3 || nx->shape.dim[2] != G * H || nx->shape.dim[1] < 1) {
        ct_graph_fail(g, CT_ERR_SHAPE, "rnn: xp is %s; it must be [B, T >= 1, %lld]", SHP(nx->shape, s),
                      (long long)(G * H));
        return false;
    }
    int64_t B = nx->shape.dim[0];
    if (!shape_is(g, "b_hh", in[2], (ct_shape){1, {G * H}})) return false;
    for (int i = 3; i < n; i++)
        if (!shape_is(g, names[i], in[i], (ct_shape){2, {B, H}})) return false;
    return true;
}

/* The half dtype of an F32 recurrence under an autocast policy: the
 * matrix products around it (the input projection, dW_ih) are in that
 * dtype, and so is its backward's product over all the steps, dW_hh
 * (grad_rnn.c), and every step's hidden product (the kernels round h_prev
 * or dhp and W_hh to it). The state, the cell and the sums stay F32
 * (docs/language_models.md says why). */
static ct_dtype half_of(const ct_graph *g, ct_dtype dt) {
    if (dt != CT_F32) return CT_F32;
    if (g->precision == CT_PRECISION_BF16) return CT_BF16;
    if (g->precision == CT_PRECISION_FP16) return CT_F16;
    return CT_F32;
}

ct_node ct_rnn_op(ct_graph *g, int cell, bool reverse, ct_node xp, ct_node w_hh, ct_node b_hh, ct_node h0,
                  ct_node c0) {
    if (!ct_rnn_cell_name((ct_rnn_cell)cell))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "rnn: unknown cell %d", cell);
    int n = cell == CT_LSTM ? 5 : 4;
    ct_node in[5] = {xp, w_hh, b_hh, h0, c0};
    if (!ct_graph_inputs_ok(g, "rnn", in, n) || !operands_ok(g, cell, in, n)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[xp];
    int64_t H = g->nodes[w_hh].shape.dim[1];
    ct_shape out = {3, {nx->shape.dim[0], nx->shape.dim[1], ct_rnn_record_units(cell) * H}};
    ct_attrs a = {.cell = cell, .reverse = reverse, .half = half_of(g, nx->dtype)};
    return ct_graph_add(g, CT_OP_RNN, nx->dtype, out, in, n, &a);
}
