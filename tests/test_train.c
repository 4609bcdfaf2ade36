/* The trainer: exact resume, early stopping, metrics, gradient
 * accumulation, CSV data, checkpoint errors, evaluation.
 *
 * Every run here is a few hundred synthetic samples through a small MLP
 * (with batch norm, so buffers are covered too), a fraction of a second on
 * the CPU. The data are Gaussian blobs, one per class, in a few dimensions,
 * generated from Philox so that every run of the suite sees the same.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#define FEAT 8
#define CLASSES 4

/* ------------------------------------------------------------ fixtures */

typedef struct mlp {
    int64_t hidden;
    double dropout;
    bool batchnorm;
} mlp;

static ct_node build_mlp(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    const mlp *m = user;
    ct_node h = ct_linear(g, "fc1", x, m->hidden, true, NULL);
    if (m->batchnorm) h = ct_batch_norm(g, "bn1", h, 0, 0);
    h = ct_activation(g, h, "relu");
    if (m->dropout > 0) h = ct_dropout(g, h, m->dropout);
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

/* n samples of CLASSES blobs; noise 0 gives random labels around one
 * centre (nothing to learn, everything to memorise). */
static ct_dataset *blobs(int64_t n, uint64_t seed, double spread, bool random_labels) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = (int32_t)(ct_philox_u32(seed, 1, 0, (uint64_t)i) % CLASSES);
        y[i] = c;
        for (int f = 0; f < FEAT; f++) {
            /* Box-Muller from two uniforms. */
            double u1 = ct_philox_uniform(seed, 2, 0, (uint64_t)(i * FEAT + f)) + 1e-7;
            double u2 = ct_philox_uniform(seed, 3, 0, (uint64_t)(i * FEAT + f));
            double z = sqrt(-2 * log(u1)) * cos(2 * 3.14159265358979 * u2);
            double centre = random_labels ? 0 : (f % CLASSES == c ? 2.0 : 0.0);
            x[i * FEAT + f] = (float)(centre + spread * z);
        }
        if (random_labels) y[i] = (int32_t)(ct_philox_u32(seed, 4, 0, (uint64_t)i) % CLASSES);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s",
                 ct_last_error());
    free(x);
    free(y);
    return ds;
}

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ctrain_test_train_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(train, .init = make_tmpdir, .fini = remove_tmpdir);

