/* The methods of `ctrain search` (search.h): which trials run, in which
 * order, with which options.
 *
 * The plan depends only on the search's settings (DIR/search.json) and,
 * for halving, on the results of the rungs before, which trials.jsonl
 * holds; so a resumed search makes the same plan, finds the trials that
 * finished in trials.jsonl and runs only the others.
 *
 * halving is synchronous successive halving: every config trains for
 * min_epochs, the best 1/eta of them (by the objective) are promoted and
 * train again for eta times as many epochs, and so on up to the train
 * --epochs. A promoted config trains afresh at each rung rather than
 * resuming the rung before: a cosine schedule depends on the total epochs,
 * and a fresh run is what best.json reruns.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search.h"
#include "search_plan.h"

/* The seed of config c: its own stream, a function of the search's seed. */
static uint64_t trial_seed(uint64_t search_seed, int c) {
    uint64_t z = search_seed * 0x9E3779B97F4A7C15ull + (uint64_t)c + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) >> 33; /* 31 bits: readable in a config file */
}

static void set(cJSON *o, const char *key, cJSON *v) {
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
    else
        cJSON_AddItemToObject(o, key, v);
}

/* The trial's config file: the train flags, the drawn values, the seeds
 * (and the rung's epochs). NULL when out of memory. */
static cJSON *trial_options(const search_plan *p, const cJSON *values, int config, int64_t epochs) {
    cJSON *o = cJSON_Duplicate(p->train, true);
    if (!o) return NULL;
    const cJSON *v;
    cJSON_ArrayForEach(v, values) set(o, v->string, cJSON_Duplicate(v, true));
    set(o, "seed", cJSON_CreateNumber((double)trial_seed(p->search_seed, config)));
    if (!cJSON_GetObjectItemCaseSensitive(o, "data-seed"))
        set(o, "data-seed", cJSON_CreateNumber((double)p->search_seed));
    if (epochs > 0) set(o, "epochs", cJSON_CreateNumber((double)epochs));
    return o;
}

static cJSON *config_values(const search_plan *p, int c) {
    if (strcmp(p->method, "grid") == 0) return space_grid_point(&p->space, p->grid_points, c);
    return space_sample(&p->space, p->search_seed, c);
}

static bool fill(const search_plan *p, trial *t, int id, int config, int rung, int64_t epochs) {
    memset(t, 0, sizeof *t);
    t->id = id;
    t->config = config;
    t->rung = rung;
    t->val_loss = t->val_acc = t->test_loss = t->test_acc = t->time_s = NAN;
    cJSON *values = config_values(p, config);
    t->options = values ? trial_options(p, values, config, epochs) : NULL;
    cJSON_Delete(values);
    if (!t->options) fprintf(stderr, "ctrain: search: out of memory\n");
    return t->options != NULL;
}

/* Loads what finished, runs the rest; false if the search cannot go on. */
static bool run_batch(const search_run *r, trial *list, int n, int *finished_before) {
    if (!results_load(r->dir, list, n)) return false;
    int done = 0;
    for (int i = 0; i < n; i++) done += list[i].status != TRIAL_PENDING;
    *finished_before += done;
    return trials_run(r, list, n);
}

static const char *sort_obj;
static int by_objective(const void *a, const void *b) {
    return trial_compare(sort_obj, (const trial *)a, (const trial *)b);
}

/* Successive halving; *list grows rung by rung. */
static bool halving(const search_plan *p, const search_run *r, trial **list, int *n, int *min_rung, int *before) {
    int64_t epochs = p->min_epochs < p->max_epochs ? p->min_epochs : p->max_epochs;
    int configs[p->trials > 0 ? p->trials : 1], m = p->trials, id = 0;
    for (int c = 0; c < m; c++) configs[c] = c;
    for (int rung = 0;; rung++) {
        trial *more = realloc(*list, (size_t)(*n + m) * sizeof **list);
        if (!more) return false;
        *list = more;
        trial *batch = *list + *n;
        for (int k = 0; k < m; k++)
            if (!fill(p, &batch[k], id++, configs[k], rung, epochs)) return false;
        *n += m;
        if (!r->quiet) printf("rung %d: %d config%s, %lld epoch%s each\n", rung, m, m == 1 ? "" : "s",
                              (long long)epochs, epochs == 1 ? "" : "s");
        if (!run_batch(r, batch, m, before)) return false;
        *min_rung = rung;
        if (epochs >= p->max_epochs) return true;
        /* Promote the best 1/eta (at least one) that finished. */
        trial *sorted = malloc((size_t)m * sizeof *sorted);
        if (!sorted) return false;
        memcpy(sorted, batch, (size_t)m * sizeof *sorted);
        sort_obj = p->objective;
        qsort(sorted, (size_t)m, sizeof *sorted, by_objective);
        int keep = m / p->eta > 0 ? m / p->eta : 1, kept = 0;
        for (int k = 0; k < keep; k++)
            if (sorted[k].status == TRIAL_OK) configs[kept++] = sorted[k].config;
        free(sorted);
        if (kept == 0) return true;
        m = kept;
        epochs = epochs * p->eta < p->max_epochs ? epochs * p->eta : p->max_epochs;
    }
}

bool plan_run(const search_plan *p, const search_run *r, trial **list, int *n, int *min_rung) {
    *list = NULL;
    *n = 0;
    *min_rung = 0;
    int before = 0;
    bool ok;
    if (strcmp(p->method, "halving") == 0) {
        ok = halving(p, r, list, n, min_rung, &before);
    } else {
        *list = calloc((size_t)(p->trials > 0 ? p->trials : 1), sizeof **list);
        ok = *list != NULL;
        for (int c = 0; ok && c < p->trials; c++) ok = fill(p, &(*list)[(*n)++], c, c, 0, 0);
        ok = ok && run_batch(r, *list, *n, &before);
    }
    if (ok && before && !r->quiet) printf("(%d trial%s finished before this resume and did not run again)\n", before,
                                         before == 1 ? "" : "s");
    return ok;
}

void plan_free_trials(trial *list, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(list[i].options);
    free(list);
}
