/* `ctrain search`: hyperparameter search over `ctrain train` runs
 * (search.h has the design). This file: the command's own options, the
 * train flags that pass through to every trial, starting a search in DIR
 * (DIR/search.json records it) or resuming one, and the report.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "search.h"
#include "search_plan.h"
#include "train_opts.h"

#define CMD "search"

typedef struct search_cfg {
    const char *space, *method, *out, *objective, *resume;
    int trials;
    bool trials_set;
    int parallel;
    bool parallel_set;
    uint64_t seed;
    int eta, grid_points;
    int64_t min_epochs;
    bool quiet;
} search_cfg;

typedef search_cfg T;
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)
static const cli_section sections[] = {{"options", "options"}};
static const cli_choices methods = {.names = (const char *const[]){"grid", "random", "halving", NULL}};
static const cli_choices objectives = {.names = (const char *const[]){"val_loss", "val_accuracy", NULL}};

static const cli_row options[] = {
    {ROW("space", CLI_STRING, space), .meta = "FILE",
     .help = "JSON object: per train option a list of values or a range {\"min\", \"max\", \"scale\": "
             "\"log|linear|int\"}"},
    {ROW("method", CLI_STRING, method), .choices = &methods, .def = "random",
     .help = "grid: every combination (ranges as --grid-points values); random: --trials draws; halving: "
             "successive halving of --trials draws over rungs of epochs"},
    {ROW("trials", CLI_INT, trials), CLI_MARK(T, trials_set), .min = 1, .max = 100000, .meta = "N",
     .def = "8; grid: the whole grid", .help = "configs to try"},
    {ROW("parallel", CLI_INT, parallel), CLI_MARK(T, parallel_set), .min = 1, .max = 1024, .meta = "J", .def = "1",
     .help = "trials at once, each with cores / J threads"},
    {ROW("out", CLI_STRING, out), .meta = "DIR",
     .help = "the search's directory: trial-NNN/ (config, log, metrics, checkpoint), trials.jsonl, best.json"},
    {ROW("objective", CLI_STRING, objective), .choices = &objectives, .def = "val_loss",
     .help = "what ranks the trials (val_loss: lowest, val_accuracy: highest); needs a validation set"},
    {ROW("search-seed", CLI_U64, seed), .def = "1",
     .help = "the draws and each trial's --seed; also every trial's --data-seed unless given"},
    {ROW("eta", CLI_INT, eta), .min = 2, .max = 100, .def = "3",
     .help = "halving: keep the best 1/eta at each rung, with eta times the epochs"},
    {ROW("min-epochs", CLI_INT, min_epochs), .min = 1, .max = 1 << 30, .def = "1",
     .help = "halving: epochs of the first rung (the last has the train --epochs)"},
    {ROW("grid-points", CLI_INT, grid_points), .min = 2, .max = 1000, .def = "3",
     .help = "grid: values taken from each range"},
    {ROW("resume-search", CLI_STRING, resume), .meta = "DIR",
     .help = "continue the search in DIR: only the trials that did not finish run (--parallel may change)"},
    {ROW("quiet", CLI_FLAG, quiet), .help = "print only the best trial"},
};

const cli_table search_table = {
    .cmd = CMD,
    .usage = "usage: ctrain search --space FILE --out DIR [options] [train options]\n"
             "       ctrain search --resume-search DIR [--parallel J]\n",
    .about = "Runs `ctrain train` once per trial (this same program, as a subprocess), each\n"
             "with the train options given here plus the values the space draws, its own\n"
             "--seed, and its config, log, metrics and checkpoint in DIR/trial-NNN/. Writes\n"
             "DIR/trials.jsonl as trials finish, prints a table sorted by the objective and\n"
             "writes DIR/best.json, a --config file that reruns the best trial.\n",
    .footer = "Any `ctrain train` option may follow (not --metrics, --save, --resume, --config,\n"
              "--seed or --quiet: the search sets those). A trial that fails is recorded as\n"
              "failed and the search goes on. Exits 0 when a trial finished well, 1 when none\n"
              "did or the search could not go on, 2 for a bad command line or space.\n",
    .sections = sections,
    .n_sections = 1,
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_search_usage(FILE *out) {
    cli_print_help(out, &search_table);
}

/* The search's own options into s_argv, the train flags into *train (a
 * config object); usage errors name the flag. */
