/* torch.nn.RNN, LSTM and GRU as graphs (ctrain/rnn.h).
 *
 * Each layer and direction: the input projection of every step as one
 * matrix product (x W_ih^T + b_ih over [B, T, I], under the precision
 * policy like any linear layer), then the fused recurrent op (core/rnn.h)
 * whose record R holds h (and c) per step; the layer's output and the final
 * states are slices of R. The recurrence runs in the input's dtype for F64
 * and in F32 otherwise: under FP16/BF16 the products of the input
 * projection are half, the state carried from step to step is not (a
 * state rounded to half at every step drifts over long sequences).
 *
 *   layer_dir()    the parameters of one layer and direction, the
 *                  projection, the op, the slices
 *   ct_recurrent() checks, the stack of layers, dropout, the layout
 */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#include "core/autocast.h"
#include "core/error.h"
#include "core/rnn.h"
#include "ctrain/ops.h"
#include "nn/nn_internal.h"

ct_status ct_rnn_config_check(const ct_rnn_config *c) {
    if (!c) return ct_error(CT_ERR_INVALID_ARG, "rnn: config is NULL");
    if (!ct_rnn_cell_name(c->cell)) return ct_error(CT_ERR_INVALID_ARG, "rnn: unknown cell %d", (int)c->cell);
    if (c->input_size < 1)
        return ct_error(CT_ERR_INVALID_ARG, "rnn: input_size = %lld; it must be >= 1", (long long)c->input_size);
    if (c->hidden_size < 1)
        return ct_error(CT_ERR_INVALID_ARG, "rnn: hidden_size = %lld; it must be >= 1", (long long)c->hidden_size);
    if (c->num_layers < 1)
        return ct_error(CT_ERR_INVALID_ARG, "rnn: num_layers = %lld; it must be >= 1", (long long)c->num_layers);
    if (!(c->dropout >= 0.0 && c->dropout < 1.0))
        return ct_error(CT_ERR_INVALID_ARG, "rnn: dropout %g is outside [0, 1)", c->dropout);
    return CT_OK;
}

int64_t ct_rnn_num_params(const ct_rnn_config *c) {
    int64_t GH = ct_rnn_gates(c->cell) * c->hidden_size, D = c->bidirectional ? 2 : 1, n = 0;
    for (int64_t l = 0; l < c->num_layers; l++) {
        int64_t in = l == 0 ? c->input_size : D * c->hidden_size;
        n += D * (GH * in + GH * c->hidden_size + (c->no_bias ? 0 : 2 * GH));
    }
    return n;
}

/* A zero-filled constant (the missing initial states and biases). */
static ct_node zeros(ct_graph *g, ct_dtype dt, ct_shape s) {
    void *z = calloc((size_t)ct_shape_numel(s) + 1, ct_dtype_size(dt));
    if (!z) return ct_graph_fail(g, CT_ERR_OOM, "rnn: out of memory for a zero state");
    ct_node n = ct_constant(g, dt, s, z);
    free(z);
    return n;
}

typedef struct layer_ctx {
    const char *name;
    const ct_rnn_config *c;
    int64_t B, T, H, D;
    ct_dtype rdt;      /* the recurrence's dtype */
    ct_node h0, c0;    /* [L*D, B, H] as the recurrence's dtype, or CT_NO_NODE */
    ct_node *hn, *cn;  /* per (layer, direction): [1, B, H] */
} layer_ctx;

/* One parameter "<name>.<leaf>_l<k><suffix>", uniform +-1/sqrt(H). */
static ct_node param(ct_graph *g, const layer_ctx *lc, const char *leaf, int64_t l, int dir, ct_shape s, ct_dtype pdt) {
    char suffix[64], ctx[128];
    snprintf(suffix, sizeof suffix, "%s_l%lld%s", leaf, (long long)l, dir ? "_reverse" : "");
    snprintf(ctx, sizeof ctx, "%s, hidden_size %lld", ct_rnn_cell_name(lc->c->cell), (long long)lc->H);
    double k = 1.0 / sqrt((double)lc->H);
    return ct_nn_state(g, "rnn", lc->name, suffix, false, s, pdt, ct_init_uniform(-k, k), ctx);
}

/* The initial state of (layer l, direction dir) from s0 [L*D, B, H], or zeros. */
static ct_node initial(ct_graph *g, const layer_ctx *lc, ct_node s0, int64_t idx) {
    if (s0 == CT_NO_NODE) return zeros(g, lc->rdt, (ct_shape){2, {lc->B, lc->H}});
    return ct_reshape(g, ct_slice(g, s0, 0, idx, idx + 1), (ct_shape){2, {lc->B, lc->H}});
}

/* Layer l, direction dir over x [B, T, I]: returns its output [B, T, H]
 * and stores its final states. */
