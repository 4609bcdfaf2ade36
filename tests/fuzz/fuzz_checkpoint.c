/* Checkpoints: the input is a checkpoint file for a tiny MLP trainer
 * (4 features, 3 classes, AdamW, early stopping on a validation set, so
 * optimizer state, positions and best.* weights are all in play). Each
 * input goes through the three ways a file reaches a trainer, and the
 * promises of include/ctrain/train.h are checked:
 *
 *   ct_trainer_resume      on error the trainer is as it was (weights and
 *                          position); on success, a trainer resumed from
 *                          it runs one more optimizer step without fault
 *                          (an error such as a non-finite loss is fine);
 *   ct_trainer_init_from   on error the weights are unchanged;
 *   ct_evaluate_file       what it accepts gives an accuracy in [0, 1]
 *                          over every sample (`ctrain eval`'s path).
 *
 * With CTRAIN_FUZZ_MKSEED=FILE in the environment the harness instead
 * trains three steps, writes the checkpoint to FILE and exits: the seed
 * corpus (tests/fuzz/make_seeds.sh) is made by the same options it is
 * resumed with. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "fuzz_util.h"

enum { FEAT = 4, CLASSES = 3, SAMPLES = 12 };

static ct_dataset *train_set, *val_set;

static ct_node tiny_mlp(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 5, true, NULL), "relu");
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

static ct_trainer *new_trainer(int64_t max_steps) {
    ct_train_opts o = {.model = tiny_mlp, .model_fingerprint = "fuzz-mlp-4-5-3", .seed = 7, .data_seed = 3,
                       .batch_size = 4, .max_steps = max_steps,
                       .optim = {.kind = CT_OPTIM_ADAMW, .lr = 1e-2, .weight_decay = 0.01},
                       .eval_every = 1, .early_stop_patience = 5, .quiet = true};
    ct_trainer *t = ct_trainer_new(&o, train_set, val_set, NULL);
    FUZZ_PROMISE(t != NULL, "the harness's trainer can be built");
    return t;
}

static ct_dataset *make_set(uint32_t seed) {
    float x[SAMPLES * FEAT];
    int32_t y[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        y[i] = (int32_t)((i * 7u + seed) % CLASSES);
        for (int f = 0; f < FEAT; f++) x[i * FEAT + f] = (float)((i * 13 + f * 5 + (int)seed) % 11) / 11.0f;
    }
    ct_dataset *ds = NULL;
    FUZZ_PROMISE(ct_dataset_from_arrays(SAMPLES, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds) == CT_OK,
                 "the harness's dataset can be built");
    return ds;
}

static void make_seed(const char *path) {
    ct_trainer *t = new_trainer(3);
    ct_train_result r;
    FUZZ_PROMISE(ct_trainer_run(t, &r) == CT_OK, "the seed run trains");
    FUZZ_PROMISE(ct_trainer_save(t, path) == CT_OK, "the seed checkpoint is written");
    ct_trainer_free(t);
    exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    train_set = make_set(0);
    val_set = make_set(1);
    const char *seed = getenv("CTRAIN_FUZZ_MKSEED");
    if (seed && *seed) make_seed(seed);
    return 0;
}

/* The weights as a byte string, for "unchanged" checks. */
static void *params_of(ct_trainer *t, size_t *bytes) {
    ct_program *p = ct_trainer_program(t);
    *bytes = ct_program_param_numel(p) * sizeof(float);
    void *buf = malloc(*bytes);
    FUZZ_PROMISE(buf && ct_program_read_params(p, buf, *bytes) == CT_OK, "the weights can be read");
    return buf;
}

static void check_unchanged(ct_trainer *t, const void *before, size_t bytes, const char *what) {
    size_t now_bytes;
    void *now = params_of(t, &now_bytes);
    FUZZ_PROMISE(now_bytes == bytes && memcmp(now, before, bytes) == 0, what);
    free(now);
}

/* A trainer resumed from path (which resumed once already) trains one step. */
static void one_more_step(const char *path, int64_t step) {
    if (step < 0 || step > (1LL << 40)) return;
    ct_trainer *t = new_trainer(step + 1);
    FUZZ_PROMISE(ct_trainer_resume(t, path) == CT_OK, "a file that resumed once resumes again");
    ct_train_result r;
    if (ct_trainer_run(t, &r) == CT_OK) {
        int64_t now;
        ct_trainer_position(t, NULL, NULL, &now);
        FUZZ_PROMISE(now == step + 1 && r.steps == step + 1, "a resumed run takes the one step left");
    }
    ct_trainer_free(t);
}

static void try_resume(const char *path) {
    ct_trainer *t = new_trainer(1000);
    size_t bytes;
    void *before = params_of(t, &bytes);
    if (ct_trainer_resume(t, path) != CT_OK) {
        FUZZ_PROMISE(ct_last_error()[0] != 0, "a refused checkpoint has a message");
        check_unchanged(t, before, bytes, "a failed resume leaves the weights as they were");
        int64_t e, b, s;
        ct_trainer_position(t, &e, &b, &s);
        FUZZ_PROMISE(e == 0 && b == 0 && s == 0, "a failed resume leaves the position as it was");
        free(before);
        ct_trainer_free(t);
        return;
    }
    int64_t step;
    ct_trainer_position(t, NULL, NULL, &step);
    free(before);
    ct_trainer_free(t);
    one_more_step(path, step);
}

static void try_init_from(const char *path) {
    ct_trainer *t = new_trainer(1);
    size_t bytes;
    void *before = params_of(t, &bytes);
    int loaded = -1;
    if (ct_trainer_init_from(t, path, NULL, &loaded) != CT_OK)
        check_unchanged(t, before, bytes, "a failed init-from leaves the weights as they were");
    else
        FUZZ_PROMISE(loaded >= 1 && loaded <= 4, "init-from loads between 1 and every tensor");
    free(before);
    ct_trainer_free(t);
}

static void try_evaluate(const char *path) {
    ct_eval_opts o = {.model = tiny_mlp, .batch_size = 5};
    ct_eval_result r;
    if (ct_evaluate_file(&o, path, val_set, &r) != CT_OK) return;
    FUZZ_PROMISE(r.count == SAMPLES && r.correct >= 0 && r.correct <= r.count, "every sample is evaluated once");
    FUZZ_PROMISE(r.accuracy >= 0 && r.accuracy <= 1, "an accuracy is in [0, 1]");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write(0, ".safetensors", data, n);
    try_resume(path);
    try_init_from(path);
    try_evaluate(path);
    return 0;
}
