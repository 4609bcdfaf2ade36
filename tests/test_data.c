/* The data module: MNIST from the shared data directory (gzipped and
 * unpacked), IDX and CSV files written here with known content and with
 * every kind of damage, the transforms, and the loader's promises (each
 * sample once per epoch, order a function of (seed, epoch) only, prefetch
 * invisible, clean shutdown mid-epoch). */
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

/* The message of the last error contains every one of the given strings. */
#define expect_msg_has(...)                                                                    \
    do {                                                                                       \
        const char *want_[] = {__VA_ARGS__};                                                   \
        for (size_t w_ = 0; w_ < sizeof want_ / sizeof want_[0]; w_++)                         \
            cr_expect(strstr(ct_last_error(), want_[w_]) != NULL,                              \
                      "error message '%s' lacks '%s'", ct_last_error(), want_[w_]);           \
    } while (0)

/* A dataset whose sample i is {i, i + 0.5, -i} with label i % 7, so every
 * batch can be traced back to the samples it holds. */
static ct_dataset *indexed_dataset(int64_t n) {
    float *x = malloc((size_t)n * 3 * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        x[3 * i] = (float)i;
        x[3 * i + 1] = (float)i + 0.5f;
        x[3 * i + 2] = -(float)i;
        y[i] = (int32_t)(i % 7);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {3}}, x, y, 0, &ds), CT_OK, "%s",
                 ct_last_error());
    free(x);
    free(y);
    return ds;
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

/* ------------------------------------------------------------------ transforms */

/* 3 samples of shape [2, 2] (2 channels of 2): channel 0 holds 1..6,
 * channel 1 is constant 5 in its first feature and 0, 3, 6 in its second. */
static ct_dataset *stats_dataset(void) {
    const float x[] = {1, 2, 5, 0, 3, 4, 5, 3, 5, 6, 5, 6};
    const int32_t y[] = {0, 1, 0};
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(3, (ct_shape){2, {2, 2}}, x, y, 0, &ds), CT_OK, "%s",
                 ct_last_error());
    return ds;
}

Test(data_transform, stats) {
    ct_dataset *ds = stats_dataset();
    float m[4], s[4];
    /* Per feature: columns {1,3,5}, {2,4,6}, {5,5,5}, {0,3,6}. */
    cr_assert_eq(ct_dataset_stats(ds, 4, m, s), CT_OK, "%s", ct_last_error());
    const double sd8 = sqrt(8.0 / 3.0), sd6 = sqrt(6.0);
    cr_expect_float_eq(m[0], 3.0f, 1e-6);
    cr_expect_float_eq(m[1], 4.0f, 1e-6);
    cr_expect_float_eq(m[2], 5.0f, 1e-6);
    cr_expect_float_eq(m[3], 3.0f, 1e-6);
    cr_expect_float_eq(s[0], (float)sd8, 1e-6);
    cr_expect_float_eq(s[1], (float)sd8, 1e-6);
    cr_expect_eq(s[2], 1.0f); /* constant: reported as 1 */
    cr_expect_float_eq(s[3], (float)sd6, 1e-6);
    /* Per channel: {1,2,3,4,5,6} and {5,0,5,3,5,6}. */
    cr_assert_eq(ct_dataset_stats(ds, 2, m, s), CT_OK);
    cr_expect_float_eq(m[0], 3.5f, 1e-6);
    cr_expect_float_eq(s[0], (float)sqrt(17.5 / 6), 1e-6);
    cr_expect_float_eq(m[1], 4.0f, 1e-6);
    cr_expect_float_eq(s[1], 2.0f, 1e-6); /* squared deviations 1+16+1+1+1+4 = 24 over 6 */
    /* One scalar over all twelve values. */
    cr_assert_eq(ct_dataset_stats(ds, 1, m, s), CT_OK);
    cr_expect_float_eq(m[0], 45.0f / 12, 1e-6);
    double ss = 0;
    const float *x = ct_dataset_features(ds);
    for (int i = 0; i < 12; i++) ss += (x[i] - 3.75) * (x[i] - 3.75);
    cr_expect_float_eq(s[0], (float)sqrt(ss / 12), 1e-6);
    /* Groupings that fit nothing. */
    cr_expect_eq(ct_dataset_stats(ds, 3, m, s), CT_ERR_INVALID_ARG);
    expect_msg_has("len 3");
    cr_expect_eq(ct_dataset_stats(ds, 0, m, s), CT_ERR_INVALID_ARG);
    ct_dataset_free(ds);
}

