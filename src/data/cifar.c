/* CIFAR-10 in its binary version: files of 3073-byte records, a label byte
 * and a 3x32x32 image stored plane by plane (red, green, blue), which is
 * already the [C, H, W] layout of a sample, so a record converts byte for
 * byte. Every file is read and checked before the dataset is allocated, so
 * a bad fifth file costs no 600 MB allocation and leaves nothing behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data_internal.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define CIFAR_TRAIN_FILES 5
#define CIFAR_URL "https://www.cs.toronto.edu/~kriz/cifar.html (\"CIFAR-10 binary version\")"

/* The size and labels of one file already in memory. */
static ct_status check_file(const char *path, const unsigned char *d, size_t len) {
    if (len == 0) return ct_error(CT_ERR_FORMAT, "%s: empty, expected CIFAR-10 records of %d bytes", path, CIFAR_RECORD);
    if (len % CIFAR_RECORD)
        return ct_error(CT_ERR_FORMAT,
                        "%s: truncated or not CIFAR-10: %zu bytes is not a whole number of %d-byte records "
                        "(%zu records and %zu bytes over)",
                        path, len, CIFAR_RECORD, len / CIFAR_RECORD, len % CIFAR_RECORD);
    for (size_t r = 0; r < len / CIFAR_RECORD; r++)
        if (d[r * CIFAR_RECORD] >= CIFAR_CLASSES)
            return ct_error(CT_ERR_FORMAT, "%s: record %zu (byte offset %zu) has label %d, CIFAR-10 labels are 0 to 9",
                            path, r, r * CIFAR_RECORD, d[r * CIFAR_RECORD]);
    return CT_OK;
}

ct_status ct_dataset_load_cifar10_files(const char *const *paths, int n_paths, ct_dataset **out) {
    if (out) *out = NULL;
    if (!paths || !out || n_paths < 1)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_cifar10_files: %s",
                        n_paths < 1 ? "no files" : "NULL argument");
    for (int f = 0; f < n_paths; f++)
        if (!paths[f]) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_cifar10_files: path %d is NULL", f);
    unsigned char **data = calloc((size_t)n_paths, sizeof *data);
    size_t *len = calloc((size_t)n_paths, sizeof *len);
    if (!data || !len) {
        free(data);
        free(len);
        return ct_error(CT_ERR_OOM, "ct_dataset_load_cifar10_files: out of memory");
    }
    ct_status s = CT_OK;
    int64_t n = 0;
    for (int f = 0; f < n_paths && s == CT_OK; f++) {
        s = ct_data_read_file(paths[f], &data[f], &len[f]);
        if (s == CT_OK) s = check_file(paths[f], data[f], len[f]);
        if (s == CT_OK) n += (int64_t)(len[f] / CIFAR_RECORD);
        if (s == CT_OK && n > CT_DATASET_MAX_SAMPLES)
            s = ct_error(CT_ERR_FORMAT, "%s: more than the %d samples a dataset holds", paths[f],
                         CT_DATASET_MAX_SAMPLES);
    }
    ct_dataset *ds = NULL;
    if (s == CT_OK) s = ct_data_alloc(n, (ct_shape){3, {3, CIFAR_SIDE, CIFAR_SIDE}}, &ds);
    if (s == CT_OK) {
        /* b / 255.0f exactly, as the IDX reader and torchvision's ToTensor. */
        float scale[256];
        for (int b = 0; b < 256; b++) scale[b] = (float)b / 255.0f;
        int64_t i = 0;
        for (int f = 0; f < n_paths; f++) {
            for (size_t r = 0; r < len[f] / CIFAR_RECORD; r++, i++) {
                const unsigned char *rec = data[f] + r * CIFAR_RECORD;
                ds->y[i] = rec[0];
                float *x = ds->x + i * CIFAR_PIXELS;
                for (int k = 0; k < CIFAR_PIXELS; k++) x[k] = scale[rec[1 + k]];
            }
            free(data[f]);
            data[f] = NULL;
        }
        ds->num_classes = CIFAR_CLASSES;
        *out = ds;
    }
    for (int f = 0; f < n_paths; f++) free(data[f]);
    free(data);
    free(len);
    return s;
}

/* The first of dir/name(.gz) and dir/cifar-10-batches-bin/name(.gz); NULL
 * with the error set when there is none. */
static char *find_cifar(const char *dir, const char *name, ct_status *s) {
    char *p = NULL;
    *s = ct_data_find_file(dir, name, &p);
    if (*s != CT_OK || p) return p;
    size_t cap = strlen(dir) + sizeof "/cifar-10-batches-bin";
    char *sub = malloc(cap);
    if (!sub) {
        *s = ct_error(CT_ERR_OOM, "out of memory");
        return NULL;
    }
    snprintf(sub, cap, "%s/cifar-10-batches-bin", dir);
    *s = ct_data_find_file(sub, name, &p);
    free(sub);
    if (*s == CT_OK && !p)
        *s = ct_error(CT_ERR_NOT_FOUND,
                      "%s: no %s (or %s.gz) here or in its cifar-10-batches-bin/; get the files from " CIFAR_URL,
                      dir, name, name);
    return p;
}

ct_status ct_dataset_load_cifar10(const char *dir, bool train, ct_dataset **out) {
    if (out) *out = NULL;
    if (!dir || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_cifar10: NULL argument");
    ct_status s = ct_data_check_dir(dir);
    if (s != CT_OK) return s;
    char *paths[CIFAR_TRAIN_FILES] = {NULL};
    const int n = train ? CIFAR_TRAIN_FILES : 1;
    for (int f = 0; f < n && s == CT_OK; f++) {
        char name[32];
        if (train)
            snprintf(name, sizeof name, "data_batch_%d.bin", f + 1);
        else
            snprintf(name, sizeof name, "test_batch.bin");
        paths[f] = find_cifar(dir, name, &s);
    }
    if (s == CT_OK) s = ct_dataset_load_cifar10_files((const char *const *)paths, n, out);
    for (int f = 0; f < n; f++) free(paths[f]);
    return s;
}
