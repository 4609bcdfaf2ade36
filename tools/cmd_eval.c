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
#include "cli_options.h"
#include "eval_checks.h"
#include "lm_cli.h"
#include "quant_cli.h"
#include "train_opts.h"

#define CMD "eval"
#define EVAL_DEFAULT_BATCH 1000

typedef struct eval_cfg {
    const char *checkpoint;
    data_cfg data;
    bool data_set;
    bool train_split; /* --split: 0 test, 1 train */
    int64_t batch;
    bool batch_set;
    ct_device device;
    const char *hidden, *activation;
    bool batchnorm;
    int64_t block_size, eval_batches; /* GPT checkpoints */
    const char *compare;              /* int8 models: the F32 checkpoint to compare with */
} eval_cfg;

#define T eval_cfg
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)

static const cli_section sections[] = {{"options", "options"}};
/* In the order of train_split's values. */
static const cli_choices splits = {.names = (const char *const[]){"test", "train", NULL}};

static const cli_row options[] = {
    {ROW("checkpoint", CLI_STRING, checkpoint), .meta = "FILE", .help = "the weights to evaluate (required)"},
    {ROW("data", CLI_STRING, data.kind), .choices = &train_data_choices, CLI_MARK(T, data_set),
     .help = "dataset (default: the checkpoint's, else mnist)"},
    {ROW("data-dir", CLI_STRING, data.dir), .meta = "DIR",
     .help = "MNIST or CIFAR-10 files (default: searched as 'ctrain train' does)"},
    {ROW("split", CLI_ENUM, train_split), .choices = &splits,
     .help = "which set (default test; for csv: --test-file or --train-file)"},
    {ROW("test-file", CLI_STRING, data.test_file), .meta = "FILE", .help = "CSV data to evaluate"},
    {ROW("train-file", CLI_STRING, data.train_file), .meta = "FILE",
     .help = "CSV data for --split train; text, tokens: the file trained on (its last 10% validates)"},
    {ROW("val-file", CLI_STRING, data.val_file), .meta = "FILE", .help = "text, tokens: the validation file"},
    {ROW("block-size", CLI_INT, block_size), .min = 1, .max = 1 << 30, .def = "the model's",
     .help = "GPT checkpoints: tokens per window, at most the model's"},
    {ROW("eval-batches", CLI_INT, eval_batches), .min = 1, .max = 1 << 30, .def = "50",
     .help = "GPT checkpoints: the mean loss per token over N fixed batches of windows"},
    {ROW("label-column", CLI_INT, data.label_column), .min = -1000000, .max = 1000000,
     CLI_MARK(T, data.label_column_set), .help = "CSV field holding the label (default: the last)"},
    {ROW("num-classes", CLI_INT, data.num_classes), .min = 1, .max = (1 << 24),
     .def = "the checkpoint's model's, else the largest label + 1",
     .help = "csv: the number of classes; every label must be below it"},
    {ROW("limit", CLI_INT, data.test_limit), .min = 1, .max = (double)(1LL << 40), .help = "only the first N samples"},
    {ROW("batch-size", CLI_INT, batch), .min = 1, .max = 1 << 30, CLI_MARK(T, batch_set),
     .def = CLI_STR(EVAL_DEFAULT_BATCH) "; GPT: the training batch", .help = "evaluation batch (GPT: windows)"},
    {ROW("device", CLI_DEVICE, device), .def = "auto: a GPU when there is one", .help = "where to evaluate"},
    /* Checked against the model record in pick_model(). */
    {ROW("hidden", CLI_STRING, hidden), .meta = "N,N,...",
     .help = "the model of a bare weights file: hidden layer sizes"},
    {ROW("activation", CLI_STRING, activation), .meta = "NAME", .help = "... its activation"},
    {ROW("batchnorm", CLI_FLAG, batchnorm), .help = "... with batch norm"},
    {ROW("compare", CLI_STRING, compare), .meta = "FILE", .def = "the checkpoint it was made from",
     .help = "an int8 model (ctrain quantize): the F32 checkpoint evaluated beside it"},
};

