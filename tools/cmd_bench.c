/* `ctrain bench`: throughput of named workloads on one device.
 *
 * Parses the command line, measures the device's peak once, then sets up,
 * times and reports each workload in turn (tools/bench_*.c hold the
 * pieces, bench.h says how they fit). A workload the device or precision
 * cannot run is reported as unsupported, with the reason, and the others
 * still run; a workload that fails makes the exit status 1.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "cli_options.h"

#define DEFAULT_WARMUP 3
#define DEFAULT_STEPS 10
#define DEFAULT_REPS 5
#define DEFAULT_SEED 1

static void list_workloads(FILE *out) {
    for (int i = 0; i < bench_workload_count(); i++) {
        const bench_workload *w = bench_workload_at(i);
        fprintf(out, "%-14s %-6s %s\n", w->name, w->kind, w->summary);
    }
}

/* Every name of a comma-separated list must be a workload. */
static bool check_workloads(const char *list) {
    if (strcmp(list, "all") == 0) return true;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        char name[64];
        if (len == 0 || len >= sizeof name) {
            cli_usage_error("bench", "--workload wants names separated by commas, not '%s'", list);
            return false;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!bench_workload_find(name)) {
            cli_usage_error("bench", "unknown workload '%s'; 'ctrain bench --list' lists them", name);
            return false;
        }
        if (p[len] == '\0') return true;
        p += len + 1;
    }
}

/* Whether workload w is among those the user named. */
static bool selected(const char *list, const bench_workload *w) {
    if (strcmp(list, "all") == 0) return true;
    size_t n = strlen(w->name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, w->name, n) == 0) return true;
        p += len + (p[len] == ',');
    }
    return false;
}

typedef struct bench_cli {
    bench_opts o;
    bool list;
} bench_cli;

static bool set_workload(cli_parser *p, const cli_row *r, const char *text, const char *opt) {
    (void)r;
    (void)opt;
    if (!check_workloads(text)) return false;
    ((bench_cli *)p->cfg)->o.workload = text;
    return true;
}

static bool set_json(cli_parser *p, const cli_row *r, const char *text, const char *opt) {
    (void)r;
    if (!text[0]) {
        cli_usage_error("bench", "%s wants a file name", opt);
        return false;
    }
    ((bench_cli *)p->cfg)->o.json_path = text;
    return true;
}

static const char *precision_name(int k) { return bench_precision_name((bench_precision)k); }

#define T bench_cli
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)
#define COUNT(n, member, lo, hi) ROW(n, CLI_INT, member), .min = lo, .max = hi

static const cli_section sections[] = {{"options", "options"}};

static const cli_row options[] = {
    {ROW("workload", CLI_CUSTOM, o.workload), .set = set_workload, .meta = "W", .def = "all",
     .help = "a name, a comma-separated list, or all"},
    {ROW("list", CLI_FLAG, list), .help = "list the workloads and exit"},
    {ROW("device", CLI_DEVICE, o.device), .meta = "D", .def = "cpu", .help = "cpu, cuda or cuda:N"},
    {ROW("precision", CLI_ENUM, o.precision), .meta = "P", .def = "fp32",
     .choices = &(const cli_choices){.name = precision_name, .count = BENCH_PRECISION_COUNT},
     .want = "fp32, tf32, fp16 or bf16", .help = "fp32, tf32, fp16 or bf16"},
    {COUNT("batch-size", o.batch_size, 1, 1 << 24),
     .help = "batch of the model and softmax-xent workloads (default: each workload's own)"},
    {COUNT("warmup", o.warmup, 0, 1000000), .def = CLI_STR(DEFAULT_WARMUP), .help = "untimed steps first"},
    {COUNT("steps", o.steps, 1, 1000000), .def = CLI_STR(DEFAULT_STEPS), .help = "timed steps per repetition"},
    {COUNT("reps", o.reps, 1, 1000), .def = CLI_STR(DEFAULT_REPS), .help = "repetitions"},
    {COUNT("hidden", o.hidden, 1, 1 << 16), .help = "mlp-wide's width (default 1024 on the CPU, 4096 on a GPU)"},
    {COUNT("layers", o.layers, 1, 64), .def = "4", .help = "mlp-wide's hidden layers"},
    {ROW("seed", CLI_U64, o.seed), .meta = "S", .def = CLI_STR(DEFAULT_SEED),
     .help = "seed of the weights and the synthetic data"},
    {COUNT("threads", o.threads, 1, 4096), .def = "OMP_NUM_THREADS, else every core",
     .help = "CPU threads of the kernels and of OpenBLAS (docs/cpu_backend.md)"},
    {ROW("quick", CLI_FLAG, o.quick), .help = "tiny sizes and few steps: checks the runner, not the machine"},
    {ROW("profile", CLI_FLAG, o.profile),
     .help = "after the timing, run the timed steps once more with every op timed (the device "
             "synchronised around each) and print milliseconds per step by op"},
    {ROW("json", CLI_CUSTOM, o.json_path), .set = set_json, .meta = "PATH",
     .help = "also write the results, machine and versions as JSON"},
};

