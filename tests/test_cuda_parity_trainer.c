/* GPU vs CPU: the trainer's less common paths, whole runs through
 * ct_trainer on both devices from the same seed.
 *
 * - gradient accumulation (two micro-batches per step and a short last
 *   batch, the plain loop: axpby into the sum, the short batch weighted by
 *   its samples), clipping by norm and by value, a cosine schedule with
 *   warmup, validation every 3 steps, early stopping that restores the best
 *   weights and buffers;
 * - the same without accumulation, which on the GPU is the fused step
 *   (step graph, captured; clipping on the device, lr in device memory)
 *   plus the short last batch through the plain path;
 * - a checkpoint written on the CPU resumed on the GPU, and the reverse,
 *   in FP32 with Adam and in FP16 with the dynamic loss scaler (optimizer
 *   state, scaler state, dropout step and position uploaded before the
 *   first step), against an uninterrupted CPU run;
 * - ct_evaluate_file of such a checkpoint on both devices.
 *
 * The model is a small MLP with batch norm and dropout (masks identical on
 * both devices) on Gaussian blobs. Tolerances: the GPU's sums differ from
 * the CPU's in the last bits and a run of ~20 steps carries that forward:
 * losses within 1e-3 relative, weights and running statistics within 1e-3
 * absolute (FP16: 2e-2, one F16 rounding of the products' operands
 * amplified the same way); step counts, early stopping and the loss scaler
 * decisions must agree. CTRAIN_PARITY_SELFTEST=1 runs it CPU against CPU. */
#include <unistd.h>

#include "cuda_parity.h"
#include "tmpfiles.h"

#define FEAT 8
#define CLASSES 4
#define HIDDEN 16

static ct_node mlp(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training, (void)user;
    ct_node h = ct_linear(g, "fc1", x, HIDDEN, true, NULL);
    h = ct_activation(g, ct_batch_norm(g, "bn1", h, 0, 0), "relu");
    return ct_linear(g, "fc2", ct_dropout(g, h, 0.2), CLASSES, true, NULL);
}

/* n samples around one centre per class. */
static ct_dataset *blobs(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = (int32_t)(ct_philox_u32(seed, 1, 0, (uint64_t)i) % CLASSES);
        y[i] = c;
        for (int f = 0; f < FEAT; f++)
            x[i * FEAT + f] = (float)((f % CLASSES == c ? 1.5 : 0.0) +
                                      2 * ct_philox_uniform(seed, 2, 0, (uint64_t)(i * FEAT + f)) - 1);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s", ct_last_error());
    free(x), free(y);
    return ds;
}

/* 300 = 9 * 32 + 12: a short last batch every epoch. T_max is given: its
 * default depends on the run's length, which a resumed run's first part
 * does not share. */
static ct_train_opts base(void) {
    return (ct_train_opts){.model = mlp,
                           .model_fingerprint = "parity mlp 8-16-4",
                           .seed = 5,
                           .data_seed = 9,
                           .batch_size = 32,
                           .epochs = 2,
                           .optim = {.kind = CT_OPTIM_ADAM, .lr = 0.02},
                           .schedule = {.kind = CT_SCHED_COSINE, .warmup_steps = 3, .T_max = 40},
                           .quiet = true};
}

typedef struct outcome {
    ct_train_result r;
    float *w;      /* final weights */
    size_t bytes;
    float rm[HIDDEN]; /* bn1's running mean */
} outcome;

