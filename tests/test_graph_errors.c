/* Graph build errors: every builder given bad shapes, dtypes, axes or
 * handles returns CT_NO_NODE, sets a status, and leaves a message naming
 * the op and the shapes involved; a NULL graph never crashes; and a failed
 * node propagates through later builders without overwriting the first
 * error, up to backward and compile. Nothing here may abort: every misuse
 * must come back as a value. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "graph_fixture.h"

TestSuite(graph, .init = setup, .fini = teardown);

/* ---- build errors ------------------------------------------------------- */

Test(graph, error_matmul_shapes) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F32, S2(4, 5));
    expect_build_error(ct_matmul(g, a, b, false, false), CT_ERR_SHAPE, "matmul", "[2, 3]", "[4, 5]", NULL);
}

Test(graph, error_matmul_transposed_shapes) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F32, S2(2, 5));
    expect_build_error(ct_matmul(g, a, b, false, true), CT_ERR_SHAPE, "matmul", "[2, 3]", "[2, 5]", NULL);
}

Test(graph, error_matmul_rank) {
    ct_node a = in("a", CT_F32, S1(3)), b = in("b", CT_F32, S2(3, 5));
    expect_build_error(ct_matmul(g, a, b, false, false), CT_ERR_SHAPE, "matmul", "[3]", "[3, 5]", NULL);
}

Test(graph, error_matmul_batch) {
    ct_node a = in("a", CT_F32, S3(2, 3, 4)), b = in("b", CT_F32, S3(3, 4, 5));
    expect_build_error(ct_matmul(g, a, b, false, false), CT_ERR_SHAPE, "matmul", "[2, 3, 4]", "[3, 4, 5]",
                       NULL);
}

Test(graph, error_matmul_dtypes) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F64, S2(3, 5));
    expect_build_error(ct_matmul(g, a, b, false, false), CT_ERR_DTYPE, "matmul", "f32", "f64", NULL);
}

Test(graph, error_matmul_ints) {
    ct_node a = in("a", CT_I32, S2(2, 3)), b = in("b", CT_I32, S2(3, 5));
    expect_build_error(ct_matmul(g, a, b, false, false), CT_ERR_DTYPE, "matmul", "i32", NULL);
}

Test(graph, error_add_shapes) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F32, S1(4));
    expect_build_error(ct_add(g, a, b), CT_ERR_SHAPE, "add", "[2, 3]", "[4]", NULL);
}

Test(graph, error_binary_shapes_each_op) {
    ct_node a = in("a", CT_F32, S3(2, 3, 4)), b = in("b", CT_F32, S2(2, 4));
    ct_node (*const fns[])(ct_graph *, ct_node, ct_node) = {ct_sub, ct_mul, ct_div};
    static const char *const names[] = {"sub", "mul", "div"};
    for (int i = 0; i < 3; i++) {
        ct_graph_free(g);
        g = ct_graph_new();
        a = in("a", CT_F32, S3(2, 3, 4));
        b = in("b", CT_F32, S2(2, 4));
        expect_build_error(fns[i](g, a, b), CT_ERR_SHAPE, names[i], "[2, 3, 4]", "[2, 4]", NULL);
    }
}

Test(graph, error_dtype_mismatch) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F64, S2(2, 3));
    expect_build_error(ct_add(g, a, b), CT_ERR_DTYPE, "add", "f32", "f64", NULL);
}

Test(graph, error_i32_into_exp) {
    ct_node x = in("x", CT_I32, S2(2, 3));
    expect_build_error(ct_exp(g, x), CT_ERR_DTYPE, "exp", "i32", NULL);
}

