/* CPU reference kernels: elementwise ops, reductions, softmax and their
 * gradients, each checked against values computed here from math.h formulas
 * or finite differences, never against the kernel's own helpers.
 *
 * Kernels are called directly through a table filled by the register
 * functions, with every output poisoned (NaN, or a sentinel for integers)
 * first, so an element a kernel forgets to write fails the comparison.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/backend.h"
#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

static ct_kernel_fn table[CT_OP_COUNT];

static void setup(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_elementwise(table);
    ct_cpu_register_reduce(table);
}

TestSuite(cpu_elementwise, .init = setup);

/* ---- helpers ------------------------------------------------------------ */

#define PI 3.14159265358979323846

static int64_t numel(ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

static ct_tview view(void *data, ct_dtype dt, ct_shape s) {
    return (ct_tview){.data = data, .dtype = dt, .shape = s, .numel = numel(s)};
}

static void poison(const ct_tview *v) {
    for (int64_t i = 0; i < v->numel; i++) {
        switch (v->dtype) {
        case CT_F64: ((double *)v->data)[i] = NAN; break;
        case CT_F32: ((float *)v->data)[i] = NAN; break;
        case CT_F16: ((uint16_t *)v->data)[i] = 0x7e00; break;
        case CT_BF16: ((uint16_t *)v->data)[i] = 0x7fc0; break;
        case CT_I32: ((int32_t *)v->data)[i] = INT32_MIN; break;
        default: ((uint8_t *)v->data)[i] = 0xa5; break;
        }
    }
}

static ct_status run(ct_op op, const ct_attrs *attr, const ct_tview *in, int n_in, ct_tview out) {
    static const ct_attrs none;
    cr_assert_not_null(table[op], "no kernel for op %d", (int)op);
    poison(&out);
    ct_kargs k = {.op = op, .attr = attr ? attr : &none, .n_in = n_in, .in = in, .out = out};
    return table[op](&k);
}

#define RUN_OK(op, attr, in, n_in, out) \
    cr_assert_eq(run(op, attr, in, n_in, out), CT_OK, "%s", ct_last_error())

/* |got - want| <= tol * max(1, |want|); NaN in got (a poisoned element) fails. */
static void expect_near(const double *got, const double *want, int64_t n, double tol,
                        const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double lim = tol * fmax(1.0, fabs(want[i]));
        cr_assert(fabs(got[i] - want[i]) <= lim, "%s[%lld]: got %.17g, want %.17g", what,
                  (long long)i, got[i], want[i]);
    }
}

static void expect_near_f32(const float *got, const double *want, int64_t n, double tol,
                            const char *what) {
    double g[256];
    cr_assert(n <= 256);
    for (int64_t i = 0; i < n; i++) g[i] = got[i];
    expect_near(g, want, n, tol, what);
}

/* Deterministic values in [-1, 1), so tests need no seed plumbing. */
static double rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

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
 * overwriting one of them). */
