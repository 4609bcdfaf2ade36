/* Seeded permutations, and the train/validation split built on them.
 *
 * Fisher-Yates over Philox words, with Lemire's multiply-and-reject for the
 * bounded draws, so every permutation is equally likely (a plain modulo
 * would favour small indices) and the result is a pure function of
 * (seed, stream, offset, n): the loader can rebuild the order of any epoch
 * without having run the ones before it. The word stream and the bounded
 * draw also pick the window starts of language-model batches
 * (text_windows.c).
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "ctrain/rng.h"
#include "data/data_internal.h"

void ct_data_ws_init(ct_word_stream *w, uint64_t seed, uint32_t stream, uint32_t offset) {
    w->key[0] = (uint32_t)seed;
    w->key[1] = (uint32_t)(seed >> 32);
    w->ctr[2] = stream;
    w->ctr[3] = offset;
    w->next = 0;
}

uint32_t ct_data_ws_u32(ct_word_stream *w) {
    if ((w->next & 3) == 0) {
        uint64_t block = w->next >> 2;
        w->ctr[0] = (uint32_t)block;
        w->ctr[1] = (uint32_t)(block >> 32);
        ct_philox4x32_10(w->ctr, w->key, w->out);
    }
    return w->out[w->next++ & 3];
}

/* Uniform in [0, range), range >= 1 (Lemire, "Fast Random Integer
 * Generation in an Interval", 2019): the high word of x * range, redrawn
 * in the rare case x falls in the short final stretch that would bias it. */
uint32_t ct_data_ws_below(ct_word_stream *w, uint32_t range) {
    uint64_t m = (uint64_t)ct_data_ws_u32(w) * range;
    uint32_t lo = (uint32_t)m;
    if (lo < range) {
        uint32_t threshold = (uint32_t)(-range) % range;
        while (lo < threshold) {
            m = (uint64_t)ct_data_ws_u32(w) * range;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void ct_data_permutation(uint64_t seed, uint32_t stream, uint32_t offset, int64_t n,
                         int64_t *perm) {
    /* Always from the identity, never from the previous permutation: that is
     * what makes epoch e's order independent of the epochs before it. */
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    ct_word_stream w;
    ct_data_ws_init(&w, seed, stream, offset);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = ct_data_ws_below(&w, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

ct_status ct_dataset_split(const ct_dataset *ds, double val_fraction, uint64_t seed,
                           ct_dataset **train, ct_dataset **val) {
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (!ds || !train || !val) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_split: NULL argument");
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_split: val_fraction %g is outside (0, 1)",
                        val_fraction);
    int64_t n = ds->n;
    int64_t n_val = llround(val_fraction * (double)n);
    if (n_val < 1 || n_val > n - 1)
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_dataset_split: val_fraction %g of %lld samples leaves %s empty",
                        val_fraction, (long long)n, n_val < 1 ? "the validation set" : "the training set");
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    unsigned char *in_val = calloc((size_t)n, 1);
    int64_t *idx_train = malloc((size_t)(n - n_val) * sizeof *idx_train);
    int64_t *idx_val = malloc((size_t)n_val * sizeof *idx_val);
    ct_status s = CT_OK;
    if (!perm || !in_val || !idx_train || !idx_val) {
        s = ct_error(CT_ERR_OOM, "ct_dataset_split: out of memory");
        goto done;
    }
    ct_data_permutation(seed, CT_DATA_STREAM_SPLIT, 0, n, perm);
    for (int64_t i = 0; i < n_val; i++) in_val[perm[i]] = 1;
    /* Walking the original indices keeps each part in the dataset's order,
     * which makes evaluation order independent of the seed. */
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        if (in_val[i])
            idx_val[b++] = i;
        else
            idx_train[a++] = i;
    }
    s = ct_dataset_subset(ds, idx_train, a, train);
    if (s == CT_OK) s = ct_dataset_subset(ds, idx_val, b, val);
    if (s != CT_OK) {
        ct_dataset_free(*train);
        *train = NULL;
    }
done:
    free(perm);
    free(in_val);
    free(idx_train);
    free(idx_val);
    return s;
}
