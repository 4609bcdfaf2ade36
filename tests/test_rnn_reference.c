/* ctrain's recurrent layers against PyTorch's nn.RNN / LSTM / GRU:
 * tests/ref/rnn_ref.safetensors (written by tests/ref/rnn_reference.py)
 * holds each case's float64 weights, input, initial states, outputs, final
 * states and the gradients of a weighted sum of them; the weights are set
 * by name (PyTorch's state_dict names) and everything must agree to 1e-12
 * (outputs) and 1e-10 (gradients). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <ctrain/ctrain.h>

TestSuite(rnn_reference, .timeout = 120);

#define REF_FILE CTRAIN_TEST_SOURCE_DIR "/ref/rnn_ref.safetensors"

typedef struct ref_case {
    const char *name;
    ct_rnn_cell cell;
    int64_t input, hidden, layers;
    bool bidir, batch_first, bias;
    int64_t T, B;
    bool states;
} ref_case;

/* The cases of rnn_reference.py, in its order. */
static const ref_case cases[] = {
    {"lstm", CT_LSTM, 3, 4, 2, true, false, true, 5, 3, true},
    {"gru", CT_GRU, 3, 4, 2, true, true, true, 4, 2, false},
    {"rnn_tanh", CT_RNN_TANH, 3, 4, 1, false, false, true, 6, 2, true},
    {"rnn_relu", CT_RNN_RELU, 2, 5, 2, false, true, true, 3, 3, true},
    {"gru_nobias", CT_GRU, 2, 3, 1, false, false, false, 5, 2, true},
    {"lstm_nobias", CT_LSTM, 2, 3, 1, true, true, false, 3, 2, false},
};

static double *ref_tensor(const ct_st_file *f, const char *c, const char *what, ct_shape *shape) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", c, what);
    int i = ct_st_find(f, key);
    cr_assert(i >= 0, "reference has no %s", key);
    ct_dtype dt;
    ct_shape s;
    cr_assert_eq(ct_st_info(f, i, &dt, &s), CT_OK);
    if (shape) *shape = s;
    int64_t n = ct_shape_numel(s);
    double *v = malloc((size_t)n * sizeof *v);
    cr_assert_eq(ct_st_read(f, i, CT_F64, v, (size_t)n * sizeof *v), CT_OK, "%s", ct_last_error());
    return v;
}

/* got (n values of node) against the reference's <case>.<what>. */
static void expect_node(const ct_st_file *f, ct_program *p, ct_node node, const char *c, const char *what, double tol) {
    ct_shape s;
    double *want = ref_tensor(f, c, what, &s);
    int64_t n = ct_shape_numel(s);
    double *got = malloc((size_t)n * sizeof *got);
    cr_assert_eq(ct_program_read(p, node, got, (size_t)n * sizeof *got), CT_OK, "%s %s: %s", c, what, ct_last_error());
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])), "%s %s[%lld]: %.15g, PyTorch %.15g", c, what,
                  (long long)i, got[i], want[i]);
    free(got);
    free(want);
}

/* sum(node * <case>.<what>) */
static ct_node weighted(ct_graph *g, const ct_st_file *f, const char *c, const char *what, ct_node node) {
    ct_shape s;
    double *w = ref_tensor(f, c, what, &s);
    ct_node k = ct_constant(g, CT_F64, s, w);
    free(w);
    return ct_sum(g, ct_mul(g, node, k), CT_AXIS_ALL, false);
}

static ct_node input(ct_graph *g, const char *name, ct_shape s) {
    ct_node x = ct_input(g, name, CT_F64, s);
    ct_set_requires_grad(g, x, true);
    return x;
}

static void set_input(const ct_st_file *f, ct_program *p, const char *c, const char *what) {
    ct_shape s;
    double *v = ref_tensor(f, c, what, &s);
    cr_assert_eq(ct_program_set_input(p, what, v, (size_t)ct_shape_numel(s) * sizeof *v), CT_OK, "%s", ct_last_error());
    free(v);
}

