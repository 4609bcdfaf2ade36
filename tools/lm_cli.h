/* Language models in the CLI: `ctrain train --data text|tokens`, `ctrain
 * eval` of a GPT checkpoint and `ctrain generate` share the data loading
 * (lm_data.c) and the reading of a GPT checkpoint's record (its model, its
 * character vocabulary, its data kind). docs/language_models.md. */
#ifndef CTRAIN_TOOLS_LM_CLI_H
#define CTRAIN_TOOLS_LM_CLI_H

#include <stdbool.h>

#include <ctrain/ctrain.h>

#include "cli_options.h"
#include "train_cli.h"

/* The checkpoint metadata key of a character model's vocabulary
 * (ct_text_vocab_json). */
#define LM_VOCAB_KEY "text.vocab"

typedef struct lm_data {
    ct_text_vocab *vocab; /* text only */
    ct_tokens *train, *val;
    int32_t vocab_size;   /* the model's vocabulary */
} lm_data;

/* Loads --train-file (and --val-file, else a 90/10 split) of kind "text" or
 * "tokens". vocab NULL: text builds its vocabulary from the files; given (a
 * checkpoint's), every character must be in it, else an error naming the
 * character. tokens check ids against d->vocab_size (0: GPT-2's). False
 * after printing "ctrain: <cmd>: --train-file: ..." (or --val-file). */
bool lm_data_load(const char *cmd, const data_cfg *d, const ct_text_vocab *vocab, lm_data *out);
void lm_data_free(lm_data *d);

/* What a language model checkpoint of `ctrain train` records. */
typedef struct lm_record {
    model_cfg model;
    char kind[16];        /* "text" or "tokens" */
    ct_text_vocab *vocab; /* text: from LM_VOCAB_KEY */
    int64_t batch_size;   /* training batch, data seed and shuffle: eval's defaults */
    uint64_t data_seed;
    bool shuffle;
} lm_record;

/* True if the open checkpoint records a language model (gpt, lstm, gru, rnn). */
bool lm_is_checkpoint(const ct_st_file *f);
/* Reads the record; false after printing "ctrain: <cmd>: '<path>': ...". */
bool lm_record_read(const char *cmd, const ct_st_file *f, const char *path, lm_record *r);
void lm_record_free(lm_record *r);

/* `ctrain train` for --data text or tokens (train_lm.c); the exit code. */
struct train_cfg;
int train_lm(struct train_cfg *c, const cli_parser *p);

/* `ctrain eval` of a GPT checkpoint (eval_lm.c): f is the open checkpoint;
 * the other arguments are eval's options. The exit code. */
typedef struct eval_lm_args {
    const char *checkpoint;
    data_cfg data;        /* kind NULL: the checkpoint's */
    bool train_split;
    int64_t batch;        /* 0: the checkpoint's training batch */
    int64_t block_size;   /* 0: the model's */
    int64_t eval_batches; /* 0: 50 */
    ct_device device;
} eval_lm_args;
int eval_lm(const eval_lm_args *a, const ct_st_file *f);

#endif
