/* Per-sample augmentation of [C, H, W] images (see ctrain/augment.h).
 *
 * Random words come from Philox with key = seed and counter {block, sample
 * index, CT_DATA_STREAM_AUGMENT, epoch}: element w of a sample's stream is
 * ct_philox_u32(seed, stream, epoch, index * 2^34 + w). Words 0..7 are the
 * choices of the geometric steps and of cutout, each at a fixed place, and
 * the noise starts at word 16 (block 4); 8..15 are left for choices to come,
 * so adding one does not move the noise.
 *
 * Bounded integers take the high word of w * range: a bias of at most
 * range / 2^32 (< 1e-7 for the ranges allowed here), a fair price for a
 * fixed number of words per choice, which rejection sampling cannot give.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/rng.h"
#include "data/data_internal.h"

enum { W_CROP_Y, W_CROP_X, W_FLIP, W_ANGLE, W_SHIFT_Y, W_SHIFT_X, W_CUT_Y, W_CUT_X };
#define NOISE_FIRST_BLOCK 4u

static const double PI = 3.14159265358979323846;

bool ct_augment_active(const ct_augment_opts *o) {
    return o && (o->crop_pad || o->flip || o->rotate_deg != 0 || o->translate_px || o->noise_std != 0 ||
                 o->cutout_size || o->mean || o->std);
}

static ct_status bad(const char *fn, const char *field, double v, const char *want) {
    return ct_error(CT_ERR_INVALID_ARG, "%s: augment %s is %g, %s", fn, field, v, want);
}

/* The whole of ct_augment_check, with the caller's name in messages. */
ct_status ct_aug_validate(const char *fn, const ct_augment_opts *o, ct_shape image) {
    char buf[128];
    if (!o) return ct_error(CT_ERR_INVALID_ARG, "%s: NULL augmentation options", fn);
    if (image.ndim != 3 || image.dim[0] < 1 || image.dim[1] < 1 || image.dim[2] < 1)
        return ct_error(CT_ERR_INVALID_ARG,
                        "%s: augmentation needs images of shape [C, H, W], not samples of shape %s "
                        "(ct_dataset_reshape declares the geometry of flat samples)",
                        fn, ct_shape_str(image, buf, sizeof buf));
    const int64_t H = image.dim[1], W = image.dim[2], side = H < W ? H : W;
    /* Noise draws 2^32 - NOISE_FIRST_BLOCK blocks at most per sample. */
    if (image.dim[0] * H * W > (INT64_C(1) << 32))
        return ct_error(CT_ERR_INVALID_ARG, "%s: images of shape %s are too large to augment", fn,
                        ct_shape_str(image, buf, sizeof buf));
    char limit[64];
    snprintf(limit, sizeof limit, "must be in [0, %lld] (the image's smaller side)", (long long)side);
    if (o->crop_pad < 0 || o->crop_pad > side) return bad(fn, "crop_pad", o->crop_pad, limit);
    if (o->translate_px < 0 || o->translate_px > side) return bad(fn, "translate_px", o->translate_px, limit);
    if (o->cutout_size < 0 || o->cutout_size > side) return bad(fn, "cutout_size", o->cutout_size, limit);
    if (!(o->rotate_deg >= 0 && o->rotate_deg <= 180))
        return bad(fn, "rotate_deg", o->rotate_deg, "must be in [0, 180] degrees");
    if (!(o->noise_std >= 0 && isfinite(o->noise_std)))
        return bad(fn, "noise_std", o->noise_std, "must be finite and >= 0");
    if (!o->mean != !o->std)
        return ct_error(CT_ERR_INVALID_ARG, "%s: augment normalization needs both mean and std, %s is NULL",
                        fn, o->mean ? "std" : "mean");
    for (int64_t c = 0; o->mean && c < image.dim[0]; c++) {
        if (!isfinite(o->mean[c]))
            return ct_error(CT_ERR_INVALID_ARG, "%s: augment mean[%lld] is %g", fn, (long long)c,
                            (double)o->mean[c]);
        if (!(o->std[c] > 0) || !isfinite(o->std[c]))
            return ct_error(CT_ERR_INVALID_ARG, "%s: augment std[%lld] is %g, must be finite and > 0", fn,
                            (long long)c, (double)o->std[c]);
    }
    return CT_OK;
}

