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
#include <unistd.h>

#include "core/error.h"
#include "ctrain/safetensors.h"
#include "train/train_internal.h"

double ct_train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

ct_graph *ct_trainer_graph(ct_trainer *t) { return t ? t->tr.g : NULL; }

void ct_trainer_position(const ct_trainer *t, int64_t *epoch, int64_t *batch, int64_t *step) {
    if (epoch) *epoch = t ? t->epoch : 0;
    if (batch) *batch = t ? t->batch_in_epoch : 0;
    if (step) *step = t ? t->step : 0;
}
ct_program *ct_trainer_program(ct_trainer *t) { return t ? t->tr.p : NULL; }
ct_optimizer *ct_trainer_optimizer(ct_trainer *t) { return t ? t->opt : NULL; }

void ct_trainer_free(ct_trainer *t) {
    if (!t) return;
    ct_loader_free(t->ld);
    ct_ddp_free(t->ddp);
    ct_grad_accum_free(t->acc);
    ct_step_graph_free(t->sg);
    ct_scaler_free(t->scaler);
    ct_optimizer_free(t->opt);
    ct_evaluator_free(&t->ev);
    /* Programs that share the training program's parameters go first. */
    ct_tgraph_free(&t->tr_short);
    ct_tgraph_free(&t->tr);
    if (t->metrics) fclose(t->metrics);
    for (int i = 0; i < t->o.n_meta; i++) {
        free((char *)t->meta[i].key);
        free((char *)t->meta[i].value);
    }
    free(t->meta);
    free(t->fingerprint);
    free(t->metrics_path);
    free(t->save_path);
    free(t->best_params);
    free(t->best_bufs);
    free(t);
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

/* ------------------------------------------------------------ setup */

static ct_status check_opts(const ct_train_opts *o, const ct_dataset *train, const ct_dataset *val,
                            const ct_dataset *test) {
    const char *fn = "ct_trainer_new";
    if (!o || !train) return ct_error(CT_ERR_INVALID_ARG, "%s: NULL options or training set", fn);
    if (!o->model) return ct_error(CT_ERR_INVALID_ARG, "%s: no model function", fn);
    int64_t n = ct_dataset_size(train);
    if (o->batch_size < 1 || o->batch_size > n)
        return ct_error(CT_ERR_INVALID_ARG, "%s: batch_size %lld outside 1 .. %lld (the training set's size)", fn,
                        (long long)o->batch_size, (long long)n);
    if (o->eval_batch_size < 0)
        return ct_error(CT_ERR_INVALID_ARG, "%s: eval_batch_size %lld < 0", fn, (long long)o->eval_batch_size);
    if (o->epochs < 0 || o->max_steps < 0 || (o->epochs == 0 && o->max_steps == 0))
        return ct_error(CT_ERR_INVALID_ARG, "%s: epochs (%lld) and max_steps (%lld) must be >= 0, one of them > 0",
                        fn, (long long)o->epochs, (long long)o->max_steps);
    if (o->accum_steps < 0)
        return ct_error(CT_ERR_INVALID_ARG, "%s: accum_steps %d < 0", fn, o->accum_steps);
    if (!(o->clip_norm >= 0) || isinf(o->clip_norm) || !(o->clip_value >= 0) || isinf(o->clip_value))
        return ct_error(CT_ERR_INVALID_ARG, "%s: clip_norm (%g) and clip_value (%g) must be finite and >= 0", fn,
                        o->clip_norm, o->clip_value);
    if (!(o->label_smoothing >= 0 && o->label_smoothing < 1))
        return ct_error(CT_ERR_INVALID_ARG, "%s: label_smoothing %g outside [0, 1)", fn, o->label_smoothing);
    if (o->eval_every < 0 || o->save_every < 0)
        return ct_error(CT_ERR_INVALID_ARG, "%s: eval_every (%lld) and save_every (%lld) must be >= 0", fn,
                        (long long)o->eval_every, (long long)o->save_every);
    if (o->early_stop_patience < 0 || !(o->early_stop_min_delta >= 0))
        return ct_error(CT_ERR_INVALID_ARG, "%s: early_stop_patience (%d) and min_delta (%g) must be >= 0", fn,
                        o->early_stop_patience, o->early_stop_min_delta);
    if (o->early_stop_patience > 0 && !val)
        return ct_error(CT_ERR_INVALID_ARG, "%s: early stopping needs a validation set", fn);
    if (o->schedule_unit != CT_SCHED_PER_STEP && o->schedule_unit != CT_SCHED_PER_EPOCH)
        return ct_error(CT_ERR_INVALID_ARG, "%s: unknown schedule_unit %d", fn, (int)o->schedule_unit);
    if (o->n_meta < 0 || (o->n_meta > 0 && !o->meta))
        return ct_error(CT_ERR_INVALID_ARG, "%s: bad meta list", fn);
    for (int i = 0; i < o->n_meta; i++)
        if (!o->meta[i].key || !o->meta[i].value || strncmp(o->meta[i].key, "ctrain.", 7) == 0 ||
            strcmp(o->meta[i].key, "format") == 0)
            return ct_error(CT_ERR_INVALID_ARG, "%s: meta entry %d: NULL, or a key reserved to the trainer ('%s')",
                            fn, i, o->meta[i].key ? o->meta[i].key : "(null)");
    const ct_dataset *other[2] = {val, test};
    const char *names[2] = {"validation", "test"};
    for (int i = 0; i < 2; i++) {
        if (!other[i]) continue;
        if (!ct_shape_equal(ct_dataset_sample_shape(other[i]), ct_dataset_sample_shape(train))) {
            char a[96], b[96];
            return ct_error(CT_ERR_SHAPE, "%s: the %s set's samples are %s, the training set's %s", fn, names[i],
                            ct_shape_str(ct_dataset_sample_shape(other[i]), a, sizeof a),
                            ct_shape_str(ct_dataset_sample_shape(train), b, sizeof b));
        }
    }
    return CT_OK;
}

/* Fills in the schedule's defaults that depend on the run's length, and
 * decides who does the warmup. */
static ct_status setup_schedule(ct_trainer *t) {
    ct_schedule s = t->o.schedule;
    if (s.lr == 0) s.lr = ct_optimizer_opts(t->opt)->lr;
    bool per_epoch = t->o.schedule_unit == CT_SCHED_PER_EPOCH;
    if (per_epoch) {
        /* ct_schedule's warmup counts in the schedule's unit; the trainer's
         * counts steps, so it ramps on its own on top of the epoch's rate. */
        t->warmup = s.warmup_steps;
        t->warmup_start = s.warmup_start_factor;
        s.warmup_steps = 0;
    }
    int64_t total = per_epoch ? t->total_epochs : t->total_steps - s.warmup_steps;
    if (total < 1) total = 1;
    if (s.kind == CT_SCHED_COSINE && s.T_max == 0) s.T_max = total;
    if (s.kind == CT_SCHED_ONE_CYCLE && s.total_steps == 0) s.total_steps = total;
    if (ct_schedule_check(&s) != CT_OK) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_new: %s", ct_last_error());
    t->sched = s;
    t->plateau_on = s.kind == CT_SCHED_PLATEAU;
    if (t->plateau_on && ct_plateau_init(&t->plateau, &s) != CT_OK)
        return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_new: %s", ct_last_error());
    return CT_OK;
}

ct_trainer *ct_trainer_new(const ct_train_opts *opts, const ct_dataset *train, const ct_dataset *val,
                           const ct_dataset *test) {
    if (check_opts(opts, train, val, test) != CT_OK) return NULL;
    ct_trainer *t = calloc(1, sizeof *t);
    if (!t) return ct_error(CT_ERR_OOM, "ct_trainer_new: out of memory"), NULL;
    t->o = *opts;
    t->train = train;
    t->val = val;
    t->test = test;
    t->best_val_loss = INFINITY;
    t->val_loss = t->val_acc = NAN;
    t->lr = NAN;
    t->last_epoch_loss = NAN;
    t->fingerprint = dup_str(opts->model_fingerprint ? opts->model_fingerprint : "");
    t->metrics_path = dup_str(opts->metrics_path);
    t->save_path = dup_str(opts->save_path);
    t->o.model_fingerprint = t->fingerprint;
    t->o.metrics_path = t->metrics_path;
    t->o.save_path = t->save_path;
    bool oom = !t->fingerprint || (opts->metrics_path && !t->metrics_path) || (opts->save_path && !t->save_path);
    if (opts->n_meta > 0) {
        t->meta = calloc((size_t)opts->n_meta, sizeof *t->meta);
        oom = oom || !t->meta;
        for (int i = 0; t->meta && i < opts->n_meta; i++) {
            t->meta[i].key = dup_str(opts->meta[i].key);
            t->meta[i].value = dup_str(opts->meta[i].value);
            oom = oom || !t->meta[i].key || !t->meta[i].value;
        }
    }
    t->o.meta = t->meta;
    if (oom) {
        ct_error(CT_ERR_OOM, "ct_trainer_new: out of memory");
        goto fail;
    }
    t->accum = opts->accum_steps > 1 ? opts->accum_steps : 1;
    t->b = (ct_tbuild){.model = opts->model,
                       .user = opts->model_user,
                       .seed = opts->seed,
                       .device = opts->device,
                       .sample = ct_dataset_sample_shape(train),
                       .num_classes = ct_dataset_num_classes(train),
                       .label_smoothing = opts->label_smoothing,
                       .precision = opts->precision,
                       .tf32 = opts->tf32};
    /* Loss scaling: GradScaler's for FP16 unless asked otherwise; BF16 has
     * FP32's exponent range and needs none by default. */
    ct_loss_scale_mode lsm = opts->loss_scale.mode;
    if (lsm == CT_LOSS_SCALE_AUTO) lsm = opts->precision == CT_PRECISION_FP16 ? CT_LOSS_SCALE_DYNAMIC : CT_LOSS_SCALE_NONE;
    t->b.scaled = lsm != CT_LOSS_SCALE_NONE;
    t->o.loss_scale.mode = lsm;
    for (int i = 0; i < 2; i++) {
        const ct_dataset *d = i ? test : val;
        if (d && ct_dataset_num_classes(d) > t->b.num_classes) t->b.num_classes = ct_dataset_num_classes(d);
    }
    if (ct_train_dist_setup(t) != CT_OK) goto fail;
    /* With data parallelism, the training program takes this rank's shard. */
    if (ct_tgraph_build(&t->tr, &t->b, opts->batch_size / t->world, true, NULL) != CT_OK) {
        ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error());
        goto fail;
    }
    int64_t eb = opts->eval_batch_size ? opts->eval_batch_size : opts->batch_size;
    int64_t largest = ct_dataset_size(train);
    if (val && ct_dataset_size(val) > largest) largest = ct_dataset_size(val);
    if (test && ct_dataset_size(test) > largest) largest = ct_dataset_size(test);
    if (eb > largest) eb = largest;
    if (ct_evaluator_init(&t->ev, &t->b, t->tr.p, eb) != CT_OK) {
        ct_error(ct_last_status(), "ct_trainer_new: evaluation program: %s", ct_last_error());
        goto fail;
    }
    if (!(t->opt = ct_optimizer_new(t->tr.g, t->tr.p, &opts->optim))) {
        ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error());
        goto fail;
    }
    if (ct_train_amp_init(t) != CT_OK) {
        ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error());
        goto fail;
    }
    if (t->accum > 1 && !(t->acc = ct_grad_accum_new(t->tr.p))) goto fail;
    if (ct_train_dist_attach(t) != CT_OK) goto fail;
    t->fused = ct_train_fused_wanted(t);
    ct_loader_opts lo = {.batch_size = opts->batch_size / t->world,
                         .shuffle = !opts->no_shuffle,
                         .drop_last = opts->drop_last,
                         .seed = opts->data_seed,
                         .prefetch = opts->prefetch,
                         .augment = opts->augment,
                         .num_shards = t->world,
                         .shard_index = t->rank};
    if (!(t->ld = ct_loader_new(train, &lo))) goto fail;
    t->batches = ct_loader_num_batches(t->ld);
    if (t->batches < 1) {
        ct_error(CT_ERR_INVALID_ARG, "ct_trainer_new: no batch of %lld samples in %lld with drop_last",
                 (long long)opts->batch_size, (long long)ct_dataset_size(train));
        goto fail;
    }
    t->steps_per_epoch = (t->batches + t->accum - 1) / t->accum;
    if (opts->epochs > 0) {
        t->total_steps = opts->epochs * t->steps_per_epoch;
        if (opts->max_steps > 0 && opts->max_steps < t->total_steps) t->total_steps = opts->max_steps;
    } else {
        t->total_steps = opts->max_steps;
    }
    t->total_epochs = (t->total_steps + t->steps_per_epoch - 1) / t->steps_per_epoch;
    if (setup_schedule(t) != CT_OK) goto fail;

    t->param_bytes = ct_program_param_numel(t->tr.p) * ct_dtype_size(ct_program_param_dtype(t->tr.p));
    for (int i = 0; i < ct_graph_num_buffers(t->tr.g); i++) {
        ct_node n = ct_graph_buffer(t->tr.g, i);
        t->buf_bytes += (size_t)ct_shape_numel(ct_node_shape(t->tr.g, n)) * ct_dtype_size(ct_node_dtype(t->tr.g, n));
    }
    if (opts->early_stop_patience > 0) {
        t->best_params = malloc(t->param_bytes ? t->param_bytes : 1);
        t->best_bufs = malloc(t->buf_bytes ? t->buf_bytes : 1);
        if (!t->best_params || !t->best_bufs) {
            ct_error(CT_ERR_OOM, "ct_trainer_new: out of memory for the best weights");
            goto fail;
        }
    }
    t->tty = isatty(fileno(stdout));
    return t;
