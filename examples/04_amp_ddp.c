/* Example 4: example 1's MLP on MNIST in mixed precision, data parallel.
 *
 * What it shows: example 1's explicit loop with two additions, each a few
 * calls of the public API.
 *  - Mixed precision (amp.h): ct_graph_set_precision makes the matrix
 *    products FP16 or BF16 with FP32 accumulation, master weights stay FP32.
 *    FP16 adds dynamic loss scaling: the backward pass is seeded with the
 *    scale (ct_graph_backward_scaled), and each step unscales the gradients
 *    with an inf/NaN check, clips unless the step is to be skipped, steps the
 *    optimizer (nothing is written on inf/NaN) and updates the scale.
 *  - Data parallelism (dist.h): under a launcher (mpirun, srun) every rank
 *    joins one communicator (MPI on CPUs, NCCL on GPUs), starts from rank 0's
 *    weights (ct_ddp_broadcast), trains on its shard of every global batch
 *    (the loader's num_shards / shard_index) and averages the gradients
 *    after backward (ct_ddp_run, in buckets while backward still runs).
 *    The averaged gradients are the same on every rank, so the loss
 *    scaler's skip decision is too, with no message of its own. Evaluation
 *    is split across the ranks and the counts summed; only rank 0 prints
 *    and saves. Started without a launcher it trains alone.
 *
 * Run:   mpirun -np 2 04_amp_ddp [--device cpu|cuda[:N]] [--precision fp16|bf16]
 *                                [--epochs N] [--data MNIST_DIR] [--save FILE] [--min-acc PCT]
 *        defaults: cuda, fp16, 1 epoch, $CTRAIN_DATA_DIR/mnist,
 *        amp_ddp.safetensors, 95. The batch of 64 is the global batch; each
 *        of N ranks takes 64 / N of it (N must divide 64). --device cpu runs
 *        the same mixed-precision policy on the CPU backend (CPU ranks use
 *        MPI): what CI runs. On a machine without a GPU, --device cuda exits
 *        with status 77 (skipped) and says why. As root in a container,
 *        mpirun needs --allow-run-as-root (docs/distributed.md).
 *
 * Result: on 2 CPU ranks in FP16, one epoch reaches about 97% test accuracy;
 * the program exits with status 1 below --min-acc, when the ranks' final
 * weights differ in any bit, or on any error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

enum { BATCH = 64, EVAL_BATCH = 500, PIXELS = 28 * 28, CLASSES = 10 };

static ct_comm *comm;
static int rank, ranks = 1;

/* Prints the library's last error and, in a job of several ranks, ends
 * them all: the others would otherwise wait for this one in the next
 * all-reduce until their timeout. */
static int fail(const char *what) {
    fprintf(stderr, "04_amp_ddp: rank %d of %d: %s: %s\n", rank, ranks, what, ct_last_error());
    if (ranks > 1) ct_comm_abort(comm, 1);
    return 1;
}

/* Example 1's model. The precision policy set on the graph before these
 * calls casts the operands of every product; the rest stays FP32. */
static ct_node mlp(ct_graph *g, ct_node images) {
    ct_node x = ct_reshape(g, images, (ct_shape){2, {-1, PIXELS}});
    x = ct_relu(g, ct_linear(g, "fc1", x, 256, true, NULL));
    x = ct_relu(g, ct_linear(g, "fc2", x, 128, true, NULL));
    return ct_linear(g, "fc3", x, CLASSES, true, NULL);
}

typedef struct net {
    ct_graph *g;
    ct_node images, labels, logits, loss;
    ct_program *p;
} net;

static int net_build(net *n, int64_t batch, bool training, ct_precision prec, ct_device dev, ct_program *share) {
    n->g = ct_graph_new();
    if (!n->g) return fail("graph");
    ct_graph_set_seed(n->g, 1);
    ct_graph_set_precision(n->g, prec);
    n->images = ct_input(n->g, "images", CT_F32, (ct_shape){4, {batch, 1, 28, 28}});
    n->labels = ct_input(n->g, "labels", CT_I32, (ct_shape){1, {batch}});
    n->logits = mlp(n->g, n->images);
    n->loss = ct_cross_entropy(n->g, n->logits, n->labels, 0.0);
    if (ct_graph_status(n->g) != CT_OK) return fail("building the model");
    /* FP16: the gradient of the loss starts as the loss scale instead of 1. */
    if (training && (prec == CT_PRECISION_FP16 ? ct_graph_backward_scaled(n->g, n->loss)
                                               : ct_graph_backward(n->g, n->loss)) != CT_OK)
        return fail("backward");
    ct_node outputs[2] = {n->loss, n->logits};
    ct_compile_opts co = {.device = dev, .outputs = outputs, .n_outputs = 2, .grads = training, .share_params = share};
    if (!(n->p = ct_compile(n->g, &co))) return fail("compiling");
    ct_program_set_training(n->p, training);
    return 0;
}