ct_status ct_augment_check(const ct_augment_opts *opts, ct_shape image) {
    return ct_aug_validate("ct_augment_check", opts, image);
}

static uint32_t word(uint64_t seed, uint32_t epoch, int64_t index, uint32_t w) {
    return ct_philox_u32(seed, CT_DATA_STREAM_AUGMENT, epoch, (uint64_t)index << 34 | w);
}

/* Uniform integer in [lo, hi]. */
static int uniform_int(uint32_t w, int lo, int hi) {
    return lo + (int)(((uint64_t)w * (uint64_t)(hi - lo + 1)) >> 32);
}

static void draw(const ct_augment_opts *o, int64_t H, int64_t W, uint64_t seed, uint32_t epoch, int64_t index,
                 ct_augment_params *p) {
    memset(p, 0, sizeof *p);
    p->seed = seed;
    p->epoch = epoch;
    p->index = index;
    if (o->crop_pad) {
        p->crop_dy = uniform_int(word(seed, epoch, index, W_CROP_Y), -o->crop_pad, o->crop_pad);
        p->crop_dx = uniform_int(word(seed, epoch, index, W_CROP_X), -o->crop_pad, o->crop_pad);
    }
    if (o->flip) p->flip = word(seed, epoch, index, W_FLIP) >> 31;
    if (o->rotate_deg > 0) {
        double u = word(seed, epoch, index, W_ANGLE) * 0x1p-32; /* [0, 1) */
        p->angle_deg = (2 * u - 1) * o->rotate_deg;
    }
    if (o->translate_px) {
        p->shift_y = uniform_int(word(seed, epoch, index, W_SHIFT_Y), -o->translate_px, o->translate_px);
        p->shift_x = uniform_int(word(seed, epoch, index, W_SHIFT_X), -o->translate_px, o->translate_px);
    }
    if (o->cutout_size) {
        p->cutout_y = uniform_int(word(seed, epoch, index, W_CUT_Y), 0, (int)(H - o->cutout_size));
        p->cutout_x = uniform_int(word(seed, epoch, index, W_CUT_X), 0, (int)(W - o->cutout_size));
    }
}

ct_status ct_augment_draw(const ct_augment_opts *opts, ct_shape image, uint64_t seed, uint32_t epoch,
                          int64_t index, ct_augment_params *out) {
    if (!out) return ct_error(CT_ERR_INVALID_ARG, "ct_augment_draw: NULL output");
    ct_status s = ct_aug_validate("ct_augment_draw", opts, image);
    if (s != CT_OK) return s;
    if (index < 0 || index > CT_DATASET_MAX_SAMPLES)
        return ct_error(CT_ERR_INVALID_ARG, "ct_augment_draw: sample index %lld outside [0, %d]",
                        (long long)index, CT_DATASET_MAX_SAMPLES);
    draw(opts, image.dim[1], image.dim[2], seed, epoch, index, out);
    return CT_OK;
}

/* ------------------------------------------------------------------ steps */

/* Crop and flip in one out-of-place pass: both only move whole pixels. */
static void crop_flip(int64_t C, int64_t H, int64_t W, const ct_augment_params *p, const float *src,
                      float *dst) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < H; i++) {
            const int64_t si = i + p->crop_dy;
            float *out = dst + (c * H + i) * W;
            for (int64_t j = 0; j < W; j++) {
                const int64_t sj = (p->flip ? W - 1 - j : j) + p->crop_dx;
                out[j] = si >= 0 && si < H && sj >= 0 && sj < W ? src[(c * H + si) * W + sj] : 0.0f;
            }
        }
}

/* in(y, x) or 0 outside the image. */
static double at(const float *img, int64_t H, int64_t W, int64_t y, int64_t x) {
    return y >= 0 && y < H && x >= 0 && x < W ? img[y * W + x] : 0.0;
}

/* Rotation about the centre, then the shift, by inverse mapping: each
 * output pixel reads the source at the point that lands on it, bilinearly.
 * Neighbours of weight 0 are not read, so a whole-pixel mapping (angle 0,
 * integer shifts) copies values exactly. */
