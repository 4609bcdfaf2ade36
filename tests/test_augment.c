/* Augmentation: each step on hand-made images with the pixel values it
 * must produce, the statistics of the random choices and of the noise, the
 * loader's promises (a pure function of (seed, epoch, sample index): the same
 * with and without prefetch, sharded or resumed; new choices every epoch),
 * the errors, and that evaluation data is never augmented. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctrain/ctrain.h"

/* Random values in [0.1, 1): never 0, so a zeroed pixel is told apart. */
static float *random_image(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)n * sizeof *x);
    cr_assert_not_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = 0.1f + 0.9f * ct_philox_uniform(seed, 7, 0, (uint64_t)i);
    return x;
}

static ct_shape chw(int64_t c, int64_t h, int64_t w) { return (ct_shape){3, {c, h, w}}; }

/* src(c, i, j), or 0 outside the image. */
static float px(const float *src, int64_t H, int64_t W, int64_t c, int64_t i, int64_t j) {
    return i >= 0 && i < H && j >= 0 && j < W ? src[(c * H + i) * W + j] : 0.0f;
}

/* ------------------------------------------------------------------ steps */

Test(augment, flip_mirrors_exactly) {
    const int64_t C = 2, H = 5, W = 7;
    float *src = random_image(C * H * W, 1), dst[70];
    ct_augment_opts o = {.flip = true};
    ct_augment_params p = {.flip = true};
    cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK, "%s", ct_last_error());
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++)
                cr_assert_eq(dst[(c * H + i) * W + j], src[(c * H + i) * W + (W - 1 - j)]);
    p.flip = false;
    cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK);
    cr_assert_eq(memcmp(dst, src, sizeof dst), 0, "no flip drawn: the image is unchanged");
    /* About half the samples are flipped. */
    int flips = 0;
    for (int64_t k = 0; k < 2000; k++) {
        cr_assert_eq(ct_augment_draw(&o, chw(C, H, W), 5, 0, k, &p), CT_OK);
        flips += p.flip;
    }
    cr_assert(flips > 900 && flips < 1100, "%d flips in 2000", flips);
    free(src);
}

Test(augment, crop_shifts_by_the_drawn_offset) {
    const int64_t C = 3, H = 6, W = 9;
    float *src = random_image(C * H * W, 2), dst[162];
    ct_augment_opts o = {.crop_pad = 3};
    int seen[7][7] = {{0}};
    for (int64_t k = 0; k < 400; k++) {
        ct_augment_params p;
        cr_assert_eq(ct_augment_draw(&o, chw(C, H, W), 11, 2, k, &p), CT_OK);
        cr_assert(p.crop_dy >= -3 && p.crop_dy <= 3 && p.crop_dx >= -3 && p.crop_dx <= 3);
        seen[p.crop_dy + 3][p.crop_dx + 3]++;
        cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK);
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < W; j++)
                    cr_assert_eq(dst[(c * H + i) * W + j], px(src, H, W, c, i + p.crop_dy, j + p.crop_dx),
                                 "offset (%d, %d) at (%lld, %lld, %lld)", p.crop_dy, p.crop_dx, (long long)c,
                                 (long long)i, (long long)j);
    }
    /* Every offset of the 7x7 range comes up (400 draws, 49 offsets). */
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 7; b++) cr_assert(seen[a][b] > 0, "offset (%d, %d) never drawn", a - 3, b - 3);
    free(src);
}

Test(augment, crop_then_flip) {
    const int64_t H = 4, W = 5;
    float *src = random_image(H * W, 3), dst[20];
    ct_augment_opts o = {.crop_pad = 2, .flip = true};
    ct_augment_params p = {.crop_dy = 1, .crop_dx = -2, .flip = true};
    cr_assert_eq(ct_augment_apply(&o, chw(1, H, W), &p, src, dst), CT_OK);
    /* Crop first, then mirror the cropped image. */
    for (int64_t i = 0; i < H; i++)
        for (int64_t j = 0; j < W; j++) cr_assert_eq(dst[i * W + j], px(src, H, W, 0, i + 1, (W - 1 - j) - 2));
    free(src);
}

