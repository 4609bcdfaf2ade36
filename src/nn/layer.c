/* What every layer builder shares: the checks on its name and input, the
 * dtype of its parameters, and finding or making its named state. */
#include <stdio.h>
#include <string.h>

#include "nn/nn_internal.h"

bool ct_nn_begin(ct_graph *g, const char *kind, const char *name, ct_node x, bool want_float) {
    if (!ct_graph_inputs_ok(g, kind, &x, 1)) return false;
    if (!name || !*name) {
        ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: a layer name is required (it prefixes the parameter names)",
                      kind);
        return false;
    }
    if (strlen(name) + 32 > CT_NN_NAME_MAX) {
        ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: the layer name '%.40s...' is longer than %d characters", kind,
                      name, CT_NN_NAME_MAX - 32);
        return false;
    }
    const ct_nodeinfo *nx = &g->nodes[x];
    if (want_float && !ct_dtype_is_float(nx->dtype)) {
        char s[CT_SHAPE_STR];
        ct_graph_fail(g, CT_ERR_DTYPE, "%s '%s': input %s is %s; it takes floats", kind, name, SHP(nx->shape, s),
                      ct_dtype_name(nx->dtype));
        return false;
    }
    return true;
}

ct_dtype ct_nn_param_dtype(const ct_graph *g, ct_dtype x_dtype) {
    if (g->n_params > 0) return g->nodes[g->params[0]].dtype;
    return x_dtype == CT_F64 ? CT_F64 : CT_F32;
}

ct_dtype ct_nn_buffer_dtype(const ct_graph *g, ct_dtype fallback) {
    if (g->n_buffers > 0) return g->nodes[g->buffers[0]].dtype;
    return fallback;
}

static void full_name(char *buf, const char *name, const char *suffix) {
    /* ct_nn_begin bounded the name, so this never truncates */
    snprintf(buf, CT_NN_NAME_MAX, "%s.%s", name, suffix);
}

bool ct_nn_exists(const ct_graph *g, const char *name, const char *suffix) {
    char full[CT_NN_NAME_MAX];
    full_name(full, name, suffix);
    ct_node n = ct_find(g, full);
    return n != CT_NO_NODE && (g->nodes[n].op == CT_OP_PARAM || g->nodes[n].op == CT_OP_BUFFER);
}

ct_node ct_nn_state(ct_graph *g, const char *kind, const char *name, const char *suffix, bool is_buffer,
                    ct_shape shape, ct_dtype dtype, ct_init init, const char *context) {
    char full[CT_NN_NAME_MAX];
    full_name(full, name, suffix);
    ct_node n = ct_find(g, full);
    if (n == CT_NO_NODE)
        return is_buffer ? ct_buffer(g, full, dtype, shape, init) : ct_param(g, full, dtype, shape, init);
    /* Built before: the same layer applied again shares its state. */
    const ct_nodeinfo *nd = &g->nodes[n];
    ct_op want = is_buffer ? CT_OP_BUFFER : CT_OP_PARAM;
    if (nd->op != want)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s '%s': the name '%s' is already taken by a%s '%s' node, not a %s",
                             kind, name, full, strchr("aeiou", ct_op_name(nd->op)[0]) ? "n" : "", ct_op_name(nd->op),
                             is_buffer ? "buffer" : "parameter");
    if (!ct_shape_equal(nd->shape, shape)) {
        char s[CT_SHAPE_STR];
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s '%s': %s; the existing '%s' is %s", kind, name, context, full,
                             SHP(nd->shape, s));
    }
    return n;
}
