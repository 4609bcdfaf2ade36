/* A relu fused into the op that makes its input (core/program_fuse.c).
 *
 * Kernels: each CPU kernel that honours ct_attrs.fused_relu (CONV2D, ADD,
 * MAX_POOL2D_GRAD) against the two kernels it replaces, byte for byte, on
 * every path (oneDNN's convolution, the reference loops, F64, broadcasts
 * and tails), on values that exercise the edges: negatives (a relu of
 * oneDNN's own gives -0 there), NaNs, zeros and infinities.
 *
 * Programs: a CNN's training step compiled fused and with CTRAIN_NO_FUSE=1
 * gives the same loss and gradients to the bit, the profile shows the
 * fused kernels, a pre-activation that is an output is not fused away, and
 * relu's gradient reads the relu's output. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/backend.h"
#include "core/ew_math.h"
#include "core/node.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"

TestSuite(fuse, .timeout = 300);

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* Values in +-[0.05, 1), both signs; with specials, one in 50 is a NaN, an
 * infinity or a signed zero. */
static double next_value(bool specials) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(rng >> 11) * 0x1p-53, s = (rng >> 7) & 1 ? 1.0 : -1.0;
    if (specials && (rng >> 20) % 50 == 0) {
        static const double sp[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0};
        return sp[(rng >> 30) % 5];
    }
    return (0.05 + 0.95 * u) * s;
}

static ct_tview make(ct_dtype dt, ct_shape s, bool specials) {
    int64_t n = ct_shape_numel(s);
    ct_tview v = {malloc((size_t)(n ? n : 1) * ct_dtype_size(dt)), dt, s, n};
    cr_assert_not_null(v.data);
    for (int64_t i = 0; i < n; i++) ct_st(v.data, dt, i, next_value(specials));
    return v;
}

/* An output buffer full of NaNs: a kernel that skips an element shows. */
static ct_tview poisoned(ct_dtype dt, ct_shape s) {
    ct_tview v = make(dt, s, false);
    for (int64_t i = 0; i < v.numel; i++) ct_st(v.data, dt, i, NAN);
    return v;
}

static void run(ct_op op, const ct_attrs *attr, ct_tview *in, int n_in, ct_tview out) {
    const ct_backend *be = ct_cpu_backend();
    ct_kargs k = {.op = op, .attr = attr, .n_in = n_in, .in = in, .out = out, .seed = 1, .training = true};
    ct_tview probe_in[4];
    for (int j = 0; j < n_in; j++) probe_in[j] = in[j], probe_in[j].data = NULL;
    ct_kargs probe = k;
    probe.in = probe_in;
    probe.out.data = NULL;
    size_t bytes = be->scratch_bytes(&probe);
    k.scratch = bytes ? malloc(bytes) : NULL;
    cr_assert_eq(be->kernels[op](&k), CT_OK, "%s: %s", ct_op_name(op), ct_last_error());
    free(k.scratch);
}

static void same_bytes(const ct_tview *a, const ct_tview *b, const char *what) {
    size_t es = ct_dtype_size(a->dtype);
    for (int64_t i = 0; i < a->numel; i++)
        cr_assert(memcmp((char *)a->data + i * es, (char *)b->data + i * es, es) == 0,
                  "%s: element %lld: %.9g fused, %.9g unfused", what, (long long)i, ct_ld(a->data, a->dtype, i),
                  ct_ld(b->data, b->dtype, i));
}

/* op with fused_relu against op, then relu (forward) or relu's gradient
 * at x = in[0] (MAX_POOL2D_GRAD), on both the fast paths and the
 * reference ones. */
