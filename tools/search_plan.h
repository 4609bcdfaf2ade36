/* The settings of one `ctrain search` (as DIR/search.json records them)
 * and running its plan (search_plan.c). */
#ifndef CTRAIN_TOOLS_SEARCH_PLAN_H
#define CTRAIN_TOOLS_SEARCH_PLAN_H

#include "search.h"

typedef struct search_plan {
    const char *method;    /* "grid", "random", "halving" */
    int trials;            /* configs (grid: points of the grid run) */
    uint64_t search_seed;
    const char *objective; /* "val_loss", "val_accuracy" */
    int eta, grid_points;
    int64_t min_epochs, max_epochs; /* halving's first and last rung */
    search_space space;
    cJSON *train;          /* the train flags given to the search, as a config object */
} search_plan;

/* Makes and runs the trials of the plan that have not finished (*list,
 * *n: every trial of the plan, for the report; *min_rung: the rung whose
 * trials may be best). False if the search could not go on, after
 * reporting. */
bool plan_run(const search_plan *p, const search_run *r, trial **list, int *n, int *min_rung);
void plan_free_trials(trial *list, int n);

#endif
