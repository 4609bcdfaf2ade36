/* safetensors: round trips, files made by the reference implementation,
 * malformed files, atomic saves, and a program's weights by name. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctrain/ctrain.h"
#include "ctrain/safetensors.h"

/* ------------------------------------------------------------ helpers */

/* A fresh directory per test; Criterion runs each test in its own process,
 * and everything is removed at the end so reruns start clean. */
static char g_dir[64];

static void make_dir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/ct_st_test_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void cleanup_dir(void) { remove_tree(g_dir); }

TestSuite(safetensors, .init = make_dir, .fini = cleanup_dir);
TestSuite(st_malformed, .init = make_dir, .fini = cleanup_dir);
TestSuite(st_save, .init = make_dir, .fini = cleanup_dir);
TestSuite(weights, .init = make_dir, .fini = cleanup_dir);

static const char *in_dir(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, fp), n);
    cr_assert_eq(fclose(fp), 0);
}

/* The whole file, or NULL if it does not exist. Caller frees. */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

/* Entries of a directory other than . and .. */
static int dir_entries(const char *path) {
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A file made of a header (padding included, as given) and data. */
static void write_st(const char *path, const char *header, const void *data, size_t ndata) {
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (ndata) memcpy(buf + 8 + hl, data, ndata);
    write_bytes(path, buf, 8 + hl + ndata);
    free(buf);
}

/* ------------------------------------------------------------ round trip */

Test(safetensors, round_trip_dtypes_shapes_metadata) {
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    double f64[4] = {0.1, -0.2, 1e300, -1e-300};
    uint16_t f16[3] = {ct_f32_to_f16(1), ct_f32_to_f16(-0.5f), ct_f32_to_f16(65504)};
    uint16_t bf16[4] = {ct_f32_to_bf16(1), ct_f32_to_bf16(2), ct_f32_to_bf16(-3), ct_f32_to_bf16(1e30f)};
    int32_t i32[5] = {0, -1, 2147483647, -2147483647 - 1, 42};
    uint8_t u8[7] = {0, 1, 2, 127, 128, 254, 255};
    float scalar = 3.25f;

    ct_st_writer *w = ct_st_writer_new();
    cr_assert_not_null(w);
    cr_assert_eq(ct_st_writer_add(w, "layer.f32", CT_F32, (ct_shape){2, {2, 3}}, f32), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_st_writer_add(w, "f64", CT_F64, (ct_shape){1, {4}}, f64), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "half", CT_F16, (ct_shape){1, {3}}, f16), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "brain", CT_BF16, (ct_shape){3, {2, 1, 2}}, bf16), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "ints", CT_I32, (ct_shape){1, {5}}, i32), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "bytes", CT_U8, (ct_shape){2, {7, 1}}, u8), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "scalar", CT_F32, (ct_shape){0, {0}}, &scalar), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "empty", CT_F32, (ct_shape){2, {0, 3}}, NULL), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "ünïcode \"quoted\"\n", CT_U8, (ct_shape){1, {1}}, u8), CT_OK);
    cr_assert_eq(ct_st_writer_meta(w, "format", "ctrain"), CT_OK);
    cr_assert_eq(ct_st_writer_meta(w, "note", "first"), CT_OK);
    cr_assert_eq(ct_st_writer_meta(w, "note", "a \"quoted\"\tvalue"), CT_OK); /* replaces */
    /* The writer copies: changing the caller's buffer afterwards is harmless. */
    f32[0] = 99;
    const char *path = in_dir("rt.safetensors");
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK, "%s", ct_last_error());
    ct_st_writer_free(w);
    f32[0] = 1;

    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    cr_expect_eq(ct_st_count(f), 9);
    cr_expect_str_eq(ct_st_meta(f, "format"), "ctrain");
    cr_expect_str_eq(ct_st_meta(f, "note"), "a \"quoted\"\tvalue");
    cr_expect_null(ct_st_meta(f, "nope"));
    cr_expect_eq(ct_st_meta_count(f), 2);

    struct {
        const char *name;
        ct_dtype dt;
        ct_shape shape;
        const void *data;
        size_t bytes;
    } want[] = {
        {"layer.f32", CT_F32, {2, {2, 3}}, f32, sizeof f32},
        {"f64", CT_F64, {1, {4}}, f64, sizeof f64},
        {"half", CT_F16, {1, {3}}, f16, sizeof f16},
        {"brain", CT_BF16, {3, {2, 1, 2}}, bf16, sizeof bf16},
        {"ints", CT_I32, {1, {5}}, i32, sizeof i32},
        {"bytes", CT_U8, {2, {7, 1}}, u8, sizeof u8},
        {"scalar", CT_F32, {0, {0}}, &scalar, sizeof scalar},
        {"empty", CT_F32, {2, {0, 3}}, NULL, 0},
        {"ünïcode \"quoted\"\n", CT_U8, {1, {1}}, u8, 1},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        int i = ct_st_find(f, want[k].name);
        cr_assert_geq(i, 0, "%s not found", want[k].name);
        cr_expect_str_eq(ct_st_name(f, i), want[k].name);
        ct_dtype dt;
        ct_shape sh;
        cr_assert_eq(ct_st_info(f, i, &dt, &sh), CT_OK);
        cr_expect_eq(dt, want[k].dt, "%s", want[k].name);
        cr_expect(ct_shape_equal(sh, want[k].shape), "%s", want[k].name);
        cr_expect_eq(ct_st_nbytes(f, i), want[k].bytes, "%s", want[k].name);
        const void *d = ct_st_data(f, i);
        cr_assert_not_null(d);
        if (want[k].bytes) cr_expect_eq(memcmp(d, want[k].data, want[k].bytes), 0, "%s", want[k].name);
        /* Laid out widest first, every tensor is aligned to its element. */
        cr_expect_eq((uintptr_t)d % ct_dtype_size(dt), 0, "%s misaligned", want[k].name);
        /* ct_st_read in the same dtype is a plain copy. */
        unsigned char buf[64];
        cr_expect_eq(ct_st_read(f, i, dt, buf, want[k].bytes), CT_OK, "%s", ct_last_error());
        if (want[k].bytes) cr_expect_eq(memcmp(buf, want[k].data, want[k].bytes), 0);
    }
    cr_expect_eq(ct_st_find(f, "missing"), -1);
    cr_expect_eq(ct_st_find(f, NULL), -1);
    cr_expect_null(ct_st_name(f, 9));
    cr_expect_null(ct_st_data(f, -1));
    cr_expect_eq(ct_st_info(f, 99, NULL, NULL), CT_ERR_INVALID_ARG);
    ct_st_close(f);
}

