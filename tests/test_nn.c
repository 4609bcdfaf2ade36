/* Layers (ctrain/nn.h): linear (names and shapes of its parameters, values
 * against x W^T + b computed here, PyTorch's initialisation, shared
 * parameters, F16 input), embedding, every activation kind, and the errors
 * every layer reports. The normalisation layers are in test_nn_norm.c.
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
    if (!strcmp(kind, "softplus")) return x > 20 ? x : log1p(exp(x));
    if (!strcmp(kind, "identity")) return x;
    cr_assert_fail("no reference for %s", kind);
    return 0;
}

Test(nn, every_activation_kind) {
    static const char *const kinds[] = {"relu",    "leaky_relu", "gelu",     "gelu_tanh", "tanh",
                                        "sigmoid", "silu",       "softplus", "identity"};
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
                 "silu, softplus, identity");
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
