/* The CIFAR-10 binary reader, on small files written here in that format:
 * exact pixel values and labels, the directory layouts, and every kind of
 * damage (wrong size, bad label, empty, missing). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctrain/ctrain.h"
#include "tmpfiles.h"

#define REC 3073
#define PIX 3072


/* n records whose bytes are a function of (file, record, position), with
 * labels (file * 3 + record) % 10: every byte value and label is checkable. */
static unsigned char *records(int file, int n) {
    unsigned char *d = malloc((size_t)n * REC);
    cr_assert_not_null(d);
    for (int r = 0; r < n; r++) {
        d[(size_t)r * REC] = (unsigned char)((file * 3 + r) % 10);
        for (int k = 0; k < PIX; k++) d[(size_t)r * REC + 1 + k] = (unsigned char)(k * 7 + r * 31 + file * 101);
    }
    return d;
}

static void write_cifar(const char *path, int file, int n) {
    unsigned char *d = records(file, n);
    write_bytes(path, d, (size_t)n * REC);
    free(d);
}

static void check_record(const ct_dataset *ds, int64_t i, int file, int r) {
    const float *x = ct_dataset_features(ds) + i * PIX;
    cr_assert_eq(ct_dataset_labels(ds)[i], (file * 3 + r) % 10, "label of sample %lld", (long long)i);
    for (int k = 0; k < PIX; k++) {
        unsigned char b = (unsigned char)(k * 7 + r * 31 + file * 101);
        cr_assert_eq(x[k], (float)b / 255.0f, "sample %lld element %d", (long long)i, k);
    }
}

Test(cifar, files_values_and_labels) {
    char *dir = make_tmpdir();
    write_cifar(path_in(dir, "a.bin"), 0, 3);
    write_cifar(path_in(dir, "b.bin"), 1, 2);
    const char *paths[2] = {path_in(dir, "a.bin"), path_in(dir, "b.bin")};
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_cifar10_files(paths, 2, &ds), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_size(ds), 5);
    cr_assert(ct_shape_equal(ct_dataset_sample_shape(ds), (ct_shape){3, {3, 32, 32}}));
    cr_assert_eq(ct_dataset_num_classes(ds), 10, "always 10, whatever labels the files hold");
    for (int r = 0; r < 3; r++) check_record(ds, r, 0, r);
    for (int r = 0; r < 2; r++) check_record(ds, 3 + r, 1, r);
    /* Channel-major: element c * 1024 + row * 32 + col is byte 1 + the same. */
    const float *x = ct_dataset_features(ds);
    cr_assert_eq(x[1024 + 5 * 32 + 7], (float)(unsigned char)((1024 + 5 * 32 + 7) * 7) / 255.0f);
    ct_dataset_free(ds);
    rm_tmpdir(dir);
}

Test(cifar, directory_train_and_test) {
    char *dir = make_tmpdir();
    /* The layout of the archive: everything in cifar-10-batches-bin/. */
    char sub[4352];
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    cr_assert_eq(mkdir(sub, 0777), 0);
    for (int f = 1; f <= 5; f++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", f);
        write_cifar(path_in(sub, name), f, f); /* 1 + 2 + ... + 5 = 15 records */
    }
    write_cifar(path_in(sub, "test_batch.bin"), 9, 4);
    ct_dataset *train, *test;
    cr_assert_eq(ct_dataset_load_cifar10(dir, true, &train), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_size(train), 15);
    int64_t i = 0;
    for (int f = 1; f <= 5; f++)
        for (int r = 0; r < f; r++) check_record(train, i++, f, r);
    cr_assert_eq(ct_dataset_load_cifar10(dir, false, &test), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_size(test), 4);
    check_record(test, 3, 9, 3);
    /* The same files straight in the directory given. */
    ct_dataset *direct;
    cr_assert_eq(ct_dataset_load_cifar10(sub, false, &direct), CT_OK, "%s", ct_last_error());
    cr_assert_eq(memcmp(ct_dataset_features(direct), ct_dataset_features(test), 4 * PIX * sizeof(float)), 0);
    /* The standard statistics normalize per channel. */
    static const float mean[3] = CT_CIFAR10_MEAN, std[3] = CT_CIFAR10_STD;
    float before = ct_dataset_features(test)[2048];
    cr_assert_eq(ct_dataset_normalize(test, 3, mean, std), CT_OK);
    cr_assert_eq(ct_dataset_features(test)[2048], (before - mean[2]) / std[2]);
    ct_dataset_free(train);
    ct_dataset_free(test);
    ct_dataset_free(direct);
    rm_tmpdir(dir);
}

