/* Data for language models: character-level text, llm.c token files, and
 * the batches of windows a model trains on.
 *
 * A ct_tokens is a sequence of token ids (int32, each below its vocabulary
 * size). It comes from a UTF-8 text file, one token per character
 * (ct_text_load: the vocabulary is the sorted set of the file's characters,
 * nanoGPT's shakespeare_char convention), or from a pre-tokenized file in
 * llm.c's format (ct_tokens_load). Training cuts it into windows of block
 * size T, the input x = tokens[s : s+T] and the target y = tokens[s+1 :
 * s+T+1], B of them per batch, as I32 arrays that the embedding and
 * cross-entropy ops take directly:
 *
 *     ct_text_vocab *vocab;
 *     ct_tokens *train, *val;
 *     ct_text_load("../shared/data/tinyshakespeare/input.txt", NULL, &vocab, &train, &val);
 *     ct_tokens_batch_opts bo = {.batch_size = 64, .block_size = 256, .seed = 1337};
 *     int32_t *x = malloc(64 * 256 * sizeof *x), *y = malloc(64 * 256 * sizeof *y);
 *     for (int64_t step = 0; step < 5000; step++) {
 *         ct_tokens_batch(train, &bo, step, x, y);      // depends on (seed, step) only
 *         train_step(x, y);
 *     }
 *     for (int64_t j = 0; j < 200; j++) {
 *         ct_tokens_eval_batch(val, &bo, j, x, y);      // the same 200 batches every time
 *         eval_step(x, y);
 *     }
 *     // the vocabulary goes into the checkpoint as ct_text_vocab_json(vocab)
 *
 * Batches are pure functions of (tokens, options, batch number): a resumed
 * run asks for batch k and gets what an uninterrupted run had. Every
 * function that can fail returns a ct_status and leaves a one-line message
 * for ct_last_error(); messages about a file name the file (and the byte
 * offset, the header field or the token index at fault).
 */
#ifndef CTRAIN_TEXT_H
#define CTRAIN_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ token sequences */

typedef struct ct_tokens ct_tokens;

/* The most tokens a sequence holds: llm.c's header counts them in an int32,
 * and window starts are drawn as 32-bit numbers. */
#define CT_TOKENS_MAX INT32_MAX

/* The vocabulary size ct_tokens_load checks ids against when given 0:
 * GPT-2's BPE, what llm.c's token files hold. */
#define CT_TOKENS_GPT2_VOCAB 50257

/* The magic and version of llm.c's token files (header[0], header[1]). */
#define CT_TOKENS_MAGIC 20240520
#define CT_TOKENS_VERSION 1

/* The share of a text that is training data when no validation file is
 * given: nanoGPT's prepare.py keeps data[:int(n * 0.9)] for training. */
#define CT_TEXT_TRAIN_FRACTION 0.9

/* A sequence of n ids copied from ids, each in [0, vocab_size). The caller
 * keeps ids and frees *out with ct_tokens_free. Messages call it "tokens".
 * Errors: n < 1 or above CT_TOKENS_MAX, vocab_size < 1, NULL pointers, an id
 * outside [0, vocab_size), naming its index (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_tokens_from_array(const int32_t *ids, int64_t n, int32_t vocab_size, ct_tokens **out);

/* Frees a sequence; NULL is ignored. */
void ct_tokens_free(ct_tokens *t);

/* Number of tokens (>= 1). */
int64_t ct_tokens_size(const ct_tokens *t);
/* Every id is below this. */
int32_t ct_tokens_vocab_size(const ct_tokens *t);
/* The ids, ct_tokens_size of them; owned by t, valid until it is freed. */
const int32_t *ct_tokens_data(const ct_tokens *t);
/* What messages call the sequence: the file it was read from, with
 * " (training split)" or " (validation split)" for the parts of a split. */
const char *ct_tokens_name(const ct_tokens *t);

