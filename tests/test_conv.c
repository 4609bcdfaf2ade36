/* Convolution and pooling at the graph level (ctrain/conv.h, the conv2d
 * layer in nn.h): inferred shapes, every build-time error with the op and
 * the shapes in its message, the layer's parameter names and PyTorch's
 * initialisation, shared layers, an F16 input, and a small CNN that learns.
 * Kernel values are tested in test_cpu_conv_kernels.c, gradients in
 * test_gradcheck_conv.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

TestSuite(conv, .timeout = 120);

static void expect_shape(ct_graph *g, ct_node n, ct_shape want) {
    cr_assert_neq(n, CT_NO_NODE, "%s", ct_graph_error(g));
    char a[96], b[96];
    cr_assert(ct_shape_equal(ct_node_shape(g, n), want), "shape %s, want %s",
              ct_shape_str(ct_node_shape(g, n), a, sizeof a), ct_shape_str(want, b, sizeof b));
}

Test(conv, shapes) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S4(8, 3, 32, 30));
    ct_node w = ct_input(g, "w", CT_F32, S4(16, 3, 5, 3));
    ct_node b = ct_input(g, "b", CT_F32, S1(16));
    expect_shape(g, ct_conv2d(g, x, w, b, CT_CONV2D_DEFAULT), S4(8, 16, 28, 28));
    expect_shape(g, ct_conv2d(g, x, w, CT_NO_NODE, ct_conv_geom(2, 1, 1, 1)), S4(8, 16, 15, 15));
    /* dilation 2: the 5x3 kernel spans 9x5 */
    expect_shape(g, ct_conv2d(g, x, w, b, (ct_conv2d_geom){{1, 2}, {0, 0}, {2, 2}, 1}), S4(8, 16, 24, 13));
    ct_node wg = ct_input(g, "wg", CT_F32, S4(6, 1, 3, 3));
    expect_shape(g, ct_conv2d(g, x, wg, CT_NO_NODE, ct_conv_geom(1, 1, 1, 3)), S4(8, 6, 32, 30));
    expect_shape(g, ct_max_pool2d(g, x, ct_pool_geom(2, 0, 0)), S4(8, 3, 16, 15));
    expect_shape(g, ct_max_pool2d(g, x, ct_pool_geom(3, 2, 1)), S4(8, 3, 16, 15));
    expect_shape(g, ct_avg_pool2d(g, x, (ct_pool2d_geom){{3, 2}, {3, 1}, {0, 1}}), S4(8, 3, 10, 31));
    expect_shape(g, ct_global_avg_pool2d(g, x), S4(8, 3, 1, 1));
    expect_shape(g, ct_flatten(g, x, 1), S2(8, 3 * 32 * 30));
    expect_shape(g, ct_flatten(g, x, -2), S3(8, 3, 32 * 30));
    expect_shape(g, ct_flatten(g, x, 0), S1(8 * 3 * 32 * 30));
    expect_shape(g, ct_dropout2d(g, x, 0.2), S4(8, 3, 32, 30));
    cr_assert_eq(ct_graph_status(g), CT_OK);
    ct_graph_free(g);
}

/* Builds one bad node on a fresh graph; the error must have the status,
 * name the op and contain each of the given fragments. */
typedef ct_node (*bad_fn)(ct_graph *g);

static void expect_error(const char *what, bad_fn f, ct_status st, const char *frag1, const char *frag2) {
    ct_graph *g = ct_graph_new();
    ct_node n = f(g);
    cr_assert_eq(n, CT_NO_NODE, "%s: built a node", what);
    cr_assert_eq(ct_graph_status(g), st, "%s: status %d (%s)", what, ct_graph_status(g), ct_graph_error(g));
    const char *msg = ct_graph_error(g);
    cr_assert(strstr(msg, frag1) != NULL, "%s: '%s' lacks '%s'", what, msg, frag1);
    cr_assert(!frag2 || strstr(msg, frag2) != NULL, "%s: '%s' lacks '%s'", what, msg, frag2);
    cr_assert_str_eq(ct_last_error(), msg);
    ct_graph_free(g);
}

