/* Data-parallel checks, run by CTest under `mpirun -np 2` (tests/mpi/CMakeLists.txt).
 *
 *   dist_check equal    2 ranks end with the weights of one process trained on
 *                       the same global batches (SGD with momentum, F32),
 *                       within TOL; the ranks agree bit for bit; evaluation
 *                       (sharded, reduced) gives the single process's counts
 *   dist_check accum    the same with gradient accumulation over 3 micro-batches
 *   dist_check amp      the same in FP16 with dynamic loss scaling (the scale
 *                       grows during the run): weights within AMP_TOL, the
 *                       same loss scale and skipped-step count; also with
 *                       accumulation
 *   dist_check overflow FP16: a sample on rank 1 only makes its scaled
 *                       gradient overflow F16 at one step; every rank skips
 *                       that step (weights, optimizer state unchanged, scale
 *                       halved, the same on every rank) with no message of
 *                       its own: the inf reaches rank 0 through the
 *                       gradient all-reduce; also with accumulation
 *   dist_check overlap  buckets started during backward give the weights of
 *                       one all-reduce after it, bit for bit, and are started
 *                       during backward
 *   dist_check hang     rank 1 stops answering: rank 0 times out (set
 *                       CTRAIN_DIST_TIMEOUT low) and aborts the job
 *   dist_check die      rank 1 is killed: the launcher ends the job
 *   dist_check bench    (not a test) times the all-reduce of an MLP
 *                       784-512-256-10's gradients after backward and in
 *                       buckets during it: how much of it backward hides
 *
 * The data are uniform features labelled by a fixed random linear
 * teacher (argmax of W x), all from Philox; 203 samples and a global batch of
 * 32 leave a last batch of 11, split 6 + 5 between the ranks, so the
 * weighting of uneven shards is checked too. Prints one line per check and
 * exits 0 only when all hold; a failure names the largest difference.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#define FEAT 12
#define CLASSES 4
#define N_TRAIN 203
#define N_TEST 101
/* F32 sums taken in another order (per shard, then across ranks) differ in
 * the last bits: below 1e-7 after these 21 momentum-SGD steps, where a
 * wrong weighting of the uneven last batch gives 4e-3. */
#define TOL 1e-6
/* FP16: F32 values that differ in their last bit (sums over 16 rows per
 * rank instead of 32) now and then round to neighbouring F16 values, one
 * F16 step (2^-11 relative) apart, and the steps carry that on: measured
 * 1.9e-6 after one step, 3.1e-5 after these 21 (4.5e-8 in F32). A wrong
 * weighting of the uneven last batch still gives 4e-3. */
#define AMP_TOL 2e-4

static ct_comm *comm;
static int rank;

/* With a non-NULL user the samples carry one more feature, a gain (1 for
 * all but the samples of the overflow check) that multiplies the last
 * hidden layer: large, it leaves the loss finite but makes that sample's
 * gradient, times the loss scale, overflow F16 in backward. */
static ct_node model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    ct_node in = user ? ct_slice(g, x, 1, 0, FEAT) : x;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", in, 48, true, NULL), "relu");
    h = ct_activation(g, ct_linear(g, "fc2", h, 32, true, NULL), "tanh");
    if (user) h = ct_mul(g, h, ct_slice(g, x, 1, FEAT, FEAT + 1));
    return ct_linear(g, "fc3", h, CLASSES, true, NULL);
}

static ct_dataset *dataset_of(int64_t n, int cols, const float *x, const int32_t *y) {
    ct_dataset *ds = NULL;
    if (ct_dataset_from_arrays(n, (ct_shape){1, {cols}}, x, y, CLASSES, &ds) != CT_OK) {
        fprintf(stderr, "dist_check: %s\n", ct_last_error());
        exit(1);
    }
    return ds;
}

/* n samples of `cols` features: FEAT uniform in [-1, 1) labelled by the
 * teacher, then (cols > FEAT) a gain of 1. */
