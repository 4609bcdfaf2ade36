/* The recurrent layers' API (ctrain/rnn.h) beyond PyTorch's numbers
 * (test_rnn_reference.c) and the gradient checks (test_gradcheck_rnn.c):
 * initialisation, bad input with one message each, the planner and an F32
 * run against F64, and a training step that lowers the loss. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/node.h"


TestSuite(rnn, .timeout = 120);

static const ct_rnn_config lstm_cfg = {.cell = CT_LSTM, .input_size = 3, .hidden_size = 64, .num_layers = 2,
                                       .bidirectional = true};

/* Every parameter uniform in [-1/sqrt(H), 1/sqrt(H)], spread over it. */
Test(rnn, initialisation_is_pytorchs) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){3, {5, 2, 3}});
    cr_assert_neq(ct_lstm(g, "lstm", &lstm_cfg, x, CT_NO_NODE, CT_NO_NODE, NULL), CT_NO_NODE, "%s", ct_last_error());
    ct_node y = ct_graph_param(g, 0);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    double k = 1.0 / 8.0;
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node pn = ct_graph_param(g, i);
        int64_t n = ct_shape_numel(ct_node_shape(g, pn));
        float *v = malloc((size_t)n * sizeof *v);
        cr_assert_eq(ct_program_get_param(p, ct_node_name(g, pn), v, (size_t)n * sizeof *v), CT_OK);
        double lo = 1, hi = -1, mean = 0;
        for (int64_t j = 0; j < n; j++) {
            lo = fmin(lo, v[j]), hi = fmax(hi, v[j]), mean += v[j] / (double)n;
            cr_assert(fabs(v[j]) <= k, "%s[%lld] = %g outside +-1/8", ct_node_name(g, pn), (long long)j, v[j]);
        }
        cr_assert(lo < -0.9 * k && hi > 0.9 * k && fabs(mean) < 0.02, "%s: [%g, %g] mean %g", ct_node_name(g, pn), lo,
                  hi, mean);
        free(v);
    }
    ct_program_free(p);
    ct_graph_free(g);
}

/* One bad call: CT_NO_NODE and the message. */
static void expect_bad(ct_rnn_config c, ct_shape xs, const ct_shape *h0, const ct_shape *c0, const char *msg) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, xs);
    ct_node h = h0 ? ct_input(g, "h0", CT_F32, *h0) : CT_NO_NODE;
    ct_node cc = c0 ? ct_input(g, "c0", CT_F32, *c0) : CT_NO_NODE;
    cr_assert_eq(ct_recurrent(g, "rnn", &c, x, h, cc, NULL), CT_NO_NODE, "accepted: %s", msg);
    cr_assert(strstr(ct_graph_error(g), msg), "'%s' does not say '%s'", ct_graph_error(g), msg);
    ct_graph_free(g);
}

Test(rnn, bad_input_is_refused_by_name) {
    ct_shape xs = {3, {5, 2, 3}}, good = {3, {4, 2, 64}}, bad_batch = {3, {4, 3, 64}}, bad_layers = {3, {2, 2, 64}};
    expect_bad(lstm_cfg, xs, &bad_batch, &good, "h0 is f32 [4, 3, 64]; it must be float [4, 2, 64]");
    expect_bad(lstm_cfg, xs, &bad_layers, &good, "h0 is f32 [2, 2, 64]");
    expect_bad(lstm_cfg, xs, &good, &bad_batch, "c0 is f32 [4, 3, 64]");
    ct_rnn_config gru = lstm_cfg;
    gru.cell = CT_GRU;
    expect_bad(gru, xs, &good, &good, "c0 is given but a gru cell has no cell state");
    ct_rnn_config c = lstm_cfg;
    c.hidden_size = 0;
    expect_bad(c, xs, NULL, NULL, "hidden_size = 0; it must be >= 1");
    c = lstm_cfg;
    c.num_layers = 0;
    expect_bad(c, xs, NULL, NULL, "num_layers = 0; it must be >= 1");
    c = lstm_cfg;
    c.dropout = 1.0;
    expect_bad(c, xs, NULL, NULL, "dropout 1 is outside [0, 1)");
    /* a sequence of length 0 cannot even be an input (the layer checks again) */
    expect_bad(lstm_cfg, (ct_shape){3, {0, 2, 3}}, NULL, NULL, "shape [0, 2, 3] has a size <= 0");
    expect_bad(lstm_cfg, (ct_shape){3, {5, 2, 4}}, NULL, NULL, "x is [5, 2, 4]; it must be [T, B, input_size]");
    c = lstm_cfg;
    c.batch_first = true;
    expect_bad(c, (ct_shape){2, {5, 3}}, NULL, NULL, "it must be [B, T, input_size]");
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, xs);
    cr_assert_eq(ct_rnn(g, "r", &lstm_cfg, x, CT_NO_NODE, NULL), CT_NO_NODE);
    cr_assert(strstr(ct_graph_error(g), "ct_rnn takes the cell CT_RNN_TANH or CT_RNN_RELU"), "%s", ct_graph_error(g));
    ct_graph_free(g);
}

