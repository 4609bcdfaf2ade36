/* Gradient processing around the optimizers: clipping by norm and by
 * value, scaling, accumulation over micro-batches (equal to the full batch),
 * and the CPU backend hooks these and the optimizers run on (axpby, sumsq,
 * scale_clamp). On the small fixed problem of optim_problem.h, whose
 * gradient 2 c x + d is known in closed form. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>
#include <ctrain/optim.h>

#include "core/backend.h"
#include "optim_problem.h"

/* ---- clipping ----------------------------------------------------------- */

static void read_grads_ref(const problem *pr, double *out) {
    size_t n = ct_program_param_numel(pr->p);
    double *flat = malloc(n * sizeof *flat);
    cr_assert_eq(ct_program_read_grads(pr->p, flat, n * sizeof *flat), CT_OK);
    for (int k = 0; k < NP; k++) {
        size_t off = ct_program_param_offset(pr->p, pr->param[k]);
        for (int i = START[k]; i < START[k + 1]; i++) out[i] = flat[off + (size_t)(i - START[k])];
    }
    free(flat);
}

Test(optim, clip_grad_norm) {
    problem pr = make_problem(CT_F64);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    /* The program's own gradients are the baseline (the closed form 2cx + d
     * may round differently where the compiler fuses a multiply-add). */
    double g0[NV], g[NV], ss = 0, ss_formula = 0;
    read_grads_ref(&pr, g0);
    for (int i = 0; i < NV; i++) {
        double f = 2 * C[i] * X0[i] + D[i];
        expect_close("grad", i, g0[i], f, 1e-14);
        ss += g0[i] * g0[i];
        ss_formula += f * f;
    }
    double want_norm = sqrt(ss), norm = -1;
    expect_close("norm (closed form)", 0, want_norm, sqrt(ss_formula), 1e-13);

    /* Below the limit: untouched, norm reported. */
    cr_assert_eq(ct_clip_grad_norm(pr.p, want_norm * 2, &norm), CT_OK, "%s", ct_last_error());
    expect_close("norm", 0, norm, want_norm, 1e-14);
    read_grads_ref(&pr, g);
    for (int i = 0; i < NV; i++) cr_expect_eq(g[i], g0[i], "grad %d changed below the limit", i);

    /* Above: scaled by max_norm / (norm + 1e-6), PyTorch's factor. */
    double max_norm = 0.5;
    cr_assert_eq(ct_clip_grad_norm(pr.p, max_norm, &norm), CT_OK);
    expect_close("norm", 0, norm, want_norm, 1e-14);
    read_grads_ref(&pr, g);
    double coef = max_norm / (want_norm + 1e-6), after = 0;
    for (int i = 0; i < NV; i++) {
        expect_close("clipped grad", i, g[i], g0[i] * coef, 1e-14);
        after += g[i] * g[i];
    }
    cr_expect(sqrt(after) <= max_norm, "norm after clipping %g > %g", sqrt(after), max_norm);
    cr_expect_eq(ct_clip_grad_norm(pr.p, -1, NULL), CT_ERR_INVALID_ARG);
    free_problem(&pr);
}

Test(optim, clip_grad_norm_nan) {
    problem pr = make_problem(CT_F64);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    /* On the CPU the flat gradient buffer is host memory. */
    double *flat = ct_program_grads(pr.p);
    size_t off = ct_program_param_offset(pr.p, pr.param[2]);
    flat[off + 1] = NAN;
    double before[NV], after[NV], norm = 0;
    read_grads_ref(&pr, before);
    cr_expect_eq(ct_clip_grad_norm(pr.p, 0.1, &norm), CT_ERR_NUMERIC);
    cr_expect(strstr(ct_last_error(), "not finite") != NULL, "%s", ct_last_error());
    cr_expect(isnan(norm));
    read_grads_ref(&pr, after);
    for (int i = 0; i < NV; i++)
        cr_expect(memcmp(&before[i], &after[i], sizeof(double)) == 0, "grad %d touched after a NaN norm", i);
    flat[off + 1] = INFINITY;
    cr_expect_eq(ct_clip_grad_norm(pr.p, 0.1, &norm), CT_ERR_NUMERIC);
    free_problem(&pr);
}

