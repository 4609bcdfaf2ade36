/* `ctrain plot`'s data: metrics files into series and panels (plot.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

#define CMD "plot"

const char *const plot_keys[] = {"train_loss", "val_loss", "test_loss",    "val_acc",   "test_acc",   "lr",
                                 "grad_norm",  "loss_scale", "samples_per_s", "tokens_per_s", "elapsed_s", NULL};

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* The legend's name of each file: its name without directory and
 * extension, or, where two files would share one, the path as given
 * without extension. */
static bool name_runs(plot_data *d, char **files, int n) {
    for (int i = 0; i < n; i++) {
        const char *slash = strrchr(files[i], '/');
        d->name_store[i] = strdup(slash ? slash + 1 : files[i]);
        if (!d->name_store[i]) return false;
    }
    for (int i = 0; i < n; i++) {
        bool clash = false;
        for (int j = 0; j < n; j++) clash |= j != i && strcmp(d->name_store[i], d->name_store[j]) == 0;
        if (clash) {
            free(d->name_store[i]);
            if (!(d->name_store[i] = strdup(files[i]))) return false;
        }
    }
    for (int i = 0; i < n; i++) {
        char *s = d->name_store[i], *dot = strrchr(s, '.');
        if (dot && dot != s && (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".json") == 0)) *dot = 0;
        d->run_name[i] = s;
    }
    d->n_runs = n;
    return true;
}

static bool add_point(plot_series *s, double x, double y) {
    if (s->n > 0 && s->x[s->n - 1] == x) return true; /* the final line repeats the last epoch's values */
    /* Going back: a run resumed from an earlier checkpoint, or a new run
     * appended to the same file; its points replace those from there on,
     * as TensorBoard drops the steps a restarted run writes again. */
    while (s->n > 0 && s->x[s->n - 1] >= x) s->n--;
    double *nx = realloc(s->x, (size_t)(s->n + 1) * sizeof *nx);
    if (nx) s->x = nx;
    double *ny = nx ? realloc(s->y, (size_t)(s->n + 1) * sizeof *ny) : NULL;
    if (!ny) return false;
    s->y = ny;
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return true;
}

/* One metrics line into the run's series (series[k] for plot_keys[k], NULL
 * when not plotted). */
static bool add_line(const plot_data *d, const cJSON *o, plot_series **series) {
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    const char *event = cJSON_IsString(ev) ? ev->valuestring : "";
    /* By epoch: the epoch lines, and the final line for the test metrics. */
    if (d->by_epoch && strcmp(event, "test") != 0 && strcmp(event, "epoch") != 0) return true;
    const cJSON *xs = cJSON_GetObjectItemCaseSensitive(o, d->by_epoch ? "epoch" : "step");
    if (!cJSON_IsNumber(xs)) return true;
    for (int k = 0; plot_keys[k]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, plot_keys[k]);
        if (!series[k] || !cJSON_IsNumber(v) || !isfinite(v->valuedouble)) continue;
        if (d->log_y && !(v->valuedouble > 0)) continue;
        if (!add_point(series[k], xs->valuedouble, v->valuedouble)) return false;
    }
    return true;
}

/* Which keys a file has values for (have[k]), checking every line parses. */
static bool scan_file(const char *path, FILE *f, bool *have, int *lines) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int no = 0;
    bool ok = true;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        no++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            fprintf(stderr, "ctrain: %s: %s line %d is not a metrics line (a JSON object)\n", CMD, path, no);
            ok = false;
        }
        for (int k = 0; ok && plot_keys[k]; k++)
            have[k] |= cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, plot_keys[k]));
        cJSON_Delete(o);
        (*lines)++;
    }
    free(line);
    if (ok && *lines == 0) {
        fprintf(stderr, "ctrain: %s: %s holds no metrics lines\n", CMD, path);
        ok = false;
    }
    return ok;
}

/* "train_loss, val_loss, lr": the keys a file has, for a message. */
static void list_keys(const bool *have, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; plot_keys[k] && n < cap; k++)
        if (have[k]) n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", plot_keys[k]);
    if (!buf[0]) snprintf(buf, cap, "none");
}

/* The keys to draw: those asked for, each in every file, or every loss
 * and accuracy some file has. */
