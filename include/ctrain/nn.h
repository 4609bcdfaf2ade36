/* Layers: functions that add named parameters (and buffers) and ops.
 *
 * A layer is not an object: ct_linear(g, "fc1", x, 10, true, NULL) adds the
 * parameters "fc1.weight" [10, in] and "fc1.bias" [10] to g and returns the
 * layer's output node. Names are PyTorch's state_dict names, so a model
 * built with the same layer names as a torch.nn model saves weights that
 * load there (ct_save_weights) and loads theirs (ct_load_weights). A batch
 * norm's running statistics are buffers (ct_buffer), saved and loaded with
 * the weights; PyTorch also stores "<name>.num_batches_tracked", which has
 * no counterpart here (load PyTorch files with non_strict).
 *
 * Calling a layer builder again with a name it used before applies the
 * same layer again: the existing parameters are reused (shared weights, as
 * calling a torch.nn module twice), and must fit the new input.
 *
 * Parameters take the dtype the graph's parameters already have (all of a
 * graph's parameters share one); the first layer of a graph picks F64 for
 * an F64 input and F32 otherwise. Errors name the layer and the shapes
 * involved, e.g. "linear 'fc2': input [64, 100] has 100 features; the
 * existing 'fc2.weight' [10, 50] takes 50". As every builder, a layer given
 * CT_NO_NODE returns CT_NO_NODE (graph.h).
 *
 *     ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 256, true, NULL), "relu");
 *     h = ct_batch_norm(g, "bn1", h, 0, 0);
 *     ct_node logits = ct_linear(g, "fc2", h, 10, true, NULL);
 */
#ifndef CTRAIN_NN_H
#define CTRAIN_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/conv.h"
#include "ctrain/graph.h"
#include "ctrain/init.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- layers */

/* torch.nn.Linear: x [..., in] (or [in]) -> x @ W^T + b, [..., out].
 * Parameters "<name>.weight" [out, in] and, with bias, "<name>.bias" [out].
 * weight_init NULL means PyTorch's default, kaiming_uniform(a = sqrt(5)),
 * i.e. U(-1/sqrt(in), 1/sqrt(in)); the bias always takes PyTorch's default
 * U(-1/sqrt(in), 1/sqrt(in)). Under an FP16/BF16 precision policy (amp.h)
 * the product casts x and the weight and gives F32, to which the F32 bias is
 * added; without one, an input of another float dtype than the parameters
 * (F16, BF16) gets the weight and bias cast to its dtype. */
ct_node ct_linear(ct_graph *g, const char *name, ct_node x, int64_t out_features, bool bias,
                  const ct_init *weight_init);

/* ct_linear for quantization-aware training: the same parameters, with
 * fake quantization (ct_fake_quantize) on the weight, int8 symmetric per
 * output channel ([-127, 127], scale max|w_row| / 127), and on the input,
 * uint8 affine per tensor from the batch's min and max (the range always
 * holding 0), so that training sees the rounding `ctrain quantize` will
 * apply; gradients pass straight through. The scales are recomputed at
 * every step from the current values and take no gradient. */
ct_node ct_linear_qat(ct_graph *g, const char *name, ct_node x, int64_t out_features, bool bias,
                      const ct_init *weight_init);

/* torch.nn.Conv2d: x [N, C, H, W] -> [N, out_channels, OH, OW] (ct_conv2d
 * in conv.h has the geometry; CT_CONV2D_DEFAULT is PyTorch's stride 1, no
 * padding, dilation 1, groups 1). Parameters "<name>.weight" [out_channels,
 * C / groups, kernel_h, kernel_w] and, with bias, "<name>.bias"
 * [out_channels]. weight_init NULL means PyTorch's default,
 * kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * fan_in = C / groups * kernel_h * kernel_w; the bias always takes
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)). As ct_linear: under an FP16/BF16
 * precision policy the op casts x and the weight (the bias stays F32, the
 * output is F32); without one, an F16/BF16 input gets the weight and bias
 * cast to its dtype. Errors (at build time): x not 4-d, groups not dividing
 * C and out_channels, a kernel larger than the padded input, ... */
