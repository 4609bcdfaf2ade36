/* The data module's readers: MNIST from the shared data directory (gzipped
 * and unpacked), IDX and CSV files written here with known content and with
 * every kind of damage (test_data_loader.c: transforms and the loader). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CTRAIN_HAVE_ZLIB
#include <zlib.h>
#endif

#include "ctrain/data.h"
#include "ctrain/status.h"
#include "expect_msg.h"
#include "tmpfiles.h"

/* ------------------------------------------------------------------ helpers */

/* ../shared/data/mnist, or the test is skipped (with the reason). */
static const char *mnist_dir(void) {
    static char buf[4096];
    const char *root = getenv("CTRAIN_DATA_DIR");
    if (!root || !*root) cr_skip_test("CTRAIN_DATA_DIR is not set; MNIST tests need ../shared/data");
    snprintf(buf, sizeof buf, "%s/mnist", root);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        cr_skip_test("%s does not exist; MNIST tests need it", buf);
#ifndef CTRAIN_HAVE_ZLIB
    cr_skip_test("built without zlib, and the MNIST files in %s are gzipped", buf);
#endif
    return buf;
}


static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

#ifdef CTRAIN_HAVE_ZLIB
static unsigned char *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_gz(const char *path, const void *data, size_t len) {
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g, "cannot write %s", path);
    cr_assert_eq(gzwrite(g, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(g), Z_OK);
}

/* Unpacks src (gzip) into dst with zlib, as `gunzip -c` would. */
static void gunzip_to(const char *src, const char *dst) {
    gzFile g = gzopen(src, "rb");
    cr_assert_not_null(g, "cannot open %s", src);
    FILE *f = fopen(dst, "wb");
    cr_assert_not_null(f, "cannot write %s", dst);
    static unsigned char buf[1 << 16];
    int n;
    while ((n = gzread(g, buf, sizeof buf)) > 0) cr_assert_eq(fwrite(buf, 1, (size_t)n, f), (size_t)n);
    cr_assert_eq(n, 0, "gzread failed on %s", src);
    gzclose(g);
    cr_assert_eq(fclose(f), 0);
}
#endif

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX image file of n images rows x cols, pixel (i, k) = (7i + 3k) % 256,
 * cut to `keep` payload bytes (or all when keep is SIZE_MAX). */
static unsigned char *idx_images(uint32_t n, uint32_t rows, uint32_t cols, size_t keep, size_t *len) {
    size_t payload = (size_t)n * rows * cols;
    if (keep < payload) payload = keep;
    unsigned char *b = malloc(16 + payload);
    cr_assert_not_null(b);
    put_be32(b, 0x00000803);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < payload; i++) {
        size_t img = i / ((size_t)rows * cols), k = i % ((size_t)rows * cols);
        b[16 + i] = (unsigned char)((7 * img + 3 * k) % 256);
    }
    *len = 16 + payload;
    return b;
}

static unsigned char *idx_labels(uint32_t n, const unsigned char *labels, size_t *len) {
    unsigned char *b = malloc(8 + n);
    cr_assert_not_null(b);
    put_be32(b, 0x00000801);
    put_be32(b + 4, n);
    memcpy(b + 8, labels, n);
    *len = 8 + n;
    return b;
}

/* ------------------------------------------------------------------ MNIST */

static void check_mnist(const ct_dataset *ds, int64_t n, int32_t first_label) {
    cr_assert_eq(ct_dataset_size(ds), n);
    ct_shape s = ct_dataset_sample_shape(ds);
    cr_assert_eq(s.ndim, 3);
    cr_assert(s.dim[0] == 1 && s.dim[1] == 28 && s.dim[2] == 28);
    cr_assert_eq(ct_dataset_sample_numel(ds), 784);
    cr_assert_eq(ct_dataset_num_classes(ds), 10);
    const float *x = ct_dataset_features(ds);
    const int32_t *y = ct_dataset_labels(ds);
    cr_expect_eq(y[0], first_label);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < n * 784; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    cr_expect_eq(lo, 0.0f);
    cr_expect_eq(hi, 1.0f); /* 255 / 255 exactly */
    double sum0 = 0;
    for (int k = 0; k < 784; k++) sum0 += x[k];
    cr_expect_gt(sum0, 0.0);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        cr_assert(y[i] >= 0 && y[i] < 10);
        per_class[y[i]]++;
    }
    for (int c = 0; c < 10; c++) cr_expect_gt(per_class[c], n / 20, "class %d", c);
}