/* A GRU's output y [T, B, 2H] and h_n in F32 and F64 over one set of
 * weights; the planned and unplanned F32 programs agree to the bit. */
static double *run_gru(ct_dtype dt, bool no_plan, int64_t *n) {
    ct_rnn_config c = {.cell = CT_GRU, .input_size = 4, .hidden_size = 24, .num_layers = 2, .bidirectional = true};
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 7);
    ct_node x = ct_input(g, "x", dt, (ct_shape){3, {9, 3, 4}});
    ct_rnn_out o;
    cr_assert_neq(ct_gru(g, "gru", &c, x, CT_NO_NODE, &o), CT_NO_NODE, "%s", ct_last_error());
    ct_node y = ct_cast(g, o.y, CT_F64);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1, .no_plan = no_plan});
    cr_assert_not_null(p, "%s", ct_last_error());
    *n = 9 * 3 * 48;
    double *xv = malloc(9 * 3 * 4 * sizeof *xv);
    float xf[9 * 3 * 4];
    for (int i = 0; i < 9 * 3 * 4; i++) xv[i] = xf[i] = (float)sin(0.37 * i);
    cr_assert_eq(ct_program_set_input(p, "x", dt == CT_F64 ? (void *)xv : (void *)xf,
                                      dt == CT_F64 ? 9 * 3 * 4 * sizeof *xv : sizeof xf),
                 CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    double *out = malloc((size_t)*n * sizeof *out);
    cr_assert_eq(ct_program_read(p, y, out, (size_t)*n * sizeof *out), CT_OK);
    free(xv);
    ct_program_free(p);
    ct_graph_free(g);
    return out;
}

Test(rnn, f32_matches_f64_and_the_plan_changes_no_bit) {
    int64_t n;
    double *a = run_gru(CT_F32, false, &n), *b = run_gru(CT_F32, true, &n), *d = run_gru(CT_F64, false, &n);
    cr_assert_eq(memcmp(a, b, (size_t)n * sizeof *a), 0, "planned and unplanned programs differ");
    double nz = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(fabs(a[i] - d[i]) < 1e-5, "y[%lld]: f32 %.9g, f64 %.9g", (long long)i, a[i], d[i]);
        nz += fabs(d[i]);
    }
    cr_assert_gt(nz / (double)n, 0.05, "the outputs are all near zero");
    free(a), free(b), free(d);
}

/* Under a BF16 policy the input projections are BF16 products and so are
 * the recurrence's per-step products (attr.half), while its state stays
 * F32: every rnn node is F32 with half BF16, and the outputs stay close to
 * the F32 model's (x, W_ih, W_hh and each h rounded to BF16 where they are
 * multiplied). */
