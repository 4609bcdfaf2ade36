/* Checkpoints: the trainer's whole state in one safetensors file.
 *
 * Tensors: every parameter and buffer under its own name (so a checkpoint is
 * also a weights file), the optimizer's state per parameter as
 * "optim.<state>.<name>" shaped like the parameter (PyTorch keeps its
 * optimizer state per parameter too, under the same keys), and, while early
 * stopping holds best weights that differ from the current ones,
 * "best.<name>"; a stateful language model's carried states as
 * "state.<input>" (lm_state.c). Metadata: the position, counters and
 * statistics as decimal strings ("%.17g" for doubles, which reads back to
 * the same bits), and the options a resumed run must share.
 *
 * Writing goes through ct_st_writer_save, which writes a temporary file and
 * renames it, so a failed or interrupted save leaves the previous checkpoint
 * as it was. Resuming reads and checks everything into host copies before
 * touching the trainer, so a bad checkpoint changes nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/safetensors.h"
#include "ctrain/version.h"
#include "io/st_param.h"
#include "train/compress_internal.h"
#include "train/train_internal.h"

#define FORMAT "ctrain-checkpoint"

/* ------------------------------------------------------------ writing */

static ct_status meta_i64(ct_st_writer *w, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return ct_st_writer_meta(w, key, buf);
}

static ct_status meta_u64(ct_st_writer *w, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return ct_st_writer_meta(w, key, buf);
}

static ct_status meta_f64(ct_st_writer *w, const char *key, double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return ct_st_writer_meta(w, key, buf);
}

static size_t node_bytes(const ct_graph *g, ct_node n) {
    return (size_t)ct_shape_numel(ct_node_shape(g, n)) * ct_dtype_size(ct_node_dtype(g, n));
}

/* The values that must be the same for a resumed run to mean anything. */
typedef struct match_item {
    const char *key;
    const char *what; /* for the message */
    char value[64];
} match_item;

#define N_MATCH 8

/* The items of this trainer (a language model has one more); returns how
 * many. */
static int match_items(const ct_trainer *t, match_item m[N_MATCH]) {
    m[0] = (match_item){"ctrain.batch_size", "batch size", ""};
    snprintf(m[0].value, sizeof m[0].value, "%lld", (long long)t->o.batch_size);
    m[1] = (match_item){"ctrain.accum_steps", "gradient accumulation", ""};
    snprintf(m[1].value, sizeof m[1].value, "%d", t->accum);
    m[2] = (match_item){"ctrain.drop_last", "drop_last", ""};
    snprintf(m[2].value, sizeof m[2].value, "%d", t->o.drop_last ? 1 : 0);
    m[3] = (match_item){"ctrain.shuffle", "shuffle", ""};
    snprintf(m[3].value, sizeof m[3].value, "%d", t->o.no_shuffle ? 0 : 1);
    m[4] = (match_item){"ctrain.data_seed", "data seed", ""};
    snprintf(m[4].value, sizeof m[4].value, "%llu", (unsigned long long)t->o.data_seed);
    m[5] = (match_item){"ctrain.train_size", t->lm ? "training token count" : "training set size", ""};
    snprintf(m[5].value, sizeof m[5].value, "%lld",
             (long long)(t->lm ? ct_tokens_size(t->lm_train) : ct_dataset_size(t->train)));
    m[6] = (match_item){"ctrain.optimizer", "optimizer", ""};
    snprintf(m[6].value, sizeof m[6].value, "%s", ct_optim_kind_name(ct_optimizer_opts(t->opt)->kind));
    if (!t->lm) return 7;
    m[7] = (match_item){"ctrain.block_size", "block size", ""};
    snprintf(m[7].value, sizeof m[7].value, "%lld", (long long)t->lm_bo.block_size);
    return 8;
}

/* Adds every parameter (from a flat copy) and buffer (back to back) under
 * prefix + name. */