static const char *tmp(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static mlp MODEL = {.hidden = 16, .dropout = 0.25, .batchnorm = true};

/* A run with shuffling, dropout, batch norm, Adam, a schedule with warmup
 * and a short last batch (300 = 9 * 32 + 12). */
static ct_train_opts base_opts(void) {
    ct_train_opts o = {.model = build_mlp,
                       .model_user = &MODEL,
                       .model_fingerprint = "test mlp 8-16-4",
                       .seed = 7,
                       .data_seed = 11,
                       .batch_size = 32,
                       .eval_batch_size = 50,
                       .prefetch = true,
                       .epochs = 2,
                       .optim = {.kind = CT_OPTIM_ADAM, .lr = 0.01},
                       .schedule = {.kind = CT_SCHED_STEP, .step_size = 4, .gamma = 0.7, .warmup_steps = 3},
                       .quiet = true};
    return o;
}

static void *params_of(ct_trainer *t, size_t *bytes) {
    ct_program *p = ct_trainer_program(t);
    *bytes = ct_program_param_numel(p) * ct_dtype_size(ct_program_param_dtype(p));
    void *buf = malloc(*bytes);
    cr_assert_not_null(buf);
    cr_assert_eq(ct_program_read_params(p, buf, *bytes), CT_OK);
    return buf;
}

static void running_mean_of(ct_trainer *t, float out[16]) {
    cr_assert_eq(ct_program_get_param(ct_trainer_program(t), "bn1.running_mean", out, 16 * sizeof(float)), CT_OK,
                 "%s", ct_last_error());
}

static ct_train_result run(const ct_train_opts *o, ct_dataset *train, ct_dataset *val, const char *resume,
                           void **params, size_t *bytes, float rm[16]) {
    ct_trainer *t = ct_trainer_new(o, train, val, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    if (resume) cr_assert_eq(ct_trainer_resume(t, resume), CT_OK, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    if (params) *params = params_of(t, bytes);
    if (rm) running_mean_of(t, rm);
    ct_trainer_free(t);
    return r;
}

/* ------------------------------------------------------------ exact resume */

static ct_train_result resume_case(ct_train_opts o, bool mid_epoch) {
    ct_dataset *train = blobs(300, 1, 1.0, false), *val = blobs(60, 2, 1.0, false);

    void *straight, *resumed;
    size_t n1, n2;
    float rm1[16], rm2[16];
    ct_train_result a = run(&o, train, val, NULL, &straight, &n1, rm1);

    /* The first part: one epoch, or the first 5 steps of the first epoch. */
    ct_train_opts first = o;
    first.save_path = tmp("part.safetensors");
    if (mid_epoch) {
        first.epochs = 0;
        first.max_steps = 5;
    } else {
        first.epochs = 1;
    }
    run(&first, train, val, NULL, NULL, NULL, NULL);
    ct_train_result b = run(&o, train, val, tmp("part.safetensors"), &resumed, &n2, rm2);

    cr_assert_eq(n1, n2);
    cr_assert(memcmp(straight, resumed, n1) == 0, "weights differ after resuming");
    cr_assert(memcmp(rm1, rm2, sizeof rm1) == 0, "batch-norm running statistics differ after resuming");
    cr_assert_eq(a.steps, b.steps);
    cr_assert_eq(a.val_loss, b.val_loss);
    cr_assert_eq(a.train_loss, b.train_loss);
    cr_assert_eq(a.loss_scale, b.loss_scale);
    cr_assert_eq(a.skipped_steps, b.skipped_steps);
    free(straight);
    free(resumed);
    ct_dataset_free(train);
    ct_dataset_free(val);
    return a;
}

static void check_resume(int accum, bool mid_epoch) {
    ct_train_opts o = base_opts();
    o.accum_steps = accum;
    resume_case(o, mid_epoch);
}

Test(train, resume_after_an_epoch_is_bit_exact) { check_resume(1, false); }
Test(train, resume_mid_epoch_is_bit_exact) { check_resume(1, true); }
Test(train, resume_with_accumulation_is_bit_exact) { check_resume(2, false); }

/* A loss scale that grows every 3 steps (and backs off when F16 gradients
 * overflow) continues exactly where the checkpoint left it. */
Test(train, resume_with_fp16_dynamic_loss_scaling_is_bit_exact) {
    ct_train_opts o = base_opts();
    o.precision = CT_PRECISION_FP16;
    o.loss_scale = (ct_scaler_opts){.growth_interval = 3};
    resume_case(o, true);
    ct_train_result r = resume_case(o, false);
    cr_assert(r.loss_scale != 65536.0 && r.skipped_steps > 0, "scale %g, %lld skipped: the state is not exercised",
              r.loss_scale, (long long)r.skipped_steps);
}

Test(train, resume_with_plateau_and_early_stopping_state) {
    ct_dataset *train = blobs(300, 1, 1.0, false), *val = blobs(60, 2, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 3;
    o.schedule = (ct_schedule){.kind = CT_SCHED_PLATEAU, .patience = 0, .factor = 0.5};
    o.early_stop_patience = 5;
    void *straight, *resumed;
    size_t n1, n2;
    ct_train_result a = run(&o, train, val, NULL, &straight, &n1, NULL);
    ct_train_opts first = o;
    first.epochs = 2;
    first.save_path = tmp("plateau.safetensors");
    run(&first, train, val, NULL, NULL, NULL, NULL);
    ct_train_result b = run(&o, train, val, tmp("plateau.safetensors"), &resumed, &n2, NULL);
    cr_assert(memcmp(straight, resumed, n1) == 0, "weights differ after resuming");
    cr_assert_eq(a.best_val_loss, b.best_val_loss);
    cr_assert_eq(a.best_epoch, b.best_epoch);
    free(straight);
    free(resumed);
    ct_dataset_free(train);
    ct_dataset_free(val);
}

/* ------------------------------------------------------------ early stopping */

Test(train, early_stopping_restores_the_best_weights) {
    /* Random labels: the training loss falls as the model memorises, the
     * validation loss rises soon. */
    ct_dataset *train = blobs(200, 3, 1.0, true), *val = blobs(200, 4, 1.0, true);
    mlp big = {.hidden = 64};
    ct_train_opts o = base_opts();
    o.model_user = &big;
    o.epochs = 60;
    o.schedule = (ct_schedule){0};
    o.optim.lr = 0.02;
    o.early_stop_patience = 3;
    ct_trainer *t = ct_trainer_new(&o, train, val, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    cr_assert(r.early_stopped, "no early stop in 60 epochs");
    cr_assert(r.restored_best);
    cr_assert_eq(r.epochs, r.best_epoch + 3, "stopped at epoch %lld, best %lld", (long long)r.epochs,
                 (long long)r.best_epoch);
    cr_assert(r.val_loss > r.best_val_loss);
    /* The weights in place are the best epoch's: same validation loss, to
     * the bit (the same programs evaluate the same weights). */
    ct_eval_result e;
    cr_assert_eq(ct_trainer_evaluate(t, val, &e), CT_OK, "%s", ct_last_error());
    cr_assert_eq(e.loss, r.best_val_loss, "%.17g vs %.17g", e.loss, r.best_val_loss);
    ct_trainer_free(t);
    ct_dataset_free(train);
    ct_dataset_free(val);
}

Test(train, early_stopping_needs_a_validation_set) {
    ct_dataset *train = blobs(100, 1, 1.0, false);
    ct_train_opts o = base_opts();
    o.early_stop_patience = 2;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "validation"), "%s", ct_last_error());
    ct_dataset_free(train);
}

/* ------------------------------------------------------------ metrics */

Test(train, metrics_are_json_lines_with_every_key) {
    ct_dataset *train = blobs(300, 1, 1.0, false), *val = blobs(60, 2, 1.0, false), *test = blobs(70, 5, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 3;
    o.metrics_path = tmp("metrics.jsonl");
    ct_trainer *t = ct_trainer_new(&o, train, val, test);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);

    FILE *f = fopen(o.metrics_path, "r");
    cr_assert_not_null(f);
    static const char *const keys[] = {"epoch",   "step", "train_loss",    "val_loss",  "val_acc",   "test_acc",
                                       "lr",      "samples_per_s", "elapsed_s", "loss_scale", "skipped_steps"};
    char line[4096];
    int n = 0;
    double last_test = NAN;
    while (fgets(line, sizeof line, f)) {
        cJSON *o2 = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(o2), "line %d is not a JSON object: %s", n + 1, line);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(o2, keys[k]), "line %d lacks %s", n + 1, keys[k]);
        const cJSON *ep = cJSON_GetObjectItemCaseSensitive(o2, "epoch");
        const cJSON *va = cJSON_GetObjectItemCaseSensitive(o2, "val_acc");
        const cJSON *ta = cJSON_GetObjectItemCaseSensitive(o2, "test_acc");
        if (n < 3) {
            cr_assert_eq(ep->valuedouble, n + 1);
            cr_assert(cJSON_IsNumber(va), "epoch line without val_acc");
            cr_assert(cJSON_IsNull(ta));
        } else {
            cr_assert(cJSON_IsNumber(ta), "final line without test_acc");
            last_test = ta->valuedouble;
        }
        cJSON_Delete(o2);
        n++;
    }
    fclose(f);
    cr_assert_eq(n, 4, "%d lines", n);
    /* cJSON writes 15 significant digits. */
    cr_assert(fabs(last_test - r.test_acc) < 1e-12, "%.17g vs %.17g", last_test, r.test_acc);
    cr_assert(r.test_acc > 0.8, "test accuracy %g", r.test_acc);
    ct_dataset_free(train);
    ct_dataset_free(val);
    ct_dataset_free(test);
}

/* ------------------------------------------------------------ accumulation */

Test(train, accumulating_two_batches_equals_one_twice_as_large) {
    ct_dataset *train = blobs(256, 1, 1.0, false);
    mlp plain = {.hidden = 16};
    ct_train_opts o = base_opts();
    o.model_user = &plain;
    o.no_shuffle = true;
    o.epochs = 2;
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.9};
    ct_train_opts big = o, acc = o;
    big.batch_size = 64;
    acc.batch_size = 32;
    acc.accum_steps = 2;
    void *pb, *pa;
    size_t nb, na;
    ct_train_result rb = run(&big, train, NULL, NULL, &pb, &nb, NULL);
    ct_train_result ra = run(&acc, train, NULL, NULL, &pa, &na, NULL);
    cr_assert_eq(rb.steps, 8);
    cr_assert_eq(ra.steps, 8);
    cr_assert_eq(nb, na);
    const float *a = pa, *b = pb;
    for (size_t i = 0; i < nb / sizeof(float); i++)
        cr_assert(fabsf(a[i] - b[i]) <= 1e-5f + 1e-4f * fabsf(b[i]), "param %zu: %g vs %g", i, (double)a[i],
                  (double)b[i]);
    free(pa);
    free(pb);
    ct_dataset_free(train);
}

