/* The JSON record of a `ctrain bench` run. Its fields are the contract with
 * the PyTorch twins (benchmarks/torch_bench.py writes the same ones) and
 * with benchmarks/compare.py, which reads both; benchmarks/README.md lists
 * them. Sizes are bytes, times seconds, rates per second.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BENCH_SCHEMA "ctrain-bench/1"

static const char *status_name(bench_status s) {
    return s == BENCH_OK ? "ok" : s == BENCH_UNSUPPORTED ? "unsupported" : "failed";
}

/* A number, or null where the figure does not apply (zero). */
static void add_positive(cJSON *o, const char *key, double v) {
    if (v > 0)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *flags_json(const bench_opts *o) {
    cJSON *f = cJSON_CreateObject();
    char dev[32];
    cJSON_AddStringToObject(f, "device", ct_device_str(o->device, dev, sizeof dev));
    cJSON_AddStringToObject(f, "precision", bench_precision_name(o->precision));
    add_positive(f, "batch_size", (double)o->batch_size);
    add_positive(f, "hidden", (double)o->hidden);
    add_positive(f, "layers", (double)o->layers);
    cJSON_AddNumberToObject(f, "warmup", (double)o->warmup);
    cJSON_AddNumberToObject(f, "steps", (double)o->steps);
    cJSON_AddNumberToObject(f, "reps", (double)o->reps);
    cJSON_AddNumberToObject(f, "seed", (double)o->seed);
    cJSON_AddBoolToObject(f, "quick", o->quick);
    cJSON_AddStringToObject(f, "workload", o->workload);
    return f;
}

static cJSON *peak_json(const bench_peak *p) {
    cJSON *j = cJSON_CreateObject();
    add_positive(j, "gflops", p->gflops);
    cJSON_AddStringToObject(j, "gflops_what", p->gflops_what);
    add_positive(j, "gbps", p->gbps);
    cJSON_AddStringToObject(j, "gbps_what", p->gbps_what);
    if (p->timer)
        cJSON_AddStringToObject(j, "timer", p->timer);
    else
        cJSON_AddNullToObject(j, "timer");
    return j;
}

static cJSON *memory_json(const bench_setup *s) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "arena", (double)s->mem.arena);
    cJSON_AddNumberToObject(m, "scratch", (double)s->mem.scratch);
    cJSON_AddNumberToObject(m, "inputs", (double)s->mem.inputs);
    cJSON_AddNumberToObject(m, "params", (double)s->mem.params);
    cJSON_AddNumberToObject(m, "grads", (double)s->mem.grads);
    cJSON_AddNumberToObject(m, "buffers", (double)s->mem.buffers);
    cJSON_AddNumberToObject(m, "optimizer_state", (double)s->optim_bytes);
    cJSON_AddNumberToObject(m, "device_total", (double)bench_device_bytes(s));
    return m;
}

