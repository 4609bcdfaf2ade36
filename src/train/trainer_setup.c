/* Making a trainer: the options checked and copied, the programs (training,
 * evaluation), optimizer, loss scaler, accumulator and loader built, the
 * run's length and schedule worked out; and its freeing and accessors.
 * The loop itself is in trainer.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "ctrain/safetensors.h"
#include "train/compress_internal.h"
#include "train/train_internal.h"

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
    ct_train_prune_free(t);
    ct_train_distill_free(t);
    ct_train_state_free(t);
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
    free(t->tb_dir);
    ct_tfevents_close(t->tb);
    free(t->save_path);
    free(t->best_params);
    free(t->best_bufs);
    free(t->lm_x);
    free(t->lm_y);
    free(t);
}

/* ------------------------------------------------------------ checks */

/* The options' values, each on its own. */
static ct_status check_values(const ct_train_opts *o, int64_t n, bool have_val, const char *fn) {
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
    if (o->tensorboard_histograms < 0)
        return ct_error(CT_ERR_INVALID_ARG, "%s: tensorboard_histograms (%lld) must be >= 0", fn,
                        (long long)o->tensorboard_histograms);
    if (o->early_stop_patience < 0 || !(o->early_stop_min_delta >= 0))
        return ct_error(CT_ERR_INVALID_ARG, "%s: early_stop_patience (%d) and min_delta (%g) must be >= 0", fn,
                        o->early_stop_patience, o->early_stop_min_delta);
    if (o->early_stop_patience > 0 && !have_val)
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
    return CT_OK;
}

static ct_status check_opts(const ct_train_opts *o, const ct_dataset *train, const ct_dataset *val,
                            const ct_dataset *test) {
    const char *fn = "ct_trainer_new";
    if (!o || !train) return ct_error(CT_ERR_INVALID_ARG, "%s: NULL options or training set", fn);
    if (!o->model) return ct_error(CT_ERR_INVALID_ARG, "%s: no model function", fn);
    ct_status st = check_values(o, ct_dataset_size(train), val != NULL, fn);
    if (st != CT_OK) return st;
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

/* ------------------------------------------------------------ the steps of ct_trainer_new */

/* The trainer's own copies of the option strings and meta entries, so the
 * caller's may go away once ct_trainer_new returns. */
static bool copy_strings(ct_trainer *t, const ct_train_opts *opts) {
    t->fingerprint = dup_str(opts->model_fingerprint ? opts->model_fingerprint : "");
    t->metrics_path = dup_str(opts->metrics_path);
    t->save_path = dup_str(opts->save_path);
    t->o.model_fingerprint = t->fingerprint;
    t->o.metrics_path = t->metrics_path;
    t->o.save_path = t->save_path;
    t->tb_dir = dup_str(opts->tensorboard_dir);
    t->o.tensorboard_dir = t->tb_dir;
    bool oom = !t->fingerprint || (opts->metrics_path && !t->metrics_path) || (opts->save_path && !t->save_path) ||
               (opts->tensorboard_dir && !t->tb_dir);
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
    if (oom) return ct_error(CT_ERR_OOM, "ct_trainer_new: out of memory"), false;
    return true;
}

/* How the model's graphs are built (t->b), and the loss-scaling mode. */
static void setup_build(ct_trainer *t, const ct_train_opts *opts) {
    t->accum = opts->accum_steps > 1 ? opts->accum_steps : 1;
    t->b = (ct_tbuild){.model = opts->model,
                       .user = opts->model_user,
                       .seed = opts->seed,
                       .device = opts->device,
                       .sample = t->train ? ct_dataset_sample_shape(t->train) : (ct_shape){0},
                       .num_classes = t->train ? ct_dataset_num_classes(t->train) : ct_tokens_vocab_size(t->lm_train),
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
        const ct_dataset *d = i ? t->test : t->val;
        if (d && ct_dataset_num_classes(d) > t->b.num_classes) t->b.num_classes = ct_dataset_num_classes(d);
    }
    if (t->lm_val && ct_tokens_vocab_size(t->lm_val) > t->b.num_classes)
        t->b.num_classes = ct_tokens_vocab_size(t->lm_val);
    if (opts->distill) {
        t->distill_res = *opts->distill;
        if (t->distill_res.temperature == 0) t->distill_res.temperature = 4.0;
        t->b.distill = &t->distill_res;
    }
}

/* The evaluation batch size: the option's (or the training batch size),
 * no larger than the largest dataset. */
static int64_t eval_batch(const ct_trainer *t, const ct_train_opts *opts) {
    int64_t eb = opts->eval_batch_size ? opts->eval_batch_size : opts->batch_size;
    if (t->lm) return eb; /* windows are drawn, any number of them */
    int64_t largest = ct_dataset_size(t->train);
    if (t->val && ct_dataset_size(t->val) > largest) largest = ct_dataset_size(t->val);
    if (t->test && ct_dataset_size(t->test) > largest) largest = ct_dataset_size(t->test);
    if (eb > largest) eb = largest;
    return eb;
}

/* The programs and what works on them: training and evaluation programs,
 * optimizer, loss scaler, gradient accumulator, data-parallel reducer. */
static bool build_programs(ct_trainer *t, const ct_train_opts *opts) {
    if (ct_train_distill_check(t) != CT_OK || ct_train_dist_setup(t) != CT_OK) return false;
    /* With data parallelism, the training program takes this rank's shard. */
    if (ct_tgraph_build(&t->tr, &t->b, opts->batch_size / t->world, true, NULL) != CT_OK)
        return ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error()), false;
    if (ct_evaluator_init(&t->ev, &t->b, t->tr.p, eval_batch(t, opts)) != CT_OK)
        return ct_error(ct_last_status(), "ct_trainer_new: evaluation program: %s", ct_last_error()), false;
    if (!(t->opt = ct_optimizer_new(t->tr.g, t->tr.p, &opts->optim)))
        return ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error()), false;
    if (ct_train_amp_init(t) != CT_OK) return ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error()), false;
    if (t->accum > 1 && !(t->acc = ct_grad_accum_new(t->tr.p))) return false;
    if (ct_train_dist_attach(t) != CT_OK) return false;
    t->fused = ct_train_fused_wanted(t);
    return true;
}

