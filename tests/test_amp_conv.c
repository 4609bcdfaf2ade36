/* Mixed precision for convolutions: where the policy puts casts in a small
 * CNN, what the conv builder does with the bias, one cast per parameter
 * from the layers, the gradients reaching the optimizer, an F64 gradient
 * check under a policy, and the mixed gradients against FP32 ones.
 *
 * The mixed kernel itself is checked against a double reference on
 * poisoned outputs in test_cpu_conv_kernels.c; the CLI run in
 * tools/CMakeLists.txt (cli_train_cnn_mnist_bf16). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "amp_checks.h"
#include "core/node.h"
#include "gradcheck.h"

#define N 4
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

/* conv (bias) -> relu -> max pool -> conv (bias) -> relu -> flatten ->
 * linear -> cross entropy, built under `prec`; returns the loss. */
static ct_node cnn_loss(ct_graph *g, ct_precision prec) {
    ct_graph_set_seed(g, 11);
    cr_assert_eq(ct_graph_set_precision(g, prec), CT_OK);
    ct_node x = ct_input(g, "x", CT_F32, S4(N, 2, 8, 8));
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {N}});
    ct_node h = ct_relu(g, ct_conv2d_layer(g, "c1", x, 3, 3, 3, ct_conv_geom(1, 1, 1, 1), true, NULL));
    h = ct_max_pool2d(g, h, ct_pool_geom(2, 0, 0));
    h = ct_relu(g, ct_conv2d_layer(g, "c2", h, 4, 3, 3, ct_conv_geom(1, 0, 1, 1), true, NULL));
    ct_node logits = ct_linear(g, "fc", ct_flatten(g, h, 1), 3, true, NULL);
    ct_node loss = ct_cross_entropy(g, logits, y, 0.0);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    return loss;
}

static bool feeds_products_only(const ct_graph *g, ct_node n) {
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) {
            ct_op op = g->nodes[i].op;
            if (g->nodes[i].in[j] == n && op != CT_OP_CONV2D && op != CT_OP_CONV2D_GRAD_INPUT &&
                op != CT_OP_CONV2D_GRAD_WEIGHT && op != CT_OP_MATMUL)
                return false;
        }
    return true;
}

static void check_policy(ct_precision prec, ct_dtype half) {
    ct_graph *g = ct_graph_new();
    ct_node loss = cnn_loss(g, prec);
    cr_assert_eq(ct_graph_backward_scaled(g, loss), CT_OK, "%s", ct_last_error());
    int fwd_casts = 0, bwd_casts = 0, convs = 0, gin = 0, gw = 0, gb = 0;
    for (int i = 0; i < g->n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        ct_dtype in0 = nd->n_in ? g->nodes[nd->in[0]].dtype : CT_F32;
        switch (nd->op) {
        case CT_OP_CONV2D:
            convs++;
            cr_assert(in0 == half && g->nodes[nd->in[1]].dtype == half, "conv %d on %s", i, ct_dtype_name(in0));
            cr_assert_eq(nd->dtype, CT_F32, "a mixed conv gives F32");
            cr_assert_eq(g->nodes[nd->in[2]].op, CT_OP_PARAM, "the F32 bias, not a cast of it");
            break;
        case CT_OP_CONV2D_GRAD_INPUT:
        case CT_OP_CONV2D_GRAD_WEIGHT:
            if (nd->op == CT_OP_CONV2D_GRAD_INPUT) gin++;
            else gw++;
            cr_assert(nd->dtype == half && in0 == half && g->nodes[nd->in[1]].dtype == half, "%s %d is %s on %s",
                      ct_op_name(nd->op), i, ct_dtype_name(nd->dtype), ct_dtype_name(in0));
            break;
        case CT_OP_CONV2D_GRAD_BIAS:
            gb++;
            cr_assert(nd->dtype == CT_F32 && in0 == CT_F32, "the bias gradient in F32");
            break;
        case CT_OP_CAST:
            if (nd->dtype != half) break;
            cr_assert(feeds_products_only(g, i), "cast %d feeds something else than a product", i);
            if (i < loss) fwd_casts++;
            else bwd_casts++;
            break;
        case CT_OP_RELU: case CT_OP_MAX_POOL2D: case CT_OP_MAX_POOL2D_GRAD: case CT_OP_RESHAPE:
        case CT_OP_ADD: case CT_OP_CROSS_ENTROPY: case CT_OP_CROSS_ENTROPY_GRAD:
            cr_assert(nd->dtype == CT_F32 && in0 == CT_F32, "%s (node %d) is %s on %s", ct_op_name(nd->op), i,
                      ct_dtype_name(nd->dtype), ct_dtype_name(in0));
            break;
        default:
            break;
        }
    }
    /* x, c1.weight, the pooled h, c2.weight, the flattened h, fc.weight. */
    cr_assert_eq(fwd_casts, 6);
    /* One upstream gradient cast per product: fc, c2, c1. */
    cr_assert_eq(bwd_casts, 3);
    cr_assert_eq(convs, 2);
    cr_assert_eq(gin, 1, "dx of c2 only: x needs no gradient");
    cr_assert_eq(gw, 2);
    cr_assert_eq(gb, 2);
    amp_expect_f32_master(g);
    ct_graph_free(g);
}