static cJSON *result_json(const bench_result *r, const bench_opts *o, const bench_peak *peak) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "workload", r->w->name);
    cJSON_AddStringToObject(j, "kind", r->w->kind);
    cJSON_AddStringToObject(j, "variant", "ctrain");
    cJSON_AddStringToObject(j, "precision", bench_precision_name(o->precision));
    cJSON_AddStringToObject(j, "status", status_name(r->status));
    if (r->status != BENCH_OK) {
        cJSON_AddStringToObject(j, "reason", r->reason);
        return j;
    }
    const bench_setup *s = &r->setup;
    cJSON_AddStringToObject(j, "config", s->config);
    add_positive(j, "batch_size", (double)s->batch_size);
    add_positive(j, "samples_per_step", s->samples_per_step);
    if (s->samples_per_step > 0)
        cJSON_AddStringToObject(j, "sample_unit", s->sample_unit ? s->sample_unit : "samples");
    else
        cJSON_AddNullToObject(j, "sample_unit");
    add_positive(j, "flops_per_step", s->flops_per_step);
    add_positive(j, "bytes_per_step", s->bytes_per_step);
    cJSON_AddStringToObject(j, "metric", s->metric == BENCH_METRIC_FLOPS ? "flops" : "bytes");
    cJSON *t = cJSON_AddObjectToObject(j, "step_seconds");
    cJSON_AddNumberToObject(t, "median", r->stats.median);
    cJSON_AddNumberToObject(t, "min", r->stats.min);
    cJSON_AddNumberToObject(t, "max", r->stats.max);
    cJSON_AddNumberToObject(t, "q1", r->stats.q1);
    cJSON_AddNumberToObject(t, "q3", r->stats.q3);
    cJSON_AddNumberToObject(t, "cpu_median", r->stats.cpu_median);
    cJSON_AddNumberToObject(t, "reps", r->stats.reps);
    cJSON_AddNumberToObject(t, "steps_per_rep", (double)o->steps);
    cJSON_AddStringToObject(t, "timer", r->stats.timer ? r->stats.timer : "unknown");
    cJSON_AddNumberToObject(j, "steps_per_s", bench_steps_per_s(r));
    add_positive(j, "samples_per_s", bench_samples_per_s(r));
    /* A language model's samples are its tokens: the rate it is judged by,
     * under its own name too (null for the other workloads). */
    bool tokens = s->sample_unit && strcmp(s->sample_unit, "tokens") == 0;
    add_positive(j, "tokens_per_s", tokens ? bench_samples_per_s(r) : 0.0);
    add_positive(j, "gflops", bench_gflops(r));
    add_positive(j, "gbps", bench_gbps(r));
    add_positive(j, "peak_fraction", bench_peak_fraction(r, peak));
    cJSON_AddItemToObject(j, "memory", memory_json(s));
    cJSON_AddNumberToObject(j, "max_rss_bytes", (double)r->max_rss);
    if (s->dtype_note[0]) cJSON_AddStringToObject(j, "note", s->dtype_note);
    return j;
}

static cJSON *record_json(int argc, char **argv, const bench_opts *o, const bench_peak *peak,
                          const bench_result *results, int n) {
    cJSON *root = cJSON_CreateObject();
    char now[40], dev[32];
    bench_utc_now(now, sizeof now);
    cJSON_AddStringToObject(root, "schema", BENCH_SCHEMA);
    cJSON_AddStringToObject(root, "engine", "ctrain");
    cJSON_AddStringToObject(root, "date", now);
    cJSON *args = cJSON_AddArrayToObject(root, "argv");
    /* The command as run, "ctrain bench ...": argv[0] is the subcommand. */
    cJSON_AddItemToArray(args, cJSON_CreateString("ctrain"));
    for (int i = 0; i < argc; i++) cJSON_AddItemToArray(args, cJSON_CreateString(argv[i]));
    cJSON_AddStringToObject(root, "device", ct_device_str(o->device, dev, sizeof dev));
    cJSON_AddItemToObject(root, "flags", flags_json(o));
    cJSON_AddItemToObject(root, "machine", bench_machine_json(o));
    cJSON_AddItemToObject(root, "versions", bench_versions_json());
    cJSON_AddItemToObject(root, "env", bench_env_json());
    cJSON_AddItemToObject(root, "peak", peak_json(peak));
    cJSON *rs = cJSON_AddArrayToObject(root, "results");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(rs, result_json(&results[i], o, peak));
    cJSON_AddNumberToObject(root, "max_rss_bytes", (double)bench_max_rss());
    return root;
}

ct_status bench_write_json(FILE *f, const char *path, int argc, char **argv, const bench_opts *o,
                           const bench_peak *peak, const bench_result *results, int n) {
    cJSON *root = record_json(argc, argv, o, peak, results, n);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) {
        fclose(f);
        return bench_oom(0);
    }
    errno = 0;
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    int err = errno;
    free(text);
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        bench_set_error("cannot write '%s': %s", path, err ? strerror(err) : "write failed");
        return CT_ERR_IO;
    }
    return CT_OK;
}
