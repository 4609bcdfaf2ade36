/* What `ctrain eval` checks before it believes a number: weights, the
 * normalisation record and the labels, so that NaN weights or a degenerate
 * record are named as such instead of printing accuracy 0% and loss nan. */
#ifndef CTRAIN_TOOLS_EVAL_CHECKS_H
#define CTRAIN_TOOLS_EVAL_CHECKS_H

#include <stdbool.h>
#include <stdint.h>

#include <ctrain/ctrain.h>

/* Every float tensor of the file the model may read (all but the
 * optimizer's "optim." state and the "best." copy) is finite; else one line
 * naming the tensor and the element, and false. */
bool eval_weights_finite(const char *cmd, const char *path, const ct_st_file *f);

/* The normalisation record: every mean finite, every std finite and > 0
 * (training never writes a 0: a constant feature gets 1); else one line
 * naming the field, and false. */
bool eval_norm_ok(const char *cmd, const char *path, const float *mean, const float *std, int64_t n);

/* Every label of ds below the model's classes, the dataset then declaring
 * exactly those (an image set's 10 for a model with more outputs is fine);
 * else one line naming the record, and false. */
bool eval_fit_classes(const char *cmd, ct_dataset *ds, const char *where, int64_t classes);

#endif
