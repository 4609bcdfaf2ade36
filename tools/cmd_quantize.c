/* `ctrain quantize`: post-training int8 quantization of an MLP or CNN checkpoint.
 *
 * Weights become int8 per output channel, each layer's input gets uint8
 * parameters calibrated on a few batches of data, and the result is one
 * safetensors file (layout in quant_cli.h, docs/compression.md) that
 * `ctrain eval` runs with int8 products. The F32 checkpoint is only read;
 * the output is written atomically, so a failure leaves whatever was at
 * --out as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "eval_checks.h"
#include "quant_calib.h"
#include "quant_cli.h"
#include "train_opts.h"

#define CMD "quantize"

typedef struct quantize_cfg {
    const char *checkpoint, *out;
    data_cfg data;
    bool data_set, test_split;
    int64_t calib_batches, batch;
    int calib; /* 0 minmax, 1 percentile */
    double percentile;
    ct_device device;
} quantize_cfg;

#define T quantize_cfg
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)

static const cli_section sections[] = {{"options", "options"}};
static const cli_choices calib_kinds = {.names = (const char *const[]){"minmax", "percentile", NULL}};
static const cli_choices splits = {.names = (const char *const[]){"train", "test", NULL}};

static const cli_row options[] = {
    {ROW("checkpoint", CLI_STRING, checkpoint), .meta = "FILE", .help = "the F32 MLP or CNN checkpoint (required)"},
    {ROW("out", CLI_STRING, out), .meta = "FILE", .help = "the int8 model to write (required)"},
    {ROW("data", CLI_STRING, data.kind), .choices = &train_data_choices, CLI_MARK(T, data_set),
     .help = "calibration dataset (default: the checkpoint's)"},
    {ROW("data-dir", CLI_STRING, data.dir), .meta = "DIR", .help = "MNIST or CIFAR-10 files (default: searched)"},
    {ROW("train-file", CLI_STRING, data.train_file), .meta = "FILE", .help = "csv: the calibration data"},
    {ROW("split", CLI_ENUM, test_split), .choices = &splits, .help = "which set calibrates (default train)"},
    {ROW("calib-batches", CLI_INT, calib_batches), .min = 0, .max = 1 << 30, .def = "10",
     .help = "calibrate on the first N batches (at least 1)"},
    {ROW("batch-size", CLI_INT, batch), .min = 1, .max = 1 << 20, .def = "100", .help = "calibration batch"},
    {ROW("calib", CLI_ENUM, calib), .choices = &calib_kinds, .def = "minmax",
     .help = "activation range: min/max of the values seen, or their percentiles"},
    {ROW("percentile", CLI_DOUBLE, percentile), .min = 50, .max = 100, .bounds = CLI_OPEN_MIN, .def = "99.99",
     .help = "--calib percentile: the range is the (100-P)th .. Pth percentile"},
    {ROW("device", CLI_DEVICE, device), .def = "cpu", .help = "where the F32 calibration runs"},
};

