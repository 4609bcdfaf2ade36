/* The results of `ctrain search` (search.h): DIR/trials.jsonl, one line per
 * finished trial; reading it back to resume; the table sorted by the
 * objective; DIR/best.json; and the small file helpers the search shares.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "search.h"

cJSON *search_read_json(const char *path, bool quiet_missing) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!(quiet_missing && errno == ENOENT)) fprintf(stderr, "ctrain: search: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, got;
    char *text = malloc(cap);
    while (text && (got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 < cap) continue;
        char *more = cap < (64u << 20) ? realloc(text, cap * 2) : NULL;
        if (!more) free(text);
        text = more;
        cap *= 2;
    }
    bool err = ferror(f);
    fclose(f);
    if (!text || err) {
        free(text);
        fprintf(stderr, "ctrain: search: %s: cannot read it\n", path);
        return NULL;
    }
    text[len] = 0;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(text, &end, false);
    if (doc && end[strspn(end, " \t\r\n")]) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    if (!doc) fprintf(stderr, "ctrain: search: %s: not valid JSON\n", path);
    free(text);
    return doc;
}

bool search_write_file(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) {
        fprintf(stderr, "ctrain: search: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    return ok;
}

int trial_compare(const char *objective, const trial *a, const trial *b) {
    bool loss = strcmp(objective, "val_loss") == 0;
    double x = loss ? a->val_loss : a->val_acc, y = loss ? b->val_loss : b->val_acc;
    bool xa = a->status == TRIAL_OK && !isnan(x), ya = b->status == TRIAL_OK && !isnan(y);
    if (xa != ya) return xa ? -1 : 1;
    if (xa && x != y) return (loss ? x < y : x > y) ? -1 : 1;
    return a->id - b->id; /* ties: the earlier trial */
}

static void add_num(cJSON *o, const char *key, double v) {
    if (isnan(v))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

char *trial_to_json(const trial *t) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "trial", t->id);
    cJSON_AddNumberToObject(o, "config", t->config);
    cJSON_AddNumberToObject(o, "rung", t->rung);
    cJSON_AddStringToObject(o, "status", t->status == TRIAL_OK ? "ok" : "failed");
    cJSON_AddItemToObject(o, "options", cJSON_Duplicate(t->options, true));
    add_num(o, "val_loss", t->val_loss);
    add_num(o, "val_accuracy", t->val_acc);
    add_num(o, "test_loss", t->test_loss);
    add_num(o, "test_accuracy", t->test_acc);
    cJSON_AddNumberToObject(o, "time_s", t->time_s);
    cJSON_AddNumberToObject(o, "threads", t->threads);
    if (t->status != TRIAL_OK) {
        cJSON_AddNumberToObject(o, "exit", t->exit_code);
        cJSON_AddStringToObject(o, "error", t->error);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static double get(const cJSON *line, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(line, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* One line of trials.jsonl into the trial of the plan it names, if its
 * options are that trial's (a line from another plan is not a result of
 * this one). */
static void take_line(const cJSON *line, trial *list, int n) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(line, "trial");
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(line, "status"));
    if (!cJSON_IsNumber(id) || !status) return;
    for (int i = 0; i < n; i++) {
        trial *t = &list[i];
        if (t->id != id->valueint) continue;
        if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(line, "options"), t->options, true)) return;
        t->status = strcmp(status, "ok") == 0 ? TRIAL_OK : TRIAL_FAILED;
        t->val_loss = get(line, "val_loss");
        t->val_acc = get(line, "val_accuracy");
        t->test_loss = get(line, "test_loss");
        t->test_acc = get(line, "test_accuracy");
        t->time_s = get(line, "time_s");
        t->threads = (int)get(line, "threads");
        const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(line, "error"));
        if (err) snprintf(t->error, sizeof t->error, "%.255s", err);
        return;
    }
}