static void teacher_fill(float *x, int32_t *y, int64_t n, uint64_t seed, int cols) {
    for (int64_t i = 0; i < n; i++) {
        float *xi = x + i * cols;
        for (int f = 0; f < FEAT; f++) xi[f] = 2 * ct_philox_uniform(seed, 1, 0, (uint64_t)(i * FEAT + f)) - 1;
        for (int f = FEAT; f < cols; f++) xi[f] = 1;
        double best = -INFINITY;
        for (int c = 0; c < CLASSES; c++) {
            double score = 0; /* the teacher is the same for every set: stream 2, seed 0 */
            for (int f = 0; f < FEAT; f++) score += xi[f] * (ct_philox_uniform(0, 2, 0, (uint64_t)(c * FEAT + f)) - 0.5);
            if (score > best) {
                best = score;
                y[i] = c;
            }
        }
    }
}

static ct_dataset *teacher_data(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    if (!x || !y) abort();
    teacher_fill(x, y, n, seed, FEAT);
    ct_dataset *ds = dataset_of(n, FEAT, x, y);
    free(x);
    free(y);
    return ds;
}

/* A run's outcome: the flat weights, the optimizer's state buffers one
 * after the other, and the test evaluation. */
typedef struct outcome {
    float *w, *state;
    size_t n, n_state;
    ct_train_result r;
} outcome;

static void fail(const char *what) {
    fprintf(stderr, "dist_check: rank %d: %s: %s\n", rank, what, ct_last_error());
    ct_comm_abort(comm, 1);
}

/* The options every run shares; accumulation, precision and the data
 * parallel settings are the callers'. */
static ct_train_opts run_opts(ct_comm *c, int accum) {
    return (ct_train_opts){.model = model,
                           .seed = 11,
                           .data_seed = 5,
                           .batch_size = 32,
                           .eval_batch_size = 16,
                           .epochs = 3,
                           .optim = {.kind = CT_OPTIM_SGD, .lr = 0.05, .momentum = 0.9},
                           .accum_steps = accum,
                           .quiet = true,
                           .comm = c};
}

static outcome train_opts(const ct_train_opts *o, const ct_dataset *tr, const ct_dataset *val,
                          const ct_dataset *te) {
    ct_trainer *t = ct_trainer_new(o, tr, val, te);
    if (!t) fail("ct_trainer_new");
    outcome out = {0};
    if (ct_trainer_run(t, &out.r) != CT_OK) fail("ct_trainer_run");
    ct_program *p = ct_trainer_program(t);
    out.n = ct_program_param_numel(p);
    out.w = malloc(out.n * sizeof *out.w);
    if (!out.w || ct_program_read_params(p, out.w, out.n * sizeof *out.w) != CT_OK) fail("reading the weights");
    ct_optimizer *opt = ct_trainer_optimizer(t);
    out.n_state = (size_t)ct_optimizer_num_states(opt) * out.n;
    out.state = malloc((out.n_state ? out.n_state : 1) * sizeof *out.state);
    if (!out.state) abort();
    for (int i = 0; i < ct_optimizer_num_states(opt); i++) {
        const char *name;
        if (ct_optimizer_state(opt, i, &name, NULL, NULL) != CT_OK ||
            ct_optimizer_read_state(opt, name, out.state + (size_t)i * out.n, out.n * sizeof *out.w) != CT_OK)
            fail("reading the optimizer state");
    }
    ct_trainer_free(t);
    return out;
}

static void outcome_free(outcome *o) {
    free(o->w);
    free(o->state);
}

static outcome train(ct_comm *c, int accum, size_t bucket_bytes, bool no_overlap, const ct_dataset *tr,
                     const ct_dataset *val, const ct_dataset *te) {
    ct_train_opts o = run_opts(c, accum);
    o.dist_bucket_bytes = bucket_bytes;
    o.dist_no_overlap = no_overlap;
    return train_opts(&o, tr, val, te);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* a NaN counts as the largest */
    }
    return m;
}

/* Whether every rank holds rank 0's bytes in buf. */
static bool same_everywhere(const void *buf, size_t bytes) {
    char *b0 = malloc(bytes ? bytes : 1);
    if (!b0) abort();
    memcpy(b0, buf, bytes);
    if (ct_comm_broadcast(comm, b0, bytes, 0) != CT_OK) fail("broadcast");
    double differ = memcmp(b0, buf, bytes) != 0;
    free(b0);
    if (ct_comm_sum_host(comm, &differ, 1) != CT_OK) fail("sum");
    return differ == 0;
}

