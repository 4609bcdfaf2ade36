/* Op builders: each adds one node to a graph and returns it.
 *
 * Binary elementwise ops broadcast as NumPy does (shapes aligned from the
 * right; a size of 1 stretches). Both operands must have the same dtype;
 * convert with ct_cast. Axes may be negative (counted from the end).
 * Every builder returns CT_NO_NODE on error (see graph.h).
 */
#ifndef CTRAIN_OPS_H
#define CTRAIN_OPS_H

#include "ctrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reduce over all axes (for ct_sum, ct_mean, ct_max). */
#define CT_AXIS_ALL 1000

/* a @ b over the last two axes, with a [..., M, K] (or [..., K, M] when
 * trans_a) and b [..., K, N] (or [..., N, K] when trans_b). Leading (batch)
 * axes broadcast. Both operands need at least 2 axes. */
ct_node ct_matmul(ct_graph *g, ct_node a, ct_node b, bool trans_a, bool trans_b);

/* a + b, a - b, a * b, a / b elementwise, broadcasting (see the top). */
ct_node ct_add(ct_graph *g, ct_node a, ct_node b);
ct_node ct_sub(ct_graph *g, ct_node a, ct_node b);
ct_node ct_mul(ct_graph *g, ct_node a, ct_node b);
ct_node ct_div(ct_graph *g, ct_node a, ct_node b);

/* Elementwise functions of a float x; the output has x's shape and dtype. */
ct_node ct_neg(ct_graph *g, ct_node x);
ct_node ct_scale(ct_graph *g, ct_node x, double alpha);   /* alpha * x */
ct_node ct_exp(ct_graph *g, ct_node x);
ct_node ct_log(ct_graph *g, ct_node x);
ct_node ct_sqrt(ct_graph *g, ct_node x);
ct_node ct_pow(ct_graph *g, ct_node x, double p);         /* x^p, p a constant */
ct_node ct_abs(ct_graph *g, ct_node x);                   /* d|x|/dx at 0 is 0 */
ct_node ct_relu(ct_graph *g, ct_node x);                  /* drelu/dx at 0 is 0 */
ct_node ct_leaky_relu(ct_graph *g, ct_node x, double negative_slope);
typedef enum ct_gelu_approx { CT_GELU_EXACT = 0, CT_GELU_TANH } ct_gelu_approx;
/* GELU, x * Phi(x): exact (erf) or PyTorch's tanh approximation. */
ct_node ct_gelu(ct_graph *g, ct_node x, ct_gelu_approx approx);
/* tanh(x) and the logistic sigmoid 1 / (1 + exp(-x)). */
ct_node ct_tanh(ct_graph *g, ct_node x);
ct_node ct_sigmoid(ct_graph *g, ct_node x);
ct_node ct_silu(ct_graph *g, ct_node x);                  /* x * sigmoid(x) */
/* PyTorch's softplus(x, beta, threshold): log(1 + exp(beta * x)) / beta,
 * and x itself where beta * x > threshold (PyTorch's defaults: beta 1,
 * threshold 20). beta must be finite and non-zero, threshold not NaN. */
ct_node ct_softplus(ct_graph *g, ct_node x, double beta, double threshold);

/* softmax and log(softmax) along one axis, computed stably (the maximum
 * subtracted first). */
ct_node ct_softmax(ct_graph *g, ct_node x, int axis);
ct_node ct_log_softmax(ct_graph *g, ct_node x, int axis);

/* Reductions over one axis, or CT_AXIS_ALL. keepdim keeps the reduced axis
 * with size 1. ct_max's gradient goes to the first maximal element. */
ct_node ct_sum(ct_graph *g, ct_node x, int axis, bool keepdim);
ct_node ct_mean(ct_graph *g, ct_node x, int axis, bool keepdim);
ct_node ct_max(ct_graph *g, ct_node x, int axis, bool keepdim);

