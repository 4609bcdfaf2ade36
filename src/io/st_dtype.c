/* The safetensors dtype table and a UTF-8 check, shared by reader and writer. */
#include <stdint.h>
#include <string.h>

#include "io/st_dtype.h"

/* Ranks follow the reference implementation's enum order (BOOL, U8, I8,
 * F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64); the
 * dtypes added later to the specification are slotted in by width. Only the
 * relative order of ctrain's own dtypes affects what we write. */
static const st_dtype_info k_types[] = {
    {"BOOL", 8, ST_KIND_UINT, CT_DTYPE_COUNT, 0},
    {"F4", 4, ST_KIND_RAW, CT_DTYPE_COUNT, 1},
    {"F6_E2M3", 6, ST_KIND_RAW, CT_DTYPE_COUNT, 2},
    {"F6_E3M2", 6, ST_KIND_RAW, CT_DTYPE_COUNT, 3},
    {"U8", 8, ST_KIND_UINT, CT_U8, 4},
    {"I8", 8, ST_KIND_SINT, CT_DTYPE_COUNT, 5},
    {"F8_E5M2", 8, ST_KIND_RAW, CT_DTYPE_COUNT, 6},
    {"F8_E4M3", 8, ST_KIND_RAW, CT_DTYPE_COUNT, 7},
    {"F8_E8M0", 8, ST_KIND_RAW, CT_DTYPE_COUNT, 8},
    {"I16", 16, ST_KIND_SINT, CT_DTYPE_COUNT, 9},
    {"U16", 16, ST_KIND_UINT, CT_DTYPE_COUNT, 10},
    {"F16", 16, ST_KIND_FLOAT, CT_F16, 11},
    {"BF16", 16, ST_KIND_FLOAT, CT_BF16, 12},
    {"I32", 32, ST_KIND_SINT, CT_I32, 13},
    {"U32", 32, ST_KIND_UINT, CT_DTYPE_COUNT, 14},
    {"F32", 32, ST_KIND_FLOAT, CT_F32, 15},
    {"C64", 64, ST_KIND_RAW, CT_DTYPE_COUNT, 16},
    {"F64", 64, ST_KIND_FLOAT, CT_F64, 17},
    {"I64", 64, ST_KIND_SINT, CT_DTYPE_COUNT, 18},
    {"U64", 64, ST_KIND_UINT, CT_DTYPE_COUNT, 19},
};

const st_dtype_info *st_dtype_by_name(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (strcmp(k_types[i].name, name) == 0) return &k_types[i];
    return NULL;
}

const st_dtype_info *st_dtype_by_ct(ct_dtype dt) {
    if ((int)dt < 0 || dt >= CT_DTYPE_COUNT) return NULL;
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (k_types[i].ct == dt) return &k_types[i];
    return NULL;
}

/* The header is JSON, which must be UTF-8; PyTorch's side rejects a file
 * whose header is not, so the writer must never produce one. */
bool st_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int extra;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false; /* a continuation byte first, or 0xc0/0xc1/0xf5+ */
        }
        if (len - i <= (size_t)extra) return false;
        for (int k = 1; k <= extra; k++) {
            unsigned cc = p[i + (size_t)k];
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += (size_t)extra + 1;
    }
    return true;
}