static void check_fused(ct_op op, ct_attrs attr, ct_tview *in, int n_in, ct_tview out_like, const char *what) {
    for (int fast = 1; fast >= 0; fast--) {
        ct_cpu_set_fast_paths(fast);
        ct_tview mid = poisoned(out_like.dtype, out_like.shape), unf = poisoned(out_like.dtype, out_like.shape);
        ct_tview fused = poisoned(out_like.dtype, out_like.shape);
        attr.fused_relu = false;
        run(op, &attr, in, n_in, mid);
        ct_attrs r = {.fwd_op = CT_OP_RELU};
        if (op == CT_OP_MAX_POOL2D_GRAD) {
            ct_tview xin[2] = {in[0], mid};
            run(CT_OP_UNARY_GRAD, &r, xin, 2, unf);
        } else {
            run(CT_OP_RELU, &r, &mid, 1, unf);
        }
        attr.fused_relu = true;
        run(op, &attr, in, n_in, fused);
        char label[160];
        snprintf(label, sizeof label, "%s, %s paths", what, fast ? "fast" : "reference");
        same_bytes(&fused, &unf, label);
        free(mid.data), free(unf.data), free(fused.data);
    }
    ct_cpu_set_fast_paths(true);
}

#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

/* dt: x's and the weight's dtype; a BF16 product gives F32 (the mixed
 * convolution), with an F32 bias. */
static void conv_case(ct_dtype dt, ct_shape xs, int64_t o, int k, int stride, int pad, bool bias, bool specials) {
    ct_attrs a = {.has_bias = bias};
    a.win = (ct_window2d){{k, k}, {stride, stride}, {pad, pad}, {1, 1}, 1};
    int64_t oh = (xs.dim[2] + 2 * pad - k) / stride + 1, ow = (xs.dim[3] + 2 * pad - k) / stride + 1;
    ct_dtype ot = dt == CT_BF16 ? CT_F32 : dt;
    ct_tview in[3] = {make(dt, xs, specials), make(dt, S4(o, xs.dim[1], k, k), false),
                      make(ot, (ct_shape){1, {o}}, false)};
    char what[96];
    snprintf(what, sizeof what, "conv2d %s C%lld O%lld k%d s%d p%d%s", ct_dtype_name(dt), (long long)xs.dim[1],
             (long long)o, k, stride, pad, specials ? " with specials" : "");
    check_fused(CT_OP_CONV2D, a, in, bias ? 3 : 2, (ct_tview){NULL, ot, S4(xs.dim[0], o, oh, ow), 0}, what);
    for (int j = 0; j < 3; j++) free(in[j].data);
}

Test(fuse, conv2d_with_its_relu_gives_the_bits_of_conv_then_relu) {
    conv_case(CT_F32, S4(6, 1, 28, 28), 32, 5, 1, 0, true, false);  /* cnn-mnist conv1 */
    conv_case(CT_F32, S4(4, 32, 12, 12), 64, 5, 1, 0, true, false); /* cnn-mnist conv2 */
    conv_case(CT_F32, S4(3, 16, 9, 9), 32, 3, 2, 1, false, false);
    conv_case(CT_F32, S4(4, 32, 12, 12), 48, 3, 1, 1, true, true);
    conv_case(CT_F64, S4(2, 3, 7, 7), 5, 3, 1, 1, true, true);
    conv_case(CT_BF16, S4(4, 32, 12, 12), 64, 5, 1, 0, true, true); /* oneDNN's BF16 kernels where the CPU has them */
}

static void add_case(ct_dtype dt, ct_shape as, ct_shape bs, ct_shape os, const char *what) {
    ct_tview in[2] = {make(dt, as, true), make(dt, bs, true)};
    check_fused(CT_OP_ADD, (ct_attrs){0}, in, 2, (ct_tview){NULL, dt, os, 0}, what);
    free(in[0].data), free(in[1].data);
}

Test(fuse, add_with_its_relu_gives_the_bits_of_add_then_relu) {
    add_case(CT_F32, (ct_shape){2, {64, 100}}, (ct_shape){1, {100}}, (ct_shape){2, {64, 100}}, "bias rows");
    add_case(CT_F32, (ct_shape){2, {300, 130}}, (ct_shape){2, {300, 130}}, (ct_shape){2, {300, 130}},
             "same shapes, threaded, with a tail");
    add_case(CT_F32, (ct_shape){3, {3, 1, 5}}, (ct_shape){2, {4, 1}}, (ct_shape){3, {3, 4, 5}}, "broadcast both");
    add_case(CT_F64, (ct_shape){2, {9, 7}}, (ct_shape){1, {7}}, (ct_shape){2, {9, 7}}, "F64 bias rows");
}

