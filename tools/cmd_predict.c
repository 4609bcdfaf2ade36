/* `ctrain predict`: class probabilities of new samples under a checkpoint.
 *
 * A checkpoint of `ctrain train` records its model ("cli.model"), its
 * dataset ("cli.data") and the normalisation it trained with
 * ("cli.normalize"), so the input is taken as the training data was read
 * (CSV features as they are, IDX pixels / 255) and normalised the same way
 * before the model runs (ct_predict_file). The output is a CSV file, one
 * row per sample, written to a temporary file and renamed into place, so a
 * failure never leaves a half-written or clobbered --out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"
#include "eval_checks.h"
#include "lm_cli.h"
#include "predict_cli.h"
#include "train_opts.h"

#define CMD "predict"

#define T predict_cfg
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)
static const cli_section sections[] = {{"options", "options"}};
static const cli_choices formats = {.names = (const char *const[]){"csv", "idx", NULL}};

static const cli_row options[] = {
    {ROW("checkpoint", CLI_STRING, checkpoint), .meta = "FILE", .help = "a checkpoint of 'ctrain train' (required)"},
    {ROW("input", CLI_STRING, input), .meta = "FILE",
     .help = "the samples (required): CSV rows of the model's input width (a header line is skipped), or an IDX "
             "image file (MNIST's format, gzipped or not)"},
    {ROW("format", CLI_STRING, format), .choices = &formats, .def = "csv for a name ending .csv or .csv.gz, else idx",
     .help = "how --input is written"},
    {ROW("out", CLI_STRING, out), .meta = "FILE", .help = "the predictions, CSV (required; replaced only on success)"},
    {ROW("top-k", CLI_INT, top_k), .min = 1, .max = 1 << 24, .meta = "K",
     .def = "every class's probability", .help = "only the K most probable classes, with their probabilities"},
    {ROW("prompt", CLI_STRING, prompt), .meta = "TEXT",
     .help = "language models (gpt, lstm, gru, rnn): the text whose next token is predicted (instead of --input)"},
    {ROW("batch-size", CLI_INT, batch), .min = 1, .max = 1 << 30, .def = "256", .help = "samples per batch"},
    {ROW("device", CLI_DEVICE, device), .def = "auto: a GPU when there is one", .help = "where to run the model"},
};

const cli_table predict_table = {
    .cmd = CMD,
    .usage = "usage: ctrain predict --checkpoint FILE --input FILE --out PRED.csv [options]\n"
             "       ctrain predict --checkpoint LM.safetensors --prompt TEXT --out PRED.csv [--top-k K]\n",
    .about = "Writes the predicted class and the class probabilities (softmax of the\n"
             "logits) of every sample of --input under the model of a checkpoint, whose\n"
             "record says how to rebuild the model and normalise the input. CSV columns:\n"
             "sample,class,p0,p1,... or, with --top-k K, sample,class,top1,p_top1,...\n"
             "For a language model (gpt, lstm, gru, rnn): the next token's K most likely values after --prompt.\n",
    .footer = "Exits 0 on success, 1 when a file cannot be used (an input of another width\n"
              "than the model's, an unreadable checkpoint, an --out that cannot be written),\n"
              "2 for a bad command line.\n",
    .sections = sections,
    .n_sections = 1,
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_predict_usage(FILE *out) {
    cli_print_help(out, &predict_table);
}

static int parse_args(int argc, char **argv, predict_cfg *c, bool *done) {
    *done = true;
    if (cli_help_asked(argc, argv)) {
        cmd_predict_usage(stdout);
        return CLI_EXIT_OK;
    }
    cli_parser p;
    cli_parser_init(&p, &predict_table, c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    if (rc != CLI_EXIT_OK) return rc;
    if (!c->checkpoint) return cli_usage_error(CMD, "--checkpoint FILE is required");
    if (!c->input && !c->prompt) return cli_usage_error(CMD, "--input FILE is required");
    if (c->input && c->prompt) return cli_usage_error(CMD, "--input and --prompt exclude each other");
    if (!c->out) return cli_usage_error(CMD, "--out FILE is required");
    if (!c->format && c->input) {
        size_t n = strlen(c->input);
        bool csv = (n >= 4 && strcmp(c->input + n - 4, ".csv") == 0) ||
                   (n >= 7 && strcmp(c->input + n - 7, ".csv.gz") == 0);
        c->format = csv ? "csv" : "idx";
    }
    *done = false;
    return CLI_EXIT_OK;
}

/* The sample shape the model trained on: images as the dataset has them,
 * CSV rows as wide as the normalisation record. */
static ct_shape trained_shape(const char *kind, int64_t n_norm) {
    if (strcmp(kind, "cifar10") == 0) return (ct_shape){3, {3, 32, 32}};
    if (strcmp(kind, "csv") == 0) return (ct_shape){1, {n_norm}};
    return (ct_shape){3, {1, 28, 28}};
}

