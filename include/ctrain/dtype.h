/* Element types and shapes.
 *
 * F16 and BF16 are storage types: ops read them, compute in F32 and round the
 * result back (round to nearest even). F64 is for gradient checks and
 * references. I32 holds indices and labels, U8 raw bytes such as pixels.
 */
#ifndef CTRAIN_DTYPE_H
#define CTRAIN_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_dtype {
    CT_F32 = 0, /* the default: zero-initialised options mean F32 */
    CT_F64,
    CT_F16,
    CT_BF16,
    CT_I32,
    CT_U8,
    CT_DTYPE_COUNT
} ct_dtype;

/* Bytes per element (0 for an invalid dtype). */
size_t ct_dtype_size(ct_dtype dt);
/* "f32", "f64", "f16", "bf16", "i32", "u8"; "?" for an invalid dtype. */
const char *ct_dtype_name(ct_dtype dt);
/* True for F64, F32, F16, BF16. */
bool ct_dtype_is_float(ct_dtype dt);

/* IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN).
 * The 16-bit values are the raw bit patterns, as stored in F16/BF16 tensors. */
uint16_t ct_f32_to_f16(float x);
/* The float an IEEE half bit pattern stands for (exact). */
float ct_f16_to_f32(uint16_t h);
/* float to bfloat16 bits, rounding to nearest even. */
uint16_t ct_f32_to_bf16(float x);
/* The float a bfloat16 bit pattern stands for (exact). */
float ct_bf16_to_f32(uint16_t h);

#define CT_MAX_DIMS 8

/* A tensor shape: ndim sizes, outermost first (row-major). A scalar has
 * ndim 0. Write literals as (ct_shape){2, {64, 784}}. */
typedef struct ct_shape {
    int ndim;
    int64_t dim[CT_MAX_DIMS];
} ct_shape;

/* Number of elements (1 for a scalar). */
int64_t ct_shape_numel(ct_shape s);
/* True if a and b have the same ndim and sizes (entries past ndim ignored). */
bool ct_shape_equal(ct_shape a, ct_shape b);
/* Writes "[64, 784]" into buf (always NUL-terminated); returns buf. */
char *ct_shape_str(ct_shape s, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