Test(graph, error_int_into_float_ops) {
    /* every float-only builder names itself and the dtype it got */
    static const char *const ops[] = {"neg",  "scale", "log",  "sqrt",    "pow",     "abs",
                                      "relu", "leaky_relu", "gelu", "tanh", "sigmoid", "silu",
                                      "softmax", "log_softmax", "sum", "mean", "max", "dropout", "add"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        ct_graph_free(g);
        g = ct_graph_new();
        ct_node x = in("x", CT_U8, S2(2, 3));
        ct_node n;
        switch (i) {
        case 0: n = ct_neg(g, x); break;
        case 1: n = ct_scale(g, x, 2); break;
        case 2: n = ct_log(g, x); break;
        case 3: n = ct_sqrt(g, x); break;
        case 4: n = ct_pow(g, x, 2); break;
        case 5: n = ct_abs(g, x); break;
        case 6: n = ct_relu(g, x); break;
        case 7: n = ct_leaky_relu(g, x, 0.1); break;
        case 8: n = ct_gelu(g, x, CT_GELU_EXACT); break;
        case 9: n = ct_tanh(g, x); break;
        case 10: n = ct_sigmoid(g, x); break;
        case 11: n = ct_silu(g, x); break;
        case 12: n = ct_softmax(g, x, 0); break;
        case 13: n = ct_log_softmax(g, x, 0); break;
        case 14: n = ct_sum(g, x, 0, false); break;
        case 15: n = ct_mean(g, x, 0, false); break;
        case 16: n = ct_max(g, x, 0, false); break;
        case 17: n = ct_dropout(g, x, 0.5); break;
        default: n = ct_add(g, x, x); break;
        }
        expect_build_error(n, CT_ERR_DTYPE, ops[i], "u8", NULL);
    }
}

Test(graph, error_concat_mismatch) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F32, S2(3, 3));
    ct_node xs[] = {a, b};
    expect_build_error(ct_concat(g, xs, 2, 1), CT_ERR_SHAPE, "concat", "[2, 3]", "[3, 3]", NULL);
}

Test(graph, error_concat_rank_and_dtype) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F32, S3(2, 3, 1));
    ct_node xs[] = {a, b};
    expect_build_error(ct_concat(g, xs, 2, 0), CT_ERR_SHAPE, "concat", "[2, 3]", "[2, 3, 1]", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    ct_node c = in("c", CT_F32, S2(2, 3)), d = in("d", CT_F64, S2(2, 3));
    ct_node ys[] = {c, d};
    expect_build_error(ct_concat(g, ys, 2, 0), CT_ERR_DTYPE, "concat", "f32", "f64", NULL);
}

Test(graph, error_concat_empty) {
    expect_build_error(ct_concat(g, NULL, 0, 0), CT_ERR_INVALID_ARG, "concat", NULL);
}

Test(graph, error_bad_axes) {
    struct {
        const char *op;
        int axis;
    } cases[] = {{"sum", 3},     {"mean", -4},   {"max", 2},   {"softmax", 3},
                 {"log_softmax", -4}, {"concat", 2}, {"slice", 5}, {"transpose", 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_graph_free(g);
        g = ct_graph_new();
        ct_node x = in("x", CT_F32, S2(2, 3));
        ct_node n = CT_NO_NODE;
        int ax = cases[i].axis;
        switch (i) {
        case 0: n = ct_sum(g, x, ax, false); break;
        case 1: n = ct_mean(g, x, ax, true); break;
        case 2: n = ct_max(g, x, ax, false); break;
        case 3: n = ct_softmax(g, x, ax); break;
        case 4: n = ct_log_softmax(g, x, ax); break;
        case 5: n = ct_concat(g, &x, 1, ax); break;
        case 6: n = ct_slice(g, x, ax, 0, 1); break;
        default: n = ct_transpose(g, x, 0, ax); break;
        }
        char axs[16];
        snprintf(axs, sizeof axs, "%d", ax);
        expect_build_error(n, CT_ERR_INVALID_ARG, cases[i].op, axs, "[2, 3]", NULL);
    }
}

Test(graph, error_permute) {
    ct_node x = in("x", CT_F32, S3(2, 3, 4));
    static const int dup[] = {0, 0, 1};
    expect_build_error(ct_permute(g, x, dup), CT_ERR_INVALID_ARG, "permute", "[2, 3, 4]", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    x = in("x", CT_F32, S3(2, 3, 4));
    static const int out[] = {0, 1, 3};
    expect_build_error(ct_permute(g, x, out), CT_ERR_INVALID_ARG, "permute", "[2, 3, 4]", "3", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    x = in("x", CT_F32, S3(2, 3, 4));
    expect_build_error(ct_permute(g, x, NULL), CT_ERR_INVALID_ARG, "permute", NULL);
}

Test(graph, error_reshape_count) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_reshape(g, x, S2(4, 2)), CT_ERR_SHAPE, "reshape", "[2, 3]", "[4, 2]", NULL);
}

Test(graph, error_reshape_infer) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_reshape(g, x, (ct_shape){2, {4, -1}}), CT_ERR_SHAPE, "reshape", "[2, 3]", "[4, -1]",
                       NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    x = in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_reshape(g, x, (ct_shape){2, {-1, -1}}), CT_ERR_SHAPE, "reshape", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    x = in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_reshape(g, x, (ct_shape){2, {0, 6}}), CT_ERR_SHAPE, "reshape", NULL);
}