/* x: a relu's output (zeros, NaNs and infinities among its values). */
static void pool_case(ct_dtype dt, ct_shape xs, int k, int stride, int pad, const char *what) {
    ct_tview x = make(dt, xs, true);
    for (int64_t i = 0; i < x.numel; i++) ct_st(x.data, dt, i, ct_ew_relu(ct_ld(x.data, dt, i)));
    ct_attrs a = {0};
    a.win = (ct_window2d){{k, k}, {stride, stride}, {pad, pad}, {1, 1}, 1};
    int64_t oh = (xs.dim[2] + 2 * pad - k) / stride + 1, ow = (xs.dim[3] + 2 * pad - k) / stride + 1;
    ct_tview in[2] = {x, make(dt, S4(xs.dim[0], xs.dim[1], oh, ow), true)};
    check_fused(CT_OP_MAX_POOL2D_GRAD, a, in, 2, (ct_tview){NULL, dt, xs, 0}, what);
    free(in[0].data), free(in[1].data);
}

Test(fuse, max_pool2d_grad_with_the_relu_mask_gives_the_bits_of_both_kernels) {
    pool_case(CT_F32, S4(8, 32, 24, 24), 2, 2, 0, "2x2");
    pool_case(CT_F32, S4(3, 5, 9, 9), 3, 3, 0, "3x3, stride 3");
    pool_case(CT_F32, S4(3, 5, 9, 9), 3, 2, 0, "3x3, stride 2 (windows overlap)");
    pool_case(CT_F32, S4(2, 4, 8, 8), 2, 2, 1, "2x2, padding 1");
    pool_case(CT_F64, S4(2, 3, 6, 6), 2, 2, 0, "F64 2x2");
}

/* ---- programs ------------------------------------------------------------ */

#define N 8

/* conv (bias) -> relu -> max pool -> conv (bias) -> relu -> max pool ->
 * linear (bias) -> relu -> linear -> cross entropy, with its backward. */
static ct_node cnn(ct_graph *g, ct_node *pre) {
    ct_graph_set_seed(g, 5);
    ct_node x = ct_input(g, "x", CT_F32, S4(N, 1, 12, 12));
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {N}});
    ct_node c1 = ct_conv2d_layer(g, "c1", x, 8, 3, 3, ct_conv_geom(1, 1, 1, 1), true, NULL);
    if (pre) *pre = c1;
    ct_node h = ct_max_pool2d(g, ct_relu(g, c1), ct_pool_geom(2, 0, 0));
    h = ct_relu(g, ct_conv2d_layer(g, "c2", h, 16, 3, 3, ct_conv_geom(1, 0, 1, 1), true, NULL));
    h = ct_max_pool2d(g, h, ct_pool_geom(2, 0, 0));
    h = ct_relu(g, ct_linear(g, "fc1", ct_flatten(g, h, 1), 24, true, NULL));
    ct_node loss = ct_cross_entropy(g, ct_linear(g, "fc2", h, 5, true, NULL), y, 0.0);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    return loss;
}

static void feed(ct_program *p) {
    float x[N * 144];
    int32_t y[N];
    for (int i = 0; i < N * 144; i++) x[i] = (float)next_value(false);
    for (int i = 0; i < N; i++) y[i] = i % 5;
    cr_assert_eq(ct_program_set_input(p, "x", x, sizeof x), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "y", y, sizeof y), CT_OK);
}

/* One step's loss and gradients, compiled fused (or not), its profile in
 * *profile (malloc'd text). */
