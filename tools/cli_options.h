/* The option engine of the `ctrain` subcommands: one table per command
 * drives the command line, the --config file, --help and docs/cli.md.
 *
 * A command describes each option once, as a row of a cli_table: its name
 * (the long option without dashes, which is also its key in a JSON config
 * file), its kind (how the text becomes a value), where the value goes (an
 * offset into the command's options struct), the range allowed, the help
 * text and the section of --help it belongs to. The engine then parses argv
 * ("--name VALUE", "--name=VALUE", "--switch"), applies JSON objects (config
 * files, the record a checkpoint carries), prints --help and the Markdown of
 * docs/cli.md, and reports any bad value as one line naming the flag or key,
 * with exit code CLI_EXIT_USAGE.
 *
 * Adding a command: a struct for its options, a table of rows built with
 * CLI_FIELD (and CLI_MARK, CLI_COUNT), then cli_parser_init + cli_parse_argv
 * in its cmd_*.c; main.c lists the table so that `ctrain help --markdown`
 * includes it (docs/cli.md tells how to regenerate the docs).
 */
#ifndef CTRAIN_TOOLS_CLI_OPTIONS_H
#define CTRAIN_TOOLS_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum cli_kind {
    CLI_FLAG,     /* a switch: sets the bool field true */
    CLI_FLAG_OFF, /* a switch: sets the bool field false (--no-prefetch) */
    CLI_INT,      /* an integer in [min, max]; the field's size says int, long, int64_t, size_t */
    CLI_U64,      /* any non-negative integer into a uint64_t (seeds) */
    CLI_DOUBLE,   /* a finite number in the range (bounds: open or closed ends) */
    CLI_STRING,   /* a const char * to the text (with choices: to the canonical name) */
    CLI_WORD,     /* the text copied into a char array (with choices: the canonical name) */
    CLI_ENUM,     /* one of the choices: its value into an integer or enum field */
    CLI_BITS,     /* a comma list of choices (or none): bit k for choice k */
    CLI_INTS,     /* a comma list of integers in [min, max] into an int64_t array */
    CLI_DOUBLES,  /* a comma list of numbers in the range into a double array */
    CLI_DEVICE,   /* cpu, cuda, cuda:N or auto (ct_device_parse) into a ct_device */
    CLI_CUSTOM    /* the row's setter does it all */
} cli_kind;

/* Open ends of a CLI_DOUBLE range: (min, max] and the like. */
enum { CLI_OPEN_MIN = 1, CLI_OPEN_MAX = 2 };

/* Row flags. */
enum {
    CLI_NOT_RECORDED = 1, /* this invocation only: not in the record of given options */
    CLI_CMDLINE_ONLY = 2  /* not allowed in a config file (--config itself) */
};

/* The values a name may take. Either a NULL-terminated list of names, the
 * value being the index, or the library's own names and parser for an enum
 * (name(k) for k < count; parse turns a name into the value). Aliases are
 * pairs {other spelling, canonical name}, NULL-terminated. */
typedef struct cli_choices {
    const char *const *names;
    const char *(*name)(int k);
    int count;
    bool (*parse)(const char *text, int *value);
    const char *const (*aliases)[2];
} cli_choices;

typedef struct cli_row cli_row;
typedef struct cli_parser cli_parser;

/* A CLI_CUSTOM row's setter: text is the value (NULL for a switch), opt
 * the option as a message names it ("--lr" or "'lr' in cfg.json"). Returns
 * false after reporting a usage error (cli_bad_value). */
typedef bool (*cli_setter)(cli_parser *p, const cli_row *o, const char *text, const char *opt);

struct cli_row {
    const char *name;   /* the long option without dashes, and the config key */
    cli_kind kind;
    size_t off, size;   /* the field: CLI_FIELD(type, member) */
    double min, max;    /* numbers and list entries: the range allowed */
    unsigned bounds;    /* CLI_OPEN_MIN, CLI_OPEN_MAX */
    const cli_choices *choices;
    int min_items, max_items; /* lists: how many entries (min 0: "none" is the empty list) */
    size_t count;       /* lists: CLI_COUNT(type, member), the int that gets the number of entries */
    size_t mark;        /* CLI_MARK(type, member): a bool set when the option is given */
    cli_setter set;     /* CLI_CUSTOM */
    const char *meta;   /* the value in help ("N", "FILE"); NULL: the choices, or by kind */
    const char *help;   /* NULL: accepted but not listed */
    const char *def;    /* the default, shown as "(default ...)"; NULL: none shown */
    const char *section;
    const char *want;   /* what a bad value message asks for, instead of the engine's words */
    unsigned flags;     /* CLI_NOT_RECORDED, CLI_CMDLINE_ONLY */
};

