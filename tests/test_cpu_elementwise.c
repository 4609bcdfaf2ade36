/* CPU reference kernels: the binary and unary elementwise ops and the
 * unary gradients, each checked against values computed here from math.h
 * formulas or finite differences, never against the kernel's own helpers.
 * Kernels are called directly, outputs poisoned first
 * (cpu_elementwise_fixture.h). The same suite goes on in
 * test_cpu_cast_broadcast.c (cast, copy, broadcast_to, sum_to) and
 * test_cpu_reduce_kernels.c (reductions, softmax).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/backend.h"
#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

#include "cpu_elementwise_fixture.h"

TestSuite(cpu_elementwise, .init = setup);

#define PI 3.14159265358979323846

static const ct_op binops[4] = {CT_OP_ADD, CT_OP_SUB, CT_OP_MUL, CT_OP_DIV};

static double ref_bin(ct_op op, double a, double b) {
    switch (op) {
    case CT_OP_ADD: return a + b;
    case CT_OP_SUB: return a - b;
    case CT_OP_MUL: return a * b;
    default: return a / b;
    }
}

/* The backend must expose exactly these kernels (no other register_* call
 * overwriting one of them): every unary and binary op of the op list, the
 * unary gradient, cast, copy, broadcast_to and sum_to (registered here),
 * and the reductions and softmaxes (test_cpu_reduce_kernels.c). */
Test(cpu_elementwise, backend_table_uses_these_kernels) {
    const ct_backend *b = ct_cpu_backend();
    cr_assert_not_null(b);
    int n = 0, want = 5 + 8; /* the five above; sum, mean, max, max_grad and the four softmax ops */
    for (int op = 0; op < CT_OP_COUNT; op++) {
        ct_op_class c = ct_op_class_of(op);
        if (c == CT_OPC_UNARY || c == CT_OPC_BINARY) {
            cr_assert_not_null(table[op], "no kernel for %s", ct_op_name(op));
            want++;
        }
        if (!table[op]) continue;
        n++;
        cr_assert(b->kernels[op] == table[op], "op %d differs in ct_cpu_backend()", op);
    }
    cr_assert_eq(n, want, "registered %d ops", n);
}

/* ---- binary ------------------------------------------------------------- */

Test(cpu_elementwise, binary_same_shape_f64) {
    double a[6] = {1.5, -2.0, 3.25, 0.5, -7.0, 9.0};
    double b[6] = {0.25, 4.0, -1.5, 2.0, 3.5, -0.75};
    double out[6], want[6];
    ct_shape s = {2, {2, 3}};
    ct_tview in[2] = {view(a, CT_F64, s), view(b, CT_F64, s)};
    for (int o = 0; o < 4; o++) {
        RUN_OK(binops[o], NULL, in, 2, view(out, CT_F64, s));
        for (int i = 0; i < 6; i++) want[i] = ref_bin(binops[o], a[i], b[i]);
        expect_near(out, want, 6, 0, "same shape");
    }
}

Test(cpu_elementwise, binary_row_broadcast_f64_f32) {
    double a[6] = {1.5, -2.0, 3.25, 0.5, -7.0, 9.0};
    double b[3] = {0.25, 4.0, -1.5};
    float af[6], bf[3], outf[6];
    for (int i = 0; i < 6; i++) af[i] = (float)a[i];
    for (int i = 0; i < 3; i++) bf[i] = (float)b[i];
    double out[6], want[6];
    ct_shape s23 = {2, {2, 3}}, s3 = {1, {3}};
    for (int o = 0; o < 4; o++) {
        /* [2,3] op [3] */
        ct_tview in[2] = {view(a, CT_F64, s23), view(b, CT_F64, s3)};
        RUN_OK(binops[o], NULL, in, 2, view(out, CT_F64, s23));
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) want[i * 3 + j] = ref_bin(binops[o], a[i * 3 + j], b[j]);
        expect_near(out, want, 6, 1e-15, "[2,3] op [3]");

        ct_tview inf[2] = {view(af, CT_F32, s23), view(bf, CT_F32, s3)};
        RUN_OK(binops[o], NULL, inf, 2, view(outf, CT_F32, s23));
        expect_near_f32(outf, want, 6, 1e-6, "f32 [2,3] op [3]");

        /* [3] op [2,3]: the first operand is the one that stretches */
        ct_tview rev[2] = {view(b, CT_F64, s3), view(a, CT_F64, s23)};
        RUN_OK(binops[o], NULL, rev, 2, view(out, CT_F64, s23));
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) want[i * 3 + j] = ref_bin(binops[o], b[j], a[i * 3 + j]);
        expect_near(out, want, 6, 1e-15, "[3] op [2,3]");
    }
}

