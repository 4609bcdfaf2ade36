/* The training loop.
 *
 * One epoch is the loader's batches of the training set; every `accum`
 * micro-batches (and at the end of an epoch, whatever is left) make one
 * optimizer step: gradients (accumulated if need be), clipping, the
 * learning rate of the step, the update. Validation passes run after every
 * epoch or every eval_every steps and drive early stopping and a plateau
 * schedule.
 *
 * Everything that decides what the next step computes lives in the
 * trainer's state fields (see train_internal.h), which checkpoint.c saves and
 * restores: the weights, buffers and optimizer state, the position (epoch,
 * micro-batch, step), the dropout counter of the programs, the plateau and
 * early-stopping state. The loader's order is a pure function of (seed,
 * epoch), so a resumed run sees exactly the batches the uninterrupted run
 * would have seen, and its weights come out bit-identical.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "train/compress_internal.h"
#include "train/train_internal.h"

double ct_train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ buffers */

ct_status ct_train_read_buffers(ct_trainer *t, void *dst) {
    size_t off = 0;
    for (int i = 0; i < ct_graph_num_buffers(t->tr.g); i++) {
        ct_node n = ct_graph_buffer(t->tr.g, i);
        size_t bytes = (size_t)ct_shape_numel(ct_node_shape(t->tr.g, n)) * ct_dtype_size(ct_node_dtype(t->tr.g, n));
        ct_status st = ct_program_get_param(t->tr.p, ct_node_name(t->tr.g, n), (char *)dst + off, bytes);
        if (st != CT_OK) return st;
        off += bytes;
    }
    return CT_OK;
}

ct_status ct_train_write_buffers(ct_trainer *t, const void *src) {
    size_t off = 0;
    for (int i = 0; i < ct_graph_num_buffers(t->tr.g); i++) {
        ct_node n = ct_graph_buffer(t->tr.g, i);
        size_t bytes = (size_t)ct_shape_numel(ct_node_shape(t->tr.g, n)) * ct_dtype_size(ct_node_dtype(t->tr.g, n));
        ct_status st = ct_program_set_param(t->tr.p, ct_node_name(t->tr.g, n), (const char *)src + off, bytes);
        if (st != CT_OK) return st;
        off += bytes;
    }
    return CT_OK;
}

/* The learning rate of the step about to be taken. */
static double current_lr(const ct_trainer *t) {
    const ct_schedule *s = &t->sched;
    double lr;
    if (t->o.schedule_unit == CT_SCHED_PER_STEP) {
        lr = t->plateau_on && t->step >= s->warmup_steps ? t->plateau.lr : ct_schedule_lr(s, t->step);
    } else {
        lr = t->plateau_on ? t->plateau.lr : ct_schedule_lr(s, t->epoch);
        if (t->step < t->warmup) {
            double f = t->warmup_start;
            lr *= f + (1 - f) * (double)(t->step + 1) / (double)t->warmup;
        }
    }
    return lr;
}

/* A learning rate that is not finite. Schedules are checked when the
 * trainer is made, so this is arithmetic overflowing on a huge base rate
 * (1e308 with warmup or a cyclic peak): say that, not a stale error. */
static ct_status bad_lr(const ct_trainer *t, double lr) {
    return ct_error(CT_ERR_INVALID_ARG,
                    "step %lld: the schedule gives lr %g from the base lr %g: the learning rate is too large to "
                    "compute with",
                    (long long)t->step + 1, lr, t->o.optim.lr);
}

typedef struct run_clock {
    double start;         /* this run */
    double eval_s;        /* spent in validation passes and checkpoints */
    int64_t samples;      /* trained in this run */
    double epoch_start, epoch_eval_s;
    bool epoch_from_start; /* this run saw the whole epoch (for s_per_epoch) */
    double full_epoch_s;  /* sum over the full epochs of this run */
    int64_t full_epochs;
} run_clock;

static double train_seconds(const run_clock *c) { return ct_train_now() - c->start - c->eval_s; }