bool results_load(const char *dir, trial *list, int n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/trials.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT;
    size_t cap = 1 << 16, len = 0;
    char *keep = malloc(cap), line[65536];
    bool cut = false;
    while (keep && fgets(line, sizeof line, f)) {
        cJSON *j = strchr(line, '\n') ? cJSON_Parse(line) : NULL;
        if (!j) {
            cut = true; /* a line a kill cut short: that trial runs again */
            continue;
        }
        take_line(j, list, n);
        cJSON_Delete(j);
        size_t l = strlen(line);
        if (len + l + 1 > cap && !(keep = realloc(keep, cap = 2 * (len + l + 1)))) break;
        memcpy(keep + len, line, l + 1);
        len += l;
    }
    fclose(f);
    bool ok = keep != NULL;
    if (ok && cut) {
        if (len && keep[len - 1] == '\n') keep[len - 1] = 0; /* search_write_file adds it */
        ok = len ? search_write_file(path, keep) : unlink(path) == 0;
    }
    free(keep);
    return ok;
}

static const char *objective_of(const char *objective) {
    return strcmp(objective, "val_loss") == 0 ? "lowest val_loss" : "highest val_accuracy";
}

static const char *sort_objective;
static int by_objective(const void *a, const void *b) {
    return trial_compare(sort_objective, *(trial *const *)a, *(trial *const *)b);
}

/* A value of the options as the table shows it. */
static void cell(const cJSON *v, char *buf, size_t cap) {
    if (!v)
        snprintf(buf, cap, "-");
    else if (cJSON_IsString(v))
        snprintf(buf, cap, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(buf, cap, "%.6g", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsArray(v)) { /* [512, 256]: as the flag takes it, 512,256 */
        size_t len = 0;
        const cJSON *e;
        buf[0] = 0;
        cJSON_ArrayForEach(e, v) {
            char one[32];
            cell(e, one, sizeof one);
            if (len < cap) len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "," : "", one);
        }
    } else {
        snprintf(buf, cap, "?");
    }
}

static void print_table(trial **sorted, int n, const search_space *s, bool rungs) {
    printf("%-10s", "trial");
    if (rungs) printf(" %6s", "epochs");
    for (int d = 0; d < s->n; d++) printf(" %12s", s->dims[d].key);
    printf(" %9s %8s %8s %8s  %s\n", "val_loss", "val_acc", "test_acc", "time_s", "status");
    for (int i = 0; i < n; i++) {
        const trial *t = sorted[i];
        char c[64];
        printf("trial-%03d ", t->id);
        if (rungs) {
            cell(cJSON_GetObjectItemCaseSensitive(t->options, "epochs"), c, sizeof c);
            printf(" %6s", c);
        }
        for (int d = 0; d < s->n; d++) {
            cell(cJSON_GetObjectItemCaseSensitive(t->options, s->dims[d].key), c, sizeof c);
            printf(" %12s", c);
        }
        printf(" %9.4f %7.2f%% %7.2f%% %8.1f  %s\n", t->val_loss, 100 * t->val_acc, 100 * t->test_acc, t->time_s,
               t->status == TRIAL_OK ? "ok" : "failed");
    }
}

bool results_report(const search_run *r, trial *list, int n, const search_space *s, int min_rung) {
    trial **sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) return false;
    bool rungs = false;
    for (int i = 0; i < n; i++) {
        sorted[i] = &list[i];
        rungs |= list[i].rung > 0;
    }
    sort_objective = r->objective;
    qsort(sorted, (size_t)n, sizeof *sorted, by_objective);
    if (!r->quiet) print_table(sorted, n, s, rungs);
    const trial *best = NULL;
    for (int i = 0; i < n && !best; i++)
        if (sorted[i]->status == TRIAL_OK && sorted[i]->rung >= min_rung) best = sorted[i];
    free(sorted);
    if (!best) {
        fprintf(stderr, "ctrain: search: no trial finished with a %s; see the logs in %s/trial-*/log.txt\n",
                r->objective, r->dir);
        return false;
    }
    char path[4096], *text = cJSON_Print(best->options);
    snprintf(path, sizeof path, "%s/best.json", r->dir);
    bool ok = text && search_write_file(path, text);
    free(text);
    if (ok) {
        printf("best (%s): trial-%03d  val_loss %.4f  val_acc %.2f%%\n", objective_of(r->objective), best->id,
               best->val_loss, 100 * best->val_acc);
        if (best->threads > 0)
            printf("rerun it (bit-identically with as many threads): OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d ", best->threads,
                   best->threads);
        else
            printf("rerun it: ");
        printf("ctrain train --config %s\n", path);
    }
    return ok;
}
