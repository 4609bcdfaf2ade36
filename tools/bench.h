/* `ctrain bench`: the benchmark runner's pieces, shared by tools/bench_*.c.
 *
 * A workload is one named, measured configuration (a training step of a
 * model, one matrix product, one optimizer update...). It is set up once
 * (graph, program, synthetic data), then its step is timed: warm-up steps,
 * then several repetitions of a number of steps (bench_timing.c). Each
 * workload states the work of one step analytically - floating-point
 * operations for compute-bound ones, bytes moved for bandwidth-bound ones -
 * so the runner can turn a time into GFLOP/s or GB/s and into a fraction of
 * the device's peak, which it measures itself (bench_peak.c).
 *
 * Adding a workload is one entry in the table of bench_workloads.c, plus,
 * for a new model, a builder and its FLOP count (bench_model.c shows how).
 * Everything here uses only ctrain's public API, so the same code runs on
 * every device the library can compile for.
 */
#ifndef CTRAIN_TOOLS_BENCH_H
#define CTRAIN_TOOLS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ctrain/ctrain.h>

typedef enum bench_precision {
    BENCH_FP32 = 0,
    BENCH_TF32,
    BENCH_FP16,
    BENCH_BF16,
    BENCH_PRECISION_COUNT
} bench_precision;

/* "fp32", "tf32", "fp16", "bf16". */
const char *bench_precision_name(bench_precision p);

/* The command line, parsed (cmd_bench.c). Zero sizes mean "the workload's
 * default for this device". */
typedef struct bench_opts {
    ct_device device;
    bench_precision precision;
    long batch_size;     /* model and softmax-cross-entropy workloads */
    long threads;        /* --threads: 0 leaves OMP_NUM_THREADS (or every core) in charge */
    long hidden, layers; /* mlp-wide's width and depth */
    long warmup, steps, reps;
    uint64_t seed;
    bool quick;          /* smoke-test sizes: checks the runner, not the machine */
    bool profile;        /* --profile: after the timing, one more pass with every op timed */
    const char *workload; /* a name, a comma-separated list, or "all" */
    const char *json_path;
} bench_opts;

/* The work of one step, stated by the workload after its setup. */
typedef enum bench_metric { BENCH_METRIC_FLOPS = 0, BENCH_METRIC_BYTES } bench_metric;

typedef struct bench_setup {
    char config[128];       /* sizes, readable: "784-1024-1024-10 adamw" */
    long batch_size;        /* 0 where a batch means nothing */
    double samples_per_step; /* 0 likewise */
    /* What a sample is: NULL for "samples"; "tokens" for a language model,
     * whose samples_per_step is batch x sequence length (every position
     * is one prediction with its own loss term). */
    const char *sample_unit;
    double flops_per_step;  /* counted analytically (benchmarks/README.md) */
    double bytes_per_step;  /* the minimum traffic a step must make */
    bench_metric metric;    /* which of the two the step is bound by */
    char dtype_note[256];   /* what actually ran at this precision, or "" */
    ct_program_mem mem;     /* the programs' device memory */
    size_t optim_bytes;     /* optimizer state on the device */
} bench_setup;

typedef struct bench_workload bench_workload;

struct bench_workload {
    const char *name;
    const char *kind;    /* "model" or "micro" */
    const char *summary; /* one line for --list */
    /* NULL if the workload runs with these options, else why not (a static
     * string; such a workload is reported as unsupported, not failed). */
    const char *(*unsupported)(const bench_workload *w, const bench_opts *o);
    /* Builds everything a step needs into *state; CT_OK or a status with
     * ct_last_error() set (and nothing left allocated). */
    ct_status (*setup)(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out);
    ct_status (*step)(void *state);
    /* Optional: after the timed steps, confirms the result is sane (a finite
     * loss), so a broken step is a failure and not a fast one. */
    ct_status (*check)(void *state);
    void (*teardown)(void *state);
    const void *params;  /* the workload's constants (a model, a shape) */
};

/* The table (bench_workloads.c). */
int bench_workload_count(void);
const bench_workload *bench_workload_at(int i);
const bench_workload *bench_workload_find(const char *name);

/* ---- workloads (bench_model.c, bench_matmul.c, bench_micro.c) ------------ */

