/* The near-reference F32 fast paths: float math (cpu_fast_unary.c,
 * cpu_fast_softmax.c) and layer norm's row sums in lanes (cpu_fast_norm.c),
 * against the CPU reference loops (ct_cpu_set_fast_paths(false): double
 * arithmetic, libm), on fresh random non-zero inputs over many magnitudes,
 * NaN and the infinities, and sizes around the vector widths and the
 * parallel thresholds; and bitwise identical for 1, 2 and 3 threads.
 *
 * The tolerances are what float arithmetic owes, derived per op rather
 * than fitted (eps = FLT_EPSILON, one ULP at 1.0):
 * - every result: a few eps relative (the vector function's 1-1.5 ULP,
 *   the reference's own rounding to float, one or two float roundings of
 *   the arithmetic around the function);
 * - plus an absolute term where the formula cancels, scaled by what
 *   cancels: 1 - tanh^2 and 1 - sigmoid near saturation, GELU's gradient
 *   near its zero, 1 + tanh(.) in tanh-GELU for negative x, dy - dot in the
 *   softmax gradient, p - t in cross-entropy's;
 * - plus the rounding of a function's argument times its condition number
 *   where the argument is itself rounded: erfc(-x / sqrt 2) (relative
 *   condition about x^2 in GELU's tail), exp(x - m) (|x - m|) in softmax;
 * - plus a float row sum's error, about len / 16 additions per lane;
 * - plus a few subnormal ULPs (results under FLT_MIN have no relative
 *   precision to speak of).
 * NaN and infinite reference results must come out the same.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/ew_math.h"
#include "core/node.h"
#include "ctrain/ops.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"

#define EPS ((double)FLT_EPSILON)
#define SUB (8 * 1.4e-45) /* a few subnormal ULPs */

static ct_kernel_fn table[CT_OP_COUNT];

static void setup(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_elementwise(table);
    ct_cpu_register_reduce(table);
    ct_cpu_register_nn(table);
    ct_cpu_register_norm(table);
    ct_cpu_register_conv(table);
}

static void teardown(void) {
    ct_cpu_set_fast_paths(true);
    omp_set_num_threads(2);
}

TestSuite(ew_float, .init = setup, .fini = teardown);

static uint64_t next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s) { return (double)(next(s) >> 11) / 9007199254740992.0; }

/* Non-zero, random sign (unless positive), magnitude 10^u, u uniform in
 * [lo10, hi10]. */
static float draw(uint64_t *s, double lo10, double hi10, bool positive) {
    double m = pow(10.0, lo10 + (hi10 - lo10) * unit(s));
    return (float)(positive || next(s) % 2 ? m : -m);
}

static ct_tview view(void *data, ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return (ct_tview){.data = data, .dtype = CT_F32, .shape = s, .numel = n};
}

/* Runs one kernel with the fast paths on or off, on `threads` threads,
 * into a fresh NaN-poisoned output of n floats. */
static float *run(ct_op op, const ct_attrs *a, const ct_tview *in, int n_in, ct_shape oshape, bool fast,
                  int threads) {
    ct_tview o = view(NULL, oshape);
    float *out = malloc((size_t)(o.numel + 1) * sizeof(float));
    for (int64_t i = 0; i < o.numel; i++) out[i] = NAN;
    o.data = out;
    ct_kargs k = {.op = op, .attr = a, .n_in = n_in, .in = in, .out = o};
    /* the scratch the backend declares (layer norm's weight gradient keeps
     * its rows' statistics there), poisoned */
    size_t sb = ct_cpu_backend()->scratch_bytes(&k);
    k.scratch = sb ? malloc(sb) : NULL;
    if (k.scratch) memset(k.scratch, 0xA5, sb);
    omp_set_num_threads(threads);
    ct_cpu_set_fast_paths(fast);
    ct_status st = table[op](&k);
    ct_cpu_set_fast_paths(true);
    free(k.scratch);
    cr_assert_eq(st, CT_OK, "%s: %s", ct_op_name(op), ct_last_error());
    return out;
}

