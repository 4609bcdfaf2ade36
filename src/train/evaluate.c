/* Building the model's graphs, and evaluating a model on a dataset.
 *
 * Every graph the trainer runs is the user's model between an input x and a
 * cross-entropy loss, compiled for one batch size. A dataset whose size is
 * not a multiple of the batch ends in a shorter batch; rather than padding
 * it (which would need masking in the loss) a second program is compiled for
 * that size, sharing the parameters, so every sample counts exactly once and
 * the mean loss is exact.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/ops.h"
#include "ctrain/safetensors.h"
#include "train/train_internal.h"

void ct_tgraph_free(ct_tgraph *tg) {
    if (!tg) return;
    ct_program_free(tg->p);
    ct_graph_free(tg->g);
    memset(tg, 0, sizeof *tg);
}

/* The inputs x and labels of a batch: samples and one label each, or for a
 * language model token windows [batch, T] and one label per token. */
static ct_status add_inputs(ct_tgraph *tg, const ct_tbuild *b, int64_t batch) {
    ct_graph *g = tg->g;
    if (b->block_size > 0) {
        tg->x = ct_input(g, "x", CT_I32, (ct_shape){2, {batch, b->block_size}});
        tg->y = ct_input(g, "labels", CT_I32, (ct_shape){1, {batch * b->block_size}});
        return CT_OK;
    }
    ct_shape xs = {b->sample.ndim + 1, {batch}};
    if (xs.ndim > CT_MAX_DIMS)
        return ct_error(CT_ERR_SHAPE, "a sample of %d dimensions leaves no room for the batch axis",
                        b->sample.ndim);
    for (int i = 0; i < b->sample.ndim; i++) xs.dim[i + 1] = b->sample.dim[i];
    tg->x = ct_input(g, "x", CT_F32, xs);
    tg->y = ct_input(g, "labels", CT_I32, (ct_shape){1, {batch}});
    return CT_OK;
}

/* Checks the model's output: F32 logits [batch, C] (a language model's
 * [batch, T, V], then viewed as [batch * T, V]), C >= num_classes. */
static ct_status check_logits(ct_tgraph *tg, const ct_tbuild *b, int64_t batch) {
    ct_graph *g = tg->g;
    ct_shape ls = ct_node_shape(g, tg->logits);
    ct_dtype ld = ct_node_dtype(g, tg->logits);
    bool lm = b->block_size > 0;
    int last = ls.ndim - 1;
    bool ok = ls.ndim == (lm ? 3 : 2) && ls.dim[0] == batch && (!lm || ls.dim[1] == b->block_size) &&
              ls.dim[last] >= b->num_classes && ld == CT_F32;
    if (!ok) {
        char s[96];
        ct_shape_str(ls, s, sizeof s);
        if (lm)
            return ct_error(CT_ERR_SHAPE,
                            "the model's output is %s %s; the trainer needs F32 logits [%lld, %lld, V] with V >= %d "
                            "(the vocabulary size)",
                            ct_dtype_name(ld), s, (long long)batch, (long long)b->block_size, (int)b->num_classes);
        return ct_error(CT_ERR_SHAPE,
                        "the model's output is %s %s; the trainer needs F32 logits [%lld, C] with C >= %d "
                        "(the number of classes)",
                        ct_dtype_name(ld), s, (long long)batch, (int)b->num_classes);
    }
    tg->classes = ls.dim[last];
    if (lm) tg->logits = ct_reshape(g, tg->logits, (ct_shape){2, {batch * b->block_size, tg->classes}});
    return CT_OK;
}

/* Into tg->g: the inputs, the model, its loss, and the backward pass when
 * training. On failure the caller frees tg. */
