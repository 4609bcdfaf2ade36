/* `ctrain eval`: the accuracy and loss of saved weights on a dataset.
 *
 * A checkpoint of `ctrain train` records the model it holds and the data
 * normalisation it was trained with (metadata "cli.model", "cli.data",
 * "cli.normalize"), so evaluating one needs nothing but the file. A bare
 * weights file (one from PyTorch, say) has no record: the model options
 * then say what it is, with the training command's defaults otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_opts.h"

#define CMD "eval"
#define EVAL_DEFAULT_BATCH 1000

void cmd_eval_usage(FILE *out) {
    fprintf(out,
            "usage: ctrain eval --checkpoint FILE [options]\n"
            "\n"
            "Evaluates the weights in FILE - a checkpoint written by 'ctrain train', or a\n"
            "safetensors weights file - on a dataset and prints the accuracy and the mean\n"
            "cross-entropy. A checkpoint knows its model, dataset and normalisation; for a\n"
            "bare weights file give the model options (default: train's defaults).\n"
            "\n"
            "options:\n"
            "  --checkpoint FILE       the weights to evaluate (required)\n"
            "  --data mnist|fashion-mnist|cifar10|csv   dataset (default: the checkpoint's, else mnist)\n"
            "  --data-dir DIR          MNIST or CIFAR-10 files (default: searched as 'ctrain train' does)\n"
            "  --split test|train      which set (default test; for csv: --test-file or\n"
            "                          --train-file)\n"
            "  --test-file FILE        CSV data to evaluate\n"
            "  --train-file FILE       CSV data for --split train\n"
            "  --label-column N        CSV field holding the label (default: the last)\n"
            "  --limit N               only the first N samples\n"
            "  --batch-size N          (default %d)\n"
            "  --device cpu|cuda|cuda:N|auto   (default auto: a GPU when there is one)\n"
            "  --hidden N,N,... --activation NAME --batchnorm   the model of a bare weights file\n"
            "\n"
            "Prints one line: accuracy, correct/total, mean loss and the data used.\n"
            "Exits 0 on success, 1 when the file or the data cannot be used, 2 for a bad\n"
            "command line.\n",
            EVAL_DEFAULT_BATCH);
}

typedef struct eval_cfg {
    const char *checkpoint;
    data_cfg data;
    bool data_set;
    bool train_split;
    int64_t batch;
    ct_device device;
    const char *hidden, *activation;
    bool batchnorm;
} eval_cfg;

static int parse_args(int argc, char **argv, eval_cfg *c, bool *done) {
    *done = true;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m = 0;
        const char *arg = argv[i];
        long n;
#define OPT(name) ((m = cli_option(CMD, argc, argv, &i, name, &v)) != 0)
        if (cli_is_help(arg)) {
            cmd_eval_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(arg, "--batchnorm") == 0) {
            c->batchnorm = true;
        } else if (OPT("--checkpoint")) {
            if (m < 0) return CLI_EXIT_USAGE;
            c->checkpoint = v;
        } else if (OPT("--data")) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (strcmp(v, "mnist") && strcmp(v, "fashion-mnist") && strcmp(v, "csv") && strcmp(v, "cifar10"))
                return cli_usage_error(CMD, "--data wants mnist, fashion-mnist, cifar10 or csv, not '%s'", v);
            c->data.kind = v;
            c->data_set = true;
        } else if (OPT("--data-dir")) {
            if (m < 0) return CLI_EXIT_USAGE;
            c->data.dir = v;
        } else if (OPT("--split")) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (strcmp(v, "test") && strcmp(v, "train"))
                return cli_usage_error(CMD, "--split wants test or train, not '%s'", v);
            c->train_split = strcmp(v, "train") == 0;
        } else if (OPT("--test-file")) {
            if (m < 0) return CLI_EXIT_USAGE;
            c->data.test_file = v;
        } else if (OPT("--train-file")) {
            if (m < 0) return CLI_EXIT_USAGE;
            c->data.train_file = v;
        } else if (OPT("--label-column")) {
            if (m < 0 || !cli_parse_long(CMD, "--label-column", v, -1000000, 1000000, &n)) return CLI_EXIT_USAGE;
            c->data.label_column = (int)n;
        } else if (OPT("--limit")) {
            if (m < 0 || !cli_parse_long(CMD, "--limit", v, 1, 1L << 40, &n)) return CLI_EXIT_USAGE;
            c->data.test_limit = n;
        } else if (OPT("--batch-size")) {
            if (m < 0 || !cli_parse_long(CMD, "--batch-size", v, 1, 1L << 30, &n)) return CLI_EXIT_USAGE;
            c->batch = n;
        } else if (OPT("--device")) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (ct_device_parse(v, &c->device) != CT_OK)
                return cli_usage_error(CMD, "--device wants cpu, cuda, cuda:N or auto, not '%s'", v);
        } else if (OPT("--hidden")) {
            if (m < 0) return CLI_EXIT_USAGE;
            c->hidden = v;
        } else if (OPT("--activation")) {
            if (m < 0) return CLI_EXIT_USAGE;
            c->activation = v;
        } else if (arg[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", arg);
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", arg);
        }
#undef OPT
    }
    if (!c->checkpoint) return cli_usage_error(CMD, "--checkpoint FILE is required");
    *done = false;
    return CLI_EXIT_OK;
}

/* The model: the checkpoint's record, else train's defaults; then the
 * model options on top. */
