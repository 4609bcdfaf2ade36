/* Example 1: an MLP on MNIST with the graph API and an explicit training loop.
 *
 * What it shows: building a model with layers (nn.h), a loss and its
 * backward pass in one graph (graph.h, ops.h); compiling a training program
 * and an evaluation program that share the weights (program.h); a data
 * loader (data.h); the loop itself: set inputs, run forward + backward, clip,
 * optimizer step with a learning rate from a schedule (optim.h, schedule.h);
 * evaluation; and a checkpoint written with the safetensors writer
 * (safetensors.h) holding the weights, the optimizer state and the position.
 * ctrain_trainer (train.h) does all of this for you; this is the loop to
 * start from when you need a different one.
 *
 * Run:   01_mlp_mnist [MNIST_DIR [EPOCHS [CHECKPOINT]]]
 *        MNIST_DIR defaults to $CTRAIN_DATA_DIR/mnist (the four IDX files,
 *        gzipped or not), EPOCHS to 2, CHECKPOINT to mlp_mnist.safetensors.
 *
 * Result: an MLP 784-256-128-10 trained for 2 epochs reaches about 98% test
 * accuracy; the program exits with status 1 below 97% (or on any error).
 * Example 3 (03_finetune) can start from the checkpoint it writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

enum { BATCH = 64, EVAL_BATCH = 500, PIXELS = 28 * 28, CLASSES = 10 };

/* Prints the library's last error and makes main fail. */
static int fail(const char *what) {
    fprintf(stderr, "01_mlp_mnist: %s: %s\n", what, ct_last_error());
    return 1;
}

/* The model: the same calls build the training and the evaluation graph,
 * and the layer names make both declare the same parameters, which is what
 * lets the two programs share them. */
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

/* One graph and program for batches of `batch` images. Training adds the
 * backward pass and asks for gradients; `share` (NULL for the first) gives
 * the parameters to use. */
static int net_build(net *n, int64_t batch, bool training, ct_program *share) {
    n->g = ct_graph_new();
    if (!n->g) return fail("graph");
    ct_graph_set_seed(n->g, 1); /* the initial weights */
    n->images = ct_input(n->g, "images", CT_F32, (ct_shape){4, {batch, 1, 28, 28}});
    n->labels = ct_input(n->g, "labels", CT_I32, (ct_shape){1, {batch}});
    n->logits = mlp(n->g, n->images);
    n->loss = ct_cross_entropy(n->g, n->logits, n->labels, 0.0);
    /* Builders never stop on an error: one check after the whole model. */
    if (ct_graph_status(n->g) != CT_OK) return fail("building the model");
    if (training && ct_graph_backward(n->g, n->loss) != CT_OK) return fail("backward");
    ct_node outputs[2] = {n->loss, n->logits};
    ct_compile_opts co = {.outputs = outputs, .n_outputs = 2, .grads = training, .share_params = share};
    if (!(n->p = ct_compile(n->g, &co))) return fail("compiling");
    ct_program_set_training(n->p, training);
    return 0;
}

static void net_free(net *n) {
    ct_program_free(n->p);
    ct_graph_free(n->g);
}

/* Test accuracy in [0, 1], or -1 on error. */
static double evaluate(net *ev, const ct_dataset *test) {
    static float logits[EVAL_BATCH * CLASSES];
    const float *x = ct_dataset_features(test);
    const int32_t *y = ct_dataset_labels(test);
    int64_t n = ct_dataset_size(test), correct = 0;
    for (int64_t i = 0; i + EVAL_BATCH <= n; i += EVAL_BATCH) {
        if (ct_program_set_input_node(ev->p, ev->images, x + i * PIXELS,
                                      EVAL_BATCH * PIXELS * sizeof(float)) != CT_OK ||
            ct_program_set_input_node(ev->p, ev->labels, y + i, EVAL_BATCH * sizeof(int32_t)) != CT_OK ||
            ct_program_run(ev->p) != CT_OK ||
            ct_program_read(ev->p, ev->logits, logits, sizeof logits) != CT_OK)
            return fail("evaluating"), -1;
        for (int b = 0; b < EVAL_BATCH; b++) {
            int best = 0;
            for (int c = 1; c < CLASSES; c++)
                if (logits[b * CLASSES + c] > logits[b * CLASSES + best]) best = c;
            correct += best == y[i + b];
        }
    }
    return (double)correct / (double)(n - n % EVAL_BATCH);
}

/* A checkpoint: every parameter under its name (so the file is also a
 * weights file for ct_load_weights or PyTorch), each optimizer state sliced
 * per parameter out of its flat buffer, and the position as metadata. */
