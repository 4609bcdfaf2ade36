/* `ctrain demo`: the smallest run that shows the engine learning.
 *
 * XOR is the classic problem a linear model cannot solve, so getting all four
 * points right shows that the whole chain works: graph building, autodiff
 * through a nonlinearity, compilation, the flat parameter and gradient
 * buffers, and an optimizer step. The model is a 2-8-1 MLP (tanh hidden
 * layer, binary cross-entropy on the logits) trained by plain full-batch SGD
 * written out here, on the flat buffers, to show how little an optimizer
 * needs from the engine.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "cli.h"

#define DEMO_HIDDEN 8

/* With these, seeds 0 to 499 all learn XOR (final loss near 0.002), so the
 * demo and its test do not hang on a lucky seed; 300 steps already do for
 * the default seed. */
#define DEMO_DEFAULT_STEPS 2000L
#define DEMO_DEFAULT_LR 0.5
#define DEMO_DEFAULT_SEED 1ULL
#define DEMO_MAX_STEPS 100000000L

static const float xor_x[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
static const float xor_y[4][1] = {{0}, {1}, {1}, {0}};

void cmd_demo_usage(FILE *out) {
    fprintf(out,
            "usage: ctrain demo [--steps N] [--lr X] [--seed S] [--device D] [--quiet]\n"
            "\n"
            "Trains a 2-8-1 MLP (tanh hidden layer, binary cross-entropy) on the four\n"
            "XOR points with full-batch SGD, printing the loss as it goes, then the\n"
            "four predictions. Exits 0 if all four are right, 1 if not.\n"
            "\n"
            "options:\n"
            "  --steps N    SGD steps (default %ld)\n"
            "  --lr X       learning rate (default %g)\n"
            "  --seed S     seed of the initial weights (default %llu)\n"
            "  --device D   cpu, cuda or cuda:N (default cpu)\n"
            "  --quiet      print only the final line\n",
            DEMO_DEFAULT_STEPS, DEMO_DEFAULT_LR, DEMO_DEFAULT_SEED);
}

typedef struct demo_opts {
    long steps;
    double lr;
    uint64_t seed;
    ct_device device;
    bool quiet;
} demo_opts;

/* Returns CLI_EXIT_OK to go on, or the exit code to stop with (help printed,
 * or a usage error already reported); *done tells which. */
static int parse_args(int argc, char **argv, demo_opts *o, bool *done) {
    *done = false;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (cli_is_help(argv[i])) {
            cmd_demo_usage(stdout);
            *done = true;
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            o->quiet = true;
        } else if ((m = cli_option("demo", argc, argv, &i, "--steps", &v)) != 0) {
            if (m < 0 || !cli_parse_long("demo", "--steps", v, 1, DEMO_MAX_STEPS, &o->steps))
                goto usage;
        } else if ((m = cli_option("demo", argc, argv, &i, "--lr", &v)) != 0) {
            if (m < 0 || !cli_parse_positive_double("demo", "--lr", v, &o->lr)) goto usage;
        } else if ((m = cli_option("demo", argc, argv, &i, "--seed", &v)) != 0) {
            if (m < 0 || !cli_parse_u64("demo", "--seed", v, &o->seed)) goto usage;
        } else if ((m = cli_option("demo", argc, argv, &i, "--device", &v)) != 0) {
            if (m < 0) goto usage;
            if (ct_device_parse(v, &o->device) != CT_OK) {
                /* A device name that cannot parse is a typo on the command
                 * line; a device that parses but is absent is a runtime
                 * failure, reported later by ct_device_check. */
                const char *why = ct_last_error();
                cli_usage_error("demo", "bad --device '%s': %s", v,
                                why && why[0] ? why : "want cpu, cuda or cuda:N");
                goto usage;
            }
        } else if (argv[i][0] == '-') {
            cli_usage_error("demo", "unknown option '%s'", argv[i]);
            goto usage;
        } else {
            cli_usage_error("demo", "unexpected argument '%s'", argv[i]);
            goto usage;
        }
    }
    return CLI_EXIT_OK;
usage:
    *done = true;
    return CLI_EXIT_USAGE;
}

/* A linear layer y = x W^T + b with W stored [out, in], as PyTorch does, so
 * that weights move between the two without transposing. */
