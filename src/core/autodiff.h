/* Internal: reverse-mode autodiff. The driver (autodiff.c) walks the graph
 * backwards from the loss and asks each op's rule (the gradient table of
 * grad_rules.c) for the vector-Jacobian products of its inputs, which it
 * accumulates. */
#ifndef CT_CORE_AUTODIFF_H
#define CT_CORE_AUTODIFF_H

#include "core/node.h"

/* A slice's gradient not yet placed in its operand's shape (grad_slices.c). */
typedef struct ct_slice_piece {
    ct_node x, dy;  /* the sliced operand; the slice's upstream gradient */
    ct_attrs attr;  /* the slice's axis, start, end */
} ct_slice_piece;

typedef struct ct_grad_acc {
    ct_node *grad_of; /* per forward node: accumulated gradient so far */
    bool *needs;      /* per forward node: lies on a path from a source needing a gradient */
    ct_slice_piece *pieces; /* slice gradients held back until their operand's turn */
    int n_pieces, cap_pieces;
} ct_grad_acc;

/* Adds dx to the gradient of x (a no-op when x needs none). False on error. */
bool ct_grad_accumulate(ct_graph *g, ct_grad_acc *acc, ct_node x, ct_node dx);

/* The gradient dy of slice s (a copy of its node) of x, held back: when x's
 * own rule is due, ct_grad_place_slices places every piece of x at once.
 * Pieces that tile x along one axis (the q, k and v of a fused projection)
 * become one CONCAT; others each a SLICE_GRAD, summed. False on error. */
bool ct_grad_accumulate_slice(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *s, ct_node dy);
bool ct_grad_place_slices(ct_graph *g, ct_grad_acc *acc, ct_node x);

/* A backward rule: for forward node y (nd is a copy of it, which stays valid
 * while builders grow the node array) and its upstream gradient gy, appends
 * the nodes computing its inputs' vector-Jacobian products and accumulates
 * them (ct_grad_accumulate). False on error (the builders have recorded it). */
typedef bool (*ct_grad_rule_fn)(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);

/* The op's rule from the gradient table (grad_rules.c); NULL when the op
 * has none, which is what "not differentiable" means. */
ct_grad_rule_fn ct_grad_rule_of(int op);

/* Appends the backward of node y given its upstream gradient gy. */
ct_status ct_grad_rule(ct_graph *g, ct_grad_acc *acc, ct_node y, ct_node gy);

/* ct_graph_backward; with `scaled` the seed is the F32 scalar input
 * CT_LOSS_SCALE_INPUT (amp.h) instead of 1 (ct_graph_backward_scaled). */
ct_status ct_graph_backward_ex(ct_graph *g, ct_node loss, bool scaled);
/* The rules of CONV2D, MAX_POOL2D, AVG_POOL2D and DROPOUT2D (grad_conv.c),
 * rows of the gradient table. */
bool ct_grad_conv2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);
bool ct_grad_max_pool2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);
bool ct_grad_avg_pool2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);
bool ct_grad_dropout2d(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);

/* gy summed over its broadcast axes down to `shape` (a SUM_TO node; gy
 * itself when the shapes agree). One node per (gy, shape): a rule asking
 * for a sum another rule already made gets that node, as the recurrent
 * op's b_hh and the input projection's b_ih do (both sum the gates'
 * gradient over the batch and the steps). */
ct_node ct_grad_sum_to(ct_graph *g, ct_node gy, ct_shape shape);

/* The shape of x reduced over axis (resolved, or CT_AXIS_ALL). */
ct_shape ct_reduced_shape(ct_shape x, int axis, bool keepdim);

#endif