const cli_table quantize_table = {
    .cmd = CMD,
    .usage = "usage: ctrain quantize --checkpoint FILE --out FILE [options]\n",
    .about = "Quantizes the MLP or CNN checkpoint FILE to int8 (post-training): weights per\n"
             "output channel, symmetric; each layer's input per tensor, uint8, from ranges\n"
             "calibrated on the first batches of the data. 'ctrain eval --checkpoint' on the\n"
             "result runs the products in int8 and compares with the F32 model\n"
             "(docs/compression.md).\n",
    .footer = "Exits 0 on success, 1 when the checkpoint or the data cannot be used (nothing\n"
              "is written), 2 for a bad command line.\n",
    .sections = sections,
    .n_sections = (int)(sizeof sections / sizeof sections[0]),
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_quantize_usage(FILE *out) { cli_print_help(out, &quantize_table); }

static int parse_args(int argc, char **argv, quantize_cfg *c, bool *done) {
    *done = true;
    if (cli_help_asked(argc, argv)) {
        cmd_quantize_usage(stdout);
        return CLI_EXIT_OK;
    }
    cli_parser p;
    cli_parser_init(&p, &quantize_table, c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    if (rc != CLI_EXIT_OK) return rc;
    if (!c->checkpoint) return cli_usage_error(CMD, "--checkpoint FILE is required");
    if (!c->out) return cli_usage_error(CMD, "--out FILE is required");
    if (c->calib_batches < 1)
        return cli_usage_error(CMD, "--calib-batches %lld: calibration needs at least one batch",
                               (long long)c->calib_batches);
    if (c->calib == 0 && c->percentile != 99.99)
        return cli_usage_error(CMD, "--percentile is for --calib percentile");
    if (strcmp(c->checkpoint, c->out) == 0)
        return cli_usage_error(CMD, "--out is the checkpoint itself; write the int8 model to another file");
    *done = false;
    return CLI_EXIT_OK;
}

/* The model record of the checkpoint, and that it is an MLP. */
static bool read_model(const quantize_cfg *c, const ct_st_file *f, model_cfg *m) {
    if (quant_is_file(f)) {
        fprintf(stderr, "ctrain: %s: '%s' is already an int8 model (metadata quant.format)\n", CMD, c->checkpoint);
        return false;
    }
    const char *rec = ct_st_meta(f, "cli.model"), *why;
    if (!rec) {
        fprintf(stderr, "ctrain: %s: '%s' has no model record (metadata cli.model): quantize takes checkpoints of "
                "'ctrain train'\n", CMD, c->checkpoint);
        return false;
    }
    if (!model_from_json(rec, m, &why)) {
        fprintf(stderr, "ctrain: %s: '%s': its model record is unusable: %s\n", CMD, c->checkpoint, why);
        return false;
    }
    if ((why = quant_model_unsupported(m))) {
        fprintf(stderr, "ctrain: %s: '%s' cannot be quantized: %s\n", CMD, c->checkpoint, why);
        return false;
    }
    return true;
}

/* The training normalisation: the record where it is for this dataset,
 * else the constants train uses. Arrays malloc'ed. */
static bool read_norm(const quantize_cfg *c, const ct_st_file *f, float **mean, float **sd, int64_t *n) {
    const char *rec_data = ct_st_meta(f, "cli.data"), *rec = ct_st_meta(f, "cli.normalize");
    if (rec && rec_data && strcmp(rec_data, c->data.kind) == 0) {
        if (norm_from_json(rec, mean, sd, n)) return eval_norm_ok(CMD, c->checkpoint, *mean, *sd, *n);
        fprintf(stderr, "ctrain: %s: '%s': its normalisation record (metadata cli.normalize) is unusable\n", CMD,
                c->checkpoint);
        return false;
    }
    *n = 1;
    *mean = malloc(sizeof **mean);
    *sd = malloc(sizeof **sd);
    if (!*mean || !*sd) return false;
    bool fashion = strcmp(c->data.kind, "fashion-mnist") == 0, mnist = strcmp(c->data.kind, "mnist") == 0;
    **mean = mnist ? 0.1307f : fashion ? 0.2860f : 0;
    **sd = mnist ? 0.3081f : fashion ? 0.3530f : 1;
    return true;
}

int cmd_quantize(int argc, char **argv) {
    quantize_cfg c = {.calib_batches = 10, .batch = 100, .percentile = 99.99};
    ct_device_parse("cpu", &c.device);
    bool done;
    int rc = parse_args(argc, argv, &c, &done);
    if (done || rc != CLI_EXIT_OK) return rc;
    if (ct_device_check(c.device) != CT_OK) return cli_fail(CMD);
    ct_st_file *f = ct_st_open(c.checkpoint);
    if (!f) return cli_fail(CMD);
    rc = CLI_EXIT_FAIL;
    model_cfg m;
    ct_dataset *ds = NULL;
    float *mean = NULL, *sd = NULL;
    int64_t n_norm = 0;
    calib_out co = {0};
    char where[1024];
    if (!read_model(&c, f, &m)) goto out;
    const char *rec_data = ct_st_meta(f, "cli.data");
    if (!c.data_set) c.data.kind = rec_data ? rec_data : "mnist";
    if ((rc = data_check_flags(CMD, &c.data)) != CLI_EXIT_OK) goto out;
    rc = CLI_EXIT_FAIL;
    c.data.num_classes = (int32_t)m.classes; /* csv labels are checked against the model's classes */
    if (!read_norm(&c, f, &mean, &sd, &n_norm) || !eval_weights_finite(CMD, c.checkpoint, f)) goto out;
    if (!data_load_eval(CMD, &c.data, !c.test_split, mean, sd, n_norm, &ds, where, sizeof where)) goto out;
    calib_args ca = {.cmd = CMD, .path = c.checkpoint, .where = where, .m = &m, .ds = ds,
                     .batches = c.calib_batches, .batch = c.batch,
                     .percentile = c.calib == 1 ? c.percentile : 0, .device = c.device};
    if (!quant_calibrate(&ca, &co)) goto out;
    char how[160];
    if (c.calib == 1)
        snprintf(how, sizeof how, "percentile %g, %lld batches of %lld", c.percentile, (long long)co.batches,
                 (long long)co.batch);
    else
        snprintf(how, sizeof how, "minmax, %lld batches of %lld", (long long)co.batches, (long long)co.batch);
    quant_write_args wa = {.cmd = CMD, .path = c.checkpoint, .out = c.out, .f = f, .m = &m, .co = &co,
                           .calibration = how, .data_where = where};
    rc = quant_write(&wa);
out:
    calib_out_free(&co);
    ct_dataset_free(ds);
    free(mean);
    free(sd);
    ct_st_close(f);
    return rc;
}
