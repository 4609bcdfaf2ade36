/* Float64 gradient checks of convolution, pooling and channel dropout
 * (harness: gradcheck.h), over combinations of stride, padding, dilation
 * and groups with odd, unequal sizes, so that a swapped axis or an
 * off-by-one in a window shows; then the conveniences built from other ops
 * and a small CNN checked with respect to its layers' parameters.
 * The ops' checks are OP_TESTs (op_tests.h), which tests/test_op_coverage.c
 * reads. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "gradcheck.h"

#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

TestSuite(gradcheck_conv, .timeout = 300);

/* ---- conv2d ------------------------------------------------------------- */

typedef struct conv_ctx {
    ct_conv2d_geom geom;
    bool bias;
} conv_ctx;

static ct_node b_conv(ct_graph *g, const ct_node *x, const void *ctx) {
    const conv_ctx *c = ctx;
    return ct_conv2d(g, x[0], x[1], c->bias ? x[2] : CT_NO_NODE, c->geom);
}

static void check_conv(const char *name, ct_shape xs, ct_shape ws, ct_conv2d_geom geom, bool bias) {
    conv_ctx ctx = {geom, bias};
    gc_case c = {.name = name, .op = "conv2d", .n_in = bias ? 3 : 2, .build = b_conv, .ctx = &ctx};
    c.in[0].shape = xs;
    c.in[1].shape = ws;
    c.in[2].shape = S1(ws.dim[0]);
    gc_check(&c);
}

static ct_conv2d_geom geom2(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    return (ct_conv2d_geom){{sh, sw}, {ph, pw}, {dh, dw}, groups};
}

OP_TEST(gradcheck_conv, conv2d_plain, CT_OP_CONV2D) {
    check_conv("conv2d [2,3,7,6] * [4,3,3,2] + bias", S4(2, 3, 7, 6), S4(4, 3, 3, 2), CT_CONV2D_DEFAULT, true);
    check_conv("conv2d [1,1,5,5] * [1,1,5,5] (kernel = input)", S4(1, 1, 5, 5), S4(1, 1, 5, 5), CT_CONV2D_DEFAULT,
               true);
    check_conv("conv2d 1x1 [3,3,5,5] * [2,3,1,1] no bias", S4(3, 3, 5, 5), S4(2, 3, 1, 1), CT_CONV2D_DEFAULT, false);
}

OP_TEST(gradcheck_conv, conv2d_stride_padding, CT_OP_CONV2D) {
    check_conv("conv2d stride 2 pad 1 [2,2,7,9] * [3,2,3,3]", S4(2, 2, 7, 9), S4(3, 2, 3, 3),
               geom2(2, 2, 1, 1, 1, 1, 1), true);
    check_conv("conv2d stride (1,3) pad (2,0) [1,2,6,8] * [2,2,3,2]", S4(1, 2, 6, 8), S4(2, 2, 3, 2),
               geom2(1, 3, 2, 0, 1, 1, 1), true);
    check_conv("conv2d stride 3 pad 1 (stride > kernel) [2,1,8,7] * [2,1,2,2]", S4(2, 1, 8, 7), S4(2, 1, 2, 2),
               geom2(3, 3, 1, 1, 1, 1, 1), false);
}

OP_TEST(gradcheck_conv, conv2d_dilation, CT_OP_CONV2D) {
    check_conv("conv2d dilation 2 pad 2 stride (2,1) [1,2,8,7] * [2,2,3,2]", S4(1, 2, 8, 7), S4(2, 2, 3, 2),
               geom2(2, 1, 2, 2, 2, 2, 1), true);
    check_conv("conv2d dilation (3,1) [2,2,9,5] * [3,2,2,3]", S4(2, 2, 9, 5), S4(3, 2, 2, 3),
               geom2(1, 1, 0, 1, 3, 1, 1), true);
}

OP_TEST(gradcheck_conv, conv2d_groups, CT_OP_CONV2D) {
    check_conv("conv2d groups 2 pad 1 [2,4,5,5] * [6,2,3,3]", S4(2, 4, 5, 5), S4(6, 2, 3, 3),
               geom2(1, 1, 1, 1, 1, 1, 2), true);
    check_conv("conv2d depthwise groups 3 stride 2 [2,3,6,5] * [6,1,2,3] no bias", S4(2, 3, 6, 5), S4(6, 1, 2, 3),
               geom2(2, 2, 0, 1, 1, 1, 3), false);
    check_conv("conv2d groups 2 stride (1,3) dilation (1,2) pad (2,0) [2,2,7,10] * [4,1,2,3]", S4(2, 2, 7, 10),
               S4(4, 1, 2, 3), geom2(1, 3, 2, 0, 1, 2, 2), true);
}

/* ---- pooling ------------------------------------------------------------ */

typedef struct pool_ctx {
    ct_pool2d_geom geom;
    bool max;
} pool_ctx;

static ct_node b_pool(ct_graph *g, const ct_node *x, const void *ctx) {
    const pool_ctx *p = ctx;
    return p->max ? ct_max_pool2d(g, x[0], p->geom) : ct_avg_pool2d(g, x[0], p->geom);
}