static ct_node conv_of(ct_graph *g, ct_shape xs, ct_shape ws, ct_conv2d_geom geom) {
    ct_node x = ct_input(g, "x", CT_F32, xs), w = ct_input(g, "w", CT_F32, ws);
    return ct_conv2d(g, x, w, CT_NO_NODE, geom);
}

static ct_node kernel_too_large(ct_graph *g) { return conv_of(g, S4(1, 2, 4, 8), S4(3, 2, 5, 3), CT_CONV2D_DEFAULT); }
static ct_node kernel_too_large_dilated(ct_graph *g) {
    return conv_of(g, S4(1, 2, 8, 8), S4(3, 2, 3, 3), (ct_conv2d_geom){{1, 1}, {0, 0}, {1, 4}, 1});
}
static ct_node channels_mismatch(ct_graph *g) { return conv_of(g, S4(2, 3, 8, 8), S4(4, 2, 3, 3), CT_CONV2D_DEFAULT); }
static ct_node groups_not_dividing_c(ct_graph *g) {
    return conv_of(g, S4(2, 4, 8, 8), S4(6, 2, 3, 3), ct_conv_geom(1, 0, 1, 3));
}
static ct_node groups_not_dividing_o(ct_graph *g) {
    return conv_of(g, S4(2, 4, 8, 8), S4(5, 2, 3, 3), ct_conv_geom(1, 0, 1, 2));
}
static ct_node groups_zero(ct_graph *g) { return conv_of(g, S4(2, 4, 8, 8), S4(4, 4, 3, 3), ct_conv_geom(1, 0, 1, 0)); }
static ct_node stride_zero(ct_graph *g) { return conv_of(g, S4(2, 4, 8, 8), S4(4, 4, 3, 3), ct_conv_geom(0, 0, 1, 1)); }
static ct_node stride_negative(ct_graph *g) {
    return conv_of(g, S4(2, 4, 8, 8), S4(4, 4, 3, 3), (ct_conv2d_geom){{1, -2}, {0, 0}, {1, 1}, 1});
}
static ct_node padding_negative(ct_graph *g) {
    return conv_of(g, S4(2, 4, 8, 8), S4(4, 4, 3, 3), ct_conv_geom(1, -1, 1, 1));
}
static ct_node dilation_zero(ct_graph *g) {
    return conv_of(g, S4(2, 4, 8, 8), S4(4, 4, 3, 3), ct_conv_geom(1, 0, 0, 1));
}
static ct_node x_not_4d(ct_graph *g) { return conv_of(g, S3(4, 8, 8), S4(4, 4, 3, 3), CT_CONV2D_DEFAULT); }
static ct_node weight_not_4d(ct_graph *g) { return conv_of(g, S4(2, 4, 8, 8), S3(4, 4, 9), CT_CONV2D_DEFAULT); }
static ct_node bias_wrong(ct_graph *g) {
    ct_node x = ct_input(g, "x", CT_F32, S4(2, 4, 8, 8)), w = ct_input(g, "w", CT_F32, S4(6, 4, 3, 3));
    return ct_conv2d(g, x, w, ct_input(g, "b", CT_F32, S1(4)), CT_CONV2D_DEFAULT);
}
static ct_node dtypes_differ(ct_graph *g) {
    ct_node x = ct_input(g, "x", CT_F32, S4(2, 4, 8, 8)), w = ct_input(g, "w", CT_F64, S4(6, 4, 3, 3));
    return ct_conv2d(g, x, w, CT_NO_NODE, CT_CONV2D_DEFAULT);
}