Test(safetensors, conversions) {
    float f32[3] = {1.5f, -2.25f, 1024};
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_add(w, "x", CT_F32, (ct_shape){1, {3}}, f32), CT_OK);
    int32_t i32[3] = {-5, 0, 300};
    cr_assert_eq(ct_st_writer_add(w, "i", CT_I32, (ct_shape){1, {3}}, i32), CT_OK);
    cr_assert_eq(ct_st_writer_save(w, in_dir("c.safetensors")), CT_OK);
    ct_st_writer_free(w);
    ct_st_file *f = ct_st_open(in_dir("c.safetensors"));
    cr_assert_not_null(f);
    int x = ct_st_find(f, "x"), i = ct_st_find(f, "i");

    double d[3];
    cr_assert_eq(ct_st_read(f, x, CT_F64, d, sizeof d), CT_OK);
    cr_expect(d[0] == 1.5 && d[1] == -2.25 && d[2] == 1024);
    uint16_t h[3];
    cr_assert_eq(ct_st_read(f, x, CT_F16, h, sizeof h), CT_OK);
    cr_expect(ct_f16_to_f32(h[0]) == 1.5f && ct_f16_to_f32(h[1]) == -2.25f && ct_f16_to_f32(h[2]) == 1024);
    cr_assert_eq(ct_st_read(f, x, CT_BF16, h, sizeof h), CT_OK);
    cr_expect(ct_bf16_to_f32(h[0]) == 1.5f && ct_bf16_to_f32(h[2]) == 1024);
    float fi[3];
    cr_assert_eq(ct_st_read(f, i, CT_F32, fi, sizeof fi), CT_OK);
    cr_expect(fi[0] == -5 && fi[1] == 0 && fi[2] == 300);

    int32_t out[3];
    cr_expect_eq(ct_st_read(f, x, CT_I32, out, sizeof out), CT_ERR_DTYPE, "floats to ints are refused");
    uint8_t u[3];
    cr_expect_eq(ct_st_read(f, i, CT_U8, u, sizeof u), CT_ERR_NUMERIC);
    cr_expect(strstr(ct_last_error(), "-5") != NULL, "%s", ct_last_error());
    cr_expect_eq(ct_st_read(f, x, CT_F32, fi, sizeof fi - 1), CT_ERR_SHAPE);
    cr_expect_eq(ct_st_read(f, x, CT_DTYPE_COUNT, fi, sizeof fi), CT_ERR_INVALID_ARG);
    ct_st_close(f);
}

/* ------------------------------------------------------------ reference files */

/* What Python's safetensors (0.8.0) writes for
 *     safetensors.torch.save_file({"a": torch.tensor([1., 2.], dtype=torch.float32)}, path)
 * (safetensors.numpy.save_file of the same array writes the same bytes):
 *     8-byte length 56, {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} and two
 *     spaces of padding, then 1.0f and 2.0f little-endian. */
static const unsigned char k_ref_a[72] = {
    0x38, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x61, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61,
    0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66,
    0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x38, 0x5d, 0x7d, 0x7d, 0x20, 0x20,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
};

/* safetensors.numpy.save_file({"u": uint8 [1,2,3], "h": float16 [1.5,-2],
 * "s": float32 3.0 (a scalar), "i": int32 [[-1],[7]], "d": float64 [0.25],
 * "b": float32 [1,2]}, path, metadata={"k": "v"}): the header, padding
 * included, and the data as the reference wrote them. */
static const char k_ref_mixed_header[] =
    "{\"__metadata__\":{\"k\":\"v\"},"
    "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
    "\"i\":{\"dtype\":\"I32\",\"shape\":[2,1],\"data_offsets\":[20,28]},"
    "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[28,32]},"
    "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[32,35]}}       ";
static const unsigned char k_ref_mixed_data[35] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
    0x00, 0x00, 0x40, 0x40, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x00, 0x00, 0x00, 0x3e, 0x00, 0xc0,
    0x01, 0x02, 0x03,
};

/* A PyTorch-like state_dict: safetensors.numpy.save_file({"weight": float32
 * arange(6).reshape(2,3) * 0.5, "num_batches_tracked": int64 7 (a scalar),
 * "bias": float16 [1,-2]}, path, metadata={"format": "pt"}). */
static const char k_ref_sd_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
    "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
    "\"bias\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[32,36]}}   ";
static const unsigned char k_ref_sd_data[36] = {
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x20, 0x40,
    0x00, 0x3c, 0x00, 0xc0,
};

Test(safetensors, reads_reference_file) {
    const char *path = in_dir("ref_a.safetensors");
    write_bytes(path, k_ref_a, sizeof k_ref_a);
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    cr_assert_eq(ct_st_count(f), 1);
    cr_expect_str_eq(ct_st_name(f, 0), "a");
    cr_expect_str_eq(ct_st_dtype_name(f, 0), "F32");
    ct_dtype dt;
    ct_shape sh;
    cr_assert_eq(ct_st_info(f, 0, &dt, &sh), CT_OK);
    cr_expect_eq(dt, CT_F32);
    cr_expect(ct_shape_equal(sh, (ct_shape){1, {2}}));
    float v[2];
    cr_assert_eq(ct_st_read(f, 0, CT_F32, v, sizeof v), CT_OK);
    cr_expect(v[0] == 1.0f && v[1] == 2.0f);
    cr_expect_eq(ct_st_meta_count(f), 0);
    ct_st_close(f);
}