static bool choose_keys(char **files, int n_files, bool have[][PLOT_MAX_KEYS], const int *keys, int n_keys,
                        bool *want) {
    for (int k = 0; plot_keys[k]; k++) want[k] = false;
    for (int i = 0; i < n_keys; i++) {
        for (int f = 0; f < n_files; f++)
            if (!have[f][keys[i]]) {
                char list[256];
                list_keys(have[f], list, sizeof list);
                fprintf(stderr, "ctrain: %s: %s has no %s values (it has %s)\n", CMD, files[f], plot_keys[keys[i]],
                        list);
                return false;
            }
        want[keys[i]] = true;
    }
    if (n_keys > 0) return true;
    bool any = false;
    for (int k = 0; plot_keys[k]; k++) {
        if (!ends_with(plot_keys[k], "_loss") && !ends_with(plot_keys[k], "_acc")) continue;
        for (int f = 0; f < n_files; f++) want[k] |= have[f][k];
        any |= want[k];
    }
    if (!any) fprintf(stderr, "ctrain: %s: the files hold no loss or accuracy values\n", CMD);
    return any;
}

static const char *group_of(int k) {
    return ends_with(plot_keys[k], "_loss") ? "loss" : ends_with(plot_keys[k], "_acc") ? "accuracy" : plot_keys[k];
}

/* Losses in one panel, accuracies in another, every other metric alone. */
static void make_panels(plot_data *d) {
    for (int s = 0; s < d->n_series; s++) {
        const char *g = group_of(d->series[s].key);
        int p = 0;
        while (p < d->n_panels && strcmp(d->panels[p].title, g) != 0) p++;
        if (p == d->n_panels) {
            if (p == PLOT_MAX_PANELS) continue;
            d->panels[d->n_panels++] = (plot_panel){.title = g};
        }
        d->panels[p].series[d->panels[p].n++] = s;
    }
}

/* The points of file f into its series. */
static bool read_points(plot_data *d, FILE *fp, int f) {
    plot_series *by_key[PLOT_MAX_KEYS] = {0};
    for (int s = 0; s < d->n_series; s++)
        if (d->series[s].run == f) by_key[d->series[s].key] = &d->series[s];
    char *line = NULL;
    size_t cap = 0;
    bool ok = true;
    while (ok && getline(&line, &cap, fp) >= 0) {
        cJSON *o = cJSON_Parse(line);
        if (o) ok = add_line(d, o, by_key);
        cJSON_Delete(o);
    }
    free(line);
    if (!ok) fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
    return ok;
}

bool plot_load(plot_data *d, char **files, int n_files, const int *keys, int n_keys) {
    bool have[PLOT_MAX_RUNS][PLOT_MAX_KEYS] = {{0}};
    if (!name_runs(d, files, n_files)) return fprintf(stderr, "ctrain: %s: out of memory\n", CMD), false;
    FILE *fp[PLOT_MAX_RUNS] = {0};
    bool ok = true, want[PLOT_MAX_KEYS];
    for (int f = 0; ok && f < n_files; f++) {
        int lines = 0;
        if (!(fp[f] = fopen(files[f], "r"))) {
            fprintf(stderr, "ctrain: %s: cannot read '%s': %s\n", CMD, files[f], strerror(errno));
            ok = false;
        }
        ok = ok && scan_file(files[f], fp[f], have[f], &lines);
    }
    ok = ok && choose_keys(files, n_files, have, keys, n_keys, want);
    for (int f = 0; ok && f < n_files; f++) {
        for (int k = 0; plot_keys[k]; k++)
            if (want[k] && have[f][k]) d->series[d->n_series++] = (plot_series){.run = f, .key = k};
        rewind(fp[f]);
        ok = read_points(d, fp[f], f);
    }
    for (int f = 0; f < n_files; f++)
        if (fp[f]) fclose(fp[f]);
    if (ok) make_panels(d);
    return ok;
}

void plot_free(plot_data *d) {
    for (int s = 0; s < d->n_series; s++) {
        free(d->series[s].x);
        free(d->series[s].y);
    }
    for (int i = 0; i < PLOT_MAX_RUNS; i++) free(d->name_store[i]);
    memset(d, 0, sizeof *d);
}
