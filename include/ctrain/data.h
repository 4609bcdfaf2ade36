/* Datasets and batch loading for training.
 *
 * A ct_dataset holds n labelled samples in memory: one float feature tensor
 * of a fixed sample shape per sample ([1, 28, 28] for an MNIST image, [F]
 * for a CSV row), stored back to back, and one int32 class label each.
 * Readers build one from IDX files (MNIST, Fashion-MNIST, raw or gzipped),
 * from the CIFAR-10 binary files or from CSV; transforms work on it in place or make new datasets from it;
 * a ct_loader then cuts it into (optionally shuffled, optionally augmented:
 * ctrain/augment.h) batches, with a background thread preparing the next
 * batch while the current one trains.
 *
 *     ct_dataset *all, *train, *val;
 *     ct_dataset_load_mnist("../shared/data/mnist", true, &all);
 *     ct_dataset_split(all, 0.1, 42, &train, &val);
 *     float mean, std;
 *     ct_dataset_stats(train, 1, &mean, &std);       // one scalar over all pixels
 *     ct_dataset_normalize(train, 1, &mean, &std);
 *     ct_dataset_normalize(val, 1, &mean, &std);
 *     ct_loader_opts lo = {.batch_size = 64, .shuffle = true, .seed = 42, .prefetch = true};
 *     ct_loader *ld = ct_loader_new(train, &lo);
 *     for (uint32_t epoch = 0; epoch < 10; epoch++) {
 *         ct_loader_start_epoch(ld, epoch);
 *         ct_batch b;
 *         while (ct_loader_next(ld, &b) == CT_OK && b.count > 0)
 *             train_step(b.x, b.y, b.count);
 *     }
 *     ct_loader_free(ld);
 *     ct_dataset_free(val); ct_dataset_free(train); ct_dataset_free(all);
 *
 * Shuffles are Philox permutations keyed by (seed, epoch) alone, and
 * augmentations draw from Philox keyed by (seed, epoch, sample index), so a
 * run repeats exactly, and a resumed run sees the batches it would have seen.
 * Every function that can fail returns a ct_status (or NULL) and leaves a
 * one-line message for ct_last_error(); messages about a file name the file,
 * and for CSV the line and column.
 */
#ifndef CTRAIN_DATA_H
#define CTRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrain/augment.h"
#include "ctrain/dtype.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ datasets */

typedef struct ct_dataset ct_dataset;

/* The most samples a dataset holds (shuffles draw 32-bit indices). */
#define CT_DATASET_MAX_SAMPLES INT32_MAX

/* A dataset from arrays in memory, copied: features holds n * numel(shape)
 * floats (sample after sample), labels n labels >= 0. num_classes 0 means
 * max label + 1; otherwise every label must be below it. The caller keeps
 * ownership of the arrays and frees *out with ct_dataset_free.
 * Errors: n < 1 or above CT_DATASET_MAX_SAMPLES, a shape with a dimension
 * < 1, NULL arrays, a negative label or one >= num_classes
 * (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_dataset_from_arrays(int64_t n, ct_shape sample_shape, const float *features,
                                 const int32_t *labels, int32_t num_classes, ct_dataset **out);

/* Frees a dataset; NULL is ignored. No loader may still use it. */
void ct_dataset_free(ct_dataset *ds);

/* Number of samples (>= 1). */
int64_t ct_dataset_size(const ct_dataset *ds);
/* The shape of one sample, e.g. [1, 28, 28]. */
ct_shape ct_dataset_sample_shape(const ct_dataset *ds);
/* Floats per sample: the product of the sample shape. */
int64_t ct_dataset_sample_numel(const ct_dataset *ds);
/* Number of classes: every label is in [0, num_classes). */
int32_t ct_dataset_num_classes(const ct_dataset *ds);
/* The features, size * sample_numel floats, sample i at i * sample_numel.
 * Owned by the dataset, valid until it is freed. */
const float *ct_dataset_features(const ct_dataset *ds);
/* The same array, writable, for transforms of the caller's own. Not while a
 * loader over this dataset is between batches: its prefetch thread reads it. */
float *ct_dataset_features_mut(ct_dataset *ds);
/* The labels, size int32 values. Owned by the dataset. */
const int32_t *ct_dataset_labels(const ct_dataset *ds);

/* Gives the samples another shape of the same number of elements, e.g.
 * [784] -> [1, 28, 28] to declare the image geometry of flat samples (which
 * augmentation needs). The features are not moved. Errors: a shape with a
 * dimension < 1, more than CT_MAX_DIMS dimensions, or another element count
 * (CT_ERR_INVALID_ARG); the dataset is then unchanged. */
