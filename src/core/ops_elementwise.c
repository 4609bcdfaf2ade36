/* Builders and shape rules of the elementwise ops and casts. */
#include <math.h>

#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/ops.h"

/* Float-only ops name the dtype they got, so a forgotten cast is obvious. */
static bool need_float(ct_graph *g, const char *op, ct_node x) {
    ct_dtype dt = g->nodes[x].dtype;
    if (ct_dtype_is_float(dt)) return true;
    ct_graph_fail(g, CT_ERR_DTYPE, "%s: input is %s; it takes f64, f32, f16 or bf16 (use ct_cast)",
                  op, ct_dtype_name(dt));
    return false;
}

static ct_node binary(ct_graph *g, ct_op op, const char *name, ct_node a, ct_node b) {
    ct_node in[2] = {a, b};
    if (!ct_graph_inputs_ok(g, name, in, 2)) return CT_NO_NODE;
    const ct_nodeinfo *na = &g->nodes[a], *nb = &g->nodes[b];
    char sa[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (na->dtype != nb->dtype)
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s: dtypes differ (%s and %s); cast one with ct_cast",
                             name, ct_dtype_name(na->dtype), ct_dtype_name(nb->dtype));
    if (!need_float(g, name, a)) return CT_NO_NODE;
    ct_shape out;
    if (!ct_broadcast_shapes(na->shape, nb->shape, &out))
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", name,
                             SHP(na->shape, sa), SHP(nb->shape, sb));
    return ct_graph_add(g, op, na->dtype, out, in, 2, NULL);
}

ct_node ct_add(ct_graph *g, ct_node a, ct_node b) { return binary(g, CT_OP_ADD, "add", a, b); }
ct_node ct_sub(ct_graph *g, ct_node a, ct_node b) { return binary(g, CT_OP_SUB, "sub", a, b); }
ct_node ct_mul(ct_graph *g, ct_node a, ct_node b) { return binary(g, CT_OP_MUL, "mul", a, b); }
ct_node ct_div(ct_graph *g, ct_node a, ct_node b) { return binary(g, CT_OP_DIV, "div", a, b); }

static ct_node unary(ct_graph *g, ct_op op, ct_node x, const ct_attrs *attr) {
    const char *name = ct_op_name(op);
    if (!ct_graph_inputs_ok(g, name, &x, 1)) return CT_NO_NODE;
    if (!need_float(g, name, x)) return CT_NO_NODE;
    return ct_graph_add(g, op, g->nodes[x].dtype, g->nodes[x].shape, &x, 1, attr);
}

ct_node ct_neg(ct_graph *g, ct_node x) { return unary(g, CT_OP_NEG, x, NULL); }
ct_node ct_scale(ct_graph *g, ct_node x, double alpha) {
    return unary(g, CT_OP_SCALE, x, &(ct_attrs){.alpha = alpha});
}
ct_node ct_exp(ct_graph *g, ct_node x) { return unary(g, CT_OP_EXP, x, NULL); }
ct_node ct_log(ct_graph *g, ct_node x) { return unary(g, CT_OP_LOG, x, NULL); }
ct_node ct_sqrt(ct_graph *g, ct_node x) { return unary(g, CT_OP_SQRT, x, NULL); }
ct_node ct_pow(ct_graph *g, ct_node x, double p) {
    return unary(g, CT_OP_POW, x, &(ct_attrs){.alpha = p});
}
ct_node ct_abs(ct_graph *g, ct_node x) { return unary(g, CT_OP_ABS, x, NULL); }
ct_node ct_relu(ct_graph *g, ct_node x) { return unary(g, CT_OP_RELU, x, NULL); }
ct_node ct_leaky_relu(ct_graph *g, ct_node x, double negative_slope) {
    return unary(g, CT_OP_LEAKY_RELU, x, &(ct_attrs){.alpha = negative_slope});
}
ct_node ct_gelu(ct_graph *g, ct_node x, ct_gelu_approx approx) {
    if (g && approx != CT_GELU_EXACT && approx != CT_GELU_TANH)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "gelu: unknown approximation %d", (int)approx);
    return unary(g, CT_OP_GELU, x, &(ct_attrs){.approx = approx});
}
ct_node ct_tanh(ct_graph *g, ct_node x) { return unary(g, CT_OP_TANH, x, NULL); }
ct_node ct_sigmoid(ct_graph *g, ct_node x) { return unary(g, CT_OP_SIGMOID, x, NULL); }
ct_node ct_silu(ct_graph *g, ct_node x) { return unary(g, CT_OP_SILU, x, NULL); }
ct_node ct_softplus(ct_graph *g, ct_node x, double beta, double threshold) {
    if (g && (!isfinite(beta) || beta == 0.0 || isnan(threshold)))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "softplus: beta %g, threshold %g (beta must be finite and "
                             "non-zero, threshold a number)", beta, threshold);
    return unary(g, CT_OP_SOFTPLUS, x, &(ct_attrs){.alpha = beta, .threshold = threshold});
}

ct_node ct_cast(ct_graph *g, ct_node x, ct_dtype dtype) {
    if (!ct_graph_inputs_ok(g, "cast", &x, 1)) return CT_NO_NODE;
    if ((unsigned)dtype >= CT_DTYPE_COUNT)
        return ct_graph_fail(g, CT_ERR_DTYPE, "cast: invalid target dtype %d", (int)dtype);
    return ct_graph_add(g, CT_OP_CAST, dtype, g->nodes[x].shape, &x, 1,
                        &(ct_attrs){.dtype = dtype});
}
