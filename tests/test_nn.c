/* Layers (ctrain/nn.h): names and shapes of their parameters, forward
 * values against formulas computed here, PyTorch's initialisations, batch
 * norm's running statistics (update, evaluation, save and load), every
 * activation kind, and the errors a layer reports.
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

#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

TestSuite(nn, .timeout = 120);

/* Values in [lo, hi] with |v| >= 0.05: never zero. */
static void rand_fill(double *v, size_t n, uint64_t seed, double lo, double hi) {
    for (size_t i = 0; i < n; i++) {
        uint64_t k = i;
        double x;
        do {
            x = lo + (hi - lo) * ct_philox_uniform(seed, 3, 0, k);
            k += n;
        } while (fabs(x) < 0.05);
        v[i] = x;
    }
}

static double *rand_new(size_t n, uint64_t seed, double lo, double hi) {
    double *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    rand_fill(v, n, seed, lo, hi);
    return v;
}

static ct_program *compile1(ct_graph *g, ct_node out) {
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &out, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    return p;
}

static void run_ok(ct_program *p) { cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error()); }

static void expect_param(ct_graph *g, const char *name, const char *op, ct_shape shape) {
    ct_node n = ct_find(g, name);
    cr_assert_neq(n, CT_NO_NODE, "no node '%s'", name);
    cr_assert_str_eq(ct_node_op(g, n), op, "'%s' is a %s, want %s", name, ct_node_op(g, n), op);
    char a[96], b[96];
    cr_assert(ct_shape_equal(ct_node_shape(g, n), shape), "'%s' is %s, want %s", name,
              ct_shape_str(ct_node_shape(g, n), a, sizeof a), ct_shape_str(shape, b, sizeof b));
}

static void close_all(const double *got, const double *want, size_t n, double tol, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])), "%s[%zu] = %.15g, want %.15g", what, i,
                  got[i], want[i]);
}

/* The graph's error message contains `part`, and the builder returned CT_NO_NODE. */
static void expect_error(ct_graph *g, ct_node n, ct_status st, const char *part) {
    cr_assert_eq(n, CT_NO_NODE, "the builder should fail (%s)", part);
    cr_assert_eq(ct_graph_status(g), st, "status %d, want %d: %s", ct_graph_status(g), st, ct_graph_error(g));
    cr_assert(strstr(ct_graph_error(g), part), "message '%s' lacks '%s'", ct_graph_error(g), part);
    cr_assert(strstr(ct_last_error(), part), "ct_last_error '%s' lacks '%s'", ct_last_error(), part);
}

/* ---- linear ------------------------------------------------------------- */

/* y = x @ W^T + b on rows of x [rows, in]. */
static void linear_ref(const double *x, const double *w, const double *b, int64_t rows, int64_t in, int64_t out,
                       double *y) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < in; i++) s += x[r * in + i] * w[o * in + i];
            y[r * out + o] = s;
        }
}

static void check_linear(ct_shape xs, bool bias) {
    const int64_t in = xs.dim[xs.ndim - 1], out = 3;
    int64_t rows = ct_shape_numel(xs) / in;
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 11);
    ct_node x = ct_input(g, "x", CT_F64, xs);
    ct_node y = ct_linear(g, "fc1", x, out, bias, NULL);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    expect_param(g, "fc1.weight", "param", S2(out, in));
    if (bias)
        expect_param(g, "fc1.bias", "param", S1(out));
    else
        cr_assert_eq(ct_find(g, "fc1.bias"), CT_NO_NODE);
    cr_assert_eq(ct_graph_num_params(g), bias ? 2 : 1);
    ct_shape ys = xs;
    ys.dim[ys.ndim - 1] = out;
    cr_assert(ct_shape_equal(ct_node_shape(g, y), ys));
    cr_assert_eq(ct_node_dtype(g, y), CT_F64);

    ct_program *p = compile1(g, y);
    double *xv = rand_new((size_t)(rows * in), 101, -2, 2);
    double w[3 * 7], b[3], got[64], want[64];
    cr_assert_leq(in, 7);
    cr_assert_leq(rows * out, 64);
    cr_assert_eq(ct_program_get_param(p, "fc1.weight", w, (size_t)(out * in) * sizeof(double)), CT_OK);
    if (bias) cr_assert_eq(ct_program_get_param(p, "fc1.bias", b, sizeof b), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "x", xv, (size_t)(rows * in) * sizeof(double)), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, got, (size_t)(rows * out) * sizeof(double)), CT_OK, "%s", ct_last_error());
    linear_ref(xv, w, bias ? b : NULL, rows, in, out, want);
    close_all(got, want, (size_t)(rows * out), 1e-13, "linear y");
    free(xv);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, linear_equals_x_wt_plus_b) {
    check_linear(S2(5, 7), true);
    check_linear(S3(2, 3, 7), true);
    check_linear(S1(7), true);
    check_linear(S2(4, 6), false);
}

