/* Builders and shape rules of softmax, log-softmax and the reductions. */
#include "core/autodiff.h"
#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

static bool float_input(ct_graph *g, const char *op, ct_node x) {
    if (ct_dtype_is_float(g->nodes[x].dtype)) return true;
    ct_graph_fail(g, CT_ERR_DTYPE, "%s: input is %s; it takes floats", op,
                  ct_dtype_name(g->nodes[x].dtype));
    return false;
}

static ct_node softmax_like(ct_graph *g, ct_op op, ct_node x, int axis) {
    const char *name = ct_op_name(op);
    if (!ct_graph_inputs_ok(g, name, &x, 1) || !float_input(g, name, x)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    char s[CT_SHAPE_STR];
    int ax = ct_resolve_axis(axis, nx->shape.ndim);
    if (ax < 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: axis %d is out of range for shape %s", name,
                             axis, SHP(nx->shape, s));
    return ct_graph_add(g, op, nx->dtype, nx->shape, &x, 1, &(ct_attrs){.axis = ax});
}

ct_node ct_softmax(ct_graph *g, ct_node x, int axis) { return softmax_like(g, CT_OP_SOFTMAX, x, axis); }
ct_node ct_log_softmax(ct_graph *g, ct_node x, int axis) {
    return softmax_like(g, CT_OP_LOG_SOFTMAX, x, axis);
}

ct_shape ct_reduced_shape(ct_shape x, int axis, bool keepdim) {
    ct_shape r = {0, {0}};
    if (axis == CT_AXIS_ALL) {
        if (keepdim) {
            r.ndim = x.ndim;
            for (int d = 0; d < x.ndim; d++) r.dim[d] = 1;
        }
        return r;
    }
    for (int d = 0; d < x.ndim; d++) {
        if (d == axis) {
            if (keepdim) r.dim[r.ndim++] = 1;
        } else {
            r.dim[r.ndim++] = x.dim[d];
        }
    }
    return r;
}

static ct_node reduce(ct_graph *g, ct_op op, ct_node x, int axis, bool keepdim) {
    const char *name = ct_op_name(op);
    if (!ct_graph_inputs_ok(g, name, &x, 1) || !float_input(g, name, x)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    int ax = CT_AXIS_ALL;
    if (axis != CT_AXIS_ALL) {
        char s[CT_SHAPE_STR];
        ax = ct_resolve_axis(axis, nx->shape.ndim);
        if (ax < 0)
            return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                                 "%s: axis %d is out of range for shape %s (CT_AXIS_ALL reduces all)",
                                 name, axis, SHP(nx->shape, s));
    }
    return ct_graph_add(g, op, nx->dtype, ct_reduced_shape(nx->shape, ax, keepdim), &x, 1,
                        &(ct_attrs){.axis = ax, .keepdim = keepdim});
}

ct_node ct_sum(ct_graph *g, ct_node x, int axis, bool keepdim) {
    return reduce(g, CT_OP_SUM, x, axis, keepdim);
}
ct_node ct_mean(ct_graph *g, ct_node x, int axis, bool keepdim) {
    return reduce(g, CT_OP_MEAN, x, axis, keepdim);
}
ct_node ct_max(ct_graph *g, ct_node x, int axis, bool keepdim) {
    return reduce(g, CT_OP_MAX, x, axis, keepdim);
}
