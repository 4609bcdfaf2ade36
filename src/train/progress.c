/* What a run tells the world: the built-in progress output and the metrics
 * file.
 *
 * On a terminal the progress is one line redrawn in place (a bar, the loss,
 * the throughput and the time left), at most ten times a second so that
 * printing never costs training time; the epoch summaries stay on screen.
 * When stdout is a file or a pipe (a log, CI) redrawing would fill it with
 * carriage returns, so plain lines come instead, one every ten seconds at
 * most, plus the summaries.
 *
 * The metrics file is JSON lines, appended to (a resumed run continues the
 * same file), one object per validation pass or epoch and one at the end,
 * every object with the same keys; a value that does not exist yet is null.
 * A language model's lines have no accuracy or test keys and add
 * tokens_per_s; a run that clips by norm adds grad_norm. The TensorBoard
 * file (tensorboard.c) gets the same values.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "train/compress_internal.h"
#include "train/train_internal.h"

#define REDRAW_S 0.1
#define LINE_EVERY_S 10.0
#define BAR_WIDTH 24

static void fmt_duration(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
        return;
    }
    long v = (long)(s + 0.5);
    if (v >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", v / 60, v % 60);
}

static void fmt_rate(double r, char *buf, size_t cap) {
    if (!isfinite(r))
        snprintf(buf, cap, "?");
    else if (r >= 1e4)
        snprintf(buf, cap, "%.1fk", r / 1e3);
    else
        snprintf(buf, cap, "%.0f", r);
}

static void fmt_epoch(const ct_train_progress *p, char *buf, size_t cap) {
    if (p->epochs > 0)
        snprintf(buf, cap, "epoch %lld/%lld", (long long)p->epoch, (long long)p->epochs);
    else
        snprintf(buf, cap, "epoch %lld", (long long)p->epoch);
}

/* Starts a line that replaces the bar on a terminal. */
static void begin_line(const ct_trainer *t) {
    if (t->tty) fputs("\r\033[K", stdout);
}

bool ct_train_step_shown(const ct_trainer *t, int64_t batch, int64_t batches) {
    if (t->rank != 0) return false;
    if (t->o.progress) return true;
    if (t->o.quiet) return false;
    /* The built-in output's own tests below, asked ahead of time. */
    double now = ct_train_now();
    if (t->tty) return !(now - t->last_draw < REDRAW_S && batch < batches);
    return t->last_line != 0 && now - t->last_line >= LINE_EVERY_S;
}

void ct_train_builtin_progress(const ct_train_progress *p, void *trainer) {
    ct_trainer *t = trainer;
    double now = ct_train_now();
    char ep[48], eta[32], rate[32];
    fmt_epoch(p, ep, sizeof ep);
    switch (p->event) {
    case CT_TRAIN_STEP:
        /* A fused step's loss stays on the GPU unless ct_train_step_shown
         * said it would be drawn; a step without it is not drawn. */
        if (isnan(p->loss) && t->sg) {
            if (!t->tty && t->last_line == 0) t->last_line = now;
            return;
        }
        if (t->tty) {
            if (now - t->last_draw < REDRAW_S && p->batch < p->batches) return;
            t->last_draw = now;
            int fill = p->batches > 0 ? (int)(BAR_WIDTH * p->batch / p->batches) : 0;
            char bar[BAR_WIDTH + 1];
            for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '.';
            bar[BAR_WIDTH] = 0;
            fmt_duration(p->eta_s, eta, sizeof eta);
            fmt_rate(t->lm ? p->tokens_per_s : p->samples_per_s, rate, sizeof rate);
            printf("\r%s [%s] %lld/%lld  loss %.4f  %s %s/s  ETA %s\033[K", ep, bar, (long long)p->batch,
                   (long long)p->batches, p->loss, rate, t->lm ? "tokens" : "samples", eta);
        } else {
            /* The first line comes after LINE_EVERY_S, not at once. */
            if (t->last_line == 0) t->last_line = now;
            if (now - t->last_line < LINE_EVERY_S) return;
            t->last_line = now;
            fmt_duration(p->eta_s, eta, sizeof eta);
            fmt_rate(t->lm ? p->tokens_per_s : p->samples_per_s, rate, sizeof rate);
            printf("%s  batch %lld/%lld  step %lld/%lld  loss %.4f  %s %s/s  ETA %s\n", ep, (long long)p->batch,
                   (long long)p->batches, (long long)p->step, (long long)p->total_steps, p->loss, rate,
                   t->lm ? "tokens" : "samples", eta);
        }
        break;
    case CT_TRAIN_EVAL:
        begin_line(t);
        printf("%s  step %lld  train_loss %.4f  val_loss %.4f", ep, (long long)p->step, p->train_loss, p->val_loss);
        if (t->lm) {
            fmt_rate(p->tokens_per_s, rate, sizeof rate);
            printf("  %s tokens/s\n", rate);
        } else {
            printf("  val_acc %.2f%%\n", 100 * p->val_acc);
        }
        break;
    case CT_TRAIN_EPOCH:
        begin_line(t);
        printf("%s  train_loss %.4f", ep, p->train_loss);
        if (!isnan(p->val_loss)) printf("  val_loss %.4f", p->val_loss);
        if (!isnan(p->val_loss) && !t->lm) printf("  val_acc %.2f%%", 100 * p->val_acc);
        printf("  lr %.3g  %.1f s\n", p->lr, p->epoch_s);
        break;
    case CT_TRAIN_SAVED:
        begin_line(t);
        printf("saved %s\n", p->path ? p->path : "the checkpoint");
        break;
    case CT_TRAIN_EARLY_STOP:
        begin_line(t);
        printf("early stopping: the validation loss has not improved for %d passes; best %.4f (epoch %lld)\n",
               t->o.early_stop_patience, p->best_val_loss, (long long)p->best_epoch);
        break;
    case CT_TRAIN_DONE:
        begin_line(t);
        break;
    }
    fflush(stdout);
}

