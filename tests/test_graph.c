/* The graph: shape inference of every builder, and introspection (ct_find,
 * ct_node_*, ct_op_*, the nodes backward adds). Misuse is tested in
 * test_graph_errors.c (build errors and their propagation) and
 * test_graph_misuse.c (backward, compile and program inputs). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "graph_fixture.h"

TestSuite(graph, .init = setup, .fini = teardown);

/* ---- shape inference ---------------------------------------------------- */

Test(graph, infer_matmul) {
    ct_node a = in("a", CT_F32, S2(2, 3)), at = in("at", CT_F32, S2(3, 2));
    ct_node b = in("b", CT_F32, S2(3, 4)), bt = in("bt", CT_F32, S2(4, 3));
    expect_shape(ct_matmul(g, a, b, false, false), S2(2, 4), CT_F32, "[2,3]@[3,4]");
    expect_shape(ct_matmul(g, at, b, true, false), S2(2, 4), CT_F32, "[3,2]^T@[3,4]");
    expect_shape(ct_matmul(g, a, bt, false, true), S2(2, 4), CT_F32, "[2,3]@[4,3]^T");
    expect_shape(ct_matmul(g, at, bt, true, true), S2(2, 4), CT_F32, "[3,2]^T@[4,3]^T");
    ct_node a3 = in("a3", CT_F32, S3(5, 2, 3));
    expect_shape(ct_matmul(g, a3, b, false, false), S3(5, 2, 4), CT_F32, "[5,2,3]@[3,4]");
    expect_shape(ct_matmul(g, b, ct_transpose(g, a3, -1, -2), true, false), S3(5, 4, 2), CT_F32,
                 "[3,4]^T@[5,3,2]");
    ct_node p = in("p", CT_F64, S4(2, 1, 3, 4)), q = in("q", CT_F64, S4(1, 5, 4, 6));
    expect_shape(ct_matmul(g, p, q, false, false), S4(2, 5, 3, 6), CT_F64, "[2,1,3,4]@[1,5,4,6]");
    ct_node r = in("r", CT_F64, S3(7, 4, 6));
    expect_shape(ct_matmul(g, p, r, false, false), S4(2, 7, 3, 6), CT_F64, "[2,1,3,4]@[7,4,6]");
    cr_assert_str_eq(ct_node_op(g, ct_matmul(g, a, b, false, false)), "matmul");
}

Test(graph, infer_binary_broadcast) {
    ct_node m = in("m", CT_F32, S2(3, 4)), v = in("v", CT_F32, S1(4)), s = in("s", CT_F32, S0);
    ct_node t = in("t", CT_F32, S3(2, 1, 4)), c = in("c", CT_F32, S2(3, 1)), r = in("r", CT_F32, S2(1, 4));
    ct_node (*const fns[])(ct_graph *, ct_node, ct_node) = {ct_add, ct_sub, ct_mul, ct_div};
    static const char *const names[] = {"add", "sub", "mul", "div"};
    for (int i = 0; i < 4; i++) {
        expect_shape(fns[i](g, m, v), S2(3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, v, m), S2(3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, t, c), S3(2, 3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, c, t), S3(2, 3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, s, m), S2(3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, m, s), S2(3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, s, s), S0, CT_F32, names[i]);
        expect_shape(fns[i](g, c, r), S2(3, 4), CT_F32, names[i]);
        cr_assert_str_eq(ct_node_op(g, fns[i](g, m, m)), names[i]);
    }
}

Test(graph, infer_unary) {
    ct_node x = in("x", CT_F64, S3(2, 3, 4));
    ct_node h = in("h", CT_F16, S2(5, 1));
    ct_node outs[] = {ct_neg(g, x),  ct_scale(g, x, 2), ct_exp(g, x),      ct_log(g, x),
                      ct_sqrt(g, x), ct_pow(g, x, 3),   ct_abs(g, x),      ct_relu(g, x),
                      ct_leaky_relu(g, x, 0.1), ct_gelu(g, x, CT_GELU_EXACT), ct_gelu(g, x, CT_GELU_TANH),
                      ct_tanh(g, x), ct_sigmoid(g, x),  ct_silu(g, x),     ct_softmax(g, x, 1),
                      ct_log_softmax(g, x, -1), ct_dropout(g, x, 0.5)};
    static const char *const ops[] = {"neg",  "scale", "exp",     "log",  "sqrt",    "pow",
                                      "abs",  "relu",  "leaky_relu", "gelu", "gelu", "tanh",
                                      "sigmoid", "silu", "softmax", "log_softmax", "dropout"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        expect_shape(outs[i], S3(2, 3, 4), CT_F64, ops[i]);
        cr_expect_str_eq(ct_node_op(g, outs[i]), ops[i]);
    }
    expect_shape(ct_tanh(g, h), S2(5, 1), CT_F16, "tanh f16");
    expect_shape(ct_cast(g, x, CT_F32), S3(2, 3, 4), CT_F32, "cast f64->f32");
    expect_shape(ct_cast(g, x, CT_I32), S3(2, 3, 4), CT_I32, "cast f64->i32");
    expect_shape(ct_cast(g, ct_cast(g, x, CT_I32), CT_BF16), S3(2, 3, 4), CT_BF16, "cast i32->bf16");
}