static int split_args(int argc, char **argv, char **s_argv, int *s_argc, char **t_argv, int *t_argc,
                      cJSON *train) {
    static const char *const owned[] = {"metrics", "save", "resume", "config", "seed", "quiet", "dist", NULL};
    s_argv[(*s_argc)++] = argv[0];
    t_argv[(*t_argc)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return cli_usage_error(CMD, "unexpected argument '%s'", a);
        char name[80];
        size_t len = strcspn(a + 2, "=");
        snprintf(name, sizeof name, "%.*s", (int)(len < 79 ? len : 79), a + 2);
        const cli_row *o = cli_find(&search_table, name);
        if (o) {
            s_argv[(*s_argc)++] = argv[i];
            if (!cli_is_switch(o) && !a[2 + len] && i + 1 < argc) s_argv[(*s_argc)++] = argv[++i];
            continue;
        }
        if (!(o = cli_find(&train_table, name))) return cli_usage_error(CMD, "unknown option '%s'", a);
        for (int k = 0; owned[k]; k++)
            if (strcmp(owned[k], name) == 0)
                return cli_usage_error(CMD, "--%s: the search sets it for each trial (--search-seed seeds them)", name);
        t_argv[(*t_argc)++] = argv[i];
        if (!cli_is_switch(o) && !a[2 + len] && i + 1 < argc) t_argv[(*t_argc)++] = argv[i + 1];
        cJSON *v;
        if (cli_is_switch(o))
            v = cJSON_CreateTrue();
        else if (a[2 + len] == '=')
            v = cJSON_CreateString(a + 3 + len);
        else if (i + 1 < argc)
            v = cJSON_CreateString(argv[++i]);
        else
            return cli_usage_error(CMD, "option '%s' needs a value", a);
        cJSON_DeleteItemFromObjectCaseSensitive(train, name);
        cJSON_AddItemToObject(train, name, v);
    }
    return CLI_EXIT_OK;
}

/* The train flags as `ctrain train` would take them (its own messages),
 * and what the search needs from them: the epochs, a validation set. */
static int check_train(const cJSON *train, const search_plan *p) {
    cli_table t = train_table;
    t.cmd = CMD;
    train_cfg c;
    train_cfg_defaults(&c);
    cli_parser parser;
    cli_parser_init(&parser, &t, &c, false);
    int rc = cli_apply_json(&parser, "the train options", train);
    if (rc == CLI_EXIT_OK) rc = train_check_options(&c);
    bool lm = train_is_lm(&c);
    int64_t epochs = c.epochs;
    bool val = c.data.val_split > 0 || lm || cJSON_GetObjectItemCaseSensitive(p->space.doc, "val-split");
    cli_parser_free(&parser);
    if (rc != CLI_EXIT_OK) return rc;
    if (!val) return cli_usage_error(CMD, "--objective %s needs a validation set: add --val-split, e.g. 0.1", p->objective);
    if (lm && strcmp(p->objective, "val_accuracy") == 0)
        return cli_usage_error(CMD, "--objective val_accuracy: a language model has only a val_loss");
    if (strcmp(p->method, "halving") == 0) {
        if (cJSON_GetObjectItemCaseSensitive(p->space.doc, "epochs"))
            return cli_usage_error(CMD, "--method halving sets the epochs of each rung: 'epochs' cannot be in the space");
        if (cJSON_GetObjectItemCaseSensitive(train, "steps"))
            return cli_usage_error(CMD, "--method halving counts in epochs: --steps is not for it");
    }
    for (int d = 0; d < p->space.n; d++)
        if (cJSON_GetObjectItemCaseSensitive(train, p->space.dims[d].key))
            return cli_usage_error(CMD, "--%s is given and also in the space", p->space.dims[d].key);
    ((search_plan *)p)->max_epochs = epochs;
    return CLI_EXIT_OK;
}