static void net_free(net *n) {
    ct_program_free(n->p);
    ct_graph_free(n->g);
}

/* Test accuracy in [0, 1] over all ranks: each evaluates its contiguous
 * part of the test set, and the counts are summed. -1 on error. */
static double evaluate(net *ev, const ct_dataset *test) {
    static float logits[EVAL_BATCH * CLASSES];
    const float *x = ct_dataset_features(test);
    const int32_t *y = ct_dataset_labels(test);
    int64_t n = ct_dataset_size(test), lo = n * rank / ranks, hi = n * (rank + 1) / ranks;
    double counts[2] = {0, 0}; /* correct, seen */
    for (int64_t i = lo; i + EVAL_BATCH <= hi; i += EVAL_BATCH) {
        if (ct_program_set_input_node(ev->p, ev->images, x + i * PIXELS, EVAL_BATCH * PIXELS * sizeof(float)) !=
                CT_OK ||
            ct_program_set_input_node(ev->p, ev->labels, y + i, EVAL_BATCH * sizeof(int32_t)) != CT_OK ||
            ct_program_run(ev->p) != CT_OK || ct_program_read(ev->p, ev->logits, logits, sizeof logits) != CT_OK)
            return fail("evaluating"), -1;
        for (int b = 0; b < EVAL_BATCH; b++) {
            int best = 0;
            for (int c = 1; c < CLASSES; c++)
                if (logits[b * CLASSES + c] > logits[b * CLASSES + best]) best = c;
            counts[0] += best == y[i + b];
        }
        counts[1] += EVAL_BATCH;
    }
    if (ct_comm_sum_host(comm, counts, 2) != CT_OK) return fail("summing the counts"), -1;
    return counts[0] / counts[1];
}

/* Whether every rank holds rank 0's weights, bit for bit. The collectives
 * take memory on the communicator's device (the GPU for NCCL, which cannot
 * read a malloc'ed host buffer), so rank 0's weights are broadcast into the
 * program's own flat buffer, read back, and this rank's put back after. */
static int weights_identical(const net *tr, bool *same) {
    size_t n = ct_program_param_numel(tr->p);
    float *w = malloc(n * sizeof *w), *w0 = malloc(n * sizeof *w0);
    if (!w || !w0) return free(w), free(w0), fail("out of memory");
    double differ = 0;
    if (ct_program_read_params(tr->p, w, n * sizeof *w) != CT_OK) return free(w), free(w0), fail("reading weights");
    if (ct_comm_broadcast(comm, ct_program_params(tr->p), n * sizeof *w0, 0) != CT_OK)
        return free(w), free(w0), fail("broadcast");
    if (ct_program_read_params(tr->p, w0, n * sizeof *w0) != CT_OK ||
        ct_program_write_params(tr->p, w, n * sizeof *w) != CT_OK)
        return free(w), free(w0), fail("comparing weights");
    differ = memcmp(w, w0, n * sizeof *w) != 0;
    free(w);
    free(w0);
    if (ct_comm_sum_host(comm, &differ, 1) != CT_OK) return fail("comparing weights");
    *same = differ == 0;
    return 0;
}

typedef struct args {
    const char *device, *data, *save;
    ct_precision prec;
    int epochs;
    double min_acc;
} args;

