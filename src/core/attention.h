/* Internal: the fused scaled dot-product attention op (ops_attention.c)
 * and its backward (grad_attention.c), shared with the kernels.
 *
 * ATTENTION takes q, k, v of one shape [B, H, T, D] and one float dtype;
 * attr.alpha is the scale, attr.causal masks key j > query i. Its backward
 * is ATTENTION_GRAD, inputs q, k, v, dy and attr.which a ct_attn_grad:
 * one node for all three gradients when all three are wanted (the usual
 * case: q, k and v come from one projection), else one node per gradient
 * wanted. It recomputes the softmax from q and k (as the norms recompute
 * their statistics), so no T x T matrix and no per-row statistics have to
 * live from the forward pass to the backward.
 */
#ifndef CT_CORE_ATTENTION_H
#define CT_CORE_ATTENTION_H

#include "core/autodiff.h"

/* Which gradient an ATTENTION_GRAD node produces (attr.which). QKV: all
 * three, stacked on a new leading axis ([3, B, H, T, D]: dq, dk, dv), so
 * the softmax and dy v^T that all three need are computed once. */
typedef enum ct_attn_grad { CT_ATTN_GRAD_Q = 0, CT_ATTN_GRAD_K, CT_ATTN_GRAD_V, CT_ATTN_GRAD_QKV } ct_attn_grad;

/* The backward of ATTENTION node nd (y, its output; a rule of the gradient
 * table in grad_rules.c): dq, dk, dv for the inputs that need one. False on
 * error (recorded in g). */
bool ct_grad_attention(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);

#endif