Test(cpu_elementwise, backend_table_uses_these_kernels) {
    const ct_backend *b = ct_cpu_backend();
    cr_assert_not_null(b);
    int n = 0;
    for (int op = 0; op < CT_OP_COUNT; op++) {
        if (!table[op]) continue;
        n++;
        cr_assert(b->kernels[op] == table[op], "op %d differs in ct_cpu_backend()", op);
    }
    cr_assert_eq(n, 30, "registered %d ops", n);
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

/* ---- cast / copy -------------------------------------------------------- */

Test(cpu_elementwise, cast_between_dtypes) {
    double d[3] = {0.1, -1e-3, 12345.678};
    float f[3];
    ct_shape s3 = {1, {3}};
    ct_tview in = view(d, CT_F64, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(f, CT_F32, s3));
    for (int i = 0; i < 3; i++) cr_assert_eq(f[i], (float)d[i], "f64->f32 [%d]", i);

    /* float -> int truncates toward zero */
    float fv[5] = {-2.7f, 2.7f, -0.5f, 3.0f, -3.0f};
    int32_t iv[5];
    ct_shape s5 = {1, {5}};
    in = view(fv, CT_F32, s5);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(iv, CT_I32, s5));
    int32_t iwant[5] = {-2, 2, 0, 3, -3};
    for (int i = 0; i < 5; i++) cr_assert_eq(iv[i], iwant[i], "f32->i32 [%d]: %d", i, iv[i]);

    int32_t big[3] = {16777217, -7, 0};
    double dv[3];
    in = view(big, CT_I32, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(dv, CT_F64, s3));
    expect_near(dv, (double[]){16777217.0, -7.0, 0.0}, 3, 0, "i32->f64");
    /* 2^24 + 1 is not an f32: rounds to even */
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(f, CT_F32, s3));
    cr_assert_eq(f[0], 16777216.0f);

    /* f32 -> f16 / bf16 rounding to nearest even at the halfway points */
    float hv[3] = {1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -65504.0f};
    uint16_t h[3];
    in = view(hv, CT_F32, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(h, CT_F16, s3));
    cr_assert_eq(h[0], 0x3c00, "got 0x%04x", h[0]);
    cr_assert_eq(h[1], 0x3c02, "got 0x%04x", h[1]);
    cr_assert_eq(h[2], 0xfbff, "got 0x%04x", h[2]);

    float bv[3] = {1.0f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-10f, -2.0f};
    in = view(bv, CT_F32, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(h, CT_BF16, s3));
    cr_assert_eq(h[0], 0x3f80, "got 0x%04x", h[0]);
    cr_assert_eq(h[1], 0x3f81, "got 0x%04x", h[1]);
    cr_assert_eq(h[2], 0xc000, "got 0x%04x", h[2]);

    in = view(h, CT_BF16, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(f, CT_F32, s3));
    cr_assert_eq(f[0], 1.0f);
    cr_assert_eq(f[1], 1.0f + 0x1p-7f);
    cr_assert_eq(f[2], -2.0f);
}

Test(cpu_elementwise, copy_keeps_bits) {
    float x[4] = {-0.0f, NAN, 1.5f, -3.25f}, out[4];
    ct_shape s = {2, {2, 2}};
    ct_tview in = view(x, CT_F32, s);
    RUN_OK(CT_OP_COPY, NULL, &in, 1, view(out, CT_F32, s));
    cr_assert(memcmp(x, out, sizeof x) == 0);

    uint16_t hx[3] = {0x3c01, 0x8000, 0x7c00}, hout[3];
    in = view(hx, CT_F16, (ct_shape){1, {3}});
    RUN_OK(CT_OP_COPY, NULL, &in, 1, view(hout, CT_F16, (ct_shape){1, {3}}));
    cr_assert(memcmp(hx, hout, sizeof hx) == 0);
}

/* ---- broadcast_to / sum_to ---------------------------------------------- */

Test(cpu_elementwise, broadcast_to_shapes) {
    double v3[3] = {1.0, -2.0, 3.5}, v2[2] = {4.0, -5.0}, sc = 7.25, out[24], want[24];

    ct_tview in = view(v3, CT_F64, (ct_shape){1, {3}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 3}}));
    expect_near(out, (double[]){1.0, -2.0, 3.5, 1.0, -2.0, 3.5}, 6, 0, "[3]->[2,3]");

    in = view(v2, CT_F64, (ct_shape){2, {2, 1}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 3}}));
    expect_near(out, (double[]){4.0, 4.0, 4.0, -5.0, -5.0, -5.0}, 6, 0, "[2,1]->[2,3]");

    in = view(&sc, CT_F64, (ct_shape){0, {0}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 2}}));
    expect_near(out, (double[]){7.25, 7.25, 7.25, 7.25}, 4, 0, "scalar->[2,2]");

    in = view(v3, CT_F64, (ct_shape){3, {1, 3, 1}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){3, {2, 3, 4}}));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int l = 0; l < 4; l++) want[(i * 3 + j) * 4 + l] = v3[j];
    expect_near(out, want, 24, 0, "[1,3,1]->[2,3,4]");
}