Test(cpu_elementwise, binary_both_broadcast) {
    /* [2,1,4] * [3,1] -> [2,3,4]: each operand stretches along a different axis */
    double a[8], b[3], out[24], want[24];
    for (int i = 0; i < 8; i++) a[i] = 0.5 + i * 0.75;
    for (int i = 0; i < 3; i++) b[i] = -1.25 + i;
    ct_tview in[2] = {view(a, CT_F64, (ct_shape){3, {2, 1, 4}}),
                      view(b, CT_F64, (ct_shape){2, {3, 1}})};
    ct_shape so = {3, {2, 3, 4}};
    for (int o = 0; o < 4; o++) {
        RUN_OK(binops[o], NULL, in, 2, view(out, CT_F64, so));
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int l = 0; l < 4; l++)
                    want[(i * 3 + j) * 4 + l] = ref_bin(binops[o], a[i * 4 + l], b[j]);
        expect_near(out, want, 24, 1e-15, "[2,1,4] op [3,1]");
    }
}

Test(cpu_elementwise, binary_scalar_operands) {
    double m[4] = {2.0, -4.0, 6.5, 1.0};
    double sc = 0.5, sc2 = -3.0, out[4], want[4];
    ct_shape s22 = {2, {2, 2}}, s0 = {0, {0}};

    ct_tview in[2] = {view(m, CT_F64, s22), view(&sc, CT_F64, s0)};
    RUN_OK(CT_OP_DIV, NULL, in, 2, view(out, CT_F64, s22));
    for (int i = 0; i < 4; i++) want[i] = m[i] / sc;
    expect_near(out, want, 4, 0, "[2,2] / scalar");

    ct_tview in2[2] = {view(&sc, CT_F64, s0), view(m, CT_F64, s22)};
    RUN_OK(CT_OP_SUB, NULL, in2, 2, view(out, CT_F64, s22));
    for (int i = 0; i < 4; i++) want[i] = sc - m[i];
    expect_near(out, want, 4, 0, "scalar - [2,2]");

    ct_tview in3[2] = {view(&sc, CT_F64, s0), view(&sc2, CT_F64, s0)};
    RUN_OK(CT_OP_MUL, NULL, in3, 2, view(out, CT_F64, s0));
    cr_assert_eq(out[0], -1.5);
}

Test(cpu_elementwise, binary_f16_bf16_rounding) {
    /* f16 has a 10-bit mantissa: 1 + 2^-11 is halfway and ties to even (1),
     * 1 + 3*2^-11 ties up to 1 + 2^-9, and 2048 + 1 ties down to 2048. */
    float av[3] = {1.0f, 1.0f, 2048.0f}, bv[3] = {0x1p-11f, 0x3p-11f, 1.0f};
    uint16_t a[3], b[3], out[3];
    for (int i = 0; i < 3; i++) {
        a[i] = ct_f32_to_f16(av[i]);
        b[i] = ct_f32_to_f16(bv[i]);
    }
    ct_shape s = {1, {3}};
    ct_tview in[2] = {view(a, CT_F16, s), view(b, CT_F16, s)};
    RUN_OK(CT_OP_ADD, NULL, in, 2, view(out, CT_F16, s));
    cr_assert_eq(out[0], 0x3c00, "got 0x%04x", out[0]);
    cr_assert_eq(out[1], 0x3c02, "got 0x%04x", out[1]);
    cr_assert_eq(out[2], 0x6800, "got 0x%04x", out[2]);

    /* bf16 (7-bit mantissa): (1 + 2^-7)^2 = 1 + 2^-6 + 2^-14 rounds to 1 + 2^-6 */
    uint16_t x = 0x3f81, y = 0x3f81, r;
    ct_shape s0 = {0, {0}};
    ct_tview bin[2] = {view(&x, CT_BF16, s0), view(&y, CT_BF16, s0)};
    RUN_OK(CT_OP_MUL, NULL, bin, 2, view(&r, CT_BF16, s0));
    cr_assert_eq(r, 0x3f82, "got 0x%04x", r);
}

Test(cpu_elementwise, binary_rejects_bad_shapes) {
    double a[6] = {0}, b[2] = {0}, out[6];
    ct_tview in[2] = {view(a, CT_F64, (ct_shape){2, {2, 3}}), view(b, CT_F64, (ct_shape){1, {2}})};
    cr_assert_eq(run(CT_OP_ADD, NULL, in, 2, view(out, CT_F64, (ct_shape){2, {2, 3}})),
                 CT_ERR_SHAPE);
}

