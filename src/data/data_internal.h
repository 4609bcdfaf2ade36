/* Internal to src/data: the dataset layout and the helpers the readers,
 * transforms and loader share. */
#ifndef CT_DATA_INTERNAL_H
#define CT_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ctrain/data.h"

struct ct_dataset {
    int64_t n;           /* samples, 1 .. CT_DATASET_MAX_SAMPLES */
    ct_shape shape;      /* of one sample */
    int64_t numel;       /* floats per sample */
    int32_t num_classes; /* every label is in [0, num_classes) */
    float *x;            /* n * numel */
    int32_t *y;          /* n */
};

/* Philox streams of the data module. Far from the small stream numbers that
 * parameter initialisation and dropout use, so a user who gives the model
 * and the data the same seed still gets unrelated numbers. */
#define CT_DATA_STREAM_SHUFFLE UINT32_C(0xDA7A0001)
#define CT_DATA_STREAM_SPLIT UINT32_C(0xDA7A0002)
#define CT_DATA_STREAM_AUGMENT UINT32_C(0xDA7A0003)
/* Window starts of language-model batches (text.h documents both). */
#define CT_DATA_STREAM_WINDOWS UINT32_C(0xDA7A0004)
#define CT_DATA_STREAM_EVAL_WINDOWS UINT32_C(0xDA7A0005)

/* Augmentation options with their own copy of mean and std, as the loader
 * keeps them (augment.c). */
typedef struct ct_aug {
    ct_augment_opts o; /* o.mean, o.std point at the copies below */
    ct_shape image;    /* [C, H, W] */
    float *mean, *std;
} ct_aug;

/* Checks opts against the image shape; messages start with fn. */
ct_status ct_aug_validate(const char *fn, const ct_augment_opts *o, ct_shape image);
/* Checks and copies; errors as ct_aug_validate, and CT_ERR_OOM. */
ct_status ct_aug_init(ct_aug *a, const char *fn, const ct_augment_opts *o, ct_shape image);
void ct_aug_free(ct_aug *a);
/* Augments sample `index` of epoch `epoch`: src -> dst (numel floats each,
 * not overlapping); scratch holds numel floats (used by rotate/translate). */
void ct_aug_sample(const ct_aug *a, uint64_t seed, uint32_t epoch, int64_t index, const float *src, float *dst,
                   float *scratch);
/* The steps of opts with the given choices (already checked). */
void ct_aug_run(const ct_augment_opts *o, ct_shape image, const ct_augment_params *params, const float *src,
                float *dst, float *scratch);

/* A dataset with room for n samples of the given shape, contents not set
 * (num_classes 0). Checks n and shape and reports errors itself. */
ct_status ct_data_alloc(int64_t n, ct_shape shape, ct_dataset **out);

/* The largest label + 1 (labels are already known to be >= 0). */
int32_t ct_data_count_classes(const int32_t *y, int64_t n);

/* The words of one Philox stream (seed, stream, offset) in order: element i
 * is word i % 4 of block i / 4, exactly as ct_philox_u32 lays it out; a
 * block is kept to use all four of its words. */
typedef struct ct_word_stream {
    uint32_t ctr[4], key[2], out[4];
    uint64_t next; /* index of the next word to hand out */
} ct_word_stream;

void ct_data_ws_init(ct_word_stream *w, uint64_t seed, uint32_t stream, uint32_t offset);
/* The next word of the stream. */
uint32_t ct_data_ws_u32(ct_word_stream *w);
/* Uniform in [0, range), range >= 1, from the next word(s) (shuffle.c). */
uint32_t ct_data_ws_below(ct_word_stream *w, uint32_t range);

/* perm[0..n) = a uniformly random permutation of 0..n-1 (Fisher-Yates)
 * that is a pure function of (seed, stream, offset, n); n <= 2^32. */
void ct_data_permutation(uint64_t seed, uint32_t stream, uint32_t offset, int64_t n,
                         int64_t *perm);

/* The whole content of a file, gunzipped when its first two bytes are the
 * gzip magic. *data (caller frees) has one extra NUL byte after *len bytes,
 * so text parsers may rely on a terminator. Errors name the path: cannot
 * open or read (CT_ERR_IO), corrupt or cut-off gzip, bytes after the gzip
 * stream that are not another gzip member (CT_ERR_FORMAT), gzip
 * without zlib (CT_ERR_UNSUPPORTED), CT_ERR_OOM. */
ct_status ct_data_read_file(const char *path, unsigned char **data, size_t *len);

/* dir/name if it exists, else dir/name.gz if that does, as a malloc'ed
 * path in *out; *out NULL when neither exists. Errors: CT_ERR_OOM. */
ct_status ct_data_find_file(const char *dir, const char *name, char **out);

/* CT_OK if dir is a directory; else CT_ERR_IO naming it and why. */
ct_status ct_data_check_dir(const char *dir);

#endif
