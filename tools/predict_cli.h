/* `ctrain predict` (cmd_predict.c): its options, the classifier a
 * checkpoint records, and the pieces in predict_io.c (reading the input,
 * writing the rows) and predict_lm.c (a GPT's next token). */
#ifndef CTRAIN_TOOLS_PREDICT_CLI_H
#define CTRAIN_TOOLS_PREDICT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <ctrain/ctrain.h>

#include "train_cli.h"

typedef struct predict_cfg {
    const char *checkpoint, *input, *format, *out, *prompt;
    int64_t top_k; /* 0: every class */
    int64_t batch;
    ct_device device;
} predict_cfg;

/* What a classifier checkpoint records: the model, the dataset kind and
 * the normalisation (mean, std malloc'ed, n_norm values). */
typedef struct predict_model {
    model_cfg m;
    const char *kind;
    float *mean, *std;
    int64_t n_norm;
} predict_model;

/* The record of checkpoint f (path names it); false after reporting. */
bool predict_model_read(const char *path, const ct_st_file *f, predict_model *pm);
/* A CSV file of features only: every row as wide as the first, numbers
 * only (a first line that is not is a header, skipped). False after one
 * line naming the file, line and column. */
bool predict_read_csv(const char *path, ct_dataset **out);
/* The rows: sample,class,p0,... or with top_k, sample,class,top1,p_top1,... */
void predict_write_rows(FILE *f, const ct_prediction *p, int64_t top_k);
/* Flushes and closes f (the temporary tmp) and renames it to out; false
 * after reporting, with tmp removed. */
bool predict_finish_out(FILE *f, const char *tmp, const char *out);
/* A GPT checkpoint: the top-k next tokens after --prompt, as CSV rows
 * rank,token,text,probability into out. The exit code. */
int predict_next_token(const predict_cfg *c, const ct_st_file *f, FILE *out);

#endif
