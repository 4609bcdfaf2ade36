/* Fast paths of layer norm for F32 tensors: the forward pass, the input
 * gradient and the bias/weight gradients of k_norm.c, with typed float loads
 * instead of the per-element dtype switch, the same double arithmetic in the
 * same order (the row sums stay sequential, as the reference's), and the
 * bias gradient shared out across threads by columns. The elementwise loops
 * (normalise, the input gradient's last pass, the parameter gradients'
 * accumulation across a row) vectorise. tests/test_cpu_fast.c compares
 * them with the reference loops.
 */
#include <math.h>
#include <omp.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

#define PAR_MIN 4096 /* as k_norm.c's */
#define LN_COLS 2048 /* as k_norm.c's NORM_BLOCK: doubles of stack */

/* ln_row_stats() of k_norm.c on a float row. */
static void row_stats(const float *x, int64_t dim, double eps, double *mean, double *rstd) {
    double sum = 0.0;
    for (int64_t j = 0; j < dim; j++) sum += x[j];
    double m = sum / (double)dim, sq = 0.0;
    for (int64_t j = 0; j < dim; j++) {
        double t = x[j] - m;
        sq += t * t;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(sq / (double)dim + eps);
}

/* y = (x - mean) * rstd [* w] [+ b], row by row, rows across threads. */
bool ct_cpu_fast_layer_norm(const ct_tview *x, const ct_tview *w, const ct_tview *b, const ct_tview *out,
                            int64_t rows, int64_t dim, double eps) {
    if (x->dtype != CT_F32 || out->dtype != CT_F32 || (w && w->dtype != CT_F32) || (b && b->dtype != CT_F32) ||
        !ct_cpu_fast_paths_enabled())
        return false;
    const float *xs = x->data, *ws = w ? w->data : NULL, *bs = b ? b->data : NULL;
    float *os = out->data;
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = xs + r * dim;
        float *orow = os + r * dim;
        double mean, rstd;
        row_stats(xr, dim, eps, &mean, &rstd);
        if (ws && bs)
            for (int64_t j = 0; j < dim; j++) orow[j] = (float)((xr[j] - mean) * rstd * ws[j] + bs[j]);
        else if (ws)
            for (int64_t j = 0; j < dim; j++) orow[j] = (float)((xr[j] - mean) * rstd * ws[j]);
        else if (bs)
            for (int64_t j = 0; j < dim; j++) orow[j] = (float)((xr[j] - mean) * rstd + bs[j]);
        else
            for (int64_t j = 0; j < dim; j++) orow[j] = (float)((xr[j] - mean) * rstd);
    }
    return true;
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy [* w]. */
bool ct_cpu_fast_layer_norm_grad_x(const ct_tview *x, const ct_tview *dy, const ct_tview *w, const ct_tview *out,
                                   int64_t rows, int64_t dim, double eps) {
    if (x->dtype != CT_F32 || dy->dtype != CT_F32 || out->dtype != CT_F32 || (w && w->dtype != CT_F32) ||
        !ct_cpu_fast_paths_enabled())
        return false;
    const float *xs = x->data, *dys = dy->data, *ws = w ? w->data : NULL;
    float *os = out->data;
    const double inv_dim = 1.0 / (double)dim;
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = xs + r * dim, *dyr = dys + r * dim;
        float *orow = os + r * dim;
        double mean, rstd;
        row_stats(xr, dim, eps, &mean, &rstd);
        double sum_g = 0.0, sum_g_xhat = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            double g = (double)dyr[j] * (ws ? (double)ws[j] : 1.0);
            sum_g += g;
            sum_g_xhat += g * (xr[j] - mean) * rstd;
        }
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
    return true;
}

/* The parameter gradients, sums over rows per feature, each in row order:
 * dbias = sum dy, dweight = sum dy * xhat. Columns are shared out across
 * threads (the weight gradient's threads each recompute the row statistics
 * they need). */
bool ct_cpu_fast_layer_norm_grad_param(const ct_tview *x, const ct_tview *dy, const ct_tview *out, bool bias,
                                       int64_t rows, int64_t dim, double eps) {
    if (x->dtype != CT_F32 || dy->dtype != CT_F32 || out->dtype != CT_F32 || !ct_cpu_fast_paths_enabled())
        return false;
    const float *xs = x->data, *dys = dy->data;
    float *os = out->data;
    const bool par = bias && x->numel >= PAR_MIN;
#pragma omp parallel if (par)
    {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t per = (dim + nt - 1) / nt, lo = t * per, hi = lo + per < dim ? lo + per : dim;
        double acc[LN_COLS];
        for (int64_t j0 = lo; j0 < hi; j0 += LN_COLS) {
            const int64_t len = hi - j0 < LN_COLS ? hi - j0 : LN_COLS;
            for (int64_t j = 0; j < len; j++) acc[j] = 0.0;
            for (int64_t r = 0; r < rows; r++) {
                const float *dyr = dys + r * dim + j0;
                if (bias) {
                    for (int64_t j = 0; j < len; j++) acc[j] += dyr[j];
                } else {
                    const float *xr = xs + r * dim;
                    double mean, rstd;
                    row_stats(xr, dim, eps, &mean, &rstd);
                    for (int64_t j = 0; j < len; j++) acc[j] += dyr[j] * (xr[j0 + j] - mean) * rstd;
                }
            }
            for (int64_t j = 0; j < len; j++) os[j0 + j] = (float)acc[j];
        }
    }
    return true;
}
