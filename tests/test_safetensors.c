/* safetensors: round trips, files made by the reference implementation,
 * and malformed files (test_weights_file.c: atomic saves, weights by name). */
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

#include "st_files.h"

TestSuite(safetensors, .init = make_dir, .fini = cleanup_dir);
TestSuite(st_malformed, .init = make_dir, .fini = cleanup_dir);

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
