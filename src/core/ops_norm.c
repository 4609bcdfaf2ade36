/* Builders and shape rules of the fused normalisations, batch norm and
 * layer norm (declared in ctrain/nn.h, beside the layers built on them).
 *
 * Each is one op forward and one internal op backward (BATCH_NORM_GRAD,
 * LAYER_NORM_GRAD, one node per gradient wanted), because a backend gives
 * each a single kernel; composing them from means and variances would cost
 * several passes and much memory. */
#include <math.h>
#include <string.h>

#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/nn.h"

/* An optional input (weight, bias): CT_NO_NODE means none unless the graph
 * already failed, in which case it is the usual "an earlier builder failed"
 * and the caller returns CT_NO_NODE too. */
static bool optional_ok(ct_graph *g, const char *op, ct_node n, bool *present) {
    *present = false;
    if (n == CT_NO_NODE) return g->status == CT_OK;
    if (!ct_graph_inputs_ok(g, op, &n, 1)) return false;
    *present = true;
    return true;
}

/* A float vector of exactly n elements: the per-channel or per-feature
 * operands (weight, bias, running statistics). */
static bool vector_ok(ct_graph *g, const char *op, const char *what, ct_node v, int64_t n,
                      const char *of, ct_shape xs) {
    const ct_nodeinfo *nv = &g->nodes[v];
    char sv[CT_SHAPE_STR], sx[CT_SHAPE_STR];
    if (!ct_dtype_is_float(nv->dtype)) {
        ct_graph_fail(g, CT_ERR_DTYPE, "%s: %s is %s; it must be a float vector", op, what,
                      ct_dtype_name(nv->dtype));
        return false;
    }
    if (nv->shape.ndim != 1 || nv->shape.dim[0] != n) {
        ct_graph_fail(g, CT_ERR_SHAPE, "%s: %s is %s; x %s wants [%lld] (%s)", op, what, SHP(nv->shape, sv),
                      SHP(xs, sx), (long long)n, of);
        return false;
    }
    return true;
}

static bool eps_ok(ct_graph *g, const char *op, double eps) {
    if (eps >= 0.0 && isfinite(eps)) return true;
    ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: eps = %g; it must be finite and >= 0", op, eps);
    return false;
}

ct_node ct_batch_norm_op(ct_graph *g, ct_node x, ct_node weight, ct_node bias, ct_node running_mean,
                         ct_node running_var, double momentum, double eps) {
    const char *op = "batch_norm";
    ct_node req[3] = {x, running_mean, running_var};
    bool has_w, has_b;
    if (!ct_graph_inputs_ok(g, op, req, 3) || !optional_ok(g, op, weight, &has_w) ||
        !optional_ok(g, op, bias, &has_b))
        return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    char s[CT_SHAPE_STR];
    if (!ct_dtype_is_float(nx->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s: x is %s; it takes floats", op, ct_dtype_name(nx->dtype));
    if (nx->shape.ndim < 2)
        return ct_graph_fail(g, CT_ERR_SHAPE,
                             "%s: x %s has %d ax%s; it needs [N, C], [N, C, L] or [N, C, H, W] (channels on axis 1)",
                             op, SHP(nx->shape, s), nx->shape.ndim, nx->shape.ndim == 1 ? "is" : "es");
    ct_shape xs = nx->shape;
    int64_t c = xs.dim[1];
    /* The running statistics are written by the kernel: only a buffer's
     * memory persists between runs and belongs to no other value. */
    static const char *const stat_names[2] = {"running_mean", "running_var"};
    for (int i = 0; i < 2; i++) {
        const ct_nodeinfo *ns = &g->nodes[req[1 + i]];
        if (ns->op != CT_OP_BUFFER)
            return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: %s must be a ct_buffer (it is a%s '%s' node)", op,
                                 stat_names[i], strchr("aeiou", ct_op_name(ns->op)[0]) ? "n" : "",
                                 ct_op_name(ns->op));
        if (!vector_ok(g, op, stat_names[i], req[1 + i], c, "one per channel", xs)) return CT_NO_NODE;
    }
    if (running_mean == running_var)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: running_mean and running_var are the same buffer '%s'",
                             op, g->nodes[running_mean].name);
    if (has_w && !vector_ok(g, op, "weight", weight, c, "one per channel", xs)) return CT_NO_NODE;
    if (has_b && !vector_ok(g, op, "bias", bias, c, "one per channel", xs)) return CT_NO_NODE;
    if (!(momentum >= 0.0 && momentum <= 1.0))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: momentum = %g is outside [0, 1]", op, momentum);
    if (!eps_ok(g, op, eps)) return CT_NO_NODE;

    ct_node in[5] = {x, running_mean, running_var};
    int n_in = 3;
    if (has_w) in[n_in++] = weight;
    if (has_b) in[n_in++] = bias;
    ct_attrs a = {.alpha = momentum, .eps = eps, .has_weight = has_w, .has_bias = has_b};
    return ct_graph_add(g, CT_OP_BATCH_NORM, nx->dtype, xs, in, n_in, &a);
}

ct_node ct_layer_norm_op(ct_graph *g, ct_node x, ct_node weight, ct_node bias, double eps) {
    const char *op = "layer_norm";
    bool has_w, has_b;
    if (!ct_graph_inputs_ok(g, op, &x, 1) || !optional_ok(g, op, weight, &has_w) ||
        !optional_ok(g, op, bias, &has_b))
        return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    char s[CT_SHAPE_STR];
    if (!ct_dtype_is_float(nx->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s: x is %s; it takes floats", op, ct_dtype_name(nx->dtype));
    if (nx->shape.ndim < 1)
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: x %s is a scalar; it normalises over the last axis", op,
                             SHP(nx->shape, s));
    ct_shape xs = nx->shape;
    int64_t d = xs.dim[xs.ndim - 1];
    if (has_w && !vector_ok(g, op, "weight", weight, d, "the last axis", xs)) return CT_NO_NODE;
    if (has_b && !vector_ok(g, op, "bias", bias, d, "the last axis", xs)) return CT_NO_NODE;
    if (!eps_ok(g, op, eps)) return CT_NO_NODE;

    ct_node in[3] = {x};
    int n_in = 1;
    if (has_w) in[n_in++] = weight;
    if (has_b) in[n_in++] = bias;
    ct_attrs a = {.eps = eps, .has_weight = has_w, .has_bias = has_b};
    return ct_graph_add(g, CT_OP_LAYER_NORM, nx->dtype, xs, in, n_in, &a);
}
