/* The graph: an append-only list of nodes, plus sources (inputs, parameters,
 * constants), naming and introspection. Op builders live in ops_*.c,
 * backward rules in grad_*.c, the op set's data in op_table.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/node.h"

ct_graph *ct_graph_new(void) {
    ct_graph *g = calloc(1, sizeof *g);
    if (!g) ct_error(CT_ERR_OOM, "ct_graph_new: out of memory");
    return g;
}

void ct_graph_free(ct_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].name);
        free(g->nodes[i].const_data);
    }
    free(g->nodes);
    free(g->params);
    free(g->buffers);
    free(g->grad_of);
    free(g);
}

void ct_graph_set_seed(ct_graph *g, uint64_t seed) {
    if (g) g->seed = seed;
}
uint64_t ct_graph_seed(const ct_graph *g) { return g ? g->seed : 0; }
ct_status ct_graph_status(const ct_graph *g) { return g ? g->status : CT_ERR_INVALID_ARG; }
const char *ct_graph_error(const ct_graph *g) { return g ? g->error : "no graph"; }

ct_node ct_graph_fail(ct_graph *g, ct_status s, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g && g->status == CT_OK) {
        g->status = s;
        snprintf(g->error, sizeof g->error, "%s", msg);
    }
    ct_error(s, "%s", msg);
    return CT_NO_NODE;
}

const ct_nodeinfo *ct_graph_node(const ct_graph *g, ct_node n) {
    if (!g || n < 0 || n >= g->n) return NULL;
    return &g->nodes[n];
}

bool ct_graph_inputs_ok(ct_graph *g, const char *op, const ct_node *in, int n) {
    if (!g) {
        ct_error(CT_ERR_INVALID_ARG, "%s: graph is NULL", op);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (in[i] == CT_NO_NODE) return false; /* an earlier builder failed: already reported */
        if (in[i] < 0 || in[i] >= g->n) {
            ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: input %d is not a node of this graph (%d)", op,
                          i, (int)in[i]);
            return false;
        }
    }
    return true;
}

ct_node ct_graph_add(ct_graph *g, ct_op op, ct_dtype dtype, ct_shape shape, const ct_node *in,
                     int n_in, const ct_attrs *attr) {
    /* A builder or backward rule that passes the wrong number of inputs is
     * a bug in the library: caught here, for every node, not in a kernel. */
    if (ct_op_check_inputs("graph", op, n_in) != CT_OK)
        return ct_graph_fail(g, CT_ERR_INTERNAL, "%s", ct_last_error());
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        ct_nodeinfo *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return ct_graph_fail(g, CT_ERR_OOM, "%s: out of memory", ct_op_name(op));
        g->nodes = nodes;
        g->cap = cap;
    }
    ct_nodeinfo *nd = &g->nodes[g->n];
    memset(nd, 0, sizeof *nd);
    if (n_in > 0) {
        nd->in = malloc((size_t)n_in * sizeof *nd->in);
        if (!nd->in) return ct_graph_fail(g, CT_ERR_OOM, "%s: out of memory", ct_op_name(op));
        memcpy(nd->in, in, (size_t)n_in * sizeof *in);
    }
    nd->op = op;
    nd->dtype = dtype;
    nd->shape = shape;
    nd->n_in = n_in;
    nd->param_index = -1;
    if (attr) nd->attr = *attr;
    return g->n++;
}

static bool name_taken(const ct_graph *g, const char *name) {
    return ct_find(g, name) != CT_NO_NODE;
}

static bool shape_ok(ct_graph *g, const char *what, ct_shape s) {
    if (s.ndim < 0 || s.ndim > CT_MAX_DIMS) {
        ct_graph_fail(g, CT_ERR_SHAPE, "%s: %d dimensions (at most %d)", what, s.ndim, CT_MAX_DIMS);
        return false;
    }
    for (int d = 0; d < s.ndim; d++)
        if (s.dim[d] <= 0) {
            char b[128];
            ct_graph_fail(g, CT_ERR_SHAPE, "%s: shape %s has a size <= 0", what,
                          ct_shape_str(s, b, sizeof b));
            return false;
        }
    return true;
}

static ct_node add_named_source(ct_graph *g, ct_op op, const char *what, const char *name,
                                ct_dtype dtype, ct_shape shape) {
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "%s: graph is NULL", what), CT_NO_NODE;
    if (!name || !*name) return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: a name is required", what);
    if (name_taken(g, name))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: the name '%s' is already used", what, name);
    if ((unsigned)dtype >= CT_DTYPE_COUNT)
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s '%s': invalid dtype %d", what, name, (int)dtype);
    if (!shape_ok(g, what, shape)) return CT_NO_NODE;
    char *copy = strdup(name);
    if (!copy) return ct_graph_fail(g, CT_ERR_OOM, "%s: out of memory", what);
    ct_node n = ct_graph_add(g, op, dtype, shape, NULL, 0, NULL);
    if (n == CT_NO_NODE) {
        free(copy);
        return n;
    }
    g->nodes[n].name = copy;
    return n;
}

