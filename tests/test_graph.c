/* The graph: shape inference of every builder, build errors (CT_NO_NODE, a
 * status, and a message naming the op and the shapes involved), error
 * propagation through CT_NO_NODE, program-side input errors, backward and
 * compile misuse, and introspection (ct_find, ct_node_*, ct_op_*). Nothing
 * here may abort: every misuse must come back as a value. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

#define S0 ((ct_shape){0, {0}})
#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

static ct_graph *g;

static void setup(void) {
    g = ct_graph_new();
    cr_assert_not_null(g);
    ct_clear_error();
}
static void teardown(void) { ct_graph_free(g); }

TestSuite(graph, .init = setup, .fini = teardown);

static ct_node in(const char *name, ct_dtype dt, ct_shape s) {
    ct_node n = ct_input(g, name, dt, s);
    cr_assert_neq(n, CT_NO_NODE, "ct_input %s: %s", name, ct_last_error());
    return n;
}

/* The node exists and has this shape and dtype. */
static void expect_shape(ct_node n, ct_shape want, ct_dtype dt, const char *what) {
    char a[96], b[96];
    cr_assert_neq(n, CT_NO_NODE, "%s: failed: %s", what, ct_last_error());
    ct_shape got = ct_node_shape(g, n);
    cr_expect(ct_shape_equal(got, want), "%s: shape %s, want %s", what, ct_shape_str(got, a, sizeof a),
              ct_shape_str(want, b, sizeof b));
    cr_expect_eq(ct_node_dtype(g, n), dt, "%s: dtype %s, want %s", what, ct_dtype_name(ct_node_dtype(g, n)),
                 ct_dtype_name(dt));
}

/* A failed build: CT_NO_NODE, the status in the graph and ct_last_status,
 * and a message (in both places) containing every needle (NULL-ended). */
static void expect_build_error(ct_node n, ct_status st, ...) {
    cr_assert_eq(n, CT_NO_NODE, "the builder should have failed (got node %d)", (int)n);
    cr_assert_eq(ct_graph_status(g), st, "graph status %s, want %s (%s)", ct_status_name(ct_graph_status(g)),
                 ct_status_name(st), ct_graph_error(g));
    cr_assert_eq(ct_last_status(), st, "last status %s, want %s", ct_status_name(ct_last_status()),
                 ct_status_name(st));
    const char *msg = ct_graph_error(g);
    cr_assert_str_eq(msg, ct_last_error());
    va_list ap;
    va_start(ap, st);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        cr_expect(strstr(msg, needle) != NULL, "message \"%s\" does not mention \"%s\"", msg, needle);
    va_end(ap);
}

/* A failed call returning a status: the status and message needles. */
static void expect_status(ct_status got, ct_status st, ...) {
    cr_assert_eq(got, st, "status %s, want %s (%s)", ct_status_name(got), ct_status_name(st), ct_last_error());
    cr_assert_eq(ct_last_status(), st);
    const char *msg = ct_last_error();
    cr_assert(msg && *msg, "no message");
    va_list ap;
    va_start(ap, st);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        cr_expect(strstr(msg, needle) != NULL, "message \"%s\" does not mention \"%s\"", msg, needle);
    va_end(ap);
}

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

/* ---- backward and compile misuse ---------------------------------------- */

