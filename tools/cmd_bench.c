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

#include "bench.h"
#include "cli.h"

#define DEFAULT_WARMUP 3
#define DEFAULT_STEPS 10
#define DEFAULT_REPS 5
#define DEFAULT_SEED 1ULL

void cmd_bench_usage(FILE *out) {
    fprintf(out,
            "usage: ctrain bench [--workload NAME[,NAME...]|all] [--device D] [--precision P]\n"
            "                    [--batch-size N] [--warmup N] [--steps N] [--reps N]\n"
            "                    [--hidden N] [--layers N] [--seed S] [--quick] [--json PATH]\n"
            "       ctrain bench --list\n"
            "\n"
            "Times named workloads on synthetic data: warm-up steps, then repetitions of\n"
            "timed steps; prints the median time per step with its spread, steps/s,\n"
            "samples/s, GFLOP/s or GB/s, the fraction of the device's peak (measured\n"
            "first: a large matrix product and a large copy) and the device memory.\n"
            "benchmarks/README.md describes the workloads and how work is counted.\n"
            "\n"
            "options:\n"
            "  --workload W    a name, a comma-separated list, or all (default all)\n"
            "  --list          list the workloads and exit\n"
            "  --device D      cpu, cuda or cuda:N (default cpu)\n"
            "  --precision P   fp32, tf32, fp16 or bf16 (default fp32)\n"
            "  --batch-size N  batch of the model and softmax-xent workloads (default: each\n"
            "                  workload's own)\n"
            "  --warmup N      untimed steps first (default %d)\n"
            "  --steps N       timed steps per repetition (default %d)\n"
            "  --reps N        repetitions (default %d)\n"
            "  --hidden N      mlp-wide's width (default 1024 on the CPU, 4096 on a GPU)\n"
            "  --layers N      mlp-wide's hidden layers (default 4)\n"
            "  --seed S        seed of the weights and the synthetic data (default %llu)\n"
            "  --quick         tiny sizes and few steps: checks the runner, not the machine\n"
            "  --json PATH     also write the results, machine and versions as JSON\n"
            "\n"
            "On a machine with few cores, run with OMP_WAIT_POLICY=passive (see\n"
            "benchmarks/README.md). Exit status: 0, 1 if a workload failed (or a named one\n"
            "is unsupported), 2 for a bad command line.\n",
            DEFAULT_WARMUP, DEFAULT_STEPS, DEFAULT_REPS, DEFAULT_SEED);
}

static void list_workloads(FILE *out) {
    for (int i = 0; i < bench_workload_count(); i++) {
        const bench_workload *w = bench_workload_at(i);
        fprintf(out, "%-14s %-6s %s\n", w->name, w->kind, w->summary);
    }
}

static bool parse_precision(const char *text, bench_precision *out) {
    for (int p = 0; p < BENCH_PRECISION_COUNT; p++)
        if (strcmp(text, bench_precision_name((bench_precision)p)) == 0) {
            *out = (bench_precision)p;
            return true;
        }
    return false;
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

/* Long options with a bounded integer value: where each one lands. */
typedef struct long_opt {
    const char *name;
    long min, max;
    long *dst;
} long_opt;

/* Returns CLI_EXIT_OK to go on, or the exit code to stop with; *done tells. */
static int parse_args(int argc, char **argv, bench_cli *c, bool *done) {
    bench_opts *o = &c->o;
    *done = false;
    const long_opt longs[] = {
        {"--batch-size", 1, 1L << 24, &o->batch_size}, {"--warmup", 0, 1000000, &o->warmup},
        {"--steps", 1, 1000000, &o->steps},            {"--reps", 1, 1000, &o->reps},
        {"--hidden", 1, 1L << 16, &o->hidden},         {"--layers", 1, 64, &o->layers},
    };
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m = 0;
        if (cli_is_help(argv[i])) {
            cmd_bench_usage(stdout);
            *done = true;
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--list") == 0) {
            c->list = true;
            continue;
        }
        if (strcmp(argv[i], "--quick") == 0) {
            o->quick = true;
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof longs / sizeof longs[0] && !matched; k++) {
            if ((m = cli_option("bench", argc, argv, &i, longs[k].name, &v)) == 0) continue;
            if (m < 0 || !cli_parse_long("bench", longs[k].name, v, longs[k].min, longs[k].max, longs[k].dst))
                goto usage;
            matched = true;
        }
        if (matched) continue;
        if ((m = cli_option("bench", argc, argv, &i, "--workload", &v)) != 0) {
            if (m < 0 || !check_workloads(v)) goto usage;
            o->workload = v;
        } else if ((m = cli_option("bench", argc, argv, &i, "--device", &v)) != 0) {
            if (m < 0) goto usage;
            if (ct_device_parse(v, &o->device) != CT_OK) {
                cli_usage_error("bench", "--device wants cpu, cuda or cuda:N, not '%s'", v);
                goto usage;
            }
        } else if ((m = cli_option("bench", argc, argv, &i, "--precision", &v)) != 0) {
            if (m < 0) goto usage;
            if (!parse_precision(v, &o->precision)) {
                cli_usage_error("bench", "--precision wants fp32, tf32, fp16 or bf16, not '%s'", v);
                goto usage;
            }
        } else if ((m = cli_option("bench", argc, argv, &i, "--seed", &v)) != 0) {
            if (m < 0 || !cli_parse_u64("bench", "--seed", v, &o->seed)) goto usage;
        } else if ((m = cli_option("bench", argc, argv, &i, "--json", &v)) != 0) {
            if (m < 0) goto usage;
            if (!v[0]) {
                cli_usage_error("bench", "--json wants a file name");
                goto usage;
            }
            o->json_path = v;
        } else if (argv[i][0] == '-') {
            cli_usage_error("bench", "unknown option '%s'", argv[i]);
            goto usage;
        } else {
            cli_usage_error("bench", "unexpected argument '%s'", argv[i]);
            goto usage;
        }
    }
    return CLI_EXIT_OK;
usage:
    *done = true;
    return CLI_EXIT_USAGE;
}

/* Sets up, times, checks and tears down one workload. */
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