Test(amp_conv, fp16_policy_casts_conv_operands_only) { check_policy(CT_PRECISION_FP16, CT_F16); }
Test(amp_conv, bf16_policy_casts_conv_operands_only) { check_policy(CT_PRECISION_BF16, CT_BF16); }

/* An F16 input under a BF16 policy: each parameter is cast once, straight
 * from F32 (not through F16 first), and the bias stays F32. The same rule
 * for the linear layer. Without a policy the layer convolves in F16. */
Test(amp_conv, layers_cast_each_parameter_once_from_f32) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_precision(g, CT_PRECISION_BF16);
    ct_node x = ct_input(g, "x", CT_F16, S4(2, 3, 6, 6));
    ct_node y = ct_conv2d_layer(g, "c", x, 4, 3, 3, CT_CONV2D_DEFAULT, true, NULL);
    ct_node z = ct_linear(g, "fc", ct_flatten(g, y, 1), 2, true, NULL);
    cr_assert_neq(z, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, y), CT_F32);
    cr_assert_eq(ct_node_dtype(g, z), CT_F32);
    const ct_nodeinfo *conv = &g->nodes[y];
    cr_assert_eq(g->nodes[conv->in[0]].dtype, CT_BF16);
    cr_assert_eq(g->nodes[conv->in[1]].op, CT_OP_CAST);
    cr_assert_eq(g->nodes[conv->in[1]].in[0], ct_find(g, "c.weight"), "c.weight cast straight to BF16");
    cr_assert_eq(conv->in[2], ct_find(g, "c.bias"));
    for (int i = 0; i < g->n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_CAST && g->nodes[nd->in[0]].op == CT_OP_PARAM)
            cr_assert(nd->dtype == CT_BF16 && g->nodes[nd->in[0]].shape.ndim >= 2,
                      "only weights are cast, to BF16 (node %d: %s)", i, ct_dtype_name(nd->dtype));
        if (nd->op == CT_OP_MATMUL) cr_assert_eq(g->nodes[g->nodes[nd->in[1]].in[0]].op, CT_OP_PARAM);
    }
    ct_graph_free(g);

    g = ct_graph_new();
    x = ct_input(g, "x", CT_F16, S4(2, 3, 6, 6));
    y = ct_conv2d_layer(g, "c", x, 4, 3, 3, CT_CONV2D_DEFAULT, true, NULL);
    cr_assert_eq(ct_node_dtype(g, y), CT_F16, "no policy: F16 in, F16 out");
    cr_assert_eq(ct_node_dtype(g, g->nodes[y].in[2]), CT_F16);
    ct_graph_free(g);
}

/* The builder itself under a policy: a half bias is widened to F32 (the
 * output's dtype), an F64 bias is refused, F64 operands are never cast. */
Test(amp_conv, builder_bias_rule_and_f64_untouched) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_precision(g, CT_PRECISION_FP16);
    ct_node x = ct_input(g, "x", CT_F16, S4(1, 2, 5, 5));
    ct_node w = ct_input(g, "w", CT_F16, S4(3, 2, 3, 3));
    ct_node b = ct_input(g, "b", CT_BF16, (ct_shape){1, {3}});
    ct_node y = ct_conv2d(g, x, w, b, CT_CONV2D_DEFAULT);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, y), CT_F32);
    cr_assert_eq(g->nodes[y].in[0], x, "already F16: not cast again");
    cr_assert_eq(g->nodes[y].in[1], w);
    ct_node bc = g->nodes[y].in[2];
    cr_assert(g->nodes[bc].op == CT_OP_CAST && g->nodes[bc].in[0] == b && g->nodes[bc].dtype == CT_F32);
    ct_node b64 = ct_input(g, "b64", CT_F64, (ct_shape){1, {3}});
    cr_assert_eq(ct_conv2d(g, x, w, b64, CT_CONV2D_DEFAULT), CT_NO_NODE);
    cr_assert(strstr(ct_graph_error(g), "conv2d: bias is f64; x and weight are f16 with an output in f32"), "%s",
              ct_graph_error(g));
    ct_graph_free(g);

    g = ct_graph_new();
    ct_graph_set_precision(g, CT_PRECISION_BF16);
    x = ct_input(g, "x", CT_F64, S4(1, 2, 5, 5));
    w = ct_input(g, "w", CT_F64, S4(3, 2, 3, 3));
    b = ct_input(g, "b", CT_F64, (ct_shape){1, {3}});
    y = ct_conv2d(g, x, w, b, CT_CONV2D_DEFAULT);
    cr_assert_eq(ct_node_dtype(g, y), CT_F64);
    cr_assert_eq(ct_graph_num_nodes(g), 4, "no cast");
    ct_graph_free(g);
}

