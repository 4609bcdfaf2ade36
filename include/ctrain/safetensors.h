/* safetensors files: tensors by name, readable by PyTorch and many others.
 *
 * The format is 8 bytes of little-endian header length N, N bytes of JSON
 * naming each tensor's dtype, shape and byte range, then the raw
 * little-endian data. It is what ctrain writes weights and checkpoints as
 * (the interchange format with PyTorch), so a state_dict saved with
 * safetensors.torch.save_file loads here and ours load there.
 *
 * Writing builds the file in memory, then saves it atomically:
 *
 *     ct_st_writer *w = ct_st_writer_new();
 *     ct_st_writer_add(w, "fc.weight", CT_F32, (ct_shape){2, {10, 784}}, weights);
 *     ct_st_writer_meta(w, "format", "ctrain");
 *     ct_status s = ct_st_writer_save(w, "model.safetensors");
 *     ct_st_writer_free(w);
 *
 * Reading loads and checks the whole file at once, so every accessor after a
 * successful ct_st_open is safe on any input:
 *
 *     ct_st_file *f = ct_st_open("model.safetensors");
 *     if (!f) { puts(ct_last_error()); return; }
 *     int i = ct_st_find(f, "fc.weight");
 *     float *dst = ...;
 *     if (i >= 0) ct_st_read(f, i, CT_F32, dst, bytes);
 *     ct_st_close(f);
 *
 * For a compiled program, ct_save_weights / ct_load_weights below do all of
 * this by parameter name.
 */
#ifndef CTRAIN_SAFETENSORS_H
#define CTRAIN_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrain/dtype.h"
#include "ctrain/graph.h"
#include "ctrain/program.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ writing */

typedef struct ct_st_writer ct_st_writer;

/* An empty writer. Free with ct_st_writer_free. NULL on OOM. */
ct_st_writer *ct_st_writer_new(void);
/* Frees the writer and its copies of the data; NULL is ignored. */
void ct_st_writer_free(ct_st_writer *w);

/* Adds a tensor. `data` (numel * dtype size bytes, host memory; may be NULL
 * only when numel is 0) is COPIED, so the caller may free or reuse it at
 * once. Names are non-empty UTF-8, unique, and not "__metadata__".
 * Errors: CT_ERR_INVALID_ARG (bad name, duplicate name, bad shape or dtype),
 * CT_ERR_OOM. */
ct_status ct_st_writer_add(ct_st_writer *w, const char *name, ct_dtype dtype, ct_shape shape,
                           const void *data);

/* As ct_st_writer_add for an integer dtype of the file format that ctrain
 * does not compute in, named as the file spells it ("I8", "I16", "U32",
 * "I64", ...; not BOOL): data holds numel little-endian values of that
 * width. This is how int8 weights are stored (docs/compression.md). */
ct_status ct_st_writer_add_int(ct_st_writer *w, const char *name, const char *file_dtype, ct_shape shape,
                               const void *data);

/* Sets a "__metadata__" entry (both UTF-8 strings, copied). Setting a key
 * again replaces its value. */
ct_status ct_st_writer_meta(ct_st_writer *w, const char *key, const char *value);

/* Writes the file. Tensors are laid out as the reference writer lays them
 * out (by dtype, widest first, then by name), which keeps every tensor's
 * data aligned to its element size; metadata keys are written sorted. The
 * bytes go to "<path>.tmp.<pid>" in the same directory, are flushed and
 * fsync'ed, and the temporary file is then renamed over path: a crash or a
 * failure never leaves a half-written file at path, and on failure the
 * previous file at path is untouched and the temporary file is removed.
 * A symbolic link at path is followed (the file it points to is replaced,
 * the link stays); anything but a regular file at path (a directory, a
 * device node, a FIFO) is refused, never replaced. "<path>.tmp.<pid>" files
 * left by processes that no longer run (killed mid-write) are removed.
 * The writer is unchanged and may be saved again. Errors: CT_ERR_IO naming
 * the path and the system's reason, CT_ERR_OOM. */
ct_status ct_st_writer_save(const ct_st_writer *w, const char *path);

/* ------------------------------------------------------------------ reading */

typedef struct ct_st_file ct_st_file;

/* Reads the whole file and checks all of it: header length, JSON, every
 * tensor's dtype, shape and byte range (inside the data, matching shape *
 * dtype size, not overlapping another tensor), unique names, metadata values
 * being strings. NULL on error, with ct_last_error() naming the file and,
 * where one is at fault, the tensor (CT_ERR_IO: unreadable; CT_ERR_FORMAT:
 * malformed; CT_ERR_OOM). Tensors of dtypes ctrain does not compute in
 * (I64, U16, BOOL, F8_E4M3, ...) do not fail the file: see ct_st_info.
 * Gaps between tensors' data are tolerated (the specification forbids them,
 * but they are harmless to a reader). */
ct_st_file *ct_st_open(const char *path);
/* (A FIFO, device or directory at path is refused at once, CT_ERR_IO: the
 * open never waits for a writer.) */
/* Frees the file's contents (every pointer taken from it); NULL is ignored. */
void ct_st_close(ct_st_file *f);