static void run_case(const ct_st_file *f, const ref_case *rc) {
    const char *c = rc->name;
    bool lstm = rc->cell == CT_LSTM;
    int64_t LD = rc->layers * (rc->bidir ? 2 : 1);
    ct_rnn_config cfg = {.cell = rc->cell, .input_size = rc->input, .hidden_size = rc->hidden,
                         .num_layers = rc->layers, .no_bias = !rc->bias, .batch_first = rc->batch_first,
                         .bidirectional = rc->bidir};
    ct_graph *g = ct_graph_new();
    ct_shape xs = rc->batch_first ? (ct_shape){3, {rc->B, rc->T, rc->input}} : (ct_shape){3, {rc->T, rc->B, rc->input}};
    ct_shape ss = {3, {LD, rc->B, rc->hidden}};
    ct_node x = input(g, "x", xs);
    ct_node h0 = rc->states ? input(g, "h0", ss) : CT_NO_NODE;
    ct_node c0 = rc->states && lstm ? input(g, "c0", ss) : CT_NO_NODE;
    ct_rnn_out o;
    cr_assert_neq(ct_recurrent(g, "rnn", &cfg, x, h0, c0, &o), CT_NO_NODE, "%s: %s", c, ct_last_error());
    ct_node loss = ct_add(g, weighted(g, f, c, "Ry", o.y), weighted(g, f, c, "Rh", o.h_n));
    if (lstm) loss = ct_add(g, loss, weighted(g, f, c, "Rc", o.c_n));
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s: %s", c, ct_last_error());
    cr_assert_eq(ct_graph_num_params(g), (int)(LD * (rc->bias ? 4 : 2)), "%s: parameter count", c);
    ct_node outs[3] = {o.y, o.h_n, lstm ? o.c_n : o.h_n};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 3, .grads = true});
    cr_assert_not_null(p, "%s: %s", c, ct_last_error());
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        const char *pn = ct_node_name(g, ct_graph_param(g, i));
        ct_shape s;
        double *v = ref_tensor(f, c, pn + 4 /* past "rnn." */, &s);
        cr_assert_eq(ct_program_set_param(p, pn, v, (size_t)ct_shape_numel(s) * sizeof *v), CT_OK, "%s", ct_last_error());
        free(v);
    }
    set_input(f, p, c, "x");
    if (rc->states) set_input(f, p, c, "h0");
    if (rc->states && lstm) set_input(f, p, c, "c0");
    cr_assert_eq(ct_program_run(p), CT_OK, "%s: %s", c, ct_last_error());
    expect_node(f, p, o.y, c, "y", 1e-12);
    expect_node(f, p, o.h_n, c, "h_n", 1e-12);
    if (lstm) expect_node(f, p, o.c_n, c, "c_n", 1e-12);
    expect_node(f, p, ct_grad(g, x), c, "grad.x", 1e-10);
    if (rc->states) expect_node(f, p, ct_grad(g, h0), c, "grad.h0", 1e-10);
    if (rc->states && lstm) expect_node(f, p, ct_grad(g, c0), c, "grad.c0", 1e-10);
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node pn = ct_graph_param(g, i);
        char what[128];
        snprintf(what, sizeof what, "grad.%s", ct_node_name(g, pn) + 4);
        expect_node(f, p, ct_grad(g, pn), c, what, 1e-10);
    }
    ct_program_free(p);
    ct_graph_free(g);
}

Test(rnn_reference, every_case_matches_pytorch) {
    ct_st_file *f = ct_st_open(REF_FILE);
    cr_assert_not_null(f, "%s", ct_last_error());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(f, &cases[i]);
    ct_st_close(f);
}

/* The parameters are PyTorch's, by name, shape and order, and the count
 * is ct_rnn_num_params's. */
Test(rnn_reference, parameter_names_and_order_are_pytorchs) {
    ct_st_file *f = ct_st_open(REF_FILE);
    cr_assert_not_null(f, "%s", ct_last_error());
    const ref_case *rc = &cases[0];
    ct_rnn_config cfg = {.cell = CT_LSTM, .input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true};
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){3, {rc->T, rc->B, 3}});
    cr_assert_neq(ct_lstm(g, "rnn", &cfg, x, CT_NO_NODE, CT_NO_NODE, NULL), CT_NO_NODE, "%s", ct_last_error());
    static const char *const want[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                       "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                                       "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                                       "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                                       "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
    cr_assert_eq(ct_graph_num_params(g), 16);
    int64_t total = 0;
    for (int i = 0; i < 16; i++) {
        ct_node pn = ct_graph_param(g, i);
        char full[64];
        snprintf(full, sizeof full, "rnn.%s", want[i]);
        cr_assert_str_eq(ct_node_name(g, pn), full);
        ct_shape s;
        free(ref_tensor(f, "lstm", want[i], &s));
        cr_assert(ct_shape_equal(ct_node_shape(g, pn), s), "%s: shape differs from PyTorch's", full);
        total += ct_shape_numel(s);
    }
    cr_assert_eq(total, ct_rnn_num_params(&cfg));
    ct_graph_free(g);
    ct_st_close(f);
}