ct_node ct_input(ct_graph *g, const char *name, ct_dtype dtype, ct_shape shape) {
    return add_named_source(g, CT_OP_INPUT, "ct_input", name, dtype, shape);
}

/* Parameters and buffers: named float state laid out flat by the program,
 * so each kind shares one dtype and keeps a list in creation order. */
static ct_node add_state(ct_graph *g, ct_op op, const char *fn, const char *kind, ct_node **list,
                         int *n_list, int *cap_list, const char *name, ct_dtype dtype, ct_shape shape,
                         ct_init init) {
    if (!g) return add_named_source(g, op, fn, name, dtype, shape);
    const char *nm = name ? name : "?";
    if (dtype != CT_F32 && dtype != CT_F64)
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s '%s': %ss are f32 (or f64), not %s", fn, nm, kind,
                             ct_dtype_name(dtype));
    if (*n_list > 0 && g->nodes[(*list)[0]].dtype != dtype)
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s '%s': all %ss share one dtype (%s), not %s", fn, nm, kind,
                             ct_dtype_name(g->nodes[(*list)[0]].dtype), ct_dtype_name(dtype));
    if (*n_list == *cap_list) {
        int cap = *cap_list ? 2 * *cap_list : 16;
        ct_node *grown = realloc(*list, (size_t)cap * sizeof *grown);
        if (!grown) return ct_graph_fail(g, CT_ERR_OOM, "%s: out of memory", fn);
        *list = grown;
        *cap_list = cap;
    }
    ct_node n = add_named_source(g, op, fn, name, dtype, shape);
    if (n == CT_NO_NODE) return n;
    g->nodes[n].init = init;
    g->nodes[n].param_index = *n_list;
    (*list)[(*n_list)++] = n;
    return n;
}

ct_node ct_param(ct_graph *g, const char *name, ct_dtype dtype, ct_shape shape, ct_init init) {
    /* A parameter added later would have no gradient node. */
    if (g && g->backward_done)
        return ct_graph_fail(g, CT_ERR_STATE, "ct_param '%s': added after ct_graph_backward",
                             name ? name : "?");
    ct_node n = add_state(g, CT_OP_PARAM, "ct_param", "parameter", g ? &g->params : NULL,
                          g ? &g->n_params : NULL, g ? &g->cap_params : NULL, name, dtype, shape, init);
    if (n != CT_NO_NODE) g->nodes[n].requires_grad = true;
    return n;
}

ct_node ct_buffer(ct_graph *g, const char *name, ct_dtype dtype, ct_shape shape, ct_init init) {
    return add_state(g, CT_OP_BUFFER, "ct_buffer", "buffer", g ? &g->buffers : NULL, g ? &g->n_buffers : NULL,
                     g ? &g->cap_buffers : NULL, name, dtype, shape, init);
}

int ct_graph_num_buffers(const ct_graph *g) { return g ? g->n_buffers : 0; }
ct_node ct_graph_buffer(const ct_graph *g, int i) {
    return g && i >= 0 && i < g->n_buffers ? g->buffers[i] : CT_NO_NODE;
}

ct_node ct_constant(ct_graph *g, ct_dtype dtype, ct_shape shape, const void *data) {
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "ct_constant: graph is NULL"), CT_NO_NODE;
    if ((unsigned)dtype >= CT_DTYPE_COUNT)
        return ct_graph_fail(g, CT_ERR_DTYPE, "ct_constant: invalid dtype %d", (int)dtype);
    if (!data) return ct_graph_fail(g, CT_ERR_INVALID_ARG, "ct_constant: data is NULL");
    if (!shape_ok(g, "ct_constant", shape)) return CT_NO_NODE;
    size_t bytes = (size_t)ct_shape_numel(shape) * ct_dtype_size(dtype);
    void *copy = malloc(bytes);
    if (!copy) return ct_graph_fail(g, CT_ERR_OOM, "ct_constant: out of memory (%zu bytes)", bytes);
    memcpy(copy, data, bytes);
    ct_node n = ct_graph_add(g, CT_OP_CONST, dtype, shape, NULL, 0, NULL);
    if (n == CT_NO_NODE) {
        free(copy);
        return n;
    }
    g->nodes[n].const_data = copy;
    return n;
}