/* Reads a token file in llm.c's format: a header of 256 little-endian int32,
 * header[0] = CT_TOKENS_MAGIC, header[1] = CT_TOKENS_VERSION, header[2] =
 * the token count (the rest unused), then count little-endian uint16 tokens.
 * vocab_size 0 means CT_TOKENS_GPT2_VOCAB. A gzipped file (told by its first
 * bytes) is read too; sizes are then those of its content. *out is the
 * caller's to free.
 * Errors, one line naming the file and the field at fault: empty file, a file
 * shorter than the header, a wrong magic or version, a count < 1 or one that
 * does not account for the file size exactly (giving both sizes), a token
 * >= vocab_size (naming its index) (CT_ERR_FORMAT); vocab_size < 0
 * (CT_ERR_INVALID_ARG); the file cannot be read (CT_ERR_IO); CT_ERR_OOM. */
ct_status ct_tokens_load(const char *path, int32_t vocab_size, ct_tokens **out);

/* Writes t as a token file in llm.c's format (header as ct_tokens_load reads
 * it, then the ids as uint16). Errors: an id above 65535, which uint16
 * cannot hold, naming its index (CT_ERR_UNSUPPORTED); NULL arguments
 * (CT_ERR_INVALID_ARG); the file cannot be written (CT_ERR_IO). */
ct_status ct_tokens_save(const ct_tokens *t, const char *path);

/* Splits t into its first int(n * train_fraction) tokens and the rest, as
 * two new sequences with t's vocabulary size (t is untouched): the count is
 * (int64_t)(n * train_fraction) in double, which is what Python's
 * int(n * 0.9) gives. Their names are t's with " (training split)" and
 * " (validation split)". Errors: train_fraction outside (0, 1), a part
 * that would be empty, naming t and its size, NULL arguments
 * (CT_ERR_INVALID_ARG); CT_ERR_OOM. On error both outputs are NULL. */
ct_status ct_tokens_split(const ct_tokens *t, double train_fraction, ct_tokens **train,
                          ct_tokens **val);

/* ------------------------------------------------------------------ character vocabulary */

typedef struct ct_text_vocab ct_text_vocab;

/* The vocabulary of a UTF-8 string: its distinct characters (Unicode code
 * points, not bytes), sorted by code point, character i having id i - what
 * nanoGPT's sorted(list(set(data))) gives. *out is the caller's to free.
 * Errors: invalid UTF-8, naming the byte offset (CT_ERR_FORMAT); an empty
 * string, NULL arguments (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_text_vocab_from_utf8(const char *text, size_t len, ct_text_vocab **out);

/* Frees a vocabulary; NULL is ignored. */
void ct_text_vocab_free(ct_text_vocab *v);

/* Number of characters (>= 1), the model's vocabulary size. */
int32_t ct_text_vocab_size(const ct_text_vocab *v);

/* The code point of id, or -1 for an id outside [0, size). */
int32_t ct_text_vocab_char(const ct_text_vocab *v, int32_t id);

/* The id of code point cp, or -1 if it is not in the vocabulary. */
int32_t ct_text_vocab_id(const ct_text_vocab *v, int32_t cp);

/* The vocabulary as a string for a checkpoint: a JSON array of the code
 * points in id order, "[10,32,33,...]". Integers rather than the characters
 * themselves: ASCII only, so it needs no escaping in any container, and
 * U+0000, a valid character of a text file, survives C strings. Owned by v,
 * valid until it is freed. */
const char *ct_text_vocab_json(const ct_text_vocab *v);

/* Reads back what ct_text_vocab_json wrote (whitespace between the
 * elements is allowed). *out is the caller's to free.
 * Errors: not an array of integers, an empty array, a value that is not a
 * Unicode scalar value (above U+10FFFF or a surrogate), values not strictly
 * increasing (a vocabulary is sorted and has no repeats), each naming the
 * element (CT_ERR_FORMAT); NULL arguments (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_text_vocab_parse(const char *json, ct_text_vocab **out);

/* The ids of the characters of a UTF-8 string (a prompt): ids must have room
 * for len entries (a character is at least one byte); *n gets the count.
 * Errors: invalid UTF-8, or the first character outside the vocabulary,
 * each naming the byte offset (and the character) (CT_ERR_FORMAT); NULL
 * arguments (CT_ERR_INVALID_ARG). */
