/* Backward rule of the fused attention (core/attention.h).
 *
 * With S = scale * q k^T (masked), P = softmax(S) by rows, y = P v:
 *   dv = P^T dy,  dP = dy v^T,  dS = P * (dP - rowsum(P * dP)),
 *   dq = scale * dS k,  dk = scale * dS^T q.
 * ATTENTION_GRAD nodes read q, k, v and dy and recompute P (flash
 * attention's backward): the forward keeps nothing for them. When all three
 * gradients are wanted, one node makes them together ([3, B, H, T, D]),
 * sliced apart here: P and dP are then computed once, not three and two
 * times. Otherwise one node per gradient wanted, so an input that needs no
 * gradient costs nothing. */
#include "core/attention.h"
#include "core/autocast.h"
#include "ctrain/ops.h"

/* dq, dk, dv from one QKV node, each a slice of its leading axis reshaped
 * to its input's shape (q, k and v have one shape and dtype). */
static bool all_three(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, const ct_node in[4]) {
    ct_attrs a = nd->attr;
    a.which = CT_ATTN_GRAD_QKV;
    ct_shape qs = g->nodes[in[0]].shape, s = {qs.ndim + 1, {3}};
    for (int i = 0; i < qs.ndim; i++) s.dim[i + 1] = qs.dim[i];
    ct_node all = ct_graph_add(g, CT_OP_ATTENTION_GRAD, g->nodes[in[0]].dtype, s, in, 4, &a);
    for (int which = CT_ATTN_GRAD_Q; which <= CT_ATTN_GRAD_V; which++) {
        ct_node d = ct_reshape(g, ct_slice(g, all, 0, which, which + 1), qs);
        if (d == CT_NO_NODE || !ct_grad_accumulate(g, acc, nd->in[which], d)) return false;
    }
    return true;
}

bool ct_grad_attention(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    ct_node q = nd->in[0];
    /* The kernels load each input in its own dtype, but one dtype for all
     * four keeps them simple to reason about; gy has y's dtype already in
     * every graph the builders make, so this folds to gy. */
    ct_node in[4] = {nd->in[0], nd->in[1], nd->in[2], ct_cast_folded(g, gy, g->nodes[q].dtype)};
    if (in[3] == CT_NO_NODE) return false;
    if (acc->needs[in[0]] && acc->needs[in[1]] && acc->needs[in[2]]) return all_three(g, acc, nd, in);
    for (int which = CT_ATTN_GRAD_Q; which <= CT_ATTN_GRAD_V; which++) {
        ct_node t = nd->in[which];
        if (!acc->needs[t]) continue;
        ct_attrs a = nd->attr;
        a.which = which;
        ct_node d = ct_graph_add(g, CT_OP_ATTENTION_GRAD, g->nodes[t].dtype, g->nodes[t].shape, in, 4, &a);
        if (!ct_grad_accumulate(g, acc, t, d)) return false;
    }
    return true;
}
