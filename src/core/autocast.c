/* The autocast rule and cast folding (see core/autocast.h). */
#include "core/autocast.h"
#include "ctrain/amp.h" /* the ct_precision enum only: core does not call src/amp */
#include "ctrain/ops.h"

ct_node ct_cast_folded(ct_graph *g, ct_node x, ct_dtype dtype) {
    if (!ct_graph_inputs_ok(g, "cast", &x, 1)) return CT_NO_NODE;
    if (g->nodes[x].dtype == dtype) return x;
    /* Newest first: the cast a builder wants is usually the one just made. */
    for (ct_node i = g->n - 1; i > x; i--) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_CAST && nd->in[0] == x && nd->dtype == dtype) return i;
    }
    return ct_cast(g, x, dtype);
}

static bool castable(ct_dtype dt) { return dt == CT_F32 || dt == CT_F16 || dt == CT_BF16; }

bool ct_autocast_operands(ct_graph *g, ct_node *in, int n, ct_dtype *out_dtype) {
    *out_dtype = g->nodes[in[0]].dtype;
    if (g->precision == CT_PRECISION_FP32) return true;
    for (int i = 0; i < n; i++)
        if (!castable(g->nodes[in[i]].dtype)) return true;
    ct_dtype half = g->precision == CT_PRECISION_BF16 ? CT_BF16 : CT_F16;
    for (int i = 0; i < n; i++)
        if ((in[i] = ct_cast_folded(g, in[i], half)) == CT_NO_NODE) return false;
    *out_dtype = CT_F32;
    return true;
}

ct_node ct_autocast_param(ct_graph *g, ct_node p, ct_dtype x_dtype) {
    ct_dtype pdt = g->nodes[p].dtype;
    if (pdt == x_dtype) return p;
    if (g->precision != CT_PRECISION_FP32 && castable(pdt) && castable(x_dtype)) return p;
    return ct_cast_folded(g, p, x_dtype);
}