/* A last batch of another size inside an accumulation group still weighs
 * each sample equally: 3 x 32 + 16 samples, one step, equals 112 at once. */
Test(train, accumulation_weights_a_short_last_batch_by_its_samples) {
    ct_dataset *train = blobs(112, 1, 1.0, false);
    mlp plain = {.hidden = 16};
    ct_train_opts o = base_opts();
    o.model_user = &plain;
    o.no_shuffle = true;
    o.epochs = 1;
    o.schedule = (ct_schedule){0};
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.5};
    ct_train_opts big = o, acc = o;
    big.batch_size = 112;
    acc.batch_size = 32;
    acc.accum_steps = 4;
    void *pb, *pa;
    size_t nb, na;
    ct_train_result rb = run(&big, train, NULL, NULL, &pb, &nb, NULL);
    ct_train_result ra = run(&acc, train, NULL, NULL, &pa, &na, NULL);
    cr_assert_eq(rb.steps, 1);
    cr_assert_eq(ra.steps, 1);
    const float *a = pa, *b = pb;
    for (size_t i = 0; i < nb / sizeof(float); i++)
        cr_assert(fabsf(a[i] - b[i]) <= 1e-5f + 1e-4f * fabsf(b[i]), "param %zu: %g vs %g", i, (double)a[i],
                  (double)b[i]);
    free(pa);
    free(pb);
    ct_dataset_free(train);
}