Test(data_mnist, train_set_gz) {
    const char *dir = mnist_dir();
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_mnist(dir, true, &ds), CT_OK, "%s", ct_last_error());
    check_mnist(ds, 60000, 5);
    ct_dataset_free(ds);
}

Test(data_mnist, test_set_gz) {
    const char *dir = mnist_dir();
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_mnist(dir, false, &ds), CT_OK, "%s", ct_last_error());
    check_mnist(ds, 10000, 7);
    ct_dataset_free(ds);
}

/* The test set unpacked by zlib into a temporary directory loads to the
 * same bytes, through both entry points. */
Test(data_mnist, unpacked_files_load_identically) {
#ifndef CTRAIN_HAVE_ZLIB
    cr_skip_test("built without zlib");
#else
    const char *dir = mnist_dir();
    char *tmp = make_tmpdir();
    gunzip_to(path_in(dir, "t10k-images-idx3-ubyte.gz"), path_in(tmp, "t10k-images-idx3-ubyte"));
    gunzip_to(path_in(dir, "t10k-labels-idx1-ubyte.gz"), path_in(tmp, "t10k-labels-idx1-ubyte"));
    ct_dataset *gz, *raw, *raw2;
    cr_assert_eq(ct_dataset_load_mnist(dir, false, &gz), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_load_mnist(tmp, false, &raw), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "t10k-images-idx3-ubyte"),
                                     path_in(tmp, "t10k-labels-idx1-ubyte"), &raw2),
                 CT_OK, "%s", ct_last_error());
    for (int v = 0; v < 2; v++) {
        ct_dataset *r = v ? raw2 : raw;
        cr_assert_eq(ct_dataset_size(r), ct_dataset_size(gz));
        cr_assert(ct_shape_equal(ct_dataset_sample_shape(r), ct_dataset_sample_shape(gz)));
        cr_assert_eq(ct_dataset_num_classes(r), ct_dataset_num_classes(gz));
        cr_expect_eq(memcmp(ct_dataset_features(r), ct_dataset_features(gz),
                            10000 * 784 * sizeof(float)), 0);
        cr_expect_eq(memcmp(ct_dataset_labels(r), ct_dataset_labels(gz), 10000 * sizeof(int32_t)), 0);
    }
    ct_dataset_free(gz);
    ct_dataset_free(raw);
    ct_dataset_free(raw2);
    rm_tmpdir(tmp);
#endif
}

/* A full shuffled epoch of the training set through the prefetching loader. */
Test(data_mnist, loader_epoch) {
    const char *dir = mnist_dir();
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_mnist(dir, true, &ds), CT_OK, "%s", ct_last_error());
    ct_loader_opts o = {.batch_size = 64, .shuffle = true, .seed = 7, .prefetch = true};
    ct_loader *ld = ct_loader_new(ds, &o);
    cr_assert_not_null(ld, "%s", ct_last_error());
    cr_assert_eq(ct_loader_num_batches(ld), 938); /* ceil(60000 / 64) */
    ct_batch b;
    int64_t seen = 0, batches = 0;
    while (ct_loader_next(ld, &b) == CT_OK && b.count > 0) {
        int64_t i = b.count - 1; /* spot-check one sample per batch */
        cr_assert_eq(memcmp(b.x + i * 784, ct_dataset_features(ds) + b.indices[i] * 784,
                            784 * sizeof(float)), 0);
        seen += b.count;
        batches++;
    }
    cr_expect_eq(seen, 60000);
    cr_expect_eq(batches, 938);
    ct_loader_free(ld);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------------ IDX files */