/* ------------------------------------------------------------ metrics */

static ct_status add_number(cJSON *o, const char *key, double v) {
    cJSON *item = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
    if (!item || !cJSON_AddItemToObject(o, key, item)) {
        cJSON_Delete(item);
        return ct_error(CT_ERR_OOM, "out of memory");
    }
    return CT_OK;
}

static ct_status json_line(ct_trainer *t, const char *event, const ct_train_progress *p) {
    if (!t->metrics && !(t->metrics = fopen(t->metrics_path, "a")))
        return ct_error(CT_ERR_IO, "cannot open the metrics file '%s': %s", t->metrics_path, strerror(errno));
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "event", event)) {
        cJSON_Delete(o);
        return ct_error(CT_ERR_OOM, "out of memory");
    }
    ct_status st = CT_OK;
    if (st == CT_OK) st = add_number(o, "epoch", (double)p->epoch);
    if (st == CT_OK) st = add_number(o, "step", (double)p->step);
    if (st == CT_OK) st = add_number(o, "train_loss", p->train_loss);
    if (st == CT_OK) st = add_number(o, "val_loss", p->val_loss);
    /* A language model has neither accuracy nor test set; its throughput
     * in tokens is the one that compares across block sizes. */
    if (st == CT_OK && !t->lm) st = add_number(o, "val_acc", p->val_acc);
    if (st == CT_OK && !t->lm) st = add_number(o, "test_loss", p->test_loss);
    if (st == CT_OK && !t->lm) st = add_number(o, "test_acc", p->test_acc);
    if (st == CT_OK) st = add_number(o, "lr", p->lr);
    if (st == CT_OK) st = add_number(o, "samples_per_s", p->samples_per_s);
    if (st == CT_OK && t->lm) st = add_number(o, "tokens_per_s", p->tokens_per_s);
    if (st == CT_OK) st = add_number(o, "elapsed_s", p->elapsed_s);
    if (st == CT_OK) st = add_number(o, "loss_scale", p->loss_scale);
    if (st == CT_OK) st = add_number(o, "skipped_steps", (double)p->skipped_steps);
    /* Only where clipping computes it: without, the key would always be null. */
    if (st == CT_OK && t->o.clip_norm > 0) st = add_number(o, "grad_norm", p->grad_norm);
    if (st == CT_OK) st = ct_train_compress_metrics(t, o, event); /* sparsity, distillation terms */
    char *text = st == CT_OK ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (st != CT_OK) return st;
    if (!text) return ct_error(CT_ERR_OOM, "out of memory");
    int w = fprintf(t->metrics, "%s\n", text);
    cJSON_free(text);
    /* Flushed line by line so that a crash, or a reader following the
     * file, sees every finished line. */
    if (w < 0 || fflush(t->metrics) != 0)
        return ct_error(CT_ERR_IO, "cannot write the metrics file '%s': %s", t->metrics_path, strerror(errno));
    return CT_OK;
}

ct_status ct_train_metrics_line(ct_trainer *t, const char *event, const ct_train_progress *p) {
    if (t->rank != 0) return CT_OK; /* one file for the job, written by rank 0 */
    ct_status st = t->metrics_path ? json_line(t, event, p) : CT_OK;
    if (st == CT_OK && t->tb) st = ct_train_tb_line(t, event, p);
    return st;
}