fail:;
    /* Freeing must not overwrite the reason. */
    ct_status st = ct_last_status();
    char why[1024];
    snprintf(why, sizeof why, "%s", ct_last_error());
    ct_trainer_free(t);
    ct_error(st == CT_OK ? CT_ERR_INTERNAL : st, "%s", why);
    return NULL;
}

ct_status ct_trainer_init_from(ct_trainer *t, const char *path, const char *strip_prefix, int *loaded) {
    if (loaded) *loaded = 0;
    if (!t || !path) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_init_from: NULL trainer or path");
    int n = 0;
    ct_load_opts lo = {.non_strict = true, .strip_prefix = strip_prefix, .loaded = &n};
    ct_status st = ct_load_weights(t->tr.g, t->tr.p, path, &lo);
    if (st != CT_OK) return st;
    if (n == 0) {
        const char *example = ct_graph_num_params(t->tr.g) ? ct_node_name(t->tr.g, ct_graph_param(t->tr.g, 0)) : NULL;
        return ct_error(CT_ERR_NOT_FOUND, "'%s' holds no tensor named like a parameter of this model (e.g. '%s')",
                        path, example ? example : "?");
    }
    if (loaded) *loaded = n;
    return CT_OK;
}

ct_status ct_trainer_evaluate(ct_trainer *t, const ct_dataset *ds, ct_eval_result *out) {
    if (!t || !ds || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_evaluate: NULL argument");
    return ct_train_evaluate(t, ds, out);
}

/* ------------------------------------------------------------ the loop */

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

/* A validation pass; updates the best weights and the early-stopping count.
 * *stop is set when patience runs out. */
static ct_status validate(ct_trainer *t, bool *stop) {
    ct_eval_result r;
    ct_status st = ct_train_evaluate(t, t->val, &r);
    if (st != CT_OK) return ct_error(st, "validation at step %lld: %s", (long long)t->step, ct_last_error());
    t->val_loss = r.loss;
    t->val_acc = r.accuracy;
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
    ct_status st = ct_trainer_save(t, t->save_path);
    if (st != CT_OK) return st;
    ct_train_progress p;
    fill_progress(t, c, CT_TRAIN_SAVED, &p);
    p.path = t->save_path;
    report(t, &p);
    return CT_OK;
}

/* Runs one micro-batch through the program of its size: loss into *loss,
 * gradients into the shared gradient buffer. */
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
    size_t numel = (size_t)ct_dataset_sample_numel(t->train);
    ct_status st;
    if ((st = ct_program_set_input_node(tg->p, tg->x, b->x, (size_t)b->count * numel * sizeof(float))) != CT_OK ||
        (st = ct_program_set_input_node(tg->p, tg->y, b->y, (size_t)b->count * sizeof(int32_t))) != CT_OK ||
        (st = ct_train_dist_run(t, tg->p, b, !t->acc)) != CT_OK ||
        (st = ct_program_read(tg->p, tg->loss, loss, sizeof *loss)) != CT_OK)
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
    if (t->o.clip_norm > 0 && !skip) {
        double norm;
        if ((st = ct_clip_grad_norm(t->tr.p, t->o.clip_norm, &norm)) != CT_OK)
            return ct_error(st, "step %lld: the gradient norm is %g; try a smaller learning rate",
                            (long long)t->step + 1, norm);
    }
    if (t->o.clip_value > 0 && !skip && (st = ct_clip_grad_value(t->tr.p, t->o.clip_value)) != CT_OK) return st;
    double lr = current_lr(t);
    if (!isfinite(lr)) return ct_error(CT_ERR_INVALID_ARG, "step %lld: the schedule gives lr %g: %s",
                                       (long long)t->step + 1, lr, ct_last_error());
    if ((st = ct_train_amp_step(t, lr)) != CT_OK) return st;
    t->lr = lr;
    t->step++;
    return CT_OK;
}

