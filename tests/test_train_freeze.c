/* Frozen parameters in the trainer: they do not change, and, as in PyTorch
 * (where a frozen parameter has no gradient), gradient clipping does not
 * count them. With plain SGD at lr 1 and one step, the trainable
 * parameters move by exactly the clipped gradient, whose norm is
 * clip_norm when the norm is taken over the trainable parameters alone.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include <ctrain/ctrain.h>

enum { N = 64, FEAT = 6, HIDDEN = 8, CLASSES = 3 };

static ct_node build(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, HIDDEN, true, NULL), "tanh");
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

static ct_dataset *data(void) {
    static float x[N * FEAT];
    static int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % CLASSES;
        for (int k = 0; k < FEAT; k++) x[i * FEAT + k] = (float)sin(0.37 * i * (k + 1) + y[i]);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(N, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK);
    return ds;
}

typedef struct tensor {
    const char *name;
    int64_t numel;
} tensor;

static const tensor TENSORS[] = {{"fc1.weight", HIDDEN * FEAT}, {"fc1.bias", HIDDEN},
                                 {"fc2.weight", CLASSES * HIDDEN}, {"fc2.bias", CLASSES}};

static void read_all(ct_trainer *t, float *out) {
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ct_program_get_param(ct_trainer_program(t), TENSORS[i].name, out,
                                          (size_t)TENSORS[i].numel * sizeof(float)),
                     CT_OK, "%s", ct_last_error());
        out += TENSORS[i].numel;
    }
}

/* One SGD step (lr 1) with clip_norm, fc1 frozen when asked: returns the
 * norm of the change of fc2, and checks fc1 is bit-unchanged if frozen. */
static double one_step(double clip_norm, bool freeze) {
    ct_dataset *ds = data();
    ct_train_opts o = {.model = build, .seed = 3, .batch_size = N, .max_steps = 1, .clip_norm = clip_norm,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 1.0}, .quiet = true};
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    if (freeze) cr_assert_eq(ct_optimizer_freeze(ct_trainer_optimizer(t), "fc1.", true), CT_OK);
    enum { TOTAL = HIDDEN * FEAT + HIDDEN + CLASSES * HIDDEN + CLASSES };
    float before[TOTAL], after[TOTAL];
    read_all(t, before);
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    read_all(t, after);
    const int fc1 = HIDDEN * FEAT + HIDDEN;
    if (freeze)
        for (int i = 0; i < fc1; i++) cr_assert_eq(after[i], before[i], "frozen fc1 changed at %d", i);
    double sq = 0;
    for (int i = fc1; i < TOTAL; i++) sq += ((double)after[i] - before[i]) * ((double)after[i] - before[i]);
    ct_trainer_free(t);
    ct_dataset_free(ds);
    return sqrt(sq);
}

Test(train_freeze, clipping_counts_only_trainable_parameters) {
    const double clip = 1e-3;
    double frozen = one_step(clip, true);
    /* The clipped step of the trainable parameters has norm clip (the
     * 1e-6 of clip / (norm + 1e-6) aside). */
    cr_assert(fabs(frozen - clip) < 1e-4 * clip, "frozen fc1: the step of fc2 has norm %.9g, want %g", frozen, clip);
    /* Not frozen, the same clip spreads over fc1 too: fc2's share is
     * smaller, so the check above tells the two apart. */
    double all = one_step(clip, false);
    cr_assert(all < 0.99 * clip, "unfrozen: fc2's step %.9g should be a part of %g", all, clip);
}
