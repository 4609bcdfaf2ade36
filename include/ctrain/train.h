/* The trainer: the loop around a classifier, with evaluation, early
 * stopping, checkpoints, metrics and progress.
 *
 * The model is a callback that adds its layers to a graph: given the input
 * node x [B, sample shape...] it returns the logits [B, C]. The trainer calls
 * it once for every graph it needs - the training graph (batch_size, with
 * cross-entropy and backward), an evaluation graph (eval_batch_size), and one
 * for a short last batch of each kind - and compiles them for the device of
 * the options, all sharing one set of parameters (ct_compile_opts.share_params).
 * The callback must therefore declare the same parameters in the same order
 * every time; `training` tells it which graph it builds (layers that behave
 * differently, such as dropout and batch norm, follow the program's training
 * flag anyway).
 *
 *     ct_node mlp(ct_graph *g, ct_node x, bool training, void *user) { ... }
 *
 *     ct_train_opts o = {.model = mlp, .batch_size = 64, .epochs = 10,
 *                        .optim = {.kind = CT_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.01}};
 *     ct_trainer *t = ct_trainer_new(&o, train, val, test);
 *     ct_train_result r;
 *     if (!t || ct_trainer_run(t, &r) != CT_OK) puts(ct_last_error());
 *     printf("test accuracy %.2f%%\n", 100 * r.test_acc);
 *     ct_trainer_free(t);
 *
 * Semantics follow PyTorch's usual loop: the mean cross-entropy of each batch
 * (label smoothing as nn.CrossEntropyLoss), optim.h's optimizers, schedule.h's
 * schedules stepped per optimizer step or per epoch, clip_grad_norm_ /
 * clip_grad_value_ after backward, and gradient accumulation over micro-
 * batches that gives the gradient of the mean loss over their union.
 *
 * Everything goes through the public program, optimizer and data API, so the
 * trainer runs on any device the library has a backend for.
 *
 * Checkpoints are safetensors files (see the bottom): the weights and buffers
 * under their own names, so a checkpoint is also a weights file for
 * ct_load_weights (non-strict) or PyTorch, plus the optimizer state and
 * everything else a resumed run needs to continue bit-exactly.
 */
#ifndef CTRAIN_TRAIN_H
#define CTRAIN_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/amp.h"
#include "ctrain/data.h"
#include "ctrain/device.h"
#include "ctrain/distill.h"
#include "ctrain/dist.h"
#include "ctrain/graph.h"
#include "ctrain/optim.h"
#include "ctrain/program.h"
#include "ctrain/prune.h"
#include "ctrain/schedule.h"
#include "ctrain/status.h"
#include "ctrain/text.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Adds the model to g: x is [B, sample shape...] (F32); returns the logits
 * [B, C] with C >= the dataset's number of classes, or CT_NO_NODE after an
 * error (which the graph records). `training` is true for the training
 * graph. */
typedef ct_node (*ct_model_fn)(ct_graph *g, ct_node x, bool training, void *user);

/* What the schedule's step counts. */
typedef enum ct_sched_unit {
    CT_SCHED_PER_STEP = 0, /* optimizer steps (the lr changes every step) */
    CT_SCHED_PER_EPOCH     /* epochs (as PyTorch's scheduler.step() once an epoch) */
} ct_sched_unit;

/* Reported to the progress callback. */
typedef enum ct_train_event {
    CT_TRAIN_STEP = 0,   /* after each optimizer step */
    CT_TRAIN_EVAL,       /* after a validation pass every eval_every steps */
    CT_TRAIN_EPOCH,      /* at the end of an epoch (after its validation pass) */
    CT_TRAIN_SAVED,      /* a checkpoint was written (path) */
    CT_TRAIN_EARLY_STOP, /* patience ran out; the best weights are restored next */
    CT_TRAIN_DONE        /* the end, after the test pass */
} ct_train_event;