Test(nn, linear_given_init_and_f32_params) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S2(2, 4));
    ct_init c = ct_init_constant(0.5);
    ct_node y = ct_linear(g, "proj", x, 3, true, &c);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, ct_find(g, "proj.weight")), CT_F32, "an f32 input gets f32 parameters");
    ct_program *p = compile1(g, y);
    float w[12], b[3];
    cr_assert_eq(ct_program_get_param(p, "proj.weight", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "proj.bias", b, sizeof b), CT_OK);
    for (int i = 0; i < 12; i++) cr_assert_eq(w[i], 0.5f);
    /* the bias keeps PyTorch's default U(-1/sqrt(in), 1/sqrt(in)) */
    for (int i = 0; i < 3; i++) cr_assert(fabsf(b[i]) <= 0.5f && b[i] != 0.5f, "bias %g", b[i]);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, linear_default_init_is_pytorch) {
    const int64_t in = 400, out = 500;
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 5);
    ct_node x = ct_input(g, "x", CT_F32, S2(2, in));
    ct_node y = ct_linear(g, "big", x, out, true, NULL);
    ct_program *p = compile1(g, y);
    size_t nw = (size_t)(in * out);
    float *w = malloc(nw * sizeof *w), b[500];
    cr_assert_not_null(w);
    cr_assert_eq(ct_program_get_param(p, "big.weight", w, nw * sizeof *w), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "big.bias", b, sizeof b), CT_OK);
    double bound = 1.0 / sqrt((double)in), sum = 0, sq = 0, maxabs = 0;
    for (size_t i = 0; i < nw; i++) {
        cr_assert(fabs(w[i]) <= bound, "weight %zu = %g outside +-%g", i, w[i], bound);
        sum += w[i];
        sq += (double)w[i] * w[i];
        maxabs = fmax(maxabs, fabs(w[i]));
    }
    double mean = sum / (double)nw, sd = sqrt(sq / (double)nw - mean * mean);
    double want_sd = 1.0 / sqrt(3.0 * (double)in); /* U(-a, a) has sd a / sqrt(3) */
    cr_assert(fabs(sd - want_sd) < 0.01 * want_sd, "weight sd %g, want %g", sd, want_sd);
    cr_assert(fabs(mean) < 0.01 * want_sd * 10, "weight mean %g", mean);
    cr_assert_gt(maxabs, 0.99 * bound, "the whole range is used");
    double bmax = 0;
    for (int i = 0; i < out; i++) {
        cr_assert(fabs(b[i]) <= bound, "bias %d = %g outside +-%g", i, b[i], bound);
        bmax = fmax(bmax, fabs(b[i]));
    }
    cr_assert_gt(bmax, 0.9 * bound);
    free(w);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, linear_same_name_shares_parameters) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, S2(3, 4));
    ct_node a = ct_linear(g, "fc", x, 4, true, NULL);
    ct_node b = ct_linear(g, "fc", a, 4, true, NULL);
    cr_assert_neq(b, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_graph_num_params(g), 2, "the second call reuses fc.weight and fc.bias");
    ct_program *p = compile1(g, b);
    double *xv = rand_new(12, 7, -1, 1), w[16], bias[4], h[12], want[12], got[12];
    cr_assert_eq(ct_program_get_param(p, "fc.weight", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "fc.bias", bias, sizeof bias), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "x", xv, 12 * sizeof(double)), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, b, got, sizeof got), CT_OK);
    linear_ref(xv, w, bias, 3, 4, 4, h);
    linear_ref(h, w, bias, 3, 4, 4, want);
    close_all(got, want, 12, 1e-13, "fc(fc(x))");
    free(xv);
    ct_program_free(p);
    ct_graph_free(g);
}

