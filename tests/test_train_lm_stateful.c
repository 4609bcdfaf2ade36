/* Stateful language-model training (ct_lm_data.states): truncated
 * backpropagation through time with a tiny LSTM (V 12, H 6, T 8, B 3).
 *
 * - The trainer's step losses equal, bit for bit, a reference loop written
 *   here on the public API (graph, program, optimizer): the streams
 *   windows, h0 and c0 fed from the previous step's h_n and c_n, zero at
 *   the start of every epoch; and a step with carried states differs from
 *   the same step from zero states (the states matter).
 * - A run cut in two (mid-epoch, also with accumulation) and resumed ends
 *   with the same weights, losses and carried states as the straight run;
 *   a checkpoint of a stateful run does not resume a run without states and
 *   the other way round.
 * - Bad pairs (no such input, no such node, another shape) and a training
 *   split too short for the streams are refused with messages. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "expect_msg.h"
#include "tmpfiles.h"

#define V 12
#define H 6
#define T 8
#define B 3

/* What the model declares: which names, and whether to break them. */
typedef struct lstm_cfg {
    bool states;          /* h0, c0 inputs and named h_n, c_n in training graphs */
    bool wrong_h0_shape;  /* h0 one unit too wide */
} lstm_cfg;

static ct_node lstm_model(ct_graph *g, ct_node x, bool training, void *user) {
    const lstm_cfg *m = user;
    ct_rnn_config c = {.input_size = H, .hidden_size = H, .num_layers = 1, .batch_first = true};
    ct_node e = ct_embedding_layer(g, "embed", x, V, H);
    ct_node h0 = CT_NO_NODE, c0 = CT_NO_NODE;
    int64_t b = ct_node_shape(g, x).dim[0];
    if (m->states && training) {
        h0 = ct_input(g, "h0", CT_F32, (ct_shape){3, {1, b, H + (m->wrong_h0_shape ? 1 : 0)}});
        c0 = ct_input(g, "c0", CT_F32, (ct_shape){3, {1, b, H}});
    }
    ct_rnn_out out;
    ct_node y = ct_lstm(g, "rnn", &c, e, m->wrong_h0_shape ? CT_NO_NODE : h0, c0, &out);
    if (m->states && training && y != CT_NO_NODE) {
        ct_set_name(g, out.h_n, "h_n");
        ct_set_name(g, out.c_n, "c_n");
    }
    return ct_linear(g, "head", y, V, true, NULL);
}

static lstm_cfg STATEFUL = {.states = true};
static const ct_lm_state PAIRS[2] = {{"h0", "h_n"}, {"c0", "c_n"}};

/* A noisy cycle of n tokens (as test_train_lm.c's), split 90/10. */
static void make_data(int64_t n, ct_tokens **train, ct_tokens **val) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    cr_assert_not_null(ids);
    ids[0] = 0;
    for (int64_t i = 1; i < n; i++) {
        bool noise = ct_philox_u32(5, 1, 0, (uint64_t)i) % 10 == 0;
        ids[i] = noise ? (int32_t)(ct_philox_u32(5, 2, 0, (uint64_t)i) % V) : (ids[i - 1] * 5 + 3) % V;
    }
    ct_tokens *all;
    cr_assert_eq(ct_tokens_from_array(ids, n, V, &all), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_tokens_split(all, 0.9, train, val), CT_OK, "%s", ct_last_error());
    ct_tokens_free(all);
    free(ids);
}

static ct_train_opts base_opts(void) {
    return (ct_train_opts){.model = lstm_model,
                           .model_user = &STATEFUL,
                           .model_fingerprint = "test lstm 12-6",
                           .seed = 4,
                           .data_seed = 2,
                           .batch_size = B,
                           .max_steps = 10,
                           .optim = {.kind = CT_OPTIM_SGD, .lr = 0.5, .momentum = 0.9},
                           .quiet = true};
}

typedef struct losses {
    float step[64];
    int n;
} losses;

