/* `ctrain search`: hyperparameter search over `ctrain train` runs.
 *
 * The pieces: the space (search_space.c: which train options vary and how
 * they are drawn), the trials (search_trials.c: each a `ctrain train`
 * subprocess of this same binary with its own config file, seed, metrics
 * and checkpoint under DIR/trial-NNN/, J at a time), the results
 * (search_results.c: DIR/trials.jsonl, the table, DIR/best.json) and the
 * command (cmd_search.c: options, methods, resuming).
 *
 * Every trial's options are one JSON object, the --config file the trial
 * runs with (DIR/trial-NNN/config.json): the train flags given to the
 * search, the values drawn from the space, the trial's --seed and the
 * search's --data-seed. best.json is a copy of the best trial's, so it
 * reruns that trial exactly (training is deterministic).
 */
#ifndef CTRAIN_TOOLS_SEARCH_H
#define CTRAIN_TOOLS_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define SEARCH_MAX_DIMS 64

typedef enum { SCALE_LIST, SCALE_LINEAR, SCALE_LOG, SCALE_INT } search_scale;

typedef struct search_dim {
    const char *key;     /* the train option (points into the space's JSON) */
    search_scale scale;
    const cJSON *list;   /* SCALE_LIST: the values */
    double min, max;     /* ranges */
} search_dim;

typedef struct search_space {
    cJSON *doc;          /* owns everything the dims point to */
    search_dim dims[SEARCH_MAX_DIMS];
    int n;
} search_space;

/* The space from a JSON object (taken over: freed by space_free): every key
 * a `ctrain train` option, every value a non-empty list or a range
 * {"min", "max", "scale": "log|linear|int"} whose ends the option accepts.
 * where names the file in messages. CLI_EXIT_OK or the exit code after
 * one line naming the key. */
int space_from_json(cJSON *doc, const char *where, search_space *s);
/* The same from a file. */
int space_load(const char *path, search_space *s);
void space_free(search_space *s);

/* Config `config` of a random search: one value per dimension, drawn from
 * (seed, config, dimension) alone. A new object of key -> value. */
cJSON *space_sample(const search_space *s, uint64_t seed, int64_t config);
/* The grid: ranges become `points` values (log: geometric, int: rounded
 * and distinct). Its size (capped at INT64_MAX), and point k of it, the
 * first key varying slowest. */
int64_t space_grid_size(const search_space *s, int points);
cJSON *space_grid_point(const search_space *s, int points, int64_t k);

/* ----------------------------------------------------------------- trials */

typedef enum { TRIAL_PENDING, TRIAL_OK, TRIAL_FAILED } trial_status;

typedef struct trial {
    int id;              /* DIR/trial-<id> */
    int config;          /* which drawn config (halving runs one at several rungs) */
    int rung;            /* halving: the rung; else 0 */
    cJSON *options;      /* the whole config file of the trial */
    trial_status status;
    double val_loss, val_acc, test_loss, test_acc, time_s; /* NAN where absent */
    int exit_code;
    int threads;         /* the trial's OMP/OpenBLAS threads: a rerun with as many is bit-identical */
    char error[256];
} trial;

typedef struct search_run {
    const char *exe;     /* this binary (/proc/self/exe) */
    const char *dir;     /* --out */
    int parallel;        /* trials at once */
    int threads;         /* OMP/OpenBLAS threads per trial: cores / parallel */
    bool quiet;
    const char *objective; /* "val_loss" or "val_accuracy" */
} search_run;

/* Runs the pending trials of list (n of them), `parallel` at a time, each
 * result appended to DIR/trials.jsonl as it comes. A trial that fails is
 * recorded as failed; false only when the search itself cannot go on
 * (trials.jsonl cannot be written, no process can be started), after
 * reporting. */
bool trials_run(const search_run *r, trial *list, int n);
/* The number of processors this process may use. */
int search_cores(void);

/* ---------------------------------------------------------------- results */

/* Lower is better for val_loss, higher for val_accuracy; NAN is worst.
 * Negative if a is better than b. */
int trial_compare(const char *objective, const trial *a, const trial *b);
/* The record of a finished trial: one JSON line (malloc'ed). */
char *trial_to_json(const trial *t);
/* Marks the trials of list that DIR/trials.jsonl records as finished (a
 * line with the trial's id and the very same options), with their
 * results; lines that do not parse (a line cut by a kill) are dropped and
 * the file rewritten without them. False after reporting. */
bool results_load(const char *dir, trial *list, int n);
/* The table of the trials sorted by the objective, and DIR/best.json from
 * the best of those at rung min_rung or above (halving: the last rung).
 * False if none finished well or best.json cannot be written, after
 * reporting. */
bool results_report(const search_run *r, trial *list, int n, const search_space *s, int min_rung);

/* Files: JSON of a whole file (NULL with a message on stderr naming it),
 * and an atomic write (temporary file, fsync, rename). */
cJSON *search_read_json(const char *path, bool quiet_missing);
bool search_write_file(const char *path, const char *text);

#endif
