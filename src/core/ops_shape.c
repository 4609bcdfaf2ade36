/* Builders and shape rules of the data-movement ops. */
#include <string.h>

#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

ct_node ct_reshape(ct_graph *g, ct_node x, ct_shape shape) {
    if (!ct_graph_inputs_ok(g, "reshape", &x, 1)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (shape.ndim < 0 || shape.ndim > CT_MAX_DIMS)
        return ct_graph_fail(g, CT_ERR_SHAPE, "reshape: %d dimensions (at most %d)", shape.ndim,
                             CT_MAX_DIMS);
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < shape.ndim; d++) {
        if (shape.dim[d] == -1 && infer < 0) {
            infer = d;
        } else if (shape.dim[d] <= 0) {
            return ct_graph_fail(g, CT_ERR_SHAPE,
                                 "reshape: bad target %s (sizes > 0, at most one -1)",
                                 SHP(shape, sa));
        } else {
            known *= shape.dim[d];
        }
    }
    int64_t numel = ct_shape_numel(nx->shape);
    if (infer >= 0) {
        if (numel % known != 0)
            return ct_graph_fail(g, CT_ERR_SHAPE, "reshape: cannot reshape %s into %s",
                                 SHP(nx->shape, sa), SHP(shape, sb));
        shape.dim[infer] = numel / known;
        known = numel;
    }
    if (known != numel)
        return ct_graph_fail(g, CT_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s",
                             SHP(nx->shape, sa), (long long)numel, SHP(shape, sb));
    return ct_graph_add(g, CT_OP_RESHAPE, nx->dtype, shape, &x, 1, NULL);
}

ct_node ct_permute(ct_graph *g, ct_node x, const int *perm) {
    if (!ct_graph_inputs_ok(g, "permute", &x, 1)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    if (!perm) return ct_graph_fail(g, CT_ERR_INVALID_ARG, "permute: perm is NULL");
    int nd = nx->shape.ndim;
    ct_attrs a = {0};
    bool seen[CT_MAX_DIMS] = {false};
    ct_shape out = {nd, {0}};
    for (int i = 0; i < nd; i++) {
        int p = ct_resolve_axis(perm[i], nd);
        if (p < 0 || seen[p]) {
            char s[CT_SHAPE_STR];
            return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                                 "permute: perm must list each of the %d axes of %s once (entry %d is %d)",
                                 nd, SHP(nx->shape, s), i, perm[i]);
        }
        seen[p] = true;
        a.perm[i] = p;
        out.dim[i] = nx->shape.dim[p];
    }
    return ct_graph_add(g, CT_OP_PERMUTE, nx->dtype, out, &x, 1, &a);
}

ct_node ct_transpose(ct_graph *g, ct_node x, int axis0, int axis1) {
    if (!ct_graph_inputs_ok(g, "transpose", &x, 1)) return CT_NO_NODE;
    int nd = g->nodes[x].shape.ndim;
    int a0 = ct_resolve_axis(axis0, nd), a1 = ct_resolve_axis(axis1, nd);
    char s[CT_SHAPE_STR];
    if (a0 < 0 || a1 < 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "transpose: axes %d, %d out of range for shape %s",
                             axis0, axis1, SHP(g->nodes[x].shape, s));
    int perm[CT_MAX_DIMS];
    for (int i = 0; i < nd; i++) perm[i] = i;
    perm[a0] = a1;
    perm[a1] = a0;
    return ct_permute(g, x, perm);
}

ct_node ct_concat(ct_graph *g, const ct_node *xs, int n, int axis) {
    if (!g) return ct_graph_fail(g, CT_ERR_INVALID_ARG, "concat: graph is NULL");
    if (!xs || n < 1) return ct_graph_fail(g, CT_ERR_INVALID_ARG, "concat: needs at least one input");
    if (!ct_graph_inputs_ok(g, "concat", xs, n)) return CT_NO_NODE;
    const ct_nodeinfo *n0 = &g->nodes[xs[0]];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    int ax = ct_resolve_axis(axis, n0->shape.ndim);
    if (ax < 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "concat: axis %d out of range for shape %s", axis,
                             SHP(n0->shape, sa));
    ct_shape out = n0->shape;
    for (int i = 1; i < n; i++) {
        const ct_nodeinfo *ni = &g->nodes[xs[i]];
        if (ni->dtype != n0->dtype)
            return ct_graph_fail(g, CT_ERR_DTYPE, "concat: input %d is %s, input 0 is %s", i,
                                 ct_dtype_name(ni->dtype), ct_dtype_name(n0->dtype));
        bool fits = ni->shape.ndim == n0->shape.ndim;
        for (int d = 0; fits && d < n0->shape.ndim; d++)
            if (d != ax && ni->shape.dim[d] != n0->shape.dim[d]) fits = false;
        if (!fits)
            return ct_graph_fail(g, CT_ERR_SHAPE,
                                 "concat: input %d has shape %s, input 0 has %s (only axis %d may differ)",
                                 i, SHP(ni->shape, sa), SHP(n0->shape, sb), ax);
        out.dim[ax] += ni->shape.dim[ax];
    }
    return ct_graph_add(g, CT_OP_CONCAT, n0->dtype, out, xs, n, &(ct_attrs){.axis = ax});
}

ct_node ct_slice(ct_graph *g, ct_node x, int axis, int64_t start, int64_t end) {
    if (!ct_graph_inputs_ok(g, "slice", &x, 1)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    char s[CT_SHAPE_STR];
    int ax = ct_resolve_axis(axis, nx->shape.ndim);
    if (ax < 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "slice: axis %d out of range for shape %s", axis,
                             SHP(nx->shape, s));
    int64_t len = nx->shape.dim[ax];
    int64_t s0 = start < 0 ? start + len : start, e0 = end < 0 ? end + len : end;
    if (s0 < 0 || e0 > len || s0 >= e0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                             "slice: [%lld, %lld) is empty or outside axis %d of shape %s",
                             (long long)start, (long long)end, ax, SHP(nx->shape, s));
    ct_shape out = nx->shape;
    out.dim[ax] = e0 - s0;
    return ct_graph_add(g, CT_OP_SLICE, nx->dtype, out, &x, 1,
                        &(ct_attrs){.axis = ax, .start = s0, .end = e0});
}
