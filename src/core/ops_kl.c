/* Builder and shape rule of kl_div, the Kullback-Leibler divergence of
 * knowledge distillation (docs/compression.md), with PyTorch's
 * F.kl_div(input, target, reduction='batchmean') semantics: input holds
 * log-probabilities, target probabilities, and the sum of
 * target * (log target - input) is divided by the batch size, not the
 * element count, so it is the mean KL per sample. */
#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

ct_node ct_kl_div(ct_graph *g, ct_node input, ct_node target) {
    ct_node in[2] = {input, target};
    if (!ct_graph_inputs_ok(g, "kl_div", in, 2)) return CT_NO_NODE;
    const ct_nodeinfo *na = &g->nodes[input], *nb = &g->nodes[target];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (na->dtype != nb->dtype || !ct_dtype_is_float(na->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "kl_div: input and target must be floats of one dtype, got %s and %s",
                             ct_dtype_name(na->dtype), ct_dtype_name(nb->dtype));
    if (!ct_shape_equal(na->shape, nb->shape))
        return ct_graph_fail(g, CT_ERR_SHAPE, "kl_div: input %s and target %s differ in shape", SHP(na->shape, sa),
                             SHP(nb->shape, sb));
    /* batchmean divides by the first axis: a scalar has none. */
    if (na->shape.ndim < 1 || na->shape.dim[0] < 1)
        return ct_graph_fail(g, CT_ERR_SHAPE, "kl_div: input %s has no batch axis to average over",
                             SHP(na->shape, sa));
    return ct_graph_add(g, CT_OP_KL_DIV, na->dtype, (ct_shape){0, {0}}, in, 2, NULL);
}
