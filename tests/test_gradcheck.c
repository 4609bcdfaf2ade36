/* Float64 gradient checks of every differentiable op against central finite
 * differences (harness: gradcheck.h), plus composite graphs: a two-layer
 * MLP checked with respect to its parameters, and a node with several
 * consumers (gradient accumulation).
 *
 * Each op's checks are an OP_TEST declaring it (op_tests.h), and
 * tests/test_op_coverage.c fails when a differentiable op has none, so a new
 * op cannot land without a gradient check. Each case also names the op it is
 * about, and the harness asserts that the graph really contains it and that
 * its test declares it. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "gradcheck.h"

#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})
#define SCALAR ((ct_shape){0, {0}})

TestSuite(gradcheck, .timeout = 120);

/* ---- matmul ------------------------------------------------------------- */

typedef struct mm_ctx {
    bool ta, tb;
} mm_ctx;

static ct_node b_matmul(ct_graph *g, const ct_node *x, const void *ctx) {
    const mm_ctx *m = ctx;
    return ct_matmul(g, x[0], x[1], m->ta, m->tb);
}

OP_TEST(gradcheck, matmul_transposes, CT_OP_MATMUL) {
    /* M = 3, K = 5, N = 7: odd and all different, so a swapped axis shows. */
    for (int t = 0; t < 4; t++) {
        mm_ctx m = {t & 1, (t >> 1) & 1};
        char name[64];
        snprintf(name, sizeof name, "matmul ta=%d tb=%d", m.ta, m.tb);
        gc_case c = {.name = name, .op = "matmul", .n_in = 2, .build = b_matmul, .ctx = &m};
        c.in[0].shape = m.ta ? S2(5, 3) : S2(3, 5);
        c.in[1].shape = m.tb ? S2(7, 5) : S2(5, 7);
        gc_check(&c);
    }
}