Test(safetensors, writes_reference_bytes) {
    float a[2] = {1, 2};
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_add(w, "a", CT_F32, (ct_shape){1, {2}}, a), CT_OK);
    const char *path = in_dir("mine.safetensors");
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK, "%s", ct_last_error());
    ct_st_writer_free(w);
    size_t n;
    unsigned char *got = read_bytes(path, &n);
    cr_assert_not_null(got);
    cr_assert_eq(n, sizeof k_ref_a);
    cr_expect_eq(memcmp(got, k_ref_a, n), 0, "not byte-identical to the reference writer");
    free(got);
}

Test(safetensors, mixed_dtypes_match_reference_layout) {
    const char *ref = in_dir("ref.safetensors");
    write_st(ref, k_ref_mixed_header, k_ref_mixed_data, sizeof k_ref_mixed_data);

    /* The same tensors added in another order: the layout must still be the
     * reference's (widest dtype first, then by name). */
    uint8_t u[3] = {1, 2, 3};
    uint16_t h[2] = {ct_f32_to_f16(1.5f), ct_f32_to_f16(-2)};
    float s = 3, b[2] = {1, 2};
    int32_t i[2] = {-1, 7};
    double d[1] = {0.25};
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_add(w, "u", CT_U8, (ct_shape){1, {3}}, u), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "h", CT_F16, (ct_shape){1, {2}}, h), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "s", CT_F32, (ct_shape){0, {0}}, &s), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "i", CT_I32, (ct_shape){2, {2, 1}}, i), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "d", CT_F64, (ct_shape){1, {1}}, d), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "b", CT_F32, (ct_shape){1, {2}}, b), CT_OK);
    cr_assert_eq(ct_st_writer_meta(w, "k", "v"), CT_OK);
    const char *mine = in_dir("mine.safetensors");
    cr_assert_eq(ct_st_writer_save(w, mine), CT_OK);
    ct_st_writer_free(w);

    size_t n1, n2;
    unsigned char *a = read_bytes(ref, &n1), *m = read_bytes(mine, &n2);
    cr_assert_eq(n1, n2);
    cr_expect_eq(memcmp(a, m, n1), 0, "not byte-identical to the reference writer");
    free(a);
    free(m);

    ct_st_file *f = ct_st_open(ref);
    cr_assert_not_null(f, "%s", ct_last_error());
    cr_expect_eq(ct_st_count(f), 6);
    cr_expect_str_eq(ct_st_name(f, 0), "d"); /* header order */
    cr_expect_str_eq(ct_st_meta(f, "k"), "v");
    int k = ct_st_find(f, "s");
    ct_shape sh;
    cr_assert_eq(ct_st_info(f, k, NULL, &sh), CT_OK);
    cr_expect_eq(sh.ndim, 0);
    float sv;
    cr_assert_eq(ct_st_read(f, k, CT_F32, &sv, sizeof sv), CT_OK);
    cr_expect_eq(sv, 3.0f);
    ct_st_close(f);
}

Test(safetensors, pytorch_state_dict_with_int64) {
    const char *path = in_dir("sd.safetensors");
    write_st(path, k_ref_sd_header, k_ref_sd_data, sizeof k_ref_sd_data);
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "an I64 tensor must not fail the file: %s", ct_last_error());
    cr_expect_str_eq(ct_st_meta(f, "format"), "pt");
    int n = ct_st_find(f, "num_batches_tracked");
    cr_assert_geq(n, 0);
    ct_dtype dt;
    ct_shape sh;
    cr_assert_eq(ct_st_info(f, n, &dt, &sh), CT_OK);
    cr_expect_eq(dt, CT_DTYPE_COUNT);
    cr_expect_eq(sh.ndim, 0);
    cr_expect_str_eq(ct_st_dtype_name(f, n), "I64");
    cr_expect_eq(ct_st_nbytes(f, n), 8);
    int32_t nb;
    cr_assert_eq(ct_st_read(f, n, CT_I32, &nb, sizeof nb), CT_OK, "%s", ct_last_error());
    cr_expect_eq(nb, 7);
    uint8_t nb8;
    cr_assert_eq(ct_st_read(f, n, CT_U8, &nb8, 1), CT_OK);
    cr_expect_eq(nb8, 7);

    float wt[6];
    int wi = ct_st_find(f, "weight");
    cr_assert_eq(ct_st_read(f, wi, CT_F32, wt, sizeof wt), CT_OK);
    for (int k = 0; k < 6; k++) cr_expect_eq(wt[k], 0.5f * (float)k);
    float bias[2];
    cr_assert_eq(ct_st_read(f, ct_st_find(f, "bias"), CT_F32, bias, sizeof bias), CT_OK);
    cr_expect(bias[0] == 1.0f && bias[1] == -2.0f);
    ct_st_close(f);
}

Test(safetensors, integer_range_checks) {
    /* I64 values beyond I32, U64 beyond I64, and other integer widths. */
    const char *path = in_dir("ints.safetensors");
    int64_t big[2] = {5, (int64_t)1 << 40};
    unsigned char data[8 * 2 + 8 + 2 + 1];
    memcpy(data, big, 16);
    uint64_t huge = UINT64_MAX;
    memcpy(data + 16, &huge, 8);
    int16_t i16 = -300;
    memcpy(data + 24, &i16, 2);
    data[26] = 1; /* BOOL true */
    write_st(path,
             "{\"big\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
             "\"huge\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[16,24]},"
             "\"s\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[24,26]},"
             "\"flag\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[26,27]}}",
             data, sizeof data);
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    int32_t out[2];
    cr_expect_eq(ct_st_read(f, ct_st_find(f, "big"), CT_I32, out, sizeof out), CT_ERR_NUMERIC);
    cr_expect(strstr(ct_last_error(), "1099511627776") != NULL, "%s", ct_last_error());
    double dd[2];
    cr_expect_eq(ct_st_read(f, ct_st_find(f, "big"), CT_F64, dd, sizeof dd), CT_OK);
    cr_expect(dd[0] == 5 && dd[1] == 1099511627776.0);
    cr_expect_eq(ct_st_read(f, ct_st_find(f, "huge"), CT_I32, out, 4), CT_ERR_NUMERIC);
    cr_expect_eq(ct_st_read(f, ct_st_find(f, "s"), CT_I32, out, 4), CT_OK);
    cr_expect_eq(out[0], -300);
    cr_expect_eq(ct_st_read(f, ct_st_find(f, "flag"), CT_I32, out, 4), CT_OK);
    cr_expect_eq(out[0], 1);
    ct_st_close(f);
}

