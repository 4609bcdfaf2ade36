/* Internal: the safetensors dtype table shared by the reader and the writer.
 *
 * The file format knows more dtypes than ctrain computes in; the reader must
 * size and bounds-check all of them (a PyTorch state_dict holds I64
 * counters), the writer only ever emits ctrain's own.
 */
#ifndef CT_IO_ST_DTYPE_H
#define CT_IO_ST_DTYPE_H

#include <stdbool.h>

#include "ctrain/dtype.h"

/* How a value of the dtype is read when converting (ct_st_read). */
typedef enum st_kind {
    ST_KIND_FLOAT, /* F64, F32, F16, BF16 */
    ST_KIND_SINT,  /* I8..I64 */
    ST_KIND_UINT,  /* U8..U64, BOOL */
    ST_KIND_RAW    /* F8_*, F6_*, F4, C64: bytes only */
} st_kind;

typedef struct st_dtype_info {
    const char *name; /* as spelled in the header */
    int bits;         /* per element; F4 and F6_* are below a byte */
    st_kind kind;
    ct_dtype ct;      /* CT_DTYPE_COUNT if ctrain has no such dtype */
    /* Position in the reference implementation's dtype order; its writer
     * lays tensors out by this, descending, so that wider types come first
     * and every tensor stays aligned. Reusing it makes our files
     * byte-identical to the reference writer's for the same tensors. */
    int rank;
} st_dtype_info;

/* The entry for a header spelling, NULL if unknown. */
const st_dtype_info *st_dtype_by_name(const char *name);
/* The entry for a ctrain dtype, NULL for an invalid one. */
const st_dtype_info *st_dtype_by_ct(ct_dtype dt);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool st_utf8_valid(const char *s, size_t len);

#endif