static void fill_progress(const ct_trainer *t, const run_clock *c, ct_train_event ev, ct_train_progress *p) {
    memset(p, 0, sizeof *p);
    double secs = train_seconds(c);
    p->event = ev;
    p->epoch = t->epoch + 1;
    p->epochs = t->total_epochs;
    p->batch = t->batch_in_epoch;
    p->batches = t->batches;
    p->step = t->step;
    p->total_steps = t->total_steps;
    p->loss = NAN;
    p->train_loss = t->loss_count ? t->loss_sum / (double)t->loss_count : t->last_epoch_loss;
    p->lr = t->lr;
    p->samples_per_s = secs > 0 ? (double)c->samples / secs : NAN;
    p->tokens_per_s = t->lm ? p->samples_per_s * (double)t->lm_bo.block_size : NAN;
    p->elapsed_s = t->elapsed_prev + secs;
    p->eta_s = NAN;
    p->epoch_s = NAN;
    p->val_loss = t->val_loss;
    p->val_acc = t->val_acc;
    p->best_val_loss = isinf(t->best_val_loss) ? NAN : t->best_val_loss;
    p->best_epoch = t->best_epoch;
    p->test_loss = p->test_acc = NAN;
    /* The scaler's state is a copy from the device (a GPU sync): a step
     * event reads it only for a progress callback, the one consumer of a
     * step's loss_scale (the built-in bar does not show it). */
    if (ev != CT_TRAIN_STEP || (t->o.progress && t->rank == 0))
        ct_train_amp_report(t, &p->loss_scale, &p->skipped_steps);
    /* A fused step's norm is on the device: read only where the loss is
     * read anyway (every event but STEP). */
    p->grad_norm = t->grad_norm;
    if (t->grad_norm_dev && (ev == CT_TRAIN_STEP || ct_step_graph_grad_norm(t->sg, &p->grad_norm) != CT_OK))
        p->grad_norm = NAN;
    if (c->samples > 0 && secs > 0) {
        /* Steps of this run so far at this run's pace. */
        double per_step = secs / ((double)c->samples / (double)t->o.batch_size / t->accum);
        p->eta_s = per_step * (double)(t->total_steps - t->step);
        if (p->eta_s < 0) p->eta_s = 0;
    }
}

static void report(ct_trainer *t, const ct_train_progress *p) {
    if (t->rank != 0) return; /* one voice for the job */
    if (t->o.progress)
        t->o.progress(p, t->o.progress_user);
    else if (!t->o.quiet)
        ct_train_builtin_progress(p, t);
}

/* The validation loss (and accuracy) of the current weights, into
 * t->val_loss and t->val_acc: the validation set, or a language model's
 * fixed batches of validation tokens (no accuracy). */
static ct_status val_pass(ct_trainer *t, ct_eval_result *r) {
    ct_status st;
    if (t->lm) {
        r->accuracy = NAN;
        st = ct_train_lm_evaluate(t, t->lm_val, t->lm_eval_batches, &r->loss);
    } else {
        st = ct_train_evaluate(t, t->val, r);
    }
    if (st != CT_OK) return ct_error(st, "validation at step %lld: %s", (long long)t->step, ct_last_error());
    t->val_loss = r->loss;
    t->val_acc = r->accuracy;
    t->val_step = t->step;
    return CT_OK;
}

/* A validation pass; updates the best weights and the early-stopping count.
 * *stop is set when patience runs out. */
static ct_status validate(ct_trainer *t, bool *stop) {
    ct_eval_result r;
    ct_status st = val_pass(t, &r);
    if (st != CT_OK) return st;
    if (t->plateau_on) {
        ct_plateau_observe(&t->plateau, r.loss);
    }
    /* NaN never improves, as in PyTorch's comparisons. */
    if (r.loss < t->best_val_loss - t->o.early_stop_min_delta) {
        t->best_val_loss = r.loss;
        t->best_epoch = t->epoch + 1;
        t->best_step = t->step;
        t->bad_evals = 0;
        if (t->o.early_stop_patience > 0) {
            if ((st = ct_program_read_params(t->tr.p, t->best_params, t->param_bytes)) != CT_OK ||
                (st = ct_train_read_buffers(t, t->best_bufs)) != CT_OK)
                return st;
            t->have_best = true;
        }
    } else {
        t->bad_evals++;
        if (t->o.early_stop_patience > 0 && t->bad_evals >= t->o.early_stop_patience) *stop = true;
    }
    return CT_OK;
}