typedef struct ct_train_progress {
    ct_train_event event;
    int64_t epoch;        /* 1-based: the epoch running, or just finished */
    int64_t epochs;       /* planned epochs; 0 when only a step budget bounds the run */
    int64_t batch;        /* micro-batches done in this epoch */
    int64_t batches;      /* micro-batches per epoch */
    int64_t step;         /* optimizer steps done */
    int64_t total_steps;  /* planned optimizer steps */
    double loss;          /* mean loss of the last optimizer step's batches */
    double train_loss;    /* mean loss over the epoch so far */
    double lr;            /* learning rate of the last step */
    double samples_per_s; /* training samples per second since this run (or resume) began */
    double elapsed_s;     /* seconds of training, including earlier runs of a resumed one */
    double eta_s;         /* estimated seconds left (NAN if unknown) */
    double epoch_s;       /* EPOCH: seconds the epoch took */
    double val_loss, val_acc;   /* the last validation pass (NAN before any / without a set) */
    double best_val_loss;       /* NAN before any */
    int64_t best_epoch;         /* epoch of best_val_loss (0 before any) */
    double test_loss, test_acc; /* DONE (NAN without a test set) */
    const char *path;           /* SAVED: the checkpoint written */
    double loss_scale;          /* the loss scale for the next step (1 without loss scaling) */
    int64_t skipped_steps;      /* optimizer steps skipped for inf/NaN gradients so far */
    double tokens_per_s;        /* language models: training tokens per second (samples_per_s counts
                                 * windows); NAN for classifiers */
    double grad_norm;           /* clip_norm > 0: the total gradient norm of the last step, before
                                 * clipping; else NAN (and NAN for a STEP event of a fused GPU step) */
} ct_train_progress;

typedef void (*ct_progress_fn)(const ct_train_progress *p, void *user);

/* One extra "__metadata__" entry for checkpoints (e.g. how to rebuild the
 * model, or the data normalisation). Keys must not start with "ctrain.". */
typedef struct ct_train_meta {
    const char *key;
    const char *value;
} ct_train_meta;