static void record(const ct_train_progress *p, void *user) {
    losses *l = user;
    if (p->event == CT_TRAIN_STEP && l->n < 64) l->step[l->n++] = (float)p->loss;
}

/* ------------------------------------------------------------ the reference */

/* The loop by hand: the trainer's graph (x, labels, the model, logits as
 * [B*T, V], cross-entropy, backward) with the same seed, so the same
 * initial weights, and the same optimizer; batch k is the streams layout's,
 * h0 and c0 are the last step's h_n and c_n, zero when k mod W = 0 (or
 * always, with carry false). Losses into out[0..steps). */
static void reference(const ct_tokens *train, int steps, bool carry, float *out) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 4);
    ct_node x = ct_input(g, "x", CT_I32, (ct_shape){2, {B, T}});
    ct_node y = ct_input(g, "labels", CT_I32, (ct_shape){1, {B * T}});
    ct_node logits = lstm_model(g, x, true, &STATEFUL);
    logits = ct_reshape(g, logits, (ct_shape){2, {B * T, V}});
    ct_node loss = ct_cross_entropy(g, logits, y, 0.0);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node hn = ct_find(g, "h_n"), cn = ct_find(g, "c_n"), h0 = ct_find(g, "h0"), c0 = ct_find(g, "c0");
    ct_node outs[3] = {loss, hn, cn};
    ct_compile_opts co = {.outputs = outs, .n_outputs = 3, .grads = true};
    ct_program *p = ct_compile(g, &co);
    cr_assert_not_null(p, "%s", ct_last_error());
    ct_train_opts o = base_opts();
    ct_optimizer *opt = ct_optimizer_new(g, p, &o.optim);
    cr_assert_not_null(opt, "%s", ct_last_error());
    ct_tokens_batch_opts bo = {.batch_size = B, .block_size = T, .streams = true};
    int64_t W = ct_tokens_epoch_steps(train, &bo);
    float h[B * H] = {0}, c[B * H] = {0};
    int32_t xb[B * T], yb[B * T];
    for (int k = 0; k < steps; k++) {
        if (!carry || k % W == 0) {
            memset(h, 0, sizeof h);
            memset(c, 0, sizeof c);
        }
        cr_assert_eq(ct_tokens_batch(train, &bo, k, xb, yb), CT_OK);
        cr_assert_eq(ct_program_set_input_node(p, x, xb, sizeof xb), CT_OK);
        cr_assert_eq(ct_program_set_input_node(p, y, yb, sizeof yb), CT_OK);
        cr_assert_eq(ct_program_set_input_node(p, h0, h, sizeof h), CT_OK);
        cr_assert_eq(ct_program_set_input_node(p, c0, c, sizeof c), CT_OK);
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read(p, loss, &out[k], sizeof out[k]), CT_OK);
        cr_assert_eq(ct_program_read(p, hn, h, sizeof h), CT_OK);
        cr_assert_eq(ct_program_read(p, cn, c, sizeof c), CT_OK);
        cr_assert_eq(ct_optimizer_step(opt, o.optim.lr), CT_OK, "%s", ct_last_error());
    }
    ct_optimizer_free(opt);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(train_lm_stateful, steps_equal_a_loop_that_carries_the_states_by_hand) {
    ct_tokens *train, *val;
    make_data(300, &train, &val); /* 270 training tokens: streams of 89, W = 11 */
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 2, .states = PAIRS,
                    .n_states = 2};
    losses got = {0};
    ct_train_opts o = base_opts();
    o.max_steps = 14; /* past the end of the first epoch: the states start again from zero */
    o.progress = record;
    o.progress_user = &got;
    ct_trainer *t = ct_trainer_new_lm(&o, &d);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
    cr_expect_eq(r.steps_per_epoch, 11);
    cr_assert_eq(got.n, 14);
    float want[14], zero[14];
    reference(train, 14, true, want);
    reference(train, 14, false, zero);
    for (int k = 0; k < 14; k++)
        cr_expect_eq(got.step[k], want[k], "step %d: trainer %.9g, by hand %.9g", k + 1, got.step[k], want[k]);
    /* Step 1 (and 12, an epoch's first) start from zero either way; the
     * others differ when the states are not carried. */
    cr_expect_eq(want[0], zero[0]);
    for (int k = 1; k < 11; k++) cr_expect_neq(want[k], zero[k], "step %d: the carried states changed nothing", k + 1);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