/* Same elements, new shape; one size may be -1 (inferred). */
ct_node ct_reshape(ct_graph *g, ct_node x, ct_shape shape);
/* Output axis i is input axis perm[i]; perm has ndim entries. */
ct_node ct_permute(ct_graph *g, ct_node x, const int *perm);
/* Swaps two axes (a permute). */
ct_node ct_transpose(ct_graph *g, ct_node x, int axis0, int axis1);
/* Joins n tensors (same dtype, equal sizes but along axis). */
ct_node ct_concat(ct_graph *g, const ct_node *xs, int n, int axis);
/* Elements start <= i < end along axis (negative counts from the end). */
ct_node ct_slice(ct_graph *g, ct_node x, int axis, int64_t start, int64_t end);

/* Rows of weight [V, D] picked by I32 indices of any shape: out [..., D].
 * An index outside [0, V) is an error at run time. */
ct_node ct_embedding(ct_graph *g, ct_node weight, ct_node indices);

/* Inverted dropout: in training each element is zeroed with probability p
 * and the rest scaled by 1/(1-p), the mask from the graph's Philox stream
 * (this node's stream, the program's step); identity when not training. */
ct_node ct_dropout(ct_graph *g, ct_node x, double p);

/* Mean cross-entropy of logits [N, C] against I32 labels [N], with label
 * smoothing eps in [0, 1) as PyTorch's (target (1-eps) one-hot + eps/C). A
 * label outside [0, C) is an error at run time. Scalar output. */
ct_node ct_cross_entropy(ct_graph *g, ct_node logits, ct_node labels, double label_smoothing);
/* Mean squared error, mean over all elements; same shapes. Scalar. */
ct_node ct_mse(ct_graph *g, ct_node pred, ct_node target);
/* Mean binary cross-entropy of logits against float targets in [0, 1], in
 * the numerically stable form; same shapes. Scalar. */
ct_node ct_bce_with_logits(ct_graph *g, ct_node logits, ct_node target);
/* Kullback-Leibler divergence KL(target || exp(input)) as PyTorch's
 * F.kl_div(input, target, reduction='batchmean'): input holds
 * log-probabilities, target probabilities, same float dtype and shape
 * [N, ...]; the result is sum(target * (log(target) - input)) / N, a term
 * with target 0 counting 0. Scalar. Differentiable in both inputs. */
ct_node ct_kl_div(ct_graph *g, ct_node input, ct_node target);

/* Element type conversion. Float to integer truncates toward zero; values
 * outside the integer range saturate and NaN becomes 0. */
ct_node ct_cast(ct_graph *g, ct_node x, ct_dtype dtype);

/* Scaled dot-product attention, fused: softmax(scale * q @ k^T) @ v over
 * q, k, v of one shape [B, H, T, D] (batch, heads, positions, head size)
 * and one float dtype; the output has that shape and dtype. With causal,
 * query i attends only to keys j <= i. This is PyTorch's
 * scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
 * with equal query and key lengths. scale must be finite and > 0; PyTorch's
 * default is ct_attention_default_scale(D). No T x T matrix is kept: the
 * backward recomputes the softmax from q and k. */
ct_node ct_attention(ct_graph *g, ct_node q, ct_node k, ct_node v, bool causal, double scale);
/* 1 / sqrt(head_dim), PyTorch's default attention scale; 1 when head_dim
 * < 1 (an empty head computes nothing with it). */
double ct_attention_default_scale(int64_t head_dim);

/* Fake quantization, PyTorch's fake_quantize_per_tensor_affine (axis -1;
 * scale and zero_point [1]) and fake_quantize_per_channel_affine (scale and
 * zero_point [C], C = x's size along axis): x rounded to the integer grid
 * of scale, clamped to [quant_min, quant_max] and mapped back, computed in
 * float (double for F64) with round-half-to-even. zero_point holds integers
 * (it is rounded). Backward: the straight-through estimator, dx = dy where
 * round(x / scale) + zero_point lies in the range, 0 outside; scale and
 * zero_point get no gradient. scale and zero_point have x's dtype. */
ct_node ct_fake_quantize(ct_graph *g, ct_node x, ct_node scale, ct_node zero_point, int axis, int64_t quant_min,
                         int64_t quant_max);

#ifdef __cplusplus
}
#endif
#endif