static void rotate_shift(int64_t C, int64_t H, int64_t W, const ct_augment_params *p, const float *src,
                         float *dst) {
    const double th = p->angle_deg * (PI / 180.0), cs = cos(th), sn = sin(th);
    const double cy = (double)(H - 1) / 2, cx = (double)(W - 1) / 2;
    for (int64_t i = 0; i < H; i++)
        for (int64_t j = 0; j < W; j++) {
            const double y = (double)(i - p->shift_y) - cy, x = (double)(j - p->shift_x) - cx;
            /* Screen y points down, so counter-clockwise as displayed is
             * clockwise in (x, y): the source point is the output's rotated
             * back by the angle. */
            const double sx = cx + cs * x - sn * y, sy = cy + sn * x + cs * y;
            const double fy0 = floor(sy), fx0 = floor(sx);
            const double fy = sy - fy0, fx = sx - fx0;
            const int64_t y0 = (int64_t)fy0, x0 = (int64_t)fx0;
            if (y0 < -1 || y0 >= H || x0 < -1 || x0 >= W) { /* all four neighbours outside */
                for (int64_t c = 0; c < C; c++) dst[(c * H + i) * W + j] = 0.0f;
                continue;
            }
            for (int64_t c = 0; c < C; c++) {
                const float *img = src + c * H * W;
                double v = 0;
                if (fy < 1 && fx < 1) v += (1 - fy) * (1 - fx) * at(img, H, W, y0, x0);
                if (fy > 0 && fx < 1) v += fy * (1 - fx) * at(img, H, W, y0 + 1, x0);
                if (fy < 1 && fx > 0) v += (1 - fy) * fx * at(img, H, W, y0, x0 + 1);
                if (fy > 0 && fx > 0) v += fy * fx * at(img, H, W, y0 + 1, x0 + 1);
                dst[(c * H + i) * W + j] = (float)v;
            }
        }
}

/* N(0, std^2) per element by Box-Muller: each Philox block of 4 words gives
 * two (u1, u2) pairs and so four normals (cos and sin of each pair). */
static void add_noise(int64_t n, double std, const ct_augment_params *p, float *x) {
    const uint32_t key[2] = {(uint32_t)p->seed, (uint32_t)(p->seed >> 32)};
    for (int64_t k = 0; k < n; k += 4) {
        const uint32_t ctr[4] = {NOISE_FIRST_BLOCK + (uint32_t)(k / 4), (uint32_t)p->index,
                                 CT_DATA_STREAM_AUGMENT, p->epoch};
        uint32_t w[4];
        ct_philox4x32_10(ctr, key, w);
        /* Single precision: the noise is added to floats, and float libm
         * calls cost a fraction of double ones in this, the loader's
         * hottest loop. */
        float z[4];
        for (int h = 0; h < 2; h++) {
            const float u1 = (float)(((double)w[2 * h] + 1.0) * 0x1p-32); /* (0, 1]: log is finite */
            const float u2 = (float)((double)(w[2 * h + 1] >> 8) * 0x1p-24);
            const float r = sqrtf(-2.0f * logf(u1)), a = (float)(2 * PI) * u2;
            z[2 * h] = r * cosf(a);
            z[2 * h + 1] = r * sinf(a);
        }
        for (int64_t m = 0; m < 4 && k + m < n; m++) x[k + m] += (float)std * z[m];
    }
}

