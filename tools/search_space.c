/* The space of `ctrain search` (search.h): which `ctrain train` options a
 * search varies, checked before any trial runs, and how configs are drawn
 * from it (random) or enumerated (grid).
 *
 * Every value the space names is checked the way a --config file's would
 * be (cli_apply_json on a throwaway train parser), so a dropout of 1.5 or
 * a hidden list of "512,x" is refused up front with the train command's own
 * words, naming the key.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "search.h"
#include "train_opts.h"

/* The options a search sets itself for every trial. */
static const char *const owned[] = {"metrics", "save", "resume", "config", "seed", "quiet", "dist", NULL};

static bool is_owned(const char *key) {
    for (int i = 0; owned[i]; i++)
        if (strcmp(owned[i], key) == 0) return true;
    return false;
}

/* Applies {key: value} to a fresh train parser as a config file would:
 * the option's own checks and messages, under "ctrain: search:". */
static int check_value(const char *key, const cJSON *value, const char *where) {
    cli_table t = train_table;
    t.cmd = "search";
    train_cfg c;
    train_cfg_defaults(&c);
    cli_parser p;
    cli_parser_init(&p, &t, &c, false);
    cJSON *obj = cJSON_CreateObject();
    cJSON *copy = cJSON_Duplicate(value, true);
    int rc = CLI_EXIT_FAIL;
    if (obj && copy && cJSON_AddItemToObject(obj, key, copy)) {
        copy = NULL;
        rc = cli_apply_json(&p, where, obj);
    } else {
        fprintf(stderr, "ctrain: search: out of memory\n");
    }
    cJSON_Delete(copy);
    cJSON_Delete(obj);
    cli_parser_free(&p);
    return rc;
}

static int bad(const char *where, const char *key, const char *what) {
    fprintf(stderr, "ctrain: search: '%s' in %s: %s\n", key, where, what);
    return CLI_EXIT_USAGE;
}

static int parse_range(const cJSON *v, const cli_row *o, const char *where, search_dim *d) {
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(v, "min");
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(v, "max");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(v, "scale");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) if (strcmp(e->string, "min") && strcmp(e->string, "max") && strcmp(e->string, "scale"))
        return bad(where, d->key, "a range has only \"min\", \"max\" and \"scale\"");
    if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi))
        return bad(where, d->key, "a range needs numbers \"min\" and \"max\"");
    if (o->kind != CLI_INT && o->kind != CLI_DOUBLE && o->kind != CLI_U64)
        return bad(where, d->key, "a range is for a numeric option; give a list of values");
    d->min = lo->valuedouble;
    d->max = hi->valuedouble;
    const char *scale = sc ? cJSON_GetStringValue(sc) : (o->kind == CLI_DOUBLE ? "linear" : "int");
    if (!scale) return bad(where, d->key, "\"scale\" is one of log, linear, int");
    if (strcmp(scale, "log") == 0)
        d->scale = SCALE_LOG;
    else if (strcmp(scale, "linear") == 0)
        d->scale = SCALE_LINEAR;
    else if (strcmp(scale, "int") == 0)
        d->scale = SCALE_INT;
    else
        return bad(where, d->key, "\"scale\" is one of log, linear, int");
    char why[160];
    if (!(d->min <= d->max)) {
        snprintf(why, sizeof why, "bad range: min %g is above max %g", d->min, d->max);
        return bad(where, d->key, why);
    }
    if (d->scale == SCALE_LOG && !(d->min > 0))
        return bad(where, d->key, "bad range: a log scale needs min > 0");
    if (d->scale == SCALE_INT && (d->min != floor(d->min) || d->max != floor(d->max)))
        return bad(where, d->key, "bad range: an int scale needs integral min and max");
    if (o->kind != CLI_DOUBLE && d->scale != SCALE_INT)
        return bad(where, d->key, "an integer option takes \"scale\": \"int\"");
    /* Both ends as the option itself would take them. */
    int rc = check_value(d->key, lo, where);
    return rc == CLI_EXIT_OK ? check_value(d->key, hi, where) : rc;
}

static int parse_dim(const cJSON *v, const char *where, search_dim *d) {
    d->key = v->string;
    const cli_row *o = cli_find(&train_table, d->key);
    if (!o || is_owned(d->key)) {
        fprintf(stderr, "ctrain: search: '%s' in %s: %s\n", d->key, where,
                o ? "set by the search for every trial, not searchable" : "unknown option (not a ctrain train option)");
        return CLI_EXIT_USAGE;
    }
    if (cJSON_IsObject(v)) return parse_range(v, o, where, d);
    if (!cJSON_IsArray(v)) return bad(where, d->key, "want a list of values or a range {\"min\", \"max\", \"scale\"}");
    if (cJSON_GetArraySize(v) == 0) return bad(where, d->key, "empty list");
    d->scale = SCALE_LIST;
    d->list = v;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        int rc = check_value(d->key, e, where);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}

