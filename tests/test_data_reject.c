/* Hostile inputs the readers must refuse instead of turning into a wrong
 * dataset: labels outside the declared classes, numbers that overflow a
 * float, rows that only look like headers, hexadecimal and NUL bytes,
 * bytes after a gzip stream, IDX sizes whose product wraps. Each error must
 * name the file and the place in it. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef CTRAIN_HAVE_ZLIB
#include <zlib.h>
#endif

#include "ctrain/data.h"
#include "ctrain/status.h"
#include "expect_msg.h"
#include "tmpfiles.h"

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* dir/train-{images,labels}-idx3/1-ubyte: n 2x2 images, labels as given. */
static void write_mnist(const char *dir, int n, const unsigned char *labels) {
    unsigned char img[16 + 64] = {0}, lab[8 + 16];
    put_be32(img, 0x803);
    put_be32(img + 4, (uint32_t)n);
    put_be32(img + 8, 2);
    put_be32(img + 12, 2);
    put_be32(lab, 0x801);
    put_be32(lab + 4, (uint32_t)n);
    memcpy(lab + 8, labels, (size_t)n);
    write_bytes(path_in(dir, "train-images-idx3-ubyte"), img, 16 + 4 * (size_t)n);
    write_bytes(path_in(dir, "train-labels-idx1-ubyte"), lab, 8 + (size_t)n);
}

Test(data_reject, mnist_has_ten_classes) {
    char *tmp = make_tmpdir();
    const unsigned char ok[4] = {0, 1, 2, 3};
    write_mnist(tmp, 4, ok);
    ct_dataset *ds = NULL;
    cr_assert_eq(ct_dataset_load_mnist(tmp, true, &ds), CT_OK, "%s", ct_last_error());
    /* The range MNIST declares, not the largest label seen + 1. */
    cr_expect_eq(ct_dataset_num_classes(ds), 10);
    ct_dataset_free(ds);
    rm_tmpdir(tmp);
}

Test(data_reject, mnist_label_outside_classes) {
    char *tmp = make_tmpdir();
    const unsigned char bad[4] = {0, 1, 255, 3};
    write_mnist(tmp, 4, bad);
    ct_dataset *ds = (ct_dataset *)1;
    cr_assert_eq(ct_dataset_load_mnist(tmp, true, &ds), CT_ERR_FORMAT);
    cr_expect_null(ds);
    expect_msg_has("train-labels-idx1-ubyte", "record 2", "label 255", "0 to 9");
    const unsigned char twelve[4] = {0, 1, 2, 12};
    write_mnist(tmp, 4, twelve);
    cr_assert_eq(ct_dataset_load_mnist(tmp, true, &ds), CT_ERR_FORMAT);
    expect_msg_has("record 3", "label 12");
    rm_tmpdir(tmp);
}

Test(data_reject, generic_idx_still_counts_classes) {
    char *tmp = make_tmpdir();
    const unsigned char labels[4] = {0, 1, 2, 12};
    write_mnist(tmp, 4, labels);
    ct_dataset *ds = NULL;
    cr_assert_eq(ct_dataset_load_idx(path_in(tmp, "train-images-idx3-ubyte"), path_in(tmp, "train-labels-idx1-ubyte"),
                                     &ds),
                 CT_OK, "%s", ct_last_error());
    cr_expect_eq(ct_dataset_num_classes(ds), 13);
    ct_dataset_free(ds);
    rm_tmpdir(tmp);
}

Test(data_reject, idx_dimensions_that_wrap) {
    char *tmp = make_tmpdir();
    /* 2^32-1 images of 2^32-1 x 2^32-1: the product wraps 64 bits. */
    unsigned char img[16 + 8] = {0};
    put_be32(img, 0x803);
    put_be32(img + 4, 0xffffffffu);
    put_be32(img + 8, 0xffffffffu);
    put_be32(img + 12, 0xffffffffu);
    const char *p = path_in(tmp, "images");
    write_bytes(p, img, sizeof img);
    unsigned char lab[9] = {0, 0, 8, 1, 0, 0, 0, 1, 0};
    write_bytes(path_in(tmp, "labels"), lab, sizeof lab);
    ct_dataset *ds = (ct_dataset *)1;
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    cr_expect_null(ds);
    expect_msg_has(p, "dimension 2", "4294967295");
    /* 2^16 x 2^17 x 2^31 is exactly 2^64: wraps to 0 without the check. */
    put_be32(img + 4, 0x10000u);
    put_be32(img + 8, 0x20000u);
    put_be32(img + 12, 0x80000000u);
    write_bytes(p, img, sizeof img);
    cr_assert_eq(ct_dataset_load_idx(p, path_in(tmp, "labels"), &ds), CT_ERR_FORMAT);
    expect_msg_has(p, "dimension 2");
    rm_tmpdir(tmp);
}

/* ------------------------------------------------------------------ CSV */

static ct_status load_csv(const char *dir, const void *text, size_t len, const ct_csv_opts *o,
                          ct_dataset **ds) {
    const char *p = path_in(dir, "t.csv");
    write_bytes(p, text, len);
    *ds = (ct_dataset *)1;
    return ct_dataset_load_csv(p, o, ds);
}

static void csv_fails(const char *dir, const char *text, const ct_csv_opts *o) {
    ct_dataset *ds;
    cr_assert_eq(load_csv(dir, text, strlen(text), o, &ds), CT_ERR_FORMAT, "'%s' was accepted", text);
    cr_expect_null(ds);
    expect_msg_has("t.csv");
}