/* The input, checked against the model's width, in the trained shape and
 * normalised. NULL after reporting. */
static ct_dataset *load_input(const predict_cfg *c, const predict_model *pm) {
    ct_dataset *ds = NULL;
    if (strcmp(c->format, "csv") == 0) {
        if (!predict_read_csv(c->input, &ds)) return NULL;
    } else if (ct_dataset_load_idx(c->input, NULL, &ds) != CT_OK) {
        fprintf(stderr, "ctrain: %s: --input: %s\n", CMD, ct_last_error());
        return NULL;
    }
    ct_shape want = trained_shape(pm->kind, pm->n_norm);
    int64_t numel = 1;
    for (int i = 0; i < want.ndim; i++) numel *= want.dim[i];
    if (ct_dataset_sample_numel(ds) != numel) {
        char s[96];
        fprintf(stderr, "ctrain: %s: --input '%s': samples of %lld values, the model of '%s' takes %lld (%s %s)\n", CMD,
                c->input, (long long)ct_dataset_sample_numel(ds), c->checkpoint, (long long)numel, pm->kind,
                ct_shape_str(want, s, sizeof s));
        ct_dataset_free(ds);
        return NULL;
    }
    if (ct_dataset_reshape(ds, want) != CT_OK || ct_dataset_normalize(ds, pm->n_norm, pm->mean, pm->std) != CT_OK) {
        cli_fail(CMD);
        ct_dataset_free(ds);
        return NULL;
    }
    return ds;
}

/* --out's temporary neighbour, made now so that an --out that cannot be
 * written is reported before any work. */
static FILE *open_out(const char *out, char *tmp, size_t cap) {
    snprintf(tmp, cap, "%s.tmp-%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) fprintf(stderr, "ctrain: %s: --out '%s': %s\n", CMD, out, strerror(errno));
    return f;
}

bool predict_finish_out(FILE *f, const char *tmp, const char *out) {
    bool ok = !ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = false;
    if (ok && rename(tmp, out) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "ctrain: %s: --out '%s': %s\n", CMD, out, strerror(errno));
        unlink(tmp);
    }
    return ok;
}

/* The rows of a classifier's predictions into f; *count gets how many. */
static int classify(const predict_cfg *c, const predict_model *pm, FILE *f, int64_t *count) {
    if (c->top_k > pm->m.classes)
        return cli_usage_error(CMD, "--top-k %lld: the model of '%s' has %lld classes", (long long)c->top_k,
                               c->checkpoint, (long long)pm->m.classes);
    ct_dataset *ds = load_input(c, pm);
    if (!ds) return CLI_EXIT_FAIL;
    model_cfg m = pm->m;
    ct_eval_opts eo = {.model = model_build, .model_user = &m, .device = c->device, .batch_size = c->batch};
    ct_prediction p;
    ct_status st = ct_predict_file(&eo, c->checkpoint, ds, &p);
    ct_dataset_free(ds);
    if (st != CT_OK) return cli_fail(CMD);
    predict_write_rows(f, &p, c->top_k);
    *count = p.count;
    ct_prediction_free(&p);
    return CLI_EXIT_OK;
}

int cmd_predict(int argc, char **argv) {
    predict_cfg c = {.batch = 256};
    ct_device_parse("auto", &c.device);
    bool done;
    int rc = parse_args(argc, argv, &c, &done);
    if (done) return rc;
    if (ct_device_check(c.device) != CT_OK) return cli_fail(CMD);
    ct_st_file *f = ct_st_open(c.checkpoint);
    if (!f) return cli_fail(CMD);
    char tmp[4200];
    FILE *out = NULL;
    predict_model pm = {0};
    rc = CLI_EXIT_FAIL;
    int64_t count = 0;
    if (lm_is_checkpoint(f)) {
        if (!c.prompt)
            rc = cli_usage_error(CMD, "'%s' holds a language model: give --prompt TEXT", c.checkpoint);
        else if ((out = open_out(c.out, tmp, sizeof tmp)))
            rc = predict_next_token(&c, f, out);
    } else if (c.prompt) {
        rc = cli_usage_error(CMD, "--prompt is for language models; '%s' holds a classifier", c.checkpoint);
    } else if (predict_model_read(c.checkpoint, f, &pm) && (out = open_out(c.out, tmp, sizeof tmp))) {
        rc = classify(&c, &pm, out, &count);
    }
    if (rc == CLI_EXIT_OK) {
        rc = predict_finish_out(out, tmp, c.out) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        if (rc == CLI_EXIT_OK && count) printf("%lld predictions -> %s\n", (long long)count, c.out);
    } else if (out) {
        fclose(out);
        unlink(tmp);
    }
    free(pm.mean);
    free(pm.std);
    ct_st_close(f);
    return rc;
}
