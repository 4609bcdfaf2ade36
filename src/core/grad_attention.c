/* Backward rule of the fused attention (core/attention.h).
 *
 * With S = scale * q k^T (masked), P = softmax(S) by rows, y = P v:
 *   dv = P^T dy,  dP = dy v^T,  dS = P * (dP - rowsum(P * dP)),
 *   dq = scale * dS k,  dk = scale * dS^T q.
 * Each gradient wanted is one ATTENTION_GRAD node reading q, k, v and dy,
 * which recomputes P (flash attention's backward): the forward keeps
 * nothing for it, and an input that needs no gradient costs nothing. */
#include "core/attention.h"
#include "core/autocast.h"

bool ct_grad_attention(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    ct_node q = nd->in[0];
    /* The kernels load each input in its own dtype, but one dtype for all
     * four keeps them simple to reason about; gy has y's dtype already in
     * every graph the builders make, so this folds to gy. */
    ct_node in[4] = {nd->in[0], nd->in[1], nd->in[2], ct_cast_folded(g, gy, g->nodes[q].dtype)};
    if (in[3] == CT_NO_NODE) return false;
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