static ct_status build_graph(ct_tgraph *tg, const ct_tbuild *b, int64_t batch, bool training) {
    ct_graph *g = tg->g;
    ct_graph_set_seed(g, b->seed);
    ct_status st = ct_graph_set_precision(g, b->precision);
    if (st == CT_OK) st = ct_graph_set_tf32(g, b->tf32);
    if (st == CT_OK) st = add_inputs(tg, b, batch);
    if (st != CT_OK) return st;
    tg->logits = b->model(g, tg->x, training, b->user);
    st = ct_graph_status(g);
    if (st != CT_OK || tg->logits == CT_NO_NODE) {
        st = st != CT_OK ? st : CT_ERR_INVALID_ARG;
        return ct_error(st, "building the model: %s",
                        ct_graph_error(g)[0] ? ct_graph_error(g) : "the model function returned no node");
    }
    if ((st = check_logits(tg, b, batch)) != CT_OK) return st;
    if (training && b->distill) {
        /* The teacher's logits come in as an input each step (distill.c). */
        tg->teacher = ct_input(g, "teacher_logits", CT_F32, (ct_shape){2, {batch, tg->classes}});
        ct_distill_loss(g, tg->logits, tg->teacher, tg->y, b->distill->temperature, b->distill->alpha,
                        b->label_smoothing, &tg->loss, &tg->kl, &tg->ce);
    } else {
        tg->loss = ct_cross_entropy(g, tg->logits, tg->y, training ? b->label_smoothing : 0.0);
    }
    if ((st = ct_graph_status(g)) != CT_OK) return ct_error(st, "building the loss: %s", ct_graph_error(g));
    if (training && (st = b->scaled ? ct_graph_backward_scaled(g, tg->loss) : ct_graph_backward(g, tg->loss)) != CT_OK)
        return ct_error(st, "building the backward pass: %s", ct_last_error());
    return CT_OK;
}

/* The named nodes a training graph keeps (b->keep) after outs[*n]. */
static ct_status add_kept(const ct_tgraph *tg, const ct_tbuild *b, ct_node *outs, int *n) {
    if (b->n_keep > CT_TBUILD_MAX_KEEP)
        return ct_error(CT_ERR_INVALID_ARG, "%d carried states; at most %d", b->n_keep, CT_TBUILD_MAX_KEEP);
    for (int i = 0; i < b->n_keep; i++) {
        ct_node k = ct_find(tg->g, b->keep[i]);
        if (k == CT_NO_NODE)
            return ct_error(CT_ERR_NOT_FOUND,
                            "the model's training graph has no node named '%s' (a carried state: name it with "
                            "ct_set_name)",
                            b->keep[i]);
        outs[(*n)++] = k;
    }
    return CT_OK;
}

ct_status ct_tgraph_build(ct_tgraph *tg, const ct_tbuild *b, int64_t batch, bool training,
                          ct_program *share) {
    memset(tg, 0, sizeof *tg);
    tg->batch = batch;
    if (!(tg->g = ct_graph_new())) return ct_error(CT_ERR_OOM, "out of memory");
    ct_status st = build_graph(tg, b, batch, training);
    if (st != CT_OK) {
        ct_tgraph_free(tg);
        return st;
    }
    ct_node outs[3 + CT_TBUILD_MAX_KEEP] = {tg->loss, tg->logits};
    int n_out = training || b->block_size > 0 ? 1 : 2;
    if (training && b->distill) {
        outs[1] = tg->kl; /* the metrics read both terms */
        outs[2] = tg->ce;
        n_out = 3;
    }
    if (training && (st = add_kept(tg, b, outs, &n_out)) != CT_OK) {
        ct_tgraph_free(tg);
        return st;
    }
    ct_compile_opts co = {.device = b->device,
                          .outputs = outs,
                          .n_outputs = n_out,
                          .grads = training,
                          .share_params = share};
    if (!(tg->p = ct_compile(tg->g, &co))) {
        st = ct_last_status();
        ct_tgraph_free(tg);
        return st;
    }
    ct_program_set_training(tg->p, training);
    return CT_OK;
}

/* ------------------------------------------------------------ evaluation */

