/* Calibration of the activation ranges for `ctrain quantize` (quant_calib.c). */
#ifndef CTRAIN_TOOLS_QUANT_CALIB_H
#define CTRAIN_TOOLS_QUANT_CALIB_H

#include <stdbool.h>

#include <ctrain/ctrain.h>

#include "train_cli.h"

typedef struct calib_args {
    const char *cmd, *path, *where; /* the checkpoint, and the data for messages */
    const model_cfg *m;             /* an MLP or a CNN */
    const ct_dataset *ds;           /* normalised as the model was trained */
    int64_t batches, batch;         /* at most `batches` whole batches of `batch` */
    double percentile;              /* 0: min/max; else p in (50, 100] */
    ct_device device;
} calib_args;

typedef struct calib_out {
    float lo[MLP_MAX_HIDDEN + 3], hi[MLP_MAX_HIDDEN + 3]; /* per layer's input (quant_layers) */
    int64_t batches, batch;                               /* what was used */
    float *values[MLP_MAX_HIDDEN + 3];                    /* percentile: the values seen */
} calib_out;

/* Runs the F32 model on the first batches of ds and sets every layer
 * input's range; false after one line on stderr. */
bool quant_calibrate(const calib_args *a, calib_out *o);
void calib_out_free(calib_out *o);

/* Writes the int8 model (layout in quant_cli.h) of the MLP checkpoint f
 * with the calibrated ranges; prints one summary line. Exit code. */
typedef struct quant_write_args {
    const char *cmd, *path, *out;     /* the checkpoint read, the file to write */
    const ct_st_file *f;
    const model_cfg *m;
    const calib_out *co;
    const char *calibration, *data_where; /* recorded in the metadata */
} quant_write_args;
int quant_write(const quant_write_args *a);

#endif
