/* The trainer's TensorBoard file: the values of each metrics line as
 * scalars at the optimizer step, and histograms of the weights every N
 * epochs (ct_train_opts.tensorboard_dir, tensorboard_histograms).
 *
 * The event file mirrors the metrics file rather than logging every step:
 * the two then hold the same numbers (tests/tensorboard_check.py reads both
 * and compares them to the bit of a float), and a GPU run's fused steps
 * keep their loss on the device as they do without TensorBoard. A metrics
 * line repeats values that have not changed since the line before (the
 * final "test" line carries the last epoch's training loss at the same
 * step); TensorBoard would draw them as a second point at the same step, so
 * a tag's value is written only when its step or its float differs from
 * the last one written for it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "train/train_internal.h"

enum { TB_TRAIN_LOSS, TB_LR, TB_SAMPLES, TB_TOKENS, TB_GRAD_NORM, TB_LOSS_SCALE,
       TB_VAL_LOSS, TB_VAL_ACC, TB_TEST_LOSS, TB_TEST_ACC, TB_N };

_Static_assert(TB_N == CT_TB_TAGS, "CT_TB_TAGS (train_internal.h) counts the tags");

static const char *const tags[TB_N] = {
    [TB_TRAIN_LOSS] = "train/loss",         [TB_LR] = "train/lr",
    [TB_SAMPLES] = "train/samples_per_s",   [TB_TOKENS] = "train/tokens_per_s",
    [TB_GRAD_NORM] = "train/grad_norm",     [TB_LOSS_SCALE] = "train/loss_scale",
    [TB_VAL_LOSS] = "val/loss",             [TB_VAL_ACC] = "val/accuracy",
    [TB_TEST_LOSS] = "test/loss",           [TB_TEST_ACC] = "test/accuracy",
};

ct_status ct_train_tb_open(ct_trainer *t) {
    if (!t->tb_dir || t->rank != 0 || t->tb) return CT_OK; /* one file for the job */
    /* ct_tfevents_open's error names the directory or file and the reason. */
    return (t->tb = ct_tfevents_open(t->tb_dir)) ? CT_OK : ct_last_status();
}

/* The line's value of each tag; NAN where the line has none. */
static void line_values(const ct_trainer *t, const ct_train_progress *p, double *v) {
    for (int i = 0; i < TB_N; i++) v[i] = NAN;
    v[TB_TRAIN_LOSS] = p->train_loss;
    v[TB_LR] = p->lr;
    v[TB_SAMPLES] = p->samples_per_s;
    if (t->lm) v[TB_TOKENS] = p->tokens_per_s;
    if (t->o.clip_norm > 0) v[TB_GRAD_NORM] = p->grad_norm;
    if (t->scaler) v[TB_LOSS_SCALE] = p->loss_scale;
    v[TB_VAL_LOSS] = p->val_loss;
    if (!t->lm) {
        v[TB_VAL_ACC] = p->val_acc;
        v[TB_TEST_LOSS] = p->test_loss;
        v[TB_TEST_ACC] = p->test_acc;
    }
}

static bool same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* "weights/<name>" of every F32 parameter. */
static ct_status histograms(ct_trainer *t, int64_t step, double wall) {
    ct_graph *g = t->tr.g;
    ct_status st = CT_OK;
    for (int i = 0; st == CT_OK && i < ct_graph_num_params(g); i++) {
        ct_node n = ct_graph_param(g, i);
        if (ct_node_dtype(g, n) != CT_F32) continue;
        const char *name = ct_node_name(g, n);
        size_t count = (size_t)ct_shape_numel(ct_node_shape(g, n));
        float *x = malloc(count * sizeof *x);
        char tag[512];
        snprintf(tag, sizeof tag, "weights/%s", name);
        if (!x) st = ct_error(CT_ERR_OOM, "out of memory");
        if (st == CT_OK) st = ct_program_get_param(t->tr.p, name, x, count * sizeof *x);
        if (st == CT_OK) st = ct_tfevents_add_histogram(t->tb, tag, step, x, count, 0, wall);
        free(x);
    }
    return st;
}

ct_status ct_train_tb_line(ct_trainer *t, const char *event, const ct_train_progress *p) {
    double v[TB_N];
    line_values(t, p, v);
    /* One wall time for all the line's values. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wall = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    ct_status st = CT_OK;
    for (int i = 0; st == CT_OK && i < TB_N; i++) {
        if (!isfinite(v[i])) continue;
        float f = (float)v[i];
        if (t->tb_written[i] && t->tb_step[i] == p->step && same_float(t->tb_value[i], f)) continue;
        st = ct_tfevents_add_scalar(t->tb, tags[i], p->step, v[i], wall);
        t->tb_written[i] = true;
        t->tb_step[i] = p->step;
        t->tb_value[i] = f;
    }
    int64_t every = t->o.tensorboard_histograms;
    if (st == CT_OK && every > 0 && strcmp(event, "epoch") == 0 && p->epoch % every == 0)
        st = histograms(t, p->step, wall);
    if (st == CT_OK) st = ct_tfevents_flush(t->tb);
    return st;
}