/* got within tol of want; NaN and infinities exactly. */
static bool close_to(float got, float want, double tol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want) || got == want) return got == want;
    return fabs((double)got - (double)want) <= tol;
}

/* Fast on 1, 2 and 3 threads: the same bytes; returns the 1-thread run. */
static float *run_threads(ct_op op, const ct_attrs *a, const ct_tview *in, int n_in, ct_shape os, int64_t n,
                          const char *what) {
    float *f1 = run(op, a, in, n_in, os, true, 1);
    for (int t = 2; t <= 3; t++) {
        float *ft = run(op, a, in, n_in, os, true, t);
        cr_expect(memcmp(f1, ft, (size_t)n * sizeof(float)) == 0, "%s: %d threads differ from 1", what, t);
        free(ft);
    }
    return f1;
}

/* ---- unary ops and their gradient ---------------------------------------- */

typedef struct ucase {
    const char *name;
    int op, approx;
    double alpha, threshold;
    double lo10, hi10; /* the magnitudes of x */
    bool positive, grad;
} ucase;

static const ucase ucases[] = {
    {"exp", CT_OP_EXP, 0, 0, 0, -6, 2, false, false},
    {"log", CT_OP_LOG, 0, 0, 0, -30, 30, true, false},
    {"tanh", CT_OP_TANH, 0, 0, 0, -6, 3, false, false},
    {"sigmoid", CT_OP_SIGMOID, 0, 0, 0, -6, 3, false, false},
    {"silu", CT_OP_SILU, 0, 0, 0, -6, 3, false, false},
    {"softplus", CT_OP_SOFTPLUS, 0, 1, 20, -6, 3, false, false},
    {"softplus beta 2", CT_OP_SOFTPLUS, 0, 2, 20, -6, 3, false, false},
    {"gelu", CT_OP_GELU, CT_GELU_EXACT, 0, 0, -6, 4, false, false},
    {"gelu tanh", CT_OP_GELU, CT_GELU_TANH, 0, 0, -6, 4, false, false},
    /* dy exp(x) with exp(x) finite in float (so is PyTorch's y = exp(x)) */
    {"exp grad", CT_OP_EXP, 0, 0, 0, -6, 1.94, false, true},
    {"tanh grad", CT_OP_TANH, 0, 0, 0, -6, 3, false, true},
    {"sigmoid grad", CT_OP_SIGMOID, 0, 0, 0, -6, 3, false, true},
    {"silu grad", CT_OP_SILU, 0, 0, 0, -6, 3, false, true},
    {"softplus grad", CT_OP_SOFTPLUS, 0, 1, 20, -6, 3, false, true},
    {"softplus beta 2 grad", CT_OP_SOFTPLUS, 0, 2, 20, -6, 3, false, true},
    {"gelu grad", CT_OP_GELU, CT_GELU_EXACT, 0, 0, -6, 4, false, true},
    {"gelu tanh grad", CT_OP_GELU, CT_GELU_TANH, 0, 0, -6, 4, false, true},
};

/* The tolerance of one element (see the top of the file). */
static double utol(const ucase *c, double x, double dy, double ref) {
    if (!isfinite(x) || (c->grad && !isfinite(dy))) return 0; /* the same answer exactly */
    const double ax = fabs(x), ady = c->grad ? fabs(dy) : 1.0;
    double rel = 6 * EPS * fabs(ref), cancel = 0;
    switch (c->op) {
    case CT_OP_TANH:
    case CT_OP_SIGMOID: cancel = c->grad ? 4 * EPS : 0; break; /* 1 - t^2, 1 - s */
    case CT_OP_SILU: cancel = c->grad ? 4 * EPS * (1 + ax) : 0; break; /* 1 + x (1 - s) */
    case CT_OP_SOFTPLUS: rel *= 1 + c->alpha * ax; break; /* beta x rounded, into sigmoid or exp */
    case CT_OP_GELU:
        if (c->approx == CT_GELU_TANH) /* 1 + t, 1 - t^2 times x and the cubic's derivative */
            cancel = 4 * EPS * (1 + ax) * (1 + ax * ax);
        else /* erfc's argument rounded (condition ~ x^2); Phi + x phi near its zero */
            rel *= 1 + ax * ax, cancel = c->grad ? 4 * EPS : 0;
        break;
    default: break;
    }
    /* a subnormal intermediate (exp, the sigmoid) times x and dy */
    return rel + cancel * ady + SUB * (1 + ax) * (1 + ady);
}