ct_node ct_fill(ct_graph *g, ct_dtype dtype, ct_shape shape, double value) {
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "ct_fill: graph is NULL"), CT_NO_NODE;
    if (!ct_dtype_is_float(dtype) && dtype != CT_I32 && dtype != CT_U8)
        return ct_graph_fail(g, CT_ERR_DTYPE, "ct_fill: invalid dtype %d", (int)dtype);
    if (!shape_ok(g, "ct_fill", shape)) return CT_NO_NODE;
    int64_t numel = ct_shape_numel(shape);
    size_t es = ct_dtype_size(dtype);
    unsigned char *buf = malloc((size_t)numel * es);
    if (!buf) return ct_graph_fail(g, CT_ERR_OOM, "ct_fill: out of memory");
    for (int64_t i = 0; i < numel; i++) {
        unsigned char *p = buf + (size_t)i * es;
        switch (dtype) {
        case CT_F32: *(float *)p = (float)value; break;
        case CT_F64: *(double *)p = value; break;
        case CT_F16: *(uint16_t *)p = ct_f32_to_f16((float)value); break;
        case CT_BF16: *(uint16_t *)p = ct_f32_to_bf16((float)value); break;
        case CT_I32: *(int32_t *)p = (int32_t)value; break;
        default: *p = (unsigned char)value; break;
        }
    }
    ct_node n = ct_constant(g, dtype, shape, buf);
    free(buf);
    return n;
}

ct_status ct_set_requires_grad(ct_graph *g, ct_node input, bool requires_grad) {
    const ct_nodeinfo *nd = ct_graph_node(g, input);
    if (!nd) return ct_error(CT_ERR_INVALID_ARG, "ct_set_requires_grad: not a node (%d)", (int)input);
    if (nd->op != CT_OP_INPUT)
        return ct_error(CT_ERR_INVALID_ARG, "ct_set_requires_grad: node %d is a %s, not an input",
                        (int)input, ct_op_name(nd->op));
    if (!ct_dtype_is_float(nd->dtype))
        return ct_error(CT_ERR_DTYPE, "ct_set_requires_grad: input '%s' is %s; gradients need floats",
                        nd->name, ct_dtype_name(nd->dtype));
    if (g->backward_done)
        return ct_error(CT_ERR_STATE, "ct_set_requires_grad: called after ct_graph_backward");
    g->nodes[input].requires_grad = requires_grad;
    return CT_OK;
}

ct_status ct_set_name(ct_graph *g, ct_node n, const char *name) {
    if (!ct_graph_node(g, n)) return ct_error(CT_ERR_INVALID_ARG, "ct_set_name: not a node (%d)", (int)n);
    if (!name || !*name) return ct_error(CT_ERR_INVALID_ARG, "ct_set_name: empty name");
    ct_node other = ct_find(g, name);
    if (other != CT_NO_NODE && other != n)
        return ct_error(CT_ERR_INVALID_ARG, "ct_set_name: the name '%s' is already used", name);
    if (g->nodes[n].op == CT_OP_INPUT || g->nodes[n].op == CT_OP_PARAM)
        return ct_error(CT_ERR_INVALID_ARG, "ct_set_name: inputs and parameters keep their names");
    char *copy = strdup(name);
    if (!copy) return ct_error(CT_ERR_OOM, "ct_set_name: out of memory");
    free(g->nodes[n].name);
    g->nodes[n].name = copy;
    return CT_OK;
}

ct_node ct_find(const ct_graph *g, const char *name) {
    if (!g || !name) return CT_NO_NODE;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0) return i;
    return CT_NO_NODE;
}

int ct_graph_num_nodes(const ct_graph *g) { return g ? g->n : 0; }

ct_shape ct_node_shape(const ct_graph *g, ct_node n) {
    const ct_nodeinfo *nd = ct_graph_node(g, n);
    if (!nd) return (ct_shape){-1, {0}};
    return nd->shape;
}

ct_dtype ct_node_dtype(const ct_graph *g, ct_node n) {
    const ct_nodeinfo *nd = ct_graph_node(g, n);
    return nd ? nd->dtype : CT_DTYPE_COUNT;
}

const char *ct_node_name(const ct_graph *g, ct_node n) {
    const ct_nodeinfo *nd = ct_graph_node(g, n);
    return nd ? nd->name : NULL;
}

const char *ct_node_op(const ct_graph *g, ct_node n) {
    const ct_nodeinfo *nd = ct_graph_node(g, n);
    return nd ? ct_op_name(nd->op) : NULL;
}

int ct_graph_num_params(const ct_graph *g) { return g ? g->n_params : 0; }
ct_node ct_graph_param(const ct_graph *g, int i) {
    return g && i >= 0 && i < g->n_params ? g->params[i] : CT_NO_NODE;
}

ct_node ct_grad(const ct_graph *g, ct_node x) {
    if (!g || !g->backward_done || x < 0 || x >= g->n_grad_of) return CT_NO_NODE;
    return g->grad_of[x];
}
