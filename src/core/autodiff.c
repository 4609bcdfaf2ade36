/* The reverse-mode driver: seeds d loss / d loss = 1, visits the forward
 * nodes in reverse creation order (a reverse topological order) and lets
 * each op's rule add its inputs' gradients as ordinary nodes. */
#include <stdlib.h>

#include "core/autocast.h"
#include "core/autodiff.h"
#include "core/error.h"
#include "ctrain/amp.h" /* the loss-scale input's name */
#include "ctrain/ops.h"

bool ct_grad_accumulate(ct_graph *g, ct_grad_acc *acc, ct_node x, ct_node dx) {
    if (dx == CT_NO_NODE) return false;
    if (!acc->needs[x]) return true;
    if (acc->grad_of[x] == CT_NO_NODE) {
        acc->grad_of[x] = dx;
        return true;
    }
    ct_node sum = ct_add(g, acc->grad_of[x], dx);
    acc->grad_of[x] = sum;
    return sum != CT_NO_NODE;
}

static bool is_grad_source(const ct_nodeinfo *nd) {
    return nd->op == CT_OP_PARAM || (nd->op == CT_OP_INPUT && nd->requires_grad);
}

/* The gradient of the loss with respect to itself: 1, or the loss scale
 * read from an input that the scaler binds to its state. */
static ct_node seed_of(ct_graph *g, ct_node loss, bool scaled) {
    ct_dtype dt = g->nodes[loss].dtype;
    ct_shape shape = g->nodes[loss].shape;
    if (!scaled) return ct_fill(g, dt, shape, 1.0);
    ct_node s = ct_input(g, CT_LOSS_SCALE_INPUT, CT_F32, (ct_shape){0, {0}});
    if (shape.ndim != 0) s = ct_reshape(g, s, shape);
    return ct_cast_folded(g, s, dt);
}

/* Which of the first n0 nodes need a gradient: the float ones on a path
 * from a gradient source; no gradient yet for any. */
static void mark_needs(const ct_graph *g, ct_grad_acc *acc, int n0) {
    for (int i = 0; i < n0; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        acc->grad_of[i] = CT_NO_NODE;
        bool needs = is_grad_source(nd);
        for (int j = 0; j < nd->n_in && !needs; j++) needs = acc->needs[nd->in[j]];
        acc->needs[i] = needs && ct_dtype_is_float(nd->dtype);
    }
}

/* The seed, then each op's rule from the loss back to the first node. */
static ct_status apply_rules(ct_graph *g, ct_grad_acc *acc, ct_node loss, bool scaled) {
    ct_status st = CT_OK;
    acc->grad_of[loss] = seed_of(g, loss, scaled);
    if (acc->grad_of[loss] == CT_NO_NODE) st = ct_last_status();
    for (int i = loss; i >= 0 && st == CT_OK; i--) {
        if (!ct_grad_place_slices(g, acc, i)) {
            st = g->status != CT_OK ? g->status : ct_last_status();
            break;
        }
        if (acc->grad_of[i] == CT_NO_NODE || !acc->needs[i]) continue;
        ct_op op = g->nodes[i].op;
        if (ct_op_class_of(op) == CT_OPC_SOURCE) continue;
        if (!ct_op_differentiable(op)) {
            st = ct_error(CT_ERR_UNSUPPORTED, "ct_graph_backward: %s has no backward rule",
                          ct_op_name(op));
            break;
        }
        st = ct_grad_rule(g, acc, i, acc->grad_of[i]);
    }
    return st;
}

/* Each source's gradient gets a node of its own, so the program can
 * place it in the flat gradient buffer: share or alias nothing. */
static ct_status own_grad_nodes(ct_graph *g, ct_grad_acc *acc, int n0) {
    ct_status st = CT_OK;
    for (int i = 0; i < n0 && st == CT_OK; i++) {
        ct_node gi = acc->grad_of[i];
        if (!is_grad_source(&g->nodes[i]) || gi == CT_NO_NODE) continue;
        bool shared = gi < n0 || g->nodes[gi].op == CT_OP_CONST;
        for (int j = 0; j < i && !shared; j++)
            shared = is_grad_source(&g->nodes[j]) && acc->grad_of[j] == gi;
        if (shared) {
            ct_node c = ct_graph_add(g, CT_OP_COPY, g->nodes[gi].dtype, g->nodes[gi].shape, &gi, 1, NULL);
            if (c == CT_NO_NODE) st = ct_last_status();
            acc->grad_of[i] = c;
        }
    }
    return st;
}

ct_status ct_graph_backward(ct_graph *g, ct_node loss) { return ct_graph_backward_ex(g, loss, false); }

ct_status ct_graph_backward_ex(ct_graph *g, ct_node loss, bool scaled) {
    /* The graph's error first: after a failed build the loss is usually
     * CT_NO_NODE, and the first error is the one worth reporting. */
    if (g && g->status != CT_OK)
        return ct_error(g->status, "ct_graph_backward: the graph has an earlier error: %s", g->error);
    const ct_nodeinfo *nl = ct_graph_node(g, loss);
    if (!nl) return ct_error(CT_ERR_INVALID_ARG, "ct_graph_backward: loss is not a node (%d)", (int)loss);
    if (g->backward_done) return ct_error(CT_ERR_STATE, "ct_graph_backward: already called on this graph");
    char s[96];
    if (!ct_dtype_is_float(nl->dtype) || ct_shape_numel(nl->shape) != 1)
        return ct_error(CT_ERR_SHAPE, "ct_graph_backward: the loss must be a float scalar, got %s %s",
                        ct_dtype_name(nl->dtype), ct_shape_str(nl->shape, s, sizeof s));
    int n0 = g->n;
    ct_grad_acc acc = {malloc((size_t)n0 * sizeof(ct_node)), calloc((size_t)n0, sizeof(bool)), NULL, 0, 0};
    if (!acc.grad_of || !acc.needs) {
        free(acc.grad_of);
        free(acc.needs);
        return ct_error(CT_ERR_OOM, "ct_graph_backward: out of memory");
    }
    mark_needs(g, &acc, n0);
    ct_status st = acc.needs[loss] ? apply_rules(g, &acc, loss, scaled) : CT_OK;
    if (st == CT_OK) st = own_grad_nodes(g, &acc, n0);
    if (st == CT_OK && g->status != CT_OK) st = g->status;
    free(acc.needs);
    free(acc.pieces);
    if (st != CT_OK) {
        free(acc.grad_of);
        return st;
    }
    /* Intermediate gradients are kept only for sources (the others were
     * accumulation scratch and are not part of the public contract). */
    for (int i = 0; i < n0; i++)
        if (!is_grad_source(&g->nodes[i])) acc.grad_of[i] = CT_NO_NODE;
    g->grad_of = acc.grad_of;
    g->n_grad_of = n0;
    g->backward_done = true;
    return CT_OK;
}