/* Writes a good image and label file pair (n images of 3x4) into dir. */
static void write_idx_pair(const char *dir, uint32_t n, bool gz_images, bool gz_labels) {
    size_t li, ll;
    unsigned char labels[64];
    for (uint32_t i = 0; i < n; i++) labels[i] = (unsigned char)((i * 5) % 12);
    unsigned char *im = idx_images(n, 3, 4, SIZE_MAX, &li);
    unsigned char *lb = idx_labels(n, labels, &ll);
#ifdef CTRAIN_HAVE_ZLIB
    if (gz_images) write_gz(path_in(dir, "images"), im, li);
    else
#endif
        write_bytes(path_in(dir, "images"), im, li);
#ifdef CTRAIN_HAVE_ZLIB
    if (gz_labels) write_gz(path_in(dir, "labels"), lb, ll);
    else
#endif
        write_bytes(path_in(dir, "labels"), lb, ll);
    (void)gz_images;
    (void)gz_labels;
    free(im);
    free(lb);
}

Test(data_idx, small_file_values) {
    char *tmp = make_tmpdir();
    for (int mode = 0; mode < 4; mode++) {
#ifndef CTRAIN_HAVE_ZLIB
        if (mode) break;
#endif
        /* Compression is told from the bytes: gzipped and plain files carry
         * the same names here. */
        write_idx_pair(tmp, 5, mode & 1, mode & 2);
        ct_dataset *ds;
        cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "images"), path_in(tmp, "labels"), &ds),
                     CT_OK, "mode %d: %s", mode, ct_last_error());
        cr_assert_eq(ct_dataset_size(ds), 5);
        ct_shape s = ct_dataset_sample_shape(ds);
        cr_assert(s.ndim == 3 && s.dim[0] == 1 && s.dim[1] == 3 && s.dim[2] == 4);
        const float *x = ct_dataset_features(ds);
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 12; k++)
                cr_assert_eq(x[i * 12 + k], (float)((7 * i + 3 * k) % 256) / 255.0f);
        /* Labels 0, 5, 10, 3, 8: up to 10, so 11 classes; IDX does not cap them. */
        cr_expect_eq(ct_dataset_labels(ds)[2], 10);
        cr_expect_eq(ct_dataset_num_classes(ds), 11);
        ct_dataset_free(ds);
    }
    rm_tmpdir(tmp);
}

Test(data_idx, missing_file) {
    char *tmp = make_tmpdir();
    write_idx_pair(tmp, 4, false, false);
    ct_dataset *ds = (ct_dataset *)1;
    const char *missing = path_in(tmp, "no-such-images");
    cr_assert_eq(ct_dataset_load_idx(missing, path_in(tmp, "labels"), &ds), CT_ERR_IO);
    cr_assert_null(ds);
    expect_msg_has(missing, "No such file");
    missing = path_in(tmp, "no-such-labels");
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "images"), missing, &ds), CT_ERR_IO);
    expect_msg_has(missing);
    /* A directory without the MNIST names, and one that does not exist. */
    cr_assert_eq(ct_dataset_load_mnist(tmp, true, &ds), CT_ERR_NOT_FOUND);
    expect_msg_has(tmp, "train-images-idx3-ubyte");
    cr_assert_eq(ct_dataset_load_mnist(missing, false, &ds), CT_ERR_IO);
    expect_msg_has(missing);
    rm_tmpdir(tmp);
}

Test(data_idx, truncated_file) {
    char *tmp = make_tmpdir();
    write_idx_pair(tmp, 4, false, false);
    size_t len;
    unsigned char *im = idx_images(4, 3, 4, 40, &len); /* 48 pixel bytes promised */
    const char *p = path_in(tmp, "short-images");
    write_bytes(p, im, len);
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "truncated", "4 images of 3x4");
    /* Cut inside the header, and an empty file. */
    write_bytes(p, im, 10);
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "truncated");
    write_bytes(p, im, 0);
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "truncated");
    /* Labels, gzipped: the truncation is in the content, not the stream. */
    unsigned char lab[4] = {1, 2, 3, 4};
    unsigned char *lb = idx_labels(4, lab, &len);
    const char *pl = path_in(tmp, "short-labels");