OP_TEST(gradcheck, matmul_batched, CT_OP_MATMUL) {
    static const struct {
        const char *name;
        ct_shape a, b;
        bool ta, tb;
    } cases[] = {
        {"matmul [2,3,4]@[4,5]", S3(2, 3, 4), S2(4, 5), false, false},
        {"matmul [2,3,4]@[5,4]^T", S3(2, 3, 4), S2(5, 4), false, true},
        {"matmul [2,4,3]^T@[4,5]", S3(2, 4, 3), S2(4, 5), true, false},
        {"matmul [2,4,3]^T@[5,4]^T", S3(2, 4, 3), S2(5, 4), true, true},
        {"matmul [3,4]@[2,4,5]", S2(3, 4), S3(2, 4, 5), false, false},
        {"matmul [2,3,4]@[2,4,5]", S3(2, 3, 4), S3(2, 4, 5), false, false},
        {"matmul [2,1,3,4]@[1,2,4,5]", S4(2, 1, 3, 4), S4(1, 2, 4, 5), false, false},
        {"matmul [2,1,4,3]^T@[1,2,5,4]^T", S4(2, 1, 4, 3), S4(1, 2, 5, 4), true, true},
        {"matmul [2,1,3,4]@[3,4,5]", S4(2, 1, 3, 4), S3(3, 4, 5), false, false},
        {"matmul [4,3]^T@[2,4,5]", S2(4, 3), S3(2, 4, 5), true, false},
        {"matmul [4,3]^T@[2,5,4]^T", S2(4, 3), S3(2, 5, 4), true, true},
        {"matmul [3,4]@[2,5,4]^T", S2(3, 4), S3(2, 5, 4), false, true},
        {"matmul [1,3,4]@[2,4,5]", S3(1, 3, 4), S3(2, 4, 5), false, false},
        {"matmul [2,3,4]@[1,4,5]", S3(2, 3, 4), S3(1, 4, 5), false, false},
        {"matmul [2,2,3,4]@[4,5] (two batch axes, 2-D b)", S4(2, 2, 3, 4), S2(4, 5), false, false},
        {"matmul [2,2,4,3]^T@[5,4]^T (two batch axes, 2-D b)", S4(2, 2, 4, 3), S2(5, 4), true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mm_ctx m = {cases[i].ta, cases[i].tb};
        gc_case c = {.name = cases[i].name, .op = "matmul", .n_in = 2, .build = b_matmul, .ctx = &m};
        c.in[0].shape = cases[i].a;
        c.in[1].shape = cases[i].b;
        gc_check(&c);
    }
}

/* ---- binary elementwise with broadcasting ------------------------------- */

typedef ct_node (*binary_fn)(ct_graph *, ct_node, ct_node);

static ct_node b_binary(ct_graph *g, const ct_node *x, const void *ctx) {
    binary_fn f = *(const binary_fn *)ctx;
    return f(g, x[0], x[1]);
}

static void check_binary(const char *op, binary_fn f, double b_margin) {
    static const struct {
        const char *tag;
        ct_shape a, b;
    } shapes[] = {
        {"[3,4] & [3,4]", S2(3, 4), S2(3, 4)},
        {"[3,4] & [4]", S2(3, 4), S1(4)},
        {"[4] & [3,4]", S1(4), S2(3, 4)},
        {"[2,1,4] & [3,1]", S3(2, 1, 4), S2(3, 1)},
        {"[3,1] & [2,1,4]", S2(3, 1), S3(2, 1, 4)},
        {"[3,4] & scalar", S2(3, 4), SCALAR},
        {"scalar & [3,4]", SCALAR, S2(3, 4)},
        {"[3,1] & [1,4]", S2(3, 1), S2(1, 4)},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s %s", op, shapes[i].tag);
        gc_case c = {.name = name, .op = op, .n_in = 2, .build = b_binary, .ctx = &f};
        c.in[0].shape = shapes[i].a;
        c.in[1].shape = shapes[i].b;
        c.in[1].margin = b_margin; /* a divisor stays away from 0 */
        gc_check(&c);
    }
}

OP_TEST(gradcheck, add, CT_OP_ADD) { check_binary("add", ct_add, 0); }
OP_TEST(gradcheck, sub, CT_OP_SUB) { check_binary("sub", ct_sub, 0); }
OP_TEST(gradcheck, mul, CT_OP_MUL) { check_binary("mul", ct_mul, 0); }
OP_TEST(gradcheck, div, CT_OP_DIV) { check_binary("div", ct_div, 0.5); }

/* ---- unary elementwise -------------------------------------------------- */

typedef struct un_ctx {
    const char *op;
    double arg;
} un_ctx;

static ct_node b_unary(ct_graph *g, const ct_node *x, const void *ctx) {
    const un_ctx *u = ctx;
    const char *op = u->op;
    if (!strcmp(op, "neg")) return ct_neg(g, x[0]);
    if (!strcmp(op, "scale")) return ct_scale(g, x[0], u->arg);
    if (!strcmp(op, "exp")) return ct_exp(g, x[0]);
    if (!strcmp(op, "log")) return ct_log(g, x[0]);
    if (!strcmp(op, "sqrt")) return ct_sqrt(g, x[0]);
    if (!strcmp(op, "pow")) return ct_pow(g, x[0], u->arg);
    if (!strcmp(op, "abs")) return ct_abs(g, x[0]);
    if (!strcmp(op, "relu")) return ct_relu(g, x[0]);
    if (!strcmp(op, "leaky_relu")) return ct_leaky_relu(g, x[0], u->arg);
    if (!strcmp(op, "gelu")) return ct_gelu(g, x[0], (ct_gelu_approx)(int)u->arg);
    if (!strcmp(op, "tanh")) return ct_tanh(g, x[0]);
    if (!strcmp(op, "sigmoid")) return ct_sigmoid(g, x[0]);
    if (!strcmp(op, "silu")) return ct_silu(g, x[0]);
    cr_assert_fail("unknown unary op %s", op);
    return CT_NO_NODE;
}

/* One unary case on a [3,4,5] input with values in [lo, hi], |x| >= margin. */
static void check_unary(const char *op, double arg, double lo, double hi, double margin) {
    un_ctx u = {op, arg};
    char name[96];
    snprintf(name, sizeof name, "%s(arg %g) on [%g, %g]", op, arg, lo, hi);
    gc_case c = {.name = name, .op = op, .n_in = 1, .build = b_unary, .ctx = &u};
    c.in[0] = (gc_in){.shape = S3(3, 4, 5), .lo = lo, .hi = hi, .margin = margin};
    gc_check(&c);
}

OP_TEST(gradcheck, neg, CT_OP_NEG) { check_unary("neg", 0, -2, 2, 0.01); }
OP_TEST(gradcheck, scale, CT_OP_SCALE) {
    check_unary("scale", -2.5, -2, 2, 0.01);
    check_unary("scale", 0.3, -2, 2, 0.01);
}
OP_TEST(gradcheck, exp, CT_OP_EXP) { check_unary("exp", 0, -2, 2, 0.01); }
OP_TEST(gradcheck, log, CT_OP_LOG) { check_unary("log", 0, 0.2, 3, 0.2); }
OP_TEST(gradcheck, sqrt, CT_OP_SQRT) { check_unary("sqrt", 0, 0.2, 3, 0.2); }
OP_TEST(gradcheck, pow, CT_OP_POW) {
    check_unary("pow", 2.0, -2, 2, 0.05);
    check_unary("pow", 3.0, -2, 2, 0.05);
    check_unary("pow", 0.5, 0.2, 3, 0.2);
    check_unary("pow", -1.0, -2, 2, 0.3);
    check_unary("pow", -1.0, 0.3, 2, 0.3);
}
/* Piecewise ops: inputs at least 0.1 away from the kink (h is 1e-6). */
OP_TEST(gradcheck, abs, CT_OP_ABS) { check_unary("abs", 0, -2, 2, 0.1); }
OP_TEST(gradcheck, relu, CT_OP_RELU) { check_unary("relu", 0, -2, 2, 0.1); }
OP_TEST(gradcheck, leaky_relu, CT_OP_LEAKY_RELU) {
    check_unary("leaky_relu", 0.01, -2, 2, 0.1);
    check_unary("leaky_relu", 0.2, -2, 2, 0.1);
}
OP_TEST(gradcheck, gelu, CT_OP_GELU) {
    check_unary("gelu", CT_GELU_EXACT, -3, 3, 0.01);
    check_unary("gelu", CT_GELU_TANH, -3, 3, 0.01);
}
OP_TEST(gradcheck, tanh, CT_OP_TANH) { check_unary("tanh", 0, -2.5, 2.5, 0.01); }
OP_TEST(gradcheck, sigmoid, CT_OP_SIGMOID) { check_unary("sigmoid", 0, -4, 4, 0.01); }
OP_TEST(gradcheck, silu, CT_OP_SILU) { check_unary("silu", 0, -4, 4, 0.01); }

typedef struct softplus_ctx {
    double beta, threshold;
} softplus_ctx;

static ct_node b_softplus(ct_graph *g, const ct_node *x, const void *ctx) {
    const softplus_ctx *s = ctx;
    return ct_softplus(g, x[0], s->beta, s->threshold);
}

/* PyTorch's defaults, beta != 1, and each side of a low threshold (not
 * across it: softplus jumps there, by log1p(exp(-threshold)) / beta). */
OP_TEST(gradcheck, softplus, CT_OP_SOFTPLUS) {
    static const struct {
        softplus_ctx p;
        double lo, hi;
    } cases[] = {{{1, 20}, -4, 4}, {{2.5, 20}, -3, 3}, {{2, 3}, -3, 1.4}, {{2, 3}, 1.6, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "softplus(beta %g, threshold %g) on [%g, %g]", cases[i].p.beta,
                 cases[i].p.threshold, cases[i].lo, cases[i].hi);
        gc_case c = {.name = name, .op = "softplus", .n_in = 1, .build = b_softplus, .ctx = &cases[i].p};
        c.in[0] = (gc_in){.shape = S3(3, 4, 5), .lo = cases[i].lo, .hi = cases[i].hi};
        gc_check(&c);
    }
}

/* ---- softmax ------------------------------------------------------------ */

typedef struct ax_ctx {
    int axis;
    bool keepdim;
    bool log;
} ax_ctx;

static ct_node b_softmax(ct_graph *g, const ct_node *x, const void *ctx) {
    const ax_ctx *a = ctx;
    return a->log ? ct_log_softmax(g, x[0], a->axis) : ct_softmax(g, x[0], a->axis);
}

static void check_softmax(bool log) {
    static const int axes[] = {0, 1, 2, -1, -3};
    for (size_t i = 0; i < sizeof axes / sizeof axes[0]; i++) {
        ax_ctx a = {.axis = axes[i], .log = log};
        char name[64];
        snprintf(name, sizeof name, "%s axis %d of [3,4,5]", log ? "log_softmax" : "softmax", axes[i]);
        gc_case c = {.name = name, .op = log ? "log_softmax" : "softmax", .n_in = 1, .build = b_softmax, .ctx = &a};
        c.in[0] = (gc_in){.shape = S3(3, 4, 5), .lo = -3, .hi = 3};
        gc_check(&c);
    }
}

OP_TEST(gradcheck, softmax, CT_OP_SOFTMAX) { check_softmax(false); }
OP_TEST(gradcheck, log_softmax, CT_OP_LOG_SOFTMAX) { check_softmax(true); }

/* ---- reductions --------------------------------------------------------- */

typedef ct_node (*reduce_fn)(ct_graph *, ct_node, int, bool);

typedef struct red_ctx {
    reduce_fn f;
    int axis;
    bool keepdim;
} red_ctx;

static ct_node b_reduce(ct_graph *g, const ct_node *x, const void *ctx) {
    const red_ctx *r = ctx;
    return r->f(g, x[0], r->axis, r->keepdim);
}

static void check_reduce(const char *op, reduce_fn f, bool distinct) {
    static const int axes[] = {0, 1, 2, -1, CT_AXIS_ALL};
    for (size_t i = 0; i < sizeof axes / sizeof axes[0]; i++) {
        for (int kd = 0; kd < 2; kd++) {
            red_ctx r = {f, axes[i], kd};
            char name[96];
            snprintf(name, sizeof name, "%s axis %s%d keepdim %d of [3,4,5]", op,
                     axes[i] == CT_AXIS_ALL ? "ALL=" : "", axes[i], kd);
            gc_case c = {.name = name, .op = op, .n_in = 1, .build = b_reduce, .ctx = &r};
            c.in[0] = (gc_in){.shape = S3(3, 4, 5), .distinct = distinct};
            gc_check(&c);
        }
    }
}

OP_TEST(gradcheck, sum, CT_OP_SUM) { check_reduce("sum", ct_sum, false); }
OP_TEST(gradcheck, mean, CT_OP_MEAN) { check_reduce("mean", ct_mean, false); }
/* Distinct values: the maximum is unique, with gaps much larger than h. */
OP_TEST(gradcheck, max, CT_OP_MAX) { check_reduce("max", ct_max, true); }

/* Ties: the gradient goes to the first maximal element only (ops.h). Not a
 * finite-difference check (max is not differentiable at a tie); the
 * analytic gradient is compared with the documented rule. */
Test(gradcheck, max_ties_go_to_the_first) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, S2(3, 4));
    cr_assert_eq(ct_set_requires_grad(g, x, true), CT_OK);
    static const double r[3] = {0.5, -2.0, 3.0};
    ct_node m = ct_max(g, x, 1, false);
    ct_node all = ct_max(g, x, CT_AXIS_ALL, false);
    ct_node loss = ct_add(g, ct_sum(g, ct_mul(g, m, ct_constant(g, CT_F64, S1(3), r)), CT_AXIS_ALL, false),
                          ct_scale(g, all, 10.0));
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gx = ct_grad(g, x);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &gx, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    /* row 0: tie at 1 and 3; row 1: all equal; row 2: tie at 0 and 3, and
     * the global maximum 7 appears at [0, 1], [0, 3] and [2, 0], [2, 3]. */
    const double xv[12] = {1, 7, -1, 7, -4, -4, -4, -4, 7, 2, 0, 7};
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    double gv[12];
    cr_assert_eq(ct_program_read(p, gx, gv, sizeof gv), CT_OK);
    double want[12] = {0};
    want[1] = 0.5 + 10.0; /* row max and global max: the first 7 */
    want[4] = -2.0;
    want[8] = 3.0;
    for (int i = 0; i < 12; i++) cr_assert_eq(gv[i], want[i], "grad x[%d][%d] = %g, want %g", i / 4, i % 4, gv[i], want[i]);
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- data movement ------------------------------------------------------ */

