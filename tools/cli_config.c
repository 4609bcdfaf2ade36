/* The option engine's JSON side (cli_options.h): config files, the record
 * of given options that checkpoints carry, and the strings both own.
 *
 * A config file is a JSON object whose keys are the long options without
 * their dashes ({"lr": 0.01, "hidden": [512, 256], "nesterov": true}). Each
 * value becomes the text a flag would carry and goes through cli_set(), so
 * it is checked exactly as on the command line.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"

void cli_parser_init(cli_parser *p, const cli_table *t, void *cfg, bool record) {
    memset(p, 0, sizeof *p);
    p->t = t;
    p->cfg = cfg;
    p->record = record;
}

void cli_parser_free(cli_parser *p) {
    cJSON_Delete(p->given);
    p->given = NULL;
    for (int i = 0; i < p->n_owned; i++) free(p->owned[i]);
    free(p->owned);
    p->owned = NULL;
    p->n_owned = 0;
}

/* Keeps a string alive as long as the options that point at it. */
static char *own(cli_parser *p, char *s) {
    char **more = realloc(p->owned, (size_t)(p->n_owned + 1) * sizeof *more);
    if (!more) {
        free(s);
        return NULL;
    }
    p->owned = more;
    p->owned[p->n_owned++] = s;
    return s;
}

bool cli_record(cli_parser *p, const cli_row *o, const char *text) {
    if (!p->record || (o->flags & CLI_NOT_RECORDED)) return true;
    if (!p->given && !(p->given = cJSON_CreateObject())) return false;
    cJSON *item = text ? cJSON_CreateString(text) : cJSON_CreateTrue();
    if (!item) return false;
    /* A switch and its opposite are one setting: the later one stands. */
    char other[80];
    if (strncmp(o->name, "no-", 3) == 0)
        snprintf(other, sizeof other, "%s", o->name + 3);
    else
        snprintf(other, sizeof other, "no-%s", o->name);
    cJSON_DeleteItemFromObjectCaseSensitive(p->given, other);
    if (cJSON_GetObjectItemCaseSensitive(p->given, o->name))
        return cJSON_ReplaceItemInObjectCaseSensitive(p->given, o->name, item);
    return cJSON_AddItemToObject(p->given, o->name, item);
}

char *cli_given_json(const cli_parser *p) {
    if (!p->given) return strdup("{}");
    return cJSON_PrintUnformatted(p->given);
}

/* The JSON value as the text a flag would carry: numbers in full
 * precision, arrays joined by commas. */
static bool value_text(const cJSON *item, char *buf, size_t cap) {
    if (cJSON_IsString(item)) {
        snprintf(buf, cap, "%s", item->valuestring);
        return true;
    }
    if (cJSON_IsNumber(item)) {
        snprintf(buf, cap, "%.17g", item->valuedouble);
        return true;
    }
    if (!cJSON_IsArray(item)) return false;
    size_t len = 0;
    buf[0] = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, item) {
        char one[64];
        if (cJSON_IsNumber(e))
            snprintf(one, sizeof one, "%.17g", e->valuedouble);
        else if (cJSON_IsString(e))
            snprintf(one, sizeof one, "%s", e->valuestring);
        else
            return false;
        len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "", one);
        if (len >= cap) return false;
    }
    return true;
}

/* true or false for switch `key`: false is the switch's opposite where it
 * has one, else nothing (every switch is off by default). */
static int json_switch(cli_parser *p, const cJSON *item, const char *opt) {
    const char *cmd = p->t->cmd, *key = item->string;
    const cli_row *o = cli_find(p->t, key);
    if (!o || !cli_is_switch(o))
        return cli_usage_error(cmd, "%s: true or false is only for switches such as nesterov", opt);
    if (cJSON_IsFalse(item)) {
        char no[80];
        snprintf(no, sizeof no, "no-%s", key);
        const cli_row *other = cli_find(p->t, no);
        if (!other && strncmp(key, "no-", 3) == 0) other = cli_find(p->t, key + 3);
        if (!other || !cli_is_switch(other)) return CLI_EXIT_OK;
        o = other;
    }
    return cli_set(p, o, NULL, opt);
}

static int json_item(cli_parser *p, const char *where, const cJSON *item) {
    const char *cmd = p->t->cmd, *key = item->string;
    char opt[320];
    snprintf(opt, sizeof opt, "'%s' in %s", key, where);
    if (cJSON_IsNull(item)) return CLI_EXIT_OK;
    const cli_row *o = cli_find(p->t, key);
    if (strcmp(key, "help") == 0 || (o && (o->flags & CLI_CMDLINE_ONLY)))
        return cli_usage_error(cmd, "%s: not allowed in a config file", opt);
    if (cJSON_IsBool(item)) return json_switch(p, item, opt);
    if (o && cli_is_switch(o)) return cli_usage_error(cmd, "%s: a switch takes true or false", opt);
    char *val = malloc(1024);
    if (!val || !value_text(item, val, 1024)) {
        free(val);
        return cli_usage_error(cmd, "%s: want a string, a number or an array of them", opt);
    }
    if (!own(p, val)) {
        fprintf(stderr, "ctrain: %s: out of memory\n", cmd);
        return CLI_EXIT_FAIL;
    }
    if (!o) return cli_usage_error(cmd, "%s: unknown option '%s'", where, key);
    return cli_set(p, o, val, opt);
}

int cli_apply_json(cli_parser *p, const char *where, const void *object) {
    const cJSON *item;
    cJSON_ArrayForEach(item, (const cJSON *)object) {
        int rc = json_item(p, where, item);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}

/* The whole file, malloc'ed and 0-terminated; NULL with *why set. */
static char *read_text(FILE *f, const char **why) {
    size_t cap = 4096, len = 0, got;
    char *text = malloc(cap);
    while (text && (got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 < cap) continue;
        char *bigger = cap < (16u << 20) ? realloc(text, cap * 2) : NULL;
        if (!bigger) {
            free(text);
            *why = "too large (or out of memory)";
            return NULL;
        }
        text = bigger;
        cap *= 2;
    }
    if (!text) *why = "too large (or out of memory)";
    if (text && ferror(f)) {
        free(text);
        text = NULL;
        *why = "cannot read it";
    }
    if (text) text[len] = 0;
    return text;
}

int cli_apply_config_file(cli_parser *p, const char *path) {
    const char *cmd = p->t->cmd, *why = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ctrain: %s: --config '%s': %s\n", cmd, path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    char *text = read_text(f, &why);
    fclose(f);
    if (!text) {
        fprintf(stderr, "ctrain: %s: --config '%s': %s\n", cmd, path, why);
        return CLI_EXIT_FAIL;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, false);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        free(text);
        return cli_usage_error(cmd, "--config '%s': not a JSON object of option names and values", path);
    }
    /* Text after the object is a second value or a slip of the editor:
     * neither may be ignored (the options meant may be in it). */
    end += strspn(end, " \t\r\n");
    if (*end) {
        long at = (long)(end - text);
        cJSON_Delete(doc);
        free(text);
        return cli_usage_error(cmd, "--config '%s': unexpected text after the JSON object (at byte %ld)", path, at);
    }
    free(text);
    int rc = cli_apply_json(p, path, doc);
    cJSON_Delete(doc);
    return rc;
}