static ct_node linear(ct_graph *g, ct_node x, const char *name, int64_t in, int64_t out) {
    char wname[64], bname[64];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    ct_node w = ct_param(g, wname, CT_F32, (ct_shape){2, {out, in}}, ct_init_xavier_uniform(1.0));
    ct_node b = ct_param(g, bname, CT_F32, (ct_shape){1, {out}}, ct_init_zeros());
    return ct_add(g, ct_matmul(g, x, w, false, true), b);
}

/* Builds the model and its backward pass; *loss and *logits are the two
 * nodes the program keeps readable. */
static ct_status build(ct_graph *g, uint64_t seed, ct_node *loss, ct_node *logits) {
    ct_graph_set_seed(g, seed);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {4, 2}});
    ct_node y = ct_input(g, "y", CT_F32, (ct_shape){2, {4, 1}});
    ct_node h = ct_tanh(g, linear(g, x, "fc1", 2, DEMO_HIDDEN));
    *logits = linear(g, h, "fc2", DEMO_HIDDEN, 1);
    *loss = ct_bce_with_logits(g, *logits, y);
    /* Builders pass CT_NO_NODE along without a new message, so one check of
     * the graph covers every call above. */
    if (ct_graph_status(g) != CT_OK) return ct_graph_status(g);
    return ct_graph_backward(g, *loss);
}

/* One SGD step over the flat buffers: every parameter and its gradient sit
 * at the same offset, so the update is a single loop whatever the model.
 * On the CPU the buffers are host memory and are updated in place; on a GPU
 * they are device memory, so the step goes through host copies (slow, but
 * the demo has only 33 parameters). */