Test(optim, clip_grad_value_and_scale) {
    problem pr = make_problem(CT_F64);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    double g0[NV], g[NV];
    read_grads_ref(&pr, g0);
    cr_assert_eq(ct_clip_grad_value(pr.p, 0.5), CT_OK, "%s", ct_last_error());
    read_grads_ref(&pr, g);
    for (int i = 0; i < NV; i++) cr_expect_eq(g[i], fmin(0.5, fmax(-0.5, g0[i])), "grad %d", i);
    cr_expect_eq(ct_clip_grad_value(pr.p, 0), CT_ERR_INVALID_ARG);

    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    cr_assert_eq(ct_scale_grads(pr.p, 0.25), CT_OK);
    read_grads_ref(&pr, g);
    for (int i = 0; i < NV; i++) cr_expect_eq(g[i], g0[i] * 0.25, "scaled grad %d", i);
    cr_expect_eq(ct_scale_grads(pr.p, NAN), CT_ERR_INVALID_ARG);
    free_problem(&pr);
}

/* ---- gradient accumulation --------------------------------------------- */

/* A linear model with mean-squared error over a batch of B rows. */
static ct_graph *mse_graph(int B, ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, (ct_shape){2, {B, 3}});
    ct_node y = ct_input(g, "y", CT_F64, (ct_shape){2, {B, 2}});
    ct_node w = ct_param(g, "w", CT_F64, (ct_shape){2, {3, 2}}, ct_init_uniform(-1, 1));
    ct_node b = ct_param(g, "b", CT_F64, (ct_shape){1, {2}}, ct_init_uniform(-1, 1));
    *loss = ct_mse(g, ct_add(g, ct_matmul(g, x, w, false, false), b), y);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

Test(optim, grad_accumulation) {
    enum { MICRO = 2, N_MICRO = 3, FULL = MICRO * N_MICRO };
    double xs[FULL * 3], ys[FULL * 2];
    for (int i = 0; i < FULL * 3; i++) xs[i] = sin(1.0 + i * 0.7);
    for (int i = 0; i < FULL * 2; i++) ys[i] = cos(0.3 + i * 1.3);

    ct_node lm, lf;
    ct_graph *gm = mse_graph(MICRO, &lm), *gf = mse_graph(FULL, &lf);
    ct_program *pm = ct_compile(gm, &(ct_compile_opts){.outputs = &lm, .n_outputs = 1, .grads = true});
    cr_assert_not_null(pm, "%s", ct_last_error());
    ct_program *pf =
        ct_compile(gf, &(ct_compile_opts){.outputs = &lf, .n_outputs = 1, .grads = true, .share_params = pm});
    cr_assert_not_null(pf, "%s", ct_last_error());

    ct_grad_accum *acc = ct_grad_accum_new(pm);
    cr_assert_not_null(acc, "%s", ct_last_error());
    cr_expect_eq(ct_grad_accum_finish(acc), CT_ERR_STATE, "finish with nothing added");
    /* Twice: the second round checks that finish started a fresh sum. */
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < N_MICRO; k++) {
            cr_assert_eq(ct_program_set_input(pm, "x", xs + k * MICRO * 3, MICRO * 3 * sizeof(double)), CT_OK);
            cr_assert_eq(ct_program_set_input(pm, "y", ys + k * MICRO * 2, MICRO * 2 * sizeof(double)), CT_OK);
            cr_assert_eq(ct_program_run(pm), CT_OK, "%s", ct_last_error());
            cr_assert_eq(ct_grad_accum_add(acc), CT_OK, "%s", ct_last_error());
        }
        cr_expect_eq(ct_grad_accum_count(acc), N_MICRO);
        cr_assert_eq(ct_grad_accum_finish(acc), CT_OK, "%s", ct_last_error());
        cr_expect_eq(ct_grad_accum_count(acc), 0);
    }
    cr_assert_eq(ct_program_set_input(pf, "x", xs, sizeof xs), CT_OK);
    cr_assert_eq(ct_program_set_input(pf, "y", ys, sizeof ys), CT_OK);
    cr_assert_eq(ct_program_run(pf), CT_OK, "%s", ct_last_error());

    size_t n = ct_program_param_numel(pm);
    double *ga = malloc(n * sizeof *ga), *gfull = malloc(n * sizeof *gfull);
    cr_assert_eq(ct_program_read_grads(pm, ga, n * sizeof *ga), CT_OK);
    cr_assert_eq(ct_program_read_grads(pf, gfull, n * sizeof *gfull), CT_OK);
    double biggest = 0;
    for (size_t i = 0; i < n; i++) {
        cr_expect(fabs(ga[i] - gfull[i]) <= 1e-12 * fmax(1e-3, fabs(gfull[i])),
                  "grad %zu: accumulated %.17g, full batch %.17g", i, ga[i], gfull[i]);
        biggest = fmax(biggest, fabs(gfull[i]));
    }
    cr_expect_gt(biggest, 1e-3, "gradients are all zero: the test shows nothing");
    free(ga);
    free(gfull);
    ct_grad_accum_free(acc);
    ct_program_free(pf);
    ct_program_free(pm);
    ct_graph_free(gf);
    ct_graph_free(gm);
}

