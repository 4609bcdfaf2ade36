/* The options of `ctrain train`: the struct they fill, their defaults
 * (train_opts.c) and their table (train_table.c). */
#ifndef CTRAIN_TOOLS_TRAIN_OPTS_H
#define CTRAIN_TOOLS_TRAIN_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#include "cli_options.h"
#include "compress_cli.h"
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
#define TRAIN_DEFAULT_EVAL_BATCHES 50 /* language models (ct_lm_data's default) */

typedef struct train_cfg {
    data_cfg data;
    model_cfg model;
    int64_t epochs;
    bool epochs_set;
    int64_t steps;
    int64_t batch_size, eval_batch_size;
    bool eval_batch_set;    /* --eval-batch-size given (language models: else --batch-size) */
    int64_t eval_batches;   /* language models: validation batches */
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
    int threads; /* --threads: 0 leaves OMP_NUM_THREADS (or every core) in charge */
    const char *save, *resume, *init_from, *metrics, *config;
    const char *tensorboard;        /* --tensorboard DIR */
    int64_t tensorboard_histograms; /* every N epochs; 0: none */
    int64_t save_every;
    bool quiet, prefetch, drop_last, no_shuffle;
    bool strict;            /* --init-from must load every parameter and buffer */
    const char *freeze;     /* --freeze: comma list of parameter name prefixes not trained */
    bool reset_head;        /* --init-from: the last layer keeps its fresh initialisation */
    bool silent;            /* a rank other than 0: not even what survives --quiet */
    ct_precision precision; /* mixed precision (amp.h) */
    bool tf32;
    bool no_cuda_graph;     /* --no-cuda-graph: GPU steps not captured (docs/cuda.md) */
    ct_scaler_opts loss_scale;
    const char *dist;       /* --dist: NULL is auto (train_dist.h) */
    size_t bucket_kb;       /* all-reduce buckets */
    bool no_overlap;
    double dist_timeout;    /* 0: the library's default */
    compress_cfg compress;  /* --prune-*, --distill-* (compress_cli.h) */
} train_cfg;

/* The options of `ctrain train` (train_table.c), for the option engine:
 * parsed into a train_cfg, with a record of the options given (the
 * parser's cli_given_json) that checkpoints carry so that --resume needs
 * no other option. */
extern const cli_table train_table;

/* The datasets of --data (`ctrain eval` takes them too). */
extern const cli_choices train_data_choices;

/* The names of --augment, in the order of the AUG_* bits, NULL-terminated. */
extern const char *const train_augment_names[];

void train_cfg_defaults(train_cfg *c);

/* --data text or tokens: a language model (train_lm.c). */
bool train_is_lm(const train_cfg *c);

/* After every option is in: the combinations the options cannot take,
 * said in terms of flags (a usage error and its exit code, else
 * CLI_EXIT_OK); then fills in the default of each --augment parameter not
 * given. */
int train_check_options(train_cfg *c);

/* The library's trainer options from the command's (cmd_train.c). */
void train_trainer_opts(const train_cfg *c, ct_train_opts *o);
/* --resume or --init-from, if given, then --freeze. False after reporting. */
bool train_start_from(ct_trainer *t, const train_cfg *c);
/* --init-from (with --reset-head, --strict) and --freeze, each with its
 * line of the header (train_transfer.c). False after reporting. */
bool train_transfer(ct_trainer *t, const train_cfg *c);

/* Applies the options a checkpoint recorded (its "cli.options"), if it
 * has any; a checkpoint that cannot be read is left for --resume to report. */
int train_apply_checkpoint_options(cli_parser *p, const char *path);

#endif
