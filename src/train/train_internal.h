/* Internal to src/train: the trainer's state, shared by its making
 * (trainer_setup.c), the loop (trainer.c), evaluation (evaluate.c),
 * checkpoints (checkpoint.c) and progress output (progress.c). */
#ifndef CT_TRAIN_INTERNAL_H
#define CT_TRAIN_INTERNAL_H

#include <stdio.h>

#include "ctrain/distill.h"
#include "ctrain/safetensors.h"
#include "ctrain/step_graph.h"
#include "ctrain/tfevents.h"
#include "ctrain/train.h"

typedef struct ct_pruner ct_pruner;     /* prune.c */
typedef struct ct_distiller ct_distiller; /* distill.c */

/* How to build one of the model's graphs. */
typedef struct ct_tbuild {
    ct_model_fn model;
    void *user;
    uint64_t seed;
    ct_device device;
    ct_shape sample;      /* one sample's shape */
    int32_t num_classes;
    double label_smoothing; /* of the training graph's loss */
    ct_precision precision; /* mixed precision: the graphs' policy */
    bool tf32;
    bool scaled;          /* the training backward is seeded with the loss scale */
    /* > 0: a language model (ct_trainer_new_lm): x is I32 [B, T] token ids,
     * the labels I32 [B * T], the model's logits [B, T, V] are viewed as
     * [B * T, V] for the loss, so the loss is the mean per token. */
    int64_t block_size;
    /* Distillation (distill.c): the training graph takes the teacher's
     * logits as input "teacher_logits" and its loss is ct_distill_loss.
     * NULL: none. Evaluation graphs never distill. */
    const ct_distill_opts *distill;
    /* Named nodes a training graph keeps readable besides the loss (the
     * outputs of carried states, lm_state.c); NULL: none. */
    const char *const *keep;
    int n_keep;           /* <= CT_TBUILD_MAX_KEEP */
} ct_tbuild;
#define CT_TBUILD_MAX_KEEP 16

