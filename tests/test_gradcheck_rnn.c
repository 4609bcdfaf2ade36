/* Float64 gradient checks of the fused recurrent op (core/rnn.h), for
 * every cell, both directions and odd lengths, with respect to the input
 * projections, W_hh, b_hh, h0 and c0 and every column of the record (the
 * gates too: each is an output), and of whole layers (ctrain/rnn.h): 2
 * layers x bidirectional for each cell, with initial states, through the
 * input projections, the parameters and the final states. */
#include <criterion/criterion.h>

#include <ctrain/ctrain.h>

#include "core/rnn.h"
#include "gradcheck.h"

TestSuite(gradcheck_rnn, .timeout = 300);

typedef struct op_ctx {
    int cell;
    bool reverse;
} op_ctx;

static ct_node b_rnn_op(ct_graph *g, const ct_node *x, const void *ctx) {
    const op_ctx *o = ctx;
    return ct_rnn_op(g, o->cell, o->reverse, x[0], x[1], x[2], x[3], o->cell == CT_LSTM ? x[4] : CT_NO_NODE);
}

/* The op on [B, T, G*H] with hidden size H, every operand differentiated. */
static void check_op(int cell, bool reverse, int64_t B, int64_t T, int64_t H) {
    op_ctx ctx = {cell, reverse};
    int64_t GH = ct_rnn_gates(cell) * H;
    char name[96];
    snprintf(name, sizeof name, "rnn %s%s B %lld T %lld H %lld", ct_rnn_cell_name((ct_rnn_cell)cell),
             reverse ? " reverse" : "", (long long)B, (long long)T, (long long)H);
    gc_case c = {.name = name, .op = "rnn", .n_in = cell == CT_LSTM ? 5 : 4, .build = b_rnn_op, .ctx = &ctx};
    c.in[0].shape = (ct_shape){3, {B, T, GH}};
    c.in[1].shape = (ct_shape){2, {GH, H}};
    c.in[2].shape = (ct_shape){1, {GH}};
    c.in[3].shape = (ct_shape){2, {B, H}};
    c.in[4].shape = (ct_shape){2, {B, H}};
    gc_check(&c);
}

static void check_op_all(int cell) {
    for (int rev = 0; rev <= 1; rev++) {
        check_op(cell, rev, 2, 5, 3);
        check_op(cell, rev, 3, 1, 2);
    }
}

OP_TEST(gradcheck_rnn, rnn_tanh_op, CT_OP_RNN) { check_op_all(CT_RNN_TANH); }
OP_TEST(gradcheck_rnn, rnn_relu_op, CT_OP_RNN) { check_op_all(CT_RNN_RELU); }
OP_TEST(gradcheck_rnn, lstm_op, CT_OP_RNN) { check_op_all(CT_LSTM); }
OP_TEST(gradcheck_rnn, gru_op, CT_OP_RNN) { check_op_all(CT_GRU); }

/* ---- whole layers --------------------------------------------------------- */

typedef struct layer_ctx {
    ct_rnn_config cfg;
    bool states; /* h0 (and c0) are inputs x[1] (x[2]) */
} layer_ctx;

/* y, h_n and c_n flattened into one output. */
static ct_node b_layer(ct_graph *g, const ct_node *x, const void *ctx) {
    const layer_ctx *l = ctx;
    bool lstm = l->cfg.cell == CT_LSTM;
    ct_rnn_out o;
    ct_node h0 = l->states ? x[1] : CT_NO_NODE, c0 = l->states && lstm ? x[2] : CT_NO_NODE;
    if (ct_recurrent(g, "rnn", &l->cfg, x[0], h0, c0, &o) == CT_NO_NODE) return CT_NO_NODE;
    ct_node parts[3];
    int n = 0;
    parts[n++] = ct_reshape(g, o.y, (ct_shape){1, {ct_shape_numel(ct_node_shape(g, o.y))}});
    parts[n++] = ct_reshape(g, o.h_n, (ct_shape){1, {ct_shape_numel(ct_node_shape(g, o.h_n))}});
    if (lstm) parts[n++] = ct_reshape(g, o.c_n, (ct_shape){1, {ct_shape_numel(ct_node_shape(g, o.c_n))}});
    return ct_concat(g, parts, n, 0);
}

static void check_layer(int cell, int64_t layers, bool bidir, bool batch_first, bool states) {
    layer_ctx ctx = {.cfg = {.cell = (ct_rnn_cell)cell, .input_size = 3, .hidden_size = 2, .num_layers = layers,
                             .batch_first = batch_first, .bidirectional = bidir},
                     .states = states};
    int64_t T = 3, B = 2, LD = layers * (bidir ? 2 : 1);
    char name[128];
    snprintf(name, sizeof name, "%s %lld layers%s%s%s", ct_rnn_cell_name((ct_rnn_cell)cell), (long long)layers,
             bidir ? " bidirectional" : "", batch_first ? " batch_first" : "", states ? " with h0" : "");
    gc_case c = {.name = name, .op = "rnn", .n_in = 1, .build = b_layer, .ctx = &ctx};
    c.in[0].shape = batch_first ? (ct_shape){3, {B, T, 3}} : (ct_shape){3, {T, B, 3}};
    if (states) {
        c.n_in = cell == CT_LSTM ? 3 : 2;
        c.in[1].shape = c.in[2].shape = (ct_shape){3, {LD, B, 2}};
    }
    gc_check(&c);
}

OP_TEST(gradcheck_rnn, two_layers_bidirectional, CT_OP_RNN) {
    for (int cell = CT_RNN_TANH; cell <= CT_GRU; cell++) {
        check_layer(cell, 2, true, false, true);
        check_layer(cell, 2, true, true, false);
    }
}

OP_TEST(gradcheck_rnn, one_layer_one_direction, CT_OP_RNN) {
    for (int cell = CT_RNN_TANH; cell <= CT_GRU; cell++) check_layer(cell, 1, false, false, cell % 2 == 0);
}