static ct_node layer_dir(ct_graph *g, const layer_ctx *lc, ct_node x, int64_t l, int dir) {
    const ct_rnn_config *c = lc->c;
    int64_t H = lc->H, GH = ct_rnn_gates(c->cell) * H, in = g->nodes[x].shape.dim[2], idx = l * lc->D + dir;
    ct_dtype xdt = g->nodes[x].dtype, pdt = ct_nn_param_dtype(g, xdt);
    ct_node w_ih = param(g, lc, "weight_ih", l, dir, (ct_shape){2, {GH, in}}, pdt);
    ct_node w_hh = param(g, lc, "weight_hh", l, dir, (ct_shape){2, {GH, H}}, pdt);
    ct_node b_ih = c->no_bias ? CT_NO_NODE : param(g, lc, "bias_ih", l, dir, (ct_shape){1, {GH}}, pdt);
    ct_node b_hh = c->no_bias ? zeros(g, lc->rdt, (ct_shape){1, {GH}})
                              : param(g, lc, "bias_hh", l, dir, (ct_shape){1, {GH}}, pdt);
    if (w_ih == CT_NO_NODE || w_hh == CT_NO_NODE || b_hh == CT_NO_NODE) return CT_NO_NODE;
    ct_node xp = ct_matmul(g, x, ct_autocast_param(g, w_ih, xdt), false, true);
    if (xp == CT_NO_NODE) return CT_NO_NODE;
    if (!c->no_bias) {
        if (b_ih == CT_NO_NODE) return CT_NO_NODE;
        xp = ct_add(g, xp, ct_cast_folded(g, ct_autocast_param(g, b_ih, xdt), g->nodes[xp].dtype));
    }
    xp = ct_cast_folded(g, xp, lc->rdt);
    ct_node h0 = initial(g, lc, lc->h0, idx);
    ct_node c0 = c->cell == CT_LSTM ? initial(g, lc, lc->c0, idx) : CT_NO_NODE;
    ct_node r = ct_rnn_op(g, c->cell, dir == 1, xp, ct_cast_folded(g, w_hh, lc->rdt), ct_cast_folded(g, b_hh, lc->rdt),
                          h0, c0);
    if (r == CT_NO_NODE) return CT_NO_NODE;
    int64_t last = dir ? 0 : lc->T - 1;
    ct_node at_last = ct_slice(g, r, 1, last, last + 1);
    lc->hn[idx] = ct_reshape(g, ct_slice(g, at_last, 2, 0, H), (ct_shape){3, {1, lc->B, H}});
    if (c->cell == CT_LSTM)
        lc->cn[idx] = ct_reshape(g, ct_slice(g, at_last, 2, H, 2 * H), (ct_shape){3, {1, lc->B, H}});
    return ct_slice(g, r, 2, 0, H);
}

/* h0 or c0 (what) must be [L*D, B, H] when given; returns it as the
 * recurrence's dtype, CT_NO_NODE when not given, or sets *bad. */
static ct_node state_in(ct_graph *g, const layer_ctx *lc, const char *what, ct_node s0, bool *bad) {
    if (s0 == CT_NO_NODE) return CT_NO_NODE;
    char s[CT_SHAPE_STR], w[CT_SHAPE_STR];
    ct_shape want = {3, {lc->c->num_layers * lc->D, lc->B, lc->H}};
    if (s0 < 0 || s0 >= g->n || !ct_dtype_is_float(g->nodes[s0].dtype) || !ct_shape_equal(g->nodes[s0].shape, want)) {
        *bad = true;
        if (s0 < 0 || s0 >= g->n)
            ct_graph_fail(g, CT_ERR_INVALID_ARG, "rnn '%s': %s is not a node of this graph", lc->name, what);
        else
            ct_graph_fail(g, CT_ERR_SHAPE, "rnn '%s': %s is %s %s; it must be float %s (num_layers * directions, batch, hidden_size)",
                          lc->name, what, ct_dtype_name(g->nodes[s0].dtype), SHP(g->nodes[s0].shape, s), SHP(want, w));
        return CT_NO_NODE;
    }
    return ct_cast_folded(g, s0, lc->rdt);
}

/* x's shape: [T, B, I] (or [B, T, I]), T >= 1, I the configured size. */
static bool input_ok(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x) {
    char s[CT_SHAPE_STR];
    const ct_shape *xs = &g->nodes[x].shape;
    const char *layout = c->batch_first ? "[B, T, input_size]" : "[T, B, input_size]";
    if (xs->ndim != 3 || xs->dim[2] != c->input_size) {
        ct_graph_fail(g, CT_ERR_SHAPE, "rnn '%s': x is %s; it must be %s with input_size %lld", name, SHP(*xs, s),
                      layout, (long long)c->input_size);
        return false;
    }
    if (xs->dim[c->batch_first ? 1 : 0] < 1 || xs->dim[c->batch_first ? 0 : 1] < 1) {
        ct_graph_fail(g, CT_ERR_SHAPE, "rnn '%s': x is %s: the sequence length and the batch must be >= 1", name,
                      SHP(*xs, s));
        return false;
    }
    return true;
}