/* mkdir -p; false after reporting. */
static bool make_dir(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *s = path + 1;; s++) {
        bool end = *s == 0;
        if (*s == '/' || end) {
            *s = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                fprintf(stderr, "ctrain: %s: --out '%s': cannot make %s: %s\n", CMD, dir, path, strerror(errno));
                return false;
            }
            if (end) break;
            *s = '/';
        }
    }
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "ctrain: %s: --out '%s': %s\n", CMD, dir, strerror(errno));
        return false;
    }
    return true;
}

/* DIR/search.json: what a resume rebuilds the plan from. */
static cJSON *plan_record(const search_plan *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", p->method);
    cJSON_AddNumberToObject(o, "trials", p->trials);
    cJSON_AddNumberToObject(o, "search_seed", (double)p->search_seed);
    cJSON_AddStringToObject(o, "objective", p->objective);
    cJSON_AddNumberToObject(o, "eta", p->eta);
    cJSON_AddNumberToObject(o, "grid_points", p->grid_points);
    cJSON_AddNumberToObject(o, "min_epochs", (double)p->min_epochs);
    cJSON_AddItemToObject(o, "space", cJSON_Duplicate(p->space.doc, true));
    cJSON_AddItemToObject(o, "train", cJSON_Duplicate(p->train, true));
    return o;
}

static int64_t json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, bool *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi) *ok = false;
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : lo;
}

/* --resume-search DIR: the plan as DIR/search.json recorded it. */
static int load_plan(const char *dir, search_plan *p, cJSON **doc) {
    char path[4096];
    snprintf(path, sizeof path, "%s/search.json", dir);
    if (!(*doc = search_read_json(path, false))) return CLI_EXIT_FAIL;
    bool ok = true;
    p->method = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*doc, "method"));
    p->objective = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*doc, "objective"));
    p->trials = (int)json_int(*doc, "trials", 1, 100000, &ok);
    p->search_seed = (uint64_t)json_int(*doc, "search_seed", 0, INT64_MAX, &ok);
    p->eta = (int)json_int(*doc, "eta", 2, 100, &ok);
    p->grid_points = (int)json_int(*doc, "grid_points", 2, 1000, &ok);
    p->min_epochs = json_int(*doc, "min_epochs", 1, 1 << 30, &ok);
    p->train = cJSON_GetObjectItemCaseSensitive(*doc, "train");
    cJSON *space = cJSON_DetachItemFromObjectCaseSensitive(*doc, "space");
    if (!ok || !p->method || !p->objective || !cJSON_IsObject(p->train) || !space) {
        cJSON_Delete(space);
        fprintf(stderr, "ctrain: %s: %s: not a search record this version wrote\n", CMD, path);
        return CLI_EXIT_FAIL;
    }
    int rc = space_from_json(space, path, &p->space);
    return rc == CLI_EXIT_OK ? check_train(p->train, p) : rc;
}

