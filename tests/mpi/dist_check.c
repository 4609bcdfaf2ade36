/* Data-parallel checks, run by CTest under `mpirun -np 2` (tests/mpi/CMakeLists.txt).
 *
 *   dist_check equal    2 ranks end with the weights of one process trained on
 *                       the same global batches (SGD with momentum, F32),
 *                       within TOL; the ranks agree bit for bit; evaluation
 *                       (sharded, reduced) gives the single process's counts
 *   dist_check accum    the same with gradient accumulation over 3 micro-batches
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

static ct_comm *comm;
static int rank;

static ct_node model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 48, true, NULL), "relu");
    h = ct_activation(g, ct_linear(g, "fc2", h, 32, true, NULL), "tanh");
    return ct_linear(g, "fc3", h, CLASSES, true, NULL);
}

static ct_dataset *teacher_data(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    if (!x || !y) abort();
    for (int64_t i = 0; i < n; i++) {
        float *xi = x + i * FEAT;
        for (int f = 0; f < FEAT; f++) xi[f] = 2 * ct_philox_uniform(seed, 1, 0, (uint64_t)(i * FEAT + f)) - 1;
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
    ct_dataset *ds = NULL;
    if (ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds) != CT_OK) {
        fprintf(stderr, "dist_check: %s\n", ct_last_error());
        exit(1);
    }
    free(x);
    free(y);
    return ds;
}

/* A run's outcome: the flat weights and the test evaluation. */
typedef struct outcome {
    float *w;
    size_t n;
    ct_train_result r;
} outcome;

static void fail(const char *what) {
    fprintf(stderr, "dist_check: rank %d: %s: %s\n", rank, what, ct_last_error());
    ct_comm_abort(comm, 1);
}

static outcome train(ct_comm *c, int accum, size_t bucket_bytes, bool no_overlap, const ct_dataset *tr,
                     const ct_dataset *val, const ct_dataset *te) {
    ct_train_opts o = {.model = model,
                       .seed = 11,
                       .data_seed = 5,
                       .batch_size = 32,
                       .eval_batch_size = 16,
                       .epochs = 3,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 0.05, .momentum = 0.9},
                       .accum_steps = accum,
                       .quiet = true,
                       .comm = c,
                       .dist_bucket_bytes = bucket_bytes,
                       .dist_no_overlap = no_overlap};
    ct_trainer *t = ct_trainer_new(&o, tr, val, te);
    if (!t) fail("ct_trainer_new");
    outcome out = {0};
    if (ct_trainer_run(t, &out.r) != CT_OK) fail("ct_trainer_run");
    ct_program *p = ct_trainer_program(t);
    out.n = ct_program_param_numel(p);
    out.w = malloc(out.n * sizeof *out.w);
    if (!out.w || ct_program_read_params(p, out.w, out.n * sizeof *out.w) != CT_OK) fail("reading the weights");
    ct_trainer_free(t);
    return out;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* a NaN counts as the largest */
    }
    return m;
}

/* Whether every rank holds rank 0's weights bit for bit. */
static bool ranks_agree(const outcome *o) {
    float *w0 = malloc(o->n * sizeof *w0);
    if (!w0) abort();
    memcpy(w0, o->w, o->n * sizeof *w0);
    if (ct_comm_broadcast(comm, w0, o->n * sizeof *w0, 0) != CT_OK) fail("broadcast");
    double differ = memcmp(w0, o->w, o->n * sizeof *w0) != 0;
    free(w0);
    if (ct_comm_sum_host(comm, &differ, 1) != CT_OK) fail("sum");
    return differ == 0;
}

static int check(bool ok, const char *what) {
    if (rank == 0) printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    return ok ? 0 : 1;
}

/* Distributed vs one process on the same global batches. */
static int equal_to_single(int accum) {
    ct_dataset *tr = teacher_data(N_TRAIN, 1), *val = teacher_data(N_TEST, 2), *te = teacher_data(N_TEST, 3);
    outcome d = train(comm, accum, 1024, false, tr, val, te);
    int bad = check(ranks_agree(&d), "every rank holds the same weights");
    double diff = 0;
    bool same_counts = true;
    if (rank == 0) {
        outcome s = train(NULL, accum, 0, false, tr, val, te);
        diff = max_diff(d.w, s.w, d.n);
        printf("max |w_dist - w_single| = %.3g over %zu weights (%lld steps), test acc %.4f vs %.4f, loss %.6f vs %.6f\n",
               diff, d.n, (long long)d.r.steps, d.r.test_acc, s.r.test_acc, d.r.test_loss, s.r.test_loss);
        same_counts = d.r.steps == s.r.steps && d.r.test_acc == s.r.test_acc &&
                      fabs(d.r.test_loss - s.r.test_loss) < 1e-5 && fabs(d.r.val_loss - s.r.val_loss) < 1e-5;
        free(s.w);
    }
    char what[160];
    snprintf(what, sizeof what, "2 ranks match one process within %g%s", TOL,
             accum > 1 ? " with gradient accumulation" : "");
    bad += check(diff <= TOL, what);
    bad += check(same_counts, "sharded evaluation gives the single process's accuracy and loss");
    free(d.w);
    ct_dataset_free(tr);
    ct_dataset_free(val);
    ct_dataset_free(te);
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
    free(a.w);
    free(b.w);
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
        bad = equal_to_single(1);
    } else if (strcmp(mode, "accum") == 0) {
        bad = equal_to_single(3);
    } else if (strcmp(mode, "overlap") == 0) {
        bad = overlap_equals_one_allreduce();
    /* FP16 dynamic loss scaling (issue #7, waits for the mixed-precision
     * branch): a mode "amp" goes here that trains 2 ranks with loss scaling
     * and matches one process within a tolerance, and injects an overflow
     * (an inf gradient) on rank 1 only at one step, checking that every rank
     * skips that step and halves its scale (the inf check runs after the
     * all-reduce, so no extra message is needed). Register it beside
     * mpi_equal_accum in tests/mpi/CMakeLists.txt. */
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
        fprintf(stderr, "usage: dist_check equal|accum|overlap|hang|die|bench\n");
        bad = 2;
    }
    ct_comm_free(comm);
    return bad;
}