Test(cpu_elementwise, sum_to_shapes) {
    double x[24], out[6], want[6];
    for (int i = 0; i < 24; i++) x[i] = 0.5 * i - 3.0 + (i % 5) * 0.125;

    /* [2,3] -> [3] */
    ct_tview in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){1, {3}}));
    for (int j = 0; j < 3; j++) want[j] = x[j] + x[3 + j];
    expect_near(out, want, 3, 1e-15, "[2,3]->[3]");

    /* [2,3] -> scalar */
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){0, {0}}));
    want[0] = 0;
    for (int i = 0; i < 6; i++) want[0] += x[i];
    expect_near(out, want, 1, 1e-15, "[2,3]->[]");

    /* [2,3] -> [2,3] is a copy */
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 3}}));
    expect_near(out, x, 6, 0, "[2,3]->[2,3]");

    /* [2,3,4] -> [3,1] and -> [1,3,1]: same sums, different output ranks */
    in = view(x, CT_F64, (ct_shape){3, {2, 3, 4}});
    for (int j = 0; j < 3; j++) {
        want[j] = 0;
        for (int i = 0; i < 2; i++)
            for (int l = 0; l < 4; l++) want[j] += x[(i * 3 + j) * 4 + l];
    }
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {3, 1}}));
    expect_near(out, want, 3, 1e-14, "[2,3,4]->[3,1]");
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){3, {1, 3, 1}}));
    expect_near(out, want, 3, 1e-14, "[2,3,4]->[1,3,1]");

    /* [2,3,4] -> [2,1,4] */
    double w8[8];
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < 4; l++) {
            w8[i * 4 + l] = 0;
            for (int j = 0; j < 3; j++) w8[i * 4 + l] += x[(i * 3 + j) * 4 + l];
        }
    double out8[8];
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out8, CT_F64, (ct_shape){3, {2, 1, 4}}));
    expect_near(out8, w8, 8, 1e-14, "[2,3,4]->[2,1,4]");

    /* f32 output, double accumulation */
    float xf[6] = {1e8f, 1.0f, -1e8f, 1.0f, 2.0f, 3.0f}, of[2];
    in = view(xf, CT_F32, (ct_shape){2, {3, 2}});
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(of, CT_F32, (ct_shape){2, {1, 2}}));
    cr_assert_eq(of[0], 2.0f, "got %g", of[0]); /* 1e8 + (-1e8) + 2 exactly in double */
    cr_assert_eq(of[1], 5.0f, "got %g", of[1]);

    in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    cr_assert_eq(run(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){1, {2}})),
                 CT_ERR_SHAPE);
}

Test(cpu_elementwise, sum_to_is_adjoint_of_broadcast_to) {
    /* <sum_to(u), v> == <u, broadcast_to(v)> for u of the big shape, v of the small */
    struct { ct_shape big, small; } pairs[] = {
        {{2, {2, 3}}, {1, {3}}},
        {{2, {2, 3}}, {2, {2, 1}}},
        {{3, {2, 3, 4}}, {2, {3, 1}}},
        {{3, {2, 3, 4}}, {3, {1, 3, 1}}},
        {{3, {2, 3, 4}}, {3, {2, 1, 4}}},
        {{3, {2, 3, 4}}, {0, {0}}},
        {{4, {4, 2, 3, 5}}, {3, {1, 3, 1}}},
        {{4, {4, 2, 3, 5}}, {4, {4, 1, 3, 5}}},
    };
    uint64_t seed = 42;
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        int64_t nb = numel(pairs[p].big), ns = numel(pairs[p].small);
        double u[120], v[120], su[120], bv[120];
        for (int64_t i = 0; i < nb; i++) u[i] = rnd(&seed);
        for (int64_t i = 0; i < ns; i++) v[i] = rnd(&seed);
        ct_tview in = view(u, CT_F64, pairs[p].big);
        RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(su, CT_F64, pairs[p].small));
        in = view(v, CT_F64, pairs[p].small);
        RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(bv, CT_F64, pairs[p].big));
        double lhs = dot(su, v, ns), rhs = dot(u, bv, nb);
        cr_assert(fabs(lhs - rhs) <= 1e-12 * fmax(1.0, fabs(rhs)), "pair %zu: %.17g vs %.17g",
                  p, lhs, rhs);
    }
}

