/* Backward rule of the fused recurrent op (core/rnn.h).
 *
 * The backward recurrence runs in RNN_GRAD nodes (one per gradient wanted:
 * the gates' pre-activations D [B, T, G*H], which are xp's gradient, and
 * dh0, dc0 when an initial state needs one). The hidden side's parameters
 * then need no recurrence: with Dh the gradient of hW = W_hh h_prev + b_hh
 * at every step (D, except the GRU's n gate: D_n * r, since n = tanh(xW_n
 * + r hW_n), plus the gradient of the record's hW_n column) and Hprev the state each step started from,
 *   dW_hh = Dh^T Hprev over all B*T rows,  db_hh = the sum of Dh's rows,
 * one matrix product and one sum over the whole sequence, as cuDNN and
 * PyTorch compute them. */
#include "core/autocast.h"
#include "core/rnn.h"
#include "ctrain/ops.h"

/* The record's h columns [B, T, H]: the layer's output, which nn/rnn.c
 * sliced already when it built the layer (that node, not a second copy). */
static ct_node h_columns(ct_graph *g, ct_node r, int64_t H) {
    for (ct_node i = r + 1; i < g->n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_SLICE && nd->in[0] == r && nd->attr.axis == 2 && nd->attr.start == 0 &&
            nd->attr.end == H)
            return i;
    }
    return ct_slice(g, r, 2, 0, H);
}

/* The state each step started from, [B, T, H]: h0 then h_0 .. h_{T-2}
 * forward, h_1 .. h_{T-1} then h0 in reverse. */
static ct_node prev_states(ct_graph *g, ct_node r, ct_node h0, bool reverse, int64_t B, int64_t T, int64_t H) {
    ct_node hs = h_columns(g, r, H);
    ct_node first = ct_reshape(g, h0, (ct_shape){3, {B, 1, H}});
    if (T == 1) return first;
    ct_node parts[2];
    if (!reverse) {
        parts[0] = first;
        parts[1] = ct_slice(g, hs, 1, 0, T - 1);
    } else {
        parts[0] = ct_slice(g, hs, 1, 1, T);
        parts[1] = first;
    }
    return ct_concat(g, parts, 2, 1);
}

/* dW_hh and db_hh from D (the rule above); gr is the record's gradient,
 * full [B, T, W*H] or its h columns only [B, T, H]. */
static bool hidden_grads(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node r, ct_node gr, ct_node d) {
    ct_node w = nd->in[1], b = nd->in[2], h0 = nd->in[3];
    const ct_shape *xs = &g->nodes[nd->in[0]].shape;
    int64_t B = xs->dim[0], T = xs->dim[1], GH = xs->dim[2], H = g->nodes[w].shape.dim[1];
    ct_node dh = d;
    if (nd->attr.cell == CT_GRU) {
        /* hp_n is also a column of the record: its own gradient adds */
        ct_node dn = ct_mul(g, ct_slice(g, d, 2, 2 * H, 3 * H), ct_slice(g, r, 2, H, 2 * H));
        if (g->nodes[gr].shape.dim[2] != H) dn = ct_add(g, dn, ct_slice(g, gr, 2, 4 * H, 5 * H));
        ct_node parts[2] = {ct_slice(g, d, 2, 0, 2 * H), dn};
        dh = ct_concat(g, parts, 2, 2);
    }
    ct_shape rows = {2, {B * T, GH}}, hrows = {2, {B * T, H}};
    if (acc->needs[b]) {
        /* the LSTM's and plain RNN's dh is D, whose sum is b_ih's gradient too */
        ct_node db = ct_cast_folded(g, ct_grad_sum_to(g, dh, (ct_shape){1, {GH}}), g->nodes[b].dtype);
        if (!ct_grad_accumulate(g, acc, b, db)) return false;
    }
    if (acc->needs[w]) {
        ct_node hp = prev_states(g, r, h0, nd->attr.reverse, B, T, H);
        ct_dtype dt = g->nodes[w].dtype, half = nd->attr.half;
        /* Under an autocast policy, as the forward's products: half
         * operands, F32 result. D cast once: the input projection's
         * backward product reads the same cast (ct_cast_folded). */
        ct_dtype op_dt = half != CT_F32 && dt == CT_F32 ? half : dt;
        ct_node dh2 = ct_reshape(g, ct_cast_folded(g, dh, op_dt), rows);
        hp = ct_reshape(g, ct_cast_folded(g, hp, op_dt), hrows);
        ct_node dw = ct_matmul_typed(g, dh2, hp, true, false, dt, false);
        if (!ct_grad_accumulate(g, acc, w, ct_cast_folded(g, dw, dt))) return false;
    }
    return true;
}

/* The record's gradient as RNN_GRAD takes it: when only the layer's
 * output was read (gy places dy [B, T, H] in the h columns, zeros
 * elsewhere: a SLICE_GRAD), dy itself, so that no zero-filled [B, T, W*H]
 * copy is written and read back at every step; else gy. */
static ct_node record_grad(const ct_graph *g, ct_node gy, int64_t H) {
    const ct_nodeinfo *s = &g->nodes[gy];
    if (s->op != CT_OP_SLICE_GRAD || s->attr.axis != 2 || s->attr.start != 0) return gy;
    return g->nodes[s->in[0]].shape.dim[2] == H ? s->in[0] : gy;
}

bool ct_grad_rnn(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    int n = nd->n_in;
    ct_node dr = record_grad(g, gy, g->nodes[nd->in[1]].shape.dim[1]);
    ct_node gin[5] = {y, ct_cast_folded(g, dr, g->nodes[y].dtype), nd->in[1], nd->in[3], n > 4 ? nd->in[4] : 0};
    if (gin[1] == CT_NO_NODE) return false;
    const ct_nodeinfo *nx = &g->nodes[nd->in[0]];
    if (acc->needs[nd->in[0]] || acc->needs[nd->in[1]] || acc->needs[nd->in[2]]) {
        ct_attrs a = nd->attr;
        a.which = CT_RNN_GRAD_GATES;
        ct_node d = ct_graph_add(g, CT_OP_RNN_GRAD, nx->dtype, nx->shape, gin, n, &a);
        if (!ct_grad_accumulate(g, acc, nd->in[0], d)) return false;
        if ((acc->needs[nd->in[1]] || acc->needs[nd->in[2]]) && !hidden_grads(g, acc, nd, y, gin[1], d)) return false;
    }
    for (int which = CT_RNN_GRAD_H0; which <= CT_RNN_GRAD_C0; which++) {
        int k = which == CT_RNN_GRAD_H0 ? 3 : 4;
        if (k >= n || !acc->needs[nd->in[k]]) continue;
        ct_attrs a = nd->attr;
        a.which = which;
        const ct_nodeinfo *ns = &g->nodes[nd->in[k]];
        ct_node d = ct_graph_add(g, CT_OP_RNN_GRAD, ns->dtype, ns->shape, gin, n, &a);
        if (!ct_grad_accumulate(g, acc, nd->in[k], d)) return false;
    }
    return true;
}
