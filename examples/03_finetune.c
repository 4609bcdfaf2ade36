/* Example 3: fine-tuning. Load weights from a safetensors file, freeze all
 * but the last layer, train it.
 *
 * What it shows: the trainer (train.h) with a model callback; weights saved
 * as a safetensors file (ct_save_weights) - the format PyTorch reads and
 * writes, so the file could as well come from torch; a new model that
 * reuses the saved layers by name and puts a fresh head on top; a
 * non-strict load (the head is not in the file, and a checkpoint's extra
 * tensors such as optimizer state are skipped); freezing by name prefix
 * (ct_optimizer_freeze); and proof that the frozen weights did not move:
 * after training they are compared, bit for bit, with the file's tensors
 * read back with the safetensors reader (ct_st_open, ct_st_read).
 *
 * Run:   03_finetune [MNIST_DIR [WEIGHTS]]
 *        MNIST_DIR defaults to $CTRAIN_DATA_DIR/mnist. The training images
 *        are split in two random halves. Without WEIGHTS the program first
 *        pretrains an MLP 784-256-128-10 for one epoch on the first half and
 *        saves it as pretrained.safetensors; with WEIGHTS it starts from
 *        that file instead, e.g. the checkpoint example 1 writes
 *        (mlp_mnist.safetensors, the same layer names).
 *
 * Result: a fresh 10-class head on the frozen fc1 and fc2, trained for one
 * epoch on the other half, reaches about 96% test accuracy (about 30%
 * before, with the head still random);
 * the program exits with status 1 below 94%, if a frozen weight differs
 * from the file by a single bit, or if the head did not change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

static int fail(const char *what) {
    fprintf(stderr, "03_finetune: %s: %s\n", what, ct_last_error());
    return 1;
}

/* The body both models share, fc1 and fc2, and a head whose name the
 * callback's user pointer gives: "fc3" when pretraining, "head" when
 * fine-tuning, so the fine-tuned head does not pick up fc3's weights. */
static ct_node mlp(ct_graph *g, ct_node images, bool training, void *head_name) {
    (void)training; /* no dropout or batch norm here */
    ct_node x = ct_reshape(g, images, (ct_shape){2, {-1, 28 * 28}});
    x = ct_relu(g, ct_linear(g, "fc1", x, 256, true, NULL));
    x = ct_relu(g, ct_linear(g, "fc2", x, 128, true, NULL));
    return ct_linear(g, (const char *)head_name, x, 10, true, NULL);
}

/* Pretraining: a short run of the trainer, then the weights alone. */
static int pretrain(const ct_dataset *train, const char *path) {
    ct_train_opts o = {.model = mlp, .model_user = "fc3", .seed = 1, .batch_size = 64, .epochs = 1,
                       .optim = {.kind = CT_OPTIM_ADAM, .lr = 2e-3}, .quiet = true};
    ct_trainer *t = ct_trainer_new(&o, train, NULL, NULL);
    int rc = !t || ct_trainer_run(t, NULL) != CT_OK ||
             ct_save_weights(ct_trainer_graph(t), ct_trainer_program(t), path) != CT_OK;
    if (rc) fail("pretraining");
    else printf("pretrained on %lld images, saved %s\n", (long long)ct_dataset_size(train), path);
    ct_trainer_free(t);
    return rc;
}

/* 1 if the parameter `name` of the program holds exactly the file's tensor. */
static int same_as_file(ct_program *p, const ct_st_file *f, const char *name) {
    ct_shape s;
    int i = ct_st_find(f, name);
    if (i < 0 || ct_st_info(f, i, NULL, &s) != CT_OK) return 0;
    size_t bytes = (size_t)ct_shape_numel(s) * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes);
    int same = a && b && ct_st_read(f, i, CT_F32, a, bytes) == CT_OK &&
               ct_program_get_param(p, name, b, bytes) == CT_OK && memcmp(a, b, bytes) == 0;
    free(a);
    free(b);
    return same;
}