/* ---- reductions --------------------------------------------------------- */

Test(cpu_elementwise, sum_mean_max_each_axis) {
    /* [2,3,4], distinct values in no particular order */
    double x[24], out[24], want_s[24], want_m[24], want_x[24];
    for (int i = 0; i < 24; i++) x[i] = sin(1.7 * i + 0.3) * 10.0;
    ct_shape s = {3, {2, 3, 4}};
    int64_t dims[3] = {2, 3, 4};
    ct_tview in = view(x, CT_F64, s);

    for (int axis = 0; axis < 3; axis++) {
        /* output shape is the input shape without `axis` */
        ct_shape so = {0, {0}};
        for (int d = 0; d < 3; d++)
            if (d != axis) so.dim[so.ndim++] = dims[d];
        int64_t no = numel(so);
        for (int64_t oi = 0; oi < no; oi++) {
            double sum = 0, mx = -INFINITY;
            for (int64_t l = 0; l < dims[axis]; l++) {
                int64_t idx[3], r = oi;
                /* rebuild the full index from the output index and l */
                for (int d = 2; d >= 0; d--) {
                    if (d == axis) continue;
                    idx[d] = r % dims[d];
                    r /= dims[d];
                }
                idx[axis] = l;
                double v = x[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
                sum += v;
                mx = fmax(mx, v);
            }
            want_s[oi] = sum;
            want_m[oi] = sum / (double)dims[axis];
            want_x[oi] = mx;
        }
        ct_attrs a = {.axis = axis};
        RUN_OK(CT_OP_SUM, &a, &in, 1, view(out, CT_F64, so));
        expect_near(out, want_s, no, 1e-14, "sum");
        RUN_OK(CT_OP_MEAN, &a, &in, 1, view(out, CT_F64, so));
        expect_near(out, want_m, no, 1e-14, "mean");
        RUN_OK(CT_OP_MAX, &a, &in, 1, view(out, CT_F64, so));
        expect_near(out, want_x, no, 0, "max");
        /* keepdim only changes the shape */
        ct_attrs ak = {.axis = axis, .keepdim = true};
        ct_shape sk = s;
        sk.dim[axis] = 1;
        RUN_OK(CT_OP_SUM, &ak, &in, 1, view(out, CT_F64, sk));
        expect_near(out, want_s, no, 1e-14, "sum keepdim");
    }

    double total = 0, mx = -INFINITY;
    for (int i = 0; i < 24; i++) {
        total += x[i];
        mx = fmax(mx, x[i]);
    }
    ct_attrs all = {.axis = CT_AXIS_ALL};
    ct_shape s0 = {0, {0}};
    RUN_OK(CT_OP_SUM, &all, &in, 1, view(out, CT_F64, s0));
    expect_near(out, &total, 1, 1e-14, "sum all");
    double mean = total / 24;
    RUN_OK(CT_OP_MEAN, &all, &in, 1, view(out, CT_F64, s0));
    expect_near(out, &mean, 1, 1e-14, "mean all");
    RUN_OK(CT_OP_MAX, &all, &in, 1, view(out, CT_F64, s0));
    expect_near(out, &mx, 1, 0, "max all");
}

Test(cpu_elementwise, reduce_f32_double_accumulation) {
    /* the f32 running sum would lose the 1s next to 1e8 */
    float x[6] = {1e8f, 1.0f, 1.0f, -1e8f, 0.5f, 0.25f}, out[2];
    ct_tview in = view(x, CT_F32, (ct_shape){2, {2, 3}});
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_SUM, &a, &in, 1, view(out, CT_F32, (ct_shape){1, {2}}));
    cr_assert_eq(out[0], (float)(1e8 + 2.0), "got %.9g", out[0]);
    cr_assert_eq(out[1], (float)(-1e8 + 0.75), "got %.9g", out[1]);
    ct_attrs all = {.axis = CT_AXIS_ALL};
    RUN_OK(CT_OP_SUM, &all, &in, 1, view(out, CT_F32, (ct_shape){0, {0}}));
    cr_assert_eq(out[0], 2.75f, "got %.9g", out[0]);
}

