/* The in-memory dataset: creation, accessors, and the subsets that copy
 * samples out of one dataset into a new one. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data_internal.h"

ct_status ct_data_alloc(int64_t n, ct_shape shape, ct_dataset **out) {
    if (!out) return ct_error(CT_ERR_INVALID_ARG, "dataset: NULL output pointer");
    *out = NULL;
    if (n < 1 || n > CT_DATASET_MAX_SAMPLES)
        return ct_error(CT_ERR_INVALID_ARG, "dataset: %lld samples, expected 1 to %d",
                        (long long)n, CT_DATASET_MAX_SAMPLES);
    if (shape.ndim < 0 || shape.ndim > CT_MAX_DIMS)
        return ct_error(CT_ERR_INVALID_ARG, "dataset: sample shape has %d dimensions, at most %d",
                        shape.ndim, CT_MAX_DIMS);
    /* Every size is checked against what a size_t of bytes can hold, so a
     * corrupt file header asking for absurd sizes fails here, cleanly. */
    const int64_t cap = (int64_t)(SIZE_MAX / 2 / sizeof(float));
    int64_t numel = 1;
    for (int d = 0; d < shape.ndim; d++) {
        if (shape.dim[d] < 1)
            return ct_error(CT_ERR_INVALID_ARG, "dataset: sample dimension %d is %lld, must be >= 1",
                            d, (long long)shape.dim[d]);
        if (numel > cap / shape.dim[d])
            return ct_error(CT_ERR_INVALID_ARG, "dataset: sample shape too large");
        numel *= shape.dim[d];
    }
    if (numel > cap / n) return ct_error(CT_ERR_OOM, "dataset: %lld samples of %lld floats is too large",
                                         (long long)n, (long long)numel);
    ct_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return ct_error(CT_ERR_OOM, "dataset: out of memory");
    ds->n = n;
    ds->shape = shape;
    for (int d = shape.ndim; d < CT_MAX_DIMS; d++) ds->shape.dim[d] = 0;
    ds->numel = numel;
    ds->x = malloc((size_t)(n * numel) * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    if (!ds->x || !ds->y) {
        ct_dataset_free(ds);
        return ct_error(CT_ERR_OOM, "dataset: out of memory for %lld samples of %lld floats",
                        (long long)n, (long long)numel);
    }
    *out = ds;
    return CT_OK;
}

int32_t ct_data_count_classes(const int32_t *y, int64_t n) {
    int32_t mx = -1;
    for (int64_t i = 0; i < n; i++)
        if (y[i] > mx) mx = y[i];
    return mx + 1;
}

ct_status ct_dataset_from_arrays(int64_t n, ct_shape sample_shape, const float *features,
                                 const int32_t *labels, int32_t num_classes, ct_dataset **out) {
    if (out) *out = NULL;
    if (!features || !labels)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_from_arrays: NULL %s",
                        features ? "labels" : "features");
    if (num_classes < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_from_arrays: num_classes %d < 0",
                        (int)num_classes);
    /* Labels are checked before anything is allocated. */
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_dataset_from_arrays: label %d of sample %lld is negative",
                            (int)labels[i], (long long)i);
        if (num_classes > 0 && labels[i] >= num_classes)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_dataset_from_arrays: label %d of sample %lld is not below "
                            "num_classes %d",
                            (int)labels[i], (long long)i, (int)num_classes);
    }
    ct_dataset *ds;
    ct_status s = ct_data_alloc(n, sample_shape, &ds);
    if (s != CT_OK) return s;
    memcpy(ds->x, features, (size_t)(n * ds->numel) * sizeof(float));
    memcpy(ds->y, labels, (size_t)n * sizeof(int32_t));
    ds->num_classes = num_classes > 0 ? num_classes : ct_data_count_classes(ds->y, n);
    *out = ds;
    return CT_OK;
}

void ct_dataset_free(ct_dataset *ds) {
    if (!ds) return;
    free(ds->x);
    free(ds->y);
    free(ds);
}

int64_t ct_dataset_size(const ct_dataset *ds) { return ds ? ds->n : 0; }

