/* Distillation (ctrain/distill.h, docs/compression.md): the loss and its
 * gradient against PyTorch (tests/ref/distill_reference.py wrote
 * tests/ref/distill_ref.h), kl_div's zero-target rule, and the trainer
 * distilling from a saved teacher: the teacher's weights untouched, both
 * terms in the metrics, a teacher of another width refused. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#include "ref/distill_ref.h"

#define FEAT 8

Test(distill, loss_and_gradient_match_pytorch) {
    ct_graph *g = ct_graph_new();
    ct_shape s = {2, {DREF_N, DREF_C}};
    ct_node x = ct_input(g, "student", CT_F64, s);
    ct_node t = ct_input(g, "teacher", CT_F64, s);
    ct_node y = ct_constant(g, CT_I32, (ct_shape){1, {DREF_N}}, dref_labels);
    cr_assert_eq(ct_set_requires_grad(g, x, true), CT_OK);
    ct_node loss, kl, ce;
    cr_assert_eq(ct_distill_loss(g, x, t, y, DREF_T, DREF_A, 0.0, &loss, &kl, &ce), CT_OK, "%s", ct_graph_error(g));
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gx = ct_grad(g, x);
    ct_node outs[4] = {loss, kl, ce, gx};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 4});
    cr_assert_not_null(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_input_node(p, x, dref_student, sizeof dref_student), CT_OK);
    cr_assert_eq(ct_program_set_input_node(p, t, dref_teacher, sizeof dref_teacher), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    double l, k, c, grad[DREF_N * DREF_C];
    cr_assert_eq(ct_program_read(p, loss, &l, sizeof l), CT_OK);
    cr_assert_eq(ct_program_read(p, kl, &k, sizeof k), CT_OK);
    cr_assert_eq(ct_program_read(p, ce, &c, sizeof c), CT_OK);
    cr_assert_eq(ct_program_read(p, gx, grad, sizeof grad), CT_OK);
    cr_assert_float_eq(k, dref_kl, 1e-12 * fabs(dref_kl), "kl %.17g vs PyTorch %.17g", k, dref_kl);
    cr_assert_float_eq(c, dref_ce, 1e-12 * fabs(dref_ce), "ce %.17g vs %.17g", c, dref_ce);
    cr_assert_float_eq(l, dref_loss, 1e-12 * fabs(dref_loss), "loss %.17g vs %.17g", l, dref_loss);
    for (int i = 0; i < DREF_N * DREF_C; i++)
        cr_assert_float_eq(grad[i], dref_grad[i], 1e-12, "grad[%d] %.17g vs PyTorch %.17g", i, grad[i], dref_grad[i]);
    ct_program_free(p);
    ct_graph_free(g);
}

/* PyTorch's xlogy: a zero target contributes 0 (not NaN); batchmean
 * divides by the first axis only. */
Test(distill, kl_div_zero_target_and_batchmean) {
    ct_graph *g = ct_graph_new();
    const double in[6] = {-1, -2, -0.5, -3, -0.25, -4};
    const double tg[6] = {0, 1, 0.5, 0.5, 0.2, 0};
    ct_node a = ct_constant(g, CT_F64, (ct_shape){3, {2, 1, 3}}, in);
    ct_node b = ct_constant(g, CT_F64, (ct_shape){3, {2, 1, 3}}, tg);
    ct_node k = ct_kl_div(g, a, b);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &k, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_run(p), CT_OK);
    double v;
    cr_assert_eq(ct_program_read(p, k, &v, sizeof v), CT_OK);
    double want = 0;
    for (int i = 0; i < 6; i++)
        if (tg[i] > 0) want += tg[i] * (log(tg[i]) - in[i]);
    cr_assert_float_eq(v, want / 2, 1e-15, "%.17g vs %.17g", v, want / 2);
    ct_program_free(p);
    /* Mismatched shapes and dtypes name the op. */
    ct_node c = ct_constant(g, CT_F64, (ct_shape){2, {2, 3}}, in);
    cr_assert_eq(ct_kl_div(g, a, c), CT_NO_NODE);
    cr_assert(strstr(ct_graph_error(g), "kl_div: input [2, 1, 3] and target [2, 3] differ"), "%s", ct_graph_error(g));
    ct_graph_free(g);
}

/* ------------------------------------------------------------ the trainer */

static int64_t teacher_classes = 4;

static ct_node build_mlp(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    int64_t hidden = *(const int64_t *)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, hidden, true, NULL), "relu");
    return ct_linear(g, "fc2", h, user == &teacher_classes ? teacher_classes : 4, true, NULL);
}

static ct_node build_teacher(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 32, true, NULL), "relu");
    return ct_linear(g, "fc2", h, teacher_classes, true, NULL);
}