/* ---- unary -------------------------------------------------------------- */

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double ref_unary(ct_op op, const ct_attrs *a, double x) {
    switch (op) {
    case CT_OP_NEG: return -x;
    case CT_OP_SCALE: return a->alpha * x;
    case CT_OP_EXP: return exp(x);
    case CT_OP_LOG: return log(x);
    case CT_OP_SQRT: return sqrt(x);
    case CT_OP_POW: return pow(x, a->alpha);
    case CT_OP_ABS: return x < 0 ? -x : x;
    case CT_OP_RELU: return fmax(x, 0.0);
    case CT_OP_LEAKY_RELU: return x >= 0 ? x : a->alpha * x;
    case CT_OP_GELU:
        if (a->approx == CT_GELU_TANH)
            return 0.5 * x * (1 + tanh(sqrt(2 / PI) * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case CT_OP_TANH: return (exp(2 * x) - 1) / (exp(2 * x) + 1);
    case CT_OP_SIGMOID: return ref_sigmoid(x);
    case CT_OP_SILU: return x * ref_sigmoid(x);
    case CT_OP_SOFTPLUS: return a->alpha * x > a->threshold ? x : log1p(exp(a->alpha * x)) / a->alpha;
    default: return NAN;
    }
}

typedef struct unary_case {
    ct_op op;
    ct_attrs attr;
    bool positive_only; /* domain x > 0 */
} unary_case;

static unary_case unary_cases[] = {
    {CT_OP_NEG, {.alpha = 0}, false},
    {CT_OP_SCALE, {.alpha = -2.5}, false},
    {CT_OP_EXP, {.alpha = 0}, false},
    {CT_OP_LOG, {.alpha = 0}, true},
    {CT_OP_SQRT, {.alpha = 0}, true},
    {CT_OP_POW, {.alpha = 2.5}, true},
    {CT_OP_POW, {.alpha = 3.0}, false},
    {CT_OP_POW, {.alpha = -1.5}, true},
    {CT_OP_ABS, {.alpha = 0}, false},
    {CT_OP_RELU, {.alpha = 0}, false},
    {CT_OP_LEAKY_RELU, {.alpha = 0.1}, false},
    {CT_OP_GELU, {.approx = CT_GELU_EXACT}, false},
    {CT_OP_GELU, {.approx = CT_GELU_TANH}, false},
    {CT_OP_TANH, {.alpha = 0}, false},
    {CT_OP_SIGMOID, {.alpha = 0}, false},
    {CT_OP_SILU, {.alpha = 0}, false},
    {CT_OP_SOFTPLUS, {.alpha = 1.5, .threshold = 20}, false},
};
#define N_UNARY (int)(sizeof unary_cases / sizeof unary_cases[0])

static const double xs_any[6] = {-3.5, -1.2, -0.3, 0.4, 1.1, 2.7};
static const double xs_pos[6] = {0.05, 0.3, 0.9, 1.7, 4.2, 11.0};

Test(cpu_elementwise, unary_forward_f64_f32) {
    ct_shape s = {2, {2, 3}};
    for (int c = 0; c < N_UNARY; c++) {
        const unary_case *u = &unary_cases[c];
        const double *x = u->positive_only ? xs_pos : xs_any;
        double out[6], want[6];
        float xf[6], outf[6];
        for (int i = 0; i < 6; i++) {
            want[i] = ref_unary(u->op, &u->attr, x[i]);
            xf[i] = (float)x[i];
        }
        ct_tview in = view((void *)x, CT_F64, s);
        RUN_OK(u->op, &u->attr, &in, 1, view(out, CT_F64, s));
        char what[64];
        snprintf(what, sizeof what, "case %d f64", c);
        expect_near(out, want, 6, 1e-14, what);

        /* f32: the reference is the formula at the (rounded) f32 input */
        for (int i = 0; i < 6; i++) want[i] = ref_unary(u->op, &u->attr, (double)xf[i]);
        ct_tview inf = view(xf, CT_F32, s);
        RUN_OK(u->op, &u->attr, &inf, 1, view(outf, CT_F32, s));
        snprintf(what, sizeof what, "case %d f32", c);
        expect_near_f32(outf, want, 6, 2e-7, what);
    }
}

Test(cpu_elementwise, unary_f16_bf16) {
    float xv[4] = {-1.5f, -0.25f, 0.5f, 2.0f};
    uint16_t x[4], out[4];
    ct_shape s = {1, {4}};
    for (int i = 0; i < 4; i++) x[i] = ct_f32_to_f16(xv[i]);
    ct_tview in = view(x, CT_F16, s);
    RUN_OK(CT_OP_EXP, NULL, &in, 1, view(out, CT_F16, s));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i], ct_f32_to_f16((float)exp(xv[i])), "exp f16[%d]", i);

    for (int i = 0; i < 4; i++) x[i] = ct_f32_to_bf16(xv[i]);
    in = view(x, CT_BF16, s);
    RUN_OK(CT_OP_SIGMOID, NULL, &in, 1, view(out, CT_BF16, s));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i], ct_f32_to_bf16((float)ref_sigmoid(xv[i])), "sigmoid bf16[%d]", i);
}