int space_from_json(cJSON *doc, const char *where, search_space *s) {
    memset(s, 0, sizeof *s);
    s->doc = doc;
    if (!cJSON_IsObject(doc)) {
        fprintf(stderr, "ctrain: search: %s: not a JSON object of option names and their values\n", where);
        return CLI_EXIT_USAGE;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, doc) {
        if (s->n == SEARCH_MAX_DIMS) return bad(where, v->string, "too many options (64 at most)");
        for (int i = 0; i < s->n; i++)
            if (strcmp(s->dims[i].key, v->string) == 0) return bad(where, v->string, "given twice");
        int rc = parse_dim(v, where, &s->dims[s->n]);
        if (rc != CLI_EXIT_OK) return rc;
        s->n++;
    }
    if (s->n == 0) {
        fprintf(stderr, "ctrain: search: %s: the space names no option\n", where);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int space_load(const char *path, search_space *s) {
    memset(s, 0, sizeof *s);
    cJSON *doc = search_read_json(path, false);
    if (!doc) return CLI_EXIT_FAIL;
    return space_from_json(doc, path, s);
}

void space_free(search_space *s) {
    cJSON_Delete(s->doc);
    memset(s, 0, sizeof *s);
}

/* splitmix64: a uniform double in [0, 1) from (seed, config, dim). */
static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t seed, int64_t config, int dim) {
    uint64_t z = mix(mix(mix(seed) ^ (uint64_t)config) ^ (uint64_t)dim);
    return (double)(z >> 11) * 0x1.0p-53;
}

/* A drawn number kept to 6 significant digits: the config files and the
 * table show exactly what the trial ran with. */
static cJSON *number(const search_dim *d, double u) {
    double v;
    if (d->scale == SCALE_INT) {
        v = d->min + floor(u * (d->max - d->min + 1));
        if (v > d->max) v = d->max;
        return cJSON_CreateNumber(v);
    }
    if (d->scale == SCALE_LOG)
        v = exp(log(d->min) + u * (log(d->max) - log(d->min)));
    else
        v = d->min + u * (d->max - d->min);
    char text[32];
    snprintf(text, sizeof text, "%.6g", v);
    v = strtod(text, NULL);
    if (v < d->min) v = d->min; /* rounding must not leave the range */
    if (v > d->max) v = d->max;
    return cJSON_CreateNumber(v);
}

static cJSON *add(cJSON *obj, const char *key, cJSON *v) {
    if (!obj || !v || !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

cJSON *space_sample(const search_space *s, uint64_t seed, int64_t config) {
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; i < s->n && obj; i++) {
        const search_dim *d = &s->dims[i];
        double u = uniform(seed, config, i);
        cJSON *v;
        if (d->scale == SCALE_LIST) {
            int n = cJSON_GetArraySize(d->list);
            int k = (int)(u * n);
            v = cJSON_Duplicate(cJSON_GetArrayItem(d->list, k < n ? k : n - 1), true);
        } else {
            v = number(d, u);
        }
        obj = add(obj, d->key, v);
    }
    return obj;
}

/* How many values dimension d has on the grid, and value k of them. */
static int64_t grid_count(const search_dim *d, int points) {
    if (d->scale == SCALE_LIST) return cJSON_GetArraySize(d->list);
    if (d->min == d->max) return 1;
    if (d->scale == SCALE_INT && d->max - d->min + 1 < points) return (int64_t)(d->max - d->min + 1);
    return points;
}

static cJSON *grid_value(const search_dim *d, int points, int64_t k) {
    if (d->scale == SCALE_LIST) return cJSON_Duplicate(cJSON_GetArrayItem(d->list, (int)k), true);
    int64_t n = grid_count(d, points);
    double f = n > 1 ? (double)k / (double)(n - 1) : 0.0, v;
    if (d->scale == SCALE_LOG)
        v = exp(log(d->min) + f * (log(d->max) - log(d->min)));
    else
        v = d->min + f * (d->max - d->min);
    if (d->scale == SCALE_INT) return cJSON_CreateNumber(round(v));
    char text[32];
    snprintf(text, sizeof text, "%.6g", v);
    return cJSON_CreateNumber(strtod(text, NULL));
}

int64_t space_grid_size(const search_space *s, int points) {
    int64_t size = 1;
    for (int i = 0; i < s->n; i++) {
        int64_t c = grid_count(&s->dims[i], points);
        if (size > INT64_MAX / c) return INT64_MAX;
        size *= c;
    }
    return size;
}

cJSON *space_grid_point(const search_space *s, int points, int64_t k) {
    cJSON *obj = cJSON_CreateObject();
    int64_t idx[SEARCH_MAX_DIMS];
    for (int i = s->n - 1; i >= 0; i--) {
        int64_t c = grid_count(&s->dims[i], points);
        idx[i] = k % c;
        k /= c;
    }
    for (int i = 0; i < s->n && obj; i++) obj = add(obj, s->dims[i].key, grid_value(&s->dims[i], points, idx[i]));
    return obj;
}