/* The run's length from the batch count: steps per epoch, planned steps
 * and epochs. */
static void plan_length(ct_trainer *t, const ct_train_opts *opts) {
    t->steps_per_epoch = (t->batches + t->accum - 1) / t->accum;
    if (opts->epochs > 0) {
        t->total_steps = opts->epochs * t->steps_per_epoch;
        if (opts->max_steps > 0 && opts->max_steps < t->total_steps) t->total_steps = opts->max_steps;
    } else {
        t->total_steps = opts->max_steps;
    }
    t->total_epochs = (t->total_steps + t->steps_per_epoch - 1) / t->steps_per_epoch;
}

/* The loader of this rank's share of the training set (a language model's
 * batches instead), and the run's length. */
static bool setup_loader(ct_trainer *t, const ct_train_opts *opts, const ct_lm_data *lm) {
    if (lm) {
        if (ct_train_lm_setup(t, lm) != CT_OK) return false;
        plan_length(t, opts);
        return true;
    }
    ct_loader_opts lo = {.batch_size = opts->batch_size / t->world,
                         .shuffle = !opts->no_shuffle,
                         .drop_last = opts->drop_last,
                         .seed = opts->data_seed,
                         .prefetch = opts->prefetch,
                         .augment = opts->augment,
                         .num_shards = t->world,
                         .shard_index = t->rank};
    if (!(t->ld = ct_loader_new(t->train, &lo))) return false;
    t->batches = ct_loader_num_batches(t->ld);
    if (t->batches < 1)
        return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_new: no batch of %lld samples in %lld with drop_last",
                        (long long)opts->batch_size, (long long)ct_dataset_size(t->train)), false;
    plan_length(t, opts);
    return true;
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