static int save_checkpoint(const net *tr, ct_optimizer *opt, int64_t step, const char *path) {
    ct_st_writer *w = ct_st_writer_new();
    size_t numel = ct_program_param_numel(tr->p);
    float *flat = malloc(numel * sizeof *flat);
    int rc = (!w || !flat) ? fail("out of memory") : 0;
    for (int s = -1; !rc && s < ct_optimizer_num_states(opt); s++) {
        /* s = -1: the weights themselves. */
        const char *state = NULL;
        if (s < 0) {
            rc = ct_program_read_params(tr->p, flat, numel * sizeof *flat) != CT_OK;
        } else {
            ct_optimizer_state(opt, s, &state, NULL, NULL);
            rc = ct_optimizer_read_state(opt, state, flat, numel * sizeof *flat) != CT_OK;
        }
        for (int i = 0; !rc && i < ct_graph_num_params(tr->g); i++) {
            ct_node prm = ct_graph_param(tr->g, i);
            char name[256];
            snprintf(name, sizeof name, s < 0 ? "%s%s" : "optim.%s.%s", s < 0 ? "" : state,
                     ct_node_name(tr->g, prm));
            rc = ct_st_writer_add(w, name, CT_F32, ct_node_shape(tr->g, prm),
                                  flat + ct_program_param_offset(tr->p, prm)) != CT_OK;
        }
    }
    char steps[32];
    snprintf(steps, sizeof steps, "%lld", (long long)step);
    if (!rc) rc = ct_st_writer_meta(w, "step", steps) != CT_OK;
    if (!rc) rc = ct_st_writer_save(w, path) != CT_OK; /* atomic: temporary file, then rename */
    if (rc) fail("saving the checkpoint");
    free(flat);
    ct_st_writer_free(w);
    return rc;
}

int main(int argc, char **argv) {
    char dir[4096];
    const char *env = getenv("CTRAIN_DATA_DIR");
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "");
    if (argc <= 1) snprintf(dir, sizeof dir, "%s/mnist", env ? env : ".");
    int epochs = argc > 2 ? atoi(argv[2]) : 2;
    const char *ckpt = argc > 3 ? argv[3] : "mlp_mnist.safetensors";
    if (epochs < 1) {
        fprintf(stderr, "usage: 01_mlp_mnist [MNIST_DIR [EPOCHS [CHECKPOINT]]]\n");
        return 2;
    }
    printf("ctrain %s, MNIST from %s\n", ct_version(), dir);

    /* Data: pixels in [0, 1], normalised with the training set's mean and std. */
    ct_dataset *train = NULL, *test = NULL;
    if (ct_dataset_load_mnist(dir, true, &train) != CT_OK) return fail("loading the training set");
    if (ct_dataset_load_mnist(dir, false, &test) != CT_OK) return fail("loading the test set");
    float mean, std;
    if (ct_dataset_stats(train, 1, &mean, &std) != CT_OK ||
        ct_dataset_normalize(train, 1, &mean, &std) != CT_OK ||
        ct_dataset_normalize(test, 1, &mean, &std) != CT_OK)
        return fail("normalising");
    ct_loader *loader = ct_loader_new(
        train, &(ct_loader_opts){.batch_size = BATCH, .shuffle = true, .drop_last = true, .seed = 7, .prefetch = true});
    if (!loader) return fail("loader");

    net tr = {0}, ev = {0};
    if (net_build(&tr, BATCH, true, NULL) || net_build(&ev, EVAL_BATCH, false, tr.p)) return 1;
    ct_optimizer *opt = ct_optimizer_new(
        tr.g, tr.p, &(ct_optim_opts){.kind = CT_OPTIM_ADAMW, .lr = 2e-3, .weight_decay = 0.01});
    if (!opt) return fail("optimizer");
    /* Cosine decay over the whole run, after a short linear warmup. */
    int64_t total = epochs * ct_loader_num_batches(loader);
    ct_schedule sched = {.kind = CT_SCHED_COSINE, .lr = 2e-3, .T_max = total, .warmup_steps = 100};

    int64_t step = 0;
    double acc = 0;
    for (int epoch = 0; epoch < epochs; epoch++) {
        ct_loader_start_epoch(loader, (uint32_t)epoch);
        double loss_sum = 0;
        ct_batch b;
        while (ct_loader_next(loader, &b) == CT_OK && b.count > 0) {
            float loss;
            if (ct_program_set_input_node(tr.p, tr.images, b.x, BATCH * PIXELS * sizeof(float)) != CT_OK ||
                ct_program_set_input_node(tr.p, tr.labels, b.y, BATCH * sizeof(int32_t)) != CT_OK ||
                ct_program_run(tr.p) != CT_OK || /* forward and backward */
                ct_program_read(tr.p, tr.loss, &loss, sizeof loss) != CT_OK)
                return fail("training step");
            double norm;
            if (ct_clip_grad_norm(tr.p, 5.0, &norm) != CT_OK) return fail("clipping");
            if (ct_optimizer_step(opt, ct_schedule_lr(&sched, step++)) != CT_OK) return fail("optimizer step");
            loss_sum += loss;
        }
        if ((acc = evaluate(&ev, test)) < 0) return 1;
        printf("epoch %d: train loss %.4f, test accuracy %.2f%%\n", epoch + 1,
               loss_sum / (double)ct_loader_num_batches(loader), 100 * acc);
    }
    if (save_checkpoint(&tr, opt, step, ckpt)) return 1;
    printf("checkpoint: %s (step %lld)\n", ckpt, (long long)step);

    ct_optimizer_free(opt);
    net_free(&ev);
    net_free(&tr);
    ct_loader_free(loader);
    ct_dataset_free(test);
    ct_dataset_free(train);
    int ok = acc >= 0.97;
    printf("%s: test accuracy %.2f%% %s 97%%\n", ok ? "ok" : "FAILED", 100 * acc, ok ? ">=" : "<");
    return ok ? 0 : 1;
}