static ct_node b_reshape(ct_graph *g, const ct_node *x, const void *ctx) {
    const ct_shape *s = ctx;
    /* tanh first, so the reshape's gradient is not the only thing checked */
    return ct_reshape(g, ct_tanh(g, x[0]), *s);
}

OP_TEST(gradcheck, reshape, CT_OP_RESHAPE) {
    static const ct_shape targets[] = {{2, {-1, 10}}, {3, {5, -1, 3}}, {1, {60}}, {4, {2, 3, 2, 5}}};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char name[64], s[64];
        snprintf(name, sizeof name, "reshape [3,4,5] -> %s", ct_shape_str(targets[i], s, sizeof s));
        gc_case c = {.name = name, .op = "reshape", .n_in = 1, .build = b_reshape, .ctx = &targets[i]};
        c.in[0].shape = S3(3, 4, 5);
        gc_check(&c);
    }
}

static ct_node b_permute(ct_graph *g, const ct_node *x, const void *ctx) {
    return ct_permute(g, x[0], (const int *)ctx);
}

OP_TEST(gradcheck, permute, CT_OP_PERMUTE) {
    static const int perms[][4] = {{2, 0, 1}, {1, 2, 0}, {0, 2, 1}, {2, 1, 0}};
    for (size_t i = 0; i < sizeof perms / sizeof perms[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "permute [3,4,5] by {%d,%d,%d}", perms[i][0], perms[i][1], perms[i][2]);
        gc_case c = {.name = name, .op = "permute", .n_in = 1, .build = b_permute, .ctx = perms[i]};
        c.in[0].shape = S3(3, 4, 5);
        gc_check(&c);
    }
    static const int perm4[] = {3, 1, 0, 2};
    gc_case c = {.name = "permute [2,3,4,5] by {3,1,0,2}", .op = "permute", .n_in = 1, .build = b_permute,
                 .ctx = perm4};
    c.in[0].shape = S4(2, 3, 4, 5);
    gc_check(&c);
}