/* ------------------------------------------------------------ batches */

Test(train, short_last_batch_and_drop_last) {
    ct_dataset *train = blobs(300, 1, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 1;
    ct_train_result r = run(&o, train, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.steps, 10); /* 9 full batches and one of 12 */
    o.drop_last = true;
    r = run(&o, train, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.steps, 9);
    o.drop_last = false;
    o.epochs = 0;
    o.max_steps = 25;
    r = run(&o, train, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.steps, 25);
    cr_assert_eq(r.epochs, 2);
    ct_dataset_free(train);
}

Test(train, evaluation_counts_every_sample_once) {
    ct_dataset *train = blobs(300, 1, 1.0, false), *val = blobs(103, 2, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 1;
    o.eval_batch_size = 25; /* 4 x 25 + 3 */
    ct_trainer *t = ct_trainer_new(&o, train, val, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_eval_result e1, e2;
    cr_assert_eq(ct_trainer_evaluate(t, val, &e1), CT_OK, "%s", ct_last_error());
    cr_assert_eq(e1.count, 103);
    ct_trainer_free(t);
    o.eval_batch_size = 103;
    t = ct_trainer_new(&o, train, val, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(ct_trainer_evaluate(t, val, &e2), CT_OK, "%s", ct_last_error());
    cr_assert_eq(e2.count, 103);
    cr_assert_eq(e1.correct, e2.correct);
    cr_assert(fabs(e1.loss - e2.loss) < 1e-6, "%.9g vs %.9g", e1.loss, e2.loss);
    ct_trainer_free(t);
    ct_dataset_free(train);
    ct_dataset_free(val);
}

/* ------------------------------------------------------------ CSV */

Test(train, a_short_csv_dataset_trains) {
    const char *path = tmp("small.csv");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "x1,x2,label\n");
    /* Two classes on either side of the line x1 + x2 = 0. */
    for (int i = 0; i < 40; i++) {
        double a = ct_philox_uniform(9, 1, 0, (uint64_t)i) * 4 - 2;
        double b = ct_philox_uniform(9, 2, 0, (uint64_t)i) * 4 - 2;
        if (fabs(a + b) < 0.3) b += a + b > 0 ? 0.5 : -0.5;
        fprintf(f, "%.4f,%.4f,%d\n", a, b, a + b > 0 ? 1 : 0);
    }
    fclose(f);
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_csv(path, NULL, &ds), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_size(ds), 40);
    mlp small = {.hidden = 8};
    ct_train_opts o = base_opts();
    o.model_user = &small;
    o.batch_size = 8;
    o.epochs = 40;
    o.schedule = (ct_schedule){0};
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_ADAM, .lr = 0.05};
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, ds);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    cr_assert(r.test_acc >= 0.95, "accuracy %g on a separable set", r.test_acc);
    ct_trainer_free(t);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------ checkpoint errors */

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* Resuming t from path fails with status st and a message containing
 * `needle`; t's weights and the file stay as they were. */
static void expect_resume_error(ct_trainer *t, const char *path, ct_status st, const char *needle) {
    size_t n0, n1, pb;
    unsigned char *before = slurp(path, &n0);
    void *w0 = params_of(t, &pb);
    cr_assert_eq(ct_trainer_resume(t, path), st, "got '%s'", ct_last_error());
    cr_assert(strstr(ct_last_error(), needle), "'%s' does not mention '%s'", ct_last_error(), needle);
    unsigned char *after = slurp(path, &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "the checkpoint file changed");
    void *w1 = params_of(t, &pb);
    cr_assert(memcmp(w0, w1, pb) == 0, "a failed resume changed the weights");
    free(before);
    free(after);
    free(w0);
    free(w1);
}

Test(train, mismatched_or_corrupt_checkpoints_are_errors) {
    ct_dataset *train = blobs(300, 1, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 1;
    o.save_path = tmp("good.safetensors");
    run(&o, train, NULL, NULL, NULL, NULL, NULL);
    o.save_path = NULL;

    /* Another model with the same fingerprint: the shapes catch it. */
    mlp wide = MODEL;
    wide.hidden = 24;
    ct_train_opts ow = o;
    ow.model_user = &wide;
    ct_trainer *t = ct_trainer_new(&ow, train, NULL, NULL);
    cr_assert_not_null(t);
    expect_resume_error(t, o.save_path ? o.save_path : tmp("good.safetensors"), CT_ERR_SHAPE, "fc1.weight");
    ct_trainer_free(t);

    /* Another fingerprint. */
    ct_train_opts of = o;
    of.model_fingerprint = "something else";
    t = ct_trainer_new(&of, train, NULL, NULL);
    expect_resume_error(t, tmp("good.safetensors"), CT_ERR_INVALID_ARG, "another model");
    ct_trainer_free(t);

    /* Another batch size. */
    ct_train_opts obs = o;
    obs.batch_size = 16;
    t = ct_trainer_new(&obs, train, NULL, NULL);
    expect_resume_error(t, tmp("good.safetensors"), CT_ERR_INVALID_ARG, "batch size");
    ct_trainer_free(t);

    /* An optimizer state the file lacks: the run had Adam, this one wants
     * SGD's momentum. Same kind needed first, so: SGD without momentum
     * saved, SGD with momentum resumed. */
    ct_train_opts sgd = o;
    sgd.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.1};
    sgd.save_path = tmp("sgd.safetensors");
    run(&sgd, train, NULL, NULL, NULL, NULL, NULL);
    sgd.save_path = NULL;
    sgd.optim.momentum = 0.9;
    t = ct_trainer_new(&sgd, train, NULL, NULL);
    expect_resume_error(t, tmp("sgd.safetensors"), CT_ERR_NOT_FOUND, "optim.momentum_buffer.fc1.weight");
    ct_trainer_free(t);

    /* A weights file is not a checkpoint. */
    t = ct_trainer_new(&o, train, NULL, NULL);
    cr_assert_eq(ct_save_weights(ct_trainer_graph(t), ct_trainer_program(t), tmp("weights.safetensors")), CT_OK);
    expect_resume_error(t, tmp("weights.safetensors"), CT_ERR_FORMAT, "not a ctrain checkpoint");

    /* A truncated checkpoint. */
    size_t n;
    unsigned char *bytes = slurp(tmp("good.safetensors"), &n);
    FILE *f = fopen(tmp("cut.safetensors"), "wb");
    fwrite(bytes, 1, n / 2, f);
    fclose(f);
    free(bytes);
    expect_resume_error(t, tmp("cut.safetensors"), CT_ERR_FORMAT, "cut.safetensors");
    ct_trainer_free(t);
    ct_dataset_free(train);
}

Test(train, a_failed_save_leaves_the_old_checkpoint) {
    ct_dataset *train = blobs(100, 1, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 1;
    ct_trainer *t = ct_trainer_new(&o, train, NULL, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(ct_trainer_save(t, tmp("keep.safetensors")), CT_OK, "%s", ct_last_error());
    size_t n0, n1;
    unsigned char *before = slurp(tmp("keep.safetensors"), &n0);
    cr_assert_neq(ct_trainer_save(t, tmp("no/such/dir/x.safetensors")), CT_OK);
    unsigned char *after = slurp(tmp("keep.safetensors"), &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    ct_trainer_free(t);
    ct_dataset_free(train);
}

/* ------------------------------------------------------------ evaluation, init */

Test(train, evaluate_file_matches_the_trainer) {
    ct_dataset *train = blobs(300, 1, 1.0, false), *test = blobs(77, 5, 1.0, false);
    ct_train_opts o = base_opts();
    o.save_path = tmp("eval.safetensors");
    ct_trainer *t = ct_trainer_new(&o, train, NULL, test);
    cr_assert_not_null(t);
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
    ct_eval_opts eo = {.model = build_mlp, .model_user = &MODEL, .batch_size = 20};
    ct_eval_result e;
    cr_assert_eq(ct_evaluate_file(&eo, o.save_path, test, &e), CT_OK, "%s", ct_last_error());
    cr_assert_eq(e.count, 77);
    cr_assert(fabs(e.accuracy - r.test_acc) < 1e-12);
    cr_assert(fabs(e.loss - r.test_loss) < 1e-6, "%g vs %g", e.loss, r.test_loss);

    /* Another model's weights: named in the error. */
    mlp other = {.hidden = 16}; /* no batch norm: fewer tensors, so it loads... */
    cr_assert_eq(ct_evaluate_file(&(ct_eval_opts){.model = build_mlp, .model_user = &other}, o.save_path, test, &e),
                 CT_OK, "%s", ct_last_error());
    mlp wider = {.hidden = 32, .batchnorm = true};
    cr_assert_eq(ct_evaluate_file(&(ct_eval_opts){.model = build_mlp, .model_user = &wider}, o.save_path, test, &e),
                 CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "fc1.weight"), "%s", ct_last_error());
    ct_dataset_free(train);
    ct_dataset_free(test);
}

Test(train, init_from_loads_weights_by_name) {
    ct_dataset *train = blobs(100, 1, 1.0, false);
    ct_train_opts o = base_opts();
    ct_trainer *a = ct_trainer_new(&o, train, NULL, NULL);
    cr_assert_eq(ct_save_weights(ct_trainer_graph(a), ct_trainer_program(a), tmp("init.safetensors")), CT_OK);
    o.seed = 99;
    ct_trainer *b = ct_trainer_new(&o, train, NULL, NULL);
    int loaded = 0;
    cr_assert_eq(ct_trainer_init_from(b, tmp("init.safetensors"), NULL, &loaded), CT_OK, "%s", ct_last_error());
    cr_assert_eq(loaded, 8); /* fc1, bn1 and fc2 weight and bias, bn1's running mean and var */
    size_t n;
    void *pa = params_of(a, &n), *pb = params_of(b, &n);
    cr_assert(memcmp(pa, pb, n) == 0);
    free(pa);
    free(pb);
    /* A file with nothing of this model is an error. */
    mlp other = {.hidden = 16};
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {4, FEAT}});
    ct_linear(g, "head", x, 3, true, NULL);
    (void)other;
    ct_program *p = ct_compile(g, &(ct_compile_opts){0});
    cr_assert_not_null(p, "%s", ct_last_error());
    cr_assert_eq(ct_save_weights(g, p, tmp("other.safetensors")), CT_OK);
    cr_assert_eq(ct_trainer_init_from(b, tmp("other.safetensors"), NULL, &loaded), CT_ERR_NOT_FOUND);
    ct_program_free(p);
    ct_graph_free(g);
    ct_trainer_free(a);
    ct_trainer_free(b);
    ct_dataset_free(train);
}

/* ------------------------------------------------------------ bad options */

Test(train, bad_options_are_errors) {
    ct_dataset *train = blobs(50, 1, 1.0, false);
    ct_train_opts o = base_opts();
    o.batch_size = 0;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "batch_size"), "%s", ct_last_error());
    o = base_opts();
    o.batch_size = 51;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    o = base_opts();
    o.epochs = 0;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    o = base_opts();
    o.label_smoothing = 1;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    o = base_opts();
    o.optim.lr = -1;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    o = base_opts();
    o.schedule.kind = CT_SCHED_EXPONENTIAL; /* gamma required */
    o.schedule.gamma = 0;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "gamma"), "%s", ct_last_error());
    ct_dataset_free(train);
}

