/* The data module's transforms (statistics, normalisation, subsets,
 * splits) and the loader's promises: each sample once per epoch, order a
 * function of (seed, epoch) only, prefetch invisible, clean shutdown
 * mid-epoch, shards that cover the global batch. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrain/data.h"
#include "ctrain/status.h"
#include "expect_msg.h"

/* A dataset whose sample i is {i, i + 0.5, -i} with label i % 7, so every
 * batch can be traced back to the samples it holds. */
static ct_dataset *indexed_dataset(int64_t n) {
    float *x = malloc((size_t)n * 3 * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        x[3 * i] = (float)i;
        x[3 * i + 1] = (float)i + 0.5f;
        x[3 * i + 2] = -(float)i;
        y[i] = (int32_t)(i % 7);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {3}}, x, y, 0, &ds), CT_OK, "%s",
                 ct_last_error());
    free(x);
    free(y);
    return ds;
}

/* ------------------------------------------------------------------ transforms */

/* 3 samples of shape [2, 2] (2 channels of 2): channel 0 holds 1..6,
 * channel 1 is constant 5 in its first feature and 0, 3, 6 in its second. */
static ct_dataset *stats_dataset(void) {
    const float x[] = {1, 2, 5, 0, 3, 4, 5, 3, 5, 6, 5, 6};
    const int32_t y[] = {0, 1, 0};
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(3, (ct_shape){2, {2, 2}}, x, y, 0, &ds), CT_OK, "%s",
                 ct_last_error());
    return ds;
}

Test(data_transform, stats) {
    ct_dataset *ds = stats_dataset();
    float m[4], s[4];
    /* Per feature: columns {1,3,5}, {2,4,6}, {5,5,5}, {0,3,6}. */
    cr_assert_eq(ct_dataset_stats(ds, 4, m, s), CT_OK, "%s", ct_last_error());
    const double sd8 = sqrt(8.0 / 3.0), sd6 = sqrt(6.0);
    cr_expect_float_eq(m[0], 3.0f, 1e-6);
    cr_expect_float_eq(m[1], 4.0f, 1e-6);
    cr_expect_float_eq(m[2], 5.0f, 1e-6);
    cr_expect_float_eq(m[3], 3.0f, 1e-6);
    cr_expect_float_eq(s[0], (float)sd8, 1e-6);
    cr_expect_float_eq(s[1], (float)sd8, 1e-6);
    cr_expect_eq(s[2], 1.0f); /* constant: reported as 1 */
    cr_expect_float_eq(s[3], (float)sd6, 1e-6);
    /* Per channel: {1,2,3,4,5,6} and {5,0,5,3,5,6}. */
    cr_assert_eq(ct_dataset_stats(ds, 2, m, s), CT_OK);
    cr_expect_float_eq(m[0], 3.5f, 1e-6);
    cr_expect_float_eq(s[0], (float)sqrt(17.5 / 6), 1e-6);
    cr_expect_float_eq(m[1], 4.0f, 1e-6);
    cr_expect_float_eq(s[1], 2.0f, 1e-6); /* squared deviations 1+16+1+1+1+4 = 24 over 6 */
    /* One scalar over all twelve values. */
    cr_assert_eq(ct_dataset_stats(ds, 1, m, s), CT_OK);
    cr_expect_float_eq(m[0], 45.0f / 12, 1e-6);
    double ss = 0;
    const float *x = ct_dataset_features(ds);
    for (int i = 0; i < 12; i++) ss += (x[i] - 3.75) * (x[i] - 3.75);
    cr_expect_float_eq(s[0], (float)sqrt(ss / 12), 1e-6);
    /* Groupings that fit nothing. */
    cr_expect_eq(ct_dataset_stats(ds, 3, m, s), CT_ERR_INVALID_ARG);
    expect_msg_has("len 3");
    cr_expect_eq(ct_dataset_stats(ds, 0, m, s), CT_ERR_INVALID_ARG);
    ct_dataset_free(ds);
}