/* Whether every rank holds rank 0's weights and optimizer state bit for bit. */
static bool ranks_agree(const outcome *o) {
    return same_everywhere(o->w, o->n * sizeof *o->w) && same_everywhere(o->state, o->n_state * sizeof *o->state);
}

/* Whether ok holds on every rank. */
static bool on_every_rank(bool ok) {
    double bad = !ok;
    if (ct_comm_sum_host(comm, &bad, 1) != CT_OK) fail("sum");
    return bad == 0;
}

static int check(bool ok, const char *what) {
    if (rank == 0) printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok ? 0 : 1;
}

/* FP16 with GradScaler's dynamic scaling, from a low scale that grows
 * every 4 finite steps, so that the scale changes during the run without
 * reaching values where F16 overflows. */
static void use_fp16(ct_train_opts *o) {
    o->precision = CT_PRECISION_FP16;
    o->loss_scale = (ct_scaler_opts){.mode = CT_LOSS_SCALE_DYNAMIC, .init_scale = 4096, .growth_interval = 4};
}

/* Distributed vs one process on the same global batches. */
static int equal_to_single(int accum, bool fp16) {
    ct_dataset *tr = teacher_data(N_TRAIN, 1), *val = teacher_data(N_TEST, 2), *te = teacher_data(N_TEST, 3);
    ct_train_opts od = run_opts(comm, accum), os = run_opts(NULL, accum);
    od.dist_bucket_bytes = 1024;
    if (fp16) {
        use_fp16(&od);
        use_fp16(&os);
    }
    outcome d = train_opts(&od, tr, val, te);
    int bad = check(ranks_agree(&d), "every rank holds the same weights");
    double diff = 0, tol = fp16 ? AMP_TOL : TOL;
    bool same_counts = true, same_scale = true;
    if (rank == 0) {
        outcome s = train_opts(&os, tr, val, te);
        diff = max_diff(d.w, s.w, d.n);
        printf("max |w_dist - w_single| = %.3g over %zu weights (%lld steps), test acc %.4f vs %.4f, loss %.6f vs %.6f\n",
               diff, d.n, (long long)d.r.steps, d.r.test_acc, s.r.test_acc, d.r.test_loss, s.r.test_loss);
        same_counts = d.r.steps == s.r.steps && d.r.test_acc == s.r.test_acc &&
                      fabs(d.r.test_loss - s.r.test_loss) < 1e-5 && fabs(d.r.val_loss - s.r.val_loss) < 1e-5;
        if (fp16) {
            printf("loss scale %g vs %g (from 4096), skipped steps %lld vs %lld\n", d.r.loss_scale, s.r.loss_scale,
                   (long long)d.r.skipped_steps, (long long)s.r.skipped_steps);
            same_scale = d.r.loss_scale == s.r.loss_scale && d.r.skipped_steps == s.r.skipped_steps &&
                         d.r.loss_scale > 4096;
        }
        outcome_free(&s);
    }
    char what[160];
    snprintf(what, sizeof what, "%s2 ranks match one process within %g%s", fp16 ? "FP16 loss scaling: " : "", tol,
             accum > 1 ? " with gradient accumulation" : "");
    bad += check(diff <= tol, what);
    bad += check(same_counts, "sharded evaluation gives the single process's accuracy and loss");
    if (fp16) {
        bad += check(same_everywhere(&d.r.loss_scale, sizeof d.r.loss_scale) &&
                         same_everywhere(&d.r.skipped_steps, sizeof d.r.skipped_steps) && same_scale,
                     "the loss scale grew to the single process's, and the skipped steps are the same, on every rank");
    }
    outcome_free(&d);
    ct_dataset_free(tr);
    ct_dataset_free(val);
    ct_dataset_free(te);
    return bad;
}

/* ------------------------------------------------------------ overflow on one rank */

/* The gain of the overflowing samples: their last hidden layer times 4096
 * stays finite in F16 and gives logits of a few thousand (a large but
 * finite loss), while their gradient of that layer, times the loss scale
 * 2^16, is ~1e6 and overflows F16 (65504) in the backward of fc2. */
#define GAIN 4096.0f

/* The training set of the overflow check: teacher data with a gain column,
 * and, when poison >= 0, two samples with GAIN in rank 1's half of global
 * batch `poison` (the loader keeps the order). The two share their features
 * and differ in their labels, so that at least one of them is misclassified
 * with a probability >= 0.5 and its gradient cannot vanish. */
