/* dtypes, F16/BF16 conversions, shapes, and the error/status strings. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/dtype.h"
#include "ctrain/status.h"

static uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float bitsf(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

Test(dtype, sizes_and_names) {
    cr_expect_eq(ct_dtype_size(CT_F32), 4);
    cr_expect_eq(ct_dtype_size(CT_F64), 8);
    cr_expect_eq(ct_dtype_size(CT_F16), 2);
    cr_expect_eq(ct_dtype_size(CT_BF16), 2);
    cr_expect_eq(ct_dtype_size(CT_I32), 4);
    cr_expect_eq(ct_dtype_size(CT_U8), 1);
    cr_expect_eq(ct_dtype_size(CT_DTYPE_COUNT), 0);
    cr_expect_eq(ct_dtype_size((ct_dtype)-1), 0);
    cr_expect_str_eq(ct_dtype_name(CT_F32), "f32");
    cr_expect_str_eq(ct_dtype_name(CT_F64), "f64");
    cr_expect_str_eq(ct_dtype_name(CT_F16), "f16");
    cr_expect_str_eq(ct_dtype_name(CT_BF16), "bf16");
    cr_expect_str_eq(ct_dtype_name(CT_I32), "i32");
    cr_expect_str_eq(ct_dtype_name(CT_U8), "u8");
    cr_expect_str_eq(ct_dtype_name((ct_dtype)99), "?");
    cr_expect(ct_dtype_is_float(CT_F32) && ct_dtype_is_float(CT_F64));
    cr_expect(ct_dtype_is_float(CT_F16) && ct_dtype_is_float(CT_BF16));
    cr_expect(!ct_dtype_is_float(CT_I32) && !ct_dtype_is_float(CT_U8));
    cr_expect(!ct_dtype_is_float(CT_DTYPE_COUNT));
}

/* ---- F16 ---- */

Test(f16, exact_values_round_trip) {
    const struct {
        float f;
        uint16_t h;
    } c[] = {
        {0.0f, 0x0000},     {1.0f, 0x3c00},      {-2.0f, 0xc000},      {0.5f, 0x3800},
        {65504.0f, 0x7bff}, /* max finite */     {0x1p-14f, 0x0400},   /* min normal */
        {0x1p-24f, 0x0001}, /* min subnormal */  {0x3ffp-24f, 0x03ff}, /* max subnormal */
        {1.0009765625f, 0x3c01},                 {-0.333251953125f, 0xb555},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cr_expect_eq(ct_f32_to_f16(c[i].f), c[i].h, "%g -> %04x, want %04x", c[i].f,
                     ct_f32_to_f16(c[i].f), c[i].h);
        cr_expect_eq(ct_f16_to_f32(c[i].h), c[i].f, "%04x -> %g", c[i].h, ct_f16_to_f32(c[i].h));
    }
    /* Negative zero keeps its sign both ways. */
    cr_expect_eq(ct_f32_to_f16(-0.0f), 0x8000);
    cr_expect(signbit(ct_f16_to_f32(0x8000)) && ct_f16_to_f32(0x8000) == 0.0f);
}

/* Every one of the 63488 finite halves survives f16 -> f32 -> f16. */
Test(f16, all_finite_halves_round_trip) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        uint16_t back = ct_f32_to_f16(ct_f16_to_f32((uint16_t)h));
        cr_assert_eq(back, h, "%04x -> %g -> %04x", h, ct_f16_to_f32((uint16_t)h), back);
    }
}

