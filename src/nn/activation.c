/* Activations chosen by name, for models described by configuration (the
 * CLI, model files) rather than by code. */
#include <string.h>

#include "ctrain/ops.h"
#include "nn/nn_internal.h"

#define VALID_KINDS "relu, leaky_relu, gelu, gelu_tanh, tanh, sigmoid, silu, softplus, identity"

typedef enum act {
    ACT_RELU, ACT_LEAKY_RELU, ACT_GELU, ACT_GELU_TANH, ACT_TANH, ACT_SIGMOID, ACT_SILU, ACT_SOFTPLUS, ACT_IDENTITY,
    ACT_NONE
} act;

static const char *const act_names[ACT_NONE] = {
    "relu", "leaky_relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu", "softplus", "identity",
};

static act act_of(const char *kind) {
    if (!kind) return ACT_NONE;
    for (int i = 0; i < ACT_NONE; i++)
        if (strcmp(kind, act_names[i]) == 0) return (act)i;
    return ACT_NONE;
}

bool ct_activation_valid(const char *kind) { return act_of(kind) != ACT_NONE; }

ct_node ct_activation(ct_graph *g, ct_node x, const char *kind) {
    if (!ct_graph_inputs_ok(g, "activation", &x, 1)) return CT_NO_NODE;
    act a = act_of(kind);
    if (a == ACT_NONE) {
        if (!kind)
            return ct_graph_fail(g, CT_ERR_INVALID_ARG, "activation: kind is NULL; valid kinds: " VALID_KINDS);
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "activation: unknown kind '%.64s'; valid kinds: " VALID_KINDS,
                             kind);
    }
    switch (a) {
    case ACT_RELU: return ct_relu(g, x);
    case ACT_LEAKY_RELU: return ct_leaky_relu(g, x, 0.01); /* torch.nn.LeakyReLU's default slope */
    case ACT_GELU: return ct_gelu(g, x, CT_GELU_EXACT);
    case ACT_GELU_TANH: return ct_gelu(g, x, CT_GELU_TANH);
    case ACT_TANH: return ct_tanh(g, x);
    case ACT_SIGMOID: return ct_sigmoid(g, x);
    case ACT_SILU: return ct_silu(g, x);
    case ACT_SOFTPLUS: return ct_softplus(g, x, 1.0, 20.0); /* torch.nn.Softplus's defaults */
    case ACT_IDENTITY:
        /* x itself, but an integer x is refused as the other kinds refuse it */
        if (!ct_dtype_is_float(g->nodes[x].dtype))
            return ct_graph_fail(g, CT_ERR_DTYPE, "activation identity: input is %s; it takes floats",
                                 ct_dtype_name(g->nodes[x].dtype));
        return x;
    default: return CT_NO_NODE;
    }
}