/* A classifier or a language model trained by AdamW: a model builder adds
 * its layers to x. */
typedef struct bench_model {
    /* The input of one batch: creates the graph input "x" and returns it
     * (F32 features, or I32 token ids [batch, T] for a language model). */
    ct_node (*input)(ct_graph *g, long batch, const bench_opts *o);
    /* The layers from x to the logits [batch, classes], or [batch, T,
     * classes] for a language model. */
    ct_node (*build)(ct_graph *g, ct_node x, const bench_opts *o);
    /* Floating-point operations of one training step per sample (per
     * sequence for a language model): the forward and backward passes,
     * counted from the layer sizes. */
    double (*flops_per_sample)(const bench_opts *o);
    /* The sizes, for the report. */
    void (*describe)(const bench_opts *o, char *buf, size_t cap);
    int classes;         /* the vocabulary of a language model */
    long default_batch;
    /* What fp16/bf16 leave in F32 in this model, for the report, or NULL. */
    const char *half_note;
    /* Optional (NULL for a classifier): the sequence length T of a language
     * model, whose labels are the next tokens [batch, T] and whose loss is
     * the mean over all batch x T positions; its rates count tokens. */
    long (*seq_len)(const bench_opts *o);
    /* Optional: why this model cannot run with these options (a static
     * string), beyond what every model shares, or NULL. */
    const char *(*refuse)(const bench_opts *o);
    /* Optional: the AdamW settings; NULL: lr 1e-3, weight decay 0.01. */
    const ct_optim_opts *optim;
} bench_model;

extern const bench_model bench_model_mlp_mnist, bench_model_mlp_wide, bench_model_mlp_small;
extern const bench_model bench_model_cnn_mnist; /* bench_cnn.c */
extern const bench_model bench_model_gpt_char, bench_model_gpt2_124m; /* bench_gpt.c */
extern const bench_model bench_model_lstm_char, bench_model_gru_char;  /* bench_rnn.c */
const char *bench_model_unsupported(const bench_workload *w, const bench_opts *o);
ct_status bench_model_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out);
ct_status bench_model_step(void *state);
ct_status bench_model_check(void *state);
void bench_model_teardown(void *state);

/* One matrix product C[M, N] = A[M, K] @ B[K, N]; sizes per device. */
typedef struct bench_matmul_shape {
    const char *label;            /* "square", "skinny", "tall" */
    int64_t cpu[3], cuda[3];      /* {M, K, N} */
} bench_matmul_shape;

extern const bench_matmul_shape bench_matmul_square, bench_matmul_skinny, bench_matmul_tall;
ct_status bench_matmul_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out);
/* The same with explicit sizes and element type: the peak probe. */
ct_status bench_matmul_setup_mkn(const bench_opts *o, int64_t m, int64_t k, int64_t n, ct_dtype dt,
                                 void **state, bench_setup *out);
ct_status bench_matmul_step(void *state);
void bench_matmul_teardown(void *state);

/* The fused optimizer update over N parameters. */
extern const ct_optim_opts bench_optim_sgd, bench_optim_adamw;
ct_status bench_optim_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out);
ct_status bench_optim_step(void *state);
/* Bytes of an optimizer's state buffers on the device. */
size_t bench_optim_state_bytes(ct_optimizer *opt, const ct_program *p);
void bench_optim_teardown(void *state);

/* Softmax cross-entropy, forward and backward, over logits [B, C]. */
ct_status bench_xent_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out);
ct_status bench_xent_step(void *state);
ct_status bench_xent_check(void *state);
void bench_xent_teardown(void *state);

/* Why the last workload call failed: a message of the runner's own (set by
 * bench_set_error, e.g. out of host memory) or else ct_last_error().
 * bench_clear_error() forgets both (bench_workloads.c). */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
ct_status bench_set_error(const char *fmt, ...);
ct_status bench_oom(size_t bytes);
const char *bench_last_error(void);
void bench_clear_error(void);

/* Seeded synthetic data (bench_data.c): n standard normal values in dtype
 * (F32, F16, BF16) from Philox stream (seed, stream), and n labels in
 * [0, classes). Both malloc'ed; NULL with the error set (above) on failure. */