Test(rnn, bf16_policy_keeps_the_state_f32) {
    double out[2][5 * 2 * 16];
    for (int half = 0; half <= 1; half++) {
        ct_rnn_config c = {.input_size = 4, .hidden_size = 16, .num_layers = 2};
        ct_graph *g = ct_graph_new();
        ct_graph_set_seed(g, 3);
        if (half) cr_assert_eq(ct_graph_set_precision(g, CT_PRECISION_BF16), CT_OK);
        ct_node x = ct_input(g, "x", CT_F32, (ct_shape){3, {5, 2, 4}});
        ct_node y = ct_lstm(g, "lstm", &c, x, CT_NO_NODE, CT_NO_NODE, NULL);
        cr_assert_neq(y, CT_NO_NODE, "%s", ct_last_error());
        cr_assert_eq(ct_node_dtype(g, y), CT_F32);
        int rnn = 0;
        for (int i = 0; i < g->n; i++)
            if (g->nodes[i].op == CT_OP_RNN) {
                cr_assert_eq(g->nodes[i].dtype, CT_F32);
                cr_assert_eq(g->nodes[i].attr.half, half ? CT_BF16 : CT_F32);
                rnn++;
            }
        cr_assert_eq(rnn, 2, "one rnn node per layer");
        y = ct_cast(g, y, CT_F64);
        ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
        cr_assert_not_null(p, "%s", ct_last_error());
        float xv[5 * 2 * 4];
        for (int i = 0; i < 40; i++) xv[i] = (float)cos(0.7 * i);
        cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read(p, y, out[half], sizeof out[half]), CT_OK);
        ct_program_free(p);
        ct_graph_free(g);
    }
    for (int i = 0; i < 5 * 2 * 16; i++)
        cr_assert(fabs(out[0][i] - out[1][i]) < 0.03, "y[%d]: f32 %g, bf16 policy %g", i, out[0][i], out[1][i]);
}

/* The backward of a 2-layer LSTM sums the gates' gradient once per layer
 * (b_ih's and b_hh's gradient are one SUM_TO node, copied for the second
 * parameter), slices the record's h columns once per layer (the layer's
 * output, reused for the previous states), and hands the recurrence the
 * output's gradient [B, T, H] itself, not a zero-filled record gradient. */
Test(rnn, lstm_backward_shares_its_sums_and_slices) {
    ct_rnn_config c = {.input_size = 4, .hidden_size = 8, .num_layers = 2};
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){3, {3, 5, 4}});
    ct_node y = ct_lstm(g, "lstm", &c, x, CT_NO_NODE, CT_NO_NODE, NULL);
    cr_assert_eq(ct_graph_backward(g, ct_sum(g, y, CT_AXIS_ALL, false)), CT_OK, "%s", ct_last_error());
    int sums_of_d = 0, h_slices = 0, rnn = 0;
    for (int i = 0; i < g->n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_RNN) rnn++;
        if (nd->op == CT_OP_RNN_GRAD) {
            const ct_nodeinfo *dr = &g->nodes[nd->in[1]];
            cr_assert(dr->op != CT_OP_SLICE_GRAD && dr->shape.dim[2] == 8, "node %d: dR is a %s of width %lld", i,
                      ct_op_name(dr->op), (long long)dr->shape.dim[2]);
        }
        if (nd->op == CT_OP_SUM_TO && g->nodes[nd->in[0]].op == CT_OP_RNN_GRAD) sums_of_d++;
        if (nd->op == CT_OP_SLICE && g->nodes[nd->in[0]].op == CT_OP_RNN && nd->attr.axis == 2 &&
            nd->attr.start == 0 && nd->attr.end == 8)
            h_slices++;
        cr_assert(!(nd->op == CT_OP_SUM && nd->attr.axis == 0), "node %d: b_hh's gradient as a separate sum", i);
    }
    cr_assert_eq(rnn, 2);
    cr_assert_eq(sums_of_d, 2, "one sum of D per layer, got %d", sums_of_d);
    cr_assert_eq(h_slices, 2, "one slice of h per layer, got %d", h_slices);
    for (int l = 0; l < 2; l++) {
        char bi[32], bh[32];
        snprintf(bi, sizeof bi, "lstm.bias_ih_l%d", l);
        snprintf(bh, sizeof bh, "lstm.bias_hh_l%d", l);
        ct_node gi = ct_grad(g, ct_find(g, bi)), gh = ct_grad(g, ct_find(g, bh));
        cr_assert(gi != CT_NO_NODE && gh != CT_NO_NODE && gi != gh, "each bias has a gradient node of its own");
        ct_node si = g->nodes[gi].op == CT_OP_COPY ? g->nodes[gi].in[0] : gi;
        ct_node sh = g->nodes[gh].op == CT_OP_COPY ? g->nodes[gh].in[0] : gh;
        cr_assert_eq(si, sh, "layer %d: b_ih's and b_hh's gradients are the same sum", l);
    }
    ct_graph_free(g);
}