#ifdef CTRAIN_HAVE_ZLIB
    write_gz(pl, lb, len - 1);
#else
    write_bytes(pl, lb, len - 1);
#endif
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "images"), pl, &ds), CT_ERR_FORMAT);
    expect_msg_has(pl, "truncated", "4 labels");
    free(im);
    free(lb);
    rm_tmpdir(tmp);
}

Test(data_idx, wrong_magic) {
    char *tmp = make_tmpdir();
    write_idx_pair(tmp, 4, false, false);
    ct_dataset *ds;
    /* The two files the wrong way round. */
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "labels"), path_in(tmp, "images"), &ds),
                 CT_ERR_FORMAT);
    expect_msg_has(path_in(tmp, "labels"), "magic", "0x00000801", "label file");
    /* Not IDX at all. */
    const char *p = path_in(tmp, "text");
    write_text(p, "hello, this is not an idx file\n");
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "images"), p, &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "magic");
    rm_tmpdir(tmp);
}

Test(data_idx, count_mismatch) {
    char *tmp = make_tmpdir();
    write_idx_pair(tmp, 4, false, false);
    unsigned char lab[3] = {1, 2, 3};
    size_t len;
    unsigned char *lb = idx_labels(3, lab, &len);
    const char *p = path_in(tmp, "three-labels");
    write_bytes(p, lb, len);
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "images"), p, &ds), CT_ERR_FORMAT);
    expect_msg_has(p, path_in(tmp, "images"), "4 images", "3 labels");
    free(lb);
    rm_tmpdir(tmp);
}

Test(data_idx, corrupt_gzip) {
#ifndef CTRAIN_HAVE_ZLIB
    cr_skip_test("built without zlib");
#else
    char *tmp = make_tmpdir();
    write_idx_pair(tmp, 40, true, false);
    size_t len;
    unsigned char *gz = read_bytes(path_in(tmp, "images"), &len);
    ct_dataset *ds;
    /* Damage inside the deflate data: either the decoder or the CRC check
     * at the end notices. */
    const char *p = path_in(tmp, "corrupt");
    unsigned char *bad = malloc(len);
    memcpy(bad, gz, len);
    for (size_t i = 12; i < len - 8; i += 3) bad[i] ^= 0x5a;
    write_bytes(p, bad, len);
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "gzip");
    /* Only the CRC is wrong: the stream decodes, but cannot be trusted. */
    memcpy(bad, gz, len);
    bad[len - 6] ^= 0xff;
    write_bytes(p, bad, len);
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "corrupt gzip");
    /* A gzip stream cut off half way. */
    write_bytes(p, gz, len / 2);
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "cut off");
    free(bad);
    free(gz);
    rm_tmpdir(tmp);
#endif
}

/* ------------------------------------------------------------------ CSV */

static ct_dataset *load_csv_ok(const char *dir, const char *text, const ct_csv_opts *o) {
    const char *p = path_in(dir, "t.csv");
    write_text(p, text);
    ct_dataset *ds = NULL;
    cr_assert_eq(ct_dataset_load_csv(p, o, &ds), CT_OK, "%s", ct_last_error());
    return ds;
}

static void load_csv_fails(const char *dir, const char *text, const ct_csv_opts *o, ct_status want) {
    const char *p = path_in(dir, "t.csv");
    write_text(p, text);
    ct_dataset *ds = (ct_dataset *)1;
    cr_assert_eq(ct_dataset_load_csv(p, o, &ds), want, "'%s': %s", text, ct_last_error());
    cr_assert_null(ds);
    expect_msg_has(p);
}