ct_status ct_dataset_reshape(ct_dataset *ds, ct_shape sample_shape);

/* Declares more classes than the labels show (say, a subset that happens to
 * lack the last class). Errors: num_classes <= the largest label
 * (CT_ERR_INVALID_ARG). */
ct_status ct_dataset_set_num_classes(ct_dataset *ds, int32_t num_classes);

/* ------------------------------------------------------------------ readers */

/* IDX files (the MNIST format): a big-endian header, magic 0x00000803 and
 * three sizes (count, rows, cols) for images, magic 0x00000801 and one size
 * (count) for labels, then one unsigned byte per pixel or label. Either file
 * may be gzip-compressed; that is told from its first two bytes (1f 8b), not
 * from its name. Pixels become floats in [0, 1] (value / 255), the sample
 * shape is [1, rows, cols], and num_classes is the largest label + 1.
 * labels_path may be NULL: images only (for predictions), every label 0.
 * *out is the caller's to free.
 * Errors, each naming the file: it cannot be opened or read (CT_ERR_IO);
 * a wrong magic, a file shorter than its header says, sizes whose product
 * overflows (naming the dimension), a corrupt or cut-off gzip stream or bytes
 * after it, an image count different from the label count (CT_ERR_FORMAT);
 * a gzipped file in a build without zlib (CT_ERR_UNSUPPORTED); CT_ERR_OOM. */
ct_status ct_dataset_load_idx(const char *images_path, const char *labels_path,
                              ct_dataset **out);

/* MNIST (or Fashion-MNIST, which uses the same names) from a directory:
 * train-images-idx3-ubyte and train-labels-idx1-ubyte for train, the t10k-
 * files otherwise, each either as named or with .gz appended (the plain file
 * is preferred when both exist). num_classes is 10, the range both
 * datasets declare, whatever labels the files hold. Errors: as
 * ct_dataset_load_idx; a label above 9, naming the file and the record
 * (CT_ERR_FORMAT); CT_ERR_NOT_FOUND, naming the directory and file, when
 * neither name exists. */
ct_status ct_dataset_load_mnist(const char *dir, bool train, ct_dataset **out);

/* CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html,
 * "CIFAR-10 binary version", cifar-10-binary.tar.gz): each file is a run of
 * 3073-byte records, one label byte (0..9) then 3072 pixel bytes, the red,
 * green and blue 32x32 planes in turn, rows top to bottom. The samples get
 * shape [3, 32, 32] (the same channel-major layout), pixels value / 255 in
 * [0, 1], and num_classes 10. Any number of records per file is accepted
 * (the real files hold 10000 each); the files are read in the order given
 * and may be gzipped. *out is the caller's to free.
 * Errors, each naming the file: it cannot be read (CT_ERR_IO); it is empty,
 * its size is not a whole number of records (a truncated file), a label
 * above 9, naming the record (CT_ERR_FORMAT); n_paths < 1, NULL arguments
 * (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_dataset_load_cifar10_files(const char *const *paths, int n_paths, ct_dataset **out);

/* CIFAR-10 from a directory: data_batch_1.bin .. data_batch_5.bin for train
 * (50000 images), test_batch.bin otherwise (10000), looked for in dir and
 * in dir/cifar-10-batches-bin (where the archive unpacks), each also as
 * <name>.gz. Errors: as ct_dataset_load_cifar10_files, and CT_ERR_NOT_FOUND
 * naming the directory and file and where to get the files. */
ct_status ct_dataset_load_cifar10(const char *dir, bool train, ct_dataset **out);

/* The per-channel mean and standard deviation of the CIFAR-10 training set
 * (pixels in [0, 1]), for ct_dataset_normalize(ds, 3, ...) or a loader's
 * augment.mean / augment.std:
 *     static const float mean[3] = CT_CIFAR10_MEAN, std[3] = CT_CIFAR10_STD; */
#define CT_CIFAR10_MEAN {0.4914f, 0.4822f, 0.4465f}
#define CT_CIFAR10_STD {0.2470f, 0.2435f, 0.2616f}

typedef enum ct_csv_header {
    CT_CSV_HEADER_AUTO = 0, /* the first line is a header if one of its fields is a name: text that is
                               no number at all, so not "nan", "inf", "0x2" or "2.5.1" */
    CT_CSV_HEADER_YES,      /* the first line is a header, whatever it holds */
    CT_CSV_HEADER_NO        /* the first line is data */
} ct_csv_header;

