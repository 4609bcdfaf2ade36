/* The option engine (cli_options.h): rows, values by kind, argv.
 *
 * Every value, from the command line or a JSON file, goes through
 * cli_set(), so that it means the same and is checked the same wherever it
 * comes from; only the name in the message differs ("--lr" or "'lr' in
 * cfg.json").
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "cli.h"
#include "cli_options.h"

/* ---------------------------------------------------------------- rows */

const cli_row *cli_find(const cli_table *t, const char *name) {
    for (int i = 0; i < t->n_options; i++)
        if (strcmp(t->options[i].name, name) == 0) return &t->options[i];
    return NULL;
}

bool cli_is_switch(const cli_row *o) {
    return o->kind == CLI_FLAG || o->kind == CLI_FLAG_OFF;
}

bool cli_help_asked(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) return true;
    return false;
}

static void *field(const cli_parser *p, size_t off) {
    return (char *)p->cfg + off;
}

/* ---------------------------------------------------------------- choices */

int cli_choice_count(const cli_choices *c) {
    if (!c->names) return c->count;
    int n = 0;
    while (c->names[n]) n++;
    return n;
}

const char *cli_choice_name(const cli_choices *c, int k) {
    return c->names ? c->names[k] : c->name(k);
}

int cli_choice(const cli_choices *c, const char *text) {
    for (int i = 0; c->aliases && c->aliases[i][0]; i++)
        if (strcmp(text, c->aliases[i][0]) == 0) text = c->aliases[i][1];
    int k;
    if (c->parse) return c->parse(text, &k) ? k : -1;
    for (k = 0; k < cli_choice_count(c); k++)
        if (strcmp(text, cli_choice_name(c, k)) == 0) return k;
    return -1;
}

/* "one of a, b, c" */
static void choices_want(const cli_choices *c, const char *head, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "%s", head);
    for (int k = 0; k < cli_choice_count(c) && len < cap; k++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", k ? ", " : "", cli_choice_name(c, k));
}

/* ---------------------------------------------------------------- values */

bool cli_bad_value(const cli_parser *p, const char *opt, const char *want, const char *text) {
    cli_usage_error(p->t->cmd, "%s wants %s, not '%s'", opt, want, text);
    return false;
}

static bool bad(const cli_parser *p, const cli_row *o, const char *opt, const char *want, const char *text) {
    return cli_bad_value(p, opt, o->want ? o->want : want, text);
}

/* strtol and friends skip leading blanks and take "" as 0; a value should
 * be exactly a number. */
static bool numeric_start(const char *text, bool sign) {
    return isdigit((unsigned char)text[0]) || (sign && text[0] == '-' && isdigit((unsigned char)text[1]));
}

static bool scan_int(const char *text, const cli_row *o, long long *out) {
    if (!numeric_start(text, o->min < 0)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end || errno == ERANGE || (double)v < o->min || (double)v > o->max) return false;
    *out = v;
    return true;
}

static bool scan_double(const char *text, const cli_row *o, double *out) {
    if (!text[0] || isspace((unsigned char)text[0])) return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (*end || errno == ERANGE || !isfinite(v) || v < o->min || v > o->max) return false;
    if (((o->bounds & CLI_OPEN_MIN) && v == o->min) || ((o->bounds & CLI_OPEN_MAX) && v == o->max)) return false;
    *out = v;
    return true;
}

static void int_want(const cli_row *o, char *buf, size_t cap) {
    snprintf(buf, cap, "an integer from %lld to %lld", (long long)o->min, (long long)o->max);
}

static void double_want(const cli_row *o, char *buf, size_t cap) {
    if (isinf(o->max))
        snprintf(buf, cap, "a number %s %g", o->bounds & CLI_OPEN_MIN ? ">" : ">=", o->min);
    else
        snprintf(buf, cap, "a number in %c%g, %g%c", o->bounds & CLI_OPEN_MIN ? '(' : '[', o->min, o->max,
                 o->bounds & CLI_OPEN_MAX ? ')' : ']');
}

/* An integer into a field of 1, 2, 4 or 8 bytes (int, long, an enum...). */
static void put_int(void *dst, size_t size, long long v) {
    if (size == sizeof(int8_t)) {
        int8_t x = (int8_t)v;
        memcpy(dst, &x, size);
    } else if (size == sizeof(int16_t)) {
        int16_t x = (int16_t)v;
        memcpy(dst, &x, size);
    } else if (size == sizeof(int32_t)) {
        int32_t x = (int32_t)v;
        memcpy(dst, &x, size);
    } else {
        int64_t x = (int64_t)v;
        memcpy(dst, &x, sizeof x);
    }
}

static bool set_int(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    long long v;
    char want[96];
    int_want(o, want, sizeof want);
    if (!scan_int(text, o, &v)) return bad(p, o, opt, want, text);
    put_int(field(p, o->off), o->size, v);
    return true;
}