Test(augment, cutout_zeroes_exactly_a_square) {
    const int64_t C = 3, H = 10, W = 8;
    const int S = 4;
    float *src = random_image(C * H * W, 4), dst[240];
    ct_augment_opts o = {.cutout_size = S};
    for (int64_t k = 0; k < 50; k++) {
        ct_augment_params p;
        cr_assert_eq(ct_augment_draw(&o, chw(C, H, W), 3, 1, k, &p), CT_OK);
        cr_assert(p.cutout_y >= 0 && p.cutout_y <= H - S && p.cutout_x >= 0 && p.cutout_x <= W - S);
        cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK);
        int zeros = 0;
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < W; j++) {
                    bool in = i >= p.cutout_y && i < p.cutout_y + S && j >= p.cutout_x && j < p.cutout_x + S;
                    float v = dst[(c * H + i) * W + j];
                    cr_assert_eq(v, in ? 0.0f : src[(c * H + i) * W + j]);
                    zeros += v == 0.0f;
                }
        cr_assert_eq(zeros, C * S * S);
    }
    free(src);
}

Test(augment, noise_has_the_requested_std) {
    const int64_t C = 3, H = 32, W = 32, n = C * H * W, samples = 40;
    float *zero = calloc((size_t)n, sizeof *zero), *dst = malloc((size_t)n * sizeof *dst);
    cr_assert(zero && dst);
    ct_augment_opts o = {.noise_std = 0.05};
    double sum = 0, ssq = 0;
    for (int64_t k = 0; k < samples; k++) {
        ct_augment_params p;
        cr_assert_eq(ct_augment_draw(&o, chw(C, H, W), 9, 0, k, &p), CT_OK);
        cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, zero, dst), CT_OK);
        for (int64_t i = 0; i < n; i++) {
            sum += dst[i];
            ssq += (double)dst[i] * dst[i];
        }
    }
    const double N = (double)(n * samples), mean = sum / N, sd = sqrt(ssq / N - mean * mean);
    /* 122880 values: the sample std is within 1% of 0.05 (its own standard
     * error is 0.2%), the mean within 5 standard errors of 0. */
    cr_assert(fabs(sd - 0.05) < 0.0005, "std %g", sd);
    cr_assert(fabs(mean) < 5 * 0.05 / sqrt(N), "mean %g", mean);
    /* Added to the image, not replacing it; different for another sample. */
    float *src = random_image(n, 5), *other = malloc((size_t)n * sizeof *other);
    ct_augment_params p0, p1;
    ct_augment_draw(&o, chw(C, H, W), 9, 0, 0, &p0);
    ct_augment_draw(&o, chw(C, H, W), 9, 0, 1, &p1);
    ct_augment_apply(&o, chw(C, H, W), &p0, zero, dst);
    ct_augment_apply(&o, chw(C, H, W), &p0, src, other);
    for (int64_t i = 0; i < n; i++) cr_assert(fabsf(other[i] - (src[i] + dst[i])) < 1e-6f);
    ct_augment_apply(&o, chw(C, H, W), &p1, zero, other);
    cr_assert_neq(memcmp(dst, other, (size_t)n * sizeof *dst), 0);
    free(zero);
    free(dst);
    free(src);
    free(other);
}

Test(augment, rotation_by_zero_is_identity) {
    const int64_t C = 2, H = 7, W = 6;
    float *src = random_image(C * H * W, 6), dst[84];
    ct_augment_opts o = {.rotate_deg = 15, .translate_px = 2};
    ct_augment_params p = {.angle_deg = 0};
    cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK, "%s", ct_last_error());
    cr_assert_eq(memcmp(dst, src, sizeof dst), 0);
    /* An integer translation alone moves whole pixels, exactly. */
    p = (ct_augment_params){.shift_y = 1, .shift_x = -2};
    cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK);
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) cr_assert_eq(dst[(c * H + i) * W + j], px(src, H, W, c, i - 1, j + 2));
    free(src);
}