/* Options of ct_dataset_load_csv; all zero is a comma-separated file whose
 * last field is the label, with the header detected. */
typedef struct ct_csv_opts {
    /* Which field holds the label, counted from 1 like the columns of error
     * messages: 1 is the first field, -1 the last, -2 the one before it.
     * 0 means the last field. */
    int label_column;
    ct_csv_header header;
    char delimiter;          /* 0 means ','; '\t' for TSV */
    int32_t num_classes;     /* 0 means the largest label + 1 */
} ct_csv_opts;

/* A CSV file of numbers, one sample per line: every field but the label is a
 * feature (sample shape [F], F = fields - 1, in file order), the label a
 * non-negative integer ("3", and "3.0" as numpy.savetxt writes it). Blank
 * lines are skipped; CRLF line ends, spaces around fields and fields in
 * double quotes are accepted; a gzipped file (told by its first bytes) is
 * read too. Numbers are decimal (digits, sign, '.', exponent; no hexadecimal,
 * nan or inf) and read with strtod, so the C locale's '.' is the decimal
 * point unless the program changed LC_NUMERIC; a feature must be finite as a
 * float (|x| below about 3.4e38). Labels are below 2^24. opts may be NULL.
 * *out is the caller's to free.
 * Errors, naming the file, line and (1-based) column: a row with a different
 * number of fields than the first, a field that is not a finite decimal
 * number or overflows a float, an empty field, a NUL byte, a label that is
 * not an integer or is negative or >= the given num_classes (naming the data
 * row too) or >= 2^24, fewer than two fields, no data rows, bytes after a
 * gzip stream (CT_ERR_FORMAT); a label
 * column outside the row (CT_ERR_INVALID_ARG); the file cannot be read
 * (CT_ERR_IO); CT_ERR_OOM. */
ct_status ct_dataset_load_csv(const char *path, const ct_csv_opts *opts, ct_dataset **out);

/* ------------------------------------------------------------------ transforms */

/* The mean and population standard deviation (divided by n, not n - 1) of the
 * features, computed in double. len picks what is averaged over, and is the
 * length of both output arrays:
 *   1                 one scalar over every feature of every sample;
 *   sample_shape[0]   per channel (the first sample dimension), as
 *                     torchvision's Normalize(mean, std) for images;
 *   sample_numel      per feature, as for tabular data.
 * (Where two of these are equal they mean the same thing.) A standard
 * deviation of 0, a constant feature, is reported as 1, so that normalizing
 * by it only centres. Errors: another len, NULL arrays (CT_ERR_INVALID_ARG). */
ct_status ct_dataset_stats(const ct_dataset *ds, int64_t len, float *mean, float *std);

/* In place, x = (x - mean) / std, with len meaning what it does for
 * ct_dataset_stats. A std of 0 is taken as 1. Errors: another len, NULL
 * arrays, a negative or non-finite std or a non-finite mean
 * (CT_ERR_INVALID_ARG); the dataset is then unchanged. */
ct_status ct_dataset_normalize(ct_dataset *ds, int64_t len, const float *mean, const float *std);

/* A new dataset of the samples at indices[0..n) of ds, in that order
 * (repeats allowed), with the same sample shape and num_classes.
 * Errors: n < 1, an index outside [0, size) (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_dataset_subset(const ct_dataset *ds, const int64_t *indices, int64_t n,
                            ct_dataset **out);

/* A new dataset of the first n samples (all of them if n >= size), for quick
 * runs. Same num_classes as ds. Errors: n < 1 (CT_ERR_INVALID_ARG); CT_ERR_OOM. */
ct_status ct_dataset_take(const ct_dataset *ds, int64_t n, ct_dataset **out);

/* Splits ds into two new datasets: a Philox permutation keyed by seed picks
 * round(val_fraction * size) samples for *val and leaves the rest to *train;
 * each part keeps the original order of its samples and ds's num_classes,
 * and ds itself is untouched. The same (size, val_fraction, seed) always
 * picks the same samples. Errors: val_fraction outside (0, 1) or a part that
 * would be empty, NULL outputs (CT_ERR_INVALID_ARG); CT_ERR_OOM. On error
 * both outputs are NULL. */
ct_status ct_dataset_split(const ct_dataset *ds, double val_fraction, uint64_t seed,
                           ct_dataset **train, ct_dataset **val);

/* ------------------------------------------------------------------ loader */

typedef struct ct_loader ct_loader;

/* Options of ct_loader_new. Zero is the default for every field but
 * batch_size, which must be set. */
