/* `ctrain quantize` and the int8 side of `ctrain eval` (docs/compression.md,
 * "Quantization"). The quantized file is a safetensors file whose metadata
 * "quant.format" is QUANT_FORMAT; its tensors per linear layer fcK (and
 * per convolution convK, whose qweight is [out, C, KH, KW]):
 *
 *   fcK.qweight           I8  [out, in]  weights, symmetric per output channel
 *   fcK.weight_scale      F32 [out]      their scales
 *   fcK.bias              F32 [out]      as trained
 *   fcK.input_scale       F32 [1]        the calibrated parameters of the
 *   fcK.input_zero_point  I32 [1]        layer's input (uint8, affine)
 *
 * plus every batch-norm tensor as it was (F32), and the model and data
 * records ("cli.model", "cli.data", "cli.normalize") that eval needs.
 */
#ifndef CTRAIN_TOOLS_QUANT_CLI_H
#define CTRAIN_TOOLS_QUANT_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <ctrain/ctrain.h>

#include "train_cli.h"

#define QUANT_FORMAT "ctrain-int8-v1"

struct cli_table;
extern const struct cli_table quantize_table;
int cmd_quantize(int argc, char **argv);
void cmd_quantize_usage(FILE *out);

/* True if f is a file `ctrain quantize` wrote. */
bool quant_is_file(const ct_st_file *f);

/* train's options as quantization sees them: --resume and --init-from
 * must not name an int8 model (for evaluation only), --qat is for the MLP.
 * CLI_EXIT_OK, or the exit code after one line on stderr. */
struct train_cfg;
int quant_check_train(const char *cmd, const struct train_cfg *c);

/* Tensor name of f as F32 [rows, cols] (cols 0: a vector [rows]),
 * malloc'ed; NULL after one line on stderr naming it. */
float *quant_read_f32(const char *cmd, const char *path, const ct_st_file *f, const char *name, int64_t rows,
                      int64_t cols);

/* The products quantized, in order: the MLP's fc1 .. fcL; the CNN's conv1,
 * conv2, then fc1 .. fcL. */
#define QUANT_MAX_LAYERS (MLP_MAX_HIDDEN + 3)
int quant_layers(const model_cfg *m);
/* Layer k's name ("conv1", "fc2"), and the name of the batch norm after it
 * (false when there is none). */
void quant_layer_name(const model_cfg *m, int k, char *buf, size_t cap);
bool quant_norm_name(const model_cfg *m, int k, char *buf, size_t cap);
/* True if layer k is a convolution. */
bool quant_layer_is_conv(const model_cfg *m, int k);

/* Why model m cannot be quantized (a static string), NULL if it can: the
 * MLP and the CNN. */
const char *quant_model_unsupported(const model_cfg *m);

/* `ctrain eval` of a quantized file f (at path) on ds: the int8 model's
 * accuracy, loss and samples/s, and the same for the F32 checkpoint
 * `compare` (NULL: the file it was made from, when it is still there) in
 * the same run. batch: the evaluation batch; device: for the F32 model.
 * Returns the exit code. */
typedef struct eval_int8_args {
    const char *path, *compare, *data_kind, *where;
    const ct_st_file *f;
    const model_cfg *m;
    const ct_dataset *ds;
    int64_t batch;
    ct_device device;
    bool train_split;
} eval_int8_args;
int eval_int8(const eval_int8_args *a);

#endif