Test(augment, rotation_by_90_and_180) {
    const int64_t N = 5;
    float *src = random_image(N * N, 7), dst[25];
    ct_augment_opts o = {.rotate_deg = 180};
    ct_augment_params p = {.angle_deg = 90};
    cr_assert_eq(ct_augment_apply(&o, chw(1, N, N), &p, src, dst), CT_OK);
    /* Counter-clockwise as displayed: the right column becomes the top row. */
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            cr_assert_float_eq(dst[i * N + j], src[j * N + (N - 1 - i)], 1e-6, "(%lld, %lld)", (long long)i,
                               (long long)j);
    p.angle_deg = 180;
    cr_assert_eq(ct_augment_apply(&o, chw(1, N, N), &p, src, dst), CT_OK);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) cr_assert_float_eq(dst[i * N + j], src[(N - 1 - i) * N + (N - 1 - j)], 1e-6);
    /* Half a pixel's worth of angle: bilinear, so a constant image stays
     * constant inside and fades only where the corners leave the image. */
    float ones[25], out[25];
    for (int k = 0; k < 25; k++) ones[k] = 1.0f;
    p.angle_deg = 10;
    cr_assert_eq(ct_augment_apply(&o, chw(1, N, N), &p, ones, out), CT_OK);
    cr_assert_float_eq(out[2 * N + 2], 1.0f, 1e-6, "the centre stays");
    cr_assert(out[0] < 1.0f && out[0] > 0.0f, "a corner samples partly outside: %g", (double)out[0]);
    /* Angles are drawn in [-deg, deg]. */
    o.rotate_deg = 10;
    double lo = 0, hi = 0;
    for (int64_t k = 0; k < 500; k++) {
        cr_assert_eq(ct_augment_draw(&o, chw(1, N, N), 1, 3, k, &p), CT_OK);
        cr_assert(p.angle_deg >= -10 && p.angle_deg <= 10);
        lo = fmin(lo, p.angle_deg);
        hi = fmax(hi, p.angle_deg);
    }
    cr_assert(lo < -9 && hi > 9, "angles span [%g, %g]", lo, hi);
    free(src);
}

Test(augment, normalize_per_channel) {
    const int64_t C = 3, H = 4, W = 4, n = C * H * W;
    float *src = random_image(n, 8), dst[48];
    const float mean[3] = {0.2f, 0.5f, 0.7f}, std[3] = {0.3f, 0.25f, 2.0f};
    ct_augment_opts o = {.mean = mean, .std = std};
    ct_augment_params p = {0};
    cr_assert_eq(ct_augment_apply(&o, chw(C, H, W), &p, src, dst), CT_OK);
    for (int64_t k = 0; k < n; k++) {
        int64_t c = k / (H * W);
        cr_assert_eq(dst[k], (src[k] - mean[c]) / std[c]);
    }
    free(src);
}

Test(augment, choices_are_independent_of_other_steps) {
    /* Turning noise or cutout on does not move the crop or the flip. */
    ct_augment_opts a = {.crop_pad = 4, .flip = true};
    ct_augment_opts b = {.crop_pad = 4, .flip = true, .noise_std = 0.1, .cutout_size = 3, .rotate_deg = 5};
    for (int64_t k = 0; k < 100; k++) {
        ct_augment_params pa, pb;
        ct_augment_draw(&a, chw(1, 16, 16), 77, 4, k, &pa);
        ct_augment_draw(&b, chw(1, 16, 16), 77, 4, k, &pb);
        cr_assert(pa.crop_dy == pb.crop_dy && pa.crop_dx == pb.crop_dx && pa.flip == pb.flip);
    }
}