Test(cifar, missing_files_say_where_to_get_them) {
    char *dir = make_tmpdir();
    ct_dataset *ds = (ct_dataset *)1;
    cr_assert_eq(ct_dataset_load_cifar10(dir, false, &ds), CT_ERR_NOT_FOUND);
    cr_assert_null(ds);
    cr_assert(strstr(ct_last_error(), "no test_batch.bin"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "https://www.cs.toronto.edu/~kriz/cifar.html"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "CIFAR-10 binary version"), "%s", ct_last_error());
    /* Four of the five training files: the fifth is named. */
    for (int f = 1; f <= 4; f++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", f);
        write_cifar(path_in(dir, name), f, 1);
    }
    cr_assert_eq(ct_dataset_load_cifar10(dir, true, &ds), CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "no data_batch_5.bin"), "%s", ct_last_error());
    cr_assert_eq(ct_dataset_load_cifar10(path_in(dir, "nowhere"), true, &ds), CT_ERR_IO);
    rm_tmpdir(dir);
}

Test(cifar, malformed_files) {
    char *dir = make_tmpdir();
    ct_dataset *ds = NULL;
    const char *p = path_in(dir, "bad.bin");
    /* Truncated: the last record is cut short. */
    unsigned char *d = records(0, 3);
    write_bytes(p, d, 3 * REC - 100);
    cr_assert_eq(ct_dataset_load_cifar10_files(&p, 1, &ds), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "bad.bin: truncated or not CIFAR-10: 9119 bytes is not a whole number of 3073-byte records (2 records and 2973 bytes over)"),
              "%s", ct_last_error());
    cr_assert_null(ds);
    /* One byte too many. */
    unsigned char *more = malloc(3 * REC + 1);
    memcpy(more, d, 3 * REC);
    more[3 * REC] = 0;
    write_bytes(p, more, 3 * REC + 1);
    cr_assert_eq(ct_dataset_load_cifar10_files(&p, 1, &ds), CT_ERR_FORMAT);
    /* A label above 9 in the second record. */
    d[REC] = 10;
    write_bytes(p, d, 3 * REC);
    cr_assert_eq(ct_dataset_load_cifar10_files(&p, 1, &ds), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "bad.bin: record 1 (byte offset 3073) has label 10"), "%s", ct_last_error());
    /* Empty. */
    write_bytes(p, d, 0);
    cr_assert_eq(ct_dataset_load_cifar10_files(&p, 1, &ds), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "empty"), "%s", ct_last_error());
    /* A good file followed by a bad one: nothing is returned. */
    write_cifar(path_in(dir, "good.bin"), 0, 2);
    const char *both[2] = {path_in(dir, "good.bin"), p};
    cr_assert_eq(ct_dataset_load_cifar10_files(both, 2, &ds), CT_ERR_FORMAT);
    cr_assert_null(ds);
    /* Missing file, no files, NULL path. */
    const char *none = path_in(dir, "none.bin");
    cr_assert_eq(ct_dataset_load_cifar10_files(&none, 1, &ds), CT_ERR_IO);
    cr_assert(strstr(ct_last_error(), "none.bin"), "%s", ct_last_error());
    cr_assert_eq(ct_dataset_load_cifar10_files(both, 0, &ds), CT_ERR_INVALID_ARG);
    const char *null_path[1] = {NULL};
    cr_assert_eq(ct_dataset_load_cifar10_files(null_path, 1, &ds), CT_ERR_INVALID_ARG);
    free(d);
    free(more);
    rm_tmpdir(dir);
}

Test(cifar, augmented_loader_over_cifar) {
    /* The reader's geometry is what augmentation needs, with no reshape. */
    char *dir = make_tmpdir();
    write_cifar(path_in(dir, "test_batch.bin"), 2, 6);
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_cifar10(dir, false, &ds), CT_OK, "%s", ct_last_error());
    static const float mean[3] = CT_CIFAR10_MEAN, std[3] = CT_CIFAR10_STD;
    ct_augment_opts aug = {.crop_pad = 4, .flip = true, .mean = mean, .std = std};
    ct_loader *ld = ct_loader_new(ds, &(ct_loader_opts){.batch_size = 3, .shuffle = true, .augment = &aug});
    cr_assert_not_null(ld, "%s", ct_last_error());
    ct_batch b;
    cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
    cr_assert_eq(b.count, 3);
    ct_loader_free(ld);
    ct_dataset_free(ds);
    rm_tmpdir(dir);
}
