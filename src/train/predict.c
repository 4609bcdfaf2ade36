/* ct_predict_file (ctrain/predict.h): the class probabilities of every
 * sample under the weights in a file.
 *
 * The model runs in the evaluation graphs the trainer uses (train_internal.h:
 * the model between x and a cross-entropy loss, one program per batch size
 * sharing the parameters), so a prediction is exactly what evaluation and
 * training saw; the labels fed are zeros and the loss is not read. The
 * softmax is taken on the host in double from the logits read back.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/predict.h"
#include "ctrain/safetensors.h"
#include "train/train_internal.h"

void ct_prediction_free(ct_prediction *p) {
    if (!p) return;
    free(p->probs);
    free(p->label);
    memset(p, 0, sizeof *p);
}

/* Row i of logits into probabilities and the argmax. */
static int32_t softmax_row(const float *logits, int64_t C, float *probs) {
    double max = -INFINITY;
    int32_t best = -1;
    for (int64_t c = 0; c < C; c++) {
        /* The first maximum, as torch.argmax; a NaN row predicts nothing. */
        if (logits[c] > max || (best < 0 && logits[c] == max)) {
            max = logits[c];
            best = (int32_t)c;
        }
    }
    double sum = 0;
    for (int64_t c = 0; c < C; c++) sum += exp((double)logits[c] - max);
    for (int64_t c = 0; c < C; c++) probs[c] = (float)(exp((double)logits[c] - max) / sum);
    return best;
}

/* Every batch through the model; out->probs and out->label allocated. */
static ct_status run_batches(ct_evaluator *ev, const ct_dataset *ds, ct_prediction *out) {
    int64_t n = ct_dataset_size(ds), numel = ct_dataset_sample_numel(ds), C = ev->main.classes;
    const float *x = ct_dataset_features(ds);
    int32_t *zeros = calloc((size_t)ev->batch, sizeof *zeros);
    out->probs = malloc((size_t)(n * C) * sizeof *out->probs);
    out->label = malloc((size_t)n * sizeof *out->label);
    if (!zeros || !out->probs || !out->label) {
        free(zeros);
        return ct_error(CT_ERR_OOM, "ct_predict_file: out of memory for %lld x %lld probabilities", (long long)n,
                        (long long)C);
    }
    ct_status st = CT_OK;
    for (int64_t start = 0; start < n && st == CT_OK;) {
        int64_t count = n - start < ev->batch ? n - start : ev->batch;
        ct_tgraph *tg = &ev->main;
        if (count != ev->batch) {
            /* The shorter last batch: its own program, sharing the weights. */
            ct_tgraph_free(&ev->extra[0]);
            st = ct_tgraph_build(&ev->extra[0], &ev->b, count, false, ev->share);
            if (st != CT_OK) break;
            ev->n_extra = 1;
            tg = &ev->extra[0];
        }
        if ((st = ct_program_set_input_node(tg->p, tg->x, x + start * numel, (size_t)(count * numel) * sizeof(float))) !=
                CT_OK ||
            (st = ct_program_set_input_node(tg->p, tg->y, zeros, (size_t)count * sizeof(int32_t))) != CT_OK ||
            (st = ct_program_run(tg->p)) != CT_OK ||
            (st = ct_program_read(tg->p, tg->logits, ev->logits, (size_t)(count * C) * sizeof(float))) != CT_OK)
            break;
        for (int64_t i = 0; i < count; i++)
            out->label[start + i] = softmax_row(ev->logits + i * C, C, out->probs + (start + i) * C);
        start += count;
    }
    free(zeros);
    return st;
}

ct_status ct_predict_file(const ct_eval_opts *opts, const char *path, const ct_dataset *ds, ct_prediction *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!opts || !opts->model || !path || !ds || !out)
        return ct_error(CT_ERR_INVALID_ARG, "ct_predict_file: NULL options, model, path, dataset or result");
    if (opts->batch_size < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_predict_file: batch_size %lld < 0", (long long)opts->batch_size);
    int64_t n = ct_dataset_size(ds);
    int64_t batch = opts->batch_size ? opts->batch_size : 256;
    if (batch > n) batch = n;
    ct_tbuild b = {.model = opts->model,
                   .user = opts->model_user,
                   .device = opts->device,
                   .sample = ct_dataset_sample_shape(ds),
                   .num_classes = 1};
    ct_evaluator ev;
    ct_status st = ct_evaluator_init(&ev, &b, NULL, batch);
    if (st != CT_OK) return ct_error(st, "ct_predict_file: %s", ct_last_error());
    /* Every parameter and buffer must come from the file: a half-loaded
     * model would predict from its random initialisation. */
    ct_load_opts lo = {.non_strict = true, .require_all = true, .strip_prefix = opts->strip_prefix};
    st = ct_load_weights(ev.main.g, ev.main.p, path, &lo);
    if (st == CT_OK) {
        out->count = n;
        out->classes = ev.main.classes;
        st = run_batches(&ev, ds, out);
        if (st != CT_OK) {
            st = ct_error(st, "ct_predict_file: %s", ct_last_error());
            ct_prediction_free(out);
        }
    }
    ct_evaluator_free(&ev);
    return st;
}