Test(graph, backward_non_scalar) {
    ct_node x = ct_param(g, "w", CT_F32, S2(2, 3), ct_init_ones());
    ct_node y = ct_tanh(g, x);
    expect_status(ct_graph_backward(g, y), CT_ERR_SHAPE, "[2, 3]", NULL);
    /* a refused backward leaves the graph usable */
    ct_node loss = ct_sum(g, y, CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    cr_assert_neq(ct_grad(g, x), CT_NO_NODE);
}

Test(graph, backward_keepdim_scalar_ok) {
    /* numel 1 with rank 2 is a scalar loss too */
    ct_node x = ct_param(g, "w", CT_F64, S2(2, 3), ct_init_ones());
    ct_node loss = ct_sum(g, x, CT_AXIS_ALL, true);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    expect_shape(ct_grad(g, x), S2(2, 3), CT_F64, "grad of w");
}

Test(graph, backward_integer_loss) {
    ct_node x = in("x", CT_F32, S1(3));
    ct_node loss = ct_cast(g, ct_sum(g, x, CT_AXIS_ALL, false), CT_I32);
    expect_status(ct_graph_backward(g, loss), CT_ERR_SHAPE, "i32", NULL);
}

Test(graph, backward_bad_node) {
    expect_status(ct_graph_backward(g, 42), CT_ERR_INVALID_ARG, NULL);
    expect_status(ct_graph_backward(g, CT_NO_NODE), CT_ERR_INVALID_ARG, NULL);
}

Test(graph, backward_twice) {
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    ct_node loss = ct_sum(g, ct_mul(g, w, w), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gw = ct_grad(g, w);
    int n = ct_graph_num_nodes(g);
    expect_status(ct_graph_backward(g, loss), CT_ERR_STATE, "already", NULL);
    cr_assert_eq(ct_graph_num_nodes(g), n, "the refused backward added nodes");
    cr_assert_eq(ct_grad(g, w), gw);
    /* Nor can the graph gain parameters or requires_grad marks afterwards. */
    cr_assert_eq(ct_param(g, "v", CT_F32, S1(3), ct_init_ones()), CT_NO_NODE);
    cr_assert_eq(ct_last_status(), CT_ERR_STATE);
}

Test(graph, set_requires_grad_errors) {
    ct_node xi = in("xi", CT_I32, S1(3));
    expect_status(ct_set_requires_grad(g, xi, true), CT_ERR_DTYPE, "xi", "i32", NULL);
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    expect_status(ct_set_requires_grad(g, w, true), CT_ERR_INVALID_ARG, "param", NULL);
    expect_status(ct_set_requires_grad(g, 77, true), CT_ERR_INVALID_ARG, "77", NULL);
    ct_node x = in("x", CT_F32, S1(3));
    cr_assert_eq(ct_graph_backward(g, ct_sum(g, ct_mul(g, w, x), CT_AXIS_ALL, false)), CT_OK);
    expect_status(ct_set_requires_grad(g, x, true), CT_ERR_STATE, NULL);
    cr_assert_eq(ct_grad(g, x), CT_NO_NODE, "an unmarked input has no gradient");
    cr_assert_eq(ct_grad(g, xi), CT_NO_NODE);
}

Test(graph, compile_grads_without_backward) {
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    ct_node loss = ct_sum(g, w, CT_AXIS_ALL, false);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_null(p);
    cr_assert_eq(ct_last_status(), CT_ERR_STATE);
    cr_assert(strstr(ct_last_error(), "ct_graph_backward") != NULL, "%s", ct_last_error());
}

Test(graph, compile_bad_outputs) {
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    ct_node bad[] = {w, 500};
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = bad, .n_outputs = 2}));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = NULL, .n_outputs = 2}));
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = bad, .n_outputs = -1}));
}

/* ---- program input errors ------------------------------------------------ */

Test(graph, set_input_errors) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    ct_node y = ct_tanh(g, x);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    float data[6] = {0.5f, -1, 2, 3, -4, 0.25f};
    expect_status(ct_program_set_input(p, "nope", data, sizeof data), CT_ERR_NOT_FOUND, "nope", NULL);
    expect_status(ct_program_set_input(p, NULL, data, sizeof data), CT_ERR_NOT_FOUND, NULL);
    expect_status(ct_program_set_input(p, "x", data, 5 * sizeof(float)), CT_ERR_SHAPE, "'x'", "[2, 3]", "24",
                  "20", NULL);
    expect_status(ct_program_set_input(p, "x", NULL, sizeof data), CT_ERR_INVALID_ARG, "x", NULL);
    expect_status(ct_program_set_input_node(p, y, data, sizeof data), CT_ERR_INVALID_ARG, NULL);
    expect_status(ct_program_set_input_node(p, 1234, data, sizeof data), CT_ERR_INVALID_ARG, NULL);
    /* a named non-input is not an input either */
    cr_assert_eq(ct_set_name(g, y, "y"), CT_OK);
    expect_status(ct_program_set_input(p, "y", data, sizeof data), CT_ERR_NOT_FOUND, "y", NULL);
    /* and the right call still works */
    cr_assert_eq(ct_program_set_input(p, "x", data, sizeof data), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK);
    float out[6];
    cr_assert_eq(ct_program_read(p, y, out, sizeof out), CT_OK);
    for (int i = 0; i < 6; i++) cr_expect_float_eq(out[i], tanhf(data[i]), 1e-6f);
    expect_status(ct_program_read(p, y, out, 4), CT_ERR_SHAPE, "24", "4", NULL);
    ct_program_free(p);
}

Test(graph, read_unkept_node) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    ct_node h = ct_tanh(g, x);
    ct_node y = ct_exp(g, h);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    float buf[6];
    expect_status(ct_program_read(p, h, buf, sizeof buf), CT_ERR_INVALID_ARG, "outputs", NULL);
    cr_assert_eq(ct_program_read(p, x, buf, sizeof buf), CT_OK, "inputs are readable");
    ct_program_free(p);
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
