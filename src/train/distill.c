/* Knowledge distillation in the trainer (ctrain/distill.h,
 * docs/compression.md).
 *
 * The teacher is a program of its own, compiled forward-only from its own
 * graph (an evaluation graph of ct_tgraph_build: the model between x and a
 * cross-entropy it never reads), so its parameters are in no optimizer and
 * get no gradient. Every training micro-batch first runs the teacher on the
 * batch, then hands its logits to the student's training program, whose
 * input "teacher_logits" feeds the loss of ct_distill_loss. The copy goes
 * through the host: [batch, classes] floats, small beside the step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/node.h"
#include "ctrain/ops.h"
#include "train/compress_internal.h"

struct ct_distiller {
    ct_distill_opts o;     /* teacher_path: our copy */
    ct_tbuild b;           /* the teacher's graphs */
    ct_tgraph main, other; /* batch_size, and the last size met otherwise */
    float *logits;         /* one batch of the teacher's logits */
    double kl_sum, ce_sum; /* the epoch's terms, times samples */
    int64_t count;
};

ct_status ct_distill_loss(ct_graph *g, ct_node s, ct_node t, ct_node y, double temperature, double alpha,
                          double label_smoothing, ct_node *loss, ct_node *kl, ct_node *ce) {
    if (!g || !loss) return ct_error(CT_ERR_INVALID_ARG, "ct_distill_loss: NULL graph or loss");
    *loss = CT_NO_NODE;
    if (!(temperature > 0) || !isfinite(temperature))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "distill: temperature %g is not a finite number > 0",
                             temperature), ct_graph_status(g);
    if (!(alpha >= 0 && alpha <= 1))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "distill: alpha %g is outside [0, 1]", alpha), ct_graph_status(g);
    double inv_t = 1.0 / temperature;
    ct_node k = ct_kl_div(g, ct_log_softmax(g, ct_scale(g, s, inv_t), -1), ct_softmax(g, ct_scale(g, t, inv_t), -1));
    ct_node c = ct_cross_entropy(g, s, y, label_smoothing);
    /* Hinton's T^2 keeps the soft term's gradients on the hard term's scale. */
    *loss = ct_add(g, ct_scale(g, k, alpha * temperature * temperature), ct_scale(g, c, 1.0 - alpha));
    if (kl) *kl = k;
    if (ce) *ce = c;
    return ct_graph_status(g);
}

static void distiller_free(ct_distiller *d) {
    if (!d) return;
    ct_tgraph_free(&d->other);
    ct_tgraph_free(&d->main);
    free((char *)d->o.teacher_path);
    free(d->logits);
    free(d);
}

void ct_train_distill_free(ct_trainer *t) {
    distiller_free(t->distill);
    t->distill = NULL;
}

/* The teacher's program for `batch` samples in tg, its weights loaded
 * (every parameter and buffer from the file), its output as wide as the
 * student's. */
static ct_status build_teacher(ct_distiller *d, ct_tgraph *tg, int64_t batch, int64_t student_classes) {
    ct_status st = ct_tgraph_build(tg, &d->b, batch, false, NULL);
    if (st != CT_OK) return ct_error(st, "distill: the teacher: %s", ct_last_error());
    if (tg->classes != student_classes) {
        int64_t classes = tg->classes;
        ct_tgraph_free(tg);
        return ct_error(CT_ERR_SHAPE, "distill: the teacher's output has %lld classes, the student's %lld: they "
                        "must be equally wide", (long long)classes, (long long)student_classes);
    }
    int loaded = 0;
    ct_load_opts lo = {.non_strict = true, .require_all = true, .loaded = &loaded};
    if ((st = ct_load_weights(tg->g, tg->p, d->o.teacher_path, &lo)) != CT_OK) {
        ct_tgraph_free(tg);
        return ct_error(st, "distill: the teacher's weights: %s", ct_last_error());
    }
    return CT_OK;
}

