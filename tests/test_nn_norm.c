/* Normalisation layers (ctrain/nn.h): batch norm (parameters and buffers,
 * the training forward against the textbook formula, running statistics:
 * update, evaluation, save and load; F16 input) and layer norm (forward
 * with and without affine parameters, parameter gradients over long rows,
 * BF16 input). The other layers and every layer's errors are in test_nn.c.
 *
 * Inputs are fresh random values (never zero) from a Philox stream; the
 * gradients are checked in test_gradcheck.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ctrain/ctrain.h>

#include "nn_layers.h"

TestSuite(nn, .timeout = 120);

/* ---- batch norm --------------------------------------------------------- */

/* x [N, C, S] (S = product of the trailing axes): per-channel mean and
 * variance, biased and unbiased. */
static void bn_stats(const double *x, int64_t n, int64_t c, int64_t s, double *mean, double *var_b, double *var_u) {
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < s; j++) sum += x[(i * c + ch) * s + j];
        double m = sum / (double)(n * s);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < s; j++) sq += (x[(i * c + ch) * s + j] - m) * (x[(i * c + ch) * s + j] - m);
        mean[ch] = m;
        var_b[ch] = sq / (double)(n * s);
        if (var_u) var_u[ch] = sq / (double)(n * s - 1);
    }
}

static void bn_apply(const double *x, int64_t n, int64_t c, int64_t s, const double *mean, const double *var,
                     const double *w, const double *b, double eps, double *y) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t j = 0; j < s; j++) {
                int64_t k = (i * c + ch) * s + j;
                y[k] = (x[k] - mean[ch]) / sqrt(var[ch] + eps) * w[ch] + b[ch];
            }
}

static void check_bn_training_forward(ct_shape xs) {
    int64_t n = xs.dim[0], c = xs.dim[1], numel = ct_shape_numel(xs), s = numel / (n * c);
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, xs);
    ct_node y = ct_batch_norm(g, "bn", x, 0.0, 0.0);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    expect_param(g, "bn.weight", "param", S1(c));
    expect_param(g, "bn.bias", "param", S1(c));
    expect_param(g, "bn.running_mean", "buffer", S1(c));
    expect_param(g, "bn.running_var", "buffer", S1(c));
    cr_assert_eq(ct_graph_num_params(g), 2);
    cr_assert_eq(ct_graph_num_buffers(g), 2);
    ct_program *p = compile1(g, y);
    /* PyTorch's initial values: weight 1, bias 0, mean 0, var 1 */
    double init[4][8];
    const char *names[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    const double want_init[4] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(ct_program_get_param(p, names[k], init[k], (size_t)c * sizeof(double)), CT_OK, "%s",
                     ct_last_error());
        for (int64_t i = 0; i < c; i++) cr_assert_eq(init[k][i], want_init[k], "%s[%lld]", names[k], (long long)i);
    }
    /* random affine parameters, so they are really applied */
    double *w = rand_new((size_t)c, 21, 0.5, 2), *b = rand_new((size_t)c, 22, -1, 1);
    cr_assert_eq(ct_program_set_param(p, "bn.weight", w, (size_t)c * sizeof(double)), CT_OK);
    cr_assert_eq(ct_program_set_param(p, "bn.bias", b, (size_t)c * sizeof(double)), CT_OK);
    double *xv = rand_new((size_t)numel, 23, -3, 5), *got = malloc((size_t)numel * sizeof(double)),
           *want = malloc((size_t)numel * sizeof(double));
    cr_assert(got && want);
    cr_assert_eq(ct_program_set_input(p, "x", xv, (size_t)numel * sizeof(double)), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, got, (size_t)numel * sizeof(double)), CT_OK);
    double mean[8], var[8];
    bn_stats(xv, n, c, s, mean, var, NULL);
    bn_apply(xv, n, c, s, mean, var, w, b, 1e-5, want);
    close_all(got, want, (size_t)numel, 1e-12, "batch_norm y");
    free(w);
    free(b);
    free(xv);
    free(got);
    free(want);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, batch_norm_training_forward_is_the_textbook_formula) {
    check_bn_training_forward(S2(8, 3));
    check_bn_training_forward(S3(4, 3, 5));
    check_bn_training_forward(S4(2, 3, 2, 3));
}

/* Three training runs, each on a new batch, then evaluation, a save and a
 * load; momentum 0.3 and eps 1e-3 given explicitly. */