Test(conv, conv2d_errors_at_build_time) {
    expect_error("kernel larger than the padded input", kernel_too_large, CT_ERR_SHAPE, "conv2d: kernel 5x3",
                 "more than the padded input's 4 (x [1, 2, 4, 8], padding 0x0)");
    expect_error("dilated kernel too large", kernel_too_large_dilated, CT_ERR_SHAPE, "spans 9 along the width",
                 "x [1, 2, 8, 8]");
    expect_error("channels", channels_mismatch, CT_ERR_SHAPE, "conv2d: x [2, 3, 8, 8] has 3 channels",
                 "weight [4, 2, 3, 3] with groups 1 takes 2");
    expect_error("groups vs C", groups_not_dividing_c, CT_ERR_SHAPE, "conv2d: groups 3 does not divide the 4 input",
                 "[2, 4, 8, 8]");
    expect_error("groups vs O", groups_not_dividing_o, CT_ERR_SHAPE, "groups 2 does not divide the 5 output",
                 "[5, 2, 3, 3]");
    expect_error("groups 0", groups_zero, CT_ERR_INVALID_ARG, "conv2d: groups = 0", NULL);
    expect_error("stride 0", stride_zero, CT_ERR_INVALID_ARG, "conv2d: stride 0x0; it must be >= 1", "[2, 4, 8, 8]");
    expect_error("stride -2", stride_negative, CT_ERR_INVALID_ARG, "conv2d: stride 1x-2", NULL);
    expect_error("padding -1", padding_negative, CT_ERR_INVALID_ARG, "conv2d: padding -1x-1; it must be >= 0", NULL);
    expect_error("dilation 0", dilation_zero, CT_ERR_INVALID_ARG, "conv2d: dilation 0x0; it must be >= 1", NULL);
    expect_error("x 3-d", x_not_4d, CT_ERR_SHAPE, "conv2d: x [4, 8, 8] has 3 axes", "[N, C, H, W]");
    expect_error("weight 3-d", weight_not_4d, CT_ERR_SHAPE, "conv2d: weight [4, 4, 9]", NULL);
    expect_error("bias", bias_wrong, CT_ERR_SHAPE, "conv2d: bias [4] does not match weight [6, 4, 3, 3]", "[6]");
    expect_error("dtypes", dtypes_differ, CT_ERR_DTYPE, "conv2d: x is f32 but weight is f64", NULL);
}

static ct_node pool_kernel_too_large(ct_graph *g) {
    return ct_max_pool2d(g, ct_input(g, "x", CT_F32, S4(1, 1, 2, 9)), ct_pool_geom(5, 1, 1));
}
static ct_node pool_padding_too_large(ct_graph *g) {
    return ct_avg_pool2d(g, ct_input(g, "x", CT_F32, S4(1, 1, 9, 9)), ct_pool_geom(3, 1, 2));
}
static ct_node pool_stride_zero(ct_graph *g) {
    return ct_avg_pool2d(g, ct_input(g, "x", CT_F32, S4(1, 1, 9, 9)), (ct_pool2d_geom){{2, 2}, {0, 1}, {0, 0}});
}
static ct_node pool_kernel_zero(ct_graph *g) {
    return ct_max_pool2d(g, ct_input(g, "x", CT_F32, S4(1, 1, 9, 9)), ct_pool_geom(0, 1, 0));
}
static ct_node pool_of_ints(ct_graph *g) {
    return ct_max_pool2d(g, ct_input(g, "x", CT_I32, S4(1, 1, 9, 9)), ct_pool_geom(2, 0, 0));
}
static ct_node gap_2d(ct_graph *g) { return ct_global_avg_pool2d(g, ct_input(g, "x", CT_F32, S2(4, 9))); }
static ct_node flatten_axis(ct_graph *g) { return ct_flatten(g, ct_input(g, "x", CT_F32, S3(2, 3, 4)), 3); }
static ct_node dropout2d_p(ct_graph *g) { return ct_dropout2d(g, ct_input(g, "x", CT_F32, S4(2, 3, 4, 4)), 1.5); }
static ct_node dropout2d_1d(ct_graph *g) { return ct_dropout2d(g, ct_input(g, "x", CT_F32, S1(5)), 0.5); }

