/* `ctrain plot`: loss and accuracy curves of one or several runs, from
 * their --metrics files, into a PNG or SVG (plot.h, docs/tooling.md).
 *
 * The files are the arguments that are not options; -o is --out. The image
 * is drawn into a temporary file beside the output and renamed over it
 * only when complete, so a failed plot never leaves half an image or
 * destroys the one that was there. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_options.h"
#include "plot.h"

#define CMD "plot"

typedef struct plot_cfg {
    const char *out, *y;
    int x;          /* 0 step, 1 epoch */
    bool log_y;
    int width, height;
} plot_cfg;

#define T plot_cfg
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)

static const cli_section sections[] = {{"options", "options"}};
static const char *const x_names[] = {"step", "epoch", NULL};
static const cli_choices x_choices = {.names = x_names};

static const cli_row options[] = {
    {ROW("out", CLI_STRING, out), .meta = "FILE",
     .help = "the image, also -o: .png or .svg (required; replaced only once the new one is complete)"},
    {ROW("x", CLI_ENUM, x), .choices = &x_choices, .def = "step",
     .help = "the horizontal axis: optimizer steps (every metrics line), or epochs (the epoch lines)"},
    {ROW("y", CLI_STRING, y), .meta = "KEYS", .def = "every loss and accuracy in the files",
     .help = "metrics to draw, separated by commas: train_loss, val_loss, test_loss, val_acc, test_acc, lr, "
             "grad_norm, loss_scale, samples_per_s, tokens_per_s, elapsed_s; losses share a panel, accuracies "
             "another, any other metric has its own"},
    {ROW("log-y", CLI_FLAG, log_y), .help = "logarithmic vertical axis (values <= 0 are left out)"},
    {ROW("width", CLI_INT, width), .min = 200, .max = 8000, .def = "1200", .help = "pixels (points for SVG)"},
    {ROW("height", CLI_INT, height), .min = 150, .max = 8000, .def = "600", .help = "pixels (points for SVG)"},
};

const cli_table plot_table = {
    .cmd = CMD,
    .usage = "usage: ctrain plot METRICS.jsonl [MORE.jsonl ...] -o FILE.png|FILE.svg [options]\n",
    .about = "Draws the curves of one or several runs from their --metrics files on one\n"
             "figure, the legend naming each run after its file.\n",
    .footer = "Exits 0 when the image is written, 1 when a file cannot be read or written or\n"
              "lacks a metric asked for, 2 for a bad command line.\n",
    .sections = sections,
    .n_sections = 1,
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_plot_usage(FILE *out) { cli_print_help(out, &plot_table); }

/* Moves the files (arguments that are not options or their values) out of
 * argv into files, and turns -o into --out; returns the new argc. */
static int split_args(int argc, char **argv, char **files, int *n_files, bool *too_many) {
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "-o") == 0) a = argv[i] = "--out";
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            argv[kept++] = a;
            const cli_row *o = strchr(a, '=') ? NULL : cli_find(&plot_table, a + 2);
            if (o && !cli_is_switch(o) && i + 1 < argc) argv[kept++] = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            argv[kept++] = a; /* the parser names it as unknown */
        } else if (*n_files < PLOT_MAX_RUNS) {
            files[(*n_files)++] = a;
        } else {
            *too_many = true;
        }
    }
    return kept;
}

/* --y: the keys' indices into plot_keys. */
static int parse_keys(const char *text, int *keys, int *n) {
    const char *p = text;
    *n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        int k = 0;
        while (plot_keys[k] && (strlen(plot_keys[k]) != len || strncmp(plot_keys[k], p, len) != 0)) k++;
        if (!plot_keys[k])
            return cli_usage_error(CMD, "--y: unknown metric '%.*s' (known: train_loss, val_loss, test_loss, val_acc, "
                                        "test_acc, lr, grad_norm, loss_scale, samples_per_s, tokens_per_s, elapsed_s)",
                                   (int)len, p);
        bool dup = false;
        for (int i = 0; i < *n; i++) dup |= keys[i] == k;
        if (!dup) keys[(*n)++] = k;
        if (!p[len]) return CLI_EXIT_OK;
        p += len + 1;
    }
}

#ifdef CTRAIN_HAVE_CAIRO /* the drawing; without cairo cmd_plot says so */
static bool is_svg(const char *out) {
    const char *dot = strrchr(out, '.');
    return dot && strcmp(dot, ".svg") == 0;
}

/* The drawing into out.tmp-<pid>, renamed to out once complete. */
static int write_image(const plot_data *d, const plot_cfg *c) {
    size_t cap = strlen(c->out) + 32;
    char *tmp = malloc(cap);
    if (!tmp) return fprintf(stderr, "ctrain: %s: out of memory\n", CMD), CLI_EXIT_FAIL;
    snprintf(tmp, cap, "%s.tmp-%ld", c->out, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = CLI_EXIT_FAIL;
    if (!f) {
        fprintf(stderr, "ctrain: %s: cannot write '%s': %s\n", CMD, c->out, strerror(errno));
    } else {
        bool ok = plot_draw(d, f, is_svg(c->out), c->width, c->height);
        if (fclose(f) != 0 && ok) {
            fprintf(stderr, "ctrain: %s: cannot write '%s': %s\n", CMD, c->out, strerror(errno));
            ok = false;
        }
        if (ok && rename(tmp, c->out) != 0)
            fprintf(stderr, "ctrain: %s: cannot write '%s': %s\n", CMD, c->out, strerror(errno));
        else if (ok)
            rc = CLI_EXIT_OK;
        if (rc != CLI_EXIT_OK) remove(tmp);
    }
    free(tmp);
    return rc;
}
#endif

static int check_cfg(const plot_cfg *c, int n_files, bool too_many) {
    if (too_many) return cli_usage_error(CMD, "at most %d metrics files in one plot", PLOT_MAX_RUNS);
    if (n_files == 0) return cli_usage_error(CMD, "no metrics file given");
    if (!c->out) return cli_usage_error(CMD, "-o FILE.png or FILE.svg is required");
    const char *dot = strrchr(c->out, '.');
    if (!dot || (strcmp(dot, ".png") != 0 && strcmp(dot, ".svg") != 0))
        return cli_usage_error(CMD, "-o %s: the name must end in .png or .svg", c->out);
    return CLI_EXIT_OK;
}

int cmd_plot(int argc, char **argv) {
    if (cli_help_asked(argc, argv)) {
        cmd_plot_usage(stdout);
        return CLI_EXIT_OK;
    }
    plot_cfg c = {.width = 1200, .height = 600};
    char *files[PLOT_MAX_RUNS];
    int n_files = 0, keys[PLOT_MAX_KEYS], n_keys = 0;
    bool too_many = false;
    argc = split_args(argc, argv, files, &n_files, &too_many);
    cli_parser p;
    cli_parser_init(&p, &plot_table, &c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    if (rc == CLI_EXIT_OK) rc = check_cfg(&c, n_files, too_many);
    if (rc == CLI_EXIT_OK && c.y) rc = parse_keys(c.y, keys, &n_keys);
    if (rc != CLI_EXIT_OK) return rc;
#ifndef CTRAIN_HAVE_CAIRO
    fprintf(stderr, "ctrain: %s: this ctrain was built without cairo (install libcairo2-dev and rebuild)\n", CMD);
    return CLI_EXIT_FAIL;
#else
    plot_data d = {.by_epoch = c.x == 1, .log_y = c.log_y};
    rc = plot_load(&d, files, n_files, keys, n_keys) ? write_image(&d, &c) : CLI_EXIT_FAIL;
    plot_free(&d);
    return rc;
#endif
}