static ct_dataset *overflow_data(int64_t poison) {
    const int cols = FEAT + 1;
    float *x = malloc((size_t)(N_TRAIN * cols) * sizeof *x);
    int32_t *y = malloc((size_t)N_TRAIN * sizeof *y);
    if (!x || !y) abort();
    teacher_fill(x, y, N_TRAIN, 1, cols);
    if (poison >= 0) {
        int64_t i = poison * 32 + 16 + 2, j = i + 5; /* rank 1 takes samples 16 .. 31 of each batch of 32 */
        memcpy(x + j * cols, x + i * cols, (size_t)cols * sizeof *x);
        x[i * cols + FEAT] = x[j * cols + FEAT] = GAIN;
        y[j] = (y[i] + 1) % CLASSES;
    }
    ct_dataset *ds = dataset_of(N_TRAIN, cols, x, y);
    free(x);
    free(y);
    return ds;
}

static outcome overflow_run(ct_comm *c, int accum, int64_t steps, const ct_dataset *tr) {
    ct_train_opts o = run_opts(c, accum);
    static char gain_column;
    o.model_user = &gain_column; /* the model reads the gain */
    o.no_shuffle = true;
    o.epochs = 1;
    o.max_steps = steps;
    o.optim = (ct_optim_opts){.kind = CT_OPTIM_ADAM, .lr = 1e-3};
    o.clip_norm = 5; /* clipping must be left out on the skipped step on every rank, or its norm is inf */
    o.precision = CT_PRECISION_FP16;
    o.loss_scale.mode = CT_LOSS_SCALE_DYNAMIC; /* GradScaler's defaults: 2^16, no growth in this run */
    o.dist_bucket_bytes = 1024;
    return train_opts(&o, tr, NULL, NULL);
}

static bool bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* Micro-batch `poison` overflows on rank 1: optimizer step k = poison /
 * accum (0-based) must be skipped by every rank. */
static int overflow_on_one_rank(int accum, int64_t poison) {
    int64_t k = poison / accum;
    ct_dataset *tr = overflow_data(poison), *clean = overflow_data(-1);
    outcome before = overflow_run(comm, accum, k, tr), at = overflow_run(comm, accum, k + 1, tr),
            after = overflow_run(comm, accum, k + 2, tr), control = overflow_run(comm, accum, k + 1, clean);
    const char *with = accum > 1 ? " (gradient accumulation)" : "";
    char what[200];
    if (rank == 0)
        printf("%s: step %lld of %lld-step runs overflows on rank 1: loss scale %g -> %g, skipped %lld -> %lld; "
               "without the sample: %g, %lld skipped\n",
               accum > 1 ? "accumulation over 3" : "no accumulation", (long long)k + 1, (long long)k + 2,
               before.r.loss_scale, at.r.loss_scale, (long long)before.r.skipped_steps, (long long)at.r.skipped_steps,
               control.r.loss_scale, (long long)control.r.skipped_steps);
    snprintf(what, sizeof what, "the overflow on rank 1 skips step %lld on every rank: weights and optimizer state "
             "unchanged, bit for bit%s", (long long)k + 1, with);
    int bad = check(on_every_rank(at.r.skipped_steps == 1 && before.r.skipped_steps == 0 &&
                                  bits_equal(at.w, before.w, at.n) && at.n_state == before.n_state &&
                                  bits_equal(at.state, before.state, at.n_state)),
                    what);
    bad += check(on_every_rank(at.r.loss_scale == before.r.loss_scale / 2 && before.r.loss_scale == 65536),
                 "the scale is halved on every rank (65536 -> 32768)");
    bad += check(ranks_agree(&at) && same_everywhere(&at.r.loss_scale, sizeof at.r.loss_scale),
                 "every rank holds the same weights, optimizer state and scale");
    bad += check(on_every_rank(after.r.skipped_steps == 1 && !bits_equal(after.w, at.w, at.n) &&
                               after.r.loss_scale == at.r.loss_scale && control.r.skipped_steps == 0),
                 "the next step is taken; without the sample no step is skipped");
    double diff = 0;
    bool same = true;
    if (rank == 0) {
        outcome s = overflow_run(NULL, accum, k + 2, tr);
        diff = max_diff(after.w, s.w, after.n);
        same = s.r.skipped_steps == after.r.skipped_steps && s.r.loss_scale == after.r.loss_scale;
        printf("one process on the same global batches: skipped %lld, scale %g, max |w_dist - w_single| = %.3g\n",
               (long long)s.r.skipped_steps, s.r.loss_scale, diff);
        outcome_free(&s);
    }
    snprintf(what, sizeof what, "one process skips the same step and matches within %g%s", AMP_TOL, with);
    bad += check(same && diff <= AMP_TOL, what);
    outcome_free(&before);
    outcome_free(&at);
    outcome_free(&after);
    outcome_free(&control);
    ct_dataset_free(tr);
    ct_dataset_free(clean);
    return bad;
}