/* An F16 input multiplies with F32 master weights cast to F16. */
Test(nn, linear_f16_input) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F16, S2(3, 5));
    ct_node y = ct_linear(g, "fc", x, 2, true, NULL);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, y), CT_F16);
    cr_assert_eq(ct_node_dtype(g, ct_find(g, "fc.weight")), CT_F32);
    ct_program *p = compile1(g, y);
    double *xd = rand_new(15, 9, -1, 1), xr[15], w[10], b[2], want[6];
    uint16_t xh[15], yh[6];
    for (int i = 0; i < 15; i++) {
        xh[i] = ct_f32_to_f16((float)xd[i]);
        xr[i] = ct_f16_to_f32(xh[i]);
    }
    float wf[10], bf[2];
    cr_assert_eq(ct_program_get_param(p, "fc.weight", wf, sizeof wf), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "fc.bias", bf, sizeof bf), CT_OK);
    for (int i = 0; i < 10; i++) w[i] = wf[i];
    for (int i = 0; i < 2; i++) b[i] = bf[i];
    cr_assert_eq(ct_program_set_input(p, "x", xh, sizeof xh), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, yh, sizeof yh), CT_OK);
    linear_ref(xr, w, b, 3, 5, 2, want);
    for (int i = 0; i < 6; i++)
        cr_assert(fabs(ct_f16_to_f32(yh[i]) - want[i]) < 5e-3, "y[%d] = %g, want %g", i, ct_f16_to_f32(yh[i]), want[i]);
    free(xd);
    ct_program_free(p);
    ct_graph_free(g);
}

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

/* ---- embedding ---------------------------------------------------------- */

Test(nn, embedding_layer) {
    const int64_t num = 10, dim = 4;
    ct_graph *g = ct_graph_new();
    ct_node ix = ct_input(g, "ix", CT_I32, S2(2, 3));
    ct_node y = ct_embedding_layer(g, "tok", ix, num, dim);
    cr_assert_neq(y, CT_NO_NODE, "%s", ct_graph_error(g));
    expect_param(g, "tok.weight", "param", S2(num, dim));
    cr_assert(ct_shape_equal(ct_node_shape(g, y), S3(2, 3, dim)));
    cr_assert_eq(ct_node_dtype(g, y), CT_F32);
    ct_program *p = compile1(g, y);
    const int32_t idx[6] = {3, 0, 9, 3, 7, 1};
    float w[40], got[24];
    cr_assert_eq(ct_program_get_param(p, "tok.weight", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "ix", idx, sizeof idx), CT_OK);
    run_ok(p);
    cr_assert_eq(ct_program_read(p, y, got, sizeof got), CT_OK);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < dim; j++) cr_assert_eq(got[i * dim + j], w[idx[i] * dim + j], "row %d col %d", i, j);
    /* an index out of range is a run-time error */
    const int32_t bad[6] = {3, 0, 10, 3, 7, 1};
    cr_assert_eq(ct_program_set_input(p, "ix", bad, sizeof bad), CT_OK);
    cr_assert_neq(ct_program_run(p), CT_OK);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(nn, embedding_init_is_standard_normal) {
    const int64_t num = 1000, dim = 64;
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 3);
    ct_node ix = ct_input(g, "ix", CT_I32, S1(2));
    ct_node y = ct_embedding_layer(g, "emb", ix, num, dim);
    ct_program *p = compile1(g, y);
    size_t n = (size_t)(num * dim);
    float *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(ct_program_get_param(p, "emb.weight", w, n * sizeof *w), CT_OK);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        sum += w[i];
        sq += (double)w[i] * w[i];
    }
    double mean = sum / (double)n, sd = sqrt(sq / (double)n - mean * mean);
    cr_assert(fabs(mean) < 0.02, "mean %g", mean);
    cr_assert(fabs(sd - 1.0) < 0.02, "sd %g", sd);
    free(w);
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- activations -------------------------------------------------------- */