static ct_node bad_model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    return ct_linear(g, "fc", x, 2, true, NULL); /* fewer outputs than classes */
}

Test(train, a_model_that_does_not_fit_the_data_is_an_error) {
    ct_dataset *train = blobs(50, 1, 1.0, false);
    ct_train_opts o = base_opts();
    o.model = bad_model;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "classes"), "%s", ct_last_error());
    ct_dataset_free(train);
}

Test(train, a_diverging_run_stops_with_a_clear_error) {
    ct_dataset *train = blobs(300, 1, 1.0, false);
    mlp plain = {.hidden = 16};
    ct_train_opts o = base_opts();
    o.model_user = &plain;
    o.schedule = (ct_schedule){0};
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 1e30};
    ct_trainer *t = ct_trainer_new(&o, train, NULL, NULL);
    cr_assert_not_null(t);
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_ERR_NUMERIC);
    cr_assert(strstr(ct_last_error(), "learning rate"), "%s", ct_last_error());
    ct_trainer_free(t);
    ct_dataset_free(train);
}

/* ------------------------------------------------------------ schedule, events, clipping */

typedef struct events {
    int steps, evals, epochs, saved, done;
    double lr[32];
    int n_lr;
} events;

static void count_events(const ct_train_progress *p, void *user) {
    events *e = user;
    switch (p->event) {
    case CT_TRAIN_STEP:
        e->steps++;
        if (e->n_lr < 32) e->lr[e->n_lr++] = p->lr;
        break;
    case CT_TRAIN_EVAL: e->evals++; break;
    case CT_TRAIN_EPOCH: e->epochs++; break;
    case CT_TRAIN_SAVED: e->saved++; break;
    case CT_TRAIN_DONE: e->done++; break;
    default: break;
    }
}