static ct_status add_weights(ct_trainer *t, ct_st_writer *w, const char *prefix, const void *flat,
                             const void *bufs) {
    ct_graph *g = t->tr.g;
    size_t es = ct_dtype_size(ct_program_param_dtype(t->tr.p));
    char name[512];
    ct_status st = CT_OK;
    for (int i = 0; i < ct_graph_num_params(g) && st == CT_OK; i++) {
        ct_node n = ct_graph_param(g, i);
        snprintf(name, sizeof name, "%s%s", prefix, ct_node_name(g, n));
        size_t off = ct_program_param_offset(t->tr.p, n);
        st = ct_st_writer_add(w, name, ct_node_dtype(g, n), ct_node_shape(g, n), (const char *)flat + off * es);
    }
    size_t off = 0;
    for (int i = 0; i < ct_graph_num_buffers(g) && st == CT_OK; i++) {
        ct_node n = ct_graph_buffer(g, i);
        snprintf(name, sizeof name, "%s%s", prefix, ct_node_name(g, n));
        st = ct_st_writer_add(w, name, ct_node_dtype(g, n), ct_node_shape(g, n), (const char *)bufs + off);
        off += node_bytes(g, n);
    }
    return st;
}

/* Mixed precision: the policy and the loss-scaling mode (which a resumed
 * run must share), and the scaler's state. */
static ct_status amp_meta(ct_trainer *t, ct_st_writer *w) {
    ct_status st;
    if ((st = ct_st_writer_meta(w, "ctrain.precision", ct_precision_name(t->o.precision))) != CT_OK ||
        (st = ct_st_writer_meta(w, "ctrain.loss_scale_mode", ct_loss_scale_mode_name(t->o.loss_scale.mode))) != CT_OK)
        return st;
    if (!t->scaler) return CT_OK;
    ct_scaler_state ss;
    if ((st = ct_scaler_get_state(t->scaler, &ss)) != CT_OK ||
        (st = meta_f64(w, "ctrain.amp.loss_scale", ss.scale)) != CT_OK ||
        (st = meta_i64(w, "ctrain.amp.growth_tracker", ss.growth_tracker)) != CT_OK ||
        (st = meta_i64(w, "ctrain.amp.skipped_steps", ss.skipped_steps)) != CT_OK)
        return st;
    return CT_OK;
}

/* The optimizer's state tensors, "optim.<state>.<parameter>", read
 * through flat (a host buffer of the flat parameters' size). */
static ct_status add_optim_states(ct_trainer *t, ct_st_writer *w, void *flat) {
    ct_graph *g = t->tr.g;
    ct_status st;
    size_t es = ct_dtype_size(ct_program_param_dtype(t->tr.p));
    char name[512];
    for (int s = 0; s < ct_optimizer_num_states(t->opt); s++) {
        const char *sname;
        if ((st = ct_optimizer_state(t->opt, s, &sname, NULL, NULL)) != CT_OK ||
            (st = ct_optimizer_read_state(t->opt, sname, flat, t->param_bytes)) != CT_OK)
            return st;
        for (int i = 0; i < ct_graph_num_params(g); i++) {
            ct_node n = ct_graph_param(g, i);
            snprintf(name, sizeof name, "optim.%s.%s", sname, ct_node_name(g, n));
            size_t off = ct_program_param_offset(t->tr.p, n);
            if ((st = ct_st_writer_add(w, name, ct_node_dtype(g, n), ct_node_shape(g, n),
                                       (const char *)flat + off * es)) != CT_OK)
                return st;
        }
    }
    return CT_OK;
}

/* The run's position and the state that decides what comes next, as
 * metadata; best says where the best weights are ("none", "current",
 * "saved"). */