Test(conv, pool_and_dropout2d_errors_at_build_time) {
    expect_error("pool kernel", pool_kernel_too_large, CT_ERR_SHAPE, "max_pool2d: kernel 5x5",
                 "more than the padded input's 4 (x [1, 1, 2, 9], padding 1x1)");
    expect_error("pool padding", pool_padding_too_large, CT_ERR_INVALID_ARG,
                 "avg_pool2d: padding 2x2 is more than half the kernel 3x3", NULL);
    expect_error("pool stride", pool_stride_zero, CT_ERR_INVALID_ARG, "avg_pool2d: stride 0x1", NULL);
    expect_error("pool kernel 0", pool_kernel_zero, CT_ERR_INVALID_ARG, "max_pool2d: kernel 0x0", NULL);
    expect_error("pool dtype", pool_of_ints, CT_ERR_DTYPE, "max_pool2d: x is i32", NULL);
    expect_error("global pool of 2-d", gap_2d, CT_ERR_SHAPE, "global_avg_pool2d: x [4, 9] has 2 axes", NULL);
    expect_error("flatten axis", flatten_axis, CT_ERR_INVALID_ARG, "flatten: start axis 3 is out of range",
                 "[2, 3, 4]");
    expect_error("dropout2d p", dropout2d_p, CT_ERR_INVALID_ARG, "dropout2d: p = 1.5", NULL);
    expect_error("dropout2d 1-d", dropout2d_1d, CT_ERR_SHAPE, "dropout2d: x [5]", NULL);
}

static ct_node layer_groups(ct_graph *g) {
    return ct_conv2d_layer(g, "c1", ct_input(g, "x", CT_F32, S4(2, 3, 8, 8)), 4, 3, 3, ct_conv_geom(1, 0, 1, 2), true,
                           NULL);
}
static ct_node layer_kernel(ct_graph *g) {
    return ct_conv2d_layer(g, "c1", ct_input(g, "x", CT_F32, S4(2, 3, 4, 4)), 4, 7, 7, CT_CONV2D_DEFAULT, true, NULL);
}
static ct_node layer_reuse_other_channels(ct_graph *g) {
    ct_node a = ct_conv2d_layer(g, "c1", ct_input(g, "x", CT_F32, S4(2, 3, 8, 8)), 4, 3, 3, CT_CONV2D_DEFAULT, true,
                                NULL);
    return ct_conv2d_layer(g, "c1", a, 4, 3, 3, CT_CONV2D_DEFAULT, true, NULL);
}
static ct_node layer_no_name(ct_graph *g) {
    return ct_conv2d_layer(g, "", ct_input(g, "x", CT_F32, S4(2, 3, 8, 8)), 4, 3, 3, CT_CONV2D_DEFAULT, true, NULL);
}

Test(conv, layer_errors_name_the_layer) {
    expect_error("layer groups", layer_groups, CT_ERR_SHAPE, "conv2d 'c1': groups 2 must be >= 1 and divide",
                 "3 input");
    expect_error("layer kernel", layer_kernel, CT_ERR_SHAPE, "conv2d: kernel 7x7", "[2, 3, 4, 4]");
    expect_error("layer reuse", layer_reuse_other_channels, CT_ERR_SHAPE, "conv2d 'c1': input [2, 4, 6, 6] has 4",
                 "the existing 'c1.weight' is [4, 3, 3, 3]");
    expect_error("layer name", layer_no_name, CT_ERR_INVALID_ARG, "conv2d: a layer name is required", NULL);
}