/* The reducer on its own: how many buckets started during backward. */
static int buckets_start_early(void) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 3);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {8, FEAT}});
    ct_node y = ct_input(g, "labels", CT_I32, (ct_shape){1, {8}});
    ct_node loss = ct_cross_entropy(g, model(g, x, true, NULL), y, 0);
    if (ct_graph_backward(g, loss) != CT_OK) fail("backward");
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    if (!p) fail("compile");
    ct_ddp *d = ct_ddp_new(comm, g, p, &(ct_ddp_opts){.bucket_bytes = 64});
    if (!d) fail("ct_ddp_new");
    float xs[8 * FEAT];
    int32_t ys[8];
    for (int i = 0; i < 8 * FEAT; i++) xs[i] = ct_philox_uniform(9, (uint32_t)rank, 0, (uint64_t)i) - 0.5f;
    for (int i = 0; i < 8; i++) ys[i] = (int32_t)(ct_philox_u32(9, 7, (uint32_t)rank, (uint64_t)i) % CLASSES);
    if (ct_program_set_input(p, "x", xs, sizeof xs) != CT_OK || ct_program_set_input(p, "labels", ys, sizeof ys) != CT_OK ||
        ct_ddp_run(d, p, true, 1.0) != CT_OK)
        fail("ct_ddp_run");
    ct_ddp_stats s = ct_ddp_get_stats(d);
    if (rank == 0)
        printf("%d buckets of >= 64 bytes, %lld started during backward, %.3g ms waited after it\n", s.buckets,
               s.early, 1e3 * s.wait_s);
    int bad = check(s.buckets == 6 && s.early == s.buckets, "every bucket started from the gradient-ready hook");
    ct_ddp_free(d);
    ct_program_free(p);
    ct_graph_free(g);
    return bad;
}

static int overlap_equals_one_allreduce(void) {
    ct_dataset *tr = teacher_data(N_TRAIN, 1);
    outcome a = train(comm, 1, 256, false, tr, NULL, NULL);
    outcome b = train(comm, 1, 0, true, tr, NULL, NULL);
    int bad = check(a.n == b.n && memcmp(a.w, b.w, a.n * sizeof *a.w) == 0,
                    "bucketed all-reduce during backward = one all-reduce after it, bit for bit");
    bad += buckets_start_early();
    outcome_free(&a);
    outcome_free(&b);
    ct_dataset_free(tr);
    return bad;
}

/* Step time and the all-reduce time left after backward, per step, for
 * one all-reduce after backward and for buckets of bucket_kb during it. */