/* A float64 gradient check of a strided, dilated, grouped convolution with
 * bias, built (layer and all) under an FP16 policy: F64 is left alone. */
static ct_node b_policy_conv(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_graph_set_precision(g, CT_PRECISION_FP16);
    ct_node y = ct_conv2d(g, x[0], x[1], x[2], ct_conv_geom(2, 1, 2, 2));
    return ct_conv2d_layer(g, "c", y, 2, 2, 2, CT_CONV2D_DEFAULT, true, NULL);
}

Test(amp_conv, f64_gradient_check_under_a_policy) {
    gc_case c = {.name = "conv2d under fp16", .op = "conv2d", .n_in = 3,
                 .in = {{.shape = S4(2, 4, 7, 6)}, {.shape = S4(4, 2, 3, 2)}, {.shape = {1, {4}}}},
                 .build = b_policy_conv};
    gc_check(&c);
}

#define MAX_GRADS 512

/* One forward and backward of the CNN under `prec` with fixed inputs;
 * returns the loss and fills grads (F32, the flat buffer's layout, with
 * its zero gaps) and their count. */
static float run_cnn(ct_precision prec, float *grads, size_t *n_grads) {
    ct_graph *g = ct_graph_new();
    ct_node loss = cnn_loss(g, prec);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    *n_grads = ct_program_param_numel(p);
    cr_assert(*n_grads <= MAX_GRADS);
    float xv[N * 2 * 8 * 8];
    int32_t yv[N];
    for (int i = 0; i < N * 2 * 8 * 8; i++) xv[i] = 2.0f * ct_philox_uniform(21, 1, 0, (uint64_t)i) - 1.0f;
    for (int i = 0; i < N; i++) yv[i] = (int32_t)(ct_philox_u32(21, 2, 0, (uint64_t)i) % 3);
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "y", yv, sizeof yv), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    float l = NAN;
    cr_assert_eq(ct_program_read(p, loss, &l, sizeof l), CT_OK);
    cr_assert_eq(ct_program_read_grads(p, grads, *n_grads * sizeof(float)), CT_OK, "%s", ct_last_error());
    ct_program_free(p);
    ct_graph_free(g);
    return l;
}

/* The same weights (same seed) and inputs: the mixed loss and gradients
 * are the FP32 ones up to the half types' rounding (relative error of the
 * whole gradient vector well under 2^-8 for FP16, 2^-5 for BF16's 8 bits). */
Test(amp_conv, mixed_gradients_match_fp32) {
    static float ref[MAX_GRADS], got[MAX_GRADS];
    size_t np = 0, n;
    float l32 = run_cnn(CT_PRECISION_FP32, ref, &np);
    int P = (int)np;
    double norm = 0;
    for (int i = 0; i < P; i++) norm += (double)ref[i] * ref[i];
    cr_assert(norm > 1e-6, "a non-trivial FP32 gradient");
    const struct { ct_precision p; double tol; } cases[] = {{CT_PRECISION_FP16, 1.0 / 256}, {CT_PRECISION_BF16, 1.0 / 32}};
    for (size_t c = 0; c < 2; c++) {
        for (int i = 0; i < P; i++) got[i] = NAN;
        float l = run_cnn(cases[c].p, got, &n);
        cr_assert_eq(n, np);
        cr_assert(fabsf(l - l32) <= cases[c].tol * fabsf(l32), "%s loss %g, fp32 %g", ct_precision_name(cases[c].p),
                  l, l32);
        double err = 0;
        for (int i = 0; i < P; i++) {
            cr_assert(isfinite(got[i]), "%s gradient %d is %g", ct_precision_name(cases[c].p), i, got[i]);
            err += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        }
        cr_assert(sqrt(err / norm) <= cases[c].tol, "%s: relative gradient error %g",
                  ct_precision_name(cases[c].p), sqrt(err / norm));
        cr_log_info("%s: loss %g (fp32 %g), relative gradient error %.3g", ct_precision_name(cases[c].p), l, l32,
                    sqrt(err / norm));
    }
}
