/* The fused training step (ctrain/step_graph.h) on the CPU, and the
 * trainer's fused path forced onto the CPU.
 *
 * The CPU never captures, but it runs the same issue() a GPU captures, with
 * the host fallbacks of the device-side clip and loss sum. These tests pin
 * that this sequence is exactly the separate calls (weights bit for bit),
 * that the values kept "on the device" (loss sum, norm) are right, and that
 * the trainer's deferred loss reading changes nothing but when the loss is
 * read. The GPU side (capture, replay, no allocation) is in
 * test_cuda_parity_train.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "train/train_internal.h"

#define B 16
#define IN 12

static ct_graph *mlp(ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 99);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {B, IN}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {B}});
    ct_node h = ct_dropout(g, ct_relu(g, ct_linear(g, "fc1", x, 24, true, NULL)), 0.3);
    *loss = ct_cross_entropy(g, ct_linear(g, "fc2", h, 5, true, NULL), y, 0.0);
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

static ct_program *compile(ct_graph *g, ct_node *loss) {
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    return p;
}

/* Batch s: features in [-2, 2] from Philox, labels in [0, 5). */
static void feed(ct_program *p, int s) {
    float x[B * IN];
    int32_t y[B];
    for (int i = 0; i < B * IN; i++) x[i] = (float)(4 * ct_philox_uniform(5, 1, (uint32_t)s, (uint64_t)i) - 2);
    for (int i = 0; i < B; i++) y[i] = (int32_t)(ct_philox_u32(5, 2, (uint32_t)s, (uint64_t)i) % 5);
    cr_assert_eq(ct_program_set_input(p, "x", x, sizeof x), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_input(p, "y", y, sizeof y), CT_OK, "%s", ct_last_error());
}

static float *weights(ct_program *p, size_t *bytes) {
    *bytes = ct_program_param_numel(p) * sizeof(float);
    float *w = malloc(*bytes);
    cr_assert_eq(ct_program_read_params(p, w, *bytes), CT_OK, "%s", ct_last_error());
    return w;
}

Test(step_graph, is_the_separate_calls_bit_for_bit) {
    ct_node la, lb;
    ct_graph *ga = mlp(&la), *gb = mlp(&lb);
    ct_program *pa = compile(ga, &la), *pb = compile(gb, &lb);
    ct_optim_opts oo = {.kind = CT_OPTIM_ADAMW, .lr = 0.01, .weight_decay = 0.1};
    ct_optimizer *oa = ct_optimizer_new(ga, pa, &oo), *ob = ct_optimizer_new(gb, pb, &oo);
    cr_assert(oa && ob, "%s", ct_last_error());
    ct_step_graph *sg = ct_step_graph_new(pb, ob, &(ct_step_graph_opts){.clip_norm = 0.5, .loss = &lb,
                                                                         .loss_weight = 2.0});
    cr_assert_not_null(sg, "%s", ct_last_error());
    cr_assert(!ct_step_graph_captures(sg), "the CPU cannot capture");
    double sum = 0, norm_a = 0, clipped = 0;
    for (int s = 0; s < 6; s++) {
        double lr = 0.01 * (1 + s % 3); /* changes every step */
        float loss;
        feed(pa, s);
        cr_assert_eq(ct_program_run(pa), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read(pa, la, &loss, sizeof loss), CT_OK);
        cr_assert_eq(ct_clip_grad_norm(pa, 0.5, &norm_a), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_optimizer_step(oa, lr), CT_OK, "%s", ct_last_error());
        sum += 2.0 * loss;
        if (norm_a > 0.5) clipped++;
        feed(pb, s);
        cr_assert_eq(ct_step_graph_run(sg, lr), CT_OK, "%s", ct_last_error());
        double last, got_sum, norm_b;
        cr_assert_eq(ct_step_graph_loss(sg, &last, &got_sum), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_step_graph_grad_norm(sg, &norm_b), CT_OK, "%s", ct_last_error());
        cr_assert_eq(last, 2.0 * loss, "step %d: loss %.17g vs %.17g", s, last, 2.0 * loss);
        cr_assert_eq(got_sum, sum, "step %d: sum %.17g vs %.17g", s, got_sum, sum);
        cr_assert_eq(norm_b, norm_a, "step %d: norm %.17g vs %.17g", s, norm_b, norm_a);
    }
    cr_assert_gt(clipped, 0, "the case must clip at least once (norms up to %g)", norm_a);
    cr_assert_eq(ct_program_step(pb), ct_program_step(pa));
    cr_assert_eq(ct_optimizer_step_count(ob), 6);
    size_t bytes;
    float *wa = weights(pa, &bytes), *wb = weights(pb, &bytes);
    cr_assert_eq(memcmp(wa, wb, bytes), 0, "the fused step's weights differ from the separate calls'");
    /* clearing the sum starts it again */
    cr_assert_eq(ct_step_graph_clear_loss(sg), CT_OK);
    double got_sum = 1;
    cr_assert_eq(ct_step_graph_loss(sg, NULL, &got_sum), CT_OK);
    cr_assert_eq(got_sum, 0.0);
    cr_assert_eq(ct_step_graph_capture_count(sg), 0);
    free(wa), free(wb);
    ct_step_graph_free(sg);
    ct_optimizer_free(oa), ct_optimizer_free(ob);
    ct_program_free(pa), ct_program_free(pb);
    ct_graph_free(ga), ct_graph_free(gb);
}