/* A full batch as one fused step (train_fused.c): micro_batch and update
 * in one, the loss left on the device. */
static ct_status fused_batch(ct_trainer *t, const ct_batch *b) {
    double lr = current_lr(t);
    if (!isfinite(lr)) return ct_error(CT_ERR_INVALID_ARG, "step %lld: the schedule gives lr %g: %s",
                                       (long long)t->step + 1, lr, ct_last_error());
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
    if (st == CT_OK && t->val && t->o.eval_every == 0) {
        st = validate(t, stop);
        validated = true;
    } else if (st == CT_OK && !t->val && t->plateau_on && t->loss_count) {
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

ct_status ct_trainer_run(ct_trainer *t, ct_train_result *out) {
    ct_train_result res = {.train_loss = NAN, .val_loss = NAN, .val_acc = NAN, .best_val_loss = NAN,
                           .test_loss = NAN, .test_acc = NAN, .s_per_epoch = NAN, .samples_per_s = NAN};
    if (out) *out = res;
    if (!t) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_run: trainer is NULL");
    if (t->ran) return ct_error(CT_ERR_STATE, "ct_trainer_run: this trainer has run already");
    t->ran = true;
    run_clock c = {.start = ct_train_now()};
    ct_status st = ct_train_dist_begin(t);
    if (st == CT_OK) st = ct_train_fused_begin(t);
    bool stop = false;
    while (st == CT_OK && !stop) {
        if (t->o.epochs > 0 && t->epoch >= t->o.epochs) break;
        if (t->o.max_steps > 0 && t->step >= t->o.max_steps) break;
        c.epoch_start = ct_train_now();
        c.epoch_eval_s = 0;
        c.epoch_from_start = t->batch_in_epoch == 0;
        if ((st = ct_loader_start_epoch_at(t->ld, (uint32_t)t->epoch, t->batch_in_epoch)) != CT_OK) break;
        /* The micro-batches of the optimizer step being gathered. */
        int in_group = 0;
        int64_t group_samples = 0;
        double group_loss = 0;
        for (;;) {
            ct_batch b;
            if ((st = ct_loader_next(t->ld, &b)) != CT_OK || b.count == 0) break;
            float loss = 0; /* fused: summed on the device (ct_train_fused_sync) */
            int64_t counted = b.count; /* with data parallelism: the global batch's */
            bool fused = t->sg && b.count == t->tr.batch;
            if (fused) {
                if ((st = fused_batch(t, &b)) != CT_OK) break;
            } else if ((st = micro_batch(t, &b, &loss)) != CT_OK ||
                       (st = ct_train_dist_loss(t, &loss, &counted)) != CT_OK) {
                break;
            }
            if (!isfinite(loss)) {
                st = ct_error(CT_ERR_NUMERIC,
                              "the training loss is %g at step %lld (epoch %lld, batch %lld); try a smaller "
                              "learning rate",
                              (double)loss, (long long)t->step + 1, (long long)t->epoch + 1,
                              (long long)t->batch_in_epoch + 1);
                break;
            }
            t->loss_sum += (double)loss * (double)counted;
            t->loss_count += counted;
            c.samples += counted;
            group_loss += (double)loss * (double)counted;
            group_samples += counted;
            t->batch_in_epoch++;
            in_group++;
            if (t->acc) {
                /* Weighted by samples, so a short batch counts for what it holds. */
                if (b.count != t->tr.batch) st = ct_scale_grads(t->tr.p, (double)b.count / (double)t->tr.batch);
                if (st == CT_OK) st = ct_grad_accum_add(t->acc);
                if (st != CT_OK) break;
            }
            if (in_group < t->accum && t->batch_in_epoch < t->batches) continue;
            if (t->acc) {
                st = ct_grad_accum_finish(t->acc);
                int64_t full = (int64_t)in_group * t->tr.batch * t->world;
                if (st == CT_OK && group_samples != full)
                    st = ct_scale_grads(t->tr.p, (double)full / (double)group_samples);
                /* Accumulated gradients are averaged once, after the last micro-batch. */
                if (st == CT_OK && t->ddp) st = ct_ddp_sync(t->ddp, 1.0);
                if (st != CT_OK) break;
            }
            /* Here every rank holds the averaged gradients: loss-scale checks and clipping come next. */
            if (!fused && (st = update(t)) != CT_OK) break;
            bool shown = !fused || ct_train_step_shown(t, t->batch_in_epoch, t->batches);
            if (fused && shown && (st = ct_train_fused_sync(t)) != CT_OK) break;
            ct_train_progress p;
            fill_progress(t, &c, CT_TRAIN_STEP, &p);
            p.loss = !fused ? group_loss / (double)group_samples : shown ? t->fused_loss : NAN;
            report(t, &p);
            in_group = 0;
            group_samples = 0;
            group_loss = 0;
            if (t->val && t->o.eval_every > 0 && t->step % t->o.eval_every == 0) {
                st = ct_train_fused_sync(t); /* the queued steps are training time */
                double t0 = ct_train_now();
                if (st == CT_OK) st = validate(t, &stop);
                if (st == CT_OK) {
                    fill_progress(t, &c, CT_TRAIN_EVAL, &p);
                    st = ct_train_metrics_line(t, "eval", &p);
                    report(t, &p);
                }
                double dt = ct_train_now() - t0;
                c.eval_s += dt;
                c.epoch_eval_s += dt;
                if (st != CT_OK || stop) break;
            }
            if (t->o.max_steps > 0 && t->step >= t->o.max_steps) break;
        }
        if (st != CT_OK) break;
        if (t->batch_in_epoch == t->batches) st = epoch_end(t, &c, &stop);
        else break; /* the step budget, or early stopping, ended the run mid-epoch */
    }

    if (st == CT_OK && stop) {
        res.early_stopped = true;
        ct_train_progress p;
        fill_progress(t, &c, CT_TRAIN_EARLY_STOP, &p);
        report(t, &p);
    }
    if (st == CT_OK && t->have_best) {
        /* The run's result is the best validated model, as with Keras's
         * restore_best_weights (the optimizer state stays the last one). */
        if (t->best_step != t->step &&
            ((st = ct_program_write_params(t->tr.p, t->best_params, t->param_bytes)) != CT_OK ||
             (st = ct_train_write_buffers(t, t->best_bufs)) != CT_OK))
            ct_error(st, "restoring the best weights: %s", ct_last_error());
        res.restored_best = st == CT_OK;
        t->restored_best = res.restored_best;
    }
    if (st == CT_OK) st = ct_train_fused_sync(t);
    result_of(t, &c, &res);
    res.early_stopped = stop;
    if (st == CT_OK && t->test) {
        double t0 = ct_train_now();
        ct_eval_result r;
        st = ct_train_evaluate(t, t->test, &r);
        if (st == CT_OK) {
            res.test_loss = r.loss;
            res.test_acc = r.accuracy;
        } else {
            ct_error(st, "test: %s", ct_last_error());
        }
        c.eval_s += ct_train_now() - t0;
    }
    if (st == CT_OK && t->save_path) st = save_checkpoint(t, &c);
    if (st == CT_OK) {
        ct_train_progress p;
        fill_progress(t, &c, CT_TRAIN_DONE, &p);
        p.epoch = t->epoch;
        p.test_loss = res.test_loss;
        p.test_acc = res.test_acc;
        st = ct_train_metrics_line(t, "test", &p);
        if (st == CT_OK) report(t, &p);
    }
    if (out) *out = res;
    return st;
}