static ct_node b_transpose(ct_graph *g, const ct_node *x, const void *ctx) {
    const int *ax = ctx;
    return ct_transpose(g, x[0], ax[0], ax[1]);
}

OP_TEST(gradcheck, transpose, CT_OP_PERMUTE) {
    static const int axes[][2] = {{0, 2}, {-1, -2}, {1, 0}};
    for (size_t i = 0; i < sizeof axes / sizeof axes[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "transpose [3,4,5] axes %d, %d", axes[i][0], axes[i][1]);
        gc_case c = {.name = name, .op = "permute", .n_in = 1, .build = b_transpose, .ctx = axes[i]};
        c.in[0].shape = S3(3, 4, 5);
        gc_check(&c);
    }
}

static ct_node b_concat(ct_graph *g, const ct_node *x, const void *ctx) {
    return ct_concat(g, x, 3, *(const int *)ctx);
}

OP_TEST(gradcheck, concat, CT_OP_CONCAT) {
    int axis = 1;
    gc_case c = {.name = "concat 3 inputs on axis 1", .op = "concat", .n_in = 3, .build = b_concat, .ctx = &axis};
    c.in[0].shape = S3(2, 3, 4);
    c.in[1].shape = S3(2, 1, 4);
    c.in[2].shape = S3(2, 2, 4);
    gc_check(&c);
    int neg = -1;
    gc_case d = {.name = "concat 3 inputs on axis -1", .op = "concat", .n_in = 3, .build = b_concat, .ctx = &neg};
    d.in[0].shape = S2(3, 2);
    d.in[1].shape = S2(3, 4);
    d.in[2].shape = S2(3, 1);
    gc_check(&d);
}

typedef struct slice_ctx {
    int axis;
    int64_t start, end;
} slice_ctx;

static ct_node b_slice(ct_graph *g, const ct_node *x, const void *ctx) {
    const slice_ctx *s = ctx;
    return ct_slice(g, x[0], s->axis, s->start, s->end);
}

OP_TEST(gradcheck, slice, CT_OP_SLICE) {
    static const slice_ctx cases[] = {{1, -4, -1}, {-1, 1, 3}, {0, -2, 3}, {2, 0, -3}, {1, 0, 6}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "slice [3,6,4] axis %d [%lld, %lld)", cases[i].axis,
                 (long long)cases[i].start, (long long)cases[i].end);
        gc_case c = {.name = name, .op = "slice", .n_in = 1, .build = b_slice, .ctx = &cases[i]};
        c.in[0].shape = S3(3, 6, 4);
        gc_check(&c);
    }
}

/* Slices of one operand, whose gradients the backward places together
 * (core/grad_slices.c): pieces made out of order that tile axis 1 of x
 * (one CONCAT), pieces that overlap and leave a gap (SLICE_GRADs, summed),
 * and tiling pieces beside a direct use of x. */
