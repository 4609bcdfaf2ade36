/* `ctrain eval` of a GPT checkpoint: the mean cross-entropy per token over
 * fixed batches of windows of the validation tokens (or, with --split
 * train, of the training part), with the checkpoint's vocabulary. The
 * batches default to the run's own (its batch size, data seed and window
 * order), so the number matches the val_loss training printed at the end.
 * The evaluation runs through the library's language-model trainer, which
 * owns the evaluation program (ct_trainer_evaluate_lm). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lm_cli.h"

#define CMD "eval"

/* The trainer for the model and windows, with the checkpoint's weights. */
static ct_trainer *make(const eval_lm_args *a, const lm_record *r, const ct_tokens *tokens, int64_t batch,
                        int64_t block) {
    ct_train_opts o = {.model = model_build,
                       .model_user = (void *)&r->model,
                       .device = a->device,
                       .batch_size = batch,
                       .data_seed = r->data_seed,
                       .no_shuffle = !r->shuffle,
                       .max_steps = 1,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 1},
                       .quiet = true};
    ct_lm_data d = {.train = tokens, .block_size = block};
    ct_trainer *t = ct_trainer_new_lm(&o, &d);
    if (!t) return cli_fail(CMD), NULL;
    int loaded;
    if (ct_trainer_init_from(t, a->checkpoint, NULL, &loaded) != CT_OK) {
        cli_fail(CMD);
        ct_trainer_free(t);
        return NULL;
    }
    return t;
}

int eval_lm(const eval_lm_args *a, const ct_st_file *f) {
    lm_record r;
    if (!lm_record_read(CMD, f, a->checkpoint, &r)) return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    data_cfg dc = a->data;
    if (!dc.kind) dc.kind = r.kind;
    int64_t block = a->block_size ? a->block_size : r.model.block_size;
    int64_t batch = a->batch ? a->batch : r.batch_size > 0 ? r.batch_size : 32;
    lm_data d = {0};
    if (strcmp(dc.kind, r.kind) != 0) {
        fprintf(stderr, "ctrain: %s: --data %s: '%s' is a model of %s\n", CMD, dc.kind, a->checkpoint, r.kind);
    } else if (!dc.train_file) {
        fprintf(stderr, "ctrain: %s: a GPT checkpoint needs --train-file FILE (its last 10%% validates unless "
                        "--val-file is given) (see 'ctrain eval --help')\n", CMD);
        rc = CLI_EXIT_USAGE;
    } else if (block > r.model.block_size) {
        fprintf(stderr, "ctrain: %s: --block-size %lld is longer than the model's context, %lld\n", CMD,
                (long long)block, (long long)r.model.block_size);
        rc = CLI_EXIT_USAGE;
    } else {
        dc.vocab_size = r.model.vocab_size;
        if (lm_data_load(CMD, &dc, r.vocab, &d)) {
            const ct_tokens *tokens = a->train_split ? d.train : d.val;
            int64_t n = a->eval_batches ? a->eval_batches : 50;
            ct_trainer *t = make(a, &r, tokens, batch, block);
            double loss;
            if (t && ct_trainer_evaluate_lm(t, tokens, n, &loss) != CT_OK) {
                cli_fail(CMD);
            } else if (t) {
                printf("val_loss %.4f  (%lld batches of %lld x %lld tokens from %s)\n", loss, (long long)n,
                       (long long)batch, (long long)block, ct_tokens_name(tokens));
                rc = CLI_EXIT_OK;
            }
            ct_trainer_free(t);
        }
    }
    lm_data_free(&d);
    lm_record_free(&r);
    return rc;
}