static bool set_u64(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    /* strtoull would quietly wrap "-1" to 2^64-1. */
    if (isdigit((unsigned char)text[0])) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (*end == '\0' && errno != ERANGE) {
            uint64_t x = (uint64_t)v;
            memcpy(field(p, o->off), &x, sizeof x);
            return true;
        }
    }
    return bad(p, o, opt, "a non-negative integer", text);
}

static bool set_double(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    double v;
    char want[96];
    double_want(o, want, sizeof want);
    if (!scan_double(text, o, &v)) return bad(p, o, opt, want, text);
    memcpy(field(p, o->off), &v, sizeof v);
    return true;
}

/* CLI_STRING, CLI_WORD, CLI_ENUM: the text, or the choice it names. */
static bool set_named(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    int k = -1;
    if (o->choices && (k = cli_choice(o->choices, text)) < 0) {
        char want[512];
        choices_want(o->choices, "one of ", want, sizeof want);
        return bad(p, o, opt, want, text);
    }
    const char *value = o->choices ? cli_choice_name(o->choices, k) : text;
    if (o->kind == CLI_ENUM) {
        put_int(field(p, o->off), o->size, k);
    } else if (o->kind == CLI_STRING) {
        memcpy(field(p, o->off), &value, sizeof value);
    } else {
        if (strlen(value) >= o->size) return bad(p, o, opt, "a shorter name", text);
        memcpy(field(p, o->off), value, strlen(value) + 1);
    }
    return true;
}

/* "crop,flip": bit k for choice k; "none" or "" for no bits. */
static bool set_bits(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    long long bits = 0;
    bool none = strcmp(text, "none") == 0 || !text[0];
    for (const char *s = text; !none;) {
        size_t len = strcspn(s, ",");
        char name[64];
        int k = -1;
        if (len < sizeof name) {
            memcpy(name, s, len);
            name[len] = 0;
            k = cli_choice(o->choices, name);
        }
        if (k < 0) {
            char want[512];
            choices_want(o->choices, "a comma list of ", want, sizeof want);
            if (strlen(want) + 10 < sizeof want) strcat(want, " (or none)");
            return bad(p, o, opt, want, text);
        }
        bits |= 1LL << k;
        if (!s[len]) break;
        s += len + 1;
    }
    put_int(field(p, o->off), o->size, bits);
    return true;
}

/* A comma list of integers or numbers; "none" or "" is the empty list
 * where min_items is 0. */
static bool set_list(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    double d[64];
    long long n[64];
    int count = 0;
    bool ok = true;
    bool empty = strcmp(text, "none") == 0 || !text[0];
    for (const char *s = text; ok && !empty;) {
        size_t len = strcspn(s, ",");
        char item[64];
        ok = len < sizeof item && count < o->max_items && count < 64;
        if (!ok) break;
        memcpy(item, s, len);
        item[len] = 0;
        ok = o->kind == CLI_INTS ? scan_int(item, o, &n[count]) : scan_double(item, o, &d[count]);
        count++;
        if (!s[len]) break;
        s += len + 1;
    }
    if (!ok || count < o->min_items) {
        char want[160], one[96];
        (o->kind == CLI_INTS ? int_want : double_want)(o, one, sizeof one);
        snprintf(want, sizeof want, "%d to %d entries, each %s, separated by commas", o->min_items, o->max_items,
                 one);
        return bad(p, o, opt, want, text);
    }
    for (int i = 0; i < count; i++)
        if (o->kind == CLI_INTS)
            ((int64_t *)field(p, o->off))[i] = (int64_t)n[i];
        else
            ((double *)field(p, o->off))[i] = d[i];
    if (o->count) put_int(field(p, o->count - 1), sizeof(int), count);
    return true;
}

static bool set_device(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    ct_device d;
    if (ct_device_parse(text, &d) != CT_OK) return bad(p, o, opt, "cpu, cuda, cuda:N or auto", text);
    memcpy(field(p, o->off), &d, sizeof d);
    return true;
}

bool cli_store(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    switch (o->kind) {
    case CLI_FLAG:
    case CLI_FLAG_OFF: {
        bool on = o->kind == CLI_FLAG;
        memcpy(field(p, o->off), &on, sizeof on);
        return true;
    }
    case CLI_INT: return set_int(p, o, text, opt);
    case CLI_U64: return set_u64(p, o, text, opt);
    case CLI_DOUBLE: return set_double(p, o, text, opt);
    case CLI_STRING:
    case CLI_WORD:
    case CLI_ENUM: return set_named(p, o, text, opt);
    case CLI_BITS: return set_bits(p, o, text, opt);
    case CLI_INTS:
    case CLI_DOUBLES: return set_list(p, o, text, opt);
    case CLI_DEVICE: return set_device(p, o, text, opt);
    case CLI_CUSTOM: return o->set(p, o, text, opt);
    }
    return false;
}