Test(data_csv, header_detection) {
    char *tmp = make_tmpdir();
    ct_dataset *ds = load_csv_ok(tmp, "width,height,class\n1.5,2,0\n3,-4e1,2\n", NULL);
    cr_assert_eq(ct_dataset_size(ds), 2);
    ct_shape s = ct_dataset_sample_shape(ds);
    cr_assert(s.ndim == 1 && s.dim[0] == 2);
    const float *x = ct_dataset_features(ds);
    cr_expect(x[0] == 1.5f && x[1] == 2.0f && x[2] == 3.0f && x[3] == -40.0f);
    cr_expect(ct_dataset_labels(ds)[0] == 0 && ct_dataset_labels(ds)[1] == 2);
    cr_expect_eq(ct_dataset_num_classes(ds), 3);
    ct_dataset_free(ds);

    /* All numbers: no header. */
    ds = load_csv_ok(tmp, "1,2,0\n3,4,1\n", NULL);
    cr_expect_eq(ct_dataset_size(ds), 2);
    cr_expect_eq(ct_dataset_features(ds)[0], 1.0f);
    ct_dataset_free(ds);

    /* One non-numeric field is enough. */
    ds = load_csv_ok(tmp, "1,x,0\n3,4,1\n", NULL);
    cr_expect_eq(ct_dataset_size(ds), 1);
    ct_dataset_free(ds);

    /* Forced either way. */
    ct_csv_opts yes = {.header = CT_CSV_HEADER_YES}, no = {.header = CT_CSV_HEADER_NO};
    ds = load_csv_ok(tmp, "1,2,0\n3,4,1\n", &yes);
    cr_expect_eq(ct_dataset_size(ds), 1);
    cr_expect_eq(ct_dataset_features(ds)[0], 3.0f);
    ct_dataset_free(ds);
    load_csv_fails(tmp, "a,b,c\n3,4,1\n", &no, CT_ERR_FORMAT);
    expect_msg_has("line 1, column 1", "'a'");
    rm_tmpdir(tmp);
}

Test(data_csv, label_column) {
    char *tmp = make_tmpdir();
    const char *text = "a,b,c,d\n1,2,3,4\n5,6,7,8\n";
    struct {
        int col;
        int32_t label0;
        float f0, f2;
    } cases[] = {
        {0, 4, 1, 3},  /* default: the last */
        {1, 1, 2, 4},  /* the first */
        {4, 4, 1, 3},  /* the last, counted from 1 */
        {-1, 4, 1, 3}, /* the last, from the end */
        {-2, 3, 1, 4}, /* the one before */
        {-4, 1, 2, 4}, /* the first, from the end */
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        ct_csv_opts o = {.label_column = cases[t].col};
        ct_dataset *ds = load_csv_ok(tmp, text, &o);
        cr_expect_eq(ct_dataset_labels(ds)[0], cases[t].label0, "column %d", cases[t].col);
        cr_expect_eq(ct_dataset_features(ds)[0], cases[t].f0, "column %d", cases[t].col);
        cr_expect_eq(ct_dataset_features(ds)[2], cases[t].f2, "column %d", cases[t].col);
        cr_expect_eq(ct_dataset_sample_numel(ds), 3);
        ct_dataset_free(ds);
    }
    ct_csv_opts o = {.label_column = 5};
    load_csv_fails(tmp, text, &o, CT_ERR_INVALID_ARG);
    expect_msg_has("label column 5", "4 fields");
    o.label_column = -5;
    load_csv_fails(tmp, text, &o, CT_ERR_INVALID_ARG);
    rm_tmpdir(tmp);
}