/* A new search: the space, the train flags, DIR and its record. */
static int new_plan(const search_cfg *c, cJSON *train, search_plan *p) {
    if (!c->space) return cli_usage_error(CMD, "--space FILE is required (or --resume-search DIR)");
    if (!c->out) return cli_usage_error(CMD, "--out DIR is required");
    *p = (search_plan){.method = c->method, .trials = c->trials, .search_seed = c->seed, .objective = c->objective,
                       .eta = c->eta, .grid_points = c->grid_points, .min_epochs = c->min_epochs, .train = train};
    int rc = space_load(c->space, &p->space);
    if (rc == CLI_EXIT_OK) rc = check_train(train, p);
    if (rc != CLI_EXIT_OK) return rc;
    if (strcmp(p->method, "grid") == 0) {
        int64_t size = space_grid_size(&p->space, p->grid_points);
        if (!c->trials_set && size > 100000)
            return cli_usage_error(CMD, "the grid has %lld points: give --trials N to run the first N", (long long)size);
        p->trials = c->trials_set && c->trials < size ? c->trials : (int)size;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/search.json", c->out);
    if (access(path, F_OK) == 0)
        return cli_usage_error(CMD, "--out '%s' holds a search already: --resume-search %s continues it, or choose "
                               "another --out", c->out, c->out);
    if (!make_dir(c->out)) return CLI_EXIT_FAIL;
    cJSON *rec = plan_record(p);
    char *text = rec ? cJSON_Print(rec) : NULL;
    bool ok = text && search_write_file(path, text);
    free(text);
    cJSON_Delete(rec);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int parse(int argc, char **argv, search_cfg *c, cJSON *train) {
    *c = (search_cfg){.method = "random", .objective = "val_loss", .trials = 8, .parallel = 1, .seed = 1, .eta = 3,
                      .grid_points = 3, .min_epochs = 1};
    char **s_argv = calloc((size_t)argc + 1, sizeof *s_argv), **t_argv = calloc((size_t)argc + 1, sizeof *t_argv);
    int s_argc = 0, t_argc = 0, rc = CLI_EXIT_FAIL;
    if (s_argv && t_argv) rc = split_args(argc, argv, s_argv, &s_argc, t_argv, &t_argc, train);
    cli_parser p;
    cli_parser_init(&p, &search_table, c, false);
    if (rc == CLI_EXIT_OK) rc = cli_parse_argv(&p, s_argc, s_argv);
    cli_parser_free(&p); /* the strings point into argv */
    /* The train flags as `ctrain train` words its complaints about them. */
    cli_table t = train_table;
    t.cmd = CMD;
    train_cfg tc;
    train_cfg_defaults(&tc);
    cli_parser_init(&p, &t, &tc, false);
    if (rc == CLI_EXIT_OK) rc = cli_parse_argv(&p, t_argc, t_argv);
    cli_parser_free(&p);
    free(s_argv);
    free(t_argv);
    if (rc == CLI_EXIT_OK && c->resume) {
        int given = 0;
        for (int i = 1; i < argc; i++) given += strncmp(argv[i], "--", 2) == 0;
        if (given != 1 + c->parallel_set + c->quiet)
            return cli_usage_error(CMD, "--resume-search takes the search's options from DIR/search.json; only "
                                   "--parallel and --quiet may be given with it");
    }
    return rc;
}

int cmd_search(int argc, char **argv) {
    if (cli_help_asked(argc, argv)) {
        cmd_search_usage(stdout);
        return CLI_EXIT_OK;
    }
    search_cfg c;
    cJSON *train = cJSON_CreateObject(), *doc = NULL;
    search_plan p = {0};
    int rc = train ? parse(argc, argv, &c, train) : CLI_EXIT_FAIL;
    if (rc == CLI_EXIT_OK) rc = c.resume ? load_plan(c.resume, &p, &doc) : new_plan(&c, train, &p);
    if (rc != CLI_EXIT_OK) {
        space_free(&p.space);
        cJSON_Delete(doc);
        cJSON_Delete(train);
        return rc;
    }
    int cores = search_cores();
    search_run r = {.exe = "/proc/self/exe", .dir = c.resume ? c.resume : c.out, .parallel = c.parallel,
                    .threads = cores / c.parallel > 0 ? cores / c.parallel : 1, .quiet = c.quiet,
                    .objective = p.objective};
    if (!c.quiet)
        printf("search %s: %s, %d config%s, %d at a time with %d thread%s each, objective %s\n", r.dir, p.method,
               p.trials, p.trials == 1 ? "" : "s", r.parallel, r.threads, r.threads == 1 ? "" : "s", p.objective);
    fflush(stdout);
    trial *list = NULL;
    int n = 0, min_rung = 0;
    bool ok = plan_run(&p, &r, &list, &n, &min_rung);
    if (ok) ok = results_report(&r, list, n, &p.space, min_rung);
    plan_free_trials(list, n);
    space_free(&p.space);
    cJSON_Delete(doc);
    cJSON_Delete(train);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