Test(graph, infer_reductions) {
    ct_node x = in("x", CT_F32, S3(3, 4, 5));
    ct_node (*const fns[])(ct_graph *, ct_node, int, bool) = {ct_sum, ct_mean, ct_max};
    static const char *const names[] = {"sum", "mean", "max"};
    for (int i = 0; i < 3; i++) {
        expect_shape(fns[i](g, x, 0, false), S2(4, 5), CT_F32, names[i]);
        expect_shape(fns[i](g, x, 1, false), S2(3, 5), CT_F32, names[i]);
        expect_shape(fns[i](g, x, 1, true), S3(3, 1, 5), CT_F32, names[i]);
        expect_shape(fns[i](g, x, -1, false), S2(3, 4), CT_F32, names[i]);
        expect_shape(fns[i](g, x, -3, true), S3(1, 4, 5), CT_F32, names[i]);
        expect_shape(fns[i](g, x, CT_AXIS_ALL, false), S0, CT_F32, names[i]);
        expect_shape(fns[i](g, x, CT_AXIS_ALL, true), S3(1, 1, 1), CT_F32, names[i]);
        cr_assert_str_eq(ct_node_op(g, fns[i](g, x, 0, false)), names[i]);
    }
}

Test(graph, infer_data_movement) {
    ct_node x = in("x", CT_F32, S3(3, 4, 5));
    expect_shape(ct_reshape(g, x, (ct_shape){2, {-1, 10}}), S2(6, 10), CT_F32, "reshape [-1,10]");
    expect_shape(ct_reshape(g, x, (ct_shape){3, {5, -1, 2}}), S3(5, 6, 2), CT_F32, "reshape [5,-1,2]");
    expect_shape(ct_reshape(g, x, S1(60)), S1(60), CT_F32, "reshape [60]");
    expect_shape(ct_reshape(g, ct_sum(g, x, CT_AXIS_ALL, false), S2(1, 1)), S2(1, 1), CT_F32, "scalar -> [1,1]");
    static const int p[] = {2, 0, 1}, pn[] = {-1, 0, 1};
    expect_shape(ct_permute(g, x, p), S3(5, 3, 4), CT_F32, "permute {2,0,1}");
    expect_shape(ct_permute(g, x, pn), S3(5, 3, 4), CT_F32, "permute {-1,0,1}");
    ct_node t = ct_transpose(g, x, 0, -1);
    expect_shape(t, S3(5, 4, 3), CT_F32, "transpose 0,-1");
    cr_assert_str_eq(ct_node_op(g, t), "permute");
    ct_node parts[] = {in("a", CT_F32, S3(2, 3, 4)), in("b", CT_F32, S3(2, 1, 4)), in("c", CT_F32, S3(2, 2, 4))};
    expect_shape(ct_concat(g, parts, 3, 1), S3(2, 6, 4), CT_F32, "concat axis 1");
    expect_shape(ct_concat(g, parts, 3, -2), S3(2, 6, 4), CT_F32, "concat axis -2");
    expect_shape(ct_concat(g, parts, 1, 0), S3(2, 3, 4), CT_F32, "concat of one");
    ct_node y = in("y", CT_F32, S3(3, 6, 4));
    expect_shape(ct_slice(g, y, 1, -4, -1), S3(3, 3, 4), CT_F32, "slice [-4,-1)");
    expect_shape(ct_slice(g, y, -1, 1, 3), S3(3, 6, 2), CT_F32, "slice axis -1");
    expect_shape(ct_slice(g, y, 0, 0, 3), S3(3, 6, 4), CT_F32, "slice whole");
    expect_shape(ct_slice(g, y, 1, 2, -2), S3(3, 2, 4), CT_F32, "slice [2,-2)");
}