Test(cpu_elementwise, sigmoid_silu_extremes) {
    double x[4] = {-800.0, -40.0, 40.0, 800.0}, out[4], want[4];
    ct_shape s = {1, {4}};
    ct_tview in = view(x, CT_F64, s);

    RUN_OK(CT_OP_SIGMOID, NULL, &in, 1, view(out, CT_F64, s));
    want[0] = 0.0;
    want[1] = exp(-40.0) / (1.0 + exp(-40.0));
    want[2] = 1.0;
    want[3] = 1.0;
    expect_near(out, want, 4, 1e-15, "sigmoid");
    /* relative accuracy in the far tail, not just "close to 0" */
    cr_assert(fabs(out[1] / want[1] - 1.0) < 1e-14, "sigmoid(-40) = %g", out[1]);

    RUN_OK(CT_OP_SILU, NULL, &in, 1, view(out, CT_F64, s));
    want[0] = 0.0;
    want[1] = -40.0 * exp(-40.0) / (1.0 + exp(-40.0));
    want[2] = 40.0 / (1.0 + exp(-40.0));
    want[3] = 800.0;
    expect_near(out, want, 4, 1e-15, "silu");

    ct_attrs g = {.fwd_op = CT_OP_SIGMOID};
    double dy[4] = {1, 1, 1, 1};
    ct_tview gin[2] = {in, view(dy, CT_F64, s)};
    RUN_OK(CT_OP_UNARY_GRAD, &g, gin, 2, view(out, CT_F64, s));
    for (int i = 0; i < 4; i++) cr_assert(out[i] >= 0 && out[i] < 1e-16, "sigmoid' = %g", out[i]);
}

/* softplus and its gradient against values of log1p(exp(beta x)) / beta
 * and sigmoid(beta x) computed elsewhere (Python's math module): PyTorch's
 * defaults (beta 1, threshold 20) and beta 2 with threshold 3, on both
 * sides of the threshold (beta x = threshold itself is below it). */
Test(cpu_elementwise, softplus_values_both_sides_of_the_threshold) {
    static const struct {
        double beta, threshold;
        double x[6], y[6], dy[6];
        int n;
    } cases[] = {
        {1, 20, {-30, -2, 0, 1, 20, 25},
         {9.357622968839737e-14, 0.1269280110429725, 0.6931471805599453, 1.3132616875182228, 20.000000002061153, 25},
         {9.357622968839299e-14, 0.11920292202211755, 0.5, 0.7310585786300049, 0.9999999979388463, 1}, 6},
        {2, 3, {-1, 1, 1.5, 1.75, 2},
         {0.06346400552148625, 1.0634640055214863, 1.524293675786871, 1.75, 2},
         {0.11920292202211755, 0.8807970779778823, 0.9525741268224334, 1, 1}, 5},
    };
    for (int c = 0; c < 2; c++) {
        int n = cases[c].n;
        ct_shape s = {1, {n}};
        ct_attrs a = {.alpha = cases[c].beta, .threshold = cases[c].threshold, .fwd_op = CT_OP_SOFTPLUS};
        double out[6], ones[6] = {1, 1, 1, 1, 1, 1};
        ct_tview in[2] = {view((void *)cases[c].x, CT_F64, s), view(ones, CT_F64, s)};
        RUN_OK(CT_OP_SOFTPLUS, &a, in, 1, view(out, CT_F64, s));
        expect_near(out, cases[c].y, n, 1e-15, "softplus");
        for (int i = 0; i < n; i++) /* relative, where the value is tiny too */
            cr_assert(fabs(out[i] - cases[c].y[i]) <= 1e-14 * fabs(cases[c].y[i]), "softplus(%g) = %.17g",
                      cases[c].x[i], out[i]);
        RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
        expect_near(out, cases[c].dy, n, 1e-15, "softplus'");

        float xf[6], outf[6];
        for (int i = 0; i < n; i++) xf[i] = (float)cases[c].x[i]; /* every x is a float */
        ct_tview inf = view(xf, CT_F32, s);
        RUN_OK(CT_OP_SOFTPLUS, &a, &inf, 1, view(outf, CT_F32, s));
        expect_near_f32(outf, cases[c].y, n, 2e-7, "softplus f32");
    }
    /* No overflow where log1p(exp(beta x)) would give inf. */
    double big[2] = {800, -800}, out[2];
    ct_attrs a = {.alpha = 1, .threshold = INFINITY};
    ct_tview in = view(big, CT_F64, (ct_shape){1, {2}});
    RUN_OK(CT_OP_SOFTPLUS, &a, &in, 1, view(out, CT_F64, (ct_shape){1, {2}}));
    cr_assert(out[0] == 800 && out[1] == 0, "softplus(+-800) = %g, %g", out[0], out[1]);

    /* The builder refuses a beta the formula cannot divide by. */
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){1, {2}});
    cr_assert_eq(ct_softplus(g, x, 0.0, 20.0), CT_NO_NODE);
    cr_assert_eq(ct_graph_status(g), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_graph_error(g), "softplus: beta 0"), "%s", ct_graph_error(g));
    ct_graph_free(g);
}