Test(cpu_elementwise, max_propagates_nan) {
    double x[6] = {1.0, NAN, 3.0, -1.0, 5.0, 2.0}, out[2];
    ct_tview in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_MAX, &a, &in, 1, view(out, CT_F64, (ct_shape){1, {2}}));
    cr_assert(isnan(out[0]));
    cr_assert_eq(out[1], 5.0);
    double y[4] = {NAN, 1.0, 7.0, 2.0};
    in = view(y, CT_F64, (ct_shape){1, {4}});
    a.axis = CT_AXIS_ALL;
    RUN_OK(CT_OP_MAX, &a, &in, 1, view(out, CT_F64, (ct_shape){0, {0}}));
    cr_assert(isnan(out[0]), "a leading NaN must win too");
}

Test(cpu_elementwise, max_grad_ties_go_to_first) {
    /* [2,3,2], axis 1: columns (o, j) with ties at rows 0 and 2, or 1 and 2 */
    double x[12] = {5.0, 1.0, 2.0, 4.0, 5.0, 4.0, /* o = 0: rows l = 0, 1, 2 */
                    -1.0, 0.0, -3.0, 0.0, -1.0, -2.0};
    double dy[4] = {10.0, 20.0, 30.0, 40.0}, out[12];
    ct_tview in[2] = {view(x, CT_F64, (ct_shape){3, {2, 3, 2}}),
                      view(dy, CT_F64, (ct_shape){2, {2, 2}})};
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_MAX_GRAD, &a, in, 2, view(out, CT_F64, (ct_shape){3, {2, 3, 2}}));
    double want[12] = {10.0, 0.0, 0.0, 20.0, 0.0, 0.0, 30.0, 40.0, 0.0, 0.0, 0.0, 0.0};
    expect_near(out, want, 12, 0, "max_grad axis 1");

    /* all elements: the first 5.0 in row-major order, nothing else */
    double g = -2.5;
    ct_attrs all = {.axis = CT_AXIS_ALL};
    ct_tview in2[2] = {in[0], view(&g, CT_F64, (ct_shape){0, {0}})};
    RUN_OK(CT_OP_MAX_GRAD, &all, in2, 2, view(out, CT_F64, (ct_shape){3, {2, 3, 2}}));
    double want2[12] = {-2.5};
    expect_near(out, want2, 12, 0, "max_grad all");
}

/* ---- softmax ------------------------------------------------------------ */

/* [2,3,2] softmax / log_softmax along axis 1, the naive way. */
static void ref_softmax_mid(const double *x, double *y, bool log_form) {
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < 2; j++) {
            double z = 0;
            for (int l = 0; l < 3; l++) z += exp(x[(o * 3 + l) * 2 + j]);
            for (int l = 0; l < 3; l++) {
                double v = x[(o * 3 + l) * 2 + j];
                y[(o * 3 + l) * 2 + j] = log_form ? v - log(z) : exp(v) / z;
            }
        }
}

static const double sm_x[12] = {0.3, -1.2, 2.0, 0.5, -0.7, 1.1, 1.4, 0.0, -2.2, 0.9, 0.6, -0.4};

