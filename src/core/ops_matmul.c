/* Builder and shape rule of the (batched) matrix product. */
#include "core/autocast.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

ct_node ct_matmul(ct_graph *g, ct_node a, ct_node b, bool trans_a, bool trans_b) {
    ct_node in[2] = {a, b};
    if (!ct_graph_inputs_ok(g, "matmul", in, 2)) return CT_NO_NODE;
    ct_dtype out_dtype;
    if (!ct_autocast_operands(g, in, 2, &out_dtype)) return CT_NO_NODE;
    return ct_matmul_typed(g, in[0], in[1], trans_a, trans_b, out_dtype, g->tf32);
}

ct_node ct_matmul_typed(ct_graph *g, ct_node a, ct_node b, bool trans_a, bool trans_b, ct_dtype out_dtype,
                        bool tf32) {
    ct_node in[2] = {a, b};
    if (!ct_graph_inputs_ok(g, "matmul", in, 2)) return CT_NO_NODE;
    const ct_nodeinfo *na = &g->nodes[a], *nb = &g->nodes[b];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (na->dtype != nb->dtype)
        return ct_graph_fail(g, CT_ERR_DTYPE, "matmul: dtypes differ (%s and %s)",
                             ct_dtype_name(na->dtype), ct_dtype_name(nb->dtype));
    if (!ct_dtype_is_float(na->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "matmul: inputs are %s; it takes floats",
                             ct_dtype_name(na->dtype));
    int ra = na->shape.ndim, rb = nb->shape.ndim;
    if (ra < 2 || rb < 2)
        return ct_graph_fail(g, CT_ERR_SHAPE, "matmul: operands need at least 2 axes, got %s and %s",
                             SHP(na->shape, sa), SHP(nb->shape, sb));
    int64_t m = trans_a ? na->shape.dim[ra - 1] : na->shape.dim[ra - 2];
    int64_t ka = trans_a ? na->shape.dim[ra - 2] : na->shape.dim[ra - 1];
    int64_t kb = trans_b ? nb->shape.dim[rb - 1] : nb->shape.dim[rb - 2];
    int64_t n = trans_b ? nb->shape.dim[rb - 2] : nb->shape.dim[rb - 1];
    if (ka != kb)
        return ct_graph_fail(g, CT_ERR_SHAPE,
                             "matmul: inner sizes differ: %s%s @ %s%s (%lld vs %lld)",
                             SHP(na->shape, sa), trans_a ? "^T" : "", SHP(nb->shape, sb),
                             trans_b ? "^T" : "", (long long)ka, (long long)kb);
    ct_shape ba = {ra - 2, {0}}, bb = {rb - 2, {0}}, out;
    for (int d = 0; d < ra - 2; d++) ba.dim[d] = na->shape.dim[d];
    for (int d = 0; d < rb - 2; d++) bb.dim[d] = nb->shape.dim[d];
    if (!ct_broadcast_shapes(ba, bb, &out))
        return ct_graph_fail(g, CT_ERR_SHAPE, "matmul: batch axes of %s and %s do not broadcast",
                             SHP(na->shape, sa), SHP(nb->shape, sb));
    out.dim[out.ndim++] = m;
    out.dim[out.ndim++] = n;
    bool half = na->dtype == CT_F16 || na->dtype == CT_BF16;
    if (out_dtype != na->dtype && !(half && out_dtype == CT_F32))
        return ct_graph_fail(g, CT_ERR_DTYPE, "matmul: %s operands cannot give a %s result (same dtype, or F32 "
                             "from F16/BF16)", ct_dtype_name(na->dtype), ct_dtype_name(out_dtype));
    /* TF32 only means something for F32 operands. */
    return ct_graph_add(g, CT_OP_MATMUL, out_dtype, out, in, 2,
                        &(ct_attrs){.trans_a = trans_a, .trans_b = trans_b, .tf32 = tf32 && na->dtype == CT_F32});
}