/* Options of ct_trainer_new. Zero means the default noted on each field. */
typedef struct ct_train_opts {
    ct_model_fn model;          /* required */
    void *model_user;
    /* Describes the model (architecture, sizes); stored in checkpoints and
     * compared on resume. NULL: "". */
    const char *model_fingerprint;
    ct_device device;           /* zero: the CPU */

    uint64_t seed;              /* graph seed: initial weights, dropout masks */
    uint64_t data_seed;         /* shuffling */
    int64_t batch_size;         /* required, 1 .. training set size */
    int64_t eval_batch_size;    /* 0: batch_size; larger than a set: the set */
    bool no_shuffle;            /* keep the training set's order */
    bool drop_last;             /* drop a last batch shorter than batch_size */
    bool prefetch;              /* prepare the next batch on a second thread */
    /* Augmentation of every training sample (ctrain/augment.h), seeded by
     * data_seed; validation and test data are never augmented. NULL: none.
     * Copied by ct_trainer_new. */
    const ct_augment_opts *augment;

    /* The run ends after `epochs` epochs or `max_steps` optimizer steps,
     * whichever comes first; 0 is no bound, and one of the two is required. */
    int64_t epochs;
    int64_t max_steps;

    ct_optim_opts optim;
    /* The learning rate of each step. schedule.lr 0 means the optimizer's
     * (resolved) lr. All zero: that lr, constant. warmup_steps counts in
     * `schedule_unit` like every other count of the schedule, except that
     * warmup_steps is always in optimizer steps when the unit is epochs (a
     * linear ramp, by step, up to the epoch's rate). PLATEAU observes the
     * validation loss (the training loss without a validation set) after
     * each validation pass. */
    ct_schedule schedule;
    ct_sched_unit schedule_unit;

    double clip_norm;           /* > 0: clip_grad_norm_ to this */
    double clip_value;          /* > 0: clip_grad_value_ to this */
    int accum_steps;            /* micro-batches per optimizer step; 0 or 1: none */
    double label_smoothing;     /* of the training loss, in [0, 1) */

    int64_t eval_every;         /* validate every N optimizer steps; 0: after every epoch */
    /* Early stopping on the validation loss: stop after `patience`
     * validation passes without an improvement of more than min_delta, and
     * at the end of the run put back the weights of the best pass. 0: off.
     * Needs a validation set. */
    int early_stop_patience;
    double early_stop_min_delta;

    const char *metrics_path;   /* JSON lines appended here; NULL: none */
    /* TensorBoard: a new event file in this directory (created if missing;
     * ctrain/tfevents.h), opened when ct_trainer_run starts (failing at once
     * if it cannot be), holding the values of every metrics line as scalars
     * at the optimizer step: train/loss, train/lr, train/samples_per_s,
     * train/grad_norm (clip_norm), train/loss_scale (loss scaling),
     * train/tokens_per_s (language models), val/loss, val/accuracy,
     * test/loss, test/accuracy; a value already written for its tag at the
     * same step is not repeated (docs/tooling.md). Rank 0 alone writes.
     * NULL: none. */
    const char *tensorboard_dir;
    /* With tensorboard_dir: every N epochs, a histogram of every parameter
     * (tag "weights/<name>") at the end of the epoch; 0: none. */
    int64_t tensorboard_histograms;
    /* Checkpoint written here; NULL: none. ct_trainer_run tries the path
     * (creates and removes its temporary file) before the first step and
     * fails at once if it cannot be written; a save that fails later puts
     * the state in "$TMPDIR/ctrain-rescue-<pid>-<name>" and the error says
     * so. Symbolic links are followed; anything but a regular file at the
     * path is refused, never replaced. */
    const char *save_path;
    int64_t save_every;         /* also every N epochs; 0: only at the end */
    const ct_train_meta *meta;  /* extra checkpoint metadata */
    int n_meta;

    /* Called on every event; NULL: the built-in progress on stdout (a bar
     * redrawn in place on a terminal, plain lines otherwise) unless quiet. */
    ct_progress_fn progress;
    void *progress_user;
    bool quiet;

    /* Mixed precision (amp.h): the policy of every graph the trainer builds
     * (training and evaluation), TF32 for F32 products on GPUs, and loss
     * scaling. loss_scale.mode AUTO is dynamic scaling for FP16 and none for
     * FP32 and BF16; its zero fields are GradScaler's defaults. Each step
     * then runs: backward (seeded with the scale), unscale and inf/NaN check
     * in one pass, clipping, the update (skipped on inf/NaN), the scale
     * update. */
    ct_precision precision;
    bool tf32;
    ct_scaler_opts loss_scale;
    /* Data-parallel training (dist.h, docs/distributed.md). NULL: this
     * process alone. With a communicator of N ranks, every rank makes a
     * trainer with the same options and datasets; batch_size stays the
     * global batch (a multiple of N) and each rank trains on its 1/N of
     * every batch; the weights start as rank 0's, the gradients are averaged
     * after backward (after the last micro-batch with accumulation), and
     * evaluation is split across the ranks. Only rank 0 reports progress
     * and writes metrics and checkpoints; batch-norm running statistics are
     * rank 0's. The result is that of one process training on the global
     * batch, up to rounding, except with dropout (each rank draws its own
     * masks). A rank whose run fails should ct_comm_abort the job. */
    ct_comm *comm;
    size_t dist_bucket_bytes;   /* all-reduce bucket; 0: CT_DDP_DEFAULT_BUCKET */
    bool dist_no_overlap;       /* one all-reduce after backward, not buckets during it */
    /* On a GPU each full-batch step (without accumulation or a communicator)
     * is one fused step (step_graph.h) captured as a CUDA Graph and replayed,
     * and the loss reaches the host only when it is shown (docs/cuda.md).
     * This turns the capture off (same results, one launch per kernel). */
    bool no_cuda_graph;
    /* Model compression (docs/compression.md): magnitude pruning during
     * training (ctrain/prune.h) and knowledge distillation from a teacher
     * (ctrain/distill.h). NULL: none. Copied by ct_trainer_new (the
     * teacher's path too). Either turns the fused GPU step off; neither
     * is implemented for language models. */
    const ct_prune_opts *prune;
    const ct_distill_opts *distill;
} ct_train_opts;