Test(nn, batch_norm_running_stats_eval_and_save_load) {
    const int64_t n = 6, c = 4, l = 3, numel = n * c * l;
    const double momentum = 0.3, eps = 1e-3;
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 99);
    ct_node x = ct_input(g, "x", CT_F64, S3(n, c, l));
    ct_node y = ct_batch_norm(g, "bn", x, momentum, eps);
    ct_program *p = compile1(g, y);
    double *w = rand_new((size_t)c, 31, 0.5, 2), *b = rand_new((size_t)c, 32, -1, 1);
    cr_assert_eq(ct_program_set_param(p, "bn.weight", w, (size_t)c * sizeof(double)), CT_OK);
    cr_assert_eq(ct_program_set_param(p, "bn.bias", b, (size_t)c * sizeof(double)), CT_OK);

    double rm[4] = {0, 0, 0, 0}, rv[4] = {1, 1, 1, 1};
    double xv[72], got[72], want[72];
    for (int run = 0; run < 3; run++) {
        /* a different batch each run, shifted per run so the means differ */
        rand_fill(xv, (size_t)numel, 40 + (uint64_t)run, -2 + run, 3 + 2 * run);
        cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
        run_ok(p);
        double mean[4], var_b[4], var_u[4];
        bn_stats(xv, n, c, l, mean, var_b, var_u);
        for (int i = 0; i < c; i++) {
            rm[i] = (1 - momentum) * rm[i] + momentum * mean[i];
            rv[i] = (1 - momentum) * rv[i] + momentum * var_u[i]; /* unbiased, as PyTorch */
        }
    }
    double grm[4], grv[4];
    cr_assert_eq(ct_program_get_param(p, "bn.running_mean", grm, sizeof grm), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "bn.running_var", grv, sizeof grv), CT_OK);
    close_all(grm, rm, 4, 1e-13, "running_mean");
    close_all(grv, rv, 4, 1e-13, "running_var");

    /* Evaluation: the running statistics normalise, and stay as they are. */
    ct_program_set_training(p, false);
    rand_fill(xv, (size_t)numel, 50, -4, 4);
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, got, sizeof got), CT_OK);
    bn_apply(xv, n, c, l, rm, rv, w, b, eps, want);
    close_all(got, want, (size_t)numel, 1e-12, "batch_norm eval y");
    double after[4];
    cr_assert_eq(ct_program_get_param(p, "bn.running_mean", after, sizeof after), CT_OK);
    cr_assert(memcmp(after, grm, sizeof after) == 0, "evaluation moved running_mean");
    cr_assert_eq(ct_program_get_param(p, "bn.running_var", after, sizeof after), CT_OK);
    cr_assert(memcmp(after, grv, sizeof after) == 0, "evaluation moved running_var");

    /* An evaluation graph for a batch of one shares the trained state. */
    ct_graph *ge = ct_graph_new();
    ct_node xe = ct_input(ge, "x", CT_F64, S3(1, c, l));
    ct_node ye = ct_batch_norm(ge, "bn", xe, momentum, eps);
    cr_assert_eq(ct_graph_status(ge), CT_OK, "%s", ct_graph_error(ge));
    ct_program *pe = ct_compile(ge, &(ct_compile_opts){.outputs = &ye, .n_outputs = 1, .share_params = p});
    cr_assert_not_null(pe, "%s", ct_last_error());
    ct_program_set_training(pe, false);
    cr_assert_eq(ct_program_set_input(pe, "x", xv, (size_t)(c * l) * sizeof(double)), CT_OK);
    run_ok(pe);
    double got1[12];
    cr_assert_eq(ct_program_read(pe, ye, got1, sizeof got1), CT_OK);
    close_all(got1, want, 12, 1e-12, "batch of one, eval");
    /* ... and training on one value per channel is refused, as in PyTorch */
    ct_program_set_training(pe, true);
    ct_graph *g1 = ct_graph_new();
    ct_node x1 = ct_input(g1, "x", CT_F64, S2(1, c));
    ct_node y1 = ct_batch_norm(g1, "bn", x1, 0, 0);
    ct_program *p1 = compile1(g1, y1);
    cr_assert_eq(ct_program_set_input(p1, "x", xv, (size_t)c * sizeof(double)), CT_OK);
    cr_assert_eq(ct_program_run(p1), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "more than 1 value per channel"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "[1, 4]"), "%s", ct_last_error());
    ct_program_set_training(p1, false);
    run_ok(p1);
    ct_program_free(p1);
    ct_graph_free(g1);

    /* Saved under their names with the parameters; loaded back into a
     * fresh program, whose buffers start at zeros and ones. */
    char path[96];
    snprintf(path, sizeof path, "/tmp/ctrain_test_nn_%d.safetensors", (int)getpid());
    cr_assert_eq(ct_save_weights(g, p, path), CT_OK, "%s", ct_last_error());
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    cr_assert_eq(ct_st_count(f), 4);
    const char *names[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    const double *vals[4] = {w, b, grm, grv};
    for (int k = 0; k < 4; k++) {
        int i = ct_st_find(f, names[k]);
        cr_assert_geq(i, 0, "'%s' is not in the file", names[k]);
        double v[4];
        cr_assert_eq(ct_st_read(f, i, CT_F64, v, sizeof v), CT_OK, "%s", ct_last_error());
        close_all(v, vals[k], 4, 0, names[k]);
    }
    ct_st_close(f);
    ct_program *q = compile1(g, y);
    double fresh[4];
    cr_assert_eq(ct_program_get_param(q, "bn.running_var", fresh, sizeof fresh), CT_OK);
    for (int i = 0; i < 4; i++) cr_assert_eq(fresh[i], 1.0);
    int loaded = 0;
    cr_assert_eq(ct_load_weights(g, q, path, &(ct_load_opts){.loaded = &loaded}), CT_OK, "%s", ct_last_error());
    cr_assert_eq(loaded, 4);
    for (int k = 0; k < 4; k++) {
        double v[4];
        cr_assert_eq(ct_program_get_param(q, names[k], v, sizeof v), CT_OK);
        close_all(v, vals[k], 4, 0, names[k]);
    }
    remove(path);

    free(w);
    free(b);
    ct_program_free(q);
    ct_program_free(pe);
    ct_graph_free(ge);
    ct_program_free(p);
    ct_graph_free(g);
}