Test(safetensors, raw_dtypes_are_exposed_not_converted) {
    const char *path = in_dir("f8.safetensors");
    unsigned char data[6] = {0x38, 0x40, 0x12, 0x34, 0x56, 0x78};
    write_st(path,
             "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]},"
             "\"p\":{\"dtype\":\"F4\",\"shape\":[2,4],\"data_offsets\":[2,6]}}",
             data, sizeof data);
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    int q = ct_st_find(f, "q");
    ct_dtype dt;
    cr_assert_eq(ct_st_info(f, q, &dt, NULL), CT_OK);
    cr_expect_eq(dt, CT_DTYPE_COUNT);
    cr_expect_eq(ct_st_nbytes(f, q), 2);
    cr_expect_eq(((const unsigned char *)ct_st_data(f, q))[1], 0x40);
    float out[2];
    cr_expect_eq(ct_st_read(f, q, CT_F32, out, sizeof out), CT_ERR_UNSUPPORTED);
    cr_expect_eq(ct_st_nbytes(f, ct_st_find(f, "p")), 4); /* 8 four-bit values */
    ct_st_close(f);
}

Test(safetensors, gaps_and_unaligned_offsets_are_read) {
    /* Other writers may leave gaps or misalign data; reading must still
     * work (through memcpy), and the gap must not be mistaken for overlap. */
    unsigned char data[13] = {0};
    float v = 2.5f;
    memcpy(data + 1, &v, 4);
    memcpy(data + 9, &v, 4);
    const char *path = in_dir("gap.safetensors");
    write_st(path,
             "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]},"
             "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9,13]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[3,3]}}",
             data, sizeof data);
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    float out;
    cr_assert_eq(ct_st_read(f, ct_st_find(f, "x"), CT_F32, &out, 4), CT_OK);
    cr_expect_eq(out, 2.5f);
    double o64;
    cr_assert_eq(ct_st_read(f, ct_st_find(f, "y"), CT_F64, &o64, 8), CT_OK);
    cr_expect_eq(o64, 2.5);
    ct_st_close(f);
}

/* ------------------------------------------------------------ malformed files */

/* Opening must fail with a message naming the file, and never crash. */
static void expect_bad(const char *label, const void *bytes, size_t n, ct_status want) {
    const char *path = in_dir("bad.safetensors");
    write_bytes(path, bytes, n);
    ct_clear_error();
    ct_st_file *f = ct_st_open(path);
    cr_expect_null(f, "%s: opened a malformed file", label);
    if (f) {
        ct_st_close(f);
        return;
    }
    cr_expect_eq(ct_last_status(), want, "%s: status %s (%s)", label, ct_status_name(ct_last_status()),
                 ct_last_error());
    cr_expect_neq(ct_last_error()[0], '\0', "%s: no message", label);
    cr_expect(strstr(ct_last_error(), path) != NULL, "%s: message does not name the file: %s", label,
              ct_last_error());
}

static void expect_bad_header(const char *label, const char *header, size_t ndata, const char *must_say) {
    size_t hl = strlen(header);
    size_t n = 8 + hl + ndata;
    unsigned char *buf = calloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    expect_bad(label, buf, n, CT_ERR_FORMAT);
    if (must_say)
        cr_expect(strstr(ct_last_error(), must_say) != NULL, "%s: message lacks '%s': %s", label, must_say,
                  ct_last_error());
    free(buf);
}

Test(st_malformed, short_files_and_lengths) {
    expect_bad("empty file", "", 0, CT_ERR_FORMAT);
    expect_bad("7 bytes", "\x01\x00\x00\x00\x00\x00\x00", 7, CT_ERR_FORMAT);
    unsigned char beyond[8 + 4] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    expect_bad("header length beyond the end", beyond, sizeof beyond, CT_ERR_FORMAT);
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    expect_bad("header length 2^64-1", huge, sizeof huge, CT_ERR_FORMAT);
    unsigned char zero[8] = {0};
    expect_bad("empty header", zero, sizeof zero, CT_ERR_FORMAT);
}

