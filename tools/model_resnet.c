/* The CLI's residual network, `--model resnet`: the CIFAR ResNet of He et
 * al. (2016) at a size two CPU cores can train.
 *
 *     stem:    conv1 3x3 (W) -> bn1 -> act
 *     stage s = 1, 2, 3 (W, 2W, 4W channels; stride 1, 2, 2), each with
 *              --depth basic blocks:
 *              out = act(bn1(conv1 3x3(x)));  out = bn2(conv2 3x3(out))
 *              out = act(out + shortcut(x))
 *              shortcut: x itself, or downsample = 1x1 conv (stride) + bn
 *              where the stride or the channel count changes
 *     head:    global average pool -> flatten -> fc (classes)
 *
 * W = --width (16), --depth blocks per stage (1): 6 * depth + 2 layers with
 * weights (ResNet-8 by default, ResNet-20 with --depth 3). Names follow
 * torchvision's ResNet (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0,
 * ..., fc), so a torch module with the same attribute names shares the
 * state_dict. Convolutions followed by batch norm have no bias, as there.
 */
#include <stdio.h>

#include <ctrain/ctrain.h>

#include "train_cli.h"

#define RESNET_STAGES 3

/* conv (no bias) -> batch norm under the names "<pre>conv<k>", "<pre>bn<k>". */
static ct_node conv_bn(ct_graph *g, const char *conv, const char *bn, ct_node x, int64_t out, int k, int stride,
                       const ct_init *w_init) {
    ct_node h = ct_conv2d_layer(g, conv, x, out, k, k, ct_conv_geom(stride, k / 2, 1, 1), false, w_init);
    return ct_batch_norm(g, bn, h, 0, 0);
}

static ct_node basic_block(ct_graph *g, const char *pre, ct_node x, int64_t out, int stride, const model_cfg *m,
                           const ct_init *w_init) {
    char a[64], b[64];
    snprintf(a, sizeof a, "%s.conv1", pre);
    snprintf(b, sizeof b, "%s.bn1", pre);
    ct_node h = ct_activation(g, conv_bn(g, a, b, x, out, 3, stride, w_init), m->activation);
    snprintf(a, sizeof a, "%s.conv2", pre);
    snprintf(b, sizeof b, "%s.bn2", pre);
    h = conv_bn(g, a, b, h, out, 3, 1, w_init);
    ct_node shortcut = x;
    if (stride != 1 || ct_node_shape(g, x).dim[1] != out) {
        snprintf(a, sizeof a, "%s.downsample.0", pre);
        snprintf(b, sizeof b, "%s.downsample.1", pre);
        shortcut = conv_bn(g, a, b, x, out, 1, stride, w_init);
    }
    return ct_activation(g, ct_add(g, h, shortcut), m->activation);
}

ct_node model_build_resnet(ct_graph *g, ct_node x, const model_cfg *m) {
    ct_node h = model_image_input(g, x);
    if (h == CT_NO_NODE) return h;
    ct_init rule;
    const ct_init *w_init = model_init_rule(m->init, &rule) ? &rule : NULL;
    int64_t width = model_width(m);
    h = ct_activation(g, conv_bn(g, "conv1", "bn1", h, width, 3, 1, w_init), m->activation);
    char pre[32];
    for (int s = 0; s < RESNET_STAGES; s++)
        for (int b = 0; b < model_depth(m); b++) {
            snprintf(pre, sizeof pre, "layer%d.%d", s + 1, b);
            h = basic_block(g, pre, h, width << s, s > 0 && b == 0 ? 2 : 1, m, w_init);
        }
    h = ct_flatten(g, ct_global_avg_pool2d(g, h), 1);
    if (m->dropout > 0) h = ct_dropout(g, h, m->dropout);
    return ct_linear(g, "fc", h, m->classes, true, w_init);
}