ct_shape ct_dataset_sample_shape(const ct_dataset *ds) {
    if (!ds) return (ct_shape){0, {0}};
    return ds->shape;
}

int64_t ct_dataset_sample_numel(const ct_dataset *ds) { return ds ? ds->numel : 0; }

int32_t ct_dataset_num_classes(const ct_dataset *ds) { return ds ? ds->num_classes : 0; }

const float *ct_dataset_features(const ct_dataset *ds) { return ds ? ds->x : NULL; }

float *ct_dataset_features_mut(ct_dataset *ds) { return ds ? ds->x : NULL; }

const int32_t *ct_dataset_labels(const ct_dataset *ds) { return ds ? ds->y : NULL; }

ct_status ct_dataset_reshape(ct_dataset *ds, ct_shape sample_shape) {
    if (!ds) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_reshape: NULL dataset");
    char a[128], b[128];
    if (sample_shape.ndim < 1 || sample_shape.ndim > CT_MAX_DIMS)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_reshape: %d dimensions, expected 1 to %d",
                        sample_shape.ndim, CT_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < sample_shape.ndim; d++) {
        if (sample_shape.dim[d] < 1)
            return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_reshape: dimension %d is %lld, must be >= 1", d,
                            (long long)sample_shape.dim[d]);
        /* Only a product that can still equal numel matters; stop before overflow. */
        if (sample_shape.dim[d] > ds->numel || numel > ds->numel / sample_shape.dim[d]) {
            numel = -1;
            break;
        }
        numel *= sample_shape.dim[d];
    }
    if (numel != ds->numel)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_reshape: %s does not hold the %lld elements of %s",
                        ct_shape_str(sample_shape, a, sizeof a), (long long)ds->numel,
                        ct_shape_str(ds->shape, b, sizeof b));
    ds->shape = sample_shape;
    for (int d = sample_shape.ndim; d < CT_MAX_DIMS; d++) ds->shape.dim[d] = 0;
    return CT_OK;
}

ct_status ct_dataset_set_num_classes(ct_dataset *ds, int32_t num_classes) {
    if (!ds) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_set_num_classes: NULL dataset");
    int32_t need = ct_data_count_classes(ds->y, ds->n);
    if (num_classes < need)
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_dataset_set_num_classes: %d classes, but the labels go up to %d",
                        (int)num_classes, (int)need - 1);
    ds->num_classes = num_classes;
    return CT_OK;
}

ct_status ct_dataset_subset(const ct_dataset *ds, const int64_t *indices, int64_t n,
                            ct_dataset **out) {
    if (out) *out = NULL;
    if (!ds || !indices || !out)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_subset: NULL argument");
    if (n < 1) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_subset: %lld indices, need >= 1",
                               (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_dataset_subset: index %lld (at %lld) outside [0, %lld)",
                            (long long)indices[i], (long long)i, (long long)ds->n);
    ct_dataset *sub;
    ct_status s = ct_data_alloc(n, ds->shape, &sub);
    if (s != CT_OK) return s;
    const size_t row = (size_t)ds->numel * sizeof(float);
    for (int64_t i = 0; i < n; i++) {
        memcpy(sub->x + i * ds->numel, ds->x + indices[i] * ds->numel, row);
        sub->y[i] = ds->y[indices[i]];
    }
    /* The parent's class count, not the subset's largest label: a model sized
     * from a small subset must still fit the full data. */
    sub->num_classes = ds->num_classes;
    *out = sub;
    return CT_OK;
}

ct_status ct_dataset_take(const ct_dataset *ds, int64_t n, ct_dataset **out) {
    if (out) *out = NULL;
    if (!ds || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_take: NULL argument");
    if (n < 1) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_take: n = %lld, need >= 1",
                               (long long)n);
    if (n > ds->n) n = ds->n;
    ct_dataset *sub;
    ct_status s = ct_data_alloc(n, ds->shape, &sub);
    if (s != CT_OK) return s;
    memcpy(sub->x, ds->x, (size_t)(n * ds->numel) * sizeof(float));
    memcpy(sub->y, ds->y, (size_t)n * sizeof(int32_t));
    sub->num_classes = ds->num_classes;
    *out = sub;
    return CT_OK;
}