typedef struct ct_eval_result {
    double loss;          /* mean cross-entropy (no label smoothing) */
    double accuracy;      /* correct / count, in [0, 1] */
    int64_t correct, count;
} ct_eval_result;

typedef struct ct_train_result {
    int64_t epochs;       /* completed epochs */
    int64_t steps;        /* optimizer steps */
    int64_t steps_per_epoch;
    double train_loss;    /* mean training loss of the last (possibly partial) epoch */
    double val_loss, val_acc;    /* the last validation pass; NAN without one */
    double best_val_loss;        /* NAN without validation */
    int64_t best_epoch;
    bool early_stopped;
    bool restored_best;          /* the final weights are the best pass's */
    double test_loss, test_acc;  /* of the final weights; NAN without a test set */
    double elapsed_s;            /* training time, including earlier runs of a resumed one */
    double s_per_epoch;          /* training seconds per full epoch in this run (NAN if none) */
    double samples_per_s;        /* training throughput of this run */
    double loss_scale;           /* the final loss scale (1 without loss scaling) */
    int64_t skipped_steps;       /* steps skipped for inf/NaN gradients, resumed runs included */
    double tokens_per_s;         /* language models: training tokens per second of this run; else NAN */
    /* Training and the final evaluation are done and the fields above are
     * the run's results, even if ct_trainer_run then failed to write the
     * last checkpoint or metrics line (its error says where the state was
     * rescued to). */
    bool finished;
} ct_train_result;

typedef struct ct_trainer ct_trainer;

/* Builds the graphs and programs, the optimizer and the loader. The datasets
 * are borrowed and must outlive the trainer; val and test may be NULL. The
 * weights are drawn from the seed; ct_trainer_resume or
 * ct_trainer_init_from may replace them before ct_trainer_run.
 * NULL on error, naming the option at fault (CT_ERR_INVALID_ARG), the model
 * (a graph error), or the device. */
ct_trainer *ct_trainer_new(const ct_train_opts *opts, const ct_dataset *train,
                           const ct_dataset *val, const ct_dataset *test);
/* ------------------------------------------------------ language models
 *
 * The same trainer over windows of tokens (ctrain/text.h) instead of a
 * dataset of samples: every step trains on batch_size windows of
 * block_size tokens, x = tokens[i : i+T] and y = tokens[i+1 : i+T+1]. The
 * model callback then receives x as an I32 node [B, T] of token ids and
 * returns F32 logits [B, T, V] with V >= the tokens' vocabulary size (e.g.
 * ct_gpt, ctrain/gpt.h); the loss is the mean cross-entropy per token.
 *
 * Batches: micro-batch k of the run (counted over every epoch) is
 * ct_tokens_batch(train, {batch_size, block_size, no_shuffle, data_seed},
 * k): random windows drawn from Philox per (data_seed, k), or with
 * no_shuffle consecutive windows in order, or with carried states
 * (ct_lm_data.states) the streams layout. An epoch is
 * ct_tokens_epoch_steps(train) micro-batches. Resuming continues at the
 * next k, bit-exactly.
 *
 * Validation: the mean cross-entropy per token (nats) over eval_batches
 * fixed batches of eval_batch_size (0: batch_size) windows of the
 * validation tokens (ct_tokens_eval_batch, same seed and no_shuffle),
 * reported as val_loss at every evaluation and once more at the end of the
 * run when the last pass was not of the final weights (that last pass
 * only reports: it feeds neither early stopping nor the plateau schedule,
 * so a run cut in two and resumed stays bit-exact); val_acc and the test
 * fields are NAN, and the metrics lines carry no accuracy or test fields
 * but tokens_per_s. Early stopping and the plateau schedule observe
 * val_loss as for classifiers. Options that only make sense for datasets
 * (augment, drop_last, prefetch, label_smoothing) are refused, and so is a
 * communicator (data parallelism is not implemented for language models).
 * Checkpoints also record the block size and the training tokens' count,
 * which a resumed run must share. */