ct_status ct_evaluator_init(ct_evaluator *ev, const ct_tbuild *b, ct_program *share, int64_t batch) {
    memset(ev, 0, sizeof *ev);
    ev->b = *b;
    ev->share = share;
    ev->batch = batch;
    ct_status st = ct_tgraph_build(&ev->main, b, batch, false, share);
    if (st != CT_OK) return st;
    if (!ev->share) ev->share = ev->main.p;
    if (b->block_size > 0) return CT_OK; /* a language model's evaluation reads only the loss */
    ev->logits = malloc((size_t)(batch * ev->main.classes) * sizeof *ev->logits);
    if (!ev->logits) {
        ct_tgraph_free(&ev->main);
        return ct_error(CT_ERR_OOM, "out of memory for the logits of %lld samples", (long long)batch);
    }
    return CT_OK;
}

void ct_evaluator_free(ct_evaluator *ev) {
    if (!ev) return;
    for (int i = 0; i < ev->n_extra; i++) ct_tgraph_free(&ev->extra[i]);
    ct_tgraph_free(&ev->main);
    free(ev->logits);
    memset(ev, 0, sizeof *ev);
}

/* The program for batches of `count` samples, compiled the first time. */
static ct_status program_for(ct_evaluator *ev, int64_t count, ct_tgraph **out) {
    if (count == ev->batch) {
        *out = &ev->main;
        return CT_OK;
    }
    for (int i = 0; i < ev->n_extra; i++)
        if (ev->extra[i].batch == count) {
            *out = &ev->extra[i];
            return CT_OK;
        }
    /* Datasets of many different sizes are rare; the oldest goes. */
    if (ev->n_extra == CT_EVAL_EXTRA) {
        ct_tgraph_free(&ev->extra[0]);
        memmove(&ev->extra[0], &ev->extra[1], (CT_EVAL_EXTRA - 1) * sizeof ev->extra[0]);
        memset(&ev->extra[CT_EVAL_EXTRA - 1], 0, sizeof ev->extra[0]);
        ev->n_extra--;
    }
    ct_tgraph *tg = &ev->extra[ev->n_extra];
    ct_status st = ct_tgraph_build(tg, &ev->b, count, false, ev->share);
    if (st != CT_OK) return st;
    ev->n_extra++;
    *out = tg;
    return CT_OK;
}

ct_status ct_evaluator_run(ct_evaluator *ev, const ct_dataset *ds, ct_eval_result *out) {
    return ct_evaluator_run_range(ev, ds, 0, ct_dataset_size(ds), out);
}

ct_status ct_evaluator_run_range(ct_evaluator *ev, const ct_dataset *ds, int64_t lo, int64_t hi,
                                 ct_eval_result *out) {
    memset(out, 0, sizeof *out);
    out->loss = NAN;
    out->accuracy = NAN;
    int64_t n = hi - lo, numel = ct_dataset_sample_numel(ds);
    ct_shape s = ct_dataset_sample_shape(ds);
    if (!ct_shape_equal(s, ev->b.sample)) {
        char a[96], b[96];
        return ct_error(CT_ERR_SHAPE, "evaluate: the dataset's samples are %s, the model takes %s",
                        ct_shape_str(s, a, sizeof a), ct_shape_str(ev->b.sample, b, sizeof b));
    }
    if (ct_dataset_num_classes(ds) > ev->main.classes)
        return ct_error(CT_ERR_SHAPE, "evaluate: the dataset has %d classes, the model %lld outputs",
                        (int)ct_dataset_num_classes(ds), (long long)ev->main.classes);
    const float *x = ct_dataset_features(ds);
    const int32_t *y = ct_dataset_labels(ds);
    double loss_sum = 0;
    int64_t correct = 0;
    const int64_t C = ev->main.classes;
    for (int64_t start = lo; start < hi;) {
        int64_t count = hi - start < ev->batch ? hi - start : ev->batch;
        ct_tgraph *tg;
        ct_status st = program_for(ev, count, &tg);
        if (st != CT_OK) return st;
        float loss;
        if ((st = ct_program_set_input_node(tg->p, tg->x, x + start * numel,
                                            (size_t)(count * numel) * sizeof(float))) != CT_OK ||
            (st = ct_program_set_input_node(tg->p, tg->y, y + start, (size_t)count * sizeof(int32_t))) != CT_OK ||
            (st = ct_program_run(tg->p)) != CT_OK ||
            (st = ct_program_read(tg->p, tg->loss, &loss, sizeof loss)) != CT_OK ||
            (st = ct_program_read(tg->p, tg->logits, ev->logits, (size_t)(count * C) * sizeof(float))) != CT_OK)
            return ct_error(st, "evaluate: %s", ct_last_error());
        loss_sum += (double)loss * (double)count;
        for (int64_t i = 0; i < count; i++) {
            /* The first maximum, as torch.argmax; a NaN row predicts nothing. */
            const float *row = ev->logits + i * C;
            int64_t best = -1;
            float bv = -INFINITY;
            for (int64_t c = 0; c < C; c++)
                if (row[c] > bv || (best < 0 && row[c] == bv)) {
                    bv = row[c];
                    best = c;
                }
            correct += best == y[start + i];
        }
        start += count;
    }
    out->count = n;
    out->correct = correct;
    out->loss = loss_sum / (double)n;
    out->accuracy = (double)correct / (double)n;
    return CT_OK;
}