int cli_set(cli_parser *p, const cli_row *o, const char *text, const char *opt) {
    if (!cli_store(p, o, text, opt)) return CLI_EXIT_USAGE;
    if (o->mark) {
        bool on = true;
        memcpy(field(p, o->mark - 1), &on, sizeof on);
    }
    if (!cli_record(p, o, text)) {
        fprintf(stderr, "ctrain: %s: out of memory\n", p->t->cmd);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- tables */

static bool row_ok(const cli_table *t, const cli_row *o, const char **why) {
    bool in_section = false;
    for (int s = 0; s < t->n_sections; s++) in_section |= strcmp(o->section, t->sections[s].name) == 0;
    bool list = o->kind == CLI_INTS || o->kind == CLI_DOUBLES;
    if (!in_section) *why = "its section is not in the table's list";
    else if (cli_find(t, o->name) != o) *why = "the name is taken by an earlier row";
    else if ((o->kind == CLI_INT || o->kind == CLI_DOUBLE || list) && !(o->min <= o->max)) *why = "min > max";
    else if (list && (o->max_items < 1 || o->max_items > 64 || o->min_items > o->max_items)) *why = "bad item counts";
    else if (list && o->size < (size_t)o->max_items * (o->kind == CLI_INTS ? sizeof(int64_t) : sizeof(double)))
        *why = "the field holds fewer entries than max_items";
    else if ((o->kind == CLI_ENUM || o->kind == CLI_BITS) && !o->choices) *why = "no choices";
    else if (o->kind == CLI_CUSTOM && !o->set) *why = "no setter";
    else if (o->kind == CLI_WORD && o->size < 2) *why = "no room for a word";
    else return true;
    return false;
}

bool cli_table_ok(const cli_table *t, FILE *err) {
    bool ok = true;
    for (int i = 0; i < t->n_options; i++) {
        const char *why = NULL;
        if (!row_ok(t, &t->options[i], &why)) {
            fprintf(err, "ctrain: the option table of '%s': --%s: %s\n", t->cmd, t->options[i].name, why);
            ok = false;
        }
    }
    return ok;
}

/* ---------------------------------------------------------------- argv */

/* The option at argv[*i] and its value (advancing *i past a separate
 * value); opt gets "--name" for messages. Returns CLI_EXIT_OK, or with
 * `report` the exit code after reporting, else CLI_EXIT_USAGE quietly. */
static int next_option(const cli_parser *p, int argc, char **argv, int *i, const cli_row **o,
                       const char **value, char opt[72], bool report) {
    const char *cmd = p->t->cmd, *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == 0) {
        if (!report) return CLI_EXIT_USAGE;
        return arg[0] == '-' ? cli_usage_error(cmd, "unknown option '%s'", arg)
                             : cli_usage_error(cmd, "unexpected argument '%s'", arg);
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (len >= 64) return report ? cli_usage_error(cmd, "unknown option '%.80s'", arg) : CLI_EXIT_USAGE;
    memcpy(opt, arg, len);
    opt[len] = 0;
    *o = cli_find(p->t, opt + 2);
    *value = NULL;
    if (!*o && !report) return CLI_EXIT_USAGE; /* its value, if any, may be an option that matters */
    if (*o && cli_is_switch(*o)) {
        if (eq) return report ? cli_usage_error(cmd, "%s takes no value", opt) : CLI_EXIT_USAGE;
    } else if (eq) {
        *value = eq + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else if (*o) {
        return report ? cli_usage_error(cmd, "option '%s' needs a value", opt) : CLI_EXIT_USAGE;
    }
    /* Unknown options last, after taking a value they may have had, but
     * "--bogus" at the end is a typo, not a missing value. */
    if (!*o) return report ? cli_usage_error(cmd, "unknown option '%s'", opt) : CLI_EXIT_USAGE;
    return CLI_EXIT_OK;
}

int cli_parse_argv(cli_parser *p, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const cli_row *o = NULL;
        const char *v = NULL;
        char opt[72];
        int rc = next_option(p, argc, argv, &i, &o, &v, opt, true);
        if (rc == CLI_EXIT_OK) rc = cli_set(p, o, v, opt);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}

int cli_scan(cli_parser *p, int argc, char **argv, const char *name, int (*fn)(cli_parser *p, const char *value)) {
    for (int i = 1; i < argc; i++) {
        const cli_row *o = NULL;
        const char *v = NULL;
        char opt[72];
        if (next_option(p, argc, argv, &i, &o, &v, opt, false) != CLI_EXIT_OK || strcmp(o->name, name) != 0)
            continue;
        int rc = fn(p, v);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}