static ct_status add_run_meta(ct_trainer *t, ct_st_writer *w, const char *best) {
    ct_status st;
    match_item m[N_MATCH];
    int nm = match_items(t, m);
    if ((st = ct_st_writer_meta(w, "format", FORMAT)) != CT_OK ||
        (st = ct_st_writer_meta(w, "ctrain.version", CTRAIN_VERSION_STRING)) != CT_OK ||
        (st = ct_st_writer_meta(w, "ctrain.fingerprint", t->fingerprint)) != CT_OK)
        return st;
    for (int i = 0; i < nm; i++)
        if ((st = ct_st_writer_meta(w, m[i].key, m[i].value)) != CT_OK) return st;
    if ((st = meta_i64(w, "ctrain.epoch", t->epoch)) != CT_OK ||
        (st = meta_i64(w, "ctrain.batch_in_epoch", t->batch_in_epoch)) != CT_OK ||
        (st = meta_i64(w, "ctrain.step", t->step)) != CT_OK ||
        (st = meta_i64(w, "ctrain.optim_step", ct_optimizer_step_count(t->opt))) != CT_OK ||
        (st = meta_u64(w, "ctrain.dropout_step", ct_program_step(t->tr.p))) != CT_OK ||
        (st = meta_u64(w, "ctrain.seed", t->o.seed)) != CT_OK ||
        (st = meta_f64(w, "ctrain.loss_sum", t->loss_sum)) != CT_OK ||
        (st = meta_i64(w, "ctrain.loss_count", t->loss_count)) != CT_OK ||
        (st = meta_f64(w, "ctrain.last_epoch_loss", t->last_epoch_loss)) != CT_OK ||
        (st = meta_f64(w, "ctrain.best_val_loss", t->best_val_loss)) != CT_OK ||
        (st = meta_i64(w, "ctrain.best_epoch", t->best_epoch)) != CT_OK ||
        (st = meta_i64(w, "ctrain.best_step", t->best_step)) != CT_OK ||
        (st = meta_i64(w, "ctrain.bad_evals", t->bad_evals)) != CT_OK ||
        (st = ct_st_writer_meta(w, "ctrain.best", best)) != CT_OK ||
        (st = meta_i64(w, "ctrain.restored_best", t->restored_best)) != CT_OK ||
        (st = meta_f64(w, "ctrain.val_loss", t->val_loss)) != CT_OK ||
        (st = meta_f64(w, "ctrain.val_acc", t->val_acc)) != CT_OK ||
        (st = meta_f64(w, "ctrain.lr", t->lr)) != CT_OK ||
        (st = meta_f64(w, "ctrain.elapsed_s", t->elapsed_now)) != CT_OK ||
        (st = ct_st_writer_meta(w, "ctrain.schedule", ct_schedule_kind_name(t->sched.kind))) != CT_OK)
        return st;
    if (t->plateau_on &&
        ((st = meta_f64(w, "ctrain.plateau.lr", t->plateau.lr)) != CT_OK ||
         (st = meta_f64(w, "ctrain.plateau.best", t->plateau.best)) != CT_OK ||
         (st = meta_i64(w, "ctrain.plateau.num_bad_epochs", t->plateau.num_bad_epochs)) != CT_OK ||
         (st = meta_i64(w, "ctrain.plateau.cooldown_counter", t->plateau.cooldown_counter)) != CT_OK ||
         (st = meta_i64(w, "ctrain.plateau.epochs", t->plateau.epochs)) != CT_OK))
        return st;
    if ((st = amp_meta(t, w)) != CT_OK) return st;
    for (int i = 0; i < t->o.n_meta; i++)
        if ((st = ct_st_writer_meta(w, t->meta[i].key, t->meta[i].value)) != CT_OK) return st;
    return CT_OK;
}

static ct_status build(ct_trainer *t, ct_st_writer *w, void *flat, void *bufs) {
    ct_status st;
    if ((st = ct_program_read_params(t->tr.p, flat, t->param_bytes)) != CT_OK ||
        (st = ct_train_read_buffers(t, bufs)) != CT_OK || (st = add_weights(t, w, "", flat, bufs)) != CT_OK ||
        (st = add_optim_states(t, w, flat)) != CT_OK || (st = ct_train_prune_save(t, w)) != CT_OK ||
        (st = ct_train_state_save(t, w)) != CT_OK)
        return st;
    /* The best weights matter to a resumed run only while they may still be
     * put back; when they are the current ones a flag says so. */
    const char *best = "none";
    if (t->have_best && !t->restored_best) {
        if (t->best_step == t->step) {
            best = "current";
        } else {
            best = "saved";
            if ((st = add_weights(t, w, "best.", t->best_params, t->best_bufs)) != CT_OK) return st;
        }
    }
    return add_run_meta(t, w, best);
}