static void check_unary(const ucase *c, int64_t n, uint64_t seed, bool specials) {
    uint64_t s = seed;
    float *x = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        x[i] = draw(&s, c->lo10, c->hi10, c->positive);
        dy[i] = draw(&s, -3, 1, false);
    }
    if (specials && n >= 8) {
        x[1] = NAN, x[n / 2] = INFINITY, x[n - 2] = -INFINITY;
        x[n / 3] = 0.0f, x[n / 4] = -0.0f, dy[n / 5] = NAN;
    }
    ct_attrs a = {.fwd_op = c->op, .approx = c->approx, .alpha = c->alpha, .threshold = c->threshold};
    ct_tview in[2] = {view(x, (ct_shape){1, {n}}), view(dy, (ct_shape){1, {n}})};
    ct_op op = c->grad ? CT_OP_UNARY_GRAD : (ct_op)c->op;
    int n_in = c->grad ? 2 : 1;
    float *ref = run(op, &a, in, n_in, in[0].shape, false, 1);
    float *got = run_threads(op, &a, in, n_in, in[0].shape, n, c->name);
    for (int64_t i = 0; i < n; i++)
        if (!close_to(got[i], ref[i], utol(c, x[i], dy[i], ref[i]))) {
            cr_expect(false, "%s n=%lld [%lld]: x=%a dy=%a got %a want %a (%.3g eps off)", c->name, (long long)n,
                      (long long)i, (double)x[i], (double)dy[i], (double)got[i], (double)ref[i],
                      fabs((double)got[i] - ref[i]) / EPS);
            break;
        }
    free(x), free(dy), free(ref), free(got);
}

static const int64_t usizes[] = {1, 3, 15, 16, 17, 31, 33, 255, 256, 257, 1023, 4099, 70001};

Test(ew_float, unary_ops_and_gradients_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    for (size_t c = 0; c < sizeof ucases / sizeof ucases[0]; c++)
        for (size_t z = 0; z < sizeof usizes / sizeof usizes[0]; z++)
            check_unary(&ucases[c], usizes[z], 1000 * c + z + 1, z % 2 == 0);
}

/* The float paths do run for these ops (the comparisons above would also
 * pass if they silently fell back to the reference), and not for F64. */
Test(ew_float, paths_are_taken) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    float x[40], o[40];
    for (int i = 0; i < 40; i++) x[i] = 0.1f * (float)(i - 20);
    ct_tview v = view(x, (ct_shape){1, {40}}), out = view(o, (ct_shape){1, {40}});
    for (size_t c = 0; c < sizeof ucases / sizeof ucases[0]; c++) {
        const ucase *u = &ucases[c];
        ct_ew_params p = {.op = u->op, .alpha = u->alpha, .approx = u->approx, .threshold = u->threshold};
        bool ran = u->grad ? ct_cpu_fast_unary_grad(&p, &v, &v, &out) : ct_cpu_fast_unary(&p, &v, &out);
        cr_expect(ran, "%s: no float path", u->name);
    }
    ct_ew_params relu = {.op = CT_OP_RELU};
    cr_expect(!ct_cpu_fast_unary(&relu, &v, &out), "relu has its bit-identical loop");
    cr_expect(ct_cpu_fast_softmax(&v, &out, 4, 10, false) && ct_cpu_fast_softmax_grad(&v, &v, &out, 4, 10, true));
    double d[4] = {0};
    ct_tview v64 = {.data = d, .dtype = CT_F64, .shape = {1, {4}}, .numel = 4};
    ct_ew_params ex = {.op = CT_OP_EXP};
    cr_expect(!ct_cpu_fast_unary(&ex, &v64, &v64) && !ct_cpu_fast_softmax(&v64, &v64, 1, 4, false));
    ct_cpu_set_fast_paths(false);
    cr_expect(!ct_cpu_fast_unary(&ex, &v, &out), "CTRAIN_CPU_REFERENCE's switch turns them off");
    ct_cpu_set_fast_paths(true);
}