static void check_pools(const char *what, ct_shape xs, ct_pool2d_geom geom) {
    for (int m = 0; m < 2; m++) {
        pool_ctx ctx = {geom, m == 1};
        char name[128];
        snprintf(name, sizeof name, "%s %s", m ? "max_pool2d" : "avg_pool2d", what);
        gc_case c = {.name = name, .op = m ? "max_pool2d" : "avg_pool2d", .n_in = 1, .build = b_pool, .ctx = &ctx};
        /* Max needs well separated values: a tie within h of the maximum
         * would make the finite difference see the other element. */
        c.in[0] = (gc_in){.shape = xs, .distinct = m == 1};
        gc_check(&c);
    }
}

OP_TEST(gradcheck_conv, pools, CT_OP_MAX_POOL2D, CT_OP_AVG_POOL2D) {
    check_pools("2x2 stride 2 [2,3,6,7]", S4(2, 3, 6, 7), ct_pool_geom(2, 0, 0));
    check_pools("3x3 stride 2 pad 1 [2,2,7,6]", S4(2, 2, 7, 6), ct_pool_geom(3, 2, 1));
    check_pools("3x3 stride 1 (overlapping) [1,2,6,5]", S4(1, 2, 6, 5), ct_pool_geom(3, 1, 0));
    check_pools("3x2 stride (1,2) pad (1,0) [2,1,7,5]", S4(2, 1, 7, 5),
                (ct_pool2d_geom){{3, 2}, {1, 2}, {1, 0}});
    check_pools("5x4 stride (3,1) pad 2 [1,2,9,6]", S4(1, 2, 9, 6), (ct_pool2d_geom){{5, 4}, {3, 1}, {2, 2}});
}

/* ---- channel dropout and the composites --------------------------------- */

static ct_node b_dropout2d(ct_graph *g, const ct_node *x, const void *ctx) {
    return ct_dropout2d(g, x[0], *(const double *)ctx);
}

OP_TEST(gradcheck_conv, dropout2d, CT_OP_DROPOUT2D) {
    /* The harness fixes the program step, so the channel mask is fixed. */
    double p = 0.4;
    gc_case c = {.name = "dropout2d p=0.4 [3,5,3,2]", .op = "dropout2d", .n_in = 1, .build = b_dropout2d, .ctx = &p};
    c.in[0].shape = S4(3, 5, 3, 2);
    gc_check(&c);
    gc_case e = c;
    e.name = "dropout2d p=0.4 out of training (identity)";
    e.eval = true;
    gc_check(&e);
}

static ct_node b_global_avg_pool(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_global_avg_pool2d(g, x[0]);
}

static ct_node b_flatten(ct_graph *g, const ct_node *x, const void *ctx) {
    return ct_flatten(g, x[0], *(const int *)ctx);
}

Test(gradcheck_conv, global_avg_pool_and_flatten) {
    gc_case c = {.name = "global_avg_pool2d [2,3,5,4]", .op = "mean", .n_in = 1, .build = b_global_avg_pool};
    c.in[0].shape = S4(2, 3, 5, 4);
    gc_check(&c);
    static const int starts[] = {1, 2, -1, 0};
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "flatten start %d [2,3,2,3]", starts[i]);
        gc_case f = {.name = name, .n_in = 1, .build = b_flatten, .ctx = &starts[i]};
        f.in[0].shape = S4(2, 3, 2, 3);
        gc_check(&f);
    }
}

/* ---- layers ------------------------------------------------------------- */

/* conv -> tanh -> max pool -> conv (groups 2, stride 2) -> avg pool ->
 * flatten -> linear: every parameter of ct_conv2d_layer is checked through
 * the whole chain. tanh, not relu, keeps the function smooth where the
 * finite differences probe it. */
static ct_node b_small_cnn(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_node h = ct_conv2d_layer(g, "conv1", x[0], 4, 3, 3, ct_conv_geom(1, 1, 1, 1), true, NULL);
    h = ct_max_pool2d(g, ct_tanh(g, h), ct_pool_geom(2, 0, 0));
    h = ct_conv2d_layer(g, "conv2", h, 4, 3, 2, ct_conv_geom(2, 1, 1, 2), true, NULL);
    h = ct_avg_pool2d(g, ct_tanh(g, h), ct_pool_geom(2, 1, 0));
    return ct_linear(g, "fc", ct_flatten(g, h, 1), 3, true, NULL);
}

Test(gradcheck_conv, small_cnn_layers) {
    gc_case c = {.name = "conv-tanh-maxpool-conv(groups 2)-tanh-avgpool-flatten-linear", .op = "conv2d", .n_in = 1,
                 .build = b_small_cnn, .rtol = 1e-4, .atol = 1e-5};
    /* Distinct inputs; the max pool then sees tanh of convolutions, which
     * ties only by accident. */
    c.in[0] = (gc_in){.shape = S4(2, 2, 9, 8)};
    gc_check(&c);
}