/* A state carried from one training window to the next, for truncated
 * backpropagation through time (a recurrent model trained "stateful", as
 * char-rnn): the model's training graph has an input named `input` and a
 * node named `output` (ct_set_name) of the same dtype and shape, e.g. an
 * LSTM's h0 and its h_n (ctrain/rnn.h). */
typedef struct ct_lm_state {
    const char *input;
    const char *output;
} ct_lm_state;

typedef struct ct_lm_data {
    const ct_tokens *train;   /* required; borrowed, must outlive the trainer */
    const ct_tokens *val;     /* NULL: no validation */
    int64_t block_size;       /* T, required: tokens per window */
    int64_t eval_batches;     /* validation batches of batch_size windows; 0: 50 */
    /* Stateful training: n_states carried states (0: none; the names are
     * copied). With any, the training batches are ct_tokens_batch's
     * `streams` layout (row r of consecutive micro-batches walks stream r
     * window by window; no_shuffle has no effect on them) and an epoch is
     * one pass over the streams. Every micro-batch's `input` takes the
     * value `output` had after the micro-batch before it (with gradient
     * accumulation too: the state follows the stream, not the optimizer
     * step), and is zero at the start of every epoch. An input has no
     * gradient, so the states are detached between windows: backpropagation
     * is truncated to the window. The training graph keeps the outputs
     * (ct_compile_opts.outputs), and the states are read back to the host
     * after every micro-batch and fed in before the next: this turns the
     * fused GPU step off. Evaluation graphs never get them (their inputs
     * stay zero), so val_loss is that of windows starting from zero
     * states. Checkpoints hold the carried values ("state.<input>") and the
     * list of pairs, which a resumed run must share, so a run cut in two
     * continues bit-exactly. */
    const ct_lm_state *states;
    int n_states;
} ct_lm_data;

/* ct_trainer_new for a language model. NULL on error, naming the option at
 * fault (e.g. a block_size longer than the training split allows). */
ct_trainer *ct_trainer_new_lm(const ct_train_opts *opts, const ct_lm_data *data);

/* The mean cross-entropy per token of the current weights over n_batches
 * (>= 1) fixed batches of `tokens` (ct_tokens_eval_batch with the trainer's
 * evaluation batch size, block size, data_seed and no_shuffle), the model
 * in evaluation mode. Only for a trainer made by ct_trainer_new_lm; tokens
 * must fit one window and have ids below the model's vocabulary. */
ct_status ct_trainer_evaluate_lm(ct_trainer *t, const ct_tokens *tokens, int64_t n_batches, double *loss);

/* Frees the trainer with its graphs, programs, optimizer and loader (not
 * the datasets); NULL is ignored. */
void ct_trainer_free(ct_trainer *t);

/* Trains until the epochs or the step budget are done (or early stopping),
 * then evaluates the test set and writes the final checkpoint. May be called
 * once per trainer. *out (may be NULL) is filled also on error, as far as the
 * run got. Errors: a non-finite loss or gradient norm (CT_ERR_NUMERIC, naming
 * the step), a failing device, checkpoint or metrics file. */
ct_status ct_trainer_run(ct_trainer *t, ct_train_result *out);

/* Continues from a checkpoint written by a trainer with the same model
 * fingerprint, batch size, accumulation, drop_last, shuffle, data seed,
 * training set size and optimizer (the rest - epochs, schedule, evaluation,
 * paths - may change). Everything is read and checked before anything is
 * changed, so on any error the trainer is as it was, and the file is never
 * written. Errors: CT_ERR_IO / CT_ERR_FORMAT for an unreadable or corrupt
 * file or one that is no ctrain checkpoint; CT_ERR_INVALID_ARG naming the
 * option that differs; CT_ERR_NOT_FOUND / CT_ERR_SHAPE naming a missing or
 * mis-shaped weight or optimizer state tensor; CT_ERR_DTYPE for one that is
 * not a float, CT_ERR_NUMERIC for one holding NaN or inf (the checks of
 * ct_load_weights); CT_ERR_FORMAT naming a position field (epoch, step,
 * counters, lr) that is out of range or disagrees with the others. */
