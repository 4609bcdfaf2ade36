/* Internal: F32 <-> BF16 on bit patterns, inline, so the CPU's cast fast
 * path vectorises it (ct_f32_to_bf16 / ct_bf16_to_f32 in dtype.c are these
 * same functions behind the public API). */
#ifndef CT_CORE_BF16_BITS_H
#define CT_CORE_BF16_BITS_H

#include <stdint.h>

/* A NaN is truncated with its quiet bit forced, so a payload held only in
 * the dropped low bits cannot turn into inf. Otherwise round to nearest
 * even on the dropped 16 bits: adding 0x7fff (+1 when the kept part is odd)
 * carries exactly when the discarded half is above the midpoint (or at it
 * with an odd kept part); the largest finite values carry into 0x7f80, inf,
 * as they should. Infs pass unchanged. */
static inline uint16_t ct_bf16_from_bits(uint32_t u) {
    if ((u & 0x7f800000) == 0x7f800000 && (u & 0x7fffff)) return (uint16_t)((u >> 16) | 0x0040);
    u += UINT32_C(0x7fff) + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* The F32 bits of a BF16; a NaN comes out quiet. */
static inline uint32_t ct_bf16_to_bits(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7f800000) == 0x7f800000 && (u & 0x7fffff)) u |= 0x00400000;
    return u;
}

#endif
