/* The trainer for language models (ct_trainer_new_lm): a tiny GPT (V 12,
 * T 8, C 16, 2 layers) on a synthetic sequence learns (the loss falls far
 * below log V), reports val_loss per token, writes metrics lines without
 * accuracy, resumes bit-exactly (mid-epoch, with accumulation, clipping,
 * warmup + cosine and dropout), walks sequential windows by epochs, and
 * refuses the options that have no meaning for tokens, with messages.
 *
 * The sequence is a noisy cycle: the next token is (5 * token + 3) mod 12
 * nine times in ten and a Philox draw otherwise, so there is something to
 * learn and a floor above zero. Every run is a fraction of a second. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "expect_msg.h"
#include "tmpfiles.h"

#define V 12
#define T 8

static ct_gpt_config CFG = {.vocab_size = V, .block_size = T, .n_layer = 2, .n_head = 2, .n_embd = 16};

static ct_node gpt_model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    return ct_gpt(g, user, x);
}

/* The noisy cycle, n tokens, split 90/10 into train and val. */
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
    return (ct_train_opts){.model = gpt_model,
                           .model_user = &CFG,
                           .model_fingerprint = "test gpt 12-8-16-2",
                           .seed = 3,
                           .data_seed = 9,
                           .batch_size = 4,
                           .max_steps = 40,
                           .optim = {.kind = CT_OPTIM_ADAMW, .lr = 1e-2, .weight_decay = 0.1},
                           .quiet = true};
}

static void *params_of(ct_trainer *t, size_t *bytes) {
    ct_program *p = ct_trainer_program(t);
    *bytes = ct_program_param_numel(p) * ct_dtype_size(ct_program_param_dtype(p));
    void *buf = malloc(*bytes);
    cr_assert_not_null(buf);
    cr_assert_eq(ct_program_read_params(p, buf, *bytes), CT_OK);
    return buf;
}

/* Makes, optionally resumes, runs; the weights into *params if asked. */
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

/* ------------------------------------------------------------ learning */

typedef struct seen {
    double first_loss, last_loss;
    int evals;
    double eval_loss;
} seen;

static void record(const ct_train_progress *p, void *user) {
    seen *s = user;
    if (p->event == CT_TRAIN_STEP) {
        if (p->step == 1) s->first_loss = p->loss;
        s->last_loss = p->loss;
        cr_expect(p->tokens_per_s > 0 && fabs(p->tokens_per_s - T * p->samples_per_s) < 1e-6 * p->tokens_per_s);
    }
    if (p->event == CT_TRAIN_EVAL) {
        s->evals++;
        s->eval_loss = p->val_loss;
        cr_expect(isnan(p->val_acc));
    }
}