Test(data_transform, normalize) {
    for (int64_t len = 1; len <= 4; len++) {
        if (len == 3) continue;
        ct_dataset *ds = stats_dataset();
        float m[4], s[4];
        cr_assert_eq(ct_dataset_stats(ds, len, m, s), CT_OK);
        cr_assert_eq(ct_dataset_normalize(ds, len, m, s), CT_OK, "%s", ct_last_error());
        float m2[4], s2[4];
        cr_assert_eq(ct_dataset_stats(ds, len, m2, s2), CT_OK);
        for (int64_t g = 0; g < len; g++) {
            cr_expect_float_eq(m2[g], 0.0f, 1e-6, "len %lld group %lld", (long long)len, (long long)g);
            cr_expect_float_eq(s2[g], 1.0f, 1e-6, "len %lld group %lld", (long long)len, (long long)g);
        }
        ct_dataset_free(ds);
    }
    /* Exact arithmetic, (x - mean) / std, and std 0 taken as 1. */
    ct_dataset *ds = stats_dataset();
    const float m[2] = {1, 5}, s[2] = {2, 0};
    cr_assert_eq(ct_dataset_normalize(ds, 2, m, s), CT_OK);
    const float *x = ct_dataset_features(ds);
    cr_expect_eq(x[0], 0.0f);
    cr_expect_eq(x[1], 0.5f);
    cr_expect_eq(x[2], 0.0f);
    cr_expect_eq(x[3], -5.0f);
    ct_dataset_free(ds);
    /* A bad argument changes nothing. */
    ds = stats_dataset();
    const float bad_s[2] = {1, -1};
    cr_expect_eq(ct_dataset_normalize(ds, 2, m, bad_s), CT_ERR_INVALID_ARG);
    expect_msg_has("std[1]");
    const float nan_m[2] = {NAN, 0};
    cr_expect_eq(ct_dataset_normalize(ds, 2, nan_m, s), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_normalize(ds, 3, m, s), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_features(ds)[0], 1.0f);
    cr_expect_eq(ct_dataset_features(ds)[11], 6.0f);
    ct_dataset_free(ds);
}