/* The layers over x [B, T, I]: the last layer's output [B, T, D*H]. */
static ct_node stack(ct_graph *g, const layer_ctx *lc, ct_node x) {
    const ct_rnn_config *c = lc->c;
    for (int64_t l = 0; l < c->num_layers && x != CT_NO_NODE; l++) {
        ct_node y[2] = {layer_dir(g, lc, x, l, 0), CT_NO_NODE};
        if (lc->D == 2) y[1] = layer_dir(g, lc, x, l, 1);
        x = lc->D == 2 ? ct_concat(g, y, 2, 2) : y[0];
        if (l + 1 < c->num_layers && c->dropout > 0) x = ct_dropout(g, x, c->dropout);
    }
    return x;
}

ct_node ct_recurrent(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_node c0,
                     ct_rnn_out *out) {
    if (out) *out = (ct_rnn_out){CT_NO_NODE, CT_NO_NODE, CT_NO_NODE};
    if (!ct_nn_begin(g, "rnn", name, x, true)) return CT_NO_NODE;
    if (ct_rnn_config_check(c) != CT_OK) return ct_graph_fail(g, ct_last_status(), "%s (layer '%s')", ct_last_error(), name);
    if (!input_ok(g, name, c, x)) return CT_NO_NODE;
    if (c->cell != CT_LSTM && c0 != CT_NO_NODE)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "rnn '%s': c0 is given but a %s cell has no cell state", name,
                             ct_rnn_cell_name(c->cell));
    const ct_shape xs = g->nodes[x].shape;
    int64_t L = c->num_layers, D = c->bidirectional ? 2 : 1;
    layer_ctx lc = {.name = name, .c = c, .B = xs.dim[c->batch_first ? 0 : 1], .T = xs.dim[c->batch_first ? 1 : 0],
                    .H = c->hidden_size, .D = D, .rdt = g->nodes[x].dtype == CT_F64 ? CT_F64 : CT_F32};
    bool bad = false;
    lc.h0 = state_in(g, &lc, "h0", h0, &bad);
    lc.c0 = bad ? CT_NO_NODE : state_in(g, &lc, "c0", c0, &bad);
    if (bad) return CT_NO_NODE;
    lc.hn = calloc((size_t)(2 * L * D), sizeof(ct_node));
    if (!lc.hn) return ct_graph_fail(g, CT_ERR_OOM, "rnn '%s': out of memory", name);
    lc.cn = lc.hn + L * D;
    ct_node xb = c->batch_first ? x : ct_permute(g, x, (const int[]){1, 0, 2});
    ct_node y = stack(g, &lc, xb);
    if (y != CT_NO_NODE && !c->batch_first) y = ct_permute(g, y, (const int[]){1, 0, 2});
    ct_node hn = y == CT_NO_NODE ? CT_NO_NODE : L * D == 1 ? lc.hn[0] : ct_concat(g, lc.hn, (int)(L * D), 0);
    ct_node cn = y == CT_NO_NODE || c->cell != CT_LSTM ? CT_NO_NODE
                 : L * D == 1                          ? lc.cn[0]
                                                       : ct_concat(g, lc.cn, (int)(L * D), 0);
    free(lc.hn);
    if (y == CT_NO_NODE || hn == CT_NO_NODE || (c->cell == CT_LSTM && cn == CT_NO_NODE)) return CT_NO_NODE;
    if (out) *out = (ct_rnn_out){y, hn, cn};
    return y;
}

ct_node ct_rnn(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_rnn_out *out) {
    if (c && c->cell != CT_RNN_TANH && c->cell != CT_RNN_RELU)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "rnn '%s': ct_rnn takes the cell CT_RNN_TANH or CT_RNN_RELU, got %d",
                             name ? name : "", (int)c->cell);
    return ct_recurrent(g, name, c, x, h0, CT_NO_NODE, out);
}

ct_node ct_lstm(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_node c0,
                ct_rnn_out *out) {
    if (!c) return ct_recurrent(g, name, c, x, h0, c0, out);
    ct_rnn_config k = *c;
    k.cell = CT_LSTM;
    return ct_recurrent(g, name, &k, x, h0, c0, out);
}

ct_node ct_gru(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_rnn_out *out) {
    if (!c) return ct_recurrent(g, name, c, x, h0, CT_NO_NODE, out);
    ct_rnn_config k = *c;
    k.cell = CT_GRU;
    return ct_recurrent(g, name, &k, x, h0, CT_NO_NODE, out);
}