const cli_table eval_table = {
    .cmd = CMD,
    .usage = "usage: ctrain eval --checkpoint FILE [options]\n",
    .about = "Evaluates the weights in FILE - a checkpoint written by 'ctrain train', or a\n"
             "safetensors weights file - on a dataset and prints the accuracy and the mean\n"
             "cross-entropy. A checkpoint knows its model, dataset and normalisation; for a\n"
             "bare weights file give the model options (default: train's defaults). A GPT\n"
             "checkpoint (--data text or tokens) reports the validation loss per token\n"
             "(docs/language_models.md).\n",
    .footer = "Prints one line: accuracy, correct/total, mean loss and the data used. An int8\n"
              "model (ctrain quantize) prints its accuracy and samples/s, then the F32 model's\n"
              "(--compare), and the difference.\n"
              "Exits 0 on success, 1 when the file or the data cannot be used, 2 for a bad\n"
              "command line.\n",
    .sections = sections,
    .n_sections = (int)(sizeof sections / sizeof sections[0]),
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_eval_usage(FILE *out) {
    cli_print_help(out, &eval_table);
}

static int parse_args(int argc, char **argv, eval_cfg *c, bool *done) {
    *done = true;
    if (cli_help_asked(argc, argv)) {
        cmd_eval_usage(stdout);
        return CLI_EXIT_OK;
    }
    cli_parser p;
    cli_parser_init(&p, &eval_table, c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    if (rc != CLI_EXIT_OK) return rc;
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

/* The normalisation: the checkpoint's record where it is for the same
 * dataset, else the constants train uses for images (CSV features as they
 * are). Arrays malloc'ed; false after reporting. */
static bool pick_norm(const eval_cfg *c, const ct_st_file *f, float **mean, float **std, int64_t *n_norm) {
    const char *rec_data = ct_st_meta(f, "cli.data"), *rec_norm = ct_st_meta(f, "cli.normalize");
    const char *kind = c->data.kind;
    if (rec_norm && rec_data && strcmp(rec_data, kind) == 0) {
        if (!norm_from_json(rec_norm, mean, std, n_norm)) {
            fprintf(stderr, "ctrain: %s: '%s': its normalisation record (metadata cli.normalize) is unusable\n",
                    CMD, c->checkpoint);
            return false;
        }
        return eval_norm_ok(CMD, c->checkpoint, *mean, *std, *n_norm);
    }
    static const float cm[3] = CT_CIFAR10_MEAN, cs[3] = CT_CIFAR10_STD;
    bool cifar = strcmp(kind, "cifar10") == 0;
    *n_norm = cifar ? 3 : 1;
    *mean = malloc((size_t)*n_norm * sizeof **mean);
    *std = malloc((size_t)*n_norm * sizeof **std);
    if (!*mean || !*std) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        return false;
    }
    if (cifar) {
        memcpy(*mean, cm, sizeof cm);
        memcpy(*std, cs, sizeof cs);
    } else {
        **mean = strcmp(kind, "mnist") == 0 ? 0.1307f : strcmp(kind, "fashion-mnist") == 0 ? 0.2860f : 0;
        **std = strcmp(kind, "mnist") == 0 ? 0.3081f : strcmp(kind, "fashion-mnist") == 0 ? 0.3530f : 1;
    }
    return true;
}

/* The data flags the dataset takes, and the number of classes: the
 * model's, which --num-classes may only repeat, and which the CSV labels
 * are then checked against as they are read. */
static int pick_classes(eval_cfg *c, model_cfg *m) {
    int rc = data_check_flags(CMD, &c->data);
    if (rc != CLI_EXIT_OK) return rc;
    if (c->data.num_classes && m->classes && c->data.num_classes != m->classes)
        return cli_usage_error(CMD, "--num-classes %d: the model of '%s' has %lld classes", (int)c->data.num_classes,
                               c->checkpoint, (long long)m->classes);
    if (c->data.num_classes) m->classes = c->data.num_classes;
    if (m->classes > (1 << 24)) {
        fprintf(stderr, "ctrain: %s: '%s': its model record claims %lld classes\n", CMD, c->checkpoint,
                (long long)m->classes);
        return CLI_EXIT_FAIL;
    }
    c->data.num_classes = (int32_t)m->classes;
    return CLI_EXIT_OK;
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
    if (lm_is_checkpoint(f)) {
        eval_lm_args a = {.checkpoint = c.checkpoint,
                          .data = c.data,
                          .train_split = c.train_split,
                          .batch = c.batch_set ? c.batch : 0,
                          .block_size = c.block_size,
                          .eval_batches = c.eval_batches,
                          .device = c.device};
        if (!c.data_set) a.data.kind = NULL;
        rc = eval_lm(&a, f);
        ct_st_close(f);
        return rc;
    }
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
    if (cli_choice(&train_data_choices, c.data.kind) < 0) {
        fprintf(stderr, "ctrain: %s: '%s' records the dataset '%.40s', which this tool does not know\n", CMD,
                c.checkpoint, c.data.kind);
        goto out;
    }
    if ((rc = pick_classes(&c, &m)) != CLI_EXIT_OK) goto out;
    rc = CLI_EXIT_FAIL;
    if (!pick_norm(&c, f, &mean, &std, &n_norm) || !eval_weights_finite(CMD, c.checkpoint, f)) goto out;
    char where[1024];
    if (!data_load_eval(CMD, &c.data, c.train_split, mean, std, n_norm, &ds, where, sizeof where)) goto out;
    if (m.classes == 0) m.classes = ct_dataset_num_classes(ds);
    if (!eval_fit_classes(CMD, ds, where, m.classes)) goto out;
    if (quant_is_file(f)) {
        eval_int8_args qa = {.path = c.checkpoint, .compare = c.compare, .data_kind = c.data.kind, .where = where,
                             .f = f, .m = &m, .ds = ds, .batch = c.batch, .device = c.device,
                             .train_split = c.train_split};
        rc = eval_int8(&qa);
        goto out;
    }
    ct_eval_opts eo = {.model = model_build, .model_user = &m, .device = c.device, .batch_size = c.batch};
    ct_eval_result r;
    if (ct_evaluate_file(&eo, c.checkpoint, ds, &r) != CT_OK) {
        cli_fail(CMD);
        goto out;
    }
    /* The weights and the data were finite: what is left is the model
     * overflowing on them, and a NaN accuracy is no result. */
    if (!isfinite(r.loss)) {
        fprintf(stderr, "ctrain: %s: the loss is not finite (%s) with the weights of '%s' on %s\n", CMD,
                isnan(r.loss) ? "NaN" : "inf", c.checkpoint, where);
        goto out;
    }
    printf("accuracy %.2f%% (%lld/%lld)  loss %.4f  on %s %s set (%s)\n", 100 * r.accuracy, (long long)r.correct,
           (long long)r.count, r.loss, c.data.kind, c.train_split ? "training" : "test", where);
    compress_print_sparsity(f); /* pruned models: docs/compression.md */
    rc = CLI_EXIT_OK;
out:
    ct_dataset_free(ds);
    free(mean);
    free(std);
    ct_st_close(f);
    return rc;
}
