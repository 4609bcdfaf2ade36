/* Backward rule of fake quantization (core/fakequant.h): the
 * straight-through estimator, one FAKE_QUANT_GRAD node that passes dy where
 * the forward value was inside the integer range. The scale and zero point
 * get no gradient, as in torch.fake_quantize_per_*_affine. */
#include "core/fakequant.h"

bool ct_grad_fake_quant(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    ct_node x = nd->in[0];
    if (!acc->needs[x]) return true;
    ct_node in[4] = {x, nd->in[1], nd->in[2], gy};
    ct_node d = ct_graph_add(g, CT_OP_FAKE_QUANT_GRAD, g->nodes[x].dtype, g->nodes[x].shape, in, 4, &nd->attr);
    return ct_grad_accumulate(g, acc, x, d);
}