void *bench_random_values(uint64_t seed, uint32_t stream, size_t n, ct_dtype dt);
int32_t *bench_random_labels(uint64_t seed, uint32_t stream, size_t n, int classes);
/* The element type a precision stores tensors in (F32 for fp32 and tf32). */
ct_dtype bench_precision_dtype(bench_precision p);
/* What a precision cannot do on a device, for every workload alike (TF32
 * off a GPU...), or NULL; the second form is a workload's `unsupported`
 * for kernels that run at every other precision. */
const char *bench_precision_unsupported(const bench_opts *o);
const char *bench_precision_unsupported_for(const bench_workload *w, const bench_opts *o);

/* ---- measuring (bench_timing.c, bench_peak.c) ---------------------------- */

/* Seconds per step over the repetitions. */
typedef struct bench_stats {
    double median, min, max, q1, q3;
    /* The process's CPU time (user + system, every thread) per step, the
     * median over the repetitions: beside the wall time it shows threads
     * spinning or waiting (a busy machine raises wall time, not this). */
    double cpu_median;
    int reps;
    const char *timer; /* how: "cuda events", "monotonic clock" (ct_device_timer_method) */
} bench_stats;

/* Runs `warmup` steps, then `reps` repetitions of `steps` timed steps, each
 * repetition timed by a ct_device_timer (device events where the backend has
 * them, else the monotonic clock after a sync). */
ct_status bench_measure(ct_device d, ct_status (*step)(void *), void *state, long warmup, long steps, long reps,
                        bench_stats *out);

/* The device's measured peak: the best of a few large matrix products at
 * the run's precision, and of a few large device-to-device copies. A probe
 * that cannot run leaves its figure at 0 and says why in *_note. */
typedef struct bench_peak {
    double gflops;         /* 0: not measured */
    char gflops_what[96];
    double gbps;           /* bytes read + written per second / 1e9 */
    char gbps_what[96];
    const char *timer;     /* how the probes were timed; NULL if neither ran */
} bench_peak;

void bench_measure_peak(const bench_opts *o, bench_peak *out);

/* ---- reporting (bench_report.c, bench_json.c, bench_machine.c) ----------- */

typedef enum bench_status { BENCH_OK = 0, BENCH_UNSUPPORTED, BENCH_FAILED } bench_status;

typedef struct bench_result {
    const bench_workload *w;
    bench_status status;
    char reason[512];      /* unsupported or failed: why */
    bench_setup setup;
    bench_stats stats;
    size_t max_rss;        /* the process's peak resident memory after it */
} bench_result;

/* Derived figures of a measured result (0 where they do not apply). */
double bench_steps_per_s(const bench_result *r);
double bench_samples_per_s(const bench_result *r);
double bench_gflops(const bench_result *r);
double bench_gbps(const bench_result *r);
double bench_peak_fraction(const bench_result *r, const bench_peak *peak);
/* The device memory a workload holds: its programs and optimizer state. */
size_t bench_device_bytes(const bench_setup *s);

/* The readable table on out. */
void bench_print_header(FILE *out, const bench_opts *o, const bench_peak *peak);
void bench_print_result(FILE *out, const bench_result *r, const bench_peak *peak);

/* The JSON record (schema in benchmarks/README.md) written to f, which is
 * closed; path names it in messages. argv is the command line as given.
 * CT_ERR_IO (message in bench_last_error()) if it cannot be written. */
ct_status bench_write_json(FILE *f, const char *path, int argc, char **argv, const bench_opts *o,
                           const bench_peak *peak, const bench_result *results, int n);

/* Machine facts for the record (bench_machine.c): cJSON objects the caller
 * owns. */
struct cJSON;
struct cJSON *bench_machine_json(const bench_opts *o);
struct cJSON *bench_versions_json(void);
struct cJSON *bench_env_json(void);
/* The CPU's model name from /proc/cpuinfo ("unknown" if none). */
void bench_cpu_model(char *buf, size_t cap);
/* The current time, UTC, as 2026-11-21T10:00:00Z. */
void bench_utc_now(char *buf, size_t cap);
/* The process's peak resident memory in bytes (0 if unknown). */
size_t bench_max_rss(void);

#endif
