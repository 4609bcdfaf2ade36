/* The static graph: inputs, parameters, constants and op nodes.
 *
 * Build a model once by adding nodes (see ops.h for the op builders); shapes
 * are inferred as each node is added, so a mismatch is reported by the call
 * that made it. ct_graph_backward() then appends the gradient computation as
 * more nodes of the same graph, and ct_compile() (program.h) turns the graph
 * into a program for one device.
 *
 * Nodes are small integer handles. A builder that fails returns CT_NO_NODE,
 * sets ct_last_error() and records the first error in the graph; a builder
 * given CT_NO_NODE as an input returns CT_NO_NODE without a new message, so a
 * model can be built with one check at the end:
 *
 *     ct_graph *g = ct_graph_new();
 *     ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {64, 784}});
 *     ct_node w = ct_param(g, "fc.weight", CT_F32, (ct_shape){2, {10, 784}},
 *                          ct_init_xavier_uniform(1.0));
 *     ct_node y = ct_matmul(g, x, w, false, true);
 *     if (ct_graph_status(g) != CT_OK) puts(ct_graph_error(g));
 */
#ifndef CTRAIN_GRAPH_H
#define CTRAIN_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/dtype.h"
#include "ctrain/init.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_graph ct_graph;
typedef int32_t ct_node;
#define CT_NO_NODE ((ct_node)-1)

/* A new empty graph with seed 0. Free with ct_graph_free. NULL on OOM. */
ct_graph *ct_graph_new(void);
/* Frees g and every node; NULL is ignored. Programs compiled from g must be
 * freed first. */
void ct_graph_free(ct_graph *g);

/* The seed of the graph's Philox streams (initial weights, dropout masks). */
void ct_graph_set_seed(ct_graph *g, uint64_t seed);
/* The seed set by ct_graph_set_seed (0 by default, and for NULL). */
uint64_t ct_graph_seed(const ct_graph *g);

/* The first error met while building (CT_OK if none; CT_ERR_INVALID_ARG for
 * a NULL graph). */
ct_status ct_graph_status(const ct_graph *g);
/* The message of that error ("" if none), owned by the graph. */
const char *ct_graph_error(const ct_graph *g);

/* A named placeholder fed before each run (ct_program_set_input). Names are
 * unique across inputs and parameters. */
ct_node ct_input(ct_graph *g, const char *name, ct_dtype dtype, ct_shape shape);

/* A named trainable parameter (F32, or F64 for gradient checks; all
 * parameters of a graph share one dtype). Its values come from `init` when a
 * program is compiled. */
ct_node ct_param(ct_graph *g, const char *name, ct_dtype dtype, ct_shape shape, ct_init init);

/* A named buffer: persistent state that is not trained by gradients but
 * updated by the ops that own it (a batch norm's running statistics), saved
 * and loaded with the weights, as PyTorch's register_buffer. F32 (or F64);
 * all buffers share one dtype. Its first values come from `init`. */
ct_node ct_buffer(ct_graph *g, const char *name, ct_dtype dtype, ct_shape shape, ct_init init);
/* The number of buffers, and buffer i of them in creation order
 * (CT_NO_NODE for an i out of range). */
int ct_graph_num_buffers(const ct_graph *g);
ct_node ct_graph_buffer(const ct_graph *g, int i);

/* A constant; `data` (numel * dtype size bytes) is copied. */
ct_node ct_constant(ct_graph *g, ct_dtype dtype, ct_shape shape, const void *data);
/* A constant with every element equal to value. */
ct_node ct_fill(ct_graph *g, ct_dtype dtype, ct_shape shape, double value);

/* Asks ct_graph_backward to produce a gradient for an input too. */
ct_status ct_set_requires_grad(ct_graph *g, ct_node input, bool requires_grad);

/* Names any node (unique); ct_find finds it again (CT_NO_NODE if none). */
ct_status ct_set_name(ct_graph *g, ct_node n, const char *name);
/* The node called name (inputs, parameters, buffers, named nodes). */
ct_node ct_find(const ct_graph *g, const char *name);

/* Introspection. An invalid node gives ndim -1 / CT_DTYPE_COUNT / NULL. */
int ct_graph_num_nodes(const ct_graph *g);
/* The shape inferred for n when it was added. */
ct_shape ct_node_shape(const ct_graph *g, ct_node n);
/* The element type of n. */
ct_dtype ct_node_dtype(const ct_graph *g, ct_node n);
const char *ct_node_name(const ct_graph *g, ct_node n);  /* NULL if unnamed */
const char *ct_node_op(const ct_graph *g, ct_node n);    /* "matmul", "input", ... */

/* Parameters in creation order (this is also their order in the flat buffer). */
int ct_graph_num_params(const ct_graph *g);
/* Parameter i (0 <= i < ct_graph_num_params), CT_NO_NODE otherwise. */
ct_node ct_graph_param(const ct_graph *g, int i);

/* Appends reverse-mode gradient nodes of `loss` (a float scalar) with respect
 * to every parameter and every input marked requires_grad. Once per graph. */
ct_status ct_graph_backward(ct_graph *g, ct_node loss);
/* The gradient node of x after ct_graph_backward, CT_NO_NODE if x has none
 * (it does not reach the loss, or is not a parameter or marked input). */
ct_node ct_grad(const ct_graph *g, ct_node x);

/* The op set, for listings such as `ctrain ops`. */
int ct_op_count(void);
/* The op's name, as ct_node_op gives it ("matmul"); NULL outside
 * 0 .. ct_op_count() - 1. */
const char *ct_op_name(int op);
/* True if the op has a backward rule (ct_graph_backward goes through it). */
bool ct_op_differentiable(int op);
/* True for ops only ct_graph_backward creates (no public builder). */
bool ct_op_internal(int op);
/* The op's class: "source" (inputs, parameters, constants, buffers),
 * "unary" or "binary" (elementwise), "linalg", "reduce" (over an axis),
 * "shape" (data movement, casts), "nn", or "internal"; NULL outside
 * 0 .. ct_op_count() - 1. */
const char *ct_op_class_name(int op);
/* The number of inputs the op takes; -1 when it depends on the call
 * (optional inputs such as a norm's weight, concat's list) or outside
 * 0 .. ct_op_count() - 1. */
int ct_op_arity(int op);

#ifdef __cplusplus
}
#endif
#endif
