/* Internal: what the layer builders (src/nn) share: checking a layer's
 * name and input, the dtype of new parameters, and finding or creating the
 * named parameters and buffers a layer owns. */
#ifndef CT_NN_INTERNAL_H
#define CT_NN_INTERNAL_H

#include <stdbool.h>

#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/nn.h"

/* Longest "<layer>.<suffix>" name a layer makes. */
#define CT_NN_NAME_MAX 256

/* Checks the graph, the layer name (non-empty) and the input node, and
 * that the input has a float dtype when want_float. On failure records an
 * error naming the layer (none for a CT_NO_NODE input: an earlier builder
 * failed) and returns false. */
bool ct_nn_begin(ct_graph *g, const char *kind, const char *name, ct_node x, bool want_float);

/* The dtype of a layer's new parameters: the one the graph's parameters
 * already have (they all share one), else F64 for an F64 input and F32
 * otherwise. */
ct_dtype ct_nn_param_dtype(const ct_graph *g, ct_dtype x_dtype);
/* The same for buffers: the graph's buffers' dtype, else `fallback`. */
ct_dtype ct_nn_buffer_dtype(const ct_graph *g, ct_dtype fallback);

/* The parameter (is_buffer false) or buffer called "<name>.<suffix>".
 * If the graph has a node of that name the layer was built before and that
 * node is reused: it must be a parameter (buffer) of shape `shape`, else
 * the error reads "<kind> '<name>': <context>; the existing '<full>' is
 * <shape>". Otherwise a new one is made with dtype and init. */
ct_node ct_nn_state(ct_graph *g, const char *kind, const char *name, const char *suffix, bool is_buffer,
                    ct_shape shape, ct_dtype dtype, ct_init init, const char *context);

/* True when the graph already has a parameter or buffer called
 * "<name>.<suffix>" (the layer was built before). */
bool ct_nn_exists(const ct_graph *g, const char *name, const char *suffix);

/* ct_linear_qat's fake quantization of a weight [out, in] (per output
 * channel, int8 symmetric) and of an input (per tensor, uint8 affine),
 * parameters from the current values (linear_qat.c). */
ct_node ct_nn_fake_quant_weight(ct_graph *g, ct_node w);
ct_node ct_nn_fake_quant_input(ct_graph *g, ct_node x);

#endif