static ct_node b_pieces(ct_graph *g, const ct_node *x, const void *ctx) {
    int kind = *(const int *)ctx;
    ct_node v = x[0], a, b, c;
    if (kind == 1) { /* overlapping, with a gap: [0, 3), [2, 4) of 6 */
        a = ct_slice(g, v, 1, 0, 3), b = ct_slice(g, v, 1, 2, 4);
        return ct_add(g, ct_sum(g, ct_tanh(g, a), 1, false), ct_sum(g, ct_mul(g, b, b), 1, false));
    }
    c = ct_slice(g, v, 1, 4, 6), a = ct_slice(g, v, 1, 0, 1), b = ct_slice(g, v, 1, 1, 4);
    ct_node y = ct_add(g, ct_add(g, ct_sum(g, ct_exp(g, c), 1, false), ct_sum(g, ct_tanh(g, b), 1, false)),
                       ct_sum(g, ct_mul(g, a, a), 1, false));
    return kind == 2 ? ct_add(g, y, ct_sum(g, ct_sigmoid(g, v), 1, false)) : y;
}

OP_TEST(gradcheck, slices_of_one_operand, CT_OP_SLICE) {
    static const int kinds[] = {0, 1, 2};
    static const char *const names[] = {"slices tiling axis 1", "overlapping slices with a gap",
                                        "tiling slices beside x itself"};
    for (int i = 0; i < 3; i++) {
        gc_case c = {.name = names[i], .op = "slice", .n_in = 1, .build = b_pieces, .ctx = &kinds[i]};
        c.in[0].shape = S3(2, 6, 3);
        gc_check(&c);
    }
}

/* Which node the backward gives those slices' gradients: a CONCAT where the
 * pieces tile the operand, SLICE_GRADs where they do not. */
Test(gradcheck, tiling_slices_take_one_concat) {
    for (int kind = 0; kind < 3; kind++) {
        ct_graph *g = ct_graph_new();
        ct_node x = ct_input(g, "x", CT_F64, S3(2, 6, 3));
        cr_assert_eq(ct_set_requires_grad(g, x, true), CT_OK);
        ct_node y = b_pieces(g, &x, &kind);
        cr_assert_eq(ct_graph_backward(g, ct_sum(g, y, CT_AXIS_ALL, false)), CT_OK, "%s", ct_last_error());
        bool tiles = kind != 1;
        cr_assert_eq(gc_graph_has_op(g, "concat"), tiles, "kind %d", kind);
        cr_assert_eq(gc_graph_has_op(g, "slice_grad"), !tiles, "kind %d", kind);
        ct_graph_free(g);
    }
}

/* ---- neural-network ops ------------------------------------------------- */

static ct_node b_embedding(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    /* [2, 4] indices into a [6, 3] table, with repeats (rows 1 and 4 twice,
     * row 0 three times) and rows never picked (2). */
    static const int32_t idx[] = {1, 4, 0, 1, 0, 5, 4, 0};
    ct_node ix = ct_constant(g, CT_I32, S2(2, 4), idx);
    return ct_embedding(g, x[0], ix);
}

OP_TEST(gradcheck, embedding, CT_OP_EMBEDDING) {
    gc_case c = {.name = "embedding [6,3] table, [2,4] indices with repeats", .op = "embedding", .n_in = 1,
                 .build = b_embedding};
    c.in[0].shape = S2(6, 3);
    gc_check(&c);
}

static ct_node b_dropout(ct_graph *g, const ct_node *x, const void *ctx) {
    return ct_dropout(g, x[0], *(const double *)ctx);
}

OP_TEST(gradcheck, dropout, CT_OP_DROPOUT) {
    /* The harness sets the same program step before every run, so the mask
     * is fixed and the function is linear in x. */
    double p = 0.3;
    gc_case c = {.name = "dropout p=0.3", .op = "dropout", .n_in = 1, .build = b_dropout, .ctx = &p};
    c.in[0].shape = S2(6, 7);
    gc_check(&c);
}

static ct_node b_cross_entropy(ct_graph *g, const ct_node *x, const void *ctx) {
    static const int32_t labels[] = {2, 0, 4, 4, 1};
    return ct_cross_entropy(g, x[0], ct_constant(g, CT_I32, S1(5), labels), *(const double *)ctx);
}

OP_TEST(gradcheck, cross_entropy, CT_OP_CROSS_ENTROPY) {
    static const double eps[] = {0.0, 0.1, 0.35};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "cross_entropy [5,6] smoothing %g", eps[i]);
        gc_case c = {.name = name, .op = "cross_entropy", .n_in = 1, .build = b_cross_entropy, .ctx = &eps[i]};
        c.in[0] = (gc_in){.shape = S2(5, 6), .lo = -3, .hi = 3};
        gc_check(&c);
    }
}

static ct_node b_mse(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_mse(g, x[0], x[1]);
}

OP_TEST(gradcheck, mse, CT_OP_MSE) {
    gc_case c = {.name = "mse [4,5] both inputs", .op = "mse", .n_in = 2, .build = b_mse};
    c.in[0].shape = S2(4, 5);
    c.in[1].shape = S2(4, 5);
    gc_check(&c);
    gc_case d = {.name = "mse [4,5] pred only", .op = "mse", .n_in = 2, .build = b_mse};
    d.in[0].shape = S2(4, 5);
    d.in[1] = (gc_in){.shape = S2(4, 5), .no_grad = true};
    gc_check(&d);
}

static ct_node b_bce(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_bce_with_logits(g, x[0], x[1]);
}

