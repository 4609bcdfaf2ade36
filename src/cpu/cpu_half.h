/* Writing float results as F16 or BF16 with CAST's rounding (round to
 * nearest even; a NaN stays a NaN, quiet): CAST's fast path
 * (cpu_fast_ew.c) and every kernel that writes the half output of a cast
 * fused into it (ct_attrs.fused_cast, core/program_fuse.c) round through
 * this one function, so a fused kernel's bytes are the two kernels'. */
#ifndef CT_CPU_HALF_H
#define CT_CPU_HALF_H

#include <stdint.h>
#include <string.h>

#include "core/bf16_bits.h"
#include "cpu/cpu_simd.h"
#include "ctrain/dtype.h"

/* F16 or BF16: the kernels' test for a half operand or output. */
static inline bool ct_cpu_is_half(ct_dtype dt) { return dt == CT_F16 || dt == CT_BF16; }

/* x[0, n) into elements [at, at + n) of o, an F16 or BF16 buffer (dt). */
static CT_ALWAYS_INLINE void ct_cpu_put_half(void *o, ct_dtype dt, int64_t at, const float *x, int64_t n) {
    uint16_t *h = (uint16_t *)o + at;
    if (dt == CT_BF16) {
        CT_SIMD_LOOP
        for (int64_t i = 0; i < n; i++) {
            uint32_t u; /* bits read through memcpy: no type punning */
            memcpy(&u, &x[i], sizeof u);
            h[i] = ct_bf16_from_bits(u);
        }
    } else {
        for (int64_t i = 0; i < n; i++) h[i] = ct_f32_to_f16(x[i]);
    }
}

#endif
