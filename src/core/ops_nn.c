/* Builders and shape rules of embedding, dropout and the losses. */
#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

ct_node ct_embedding(ct_graph *g, ct_node weight, ct_node indices) {
    ct_node in[2] = {weight, indices};
    if (!ct_graph_inputs_ok(g, "embedding", in, 2)) return CT_NO_NODE;
    const ct_nodeinfo *nw = &g->nodes[weight], *ni = &g->nodes[indices];
    char s[CT_SHAPE_STR];
    if (nw->shape.ndim != 2 || !ct_dtype_is_float(nw->dtype))
        return ct_graph_fail(g, CT_ERR_SHAPE, "embedding: weight must be a float [V, D] table, got %s %s",
                             ct_dtype_name(nw->dtype), SHP(nw->shape, s));
    if (ni->dtype != CT_I32)
        return ct_graph_fail(g, CT_ERR_DTYPE, "embedding: indices must be i32, got %s",
                             ct_dtype_name(ni->dtype));
    if (ni->shape.ndim + 1 > CT_MAX_DIMS)
        return ct_graph_fail(g, CT_ERR_SHAPE, "embedding: indices %s leave no room for the D axis",
                             SHP(ni->shape, s));
    ct_shape out = ni->shape;
    out.dim[out.ndim++] = nw->shape.dim[1];
    return ct_graph_add(g, CT_OP_EMBEDDING, nw->dtype, out, in, 2, NULL);
}

ct_node ct_dropout(ct_graph *g, ct_node x, double p) {
    if (!ct_graph_inputs_ok(g, "dropout", &x, 1)) return CT_NO_NODE;
    if (!(p >= 0.0 && p <= 1.0))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "dropout: p = %g is outside [0, 1]", p);
    if (!ct_dtype_is_float(g->nodes[x].dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "dropout: input is %s; it takes floats",
                             ct_dtype_name(g->nodes[x].dtype));
    /* Each dropout node draws from its own Philox stream; its backward
     * reuses the stream, so forward and backward see the same mask. */
    ct_attrs a = {.alpha = p, .stream = ++g->next_stream};
    return ct_graph_add(g, CT_OP_DROPOUT, g->nodes[x].dtype, g->nodes[x].shape, &x, 1, &a);
}

ct_node ct_cross_entropy(ct_graph *g, ct_node logits, ct_node labels, double label_smoothing) {
    ct_node in[2] = {logits, labels};
    if (!ct_graph_inputs_ok(g, "cross_entropy", in, 2)) return CT_NO_NODE;
    const ct_nodeinfo *nl = &g->nodes[logits], *ny = &g->nodes[labels];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (nl->shape.ndim != 2 || !ct_dtype_is_float(nl->dtype))
        return ct_graph_fail(g, CT_ERR_SHAPE, "cross_entropy: logits must be float [N, C], got %s %s",
                             ct_dtype_name(nl->dtype), SHP(nl->shape, sa));
    if (ny->dtype != CT_I32)
        return ct_graph_fail(g, CT_ERR_DTYPE, "cross_entropy: labels must be i32, got %s",
                             ct_dtype_name(ny->dtype));
    if (ny->shape.ndim != 1 || ny->shape.dim[0] != nl->shape.dim[0])
        return ct_graph_fail(g, CT_ERR_SHAPE, "cross_entropy: labels %s do not match logits %s (want [N])",
                             SHP(ny->shape, sb), SHP(nl->shape, sa));
    if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "cross_entropy: label_smoothing %g is outside [0, 1)",
                             label_smoothing);
    return ct_graph_add(g, CT_OP_CROSS_ENTROPY, nl->dtype, (ct_shape){0, {0}}, in, 2,
                        &(ct_attrs){.alpha = label_smoothing});
}

static ct_node pairwise_loss(ct_graph *g, ct_op op, ct_node a, ct_node b) {
    const char *name = ct_op_name(op);
    ct_node in[2] = {a, b};
    if (!ct_graph_inputs_ok(g, name, in, 2)) return CT_NO_NODE;
    const ct_nodeinfo *na = &g->nodes[a], *nb = &g->nodes[b];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (na->dtype != nb->dtype || !ct_dtype_is_float(na->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s: inputs must be floats of one dtype, got %s and %s",
                             name, ct_dtype_name(na->dtype), ct_dtype_name(nb->dtype));
    if (!ct_shape_equal(na->shape, nb->shape))
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: shapes differ: %s and %s", name,
                             SHP(na->shape, sa), SHP(nb->shape, sb));
    return ct_graph_add(g, op, na->dtype, (ct_shape){0, {0}}, in, 2, NULL);
}

ct_node ct_mse(ct_graph *g, ct_node pred, ct_node target) {
    return pairwise_loss(g, CT_OP_MSE, pred, target);
}
ct_node ct_bce_with_logits(ct_graph *g, ct_node logits, ct_node target) {
    return pairwise_loss(g, CT_OP_BCE_WITH_LOGITS, logits, target);
}
