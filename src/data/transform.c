/* Feature statistics and normalization.
 *
 * Both take a `len` that says how features are grouped: one group for
 * everything, one per channel (first sample dimension), or one per feature.
 * Within a sample, channel c is the contiguous block [c * inner, (c+1) *
 * inner) with inner = numel / channels, so element k of a sample belongs to
 * group k / (numel / len) in all three cases.
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "data/data_internal.h"

/* Elements of a sample per group for a valid len, or 0 for an invalid one. */
static int64_t group_inner(const ct_dataset *ds, int64_t len) {
    if (len == 1) return ds->numel;
    if (len == ds->numel) return 1;
    if (ds->shape.ndim >= 1 && len == ds->shape.dim[0]) return ds->numel / len;
    return 0;
}

static ct_status bad_len(const char *fn, const ct_dataset *ds, int64_t len) {
    char buf[128];
    return ct_error(CT_ERR_INVALID_ARG,
                    "%s: len %lld matches neither 1, the channels (%lld) nor the features (%lld) "
                    "of samples of shape %s",
                    fn, (long long)len, (long long)(ds->shape.ndim >= 1 ? ds->shape.dim[0] : 1),
                    (long long)ds->numel, ct_shape_str(ds->shape, buf, sizeof buf));
}

ct_status ct_dataset_stats(const ct_dataset *ds, int64_t len, float *mean, float *std) {
    if (!ds || !mean || !std) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_stats: NULL argument");
    int64_t inner = group_inner(ds, len);
    if (!inner) return bad_len("ct_dataset_stats", ds, len);
    double *sum = calloc((size_t)len, sizeof *sum);
    double *ssd = calloc((size_t)len, sizeof *ssd);
    if (!sum || !ssd) {
        free(sum);
        free(ssd);
        return ct_error(CT_ERR_OOM, "ct_dataset_stats: out of memory");
    }
    /* Two passes, mean first, then squared deviations from it: the one-pass
     * E[x^2] - E[x]^2 loses every digit when the mean dwarfs the spread. */
    const double count = (double)ds->n * (double)inner;
    for (int64_t i = 0; i < ds->n; i++) {
        const float *x = ds->x + i * ds->numel;
        for (int64_t g = 0; g < len; g++)
            for (int64_t j = 0; j < inner; j++) sum[g] += x[g * inner + j];
    }
    for (int64_t g = 0; g < len; g++) sum[g] /= count;
    for (int64_t i = 0; i < ds->n; i++) {
        const float *x = ds->x + i * ds->numel;
        for (int64_t g = 0; g < len; g++)
            for (int64_t j = 0; j < inner; j++) {
                double d = x[g * inner + j] - sum[g];
                ssd[g] += d * d;
            }
    }
    for (int64_t g = 0; g < len; g++) {
        double sd = sqrt(ssd[g] / count);
        mean[g] = (float)sum[g];
        /* A constant group would divide by zero; 1 makes normalizing it a
         * plain shift to zero, which is what a user of the stats wants. */
        std[g] = (sd > 0.0 && (float)sd > 0.0f) ? (float)sd : 1.0f;
    }
    free(sum);
    free(ssd);
    return CT_OK;
}

ct_status ct_dataset_normalize(ct_dataset *ds, int64_t len, const float *mean, const float *std) {
    if (!ds || !mean || !std)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_normalize: NULL argument");
    int64_t inner = group_inner(ds, len);
    if (!inner) return bad_len("ct_dataset_normalize", ds, len);
    /* Everything is checked before the first write, so a bad argument leaves
     * the dataset as it was. */
    for (int64_t g = 0; g < len; g++) {
        if (!isfinite(mean[g]))
            return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_normalize: mean[%lld] is %g",
                            (long long)g, (double)mean[g]);
        if (!isfinite(std[g]) || std[g] < 0.0f)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_dataset_normalize: std[%lld] is %g, must be finite and >= 0",
                            (long long)g, (double)std[g]);
    }
    /* Samples are independent: shared out across OpenMP threads, each
     * element computed as alone (the result does not depend on the count). */
    const int64_t n = ds->n, numel = ds->numel;
#pragma omp parallel for schedule(static) if (n * numel >= ((int64_t)1 << 16))
    for (int64_t i = 0; i < n; i++) {
        float *x = ds->x + i * numel;
        for (int64_t g = 0; g < len; g++) {
            const float m = mean[g], s = std[g] == 0.0f ? 1.0f : std[g];
            /* Subtract then divide, as torchvision's Normalize does, so the
             * floats match a PyTorch pipeline bit for bit. */
            for (int64_t j = 0; j < inner; j++) x[g * inner + j] = (x[g * inner + j] - m) / s;
        }
    }
    return CT_OK;
}