static int parse_args(int argc, char **argv, args *a, char *dir, size_t cap) {
    const char *env = getenv("CTRAIN_DATA_DIR");
    snprintf(dir, cap, "%s/mnist", env ? env : ".");
    *a = (args){.device = "cuda", .data = dir, .save = "amp_ddp.safetensors", .prec = CT_PRECISION_FP16,
                .epochs = 1, .min_acc = 95};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        if (ok && strcmp(argv[i], "--device") == 0) a->device = v;
        else if (ok && strcmp(argv[i], "--data") == 0) a->data = v;
        else if (ok && strcmp(argv[i], "--save") == 0) a->save = v;
        else if (ok && strcmp(argv[i], "--epochs") == 0) ok = (a->epochs = atoi(v)) >= 1;
        else if (ok && strcmp(argv[i], "--min-acc") == 0) a->min_acc = atof(v);
        else if (ok && strcmp(argv[i], "--precision") == 0)
            ok = ct_precision_parse(v, &a->prec) == CT_OK && a->prec != CT_PRECISION_FP32;
        else ok = false;
        if (!ok) {
            fprintf(stderr, "usage: 04_amp_ddp [--device cpu|cuda[:N]] [--precision fp16|bf16] [--epochs N] "
                            "[--data MNIST_DIR] [--save FILE] [--min-acc PCT]\n");
            return 2;
        }
    }
    return 0;
}

/* The communicator the launcher asks for: MPI for CPU ranks, NCCL for GPU
 * ranks (each on the GPU of its local rank), or one process alone. */
