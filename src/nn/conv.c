/* The convolution layer, torch.nn.Conv2d. Pooling, channel dropout and
 * flatten have no parameters: their op builders (ctrain/conv.h) are the
 * layers. */
#include <math.h>
#include <stdio.h>

#include "core/autocast.h"
#include "ctrain/conv.h"
#include "ctrain/ops.h"
#include "nn/nn_internal.h"

ct_node ct_conv2d_layer(ct_graph *g, const char *name, ct_node x, int64_t out_channels, int kernel_h, int kernel_w,
                        ct_conv2d_geom geom, bool bias, const ct_init *weight_init) {
    const char *kind = "conv2d";
    if (!ct_nn_begin(g, kind, name, x, true)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    ct_dtype xdt = g->nodes[x].dtype;
    char s[CT_SHAPE_STR];
    if (xs.ndim != 4)
        return ct_graph_fail(g, CT_ERR_SHAPE, "conv2d '%s': input %s; it takes [N, C, H, W]", name, SHP(xs, s));
    if (out_channels <= 0 || kernel_h <= 0 || kernel_w <= 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                             "conv2d '%s': out_channels %lld, kernel %dx%d; each must be > 0", name,
                             (long long)out_channels, kernel_h, kernel_w);
    int64_t c = xs.dim[1];
    /* The weight's shape needs C / groups: check divisibility here, with
     * the layer's name; the op checks the rest of the geometry. */
    if (geom.groups < 1 || c % geom.groups != 0 || out_channels % geom.groups != 0)
        return ct_graph_fail(g, CT_ERR_SHAPE,
                             "conv2d '%s': groups %d must be >= 1 and divide both the %lld input channels of %s "
                             "and the %lld output channels",
                             name, geom.groups, (long long)c, SHP(xs, s), (long long)out_channels);
    bool built = ct_nn_exists(g, name, "weight");
    if (built && ct_nn_exists(g, name, "bias") != bias)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "conv2d '%s': built before %s a bias, now bias = %s", name,
                             bias ? "without" : "with", bias ? "true" : "false");

    char context[192];
    snprintf(context, sizeof context, "input %s has %lld channels, groups %d, out_channels %lld, kernel %dx%d",
             SHP(xs, s), (long long)c, geom.groups, (long long)out_channels, kernel_h, kernel_w);
    ct_dtype pdt = ct_nn_param_dtype(g, xdt);
    int64_t cg = c / geom.groups, fan_in = cg * kernel_h * kernel_w;
    /* PyTorch's reset_parameters for _ConvNd: as nn.Linear, kaiming_uniform
     * (a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in =
     * C/groups * KH * KW, and the bias from the same bound. */
    ct_init winit = weight_init ? *weight_init : ct_init_kaiming_uniform(sqrt(5.0), CT_FAN_IN, CT_NONLIN_LEAKY_RELU);
    ct_node w = ct_nn_state(g, kind, name, "weight", false, (ct_shape){4, {out_channels, cg, kernel_h, kernel_w}},
                            pdt, winit, context);
    ct_node b = CT_NO_NODE;
    if (bias && w != CT_NO_NODE) {
        double bound = 1.0 / sqrt((double)fan_in);
        b = ct_nn_state(g, kind, name, "bias", false, (ct_shape){1, {out_channels}}, pdt,
                        ct_init_uniform(-bound, bound), context);
    }
    if (w == CT_NO_NODE || (bias && b == CT_NO_NODE)) return CT_NO_NODE;
    /* The rule of every layer (core/autocast.h): under a mixed-precision
     * policy the op casts x and the weight and adds the F32 bias; without
     * one, an F16/BF16 input convolves in its own dtype. Either way the
     * casts' gradients go back to the F32 master weights. */
    w = ct_autocast_param(g, w, xdt);
    if (bias) b = ct_autocast_param(g, b, xdt);
    return ct_conv2d(g, x, w, b, geom);
}