static outcome run(ct_train_opts o, ct_device dev, const ct_dataset *train, const ct_dataset *val,
                   const char *resume) {
    o.device = dev;
    ct_trainer *t = ct_trainer_new(&o, train, val, NULL);
    cr_assert(t, "%s", ct_last_error());
    if (resume) cr_assert_eq(ct_trainer_resume(t, resume), CT_OK, "%s", ct_last_error());
    outcome out;
    cr_assert_eq(ct_trainer_run(t, &out.r), CT_OK, "%s", ct_last_error());
    ct_program *p = ct_trainer_program(t);
    out.bytes = ct_program_param_numel(p) * sizeof(float);
    out.w = malloc(out.bytes);
    cr_assert(out.w);
    cr_assert_eq(ct_program_read_params(p, out.w, out.bytes), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_get_param(p, "bn1.running_mean", out.rm, sizeof out.rm), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
    return out;
}

static bool close_rel(double a, double b, double rtol) {
    return (isnan(a) && isnan(b)) || fabs(a - b) <= rtol * fabs(a);
}

static void compare(const outcome *c, const outcome *g, const char *what, double wtol) {
    cr_assert_eq(g->r.steps, c->r.steps, "%s: steps gpu %lld cpu %lld", what, (long long)g->r.steps,
                 (long long)c->r.steps);
    cr_assert_eq(g->r.early_stopped, c->r.early_stopped, "%s: early stopping differs", what);
    cr_assert_eq(g->r.restored_best, c->r.restored_best, "%s: restoring the best weights differs", what);
    cr_assert_eq(g->r.best_epoch, c->r.best_epoch, "%s: best epoch differs", what);
    cr_assert_eq(g->r.skipped_steps, c->r.skipped_steps, "%s: skipped steps differ", what);
    cr_assert_eq(g->r.loss_scale, c->r.loss_scale, "%s: loss scale gpu %g cpu %g", what, g->r.loss_scale,
                 c->r.loss_scale);
    cr_assert(close_rel(c->r.train_loss, g->r.train_loss, 1e-3), "%s: train loss gpu %.7g cpu %.7g", what,
              g->r.train_loss, c->r.train_loss);
    cr_assert(close_rel(c->r.val_loss, g->r.val_loss, 1e-3), "%s: val loss gpu %.7g cpu %.7g", what, g->r.val_loss,
              c->r.val_loss);
    cr_assert_eq(g->bytes, c->bytes);
    cr_assert(cp_compare(what, "final weights", CT_F32, c->w, g->w, (int64_t)(c->bytes / sizeof(float)), 0, wtol));
    cr_assert(cp_compare(what, "bn1.running_mean", CT_F32, c->rm, g->rm, HIDDEN, 0, wtol));
}

static void run_both(ct_train_opts o, const char *what) {
    ct_dataset *train = blobs(300, 1), *val = blobs(60, 2);
    outcome c = run(o, (ct_device){CT_DEVICE_CPU, 0}, train, val, NULL);
    outcome g = run(o, cp_gpu_device(), train, val, NULL);
    cr_assert(c.r.val_loss < 1.0, "%s: the MLP did not learn (val loss %g)", what, c.r.val_loss);
    cr_assert(c.r.restored_best, "%s: the case no longer puts the best weights back", what);
    compare(&c, &g, what, 1e-3);
    free(c.w), free(g.w);
    ct_dataset_free(train), ct_dataset_free(val);
}

static ct_train_opts with_everything(int accum) {
    ct_train_opts o = base();
    o.epochs = 4;
    o.accum_steps = accum;
    o.clip_norm = 0.5;
    o.clip_value = 0.1;
    o.eval_every = 3;
    o.early_stop_patience = 2;
    return o;
}

Test(cuda_parity, trainer_accumulation_clipping_warmup_early_stopping) {
    CP_NEED_GPU();
    run_both(with_everything(2), "accum 2");
}

Test(cuda_parity, trainer_fused_steps_clipping_warmup_early_stopping) {
    CP_NEED_GPU();
    run_both(with_everything(1), "fused");
}

/* First epoch on `first`, the second resumed from its checkpoint on
 * `second`, against both epochs straight on the CPU. */
static void resume_case(ct_train_opts o, ct_device first, ct_device second, const char *what, double wtol) {
    ct_dataset *train = blobs(300, 1), *val = blobs(60, 2);
    char *dir = make_tmpdir(), path[4200];
    snprintf(path, sizeof path, "%s/part.safetensors", dir);
    outcome straight = run(o, (ct_device){CT_DEVICE_CPU, 0}, train, val, NULL);
    ct_train_opts part = o;
    part.epochs = 1;
    part.save_path = path;
    outcome a = run(part, first, train, val, NULL);
    ct_train_opts rest = o;
    rest.save_path = path;
    outcome b = run(rest, second, train, val, path);
    compare(&straight, &b, what, wtol);
    /* The checkpoint evaluated on either device. */
    ct_eval_opts eo = {.model = mlp, .batch_size = 50};
    ct_eval_result ec, eg;
    eo.device = (ct_device){CT_DEVICE_CPU, 0};
    cr_assert_eq(ct_evaluate_file(&eo, path, val, &ec), CT_OK, "%s", ct_last_error());
    eo.device = cp_gpu_device();
    cr_assert_eq(ct_evaluate_file(&eo, path, val, &eg), CT_OK, "%s", ct_last_error());
    cr_assert(close_rel(ec.loss, eg.loss, 1e-4), "%s: evaluated loss gpu %.7g cpu %.7g", what, eg.loss, ec.loss);
    cr_assert(llabs((long long)(ec.correct - eg.correct)) <= 1, "%s: correct gpu %lld cpu %lld", what,
              (long long)eg.correct, (long long)ec.correct);
    free(straight.w), free(a.w), free(b.w);
    rm_tmpdir(dir);
    ct_dataset_free(train), ct_dataset_free(val);
}

Test(cuda_parity, trainer_resume_across_devices) {
    CP_NEED_GPU();
    const ct_device cpu = {CT_DEVICE_CPU, 0}, gpu = cp_gpu_device();
    ct_train_opts o = base();
    o.accum_steps = 2;
    resume_case(o, cpu, gpu, "fp32, cpu -> gpu", 1e-3);
    resume_case(o, gpu, cpu, "fp32, gpu -> cpu", 1e-3);
    o.accum_steps = 1;
    o.precision = CT_PRECISION_FP16;
    resume_case(o, cpu, gpu, "fp16, cpu -> gpu", 2e-2);
    resume_case(o, gpu, cpu, "fp16, gpu -> cpu", 2e-2);
}
