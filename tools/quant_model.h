/* The int8 model `ctrain eval` runs (quant_model.c): the MLP or the CNN of
 * a file `ctrain quantize` wrote, with int8 products (ct_qlinear,
 * ct_qconv2d_forward) and batch norm, activation and pooling in F32. */
#ifndef CTRAIN_TOOLS_QUANT_MODEL_H
#define CTRAIN_TOOLS_QUANT_MODEL_H

#include <stdbool.h>

#include <ctrain/ctrain.h>

#include "quant_cli.h"

typedef struct qmodel {
    const model_cfg *m;
    const char *where;                  /* the data, for messages */
    int n_layers;
    ct_qlinear lin[QUANT_MAX_LAYERS];
    ct_qconv2d_geom geom[2];            /* cnn: the convolutions' input and kernel */
    float *bn[QUANT_MAX_LAYERS][4];     /* weight, bias, running_mean, running_var */
    int64_t widest;                     /* the most values per sample between layers */
} qmodel;

/* Loads the layers of the int8 file f (at path) for model m and samples of
 * the given shape; false after one line on stderr (where: the data). */
bool qmodel_load(qmodel *q, const char *path, const ct_st_file *f, const model_cfg *m, ct_shape sample,
                 const char *where);
void qmodel_free(qmodel *q);
/* Scratch bytes for batches of b. */
size_t qmodel_scratch(const qmodel *q, int64_t b);
/* logits [b, classes] of x [b, sample]; h0, h1: b * widest floats each;
 * the logits end in h0. */
bool qmodel_forward(const qmodel *q, const float *x, int64_t b, float *h0, float *h1, void *scratch);

#endif
