/* Internal: reverse-mode autodiff. The driver (autodiff.c) walks the graph
 * backwards from the loss and asks each op's rule (grad_rules.c) for the
 * vector-Jacobian products of its inputs, which it accumulates. */
#ifndef CT_CORE_AUTODIFF_H
#define CT_CORE_AUTODIFF_H

#include "core/node.h"

typedef struct ct_grad_acc {
    ct_node *grad_of; /* per forward node: accumulated gradient so far */
    bool *needs;      /* per forward node: lies on a path from a source needing a gradient */
} ct_grad_acc;

/* Adds dx to the gradient of x (a no-op when x needs none). False on error. */
bool ct_grad_accumulate(ct_graph *g, ct_grad_acc *acc, ct_node x, ct_node dx);

/* Appends the backward of node y given its upstream gradient gy. */
ct_status ct_grad_rule(ct_graph *g, ct_grad_acc *acc, ct_node y, ct_node gy);

/* ct_graph_backward; with `scaled` the seed is the F32 scalar input
 * CT_LOSS_SCALE_INPUT (amp.h) instead of 1 (ct_graph_backward_scaled). */
ct_status ct_graph_backward_ex(ct_graph *g, ct_node loss, bool scaled);
/* The backward of CONV2D, MAX_POOL2D, AVG_POOL2D and DROPOUT2D node nd
 * (grad_conv.c). False on error. */
bool ct_grad_conv(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo nd, ct_node gy);

/* The shape of x reduced over axis (resolved, or CT_AXIS_ALL). */
ct_shape ct_reduced_shape(ct_shape x, int axis, bool keepdim);

#endif
