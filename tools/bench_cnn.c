/* cnn-mnist: a training step of the CLI's convolutional model (`ctrain
 * train --model cnn`, tools/model_cnn.c, docs/conv.md) on MNIST-sized
 * images [B, 1, 28, 28]. The layers are built by the CLI's own builder, so
 * the benchmark times exactly the network users train:
 *
 *     conv1 5x5 (32) - relu - max pool 2 - conv2 5x5 (64) - relu - max pool 2
 *     - flatten (1024) - fc1 (128) - relu - fc2 (10)
 *
 * FLOPs are those of the convolutions and the linear layers, counted from
 * the sizes: a convolution is a matrix product of [Cout, Cin KH KW] and
 * [Cin KH KW, OH OW] per sample, 2 Cout Cin KH KW OH OW forward, the same
 * again for its weight gradient and once more for its input gradient except
 * in the first layer (the images need none). Pooling, activations, biases,
 * the loss and the update are left out (1-2% here; benchmarks/README.md).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "train_cli.h"

#define SIDE 28   /* MNIST's images */
#define KERNEL 5  /* model_cnn.c's convolutions */
#define CLASSES 10

/* The CLI's defaults; --quick shrinks the widths, not the image. */
static model_cfg cnn_cfg(const bench_opts *o) {
    model_cfg m = {.n_hidden = 1, .classes = CLASSES, .hidden_given = true};
    snprintf(m.model, sizeof m.model, "cnn");
    snprintf(m.activation, sizeof m.activation, "relu");
    snprintf(m.init, sizeof m.init, "default");
    m.width = o->quick ? 4 : CNN_DEFAULT_WIDTH;
    m.hidden[0] = o->quick ? 16 : CNN_DEFAULT_HIDDEN;
    return m;
}

static ct_node cnn_input(ct_graph *g, long batch, const bench_opts *o) {
    (void)o;
    return ct_input(g, "x", CT_F32, (ct_shape){4, {batch, 1, SIDE, SIDE}});
}

static ct_node cnn_build(ct_graph *g, ct_node x, const bench_opts *o) {
    model_cfg m = cnn_cfg(o);
    return model_build_cnn(g, x, &m);
}

static double cnn_flops(const bench_opts *o) {
    model_cfg m = cnn_cfg(o);
    double f = 0.0;
    int64_t side = SIDE, cin = 1;
    for (int i = 1; i <= 2; i++) {
        int64_t cout = (int64_t)m.width * i;
        side = side - KERNEL + 1; /* no padding, stride 1 */
        double fwd = 2.0 * (double)cout * (double)(cin * KERNEL * KERNEL) * (double)(side * side);
        f += fwd * (i == 1 ? 2.0 : 3.0);
        side /= 2; /* max pool 2x2 */
        cin = cout;
    }
    int64_t in = cin * side * side;
    for (int i = 0; i <= m.n_hidden; i++) {
        int64_t out = i < m.n_hidden ? m.hidden[i] : m.classes;
        f += 2.0 * (double)in * (double)out * 3.0;
        in = out;
    }
    return f;
}

/* "cnn 32-64-128-10": the two convolutions' channels, then the linear
 * layers' widths (short enough for the table's column). */
static void cnn_describe(const bench_opts *o, char *buf, size_t cap) {
    model_cfg m = cnn_cfg(o);
    size_t len = (size_t)snprintf(buf, cap, "cnn %d-%d", m.width, 2 * m.width);
    for (int i = 0; i < m.n_hidden && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "-%lld", (long long)m.hidden[i]);
    if (len < cap) snprintf(buf + len, cap - len, "-%lld", (long long)m.classes);
}

const bench_model bench_model_cnn_mnist = {
    .input = cnn_input, .build = cnn_build, .flops_per_sample = cnn_flops, .describe = cnn_describe,
    .classes = CLASSES, .default_batch = 128,
    .half_note = NULL, /* the precision policy casts convolutions as it does matrix products */
};