static double act_ref(const char *kind, double x) {
    if (!strcmp(kind, "relu")) return x > 0 ? x : 0;
    if (!strcmp(kind, "leaky_relu")) return x > 0 ? x : 0.01 * x;
    if (!strcmp(kind, "gelu")) return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    if (!strcmp(kind, "gelu_tanh")) return 0.5 * x * (1 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    if (!strcmp(kind, "tanh")) return tanh(x);
    if (!strcmp(kind, "sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(kind, "silu")) return x / (1 + exp(-x));
    if (!strcmp(kind, "identity")) return x;
    cr_assert_fail("no reference for %s", kind);
    return 0;
}

Test(nn, every_activation_kind) {
    static const char *const kinds[] = {"relu", "leaky_relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu", "identity"};
    double *xv = rand_new(40, 101, -4, 4);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        cr_assert(ct_activation_valid(kinds[k]), "%s", kinds[k]);
        ct_graph *g = ct_graph_new();
        ct_node x = ct_input(g, "x", CT_F64, S2(5, 8));
        ct_node y = ct_activation(g, x, kinds[k]);
        cr_assert_neq(y, CT_NO_NODE, "%s: %s", kinds[k], ct_graph_error(g));
        if (!strcmp(kinds[k], "identity")) cr_assert_eq(y, x, "identity returns x itself");
        ct_program *p = compile1(g, y);
        double got[40];
        cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof got), CT_OK);
        run_ok(p);
        cr_assert_eq(ct_program_read(p, y, got, sizeof got), CT_OK, "%s", ct_last_error());
        for (int i = 0; i < 40; i++) {
            double want = act_ref(kinds[k], xv[i]);
            cr_assert(fabs(got[i] - want) <= 1e-12 * fmax(1, fabs(want)), "%s(%g) = %.15g, want %.15g", kinds[k], xv[i],
                      got[i], want);
        }
        ct_program_free(p);
        ct_graph_free(g);
    }
    free(xv);
    cr_assert(!ct_activation_valid("swish"));
    cr_assert(!ct_activation_valid("RELU"));
    cr_assert(!ct_activation_valid(""));
    cr_assert(!ct_activation_valid(NULL));
}

/* ---- errors ------------------------------------------------------------- */

