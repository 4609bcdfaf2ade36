/* Fast paths of the elementwise kernels for F32 tensors (cpu_simd.h):
 * binary ops over rows (same shapes, bias rows, scalars) and SUM_TO over
 * leading axes (bias gradients). Same bits as the reference loops of
 * k_elementwise.c; tests/test_cpu_fast.c compares them.
 *
 * Binary ops compute in float where the reference computes in double and
 * rounds to float once: for +, -, * and / of two floats the two are the
 * same number. A double has 53 bits, more than 2 * 24 + 2, and with that
 * margin rounding the exact result to double and then to float gives the
 * float nearest the exact result, as rounding it to float once does
 * (Figueroa, "When is double rounding innocuous?", 1995); overflow and
 * underflow land on the same infinities and subnormals. Floats are twice as
 * many per vector as doubles, and nothing is converted.
 *
 * SUM_TO keeps the reference's double sums, each column's in row order; the
 * loop runs across columns, so it vectorises without reordering any sum.
 */
#include <string.h>

#include "core/bf16_bits.h"
#include "cpu/cpu_half.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

#define PAR_MIN ((int64_t)1 << 15)

typedef struct bin_job {
    ct_op op;
    const float *a, *b;
    float *o;
    int64_t m; /* row length */
    bool a_full, b_full, relu;
} bin_job;

/* Rows [lo, hi). An operand either is the output or does not overlap it
 * (the planner's rule), so each element's loads precede its store. */
static CT_ALWAYS_INLINE void bin_body(const bin_job *k, int64_t lo, int64_t hi) {
    const int64_t m = k->m;
    for (int64_t r = lo; r < hi; r++) {
        const float *ra = k->a_full ? k->a + r * m : k->a, *rb = k->b_full ? k->b + r * m : k->b;
        float *ro = k->o + r * m;
        switch (k->op) {
        case CT_OP_ADD:
            CT_SIMD_LOOP
            for (int64_t j = 0; j < m; j++) ro[j] = ra[j] + rb[j];
            break;
        case CT_OP_SUB:
            CT_SIMD_LOOP
            for (int64_t j = 0; j < m; j++) ro[j] = ra[j] - rb[j];
            break;
        case CT_OP_MUL:
            CT_SIMD_LOOP
            for (int64_t j = 0; j < m; j++) ro[j] = ra[j] * rb[j];
            break;
        default: /* CT_OP_DIV */
            CT_SIMD_LOOP
            for (int64_t j = 0; j < m; j++) ro[j] = ra[j] / rb[j];
            break;
        }
        if (k->relu) { /* a fused relu, on the row while it is in cache */
            CT_SIMD_LOOP
            for (int64_t j = 0; j < m; j++) ro[j] = ct_relu_f32(ro[j]);
        }
    }
}
CT_RANGE_KERNEL(bin_worker, bin_body, bin_job)

/* out = a op b over `rows` rows of m elements, F32 throughout, as
 * binary_rows() of k_elementwise.c; false when not F32 (or switched off). */
bool ct_cpu_fast_binary_rows(ct_op op, const ct_tview *a, bool a_full, const ct_tview *b, bool b_full,
                             const ct_tview *o, int64_t m, int64_t rows, bool relu) {
    if (a->dtype != CT_F32 || b->dtype != CT_F32 || o->dtype != CT_F32 || !ct_cpu_fast_paths_enabled())
        return false;
    if (op != CT_OP_ADD && op != CT_OP_SUB && op != CT_OP_MUL && op != CT_OP_DIV) return false;
    const bin_job k = {op, a->data, b->data, o->data, m, a_full, b_full, relu};
    /* rows split across threads as the reference's schedule(static) does */
    ct_par_ranges(rows, o->numel >= PAR_MIN ? 1 : INT64_MAX, bin_worker(), &k);
    return true;
}

/* ---- SUM_TO over leading axes ------------------------------------------- */

#define SUM_COLS 512 /* doubles of stack per block of columns */

typedef struct sum_job {
    const float *x;
    float *o;
    int64_t rows, m;
} sum_job;

/* Columns [lo, hi), SUM_COLS at a time: each column's sum starts at 0.0
 * and adds rows 0, 1, ... in order, in double, as the reference does. */
static CT_ALWAYS_INLINE void sum_body(const sum_job *k, int64_t lo, int64_t hi) {
    double acc[SUM_COLS];
    for (int64_t c0 = lo; c0 < hi; c0 += SUM_COLS) {
        const int64_t len = hi - c0 < SUM_COLS ? hi - c0 : SUM_COLS;
        for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
        for (int64_t r = 0; r < k->rows; r++) {
            const float *row = k->x + r * k->m + c0;
            CT_SIMD_LOOP
            for (int64_t j = 0; j < len; j++) acc[j] += (double)row[j];
        }
        for (int64_t j = 0; j < len; j++) k->o[c0 + j] = (float)acc[j];
    }
}
CT_RANGE_KERNEL(sum_worker, sum_body, sum_job)

/* o[j] = sum over r of x[r * m + j], for x [rows, m] and o [m] in F32;
 * false when not F32 (or switched off). */
bool ct_cpu_fast_sum_rows(const ct_tview *x, const ct_tview *o, int64_t rows, int64_t m) {
    if (x->dtype != CT_F32 || o->dtype != CT_F32 || !ct_cpu_fast_paths_enabled()) return false;
    const sum_job k = {x->data, o->data, rows, m};
    ct_par_ranges(m, x->numel >= PAR_MIN ? 1 : INT64_MAX, sum_worker(), &k);
    return true;
}

/* ---- CAST between F32 and the half types ----------------------------------- */

typedef struct cast_job {
    const void *x;
    void *o;
    ct_dtype from, to;
} cast_job;

/* Elements [lo, hi): the reference's ct_ld / ct_st go through double, which
 * is exact for these pairs (a half widens exactly; double -> float of a
 * float is the identity), so converting directly is the same function. */
static CT_ALWAYS_INLINE void cast_body(const cast_job *k, int64_t lo, int64_t hi) {
    if (k->from == CT_F32) { /* to F16 or BF16: cpu_half.h, which fused casts share */
        ct_cpu_put_half(k->o, k->to, lo, (const float *)k->x + lo, hi - lo);
    } else if (k->from == CT_BF16) { /* to F32 */
        const uint16_t *x = k->x;
        float *o = k->o;
        CT_SIMD_LOOP
        for (int64_t i = lo; i < hi; i++) {
            uint32_t u = ct_bf16_to_bits(x[i]);
            memcpy(&o[i], &u, sizeof u);
        }
    } else { /* F16 to F32 */
        const uint16_t *x = k->x;
        float *o = k->o;
        for (int64_t i = lo; i < hi; i++) o[i] = ct_f16_to_f32(x[i]);
    }
}
CT_RANGE_KERNEL(cast_worker, cast_body, cast_job)

/* CAST between F32 and F16 or BF16 (either way), threaded and vectorised;
 * false for other pairs (or switched off). */
bool ct_cpu_fast_cast(const ct_tview *x, const ct_tview *o) {
    ct_dtype f = x->dtype, t = o->dtype;
    bool half_f = ct_cpu_is_half(f), half_t = ct_cpu_is_half(t);
    if (!ct_cpu_fast_paths_enabled() || !((f == CT_F32 && half_t) || (half_f && t == CT_F32))) return false;
    const cast_job k = {x->data, o->data, f, t};
    ct_par_ranges(o->numel, PAR_MIN, cast_worker(), &k);
    return true;
}
