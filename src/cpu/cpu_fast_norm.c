/* Fast paths of layer norm for F32 tensors: the forward pass, the input
 * gradient and the bias/weight gradients of k_norm.c, with typed float loads
 * instead of the per-element dtype switch, the same double arithmetic in the
 * same order (the row sums stay sequential, as the reference's), and the
 * bias gradient shared out across threads by columns. The elementwise loops
 * (normalise, the input gradient's last pass, the parameter gradients'
 * accumulation across a row) vectorise. tests/test_cpu_fast.c compares
 * them with the reference loops.
 *
 * Where the near-reference paths run (ct_cpu_float_math(): with the float
 * math of the transcendental ops, under the same switch), a row's sums
 * (its mean, its squared deviations, the input gradient's two sums) are
 * taken in LANES (32) fixed partial sums instead of one sequential chain,
 * which waits on one double addition per element; the arithmetic stays double,
 * the order depends only on the row length, so results still do not depend
 * on threads, and they stay within a float ULP or so of the reference's
 * (tests/test_ew_float.c); the CUDA kernel sums in a block-reduction order
 * of its own. The weight gradient then shares its columns out across
 * threads too.
 */
#include <math.h>
#include <omp.h>

#include "cpu/cpu_half.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/ops.h"

#define PAR_MIN 4096 /* as k_norm.c's */
#define LN_COLS 2048 /* as k_norm.c's NORM_BLOCK: doubles of stack */

/* Partial sums of a row, when the sums may be reordered: four vectors of
 * 8 doubles, so the additions do not wait on one another. */
#define LANES 32

/* The lanes' total, pairwise in a fixed order: lane l + 16 into l, then
 * l + 8, l + 4, l + 2, l + 1 (written out: a loop over the strides kept
 * the lanes on the stack, and the scalar additions through it cost more
 * than the row's sums). */
_Static_assert(LANES == 32, "lane_total adds 32 lanes");
static CT_ALWAYS_INLINE double lane_total(double *acc) {
    CT_SIMD_LOOP
    for (int l = 0; l < 16; l++) acc[l] += acc[l + 16];
    CT_SIMD_LOOP
    for (int l = 0; l < 8; l++) acc[l] += acc[l + 8];
    for (int l = 0; l < 4; l++) acc[l] += acc[l + 4];
    acc[0] += acc[2], acc[1] += acc[3];
    return acc[0] + acc[1];
}

/* The sums of x[j] and of (x[j] - m)^2 over a row in LANES fixed partial
 * sums (element j into lane j mod LANES): the same double arithmetic per
 * element as the sequential sums, in an order that does not wait on one
 * addition per element, and still depends on nothing but the row length. */
static CT_ALWAYS_INLINE double lane_sum(const float *x, int64_t dim) {
    double acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= dim; j += LANES) {
        CT_SIMD_LOOP
        for (int l = 0; l < LANES; l++) acc[l] += x[j + l];
    }
    for (int l = 0; j + l < dim; l++) acc[l] += x[j + l];
    return lane_total(acc);
}

static CT_ALWAYS_INLINE double lane_sq(const float *x, int64_t dim, double m) {
    double acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= dim; j += LANES) {
        CT_SIMD_LOOP
        for (int l = 0; l < LANES; l++) {
            double t = x[j + l] - m;
            acc[l] += t * t;
        }
    }
    for (int l = 0; j + l < dim; l++) {
        double t = x[j + l] - m;
        acc[l] += t * t;
    }
    return lane_total(acc);
}

/* ln_row_stats() of k_norm.c on a float row; with lanes, its sums in
 * LANES partial sums (the near-reference mode, below). */
static CT_ALWAYS_INLINE void row_stats(const float *x, int64_t dim, double eps, bool lanes, double *mean,
                                       double *rstd) {
    double sum = 0.0, m, sq = 0.0;
    if (lanes) {
        m = lane_sum(x, dim) / (double)dim;
        sq = lane_sq(x, dim, m);
    } else {
        for (int64_t j = 0; j < dim; j++) sum += x[j];
        m = sum / (double)dim;
        for (int64_t j = 0; j < dim; j++) {
            double t = x[j] - m;
            sq += t * t;
        }
    }
    *mean = m;
    *rstd = 1.0 / sqrt(sq / (double)dim + eps);
}

/* sum of g and of g * xhat over a row, g = dy [* w], xhat = (x - mean) rstd;
 * sequential (the reference's order) or in lanes. */
static CT_ALWAYS_INLINE void row_grad_sums(const float *x, const float *dy, const float *w, int64_t dim,
                                           double mean, double rstd, bool lanes, double *sum_g, double *sum_g_xhat) {
    if (!lanes) {
        double sg = 0.0, sgx = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            double g = (double)dy[j] * (w ? (double)w[j] : 1.0);
            sg += g;
            sgx += g * (x[j] - mean) * rstd;
        }
        *sum_g = sg, *sum_g_xhat = sgx;
        return;
    }
    double ag[LANES] = {0}, agx[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= dim; j += LANES) {
        CT_SIMD_LOOP
        for (int l = 0; l < LANES; l++) {
            double g = (double)dy[j + l] * (w ? (double)w[j + l] : 1.0);
            ag[l] += g;
            agx[l] += g * (x[j + l] - mean) * rstd;
        }
    }
    for (int l = 0; j + l < dim; l++) {
        double g = (double)dy[j + l] * (w ? (double)w[j + l] : 1.0);
        ag[l] += g;
        agx[l] += g * (x[j + l] - mean) * rstd;
    }
    *sum_g = lane_total(ag), *sum_g_xhat = lane_total(agx);
}