Test(conv, failed_inputs_propagate_silently) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S4(1, 1, 2, 2));
    ct_node bad = ct_max_pool2d(g, x, ct_pool_geom(3, 1, 0));
    cr_assert_eq(bad, CT_NO_NODE);
    char first[512];
    snprintf(first, sizeof first, "%s", ct_graph_error(g));
    cr_assert_eq(ct_conv2d_layer(g, "c", bad, 2, 1, 1, CT_CONV2D_DEFAULT, true, NULL), CT_NO_NODE);
    cr_assert_eq(ct_dropout2d(g, bad, 0.1), CT_NO_NODE);
    cr_assert_eq(ct_flatten(g, bad, 1), CT_NO_NODE);
    cr_assert_str_eq(ct_graph_error(g), first, "the first error is kept");
    ct_graph_free(g);
}

/* ---- the layer ---------------------------------------------------------- */

Test(conv, layer_parameters_and_pytorch_init) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 11);
    ct_node x = ct_input(g, "x", CT_F32, S4(2, 16, 9, 9));
    ct_node y = ct_conv2d_layer(g, "features.0", x, 64, 5, 3, ct_conv_geom(1, 1, 1, 4), true, NULL);
    expect_shape(g, y, S4(2, 64, 7, 9));
    ct_node w = ct_find(g, "features.0.weight"), b = ct_find(g, "features.0.bias");
    expect_shape(g, w, S4(64, 4, 5, 3));
    expect_shape(g, b, S1(64));
    cr_assert_eq(ct_graph_num_params(g), 2);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    size_t nw = 64 * 4 * 5 * 3;
    float *wv = malloc(nw * sizeof *wv), bv[64];
    cr_assert_eq(ct_program_get_param(p, "features.0.weight", wv, nw * sizeof *wv), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "features.0.bias", bv, sizeof bv), CT_OK);
    double bound = 1.0 / sqrt(4.0 * 5 * 3), sq = 0, maxabs = 0; /* fan_in = C/groups * KH * KW */
    for (size_t i = 0; i < nw; i++) {
        cr_assert(fabs(wv[i]) <= bound, "weight %zu = %g outside +-%g", i, wv[i], bound);
        sq += (double)wv[i] * wv[i];
        maxabs = fmax(maxabs, fabs(wv[i]));
    }
    double sd = sqrt(sq / (double)nw), want = bound / sqrt(3.0);
    cr_assert(fabs(sd - want) < 0.05 * want, "weight sd %g, want %g", sd, want);
    cr_assert_gt(maxabs, 0.98 * bound);
    double bmax = 0;
    for (int i = 0; i < 64; i++) {
        cr_assert(fabs(bv[i]) <= bound);
        bmax = fmax(bmax, fabs(bv[i]));
    }
    cr_assert_gt(bmax, 0.8 * bound);
    free(wv);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(conv, layer_same_name_shares_and_no_bias) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, S4(1, 2, 6, 6));
    ct_node a = ct_conv2d_layer(g, "c", x, 2, 3, 3, ct_conv_geom(1, 1, 1, 1), false, NULL);
    ct_node b = ct_conv2d_layer(g, "c", a, 2, 3, 3, ct_conv_geom(1, 1, 1, 1), false, NULL);
    expect_shape(g, b, S4(1, 2, 6, 6));
    cr_assert_eq(ct_graph_num_params(g), 1, "one weight, no bias, shared");
    cr_assert_eq(ct_find(g, "c.bias"), CT_NO_NODE);
    cr_assert_eq(ct_conv2d_layer(g, "c", a, 2, 3, 3, ct_conv_geom(1, 1, 1, 1), true, NULL), CT_NO_NODE);
    cr_assert(strstr(ct_graph_error(g), "built before without a bias") != NULL, "%s", ct_graph_error(g));
    ct_graph_free(g);
}