ct_node ct_conv2d_layer(ct_graph *g, const char *name, ct_node x, int64_t out_channels, int kernel_h, int kernel_w,
                        ct_conv2d_geom geom, bool bias, const ct_init *weight_init);

/* torch.nn.BatchNorm1d (x [N, C] or [N, C, L]; also [N, C, H, W] and more
 * axes as BatchNorm2d/3d): statistics per channel (axis 1) over every other
 * axis. Parameters "<name>.weight" (ones) and "<name>.bias" (zeros), buffers
 * "<name>.running_mean" (zeros) and "<name>.running_var" (ones). momentum 0
 * means PyTorch's default 0.1 and eps 0 its 1e-5 (PyTorch's momentum=None,
 * a cumulative average, is not offered). In training (the program's
 * default) it normalises with the batch statistics and updates the running
 * ones; otherwise (ct_program_set_training(p, false)) it uses the running
 * ones. Training needs more than one value per channel (an error at run
 * time otherwise, as in PyTorch). */
ct_node ct_batch_norm(ct_graph *g, const char *name, ct_node x, double momentum, double eps);

/* torch.nn.LayerNorm over the last axis: x [..., D]. With affine
 * (elementwise_affine) parameters "<name>.weight" [D] (ones) and
 * "<name>.bias" [D] (zeros). eps 0 means PyTorch's default 1e-5. */
ct_node ct_layer_norm(ct_graph *g, const char *name, ct_node x, double eps, bool affine);

/* torch.nn.Embedding: I32 indices of any shape -> [..., dim] rows of the
 * parameter "<name>.weight" [num_embeddings, dim], initialised N(0, 1) as in
 * PyTorch. An index outside [0, num_embeddings) is an error at run time. */
ct_node ct_embedding_layer(ct_graph *g, const char *name, ct_node indices, int64_t num_embeddings,
                           int64_t dim);

/* An activation by name: "relu", "leaky_relu" (slope 0.01, PyTorch's
 * default), "gelu" (exact, erf), "gelu_tanh" (tanh approximation), "tanh",
 * "sigmoid", "silu", "softplus" (beta 1, threshold 20, PyTorch's defaults),
 * "identity" (returns x itself). Another name is CT_ERR_INVALID_ARG, with
 * a message listing the valid ones. */
ct_node ct_activation(ct_graph *g, ct_node x, const char *kind);
/* True if kind is one of the names ct_activation takes. */
bool ct_activation_valid(const char *kind);

/* ------------------------------------------------- the fused normalisations */

/* y = (x - mean) / sqrt(var + eps) * weight + bias with statistics per
 * channel (axis 1 of x [N, C, ...]) over every other axis: the op behind
 * ct_batch_norm, for building a layer of one's own. weight and bias [C] are
 * any float nodes; either may be CT_NO_NODE for none (affine=False; if the
 * graph already holds an error, CT_NO_NODE is returned as by every
 * builder). running_mean and running_var [C] must be ct_buffer nodes: in
 * training the op updates them in place, exactly as PyTorch,
 *     running = (1 - momentum) * running + momentum * batch_statistic,
 * with the unbiased batch variance for running_var (the output uses the
 * biased one); out of training it normalises with them. momentum is taken
 * as given (0: the running statistics never move), in [0, 1]; eps >= 0.
 * The output has x's dtype; the backward is one fused kernel per gradient. */
ct_node ct_batch_norm_op(ct_graph *g, ct_node x, ct_node weight, ct_node bias, ct_node running_mean,
                         ct_node running_var, double momentum, double eps);

/* y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis of x
 * (biased variance), the op behind ct_layer_norm. weight and bias have the
 * last axis's size; either may be CT_NO_NODE for none, as above. */
ct_node ct_layer_norm_op(ct_graph *g, ct_node x, ct_node weight, ct_node bias, double eps);

#ifdef __cplusplus
}
#endif
#endif