Test(train, per_epoch_schedule_with_warmup_in_steps) {
    ct_dataset *train = blobs(100, 1, 1.0, false), *val = blobs(30, 2, 1.0, false);
    ct_train_opts o = base_opts();
    o.batch_size = 20; /* 5 steps an epoch */
    o.epochs = 3;
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.1};
    o.schedule = (ct_schedule){.kind = CT_SCHED_STEP, .step_size = 1, .gamma = 0.5, .warmup_steps = 4};
    o.schedule_unit = CT_SCHED_PER_EPOCH;
    o.eval_every = 4;
    o.save_path = tmp("events.safetensors");
    o.save_every = 1;
    events e = {0};
    o.progress = count_events;
    o.progress_user = &e;
    ct_train_result r = run(&o, train, val, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.steps, 15);
    cr_assert_eq(e.steps, 15);
    cr_assert_eq(e.evals, 3); /* steps 4, 8, 12 */
    cr_assert_eq(e.epochs, 3);
    cr_assert_eq(e.saved, 4); /* after each epoch and at the end */
    cr_assert_eq(e.done, 1);
    const double want[15] = {0.025, 0.05, 0.075, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05,
                             0.025, 0.025, 0.025, 0.025, 0.025};
    for (int i = 0; i < 15; i++) cr_assert(fabs(e.lr[i] - want[i]) < 1e-15, "step %d: lr %g, want %g", i, e.lr[i], want[i]);
    ct_dataset_free(train);
    ct_dataset_free(val);
}

