/* Internal: the autocast rule of the precision policy (include/ctrain/amp.h).
 *
 * One place decides which operands of an op are cast to half precision and
 * what dtype the op then produces, so that every op of the matrix-product
 * family (matmul, conv2d) follows the same policy by calling
 * ct_autocast_operands from its builder, and every layer feeding one
 * (linear, conv2d) gives it its parameters through ct_autocast_param.
 */
#ifndef CT_CORE_AUTOCAST_H
#define CT_CORE_AUTOCAST_H

#include "core/node.h"

/* x cast to dtype: x itself when it already has that dtype, an existing
 * cast of x to dtype when the graph has one (a cast is a pure function of
 * its input, so a weight read by several products is cast once per step),
 * otherwise a new CAST node. CT_NO_NODE on error (recorded in g). */
ct_node ct_cast_folded(ct_graph *g, ct_node x, ct_dtype dtype);

/* Applies g's policy to the n operands in[] of a matrix product, in place.
 * Under FP16/BF16, operands of dtype F32, F16 or BF16 become casts to the
 * policy's dtype and *out_dtype is F32 (FP32 accumulation, F32 result);
 * under FP32, or when an operand is not one of those dtypes (F64 in gradient
 * checks, integers), nothing changes and *out_dtype is in[0]'s dtype.
 * Returns false on a build error (recorded in g). Inputs must be valid. */
bool ct_autocast_operands(ct_graph *g, ct_node *in, int n, ct_dtype *out_dtype);

/* A layer's parameter p as the op reading it with an input of dtype x_dtype
 * wants it. p itself when it has that dtype, or when g's policy is FP16/BF16
 * and both dtypes are F32, F16 or BF16: the op's ct_autocast_operands then
 * casts both, once each (casting p to x_dtype first would round it twice
 * when x_dtype is not the policy's). Otherwise p cast to x_dtype (folded):
 * a half input without a policy computes in its own dtype. CT_NO_NODE on
 * error (recorded in g). p must be valid. */
ct_node ct_autocast_param(ct_graph *g, ct_node p, ct_dtype x_dtype);

/* The matrix product with an explicit result dtype and no autocast: both
 * operands share one float dtype and out_dtype is that dtype or, for F16 and
 * BF16 operands, F32. The backward rules use it so that gradients follow the
 * forward nodes' dtypes rather than the policy in force. */
ct_node ct_matmul_typed(ct_graph *g, ct_node a, ct_node b, bool trans_a, bool trans_b, ct_dtype out_dtype,
                        bool tf32);

#endif
