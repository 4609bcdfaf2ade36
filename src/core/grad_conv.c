/* Backward rules of convolution, pooling and channel dropout.
 *
 * Each gradient is one internal op with its own kernel, as a backend
 * implements them (cuDNN's backward data / filter / bias and pooling
 * backward): composing them from smaller ops would cost extra passes and
 * memory. Pooling's backward reads x and recomputes the window maxima
 * instead of keeping argmax indices from the forward pass, as batch norm
 * recomputes its statistics: nothing has to live across the step. */
#include "core/autocast.h"
#include "core/autodiff.h"

static ct_node grad_node(ct_graph *g, ct_op op, ct_node like, const ct_node *in, int n, const ct_attrs *a) {
    for (int i = 0; i < n; i++)
        if (in[i] == CT_NO_NODE) return CT_NO_NODE;
    return ct_graph_add(g, op, g->nodes[like].dtype, g->nodes[like].shape, in, n, a);
}

/* A mixed convolution (F16/BF16 x and weight, F32 output) takes its upstream
 * gradient cast to the operands' dtype, once for both products, as a mixed
 * matmul does: its gradients then have their operands' dtypes, and the
 * casts' backward widens them to F32. The bias has the output's dtype and
 * takes gy as it is. */
bool ct_grad_conv2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    ct_node x = nd->in[0], w = nd->in[1], b = nd->attr.has_bias ? nd->in[2] : CT_NO_NODE;
    bool ok = true;
    ct_node gyh = gy;
    if (acc->needs[x] || acc->needs[w]) gyh = ct_cast_folded(g, gy, g->nodes[x].dtype);
    if (acc->needs[x]) {
        ct_node in[2] = {gyh, w};
        ok = ct_grad_accumulate(g, acc, x, grad_node(g, CT_OP_CONV2D_GRAD_INPUT, x, in, 2, &nd->attr));
    }
    if (ok && acc->needs[w]) {
        ct_node in[2] = {x, gyh};
        ok = ct_grad_accumulate(g, acc, w, grad_node(g, CT_OP_CONV2D_GRAD_WEIGHT, w, in, 2, &nd->attr));
    }
    if (ok && b != CT_NO_NODE && acc->needs[b])
        ok = ct_grad_accumulate(g, acc, b, grad_node(g, CT_OP_CONV2D_GRAD_BIAS, b, &gy, 1, &nd->attr));
    return ok;
}

bool ct_grad_max_pool2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    ct_node in[2] = {nd->in[0], gy};
    return ct_grad_accumulate(g, acc, nd->in[0], grad_node(g, CT_OP_MAX_POOL2D_GRAD, nd->in[0], in, 2, &nd->attr));
}

bool ct_grad_avg_pool2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    return ct_grad_accumulate(g, acc, nd->in[0], grad_node(g, CT_OP_AVG_POOL2D_GRAD, nd->in[0], &gy, 1, &nd->attr));
}

/* Same stream and step: the channel mask is regenerated. */
bool ct_grad_dropout2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy) {
    (void)y;
    return ct_grad_accumulate(g, acc, nd->in[0], grad_node(g, CT_OP_DROPOUT2D, nd->in[0], &gy, 1, &nd->attr));
}