/* Where a row's value goes. CLI_MARK and CLI_COUNT store offset + 1 so that
 * 0 can mean "none" in a row that leaves them out. */
#define CLI_FIELD(type, member) .off = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define CLI_MARK(type, member) .mark = offsetof(type, member) + 1
#define CLI_COUNT(type, member) .count = offsetof(type, member) + 1

/* A section of --help: rows name it by `name`; `title` heads it. */
typedef struct cli_section {
    const char *name;
    const char *title;
} cli_section;

typedef struct cli_table {
    const char *cmd;    /* "train": messages start "ctrain: train: " */
    const char *usage;  /* the usage line(s), each ending in a newline */
    const char *about;  /* the paragraph after it (NULL: none) */
    const char *footer; /* the text after the options (NULL: none) */
    const cli_section *sections;
    int n_sections;     /* --help lists the sections in this order */
    const cli_row *options;
    int n_options;      /* ... and in each the rows in table order */
} cli_table;

/* One parse: the table, the options struct it fills, and what the values
 * need to outlive the parse. */
struct cli_parser {
    const cli_table *t;
    void *cfg;
    bool record;        /* keep the record of given options (cli_given_json) */
    void *given;        /* that record: a cJSON object, name -> text or true */
    char **owned;       /* value texts from JSON that string options point into */
    int n_owned;
};

void cli_parser_init(cli_parser *p, const cli_table *t, void *cfg, bool record);
/* Frees what the parser holds; string options from JSON die with it. */
void cli_parser_free(cli_parser *p);

/* The row of option `name` (no dashes), or NULL. */
const cli_row *cli_find(const cli_table *t, const char *name);
/* True if a switch: it takes no value. */
bool cli_is_switch(const cli_row *o);
/* True if argv asks for help anywhere (-h, --help). */
bool cli_help_asked(int argc, char **argv);

/* Parses argv[1..]: every argument an option of the table. Returns
 * CLI_EXIT_OK, or the exit code after reporting the first problem. */
int cli_parse_argv(cli_parser *p, int argc, char **argv);
/* Calls fn with the value of each occurrence of option `name` in argv, in
 * order (for options that must act before the others, such as --config);
 * other problems are left for cli_parse_argv. Stops at the first exit code
 * other than CLI_EXIT_OK and returns it. */
int cli_scan(cli_parser *p, int argc, char **argv, const char *name,
             int (*fn)(cli_parser *p, const char *value));
/* Sets one option from text (NULL for a switch); opt names it in messages.
 * Marks and records it. Returns CLI_EXIT_OK or the exit code after
 * reporting. */
int cli_set(cli_parser *p, const cli_row *o, const char *text, const char *opt);

/* Applies a JSON object (a cJSON *) of option name -> value: strings,
 * numbers, arrays of them, true/false for switches (false: the switch's
 * opposite where there is one, else nothing), null for nothing. `where`
 * names the source in messages ("'lr' in cfg.json"). */
int cli_apply_json(cli_parser *p, const char *where, const void *object);
/* Reads a JSON config file and applies it: CLI_EXIT_OK, CLI_EXIT_FAIL if
 * it cannot be read, CLI_EXIT_USAGE if it is not a JSON object or a value
 * is bad. */
int cli_apply_config_file(cli_parser *p, const char *path);
/* Only the value: parses text into o's field, without marking or
 * recording (for custom setters that hand a value on). False after
 * reporting. */
bool cli_store(cli_parser *p, const cli_row *o, const char *text, const char *opt);
/* Notes option o as given with text (NULL: a switch) in the record, if
 * the parser keeps one and the row is recorded; false if out of memory.
 * cli_set() calls it. */
bool cli_record(cli_parser *p, const cli_row *o, const char *text);
/* The record of given options as JSON text, malloc'ed; "{}" if none. */
char *cli_given_json(const cli_parser *p);

/* For custom setters: "<opt> wants <want>, not '<text>'" as a usage
 * error; returns false. */
bool cli_bad_value(const cli_parser *p, const char *opt, const char *want, const char *text);
/* The value of text among the choices, or -1. */
int cli_choice(const cli_choices *c, const char *text);
/* The k-th choice's name, and how many there are. */
const char *cli_choice_name(const cli_choices *c, int k);
int cli_choice_count(const cli_choices *c);

/* Checks a table for mistakes a compiler cannot see (a name used twice, a
 * section not listed, a range upside down...); prints each on err. The test
 * cli_docs runs it on every table, through `ctrain help --markdown`. */
bool cli_table_ok(const cli_table *t, FILE *err);

/* --help of the table, and its Markdown for docs/cli.md. */
void cli_print_help(FILE *out, const cli_table *t);
void cli_print_markdown(FILE *out, const cli_table *t);

/* A macro's value as text, for defaults in help: CLI_STR(TRAIN_DEFAULT_LR). */
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

#endif