/* The sizes of the weights and buffers, and with early stopping the host
 * copies that keep the best pass's. */
static bool setup_best(ct_trainer *t, const ct_train_opts *opts) {
    t->param_bytes = ct_program_param_numel(t->tr.p) * ct_dtype_size(ct_program_param_dtype(t->tr.p));
    for (int i = 0; i < ct_graph_num_buffers(t->tr.g); i++) {
        ct_node n = ct_graph_buffer(t->tr.g, i);
        t->buf_bytes += (size_t)ct_shape_numel(ct_node_shape(t->tr.g, n)) * ct_dtype_size(ct_node_dtype(t->tr.g, n));
    }
    if (opts->early_stop_patience > 0) {
        t->best_params = malloc(t->param_bytes ? t->param_bytes : 1);
        t->best_bufs = malloc(t->buf_bytes ? t->buf_bytes : 1);
        if (!t->best_params || !t->best_bufs)
            return ct_error(CT_ERR_OOM, "ct_trainer_new: out of memory for the best weights"), false;
    }
    return true;
}

/* ct_trainer_new and ct_trainer_new_lm after their checks: lm NULL for a
 * classifier on datasets, else the tokens (train, val, test NULL). */
static ct_trainer *make(const ct_train_opts *opts, const ct_dataset *train, const ct_dataset *val,
                        const ct_dataset *test, const ct_lm_data *lm) {
    ct_trainer *t = calloc(1, sizeof *t);
    if (!t) return ct_error(CT_ERR_OOM, "ct_trainer_new: out of memory"), NULL;
    t->o = *opts;
    t->train = train;
    t->val = val;
    t->test = test;
    t->lm = lm != NULL;
    t->lm_train = lm ? lm->train : NULL;
    t->lm_val = lm ? lm->val : NULL;
    t->have_val = val || t->lm_val;
    t->val_step = -1;
    t->best_val_loss = INFINITY;
    t->val_loss = t->val_acc = NAN;
    t->lr = NAN;
    t->last_epoch_loss = NAN;
    t->grad_norm = NAN;
    bool ok = copy_strings(t, opts);
    if (ok) setup_build(t, opts);
    if (ok && lm) t->b.block_size = lm->block_size;
    if (ok && lm) ok = ct_train_state_init(t, lm) == CT_OK; /* before the programs, which keep the states */
    ok = ok && build_programs(t, opts) && setup_loader(t, opts, lm) && setup_schedule(t) == CT_OK &&
         setup_best(t, opts) && ct_train_prune_setup(t) == CT_OK && ct_train_distill_setup(t) == CT_OK;
    if (ok) {
        t->tty = isatty(fileno(stdout));
        return t;
    }
    /* Freeing must not overwrite the reason. */
    ct_status st = ct_last_status();
    char why[1024];
    snprintf(why, sizeof why, "%s", ct_last_error());
    ct_trainer_free(t);
    ct_error(st == CT_OK ? CT_ERR_INTERNAL : st, "%s", why);
    return NULL;
}

ct_trainer *ct_trainer_new(const ct_train_opts *opts, const ct_dataset *train, const ct_dataset *val,
                           const ct_dataset *test) {
    if (check_opts(opts, train, val, test) != CT_OK) return NULL;
    return make(opts, train, val, test, NULL);
}

ct_trainer *ct_trainer_new_lm(const ct_train_opts *opts, const ct_lm_data *data) {
    if (ct_train_lm_check(opts, data) != CT_OK) return NULL;
    /* Windows are drawn at random, so any batch size >= 1 has batches. */
    if (check_values(opts, INT64_MAX, data->val != NULL, "ct_trainer_new_lm") != CT_OK) return NULL;
    return make(opts, NULL, NULL, NULL, data);
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
    if (t->lm)
        return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_evaluate: a language model's trainer takes tokens "
                                            "(ct_trainer_evaluate_lm), not a dataset");
    return ct_train_evaluate(t, ds, out);
}