Test(cpu_elementwise, softmax_middle_axis) {
    double y[12], want[12];
    ct_shape s = {3, {2, 3, 2}};
    ct_tview in = view((void *)sm_x, CT_F64, s);
    ct_attrs a = {.axis = 1};

    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    ref_softmax_mid(sm_x, want, false);
    expect_near(y, want, 12, 1e-15, "softmax");
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < 2; j++) {
            double t = 0;
            for (int l = 0; l < 3; l++) t += y[(o * 3 + l) * 2 + j];
            cr_assert(fabs(t - 1.0) < 1e-15, "column sums to %.17g", t);
        }

    RUN_OK(CT_OP_LOG_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    ref_softmax_mid(sm_x, want, true);
    expect_near(y, want, 12, 1e-15, "log_softmax");

    /* f32 */
    float xf[12], yf[12];
    for (int i = 0; i < 12; i++) xf[i] = (float)sm_x[i];
    double xd[12];
    for (int i = 0; i < 12; i++) xd[i] = xf[i];
    in = view(xf, CT_F32, s);
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(yf, CT_F32, s));
    ref_softmax_mid(xd, want, false);
    expect_near_f32(yf, want, 12, 1e-7, "softmax f32");
}

Test(cpu_elementwise, softmax_large_inputs_are_stable) {
    double x[4] = {1000.0, 1001.0, 1002.0, -INFINITY}, y[4];
    double e0 = exp(-2.0), e1 = exp(-1.0), z = e0 + e1 + 1.0;
    ct_shape s = {2, {1, 4}};
    ct_tview in = view(x, CT_F64, s);
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    expect_near(y, (double[]){e0 / z, e1 / z, 1.0 / z, 0.0}, 4, 1e-15, "softmax large");
    RUN_OK(CT_OP_LOG_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    expect_near(y, (double[]){-2.0 - log(z), -1.0 - log(z), -log(z)}, 3, 1e-15,
                "log_softmax large");
    cr_assert(isinf(y[3]) && y[3] < 0, "log_softmax(-inf) = %g", y[3]);

    /* axis 0 of a [4,1] column: the row stride is the inner size */
    in = view(x, CT_F64, (ct_shape){2, {4, 1}});
    a.axis = 0;
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, (ct_shape){2, {4, 1}}));
    expect_near(y, (double[]){e0 / z, e1 / z, 1.0 / z, 0.0}, 4, 1e-15, "softmax axis 0");
}

/* L(x) = <dy, softmax(x)> (or log_softmax); its gradient by central
 * differences is what the *_GRAD kernels must return. */
static void fd_softmax_grad(const double *dy, bool log_form, double *want) {
    const double h = 1e-6;
    for (int i = 0; i < 12; i++) {
        double xp[12], xm[12], yp[12], ym[12];
        memcpy(xp, sm_x, sizeof xp);
        memcpy(xm, sm_x, sizeof xm);
        xp[i] += h;
        xm[i] -= h;
        ref_softmax_mid(xp, yp, log_form);
        ref_softmax_mid(xm, ym, log_form);
        want[i] = (dot(dy, yp, 12) - dot(dy, ym, 12)) / (2 * h);
    }
}

Test(cpu_elementwise, softmax_grads_match_finite_differences) {
    double dy[12] = {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.0, -0.3, 0.8, -1.6, 0.1, 0.4};
    double y[12], dx[12], want[12];
    ct_shape s = {3, {2, 3, 2}};
    ct_attrs a = {.axis = 1};

    ct_tview in = view((void *)sm_x, CT_F64, s);
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    ct_tview gin[2] = {view(y, CT_F64, s), view(dy, CT_F64, s)};
    RUN_OK(CT_OP_SOFTMAX_GRAD, &a, gin, 2, view(dx, CT_F64, s));
    fd_softmax_grad(dy, false, want);
    expect_near(dx, want, 12, 1e-8, "softmax_grad");

    RUN_OK(CT_OP_LOG_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    RUN_OK(CT_OP_LOG_SOFTMAX_GRAD, &a, gin, 2, view(dx, CT_F64, s));
    fd_softmax_grad(dy, true, want);
    expect_near(dx, want, 12, 1e-8, "log_softmax_grad");
}
