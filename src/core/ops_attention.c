/* Builder and shape rule of the fused scaled dot-product attention
 * (declared in ctrain/ops.h; the op is described in core/attention.h).
 *
 * One op forward and one internal op backward (ATTENTION_GRAD: one node
 * for all three gradients, or one per gradient wanted), as for the norms:
 * composed from matmul, softmax and a mask, attention keeps a [B, H, T, T]
 * matrix per layer alive from the forward pass to the backward; fused, a
 * backend computes it tile by tile (flash attention) and nothing of size
 * T x T is ever stored. */
#include <math.h>

#include "core/attention.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

double ct_attention_default_scale(int64_t head_dim) {
    return head_dim >= 1 ? 1.0 / sqrt((double)head_dim) : 1.0;
}

/* q, k and v: float, four axes, one dtype and one shape. Query and key
 * lengths must be equal (the op has no cross attention yet), which is why
 * k's and v's shapes are compared with q's whole. */
static bool operands_ok(ct_graph *g, const char *op, const ct_node in[3]) {
    static const char *const names[3] = {"q", "k", "v"};
    char s0[CT_SHAPE_STR], s1[CT_SHAPE_STR];
    const ct_nodeinfo *nq = &g->nodes[in[0]];
    for (int i = 0; i < 3; i++) {
        const ct_nodeinfo *n = &g->nodes[in[i]];
        if (!ct_dtype_is_float(n->dtype)) {
            ct_graph_fail(g, CT_ERR_DTYPE, "%s: %s is %s; it takes floats", op, names[i], ct_dtype_name(n->dtype));
            return false;
        }
        if (n->shape.ndim != 4) {
            ct_graph_fail(g, CT_ERR_SHAPE, "%s: %s %s has %d ax%s; it needs [B, H, T, D] (batch, heads, positions, head size)",
                          op, names[i], SHP(n->shape, s0), n->shape.ndim, n->shape.ndim == 1 ? "is" : "es");
            return false;
        }
    }
    for (int i = 1; i < 3; i++) {
        const ct_nodeinfo *n = &g->nodes[in[i]];
        if (n->dtype != nq->dtype) {
            ct_graph_fail(g, CT_ERR_DTYPE, "%s: q is %s but %s is %s; q, k and v need one dtype (use ct_cast)", op,
                          ct_dtype_name(nq->dtype), names[i], ct_dtype_name(n->dtype));
            return false;
        }
        if (!ct_shape_equal(n->shape, nq->shape)) {
            const char *why = n->shape.dim[2] != nq->shape.dim[2]
                                  ? "the query and key lengths T must be equal"
                                  : "q, k and v need one shape [B, H, T, D]";
            ct_graph_fail(g, CT_ERR_SHAPE, "%s: q %s and %s %s differ: %s", op, SHP(nq->shape, s0), names[i],
                          SHP(n->shape, s1), why);
            return false;
        }
    }
    return true;
}

ct_node ct_attention(ct_graph *g, ct_node q, ct_node k, ct_node v, bool causal, double scale) {
    const char *op = "attention";
    ct_node in[3] = {q, k, v};
    if (!ct_graph_inputs_ok(g, op, in, 3) || !operands_ok(g, op, in)) return CT_NO_NODE;
    if (!(scale > 0.0 && isfinite(scale)))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                             "attention: scale = %g; it must be finite and > 0 (PyTorch's default is "
                             "ct_attention_default_scale(D) = 1/sqrt(D))",
                             scale);
    const ct_nodeinfo *nq = &g->nodes[q];
    ct_attrs a = {.alpha = scale, .causal = causal};
    return ct_graph_add(g, CT_OP_ATTENTION, nq->dtype, nq->shape, in, 3, &a);
}