Test(cpu_elementwise, relu_propagates_nan) {
    double x[3] = {NAN, -1.0, 2.0}, out[3];
    ct_shape s = {1, {3}};
    ct_tview in = view(x, CT_F64, s);
    RUN_OK(CT_OP_RELU, NULL, &in, 1, view(out, CT_F64, s));
    cr_assert(isnan(out[0]));
    cr_assert_eq(out[1], 0.0);
    cr_assert_eq(out[2], 2.0);
}

Test(cpu_elementwise, unary_grad_matches_finite_differences) {
    const double xs_kinkfree[6] = {-2.1, -0.7, -0.2, 0.3, 0.9, 1.8};
    const double dyv[6] = {0.7, -1.3, 0.25, 2.0, -0.5, 1.1};
    const double h = 1e-5;
    ct_shape s = {2, {3, 2}};
    for (int c = 0; c < N_UNARY; c++) {
        const unary_case *u = &unary_cases[c];
        const double *x = u->positive_only ? xs_pos : xs_kinkfree;
        ct_attrs a = u->attr;
        a.fwd_op = u->op;
        double out[6], want[6];
        for (int i = 0; i < 6; i++) {
            double fp = ref_unary(u->op, &u->attr, x[i] + h);
            double fm = ref_unary(u->op, &u->attr, x[i] - h);
            want[i] = dyv[i] * (fp - fm) / (2 * h);
        }
        ct_tview in[2] = {view((void *)x, CT_F64, s), view((void *)dyv, CT_F64, s)};
        RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
        char what[64];
        snprintf(what, sizeof what, "unary_grad case %d", c);
        expect_near(out, want, 6, 1e-7, what);
    }
}

Test(cpu_elementwise, unary_grad_kink_conventions) {
    double x[3] = {0.0, -0.5, 0.5}, dy[3] = {3.0, 3.0, 3.0}, out[3];
    ct_shape s = {1, {3}};
    ct_tview in[2] = {view(x, CT_F64, s), view(dy, CT_F64, s)};

    ct_attrs a = {.fwd_op = CT_OP_ABS};
    RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
    expect_near(out, (double[]){0.0, -3.0, 3.0}, 3, 0, "abs'");

    a = (ct_attrs){.fwd_op = CT_OP_RELU};
    RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
    expect_near(out, (double[]){0.0, 0.0, 3.0}, 3, 0, "relu'");

    a = (ct_attrs){.fwd_op = CT_OP_LEAKY_RELU, .alpha = 0.2};
    RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
    expect_near(out, (double[]){0.6, 0.6, 3.0}, 3, 1e-15, "leaky_relu'");

    /* x^0 is constant: gradient 0 even at x = 0 */
    a = (ct_attrs){.fwd_op = CT_OP_POW, .alpha = 0.0};
    RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
    expect_near(out, (double[]){0.0, 0.0, 0.0}, 3, 0, "pow0'");

    a = (ct_attrs){.fwd_op = CT_OP_NEG};
    RUN_OK(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s));
    expect_near(out, (double[]){-3.0, -3.0, -3.0}, 3, 0, "neg'");

    a = (ct_attrs){.fwd_op = CT_OP_ADD};
    cr_assert_neq(run(CT_OP_UNARY_GRAD, &a, in, 2, view(out, CT_F64, s)), CT_OK,
                  "a binary forward op must be refused");
}
