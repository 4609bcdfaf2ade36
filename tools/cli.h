/* Shared pieces of the `ctrain` command-line tool.
 *
 * Each subcommand lives in its own file (cmd_*.c) and is reached through the
 * dispatch table in main.c. Subcommands talk to the engine only through the
 * public API, and report every failure as one line on stderr with an exit
 * code: CLI_EXIT_USAGE when the command line itself is wrong (so scripts can
 * tell "you called it wrong" from "it ran and failed"), CLI_EXIT_FAIL when
 * the engine or the machine said no.
 */
#ifndef CTRAIN_TOOLS_CLI_H
#define CTRAIN_TOOLS_CLI_H

#include <stdint.h>
#include <stdio.h>

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* A subcommand: argv[0] is the subcommand's name, options follow. */
int cmd_ops(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* Each subcommand's help text, shared by `ctrain CMD --help` and
 * `ctrain help CMD`. */
void cmd_ops_usage(FILE *out);
void cmd_info_usage(FILE *out);
void cmd_demo_usage(FILE *out);
void cmd_train_usage(FILE *out);
void cmd_eval_usage(FILE *out);
void cmd_bench_usage(FILE *out);
void cmd_generate_usage(FILE *out);
void cmd_plot_usage(FILE *out);
void cmd_search_usage(FILE *out);
void cmd_predict_usage(FILE *out);

/* The option tables of the commands that have one (cli_options.h), for
 * `ctrain help --markdown`. */
struct cli_table;
extern const struct cli_table train_table, eval_table, bench_table, generate_table, plot_table,
    search_table, predict_table;

/* "ctrain: <what>: <ct_last_error()>" on stderr; returns CLI_EXIT_FAIL so a
 * caller can write `return cli_fail("compile");`. */
int cli_fail(const char *what);

/* "ctrain: <cmd>: <message> (see 'ctrain <cmd> --help')" on stderr; returns
 * CLI_EXIT_USAGE. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* True if arg asks for help ("-h" or "--help"). */
int cli_is_help(const char *arg);

/* Option by option, for commands without an option table (demo); the
 * others describe their options in a table (cli_options.h).
 *
 * Matches option `name` at argv[*i], given as "--name VALUE" or
 * "--name=VALUE". Returns 1 and sets *value (advancing *i past a separate
 * value) on a match, 0 if argv[*i] is another argument, and -1 after
 * reporting a usage error if the value is missing. */
int cli_option(const char *cmd, int argc, char **argv, int *i, const char *name,
               const char **value);

/* Strict number parsing for option values: the whole string must be a
 * number in range, else a usage error is reported and 0 returned. */
int cli_parse_long(const char *cmd, const char *opt, const char *text, long min, long max,
                   long *out);
int cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t *out);
int cli_parse_positive_double(const char *cmd, const char *opt, const char *text, double *out);

#endif