ct_status ct_trainer_save(ct_trainer *t, const char *path) {
    if (!t || !path) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_save: NULL trainer or path");
    ct_st_writer *w = ct_st_writer_new();
    void *flat = malloc(t->param_bytes ? t->param_bytes : 1);
    void *bufs = malloc(t->buf_bytes ? t->buf_bytes : 1);
    ct_status st;
    if (!w || !flat || !bufs)
        st = ct_error(CT_ERR_OOM, "out of memory");
    else if ((st = build(t, w, flat, bufs)) == CT_OK)
        st = ct_st_writer_save(w, path);
    free(flat);
    free(bufs);
    ct_st_writer_free(w);
    if (st != CT_OK) return ct_error(st, "saving the checkpoint '%s': %s", path, ct_last_error());
    return CT_OK;
}

/* ------------------------------------------------------------ reading */

typedef struct reader {
    ct_st_file *f;
    const char *path;
} reader;

static ct_status need_meta(const reader *r, const char *key, const char **out) {
    *out = ct_st_meta(r->f, key);
    if (!*out) return ct_error(CT_ERR_FORMAT, "'%s': the checkpoint's metadata lacks '%s'", r->path, key);
    return CT_OK;
}

static ct_status get_i64(const reader *r, const char *key, int64_t min, int64_t max, int64_t *out) {
    const char *s;
    ct_status st = need_meta(r, key, &s);
    if (st != CT_OK) return st;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < min || v > max)
        return ct_error(CT_ERR_FORMAT, "'%s': metadata '%s' is '%.40s', not an integer in %lld .. %lld", r->path, key,
                        s, (long long)min, (long long)max);
    *out = v;
    return CT_OK;
}

static ct_status get_f64(const reader *r, const char *key, double *out) {
    const char *s;
    ct_status st = need_meta(r, key, &s);
    if (st != CT_OK) return st;
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end) return ct_error(CT_ERR_FORMAT, "'%s': metadata '%s' is '%.40s', not a number", r->path, key, s);
    *out = v;
    return CT_OK;
}

/* Reads tensor `name` of the given shape into dst as dtype, with the
 * checks every loader of weights applies (io/st_param.h): the same shape, a
 * float dtype, finite values. */
static ct_status read_tensor(const reader *r, const char *name, const char *what, ct_shape shape, ct_dtype dt,
                             void *dst, size_t bytes) {
    int i = ct_st_find(r->f, name);
    if (i < 0) return ct_error(CT_ERR_NOT_FOUND, "'%s' has no %s '%s'", r->path, what, name);
    ct_status st = ct_st_read_param(r->f, i, name, shape, dt, dst, bytes);
    /* The message names the tensor already. */
    if (st != CT_OK) return ct_error(st, "'%s': %s", r->path, ct_last_error());
    return CT_OK;
}

static ct_status read_weights(ct_trainer *t, const reader *r, const char *prefix, const char *what, void *flat,
                              void *bufs) {
    ct_graph *g = t->tr.g;
    size_t es = ct_dtype_size(ct_program_param_dtype(t->tr.p));
    char name[512];
    ct_status st = CT_OK;
    for (int i = 0; i < ct_graph_num_params(g) && st == CT_OK; i++) {
        ct_node n = ct_graph_param(g, i);
        snprintf(name, sizeof name, "%s%s", prefix, ct_node_name(g, n));
        size_t off = ct_program_param_offset(t->tr.p, n);
        st = read_tensor(r, name, what, ct_node_shape(g, n), ct_node_dtype(g, n), (char *)flat + off * es,
                         node_bytes(g, n));
    }
    size_t off = 0;
    for (int i = 0; i < ct_graph_num_buffers(g) && st == CT_OK; i++) {
        ct_node n = ct_graph_buffer(g, i);
        snprintf(name, sizeof name, "%s%s", prefix, ct_node_name(g, n));
        st = read_tensor(r, name, what, ct_node_shape(g, n), ct_node_dtype(g, n), (char *)bufs + off,
                         node_bytes(g, n));
        off += node_bytes(g, n);
    }
    return st;
}