static ct_dataset *blobs(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = (int32_t)(ct_philox_u32(seed, 1, 0, (uint64_t)i) % 4);
        y[i] = c;
        for (int f = 0; f < FEAT; f++)
            x[i * FEAT + f] =
                (float)((f % 4 == c ? 1.5 : 0.0) + 2.0 * (ct_philox_uniform(seed, 2, 0, (uint64_t)(i * FEAT + f)) - 0.5));
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, 4, &ds), CT_OK, "%s", ct_last_error());
    free(x);
    free(y);
    return ds;
}

static char dir[] = "/tmp/ctrain_test_distill_XXXXXX";

/* A teacher trained and saved to dir/teacher.safetensors. */
static void train_teacher(const ct_dataset *ds, char *path, size_t cap) {
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, cap, "%s/teacher.safetensors", dir);
    ct_train_opts o = {.model = build_teacher, .seed = 5, .batch_size = 32, .epochs = 5, .quiet = true,
                       .optim = {.kind = CT_OPTIM_ADAM, .lr = 1e-2}, .save_path = path};
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    cr_assert_eq(ct_trainer_run(t, NULL), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
}

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(distill, trainer_distils_from_a_frozen_teacher) {
    ct_dataset *ds = blobs(320, 21), *test = blobs(200, 22);
    char teacher[128], metrics[160];
    train_teacher(ds, teacher, sizeof teacher);
    snprintf(metrics, sizeof metrics, "%s/m.jsonl", dir);
    ct_st_file *before = ct_st_open(teacher);
    float w0[32 * FEAT];
    cr_assert_eq(ct_st_read(before, ct_st_find(before, "fc1.weight"), CT_F32, w0, sizeof w0), CT_OK);
    ct_st_close(before);
    int64_t hidden = 8;
    ct_distill_opts d = {.teacher = build_teacher, .teacher_path = teacher, .temperature = 4, .alpha = 0.9};
    ct_train_opts o = {.model = build_mlp, .model_user = &hidden, .seed = 6, .batch_size = 32, .epochs = 3,
                       .quiet = true, .optim = {.kind = CT_OPTIM_ADAM, .lr = 1e-2}, .distill = &d,
                       .metrics_path = metrics};
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, test);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    cr_assert_gt(r.test_acc, 0.6, "the distilled student learnt nothing: %g", r.test_acc);
    ct_trainer_free(t);
    ct_st_file *after = ct_st_open(teacher);
    float w1[32 * FEAT];
    cr_assert_eq(ct_st_read(after, ct_st_find(after, "fc1.weight"), CT_F32, w1, sizeof w1), CT_OK);
    ct_st_close(after);
    cr_assert_eq(memcmp(w0, w1, sizeof w0), 0, "the teacher's file changed");
    /* The epoch lines carry both terms: positive numbers, the loss their mix. */
    FILE *f = fopen(metrics, "r");
    cr_assert_not_null(f);
    char line[4096];
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cJSON *j = cJSON_Parse(line);
    double kl = cJSON_GetObjectItem(j, "distill_kl")->valuedouble, ce = cJSON_GetObjectItem(j, "distill_ce")->valuedouble;
    double loss = cJSON_GetObjectItem(j, "train_loss")->valuedouble;
    cr_assert(kl > 0 && ce > 0, "kl %g ce %g", kl, ce);
    cr_assert_float_eq(loss, 0.9 * 16 * kl + 0.1 * ce, 1e-5 * loss, "%g vs %g", loss, 0.9 * 16 * kl + 0.1 * ce);
    cJSON_Delete(j);
    cleanup();
    ct_dataset_free(ds);
    ct_dataset_free(test);
}

Test(distill, teacher_of_another_width_and_bad_options_refused) {
    ct_dataset *ds = blobs(64, 23);
    char teacher[128];
    teacher_classes = 4;
    train_teacher(ds, teacher, sizeof teacher);
    int64_t hidden = 8;
    teacher_classes = 6; /* the file's fc2 is [4, 32]: the model says 6 */
    ct_distill_opts d = {.teacher = build_teacher, .teacher_path = teacher, .alpha = 0.5};
    ct_train_opts o = {.model = build_mlp, .model_user = &hidden, .batch_size = 32, .epochs = 1, .quiet = true,
                       .optim = {.kind = CT_OPTIM_ADAM, .lr = 1e-2}, .distill = &d};
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "distill: the teacher's output has 6 classes, the student's 4"), "%s",
              ct_last_error());
    teacher_classes = 4;
    d.alpha = 1.5;
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "distill: alpha 1.5 is outside [0, 1]"), "%s", ct_last_error());
    d.alpha = 0.5;
    d.teacher_path = "/nonexistent/teacher.safetensors";
    cr_assert_null(ct_trainer_new(&o, ds, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "distill: the teacher's weights"), "%s", ct_last_error());
    cleanup();
    ct_dataset_free(ds);
}