/* The SSE2 build of the arithmetic and of the vector functions: the same
 * bounds (its bytes may differ from AVX2's, as documented). */
Test(ew_float, unary_baseline_clones_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    ct_cpu_set_baseline_only(true);
    for (size_t c = 0; c < sizeof ucases / sizeof ucases[0]; c++) check_unary(&ucases[c], 4099, 77 + c, true);
    ct_cpu_set_baseline_only(false);
}

/* The AVX2 clones where the CPU would take AVX-512 ones: the same bounds. */
Test(ew_float, unary_avx2_clones_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    ct_cpu_set_no_avx512(true);
    for (size_t c = 0; c < sizeof ucases / sizeof ucases[0]; c++) check_unary(&ucases[c], 4099, 177 + c, true);
    ct_cpu_set_no_avx512(false);
}

/* F64 never takes a float path: the reference's bytes. */
Test(ew_float, f64_keeps_the_reference) {
    const int64_t n = 5000;
    double *x = malloc(n * sizeof(double)), *o1 = malloc(n * sizeof(double)), *o2 = malloc(n * sizeof(double));
    uint64_t s = 5;
    for (int64_t i = 0; i < n; i++) x[i] = draw(&s, -3, 1, false);
    ct_attrs a = {.approx = CT_GELU_EXACT};
    ct_tview in = {.data = x, .dtype = CT_F64, .shape = {1, {n}}, .numel = n};
    for (int f = 0; f < 2; f++) {
        ct_tview o = in;
        o.data = f ? o1 : o2;
        ct_cpu_set_fast_paths(f);
        ct_kargs k = {.op = CT_OP_GELU, .attr = &a, .n_in = 1, .in = &in, .out = o};
        cr_assert_eq(table[CT_OP_GELU](&k), CT_OK);
    }
    ct_cpu_set_fast_paths(true);
    cr_expect(memcmp(o1, o2, n * sizeof(double)) == 0);
    free(x), free(o1), free(o2);
}

/* ---- softmax, log-softmax and their gradients ------------------------------ */

static const int64_t lens[] = {1, 5, 16, 17, 65, 257, 1000, 4099};

/* Logits: spread over [-scale, scale] around a row offset, some rows huge. */
static float *logits(int64_t rows, int64_t len, uint64_t seed, bool specials) {
    uint64_t s = seed;
    float *x = malloc((size_t)(rows * len) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        double off = r % 5 == 4 ? 1e4 * (unit(&s) - 0.5) : 0, scale = r % 3 == 0 ? 30 : 5;
        for (int64_t j = 0; j < len; j++) x[r * len + j] = (float)(off + scale * (2 * unit(&s) - 1));
    }
    if (specials && rows >= 4) {
        x[1 * len + len / 2] = NAN;
        x[2 * len] = -INFINITY;
        x[3 * len + len - 1] = INFINITY;
    }
    return x;
}

static void check_softmax(bool log_form, int64_t rows, int64_t len, uint64_t seed) {
    float *x = logits(rows, len, seed, true);
    ct_attrs a = {.axis = 1};
    ct_shape sh = {2, {rows, len}};
    ct_tview in = view(x, sh);
    ct_op op = log_form ? CT_OP_LOG_SOFTMAX : CT_OP_SOFTMAX;
    float *ref = run(op, &a, &in, 1, sh, false, 1);
    float *got = run_threads(op, &a, &in, 1, sh, rows * len, log_form ? "log_softmax" : "softmax");
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY;
        for (int64_t j = 0; j < len; j++) m = fmax(m, x[r * len + j]);
        for (int64_t j = 0; j < len; j++) {
            int64_t i = r * len + j;
            double z = fabs(x[i] - m), sum_err = (double)len / 16 + 8;
            /* exp(x - m) with x - m rounded, the row sum, then / sum or - log(sum) */
            double tol = log_form ? EPS * (4 * fabs(ref[i]) + 2 * z + sum_err) : EPS * fabs(ref[i]) * (6 + z + sum_err);
            if (!close_to(got[i], ref[i], tol + SUB)) {
                cr_expect(false, "%s [%lld x %lld] (%lld, %lld): x=%a got %a want %a", log_form ? "log_softmax" : "softmax",
                          (long long)rows, (long long)len, (long long)r, (long long)j, (double)x[i], (double)got[i],
                          (double)ref[i]);
                r = rows;
                break;
            }
        }
    }
    free(x), free(ref), free(got);
}