Test(augment, bad_options) {
    float src[64] = {0}, dst[64];
    ct_augment_params p = {0};
    ct_augment_opts o = {.crop_pad = 9};
    cr_assert_eq(ct_augment_check(&o, chw(1, 8, 8)), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "crop_pad is 9, must be in [0, 8]"), "%s", ct_last_error());
    o = (ct_augment_opts){.rotate_deg = -1};
    cr_assert_eq(ct_augment_check(&o, chw(1, 8, 8)), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "rotate_deg"));
    o = (ct_augment_opts){.noise_std = NAN};
    cr_assert_eq(ct_augment_check(&o, chw(1, 8, 8)), CT_ERR_INVALID_ARG);
    o = (ct_augment_opts){.cutout_size = -2};
    cr_assert_eq(ct_augment_check(&o, chw(1, 8, 8)), CT_ERR_INVALID_ARG);
    const float m[1] = {0.5f}, zero_std[1] = {0.0f};
    o = (ct_augment_opts){.mean = m};
    cr_assert_eq(ct_augment_check(&o, chw(1, 8, 8)), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "std is NULL"), "%s", ct_last_error());
    o = (ct_augment_opts){.mean = m, .std = zero_std};
    cr_assert_eq(ct_augment_check(&o, chw(1, 8, 8)), CT_ERR_INVALID_ARG);
    o = (ct_augment_opts){.flip = true};
    cr_assert_eq(ct_augment_check(&o, (ct_shape){1, {64}}), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "[C, H, W]"), "%s", ct_last_error());
    cr_assert_eq(ct_augment_apply(&o, (ct_shape){2, {8, 8}}, &p, src, dst), CT_ERR_INVALID_ARG);
    o = (ct_augment_opts){.cutout_size = 4};
    p.cutout_y = 5;
    cr_assert_eq(ct_augment_apply(&o, chw(1, 8, 8), &p, src, dst), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_augment_draw(&o, chw(1, 8, 8), 1, 0, -1, &p), CT_ERR_INVALID_ARG);
    cr_assert_not(ct_augment_active(NULL));
    cr_assert_not(ct_augment_active(&(ct_augment_opts){0}));
    cr_assert(ct_augment_active(&o));
}

/* ------------------------------------------------------------------ loader */

#define N_SAMPLES 90
#define C_ 3
#define H_ 8
#define W_ 8
#define NUMEL (C_ * H_ * W_)

static ct_dataset *images(uint64_t seed) {
    float *x = random_image(N_SAMPLES * NUMEL, seed);
    int32_t y[N_SAMPLES];
    for (int i = 0; i < N_SAMPLES; i++) y[i] = i % 4;
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(N_SAMPLES, chw(C_, H_, W_), x, y, 0, &ds), CT_OK);
    free(x);
    return ds;
}

static const float MEAN[3] = {0.5f, 0.4f, 0.6f}, STD[3] = {0.25f, 0.3f, 0.2f};

static ct_augment_opts all_steps(void) {
    return (ct_augment_opts){.crop_pad = 2, .flip = true, .rotate_deg = 10, .translate_px = 1,
                             .noise_std = 0.05, .cutout_size = 3, .mean = MEAN, .std = STD};
}

/* Every batch of `epochs` epochs, back to back. */
static float *run_epochs(const ct_dataset *ds, const ct_loader_opts *lo, uint32_t first, int epochs, size_t *len) {
    ct_loader *ld = ct_loader_new(ds, lo);
    cr_assert_not_null(ld, "%s", ct_last_error());
    size_t cap = (size_t)epochs * N_SAMPLES * NUMEL, used = 0;
    float *all = malloc(cap * sizeof *all);
    for (uint32_t e = first; e < first + (uint32_t)epochs; e++) {
        cr_assert_eq(ct_loader_start_epoch(ld, e), CT_OK);
        ct_batch b;
        while (ct_loader_next(ld, &b) == CT_OK && b.count > 0) {
            memcpy(all + used, b.x, (size_t)(b.count * NUMEL) * sizeof *all);
            used += (size_t)(b.count * NUMEL);
        }
    }
    ct_loader_free(ld);
    *len = used;
    return all;
}