Test(data_transform, normalize) {
    for (int64_t len = 1; len <= 4; len++) {
        if (len == 3) continue;
        ct_dataset *ds = stats_dataset();
        float m[4], s[4];
        cr_assert_eq(ct_dataset_stats(ds, len, m, s), CT_OK);
        cr_assert_eq(ct_dataset_normalize(ds, len, m, s), CT_OK, "%s", ct_last_error());
        float m2[4], s2[4];
        cr_assert_eq(ct_dataset_stats(ds, len, m2, s2), CT_OK);
        for (int64_t g = 0; g < len; g++) {
            cr_expect_float_eq(m2[g], 0.0f, 1e-6, "len %lld group %lld", (long long)len, (long long)g);
            cr_expect_float_eq(s2[g], 1.0f, 1e-6, "len %lld group %lld", (long long)len, (long long)g);
        }
        ct_dataset_free(ds);
    }
    /* Exact arithmetic, (x - mean) / std, and std 0 taken as 1. */
    ct_dataset *ds = stats_dataset();
    const float m[2] = {1, 5}, s[2] = {2, 0};
    cr_assert_eq(ct_dataset_normalize(ds, 2, m, s), CT_OK);
    const float *x = ct_dataset_features(ds);
    cr_expect_eq(x[0], 0.0f);
    cr_expect_eq(x[1], 0.5f);
    cr_expect_eq(x[2], 0.0f);
    cr_expect_eq(x[3], -5.0f);
    ct_dataset_free(ds);
    /* A bad argument changes nothing. */
    ds = stats_dataset();
    const float bad_s[2] = {1, -1};
    cr_expect_eq(ct_dataset_normalize(ds, 2, m, bad_s), CT_ERR_INVALID_ARG);
    expect_msg_has("std[1]");
    const float nan_m[2] = {NAN, 0};
    cr_expect_eq(ct_dataset_normalize(ds, 2, nan_m, s), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_normalize(ds, 3, m, s), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_features(ds)[0], 1.0f);
    cr_expect_eq(ct_dataset_features(ds)[11], 6.0f);
    ct_dataset_free(ds);
}