int main(int argc, char **argv) {
    char dir[4096];
    const char *env = getenv("CTRAIN_DATA_DIR");
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "");
    if (argc <= 1) snprintf(dir, sizeof dir, "%s/mnist", env ? env : ".");
    const char *weights = argc > 2 ? argv[2] : "pretrained.safetensors";

    ct_dataset *train = NULL, *test = NULL;
    float mean = 0.1307f, std = 0.3081f; /* MNIST's, as everyone normalises it */
    if (ct_dataset_load_mnist(dir, true, &train) != CT_OK || ct_dataset_load_mnist(dir, false, &test) != CT_OK)
        return fail("loading MNIST");
    if (ct_dataset_normalize(train, 1, &mean, &std) != CT_OK || ct_dataset_normalize(test, 1, &mean, &std) != CT_OK)
        return fail("normalising");
    ct_dataset *first = NULL, *second = NULL;
    if (ct_dataset_split(train, 0.5, 42, &first, &second) != CT_OK) return fail("splitting");
    if (argc <= 2 && pretrain(first, weights)) return 1;

    /* The fine-tuning model: fc1 and fc2 from the file, a new head. */
    ct_train_opts o = {.model = mlp, .model_user = "head", .seed = 2, .batch_size = 64, .epochs = 1,
                       .optim = {.kind = CT_OPTIM_ADAM, .lr = 5e-3}, .quiet = true};
    ct_trainer *t = ct_trainer_new(&o, second, NULL, test);
    if (!t) return fail("trainer");
    int loaded = 0;
    if (ct_trainer_init_from(t, weights, NULL, &loaded) != CT_OK) return fail("loading the weights");
    printf("loaded %d tensors from %s\n", loaded, weights);
    if (loaded != 4) { /* fc1.weight, fc1.bias, fc2.weight, fc2.bias */
        fprintf(stderr, "03_finetune: expected the 4 tensors of fc1 and fc2 in %s\n", weights);
        return 1;
    }
    ct_optimizer *opt = ct_trainer_optimizer(t);
    if (ct_optimizer_freeze(opt, "fc1.", true) != CT_OK || ct_optimizer_freeze(opt, "fc2.", true) != CT_OK)
        return fail("freezing");

    ct_program *p = ct_trainer_program(t);
    float head_before[10];
    ct_eval_result before;
    ct_train_result r;
    if (ct_program_get_param(p, "head.bias", head_before, sizeof head_before) != CT_OK ||
        ct_trainer_evaluate(t, test, &before) != CT_OK)
        return fail("evaluating");
    printf("before fine-tuning: test accuracy %.2f%%\n", 100 * before.accuracy);
    if (ct_trainer_run(t, &r) != CT_OK) return fail("fine-tuning");
    printf("after one epoch on the head: test accuracy %.2f%%\n", 100 * r.test_acc);

    /* The frozen layers must be exactly the file's; the head must have moved. */
    ct_st_file *f = ct_st_open(weights);
    if (!f) return fail("reopening the weights");
    const char *frozen[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    int unchanged = 1;
    for (int i = 0; i < 4; i++) {
        int same = same_as_file(p, f, frozen[i]);
        printf("  %-10s %s\n", frozen[i], same ? "unchanged (bit for bit)" : "CHANGED");
        unchanged &= same;
    }
    ct_st_close(f);
    float head_after[10];
    if (ct_program_get_param(p, "head.bias", head_after, sizeof head_after) != CT_OK) return fail("reading the head");
    int head_moved = memcmp(head_before, head_after, sizeof head_after) != 0;
    printf("  head       %s\n", head_moved ? "trained" : "NOT CHANGED");

    ct_trainer_free(t);
    ct_dataset_free(second);
    ct_dataset_free(first);
    ct_dataset_free(test);
    ct_dataset_free(train);
    int ok = unchanged && head_moved && r.test_acc >= 0.94;
    printf("%s: frozen layers unchanged, test accuracy %.2f%% %s 94%%\n", ok ? "ok" : "FAILED",
           100 * r.test_acc, r.test_acc >= 0.94 ? ">=" : "<");
    return ok ? 0 : 1;
}