Test(ew_float, softmax_and_log_softmax_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (int lf = 0; lf < 2; lf++) {
            int64_t rows = lens[l] < 64 ? 301 : 37;
            check_softmax(lf, rows, lens[l], 31 * l + lf);
        }
}

static void check_softmax_grad(bool log_form, int64_t rows, int64_t len, uint64_t seed) {
    uint64_t s = seed;
    const int64_t n = rows * len;
    float *y = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        y[i] = log_form ? (float)(-20 * unit(&s)) : (float)unit(&s);
        dy[i] = draw(&s, -3, 1, false);
    }
    ct_attrs a = {.axis = 1};
    ct_shape sh = {2, {rows, len}};
    ct_tview in[2] = {view(y, sh), view(dy, sh)};
    ct_op op = log_form ? CT_OP_LOG_SOFTMAX_GRAD : CT_OP_SOFTMAX_GRAD;
    float *ref = run(op, &a, in, 2, sh, false, 1);
    float *got = run_threads(op, &a, in, 2, sh, n, "softmax grad");
    for (int64_t r = 0; r < rows; r++) {
        double dot = 0, mag = 0; /* the row's sum and the sum of its terms' magnitudes */
        for (int64_t j = 0; j < len; j++) {
            double t = log_form ? dy[r * len + j] : (double)dy[r * len + j] * y[r * len + j];
            dot += t, mag += fabs(t);
        }
        double sum_err = EPS * ((double)len / 16 + 8) * mag;
        for (int64_t j = 0; j < len; j++) {
            int64_t i = r * len + j;
            double tol = log_form ? 4 * EPS * fabs(dy[i]) + exp(y[i]) * (6 * EPS * fabs(dot) + sum_err)
                                  : fabs(y[i]) * (4 * EPS * (fabs(dy[i]) + fabs(dot)) + sum_err);
            if (!close_to(got[i], ref[i], tol + 4 * EPS * fabs(ref[i]) + SUB)) {
                cr_expect(false, "%s grad [%lld x %lld] (%lld, %lld): got %a want %a", log_form ? "log_softmax" : "softmax",
                          (long long)rows, (long long)len, (long long)r, (long long)j, (double)got[i], (double)ref[i]);
                r = rows;
                break;
            }
        }
    }
    free(y), free(dy), free(ref), free(got);
}

Test(ew_float, softmax_gradients_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (int lf = 0; lf < 2; lf++) check_softmax_grad(lf, lens[l] < 64 ? 301 : 37, lens[l], 71 * l + lf);
}

/* ---- cross-entropy ------------------------------------------------------------ */