/* Everything a checkpoint holds, staged on the host. */
typedef struct staged {
    void *params, *bufs;
    void **states;        /* one flat buffer per optimizer state */
    void *best_params, *best_bufs;
    bool have_best;
    int64_t epoch, batch_in_epoch, step, optim_step, dropout_step;
    double loss_sum;
    int64_t loss_count;
    double last_epoch_loss;
    double best_val_loss;
    int64_t best_epoch, best_step, bad_evals;
    double val_loss, val_acc, lr, elapsed;
    ct_plateau plateau;
    ct_scaler_state amp;
} staged;

/* The mixed-precision settings must match (a checkpoint without them was
 * written in FP32 without loss scaling); the scaler's state is staged. A
 * static scale is the option's, so only the skipped count carries over; a
 * growth counter past a changed growth interval waits for one more step. */
static ct_status stage_amp(ct_trainer *t, const reader *r, staged *s) {
    const char *prec = ct_st_meta(r->f, "ctrain.precision"), *mode = ct_st_meta(r->f, "ctrain.loss_scale_mode");
    const char *want_prec = ct_precision_name(t->o.precision);
    const char *want_mode = ct_loss_scale_mode_name(t->o.loss_scale.mode);
    if (strcmp(prec ? prec : "fp32", want_prec) != 0 || strcmp(mode ? mode : "none", want_mode) != 0)
        return ct_error(CT_ERR_INVALID_ARG,
                        "'%s' was written with precision %.20s and loss scaling %.20s, this run has %s and %s: they "
                        "must match to resume",
                        r->path, prec ? prec : "fp32", mode ? mode : "none", want_prec, want_mode);
    if (!t->scaler) return CT_OK;
    const ct_scaler_opts *so = ct_scaler_options(t->scaler);
    ct_status st;
    if ((st = get_f64(r, "ctrain.amp.loss_scale", &s->amp.scale)) != CT_OK ||
        (st = get_i64(r, "ctrain.amp.growth_tracker", 0, INT32_MAX, &s->amp.growth_tracker)) != CT_OK ||
        (st = get_i64(r, "ctrain.amp.skipped_steps", 0, INT64_MAX, &s->amp.skipped_steps)) != CT_OK)
        return st;
    if (!(s->amp.scale > 0) || !isfinite((float)s->amp.scale) || (double)(float)s->amp.scale != s->amp.scale)
        return ct_error(CT_ERR_FORMAT, "'%s': metadata 'ctrain.amp.loss_scale' is %g, not a positive float", r->path,
                        s->amp.scale);
    if (so->mode == CT_LOSS_SCALE_STATIC) s->amp.scale = so->init_scale;
    if (s->amp.growth_tracker >= so->growth_interval) s->amp.growth_tracker = so->growth_interval - 1;
    return CT_OK;
}

/* That the file is a checkpoint of this model, written with the settings
 * a resumed run must share. */
static ct_status check_identity(const ct_trainer *t, const reader *r) {
    ct_status st;
    const char *v;
    const char *fmt = ct_st_meta(r->f, "format");
    if (!fmt || strcmp(fmt, FORMAT) != 0)
        return ct_error(CT_ERR_FORMAT,
                        "'%s' is not a ctrain checkpoint (its metadata has format '%s', not '" FORMAT
                        "'); weights alone initialise a model, they do not resume a run",
                        r->path, fmt ? fmt : "(none)");
    if ((st = need_meta(r, "ctrain.fingerprint", &v)) != CT_OK) return st;
    if (strcmp(v, t->fingerprint) != 0)
        return ct_error(CT_ERR_INVALID_ARG, "'%s' is a checkpoint of another model ('%.200s'; this one is '%.200s')",
                        r->path, v, t->fingerprint);
    match_item m[N_MATCH];
    int nm = match_items(t, m);
    for (int i = 0; i < nm; i++) {
        if ((st = need_meta(r, m[i].key, &v)) != CT_OK) return st;
        if (strcmp(v, m[i].value) != 0)
            return ct_error(CT_ERR_INVALID_ARG, "'%s' was written with %s %.60s, this run has %s: they must match to resume",
                            r->path, m[i].what, v, m[i].value);
    }
    return CT_OK;
}

static ct_status bad_meta(const reader *r, const char *key, const char *why) {
    return ct_error(CT_ERR_FORMAT, "'%s': metadata '%s' %s", r->path, key, why);
}