static float step(ct_graph *g, ct_node loss, bool fuse, float **grads, size_t *n, char **profile) {
    if (!fuse) setenv("CTRAIN_NO_FUSE", "1", 1);
    ct_compile_opts co = {.outputs = &loss, .n_outputs = 1, .grads = true};
    ct_program *p = ct_compile(g, &co);
    unsetenv("CTRAIN_NO_FUSE");
    cr_assert_not_null(p, "%s", ct_last_error());
    rng = 42;
    feed(p);
    size_t len = 0;
    FILE *f = open_memstream(profile, &len);
    ct_op_profile_reset();
    ct_op_profile_enable(true);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    ct_op_profile_enable(false);
    ct_op_profile_report(f, 1);
    fclose(f);
    float l;
    cr_assert_eq(ct_program_read(p, loss, &l, sizeof l), CT_OK);
    *n = ct_program_param_numel(p);
    *grads = malloc(*n * sizeof **grads);
    cr_assert_eq(ct_program_read_grads(p, *grads, *n * sizeof **grads), CT_OK);
    ct_program_free(p);
    return l;
}

Test(fuse, a_cnn_step_gives_the_same_bits_fused_or_not) {
    ct_graph *g = ct_graph_new();
    ct_node loss = cnn(g, NULL);
    float *gf, *gu;
    size_t nf, nu;
    char *pf, *pu;
    float lf = step(g, loss, true, &gf, &nf, &pf), lu = step(g, loss, false, &gu, &nu, &pu);
    cr_assert(isfinite(lf) && lf > 0, "loss %g", lf);
    cr_assert(memcmp(&lf, &lu, sizeof lf) == 0, "loss %.9g fused, %.9g not", lf, lu);
    cr_assert_eq(nf, nu);
    int nonzero = 0;
    for (size_t i = 0; i < nf; i++) {
        cr_assert(memcmp(&gf[i], &gu[i], sizeof *gf) == 0, "gradient %zu: %.9g fused, %.9g not", i, gf[i], gu[i]);
        nonzero += gf[i] != 0;
    }
    cr_assert_gt(nonzero, (int)nf / 2, "the gradients are real values");
    /* what ran: every relu fused, forward and backward */
    cr_assert(strstr(pf, "conv2d+relu") && strstr(pf, "add+relu") && strstr(pf, "max_pool2d_grad+relu"), "%s", pf);
    cr_assert(!strstr(pf, "  relu "), "fused: %s", pf);
    cr_assert(strstr(pu, "  relu ") && !strstr(pu, "+relu"), "unfused: %s", pu);
    free(gf), free(gu), free(pf), free(pu);
    ct_graph_free(g);
}

/* The pre-activation asked for as an output keeps its own step and holds
 * the convolution's values, negatives included. */
Test(fuse, an_output_is_not_fused_away) {
    ct_graph *g = ct_graph_new();
    ct_node pre;
    ct_node loss = cnn(g, &pre);
    ct_node outs[2] = {loss, pre};
    ct_compile_opts co = {.outputs = outs, .n_outputs = 2, .grads = true};
    ct_program *p = ct_compile(g, &co);
    cr_assert_not_null(p, "%s", ct_last_error());
    rng = 42;
    feed(p);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    static float v[N * 8 * 144];
    cr_assert_eq(ct_program_read(p, pre, v, sizeof v), CT_OK, "%s", ct_last_error());
    int neg = 0;
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) neg += v[i] < 0;
    cr_assert_gt(neg, 100, "the conv's own output, before its relu: %d negatives", neg);
    ct_program_free(p);
    ct_graph_free(g);
}

/* relu's gradient reads the relu's output, so nothing in the backward
 * reads the pre-activation. */
Test(fuse, relu_gradient_reads_the_output) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, (ct_shape){1, {6}});
    ct_set_requires_grad(g, x, true);
    ct_node r = ct_relu(g, ct_scale(g, x, 2.0));
    ct_node loss = ct_sum(g, r, CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    int found = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == CT_OP_UNARY_GRAD && g->nodes[i].attr.fwd_op == CT_OP_RELU) {
            cr_assert_eq(g->nodes[i].in[0], r, "x of relu's gradient is the relu's output");
            found++;
        }
    cr_assert_eq(found, 1);
    ct_graph_free(g);
}