Test(train_lm, loss_falls_and_val_loss_is_per_token) {
    ct_tokens *train, *val;
    make_data(3000, &train, &val);
    char *dir = make_tmpdir();
    ct_train_opts o = base_opts();
    o.max_steps = 150;
    o.eval_every = 50;
    seen s = {0};
    o.progress = record;
    o.progress_user = &s;
    o.metrics_path = path_in(dir, "m.jsonl");
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 10};
    ct_trainer *t = ct_trainer_new_lm(&o, &d);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    cr_expect(fabs(s.first_loss - log(V)) < 0.3, "first loss %g, log V %g", s.first_loss, log(V));
    cr_expect(s.last_loss < 1.2, "the loss fell only to %g", s.last_loss);
    cr_expect_eq(s.evals, 3);
    cr_expect(r.val_loss < 1.2 && r.val_loss == s.eval_loss, "val_loss %g (last pass %g)", r.val_loss, s.eval_loss);
    cr_expect(isnan(r.val_acc) && isnan(r.test_loss) && isnan(r.test_acc));
    cr_expect(r.tokens_per_s > 0);
    /* An epoch sees about every token once: n / (B * T) steps. */
    cr_expect_eq(r.steps_per_epoch, ct_tokens_size(train) / (4 * T));
    double again;
    cr_assert_eq(ct_trainer_evaluate_lm(t, val, 10, &again), CT_OK, "%s", ct_last_error());
    cr_expect_eq(again, r.val_loss, "the same batches, the same weights: %.17g vs %.17g", again, r.val_loss);
    float fx[1] = {0};
    int32_t fy[1] = {0};
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(1, (ct_shape){1, {1}}, fx, fy, 2, &ds), CT_OK, "%s", ct_last_error());
    ct_eval_result er;
    cr_expect_eq(ct_trainer_evaluate(t, ds, &er), CT_ERR_INVALID_ARG);
    expect_msg_has("ct_trainer_evaluate_lm");
    ct_dataset_free(ds);
    ct_trainer_free(t);

    /* Metrics: no accuracy or test keys, tokens_per_s instead. */
    FILE *f = fopen(path_in(dir, "m.jsonl"), "r");
    cr_assert_not_null(f);
    char line[2048];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(j), "%s", line);
        cr_expect_null(cJSON_GetObjectItem(j, "val_acc"), "%s", line);
        cr_expect_null(cJSON_GetObjectItem(j, "test_acc"), "%s", line);
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(j, "tokens_per_s")), "%s", line);
        cr_expect_not_null(cJSON_GetObjectItem(j, "val_loss"), "%s", line);
        const cJSON *ev = cJSON_GetObjectItem(j, "event");
        if (strcmp(ev->valuestring, "eval") == 0 || strcmp(ev->valuestring, "test") == 0)
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(j, "val_loss")), "%s", line);
        cJSON_Delete(j);
        lines++;
    }
    fclose(f);
    cr_expect_eq(lines, 5, "3 passes, the end of epoch 1 and the last line");
    rm_tmpdir(dir);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

/* Without a pass at the last step, the end of the run still reports the
 * final weights' val_loss. */
Test(train_lm, val_loss_at_the_end_of_every_run) {
    ct_tokens *train, *val;
    make_data(2000, &train, &val);
    ct_train_opts o = base_opts();
    o.max_steps = 7;
    o.eval_every = 5;
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 3};
    ct_trainer *t = ct_trainer_new_lm(&o, &d);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    double now;
    cr_assert_eq(ct_trainer_evaluate_lm(t, val, 3, &now), CT_OK, "%s", ct_last_error());
    cr_expect_eq(r.val_loss, now);
    ct_trainer_free(t);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

/* ------------------------------------------------------------ resume */

/* Saves the trainer at a step from the progress callback: a checkpoint of
 * a run that goes on (the end of a run may put the best weights back). */
typedef struct saver {
    ct_trainer *t;
    int64_t step;
    const char *path;
} saver;

static void save_at(const ct_train_progress *p, void *user) {
    saver *s = user;
    if (p->event == CT_TRAIN_STEP && p->step == s->step)
        cr_assert_eq(ct_trainer_save(s->t, s->path), CT_OK, "%s", ct_last_error());
}

/* The run of o straight, and cut after first_steps (ended there, or saved
 * from the callback while it goes on) and resumed: the same weights and
 * results. */
static void resume_case(ct_train_opts o, int64_t first_steps, bool save_midway) {
    ct_tokens *train, *val;
    make_data(2000, &train, &val);
    char *dir = make_tmpdir();
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 4};
    void *straight, *resumed;
    size_t n1, n2;
    ct_train_result a = run(&o, &d, NULL, &straight, &n1);
    ct_train_opts first = o;
    if (save_midway) {
        saver sv = {.step = first_steps, .path = path_in(dir, "part.safetensors")};
        first.progress = save_at;
        first.progress_user = &sv;
        cr_assert_not_null(sv.t = ct_trainer_new_lm(&first, &d), "%s", ct_last_error());
        cr_assert_eq(ct_trainer_run(sv.t, NULL), CT_OK, "%s", ct_last_error());
        ct_trainer_free(sv.t);
    } else {
        first.max_steps = first_steps;
        first.epochs = 0;
        first.save_path = path_in(dir, "part.safetensors");
        run(&first, &d, NULL, NULL, NULL);
    }
    ct_train_result b = run(&o, &d, path_in(dir, "part.safetensors"), &resumed, &n2);
    cr_assert_eq(n1, n2);
    cr_expect(memcmp(straight, resumed, n1) == 0, "weights differ after resuming");
    cr_expect_eq(a.steps, b.steps);
    cr_expect_eq(a.val_loss, b.val_loss, "%.17g vs %.17g", a.val_loss, b.val_loss);
    cr_expect_eq(a.train_loss, b.train_loss, "%.17g vs %.17g", a.train_loss, b.train_loss);
    cr_expect_eq(a.best_val_loss, b.best_val_loss);
    free(straight);
    free(resumed);
    rm_tmpdir(dir);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