OP_TEST(gradcheck, bce_with_logits, CT_OP_BCE_WITH_LOGITS) {
    gc_case c = {.name = "bce_with_logits [4,5] both inputs", .op = "bce_with_logits", .n_in = 2, .build = b_bce};
    c.in[0] = (gc_in){.shape = S2(4, 5), .lo = -4, .hi = 4};
    c.in[1] = (gc_in){.shape = S2(4, 5), .lo = 0.02, .hi = 0.98};
    gc_check(&c);
    gc_case d = {.name = "bce_with_logits [3,7] logits only", .op = "bce_with_logits", .n_in = 2, .build = b_bce};
    d.in[0] = (gc_in){.shape = S2(3, 7), .lo = -6, .hi = 6};
    d.in[1] = (gc_in){.shape = S2(3, 7), .lo = 0.02, .hi = 0.98, .no_grad = true};
    gc_check(&d);
}

static ct_node b_cast(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_cast(g, ct_cast(g, x[0], CT_F32), CT_F64);
}

/* F64 -> F32 -> F64: each evaluation rounds x to F32 (relative error up to
 * 2^-24), so with h = 1e-6 the finite difference would be dominated by
 * rounding (~6e-8 / 2e-6, a few percent). The round trip is linear, so a
 * large h = 1e-2 costs no truncation error and leaves a rounding error of
 * ~6e-8 / 2e-2 ~ 3e-6 of the gradient; the analytic gradient itself is R
 * rounded to F32 (relative 6e-8). Hence the looser tolerance of 1e-4. */
OP_TEST(gradcheck, cast, CT_OP_CAST) {
    gc_case c = {.name = "cast f64 -> f32 -> f64", .op = "cast", .n_in = 1, .build = b_cast,
                 .h = 1e-2, .rtol = 1e-4, .atol = 1e-4};
    c.in[0] = (gc_in){.shape = S2(4, 6), .lo = -3, .hi = 3};
    gc_check(&c);
}

/* ---- normalisation ------------------------------------------------------ */

typedef struct norm_ctx {
    bool weight, bias; /* x[1] is the weight, x[1 + weight] the bias */
} norm_ctx;

/* Batch norm on x [N, C, ...] with weight and bias as checked inputs; the
 * running statistics are buffers (random values, so a mix-up between batch
 * and running statistics shows). The harness runs in training mode, where
 * the output uses the batch statistics and the buffers are only written. */
static ct_node b_batch_norm(ct_graph *g, const ct_node *x, const void *ctx) {
    const norm_ctx *n = ctx;
    int64_t c = ct_node_shape(g, x[0]).dim[1];
    ct_node rm = ct_buffer(g, "rm", CT_F64, S1(c), ct_init_uniform(-0.5, 0.5));
    ct_node rv = ct_buffer(g, "rv", CT_F64, S1(c), ct_init_uniform(0.5, 2.0));
    ct_node w = n->weight ? x[1] : CT_NO_NODE, b = n->bias ? x[1 + n->weight] : CT_NO_NODE;
    return ct_batch_norm_op(g, x[0], w, b, rm, rv, 0.1, 1e-5);
}

static void check_batch_norm(const char *name, ct_shape xs, norm_ctx n) {
    gc_case c = {.name = name, .op = "batch_norm", .n_in = 1 + n.weight + n.bias, .build = b_batch_norm, .ctx = &n};
    c.in[0] = (gc_in){.shape = xs, .lo = -2, .hi = 2};
    for (int i = 1; i < c.n_in; i++) c.in[i].shape = S1(xs.dim[1]);
    gc_check(&c);
}

OP_TEST(gradcheck, batch_norm_training, CT_OP_BATCH_NORM) {
    norm_ctx affine = {true, true};
    check_batch_norm("batch_norm training [6,4] (x, weight, bias)", S2(6, 4), affine);
    check_batch_norm("batch_norm training [3,4,5] (x, weight, bias)", S3(3, 4, 5), affine);
    check_batch_norm("batch_norm training [2,3,2,2] (x, weight, bias)", S4(2, 3, 2, 2), affine);
    check_batch_norm("batch_norm training [5,3] no affine", S2(5, 3), (norm_ctx){false, false});
    check_batch_norm("batch_norm training [4,3,2] weight only", S3(4, 3, 2), (norm_ctx){true, false});
    check_batch_norm("batch_norm training [4,3,2] bias only", S3(4, 3, 2), (norm_ctx){false, true});
}

/* The layer: its parameters "bn.weight" and "bn.bias" are checked as
 * parameters (the harness gives them random values). */
static ct_node b_batch_norm_layer(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_batch_norm(g, "bn", x[0], 0.0, 0.0);
}

OP_TEST(gradcheck, batch_norm_layer, CT_OP_BATCH_NORM) {
    gc_case c = {.name = "ct_batch_norm layer [4,3,5]", .op = "batch_norm", .n_in = 1, .build = b_batch_norm_layer};
    c.in[0] = (gc_in){.shape = S3(4, 3, 5), .lo = -2, .hi = 2};
    gc_check(&c);
}

/* Evaluation mode normalises with the running statistics, constants of the
 * step. They start far from the batch's statistics (their init rules), so
 * using the wrong ones shows; the harness checks they do not move. */