/* ---- the CPU hooks directly --------------------------------------------- */

Test(optim, cpu_hooks) {
    const ct_backend *be = ct_cpu_backend();
    cr_assert(be->optim_update && be->sumsq && be->scale_clamp && be->axpby, "CPU hooks not registered");
    /* axpby with b = 0 never reads y (NaN there must not leak). */
    double x[4] = {1, -2, 3, 0.5}, y[4] = {NAN, NAN, INFINITY, 7};
    cr_assert_eq(be->axpby(2.0, x, 0.0, y, CT_F64, 4), CT_OK);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], 2 * x[i]);
    cr_assert_eq(be->axpby(1.0, x, -0.5, y, CT_F64, 4), CT_OK);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], x[i] + -0.5 * 2 * x[i]);
    float xf[3] = {1.5f, -1, 2}, yf[3] = {1, 1, 1};
    cr_assert_eq(be->axpby(1.0, xf, 1.0, yf, CT_F32, 3), CT_OK);
    cr_expect_eq(yf[0], 2.5f);
    cr_expect_eq(be->axpby(1.0, x, 1.0, y, CT_I32, 1), CT_ERR_DTYPE);

    /* sumsq over a buffer large enough to run in parallel: close to a
     * serial sum (the chunked order rounds differently), identical from one
     * call to the next, and the finite flag set by inf and NaN. */
    size_t n = 200003;
    float *big = malloc(n * sizeof *big);
    double serial = 0;
    for (size_t i = 0; i < n; i++) {
        big[i] = (float)sin((double)i);
        serial += (double)big[i] * big[i];
    }
    double ss = 0, ss2 = 0;
    bool fin = false;
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss, &fin), CT_OK);
    cr_expect(fin);
    cr_expect(fabs(ss - serial) <= 1e-10 * serial, "sumsq %.17g vs %.17g", ss, serial);
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss2, &fin), CT_OK);
    cr_expect_eq(ss, ss2, "sumsq is not reproducible");
    big[n - 1] = INFINITY;
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss, &fin), CT_OK);
    cr_expect(!fin);
    big[n - 1] = NAN;
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss, &fin), CT_OK);
    cr_expect(!fin);
    free(big);

    /* scale_clamp: NaN passes through the clamp, as torch.clamp's does. */
    double v[4] = {3, -3, 0.1, NAN};
    cr_assert_eq(be->scale_clamp(v, CT_F64, 4, 2.0, 1.0), CT_OK);
    cr_expect_eq(v[0], 1.0);
    cr_expect_eq(v[1], -1.0);
    cr_expect_eq(v[2], 0.2);
    cr_expect(isnan(v[3]));
}