Test(data_reject, csv_float_overflow) {
    char *tmp = make_tmpdir();
    csv_fails(tmp, "1,2,0\n1,1e39,1\n", NULL);
    expect_msg_has("line 2, column 2", "'1e39'", "float range");
    csv_fails(tmp, "1,2,0\n-1234567890123456789012345678901234567890,2,1\n", NULL);
    expect_msg_has("line 2, column 1", "float range");
    /* The largest float is still a float. */
    ct_dataset *ds;
    cr_assert_eq(load_csv(tmp, "3.4e38,2,0\n", 11, NULL, &ds), CT_OK, "%s", ct_last_error());
    ct_dataset_free(ds);
    rm_tmpdir(tmp);
}

Test(data_reject, csv_first_row_is_not_a_header) {
    char *tmp = make_tmpdir();
    /* Each of these once made the first row a "header" and vanished. */
    csv_fails(tmp, "1,nan,0\n1,2,1\n", NULL);
    expect_msg_has("line 1, column 2", "'nan'");
    csv_fails(tmp, "1,inf,0\n1,2,1\n", NULL);
    expect_msg_has("line 1, column 2", "'inf'");
    csv_fails(tmp, "1,,0\n1,2,1\n", NULL);
    expect_msg_has("line 1, column 2", "empty field");
    csv_fails(tmp, "1,2.5.1,0\n1,2,1\n", NULL);
    expect_msg_has("line 1, column 2", "'2.5.1'");
    csv_fails(tmp, "0x2,1,0\n1,2,1\n", NULL);
    expect_msg_has("line 1, column 1", "hexadecimal");
    /* A real header still is one, empty first name (pandas' index) too. */
    ct_dataset *ds;
    const char *h = ",a,label\n1,2,0\n";
    cr_assert_eq(load_csv(tmp, h, strlen(h), NULL, &ds), CT_OK, "%s", ct_last_error());
    cr_expect_eq(ct_dataset_size(ds), 1);
    ct_dataset_free(ds);
    rm_tmpdir(tmp);
}

Test(data_reject, csv_hex_and_nul) {
    char *tmp = make_tmpdir();
    csv_fails(tmp, "a,b,y\n1,0x2,0\n", NULL);
    expect_msg_has("line 2, column 2", "'0x2'", "hexadecimal");
    csv_fails(tmp, "a,b,y\n1,2,0X1\n", NULL);
    expect_msg_has("line 2, column 3", "hexadecimal");
    ct_dataset *ds;
    const char nul[] = "a,b,y\n1,2\0,0\n";
    cr_assert_eq(load_csv(tmp, nul, sizeof nul - 1, NULL, &ds), CT_ERR_FORMAT, "accepted a NUL byte");
    expect_msg_has("t.csv", "line 2, column 2", "NUL");
    const char qnul[] = "a,b,y\n1,\"2\0\",0\n";
    cr_assert_eq(load_csv(tmp, qnul, sizeof qnul - 1, NULL, &ds), CT_ERR_FORMAT, "accepted a quoted NUL byte");
    expect_msg_has("line 2, column 2", "NUL");
    rm_tmpdir(tmp);
}

Test(data_reject, csv_labels) {
    char *tmp = make_tmpdir();
    csv_fails(tmp, "1,2,0\n1,2,2e9\n", NULL);
    expect_msg_has("line 2, column 3", "row 2", "2e9", "too large");
    csv_fails(tmp, "1,2,0\n1,2,4\n", &(ct_csv_opts){.num_classes = 4});
    expect_msg_has("line 2, column 3", "row 2", "label 4", "not below 4");
    rm_tmpdir(tmp);
}

/* ------------------------------------------------------------------ gzip */

#ifdef CTRAIN_HAVE_ZLIB
/* text gzipped in memory, then `extra` appended. */
static void write_gz_plus(const char *path, const char *text, const void *extra, size_t extra_len) {
    unsigned char out[4096];
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)(uintptr_t)text;
    z.avail_in = (unsigned)strlen(text);
    z.next_out = out;
    z.avail_out = sizeof out;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = sizeof out - z.avail_out;
    deflateEnd(&z);
    cr_assert(n + extra_len <= sizeof out);
    memcpy(out + n, extra, extra_len);
    write_bytes(path, out, n + extra_len);
}
#endif

Test(data_reject, gzip_trailing_garbage) {
#ifndef CTRAIN_HAVE_ZLIB
    cr_skip_test("built without zlib");
#else
    char *tmp = make_tmpdir();
    const char *p = path_in(tmp, "t.csv.gz");
    ct_dataset *ds = (ct_dataset *)1;
    write_gz_plus(p, "1,2,0\n3,4,1\n", "junk", 4);
    cr_assert_eq(ct_dataset_load_csv(p, NULL, &ds), CT_ERR_FORMAT);
    cr_expect_null(ds);
    expect_msg_has(p, "4 bytes of trailing garbage");
    /* Two members, as `cat a.gz b.gz` makes: both are read. */
    write_gz_plus(path_in(tmp, "second.gz"), "5,6,1\n", "", 0);
    size_t len2 = 0;
    unsigned char second[256];
    FILE *f = fopen(path_in(tmp, "second.gz"), "rb");
    cr_assert_not_null(f);
    len2 = fread(second, 1, sizeof second, f);
    fclose(f);
    write_gz_plus(p, "1,2,0\n3,4,1\n", second, len2);
    cr_assert_eq(ct_dataset_load_csv(p, NULL, &ds), CT_OK, "%s", ct_last_error());
    cr_expect_eq(ct_dataset_size(ds), 3);
    ct_dataset_free(ds);
    rm_tmpdir(tmp);
#endif
}