/* The position's numbers against each other and the run: a counter edited
 * or corrupted on its own (an epoch of 2^32+1 would read as a finished
 * run) is refused, not trained from. Every save happens at an optimizer
 * step's boundary, so the step count follows from the epoch and the
 * micro-batch. */
static ct_status check_position(const ct_trainer *t, const reader *r, const staged *s) {
    int64_t spe = t->steps_per_epoch;
    int64_t want = s->epoch > (INT64_MAX - spe) / (spe ? spe : 1) ? -1
                   : s->epoch * spe + (s->batch_in_epoch + t->accum - 1) / t->accum;
    if (s->step != want)
        return ct_error(CT_ERR_FORMAT,
                        "'%s': metadata 'ctrain.step' is %lld, but epoch %lld and batch %lld (of %lld batches, %lld "
                        "steps per epoch) make %lld steps: the position is corrupt",
                        r->path, (long long)s->step, (long long)s->epoch, (long long)s->batch_in_epoch,
                        (long long)t->batches, (long long)spe, (long long)want);
    if (s->optim_step > s->step) return bad_meta(r, "ctrain.optim_step", "is more than 'ctrain.step'");
    if (s->best_step > s->step) return bad_meta(r, "ctrain.best_step", "is more than 'ctrain.step'");
    if (s->best_epoch > s->epoch + 1) return bad_meta(r, "ctrain.best_epoch", "is past 'ctrain.epoch'");
    if (!isfinite(s->loss_sum)) return bad_meta(r, "ctrain.loss_sum", "is not finite");
    if (!(s->lr >= 0) || !isfinite(s->lr)) return bad_meta(r, "ctrain.lr", "is not a finite number >= 0");
    if (!(s->elapsed >= 0) || !isfinite(s->elapsed))
        return bad_meta(r, "ctrain.elapsed_s", "is not a finite number >= 0");
    if (isnan(s->best_val_loss)) return bad_meta(r, "ctrain.best_val_loss", "is NaN");
    if (!isnan(s->val_acc) && !(s->val_acc >= 0 && s->val_acc <= 1))
        return bad_meta(r, "ctrain.val_acc", "is not in 0 .. 1");
    return CT_OK;
}

/* The position (epoch, micro-batch, step), the loss sums, early stopping
 * and the plateau schedule's state. */
static ct_status stage_position(const ct_trainer *t, const reader *r, staged *s) {
    ct_status st;
    /* The loader keys an epoch's shuffle by a 32-bit epoch number. */
    if ((st = get_i64(r, "ctrain.epoch", 0, UINT32_MAX, &s->epoch)) != CT_OK ||
        (st = get_i64(r, "ctrain.batch_in_epoch", 0, t->batches - 1, &s->batch_in_epoch)) != CT_OK ||
        (st = get_i64(r, "ctrain.step", 0, INT64_MAX, &s->step)) != CT_OK ||
        (st = get_i64(r, "ctrain.optim_step", 0, INT64_MAX, &s->optim_step)) != CT_OK ||
        (st = get_i64(r, "ctrain.dropout_step", 0, UINT32_MAX, &s->dropout_step)) != CT_OK ||
        (st = get_f64(r, "ctrain.loss_sum", &s->loss_sum)) != CT_OK ||
        (st = get_i64(r, "ctrain.loss_count", 0, INT64_MAX, &s->loss_count)) != CT_OK ||
        (st = get_f64(r, "ctrain.last_epoch_loss", &s->last_epoch_loss)) != CT_OK ||
        (st = get_f64(r, "ctrain.best_val_loss", &s->best_val_loss)) != CT_OK ||
        (st = get_i64(r, "ctrain.best_epoch", 0, INT64_MAX, &s->best_epoch)) != CT_OK ||
        (st = get_i64(r, "ctrain.best_step", 0, INT64_MAX, &s->best_step)) != CT_OK ||
        (st = get_i64(r, "ctrain.bad_evals", 0, INT32_MAX, &s->bad_evals)) != CT_OK ||
        (st = get_f64(r, "ctrain.val_loss", &s->val_loss)) != CT_OK ||
        (st = get_f64(r, "ctrain.val_acc", &s->val_acc)) != CT_OK ||
        (st = get_f64(r, "ctrain.lr", &s->lr)) != CT_OK ||
        (st = get_f64(r, "ctrain.elapsed_s", &s->elapsed)) != CT_OK ||
        (st = check_position(t, r, s)) != CT_OK)
        return st;
    if (t->plateau_on) {
        int64_t nb, cd, ep;
        s->plateau = t->plateau;
        if ((st = get_f64(r, "ctrain.plateau.lr", &s->plateau.lr)) != CT_OK ||
            (st = get_f64(r, "ctrain.plateau.best", &s->plateau.best)) != CT_OK ||
            (st = get_i64(r, "ctrain.plateau.num_bad_epochs", 0, INT32_MAX, &nb)) != CT_OK ||
            (st = get_i64(r, "ctrain.plateau.cooldown_counter", 0, INT32_MAX, &cd)) != CT_OK ||
            (st = get_i64(r, "ctrain.plateau.epochs", 0, INT64_MAX, &ep)) != CT_OK)
            return ct_error(st, "%s (resuming a plateau schedule needs a checkpoint written with one)",
                            ct_last_error());
        if (!(s->plateau.lr >= 0) || !isfinite(s->plateau.lr))
            return bad_meta(r, "ctrain.plateau.lr", "is not a finite number >= 0");
        s->plateau.num_bad_epochs = (int)nb;
        s->plateau.cooldown_counter = (int)cd;
        s->plateau.epochs = ep;
    }
    return CT_OK;
}

