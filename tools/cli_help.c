/* The option engine's help (cli_options.h): --help as text and the same
 * as Markdown for docs/cli.md, both from the table alone, so that neither
 * can list an option the command does not take or miss one it does.
 */
#include <string.h>

#include "cli_options.h"

#define HELP_WIDTH 79 /* the last column a line may reach */
#define HELP_COLUMN 26 /* where the option's text starts */

/* What the value looks like: the row's own word, the choices, or by kind. */
static void row_meta(const cli_row *o, char *buf, size_t cap) {
    buf[0] = 0;
    if (o->meta) {
        snprintf(buf, cap, "%s", o->meta);
    } else if (o->choices) {
        size_t len = 0;
        for (int k = 0; k < cli_choice_count(o->choices) && len < cap; k++)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", k ? "|" : "", cli_choice_name(o->choices, k));
    } else {
        static const char *const by_kind[] = {
            [CLI_INT] = "N", [CLI_U64] = "N", [CLI_DOUBLE] = "X", [CLI_STRING] = "TEXT", [CLI_WORD] = "NAME",
            [CLI_INTS] = "N,N,...", [CLI_DOUBLES] = "X,X,...", [CLI_DEVICE] = "cpu|cuda|cuda:N|auto",
            [CLI_BITS] = "LIST", [CLI_CUSTOM] = "VALUE"};
        if (o->kind < sizeof by_kind / sizeof by_kind[0] && by_kind[o->kind])
            snprintf(buf, cap, "%s", by_kind[o->kind]);
    }
}

/* "--name META" */
static void row_left(const cli_row *o, char *buf, size_t cap) {
    char meta[256];
    row_meta(o, meta, sizeof meta);
    snprintf(buf, cap, "--%s%s%s", o->name, meta[0] ? " " : "", meta);
}

/* The help, its default and the other spellings the choices accept. */
static void row_text(const cli_row *o, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "%s", o->help);
    if (o->def && len < cap) len += (size_t)snprintf(buf + len, cap - len, " (default %s)", o->def);
    const cli_choices *c = o->choices;
    for (int i = 0; c && c->aliases && c->aliases[i][0] && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s %s for %s", i ? "," : "; also", c->aliases[i][0],
                                c->aliases[i][1]);
}

/* Prints text word by word from column `at`, breaking lines before
 * HELP_WIDTH and going on at column `indent`. */
static void wrap(FILE *out, const char *text, int at, int indent) {
    bool fresh = true;
    for (const char *s = text; *s;) {
        while (*s == ' ') s++;
        int w = (int)strcspn(s, " ");
        if (!w) break;
        if (at + !fresh + w > HELP_WIDTH && at > indent) {
            fprintf(out, "\n%*s", indent, "");
            at = indent;
            fresh = true;
        }
        if (!fresh) fputc(' ', out);
        at += !fresh + w;
        fwrite(s, 1, (size_t)w, out);
        fresh = false;
        s += w;
    }
    fputc('\n', out);
}

static void print_row(FILE *out, const cli_row *o) {
    char left[300], text[1024];
    row_left(o, left, sizeof left);
    row_text(o, text, sizeof text);
    int n = fprintf(out, "  %s", left);
    /* The text in its column, or after a long option, or below a longer one. */
    if (n < HELP_COLUMN - 1) {
        fprintf(out, "%*s", HELP_COLUMN - n, "");
        n = HELP_COLUMN;
    } else if (n + 2 <= HELP_WIDTH - 24) {
        fputs("  ", out);
        n += 2;
    } else {
        fprintf(out, "\n%*s", HELP_COLUMN, "");
        n = HELP_COLUMN;
    }
    wrap(out, text, n, HELP_COLUMN);
}

/* Whether section s lists any row. */
static bool section_used(const cli_table *t, const cli_section *s) {
    for (int i = 0; i < t->n_options; i++)
        if (t->options[i].help && strcmp(t->options[i].section, s->name) == 0) return true;
    return false;
}

void cli_print_help(FILE *out, const cli_table *t) {
    fputs(t->usage, out);
    if (t->about) fprintf(out, "\n%s", t->about);
    fputc('\n', out);
    for (int s = 0; s < t->n_sections; s++) {
        const cli_section *sec = &t->sections[s];
        if (!section_used(t, sec)) continue;
        fprintf(out, "%s:\n", sec->title);
        for (int i = 0; i < t->n_options; i++)
            if (t->options[i].help && strcmp(t->options[i].section, sec->name) == 0) print_row(out, &t->options[i]);
    }
    if (t->footer) fprintf(out, "\n%s", t->footer);
}

/* Text as Markdown: what would be taken for HTML or emphasis, escaped. */
static void md_text(FILE *out, const char *text) {
    for (const char *s = text; *s; s++) {
        if (*s == '<')
            fputs("&lt;", out);
        else if (*s == '>')
            fputs("&gt;", out);
        else if (*s == '*' || *s == '\\' || *s == '`')
            fprintf(out, "\\%c", *s);
        else
            fputc(*s, out);
    }
}

void cli_print_markdown(FILE *out, const cli_table *t) {
    fprintf(out, "### ctrain %s\n\n```\n%s```\n\n", t->cmd, t->usage);
    if (t->about) {
        md_text(out, t->about);
        fputc('\n', out);
    }
    for (int s = 0; s < t->n_sections; s++) {
        const cli_section *sec = &t->sections[s];
        if (!section_used(t, sec)) continue;
        fputs("**", out);
        md_text(out, sec->title);
        fputs("**\n\n", out);
        for (int i = 0; i < t->n_options; i++) {
            const cli_row *o = &t->options[i];
            if (!o->help || strcmp(o->section, sec->name) != 0) continue;
            char left[300], text[1024];
            row_left(o, left, sizeof left);
            row_text(o, text, sizeof text);
            fprintf(out, "- `%s`: ", left);
            md_text(out, text);
            fputc('\n', out);
        }
        fputc('\n', out);
    }
    if (t->footer) {
        md_text(out, t->footer);
        fputc('\n', out);
    }
}
