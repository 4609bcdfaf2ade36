/* Element types, the F16/BF16 storage conversions, and shape helpers.
 *
 * The conversions are done on the bit patterns rather than through a compiler
 * _Float16 / __bf16 type: those are not in C11, differ between gcc and clang
 * versions, and may follow the current FP rounding mode. Bit arithmetic gives
 * the same answer everywhere, which is what the CPU reference must do for
 * mixed-precision parity tests against the GPU.
 */
#include <stdio.h>
#include <string.h>

#include "core/bf16_bits.h"
#include "ctrain/dtype.h"

size_t ct_dtype_size(ct_dtype dt) {
    switch (dt) {
    case CT_F32: return 4;
    case CT_F64: return 8;
    case CT_F16: return 2;
    case CT_BF16: return 2;
    case CT_I32: return 4;
    case CT_U8: return 1;
    case CT_DTYPE_COUNT: break;
    }
    return 0;
}

const char *ct_dtype_name(ct_dtype dt) {
    switch (dt) {
    case CT_F32: return "f32";
    case CT_F64: return "f64";
    case CT_F16: return "f16";
    case CT_BF16: return "bf16";
    case CT_I32: return "i32";
    case CT_U8: return "u8";
    case CT_DTYPE_COUNT: break;
    }
    return "?";
}

bool ct_dtype_is_float(ct_dtype dt) {
    return dt == CT_F32 || dt == CT_F64 || dt == CT_F16 || dt == CT_BF16;
}

/* memcpy is the one type pun C11 defines; compilers turn it into a move. */
static inline uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Shifts m right by `shift` (1..31) rounding to nearest, ties to even. */
static inline uint32_t shift_round_even(uint32_t m, int shift) {
    uint32_t q = m >> shift;
    uint32_t rem = m & ((UINT32_C(1) << shift) - 1);
    uint32_t half = UINT32_C(1) << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

uint16_t ct_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t mant = u & 0x7fffff;

    if (exp == 0xff) {
        /* Keep the top payload bits and force the quiet bit: a payload that
         * lived only in the low 13 bits would otherwise turn into inf. */
        if (mant) return (uint16_t)(sign | 0x7e00 | (mant >> 13));
        return (uint16_t)(sign | 0x7c00);
    }
    int e = (int)exp - 127;
    if (e > 15) return (uint16_t)(sign | 0x7c00); /* beyond 65504 even before rounding */
    if (e >= -14) {
        /* A normal half. Rounding may carry into the exponent, which is the
         * right answer (1.11..1 * 2^k -> 2^(k+1)), and at the top it carries
         * 0x7bff into 0x7c00, i.e. overflow to inf, also right. */
        uint32_t h = ((uint32_t)(e + 15) << 10) | (mant >> 13);
        uint32_t rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    /* Subnormal half (or zero): count units of 2^-24. A value below 2^-25 is
     * under half a unit and goes to zero; this also covers f32 subnormals. */
    if (e < -25) return sign;
    uint32_t m = mant | 0x800000; /* value = m * 2^(e - 23) */
    /* units = m * 2^(e + 1), with e + 1 in [-24, -14]. The result can reach
     * 0x400, which is exactly the encoding of the smallest normal. */
    uint32_t q = shift_round_even(m, -(e + 1));
    return (uint16_t)(sign | q);
}

float ct_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) {
        /* inf stays inf; a NaN keeps its payload and comes out quiet. */
        if (mant) return bits_f32(sign | 0x7fc00000 | (mant << 13));
        return bits_f32(sign | 0x7f800000);
    }
    if (exp == 0) {
        /* Zero or subnormal: mant * 2^-24 is exact in float (10 bits). */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

uint16_t ct_f32_to_bf16(float x) { return ct_bf16_from_bits(f32_bits(x)); }

float ct_bf16_to_f32(uint16_t h) { return bits_f32(ct_bf16_to_bits(h)); }

static bool shape_valid(const ct_shape *s) {
    if (s->ndim < 0 || s->ndim > CT_MAX_DIMS) return false;
    for (int d = 0; d < s->ndim; d++)
        if (s->dim[d] < 0) return false;
    return true;
}

int64_t ct_shape_numel(ct_shape s) {
    /* -1 marks a malformed shape (ndim out of range or a negative size), so
     * a caller that checks `< 0` catches it and one that does not fails on a
     * huge allocation rather than silently getting 0 elements. */
    if (!shape_valid(&s)) return -1;
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

bool ct_shape_equal(ct_shape a, ct_shape b) {
    /* Dims past ndim are whatever the literal left there, so only the first
     * ndim are compared; the clamp keeps a corrupt ndim inside the array. */
    if (a.ndim != b.ndim) return false;
    int n = a.ndim < CT_MAX_DIMS ? a.ndim : CT_MAX_DIMS;
    for (int d = 0; d < n; d++)
        if (a.dim[d] != b.dim[d]) return false;
    return true;
}

char *ct_shape_str(ct_shape s, char *buf, size_t cap) {
    if (!buf || cap == 0) return buf;
    if (s.ndim < 0 || s.ndim > CT_MAX_DIMS) {
        snprintf(buf, cap, "[? ndim=%d]", s.ndim);
        return buf;
    }
    /* snprintf returns the length it wanted; once that passes cap the text
     * is cut and NUL-terminated already, and later pieces are skipped. */
    size_t pos = 0;
    buf[0] = '\0';
    for (int d = -1; d <= s.ndim && pos < cap; d++) {
        int n;
        if (d == -1)
            n = snprintf(buf + pos, cap - pos, "[");
        else if (d == s.ndim)
            n = snprintf(buf + pos, cap - pos, "]");
        else
            n = snprintf(buf + pos, cap - pos, "%s%lld", d ? ", " : "", (long long)s.dim[d]);
        if (n < 0) break;
        pos += (size_t)n;
    }
    return buf;
}