static int join(bool gpu, bool pinned, ct_device *dev) {
    ct_comm_kind kind = gpu ? CT_COMM_NCCL : CT_COMM_MPI;
    if (!ct_dist_launched() || !ct_comm_available(kind)) {
        if (ct_dist_launched() && ct_dist_launched_size() > 1) {
            fprintf(stderr, "04_amp_ddp: started as one of %d ranks, but this build has no %s communicator\n",
                    ct_dist_launched_size(), ct_comm_kind_name(kind));
            return 1;
        }
        kind = CT_COMM_SINGLE;
    }
    ct_comm_opts co = {.fixed_device = pinned, .device_index = dev->index};
    if (!(comm = ct_comm_new(kind, &co))) {
        fprintf(stderr, "04_amp_ddp: %s communicator: %s\n", ct_comm_kind_name(kind), ct_last_error());
        return 1;
    }
    rank = ct_comm_rank(comm);
    ranks = ct_comm_size(comm);
    if (kind == CT_COMM_NCCL) *dev = ct_comm_device(comm);
    if (BATCH % ranks != 0) {
        if (rank == 0) fprintf(stderr, "04_amp_ddp: the global batch %d must be a multiple of the %d ranks\n", BATCH, ranks);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    char dir[4096];
    args a;
    int rc = parse_args(argc, argv, &a, dir, sizeof dir);
    if (rc) return rc;
    ct_device dev;
    if (ct_device_parse(a.device, &dev) != CT_OK) {
        fprintf(stderr, "04_amp_ddp: --device: %s\n", ct_last_error());
        return 2;
    }
    bool gpu = dev.kind == CT_DEVICE_CUDA;
    if (gpu) {
        char why[256];
        int n = ct_cuda_device_count(why, sizeof why);
        if (n == 0 || dev.index >= n) {
            printf("04_amp_ddp: skipped: --device %s needs a GPU: %s\n", a.device, n ? "no such GPU" : why);
            return 77;
        }
    }
    if (join(gpu, strchr(a.device, ':') != NULL, &dev)) return 1;
    char devname[32];
    if (rank == 0)
        printf("ctrain %s: %d rank(s) (%s), %s on %s, global batch %d\n", ct_version(), ranks,
               ct_comm_kind_name(ct_comm_get_kind(comm)), ct_precision_name(a.prec),
               ct_device_str(dev, devname, sizeof devname), BATCH);

    /* Every rank reads the whole set and keeps its shard of each batch. */
    ct_dataset *train = NULL, *test = NULL;
    if (ct_dataset_load_mnist(a.data, true, &train) != CT_OK) return fail("loading the training set");
    if (ct_dataset_load_mnist(a.data, false, &test) != CT_OK) return fail("loading the test set");
    float mean, std;
    if (ct_dataset_stats(train, 1, &mean, &std) != CT_OK || ct_dataset_normalize(train, 1, &mean, &std) != CT_OK ||
        ct_dataset_normalize(test, 1, &mean, &std) != CT_OK)
        return fail("normalising");
    const int64_t local = BATCH / ranks;
    ct_loader *loader = ct_loader_new(train, &(ct_loader_opts){.batch_size = local, .shuffle = true, .drop_last = true,
                                                               .seed = 7, .prefetch = true, .num_shards = ranks,
                                                               .shard_index = rank});
    if (!loader) return fail("loader");

    net tr = {0}, ev = {0};
    if (net_build(&tr, local, true, a.prec, dev, NULL) || net_build(&ev, EVAL_BATCH, false, a.prec, dev, tr.p)) return 1;
    ct_ddp *ddp = ct_ddp_new(comm, tr.g, tr.p, NULL);
    if (!ddp || ct_ddp_broadcast(ddp) != CT_OK) return fail("data-parallel reducer");
    ct_optimizer *opt = ct_optimizer_new(tr.g, tr.p, &(ct_optim_opts){.kind = CT_OPTIM_ADAMW, .lr = 2e-3,
                                                                      .weight_decay = 0.01});
    if (!opt) return fail("optimizer");
    /* GradScaler's defaults: 2^16, halved on inf/NaN, doubled after 2000 good steps. */
    ct_scaler *scaler = NULL;
    if (a.prec == CT_PRECISION_FP16 && !(scaler = ct_scaler_new(tr.p, NULL))) return fail("loss scaler");
    int64_t total = a.epochs * ct_loader_num_batches(loader);
    ct_schedule sched = {.kind = CT_SCHED_COSINE, .lr = 2e-3, .T_max = total, .warmup_steps = 100};

    int64_t step = 0;
    double acc = 0;
    for (int epoch = 0; epoch < a.epochs; epoch++) {
        ct_loader_start_epoch(loader, (uint32_t)epoch);
        double loss_sum[2] = {0, 0}; /* over this rank's batches, then summed over the ranks */
        ct_batch b;
        while (ct_loader_next(loader, &b) == CT_OK && b.count > 0) {
            float loss;
            if (ct_program_set_input_node(tr.p, tr.images, b.x, (size_t)local * PIXELS * sizeof(float)) != CT_OK ||
                ct_program_set_input_node(tr.p, tr.labels, b.y, (size_t)local * sizeof(int32_t)) != CT_OK ||
                ct_ddp_run(ddp, tr.p, true, 1.0) != CT_OK || /* forward, backward, gradient average */
                ct_program_read(tr.p, tr.loss, &loss, sizeof loss) != CT_OK)
                return fail("training step");
            bool skip = false;
            if (scaler && (ct_scaler_unscale(scaler) != CT_OK || ct_scaler_found_inf(scaler, &skip) != CT_OK))
                return fail("unscaling");
            double norm;
            if (!skip && ct_clip_grad_norm(tr.p, 5.0, &norm) != CT_OK) return fail("clipping");
            double lr = ct_schedule_lr(&sched, step++);
            if ((scaler ? ct_scaler_step(scaler, opt, lr) : ct_optimizer_step(opt, lr)) != CT_OK)
                return fail("optimizer step");
            if (scaler && ct_scaler_update(scaler) != CT_OK) return fail("loss-scale update");
            loss_sum[0] += loss;
            loss_sum[1] += 1;
        }
        if (ct_comm_sum_host(comm, loss_sum, 2) != CT_OK) return fail("summing the losses");
        if ((acc = evaluate(&ev, test)) < 0) return 1;
        ct_scaler_state st = {.scale = 1};
        if (scaler && ct_scaler_get_state(scaler, &st) != CT_OK) return fail("loss-scale state");
        if (rank == 0)
            printf("epoch %d: train loss %.4f, test accuracy %.2f%%, loss scale %g, %lld step(s) skipped\n", epoch + 1,
                   loss_sum[0] / loss_sum[1], 100 * acc, st.scale, (long long)st.skipped_steps);
    }
    bool same = false;
    if (weights_identical(&tr, &same)) return 1;
    /* Every rank holds the same weights: one file, written by rank 0. */
    if (rank == 0 && ct_save_weights(tr.g, tr.p, a.save) != CT_OK) return fail("saving the weights");

    int ok = acc * 100 >= a.min_acc && same;
    if (rank == 0) {
        printf("weights: %s on all %d rank(s); saved to %s\n", same ? "identical" : "DIFFERENT", ranks, a.save);
        printf("%s: test accuracy %.2f%% %s %g%%\n", ok ? "ok" : "FAILED", 100 * acc,
               acc * 100 >= a.min_acc ? ">=" : "<", a.min_acc);
    }
    ct_scaler_free(scaler);
    ct_optimizer_free(opt);
    ct_ddp_free(ddp);
    net_free(&ev);
    net_free(&tr);
    ct_loader_free(loader);
    ct_dataset_free(test);
    ct_dataset_free(train);
    ct_comm_free(comm);
    return ok ? 0 : 1;
}