/* ------------------------------------------------------------ a file */

/* Lists the parameters and buffers of g that the file lacks, so that a
 * checkpoint of another model is a clear error rather than a half-loaded
 * model (ct_load_weights is non-strict here only to skip the optimizer
 * state and other extra tensors). */
static ct_status check_complete(const ct_graph *g, const ct_st_file *f, const char *path, const char *prefix) {
    int np = ct_graph_num_params(g), nb = ct_graph_num_buffers(g);
    int missing = 0;
    char first[128] = "";
    size_t plen = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < np + nb; i++) {
        const char *name = ct_node_name(g, i < np ? ct_graph_param(g, i) : ct_graph_buffer(g, i - np));
        bool found = ct_st_find(f, name) >= 0;
        if (!found && plen) {
            char full[512];
            snprintf(full, sizeof full, "%s%s", prefix, name);
            found = ct_st_find(f, full) >= 0;
        }
        if (!found && missing++ == 0) snprintf(first, sizeof first, "%s", name);
    }
    if (!missing) return CT_OK;
    return ct_error(CT_ERR_NOT_FOUND, "'%s' lacks %d of the model's %d tensors, e.g. '%s' (weights of another model?)",
                    path, missing, np + nb, first);
}

ct_status ct_evaluate_file(const ct_eval_opts *opts, const char *path, const ct_dataset *ds,
                           ct_eval_result *out) {
    if (!opts || !opts->model || !path || !ds || !out)
        return ct_error(CT_ERR_INVALID_ARG, "ct_evaluate_file: NULL options, model, path, dataset or result");
    if (opts->batch_size < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_evaluate_file: batch_size %lld < 0", (long long)opts->batch_size);
    int64_t n = ct_dataset_size(ds);
    int64_t batch = opts->batch_size ? opts->batch_size : 256;
    if (batch > n) batch = n;
    ct_tbuild b = {.model = opts->model,
                   .user = opts->model_user,
                   .device = opts->device,
                   .sample = ct_dataset_sample_shape(ds),
                   .num_classes = ct_dataset_num_classes(ds)};
    ct_evaluator ev;
    ct_status st = ct_evaluator_init(&ev, &b, NULL, batch);
    if (st != CT_OK) return ct_error(st, "ct_evaluate_file: %s", ct_last_error());
    ct_st_file *f = ct_st_open(path);
    if (!f) {
        st = ct_last_status();
    } else {
        st = check_complete(ev.main.g, f, path, opts->strip_prefix);
        ct_st_close(f);
    }
    ct_load_opts lo = {.non_strict = true, .strip_prefix = opts->strip_prefix};
    if (st == CT_OK) st = ct_load_weights(ev.main.g, ev.main.p, path, &lo);
    if (st == CT_OK) st = ct_evaluator_run(&ev, ds, out);
    ct_evaluator_free(&ev);
    return st;
}