Test(graph, error_slice_range) {
    ct_node x = in("x", CT_F32, S2(4, 6));
    expect_build_error(ct_slice(g, x, 1, 4, 2), CT_ERR_INVALID_ARG, "slice", "[4, 6]", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    x = in("x", CT_F32, S2(4, 6));
    expect_build_error(ct_slice(g, x, 1, 0, 7), CT_ERR_INVALID_ARG, "slice", "[4, 6]", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    x = in("x", CT_F32, S2(4, 6));
    expect_build_error(ct_slice(g, x, 0, -5, 2), CT_ERR_INVALID_ARG, "slice", "[4, 6]", NULL);
}

Test(graph, error_nn_ops) {
    ct_node table = in("table", CT_F32, S2(10, 3)), fidx = in("fidx", CT_F32, S1(4));
    expect_build_error(ct_embedding(g, table, fidx), CT_ERR_DTYPE, "embedding", "f32", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    ct_node t3 = in("t3", CT_F32, S3(10, 3, 1)), idx = in("idx", CT_I32, S1(4));
    expect_build_error(ct_embedding(g, t3, idx), CT_ERR_SHAPE, "embedding", "[10, 3, 1]", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    ct_node logits = in("logits", CT_F32, S2(4, 7)), labels = in("labels", CT_I32, S1(5));
    expect_build_error(ct_cross_entropy(g, logits, labels, 0), CT_ERR_SHAPE, "cross_entropy", "[4, 7]", "[5]",
                       NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    logits = in("logits", CT_F32, S2(4, 7));
    ct_node flabels = in("flabels", CT_F32, S1(4));
    expect_build_error(ct_cross_entropy(g, logits, flabels, 0), CT_ERR_DTYPE, "cross_entropy", "f32", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    logits = in("logits", CT_F32, S2(4, 7));
    labels = in("labels", CT_I32, S1(4));
    expect_build_error(ct_cross_entropy(g, logits, labels, 1.0), CT_ERR_INVALID_ARG, "cross_entropy", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    ct_node a = in("a", CT_F32, S2(4, 7)), b = in("b", CT_F32, S2(7, 4));
    expect_build_error(ct_mse(g, a, b), CT_ERR_SHAPE, "mse", "[4, 7]", "[7, 4]", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    a = in("a", CT_F32, S2(4, 7));
    b = in("b", CT_F32, S1(7)); /* losses do not broadcast */
    expect_build_error(ct_bce_with_logits(g, a, b), CT_ERR_SHAPE, "bce_with_logits", "[4, 7]", "[7]", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    a = in("a", CT_F32, S2(4, 7));
    expect_build_error(ct_dropout(g, a, 1.5), CT_ERR_INVALID_ARG, "dropout", "1.5", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    a = in("a", CT_F32, S2(4, 7));
    expect_build_error(ct_gelu(g, a, (ct_gelu_approx)7), CT_ERR_INVALID_ARG, "gelu", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    a = in("a", CT_F32, S2(4, 7));
    expect_build_error(ct_cast(g, a, CT_DTYPE_COUNT), CT_ERR_DTYPE, "cast", NULL);
}

Test(graph, error_sources) {
    in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_input(g, "x", CT_F32, S1(4)), CT_ERR_INVALID_ARG, "'x'", "already", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_param(g, "x", CT_F32, S1(4), ct_init_zeros()), CT_ERR_INVALID_ARG, "'x'", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    expect_build_error(ct_param(g, "w", CT_F16, S1(4), ct_init_zeros()), CT_ERR_DTYPE, "'w'", "f16", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    cr_assert_neq(ct_param(g, "w", CT_F32, S1(4), ct_init_zeros()), CT_NO_NODE);
    expect_build_error(ct_param(g, "v", CT_F64, S1(4), ct_init_zeros()), CT_ERR_DTYPE, "'v'", "f32", "f64", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    expect_build_error(ct_input(g, "bad", CT_F32, S2(2, 0)), CT_ERR_SHAPE, "[2, 0]", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    expect_build_error(ct_input(g, NULL, CT_F32, S1(2)), CT_ERR_INVALID_ARG, "name", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    expect_build_error(ct_input(g, "nine", CT_F32, (ct_shape){9, {1, 1, 1, 1, 1, 1, 1, 1}}), CT_ERR_SHAPE,
                       "9", NULL);

    ct_graph_free(g);
    g = ct_graph_new();
    expect_build_error(ct_constant(g, CT_F32, S1(3), NULL), CT_ERR_INVALID_ARG, "ct_constant", NULL);
}

Test(graph, error_bad_handle) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    expect_build_error(ct_add(g, x, 9999), CT_ERR_INVALID_ARG, "add", "9999", NULL);
    ct_graph_free(g);
    g = ct_graph_new();
    expect_build_error(ct_relu(g, -7), CT_ERR_INVALID_ARG, "relu", NULL);
}

Test(graph, null_graph_never_crashes) {
    cr_assert_eq(ct_input(NULL, "x", CT_F32, S1(2)), CT_NO_NODE);
    cr_assert_eq(ct_param(NULL, "w", CT_F32, S1(2), ct_init_zeros()), CT_NO_NODE);
    cr_assert_eq(ct_fill(NULL, CT_F32, S1(2), 1), CT_NO_NODE);
    cr_assert_eq(ct_add(NULL, 0, 1), CT_NO_NODE);
    cr_assert_eq(ct_matmul(NULL, 0, 1, false, false), CT_NO_NODE);
    cr_assert_eq(ct_tanh(NULL, 0), CT_NO_NODE);
    cr_assert_eq(ct_gelu(NULL, 0, CT_GELU_TANH), CT_NO_NODE);
    cr_assert_eq(ct_sum(NULL, 0, 0, false), CT_NO_NODE);
    cr_assert_eq(ct_reshape(NULL, 0, S1(2)), CT_NO_NODE);
    cr_assert_eq(ct_transpose(NULL, 0, 0, 1), CT_NO_NODE);
    ct_node xs[2] = {0, 1};
    cr_assert_eq(ct_concat(NULL, xs, 2, 0), CT_NO_NODE);
    cr_assert_eq(ct_slice(NULL, 0, 0, 0, 1), CT_NO_NODE);
    cr_assert_eq(ct_embedding(NULL, 0, 1), CT_NO_NODE);
    cr_assert_eq(ct_dropout(NULL, 0, 0.5), CT_NO_NODE);
    cr_assert_eq(ct_cross_entropy(NULL, 0, 1, 0), CT_NO_NODE);
    cr_assert_eq(ct_mse(NULL, 0, 1), CT_NO_NODE);
    cr_assert_eq(ct_cast(NULL, 0, CT_F64), CT_NO_NODE);
    cr_assert_neq(ct_graph_backward(NULL, 0), CT_OK);
    cr_assert_null(ct_compile(NULL, NULL));
    cr_assert_neq(ct_program_run(NULL), CT_OK);
    cr_assert_neq(ct_program_set_input(NULL, "x", "", 0), CT_OK);
    cr_assert_eq(ct_find(NULL, "x"), CT_NO_NODE);
    cr_assert_eq(ct_grad(NULL, 0), CT_NO_NODE);
    cr_assert_eq(ct_node_shape(NULL, 0).ndim, -1);
    cr_assert_eq(ct_graph_num_nodes(NULL), 0);
    cr_assert_neq(ct_set_requires_grad(NULL, 0, true), CT_OK);
    cr_assert_neq(ct_graph_status(NULL), CT_OK);
    ct_graph_free(NULL);
    ct_program_free(NULL);
}

/* ---- error propagation -------------------------------------------------- */

Test(graph, no_node_propagates_without_overwriting) {
    ct_node a = in("a", CT_F32, S2(2, 3)), b = in("b", CT_F32, S2(4, 5));
    ct_node idx = in("idx", CT_I32, S1(2));
    ct_node bad = ct_matmul(g, a, b, false, false);
    cr_assert_eq(bad, CT_NO_NODE);
    char first[512];
    snprintf(first, sizeof first, "%s", ct_last_error());
    cr_assert(strstr(first, "matmul") != NULL, "%s", first);
    int nodes = ct_graph_num_nodes(g);

    ct_node xs[] = {a, bad};
    ct_node results[] = {
        ct_add(g, bad, a),         ct_add(g, a, bad),           ct_relu(g, bad),
        ct_scale(g, bad, 2),       ct_gelu(g, bad, CT_GELU_TANH), ct_softmax(g, bad, 0),
        ct_sum(g, bad, 0, false),  ct_max(g, bad, CT_AXIS_ALL, true), ct_reshape(g, bad, S1(6)),
        ct_transpose(g, bad, 0, 1), ct_concat(g, xs, 2, 0),     ct_slice(g, bad, 0, 0, 1),
        ct_embedding(g, bad, idx), ct_dropout(g, bad, 0.5),     ct_cross_entropy(g, bad, idx, 0),
        ct_mse(g, bad, a),         ct_bce_with_logits(g, a, bad), ct_cast(g, bad, CT_F64),
        ct_matmul(g, bad, bad, false, false), ct_mul(g, ct_exp(g, bad), ct_log(g, bad)),
    };
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        cr_expect_eq(results[i], CT_NO_NODE, "builder %zu did not propagate CT_NO_NODE", i);
    cr_assert_eq(ct_graph_num_nodes(g), nodes, "failed builders added nodes");
    cr_assert_eq(ct_graph_status(g), CT_ERR_SHAPE);
    cr_assert_str_eq(ct_graph_error(g), first);
    cr_assert_str_eq(ct_last_error(), first, "the first message was overwritten");
    cr_assert_eq(ct_last_status(), CT_ERR_SHAPE);

    /* A second, independent error does not replace the graph's first one. */
    ct_node c = ct_add(g, a, in("v", CT_F32, S1(7)));
    cr_assert_eq(c, CT_NO_NODE);
    cr_assert_str_eq(ct_graph_error(g), first);

    /* Backward and compile refuse the broken graph and quote the error,
     * also when handed the CT_NO_NODE the failed build produced. */
    cr_assert_eq(ct_graph_backward(g, results[0]), CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), first) != NULL, "backward(CT_NO_NODE) hides the first error: %s",
              ct_last_error());
    ct_node loss = ct_sum(g, a, CT_AXIS_ALL, false);
    cr_assert_neq(loss, CT_NO_NODE, "a valid builder still works: %s", ct_last_error());
    ct_status st = ct_graph_backward(g, loss);
    cr_assert_eq(st, CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "[2, 3]") && strstr(ct_last_error(), "[4, 5]"), "%s", ct_last_error());
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1}));
    cr_assert_eq(ct_last_status(), CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "matmul") != NULL, "%s", ct_last_error());
}
