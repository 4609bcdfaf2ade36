/* Internal to src/train: the trainer's state, shared by the loop
 * (trainer.c), evaluation (evaluate.c), checkpoints (checkpoint.c) and
 * progress output (progress.c). */
#ifndef CT_TRAIN_INTERNAL_H
#define CT_TRAIN_INTERNAL_H

#include <stdio.h>

#include "ctrain/train.h"

/* How to build one of the model's graphs. */
typedef struct ct_tbuild {
    ct_model_fn model;
    void *user;
    uint64_t seed;
    ct_device device;
    ct_shape sample;      /* one sample's shape */
    int32_t num_classes;
    double label_smoothing; /* of the training graph's loss */
    bool allow_tf32;
} ct_tbuild;

/* One graph compiled for one batch size. */
typedef struct ct_tgraph {
    int64_t batch;
    ct_graph *g;
    ct_program *p;
    ct_node x, y, logits, loss;
    int64_t classes;      /* logits width */
} ct_tgraph;

/* Builds the model for `batch` samples, with the loss (and backward, when
 * training) and compiles it, sharing share's parameters unless share is
 * NULL. On error tg is left empty (freed). */
ct_status ct_tgraph_build(ct_tgraph *tg, const ct_tbuild *b, int64_t batch, bool training,
                          ct_program *share);
void ct_tgraph_free(ct_tgraph *tg);

/* Evaluation programs: one of the evaluation batch size, and more for the
 * shorter last batches of the datasets seen, all sharing `share` (or the
 * first one's parameters when share is NULL). Built on first use. */
#define CT_EVAL_EXTRA 4
typedef struct ct_evaluator {
    ct_tbuild b;
    ct_program *share;
    int64_t batch;
    ct_tgraph main;
    ct_tgraph extra[CT_EVAL_EXTRA];
    int n_extra;
    float *logits;        /* host copy of one batch's logits */
} ct_evaluator;

/* Builds the main program for min(batch, n) samples. */
ct_status ct_evaluator_init(ct_evaluator *ev, const ct_tbuild *b, ct_program *share, int64_t batch);
ct_status ct_evaluator_run(ct_evaluator *ev, const ct_dataset *ds, ct_eval_result *out);
void ct_evaluator_free(ct_evaluator *ev);

struct ct_trainer {
    ct_train_opts o;          /* strings below are the trainer's own copies */
    char *fingerprint, *metrics_path, *save_path;
    ct_train_meta *meta;
    const ct_dataset *train, *val, *test;
    ct_tbuild b;

    ct_tgraph tr;             /* training, batch_size */
    ct_tgraph tr_short;       /* training, the short last batch (g NULL if none yet) */
    ct_evaluator ev;
    ct_optimizer *opt;
    ct_grad_accum *acc;       /* NULL without accumulation */
    ct_loader *ld;
    int accum;
    int64_t batches;          /* micro-batches per epoch */
    int64_t steps_per_epoch;  /* optimizer steps per epoch */
    int64_t total_steps;      /* planned */
    int64_t total_epochs;     /* planned, for display (0: unknown) */

    ct_schedule sched;        /* resolved; warmup moved out for PER_EPOCH */
    int64_t warmup;           /* PER_EPOCH: steps of the trainer's own ramp */
    double warmup_start;
    bool plateau_on;
    ct_plateau plateau;

    /* ---- the state a checkpoint carries ---- */
    int64_t epoch;            /* 0-based: the epoch running */
    int64_t batch_in_epoch;   /* micro-batches of it done */
    int64_t step;             /* optimizer steps done */
    double loss_sum;          /* the epoch's training loss, sum over samples */
    int64_t loss_count;
    double last_epoch_loss;   /* the mean of the last finished epoch (NAN before) */
    double best_val_loss;     /* +inf before any */
    int64_t best_epoch, best_step;
    int bad_evals;
    bool have_best;           /* best_params hold the best pass's weights */
    bool restored_best;       /* the run ended with them put back */
    double elapsed_prev;      /* training seconds of earlier runs */
    double elapsed_now;       /* and including this one, as of the last save */

    void *best_params;        /* early stopping: flat host copy */
    void *best_bufs;          /* and the buffers, back to back */
    size_t param_bytes, buf_bytes;

    double val_loss, val_acc, lr;
    bool ran;

    /* built-in progress */
    bool tty;
    double last_draw, last_line;
    FILE *metrics;
};

/* Monotonic seconds. */
double ct_train_now(void);

/* Host copies of the buffers (ct_buffer state), back to back in graph order. */
ct_status ct_train_read_buffers(ct_trainer *t, void *dst);
ct_status ct_train_write_buffers(ct_trainer *t, const void *src);

/* The built-in progress output. */
void ct_train_builtin_progress(const ct_train_progress *p, void *trainer);

/* One JSON line in the metrics file (opened on first use); NAN becomes null. */
ct_status ct_train_metrics_line(ct_trainer *t, const char *event, const ct_train_progress *p);

#endif