Test(train, clip_value_bounds_every_update) {
    ct_dataset *train = blobs(100, 1, 1.0, false);
    mlp plain = {.hidden = 16};
    ct_train_opts o = base_opts();
    o.model_user = &plain;
    o.batch_size = 20;
    o.epochs = 2;
    o.schedule = (ct_schedule){0};
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.5};
    o.clip_value = 1e-3;
    ct_trainer *t = ct_trainer_new(&o, train, NULL, NULL);
    cr_assert_not_null(t);
    size_t n;
    float *w0 = params_of(t, &n);
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    float *w1 = params_of(t, &n);
    /* 10 steps of at most lr * clip each. */
    double most = 0;
    for (size_t i = 0; i < n / sizeof(float); i++) most = fmax(most, fabs((double)w1[i] - (double)w0[i]));
    cr_assert(most <= 10 * 0.5 * 1e-3 * (1 + 1e-5), "a weight moved by %g", most);
    cr_assert(most > 0);
    free(w0);
    free(w1);
    ct_trainer_free(t);

    /* clip_norm: the run works and differs from an unclipped one. */
    o.clip_value = 0;
    o.clip_norm = 0.01;
    void *a, *b;
    size_t na, nb;
    run(&o, train, NULL, NULL, &a, &na, NULL);
    o.clip_norm = 0;
    run(&o, train, NULL, NULL, &b, &nb, NULL);
    cr_assert(memcmp(a, b, na) != 0);
    free(a);
    free(b);
    ct_dataset_free(train);
}

