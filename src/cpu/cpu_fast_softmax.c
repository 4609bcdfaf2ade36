/* F32 fast paths of softmax and log-softmax over the last axis, their
 * gradients, and cross-entropy's log-sum-exp and gradient: float
 * arithmetic with SLEEF's vector exp and log (cpu_vmath.h), where the
 * reference loops (k_reduce.c, k_nn.c) call libm's scalar exp in double.
 *
 * The formulas are the CUDA kernels' (k_softmax.cu, k_loss.cu on float):
 * the row's maximum subtracted before exp (a NaN anywhere makes the row
 * NaN), exp(z) / sum for softmax, z - log(sum) for log-softmax, softmax
 * minus the smoothed target for cross-entropy's gradient, as PyTorch does
 * in float. Sums over a row are float too, in a fixed order that depends
 * only on the row's length: LANES partial sums, element j into lane
 * j % LANES, combined pairwise at the end. That order vectorises, and it
 * is the same whatever the thread count, since a row is never split (rows
 * are shared out in fixed contiguous ranges, ct_par_ranges). Error against
 * the double reference: a few float ULP per element plus the float sum's
 * (about len / LANES additions per lane); tests/test_ew_float.c states the
 * tolerance.
 */
#include <math.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"

/* Elements below which one thread runs (as the reference's PAR_MIN_EXP). */
#define PAR_MIN ((int64_t)1 << 12)
#define BLK 256 /* a multiple of LANES */
#define LANES 16

/* acc[l] += v[j] for the elements j = l (mod LANES) of a block that starts
 * at a multiple of LANES within its row. */
static CT_ALWAYS_INLINE void lane_add(float *acc, const float *v, int64_t n) {
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES) {
        CT_SIMD_LOOP
        for (int l = 0; l < LANES; l++) acc[l] += v[j + l];
    }
    for (int l = 0; j + l < n; l++) acc[l] += v[j + l];
}

/* The lanes' sum, pairwise in a fixed order. */
static CT_ALWAYS_INLINE float lane_total(float *acc) {
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* The row's maximum; NaN if any element is NaN (as the reference's). */
static CT_ALWAYS_INLINE float row_max(const float *x, int64_t c) {
    float m[LANES];
    int nan[LANES];
    for (int l = 0; l < LANES; l++) m[l] = -INFINITY, nan[l] = 0;
    int64_t j = 0;
    for (; j + LANES <= c; j += LANES) {
        CT_SIMD_LOOP
        for (int l = 0; l < LANES; l++) {
            float v = x[j + l];
            m[l] = v > m[l] ? v : m[l];
            nan[l] |= v != v;
        }
    }
    for (int l = 0; j + l < c; l++) {
        float v = x[j + l];
        m[l] = v > m[l] ? v : m[l];
        nan[l] |= v != v;
    }
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) {
            m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
            nan[l] |= nan[l + w];
        }
    return nan[0] ? NAN : m[0];
}

/* sum of exp(x - m) over the row; with e_out, each exp stored there too
 * (e_out may be x: each block is read before it is written). */
static CT_ALWAYS_INLINE float row_sumexp(const float *x, float m, int64_t c, float *e_out) {
    float acc[LANES] = {0}, z[BLK];
    for (int64_t j0 = 0; j0 < c; j0 += BLK) {
        const int64_t n = c - j0 < BLK ? c - j0 : BLK;
        CT_SIMD_LOOP
        for (int64_t j = 0; j < n; j++) z[j] = x[j0 + j] - m;
        ct_vexpf(z, e_out ? e_out + j0 : z, n);
        lane_add(acc, e_out ? e_out + j0 : z, n);
    }
    return lane_total(acc);
}

static float logf1(float v) {
    float r;
    ct_vlogf(&v, &r, 1);
    return r;
}

/* log of the sum of exp over a row of c > 0 logits, max-subtracted. */
static CT_ALWAYS_INLINE float row_lse(const float *x, int64_t c) {
    float m = row_max(x, c);
    return m + logf1(row_sumexp(x, m, c, NULL));
}

/* Cross-entropy's forward: rows' log-sum-exps, compiled with the AVX2
 * clone too (the same bits: the lanes fix the order of the sums). */
typedef struct lse_job {
    const float *x;
    float *lse;
    int64_t c;
} lse_job;

static CT_ALWAYS_INLINE void lse_body(const lse_job *k, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) k->lse[r] = row_lse(k->x + r * k->c, k->c);
}
CT_RANGE_KERNEL(lse_worker, lse_body, lse_job)

void ct_cpu_rows_lse_vf(const float *x, int64_t rows, int64_t c, float *lse) {
    const lse_job k = {x, lse, c};
    ct_par_ranges(rows, rows * c >= PAR_MIN ? 1 : INT64_MAX, lse_worker(), &k);
}

/* ---- softmax and log-softmax ------------------------------------------- */

typedef struct sm_job {
    const float *x, *dy; /* gradient: x is the forward's output y */
    float *o;
    int64_t len;
    bool log_form;
} sm_job;