ct_status ct_train_distill_check(const ct_trainer *t) {
    const ct_distill_opts *o = t->o.distill;
    if (!o) return CT_OK;
    if (!o->teacher || !o->teacher_path)
        return ct_error(CT_ERR_INVALID_ARG, "distill: no teacher model function or weights path");
    if (t->lm) return ct_error(CT_ERR_INVALID_ARG, "distill: not implemented for language models");
    double temp = o->temperature == 0 ? 4.0 : o->temperature;
    if (!(temp > 0) || !isfinite(temp))
        return ct_error(CT_ERR_INVALID_ARG, "distill: temperature %g is not a finite number > 0", o->temperature);
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return ct_error(CT_ERR_INVALID_ARG, "distill: alpha %g is outside [0, 1]", o->alpha);
    return CT_OK;
}

ct_status ct_train_distill_setup(ct_trainer *t) {
    if (!t->o.distill) return CT_OK;
    ct_status st;
    ct_distiller *d = calloc(1, sizeof *d);
    size_t plen = strlen(t->o.distill->teacher_path) + 1;
    char *path = malloc(plen);
    if (!d || !path) {
        free(d);
        free(path);
        return ct_error(CT_ERR_OOM, "distill: out of memory");
    }
    memcpy(path, t->o.distill->teacher_path, plen);
    d->o = *t->o.distill;
    d->o.teacher_path = path;
    if (d->o.temperature == 0) d->o.temperature = 4.0;
    d->b = t->b;
    d->b.model = (ct_model_fn)d->o.teacher;
    d->b.user = d->o.teacher_user;
    d->b.distill = NULL;
    d->b.scaled = false;
    d->b.num_classes = 1; /* any width builds; build_teacher compares it with the student's */
    int64_t batch = t->tr.batch;
    if ((st = build_teacher(d, &d->main, batch, t->tr.classes)) != CT_OK) {
        distiller_free(d);
        return st;
    }
    if (!(d->logits = malloc((size_t)(batch * t->tr.classes) * sizeof *d->logits))) {
        distiller_free(d);
        return ct_error(CT_ERR_OOM, "distill: out of memory");
    }
    t->distill = d;
    return CT_OK;
}

ct_status ct_train_distill_feed(ct_trainer *t, const ct_tgraph *tg, const ct_batch *b) {
    ct_distiller *d = t->distill;
    if (!d) return CT_OK;
    ct_tgraph *teacher = &d->main;
    ct_status st;
    if (b->count != d->main.batch) {
        if (d->other.batch != b->count) {
            ct_tgraph_free(&d->other);
            if ((st = build_teacher(d, &d->other, b->count, tg->classes)) != CT_OK) return st;
        }
        teacher = &d->other;
    }
    size_t numel = (size_t)ct_dataset_sample_numel(t->train);
    size_t lbytes = (size_t)(b->count * tg->classes) * sizeof(float);
    if ((st = ct_program_set_input_node(teacher->p, teacher->x, b->x, (size_t)b->count * numel * sizeof(float))) !=
            CT_OK ||
        (st = ct_program_set_input_node(teacher->p, teacher->y, b->y, (size_t)b->count * sizeof(int32_t))) != CT_OK ||
        (st = ct_program_run(teacher->p)) != CT_OK ||
        (st = ct_program_read(teacher->p, teacher->logits, d->logits, lbytes)) != CT_OK ||
        (st = ct_program_set_input_node(tg->p, tg->teacher, d->logits, lbytes)) != CT_OK)
        return ct_error(st, "distill: the teacher's step: %s", ct_last_error());
    return CT_OK;
}

ct_status ct_train_distill_account(ct_trainer *t, const ct_tgraph *tg, int64_t count) {
    ct_distiller *d = t->distill;
    if (!d) return CT_OK;
    float kl, ce;
    ct_status st;
    if ((st = ct_program_read(tg->p, tg->kl, &kl, sizeof kl)) != CT_OK ||
        (st = ct_program_read(tg->p, tg->ce, &ce, sizeof ce)) != CT_OK)
        return st;
    d->kl_sum += (double)kl * (double)count;
    d->ce_sum += (double)ce * (double)count;
    d->count += count;
    return CT_OK;
}

void ct_train_distill_means(ct_trainer *t, double *kl, double *ce, bool reset) {
    ct_distiller *d = t->distill;
    *kl = d && d->count ? d->kl_sum / (double)d->count : NAN;
    *ce = d && d->count ? d->ce_sum / (double)d->count : NAN;
    if (d && reset) d->kl_sum = d->ce_sum = 0, d->count = 0;
}