/* The optimizer's state tensors into s->states, laid out like the flat
 * parameters. */
static ct_status stage_optim_states(const ct_trainer *t, const reader *r, staged *s) {
    ct_status st;
    ct_graph *g = t->tr.g;
    size_t es = ct_dtype_size(ct_program_param_dtype(t->tr.p));
    char name[512];
    for (int k = 0; k < ct_optimizer_num_states(t->opt); k++) {
        const char *sname;
        if ((st = ct_optimizer_state(t->opt, k, &sname, NULL, NULL)) != CT_OK) return st;
        for (int i = 0; i < ct_graph_num_params(g); i++) {
            ct_node n = ct_graph_param(g, i);
            snprintf(name, sizeof name, "optim.%s.%s", sname, ct_node_name(g, n));
            size_t off = ct_program_param_offset(t->tr.p, n);
            if ((st = read_tensor(r, name, "optimizer state", ct_node_shape(g, n), ct_node_dtype(g, n),
                                  (char *)s->states[k] + off * es, node_bytes(g, n))) != CT_OK)
                return st;
        }
    }
    return CT_OK;
}

/* The best weights, where early stopping may still put them back. */
static ct_status stage_best(ct_trainer *t, const reader *r, staged *s) {
    ct_status st;
    const char *v;
    if ((st = need_meta(r, "ctrain.best", &v)) != CT_OK) return st;
    if (t->o.early_stop_patience > 0) {
        if (strcmp(v, "saved") == 0) {
            if ((st = read_weights(t, r, "best.", "best weight", s->best_params, s->best_bufs)) != CT_OK) return st;
            s->have_best = true;
        } else if (strcmp(v, "current") == 0) {
            memcpy(s->best_params, s->params, t->param_bytes);
            memcpy(s->best_bufs, s->bufs, t->buf_bytes);
            s->have_best = true;
        } else if (strcmp(v, "none") != 0) {
            return ct_error(CT_ERR_FORMAT, "'%s': metadata 'ctrain.best' is '%.40s'", r->path, v);
        }
    }
    return CT_OK;
}

/* Everything of the checkpoint checked and staged in s; the trainer itself
 * is not written until apply. */
static ct_status stage(ct_trainer *t, const reader *r, staged *s) {
    ct_status st;
    if (ct_st_meta(r->f, "quant.format")) /* docs/compression.md */
        return ct_error(CT_ERR_FORMAT, "resuming from '%s': an int8 model (ctrain quantize), not a checkpoint",
                        r->path);
    if ((st = check_identity(t, r)) != CT_OK || (st = stage_amp(t, r, s)) != CT_OK ||
        (st = stage_position(t, r, s)) != CT_OK ||
        (st = read_weights(t, r, "", "weight", s->params, s->bufs)) != CT_OK ||
        (st = stage_optim_states(t, r, s)) != CT_OK || (st = ct_train_prune_stage(t, r->f, r->path)) != CT_OK ||
        (st = ct_train_state_stage(t, r->f, r->path)) != CT_OK)
        return st;
    return stage_best(t, r, s);
}