static ct_status save_checkpoint(ct_trainer *t, run_clock *c) {
    if (t->rank != 0) return CT_OK; /* the ranks hold the same state */
    ct_status fs = ct_train_fused_sync(t); /* the loss sum is saved */
    if (fs != CT_OK) return fs;
    t->elapsed_now = t->elapsed_prev + train_seconds(c);
    ct_status st = ct_train_save_or_rescue(t, t->save_path);
    if (st != CT_OK) return st;
    ct_train_progress p;
    fill_progress(t, c, CT_TRAIN_SAVED, &p);
    p.path = t->save_path;
    report(t, &p);
    return CT_OK;
}

/* Runs one micro-batch through the program of its size: loss into *loss,
 * gradients into the shared gradient buffer. */
ct_status ct_train_set_inputs(ct_trainer *t, const ct_tgraph *tg, const ct_batch *b) {
    ct_status st;
    if (t->lm) {
        size_t bytes = (size_t)(b->count * t->lm_bo.block_size) * sizeof(int32_t);
        if ((st = ct_program_set_input_node(tg->p, tg->x, t->lm_x, bytes)) != CT_OK) return st;
        if ((st = ct_program_set_input_node(tg->p, tg->y, t->lm_y, bytes)) != CT_OK) return st;
        return ct_train_state_feed(t, tg); /* stateful: the states the last window left */
    }
    size_t numel = (size_t)ct_dataset_sample_numel(t->train);
    if ((st = ct_program_set_input_node(tg->p, tg->x, b->x, (size_t)b->count * numel * sizeof(float))) != CT_OK ||
        (st = ct_program_set_input_node(tg->p, tg->y, b->y, (size_t)b->count * sizeof(int32_t))) != CT_OK)
        return st;
    return ct_train_distill_feed(t, tg, b); /* the teacher's logits, when distilling */
}

static ct_status micro_batch(ct_trainer *t, const ct_batch *b, float *loss) {
    ct_tgraph *tg = &t->tr;
    if (b->count != t->tr.batch) {
        if (t->tr_short.batch != b->count) {
            ct_tgraph_free(&t->tr_short);
            ct_status st = ct_tgraph_build(&t->tr_short, &t->b, b->count, true, t->tr.p);
            if (st == CT_OK && t->scaler) st = ct_scaler_attach(t->scaler, t->tr_short.p);
            if (st != CT_OK) return ct_error(st, "the program for the last batch: %s", ct_last_error());
        }
        tg = &t->tr_short;
        /* One dropout counter for the run, whichever program draws. */
        ct_program_set_step(tg->p, ct_program_step(t->tr.p));
    }
    ct_status st;
    if ((st = ct_train_set_inputs(t, tg, b)) != CT_OK || (st = ct_train_dist_run(t, tg->p, b, !t->acc)) != CT_OK ||
        (st = ct_program_read(tg->p, tg->loss, loss, sizeof *loss)) != CT_OK ||
        (st = ct_train_state_take(t, tg)) != CT_OK || (st = ct_train_distill_account(t, tg, b->count)) != CT_OK)
        return st;
    if (tg != &t->tr) ct_program_set_step(t->tr.p, ct_program_step(tg->p));
    return CT_OK;
}

/* After the gradients of a step are in place: unscaling (mixed precision),
 * clipping and the update. */
static ct_status update(ct_trainer *t) {
    ct_status st;
    bool skip; /* the loss scaler found inf/NaN gradients: no clipping, no update */
    if ((st = ct_train_amp_unscale(t, &skip)) != CT_OK) return st;
    /* Frozen parameters have no gradient in PyTorch: none in the norm. */
    if ((t->o.clip_norm > 0 || t->o.clip_value > 0) && !skip && (st = ct_optimizer_zero_frozen_grads(t->opt)) != CT_OK)
        return st;
    if (t->o.clip_norm > 0 && !skip) {
        double norm;
        if ((st = ct_clip_grad_norm(t->tr.p, t->o.clip_norm, &norm)) != CT_OK)
            return ct_error(st, "step %lld: the gradient norm is %g; try a smaller learning rate",
                            (long long)t->step + 1, norm);
        t->grad_norm = norm;
        t->grad_norm_dev = false;
    }
    if (t->o.clip_value > 0 && !skip && (st = ct_clip_grad_value(t->tr.p, t->o.clip_value)) != CT_OK) return st;
    double lr = current_lr(t);
    if (!isfinite(lr)) return bad_lr(t, lr);
    if ((st = ct_train_amp_step(t, lr)) != CT_OK) return st;
    t->lr = lr;
    t->step++;
    return ct_train_prune_after_step(t); /* pruned weights back to zero, when pruning */
}