static void bench_one(size_t bucket_kb, bool no_overlap, int steps) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 3);
    enum { BATCH = 64, IN = 784 };
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {BATCH, IN}});
    ct_node y = ct_input(g, "labels", CT_I32, (ct_shape){1, {BATCH}});
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 512, true, NULL), "relu");
    h = ct_activation(g, ct_linear(g, "fc2", h, 256, true, NULL), "relu");
    ct_node loss = ct_cross_entropy(g, ct_linear(g, "fc3", h, 10, true, NULL), y, 0);
    if (ct_graph_backward(g, loss) != CT_OK) fail("backward");
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    ct_ddp *d = p ? ct_ddp_new(comm, g, p, &(ct_ddp_opts){.bucket_bytes = bucket_kb << 10, .no_overlap = no_overlap})
                  : NULL;
    if (!d) fail("bench setup");
    static float xs[BATCH * IN];
    int32_t ys[BATCH];
    for (int i = 0; i < BATCH * IN; i++) xs[i] = ct_philox_uniform(1, (uint32_t)rank, 0, (uint64_t)i);
    for (int i = 0; i < BATCH; i++) ys[i] = i % 10;
    if (ct_program_set_input(p, "x", xs, sizeof xs) != CT_OK || ct_program_set_input(p, "labels", ys, sizeof ys) != CT_OK)
        fail("inputs");
    for (int i = 0; i < 5; i++)
        if (ct_ddp_run(d, p, true, 1.0) != CT_OK) fail("warm-up");
    ct_ddp_stats s0 = ct_ddp_get_stats(d);
    if (ct_comm_barrier(comm) != CT_OK) fail("barrier");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < steps; i++)
        if (ct_ddp_run(d, p, true, 1.0) != CT_OK) fail("step");
    clock_gettime(CLOCK_MONOTONIC, &b);
    ct_ddp_stats s1 = ct_ddp_get_stats(d);
    double step_ms = 1e3 * ((double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec)) / steps;
    double wait_ms = 1e3 * (s1.wait_s - s0.wait_s) / steps;
    double v[2] = {step_ms, wait_ms};
    if (ct_comm_sum_host(comm, v, 2) != CT_OK) fail("sum");
    if (rank == 0)
        printf("%-34s %2d bucket(s): step %7.2f ms, all-reduce not hidden %6.3f ms (mean of %d ranks)\n",
               no_overlap ? "one all-reduce after backward" : "buckets during backward", s1.buckets,
               v[0] / ct_comm_size(comm), v[1] / ct_comm_size(comm), ct_comm_size(comm));
    ct_ddp_free(d);
    ct_program_free(p);
    ct_graph_free(g);
}

static void bench(void) {
    const int steps = 100;
    if (rank == 0) printf("MLP 784-512-256-10, 64 samples per rank, %d steps, 2.1 MB of gradients\n", steps);
    /* The all-reduce alone, ranks in step: what there is to hide. */
    enum { N = 535818 };
    static float buf[N];
    if (ct_comm_barrier(comm) != CT_OK) fail("barrier");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < steps; i++)
        if (ct_comm_allreduce(comm, buf, N, CT_REDUCE_AVG) != CT_OK) fail("all-reduce");
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rank == 0)
        printf("all-reduce of the gradients alone: %.3f ms\n",
               1e3 * ((double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec)) / steps);
    for (int rep = 0; rep < 2; rep++) {
        bench_one(0, true, steps);
        bench_one(256, false, steps);
        bench_one(64, false, steps);
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!(comm = ct_comm_new(CT_COMM_MPI, NULL))) {
        fprintf(stderr, "dist_check: %s\n", ct_last_error());
        return 1;
    }
    rank = ct_comm_rank(comm);
    if (ct_comm_size(comm) < 2 && rank == 0) fprintf(stderr, "dist_check: warning: one rank only\n");
    int bad = 0;
    if (strcmp(mode, "equal") == 0) {
        bad = equal_to_single(1, false);
    } else if (strcmp(mode, "accum") == 0) {
        bad = equal_to_single(3, false);
    } else if (strcmp(mode, "overlap") == 0) {
        bad = overlap_equals_one_allreduce();
    } else if (strcmp(mode, "amp") == 0) {
        bad = equal_to_single(1, true) + equal_to_single(3, true);
    } else if (strcmp(mode, "overflow") == 0) {
        bad = overflow_on_one_rank(1, 3) + overflow_on_one_rank(3, 4);
    } else if (strcmp(mode, "bench") == 0) {
        bench();
    } else if (strcmp(mode, "hang") == 0 || strcmp(mode, "die") == 0) {
        ct_dataset *tr = teacher_data(N_TRAIN, 1);
        if (rank == 1) {
            if (mode[0] == 'd') raise(SIGKILL);
            sleep(120); /* never reaches the first collective in time */
        }
        train(comm, 1, 0, false, tr, NULL, NULL);
        ct_dataset_free(tr);
        fprintf(stderr, "dist_check: rank %d: the run ended although rank 1 never took part\n", rank);
        bad = 1;
    } else {
        fprintf(stderr, "usage: dist_check equal|accum|amp|overflow|overlap|hang|die|bench\n");
        bad = 2;
    }
    ct_comm_free(comm);
    return bad;
}
