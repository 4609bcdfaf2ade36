/* The promises every dataset reader makes about what it accepts
 * (include/ctrain/data.h), checked on each dataset a harness loads. */
#ifndef CTRAIN_FUZZ_DATASET_H
#define CTRAIN_FUZZ_DATASET_H

#include <math.h>

#include <ctrain/ctrain.h>

#include "fuzz_util.h"

/* At least one sample; a sample shape of positive sizes whose product is
 * the sample size; every feature finite (and in [lo, hi] when lo <= hi);
 * every label in [0, num_classes). Reading every value also lets ASan see
 * a buffer shorter than the dataset claims. */
static inline void fuzz_check_dataset(const ct_dataset *ds, float lo, float hi) {
    int64_t n = ct_dataset_size(ds), numel = ct_dataset_sample_numel(ds);
    ct_shape s = ct_dataset_sample_shape(ds);
    FUZZ_PROMISE(n >= 1, "a loaded dataset has a sample");
    FUZZ_PROMISE(s.ndim >= 1 && s.ndim <= CT_MAX_DIMS, "the sample shape has 1..CT_MAX_DIMS dims");
    for (int d = 0; d < s.ndim; d++) FUZZ_PROMISE(s.dim[d] >= 1, "sample dimensions are >= 1");
    FUZZ_PROMISE(ct_shape_numel(s) == numel, "the sample size is the shape's element count");
    int32_t classes = ct_dataset_num_classes(ds);
    FUZZ_PROMISE(classes >= 1, "a dataset has a class");
    const float *x = ct_dataset_features(ds);
    const int32_t *y = ct_dataset_labels(ds);
    for (int64_t i = 0; i < n * numel; i++) {
        FUZZ_PROMISE(isfinite(x[i]), "loaded features are finite");
        if (lo <= hi) FUZZ_PROMISE(x[i] >= lo && x[i] <= hi, "loaded pixels are in [0, 1]");
    }
    for (int64_t i = 0; i < n; i++)
        FUZZ_PROMISE(y[i] >= 0 && y[i] < classes, "every label is below num_classes");
}

#endif