/* A full batch as one fused step (train_fused.c): micro_batch and update
 * in one, the loss left on the device. */
static ct_status fused_batch(ct_trainer *t, const ct_batch *b) {
    double lr = current_lr(t);
    if (!isfinite(lr)) return bad_lr(t, lr);
    t->grad_norm_dev = t->o.clip_norm > 0;
    return ct_train_fused_step(t, b, lr);
}

static void result_of(const ct_trainer *t, const run_clock *c, ct_train_result *r) {
    double secs = train_seconds(c);
    r->epochs = t->epoch;
    r->steps = t->step;
    r->steps_per_epoch = t->steps_per_epoch;
    r->train_loss = t->loss_count ? t->loss_sum / (double)t->loss_count : t->last_epoch_loss;
    r->val_loss = t->val_loss;
    r->val_acc = t->val_acc;
    r->best_val_loss = isinf(t->best_val_loss) ? NAN : t->best_val_loss;
    r->best_epoch = t->best_epoch;
    r->elapsed_s = t->elapsed_prev + secs;
    r->samples_per_s = secs > 0 ? (double)c->samples / secs : NAN;
    r->tokens_per_s = t->lm ? r->samples_per_s * (double)t->lm_bo.block_size : NAN;
    r->s_per_epoch = c->full_epochs ? c->full_epoch_s / (double)c->full_epochs : NAN;
    ct_train_amp_report(t, &r->loss_scale, &r->skipped_steps);
}

static ct_status epoch_end(ct_trainer *t, run_clock *c, bool *stop) {
    /* The epoch's loss, from the GPU; waiting for its last queued steps is
     * part of the epoch's time, not of the evaluation's. */
    ct_status st = ct_train_fused_sync(t);
    double now = ct_train_now();
    double epoch_s = now - c->epoch_start - c->epoch_eval_s;
    if (c->epoch_from_start) {
        c->full_epoch_s += epoch_s;
        c->full_epochs++;
    }
    double t0 = ct_train_now();
    bool validated = false;
    if (st == CT_OK && t->have_val && t->o.eval_every == 0) {
        st = validate(t, stop);
        validated = true;
    } else if (st == CT_OK && !t->have_val && t->plateau_on && t->loss_count) {
        ct_plateau_observe(&t->plateau, t->loss_sum / (double)t->loss_count);
    }
    t->epoch++;
    t->batch_in_epoch = 0;
    ct_train_progress p;
    fill_progress(t, c, CT_TRAIN_EPOCH, &p);
    p.epoch = t->epoch; /* the one that ended */
    p.batch = t->batches;
    p.epoch_s = epoch_s;
    if (!validated) p.val_loss = p.val_acc = NAN;
    if (st == CT_OK) st = ct_train_metrics_line(t, "epoch", &p);
    if (st == CT_OK) report(t, &p);
    t->last_epoch_loss = p.train_loss;
    t->loss_sum = 0;
    t->loss_count = 0;
    if (st == CT_OK && t->save_path && t->o.save_every > 0 && t->epoch % t->o.save_every == 0)
        st = save_checkpoint(t, c);
    c->eval_s += ct_train_now() - t0;
    return st;
}

/* The micro-batches of the optimizer step being gathered. */
typedef struct step_group {
    int n;
    int64_t samples;
    double loss;          /* sum over the samples */
} step_group;

/* One micro-batch (or, fused, a whole step): forward and backward, its loss
 * counted, and with accumulation its gradients added to the step's. */