Test(st_malformed, bad_json) {
    expect_bad_header("invalid JSON", "{\"a\":{\"dtype\":", 0, "JSON");
    expect_bad_header("not an object", "[1, 2]  ", 0, NULL);
    expect_bad_header("trailing garbage", "{} x    ", 0, NULL);
    expect_bad_header("second object", "{}{}    ", 0, NULL);
    expect_bad_header("entry not an object", "{\"a\":3}", 0, "'a'");
    expect_bad_header("metadata not an object", "{\"__metadata__\":[]}", 0, "__metadata__");
    expect_bad_header("metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, "'k'");
    expect_bad_header("metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__");
    expect_bad_header("invalid UTF-8", "{\"\xff\":1}", 0, "UTF-8");
    /* A NUL inside the header, after which strlen would stop. */
    unsigned char buf[8 + 9];
    memset(buf, 0, 8);
    buf[0] = 9;
    memcpy(buf + 8, "{\"a\":1}  ", 9);
    buf[8 + 7] = '\0';
    expect_bad("NUL in header", buf, sizeof buf, CT_ERR_FORMAT);
    /* Deep nesting must not exhaust the stack. */
    char deep[4096 + 16];
    size_t k = 0;
    deep[k++] = '{';
    memcpy(deep + k, "\"a\":", 4);
    k += 4;
    for (int i = 0; i < 2000; i++) deep[k++] = '[';
    deep[k++] = '}';
    deep[k] = '\0';
    expect_bad_header("deep nesting", deep, 0, NULL);
}

Test(st_malformed, bad_tensor_entries) {
    expect_bad_header("missing data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    expect_bad_header("missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
    expect_bad_header("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "shape");
    expect_bad_header("unknown dtype", "{\"w\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                      "F17");
    expect_bad_header("dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                      "'w'");
    expect_bad_header("offsets beyond the data",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, "'w'");
    expect_bad_header("size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12,
                      "'w'");
    expect_bad_header("end before begin", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
                      "'w'");
    expect_bad_header("three offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 9,
                      "'w'");
    expect_bad_header("negative offset", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8,
                      "'w'");
    expect_bad_header("negative shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                      "'w'");
    expect_bad_header("fractional shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}",
                      8, "'w'");
    expect_bad_header("string shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                      "'w'");
    expect_bad_header("shape 1e300", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
                      "'w'");
    /* 2^32 * 2^32 * 16 wraps to 0 elements in 64 bits: it must be caught,
     * not taken as an empty tensor at [0, 0]. */
    expect_bad_header("shape product overflow",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", 8,
                      "'w'");
    expect_bad_header("bytes overflow",
                      "{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 8,
                      NULL);
    expect_bad_header("sub-byte remainder", "{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 8,
                      "'w'");
    expect_bad_header("overlap",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                      12, "overlap");
    expect_bad_header("duplicate name",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      8, "'a'");
}

Test(st_malformed, not_files) {
    ct_clear_error();
    cr_expect_null(ct_st_open(in_dir("does-not-exist")));
    cr_expect_eq(ct_last_status(), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "does-not-exist") != NULL, "%s", ct_last_error());
    cr_expect_null(ct_st_open(g_dir)); /* a directory */
    cr_expect_eq(ct_last_status(), CT_ERR_IO);
    cr_expect_null(ct_st_open(NULL));
    cr_expect_eq(ct_last_status(), CT_ERR_INVALID_ARG);
}

/* Every truncation and many single-byte corruptions of a valid file: each
 * either opens (and then reads back without fault) or fails with a message.
 * Run under the sanitizers, this is what shows nothing reads out of bounds. */
static volatile unsigned g_sink;

Test(st_malformed, truncations_and_corruptions_never_crash) {
    size_t hl = strlen(k_ref_mixed_header);
    size_t n = 8 + hl + sizeof k_ref_mixed_data;
    unsigned char *good = malloc(n), *buf = malloc(n);
    for (int i = 0; i < 8; i++) good[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(good + 8, k_ref_mixed_header, hl);
    memcpy(good + 8 + hl, k_ref_mixed_data, sizeof k_ref_mixed_data);
    const char *path = in_dir("fuzz.safetensors");
    const unsigned char subst[] = {0x00, 0xff, '"', '{', '}', '[', ']', ',', ':', '9', '-', 'e', '\\'};
    int opened = 0, failed = 0;
    for (size_t len = 0; len <= n; len++) {
        write_bytes(path, good, len);
        ct_st_file *f = ct_st_open(path);
        if (f) {
            opened++;
            ct_st_close(f);
        } else {
            failed++;
            cr_expect_neq(ct_last_error()[0], '\0');
        }
    }
    for (size_t pos = 0; pos < 8 + hl; pos++) {
        for (size_t s = 0; s < sizeof subst; s++) {
            memcpy(buf, good, n);
            buf[pos] = subst[s];
            write_bytes(path, buf, n);
            ct_clear_error();
            ct_st_file *f = ct_st_open(path);
            if (!f) {
                failed++;
                cr_expect_neq(ct_last_error()[0], '\0', "no message at byte %zu", pos);
                continue;
            }
            opened++;
            for (int i = 0; i < ct_st_count(f); i++) {
                ct_dtype dt;
                if (ct_st_info(f, i, &dt, NULL) != CT_OK) continue;
                size_t nb = ct_st_nbytes(f, i);
                /* Touch every byte the file claims, for the sanitizers. */
                const unsigned char *d = ct_st_data(f, i);
                for (size_t k = 0; k < nb; k++) g_sink += d[k];
                float tmp[64];
                size_t want = nb / (dt == CT_DTYPE_COUNT ? 1 : ct_dtype_size(dt)) * sizeof(float);
                if (want <= sizeof tmp) (void)ct_st_read(f, i, CT_F32, tmp, want);
            }
            ct_st_close(f);
        }
    }
    cr_expect_gt(opened, 0);
    cr_expect_gt(failed, 0);
    free(good);
    free(buf);
}

/* ------------------------------------------------------------ writer and saving */

Test(st_save, writer_refuses_bad_input) {
    ct_st_writer *w = ct_st_writer_new();
    float x[4] = {0};
    cr_assert_eq(ct_st_writer_add(w, "a", CT_F32, (ct_shape){1, {4}}, x), CT_OK);
    cr_expect_eq(ct_st_writer_add(w, "a", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect(strstr(ct_last_error(), "'a'") != NULL, "%s", ct_last_error());
    cr_expect_eq(ct_st_writer_add(w, "__metadata__", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, NULL, CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "bad\xff", CT_F32, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "neg", CT_F32, (ct_shape){1, {-4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "nodata", CT_F32, (ct_shape){1, {4}}, NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "dt", CT_DTYPE_COUNT, (ct_shape){1, {4}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "nd", CT_F32, (ct_shape){9, {1}}, x), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add(w, "big", CT_F32, (ct_shape){3, {1 << 30, 1 << 30, 1 << 30}}, x),
                 CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_meta(w, "k", NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_meta(w, "k\xc0\x80", "v"), CT_ERR_INVALID_ARG); /* overlong NUL */
    cr_expect_eq(ct_st_writer_save(w, ""), CT_ERR_INVALID_ARG);
    /* After all the refusals the writer still holds just "a". */
    cr_assert_eq(ct_st_writer_save(w, in_dir("ok.safetensors")), CT_OK);
    ct_st_file *f = ct_st_open(in_dir("ok.safetensors"));
    cr_assert_not_null(f);
    cr_expect_eq(ct_st_count(f), 1);
    ct_st_close(f);
    ct_st_writer_free(w);
    ct_st_writer_free(NULL);
}

Test(st_save, empty_writer_gives_a_valid_file) {
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_save(w, in_dir("e.safetensors")), CT_OK);
    ct_st_writer_free(w);
    size_t n;
    unsigned char *b = read_bytes(in_dir("e.safetensors"), &n);
    cr_assert_eq(n, 16);
    cr_expect_eq(memcmp(b + 8, "{}      ", 8), 0);
    free(b);
    ct_st_file *f = ct_st_open(in_dir("e.safetensors"));
    cr_assert_not_null(f);
    cr_expect_eq(ct_st_count(f), 0);
    ct_st_close(f);
}

static ct_st_writer *writer_of(float value, int64_t n) {
    ct_st_writer *w = ct_st_writer_new();
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = value;
    cr_assert_eq(ct_st_writer_add(w, "x", CT_F32, (ct_shape){1, {n}}, x), CT_OK);
    free(x);
    return w;
}

static float first_value(const char *path) {
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f, "%s", ct_last_error());
    float v;
    memcpy(&v, ct_st_data(f, 0), sizeof v);
    ct_st_close(f);
    return v;
}

Test(st_save, replaces_an_existing_file) {
    const char *path = in_dir("w.safetensors");
    ct_st_writer *w1 = writer_of(1, 4), *w2 = writer_of(2, 1000);
    cr_assert_eq(ct_st_writer_save(w1, path), CT_OK);
    cr_expect_eq(first_value(path), 1.0f);
    cr_assert_eq(ct_st_writer_save(w2, path), CT_OK, "%s", ct_last_error());
    cr_expect_eq(first_value(path), 2.0f);
    cr_assert_eq(ct_st_writer_save(w1, path), CT_OK); /* shorter than the file it replaces */
    cr_expect_eq(first_value(path), 1.0f);
    cr_expect_eq(dir_entries(g_dir), 1, "a temporary file was left behind");
    ct_st_writer_free(w1);
    ct_st_writer_free(w2);
}

Test(st_save, missing_directory_fails_and_leaves_nothing) {
    ct_st_writer *w = writer_of(1, 4);
    const char *path = in_dir("no/such/dir/w.safetensors");
    cr_expect_eq(ct_st_writer_save(w, path), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "no/such/dir") != NULL, "%s", ct_last_error());
    cr_expect_eq(dir_entries(g_dir), 0);
    ct_st_writer_free(w);
}

Test(st_save, path_that_is_a_directory_fails_and_keeps_it) {
    const char *path = in_dir("taken");
    cr_assert_eq(mkdir(path, 0755), 0);
    const char *inside = in_dir("taken/old.safetensors");
    ct_st_writer *old = writer_of(7, 4);
    cr_assert_eq(ct_st_writer_save(old, inside), CT_OK);
    ct_st_writer *w = writer_of(1, 4);
    cr_expect_eq(ct_st_writer_save(w, path), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "taken") != NULL, "%s", ct_last_error());
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    cr_expect_eq(first_value(inside), 7.0f);
    cr_expect_eq(dir_entries(g_dir), 1, "a temporary file was left behind");
    cr_expect_eq(dir_entries(path), 1);
    ct_st_writer_free(w);
    ct_st_writer_free(old);
}

/* A write that fails half-way (the file size limit stands in for a full
 * disk): the old file must survive intact and the temporary go away. The
 * limit holds in this test's own process only. */
Test(st_save, failure_mid_write_keeps_the_old_file) {
    const char *path = in_dir("w.safetensors");
    ct_st_writer *old = writer_of(5, 16);
    cr_assert_eq(ct_st_writer_save(old, path), CT_OK);
    size_t n_before;
    unsigned char *before = read_bytes(path, &n_before);

    signal(SIGXFSZ, SIG_IGN); /* get EFBIG from write() instead of dying */
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    struct rlimit small = {.rlim_cur = 64 * 1024, .rlim_max = rl.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    ct_st_writer *big = writer_of(9, 1 << 20); /* 4 MiB */
    ct_status st = ct_st_writer_save(big, path);
    setrlimit(RLIMIT_FSIZE, &rl);
    cr_expect_eq(st, CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), path) != NULL, "%s", ct_last_error());

    size_t n_after;
    unsigned char *after = read_bytes(path, &n_after);
    cr_assert_not_null(after);
    cr_expect_eq(n_after, n_before);
    cr_expect_eq(memcmp(before, after, n_before), 0, "the old file was modified");
    cr_expect_eq(dir_entries(g_dir), 1, "a temporary file was left behind");
    free(before);
    free(after);
    ct_st_writer_free(old);
    ct_st_writer_free(big);
}

/* ------------------------------------------------------------ weights by name */

typedef struct model {
    ct_graph *g;
    ct_program *p;
} model;

static const char *k_names[3] = {"fc.weight", "fc.bias", "emb"};
static const ct_shape k_shapes[3] = {{2, {3, 4}}, {1, {3}}, {2, {5, 2}}};

static ct_graph *three_params(ct_dtype dt) {
    ct_graph *g = ct_graph_new();
    ct_param(g, k_names[0], dt, k_shapes[0], ct_init_xavier_uniform(1.0));
    ct_param(g, k_names[1], dt, k_shapes[1], ct_init_uniform(-1, 1));
    ct_param(g, k_names[2], dt, k_shapes[2], ct_init_normal(0, 1));
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    return g;
}

static ct_program *compile_seed(ct_graph *g, uint64_t seed) {
    ct_graph_set_seed(g, seed);
    ct_program *p = ct_compile(g, NULL);
    cr_assert_not_null(p, "%s", ct_last_error());
    return p;
}

/* A host copy of all parameters, to check that a failed load changed none. */
static void *snapshot(const ct_program *p, size_t *bytes) {
    *bytes = ct_program_param_numel(p) * ct_dtype_size(ct_program_param_dtype(p));
    void *buf = malloc(*bytes ? *bytes : 1);
    cr_assert_eq(ct_program_read_params(p, buf, *bytes), CT_OK);
    return buf;
}

static void expect_same_params(const ct_program *a, const ct_program *b) {
    size_t na, nb;
    void *x = snapshot(a, &na), *y = snapshot(b, &nb);
    cr_assert_eq(na, nb);
    cr_expect_eq(memcmp(x, y, na), 0, "parameters differ");
    free(x);
    free(y);
}

static void expect_unchanged(const ct_program *p, const void *before, size_t bytes) {
    size_t n;
    void *now = snapshot(p, &n);
    cr_assert_eq(n, bytes);
    cr_expect_eq(memcmp(now, before, bytes), 0, "a failed load modified the program");
    free(now);
}

/* A file of the first program's parameters, under prefix + name, with
 * parameter `skip` left out (-1: none), `bad_shape` given a wrong shape,
 * optional extra tensors, and the values converted to `dt`. */
static void write_params(const ct_program *p, const char *path, const char *prefix, int skip, int bad_shape,
                         bool extras, ct_dtype dt) {
    ct_st_writer *w = ct_st_writer_new();
    for (int i = 0; i < 3; i++) {
        if (i == skip) continue;
        int64_t n = ct_shape_numel(k_shapes[i]);
        float v[32];
        cr_assert_eq(ct_program_get_param(p, k_names[i], v, (size_t)n * 4), CT_OK);
        unsigned char out[32 * 8];
        for (int64_t k = 0; k < n; k++) {
            if (dt == CT_F32) memcpy(out + k * 4, &v[k], 4);
            else if (dt == CT_F64) { double d = v[k]; memcpy(out + k * 8, &d, 8); }
            else if (dt == CT_F16) { uint16_t h = ct_f32_to_f16(v[k]); memcpy(out + k * 2, &h, 2); }
            else if (dt == CT_BF16) { uint16_t h = ct_f32_to_bf16(v[k]); memcpy(out + k * 2, &h, 2); }
            else { int32_t q = (int32_t)k; memcpy(out + k * 4, &q, 4); }
        }
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, k_names[i]);
        ct_shape sh = k_shapes[i];
        if (i == bad_shape) sh = (ct_shape){2, {n, 1}};
        cr_assert_eq(ct_st_writer_add(w, name, dt, sh, out), CT_OK, "%s", ct_last_error());
    }
    if (extras) {
        float rm[3] = {0, 0, 0};
        cr_assert_eq(ct_st_writer_add(w, "bn.running_mean", CT_F32, (ct_shape){1, {3}}, rm), CT_OK);
    }
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK);
    ct_st_writer_free(w);
}

Test(weights, save_and_load_round_trip) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    size_t n;
    void *a = snapshot(p1, &n), *b = snapshot(p2, &n);
    cr_assert_neq(memcmp(a, b, n), 0, "two seeds gave the same weights; the test would prove nothing");
    free(a);
    free(b);

    const char *path = in_dir("w.safetensors");
    cr_assert_eq(ct_save_weights(g, p1, path), CT_OK, "%s", ct_last_error());
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f);
    cr_expect_eq(ct_st_count(f), 3);
    cr_expect_str_eq(ct_st_meta(f, "format"), "ctrain");
    ct_shape sh;
    ct_dtype dt;
    cr_assert_eq(ct_st_info(f, ct_st_find(f, "fc.weight"), &dt, &sh), CT_OK);
    cr_expect(ct_shape_equal(sh, k_shapes[0]) && dt == CT_F32);
    ct_st_close(f);

    int loaded = -1;
    ct_load_opts o = {.loaded = &loaded};
    cr_assert_eq(ct_load_weights(g, p2, path, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 3);
    expect_same_params(p1, p2);
    cr_assert_eq(ct_load_weights(g, p2, path, NULL), CT_OK); /* NULL opts: strict */
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, f64_parameters) {
    ct_graph *g = three_params(CT_F64);
    ct_program *p1 = compile_seed(g, 3), *p2 = compile_seed(g, 4);
    const char *path = in_dir("w64.safetensors");
    cr_assert_eq(ct_save_weights(g, p1, path), CT_OK, "%s", ct_last_error());
    ct_st_file *f = ct_st_open(path);
    cr_assert_not_null(f);
    ct_dtype dt;
    cr_assert_eq(ct_st_info(f, 0, &dt, NULL), CT_OK);
    cr_expect_eq(dt, CT_F64);
    ct_st_close(f);
    cr_assert_eq(ct_load_weights(g, p2, path, NULL), CT_OK, "%s", ct_last_error());
    expect_same_params(p1, p2);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, strict_errors_change_nothing) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    size_t n;
    void *before = snapshot(p2, &n);
    int loaded = -1;
    ct_load_opts o = {.loaded = &loaded};

    const char *extra = in_dir("extra.safetensors");
    write_params(p1, extra, "", -1, -1, true, CT_F32);
    cr_expect_eq(ct_load_weights(g, p2, extra, &o), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "bn.running_mean") != NULL, "%s", ct_last_error());
    cr_expect_eq(loaded, 0);
    expect_unchanged(p2, before, n);

    const char *missing = in_dir("missing.safetensors");
    write_params(p1, missing, "", 1, -1, false, CT_F32);
    cr_expect_eq(ct_load_weights(g, p2, missing, &o), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "fc.bias") != NULL, "%s", ct_last_error());
    expect_unchanged(p2, before, n);

    /* The wrong shape is on the last parameter, after two good ones. */
    const char *shape = in_dir("shape.safetensors");
    write_params(p1, shape, "", -1, 2, false, CT_F32);
    cr_expect_eq(ct_load_weights(g, p2, shape, &o), CT_ERR_SHAPE);
    cr_expect(strstr(ct_last_error(), "emb") && strstr(ct_last_error(), "[10, 1]") &&
                  strstr(ct_last_error(), "[5, 2]"),
              "%s", ct_last_error());
    expect_unchanged(p2, before, n);
    /* A wrong shape is an error even when not strict. */
    o.non_strict = true;
    cr_expect_eq(ct_load_weights(g, p2, shape, &o), CT_ERR_SHAPE);
    expect_unchanged(p2, before, n);
    o.non_strict = false;

    const char *ints = in_dir("ints.safetensors");
    write_params(p1, ints, "", -1, -1, false, CT_I32);
    cr_expect_eq(ct_load_weights(g, p2, ints, &o), CT_ERR_DTYPE);
    cr_expect(strstr(ct_last_error(), "I32") != NULL, "%s", ct_last_error());
    expect_unchanged(p2, before, n);

    const char *bad = in_dir("bad.safetensors");
    write_bytes(bad, "garbage!garbage!", 16);
    cr_expect_eq(ct_load_weights(g, p2, bad, &o), CT_ERR_FORMAT);
    cr_expect_eq(ct_load_weights(g, p2, in_dir("absent"), &o), CT_ERR_IO);
    expect_unchanged(p2, before, n);

    free(before);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, non_strict_skips_extras_and_missing) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    int loaded = -1;
    ct_load_opts o = {.non_strict = true, .loaded = &loaded};

    const char *extra = in_dir("extra.safetensors");
    write_params(p1, extra, "", -1, -1, true, CT_F32);
    cr_assert_eq(ct_load_weights(g, p2, extra, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 3);
    expect_same_params(p1, p2);

    /* Missing fc.bias: the other two load, fc.bias keeps p3's own value. */
    ct_program *p3 = compile_seed(g, 3);
    float bias_before[3], bias_after[3];
    cr_assert_eq(ct_program_get_param(p3, "fc.bias", bias_before, sizeof bias_before), CT_OK);
    const char *missing = in_dir("missing.safetensors");
    write_params(p1, missing, "", 1, -1, true, CT_F32);
    cr_assert_eq(ct_load_weights(g, p3, missing, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 2);
    cr_assert_eq(ct_program_get_param(p3, "fc.bias", bias_after, sizeof bias_after), CT_OK);
    cr_expect_eq(memcmp(bias_before, bias_after, sizeof bias_after), 0);
    float w1[12], w3[12];
    cr_assert_eq(ct_program_get_param(p1, "fc.weight", w1, sizeof w1), CT_OK);
    cr_assert_eq(ct_program_get_param(p3, "fc.weight", w3, sizeof w3), CT_OK);
    cr_expect_eq(memcmp(w1, w3, sizeof w1), 0);

    /* A PyTorch state_dict with an I64 counter that is not a parameter. */
    const char *sd = in_dir("sd.safetensors");
    write_st(sd, k_ref_sd_header, k_ref_sd_data, sizeof k_ref_sd_data);
    cr_assert_eq(ct_load_weights(g, p3, sd, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 0);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_program_free(p3);
    ct_graph_free(g);
}

Test(weights, prefix_stripping) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1), *p2 = compile_seed(g, 2);
    size_t n;
    void *before = snapshot(p2, &n);
    const char *path = in_dir("prefixed.safetensors");
    write_params(p1, path, "model.", -1, -1, false, CT_F32);

    cr_expect_eq(ct_load_weights(g, p2, path, NULL), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "model.fc.weight") != NULL, "%s", ct_last_error());
    expect_unchanged(p2, before, n);

    int loaded = -1;
    ct_load_opts o = {.strip_prefix = "model.", .loaded = &loaded};
    cr_assert_eq(ct_load_weights(g, p2, path, &o), CT_OK, "%s", ct_last_error());
    cr_expect_eq(loaded, 3);
    expect_same_params(p1, p2);

    /* "model.fc.bias" and "fc.bias" would both land on fc.bias. */
    ct_st_writer *w = ct_st_writer_new();
    float b[3] = {1, 2, 3};
    cr_assert_eq(ct_st_writer_add(w, "model.fc.bias", CT_F32, k_shapes[1], b), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "fc.bias", CT_F32, k_shapes[1], b), CT_OK);
    cr_assert_eq(ct_st_writer_save(w, in_dir("twice.safetensors")), CT_OK);
    ct_st_writer_free(w);
    o.non_strict = true;
    free(before);
    before = snapshot(p2, &n);
    cr_expect_eq(ct_load_weights(g, p2, in_dir("twice.safetensors"), &o), CT_ERR_INVALID_ARG);
    cr_expect_eq(loaded, 0);
    expect_unchanged(p2, before, n);
    free(before);
    ct_program_free(p1);
    ct_program_free(p2);
    ct_graph_free(g);
}

