/* The fake quantization ct_linear_qat inserts: the quantization parameters
 * computed in the graph from the current values, exactly as `ctrain
 * quantize` (and torch's observers) compute them from final ones:
 *   weight  per output channel: scale = max(max|w_row| / 127, eps), zero 0,
 *           range [-127, 127];
 *   input   per tensor: lo = min(min x, 0), hi = max(max x, 0),
 *           scale = max((hi - lo) / 255, eps), zero point = -lo / scale
 *           (rounded by the op), range [0, 255].
 * The parameters take no gradient (the op gives none): the weights and the
 * input get the straight-through estimate. */
#include <float.h>

#include "ctrain/ops.h"
#include "nn/nn_internal.h"

/* max(s, eps) elementwise for s [n] (or a scalar, as [1]), exactly: the
 * larger of the two in a [n, 2] concatenation. */
static ct_node at_least_eps(ct_graph *g, ct_node s, int64_t n) {
    ct_node col = ct_reshape(g, s, (ct_shape){2, {n, 1}});
    ct_node eps = ct_fill(g, ct_node_dtype(g, s), (ct_shape){2, {n, 1}}, FLT_EPSILON);
    ct_node both[2] = {col, eps};
    return ct_max(g, ct_concat(g, both, 2, 1), 1, false);
}

ct_node ct_nn_fake_quant_weight(ct_graph *g, ct_node w) {
    if (w == CT_NO_NODE) return w;
    int64_t out = ct_node_shape(g, w).dim[0];
    ct_node scale = at_least_eps(g, ct_scale(g, ct_max(g, ct_abs(g, w), 1, false), 1.0 / 127.0), out);
    ct_node zero = ct_fill(g, ct_node_dtype(g, w), (ct_shape){1, {out}}, 0.0);
    return ct_fake_quantize(g, w, scale, zero, 0, -127, 127);
}

ct_node ct_nn_fake_quant_input(ct_graph *g, ct_node x) {
    if (x == CT_NO_NODE) return x;
    /* -lo = max(max(-x), 0) and hi = max(max(x), 0): relu of the extremes. */
    ct_node neg_lo = ct_relu(g, ct_max(g, ct_neg(g, x), CT_AXIS_ALL, false));
    ct_node hi = ct_relu(g, ct_max(g, x, CT_AXIS_ALL, false));
    ct_node scale = at_least_eps(g, ct_scale(g, ct_add(g, hi, neg_lo), 1.0 / 255.0), 1);
    ct_node zero_point = ct_div(g, ct_reshape(g, neg_lo, (ct_shape){1, {1}}), scale);
    return ct_fake_quantize(g, x, scale, zero_point, -1, 0, 255);
}
