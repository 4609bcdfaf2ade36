/* The CLI's convolutional model, `--model cnn`, and what the image models
 * (cnn, resnet) share: their defaults and their view of the input.
 *
 * A LeNet-style network of two conv blocks and a classifier, named as a
 * torch.nn module written the obvious way,
 *
 *     self.conv1 = nn.Conv2d(C, W, 5);  self.bn1 = nn.BatchNorm2d(W)   # --batchnorm
 *     self.conv2 = nn.Conv2d(W, 2W, 5); self.bn2 = nn.BatchNorm2d(2W)
 *     self.fc1 = nn.Linear(2W * h * w, 128); self.fc2 = nn.Linear(128, classes)
 *     forward: pool(act(bn(conv))) twice (max pool 2x2), flatten,
 *              act(fc1) (dropout), fc2
 *
 * with W = --width (32) and the classifier's hidden sizes from --hidden
 * (128). On MNIST: 28x28 -> 24 -> 12 -> 8 -> 4, so fc1 takes 64 * 16 = 1024
 * features.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "train_cli.h"

bool model_is_image(const model_cfg *m) { return strcmp(m->model, "cnn") == 0 || strcmp(m->model, "resnet") == 0; }

int model_width(const model_cfg *m) {
    if (m->width > 0) return m->width;
    return strcmp(m->model, "resnet") == 0 ? RESNET_DEFAULT_WIDTH : CNN_DEFAULT_WIDTH;
}

int model_depth(const model_cfg *m) { return m->depth > 0 ? m->depth : RESNET_DEFAULT_DEPTH; }

/* The side of a square image of n pixels, or 0. */
static int64_t square_side(int64_t n) {
    int64_t s = (int64_t)llround(sqrt((double)n));
    return s > 0 && s * s == n ? s : 0;
}

bool model_input_ok(const model_cfg *m, ct_shape sample, const char **why) {
    *why = "";
    if (!model_is_image(m)) return true;
    if (sample.ndim == 3 || sample.ndim == 2 || (sample.ndim == 1 && square_side(sample.dim[0]))) return true;
    *why = "it takes images: samples [C, H, W], [H, W], or a square number of pixels";
    return false;
}

ct_node model_image_input(ct_graph *g, ct_node x) {
    ct_shape s = ct_node_shape(g, x);
    if (s.ndim == 4) return x;
    if (s.ndim == 3) return ct_reshape(g, x, (ct_shape){4, {s.dim[0], 1, s.dim[1], s.dim[2]}});
    int64_t side = s.ndim == 2 ? square_side(s.dim[1]) : 0;
    if (!side) return CT_NO_NODE;
    return ct_reshape(g, x, (ct_shape){4, {s.dim[0], 1, side, side}});
}

ct_node model_build_cnn(ct_graph *g, ct_node x, const model_cfg *m) { return model_build_cnn_taps(g, x, m, NULL); }

ct_node model_build_cnn_taps(ct_graph *g, ct_node x, const model_cfg *m, ct_node *taps) {
    ct_node h = model_image_input(g, x);
    ct_init rule;
    const ct_init *w_init = model_init_rule(m->init, &rule) ? &rule : NULL;
    int width = model_width(m);
    char name[32];
    for (int i = 1; i <= 2; i++) {
        snprintf(name, sizeof name, "conv%d", i);
        if (taps) taps[i - 1] = h;
        h = ct_conv2d_layer(g, name, h, (int64_t)width * i, 5, 5, CT_CONV2D_DEFAULT, true, w_init);
        if (m->batchnorm) {
            snprintf(name, sizeof name, "bn%d", i);
            h = ct_batch_norm(g, name, h, 0, 0);
        }
        h = ct_max_pool2d(g, ct_activation(g, h, m->activation), ct_pool_geom(2, 0, 0));
    }
    h = ct_flatten(g, h, 1);
    for (int i = 0; i < m->n_hidden; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        if (taps) taps[2 + i] = h;
        h = ct_activation(g, ct_linear(g, name, h, m->hidden[i], true, w_init), m->activation);
        if (m->dropout > 0) h = ct_dropout(g, h, m->dropout);
    }
    snprintf(name, sizeof name, "fc%d", m->n_hidden + 1);
    if (taps) taps[2 + m->n_hidden] = h;
    return ct_linear(g, name, h, m->classes, true, w_init);
}

void model_describe_image(const model_cfg *cfg, int64_t inputs, char *buf, size_t cap) {
    size_t len;
    int width = model_width(cfg), depth = model_depth(cfg);
    if (strcmp(cfg->model, "resnet") == 0) {
        len = (size_t)snprintf(buf, cap, "resnet-%d %lld, width %d, %d block%s/stage, -%lld %s", 6 * depth + 2,
                               (long long)inputs, width, depth, depth == 1 ? "" : "s", (long long)cfg->classes,
                               cfg->activation);
    } else {
        len = (size_t)snprintf(buf, cap, "cnn %lld-conv5x5(%d)-pool-conv5x5(%d)-pool", (long long)inputs, width,
                               2 * width);
        for (int i = 0; i < cfg->n_hidden && len < cap; i++)
            len += (size_t)snprintf(buf + len, cap - len, "-%lld", (long long)cfg->hidden[i]);
        if (len < cap)
            len += (size_t)snprintf(buf + len, cap - len, "-%lld %s", (long long)cfg->classes, cfg->activation);
        if (len < cap && cfg->batchnorm) len += (size_t)snprintf(buf + len, cap - len, " batchnorm");
    }
    if (len < cap && cfg->dropout > 0) snprintf(buf + len, cap - len, " dropout %g", cfg->dropout);
}
