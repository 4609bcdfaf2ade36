/* The options of `ctrain train` (train_opts.c) and their defaults. */
#ifndef CTRAIN_TOOLS_TRAIN_OPTS_H
#define CTRAIN_TOOLS_TRAIN_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#include "train_cli.h"

/* The defaults train an MLP 784-512-256-10 on MNIST to >= 98% test
 * accuracy (benchmarks/results/mnist_mlp_cpu.md has the measured run). */
#define TRAIN_DEFAULT_EPOCHS 10
#define TRAIN_DEFAULT_BATCH 64
#define TRAIN_DEFAULT_EVAL_BATCH 1000
#define TRAIN_DEFAULT_LR 1e-3
#define TRAIN_DEFAULT_WEIGHT_DECAY 0.01 /* torch.optim.AdamW's default */
#define TRAIN_DEFAULT_SCHEDULE CT_SCHED_COSINE
#define TRAIN_DEFAULT_DROPOUT 0.0
#define TRAIN_DEFAULT_VAL_SPLIT 0.0
#define TRAIN_DEFAULT_SEED 1

typedef struct train_cfg {
    data_cfg data;
    model_cfg model;
    int64_t epochs;
    bool epochs_set;
    int64_t steps;
    int64_t batch_size, eval_batch_size;
    int accum;
    ct_optim_opts optim;
    bool wd_set;
    ct_schedule sched;
    int unit;               /* -1: by schedule kind, else ct_sched_unit */
    double clip_norm, clip_value, label_smoothing;
    int64_t eval_every;
    int early_stop;
    double min_delta;
    ct_device device;
    const char *device_text;
    uint64_t seed, data_seed;
    bool data_seed_set;
    const char *save, *resume, *init_from, *metrics, *config;
    int64_t save_every;
    bool quiet, prefetch, drop_last, no_shuffle;
    ct_precision precision; /* mixed precision (amp.h) */
    bool tf32;
    bool no_cuda_graph;     /* --no-cuda-graph: GPU steps not captured (docs/cuda.md) */
    ct_scaler_opts loss_scale;
    const char *dist;       /* --dist: NULL is auto (train_dist.h) */
    size_t bucket_kb;       /* all-reduce buckets */
    bool no_overlap;
    double dist_timeout;    /* 0: the library's default */
    char **owned;           /* strings from the config file */
    int n_owned;
    /* The options given (checkpoint record, config file, command line), as
     * a JSON object of option name -> text (or true for a switch): recorded
     * in checkpoints so that --resume needs no other option. */
    void *given;
} train_cfg;

void train_cfg_defaults(train_cfg *c);
void train_cfg_free(train_cfg *c);

/* True for options that take no value (--nesterov). */
bool train_option_is_flag(const char *name);
/* True for every option name (without dashes). */
bool train_option_known(const char *name);

/* Sets option `name` (no dashes) from text v (NULL for a switch); opt names
 * it in messages. Returns 1 if set, 0 after reporting a usage error, -1 if
 * there is no such option. */
int train_set_option(train_cfg *c, const char *name, const char *v, const char *opt);

/* After every option is in: checks --augment against its parameters and
 * the data (usage error and its exit code, else CLI_EXIT_OK), then fills in
 * the default of each parameter not given. */
int train_check_augment(const train_cfg *c);
void train_augment_defaults(train_cfg *c);

/* Applies a JSON config file; returns CLI_EXIT_OK or the exit code after
 * reporting the problem. */
int train_apply_config(train_cfg *c, const char *path);

/* Applies the options a checkpoint recorded (its "cli.options"), if it
 * has any; a checkpoint that cannot be read is left for --resume to report. */
int train_apply_checkpoint_options(train_cfg *c, const char *path);

/* Notes option `name` as given with text v (NULL: a switch), for
 * train_given_json. Options that concern this invocation only (resume,
 * save, init-from, config, quiet) are not noted. False if out of memory. */
bool train_note_option(train_cfg *c, const char *name, const char *v);
/* The noted options as JSON text, malloc'ed (NULL if out of memory). */
char *train_given_json(const train_cfg *c);

#endif
