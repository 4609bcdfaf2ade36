/* `ctrain eval`'s checks on what it is given (eval_checks.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_checks.h"

static bool is_float(ct_dtype d) { return d == CT_F32 || d == CT_F64 || d == CT_F16 || d == CT_BF16; }

/* Tensors the evaluated model never loads. */
static bool not_weights(const char *name) {
    return strncmp(name, "optim.", 6) == 0 || strncmp(name, "best.", 5) == 0;
}

/* Tensor i as F32 (what the model computes with) into *buf, grown as
 * needed; its element count in *n. False after reporting. */
static bool read_f32(const char *cmd, const char *path, const ct_st_file *f, int i, float **buf, size_t *cap,
                     size_t *n) {
    ct_shape s;
    ct_dtype d;
    if (ct_st_info(f, i, &d, &s) != CT_OK || !is_float(d)) {
        *n = 0;
        return true; /* integer tensors hold no NaN; others are load_weights' to refuse */
    }
    size_t numel = 1;
    for (int k = 0; k < s.ndim; k++) numel *= (size_t)s.dim[k];
    if (numel > *cap) {
        float *nb = realloc(*buf, numel * sizeof *nb);
        if (!nb) {
            fprintf(stderr, "ctrain: %s: '%s': out of memory reading '%s'\n", cmd, path, ct_st_name(f, i));
            return false;
        }
        *buf = nb;
        *cap = numel;
    }
    *n = numel;
    if (ct_st_read(f, i, CT_F32, *buf, numel * sizeof **buf) != CT_OK) {
        fprintf(stderr, "ctrain: %s: '%s': tensor '%s': %s\n", cmd, path, ct_st_name(f, i), ct_last_error());
        return false;
    }
    return true;
}

bool eval_weights_finite(const char *cmd, const char *path, const ct_st_file *f) {
    float *buf = NULL;
    size_t cap = 0, n = 0;
    bool ok = true;
    for (int i = 0; ok && i < ct_st_count(f); i++) {
        const char *name = ct_st_name(f, i);
        if (not_weights(name)) continue;
        ok = read_f32(cmd, path, f, i, &buf, &cap, &n);
        for (size_t k = 0; ok && k < n; k++)
            if (!isfinite(buf[k])) {
                fprintf(stderr, "ctrain: %s: '%s': the weights hold %s in tensor '%s' (element %zu)\n", cmd, path,
                        isnan(buf[k]) ? "NaN" : "inf", name, k);
                ok = false;
            }
    }
    free(buf);
    return ok;
}

bool eval_norm_ok(const char *cmd, const char *path, const float *mean, const float *std, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const char *field = !isfinite(mean[i]) ? "mean" : !(isfinite(std[i]) && std[i] > 0) ? "std" : NULL;
        if (!field) continue;
        fprintf(stderr,
                "ctrain: %s: '%s': its normalisation record (metadata cli.normalize) is degenerate: %s[%lld] is %g\n",
                cmd, path, field, (long long)i, (double)(field[0] == 'm' ? mean[i] : std[i]));
        return false;
    }
    return true;
}

bool eval_fit_classes(const char *cmd, ct_dataset *ds, const char *where, int64_t classes) {
    if (ct_dataset_num_classes(ds) <= classes) return true;
    const int32_t *y = ct_dataset_labels(ds);
    for (int64_t i = 0; i < ct_dataset_size(ds); i++)
        if (y[i] >= classes) {
            fprintf(stderr, "ctrain: %s: %s: record %lld has label %d, but the model has %lld classes (0 to %lld)\n",
                    cmd, where, (long long)i, (int)y[i], (long long)classes, (long long)classes - 1);
            return false;
        }
    /* The labels fit; only the declared range (MNIST's 10) is wider. */
    if (ct_dataset_set_num_classes(ds, (int32_t)classes) != CT_OK) {
        fprintf(stderr, "ctrain: %s: %s: %s\n", cmd, where, ct_last_error());
        return false;
    }
    return true;
}
