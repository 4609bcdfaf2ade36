/* `ctrain`: the command-line front end of the engine.
 *
 * main() only dispatches to a subcommand; the option helpers shared by the
 * subcommands live here too so that every subcommand reports a bad command
 * line the same way.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "cli.h"
#include "cli_options.h"
#include "compress_cli.h"
#include "quant_cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
    const char *summary;
    const cli_table *options; /* the option table, where the command has one */
} command;

static const command commands[] = {
    {"info", cmd_info, cmd_info_usage, "version, build options and the devices found here", NULL},
    {"ops", cmd_ops, cmd_ops_usage, "the op set, with backward and device support", NULL},
    {"demo", cmd_demo, cmd_demo_usage, "train a tiny MLP on XOR to show the engine learning", NULL},
    {"train", cmd_train, cmd_train_usage, "train a classifier (MNIST, Fashion-MNIST, CSV) or a GPT (text, tokens)", &train_table},
    {"eval", cmd_eval, cmd_eval_usage, "evaluate a checkpoint or weights file on a dataset", &eval_table},
    {"prune", cmd_prune, cmd_prune_usage, "remove an MLP's pruned neurons: a physically smaller model", &prune_table},
    {"quantize", cmd_quantize, cmd_quantize_usage, "int8 post-training quantization of an MLP or CNN checkpoint", &quantize_table},
    {"generate", cmd_generate, cmd_generate_usage, "sample text from a GPT checkpoint", &generate_table},
    {"plot", cmd_plot, cmd_plot_usage, "draw loss and accuracy curves of runs from their metrics files (PNG, SVG)", &plot_table},
    {"predict", cmd_predict, cmd_predict_usage, "class probabilities (or a GPT's next tokens) from a checkpoint", &predict_table},
    {"search", cmd_search, cmd_search_usage, "hyperparameter search: many train runs, a table, the best config", &search_table},
    {"bench", cmd_bench, cmd_bench_usage, "time named workloads (training steps, kernels) on a device", &bench_table},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *out) {
    fprintf(out,
            "usage: ctrain <command> [options]\n"
            "       ctrain help [command]\n"
            "       ctrain help --markdown   (every command's flags, as in docs/cli.md)\n"
            "       ctrain --version\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s  %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'ctrain <command> --help' for the options of a command.\n");
}

static const command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void print_version(void) {
    const char *lib = ct_version();
    if (!lib) lib = "?";
    printf("ctrain %s\n", lib);
    /* A CLI built against one version and run with another shared library
     * is worth a word: behaviour may not match this program's help. */
    if (strcmp(lib, CTRAIN_VERSION_STRING) != 0)
        printf("(built against headers %s)\n", CTRAIN_VERSION_STRING);
}

/* The flags of every command with an option table, as docs/cli.md lists
 * them (tools/cli_docs.cmake checks that it does); exit 1 if a table is
 * inconsistent. */
static int print_markdown(FILE *out) {
    int n = 0;
    bool ok = true;
    for (int i = 0; i < N_COMMANDS; i++)
        if (commands[i].options) {
            ok &= cli_table_ok(commands[i].options, stderr);
            if (n++) fputc('\n', out);
            cli_print_markdown(out, commands[i].options);
        }
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* `ctrain help [command]`, and `ctrain help --markdown`. */
static int help(int argc, char **argv) {
    if (argc == 2) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc == 3 && strcmp(argv[2], "--markdown") == 0) return print_markdown(stdout);
    const command *c = find_command(argv[2]);
    if (!c || argc > 3) {
        if (!c)
            fprintf(stderr, "ctrain: help: unknown command '%s' (see 'ctrain --help')\n", argv[2]);
        else
            fprintf(stderr, "ctrain: help: too many arguments (see 'ctrain --help')\n");
        return CLI_EXIT_USAGE;
    }
    c->usage(stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *arg = argv[1];
    if (cli_is_help(arg)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
        print_version();
        return CLI_EXIT_OK;
    }
    if (strcmp(arg, "help") == 0) return help(argc, argv);
    if (arg[0] == '-') {
        fprintf(stderr, "ctrain: unknown option '%s' (see 'ctrain --help')\n", arg);
        return CLI_EXIT_USAGE;
    }
    const command *c = find_command(arg);
    if (!c) {
        fprintf(stderr, "ctrain: unknown command '%s' (see 'ctrain --help')\n", arg);
        return CLI_EXIT_USAGE;
    }
    int rc = c->run(argc - 1, argv + 1);
    /* Output that could not be written (a full disk, a closed pipe) must not
     * pass for success. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ctrain: %s: cannot write the output\n", c->name);
        if (rc == CLI_EXIT_OK) rc = CLI_EXIT_FAIL;
    }
    return rc;
}

/* ---- helpers shared by the subcommands (cli.h) ---- */

int cli_fail(const char *what) {
    const char *why = ct_last_error();
    if (why && why[0])
        fprintf(stderr, "ctrain: %s: %s\n", what, why);
    else
        fprintf(stderr, "ctrain: %s: failed\n", what);
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ctrain: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'ctrain %s --help')\n", cmd);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_is_help(const char *arg) {
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_option(const char *cmd, int argc, char **argv, int *i, const char *name,
               const char **value) {
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0') return 0; /* a longer option that merely starts with name */
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option '%s' needs a value", name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

/* strtol and friends skip leading blanks and accept an empty string as 0;
 * an option value should be exactly a number, so both are refused. */
static int starts_like_number(const char *text) {
    return text[0] != '\0' && !isspace((unsigned char)text[0]);
}

int cli_parse_long(const char *cmd, const char *opt, const char *text, long min, long max,
                   long *out) {
    if (starts_like_number(text)) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (*end == '\0' && errno != ERANGE && v >= min && v <= max) {
            *out = v;
            return 1;
        }
    }
    cli_usage_error(cmd, "%s wants an integer from %ld to %ld, not '%s'", opt, min, max, text);
    return 0;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t *out) {
    /* strtoull would quietly wrap "-1" to 2^64-1. */
    if (starts_like_number(text) && text[0] != '-') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (*end == '\0' && errno != ERANGE) {
            *out = (uint64_t)v;
            return 1;
        }
    }
    cli_usage_error(cmd, "%s wants a non-negative integer, not '%s'", opt, text);
    return 0;
}

int cli_parse_positive_double(const char *cmd, const char *opt, const char *text,
                              double *out) {
    if (starts_like_number(text)) {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (*end == '\0' && errno != ERANGE && isfinite(v) && v > 0.0) {
            *out = v;
            return 1;
        }
    }
    cli_usage_error(cmd, "%s wants a positive number, not '%s'", opt, text);
    return 0;
}