Test(augment_loader, samples_are_the_augment_of_their_index) {
    ct_dataset *ds = images(10);
    ct_augment_opts aug = all_steps();
    const uint64_t seed = 1234;
    ct_loader_opts lo = {.batch_size = 16, .shuffle = true, .seed = seed, .augment = &aug};
    ct_loader *ld = ct_loader_new(ds, &lo);
    cr_assert_not_null(ld, "%s", ct_last_error());
    float want[NUMEL];
    for (uint32_t e = 0; e < 2; e++) {
        ct_loader_start_epoch(ld, e);
        ct_batch b;
        int64_t seen = 0;
        while (ct_loader_next(ld, &b) == CT_OK && b.count > 0) {
            for (int64_t i = 0; i < b.count; i++) {
                int64_t idx = b.indices[i];
                ct_augment_params p;
                cr_assert_eq(ct_augment_draw(&aug, chw(C_, H_, W_), seed, e, idx, &p), CT_OK);
                cr_assert_eq(ct_augment_apply(&aug, chw(C_, H_, W_), &p, ct_dataset_features(ds) + idx * NUMEL,
                                              want),
                             CT_OK);
                cr_assert_eq(memcmp(b.x + i * NUMEL, want, sizeof want), 0, "epoch %u sample %lld", e,
                             (long long)idx);
                cr_assert_eq(b.y[i], ct_dataset_labels(ds)[idx]);
            }
            seen += b.count;
        }
        cr_assert_eq(seen, N_SAMPLES);
    }
    ct_loader_free(ld);
    ct_dataset_free(ds);
}

Test(augment_loader, deterministic_with_and_without_prefetch) {
    ct_dataset *ds = images(11);
    ct_augment_opts aug = all_steps();
    size_t la, lb, lc, ld_, le;
    ct_loader_opts lo = {.batch_size = 8, .shuffle = true, .seed = 5, .augment = &aug};
    float *a = run_epochs(ds, &lo, 0, 3, &la);
    float *b = run_epochs(ds, &lo, 0, 3, &lb);
    lo.prefetch = true;
    float *c = run_epochs(ds, &lo, 0, 3, &lc);
    cr_assert(la == lb && la == lc && la == 3 * N_SAMPLES * NUMEL);
    cr_assert_eq(memcmp(a, b, la * sizeof *a), 0, "same seed, same batches");
    cr_assert_eq(memcmp(a, c, la * sizeof *a), 0, "prefetch changes nothing");
    /* Epoch 2 alone, started cold, is epoch 2 of the run. */
    float *d = run_epochs(ds, &lo, 2, 1, &ld_);
    cr_assert_eq(memcmp(a + 2 * N_SAMPLES * NUMEL, d, ld_ * sizeof *d), 0);
    /* Without shuffle the order is fixed, but epochs still differ. */
    lo.shuffle = false;
    float *e = run_epochs(ds, &lo, 0, 2, &le);
    cr_assert_neq(memcmp(e, e + N_SAMPLES * NUMEL, (size_t)(N_SAMPLES * NUMEL) * sizeof *e), 0,
                  "epochs 0 and 1 draw different augmentations");
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    ct_dataset_free(ds);
}

Test(augment_loader, epochs_and_seeds_differ) {
    ct_dataset *ds = images(12);
    ct_augment_opts aug = {.crop_pad = 2, .flip = true, .noise_std = 0.01};
    ct_loader_opts lo = {.batch_size = N_SAMPLES, .seed = 3, .augment = &aug};
    size_t l0, l1, l2;
    float *e01 = run_epochs(ds, &lo, 0, 2, &l0);
    lo.seed = 4;
    float *s4 = run_epochs(ds, &lo, 0, 1, &l1);
    /* Sample by sample: every sample gets new noise in a new epoch. */
    for (int64_t i = 0; i < N_SAMPLES; i++) {
        cr_assert_neq(memcmp(e01 + i * NUMEL, e01 + (N_SAMPLES + i) * NUMEL, NUMEL * sizeof(float)), 0,
                      "sample %lld is the same in epochs 0 and 1", (long long)i);
        cr_assert_neq(memcmp(e01 + i * NUMEL, s4 + i * NUMEL, NUMEL * sizeof(float)), 0);
    }
    /* The dataset itself is never changed. */
    ct_dataset *fresh = images(12);
    cr_assert_eq(memcmp(ct_dataset_features(ds), ct_dataset_features(fresh), N_SAMPLES * NUMEL * sizeof(float)), 0);
    (void)l2;
    free(e01);
    free(s4);
    ct_dataset_free(fresh);
    ct_dataset_free(ds);
}