Test(data_transform, from_arrays_take_subset) {
    ct_dataset *ds = indexed_dataset(20);
    cr_expect_eq(ct_dataset_num_classes(ds), 7);
    ct_dataset *t;
    cr_assert_eq(ct_dataset_take(ds, 5, &t), CT_OK);
    cr_expect_eq(ct_dataset_size(t), 5);
    cr_expect_eq(ct_dataset_num_classes(t), 7); /* the parent's, though labels stop at 4 */
    cr_expect_eq(ct_dataset_features(t)[3 * 4], 4.0f);
    ct_dataset_free(t);
    cr_assert_eq(ct_dataset_take(ds, 1000, &t), CT_OK);
    cr_expect_eq(ct_dataset_size(t), 20);
    ct_dataset_free(t);
    cr_expect_eq(ct_dataset_take(ds, 0, &t), CT_ERR_INVALID_ARG);
    const int64_t idx[] = {19, 0, 19};
    cr_assert_eq(ct_dataset_subset(ds, idx, 3, &t), CT_OK);
    cr_expect_eq(ct_dataset_features(t)[0], 19.0f);
    cr_expect_eq(ct_dataset_features(t)[3], 0.0f);
    cr_expect_eq(ct_dataset_labels(t)[2], 19 % 7);
    ct_dataset_free(t);
    const int64_t bad[] = {3, 20};
    cr_expect_eq(ct_dataset_subset(ds, bad, 2, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_set_num_classes(ds, 6), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_set_num_classes(ds, 12), CT_OK);
    cr_expect_eq(ct_dataset_num_classes(ds), 12);
    ct_dataset_free(ds);
    /* Labels checked against a given class count. */
    const float x[2] = {0, 0};
    const int32_t y[2] = {0, 3};
    cr_expect_eq(ct_dataset_from_arrays(2, (ct_shape){1, {1}}, x, y, 3, &t), CT_ERR_INVALID_ARG);
    const int32_t yn[2] = {0, -1};
    cr_expect_eq(ct_dataset_from_arrays(2, (ct_shape){1, {1}}, x, yn, 0, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_from_arrays(0, (ct_shape){1, {1}}, x, y, 0, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_from_arrays(2, (ct_shape){1, {0}}, x, y, 0, &t), CT_ERR_INVALID_ARG);
}

Test(data_transform, split) {
    ct_dataset *ds = indexed_dataset(100);
    ct_dataset *tr, *va;
    cr_assert_eq(ct_dataset_split(ds, 0.2, 11, &tr, &va), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_size(tr), 80);
    cr_assert_eq(ct_dataset_size(va), 20);
    cr_expect_eq(ct_dataset_num_classes(va), 7);
    /* Disjoint, together everything, each part in the original order, rows intact. */
    int seen[100] = {0};
    for (int part = 0; part < 2; part++) {
        const ct_dataset *d = part ? va : tr;
        const float *x = ct_dataset_features(d);
        for (int64_t i = 0; i < ct_dataset_size(d); i++) {
            int id = (int)x[3 * i];
            cr_assert(id >= 0 && id < 100);
            seen[id]++;
            cr_expect_eq(x[3 * i + 1], id + 0.5f);
            cr_expect_eq(ct_dataset_labels(d)[i], id % 7);
            if (i > 0) cr_expect_gt(id, (int)x[3 * (i - 1)]);
        }
    }
    for (int i = 0; i < 100; i++) cr_expect_eq(seen[i], 1, "sample %d", i);
    /* The original is untouched. */
    for (int i = 0; i < 100; i++) cr_expect_eq(ct_dataset_features(ds)[3 * i], (float)i);
    /* Same seed, same split; another seed, another split. */
    ct_dataset *tr2, *va2, *tr3, *va3;
    cr_assert_eq(ct_dataset_split(ds, 0.2, 11, &tr2, &va2), CT_OK);
    cr_expect_eq(memcmp(ct_dataset_features(va), ct_dataset_features(va2), 20 * 3 * sizeof(float)), 0);
    cr_assert_eq(ct_dataset_split(ds, 0.2, 12, &tr3, &va3), CT_OK);
    cr_expect_neq(memcmp(ct_dataset_features(va), ct_dataset_features(va3), 20 * 3 * sizeof(float)), 0);
    ct_dataset_free(tr2);
    ct_dataset_free(va2);
    ct_dataset_free(tr3);
    ct_dataset_free(va3);
    /* Rounding, and fractions that leave a part empty. */
    ct_dataset_free(tr);
    ct_dataset_free(va);
    cr_assert_eq(ct_dataset_split(ds, 0.333, 1, &tr, &va), CT_OK);
    cr_expect_eq(ct_dataset_size(va), 33);
    ct_dataset_free(tr);
    ct_dataset_free(va);
    cr_expect_eq(ct_dataset_split(ds, 0.0, 1, &tr, &va), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_split(ds, 1.0, 1, &tr, &va), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dataset_split(ds, 0.001, 1, &tr, &va), CT_ERR_INVALID_ARG);
    expect_msg_has("validation set");
    cr_expect_eq(ct_dataset_split(ds, 0.999, 1, &tr, &va), CT_ERR_INVALID_ARG);
    cr_expect_null(tr);
    cr_expect_null(va);
    ct_dataset_free(ds);
}

/* ------------------------------------------------------------------ loader */

/* One epoch's samples, in order, as dataset indices; checks each batch's
 * rows against the dataset. Returns the number of samples (<= cap). */
static int64_t run_epoch_from(ct_loader *ld, const ct_dataset *ds, int64_t first, int64_t *order,
                              int64_t cap, int64_t *counts, int64_t *nbatches) {
    ct_batch b;
    int64_t n = 0, k = first;
    for (;;) {
        cr_assert_eq(ct_loader_next(ld, &b), CT_OK, "%s", ct_last_error());
        if (b.count == 0) break;
        cr_assert_eq(b.index, k);
        if (counts) counts[k] = b.count;
        for (int64_t i = 0; i < b.count; i++) {
            int64_t id = b.indices[i];
            cr_assert(id >= 0 && id < ct_dataset_size(ds));
            cr_assert_eq(b.x[3 * i], (float)id);
            cr_assert_eq(b.x[3 * i + 2], -(float)id);
            cr_assert_eq(b.y[i], ct_dataset_labels(ds)[id]);
            cr_assert_lt(n, cap);
            order[n++] = id;
        }
        k++;
    }
    if (nbatches) *nbatches = k - first;
    /* The end stays the end until the next epoch starts. */
    cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
    cr_assert_eq(b.count, 0);
    cr_assert_null(b.x);
    return n;
}

static int64_t run_epoch(ct_loader *ld, const ct_dataset *ds, int64_t *order, int64_t cap,
                         int64_t *counts, int64_t *nbatches) {
    return run_epoch_from(ld, ds, 0, order, cap, counts, nbatches);
}

Test(data_loader, each_sample_once_per_epoch) {
    ct_dataset *ds = indexed_dataset(103);
    for (int pf = 0; pf < 2; pf++) {
        ct_loader_opts o = {.batch_size = 10, .shuffle = true, .seed = 5, .prefetch = pf};
        ct_loader *ld = ct_loader_new(ds, &o);
        cr_assert_not_null(ld, "%s", ct_last_error());
        cr_assert_eq(ct_loader_num_batches(ld), 11);
        int64_t order[103], counts[16], nb;
        for (uint32_t e = 0; e < 3; e++) {
            cr_assert_eq(ct_loader_start_epoch(ld, e), CT_OK);
            cr_assert_eq(ct_loader_epoch(ld), e);
            cr_assert_eq(run_epoch(ld, ds, order, 103, counts, &nb), 103);
            cr_assert_eq(nb, 11);
            cr_expect_eq(counts[10], 3); /* the short last batch */
            int hits[103] = {0};
            for (int i = 0; i < 103; i++) hits[order[i]]++;
            for (int i = 0; i < 103; i++) cr_assert_eq(hits[i], 1, "epoch %u sample %d", e, i);
            bool identity = true;
            for (int i = 0; i < 103; i++) identity = identity && order[i] == i;
            cr_expect(!identity, "shuffled epoch %u came out in order", e);
        }
        ct_loader_free(ld);
    }
    ct_dataset_free(ds);
}

Test(data_loader, order_depends_on_seed_and_epoch_only) {
    ct_dataset *ds = indexed_dataset(64);
    ct_loader_opts o = {.batch_size = 8, .shuffle = true, .seed = 99};
    ct_loader *a = ct_loader_new(ds, &o), *b = ct_loader_new(ds, &o);
    cr_assert(a && b);
    int64_t ea[4][64], eb[64];
    for (uint32_t e = 0; e < 4; e++) {
        cr_assert_eq(ct_loader_start_epoch(a, e), CT_OK);
        run_epoch(a, ds, ea[e], 64, NULL, NULL);
    }
    /* A second loader jumping straight to epoch 3, then back to 1: the
     * epochs run before do not matter. */
    cr_assert_eq(ct_loader_start_epoch(b, 3), CT_OK);
    run_epoch(b, ds, eb, 64, NULL, NULL);
    cr_expect_eq(memcmp(eb, ea[3], sizeof eb), 0);
    cr_assert_eq(ct_loader_start_epoch(b, 1), CT_OK);
    run_epoch(b, ds, eb, 64, NULL, NULL);
    cr_expect_eq(memcmp(eb, ea[1], sizeof eb), 0);
    /* A new loader needs no start_epoch for epoch 0. */
    ct_loader *c = ct_loader_new(ds, &o);
    run_epoch(c, ds, eb, 64, NULL, NULL);
    cr_expect_eq(memcmp(eb, ea[0], sizeof eb), 0);
    /* Epochs differ from each other, and another seed differs. */
    for (int e = 1; e < 4; e++) cr_expect_neq(memcmp(ea[e], ea[e - 1], sizeof eb), 0);
    o.seed = 100;
    ct_loader *d = ct_loader_new(ds, &o);
    run_epoch(d, ds, eb, 64, NULL, NULL);
    cr_expect_neq(memcmp(eb, ea[0], sizeof eb), 0);
    ct_loader_free(a);
    ct_loader_free(b);
    ct_loader_free(c);
    ct_loader_free(d);
    ct_dataset_free(ds);
}

Test(data_loader, resume_mid_epoch) {
    ct_dataset *ds = indexed_dataset(50);
    for (int pf = 0; pf < 2; pf++) {
        ct_loader_opts o = {.batch_size = 7, .shuffle = true, .seed = 3, .prefetch = pf};
        ct_loader *ld = ct_loader_new(ds, &o);
        int64_t full[50], part[50];
        cr_assert_eq(ct_loader_start_epoch(ld, 2), CT_OK);
        run_epoch(ld, ds, full, 50, NULL, NULL);
        cr_assert_eq(ct_loader_start_epoch_at(ld, 2, 3), CT_OK);
        cr_assert_eq(run_epoch_from(ld, ds, 3, part, 50, NULL, NULL), 50 - 21);
        cr_expect_eq(memcmp(part, full + 21, 29 * sizeof(int64_t)), 0);
        cr_assert_eq(ct_loader_start_epoch_at(ld, 2, 8), CT_OK); /* = num_batches: at the end */
        cr_assert_eq(run_epoch_from(ld, ds, 8, part, 50, NULL, NULL), 0);
        cr_expect_eq(ct_loader_start_epoch_at(ld, 2, 9), CT_ERR_INVALID_ARG);
        ct_loader_free(ld);
    }
    ct_dataset_free(ds);
}

Test(data_loader, drop_last_and_batch_sizes) {
    ct_dataset *ds = indexed_dataset(103);
    struct {
        int64_t bs;
        bool drop;
        int64_t nb, last;
    } cases[] = {
        {10, false, 11, 3}, {10, true, 10, 10}, {103, false, 1, 103}, {103, true, 1, 103},
        {1, false, 103, 1}, {50, true, 2, 50},  {102, false, 2, 1},   {102, true, 1, 102},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        for (int sh = 0; sh < 2; sh++) {
            ct_loader_opts o = {.batch_size = cases[t].bs, .drop_last = cases[t].drop, .shuffle = sh,
                                .prefetch = sh, .seed = 1};
            ct_loader *ld = ct_loader_new(ds, &o);
            cr_assert_not_null(ld, "%s", ct_last_error());
            cr_expect_eq(ct_loader_num_batches(ld), cases[t].nb, "case %zu", t);
            int64_t order[103], counts[103], nb;
            int64_t n = run_epoch(ld, ds, order, 103, counts, &nb);
            cr_expect_eq(nb, cases[t].nb, "case %zu", t);
            cr_expect_eq(counts[nb - 1], cases[t].last, "case %zu", t);
            cr_expect_eq(n, cases[t].drop ? cases[t].nb * cases[t].bs : 103, "case %zu", t);
            if (!sh)
                for (int64_t i = 0; i < n; i++) cr_expect_eq(order[i], i); /* in order */
            ct_loader_free(ld);
        }
    }
    /* Without shuffle the whole set is one batch straight out of the dataset. */
    ct_loader_opts full = {.batch_size = 103};
    ct_loader *ld = ct_loader_new(ds, &full);
    ct_batch b;
    cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
    cr_expect_eq(b.count, 103);
    cr_expect_eq(b.x, ct_dataset_features(ds));
    ct_loader_free(ld);
    /* Sizes that do not fit. */
    ct_loader_opts bad = {.batch_size = 0};
    cr_expect_null(ct_loader_new(ds, &bad));
    expect_msg_has("batch_size 0");
    bad.batch_size = 104;
    cr_expect_null(ct_loader_new(ds, &bad));
    expect_msg_has("batch_size 104");
    bad.batch_size = -1;
    cr_expect_null(ct_loader_new(ds, &bad));
    cr_expect_null(ct_loader_new(ds, NULL));
    cr_expect_null(ct_loader_new(NULL, &full));
    ct_dataset_free(ds);
}

Test(data_loader, prefetch_gives_identical_batches) {
    ct_dataset *ds = indexed_dataset(1000);
    const int64_t sizes[] = {1, 32, 333, 1000};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        for (int drop = 0; drop < 2; drop++) {
            ct_loader_opts o = {.batch_size = sizes[t], .shuffle = true, .drop_last = drop, .seed = 42};
            ct_loader *plain = ct_loader_new(ds, &o);
            o.prefetch = true;
            ct_loader *pre = ct_loader_new(ds, &o);
            cr_assert(plain && pre);
            for (uint32_t e = 0; e < 3; e++) {
                ct_loader_start_epoch(plain, e);
                ct_loader_start_epoch(pre, e);
                ct_batch a, b;
                for (;;) {
                    cr_assert_eq(ct_loader_next(plain, &a), CT_OK);
                    cr_assert_eq(ct_loader_next(pre, &b), CT_OK);
                    cr_assert_eq(a.count, b.count);
                    cr_assert_eq(a.index, b.index);
                    if (!a.count) break;
                    cr_assert_eq(memcmp(a.x, b.x, (size_t)a.count * 3 * sizeof(float)), 0);
                    cr_assert_eq(memcmp(a.y, b.y, (size_t)a.count * sizeof(int32_t)), 0);
                    cr_assert_eq(memcmp(a.indices, b.indices, (size_t)a.count * sizeof(int64_t)), 0);
                }
            }
            ct_loader_free(plain);
            ct_loader_free(pre);
        }
    }
    ct_dataset_free(ds);
}

/* Freed at every point of an epoch, and right after creation, with the
 * thread possibly mid-batch; the sanitizer build checks for leaks and races
 * on memory. Also restarting an epoch while the thread works ahead. */
Test(data_loader, free_mid_epoch_with_prefetch) {
    ct_dataset *ds = indexed_dataset(2000);
    for (int stop = 0; stop < 12; stop++) {
        ct_loader_opts o = {.batch_size = 200, .shuffle = true, .prefetch = true, .seed = (uint64_t)stop};
        ct_loader *ld = ct_loader_new(ds, &o);
        cr_assert_not_null(ld, "%s", ct_last_error());
        ct_batch b;
        for (int k = 0; k < stop; k++) {
            cr_assert_eq(ct_loader_next(ld, &b), CT_OK);
            if (k == 5) cr_assert_eq(ct_loader_start_epoch(ld, 1), CT_OK);
        }
        ct_loader_free(ld);
    }
    ct_dataset_free(ds);
}

Test(data_loader, shards_cover_the_global_batch) {
    ct_dataset *ds = indexed_dataset(103);
    const int S = 3;
    /* Global batches of 12: 8 full ones and 7 left, split 3, 2, 2. */
    ct_loader_opts g = {.batch_size = 12, .shuffle = true, .seed = 8};
    ct_loader *whole = ct_loader_new(ds, &g);
    ct_loader *rank[3];
    for (int r = 0; r < S; r++) {
        ct_loader_opts o = {.batch_size = 4, .shuffle = true, .seed = 8, .num_shards = S,
                            .shard_index = r, .prefetch = r == 1};
        rank[r] = ct_loader_new(ds, &o);
        cr_assert_not_null(rank[r], "%s", ct_last_error());
        cr_expect_eq(ct_loader_num_batches(rank[r]), 9);
    }
    for (uint32_t e = 0; e < 2; e++) {
        ct_loader_start_epoch(whole, e);
        for (int r = 0; r < S; r++) ct_loader_start_epoch(rank[r], e);
        ct_batch wb, rb;
        for (;;) {
            cr_assert_eq(ct_loader_next(whole, &wb), CT_OK);
            int64_t at = 0;
            for (int r = 0; r < S; r++) {
                cr_assert_eq(ct_loader_next(rank[r], &rb), CT_OK);
                cr_assert_eq(rb.global_count, wb.count);
                if (!wb.count) {
                    cr_assert_eq(rb.count, 0);
                    continue;
                }
                cr_assert_gt(rb.count, 0);
                if (wb.count == 7) cr_expect_eq(rb.count, r == 0 ? 3 : 2);
                else cr_expect_eq(rb.count, 4);
                cr_assert_eq(memcmp(rb.indices, wb.indices + at, (size_t)rb.count * sizeof(int64_t)), 0);
                cr_assert_eq(memcmp(rb.x, wb.x + at * 3, (size_t)rb.count * 3 * sizeof(float)), 0);
                at += rb.count;
            }
            if (!wb.count) break;
            cr_assert_eq(at, wb.count);
        }
    }
    for (int r = 0; r < S; r++) ct_loader_free(rank[r]);
    ct_loader_free(whole);
    /* A last global batch with fewer samples than shards is dropped: 103 =
     * 10 x 10 + 3 across 5 shards of 2. */
    ct_loader_opts o = {.batch_size = 2, .num_shards = 5, .shard_index = 4};
    ct_loader *ld = ct_loader_new(ds, &o);
    cr_assert_not_null(ld);
    cr_expect_eq(ct_loader_num_batches(ld), 10);
    ct_loader_free(ld);
    o.batch_size = 21; /* 105 > 103 */
    cr_expect_null(ct_loader_new(ds, &o));
    o.batch_size = 2;
    o.shard_index = 5;
    cr_expect_null(ct_loader_new(ds, &o));
    expect_msg_has("shard_index 5");
    ct_dataset_free(ds);
}