ct_status ct_text_encode(const ct_text_vocab *v, const char *text, size_t len, int32_t *ids, int64_t *n);

/* The UTF-8 text of n ids into out (cap bytes), NUL-terminated; *len gets
 * its length without the NUL. With out NULL only *len is computed; 4 * n + 1
 * bytes always suffice. Errors: an id outside the vocabulary, naming its
 * index; cap too small, naming the size needed; n < 0, NULL ids or len
 * (CT_ERR_INVALID_ARG). */
ct_status ct_text_decode(const ct_text_vocab *v, const int32_t *ids, int64_t n, char *out, size_t cap,
                         size_t *len);

/* A character-level data set from UTF-8 text files (gzipped ones too),
 * ready to train on:
 *   - val_path NULL: the vocabulary of train_path, and its tokens split
 *     with ct_tokens_split(..., CT_TEXT_TRAIN_FRACTION), as nanoGPT does;
 *   - val_path given: the vocabulary is the union of both files'
 *     characters - the vocabulary nanoGPT would build from the two files
 *     concatenated - so every validation character has an id; *train holds
 *     all of train_path, *val all of val_path (named after their files).
 * Every character is kept as it is: a CRLF file keeps its '\r', where
 * Python's text mode, which nanoGPT reads with, turns "\r\n" and a lone
 * '\r' into '\n'; a byte order mark is a character like any other, as
 * Python's "utf-8" codec keeps it.
 * The tokens' vocabulary size is the vocabulary's. The outputs are the
 * caller's to free. Errors, naming the file: it cannot be read (CT_ERR_IO);
 * it is empty, it is invalid UTF-8 (with the byte offset), it holds more
 * than CT_TOKENS_MAX characters (CT_ERR_FORMAT); a split part that would be
 * empty, NULL arguments (CT_ERR_INVALID_ARG); CT_ERR_OOM. On error every
 * output is NULL. A part too short for the block size is reported by the
 * batch functions, which know it. */
ct_status ct_text_load(const char *train_path, const char *val_path, ct_text_vocab **vocab,
                       ct_tokens **train, ct_tokens **val);

/* ------------------------------------------------------------------ windows and batches */

/* How a sequence is cut into batches. batch_size and block_size must be set;
 * zero is the default of the rest. */
typedef struct ct_tokens_batch_opts {
    int64_t batch_size; /* B: windows (rows) per batch, >= 1 */
    int64_t block_size; /* T: tokens per window, >= 1 */
    /* false (the default): every window starts at a random position, drawn
     * uniformly from [0, n - T - 1] (every start that leaves room for the
     * target's last token). true: consecutive non-overlapping windows from
     * the start of the sequence (--no-shuffle). */
    bool sequential;
    uint64_t seed; /* keys the random starts; unused when sequential or streams */
    /* true: the third layout, for truncated backpropagation through time
     * (a recurrent model whose final states seed the next batch's): the
     * sequence is cut into B contiguous streams and row r of consecutive
     * batches walks stream r window by window (ct_tokens_batch_starts).
     * Excludes sequential. */
    bool streams;
} ct_tokens_batch_opts;

/* CT_OK if the options can cut batches from t: B >= 1, T >= 1, and at least
 * one window, T + 1 tokens (streams: one window per stream, B * T + 1
 * tokens). Errors (CT_ERR_INVALID_ARG): B or T < 1; t shorter than T + 1
 * tokens (streams: B * T + 1), naming t (the file and split) and the sizes;
 * both sequential and streams set; NULL arguments. */