Test(augment_loader, normalize_only_equals_normalizing_the_dataset) {
    ct_dataset *ds = images(13), *norm = images(13);
    cr_assert_eq(ct_dataset_normalize(norm, C_, MEAN, STD), CT_OK);
    ct_augment_opts aug = {.mean = MEAN, .std = STD};
    ct_loader_opts lo = {.batch_size = 7, .seed = 3, .augment = &aug, .prefetch = true};
    size_t len;
    float *x = run_epochs(ds, &lo, 0, 1, &len);
    cr_assert_eq(len, N_SAMPLES * NUMEL);
    cr_assert_eq(memcmp(x, ct_dataset_features(norm), len * sizeof *x), 0, "bit for bit");
    free(x);
    ct_dataset_free(ds);
    ct_dataset_free(norm);
}

Test(augment_loader, shards_and_resume_see_the_same_samples) {
    ct_dataset *ds = images(14);
    ct_augment_opts aug = all_steps();
    ct_loader_opts whole = {.batch_size = 10, .shuffle = true, .seed = 8, .augment = &aug};
    ct_loader *ref = ct_loader_new(ds, &whole);
    ct_loader_start_epoch(ref, 1);
    ct_batch rb;
    /* Shard 1 of 2 with batch 5 takes the second half of each batch of 10. */
    ct_loader_opts shard = whole;
    shard.batch_size = 5;
    shard.num_shards = 2;
    shard.shard_index = 1;
    shard.prefetch = true;
    ct_loader *sh = ct_loader_new(ds, &shard);
    cr_assert_not_null(sh, "%s", ct_last_error());
    ct_loader_start_epoch_at(sh, 1, 3);
    for (int k = 0; k < 3; k++) ct_loader_next(ref, &rb); /* skip to batch 3 */
    ct_batch sb;
    while (ct_loader_next(ref, &rb) == CT_OK && rb.count > 0) {
        cr_assert_eq(ct_loader_next(sh, &sb), CT_OK);
        cr_assert_eq(sb.count, 5);
        cr_assert_eq(memcmp(sb.x, rb.x + 5 * NUMEL, 5 * NUMEL * sizeof(float)), 0, "batch %lld", (long long)rb.index);
    }
    ct_loader_free(ref);
    ct_loader_free(sh);
    ct_dataset_free(ds);
}

Test(augment_loader, errors) {
    float x[4 * 64] = {0};
    int32_t y[4] = {0, 1, 0, 1};
    ct_dataset *flat;
    cr_assert_eq(ct_dataset_from_arrays(4, (ct_shape){1, {64}}, x, y, 0, &flat), CT_OK);
    ct_augment_opts aug = {.flip = true};
    ct_loader_opts lo = {.batch_size = 2, .augment = &aug};
    cr_assert_null(ct_loader_new(flat, &lo));
    cr_assert(strstr(ct_last_error(), "ct_loader_new: augmentation needs images of shape [C, H, W], not samples of shape [64]"),
              "%s", ct_last_error());
    /* Declaring the geometry makes it an image. */
    cr_assert_eq(ct_dataset_reshape(flat, (ct_shape){3, {2, 4, 9}}), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "does not hold the 64 elements"), "%s", ct_last_error());
    cr_assert_eq(ct_dataset_reshape(flat, (ct_shape){3, {1, 0, 64}}), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_reshape(flat, chw(1, 8, 8)), CT_OK);
    cr_assert(ct_shape_equal(ct_dataset_sample_shape(flat), chw(1, 8, 8)));
    ct_loader *ld = ct_loader_new(flat, &lo);
    cr_assert_not_null(ld, "%s", ct_last_error());
    ct_loader_free(ld);
    aug.crop_pad = 100;
    cr_assert_null(ct_loader_new(flat, &lo));
    cr_assert(strstr(ct_last_error(), "ct_loader_new: augment crop_pad is 100"), "%s", ct_last_error());
    /* All zero is no augmentation: batches in place, as before. */
    ct_augment_opts none = {0};
    lo.augment = &none;
    ld = ct_loader_new(flat, &lo);
    ct_batch b;
    ct_loader_next(ld, &b);
    cr_assert_eq(b.x, ct_dataset_features(flat));
    ct_loader_free(ld);
    ct_dataset_free(flat);
}

/* ------------------------------------------------------------------ trainer */