Test(nn, errors_name_the_layer) {
    ct_graph *g;
#define FRESH() (g ? ct_graph_free(g) : (void)0, g = ct_graph_new())
    g = NULL;

    /* a second use of 'fc1' on an input of another width */
    FRESH();
    ct_node a = ct_input(g, "a", CT_F32, S2(64, 50));
    ct_node b = ct_input(g, "b", CT_F32, S2(64, 100));
    cr_assert_neq(ct_linear(g, "fc1", a, 10, true, NULL), CT_NO_NODE);
    expect_error(g, ct_linear(g, "fc1", b, 10, true, NULL), CT_ERR_SHAPE,
                 "linear 'fc1': input [64, 100] has 100 features, out_features 10; the existing 'fc1.weight' is [10, 50]");

    FRESH();
    a = ct_input(g, "a", CT_F32, S2(4, 5));
    cr_assert_neq(ct_linear(g, "fc", a, 3, true, NULL), CT_NO_NODE);
    expect_error(g, ct_linear(g, "fc", a, 3, false, NULL), CT_ERR_INVALID_ARG,
                 "linear 'fc': built before with a bias, now bias = false");

    FRESH();
    a = ct_input(g, "a", CT_F32, S2(4, 5));
    expect_error(g, ct_linear(g, "fc", a, 0, true, NULL), CT_ERR_INVALID_ARG, "linear 'fc': out_features = 0");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(4, 5));
    expect_error(g, ct_linear(g, NULL, a, 3, true, NULL), CT_ERR_INVALID_ARG, "linear: a layer name is required");
    FRESH();
    a = ct_input(g, "a", CT_I32, S2(4, 5));
    expect_error(g, ct_linear(g, "fc", a, 3, true, NULL), CT_ERR_DTYPE, "linear 'fc': input [4, 5] is i32");
    /* a name taken by another kind of node is refused */
    FRESH();
    a = ct_input(g, "fc.weight", CT_F32, S2(4, 5));
    expect_error(g, ct_linear(g, "fc", a, 3, true, NULL), CT_ERR_INVALID_ARG,
                 "linear 'fc': the name 'fc.weight' is already taken by an 'input' node, not a parameter");

    /* batch norm on a 1-d input, and on another channel count */
    FRESH();
    a = ct_input(g, "a", CT_F32, S1(16));
    expect_error(g, ct_batch_norm(g, "bn1", a, 0, 0), CT_ERR_SHAPE, "batch_norm 'bn1': input [16] has 1 axis");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 16));
    b = ct_input(g, "b", CT_F32, S2(8, 32));
    cr_assert_neq(ct_batch_norm(g, "bn1", a, 0, 0), CT_NO_NODE);
    expect_error(g, ct_batch_norm(g, "bn1", b, 0, 0), CT_ERR_SHAPE,
                 "batch_norm 'bn1': input [8, 32] has 32 channels; the existing 'bn1.weight' is [16]");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 16));
    expect_error(g, ct_batch_norm(g, "bn", a, 1.5, 0), CT_ERR_INVALID_ARG, "batch_norm 'bn': momentum = 1.5");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 16));
    expect_error(g, ct_batch_norm(g, "bn", a, 0, -1), CT_ERR_INVALID_ARG, "batch_norm 'bn': eps = -1");

    /* the op itself: running statistics must be buffers of C values */
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 4));
    ct_node rm = ct_input(g, "rm", CT_F32, S1(4));
    ct_node rv = ct_buffer(g, "rv", CT_F32, S1(4), ct_init_ones());
    expect_error(g, ct_batch_norm_op(g, a, CT_NO_NODE, CT_NO_NODE, rm, rv, 0.1, 1e-5), CT_ERR_INVALID_ARG,
                 "batch_norm: running_mean must be a ct_buffer (it is an 'input' node)");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 4));
    rm = ct_buffer(g, "rm", CT_F32, S1(5), ct_init_zeros());
    rv = ct_buffer(g, "rv", CT_F32, S1(4), ct_init_ones());
    expect_error(g, ct_batch_norm_op(g, a, CT_NO_NODE, CT_NO_NODE, rm, rv, 0.1, 1e-5), CT_ERR_SHAPE,
                 "batch_norm: running_mean is [5]; x [8, 4] wants [4] (one per channel)");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 4));
    rv = ct_buffer(g, "rv", CT_F32, S1(4), ct_init_ones());
    expect_error(g, ct_batch_norm_op(g, a, CT_NO_NODE, CT_NO_NODE, rv, rv, 0.1, 1e-5), CT_ERR_INVALID_ARG,
                 "the same buffer 'rv'");

    /* layer norm */
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 16));
    b = ct_input(g, "b", CT_F32, S2(8, 12));
    cr_assert_neq(ct_layer_norm(g, "ln", a, 0, true), CT_NO_NODE);
    expect_error(g, ct_layer_norm(g, "ln", b, 0, true), CT_ERR_SHAPE,
                 "layer_norm 'ln': input [8, 12] has 12 features on its last axis; the existing 'ln.weight' is [16]");
    FRESH();
    a = ct_input(g, "a", CT_F32, S2(8, 16));
    ct_node w = ct_input(g, "w", CT_F32, S1(15));
    expect_error(g, ct_layer_norm_op(g, a, w, CT_NO_NODE, 1e-5), CT_ERR_SHAPE,
                 "layer_norm: weight is [15]; x [8, 16] wants [16] (the last axis)");

    /* embedding */
    FRESH();
    a = ct_input(g, "a", CT_F32, S1(3));
    expect_error(g, ct_embedding_layer(g, "emb", a, 10, 4), CT_ERR_DTYPE, "embedding 'emb': indices [3] are f32");
    FRESH();
    a = ct_input(g, "a", CT_I32, S1(3));
    expect_error(g, ct_embedding_layer(g, "emb", a, 0, 4), CT_ERR_INVALID_ARG, "embedding 'emb': num_embeddings = 0");

    /* activations */
    FRESH();
    a = ct_input(g, "a", CT_F32, S1(3));
    expect_error(g, ct_activation(g, a, "swish"), CT_ERR_INVALID_ARG,
                 "activation: unknown kind 'swish'; valid kinds: relu, leaky_relu, gelu, gelu_tanh, tanh, sigmoid, "
                 "silu, identity");
    FRESH();
    a = ct_input(g, "a", CT_F32, S1(3));
    expect_error(g, ct_activation(g, a, NULL), CT_ERR_INVALID_ARG, "activation: kind is NULL");

    /* a failed input passes through silently, recording nothing new */
    FRESH();
    cr_assert_eq(ct_linear(g, "fc", CT_NO_NODE, 3, true, NULL), CT_NO_NODE);
    cr_assert_eq(ct_batch_norm(g, "bn", CT_NO_NODE, 0, 0), CT_NO_NODE);
    cr_assert_eq(ct_layer_norm(g, "ln", CT_NO_NODE, 0, true), CT_NO_NODE);
    cr_assert_eq(ct_embedding_layer(g, "e", CT_NO_NODE, 3, 2), CT_NO_NODE);
    cr_assert_eq(ct_activation(g, CT_NO_NODE, "relu"), CT_NO_NODE);
    cr_assert_eq(ct_graph_status(g), CT_OK);
    cr_assert_eq(ct_graph_num_params(g), 0);
    ct_graph_free(g);
#undef FRESH
}