/* What the row and column workers read: the operands, the sizes and the
 * mode (lanes: the near-reference sums in LANES partial sums). */
typedef struct ln_job {
    const float *x, *dy, *w, *b;
    void *o;       /* float, except the forward's F16 / BF16 (half) */
    ct_dtype odt;  /* the output's dtype: F32, or the forward's F16 / BF16 (a fused cast) */
    double *stats; /* the weight gradient's rows' mean and rstd, in pairs */
    int64_t rows, dim;
    double eps;
    bool lanes, bias; /* bias: the parameter gradient is the bias's */
} ln_job;

/* The workers run as per-ISA clones (CT_RANGE_KERNEL): the double lanes
 * and the float-to-double conversions take 8 doubles a vector with
 * AVX-512, 2 in the baseline build (with 32 lanes: the GPT's [768, 128]
 * gradients 1.4-1.8x faster on two threads, benchmarks/cpu_kernels.c). The
 * same operations in the same order on every clone: the same bits. */

/* y[j] = (x[j] - mean) * rstd [* w[j]] [+ b[j]] for j in [j0, j0 + n),
 * into o[0, n). */
static CT_ALWAYS_INLINE void fwd_span(const ln_job *k, const float *xr, double mean, double rstd, int64_t j0,
                                      int64_t n, float *o) {
    const float *x = xr + j0, *ws = k->w ? k->w + j0 : NULL, *bs = k->b ? k->b + j0 : NULL;
    if (ws && bs)
        for (int64_t j = 0; j < n; j++) o[j] = (float)((x[j] - mean) * rstd * ws[j] + bs[j]);
    else if (ws)
        for (int64_t j = 0; j < n; j++) o[j] = (float)((x[j] - mean) * rstd * ws[j]);
    else if (bs)
        for (int64_t j = 0; j < n; j++) o[j] = (float)((x[j] - mean) * rstd + bs[j]);
    else
        for (int64_t j = 0; j < n; j++) o[j] = (float)((x[j] - mean) * rstd);
}

/* Rows [r0, r1): into the F32 output, or (a fused cast) LN_COLS
 * floats at a time into the stack, then rounded into the half output. */
static CT_ALWAYS_INLINE void fwd_rows(const ln_job *k, int64_t r0, int64_t r1) {
    const int64_t dim = k->dim;
    float buf[LN_COLS];
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = k->x + r * dim;
        double mean, rstd;
        row_stats(xr, dim, k->eps, k->lanes, &mean, &rstd);
        if (k->odt == CT_F32) {
            fwd_span(k, xr, mean, rstd, 0, dim, (float *)k->o + r * dim);
            continue;
        }
        for (int64_t j0 = 0; j0 < dim; j0 += LN_COLS) {
            const int64_t n = dim - j0 < LN_COLS ? dim - j0 : LN_COLS;
            fwd_span(k, xr, mean, rstd, j0, n, buf);
            ct_cpu_put_half(k->o, k->odt, r * dim + j0, buf, n);
        }
    }
}
CT_RANGE_KERNEL(fwd_worker, fwd_rows, ln_job)

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy [* w], over
 * rows [r0, r1). */
static CT_ALWAYS_INLINE void grad_x_rows(const ln_job *k, int64_t r0, int64_t r1) {
    const int64_t dim = k->dim;
    const double inv_dim = 1.0 / (double)dim;
    const float *ws = k->w;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = k->x + r * dim, *dyr = k->dy + r * dim;
        float *orow = (float *)k->o + r * dim;
        double mean, rstd, sum_g, sum_g_xhat;
        row_stats(xr, dim, k->eps, k->lanes, &mean, &rstd);
        row_grad_sums(xr, dyr, ws, dim, mean, rstd, k->lanes, &sum_g, &sum_g_xhat);
        const double mean_g = sum_g * inv_dim, mean_g_xhat = sum_g_xhat * inv_dim;
        if (ws)
            for (int64_t j = 0; j < dim; j++) {
                double g = (double)dyr[j] * (double)ws[j];
                double xhat = (xr[j] - mean) * rstd;
                orow[j] = (float)(rstd * (g - mean_g - xhat * mean_g_xhat));
            }
        else
            for (int64_t j = 0; j < dim; j++) {
                double g = (double)dyr[j] * 1.0;
                double xhat = (xr[j] - mean) * rstd;
                orow[j] = (float)(rstd * (g - mean_g - xhat * mean_g_xhat));
            }
    }
}
CT_RANGE_KERNEL(grad_x_worker, grad_x_rows, ln_job)