const cli_table bench_table = {
    .cmd = "bench",
    .usage = "usage: ctrain bench [--workload NAME[,NAME...]|all] [--device D] [--precision P]\n"
             "                    [--batch-size N] [--warmup N] [--steps N] [--reps N]\n"
             "                    [--hidden N] [--layers N] [--seed S] [--threads N] [--quick]\n"
             "                    [--profile] [--json PATH]\n"
             "       ctrain bench --list\n",
    .about = "Times named workloads on synthetic data: warm-up steps, then repetitions of\n"
             "timed steps; prints the median time per step with its spread, steps/s,\n"
             "samples/s, GFLOP/s or GB/s, the fraction of the device's peak (measured\n"
             "first: a large matrix product and a large copy) and the device memory.\n"
             "benchmarks/README.md describes the workloads and how work is counted.\n",
    .footer = "With OpenBLAS's pthread build (see `ctrain info`) on few cores, run with\n"
              "OMP_WAIT_POLICY=passive (docs/cpu_backend.md). Exit status: 0, 1 if a\n"
              "workload failed (or a named one is unsupported), 2 for a bad command line.\n",
    .sections = sections,
    .n_sections = (int)(sizeof sections / sizeof sections[0]),
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_bench_usage(FILE *out) {
    cli_print_help(out, &bench_table);
}

/* Returns CLI_EXIT_OK to go on, or the exit code to stop with; *done tells. */
static int parse_args(int argc, char **argv, bench_cli *c, bool *done) {
    *done = true;
    if (cli_help_asked(argc, argv)) {
        cmd_bench_usage(stdout);
        return CLI_EXIT_OK;
    }
    cli_parser p;
    cli_parser_init(&p, &bench_table, c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    *done = rc != CLI_EXIT_OK;
    return rc;
}

/* Sets up, times, checks and tears down one workload. */
/* --profile: o->steps more steps with the op profiler on, reported per step
 * with the time outside the graph's kernels (the optimizer, the host). */
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ct_status profile_pass(const bench_workload *w, const bench_opts *o, void *state) {
    ct_op_profile_reset();
    ct_op_profile_enable(true);
    ct_status st = ct_device_sync(o->device);
    double t0 = now_seconds();
    for (long i = 0; st == CT_OK && i < o->steps; i++) st = w->step(state);
    if (st == CT_OK) st = ct_device_sync(o->device);
    double secs = now_seconds() - t0;
    ct_op_profile_enable(false);
    if (st != CT_OK) return st;
    printf("\n%s: time per step by op (%ld steps, synchronised)\n", w->name, o->steps);
    ct_op_profile_report(stdout, (double)o->steps);
    printf("  %-20s %10.3f\n\n", "whole step", 1e3 * secs / (double)o->steps);
    return CT_OK;
}

static void run_one(const bench_workload *w, const bench_opts *o, bench_result *r) {
    memset(r, 0, sizeof *r);
    r->w = w;
    const char *why = w->unsupported ? w->unsupported(w, o) : NULL;
    if (why) {
        r->status = BENCH_UNSUPPORTED;
        snprintf(r->reason, sizeof r->reason, "%s", why);
        return;
    }
    bench_clear_error();
    void *state = NULL;
    ct_status st = w->setup(w, o, &state, &r->setup);
    if (st == CT_OK) st = bench_measure(o->device, w->step, state, o->warmup, o->steps, o->reps, &r->stats);
    if (st == CT_OK && o->profile) st = profile_pass(w, o, state);
    if (st == CT_OK && w->check) st = w->check(state);
    if (st != CT_OK) {
        /* The engine refusing the workload on this device (an op without a
         * kernel there, say) is a limit to report, not a broken run. */
        r->status = st == CT_ERR_UNSUPPORTED ? BENCH_UNSUPPORTED : BENCH_FAILED;
        snprintf(r->reason, sizeof r->reason, "%s", bench_last_error());
    }
    if (state) w->teardown(state);
    r->max_rss = bench_max_rss();
}

int cmd_bench(int argc, char **argv) {
    bench_cli c = {.o = {.warmup = -1, .steps = -1, .reps = -1, .seed = DEFAULT_SEED, .workload = "all"}};
    bool done;
    int rc = parse_args(argc, argv, &c, &done);
    if (done) return rc;
    if (c.list) {
        list_workloads(stdout);
        return CLI_EXIT_OK;
    }
    bench_opts *o = &c.o;
    if (o->threads > 0) (void)ct_cpu_set_threads((int)o->threads); /* range-checked by the table */
    /* --quick shortens the counts too, unless they were given. */
    if (o->warmup < 0) o->warmup = o->quick ? 1 : DEFAULT_WARMUP;
    if (o->steps < 0) o->steps = o->quick ? 2 : DEFAULT_STEPS;
    if (o->reps < 0) o->reps = o->quick ? 3 : DEFAULT_REPS;
    if (ct_device_check(o->device) != CT_OK) return cli_fail("bench");

    FILE *json = NULL;
    if (o->json_path && !(json = fopen(o->json_path, "w"))) {
        fprintf(stderr, "ctrain: bench: cannot write '%s': %s\n", o->json_path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    bench_result *results = calloc((size_t)bench_workload_count(), sizeof *results);
    if (!results) {
        if (json) fclose(json);
        fprintf(stderr, "ctrain: bench: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    bench_peak peak;
    bench_measure_peak(o, &peak);
    bench_print_header(stdout, o, &peak);
    fflush(stdout);

    int n = 0;
    bool all = strcmp(o->workload, "all") == 0;
    rc = CLI_EXIT_OK;
    for (int i = 0; i < bench_workload_count(); i++) {
        const bench_workload *w = bench_workload_at(i);
        if (!selected(o->workload, w)) continue;
        bench_result *r = &results[n++];
        run_one(w, o, r);
        bench_print_result(stdout, r, &peak);
        fflush(stdout);
        if (r->status == BENCH_FAILED || (r->status == BENCH_UNSUPPORTED && !all)) {
            fprintf(stderr, "ctrain: bench: %s: %s%s\n", w->name,
                    r->status == BENCH_UNSUPPORTED ? "unsupported: " : "", r->reason);
            rc = CLI_EXIT_FAIL;
        }
    }
    if (json && bench_write_json(json, o->json_path, argc, argv, o, &peak, results, n) != CT_OK) {
        fprintf(stderr, "ctrain: bench: %s\n", bench_last_error());
        rc = CLI_EXIT_FAIL;
    } else if (json) {
        printf("\nwrote %s\n", o->json_path);
    }
    free(results);
    return rc;
}