Test(graph, infer_nn_ops) {
    ct_node table = in("table", CT_F32, S2(10, 3));
    ct_node idx = in("idx", CT_I32, S2(2, 5));
    expect_shape(ct_embedding(g, table, idx), S3(2, 5, 3), CT_F32, "embedding");
    ct_node idx0 = in("idx0", CT_I32, S0);
    expect_shape(ct_embedding(g, table, idx0), S1(3), CT_F32, "embedding of a scalar index");
    ct_node logits = in("logits", CT_F64, S2(4, 7)), labels = in("labels", CT_I32, S1(4));
    expect_shape(ct_cross_entropy(g, logits, labels, 0.0), S0, CT_F64, "cross_entropy");
    expect_shape(ct_cross_entropy(g, logits, labels, 0.1), S0, CT_F64, "cross_entropy smoothed");
    ct_node t = in("t", CT_F64, S2(4, 7));
    expect_shape(ct_mse(g, logits, t), S0, CT_F64, "mse");
    expect_shape(ct_bce_with_logits(g, logits, t), S0, CT_F64, "bce_with_logits");
    expect_shape(ct_dropout(g, logits, 0.0), S2(4, 7), CT_F64, "dropout p=0");
    expect_shape(ct_dropout(g, logits, 1.0), S2(4, 7), CT_F64, "dropout p=1");
}

Test(graph, sources) {
    ct_node p = ct_param(g, "w", CT_F32, S2(3, 4), ct_init_zeros());
    expect_shape(p, S2(3, 4), CT_F32, "param");
    cr_assert_str_eq(ct_node_op(g, p), "param");
    float data[6] = {1, 2, 3, 4, 5, 6};
    ct_node c = ct_constant(g, CT_F32, S2(2, 3), data);
    expect_shape(c, S2(2, 3), CT_F32, "constant");
    cr_assert_str_eq(ct_node_op(g, c), "const");
    expect_shape(ct_fill(g, CT_I32, S1(4), 3), S1(4), CT_I32, "fill");
    expect_shape(ct_fill(g, CT_F64, S0, 2.5), S0, CT_F64, "scalar fill");
    ct_node x = in("x", CT_U8, S2(28, 28));
    cr_assert_str_eq(ct_node_op(g, x), "input");
    cr_assert_str_eq(ct_node_name(g, x), "x");
    cr_assert_eq(ct_graph_num_params(g), 1);
    cr_assert_eq(ct_graph_param(g, 0), p);
    cr_assert_eq(ct_graph_param(g, 1), CT_NO_NODE);
    cr_assert_eq(ct_graph_param(g, -1), CT_NO_NODE);
    cr_assert_eq(ct_graph_status(g), CT_OK);
    cr_assert_str_eq(ct_graph_error(g), "");
}
/* ---- introspection ------------------------------------------------------ */

Test(graph, find_and_names) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    ct_node w = ct_param(g, "layer.w", CT_F32, S2(3, 3), ct_init_ones());
    ct_node y = ct_matmul(g, x, w, false, false);
    cr_assert_eq(ct_find(g, "x"), x);
    cr_assert_eq(ct_find(g, "layer.w"), w);
    cr_assert_eq(ct_find(g, "y"), CT_NO_NODE);
    cr_assert_null(ct_node_name(g, y));
    cr_assert_eq(ct_set_name(g, y, "y"), CT_OK);
    cr_assert_eq(ct_find(g, "y"), y);
    cr_assert_str_eq(ct_node_name(g, y), "y");
    cr_assert_eq(ct_set_name(g, y, "y2"), CT_OK, "renaming");
    cr_assert_eq(ct_find(g, "y"), CT_NO_NODE);
    cr_assert_eq(ct_find(g, "y2"), y);
    ct_node z = ct_relu(g, y);
    expect_status(ct_set_name(g, z, "x"), CT_ERR_INVALID_ARG, "'x'", NULL);
    expect_status(ct_set_name(g, z, "y2"), CT_ERR_INVALID_ARG, "'y2'", NULL);
    expect_status(ct_set_name(g, x, "renamed"), CT_ERR_INVALID_ARG, NULL);
    expect_status(ct_set_name(g, z, ""), CT_ERR_INVALID_ARG, NULL);
    expect_status(ct_set_name(g, 99, "q"), CT_ERR_INVALID_ARG, NULL);
    cr_assert_eq(ct_find(g, NULL), CT_NO_NODE);
    cr_assert_eq(ct_find(g, ""), CT_NO_NODE);
    /* a name taken by a node cannot be an input name */
    cr_assert_eq(ct_input(g, "y2", CT_F32, S1(1)), CT_NO_NODE);
}

Test(graph, node_introspection) {
    cr_assert_eq(ct_graph_num_nodes(g), 0);
    ct_node x = in("x", CT_F16, S3(1, 2, 3));
    cr_assert_eq(ct_graph_num_nodes(g), 1);
    cr_assert_eq(ct_node_shape(g, x).ndim, 3);
    cr_assert_eq(ct_node_shape(g, x).dim[2], 3);
    cr_assert_eq(ct_node_dtype(g, x), CT_F16);
    cr_assert_eq(ct_node_shape(g, 5).ndim, -1);
    cr_assert_eq(ct_node_shape(g, CT_NO_NODE).ndim, -1);
    cr_assert_eq(ct_node_dtype(g, 5), CT_DTYPE_COUNT);
    cr_assert_null(ct_node_name(g, 5));
    cr_assert_null(ct_node_op(g, -1));
    cr_assert_eq(ct_grad(g, x), CT_NO_NODE, "no gradient before backward");
    cr_assert_eq(ct_graph_seed(g), 0);
    ct_graph_set_seed(g, 1234567890123ull);
    cr_assert_eq(ct_graph_seed(g), 1234567890123ull);
}