static void check_xent(int64_t rows, int64_t c, double smoothing, uint64_t seed) {
    float *x = logits(rows, c, seed, false);
    int32_t *lab = malloc((size_t)rows * sizeof(int32_t));
    uint64_t s = seed + 99;
    for (int64_t r = 0; r < rows; r++) lab[r] = (int32_t)(next(&s) % (uint64_t)c);
    float dloss = 1.7f;
    ct_attrs a = {.alpha = smoothing};
    ct_shape sh = {2, {rows, c}};
    ct_tview in[3] = {view(x, sh), {.data = lab, .dtype = CT_I32, .shape = {1, {rows}}, .numel = rows},
                      view(&dloss, (ct_shape){0, {0}})};
    in[2].numel = 1;
    /* the loss: each row's log-sum-exp in float, its error about
     * eps (|m| + log(sum) + the sum's len / 16 + 8) */
    float *lref = run(CT_OP_CROSS_ENTROPY, &a, in, 2, (ct_shape){0, {0}}, false, 1);
    float *lgot = run_threads(CT_OP_CROSS_ENTROPY, &a, in, 2, (ct_shape){0, {0}}, 1, "cross_entropy");
    double worst_m = 0;
    for (int64_t i = 0; i < rows * c; i++) worst_m = fmax(worst_m, fabs(x[i]));
    double ltol = 4 * EPS * fabs(lref[0]) + 2 * EPS * (worst_m + log((double)c) + (double)c / 16 + 8);
    cr_expect(close_to(lgot[0], lref[0], ltol), "cross_entropy [%lld x %lld]: got %a want %a", (long long)rows,
              (long long)c, (double)lgot[0], (double)lref[0]);
    /* the gradient g (p - t): p = exp(x - m) / sum, the difference rounded
     * (|x - m| eps), exp and the division, the sum's error (c / 16 + 8
     * eps); the log(c) term is the bound's from when p was
     * exp((x - m) - log(sum)), kept */
    float *gref = run(CT_OP_CROSS_ENTROPY_GRAD, &a, in, 3, sh, false, 1);
    float *ggot = run_threads(CT_OP_CROSS_ENTROPY_GRAD, &a, in, 3, sh, rows * c, "cross_entropy_grad");
    const double g = dloss / (double)rows;
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY;
        for (int64_t j = 0; j < c; j++) m = fmax(m, x[r * c + j]);
        for (int64_t j = 0; j < c; j++) {
            int64_t i = r * c + j;
            double p = fabs(gref[i] / g) + 1; /* bounds p, since t <= 1 */
            double tol = g * EPS * (4 + p * (8 + 2 * fabs(x[i] - m) + 2 * log((double)c) + (double)c / 8));
            if (!close_to(ggot[i], gref[i], tol + SUB)) {
                cr_expect(false, "cross_entropy_grad [%lld x %lld] (%lld, %lld): got %a want %a", (long long)rows,
                          (long long)c, (long long)r, (long long)j, (double)ggot[i], (double)gref[i]);
                r = rows;
                break;
            }
        }
    }
    free(x), free(lab), free(lref), free(lgot), free(gref), free(ggot);
}

Test(ew_float, cross_entropy_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the float paths are off");
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        int64_t rows = lens[l] < 64 ? 301 : 37;
        check_xent(rows, lens[l], 0.0, 11 * l);
        check_xent(rows, lens[l], 0.1, 13 * l + 1);
    }
}

/* ---- layer norm: double arithmetic, row sums in 8 lanes ------------------------ */

/* Tolerance: a float ULP of the element (the reference's double result and
 * ours may round to neighbouring floats) plus 1e-9 of the output's largest
 * value: reordering a double sum of dim terms moves it by about
 * dim * 2^-53 of the terms' magnitude, which only shows where the result
 * cancels, and then stays far under a float ULP of the largest output. */
static void check_ln(ct_op op, int which, bool has_w, bool has_b, int64_t rows, int64_t dim, uint64_t seed) {
    uint64_t s = seed;
    const int64_t n = rows * dim;
    float *x = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
    float *w = malloc((size_t)dim * sizeof(float)), *b = malloc((size_t)dim * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        double off = r % 4 == 3 ? 100 * (unit(&s) - 0.5) : 0; /* a mean large next to the spread */
        for (int64_t j = 0; j < dim; j++) {
            x[r * dim + j] = (float)(off + draw(&s, -3, 1, false));
            dy[r * dim + j] = draw(&s, -3, 1, false);
        }
    }
    for (int64_t j = 0; j < dim; j++) w[j] = draw(&s, -1, 0.5, false), b[j] = draw(&s, -2, 0, false);
    ct_attrs a = {.eps = 1e-5, .has_weight = has_w, .has_bias = has_b, .which = which};
    ct_shape sh = {2, {rows, dim}}, sv = {1, {dim}};
    ct_tview in[3];
    int n_in = 0;
    in[n_in++] = view(x, sh);
    if (op == CT_OP_LAYER_NORM_GRAD) in[n_in++] = view(dy, sh);
    if (has_w && (op == CT_OP_LAYER_NORM || which == CT_NORM_GRAD_X)) in[n_in++] = view(w, sv);
    if (has_b && op == CT_OP_LAYER_NORM) in[n_in++] = view(b, sv);
    ct_shape os = op == CT_OP_LAYER_NORM || which == CT_NORM_GRAD_X ? sh : sv;
    const int64_t on = os.ndim == 2 ? n : dim;
    float *ref = run(op, &a, in, n_in, os, false, 1);
    float *got = run_threads(op, &a, in, n_in, os, on, "layer norm");
    double big = 0;
    for (int64_t i = 0; i < on; i++) big = fmax(big, fabs(ref[i]));
    for (int64_t i = 0; i < on; i++)
        if (!close_to(got[i], ref[i], EPS * fabs(ref[i]) + 1e-9 * big)) {
            cr_expect(false, "layer norm op %d which %d [%lld x %lld] [%lld]: got %a want %a", (int)op, which,
                      (long long)rows, (long long)dim, (long long)i, (double)got[i], (double)ref[i]);
            break;
        }
    free(x), free(dy), free(w), free(b), free(ref), free(got);
}