typedef struct ct_loader_opts {
    /* Samples per batch, 1 .. size; batch_size = size is full-batch gradient
     * descent. When sharded, this is the batch of one shard (rank). */
    int64_t batch_size;
    bool shuffle;   /* a new permutation every epoch, keyed by (seed, epoch) */
    bool drop_last; /* drop a last batch shorter than batch_size */
    uint64_t seed;
    /* A background thread prepares the next batch while the caller trains on
     * the current one. The batches are exactly those without it. Without
     * shuffle or augmentation there is nothing to prepare (batches are
     * handed out in place) and no thread is started. Costs a second batch buffer. */
    bool prefetch;
    /* Data parallel: num_shards ranks share every global batch of
     * batch_size * num_shards samples (each rank builds the same global
     * order from the same seed), rank shard_index taking its slice
     * [shard_index * batch_size, ...). A last global batch shorter than
     * global size is split as evenly as possible, the lower ranks taking the
     * extra samples; one shorter than num_shards is dropped, so that every
     * rank has the same number of batches, each non-empty. 0 or 1 shards
     * means no sharding. */
    int num_shards;
    int shard_index;
    /* Augmentation of every sample as its batch is built (ctrain/augment.h),
     * a pure function of (seed, epoch, sample index); NULL or all zero:
     * none. Needs samples of shape [C, H, W]. Copied by ct_loader_new. With
     * it, batches are always copies (even without shuffle), so prefetch
     * applies. */
    const ct_augment_opts *augment;
} ct_loader_opts;

/* One batch. x and y point into memory owned by the loader (or straight into
 * the dataset when not shuffling); they stay valid until the next
 * ct_loader_next, ct_loader_start_epoch* or ct_loader_free. */
typedef struct ct_batch {
    const float *x;         /* count * sample_numel floats, sample after sample */
    const int32_t *y;       /* count labels */
    const int64_t *indices; /* the dataset index of each sample */
    int64_t count;          /* samples in this batch; 0 at the end of the epoch */
    int64_t global_count;   /* samples in the global batch of all shards (= count unsharded) */
    int64_t index;          /* this batch's number within the epoch, from 0 */
} ct_batch;

/* A loader over ds, which it borrows: ds must outlive the loader and keep
 * its features unchanged while the loader is used. One loader is driven from
 * one thread at a time (its prefetch thread is its own business). The loader starts at
 * epoch 0, so ct_loader_next works at once. Free with ct_loader_free.
 * Errors (NULL returned): a NULL argument, batch_size outside 1 .. size
 * (with sharding: batch_size * num_shards above size), a negative
 * num_shards, a shard_index outside [0, num_shards), augmentation options
 * that ct_augment_check refuses for the sample shape (CT_ERR_INVALID_ARG);
 * CT_ERR_OOM, also when the prefetch thread cannot be started. */
ct_loader *ct_loader_new(const ct_dataset *ds, const ct_loader_opts *opts);

/* Stops the prefetch thread (also mid-epoch, waiting for the batch it is
 * preparing) and frees the loader; NULL is ignored. */
void ct_loader_free(ct_loader *ld);

/* Starts epoch `epoch` from its first batch. With shuffle, the order is a
 * permutation that depends on (seed, epoch) only, never on the epochs run
 * before. Errors: NULL (CT_ERR_INVALID_ARG). */
ct_status ct_loader_start_epoch(ct_loader *ld, uint32_t epoch);

/* Starts epoch `epoch` at batch first_batch, as a resumed run does: the
 * batches that follow are those an uninterrupted run would have had.
 * Errors: first_batch outside 0 .. num_batches (CT_ERR_INVALID_ARG). */
ct_status ct_loader_start_epoch_at(ct_loader *ld, uint32_t epoch, int64_t first_batch);

/* The next batch of the epoch into *b. At the end of the epoch it returns
 * CT_OK with b->count == 0 (and NULL x, y, indices), and keeps doing so
 * until the next ct_loader_start_epoch; a batch is never empty otherwise.
 * Errors: NULL arguments (CT_ERR_INVALID_ARG). */
ct_status ct_loader_next(ct_loader *ld, ct_batch *b);

/* Batches per epoch (for this shard): ceil(size / batch_size), or
 * floor(size / batch_size) with drop_last; with sharding, the same counted in
 * global batches, less one if the last would be shorter than num_shards. */
int64_t ct_loader_num_batches(const ct_loader *ld);

/* The epoch last started (0 for a new loader). */
uint32_t ct_loader_epoch(const ct_loader *ld);

#ifdef __cplusplus
}
#endif
#endif