Test(graph, op_table) {
    int n = ct_op_count();
    cr_assert_gt(n, 30);
    cr_assert_null(ct_op_name(-1));
    cr_assert_null(ct_op_name(n));
    cr_assert(!ct_op_differentiable(-1) && !ct_op_differentiable(n));
    cr_assert(!ct_op_internal(-1) && !ct_op_internal(n));
    int n_internal = 0, n_diff = 0;
    for (int i = 0; i < n; i++) {
        const char *name = ct_op_name(i);
        cr_assert_not_null(name, "op %d has no name", i);
        cr_assert_gt(strlen(name), 0);
        for (int j = 0; j < i; j++) cr_assert_str_neq(name, ct_op_name(j), "op name '%s' appears twice", name);
        /* no double backward: an internal op has no backward rule */
        cr_assert(!(ct_op_internal(i) && ct_op_differentiable(i)), "%s is internal and differentiable", name);
        n_internal += ct_op_internal(i);
        n_diff += ct_op_differentiable(i);
    }
    cr_assert_gt(n_internal, 0);
    cr_assert_gt(n_diff, 20);
    /* Spot checks by name. */
    for (int i = 0; i < n; i++) {
        const char *name = ct_op_name(i);
        if (!strcmp(name, "matmul") || !strcmp(name, "cross_entropy") || !strcmp(name, "dropout"))
            cr_assert(ct_op_differentiable(i) && !ct_op_internal(i), "%s", name);
        if (!strcmp(name, "input") || !strcmp(name, "param") || !strcmp(name, "const"))
            cr_assert(!ct_op_differentiable(i) && !ct_op_internal(i), "%s", name);
        if (!strcmp(name, "unary_grad") || !strcmp(name, "sum_to") || !strcmp(name, "embedding_grad"))
            cr_assert(ct_op_internal(i), "%s", name);
    }
    /* Class and arity, by name. */
    cr_assert_null(ct_op_class_name(-1));
    cr_assert_null(ct_op_class_name(n));
    cr_assert_eq(ct_op_arity(n), -1);
    for (int i = 0; i < n; i++) {
        const char *name = ct_op_name(i), *cls = ct_op_class_name(i);
        cr_assert_not_null(cls, "%s has no class", name);
        cr_assert_eq(ct_op_internal(i), strcmp(cls, "internal") == 0, "%s", name);
        if (!strcmp(name, "add")) cr_assert(!strcmp(cls, "binary") && ct_op_arity(i) == 2);
        if (!strcmp(name, "sigmoid")) cr_assert(!strcmp(cls, "unary") && ct_op_arity(i) == 1);
        if (!strcmp(name, "input")) cr_assert(!strcmp(cls, "source") && ct_op_arity(i) == 0);
        if (!strcmp(name, "concat") || !strcmp(name, "conv2d") || !strcmp(name, "batch_norm"))
            cr_assert_eq(ct_op_arity(i), -1, "%s takes a varying number of inputs", name);
        if (!strcmp(name, "cross_entropy_grad")) cr_assert(!strcmp(cls, "internal") && ct_op_arity(i) == 3);
    }
    /* Node op names come from the same table. */
    ct_node x = in("x", CT_F32, S1(2));
    ct_node y = ct_sigmoid(g, x);
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = !strcmp(ct_op_name(i), ct_node_op(g, y));
    cr_assert(found);
}

Test(graph, backward_creates_internal_nodes_only_after_forward) {
    ct_node x = in("x", CT_F64, S2(3, 4));
    cr_assert_eq(ct_set_requires_grad(g, x, true), CT_OK);
    ct_node loss = ct_mean(g, ct_softmax(g, x, 1), CT_AXIS_ALL, false);
    int before = ct_graph_num_nodes(g);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    cr_assert_gt(ct_graph_num_nodes(g), before);
    ct_node gx = ct_grad(g, x);
    cr_assert_geq(gx, before, "the gradient is a new node");
    expect_shape(gx, S2(3, 4), CT_F64, "grad x");
    bool saw_internal = false;
    for (int i = before; i < ct_graph_num_nodes(g); i++)
        for (int op = 0; op < ct_op_count(); op++)
            if (ct_op_internal(op) && !strcmp(ct_op_name(op), ct_node_op(g, i))) saw_internal = true;
    cr_assert(saw_internal, "softmax's backward uses softmax_grad, an internal op");
    cr_assert_eq(ct_grad(g, loss), CT_NO_NODE, "only sources keep a gradient node");
}