Test(ew_float, layer_norm_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the near-reference paths are off");
    static const int64_t dims[] = {1, 7, 8, 9, 31, 128, 129, 1031};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int64_t dim = dims[d], rows = dim < 64 ? 997 : 67;
        const uint64_t sd = 100 * d;
        check_ln(CT_OP_LAYER_NORM, 0, true, true, rows, dim, sd + 1);
        check_ln(CT_OP_LAYER_NORM, 0, false, false, rows, dim, sd + 2);
        check_ln(CT_OP_LAYER_NORM_GRAD, CT_NORM_GRAD_X, true, false, rows, dim, sd + 3);
        check_ln(CT_OP_LAYER_NORM_GRAD, CT_NORM_GRAD_X, false, false, rows, dim, sd + 4);
        check_ln(CT_OP_LAYER_NORM_GRAD, CT_NORM_GRAD_WEIGHT, true, false, rows, dim, sd + 5);
        check_ln(CT_OP_LAYER_NORM_GRAD, CT_NORM_GRAD_BIAS, false, true, rows, dim, sd + 6);
    }
}

/* ---- the convolution's bias gradient: per-channel sums in lanes ---------- */

static void check_conv_bias(int64_t n, int64_t o, int64_t h, int64_t w, uint64_t seed) {
    uint64_t s = seed;
    const int64_t numel = n * o * h * w;
    float *dy = malloc((size_t)numel * sizeof(float));
    double *mag = calloc((size_t)o, sizeof(double));
    for (int64_t i = 0; i < numel; i++) {
        dy[i] = draw(&s, -3, 1, false);
        mag[i / (h * w) % o] += fabs(dy[i]);
    }
    ct_attrs a = {0};
    ct_tview in[1] = {view(dy, (ct_shape){4, {n, o, h, w}})};
    ct_shape os = {1, {o}};
    float *ref = run(CT_OP_CONV2D_GRAD_BIAS, &a, in, 1, os, false, 1);
    float *got = run_threads(CT_OP_CONV2D_GRAD_BIAS, &a, in, 1, os, o, "conv2d_grad_bias");
    for (int64_t c = 0; c < o; c++)
        if (!close_to(got[c], ref[c], EPS * fabs(ref[c]) + 1e-12 * mag[c])) {
            cr_expect(false, "conv2d_grad_bias [%lld, %lld, %lld, %lld] channel %lld: got %a want %a", (long long)n,
                      (long long)o, (long long)h, (long long)w, (long long)c, (double)got[c], (double)ref[c]);
            break;
        }
    free(dy), free(mag), free(ref), free(got);
}

Test(ew_float, conv_bias_grad_near_reference) {
    if (!ct_cpu_float_math()) cr_skip_test("no SLEEF: the near-reference paths are off");
    check_conv_bias(128, 32, 24, 24, 1); /* cnn-mnist's conv1 */
    check_conv_bias(7, 33, 7, 9, 2);     /* a run that is not a multiple of the lanes */
    check_conv_bias(3, 5, 1, 1, 3);
    check_conv_bias(2, 17, 1, 31, 4);
    check_conv_bias(1, 1, 1, 1, 5);
}