/* Tensors are numbered 0..count-1 in the order of the file's header. */
int ct_st_count(const ct_st_file *f);
/* NULL for an invalid index. */
const char *ct_st_name(const ct_st_file *f, int i);
/* The index of the tensor called name, or -1. */
int ct_st_find(const ct_st_file *f, const char *name);

/* The tensor's dtype and shape (either pointer may be NULL). *dtype is
 * CT_DTYPE_COUNT when the file's dtype has no ctrain equivalent (I64, U16,
 * BOOL, F8_*, ...): ct_st_dtype_name says which it is, ct_st_data gives the
 * bytes, and ct_st_read converts integer ones to I32/U8 or to a float type.
 * Errors: CT_ERR_INVALID_ARG (no tensor i); CT_ERR_UNSUPPORTED for more than
 * CT_MAX_DIMS dimensions (*dtype is still set, *shape is not). */
ct_status ct_st_info(const ct_st_file *f, int i, ct_dtype *dtype, ct_shape *shape);
/* The dtype as the file spells it ("F32", "I64", "BF16", ...); NULL for an
 * invalid index. */
const char *ct_st_dtype_name(const ct_st_file *f, int i);
/* The size of the tensor's data in bytes (0 for an invalid index). */
size_t ct_st_nbytes(const ct_st_file *f, int i);
/* The tensor's raw little-endian bytes, valid until ct_st_close. Aligned to
 * the element size in files laid out as the reference writer does (and as
 * ct_st_writer_save does); other writers may leave it unaligned, so copy
 * with memcpy or use ct_st_read. NULL for an invalid index; for an empty
 * tensor a valid pointer to no bytes. */
const void *ct_st_data(const ct_st_file *f, int i);

/* Copies tensor i into dst (bytes must be numel * ct_dtype_size(dtype)),
 * converting: any float or integer dtype of the file to F32, F64, F16 or
 * BF16 (rounding to nearest even); integer and BOOL dtypes to I32 or U8,
 * with every value checked to fit (CT_ERR_NUMERIC naming the first one that
 * does not). Float to integer is refused (CT_ERR_DTYPE); F8_*, F4, F6_* and
 * C64 are not converted (CT_ERR_UNSUPPORTED; read the bytes with
 * ct_st_data). dst is unspecified after an error. */
ct_status ct_st_read(const ct_st_file *f, int i, ct_dtype dtype, void *dst, size_t bytes);

/* The "__metadata__" value of key, NULL if the file has none. */
const char *ct_st_meta(const ct_st_file *f, const char *key);
/* All metadata entries, in the order of the header. */
int ct_st_meta_count(const ct_st_file *f);
/* Key i of them (NULL for an invalid index); ct_st_meta gives its value. */
const char *ct_st_meta_key(const ct_st_file *f, int i);

/* ---------------------------------------------------- weights of a program */

/* Saves every parameter of g, as held by p (compiled from g), under its
 * name (and every buffer, e.g. running statistics), in its dtype (F32 or F64), with the metadata
 * {"format": "ctrain"}. Atomic as ct_st_writer_save. */
ct_status ct_save_weights(const ct_graph *g, const ct_program *p, const char *path);

typedef struct ct_load_opts {
    /* false (the default): strict, as PyTorch's load_state_dict: every
     * parameter must be in the file and every tensor of the file must be a
     * parameter. true: load the tensors whose names match a parameter and
     * skip the rest, leaving parameters that are not in the file as they are
     * (fine-tuning from a PyTorch state_dict holding buffers such as
     * running_mean or num_batches_tracked). */
    bool non_strict;
    /* With non_strict: every parameter and buffer must still be in the
     * file (an error names the missing ones); tensors that are no parameter
     * are still skipped. Without non_strict it changes nothing. */
    bool require_all;
    /* If not NULL, removed from the front of every file tensor name that
     * starts with it before matching ("model." turns "model.fc.weight" into
     * "fc.weight"); names without it are matched as they are. */
    const char *strip_prefix;
    /* If not NULL, set to the number of parameters loaded (0 on error). */
    int *loaded;
    /* If not NULL: the parameters and buffers whose names start with it
     * are not loaded (they keep their values, and are not missing even
     * with require_all), and file tensors naming them are ignored whatever
     * their shape: a fresh classifier head over loaded features. */
    const char *skip_prefix;
} ct_load_opts;

/* Loads parameters of g into p (compiled from g) by name; opts may be NULL
 * (strict, no prefix). Tensors in F16, BF16, F32 or F64 are converted to the
 * parameters' dtype. Everything is checked before anything is written, so on
 * ANY error no parameter of p is modified. Errors: CT_ERR_NOT_FOUND naming
 * the missing parameters or (strict) the tensors that are not parameters;
 * CT_ERR_SHAPE naming the tensor and both shapes; CT_ERR_DTYPE for a
 * non-float tensor matching a parameter (an integer tensor is never
 * converted into weights); CT_ERR_NUMERIC naming a tensor that holds NaN or
 * inf (after conversion to the parameter's dtype); CT_ERR_INVALID_ARG for two tensors
 * matching one parameter (after prefix stripping); CT_ERR_FORMAT for an
 * int8 model written by `ctrain quantize` (metadata "quant.format"), which
 * holds no float weights; plus those of ct_st_open. */
ct_status ct_load_weights(const ct_graph *g, ct_program *p, const char *path, const ct_load_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