Test(step_graph, a_non_finite_norm_leaves_the_gradients_and_reads_nan) {
    ct_node l;
    ct_graph *g = mlp(&l);
    ct_program *p = compile(g, &l);
    ct_optimizer *o = ct_optimizer_new(g, p, &(ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.1});
    ct_step_graph *sg = ct_step_graph_new(p, o, &(ct_step_graph_opts){.clip_norm = 1.0, .loss = &l});
    cr_assert(o && sg, "%s", ct_last_error());
    float x[B * IN];
    for (int i = 0; i < B * IN; i++) x[i] = i == 7 ? INFINITY : 0.25f;
    int32_t y[B] = {0};
    cr_assert_eq(ct_program_set_input(p, "x", x, sizeof x), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "y", y, sizeof y), CT_OK);
    cr_assert_eq(ct_step_graph_run(sg, 0.1), CT_OK, "not an error: %s", ct_last_error());
    double norm = 0, last = 0;
    cr_assert_eq(ct_step_graph_grad_norm(sg, &norm), CT_OK);
    cr_assert(isnan(norm), "norm %g", norm);
    cr_assert_eq(ct_step_graph_loss(sg, &last, NULL), CT_OK);
    cr_assert(!isfinite(last), "loss %g", last);
    ct_step_graph_free(sg);
    ct_optimizer_free(o);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(step_graph, bad_arguments_are_errors) {
    ct_node l, l2;
    ct_graph *g = mlp(&l), *g2 = mlp(&l2);
    ct_program *p = compile(g, &l), *p2 = compile(g2, &l2);
    ct_optimizer *o = ct_optimizer_new(g, p, &(ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.1});
    ct_optimizer *o2 = ct_optimizer_new(g2, p2, &(ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.1});
    cr_assert(o && o2);
    cr_assert_null(ct_step_graph_new(NULL, o, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_step_graph_new(p, o2, NULL));
    cr_assert(strstr(ct_last_error(), "another program"), "%s", ct_last_error());
    cr_assert_null(ct_step_graph_new(p, o, &(ct_step_graph_opts){.clip_norm = -1}));
    cr_assert(strstr(ct_last_error(), "clip_norm"), "%s", ct_last_error());
    cr_assert_null(ct_step_graph_new(p, o, &(ct_step_graph_opts){.clip_value = INFINITY}));
    ct_node x = ct_find(g, "x"); /* readable, but not a scalar */
    cr_assert_null(ct_step_graph_new(p, o, &(ct_step_graph_opts){.loss = &x}));
    cr_assert(strstr(ct_last_error(), "scalar"), "%s", ct_last_error());
    ct_step_graph *sg = ct_step_graph_new(p, o, NULL);
    cr_assert_not_null(sg, "%s", ct_last_error());
    double v;
    cr_assert_eq(ct_step_graph_loss(sg, &v, &v), CT_ERR_STATE);
    cr_assert_eq(ct_step_graph_grad_norm(sg, &v), CT_ERR_STATE);
    cr_assert_eq(ct_step_graph_run(sg, NAN), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_step_graph_run(sg, -1), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_program_step(p), 0u, "a refused step is not counted");
    cr_assert_eq(ct_step_graph_run(NULL, 0.1), CT_ERR_INVALID_ARG);
    ct_step_graph_free(sg);
    ct_step_graph_free(NULL);
    ct_optimizer_free(o), ct_optimizer_free(o2);
    ct_program_free(p), ct_program_free(p2);
    ct_graph_free(g), ct_graph_free(g2);
}

/* ---- the trainer's fused path, forced onto the CPU ---------------------- */

#define FEAT 6
#define CLASSES 3

static ct_node model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training, (void)user;
    ct_node h = ct_dropout(g, ct_relu(g, ct_linear(g, "fc1", x, 16, true, NULL)), 0.2);
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

static ct_dataset *data(int64_t n) {
    float *x = malloc((size_t)n * FEAT * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(ct_philox_u32(3, 1, 0, (uint64_t)i) % CLASSES);
        for (int f = 0; f < FEAT; f++)
            x[i * FEAT + f] = (float)((f % CLASSES == y[i] ? 1.5 : 0) + ct_philox_uniform(3, 2, 0, (uint64_t)(i * FEAT + f)));
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s", ct_last_error());
    free(x), free(y);
    return ds;
}

typedef struct seen {
    int steps, shown;
} seen;

static void on_progress(const ct_train_progress *p, void *user) {
    seen *s = user;
    if (p->event != CT_TRAIN_STEP) return;
    s->steps++;
    if (isfinite(p->loss) && p->loss > 0) s->shown++;
}

/* 100 samples in batches of 16: six full batches and a short one an epoch. */
static ct_train_opts opts(seen *s) {
    return (ct_train_opts){.model = model, .seed = 4, .data_seed = 5, .batch_size = 16, .epochs = 3,
                           .optim = {.kind = CT_OPTIM_SGD, .lr = 0.2, .momentum = 0.9},
                           .schedule = {.kind = CT_SCHED_COSINE}, .clip_norm = 0.3,
                           .progress = s ? on_progress : NULL, .progress_user = s, .quiet = true};
}

static void train(ct_train_opts o, bool fused, ct_dataset *ds, float **w, size_t *bytes, ct_train_result *r) {
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_assert(!t->fused, "the CPU trainer is not fused unless told");
    t->fused = fused;
    cr_assert_eq(ct_trainer_run(t, r), CT_OK, "%s", ct_last_error());
    *w = weights(ct_trainer_program(t), bytes);
    ct_trainer_free(t);
}

Test(step_graph, the_fused_trainer_is_the_plain_one) {
    ct_dataset *ds = data(100);
    float *wa, *wb;
    size_t bytes;
    ct_train_result ra, rb;
    seen sa = {0}, sb = {0};
    train(opts(&sa), false, ds, &wa, &bytes, &ra);
    train(opts(&sb), true, ds, &wb, &bytes, &rb);
    cr_assert_eq(memcmp(wa, wb, bytes), 0, "fused training changed the weights");
    cr_assert_eq(rb.steps, 21);
    cr_assert_eq(ra.steps, rb.steps);
    cr_assert(fabs(ra.train_loss - rb.train_loss) <= 1e-12 * fabs(ra.train_loss), "train loss %.17g vs %.17g",
              ra.train_loss, rb.train_loss);
    /* A progress callback sees every step's loss in both. */
    cr_assert_eq(sb.steps, 21);
    cr_assert_eq(sa.shown, 21);
    cr_assert_eq(sb.shown, 21);
    free(wa), free(wb);
    /* Quiet and no callback: the loss is read at the epochs' ends only, with
     * the same result. */
    train(opts(NULL), true, ds, &wb, &bytes, &rb);
    train(opts(NULL), false, ds, &wa, &bytes, &ra);
    cr_assert_eq(memcmp(wa, wb, bytes), 0);
    cr_assert(fabs(ra.train_loss - rb.train_loss) <= 1e-12 * fabs(ra.train_loss));
    free(wa), free(wb);
    ct_dataset_free(ds);
}

Test(step_graph, a_diverging_fused_run_names_the_steps) {
    ct_dataset *ds = data(100);
    ct_train_opts o = opts(NULL);
    o.clip_norm = 0;
    o.batch_size = 20; /* no short batch: every step is fused */
    o.schedule = (ct_schedule){0};
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 1e30};
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t);
    t->fused = true;
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_ERR_NUMERIC);
    cr_assert(strstr(ct_last_error(), "in a step between 1 and"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "learning rate"), "%s", ct_last_error());
    ct_trainer_free(t);
    ct_dataset_free(ds);
}