/* Mixed precision trains as well as FP32 here; FP16 with GradScaler's
 * dynamic scale, BF16 without scaling. */
Test(train, fp16_and_bf16_train_as_well_as_fp32) {
    ct_dataset *train = blobs(300, 1, 1.0, false), *test = blobs(200, 5, 1.0, false);
    ct_train_opts o = base_opts();
    o.epochs = 4;
    double acc[3];
    for (int p = CT_PRECISION_FP32; p <= CT_PRECISION_BF16; p++) {
        o.precision = (ct_precision)p;
        ct_trainer *t = ct_trainer_new(&o, train, NULL, test);
        cr_assert_not_null(t, "%s", ct_last_error());
        ct_train_result r;
        cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
        acc[p] = r.test_acc;
        cr_assert_eq(r.loss_scale, p == CT_PRECISION_FP16 ? 65536.0 : 1.0);
        cr_assert_eq(r.skipped_steps, 0);
        ct_trainer_free(t);
    }
    cr_assert(acc[0] > 0.8, "fp32 %g", acc[0]);
    for (int p = 1; p < 3; p++)
        cr_assert(fabs(acc[p] - acc[0]) <= 0.02, "%s accuracy %g, fp32 %g", ct_precision_name((ct_precision)p),
                  acc[p], acc[0]);
    ct_dataset_free(train);
    ct_dataset_free(test);
}
