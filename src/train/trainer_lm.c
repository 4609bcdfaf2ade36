/* The trainer for language models (ct_trainer_new_lm): what differs from a
 * classifier on a dataset is only where a batch comes from and how the
 * validation loss is computed.
 *
 * The graphs are the same (evaluate.c builds them in "tokens mode": x I32
 * [B, T], labels I32 [B * T], the logits [B, T, V] viewed as [B * T, V], so
 * the mean cross-entropy is per token). The loop is the same (trainer.c):
 * it asks ct_train_lm_next for micro-batch k = epoch * batches +
 * batch_in_epoch of the run, which ct_tokens_batch derives from (data_seed,
 * k) alone; a checkpoint's position therefore determines the next batch and
 * a resumed run continues bit-exactly, with no sampler state to save. Every
 * batch is full (windows are drawn, not used up), so there is never a short
 * last batch.
 *
 * Stateful training (ct_lm_data.states, lm_state.c) takes the streams
 * layout instead, whose batch k is also a function of k alone; the states
 * carried between batches are in the checkpoint.
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "train/train_internal.h"

#define FN "ct_trainer_new_lm"
#define DEFAULT_EVAL_BATCHES 50

ct_status ct_train_lm_check(const ct_train_opts *o, const ct_lm_data *d) {
    if (!o || !d || !d->train) return ct_error(CT_ERR_INVALID_ARG, FN ": NULL options, data or training tokens");
    if (!o->model) return ct_error(CT_ERR_INVALID_ARG, FN ": no model function");
    if (o->batch_size < 1)
        return ct_error(CT_ERR_INVALID_ARG, FN ": batch_size %lld < 1", (long long)o->batch_size);
    if (d->block_size < 1)
        return ct_error(CT_ERR_INVALID_ARG, FN ": block_size %lld < 1", (long long)d->block_size);
    if (d->eval_batches < 0)
        return ct_error(CT_ERR_INVALID_ARG, FN ": eval_batches %lld < 0", (long long)d->eval_batches);
    /* Options of the dataset path that have no meaning for windows of tokens. */
    if (o->augment) return ct_error(CT_ERR_INVALID_ARG, FN ": augment is for datasets of images, not tokens");
    if (o->drop_last)
        return ct_error(CT_ERR_INVALID_ARG, FN ": drop_last has no meaning here: every batch of windows is full");
    if (o->prefetch)
        return ct_error(CT_ERR_INVALID_ARG, FN ": prefetch is for the dataset loader; token batches are copied "
                                            "straight from the sequence");
    if (o->label_smoothing != 0)
        return ct_error(CT_ERR_INVALID_ARG, FN ": label_smoothing %g: a language model's loss is the plain "
                                            "cross-entropy per token",
                        o->label_smoothing);
    if (o->comm)
        return ct_error(CT_ERR_UNSUPPORTED, FN ": data-parallel training (comm) is not implemented for language "
                                            "models");
    /* The windows must fit each split: the message names the split. */
    ct_tokens_batch_opts bo = {.batch_size = o->batch_size, .block_size = d->block_size,
                               .streams = d->n_states > 0};
    ct_status st = ct_tokens_check_batch(d->train, &bo);
    if (st == CT_OK && d->val) {
        bo.streams = false; /* evaluation windows start from zero states: any layout */
        bo.batch_size = o->eval_batch_size ? o->eval_batch_size : o->batch_size;
        st = ct_tokens_check_batch(d->val, &bo);
    }
    if (st != CT_OK) return ct_error(st, FN ": %s", ct_last_error());
    return CT_OK;
}

ct_status ct_train_lm_setup(ct_trainer *t, const ct_lm_data *d) {
    t->lm_bo = (ct_tokens_batch_opts){.batch_size = t->o.batch_size,
                                      .block_size = d->block_size,
                                      .sequential = t->o.no_shuffle,
                                      .seed = t->o.data_seed};
    t->lm_ebo = t->lm_bo;
    t->lm_ebo.batch_size = t->ev.batch;
    if (t->n_carry) {
        /* Stateful: row r of consecutive batches walks stream r. Evaluation
         * keeps the batches of the run without states. */
        t->lm_bo.streams = true;
        t->lm_bo.sequential = false;
        ct_status st = ct_train_state_setup(t);
        if (st != CT_OK) return st;
    }
    t->lm_eval_batches = d->eval_batches ? d->eval_batches : DEFAULT_EVAL_BATCHES;
    int64_t rows = t->lm_bo.batch_size > t->lm_ebo.batch_size ? t->lm_bo.batch_size : t->lm_ebo.batch_size;
    size_t n = (size_t)rows * (size_t)d->block_size;
    t->lm_x = malloc(n * sizeof *t->lm_x);
    t->lm_y = malloc(n * sizeof *t->lm_y);
    if (!t->lm_x || !t->lm_y) return ct_error(CT_ERR_OOM, FN ": out of memory for a batch of %zu tokens", n);
    t->batches = ct_tokens_epoch_steps(t->lm_train, &t->lm_bo);
    return t->batches > 0 ? CT_OK : ct_error(CT_ERR_INVALID_ARG, FN ": %s", ct_last_error());
}

ct_status ct_train_lm_next(ct_trainer *t, ct_batch *b) {
    *b = (ct_batch){0};
    if (t->batch_in_epoch >= t->batches) return CT_OK;
    int64_t k = t->epoch * t->batches + t->batch_in_epoch;
    ct_status st = ct_tokens_batch(t->lm_train, &t->lm_bo, k, t->lm_x, t->lm_y);
    if (st != CT_OK) return st;
    b->count = b->global_count = t->lm_bo.batch_size;
    b->index = t->batch_in_epoch;
    return CT_OK;
}

ct_status ct_train_lm_evaluate(ct_trainer *t, const ct_tokens *tokens, int64_t n, double *loss) {
    ct_tgraph *tg = &t->ev.main;
    size_t bytes = (size_t)(t->lm_ebo.batch_size * t->lm_ebo.block_size) * sizeof(int32_t);
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        float l;
        ct_status st;
        if ((st = ct_tokens_eval_batch(tokens, &t->lm_ebo, j, t->lm_x, t->lm_y)) != CT_OK ||
            (st = ct_program_set_input_node(tg->p, tg->x, t->lm_x, bytes)) != CT_OK ||
            (st = ct_program_set_input_node(tg->p, tg->y, t->lm_y, bytes)) != CT_OK ||
            (st = ct_program_run(tg->p)) != CT_OK || (st = ct_program_read(tg->p, tg->loss, &l, sizeof l)) != CT_OK)
            return ct_error(st, "evaluate: %s", ct_last_error());
        /* Every batch holds the same number of tokens: the mean of the
         * batches' means is the mean per token. */
        sum += (double)l;
    }
    *loss = sum / (double)n;
    return CT_OK;
}

ct_status ct_trainer_evaluate_lm(ct_trainer *t, const ct_tokens *tokens, int64_t n_batches, double *loss) {
    if (!t || !tokens || !loss) return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_evaluate_lm: NULL argument");
    *loss = NAN;
    if (!t->lm)
        return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_evaluate_lm: this trainer was made by ct_trainer_new, "
                                            "for a dataset (ct_trainer_evaluate)");
    if (n_batches < 1)
        return ct_error(CT_ERR_INVALID_ARG, "ct_trainer_evaluate_lm: n_batches %lld < 1", (long long)n_batches);
    return ct_train_lm_evaluate(t, tokens, n_batches, loss);
}