static ct_node linear_model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_shape s = ct_node_shape(g, x);
    ct_node h = ct_reshape(g, x, (ct_shape){2, {s.dim[0], -1}});
    return ct_linear(g, "fc", h, 4, true, NULL);
}

Test(augment_trainer, evaluation_data_is_never_augmented) {
    ct_dataset *train = images(20), *val = images(21), *test = images(22);
    ct_dataset *val_copy = images(21);
    /* Augmentation so strong that an augmented pass could not match. */
    ct_augment_opts aug = {.noise_std = 5, .cutout_size = 6, .flip = true};
    ct_train_opts o = {.model = linear_model, .batch_size = 30, .epochs = 1, .seed = 2, .data_seed = 3,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 1e-30}, .quiet = true, .prefetch = true,
                       .augment = &aug};
    ct_train_opts plain = o;
    plain.augment = NULL;
    ct_trainer *t = ct_trainer_new(&o, train, val, test);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_trainer *u = ct_trainer_new(&plain, train, val, test);
    cr_assert_not_null(u, "%s", ct_last_error());
    ct_eval_result before_val, before_test;
    cr_assert_eq(ct_trainer_evaluate(u, val, &before_val), CT_OK);
    cr_assert_eq(ct_trainer_evaluate(u, test, &before_test), CT_OK);
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    /* lr 1e-30 leaves every weight as it was, so the run's validation and
     * test passes must equal an evaluation of the untrained twin exactly. */
    cr_assert_eq(r.val_loss, before_val.loss);
    cr_assert_eq(r.test_loss, before_test.loss);
    cr_assert_eq(memcmp(ct_dataset_features(val), ct_dataset_features(val_copy), N_SAMPLES * NUMEL * sizeof(float)), 0);
    ct_trainer_free(t);
    ct_trainer_free(u);
    ct_dataset_free(train);
    ct_dataset_free(val);
    ct_dataset_free(test);
    ct_dataset_free(val_copy);
}

static void *weights_of(ct_trainer *t, size_t *bytes) {
    ct_program *p = ct_trainer_program(t);
    *bytes = ct_program_param_numel(p) * ct_dtype_size(ct_program_param_dtype(p));
    void *buf = malloc(*bytes);
    cr_assert_not_null(buf);
    cr_assert_eq(ct_program_read_params(p, buf, *bytes), CT_OK);
    return buf;
}

static void *train_run(const ct_train_opts *o, ct_dataset *train, const char *resume, size_t *bytes) {
    ct_trainer *t = ct_trainer_new(o, train, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    if (resume) cr_assert_eq(ct_trainer_resume(t, resume), CT_OK, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    void *w = weights_of(t, bytes);
    ct_trainer_free(t);
    return w;
}

Test(augment_trainer, resume_mid_epoch_is_bit_exact) {
    ct_dataset *train = images(23);
    ct_augment_opts aug = all_steps();
    ct_train_opts o = {.model = linear_model, .model_fingerprint = "aug linear", .batch_size = 16, .epochs = 3,
                       .seed = 2, .data_seed = 9, .optim = {.kind = CT_OPTIM_ADAM, .lr = 0.01}, .quiet = true,
                       .prefetch = true, .augment = &aug};
    size_t n1, n2;
    void *straight = train_run(&o, train, NULL, &n1);
    char path[64];
    snprintf(path, sizeof path, "/tmp/ctrain_aug_resume_%d.safetensors", (int)getpid());
    ct_train_opts first = o;
    first.epochs = 0;
    first.max_steps = 8; /* two steps into the second epoch */
    first.save_path = path;
    first.prefetch = false;
    free(train_run(&first, train, NULL, &n2));
    void *resumed = train_run(&o, train, path, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(straight, resumed, n1), 0, "weights differ after resuming an augmented run");
    /* And augmentation did change the run. */
    ct_train_opts plain = o;
    plain.augment = NULL;
    void *other = train_run(&plain, train, NULL, &n2);
    cr_assert_neq(memcmp(straight, other, n1), 0);
    unlink(path);
    free(straight);
    free(resumed);
    free(other);
    ct_dataset_free(train);
}