/* F16 activations with F32 parameters and buffers: the forward in F16
 * storage, and the backward's parameter gradients in F32. With loss =
 * sum(y), dbias is the count per channel and dweight = sum(xhat) = 0. */
Test(nn, batch_norm_f16_input) {
    const int64_t n = 5, c = 3, l = 4, numel = n * c * l;
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F16, S3(n, c, l));
    ct_node y = ct_batch_norm(g, "bn", x, 0, 0);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, y), CT_F16);
    cr_assert_eq(ct_node_dtype(g, ct_find(g, "bn.weight")), CT_F32);
    cr_assert_eq(ct_node_dtype(g, ct_find(g, "bn.running_var")), CT_F32);
    ct_node loss = ct_sum(g, ct_cast(g, y, CT_F32), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gb = ct_grad(g, ct_find(g, "bn.bias")), gw = ct_grad(g, ct_find(g, "bn.weight"));
    ct_node outs[3] = {y, gb, gw};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 3, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    double *xd = rand_new((size_t)numel, 61, -2, 2), xr[60], want[60], mean[3], var[3];
    const double one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    uint16_t xh[60], yh[60];
    for (int i = 0; i < numel; i++) {
        xh[i] = ct_f32_to_f16((float)xd[i]);
        xr[i] = ct_f16_to_f32(xh[i]);
    }
    cr_assert_eq(ct_program_set_input(p, "x", xh, sizeof xh), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, yh, sizeof yh), CT_OK);
    bn_stats(xr, n, c, l, mean, var, NULL);
    bn_apply(xr, n, c, l, mean, var, one, zero, 1e-5, want);
    for (int i = 0; i < numel; i++)
        cr_assert(fabs(ct_f16_to_f32(yh[i]) - want[i]) <= 2e-3 * fmax(1, fabs(want[i])), "y[%d] = %g, want %g", i,
                  ct_f16_to_f32(yh[i]), want[i]);
    float db[3], dw[3];
    cr_assert_eq(ct_program_read(p, gb, db, sizeof db), CT_OK);
    cr_assert_eq(ct_program_read(p, gw, dw, sizeof dw), CT_OK);
    for (int i = 0; i < c; i++) {
        cr_assert_eq(db[i], (float)(n * l), "dbias[%d] = %g", i, db[i]);
        cr_assert(fabsf(dw[i]) < 1e-4f, "dweight[%d] = %g", i, dw[i]);
    }
    free(xd);
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- layer norm --------------------------------------------------------- */

static void ln_ref(const double *x, int64_t rows, int64_t d, const double *w, const double *b, double eps, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < d; j++) sum += x[r * d + j];
        double m = sum / (double)d;
        for (int64_t j = 0; j < d; j++) sq += (x[r * d + j] - m) * (x[r * d + j] - m);
        double rstd = 1.0 / sqrt(sq / (double)d + eps);
        for (int64_t j = 0; j < d; j++)
            y[r * d + j] = (x[r * d + j] - m) * rstd * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
    }
}