/* Each row's mean and rstd into stats, rows [r0, r1): row_stats once a
 * row, where every thread of the weight gradient's columns used to
 * recompute all of them (the same function: the same bits). */
static CT_ALWAYS_INLINE void stats_rows(const ln_job *k, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) row_stats(k->x + r * k->dim, k->dim, k->eps, k->lanes, &k->stats[2 * r],
                                                &k->stats[2 * r + 1]);
}
CT_RANGE_KERNEL(stats_worker, stats_rows, ln_job)

/* The parameter gradient's columns [lo, hi), each a sum over the rows in
 * row order: dbias = sum dy, dweight = sum dy * xhat (xhat from the rows'
 * statistics in k->stats). */
static CT_ALWAYS_INLINE void grad_param_cols(const ln_job *k, int64_t lo, int64_t hi) {
    const int64_t dim = k->dim;
    double acc[LN_COLS];
    for (int64_t j0 = lo; j0 < hi; j0 += LN_COLS) {
        const int64_t len = hi - j0 < LN_COLS ? hi - j0 : LN_COLS;
        for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
        for (int64_t r = 0; r < k->rows; r++) {
            const float *dyr = k->dy + r * dim + j0;
            if (k->bias) {
                for (int64_t j = 0; j < len; j++) acc[j] += dyr[j];
            } else {
                const float *xr = k->x + r * dim;
                const double mean = k->stats[2 * r], rstd = k->stats[2 * r + 1];
                for (int64_t j = 0; j < len; j++) acc[j] += dyr[j] * (xr[j0 + j] - mean) * rstd;
            }
        }
        for (int64_t j = 0; j < len; j++) ((float *)k->o)[j0 + j] = (float)acc[j];
    }
}
CT_RANGE_KERNEL(grad_param_worker, grad_param_cols, ln_job)

/* Rows across threads from PAR_MIN elements on. */
static int64_t par_rows(int64_t dim) { return (PAR_MIN + dim - 1) / dim; }

/* The output F32, or F16 / BF16 (a cast fused into the layer norm:
 * each value rounded from the float the F32 output would hold). */
bool ct_cpu_fast_layer_norm(const ct_tview *x, const ct_tview *w, const ct_tview *b, const ct_tview *out,
                            int64_t rows, int64_t dim, double eps) {
    bool half = ct_cpu_is_half(out->dtype);
    if (x->dtype != CT_F32 || (out->dtype != CT_F32 && !half) || (w && w->dtype != CT_F32) ||
        (b && b->dtype != CT_F32) || !ct_cpu_fast_paths_enabled())
        return false;
    const ln_job k = {.x = x->data, .w = w ? w->data : NULL, .b = b ? b->data : NULL, .o = out->data,
                      .odt = out->dtype, .rows = rows, .dim = dim, .eps = eps,
                      .lanes = ct_cpu_float_math()};
    ct_par_ranges(rows, par_rows(dim), fwd_worker(), &k);
    return true;
}

bool ct_cpu_fast_layer_norm_grad_x(const ct_tview *x, const ct_tview *dy, const ct_tview *w, const ct_tview *out,
                                   int64_t rows, int64_t dim, double eps) {
    if (x->dtype != CT_F32 || dy->dtype != CT_F32 || out->dtype != CT_F32 || (w && w->dtype != CT_F32) ||
        !ct_cpu_fast_paths_enabled())
        return false;
    const ln_job k = {.x = x->data, .dy = dy->data, .w = w ? w->data : NULL, .o = out->data, .rows = rows,
                      .dim = dim, .eps = eps, .lanes = ct_cpu_float_math()};
    ct_par_ranges(rows, par_rows(dim), grad_x_worker(), &k);
    return true;
}

size_t ct_cpu_layer_norm_stats_bytes(int64_t rows) { return (size_t)rows * 2 * sizeof(double); }

/* The weight gradient first takes every row's statistics (rows across
 * threads) into stats, scratch of ct_cpu_layer_norm_stats_bytes; then
 * columns are shared out across threads, for either gradient. */
bool ct_cpu_fast_layer_norm_grad_param(const ct_tview *x, const ct_tview *dy, const ct_tview *out, bool bias,
                                       int64_t rows, int64_t dim, double eps, void *stats) {
    if (x->dtype != CT_F32 || dy->dtype != CT_F32 || out->dtype != CT_F32 || (!bias && !stats) ||
        !ct_cpu_fast_paths_enabled())
        return false;
    const ln_job k = {.x = x->data, .dy = dy->data, .o = out->data, .stats = stats, .rows = rows, .dim = dim,
                      .eps = eps, .lanes = ct_cpu_float_math(), .bias = bias};
    if (!bias) ct_par_ranges(rows, par_rows(dim), stats_worker(), &k);
    const bool par = x->numel >= PAR_MIN;
    const ct_range_fn fn = grad_param_worker();
#pragma omp parallel if (par)
    {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t per = (dim + nt - 1) / nt, lo = t * per, hi = lo + per < dim ? lo + per : dim;
        if (lo < hi) fn(&k, lo, hi);
    }
    return true;
}