static ct_status sgd_step(ct_program *p, float lr, float *host_p, float *host_g, size_t n) {
    if (ct_program_device(p).kind == CT_DEVICE_CPU) {
        float *params = ct_program_params(p);
        const float *grads = ct_program_grads(p);
        for (size_t i = 0; i < n; i++) params[i] -= lr * grads[i];
        return CT_OK;
    }
    ct_status s;
    if ((s = ct_program_read_params(p, host_p, n * sizeof *host_p)) != CT_OK) return s;
    if ((s = ct_program_read_grads(p, host_g, n * sizeof *host_g)) != CT_OK) return s;
    for (size_t i = 0; i < n; i++) host_p[i] -= lr * host_g[i];
    return ct_program_write_params(p, host_p, n * sizeof *host_p);
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* Four decimals suit the losses of a run that learns; a diverging one
 * (too large an --lr) would print a wall of digits. */
static void print_loss(const char *label, float l) {
    printf(fabsf(l) < 1e4f ? "%s%.4f\n" : "%s%.4g\n", label, (double)l);
}

/* The training loop: o->steps SGD steps, a progress line every tenth of
 * them. false, with the reason printed, when a step fails or the loss
 * stops being finite. */
static bool train_steps(ct_program *p, const demo_opts *o, ct_node loss, float *host_p, float *host_g, size_t n) {
    char what[64];
    /* Ten progress lines whatever --steps is: every 200 with the defaults. */
    long every = o->steps >= 10 ? o->steps / 10 : 1;
    float l = NAN;
    for (long step = 1; step <= o->steps; step++) {
        /* Fed every step as a real training loop would feed a new batch. */
        if (ct_program_set_input(p, "x", xor_x, sizeof xor_x) != CT_OK ||
            ct_program_set_input(p, "y", xor_y, sizeof xor_y) != CT_OK)
            return cli_fail("demo: set input"), false;
        if (ct_program_run(p) != CT_OK) {
            snprintf(what, sizeof what, "demo: step %ld", step);
            return cli_fail(what), false;
        }
        if (ct_program_read(p, loss, &l, sizeof l) != CT_OK) return cli_fail("demo: read loss"), false;
        if (!isfinite(l)) {
            fprintf(stderr, "ctrain: demo: the loss became %g at step %ld (try a smaller --lr)\n",
                    (double)l, step);
            return false;
        }
        if (!o->quiet && (step == 1 || step % every == 0)) {
            char label[48];
            snprintf(label, sizeof label, "step %4ld  loss ", step);
            print_loss(label, l);
        }
        if (sgd_step(p, (float)o->lr, host_p, host_g, n) != CT_OK) return cli_fail("demo: sgd step"), false;
    }
    return true;
}

/* The model as it ends, on the four inputs: the exit code says whether it
 * learned XOR. */
static int final_eval(ct_program *p, const demo_opts *o, ct_node loss, ct_node logits) {
    /* The loop's last logits predate its last update; one more forward pass
     * shows the model as it ends. */
    float z[4], l = NAN;
    ct_program_set_training(p, false);
    if (ct_program_run(p) != CT_OK || ct_program_read(p, logits, z, sizeof z) != CT_OK ||
        ct_program_read(p, loss, &l, sizeof l) != CT_OK) {
        cli_fail("demo: final evaluation");
        return CLI_EXIT_FAIL;
    }
    int correct = 0;
    if (!o->quiet) {
        print_loss("\nfinal loss ", l);
        printf("  x1 x2  target  prediction\n");
    }
    for (int i = 0; i < 4; i++) {
        double pred = sigmoid((double)z[i]);
        /* NaN compares false both ways, so a diverged model counts as wrong. */
        bool ok = xor_y[i][0] > 0.5f ? pred > 0.5 : pred < 0.5;
        correct += ok;
        if (!o->quiet)
            printf("  %2.0f %2.0f  %6.0f  %10.4f%s\n", (double)xor_x[i][0], (double)xor_x[i][1],
                   (double)xor_y[i][0], pred, ok ? "" : "  wrong");
    }
    printf("xor learned: %d/4 correct\n", correct);
    return correct == 4 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int train(ct_graph *g, const demo_opts *o, ct_node loss, ct_node logits) {
    char dev[32] = "?";
    ct_device_str(o->device, dev, sizeof dev);
    char what[64];

    ct_node outputs[2] = {loss, logits};
    ct_compile_opts copts = {.device = o->device, .outputs = outputs, .n_outputs = 2,
                             .grads = true};
    ct_program *p = ct_compile(g, &copts);
    if (!p) {
        snprintf(what, sizeof what, "demo: compile for %s", dev);
        return cli_fail(what);
    }

    int rc = CLI_EXIT_FAIL;
    float *host_p = NULL, *host_g = NULL;
    size_t n = ct_program_param_numel(p);
    if (ct_program_param_dtype(p) != CT_F32 || n == 0 ||
        (ct_program_device(p).kind == CT_DEVICE_CPU &&
         (!ct_program_params(p) || !ct_program_grads(p)))) {
        fprintf(stderr, "ctrain: demo: the program has no usable f32 parameter buffers\n");
        goto out;
    }
    host_p = malloc(n * sizeof *host_p);
    host_g = malloc(n * sizeof *host_g);
    if (!host_p || !host_g) {
        fprintf(stderr, "ctrain: demo: out of memory\n");
        goto out;
    }

    if (!o->quiet)
        printf("xor: 2-%d-1 MLP, tanh, bce_with_logits; sgd lr %g, %ld step%s, seed %llu, on %s\n",
               DEMO_HIDDEN, o->lr, o->steps, o->steps == 1 ? "" : "s",
               (unsigned long long)o->seed, dev);
    if (train_steps(p, o, loss, host_p, host_g, n)) rc = final_eval(p, o, loss, logits);
out:
    free(host_p);
    free(host_g);
    ct_program_free(p);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    demo_opts o = {.steps = DEMO_DEFAULT_STEPS, .lr = DEMO_DEFAULT_LR, .seed = DEMO_DEFAULT_SEED,
                   .device = {CT_DEVICE_CPU, 0}, .quiet = false};
    bool done;
    int rc = parse_args(argc, argv, &o, &done);
    if (done) return rc;

    /* The library's reason already names the device ("cannot use cuda:1:
     * ..."), or says that no device of the kind can exist in this build. */
    if (ct_device_check(o.device) != CT_OK) return cli_fail("demo");

    ct_graph *g = ct_graph_new();
    if (!g) {
        fprintf(stderr, "ctrain: demo: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    ct_node loss = CT_NO_NODE, logits = CT_NO_NODE;
    if (build(g, o.seed, &loss, &logits) != CT_OK) {
        /* The graph keeps the first building error; ct_graph_backward's own
         * failure is only in ct_last_error. */
        const char *why = ct_graph_error(g);
        if (!why || !why[0]) why = ct_last_error();
        fprintf(stderr, "ctrain: demo: build the model: %s\n", why && why[0] ? why : "failed");
        ct_graph_free(g);
        return CLI_EXIT_FAIL;
    }
    rc = train(g, &o, loss, logits);
    ct_graph_free(g);
    return rc;
}