static void check_layer_norm(bool affine) {
    const int64_t rows = 12, d = 6;
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, S3(3, 4, d));
    ct_node y = ct_layer_norm(g, "ln", x, 1e-4, affine);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    if (affine) {
        expect_param(g, "ln.weight", "param", S1(d));
        expect_param(g, "ln.bias", "param", S1(d));
    } else {
        cr_assert_eq(ct_graph_num_params(g), 0);
    }
    ct_program *p = compile1(g, y);
    double *w = rand_new((size_t)d, 71, 0.5, 2), *b = rand_new((size_t)d, 72, -1, 1);
    if (affine) {
        double init[6];
        cr_assert_eq(ct_program_get_param(p, "ln.weight", init, sizeof init), CT_OK);
        for (int j = 0; j < d; j++) cr_assert_eq(init[j], 1.0);
        cr_assert_eq(ct_program_get_param(p, "ln.bias", init, sizeof init), CT_OK);
        for (int j = 0; j < d; j++) cr_assert_eq(init[j], 0.0);
        cr_assert_eq(ct_program_set_param(p, "ln.weight", w, (size_t)d * sizeof(double)), CT_OK);
        cr_assert_eq(ct_program_set_param(p, "ln.bias", b, (size_t)d * sizeof(double)), CT_OK);
    }
    double *xv = rand_new((size_t)(rows * d), 73, -3, 6), got[72], want[72];
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof got), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, got, sizeof got), CT_OK);
    ln_ref(xv, rows, d, affine ? w : NULL, affine ? b : NULL, 1e-4, want);
    close_all(got, want, (size_t)(rows * d), 1e-12, affine ? "layer_norm y" : "layer_norm y (no affine)");
    free(w);
    free(b);
    free(xv);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, layer_norm_forward) {
    check_layer_norm(true);
    check_layer_norm(false);
}

/* A row longer than the kernel's accumulator block (2048): the parameter
 * gradients sum over rows block by block. loss = sum(y * r) gives
 * dbias = sum over rows of r and dweight = sum over rows of r * xhat. */
Test(nn, layer_norm_long_rows_parameter_gradients) {
    const int64_t rows = 3, d = 4100;
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, S2(rows, d));
    ct_node y = ct_layer_norm(g, "ln", x, 0, true);
    double *rv = rand_new((size_t)(rows * d), 81, -1, 1);
    ct_node loss = ct_sum(g, ct_mul(g, y, ct_constant(g, CT_F64, S2(rows, d), rv)), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gw = ct_grad(g, ct_find(g, "ln.weight")), gb = ct_grad(g, ct_find(g, "ln.bias"));
    ct_node outs[2] = {gw, gb};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    double *xv = rand_new((size_t)(rows * d), 82, -2, 3);
    cr_assert_eq(ct_program_set_input(p, "x", xv, (size_t)(rows * d) * sizeof(double)), CT_OK);
    run_ok(p);
    double *xhat = malloc((size_t)(rows * d) * sizeof(double)), *dw = malloc((size_t)d * sizeof(double)),
           *db = malloc((size_t)d * sizeof(double));
    cr_assert(xhat && dw && db);
    ln_ref(xv, rows, d, NULL, NULL, 1e-5, xhat);
    cr_assert_eq(ct_program_read(p, gw, dw, (size_t)d * sizeof(double)), CT_OK);
    cr_assert_eq(ct_program_read(p, gb, db, (size_t)d * sizeof(double)), CT_OK);
    for (int64_t j = 0; j < d; j++) {
        double sw = 0, sb = 0;
        for (int64_t r = 0; r < rows; r++) {
            sw += rv[r * d + j] * xhat[r * d + j];
            sb += rv[r * d + j];
        }
        cr_assert(fabs(dw[j] - sw) < 1e-12 && fabs(db[j] - sb) < 1e-12, "feature %lld: dw %g (want %g), db %g (want %g)",
                  (long long)j, dw[j], sw, db[j], sb);
    }
    free(rv);
    free(xv);
    free(xhat);
    free(dw);
    free(db);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, layer_norm_bf16_input) {
    const int64_t rows = 4, d = 8;
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_BF16, S2(rows, d));
    ct_node y = ct_layer_norm(g, "ln", x, 0, true);
    cr_assert_eq(ct_node_dtype(g, y), CT_BF16);
    ct_program *p = compile1(g, y);
    double *xd = rand_new((size_t)(rows * d), 91, -2, 2), xr[32], want[32];
    uint16_t xh[32], yh[32];
    for (int i = 0; i < rows * d; i++) {
        xh[i] = ct_f32_to_bf16((float)xd[i]);
        xr[i] = ct_bf16_to_f32(xh[i]);
    }
    cr_assert_eq(ct_program_set_input(p, "x", xh, sizeof xh), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, yh, sizeof yh), CT_OK);
    ln_ref(xr, rows, d, NULL, NULL, 1e-5, want);
    for (int i = 0; i < rows * d; i++)
        cr_assert(fabs(ct_bf16_to_f32(yh[i]) - want[i]) <= 1e-2 * fmax(1, fabs(want[i])), "y[%d] = %g, want %g", i,
                  ct_bf16_to_f32(yh[i]), want[i]);
    free(xd);
    ct_program_free(p);
    ct_graph_free(g);
}