ct_status ct_tokens_check_batch(const ct_tokens *t, const ct_tokens_batch_opts *o);

/* Optimizer steps per epoch: n / (B * T) in integer division, at least 1
 * (an epoch sees about every token once); streams: W, the windows per
 * stream (each batch advances every stream by one window). 0 if
 * ct_tokens_check_batch fails. */
int64_t ct_tokens_epoch_steps(const ct_tokens *t, const ct_tokens_batch_opts *o);

/* The start of each of the B windows of training batch k (k >= 0) into
 * starts[0..B). Every start is in [0, n - T - 1].
 *   Random (the default): rows draw, in order, from the Philox stream
 *   (seed, stream 0xDA7A0004, offset k mod 2^32) of ct_philox_u32: element
 *   i of it is word i % 4 of the Philox4x32-10 block at counter {i / 4
 *   (low, high word), 0xDA7A0004, k mod 2^32}, key = the seed's low and
 *   high halves. Each row takes the next word u and starts at
 *   (u * (n - T)) >> 32 (Lemire's bounded draw); in the rare case the low
 *   32 bits of u * (n - T) are below 2^32 mod (n - T), it takes the next
 *   word as u instead, until they are not, which keeps every start equally
 *   likely. So batch k depends only on the seed, k and the sizes: a resumed
 *   run gets exactly the batches of an uninterrupted one.
 *   Sequential: window i starts at i * T, for the W = (n - 1) / T windows
 *   that fit (window W - 1 ends at or before the last token); row r of batch
 *   k is window (k * B + r) mod W, so the sequence is walked from its start
 *   and wraps around to window 0 when it runs out, a wrap possibly falling
 *   inside a batch. The tokens after the last whole window are never seen.
 *   Streams: the sequence is cut into B streams of S = (n - 1) / B tokens,
 *   stream r starting at r * S, each holding W = S / T whole windows; row r
 *   of batch k starts at r * S + (k mod W) * T. So row r of batch k + 1 is
 *   the window right after row r of batch k (the next T tokens of the same
 *   stream), and batch k with k mod W = 0 starts every stream again from
 *   its beginning. The last target a stream's windows read is token
 *   r * S + W * T <= (r + 1) * S: at most the token right after the
 *   stream, and never past the sequence (B * S <= n - 1). The tokens after
 *   a stream's last whole window are never seen.
 * Errors: as ct_tokens_check_batch; k < 0, NULL starts (CT_ERR_INVALID_ARG). */
ct_status ct_tokens_batch_starts(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t k,
                                 int64_t *starts);

/* Training batch k: for each row r with start s (ct_tokens_batch_starts),
 * x[r * T + j] = tokens[s + j] and y[r * T + j] = tokens[s + j + 1],
 * j in [0, T); x and y hold B * T int32 each. Errors: as
 * ct_tokens_batch_starts; NULL x or y (CT_ERR_INVALID_ARG). */
ct_status ct_tokens_batch(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t k, int32_t *x,
                          int32_t *y);

/* The window starts of evaluation batch j (j >= 0): a fixed set of batches,
 * the same on every call and independent of any training step, for the mean
 * cross-entropy per token over batches 0 .. n-1. Random: as
 * ct_tokens_batch_starts with the stream 0xDA7A0005 in place of 0xDA7A0004
 * and offset j, so they differ from every training batch of the same seed.
 * Sequential and streams: training batch j's windows (the sequence walked
 * from its start). Errors: as ct_tokens_batch_starts. */
ct_status ct_tokens_eval_starts(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t j,
                                int64_t *starts);

/* Evaluation batch j, laid out as ct_tokens_batch lays out its batches.
 * Errors: as ct_tokens_batch. */
ct_status ct_tokens_eval_batch(const ct_tokens *t, const ct_tokens_batch_opts *o, int64_t j, int32_t *x,
                               int32_t *y);

#ifdef __cplusplus
}
#endif
#endif