static ct_node b_batch_norm_eval(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    int64_t c = ct_node_shape(g, x[1]).dim[0];
    ct_node rm = ct_buffer(g, "rm", CT_F64, S1(c), ct_init_uniform(-0.5, 0.5));
    ct_node rv = ct_buffer(g, "rv", CT_F64, S1(c), ct_init_uniform(0.3, 2.0));
    return ct_batch_norm_op(g, x[0], x[1], x[2], rm, rv, 0.1, 1e-5);
}

static void check_batch_norm_eval(const char *name, ct_shape xs) {
    gc_case c = {.name = name, .op = "batch_norm", .n_in = 3, .build = b_batch_norm_eval, .eval = true};
    c.in[0] = (gc_in){.shape = xs, .lo = -2, .hi = 2};
    c.in[1] = (gc_in){.shape = S1(xs.dim[1]), .lo = -2, .hi = 2};
    c.in[2] = (gc_in){.shape = S1(xs.dim[1]), .lo = -2, .hi = 2};
    gc_check(&c);
}

OP_TEST(gradcheck, batch_norm_eval, CT_OP_BATCH_NORM) {
    check_batch_norm_eval("batch_norm eval [6,4]", S2(6, 4));
    check_batch_norm_eval("batch_norm eval [3,4,5]", S3(3, 4, 5));
}

static ct_node b_layer_norm(ct_graph *g, const ct_node *x, const void *ctx) {
    const norm_ctx *n = ctx;
    ct_node w = n->weight ? x[1] : CT_NO_NODE, b = n->bias ? x[1 + n->weight] : CT_NO_NODE;
    return ct_layer_norm_op(g, x[0], w, b, 1e-5);
}

static void check_layer_norm(const char *name, ct_shape xs, norm_ctx n) {
    gc_case c = {.name = name, .op = "layer_norm", .n_in = 1 + n.weight + n.bias, .build = b_layer_norm, .ctx = &n};
    c.in[0] = (gc_in){.shape = xs, .lo = -2, .hi = 2};
    for (int i = 1; i < c.n_in; i++) c.in[i].shape = S1(xs.dim[xs.ndim - 1]);
    gc_check(&c);
}

OP_TEST(gradcheck, layer_norm, CT_OP_LAYER_NORM) {
    check_layer_norm("layer_norm [3,4,5] affine (x, weight, bias)", S3(3, 4, 5), (norm_ctx){true, true});
    check_layer_norm("layer_norm [6,4] affine (x, weight, bias)", S2(6, 4), (norm_ctx){true, true});
    check_layer_norm("layer_norm [3,4,5] no affine", S3(3, 4, 5), (norm_ctx){false, false});
    check_layer_norm("layer_norm [7] no affine", S1(7), (norm_ctx){false, false});
    check_layer_norm("layer_norm [4,6] weight only", S2(4, 6), (norm_ctx){true, false});
}

static ct_node b_layer_norm_layer(ct_graph *g, const ct_node *x, const void *ctx) {
    return ct_layer_norm(g, "ln", x[0], 0.0, *(const bool *)ctx);
}

OP_TEST(gradcheck, layer_norm_layer, CT_OP_LAYER_NORM) {
    bool affine = true;
    gc_case c = {.name = "ct_layer_norm layer [2,3,6] affine", .op = "layer_norm", .n_in = 1,
                 .build = b_layer_norm_layer, .ctx = &affine};
    c.in[0] = (gc_in){.shape = S3(2, 3, 6), .lo = -2, .hi = 2};
    gc_check(&c);
}

/* Layers end to end: linear -> batch norm -> tanh -> linear -> layer norm
 * -> cross-entropy, checked w.r.t. every parameter and the input. */
static ct_node b_norm_mlp(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    static const int32_t labels[] = {0, 2, 1, 2, 3, 0};
    ct_node h = ct_linear(g, "fc1", x[0], 5, true, NULL);
    h = ct_activation(g, ct_batch_norm(g, "bn1", h, 0.0, 0.0), "tanh");
    h = ct_layer_norm(g, "ln", ct_linear(g, "fc2", h, 4, true, NULL), 0.0, true);
    return ct_cross_entropy(g, h, ct_constant(g, CT_I32, S1(6), labels), 0.0);
}

Test(gradcheck, layers_linear_batch_norm_layer_norm) {
    gc_case c = {.name = "linear, batch_norm, tanh, linear, layer_norm, cross_entropy", .op = "batch_norm",
                 .n_in = 1, .build = b_norm_mlp};
    c.in[0] = (gc_in){.shape = S2(6, 3), .lo = -2, .hi = 2};
    gc_check(&c);
}

/* ---- composites --------------------------------------------------------- */

/* logits = tanh(x W1^T + b1) W2^T + b2; out = cross_entropy(logits, y). */
static ct_node b_mlp(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_init z = ct_init_zeros(); /* the harness writes random values */
    ct_node w1 = ct_param(g, "W1", CT_F64, S2(8, 5), z);
    ct_node b1 = ct_param(g, "b1", CT_F64, S1(8), z);
    ct_node w2 = ct_param(g, "W2", CT_F64, S2(3, 8), z);
    ct_node b2 = ct_param(g, "b2", CT_F64, S1(3), z);
    static const int32_t labels[] = {0, 2, 1, 2};
    ct_node y = ct_constant(g, CT_I32, S1(4), labels);
    ct_node h = ct_tanh(g, ct_add(g, ct_matmul(g, x[0], w1, false, true), b1));
    ct_node logits = ct_add(g, ct_matmul(g, h, w2, false, true), b2);
    return ct_cross_entropy(g, logits, y, 0.0);
}