static ct_status train_batch(ct_trainer *t, const ct_batch *b, bool fused, run_clock *c, step_group *grp) {
    float loss = 0; /* fused: summed on the device (ct_train_fused_sync) */
    int64_t counted = b->count; /* with data parallelism: the global batch's */
    ct_status st;
    if (fused) {
        if ((st = fused_batch(t, b)) != CT_OK) return st;
    } else if ((st = micro_batch(t, b, &loss)) != CT_OK || (st = ct_train_dist_loss(t, &loss, &counted)) != CT_OK) {
        return st;
    }
    if (!isfinite(loss))
        return ct_error(CT_ERR_NUMERIC,
                        "the training loss is %g at step %lld (epoch %lld, batch %lld); try a smaller "
                        "learning rate",
                        (double)loss, (long long)t->step + 1, (long long)t->epoch + 1,
                        (long long)t->batch_in_epoch + 1);
    t->loss_sum += (double)loss * (double)counted;
    t->loss_count += counted;
    c->samples += counted;
    grp->loss += (double)loss * (double)counted;
    grp->samples += counted;
    t->batch_in_epoch++;
    grp->n++;
    if (t->acc) {
        /* Weighted by samples, so a short batch counts for what it holds. */
        if (b->count != t->tr.batch) st = ct_scale_grads(t->tr.p, (double)b->count / (double)t->tr.batch);
        if (st == CT_OK) st = ct_grad_accum_add(t->acc);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

/* Once a step's micro-batches are in: the accumulated gradients finished
 * (and averaged over the ranks), the update, the step's progress event. */
static ct_status finish_step(ct_trainer *t, run_clock *c, step_group *grp, bool fused) {
    ct_status st;
    if (t->acc) {
        st = ct_grad_accum_finish(t->acc);
        int64_t full = (int64_t)grp->n * t->tr.batch * t->world;
        if (st == CT_OK && grp->samples != full) st = ct_scale_grads(t->tr.p, (double)full / (double)grp->samples);
        /* Accumulated gradients are averaged once, after the last micro-batch. */
        if (st == CT_OK && t->ddp) st = ct_ddp_sync(t->ddp, 1.0);
        if (st != CT_OK) return st;
    }
    /* Here every rank holds the averaged gradients: loss-scale checks and clipping come next. */
    if (!fused && (st = update(t)) != CT_OK) return st;
    bool shown = !fused || ct_train_step_shown(t, t->batch_in_epoch, t->batches);
    if (fused && shown && (st = ct_train_fused_sync(t)) != CT_OK) return st;
    ct_train_progress p;
    fill_progress(t, c, CT_TRAIN_STEP, &p);
    p.loss = !fused ? grp->loss / (double)grp->samples : shown ? t->fused_loss : NAN;
    report(t, &p);
    *grp = (step_group){0};
    return CT_OK;
}

/* The validation pass of every eval_every steps; its time is not training
 * time. */
static ct_status step_eval(ct_trainer *t, run_clock *c, bool *stop) {
    ct_status st = ct_train_fused_sync(t); /* the queued steps are training time */
    double t0 = ct_train_now();
    if (st == CT_OK) st = validate(t, stop);
    if (st == CT_OK) {
        ct_train_progress p;
        fill_progress(t, c, CT_TRAIN_EVAL, &p);
        st = ct_train_metrics_line(t, "eval", &p);
        report(t, &p);
    }
    double dt = ct_train_now() - t0;
    c->eval_s += dt;
    c->epoch_eval_s += dt;
    return st;
}

/* The batches of the epoch started, from the loader's position, until its
 * end, the step budget, or early stopping. */
static ct_status run_batches(ct_trainer *t, run_clock *c, bool *stop) {
    step_group grp = {0};
    ct_status st;
    for (;;) {
        ct_batch b;
        st = t->lm ? ct_train_lm_next(t, &b) : ct_loader_next(t->ld, &b);
        if (st != CT_OK || b.count == 0) break;
        bool fused = t->sg && b.count == t->tr.batch;
        if ((st = train_batch(t, &b, fused, c, &grp)) != CT_OK) break;
        if (grp.n < t->accum && t->batch_in_epoch < t->batches) continue;
        if ((st = finish_step(t, c, &grp, fused)) != CT_OK) break;
        if (t->have_val && t->o.eval_every > 0 && t->step % t->o.eval_every == 0) {
            if ((st = step_eval(t, c, stop)) != CT_OK || *stop) break;
        }
        if (t->o.max_steps > 0 && t->step >= t->o.max_steps) break;
    }
    return st;
}

/* Epochs until the planned ones are done, the step budget is spent, early
 * stopping says stop, or an error. */
static ct_status run_epochs(ct_trainer *t, run_clock *c, bool *stop) {
    ct_status st = CT_OK;
    while (st == CT_OK && !*stop) {
        if (t->o.epochs > 0 && t->epoch >= t->o.epochs) break;
        if (t->o.max_steps > 0 && t->step >= t->o.max_steps) break;
        c->epoch_start = ct_train_now();
        c->epoch_eval_s = 0;
        c->epoch_from_start = t->batch_in_epoch == 0;
        if (!t->lm && (st = ct_loader_start_epoch_at(t->ld, (uint32_t)t->epoch, t->batch_in_epoch)) != CT_OK) break;
        if ((st = run_batches(t, c, stop)) != CT_OK) break;
        if (t->batch_in_epoch == t->batches) st = epoch_end(t, c, stop);
        else break; /* the step budget, or early stopping, ended the run mid-epoch */
    }
    return st;
}

/* The run's result is the best validated model, as with Keras's
 * restore_best_weights (the optimizer state stays the last one). */
static ct_status restore_best(ct_trainer *t, ct_train_result *res) {
    ct_status st = CT_OK;
    if (t->best_step != t->step &&
        ((st = ct_program_write_params(t->tr.p, t->best_params, t->param_bytes)) != CT_OK ||
         (st = ct_train_write_buffers(t, t->best_bufs)) != CT_OK))
        ct_error(st, "restoring the best weights: %s", ct_last_error());
    res->restored_best = st == CT_OK;
    t->restored_best = res->restored_best;
    return st;
}

/* The test set's pass, after training; its time is not training time. */
static ct_status test_pass(ct_trainer *t, run_clock *c, ct_train_result *res) {
    double t0 = ct_train_now();
    ct_eval_result r;
    ct_status st = ct_train_evaluate(t, t->test, &r);
    if (st == CT_OK) {
        res->test_loss = r.loss;
        res->test_acc = r.accuracy;
    } else {
        ct_error(st, "test: %s", ct_last_error());
    }
    c->eval_s += ct_train_now() - t0;
    return st;
}

/* A language model's validation loss of the final weights, when the last
 * pass was not of them. It only reports: early stopping and the plateau
 * never see it, so that a run cut in two ends as the uninterrupted one. */
static ct_status final_val(ct_trainer *t, run_clock *c) {
    double t0 = ct_train_now();
    ct_eval_result r;
    ct_status st = val_pass(t, &r);
    c->eval_s += ct_train_now() - t0;
    return st;
}

/* After the loop (st its outcome): early stopping reported, the best
 * weights put back, the result filled, the test pass, the last checkpoint
 * and the DONE event. */
static ct_status finish_run(ct_trainer *t, run_clock *c, ct_status st, bool stop, ct_train_result *res) {
    if (st == CT_OK && stop) {
        res->early_stopped = true;
        ct_train_progress p;
        fill_progress(t, c, CT_TRAIN_EARLY_STOP, &p);
        report(t, &p);
    }
    if (st == CT_OK && t->have_best) st = restore_best(t, res);
    if (st == CT_OK) st = ct_train_fused_sync(t);
    if (st == CT_OK && t->lm && t->have_val && (t->val_step != t->step || res->restored_best)) st = final_val(t, c);
    result_of(t, c, res);
    res->early_stopped = stop;
    if (st == CT_OK && t->test) st = test_pass(t, c, res);
    /* The results are complete: a caller may show them even if the save
     * below fails. */
    res->finished = st == CT_OK;
    if (st == CT_OK && t->save_path) st = save_checkpoint(t, c);
    if (st == CT_OK) {
        ct_train_progress p;
        fill_progress(t, c, CT_TRAIN_DONE, &p);
        p.epoch = t->epoch;
        p.test_loss = res->test_loss;
        p.test_acc = res->test_acc;
        st = ct_train_metrics_line(t, "test", &p);
        if (st == CT_OK) report(t, &p);
    }
    return st;
}

ct_status ct_trainer_run(ct_trainer *t, ct_train_result *out) {
    ct_train_result res = {.train_loss = NAN, .val_loss = NAN, .val_acc = NAN, .best_val_loss = NAN,
                           .test_loss = NAN, .test_acc = NAN, .s_per_epoch = NAN, .samples_per_s = NAN};
    if (out) *out = res;
    if (!t) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_run: trainer is NULL");
    if (t->ran) return ct_error(CT_ERR_STATE, "ct_trainer_run: this trainer has run already");
    t->ran = true;
    run_clock c = {.start = ct_train_now()};
    /* Before the first step, not after the last one. */
    ct_status st = ct_train_check_save_path(t);
    if (st == CT_OK) st = ct_train_tb_open(t);
    if (st == CT_OK) st = ct_train_dist_begin(t);
    if (st == CT_OK) st = ct_train_fused_begin(t);
    bool stop = false;
    if (st == CT_OK) st = run_epochs(t, &c, &stop);
    st = finish_run(t, &c, st, stop, &res);
    if (out) *out = res;
    return st;
}