/* ------------------------------------------------------------ resume */

static void *params_of(ct_trainer *t, size_t *bytes) {
    ct_program *p = ct_trainer_program(t);
    *bytes = ct_program_param_numel(p) * ct_dtype_size(ct_program_param_dtype(p));
    void *buf = malloc(*bytes);
    cr_assert_not_null(buf);
    cr_assert_eq(ct_program_read_params(p, buf, *bytes), CT_OK);
    return buf;
}

static ct_train_result run(const ct_train_opts *o, const ct_lm_data *d, const char *resume, void **params,
                           size_t *bytes) {
    ct_trainer *t = ct_trainer_new_lm(o, d);
    cr_assert_not_null(t, "%s", ct_last_error());
    if (resume) cr_assert_eq(ct_trainer_resume(t, resume), CT_OK, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    if (params) *params = params_of(t, bytes);
    ct_trainer_free(t);
    return r;
}

/* The carried h0 in a checkpoint (its values the next window starts from). */
static void read_state(const char *path, float *h) {
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    int i = ct_st_find(f, "state.h0");
    cr_assert_geq(i, 0, "no state.h0 in the checkpoint");
    cr_assert_eq(ct_st_read(f, i, CT_F32, h, B * H * sizeof(float)), CT_OK, "%s", ct_last_error());
    ct_st_close(f);
}

/* Straight against cut after `first` steps and resumed: the same weights,
 * losses, val_loss, and the same carried states in the final checkpoint. */
static void resume_case(ct_train_opts o, int64_t first) {
    ct_tokens *train, *val;
    make_data(300, &train, &val);
    char *dir = make_tmpdir();
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 2, .states = PAIRS,
                    .n_states = 2};
    void *straight, *resumed;
    size_t n1, n2;
    o.save_path = path_in(dir, "straight.safetensors");
    ct_train_result a = run(&o, &d, NULL, &straight, &n1);
    ct_train_opts cut = o;
    cut.max_steps = first;
    cut.save_path = path_in(dir, "part.safetensors");
    run(&cut, &d, NULL, NULL, NULL);
    float mid[B * H];
    read_state(path_in(dir, "part.safetensors"), mid);
    bool nonzero = false;
    for (int i = 0; i < B * H; i++) nonzero = nonzero || mid[i] != 0;
    cr_expect(nonzero, "the checkpoint's carried state is all zero mid-epoch");
    o.save_path = path_in(dir, "resumed.safetensors");
    ct_train_result b = run(&o, &d, path_in(dir, "part.safetensors"), &resumed, &n2);
    cr_assert_eq(n1, n2);
    cr_expect(memcmp(straight, resumed, n1) == 0, "weights differ after resuming");
    cr_expect_eq(a.steps, b.steps);
    cr_expect_eq(a.val_loss, b.val_loss, "%.17g vs %.17g", a.val_loss, b.val_loss);
    cr_expect_eq(a.train_loss, b.train_loss, "%.17g vs %.17g", a.train_loss, b.train_loss);
    float ha[B * H], hb[B * H];
    read_state(path_in(dir, "straight.safetensors"), ha);
    read_state(path_in(dir, "resumed.safetensors"), hb);
    cr_expect(memcmp(ha, hb, sizeof ha) == 0, "the carried states differ after resuming");
    free(straight);
    free(resumed);
    rm_tmpdir(dir);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

Test(train_lm_stateful, resume_mid_epoch_is_bit_exact) {
    ct_train_opts o = base_opts();
    o.max_steps = 9;
    o.eval_every = 4;
    o.clip_norm = 1.0;
    resume_case(o, 5);
}

/* With accumulation the state follows the stream from micro-batch to
 * micro-batch; a step of 2 micro-batches, an epoch of 11: the cut at step
 * 3 falls after micro-batch 6, and the run crosses the epoch's end. */
Test(train_lm_stateful, resume_with_accumulation_is_bit_exact) {
    ct_train_opts o = base_opts();
    o.accum_steps = 2;
    o.max_steps = 8;
    resume_case(o, 3);
}

Test(train_lm_stateful, checkpoints_resume_only_runs_with_the_same_states) {
    ct_tokens *train, *val;
    make_data(300, &train, &val);
    char *dir = make_tmpdir();
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 2, .states = PAIRS,
                    .n_states = 2};
    ct_train_opts o = base_opts();
    o.max_steps = 2;
    o.save_path = path_in(dir, "stateful.safetensors");
    run(&o, &d, NULL, NULL, NULL);
    ct_lm_data plain = d;
    plain.n_states = 0;
    plain.states = NULL;
    ct_train_opts po = base_opts();
    po.save_path = path_in(dir, "plain.safetensors");
    po.max_steps = 2;
    run(&po, &plain, NULL, NULL, NULL);
    ct_trainer *t = ct_trainer_new_lm(&po, &plain);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_expect_eq(ct_trainer_resume(t, path_in(dir, "stateful.safetensors")), CT_ERR_INVALID_ARG);
    expect_msg_has("was written with carried states 'h0>h_n,c0>c_n', this run carries ''");
    ct_trainer_free(t);
    cr_assert_not_null(t = ct_trainer_new_lm(&o, &d), "%s", ct_last_error());
    cr_expect_eq(ct_trainer_resume(t, path_in(dir, "plain.safetensors")), CT_ERR_INVALID_ARG);
    expect_msg_has("was written with carried states '', this run carries 'h0>h_n,c0>c_n'");
    ct_trainer_free(t);
    rm_tmpdir(dir);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

/* ------------------------------------------------------------ refusals */

static void expect_refused(const ct_train_opts *o, const ct_lm_data *d, ct_status st, const char *needle) {
    cr_expect_null(ct_trainer_new_lm(o, d));
    cr_expect_eq(ct_last_status(), st, "got '%s'", ct_last_error());
    expect_msg_has(needle);
}

Test(train_lm_stateful, bad_states_are_refused_with_messages) {
    ct_tokens *train, *val;
    make_data(300, &train, &val);
    ct_train_opts o = base_opts();
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .states = PAIRS, .n_states = 2};
    ct_lm_state missing_in[1] = {{"hx", "h_n"}}, missing_out[1] = {{"h0", "h_last"}}, empty[1] = {{"h0", ""}};
    ct_lm_state twice[2] = {{"h0", "h_n"}, {"h0", "c_n"}};
    d.states = missing_out;
    d.n_states = 1;
    expect_refused(&o, &d, CT_ERR_NOT_FOUND, "the model's training graph has no node named 'h_last'");
    d.states = missing_in;
    expect_refused(&o, &d, CT_ERR_NOT_FOUND, "the model's training graph has no input named 'hx' (a carried state)");
    d.states = empty;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "states[0] has a NULL or empty input or output name");
    d.states = twice;
    d.n_states = 2;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "states[0] and states[1] both feed the input 'h0'");
    d.states = NULL;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "n_states 2 (0 .. 16) with NULL states");
    /* h_n [1, 3, 6] into an h0 of [1, 3, 7] (the layer itself starts from zeros). */
    lstm_cfg wrong = {.states = true, .wrong_h0_shape = true};
    o.model_user = &wrong;
    d.states = PAIRS;
    expect_refused(&o, &d, CT_ERR_SHAPE,
                   "the carried state 'h_n' is f32 [1, 3, 6], the input 'h0' it feeds f32 [1, 3, 7]");
    /* 270 training tokens: streams of 269 / 40 = 6 tokens, short of T = 8. */
    o.model_user = &STATEFUL;
    o.batch_size = 40;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG,
                   "(training split): 270 tokens make 40 streams of 6 tokens, too few for one window of block size 8");
    ct_tokens_free(train);
    ct_tokens_free(val);
}