/* An F16 input convolves in F16 with the F32 master weights cast. */
Test(conv, layer_f16_input) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F16, S4(2, 3, 5, 5));
    ct_node y = ct_conv2d_layer(g, "c", x, 4, 3, 3, CT_CONV2D_DEFAULT, true, NULL);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, y), CT_F16);
    cr_assert_eq(ct_node_dtype(g, ct_find(g, "c.weight")), CT_F32);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    uint16_t xh[150], yh[2 * 4 * 9];
    double xr[150];
    for (int i = 0; i < 150; i++) {
        xh[i] = ct_f32_to_f16((float)(ct_philox_uniform(3, 1, 0, (uint64_t)i) * 2.0 - 1.0));
        xr[i] = ct_f16_to_f32(xh[i]);
    }
    float w[4 * 3 * 9], b[4];
    cr_assert_eq(ct_program_get_param(p, "c.weight", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "c.bias", b, sizeof b), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "x", xh, sizeof xh), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, y, yh, sizeof yh), CT_OK);
    for (int n = 0; n < 2; n++)
        for (int o = 0; o < 4; o++)
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 3; q++) {
                    double want = ct_f16_to_f32(ct_f32_to_f16(b[o]));
                    for (int c = 0; c < 3; c++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++)
                                want += xr[((n * 3 + c) * 5 + r + i) * 5 + q + j] *
                                        ct_f16_to_f32(ct_f32_to_f16(w[((o * 3 + c) * 3 + i) * 3 + j]));
                    double got = ct_f16_to_f32(yh[((n * 4 + o) * 3 + r) * 3 + q]);
                    cr_assert(fabs(got - want) < 4e-3 * fmax(1.0, fabs(want)), "y = %g, want %g", got, want);
                }
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- learning ----------------------------------------------------------- */

/* Images 1x8x8 holding one bright 2x2 square; the label says whether it is
 * in the left or the right half. conv -> relu -> max pool -> conv ->
 * global average pool -> flatten -> linear must learn it with plain SGD. */
Test(conv, small_cnn_learns_where_the_square_is) {
    enum { N = 32 };
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 3);
    ct_node x = ct_input(g, "x", CT_F32, S4(N, 1, 8, 8));
    ct_node y = ct_input(g, "y", CT_I32, S1(N));
    ct_node h = ct_relu(g, ct_conv2d_layer(g, "c1", x, 8, 3, 3, ct_conv_geom(1, 1, 1, 1), true, NULL));
    h = ct_max_pool2d(g, h, ct_pool_geom(2, 0, 0));
    h = ct_relu(g, ct_conv2d_layer(g, "c2", h, 8, 3, 3, ct_conv_geom(1, 1, 1, 2), true, NULL));
    h = ct_dropout2d(g, h, 0.1);
    ct_node logits = ct_linear(g, "fc", ct_flatten(g, ct_avg_pool2d(g, h, ct_pool_geom(2, 0, 0)), 1), 2, true, NULL);
    ct_node loss = ct_cross_entropy(g, logits, y, 0.0);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    float xs[N * 64];
    int32_t ys[N];
    for (int n = 0; n < N; n++) {
        int r = (int)(ct_philox_uniform(9, 1, 0, (uint64_t)n) * 7);
        int c = (int)(ct_philox_uniform(9, 2, 0, (uint64_t)n) * 7);
        ys[n] = c >= 4 ? 1 : 0;
        if (c == 3) c = ys[n] ? 4 : 2; /* never straddling the middle */
        for (int i = 0; i < 64; i++)
            xs[n * 64 + i] = 0.1f * (ct_philox_uniform(9, 3, 0, (uint64_t)(n * 64 + i)) - 0.5f);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) xs[n * 64 + (r + i) * 8 + c + j] += 1.0f;
    }
    cr_assert_eq(ct_program_set_input(p, "x", xs, sizeof xs), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "y", ys, sizeof ys), CT_OK);
    float *w = ct_program_params(p), *gr = ct_program_grads(p), first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        float l;
        ct_program_read(p, loss, &l, sizeof l);
        if (step == 0) first = l;
        last = l;
        for (size_t i = 0; i < ct_program_param_numel(p); i++) w[i] -= 0.1f * gr[i];
    }
    cr_assert(first > 0.5f && last < 0.2f * first, "loss %g -> %g", first, last);
    ct_program_free(p);
    ct_graph_free(g);
}