ct_status ct_trainer_resume(ct_trainer *t, const char *path);

/* Initialises the model from a weights file (e.g. a PyTorch state_dict saved
 * with safetensors), by name, non-strictly: parameters and buffers found in
 * the file (after removing strip_prefix, may be NULL) are loaded, the rest
 * keep their initial values, other tensors are ignored. *loaded (may be
 * NULL) gets the number of tensors loaded. Errors: those of ct_load_weights
 * (a shape mismatch names the tensor), and CT_ERR_NOT_FOUND when nothing
 * matched. On error the weights are unchanged. */
ct_status ct_trainer_init_from(ct_trainer *t, const char *path, const char *strip_prefix, int *loaded);

/* Writes a checkpoint of the current state to path, atomically. */
ct_status ct_trainer_save(ct_trainer *t, const char *path);

/* Mean loss and accuracy of the current weights on ds (every sample exactly
 * once; the model in evaluation mode). ds must have the training set's
 * sample shape. */
ct_status ct_trainer_evaluate(ct_trainer *t, const ct_dataset *ds, ct_eval_result *out);

/* Where the run stands: completed epochs, micro-batches of the current
 * epoch done, optimizer steps (all 0 for a new trainer; a resumed one's
 * position). Any output may be NULL. */
void ct_trainer_position(const ct_trainer *t, int64_t *epoch, int64_t *batch, int64_t *step);

/* The training graph and program (parameters live there), the optimizer. */
ct_graph *ct_trainer_graph(ct_trainer *t);
ct_program *ct_trainer_program(ct_trainer *t);
ct_optimizer *ct_trainer_optimizer(ct_trainer *t);

/* ------------------------------------------------------------ evaluation */

typedef struct ct_eval_opts {
    ct_model_fn model;     /* required */
    void *model_user;
    ct_device device;      /* zero: the CPU */
    int64_t batch_size;    /* 0: 256 */
    const char *strip_prefix; /* removed from the file's tensor names, may be NULL */
} ct_eval_opts;

/* Evaluates the weights in a checkpoint or weights file on ds: builds the
 * model for ds's sample shape, loads every parameter and buffer by name
 * (other tensors, such as a checkpoint's optimizer state, are ignored) and
 * runs it in evaluation mode. Errors: those of ct_st_open, CT_ERR_NOT_FOUND
 * naming parameters missing from the file, CT_ERR_SHAPE naming a tensor of
 * another shape, a model that does not fit the data. */
ct_status ct_evaluate_file(const ct_eval_opts *opts, const char *path, const ct_dataset *ds,
                           ct_eval_result *out);

/* ------------------------------------------------------------ checkpoints
 *
 * A checkpoint holds:
 *   <name>                    every parameter and buffer, as ct_save_weights
 *   optim.<state>.<name>      the optimizer's state per parameter, under
 *                             PyTorch's state keys (exp_avg, exp_avg_sq,
 *                             momentum_buffer, sum, square_avg, grad_avg,
 *                             max_exp_avg_sq), shaped like the parameter
 *   best.<name>               the best validation pass's weights, while
 *                             early stopping is on and they differ from the
 *                             current ones
 *   state.<input>             a language model's carried states
 *                             (ct_lm_data.states), the values the next
 *                             micro-batch starts from
 * and metadata (strings): "format" = "ctrain-checkpoint", and under
 * "ctrain.": the precision, the loss scaler's mode and state, the position (epoch, batch_in_epoch, step, optim_step,
 * dropout_step), the schedule and plateau state, early-stopping state, the
 * options that must match on resume, and the running training-loss sums, all
 * numbers written so that they read back bit-exactly; plus the caller's
 * ct_train_meta entries. */

#ifdef __cplusplus
}
#endif
#endif
