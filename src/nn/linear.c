/* The linear layer, torch.nn.Linear: y = x @ W^T + b. */
#include <math.h>
#include <stdio.h>

#include "core/autocast.h"
#include "ctrain/ops.h"
#include "nn/nn_internal.h"

/* qat: fake quantization on the weight and the input (linear_qat.c). */
static ct_node linear(ct_graph *g, const char *name, ct_node x, int64_t out_features, bool bias,
                      const ct_init *weight_init, bool qat) {
    const char *kind = "linear";
    if (!ct_nn_begin(g, kind, name, x, true)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    ct_dtype xdt = g->nodes[x].dtype;
    char s[CT_SHAPE_STR];
    if (xs.ndim < 1)
        return ct_graph_fail(g, CT_ERR_SHAPE, "linear '%s': input is a scalar; it takes [..., in_features]", name);
    if (out_features <= 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "linear '%s': out_features = %lld; it must be > 0", name,
                             (long long)out_features);
    int64_t in = xs.dim[xs.ndim - 1];
    bool built = ct_nn_exists(g, name, "weight");
    if (built && ct_nn_exists(g, name, "bias") != bias)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "linear '%s': built before %s a bias, now bias = %s", name,
                             bias ? "without" : "with", bias ? "true" : "false");

    char context[160];
    snprintf(context, sizeof context, "input %s has %lld features, out_features %lld", SHP(xs, s), (long long)in,
             (long long)out_features);
    ct_dtype pdt = ct_nn_param_dtype(g, xdt);
    /* PyTorch's reset_parameters: kaiming_uniform_(a = sqrt(5)) gives the
     * bound gain * sqrt(3 / fan_in) with gain sqrt(2 / (1 + 5)), that is
     * 1 / sqrt(in); the bias takes the same bound from the weight's fan_in. */
    ct_init winit = weight_init ? *weight_init : ct_init_kaiming_uniform(sqrt(5.0), CT_FAN_IN, CT_NONLIN_LEAKY_RELU);
    ct_node w = ct_nn_state(g, kind, name, "weight", false, (ct_shape){2, {out_features, in}}, pdt, winit, context);
    ct_node b = CT_NO_NODE;
    if (bias) {
        double bound = 1.0 / sqrt((double)in);
        b = ct_nn_state(g, kind, name, "bias", false, (ct_shape){1, {out_features}}, pdt,
                        ct_init_uniform(-bound, bound), context);
    }
    if (w == CT_NO_NODE || (bias && b == CT_NO_NODE)) return CT_NO_NODE;

    /* The rule of every layer (core/autocast.h): under a mixed-precision
     * policy the product casts x and the weight; without one, an F16/BF16
     * input multiplies in its own dtype. The casts' gradients go back to
     * the F32 master copy. */
    w = ct_autocast_param(g, w, xdt);
    if (bias) b = ct_autocast_param(g, b, xdt);
    /* A single vector [in] is a batch of one for the product (matmul wants
     * two axes) and comes back as [out], as in PyTorch. */
    ct_node x2 = xs.ndim == 1 ? ct_reshape(g, x, (ct_shape){2, {1, in}}) : x;
    if (qat) {
        w = ct_nn_fake_quant_weight(g, w);
        x2 = ct_nn_fake_quant_input(g, x2);
    }
    ct_node y = ct_matmul(g, x2, w, false, true);
    /* Under a mixed-precision policy the product comes out F32 (FP32
     * accumulation), and the bias is added in that dtype. */
    if (bias && y != CT_NO_NODE) y = ct_add(g, y, ct_cast_folded(g, b, g->nodes[y].dtype));
    if (xs.ndim == 1) y = ct_reshape(g, y, (ct_shape){1, {out_features}});
    return y;
}

ct_node ct_linear(ct_graph *g, const char *name, ct_node x, int64_t out_features, bool bias,
                  const ct_init *weight_init) {
    return linear(g, name, x, out_features, bias, weight_init, false);
}

ct_node ct_linear_qat(ct_graph *g, const char *name, ct_node x, int64_t out_features, bool bias,
                      const ct_init *weight_init) {
    return linear(g, name, x, out_features, bias, weight_init, true);
}