static bool pick_model(const eval_cfg *c, const ct_st_file *f, model_cfg *m) {
    const char *rec = ct_st_meta(f, "cli.model");
    if (rec) {
        const char *why;
        if (!model_from_json(rec, m, &why)) {
            fprintf(stderr, "ctrain: %s: '%s': its model record (metadata cli.model) is unusable: %s\n", CMD,
                    c->checkpoint, why);
            return false;
        }
    } else {
        train_cfg d;
        train_cfg_defaults(&d);
        *m = d.model;
    }
    if (c->hidden && !model_parse_hidden(c->hidden, m)) {
        cli_usage_error(CMD, "--hidden wants layer sizes separated by commas, e.g. 512,256, not '%s'", c->hidden);
        return false;
    }
    if (c->activation) {
        if (!ct_activation_valid(c->activation) || strlen(c->activation) >= sizeof m->activation) {
            cli_usage_error(CMD, "--activation: unknown activation '%s'", c->activation);
            return false;
        }
        snprintf(m->activation, sizeof m->activation, "%s", c->activation);
    }
    if (c->batchnorm) m->batchnorm = true;
    return true;
}

int cmd_eval(int argc, char **argv) {
    eval_cfg c = {.batch = EVAL_DEFAULT_BATCH};
    ct_device_parse("auto", &c.device); /* a GPU when there is one */
    c.data.kind = NULL;
    bool done;
    int rc = parse_args(argc, argv, &c, &done);
    if (done) return rc;
    if (ct_device_check(c.device) != CT_OK) return cli_fail(CMD);

    ct_st_file *f = ct_st_open(c.checkpoint);
    if (!f) return cli_fail(CMD);
    rc = CLI_EXIT_FAIL;
    ct_dataset *ds = NULL;
    float *mean = NULL, *std = NULL;
    int64_t n_norm = 0;
    model_cfg m;
    if (!pick_model(&c, f, &m)) {
        rc = c.hidden || c.activation ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        goto out;
    }
    const char *rec_data = ct_st_meta(f, "cli.data");
    if (!c.data_set) c.data.kind = rec_data ? rec_data : "mnist";
    if (strcmp(c.data.kind, "mnist") && strcmp(c.data.kind, "fashion-mnist") && strcmp(c.data.kind, "csv") &&
        strcmp(c.data.kind, "cifar10")) {
        fprintf(stderr, "ctrain: %s: '%s' records the dataset '%.40s', which this tool does not know\n", CMD,
                c.checkpoint, c.data.kind);
        goto out;
    }
    const char *rec_norm = ct_st_meta(f, "cli.normalize");
    /* The record's normalisation belongs to the record's dataset. */
    bool same_data = rec_data && strcmp(rec_data, c.data.kind) == 0;
    if (rec_norm && same_data) {
        if (!norm_from_json(rec_norm, &mean, &std, &n_norm)) {
            fprintf(stderr, "ctrain: %s: '%s': its normalisation record (metadata cli.normalize) is unusable\n",
                    CMD, c.checkpoint);
            goto out;
        }
    } else if (strcmp(c.data.kind, "cifar10") == 0) {
        static const float cm[3] = CT_CIFAR10_MEAN, cs[3] = CT_CIFAR10_STD;
        n_norm = 3;
        mean = malloc(sizeof cm);
        std = malloc(sizeof cs);
        if (!mean || !std) {
            fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
            goto out;
        }
        memcpy(mean, cm, sizeof cm);
        memcpy(std, cs, sizeof cs);
    } else {
        n_norm = 1;
        mean = malloc(sizeof *mean);
        std = malloc(sizeof *std);
        if (!mean || !std) {
            fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
            goto out;
        }
        /* Without a record: the constants train uses for images; CSV
         * features as they are. */
        *mean = strcmp(c.data.kind, "mnist") == 0 ? 0.1307f : strcmp(c.data.kind, "fashion-mnist") == 0 ? 0.2860f : 0;
        *std = strcmp(c.data.kind, "mnist") == 0 ? 0.3081f : strcmp(c.data.kind, "fashion-mnist") == 0 ? 0.3530f : 1;
    }
    char where[1024];
    if (!data_load_eval(CMD, &c.data, c.train_split, mean, std, n_norm, &ds, where, sizeof where)) goto out;
    if (m.classes == 0) m.classes = ct_dataset_num_classes(ds);
    ct_eval_opts eo = {.model = model_build, .model_user = &m, .device = c.device, .batch_size = c.batch};
    ct_eval_result r;
    if (ct_evaluate_file(&eo, c.checkpoint, ds, &r) != CT_OK) {
        cli_fail(CMD);
        goto out;
    }
    printf("accuracy %.2f%% (%lld/%lld)  loss %.4f  on %s %s set (%s)\n", 100 * r.accuracy, (long long)r.correct,
           (long long)r.count, r.loss, c.data.kind, c.train_split ? "training" : "test", where);
    rc = CLI_EXIT_OK;
out:
    ct_dataset_free(ds);
    free(mean);
    free(std);
    ct_st_close(f);
    return rc;
}