void ct_aug_run(const ct_augment_opts *o, ct_shape image, const ct_augment_params *params, const float *src,
                float *dst, float *scratch) {
    const int64_t C = image.dim[0], H = image.dim[1], W = image.dim[2], n = C * H * W;
    const bool affine = o->rotate_deg > 0 || o->translate_px;
    /* opts say which steps run, params by how much: a choice for a step that
     * is off is ignored. */
    ct_augment_params q = *params;
    if (!o->crop_pad) q.crop_dy = q.crop_dx = 0;
    if (!o->flip) q.flip = false;
    if (!(o->rotate_deg > 0)) q.angle_deg = 0;
    if (!o->translate_px) q.shift_y = q.shift_x = 0;
    const ct_augment_params *p = &q;
    if (affine) {
        crop_flip(C, H, W, p, src, scratch);
        rotate_shift(C, H, W, p, scratch, dst);
    } else {
        crop_flip(C, H, W, p, src, dst);
    }
    if (o->noise_std > 0) add_noise(n, o->noise_std, p, dst);
    if (o->cutout_size)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = p->cutout_y; i < p->cutout_y + o->cutout_size; i++)
                memset(dst + (c * H + i) * W + p->cutout_x, 0, (size_t)o->cutout_size * sizeof(float));
    if (o->mean)
        for (int64_t c = 0; c < C; c++) {
            float *x = dst + c * H * W;
            /* Subtract, then divide, as ct_dataset_normalize does, so that a
             * loader that only normalizes gives the same floats. The
             * constants in locals: through o->mean the compiler must assume a
             * store to x changes them, and would not vectorise. */
            const float m = o->mean[c], s = o->std[c];
            for (int64_t k = 0; k < H * W; k++) x[k] = (x[k] - m) / s;
        }
}

void ct_aug_sample(const ct_aug *a, uint64_t seed, uint32_t epoch, int64_t index, const float *src, float *dst,
                   float *scratch) {
    ct_augment_params p;
    draw(&a->o, a->image.dim[1], a->image.dim[2], seed, epoch, index, &p);
    ct_aug_run(&a->o, a->image, &p, src, dst, scratch);
}

ct_status ct_augment_apply(const ct_augment_opts *opts, ct_shape image, const ct_augment_params *params,
                           const float *src, float *dst) {
    if (!params || !src || !dst) return ct_error(CT_ERR_INVALID_ARG, "ct_augment_apply: NULL argument");
    ct_status s = ct_aug_validate("ct_augment_apply", opts, image);
    if (s != CT_OK) return s;
    const int64_t H = image.dim[1], W = image.dim[2];
    /* Parameters that would read or write outside the image are refused:
     * they cannot come from ct_augment_draw with these options. */
    if (opts->cutout_size && (params->cutout_y < 0 || params->cutout_x < 0 ||
                              params->cutout_y > H - opts->cutout_size || params->cutout_x > W - opts->cutout_size))
        return ct_error(CT_ERR_INVALID_ARG, "ct_augment_apply: cutout at (%d, %d) does not fit a %lldx%lld image",
                        params->cutout_y, params->cutout_x, (long long)H, (long long)W);
    if (!isfinite(params->angle_deg))
        return ct_error(CT_ERR_INVALID_ARG, "ct_augment_apply: angle %g", params->angle_deg);
    float *scratch = NULL;
    if (opts->rotate_deg > 0 || opts->translate_px) {
        scratch = malloc((size_t)ct_shape_numel(image) * sizeof *scratch);
        if (!scratch) return ct_error(CT_ERR_OOM, "ct_augment_apply: out of memory");
    }
    ct_aug_run(opts, image, params, src, dst, scratch);
    free(scratch);
    return CT_OK;
}

/* ------------------------------------------------------------------ owned copy */

ct_status ct_aug_init(ct_aug *a, const char *fn, const ct_augment_opts *o, ct_shape image) {
    memset(a, 0, sizeof *a);
    ct_status s = ct_aug_validate(fn, o, image);
    if (s != CT_OK) return s;
    a->o = *o;
    a->image = image;
    if (o->mean) {
        const size_t C = (size_t)image.dim[0];
        a->mean = malloc(C * sizeof *a->mean);
        a->std = malloc(C * sizeof *a->std);
        if (!a->mean || !a->std) {
            ct_aug_free(a);
            return ct_error(CT_ERR_OOM, "%s: out of memory", fn);
        }
        memcpy(a->mean, o->mean, C * sizeof *a->mean);
        memcpy(a->std, o->std, C * sizeof *a->std);
        a->o.mean = a->mean;
        a->o.std = a->std;
    }
    return CT_OK;
}

void ct_aug_free(ct_aug *a) {
    free(a->mean);
    free(a->std);
    memset(a, 0, sizeof *a);
}