Test(train_lm, resume_is_bit_exact) {
    ct_gpt_config cfg = CFG;
    cfg.dropout = 0.1; /* the dropout counter is part of the state */
    ct_train_opts o = base_opts();
    o.model_user = &cfg;
    o.max_steps = 24;
    o.eval_every = 5;
    o.clip_norm = 1.0;
    /* T_max given: by default it is the run's length, which the cut changes. */
    o.schedule = (ct_schedule){.kind = CT_SCHED_COSINE, .eta_min = 1e-3, .warmup_steps = 4, .T_max = 20};
    resume_case(o, 12, false);
}

Test(train_lm, resume_with_accumulation_and_early_stopping_is_bit_exact) {
    ct_train_opts o = base_opts();
    o.max_steps = 20;
    o.accum_steps = 2;
    o.eval_every = 3;
    o.early_stop_patience = 50;
    o.schedule = (ct_schedule){.kind = CT_SCHED_PLATEAU, .factor = 0.5, .patience = 1};
    resume_case(o, 7, true);
}

/* Sequential windows: epochs of n / (B * T) steps, the run resumed across
 * an epoch boundary. */
Test(train_lm, sequential_windows_by_epochs) {
    ct_train_opts o = base_opts();
    o.no_shuffle = true;
    o.max_steps = 0;
    o.epochs = 3;
    ct_tokens *train, *val;
    make_data(400, &train, &val); /* 360 training tokens: 11 steps an epoch */
    ct_lm_data d = {.train = train, .val = val, .block_size = T, .eval_batches = 2};
    ct_train_result r = run(&o, &d, NULL, NULL, NULL);
    cr_expect_eq(r.steps_per_epoch, 360 / (4 * T));
    cr_expect_eq(r.epochs, 3);
    cr_expect_eq(r.steps, 3 * r.steps_per_epoch);
    cr_expect(isfinite(r.val_loss));
    ct_train_opts shuffled = o;
    shuffled.no_shuffle = false;
    ct_train_result r2 = run(&shuffled, &d, NULL, NULL, NULL);
    cr_expect_neq(r.train_loss, r2.train_loss, "sequential and random windows gave the same run");
    ct_tokens_free(train);
    ct_tokens_free(val);
    resume_case(o, 16, false);
}

/* ------------------------------------------------------------ refusals */

static void expect_refused(const ct_train_opts *o, const ct_lm_data *d, ct_status st, const char *needle) {
    cr_expect_null(ct_trainer_new_lm(o, d));
    cr_expect_eq(ct_last_status(), st, "got '%s'", ct_last_error());
    expect_msg_has(needle);
}

static ct_node flat_logits(ct_graph *g, ct_node x, bool training, void *user) {
    ct_node l = gpt_model(g, x, training, user);
    return ct_reshape(g, l, (ct_shape){2, {-1, V}});
}

