/* Normalisation layers: torch.nn.BatchNorm1d/2d/3d and torch.nn.LayerNorm,
 * on the fused ops of src/core/ops_norm.c. */
#include <stdio.h>

#include "nn/nn_internal.h"

/* PyTorch's defaults, which a 0 argument selects. */
#define BN_MOMENTUM 0.1
#define NORM_EPS 1e-5

ct_node ct_batch_norm(ct_graph *g, const char *name, ct_node x, double momentum, double eps) {
    const char *kind = "batch_norm";
    if (!ct_nn_begin(g, kind, name, x, true)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    char s[CT_SHAPE_STR];
    if (xs.ndim < 2)
        return ct_graph_fail(g, CT_ERR_SHAPE,
                             "batch_norm '%s': input %s has %d ax%s; batch norm takes [N, C], [N, C, L] or "
                             "[N, C, H, W] (channels on axis 1)",
                             name, SHP(xs, s), xs.ndim, xs.ndim == 1 ? "is" : "es");
    if (momentum == 0.0) momentum = BN_MOMENTUM;
    if (eps == 0.0) eps = NORM_EPS;
    if (!(momentum > 0.0 && momentum <= 1.0))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "batch_norm '%s': momentum = %g is outside (0, 1]", name,
                             momentum);
    if (!(eps > 0.0 && eps < 1e300))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "batch_norm '%s': eps = %g; it must be > 0 and finite", name,
                             eps);
    int64_t c = xs.dim[1];
    char context[128];
    snprintf(context, sizeof context, "input %s has %lld channels", SHP(xs, s), (long long)c);
    ct_shape cs = {1, {c}};
    ct_dtype pdt = ct_nn_param_dtype(g, g->nodes[x].dtype), bdt = ct_nn_buffer_dtype(g, pdt);
    ct_node w = ct_nn_state(g, kind, name, "weight", false, cs, pdt, ct_init_ones(), context);
    ct_node b = w == CT_NO_NODE ? w : ct_nn_state(g, kind, name, "bias", false, cs, pdt, ct_init_zeros(), context);
    ct_node rm = b == CT_NO_NODE ? b : ct_nn_state(g, kind, name, "running_mean", true, cs, bdt, ct_init_zeros(), context);
    ct_node rv = rm == CT_NO_NODE ? rm : ct_nn_state(g, kind, name, "running_var", true, cs, bdt, ct_init_ones(), context);
    if (rv == CT_NO_NODE) return CT_NO_NODE;
    return ct_batch_norm_op(g, x, w, b, rm, rv, momentum, eps);
}

ct_node ct_layer_norm(ct_graph *g, const char *name, ct_node x, double eps, bool affine) {
    const char *kind = "layer_norm";
    if (!ct_nn_begin(g, kind, name, x, true)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    char s[CT_SHAPE_STR];
    if (xs.ndim < 1)
        return ct_graph_fail(g, CT_ERR_SHAPE, "layer_norm '%s': input is a scalar; it normalises the last axis",
                             name);
    if (eps == 0.0) eps = NORM_EPS;
    if (!(eps > 0.0 && eps < 1e300))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "layer_norm '%s': eps = %g; it must be > 0 and finite", name,
                             eps);
    int64_t d = xs.dim[xs.ndim - 1];
    ct_node w = CT_NO_NODE, b = CT_NO_NODE;
    if (affine) {
        char context[128];
        snprintf(context, sizeof context, "input %s has %lld features on its last axis", SHP(xs, s), (long long)d);
        ct_shape ds = {1, {d}};
        ct_dtype pdt = ct_nn_param_dtype(g, g->nodes[x].dtype);
        w = ct_nn_state(g, kind, name, "weight", false, ds, pdt, ct_init_ones(), context);
        b = w == CT_NO_NODE ? w : ct_nn_state(g, kind, name, "bias", false, ds, pdt, ct_init_zeros(), context);
        if (b == CT_NO_NODE) return CT_NO_NODE;
    }
    return ct_layer_norm_op(g, x, w, b, eps);
}