Test(data_transform, from_arrays_take_subset) {
    ct_dataset *ds = indexed_dataset(20);
    cr_expect_eq(ct_dataset_num_classes(ds), 7);
    ct_dataset *t;
    cr_assert_eq(ct_dataset_take(ds, 5, &t), CT_OK);
    cr_expect_eq(ct_dataset_size(t), 5);
    cr_expect_eq(ct_dataset_num_classes(t), 7); /* the parent's, though labels stop at 4 */
    cr_expect_eq(ct_dataset_features(t)[3 * 4], 4.0f);
    ct_dataset_free(t);
    cr_assert_eq(ct_dataset_take(ds, 1000, &t), CT_OK);
    cr_expect_eq(ct_dataset_size(t), 20);
    ct_dataset_free(t);
    cr_expect_eq(ct_dataset_take(ds, 0, &t), CT_ERR_INVALID_ARG);
    const int64_t idx[] = {19, 0, 19};
    cr_assert_eq(ct_dataset_subset(ds, idx, 3, &t), CT_OK);
    cr_expect_eq(ct_dataset_features(t)[0], 19.0f);
    cr_expect_eq(ct_dataset_features(t)[3], 0.0f);
    cr_expect_eq(ct_dataset_labels(t)[2], 19 % 7);
    ct_dataset_free(t);
    const int64_t bad[] = {3, 20};
    cr_expect_eq(ct_dataset_subset(ds, bad, 2, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_set_num_classes(ds, 6), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_set_num_classes(ds, 12), CT_OK);
    cr_expect_eq(ct_dataset_num_classes(ds), 12);
    ct_dataset_free(ds);
    /* Labels checked against a given class count. */
    const float x[2] = {0, 0};
    const int32_t y[2] = {0, 3};
    cr_expect_eq(ct_dataset_from_arrays(2, (ct_shape){1, {1}}, x, y, 3, &t), CT_ERR_INVALID_ARG);
    const int32_t yn[2] = {0, -1};
    cr_expect_eq(ct_dataset_from_arrays(2, (ct_shape){1, {1}}, x, yn, 0, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_from_arrays(0, (ct_shape){1, {1}}, x, y, 0, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_from_arrays(2, (ct_shape){1, {0}}, x, y, 0, &t), CT_ERR_INVALID_ARG);
}

Test(data_transform, split) {
    ct_dataset *ds = indexed_dataset(100);
    ct_dataset *tr, *va;
    cr_assert_eq(ct_dataset_split(ds, 0.2, 11, &tr, &va), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_size(tr), 80);
    cr_assert_eq(ct_dataset_size(va), 20);
    cr_expect_eq(ct_dataset_num_classes(va), 7);
    /* Disjoint, together everything, each part in the original order, rows intact. */
    int seen[100] = {0};
    for (int part = 0; part < 2; part++) {
        const ct_dataset *d = part ? va : tr;
        const float *x = ct_dataset_features(d);
        for (int64_t i = 0; i < ct_dataset_size(d); i++) {
            int id = (int)x[3 * i];
            cr_assert(id >= 0 && id < 100);
            seen[id]++;
            cr_expect_eq(x[3 * i + 1], id + 0.5f);
            cr_expect_eq(ct_dataset_labels(d)[i], id % 7);
            if (i > 0) cr_expect_gt(id, (int)x[3 * (i - 1)]);
        }
    }
    for (int i = 0; i < 100; i++) cr_expect_eq(seen[i], 1, "sample %d", i);
    /* The original is untouched. */
    for (int i = 0; i < 100; i++) cr_expect_eq(ct_dataset_features(ds)[3 * i], (float)i);
    /* Same seed, same split; another seed, another split. */
    ct_dataset *tr2, *va2, *tr3, *va3;
    cr_assert_eq(ct_dataset_split(ds, 0.2, 11, &tr2, &va2), CT_OK);
    cr_expect_eq(memcmp(ct_dataset_features(va), ct_dataset_features(va2), 20 * 3 * sizeof(float)), 0);
    cr_assert_eq(ct_dataset_split(ds, 0.2, 12, &tr3, &va3), CT_OK);
    cr_expect_neq(memcmp(ct_dataset_features(va), ct_dataset_features(va3), 20 * 3 * sizeof(float)), 0);
    ct_dataset_free(tr2);
    ct_dataset_free(va2);
    ct_dataset_free(tr3);
    ct_dataset_free(va3);
    /* Rounding, and fractions that leave a part empty. */
    ct_dataset_free(tr);
    ct_dataset_free(va);
    cr_assert_eq(ct_dataset_split(ds, 0.333, 1, &tr, &va), CT_OK);
    cr_expect_eq(ct_dataset_size(va), 33);
    ct_dataset_free(tr);
    ct_dataset_free(va);
    cr_expect_eq(ct_dataset_split(ds, 0.0, 1, &tr, &va), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_split(ds, 1.0, 1, &tr, &va), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_split(ds, 0.001, 1, &tr, &va), CT_ERR_INVALID_ARG);
    expect_msg_has("validation set");
    cr_expect_eq(ct_dataset_split(ds, 0.999, 1, &tr, &va), CT_ERR_INVALID_ARG);
    cr_expect_null(tr);
    cr_expect_null(va);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------------ loader */

/* One epoch's samples, in order, as dataset indices; checks each batch's
 * rows against the dataset. Returns the number of samples (<= cap). */
static int64_t run_epoch_from(ct_loader *ld, const ct_dataset *ds, int64_t first, int64_t *order,
                              int64_t cap, int64_t *counts, int64_t *nbatches) {
    ct_batch b;
    int64_t n = 0, k = first;
    for (;;) {
        cr_assert_eq(ct_loader_next(ld, &b), CT_OK, "%s", ct_last_error());
        if (b.count == 0) break;
        cr_assert_eq(b.index, k);
        if (counts) counts[k] = b.count;
        for (int64_t i = 0; i < b.count; i++) {
            int64_t id = b.indices[i];
            cr_assert(id >= 0 && id < ct_dataset_size(ds));
            cr_assert_eq(b.x[3 * i], (float)id);
            cr_assert_eq(b.x[3 * i + 2], -(float)id);
            cr_assert_eq(b.y[i], ct_dataset_labels(ds)[id]);
            cr_assert_lt(n, cap);
            order[n++] = id;
        }
        k++;
    }
    if (nbatches) *nbatches = k - first;
    /* The end stays the end until the next epoch starts. */
    cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
    cr_assert_eq(b.count, 0);
    cr_assert_null(b.x);
    return n;
}

static int64_t run_epoch(ct_loader *ld, const ct_dataset *ds, int64_t *order, int64_t cap,
                         int64_t *counts, int64_t *nbatches) {
    return run_epoch_from(ld, ds, 0, order, cap, counts, nbatches);
}

Test(data_loader, each_sample_once_per_epoch) {
    ct_dataset *ds = indexed_dataset(103);
    for (int pf = 0; pf < 2; pf++) {
        ct_loader_opts o = {.batch_size = 10, .shuffle = true, .seed = 5, .prefetch = pf};
        ct_loader *ld = ct_loader_new(ds, &o);
        cr_assert_not_null(ld, "%s", ct_last_error());
        cr_assert_eq(ct_loader_num_batches(ld), 11);
        int64_t order[103], counts[16], nb;
        for (uint32_t e = 0; e < 3; e++) {
            cr_assert_eq(ct_loader_start_epoch(ld, e), CT_OK);
            cr_assert_eq(ct_loader_epoch(ld), e);
            cr_assert_eq(run_epoch(ld, ds, order, 103, counts, &nb), 103);
            cr_assert_eq(nb, 11);
            cr_expect_eq(counts[10], 3); /* the short last batch */
            int hits[103] = {0};
            for (int i = 0; i < 103; i++) hits[order[i]]++;
            for (int i = 0; i < 103; i++) cr_assert_eq(hits[i], 1, "epoch %u sample %d", e, i);
            bool identity = true;
            for (int i = 0; i < 103; i++) identity = identity && order[i] == i;
            cr_expect(!identity, "shuffled epoch %u came out in order", e);
        }
        ct_loader_free(ld);
    }
    ct_dataset_free(ds);
}

Test(data_loader, order_depends_on_seed_and_epoch_only) {
    ct_dataset *ds = indexed_dataset(64);
    ct_loader_opts o = {.batch_size = 8, .shuffle = true, .seed = 99};
    ct_loader *a = ct_loader_new(ds, &o), *b = ct_loader_new(ds, &o);
    cr_assert(a && b);
    int64_t ea[4][64], eb[64];
    for (uint32_t e = 0; e < 4; e++) {
        cr_assert_eq(ct_loader_start_epoch(a, e), CT_OK);
        run_epoch(a, ds, ea[e], 64, NULL, NULL);
    }
    /* A second loader jumping straight to epoch 3, then back to 1: the
     * epochs run before do not matter. */
    cr_assert_eq(ct_loader_start_epoch(b, 3), CT_OK);
    run_epoch(b, ds, eb, 64, NULL, NULL);
    cr_expect_eq(memcmp(eb, ea[3], sizeof eb), 0);
    cr_assert_eq(ct_loader_start_epoch(b, 1), CT_OK);
    run_epoch(b, ds, eb, 64, NULL, NULL);
    cr_expect_eq(memcmp(eb, ea[1], sizeof eb), 0);
    /* A new loader needs no start_epoch for epoch 0. */
    ct_loader *c = ct_loader_new(ds, &o);
    run_epoch(c, ds, eb, 64, NULL, NULL);
    cr_expect_eq(memcmp(eb, ea[0], sizeof eb), 0);
    /* Epochs differ from each other, and another seed differs. */
    for (int e = 1; e < 4; e++) cr_expect_neq(memcmp(ea[e], ea[e - 1], sizeof eb), 0);
    o.seed = 100;
    ct_loader *d = ct_loader_new(ds, &o);
    run_epoch(d, ds, eb, 64, NULL, NULL);
    cr_expect_neq(memcmp(eb, ea[0], sizeof eb), 0);
    ct_loader_free(a);
    ct_loader_free(b);
    ct_loader_free(c);
    ct_loader_free(d);
    ct_dataset_free(ds);
}

Test(data_loader, resume_mid_epoch) {
    ct_dataset *ds = indexed_dataset(50);
    for (int pf = 0; pf < 2; pf++) {
        ct_loader_opts o = {.batch_size = 7, .shuffle = true, .seed = 3, .prefetch = pf};
        ct_loader *ld = ct_loader_new(ds, &o);
        int64_t full[50], part[50];
        cr_assert_eq(ct_loader_start_epoch(ld, 2), CT_OK);
        run_epoch(ld, ds, full, 50, NULL, NULL);
        cr_assert_eq(ct_loader_start_epoch_at(ld, 2, 3), CT_OK);
        cr_assert_eq(run_epoch_from(ld, ds, 3, part, 50, NULL, NULL), 50 - 21);
        cr_expect_eq(memcmp(part, full + 21, 29 * sizeof(int64_t)), 0);
        cr_assert_eq(ct_loader_start_epoch_at(ld, 2, 8), CT_OK); /* = num_batches: at the end */
        cr_assert_eq(run_epoch_from(ld, ds, 8, part, 50, NULL, NULL), 0);
        cr_expect_eq(ct_loader_start_epoch_at(ld, 2, 9), CT_ERR_INVALID_ARG);
        ct_loader_free(ld);
    }
    ct_dataset_free(ds);
}

Test(data_loader, drop_last_and_batch_sizes) {
    ct_dataset *ds = indexed_dataset(103);
    struct {
        int64_t bs;
        bool drop;
        int64_t nb, last;
    } cases[] = {
        {10, false, 11, 3}, {10, true, 10, 10}, {103, false, 1, 103}, {103, true, 1, 103},
        {1, false, 103, 1}, {50, true, 2, 50},  {102, false, 2, 1},   {102, true, 1, 102},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        for (int sh = 0; sh < 2; sh++) {
            ct_loader_opts o = {.batch_size = cases[t].bs, .drop_last = cases[t].drop, .shuffle = sh,
                                .prefetch = sh, .seed = 1};
            ct_loader *ld = ct_loader_new(ds, &o);
            cr_assert_not_null(ld, "%s", ct_last_error());
            cr_expect_eq(ct_loader_num_batches(ld), cases[t].nb, "case %zu", t);
            int64_t order[103], counts[103], nb;
            int64_t n = run_epoch(ld, ds, order, 103, counts, &nb);
            cr_expect_eq(nb, cases[t].nb, "case %zu", t);
            cr_expect_eq(counts[nb - 1], cases[t].last, "case %zu", t);
            cr_expect_eq(n, cases[t].drop ? cases[t].nb * cases[t].bs : 103, "case %zu", t);
            if (!sh)
                for (int64_t i = 0; i < n; i++) cr_expect_eq(order[i], i); /* in order */
            ct_loader_free(ld);
        }
    }
    /* Without shuffle the whole set is one batch straight out of the dataset. */
    ct_loader_opts full = {.batch_size = 103};
    ct_loader *ld = ct_loader_new(ds, &full);
    ct_batch b;
    cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
    cr_expect_eq(b.count, 103);
    cr_expect_eq(b.x, ct_dataset_features(ds));
    ct_loader_free(ld);
    /* Sizes that do not fit. */
    ct_loader_opts bad = {.batch_size = 0};
    cr_expect_null(ct_loader_new(ds, &bad));
    expect_msg_has("batch_size 0");
    bad.batch_size = 104;
    cr_expect_null(ct_loader_new(ds, &bad));
    expect_msg_has("batch_size 104");
    bad.batch_size = -1;
    cr_expect_null(ct_loader_new(ds, &bad));
    cr_expect_null(ct_loader_new(ds, NULL));
    cr_expect_null(ct_loader_new(NULL, &full));
    ct_dataset_free(ds);
}

Test(data_loader, prefetch_gives_identical_batches) {
    ct_dataset *ds = indexed_dataset(1000);
    const int64_t sizes[] = {1, 32, 333, 1000};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        for (int drop = 0; drop < 2; drop++) {
            ct_loader_opts o = {.batch_size = sizes[t], .shuffle = true, .drop_last = drop, .seed = 42};
            ct_loader *plain = ct_loader_new(ds, &o);
            o.prefetch = true;
            ct_loader *pre = ct_loader_new(ds, &o);
            cr_assert(plain && pre);
            for (uint32_t e = 0; e < 3; e++) {
                ct_loader_start_epoch(plain, e);
                ct_loader_start_epoch(pre, e);
                ct_batch a, b;
                for (;;) {
                    cr_assert_eq(ct_loader_next(plain, &a), CT_OK);
                    cr_assert_eq(ct_loader_next(pre, &b), CT_OK);
                    cr_assert_eq(a.count, b.count);
                    cr_assert_eq(a.index, b.index);
                    if (!a.count) break;
                    cr_assert_eq(memcmp(a.x, b.x, (size_t)a.count * 3 * sizeof(float)), 0);
                    cr_assert_eq(memcmp(a.y, b.y, (size_t)a.count * sizeof(int32_t)), 0);
                    cr_assert_eq(memcmp(a.indices, b.indices, (size_t)a.count * sizeof(int64_t)), 0);
                }
            }
            ct_loader_free(plain);
            ct_loader_free(pre);
        }
    }
    ct_dataset_free(ds);
}

/* Freed at every point of an epoch, and right after creation, with the
 * thread possibly mid-batch; the sanitizer build checks for leaks and races
 * on memory. Also restarting an epoch while the thread works ahead. */
Test(data_loader, free_mid_epoch_with_prefetch) {
    ct_dataset *ds = indexed_dataset(2000);
    for (int stop = 0; stop < 12; stop++) {
        ct_loader_opts o = {.batch_size = 200, .shuffle = true, .prefetch = true, .seed = (uint64_t)stop};
        ct_loader *ld = ct_loader_new(ds, &o);
        cr_assert_not_null(ld, "%s", ct_last_error());
        ct_batch b;
        for (int k = 0; k < stop; k++) {
            cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
            if (k == 5) cr_assert_eq(ct_loader_start_epoch(ld, 1), CT_OK);
        }
        ct_loader_free(ld);
    }
    ct_dataset_free(ds);
}

Test(data_loader, shards_cover_the_global_batch) {
    ct_dataset *ds = indexed_dataset(103);
    const int S = 3;
    /* Global batches of 12: 8 full ones and 7 left, split 3, 2, 2. */
    ct_loader_opts g = {.batch_size = 12, .shuffle = true, .seed = 8};
    ct_loader *whole = ct_loader_new(ds, &g);
    ct_loader *rank[3];
    for (int r = 0; r < S; r++) {
        ct_loader_opts o = {.batch_size = 4, .shuffle = true, .seed = 8, .num_shards = S,
                            .shard_index = r, .prefetch = r == 1};
        rank[r] = ct_loader_new(ds, &o);
        cr_assert_not_null(rank[r], "%s", ct_last_error());
        cr_expect_eq(ct_loader_num_batches(rank[r]), 9);
    }
    for (uint32_t e = 0; e < 2; e++) {
        ct_loader_start_epoch(whole, e);
        for (int r = 0; r < S; r++) ct_loader_start_epoch(rank[r], e);
        ct_batch wb, rb;
        for (;;) {
            cr_assert_eq(ct_loader_next(whole, &wb), CT_OK);
            int64_t at = 0;
            for (int r = 0; r < S; r++) {
                cr_assert_eq(ct_loader_next(rank[r], &rb), CT_OK);
                cr_assert_eq(rb.global_count, wb.count);
                if (!wb.count) {
                    cr_assert_eq(rb.count, 0);
                    continue;
                }
                cr_assert_gt(rb.count, 0);
                if (wb.count == 7) cr_expect_eq(rb.count, r == 0 ? 3 : 2);
                else cr_expect_eq(rb.count, 4);
                cr_assert_eq(memcmp(rb.indices, wb.indices + at, (size_t)rb.count * sizeof(int64_t)), 0);
                cr_assert_eq(memcmp(rb.x, wb.x + at * 3, (size_t)rb.count * 3 * sizeof(float)), 0);
                at += rb.count;
            }
            if (!wb.count) break;
            cr_assert_eq(at, wb.count);
        }
    }
    for (int r = 0; r < S; r++) ct_loader_free(rank[r]);
    ct_loader_free(whole);
    /* A last global batch with fewer samples than shards is dropped: 103 =
     * 10 x 10 + 3 across 5 shards of 2. */
    ct_loader_opts o = {.batch_size = 2, .num_shards = 5, .shard_index = 4};
    ct_loader *ld = ct_loader_new(ds, &o);
    cr_assert_not_null(ld);
    cr_expect_eq(ct_loader_num_batches(ld), 10);
    ct_loader_free(ld);
    o.batch_size = 21; /* 105 > 103 */
    cr_expect_null(ct_loader_new(ds, &o));
    o.batch_size = 2;
    o.shard_index = 5;
    cr_expect_null(ct_loader_new(ds, &o));
    expect_msg_has("shard_index 5");
    ct_dataset_free(ds);
}