Test(train_lm, bad_options_are_refused_with_messages) {
    ct_tokens *train, *val;
    make_data(200, &train, &val); /* 180 and 20 tokens */
    ct_train_opts o = base_opts();
    ct_lm_data d = {.train = train, .val = val, .block_size = 180};
    cr_assert_null(ct_trainer_new_lm(&o, &d));
    expect_msg_has("training split", "180 tokens", "block size 180");
    d.block_size = 20; /* fits training, not validation (20 tokens) */
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "validation split");
    d.block_size = T;
    o.label_smoothing = 0.1;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "label_smoothing");
    o = base_opts();
    ct_augment_opts aug = {.flip = true};
    o.augment = &aug;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "augment");
    o = base_opts();
    o.prefetch = true;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "prefetch");
    o = base_opts();
    o.drop_last = true;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "drop_last");
    o = base_opts();
    o.batch_size = 0;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "batch_size 0");
    o = base_opts();
    d.block_size = 0;
    expect_refused(&o, &d, CT_ERR_INVALID_ARG, "block_size 0");
    d.block_size = T;
    o.model = flat_logits;
    expect_refused(&o, &d, CT_ERR_SHAPE, "[4, 8, V]");
    o = base_opts();
    ct_gpt_config small = CFG;
    small.vocab_size = V - 2;
    o.model_user = &small;
    expect_refused(&o, &d, CT_ERR_SHAPE, "vocabulary size");
    /* A classifier's trainer has no token evaluation. */
    double loss;
    cr_expect_eq(ct_trainer_evaluate_lm(NULL, val, 1, &loss), CT_ERR_INVALID_ARG);
    ct_tokens_free(train);
    ct_tokens_free(val);
}

/* A checkpoint of another block size or training text does not resume. */
Test(train_lm, resume_checks_block_size_and_tokens) {
    ct_tokens *train, *val, *train2, *val2;
    make_data(1000, &train, &val);
    make_data(1200, &train2, &val2);
    char *dir = make_tmpdir();
    ct_train_opts o = base_opts();
    o.max_steps = 2;
    o.save_path = path_in(dir, "a.safetensors");
    ct_lm_data d = {.train = train, .val = val, .block_size = T};
    run(&o, &d, NULL, NULL, NULL);
    o.save_path = NULL;
    ct_lm_data d2 = {.train = train, .val = val, .block_size = T - 2};
    ct_trainer *t = ct_trainer_new_lm(&o, &d2);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_expect_eq(ct_trainer_resume(t, path_in(dir, "a.safetensors")), CT_ERR_INVALID_ARG);
    expect_msg_has("block size 8", "6");
    ct_trainer_free(t);
    d2 = (ct_lm_data){.train = train2, .val = val2, .block_size = T};
    t = ct_trainer_new_lm(&o, &d2);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_expect_eq(ct_trainer_resume(t, path_in(dir, "a.safetensors")), CT_ERR_INVALID_ARG);
    expect_msg_has("training token count 900");
    ct_trainer_free(t);
    rm_tmpdir(dir);
    ct_tokens_free(train);
    ct_tokens_free(val);
    ct_tokens_free(train2);
    ct_tokens_free(val2);
}

/* ------------------------------------------------------------ generation's padding */

/* `ctrain generate` runs one window [1, T] over a context shorter than T
 * padded after its end: with causal attention the logits up to the last
 * real position do not depend on what the padding holds. */
Test(train_lm, causal_logits_ignore_the_padding_after_them) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 11);
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {1, T}});
    ct_node logits = ct_gpt(g, &CFG, idx);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_compile_opts co = {.outputs = &logits, .n_outputs = 1};
    ct_program *p = ct_compile(g, &co);
    cr_assert_not_null(p, "%s", ct_last_error());
    ct_program_set_training(p, false);
    const int len = 3;
    int32_t a[T] = {4, 1, 7, 0, 0, 0, 0, 0}, b[T] = {4, 1, 7, 11, 2, 9, 5, 3};
    float la[T * V], lb[T * V];
    cr_assert_eq(ct_program_set_input_node(p, idx, a, sizeof a), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, logits, la, sizeof la), CT_OK);
    cr_assert_eq(ct_program_set_input_node(p, idx, b, sizeof b), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, logits, lb, sizeof lb), CT_OK);
    cr_expect(memcmp(la, lb, (size_t)(len * V) * sizeof *la) == 0, "the padding changed the logits before it");
    cr_expect(memcmp(la + len * V, lb + len * V, sizeof(float) * V) != 0, "the rows after differ (sanity)");
    ct_program_free(p);
    ct_graph_free(g);
}