/* Rows [lo, hi) of the forward. o may be x. */
static CT_ALWAYS_INLINE void sm_body(const sm_job *k, int64_t lo, int64_t hi) {
    const int64_t c = k->len;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = k->x + r * c;
        float *o = k->o + r * c;
        const float m = row_max(x, c);
        if (k->log_form) {
            const float ls = logf1(row_sumexp(x, m, c, NULL));
            CT_SIMD_LOOP
            for (int64_t j = 0; j < c; j++) o[j] = (x[j] - m) - ls;
        } else {
            const float sum = row_sumexp(x, m, c, o);
            CT_SIMD_LOOP
            for (int64_t j = 0; j < c; j++) o[j] = o[j] / sum;
        }
    }
}
CT_RANGE_KERNEL(sm_worker, sm_body, sm_job)

/* Rows [lo, hi) of the gradient: softmax dx = y (dy - sum(dy y)),
 * log-softmax dx = dy - exp(y) sum(dy). o may be y or dy. */
static CT_ALWAYS_INLINE void smg_body(const sm_job *k, int64_t lo, int64_t hi) {
    const int64_t c = k->len;
    float p[BLK];
    for (int64_t r = lo; r < hi; r++) {
        const float *y = k->x + r * c, *dy = k->dy + r * c;
        float *o = k->o + r * c;
        float acc[LANES] = {0};
        for (int64_t j0 = 0; j0 < c; j0 += BLK) {
            const int64_t n = c - j0 < BLK ? c - j0 : BLK;
            if (k->log_form) {
                lane_add(acc, dy + j0, n);
                continue;
            }
            CT_SIMD_LOOP
            for (int64_t j = 0; j < n; j++) p[j] = dy[j0 + j] * y[j0 + j];
            lane_add(acc, p, n);
        }
        const float dot = lane_total(acc);
        for (int64_t j0 = 0; j0 < c; j0 += BLK) {
            const int64_t n = c - j0 < BLK ? c - j0 : BLK;
            if (k->log_form) {
                ct_vexpf(y + j0, p, n);
                CT_SIMD_LOOP
                for (int64_t j = 0; j < n; j++) o[j0 + j] = dy[j0 + j] - p[j] * dot;
            } else {
                CT_SIMD_LOOP
                for (int64_t j = 0; j < n; j++) o[j0 + j] = y[j0 + j] * (dy[j0 + j] - dot);
            }
        }
    }
}
CT_RANGE_KERNEL(smg_worker, smg_body, sm_job)

bool ct_cpu_fast_softmax(const ct_tview *x, const ct_tview *o, int64_t rows, int64_t len, bool log_form) {
    if (x->dtype != CT_F32 || o->dtype != CT_F32 || !ct_cpu_float_math()) return false;
    const sm_job k = {x->data, NULL, o->data, len, log_form};
    ct_par_ranges(rows, x->numel >= PAR_MIN ? 1 : INT64_MAX, sm_worker(), &k);
    return true;
}

bool ct_cpu_fast_softmax_grad(const ct_tview *y, const ct_tview *dy, const ct_tview *o, int64_t rows, int64_t len,
                              bool log_form) {
    if (y->dtype != CT_F32 || dy->dtype != CT_F32 || o->dtype != CT_F32 || !ct_cpu_float_math()) return false;
    const sm_job k = {y->data, dy->data, o->data, len, log_form};
    ct_par_ranges(rows, y->numel >= PAR_MIN ? 1 : INT64_MAX, smg_worker(), &k);
    return true;
}

/* ---- cross-entropy's gradient ------------------------------------------- */

typedef struct xg_job {
    const float *x;
    const int32_t *y;
    float *o;
    int64_t c;
    float g, on, off; /* dloss / N, the target's weight on and off the label */
} xg_job;

/* Rows [lo, hi): g (softmax(x) - t), softmax as exp(x - m) / sum, as the
 * softmax forward above and the CUDA kernel have it. The exps are stored
 * in o by the pass that sums them (a row of logits stays in L1/L2), so the
 * logits are read from memory once, o written once, and each element
 * takes one exp, not the two of recomputing p = exp((x - m) - log(sum))
 * (SLEEF's exp was half the gradient's time). o may be x. */
static CT_ALWAYS_INLINE void xg_body(const xg_job *k, int64_t lo, int64_t hi) {
    const int64_t c = k->c;
    const float g = k->g, on = k->on, off = k->off;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = k->x + r * c;
        float *o = k->o + r * c;
        const float sum = row_sumexp(x, row_max(x, c), c, o);
        const int64_t at = k->y[r];
        CT_SIMD_LOOP
        for (int64_t j = 0; j < c; j++) o[j] = g * (o[j] / sum - (j == at ? on : off));
    }
}
CT_RANGE_KERNEL(xg_worker, xg_body, xg_job)

bool ct_cpu_fast_xent_grad(const ct_tview *lg, const int32_t *labels, const ct_tview *o, int64_t n, int64_t c,
                           double g, double on, double off) {
    if (lg->dtype != CT_F32 || o->dtype != CT_F32 || c <= 0 || !ct_cpu_float_math()) return false;
    const xg_job k = {lg->data, labels, o->data, c, (float)g, (float)on, (float)off};
    ct_par_ranges(n, n * c >= PAR_MIN ? 1 : INT64_MAX, xg_worker(), &k);
    return true;
}