/* Writes the staged state into the trainer. Only device writes can fail
 * here, after every check passed. */
static ct_status apply(ct_trainer *t, staged *s) {
    ct_status st;
    if ((st = ct_program_write_params(t->tr.p, s->params, t->param_bytes)) != CT_OK ||
        (st = ct_train_write_buffers(t, s->bufs)) != CT_OK)
        return st;
    for (int k = 0; k < ct_optimizer_num_states(t->opt); k++) {
        const char *sname;
        if ((st = ct_optimizer_state(t->opt, k, &sname, NULL, NULL)) != CT_OK ||
            (st = ct_optimizer_write_state(t->opt, sname, s->states[k], t->param_bytes)) != CT_OK)
            return st;
    }
    if ((st = ct_optimizer_set_step_count(t->opt, s->optim_step)) != CT_OK || (st = ct_train_prune_commit(t)) != CT_OK)
        return st;
    if (t->scaler && (st = ct_scaler_set_state(t->scaler, &s->amp)) != CT_OK) return st;
    ct_program_set_step(t->tr.p, (uint32_t)s->dropout_step);
    ct_train_state_commit(t);
    t->epoch = s->epoch;
    t->batch_in_epoch = s->batch_in_epoch;
    t->step = s->step;
    t->loss_sum = s->loss_sum;
    t->loss_count = s->loss_count;
    t->last_epoch_loss = s->last_epoch_loss;
    t->best_val_loss = s->best_val_loss;
    t->best_epoch = s->best_epoch;
    t->best_step = s->best_step;
    t->bad_evals = (int)s->bad_evals;
    t->val_loss = s->val_loss;
    t->val_acc = s->val_acc;
    t->lr = s->lr;
    t->elapsed_prev = t->elapsed_now = s->elapsed;
    if (t->plateau_on) t->plateau = s->plateau;
    if (t->o.early_stop_patience > 0) {
        t->have_best = s->have_best;
        if (s->have_best) {
            memcpy(t->best_params, s->best_params, t->param_bytes);
            memcpy(t->best_bufs, s->best_bufs, t->buf_bytes);
        }
    }
    return CT_OK;
}

ct_status ct_trainer_resume(ct_trainer *t, const char *path) {
    if (!t || !path) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_resume: NULL trainer or path");
    if (t->ran) return ct_error(CT_ERR_STATE, "ct_trainer_resume: the trainer has run already");
    reader r = {.f = ct_st_open(path), .path = path};
    if (!r.f) return ct_last_status();
    int ns = ct_optimizer_num_states(t->opt);
    size_t pb = t->param_bytes ? t->param_bytes : 1, bb = t->buf_bytes ? t->buf_bytes : 1;
    /* calloc: the gaps between parameters in the flat layout stay zero. */
    staged s = {.params = calloc(1, pb),
                .bufs = calloc(1, bb),
                .states = calloc((size_t)ns + 1, sizeof(void *)),
                .best_params = calloc(1, pb),
                .best_bufs = calloc(1, bb)};
    bool ok = s.params && s.bufs && s.states && s.best_params && s.best_bufs;
    for (int k = 0; ok && k < ns; k++) ok = (s.states[k] = calloc(1, pb)) != NULL;
    ct_status st = ok ? stage(t, &r, &s) : ct_error(CT_ERR_OOM, "ct_trainer_resume: out of memory");
    if (st == CT_OK && (st = apply(t, &s)) != CT_OK)
        ct_error(st, "resuming from '%s': %s (the trainer is now in an undefined state)", path, ct_last_error());
    for (int k = 0; s.states && k < ns; k++) free(s.states[k]);
    free(s.states);
    free(s.params);
    free(s.bufs);
    free(s.best_params);
    free(s.best_bufs);
    ct_st_close(r.f);
    return st;
}