Test(weights, half_and_double_files_convert) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p1 = compile_seed(g, 1);
    const ct_dtype dts[3] = {CT_F64, CT_F16, CT_BF16};
    for (int k = 0; k < 3; k++) {
        ct_program *p2 = compile_seed(g, 10 + (uint64_t)k);
        const char *path = in_dir("conv.safetensors");
        write_params(p1, path, "", -1, -1, false, dts[k]);
        cr_assert_eq(ct_load_weights(g, p2, path, NULL), CT_OK, "%s: %s", ct_dtype_name(dts[k]), ct_last_error());
        float a[12], b[12];
        cr_assert_eq(ct_program_get_param(p1, "fc.weight", a, sizeof a), CT_OK);
        cr_assert_eq(ct_program_get_param(p2, "fc.weight", b, sizeof b), CT_OK);
        for (int i = 0; i < 12; i++) {
            float want = dts[k] == CT_F64   ? a[i]
                         : dts[k] == CT_F16 ? ct_f16_to_f32(ct_f32_to_f16(a[i]))
                                            : ct_bf16_to_f32(ct_f32_to_bf16(a[i]));
            cr_expect_eq(b[i], want, "%s element %d: %g vs %g", ct_dtype_name(dts[k]), i, b[i], want);
        }
        ct_program_free(p2);
    }
    ct_program_free(p1);
    ct_graph_free(g);
}

Test(weights, bad_arguments) {
    ct_graph *g = three_params(CT_F32);
    ct_program *p = compile_seed(g, 1);
    cr_expect_eq(ct_save_weights(NULL, p, in_dir("x")), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_save_weights(g, p, NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_load_weights(g, NULL, in_dir("x"), NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_save_weights(g, p, in_dir("no/dir/x")), CT_ERR_IO);
    cr_expect(strstr(ct_last_error(), "ct_save_weights") != NULL, "%s", ct_last_error());
    ct_program_free(p);
    ct_graph_free(g);
}