Test(f16, round_to_nearest_even) {
    /* Halfway between 1 (0x3c00, even) and 1 + 2^-10 (0x3c01): down to even. */
    cr_expect_eq(ct_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    /* Halfway between 0x3c01 (odd) and 0x3c02: up to even. */
    cr_expect_eq(ct_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    /* Just above / below the halfway point go to the nearer value. */
    cr_expect_eq(ct_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    cr_expect_eq(ct_f32_to_f16(1.0f + 0x1p-11f - 0x1p-20f), 0x3c00);
    /* Rounding up carries into the exponent: 2 - 2^-12 -> 2. */
    cr_expect_eq(ct_f32_to_f16(2.0f - 0x1p-12f), 0x4000);
    cr_expect_eq(ct_f32_to_f16(-(1.0f + 3 * 0x1p-11f)), 0xbc02);
}

Test(f16, overflow_and_inf) {
    cr_expect_eq(ct_f32_to_f16(INFINITY), 0x7c00);
    cr_expect_eq(ct_f32_to_f16(-INFINITY), 0xfc00);
    cr_expect(isinf(ct_f16_to_f32(0x7c00)) && ct_f16_to_f32(0x7c00) > 0);
    cr_expect(isinf(ct_f16_to_f32(0xfc00)) && ct_f16_to_f32(0xfc00) < 0);
    /* 65519.99 is still nearer 65504 than the (virtual) next value 65536. */
    cr_expect_eq(ct_f32_to_f16(65519.0f), 0x7bff);
    /* 65520 is the midpoint; ties to even rounds 0x7bff (odd) up into inf. */
    cr_expect_eq(ct_f32_to_f16(65520.0f), 0x7c00);
    cr_expect_eq(ct_f32_to_f16(1e5f), 0x7c00);
    cr_expect_eq(ct_f32_to_f16(-1e10f), 0xfc00);
    cr_expect_eq(ct_f32_to_f16(FLT_MAX), 0x7c00);
}

Test(f16, nan_stays_quiet_nan) {
    uint16_t h = ct_f32_to_f16(NAN);
    cr_expect((h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0, "%04x", h);
    cr_expect(h & 0x0200, "quiet bit set");
    /* A NaN whose payload lies only in the low 13 bits must not become inf. */
    uint16_t h2 = ct_f32_to_f16(bitsf(0x7f800001));
    cr_expect((h2 & 0x7c00) == 0x7c00 && (h2 & 0x0200), "%04x", h2);
    cr_expect_eq(ct_f32_to_f16(-NAN) & 0x8000, 0x8000);
    /* Signalling half NaN comes back as a quiet float NaN. */
    float f = ct_f16_to_f32(0x7c01);
    cr_expect(isnan(f) && (fbits(f) & 0x00400000));
    cr_expect(isnan(ct_f16_to_f32(0xfe00)));
}

Test(f16, subnormals) {
    cr_expect_eq(ct_f32_to_f16(3 * 0x1p-24f), 0x0003);
    /* Subnormal rounding, ties to even: 2.5 units -> 2, 3.5 units -> 4. */
    cr_expect_eq(ct_f32_to_f16(2.5f * 0x1p-24f), 0x0002);
    cr_expect_eq(ct_f32_to_f16(3.5f * 0x1p-24f), 0x0004);
    /* Half of the smallest subnormal is a tie with 0 (even): 0. */
    cr_expect_eq(ct_f32_to_f16(0x1p-25f), 0x0000);
    cr_expect_eq(ct_f32_to_f16(-0x1p-25f), 0x8000);
    /* Just above that half rounds up to the smallest subnormal. */
    cr_expect_eq(ct_f32_to_f16(0x1p-25f * (1.0f + 0x1p-20f)), 0x0001);
    cr_expect_eq(ct_f32_to_f16(0x1p-26f), 0x0000);
    /* Float subnormals are far below half range: zero. */
    cr_expect_eq(ct_f32_to_f16(0x1p-140f), 0x0000);
    /* Largest subnormal + a bit rounds up into the smallest normal. */
    cr_expect_eq(ct_f32_to_f16(0x3ffp-24f + 0x1p-25f), 0x0400);
    cr_expect_eq(ct_f16_to_f32(0x0001), 0x1p-24f);
    cr_expect_eq(ct_f16_to_f32(0x8200), -0x1p-15f);
}

/* Compares against rounding done another way: to the nearest of the two
 * neighbouring halves, by value in double, ties to the even encoding. */
Test(f16, matches_reference_rounding) {
    uint32_t state = 1;
    for (int t = 0; t < 200000; t++) {
        state = state * 1664525u + 1013904223u;
        /* Exponents from deep subnormal to overflow, all mantissas. */
        uint32_t u = (state & 0x807fffff) | ((uint32_t)(100 + (state >> 8) % 45) << 23);
        float x = bitsf(u);
        uint16_t h = ct_f32_to_f16(x);
        double ax = fabs((double)x);
        if (ax >= 65520.0) {
            cr_assert_eq(h & 0x7fff, 0x7c00, "%a", x);
            continue;
        }
        uint16_t mag = h & 0x7fff;
        double got = ct_f16_to_f32(mag);
        double below = mag ? ct_f16_to_f32((uint16_t)(mag - 1)) : 0.0;
        double above = ct_f16_to_f32((uint16_t)(mag + 1));
        double err = fabs(got - ax);
        cr_assert(err <= fabs(ax - below) && err <= fabs(above - ax), "%a -> %04x", x, h);
        if (err == fabs(ax - below) && mag) cr_assert((mag & 1) == 0, "tie not even: %a", x);
        if (err == fabs(above - ax)) cr_assert((mag & 1) == 0, "tie not even: %a", x);
    }
}

/* ---- BF16 ---- */

Test(bf16, exact_values_round_trip) {
    const struct {
        float f;
        uint16_t h;
    } c[] = {
        {0.0f, 0x0000}, {1.0f, 0x3f80}, {-2.0f, 0xc000}, {0.5f, 0x3f00}, {3.0f, 0x4040},
        {1.0078125f, 0x3f81},
        {0x1.fep127f, 0x7f7f}, /* max finite */
        {0x1p-126f, 0x0080},   /* min normal */
        {0x1p-133f, 0x0001},   /* min subnormal */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cr_expect_eq(ct_f32_to_bf16(c[i].f), c[i].h, "%g -> %04x", c[i].f, ct_f32_to_bf16(c[i].f));
        cr_expect_eq(ct_bf16_to_f32(c[i].h), c[i].f, "%04x", c[i].h);
    }
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7f80) == 0x7f80) continue;
        cr_assert_eq(ct_f32_to_bf16(ct_bf16_to_f32((uint16_t)h)), h, "%04x", h);
    }
}

Test(bf16, round_to_nearest_even) {
    /* 1 + 2^-8 is halfway between 0x3f80 (even) and 0x3f81: down. */
    cr_expect_eq(ct_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3 * 2^-8 is halfway between 0x3f81 (odd) and 0x3f82: up. */
    cr_expect_eq(ct_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    cr_expect_eq(ct_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_expect_eq(ct_f32_to_bf16(bitsf(0x3f80ffff)), 0x3f81);
    cr_expect_eq(ct_f32_to_bf16(bitsf(0x3f807fff)), 0x3f80);
    /* Carry through the mantissa into the exponent. */
    cr_expect_eq(ct_f32_to_bf16(bitsf(0x3fffffff)), 0x4000);
}

Test(bf16, overflow_inf_nan) {
    cr_expect_eq(ct_f32_to_bf16(INFINITY), 0x7f80);
    cr_expect_eq(ct_f32_to_bf16(-INFINITY), 0xff80);
    cr_expect_eq(ct_f32_to_bf16(FLT_MAX), 0x7f80); /* rounds past 0x7f7f */
    cr_expect(isinf(ct_bf16_to_f32(0x7f80)));
    uint16_t h = ct_f32_to_bf16(NAN);
    cr_expect((h & 0x7f80) == 0x7f80 && (h & 0x0040), "%04x", h);
    /* Payload only in the dropped bits: still NaN, not inf. */
    h = ct_f32_to_bf16(bitsf(0x7f800001));
    cr_expect((h & 0x7f80) == 0x7f80 && (h & 0x007f), "%04x", h);
    /* Near-max NaN patterns must not carry into the sign. */
    h = ct_f32_to_bf16(bitsf(0x7fffffff));
    cr_expect_eq(h & 0x8000, 0, "%04x", h);
    cr_expect(isnan(ct_bf16_to_f32(h)));
    float f = ct_bf16_to_f32(0x7f81); /* signalling -> quiet */
    cr_expect(isnan(f) && (fbits(f) & 0x00400000));
}

/* ---- shapes ---- */

Test(shape, numel_equal) {
    cr_expect_eq(ct_shape_numel((ct_shape){0, {0}}), 1);
    cr_expect_eq(ct_shape_numel((ct_shape){2, {64, 784}}), 64 * 784);
    cr_expect_eq(ct_shape_numel((ct_shape){3, {4, 0, 5}}), 0);
    cr_expect_lt(ct_shape_numel((ct_shape){2, {4, -1}}), 0);
    cr_expect_lt(ct_shape_numel((ct_shape){CT_MAX_DIMS + 1, {0}}), 0);
    /* Dims past ndim do not matter. */
    cr_expect(ct_shape_equal((ct_shape){2, {3, 4, 9}}, (ct_shape){2, {3, 4, 7}}));
    cr_expect(!ct_shape_equal((ct_shape){2, {3, 4}}, (ct_shape){2, {4, 3}}));
    cr_expect(!ct_shape_equal((ct_shape){1, {3}}, (ct_shape){2, {3, 1}}));
    cr_expect(ct_shape_equal((ct_shape){0, {1}}, (ct_shape){0, {2}}));
}

Test(shape, str) {
    char buf[64];
    cr_expect_str_eq(ct_shape_str((ct_shape){2, {64, 784}}, buf, sizeof buf), "[64, 784]");
    cr_expect_str_eq(ct_shape_str((ct_shape){0, {0}}, buf, sizeof buf), "[]");
    cr_expect_str_eq(ct_shape_str((ct_shape){1, {7}}, buf, sizeof buf), "[7]");
    cr_expect_str_eq(ct_shape_str((ct_shape){4, {8, 3, 5, 5}}, buf, sizeof buf), "[8, 3, 5, 5]");
    ct_shape big = {8, {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX,
                        INT64_MAX, INT64_MAX}};
    char large[256];
    ct_shape_str(big, large, sizeof large);
    cr_expect_eq(strlen(large), 2 + 8 * 19 + 7 * 2);
    /* Truncation: every capacity gives a NUL-terminated prefix, no overrun. */
    const char *full = "[64, 784]";
    for (size_t cap = 1; cap <= 12; cap++) {
        char small[16];
        memset(small, 'x', sizeof small);
        ct_shape_str((ct_shape){2, {64, 784}}, small, cap);
        size_t want = cap - 1 < strlen(full) ? cap - 1 : strlen(full);
        cr_expect_eq(strlen(small), want, "cap %zu: '%s'", cap, small);
        cr_expect_eq(strncmp(small, full, want), 0, "cap %zu", cap);
        for (size_t k = cap; k < sizeof small; k++) cr_expect_eq(small[k], 'x', "overrun at %zu", k);
    }
    /* cap 0 writes nothing. */
    char none[1] = {'x'};
    ct_shape_str((ct_shape){1, {3}}, none, 0);
    cr_expect_eq(none[0], 'x');
    ct_shape_str((ct_shape){-1, {0}}, buf, sizeof buf);
    cr_expect(buf[0] == '[' && strlen(buf) < sizeof buf);
}

/* ---- errors ---- */

Test(error, last_error_roundtrip) {
    ct_clear_error();
    cr_expect_str_eq(ct_last_error(), "");
    cr_expect_eq(ct_last_status(), CT_OK);
    cr_expect_eq(ct_error(CT_ERR_SHAPE, "matmul: %d vs %d", 3, 4), CT_ERR_SHAPE);
    cr_expect_eq(ct_last_status(), CT_ERR_SHAPE);
    cr_expect_str_eq(ct_last_error(), "matmul: 3 vs 4");
    /* Wrapping the previous message must not corrupt it. */
    ct_error(CT_ERR_IO, "load: %s", ct_last_error());
    cr_expect_str_eq(ct_last_error(), "load: matmul: 3 vs 4");
    ct_clear_error();
    cr_expect_str_eq(ct_last_error(), "");
    cr_expect_eq(ct_last_status(), CT_OK);
}

Test(error, long_message_truncated) {
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ct_error(CT_ERR_INTERNAL, "%s", big);
    size_t n = strlen(ct_last_error());
    cr_expect(n > 500 && n < 2000, "length %zu", n);
}

Test(error, status_names) {
    cr_expect_str_eq(ct_status_name(CT_OK), "ok");
    cr_expect_str_eq(ct_status_name(CT_ERR_SHAPE), "shape error");
    cr_expect_str_eq(ct_status_name(CT_ERR_INVALID_ARG), "invalid argument");
    cr_expect_str_eq(ct_status_name(CT_ERR_DTYPE), "dtype error");
    for (int s = CT_OK; s <= CT_ERR_INTERNAL; s++) {
        const char *name = ct_status_name((ct_status)s);
        cr_expect(name && *name && strcmp(name, "unknown status") != 0, "status %d", s);
        for (int t = CT_OK; t < s; t++)
            cr_expect(strcmp(name, ct_status_name((ct_status)t)) != 0, "duplicate %d %d", s, t);
    }
    cr_expect_str_eq(ct_status_name((ct_status)1000), "unknown status");
}

static void *other_thread(void *arg) {
    (void)arg;
    /* A fresh thread starts clean, and its error stays its own. */
    int clean = ct_last_status() == CT_OK && ct_last_error()[0] == '\0';
    ct_error(CT_ERR_IO, "thread's own error");
    return clean ? (void *)1 : NULL;
}

Test(error, per_thread) {
    ct_error(CT_ERR_SHAPE, "main thread");
    pthread_t t;
    void *res = NULL;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    cr_assert_eq(pthread_join(t, &res), 0);
    cr_expect_not_null(res, "new thread saw the main thread's error");
    cr_expect_eq(ct_last_status(), CT_ERR_SHAPE);
    cr_expect_str_eq(ct_last_error(), "main thread");
}