Test(gradcheck, mlp_two_layers) {
    gc_case c = {.name = "2-layer MLP (params W1, b1, W2, b2 and input x)", .op = "cross_entropy", .n_in = 1,
                 .build = b_mlp};
    c.in[0] = (gc_in){.shape = S2(4, 5), .lo = -2, .hi = 2};
    gc_check(&c);
    /* Parameters only: x fixed. */
    gc_case d = c;
    d.name = "2-layer MLP (params only)";
    d.in[0].no_grad = true;
    gc_check(&d);
}

/* x feeds many consumers (and one of them feeds several more), so the
 * gradient of x and of a sums contributions that autodiff accumulates. */
static ct_node b_fanout(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_node a = ct_tanh(g, x[0]);
    ct_node t1 = ct_mul(g, a, x[0]);
    ct_node t2 = ct_matmul(g, a, x[0], false, true);
    ct_node t3 = ct_add(g, ct_exp(g, x[0]), ct_scale(g, x[0], 0.5));
    ct_node t4 = ct_mul(g, x[0], x[0]);
    ct_node s = ct_add(g, ct_add(g, t1, t2), ct_add(g, t3, t4));
    return ct_add(g, s, ct_sum(g, a, 0, true));
}

Test(gradcheck, fan_out_accumulation) {
    gc_case c = {.name = "one node, several consumers", .op = "tanh", .n_in = 1, .build = b_fanout};
    c.in[0].shape = S2(4, 4);
    gc_check(&c);
}

/* A parameter used twice (shared weights) and an input used by a loss and
 * an activation: accumulation into the flat gradient buffer. */
static ct_node b_shared_param(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_node w = ct_param(g, "W", CT_F64, S2(4, 4), ct_init_zeros());
    ct_node h = ct_tanh(g, ct_matmul(g, x[0], w, false, false));
    ct_node o = ct_matmul(g, h, w, false, true);
    return ct_add(g, o, ct_mse(g, o, x[0]));
}

Test(gradcheck, shared_parameter) {
    gc_case c = {.name = "a parameter used by two matmuls", .op = "matmul", .n_in = 1, .build = b_shared_param};
    c.in[0].shape = S2(3, 4);
    gc_check(&c);
}

/* Ops chained into a small attention-like block: softmax over a product,
 * a mean over rows, slices concatenated back, and a dropout. */
static ct_node b_block(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_node q = x[0], k = x[1];
    ct_node att = ct_softmax(g, ct_scale(g, ct_matmul(g, q, k, false, true), 0.5), -1);
    ct_node v = ct_matmul(g, att, k, false, false);
    ct_node parts[3] = {ct_slice(g, v, -1, 0, 2), ct_gelu(g, ct_slice(g, v, -1, 2, 4), CT_GELU_TANH),
                        ct_mean(g, v, -1, true)};
    ct_node cat = ct_concat(g, parts, 3, -1);
    return ct_dropout(g, ct_log_softmax(g, cat, 1), 0.25);
}

Test(gradcheck, attention_like_block) {
    gc_case c = {.name = "attention-like block", .op = "softmax", .n_in = 2, .build = b_block};
    c.in[0].shape = S3(2, 3, 4);
    c.in[1].shape = S3(2, 5, 4);
    gc_check(&c);
}

/* ---- the harness itself ------------------------------------------------- */

/* A checker that passes everything proves nothing. Negative control: the
 * F32 round trip on values in [10, 30] with h = 1e-6 and the default
 * tolerance has finite differences dominated by F32 rounding (an ulp there
 * is ~1e-6, as large as h), so the check must report a mismatch. */
Test(gradcheck, harness_catches_a_wrong_gradient) {
    gc_case c = {.name = "cast round trip with a too small h", .op = "cast", .n_in = 1, .build = b_cast};
    c.in[0] = (gc_in){.shape = S2(4, 6), .lo = 10, .hi = 30};
    gc_worst w = gc_run(&c);
    cr_assert_gt(w.ratio, 1.0, "the harness missed a finite-difference error (worst ratio %g)", w.ratio);
    cr_assert_eq(w.checked, 24);
    cr_assert_str_eq(w.what, "input x0");
    cr_assert(w.index >= 0 && w.index < 24);
}

/* The worst element is found and reported with its multi-index. */
Test(gradcheck, harness_index_strings) {
    char buf[64];
    cr_assert_str_eq(gc_index_str(S3(3, 4, 5), 0, buf, sizeof buf), "[0, 0, 0]");
    cr_assert_str_eq(gc_index_str(S3(3, 4, 5), 59, buf, sizeof buf), "[2, 3, 4]");
    cr_assert_str_eq(gc_index_str(S3(3, 4, 5), 27, buf, sizeof buf), "[1, 1, 2]");
    cr_assert_str_eq(gc_index_str(SCALAR, 0, buf, sizeof buf), "[]");
    gc_worst w = {0};
    gc_compare(&w, "a", S1(3), 0, 1.0, 1.0, 1e-5, 1e-6);
    gc_compare(&w, "b", S1(3), 2, 2.0, 2.1, 1e-5, 1e-6);
    gc_compare(&w, "c", S1(3), 1, 3.0, 3.0 + 1e-9, 1e-5, 1e-6);
    cr_assert_str_eq(w.what, "b");
    cr_assert_eq(w.index, 2);
    cr_assert_gt(w.ratio, 1000.0);
    cr_assert_eq(w.checked, 3);
}
