/* Convolution and pooling ops on images laid out NCHW ([N, C, H, W]).
 *
 * The op builders follow ops.h: each adds one node (or a few existing ops)
 * and returns it, CT_NO_NODE on error with a message that names the op and
 * the shapes, e.g. "conv2d: x [8, 3, 32, 32] has 3 channels, but weight
 * [16, 4, 3, 3] with groups 1 takes 4". Every geometry error (a kernel
 * larger than the padded input, channels that do not match the weight,
 * groups that do not divide the channels, a stride below 1, ...) is found
 * when the node is built, not when the program runs.
 *
 * Semantics are PyTorch's (torch.nn.functional): output sizes are rounded
 * down (ceil_mode = False), max pooling pads with -inf and propagates NaN,
 * average pooling counts the padding (count_include_pad = True). Layers
 * with parameters (ct_conv2d_layer) are in nn.h.
 *
 *     ct_node h = ct_conv2d_layer(g, "conv1", x, 32, 5, 5, CT_CONV2D_DEFAULT, true, NULL);
 *     h = ct_max_pool2d(g, ct_relu(g, h), ct_pool_geom(2, 0, 0));
 *     h = ct_flatten(g, h, 1);
 */
#ifndef CTRAIN_CONV_H
#define CTRAIN_CONV_H

#include "ctrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A convolution's geometry; index 0 is the height axis, 1 the width axis.
 * Taken as given: every field must be valid (no zero-means-default). */
typedef struct ct_conv2d_geom {
    int stride[2];   /* >= 1 */
    int padding[2];  /* >= 0: zeros added on both sides */
    int dilation[2]; /* >= 1: spacing of the kernel's taps */
    int groups;      /* >= 1, dividing the input and the output channels */
} ct_conv2d_geom;

/* torch.nn.Conv2d's defaults: stride 1, no padding, dilation 1, one group. */
#define CT_CONV2D_DEFAULT ((ct_conv2d_geom){{1, 1}, {0, 0}, {1, 1}, 1})

/* The same stride, padding and dilation on both axes. */
ct_conv2d_geom ct_conv_geom(int stride, int padding, int dilation, int groups);

/* A pooling window. Taken as given, as above. */
typedef struct ct_pool2d_geom {
    int kernel[2];  /* >= 1 */
    int stride[2];  /* >= 1 */
    int padding[2]; /* >= 0 and at most kernel / 2 (as PyTorch requires) */
} ct_pool2d_geom;

/* A square window: kernel, stride (0: the kernel size, PyTorch's
 * stride = None) and padding on both axes. */
ct_pool2d_geom ct_pool_geom(int kernel, int stride, int padding);

/* Cross-correlation of x [N, C, H, W] with weight [O, C / groups, KH, KW],
 * plus bias [O] unless bias is CT_NO_NODE: out [N, O, OH, OW] with
 *     OH = (H + 2 padding - dilation (KH - 1) - 1) / stride + 1   (floor)
 * and the same for OW. Input channel group j (C / groups channels) feeds
 * output channels j * O / groups .. (j + 1) * O / groups - 1. x, weight and
 * bias share one float dtype; F16/BF16 are stored as such and computed in
 * F32, F64 in F64. Under an FP16/BF16 precision policy (amp.h) F32, F16 and
 * BF16 x and weight are cast to the policy's type and the result is F32,
 * accumulated in FP32; the bias is then F32 (an F16/BF16 bias is widened).
 * F64 is never cast. Errors (at build time): dtypes that differ otherwise,
 * and the geometry errors listed at the top of this header. */
ct_node ct_conv2d(ct_graph *g, ct_node x, ct_node weight, ct_node bias, ct_conv2d_geom geom);

/* Max over each window of x [N, C, H, W], padding counted as -inf; a NaN in
 * a window is its maximum. The gradient goes to the first maximal element
 * of the window (row-major order), as on PyTorch's CPU. */
ct_node ct_max_pool2d(ct_graph *g, ct_node x, ct_pool2d_geom geom);

/* Mean over each window of x [N, C, H, W], padding counted as zeros in the
 * window (the divisor is always KH * KW). */
ct_node ct_avg_pool2d(ct_graph *g, ct_node x, ct_pool2d_geom geom);

/* Mean over H and W of x [N, C, H, W]: out [N, C, 1, 1], as
 * adaptive_avg_pool2d(x, 1). Built from reshape and mean. */
ct_node ct_global_avg_pool2d(ct_graph *g, ct_node x);

/* torch.flatten(x, start_axis): axes start_axis .. the last merged into one
 * (start_axis may be negative). A reshape; x keeps its dtype. */
ct_node ct_flatten(ct_graph *g, ct_node x, int start_axis);

/* Channel dropout (torch.nn.Dropout2d) on x [N, C, ...] (at least 2 axes):
 * in training each of the N * C channels is zeroed as a whole with
 * probability p and the others are scaled by 1 / (1 - p); identity out of
 * training. Channel j = n * C + c keeps when Philox uniform (graph seed,
 * this node's stream, program step, j) >= p: ct_dropout's rule with the
 * channel's index in place of the element's. */
ct_node ct_dropout2d(ct_graph *g, ct_node x, double p);

#ifdef __cplusplus
}
#endif
#endif
