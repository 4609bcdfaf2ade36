/* Predictions of a trained classifier: the class probabilities of every
 * sample of a dataset under the weights in a file.
 *
 *     ct_eval_opts o = {.model = build, .model_user = &cfg};
 *     ct_prediction p;
 *     if (ct_predict_file(&o, "model.safetensors", ds, &p) == CT_OK) {
 *         // p.probs[i * p.classes + c]: P(class c | sample i); p.label[i]: the argmax
 *         ct_prediction_free(&p);
 *     }
 *
 * The dataset's features must already be normalised as the model was
 * trained (its labels are ignored); `ctrain predict` does that from the
 * record a checkpoint of `ctrain train` carries.
 */
#ifndef CTRAIN_PREDICT_H
#define CTRAIN_PREDICT_H

#include <stdint.h>

#include "ctrain/data.h"
#include "ctrain/status.h"
#include "ctrain/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_prediction {
    int64_t count;   /* samples */
    int64_t classes; /* the model's outputs per sample */
    /* count * classes: softmax of each sample's logits (computed in
     * double, as torch.softmax(logits.double(), -1).float()); row i is
     * sample i. */
    float *probs;
    /* count: the most probable class, the first maximum of the logits as
     * torch.argmax takes it (-1 for a row of NaN). */
    int32_t *label;
} ct_prediction;

/* Builds the model of opts for ds's sample shape, loads every parameter
 * and buffer from path by name (other tensors, such as a checkpoint's
 * optimizer state, are ignored), and runs it in evaluation mode over every
 * sample in batches of opts->batch_size (0: 256). *out is filled on success
 * (free it with ct_prediction_free) and zeroed on error. Errors: those of
 * ct_evaluate_file (an unreadable file, CT_ERR_NOT_FOUND naming a missing
 * parameter, CT_ERR_SHAPE naming a tensor of another shape: a model that
 * does not take samples of this width), CT_ERR_INVALID_ARG, CT_ERR_OOM. */
ct_status ct_predict_file(const ct_eval_opts *opts, const char *path, const ct_dataset *ds, ct_prediction *out);

/* Frees what ct_predict_file allocated and zeroes *p; NULL is ignored. */
void ct_prediction_free(ct_prediction *p);

#ifdef __cplusplus
}
#endif
#endif
