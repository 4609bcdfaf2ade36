/* Builder and shape rule of fake quantization (core/fakequant.h), the op
 * that quantization-aware training inserts on weights and activations: the
 * forward pass sees the values int8 inference will see, the backward pass
 * lets the gradient through unchanged where the value was representable. */
#include <math.h>

#include "core/fakequant.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

/* The range torch allows (and more: any integers a double holds exactly). */
#define FQ_MAX_RANGE 9007199254740992.0 /* 2^53 */

/* scale and zero_point: x's dtype, one value or one per channel of axis. */
static bool params_ok(ct_graph *g, const ct_node in[3], int *axis) {
    static const char *const names[2] = {"scale", "zero_point"};
    const ct_nodeinfo *nx = &g->nodes[in[0]];
    char sx[CT_SHAPE_STR], sp[CT_SHAPE_STR];
    int64_t want = 1;
    if (*axis != -1) {
        int a = ct_resolve_axis(*axis, nx->shape.ndim);
        if (a < 0) {
            ct_graph_fail(g, CT_ERR_INVALID_ARG, "fake_quant: axis %d is not an axis of x %s (or -1: per tensor)",
                          *axis, SHP(nx->shape, sx));
            return false;
        }
        *axis = a;
        want = nx->shape.dim[a];
    }
    for (int i = 1; i < 3; i++) {
        const ct_nodeinfo *n = &g->nodes[in[i]];
        if (n->dtype != nx->dtype) {
            ct_graph_fail(g, CT_ERR_DTYPE, "fake_quant: x is %s but %s is %s; they need one float dtype",
                          ct_dtype_name(nx->dtype), names[i - 1], ct_dtype_name(n->dtype));
            return false;
        }
        if (ct_shape_numel(n->shape) != want || n->shape.ndim > 1) {
            ct_graph_fail(g, CT_ERR_SHAPE, "fake_quant: %s is %s; with x %s and axis %d it needs [%lld]",
                          names[i - 1], SHP(n->shape, sp), SHP(nx->shape, sx), *axis, (long long)want);
            return false;
        }
    }
    return true;
}

ct_node ct_fake_quantize(ct_graph *g, ct_node x, ct_node scale, ct_node zero_point, int axis, int64_t quant_min,
                         int64_t quant_max) {
    ct_node in[3] = {x, scale, zero_point};
    if (!ct_graph_inputs_ok(g, "fake_quant", in, 3)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    if (!ct_dtype_is_float(nx->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "fake_quant: x is %s; it takes floats", ct_dtype_name(nx->dtype));
    if (!(quant_min < quant_max) || fabs((double)quant_min) > FQ_MAX_RANGE || fabs((double)quant_max) > FQ_MAX_RANGE)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG,
                             "fake_quant: the range [%lld, %lld] needs quant_min < quant_max, both within 2^53",
                             (long long)quant_min, (long long)quant_max);
    if (!params_ok(g, in, &axis)) return CT_NO_NODE;
    ct_attrs a = {.axis = axis, .quant_min = quant_min, .quant_max = quant_max};
    return ct_graph_add(g, CT_OP_FAKE_QUANT, nx->dtype, nx->shape, in, 3, &a);
}
