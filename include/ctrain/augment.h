/* Data augmentation: random changes to each training image, drawn afresh
 * every epoch, so that the model sees a slightly different picture each time.
 *
 * An augmentation works on one image of shape [C, H, W] (channel-major, as
 * the IDX and CIFAR-10 readers produce), in the data's own scale - pixels in
 * [0, 1] as read - and ends with an optional per-channel normalization, so
 * that every fill (the padding of a crop, the corners a rotation uncovers, a
 * cutout square) is the value 0 of that scale: black. The usual use is
 * through the loader, which applies it to each training sample as it builds
 * a batch (in its prefetch thread when prefetch is on):
 *
 *     const float mean[1] = {0.1307f}, std[1] = {0.3081f};
 *     ct_augment_opts aug = {.crop_pad = 2, .rotate_deg = 10, .mean = mean, .std = std};
 *     ct_loader_opts lo = {.batch_size = 64, .shuffle = true, .seed = 42,
 *                          .prefetch = true, .augment = &aug};
 *
 * and the training set is then left unnormalized (the loader normalizes);
 * validation and test sets are normalized once, in place, with the same
 * mean and std (ct_dataset_normalize) and never augmented.
 *
 * Every random choice is a pure function of (seed, epoch, sample index): a
 * Philox stream keyed by the seed, with the sample's dataset index and the
 * epoch in the counter. So a run repeats exactly, with or without prefetch,
 * sharded or not, and a resumed run sees the images it would have seen.
 * Each choice also has its own fixed place in the sample's stream, so that
 * turning one augmentation on or off does not change what the others draw.
 *
 * The steps, in this order, each when its option is non-zero:
 *   1. crop:      out(i, j) = in(i + dy, j + dx), dy and dx uniform integers
 *                 in [-crop_pad, crop_pad], 0 outside the image - the same as
 *                 padding by crop_pad and cropping H x W at a random place
 *                 (torchvision's RandomCrop(size, padding));
 *   2. flip:      mirror left-right with probability 1/2;
 *   3. rotate / translate: one bilinear resampling that rotates by an angle
 *                 uniform in [-rotate_deg, rotate_deg] (counter-clockwise as
 *                 displayed, about the image centre) and then shifts by
 *                 integers uniform in [-translate_px, translate_px] (down,
 *                 right); 0 outside the image;
 *   4. noise:     adds independent N(0, noise_std^2) to every element (the
 *                 result is not clamped);
 *   5. cutout:    sets a cutout_size x cutout_size square to 0 in every
 *                 channel, placed uniformly where it fits inside the image;
 *   6. normalize: x = (x - mean[c]) / std[c] per channel c.
 */
#ifndef CTRAIN_AUGMENT_H
#define CTRAIN_AUGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/dtype.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What to do to each image. All zero is no augmentation; each field turns
 * its step on by being non-zero. */
typedef struct ct_augment_opts {
    int crop_pad;       /* >= 0, at most min(H, W) */
    bool flip;          /* horizontal, probability 1/2 */
    double rotate_deg;  /* degrees, in [0, 180] */
    int translate_px;   /* >= 0, at most min(H, W) */
    double noise_std;   /* >= 0, finite; in the data's scale (before normalization) */
    int cutout_size;    /* >= 0, at most min(H, W) */
    /* Per-channel normalization as the last step: C values each (the
     * image's channels), std > 0. Both NULL: none. Copied by whoever takes
     * the options (the loader), so they need not outlive that call. */
    const float *mean;
    const float *std;
} ct_augment_opts;

/* The random choices for one image, as ct_augment_draw makes them. Fields of
 * steps that are off are 0. */
typedef struct ct_augment_params {
    int crop_dy, crop_dx;   /* out(i, j) = in(i + crop_dy, j + crop_dx) */
    bool flip;
    double angle_deg;       /* counter-clockwise as displayed */
    int shift_y, shift_x;   /* the image moves down by shift_y, right by shift_x */
    int cutout_y, cutout_x; /* top-left corner of the square */
    /* The key of the noise: the draw's (seed, epoch, index). */
    uint64_t seed;
    uint32_t epoch;
    int64_t index;
} ct_augment_params;

/* True when opts (may be NULL) asks for anything at all, normalization
 * included. */
bool ct_augment_active(const ct_augment_opts *opts);

/* Checks opts against images of shape `image`, which must be [C, H, W].
 * Errors (CT_ERR_INVALID_ARG, naming the field and the limit): a shape that
 * is not [C, H, W]; a negative, non-finite or too large value; only one of
 * mean and std; a std <= 0 or a non-finite mean or std. */
ct_status ct_augment_check(const ct_augment_opts *opts, ct_shape image);

/* The random choices for sample `index` (its index in the dataset) in epoch
 * `epoch` of a run seeded with `seed`: a pure function of these and of opts
 * and the image shape. Errors: those of ct_augment_check, a negative index,
 * NULL arguments (CT_ERR_INVALID_ARG). */
ct_status ct_augment_draw(const ct_augment_opts *opts, ct_shape image, uint64_t seed, uint32_t epoch,
                          int64_t index, ct_augment_params *out);

/* Applies opts with the choices in params to one image: src and dst hold
 * numel(image) floats each and must not overlap. Applying the params that
 * ct_augment_draw gave for (seed, epoch, index) is exactly what the loader
 * does to that sample in that epoch. Errors: those of ct_augment_check, NULL
 * arguments (CT_ERR_INVALID_ARG); CT_ERR_OOM (rotate/translate need a
 * scratch image). */
ct_status ct_augment_apply(const ct_augment_opts *opts, ct_shape image, const ct_augment_params *params,
                           const float *src, float *dst);

#ifdef __cplusplus
}
#endif
#endif