Test(data_csv, errors_name_line_and_column) {
    char *tmp = make_tmpdir();
    load_csv_fails(tmp, "a,b,y\n1,2,0\n1,2\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 3", "2 fields", "expected 3");
    load_csv_fails(tmp, "a,b,y\n1,2,0\n1,2,3,4\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 3", "4 fields");
    load_csv_fails(tmp, "a,b,y\n1,2,0\n1,abc,1\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 3, column 2", "'abc'", "not a finite number");
    load_csv_fails(tmp, "1,2,0\n1,2.5.1,1\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 2, column 2");
    load_csv_fails(tmp, "1,2,0\n1,nan,1\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 2, column 2", "'nan'");
    load_csv_fails(tmp, "1,2,0\n1,,1\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 2, column 2", "empty field");
    load_csv_fails(tmp, "1,2,0\n1,2,1.5\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 2, column 3", "not an integer");
    load_csv_fails(tmp, "1,2,0\n\n1,2,-1\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 3, column 3", "negative");
    load_csv_fails(tmp, "1,2,zero\n", &(ct_csv_opts){.header = CT_CSV_HEADER_NO}, CT_ERR_FORMAT);
    expect_msg_has("line 1, column 3", "label 'zero'");
    load_csv_fails(tmp, "1,2,3\n", &(ct_csv_opts){.num_classes = 3}, CT_ERR_FORMAT);
    expect_msg_has("line 1, column 3", "not below 3");
    load_csv_fails(tmp, "1,\"2,0\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("line 1", "unterminated quote");
    load_csv_fails(tmp, "", NULL, CT_ERR_FORMAT);
    expect_msg_has("empty");
    load_csv_fails(tmp, "\n  \n\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("empty");
    load_csv_fails(tmp, "a,b,y\n", NULL, CT_ERR_FORMAT);
    expect_msg_has("no data rows");
    load_csv_fails(tmp, "1;2;0\n", NULL, CT_ERR_FORMAT); /* a wrong delimiter: one field */
    expect_msg_has("line 1", "delimiter");
    ct_dataset *ds;
    cr_expect_eq(ct_dataset_load_csv(path_in(tmp, "none.csv"), NULL, &ds), CT_ERR_IO);
    expect_msg_has(path_in(tmp, "none.csv"));
    rm_tmpdir(tmp);
}

Test(data_csv, dialect) {
    char *tmp = make_tmpdir();
    /* A byte order mark, CRLF, quotes (with "" inside), spaces, blank lines,
     * a label written as numpy.savetxt does, and no final newline. */
    ct_dataset *ds = load_csv_ok(tmp,
                                 "\xEF\xBB\xBF\"x, one\",\"say \"\"y\"\"\",label\r\n"
                                 "\r\n"
                                 " 1 , \"2\" ,3.000000000000000000e+00\r\n"
                                 "4,5,0",
                                 NULL);
    cr_assert_eq(ct_dataset_size(ds), 2);
    cr_expect_eq(ct_dataset_features(ds)[1], 2.0f);
    cr_expect_eq(ct_dataset_labels(ds)[0], 3);
    cr_expect_eq(ct_dataset_num_classes(ds), 4);
    ct_dataset_free(ds);
    /* Tabs, and a class count above the labels seen. */
    ct_csv_opts o = {.delimiter = '\t', .num_classes = 10};
    ds = load_csv_ok(tmp, "0.25\t-1\t1\n0.5\t1e-3\t2\n", &o);
    cr_assert_eq(ct_dataset_size(ds), 2);
    cr_expect_eq(ct_dataset_features(ds)[3], 1e-3f);
    cr_expect_eq(ct_dataset_num_classes(ds), 10);
    ct_dataset_free(ds);
#ifdef CTRAIN_HAVE_ZLIB
    /* A gzipped CSV, under a name that does not say so. */
    const char *text = "a,b\n1,0\n2,1\n3,1\n";
    write_gz(path_in(tmp, "g.csv"), text, strlen(text));
    cr_assert_eq(ct_dataset_load_csv(path_in(tmp, "g.csv"), NULL, &ds), CT_OK, "%s", ct_last_error());
    cr_expect_eq(ct_dataset_size(ds), 3);
    cr_expect_eq(ct_dataset_features(ds)[2], 3.0f);
    ct_dataset_free(ds);
#endif
    rm_tmpdir(tmp);
}