/* One graph compiled for one batch size. */
typedef struct ct_tgraph {
    int64_t batch;
    ct_graph *g;
    ct_program *p;
    ct_node x, y, logits, loss;
    ct_node teacher, kl, ce;  /* distillation: the teacher's logits (input), the two loss terms */
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
/* TensorBoard scalar tags (tensorboard.c) */
#define CT_TB_TAGS 10
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
/* ct_evaluator_run over samples [lo, hi) of ds only. */
ct_status ct_evaluator_run_range(ct_evaluator *ev, const ct_dataset *ds, int64_t lo, int64_t hi,
                                 ct_eval_result *out);
void ct_evaluator_free(ct_evaluator *ev);

struct ct_trainer {
    ct_train_opts o;          /* strings below are the trainer's own copies */
    char *fingerprint, *metrics_path, *save_path, *tb_dir;
    ct_train_meta *meta;
    const ct_dataset *train, *val, *test;
    ct_tbuild b;

    ct_tgraph tr;             /* training, batch_size */
    ct_tgraph tr_short;       /* training, the short last batch (g NULL if none yet) */
    ct_evaluator ev;
    ct_optimizer *opt;
    ct_grad_accum *acc;       /* NULL without accumulation */
    ct_scaler *scaler;        /* NULL without loss scaling */
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

    /* the fused step (train_fused.c): on a GPU, full batches run as one
     * step graph and the loss stays on the device until it is shown */
    bool fused;               /* decided by ct_trainer_new (tests may set it on the CPU) */
    ct_step_graph *sg;        /* made at the start of ct_trainer_run */
    int64_t fused_synced;     /* the step up to which the device's loss sum is in loss_sum */
    double fused_loss;        /* the mean loss of the last fused step read (NAN: none) */

    /* data parallel (trainer_dist.c): without a communicator rank 0 of 1 */
    ct_ddp *ddp;
    int rank, world;

    /* language models (trainer_lm.c); datasets and loader are NULL then */
    bool lm;
    const ct_tokens *lm_train, *lm_val;
    ct_tokens_batch_opts lm_bo;   /* training batches */
    ct_tokens_batch_opts lm_ebo;  /* evaluation batches */
    int64_t lm_eval_batches;
    int32_t *lm_x, *lm_y;         /* one batch, room for the larger of the two sizes */
    bool have_val;                /* a validation set (or validation tokens) */
    /* carried states (lm_state.c): n_carry of them, else NULL and 0 */
    struct ct_carry *carry;
    int n_carry;
    const char **carry_keep;      /* the outputs' names, t->b.keep */
    int64_t val_step;             /* the step of the last validation pass (-1: none in this run) */

    /* compression (docs/compression.md): NULL when not used */
    ct_pruner *pruner;
    ct_distiller *distill;
    ct_distill_opts distill_res; /* the options, temperature resolved (b.distill points here) */

    /* built-in progress */
    bool tty;
    double last_draw, last_line;
    FILE *metrics;

    /* TensorBoard (tensorboard.c): the event file of this run (rank 0),
     * and per tag the last step and float written, not to repeat them */
    ct_tfevents *tb;
    int64_t tb_step[CT_TB_TAGS];
    float tb_value[CT_TB_TAGS];
    bool tb_written[CT_TB_TAGS];
    double grad_norm;         /* the last unfused step's norm (clip_norm), NAN before */
    bool grad_norm_dev;       /* the last step was fused: its norm is on the device */
};

/* ---- data parallel (trainer_dist.c); each is the plain single-process
 * behaviour when the options have no communicator. */
/* Before the graphs are built: rank, world size, this rank's graph seed,
 * and the checks (global batch a multiple of the ranks). */
ct_status ct_train_dist_setup(ct_trainer *t);
/* Once the training program exists: the gradient reducer. */
ct_status ct_train_dist_attach(ct_trainer *t);
/* At the start of a run: every rank takes rank 0's weights. */
ct_status ct_train_dist_begin(ct_trainer *t);
/* Runs one micro-batch's program; with sync, its gradients end averaged
 * over the ranks, each weighted by its share of the global batch. */
ct_status ct_train_dist_run(ct_trainer *t, ct_program *p, const ct_batch *b, bool sync);
/* Turns this rank's mean loss over its count samples into the mean over
 * the global batch, and count into the global count. */
ct_status ct_train_dist_loss(ct_trainer *t, float *loss, int64_t *count);
/* Evaluation split across the ranks, the sums reduced: ct_evaluator_run's
 * result on every rank. */
ct_status ct_train_evaluate(ct_trainer *t, const ct_dataset *ds, ct_eval_result *out);

/* ---- language models (trainer_lm.c) */
/* The checks of ct_trainer_new_lm's arguments that ct_trainer_new's do
 * not make. */
ct_status ct_train_lm_check(const ct_train_opts *o, const ct_lm_data *d);
/* After the programs: the batch sizes, the host batch buffers, and the
 * epoch's length (t->batches). */
ct_status ct_train_lm_setup(ct_trainer *t, const ct_lm_data *d);
/* The next training micro-batch (number epoch * batches + batch_in_epoch
 * of the run) into t->lm_x, t->lm_y; b->count 0 at the end of the epoch. */
ct_status ct_train_lm_next(ct_trainer *t, ct_batch *b);
/* Mean loss per token over n fixed evaluation batches of tokens. */
ct_status ct_train_lm_evaluate(ct_trainer *t, const ct_tokens *tokens, int64_t n, double *loss);

/* ---- carried states (lm_state.c), for stateful language models */
/* Before the programs: checks d's pairs and copies their names; the
 * outputs go into t->b.keep so the training graph keeps them. */
ct_status ct_train_state_init(ct_trainer *t, const ct_lm_data *d);
/* After the programs: finds each pair in the training graph (an input, a
 * node of its dtype and shape) and makes its zero host value. */
ct_status ct_train_state_setup(ct_trainer *t);
/* Before a micro-batch: the states into tg's inputs (zero at the start
 * of an epoch). After it: the outputs read back as the next values. */
ct_status ct_train_state_feed(ct_trainer *t, const ct_tgraph *tg);
ct_status ct_train_state_take(ct_trainer *t, const ct_tgraph *tg);
/* Checkpoints: the values as "state.<input>" and the list of pairs as
 * "ctrain.carried_states"; staging checks the list against this trainer's
 * and reads the values, commit makes them the trainer's. */
ct_status ct_train_state_save(ct_trainer *t, ct_st_writer *w);
ct_status ct_train_state_stage(ct_trainer *t, const ct_st_file *f, const char *path);
void ct_train_state_commit(ct_trainer *t);
void ct_train_state_free(ct_trainer *t);

/* The inputs of one batch into a training program: the batch's features and
 * labels, or for a language model the tokens in t->lm_x, t->lm_y. */
ct_status ct_train_set_inputs(ct_trainer *t, const ct_tgraph *tg, const ct_batch *b);

/* Monotonic seconds. */
double ct_train_now(void);

/* Host copies of the buffers (ct_buffer state), back to back in graph order. */
ct_status ct_train_read_buffers(ct_trainer *t, void *dst);
ct_status ct_train_write_buffers(ct_trainer *t, const void *src);

/* Mixed precision (train_amp.c). The scaler of the training program, when
 * the options ask for loss scaling (b.scaled is set from them first). */
ct_status ct_train_amp_init(ct_trainer *t);
/* Unscale and inf/NaN check of the step's gradients; *skip tells whether the
 * step will be skipped (read from the device only when clipping needs it). */
ct_status ct_train_amp_unscale(ct_trainer *t, bool *skip);
/* The optimizer step (gated by the scaler's verdict), then the scale update. */
ct_status ct_train_amp_step(ct_trainer *t, double lr);
/* The scale and skipped-step count for progress and results (1 and 0
 * without a scaler). */
void ct_train_amp_report(const ct_trainer *t, double *scale, int64_t *skipped);

/* ---- the fused step (train_fused.c) */
/* Whether this trainer's full-batch steps are fused: a backend that
 * captures (a GPU), no communicator, no accumulation. */
bool ct_train_fused_wanted(const ct_trainer *t);
/* At the start of a run: the step graph of the training program. */
ct_status ct_train_fused_begin(ct_trainer *t);
/* One fused step on a full batch with learning rate lr (inputs, forward,
 * backward, clipping, update, loss sum; t->step and t->lr advance). */
ct_status ct_train_fused_step(ct_trainer *t, const ct_batch *b, double lr);
/* Brings the device's loss sum into t->loss_sum and the last step's loss
 * into t->fused_loss (waits for the GPU); CT_ERR_NUMERIC, naming the
 * steps, when a loss since the last call was not finite. No-op unfused. */
ct_status ct_train_fused_sync(ct_trainer *t);
/* Whether a STEP event about to be reported shows its loss (a progress
 * callback, or the built-in output drawing now). */
bool ct_train_step_shown(const ct_trainer *t, int64_t batch, int64_t batches);

/* The built-in progress output. */
void ct_train_builtin_progress(const ct_train_progress *p, void *trainer);

/* save_guard.c: that the save path can be written (before the first step;
 * rank 0 only), and a save that, failing, writes the state to a rescue file
 * in the temporary directory and names it in the error. */
ct_status ct_train_check_save_path(const ct_trainer *t);
ct_status ct_train_save_or_rescue(ct_trainer *t, const char *path);

/* One JSON line in the metrics file (opened on first use); NAN becomes null.
 * The same values go to the TensorBoard file when there is one. */
ct_status ct_train_metrics_line(ct_trainer *t, const char *event, const ct_train_progress *p);

/* ---- TensorBoard (tensorboard.c) */
/* At the start of a run, on rank 0 with a tensorboard_dir: the event file. */
ct_status ct_train_tb_open(ct_trainer *t);
/* The scalars of one metrics line (and an epoch line's histograms when due). */
ct_status ct_train_tb_line(ct_trainer *t, const char *event, const ct_train_progress *p);

#endif
