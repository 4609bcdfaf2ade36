/* Batches of windows for language-model training and evaluation.
 *
 * A batch is a pure function of (tokens, options, batch number): nothing is
 * carried from one batch to the next, so a run resumed at step k asks for
 * batch k and gets what the uninterrupted run had, with no sampler state in
 * the checkpoint. Random starts take their words from one Philox stream per
 * batch (offset = batch number), so batch k never depends on the draws of
 * the batches before it. text.h gives the exact streams and arithmetic.
 */
#include "core/error.h"
#include "data/data_internal.h"
#include "data/text_internal.h"

ct_status ct_tokens_check_batch(const ct_tokens *t, const ct_tokens_batch_opts *o) {
    if (!t || !o) return ct_error(CT_ERR_INVALID_ARG, "token batches: NULL argument");
    if (o->batch_size < 1 || o->block_size < 1)
        return ct_error(CT_ERR_INVALID_ARG, "token batches: batch size %lld and block size %lld, both must be >= 1",
                        (long long)o->batch_size, (long long)o->block_size);
    if (o->block_size > t->n - 1) /* not n < T + 1: T + 1 may overflow */
        return ct_error(CT_ERR_INVALID_ARG,
                        "%s: %lld tokens, too few for one window of block size %lld (block size + 1 tokens)",
                        t->name, (long long)t->n, (long long)o->block_size);
    /* Rows are addressed as r * T in the caller's arrays. */
    if (o->batch_size > INT64_MAX / o->block_size)
        return ct_error(CT_ERR_INVALID_ARG, "token batches: batch size %lld times block size %lld is too large",
                        (long long)o->batch_size, (long long)o->block_size);
    if (o->streams && o->sequential)
        return ct_error(CT_ERR_INVALID_ARG, "token batches: sequential and streams are two layouts; set one");
    if (o->streams && (t->n - 1) / o->batch_size < o->block_size)
        return ct_error(CT_ERR_INVALID_ARG,
                        "%s: %lld tokens make %lld streams of %lld tokens, too few for one window of block size "
                        "%lld each (streams need batch size x block size + 1 = %lld tokens)",
                        t->name, (long long)t->n, (long long)o->batch_size,
                        (long long)((t->n - 1) / o->batch_size), (long long)o->block_size,
                        (long long)(o->batch_size * o->block_size + 1));
    return CT_OK;
}

int64_t ct_tokens_epoch_steps(const ct_tokens *t, const ct_tokens_batch_opts *o) {
    if (ct_tokens_check_batch(t, o) != CT_OK) return 0;
    if (o->streams) return (t->n - 1) / o->batch_size / o->block_size;
    /* n / T / B is n / (B * T) without the product, which may overflow. */
    int64_t steps = t->n / o->block_size / o->batch_size;
    return steps > 0 ? steps : 1;
}

/* The window starts of one batch, row by row. */
typedef struct start_iter {
    const ct_tokens_batch_opts *o;
    ct_word_stream w;   /* random: the batch's own Philox stream */
    uint32_t range;     /* random: starts are in [0, range), range = n - T */
    int64_t windows;    /* sequential: W, the whole windows in the sequence; streams: per stream */
    int64_t base;       /* sequential: k * B mod W; streams: (k mod W) * T */
    int64_t stride;     /* streams: S, the tokens of a stream */
} start_iter;

static void iter_init(start_iter *it, const ct_tokens *t, const ct_tokens_batch_opts *o, uint32_t stream,
                      int64_t k) {
    it->o = o;
    ct_data_ws_init(&it->w, o->seed, stream, (uint32_t)k);
    /* n - T fits 32 bits: n <= CT_TOKENS_MAX. */
    it->range = (uint32_t)(t->n - o->block_size);
    if (o->streams) {
        it->stride = (t->n - 1) / o->batch_size;
        it->windows = it->stride / o->block_size;
        it->base = (k % it->windows) * o->block_size;
        return;
    }
    it->windows = (t->n - 1) / o->block_size;
    /* Residues keep k * B from overflowing. */
    it->base = (k % it->windows) * (o->batch_size % it->windows) % it->windows;
}

/* The start of row r; rows are asked for in order 0, 1, ... (the random
 * draws of a row follow those of the rows before it). */
static int64_t iter_start(start_iter *it, int64_t r) {
    if (it->o->streams) return r * it->stride + it->base;
    if (it->o->sequential) return (it->base + r % it->windows) % it->windows * it->o->block_size;
    return (int64_t)ct_data_ws_below(&it->w, it->range);
}

/* The checks every batch function makes; fn names it in messages. */
static ct_status check_call(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t k, const void *p1,
                            const void *p2, const char *fn) {
    ct_status s = ct_tokens_check_batch(t, o);
    if (s != CT_OK) return s;
    if (k < 0) return ct_error(CT_ERR_INVALID_ARG, "%s: batch number %lld is negative", fn, (long long)k);
    if (!p1 || !p2) return ct_error(CT_ERR_INVALID_ARG, "%s: NULL output array", fn);
    return CT_OK;
}

static ct_status starts_of(const ct_tokens *t, const ct_tokens_batch_opts *o, uint32_t stream, int64_t k,
                           int64_t *starts, const char *fn) {
    ct_status s = check_call(t, o, k, starts, starts, fn);
    if (s != CT_OK) return s;
    start_iter it;
    iter_init(&it, t, o, stream, k);
    for (int64_t r = 0; r < o->batch_size; r++) starts[r] = iter_start(&it, r);
    return CT_OK;
}

/* x and y of one batch, straight from the starts as they are drawn. */
static ct_status gather(const ct_tokens *t, const ct_tokens_batch_opts *o, uint32_t stream, int64_t k, int32_t *x,
                        int32_t *y, const char *fn) {
    ct_status s = check_call(t, o, k, x, y, fn);
    if (s != CT_OK) return s;
    const int64_t T = o->block_size;
    start_iter it;
    iter_init(&it, t, o, stream, k);
    for (int64_t r = 0; r < o->batch_size; r++) {
        const int32_t *src = t->ids + iter_start(&it, r);
        for (int64_t j = 0; j < T; j++) {
            x[r * T + j] = src[j];
            y[r * T + j] = src[j + 1];
        }
    }
    return CT_OK;
}

ct_status ct_tokens_batch_starts(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t k, int64_t *starts) {
    return starts_of(t, o, CT_DATA_STREAM_WINDOWS, k, starts, "ct_tokens_batch_starts");
}

ct_status ct_tokens_eval_starts(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t j, int64_t *starts) {
    return starts_of(t, o, CT_DATA_STREAM_EVAL_WINDOWS, j, starts, "ct_tokens_eval_starts");
}

ct_status ct_tokens_batch(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t k, int32_t *x, int32_t *y) {
    return gather(t, o, CT_DATA_STREAM_WINDOWS, k, x, y, "ct_tokens_batch");
}

ct_status ct_tokens_eval_batch(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t j, int32_t *x,
                               int32_t *y) {
    return gather(t, o, CT_DATA_STREAM_EVAL_WINDOWS, j, x, y, "ct_tokens_eval_batch");
}
