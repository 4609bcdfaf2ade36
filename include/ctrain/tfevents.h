/* TensorBoard event files: scalars and histograms that TensorBoard (or any
 * reader of TFRecord files of tensorboard.Event messages) displays.
 *
 * A writer makes a new file events.out.tfevents.<unix time>.<host> in a
 * directory (created if missing; an existing file is never reused: a name
 * already taken gets ".1", ".2", ... appended), starts it with the
 * file_version record "brain.Event:2", then appends one record per value:
 *
 *     ct_tfevents *w = ct_tfevents_open("runs/mnist");
 *     if (!w) { puts(ct_last_error()); return; }
 *     ct_tfevents_add_scalar(w, "train/loss", step, loss, 0);
 *     ct_tfevents_flush(w);   // visible to a TensorBoard reading the directory
 *     ct_tfevents_close(w);
 *
 * Records use TFRecord framing (8-byte little-endian length, masked CRC-32C
 * of the length, the serialised Event, masked CRC-32C of the data). Scalars
 * are stored as float32, as TensorBoard's `simple_value` is. The trainer
 * writes its own through ct_train_opts.tensorboard_dir (train.h); this API is
 * for anything else a program wants to log beside it. A writer is not
 * thread-safe: one thread at a time.
 */
#ifndef CTRAIN_TFEVENTS_H
#define CTRAIN_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_tfevents ct_tfevents;

/* Creates dir (and its parents) if needed and a new event file in it, with
 * its file_version record written and flushed. NULL on error (CT_ERR_IO
 * naming the directory or file and the system's reason). */
ct_tfevents *ct_tfevents_open(const char *dir);

/* The path of the file being written. */
const char *ct_tfevents_path(const ct_tfevents *w);

/* Appends a scalar: value rounded to float32, at `step`; wall_time in
 * seconds since the epoch, 0 for now. Errors: CT_ERR_INVALID_ARG for a NULL
 * or empty tag, CT_ERR_IO when the file cannot be written. */
ct_status ct_tfevents_add_scalar(ct_tfevents *w, const char *tag, int64_t step, double value, double wall_time);

/* Appends a histogram of n float32 values in `bins` equal-width buckets
 * over [min, max] of the finite values (non-finite ones are left out),
 * with their count, sum and sum of squares, as TensorBoard's histogram
 * dashboard reads them. bins 0: 30. Errors as ct_tfevents_add_scalar, and
 * CT_ERR_INVALID_ARG when no value is finite or bins is negative. */
ct_status ct_tfevents_add_histogram(ct_tfevents *w, const char *tag, int64_t step, const float *values, size_t n,
                                    int bins, double wall_time);

/* Writes what is buffered to the file (records are buffered by stdio). */
ct_status ct_tfevents_flush(ct_tfevents *w);

/* Flushes, closes and frees the writer (NULL is ignored); the error of the
 * final flush or close, if any. */
ct_status ct_tfevents_close(ct_tfevents *w);

#ifdef __cplusplus
}
#endif
#endif
