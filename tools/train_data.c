/* Datasets for `ctrain train` and `ctrain eval`.
 *
 * MNIST and Fashion-MNIST are looked for where this repository keeps them
 * (../shared/data/<name>, from the current directory or from the checkout
 * the executable was built in), so `ctrain train` works with no flags from
 * the repository root or from anywhere else. Images are normalised with the
 * constants everyone uses for them (MNIST 0.1307 / 0.3081, as in PyTorch's
 * examples; Fashion-MNIST 0.2860 / 0.3530, its training set's statistics),
 * so results compare with PyTorch's directly; CIFAR-10 per channel with its
 * training set's statistics (CT_CIFAR10_MEAN / STD). With --augment the
 * training set is left as read and the loader normalizes each sample after
 * augmenting it, so that padding and cutout are black (0 before
 * normalization), as in torchvision's pipelines. CSV features are standardised
 * per feature with the training part's statistics. The statistics used go
 * into the checkpoint so that `ctrain eval` applies exactly the same.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "train_cli.h"

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The training images, raw or gzipped: enough to call a directory a home. */
static bool has_idx(const char *dir) {
    char p[PATH_MAX + 64];
    if (snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir) >= (int)sizeof p) return false;
    if (exists(p)) return true;
    if (snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir) >= (int)sizeof p) return false;
    return exists(p);
}

/* CIFAR-10's first training file, here or where the archive unpacks. */
static bool has_cifar(const char *dir) {
    char p[PATH_MAX + 64];
    const char *const names[] = {"data_batch_1.bin", "data_batch_1.bin.gz", "cifar-10-batches-bin/data_batch_1.bin",
                                 "cifar-10-batches-bin/data_batch_1.bin.gz"};
    for (int i = 0; i < 4; i++)
        if (snprintf(p, sizeof p, "%s/%s", dir, names[i]) < (int)sizeof p && exists(p)) return true;
    return false;
}

static bool is_cifar(const char *kind) { return strcmp(kind, "cifar10") == 0; }

const char *data_find_dir(const char *name, char *buf, size_t cap, char *looked, size_t looked_cap) {
    char cands[2][PATH_MAX + 64];
    int n = 0;
    snprintf(cands[n++], sizeof cands[0], "../shared/data/%s", name);
    /* build/tools/ctrain: the checkout is two levels up, and the shared
     * directory beside it. */
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = 0;
        }
        if (exe[0] && snprintf(cands[n], sizeof cands[0], "%s/../shared/data/%s", exe, name) < (int)sizeof cands[0])
            n++;
    }
    size_t used = 0;
    if (looked_cap) looked[0] = 0;
    for (int i = 0; i < n; i++) {
        if (is_cifar(name) ? has_cifar(cands[i]) : has_idx(cands[i])) {
            snprintf(buf, cap, "%s", cands[i]);
            return buf;
        }
        if (used < looked_cap)
            used += (size_t)snprintf(looked + used, looked_cap - used, "%s%s", i ? ", " : "", cands[i]);
    }
    return NULL;
}

void data_sets_free(data_sets *d) {
    ct_dataset_free(d->train);
    ct_dataset_free(d->val);
    ct_dataset_free(d->test);
    free(d->mean);
    free(d->std);
    free(d->aug_mean);
    free(d->aug_std);
    memset(d, 0, sizeof *d);
}

static bool fail(const char *cmd, const char *what) {
    const char *why = ct_last_error();
    fprintf(stderr, "ctrain: %s: %s%s%s\n", cmd, what, why && why[0] ? ": " : "", why ? why : "");
    return false;
}

/* The directory of an IDX dataset, from --data-dir or the search. */
static bool idx_dir(const char *cmd, const data_cfg *cfg, char *buf, size_t cap) {
    if (cfg->dir) {
        if (!is_dir(cfg->dir)) {
            fprintf(stderr, "ctrain: %s: --data-dir '%s': %s\n", cmd, cfg->dir,
                    exists(cfg->dir) ? "not a directory" : "no such directory");
            return false;
        }
        snprintf(buf, cap, "%s", cfg->dir);
        return true;
    }
    char looked[2 * PATH_MAX];
    if (data_find_dir(cfg->kind, buf, cap, looked, sizeof looked)) return true;
    if (is_cifar(cfg->kind)) {
        fprintf(stderr,
                "ctrain: %s: cifar10 not found (looked in %s): get the CIFAR-10 binary version from "
                "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it in ../shared/data/cifar10 (data_batch_1.bin .. "
                "data_batch_5.bin, test_batch.bin), or pass --data-dir DIR\n",
                cmd, looked);
        return false;
    }
    fprintf(stderr,
            "ctrain: %s: %s not found (looked in %s): put train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be .gz) in ../shared/data/%s, or pass "
            "--data-dir DIR\n",
            cmd, cfg->kind, looked, cfg->kind);
    return false;
}

static bool load_images(const char *kind, const char *dir, bool train, ct_dataset **out) {
    return (is_cifar(kind) ? ct_dataset_load_cifar10(dir, train, out) : ct_dataset_load_mnist(dir, train, out)) == CT_OK;
}

/* The standard statistics of an image dataset: n_norm values. */
static void idx_norm(const char *kind, float *mean, float *std) {
    if (is_cifar(kind)) {
        static const float m[3] = CT_CIFAR10_MEAN, s[3] = CT_CIFAR10_STD;
        memcpy(mean, m, sizeof m);
        memcpy(std, s, sizeof s);
    } else if (strcmp(kind, "fashion-mnist") == 0) {
        *mean = 0.2860f;
        *std = 0.3530f;
    } else {
        *mean = 0.1307f;
        *std = 0.3081f;
    }
}

static bool limit(const char *cmd, ct_dataset **ds, int64_t n, const char *what) {
    if (n <= 0 || n >= ct_dataset_size(*ds)) return true;
    ct_dataset *sub;
    if (ct_dataset_take(*ds, n, &sub) != CT_OK) return fail(cmd, what);
    ct_dataset_free(*ds);
    *ds = sub;
    return true;
}

/* A CSV file whose labels must be below num_classes (0: any, the count
 * then comes from them); `classes_from` says where a given count came from,
 * for the message when a label is outside it. */
static bool load_csv(const char *cmd, const char *path, const char *flag, int label_column, int32_t num_classes,
                     const char *classes_from, ct_dataset **out) {
    if (!path) {
        fprintf(stderr, "ctrain: %s: --data csv needs %s FILE (see 'ctrain %s --help')\n", cmd, flag, cmd);
        return false;
    }
    ct_csv_opts co = {.label_column = label_column, .num_classes = num_classes};
    if (ct_dataset_load_csv(path, &co, out) != CT_OK) {
        const char *why = ct_last_error();
        bool classes = num_classes > 0 && strstr(why, "the number of classes");
        fprintf(stderr, "ctrain: %s: %s: %s%s%s%s\n", cmd, flag, why, classes ? " (" : "",
                classes ? classes_from : "", classes ? ")" : "");
        return false;
    }
    return true;
}

int data_check_flags(const char *cmd, const data_cfg *cfg) {
    static const char *const images = "mnist fashion-mnist cifar10";
    const struct {
        bool set;
        const char *flag, *kinds, *say;
    } rows[] = {
        {cfg->dir != NULL, "--data-dir", images, "mnist, fashion-mnist or cifar10"},
        {cfg->label_column_set, "--label-column", "csv", "csv"},
        {cfg->num_classes != 0, "--num-classes", "csv", "csv"},
        {cfg->test_file != NULL, "--test-file", "csv", "csv"},
        {cfg->train_file != NULL, "--train-file", "csv text tokens", "csv, text or tokens"},
        {cfg->val_file != NULL, "--val-file", "text tokens", "text or tokens"},
        {cfg->vocab_size != 0, "--vocab-size", "tokens", "tokens"},
    };
    const size_t kl = strlen(cfg->kind);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (!rows[i].set) continue;
        /* kind as a whole word of the list */
        bool ok = false;
        for (const char *k = strstr(rows[i].kinds, cfg->kind); k && !ok; k = strstr(k + 1, cfg->kind))
            ok = (k == rows[i].kinds || k[-1] == ' ') && (k[kl] == ' ' || k[kl] == 0);
        if (!ok) return cli_usage_error(cmd, "%s is for --data %s, not %s", rows[i].flag, rows[i].say, cfg->kind);
    }
    return CLI_EXIT_OK;
}

bool data_check_finite(const char *cmd, const ct_dataset *ds, const char *where, const float *mean,
                       const float *std, int64_t n_norm) {
    const float *x = ct_dataset_features(ds);
    const int64_t numel = ct_dataset_sample_numel(ds), n = ct_dataset_size(ds);
    /* The statistic of feature j: one for all, one per feature, or one per channel. */
    const int64_t per = n_norm == 1 ? numel : n_norm == numel ? 1 : numel / n_norm;
    for (int64_t i = 0; i < n * numel; i++) {
        if (isfinite(x[i])) continue;
        int64_t j = i % numel, g = n_norm == 1 ? 0 : j / per;
        fprintf(stderr,
                "ctrain: %s: the normalisation makes feature %lld of record %lld of %s %s: mean[%lld] = %g, "
                "std[%lld] = %g is degenerate\n",
                cmd, (long long)j, (long long)(i / numel), where, isnan(x[i]) ? "NaN" : "infinite", (long long)g,
                (double)mean[g], (long long)g, (double)std[g]);
        return false;
    }
    return true;
}

const ct_augment_opts *data_augment(const data_sets *d) {
    return ct_augment_active(&d->augment) ? &d->augment : NULL;
}

/* The loader's augmentation from --augment, normalizing per channel with the
 * dataset's statistics (a single value repeated for every channel). */
static bool augment_setup(const char *cmd, const data_cfg *cfg, data_sets *out) {
    ct_shape s = ct_dataset_sample_shape(out->train);
    const int64_t C = s.ndim == 3 ? s.dim[0] : 1;
    out->aug_mean = malloc((size_t)C * sizeof *out->aug_mean);
    out->aug_std = malloc((size_t)C * sizeof *out->aug_std);
    if (!out->aug_mean || !out->aug_std) {
        fprintf(stderr, "ctrain: %s: out of memory\n", cmd);
        return false;
    }
    for (int64_t c = 0; c < C; c++) {
        out->aug_mean[c] = out->mean[out->n_norm == C ? c : 0];
        out->aug_std[c] = out->std[out->n_norm == C ? c : 0];
    }
    const unsigned a = cfg->augment;
    out->augment = (ct_augment_opts){
        .crop_pad = a & AUG_CROP ? cfg->crop_pad : 0,
        .flip = (a & AUG_FLIP) != 0,
        .rotate_deg = a & AUG_ROTATE ? cfg->rotate_deg : 0,
        .translate_px = a & AUG_TRANSLATE ? cfg->translate_px : 0,
        .noise_std = a & AUG_NOISE ? cfg->noise_std : 0,
        .cutout_size = a & AUG_CUTOUT ? cfg->cutout_size : 0,
        .mean = out->aug_mean,
        .std = out->aug_std,
    };
    /* Sizes are checked here, where the images are known, and reported as
     * the flags they came from. */
    const int64_t side = s.ndim == 3 ? (s.dim[1] < s.dim[2] ? s.dim[1] : s.dim[2]) : 0;
    const char *flags[3] = {"--crop-pad", "--translate-px", "--cutout-size"};
    const int sizes[3] = {out->augment.crop_pad, out->augment.translate_px, out->augment.cutout_size};
    for (int k = 0; k < 3; k++)
        if (side && sizes[k] > side) {
            fprintf(stderr, "ctrain: %s: %s %d is larger than the images (%lldx%lld)\n", cmd, flags[k], sizes[k],
                    (long long)s.dim[1], (long long)s.dim[2]);
            return false;
        }
    if (ct_augment_check(&out->augment, s) != CT_OK) return fail(cmd, "--augment");
    return true;
}

/* The training set (*all, before any split) and the test set as the files
 * hold them. */
static bool load_sets(const char *cmd, const data_cfg *cfg, bool csv, data_sets *out, ct_dataset **all) {
    if (csv) {
        if (!load_csv(cmd, cfg->train_file, "--train-file", cfg->label_column, cfg->num_classes, "--num-classes",
                      all))
            return false;
        snprintf(out->where, sizeof out->where, "%s", cfg->train_file);
        /* The classes are the training set's: a test label beyond them
         * would widen the model to classes it never trained on. */
        const char *from = cfg->num_classes ? "--num-classes"
                                            : "the classes come from the training labels; --num-classes N declares more";
        if (cfg->test_file && !load_csv(cmd, cfg->test_file, "--test-file", cfg->label_column,
                                        ct_dataset_num_classes(*all), from, &out->test))
            return false;
        return true;
    }
    if (!idx_dir(cmd, cfg, out->where, sizeof out->where)) return false;
    if (!load_images(cfg->kind, out->where, true, all)) return fail(cmd, "training set");
    if (!load_images(cfg->kind, out->where, false, &out->test)) return fail(cmd, "test set");
    return true;
}

/* The normalization's mean and std: per feature from the training set
 * (CSV), or the image sets' usual per-channel values. */
static bool norm_stats(const char *cmd, const data_cfg *cfg, bool csv, data_sets *out) {
    out->n_norm = csv ? ct_dataset_sample_numel(out->train) : is_cifar(cfg->kind) ? 3 : 1;
    out->mean = malloc((size_t)out->n_norm * sizeof *out->mean);
    out->std = malloc((size_t)out->n_norm * sizeof *out->std);
    if (!out->mean || !out->std) {
        fprintf(stderr, "ctrain: %s: out of memory\n", cmd);
        return false;
    }
    if (csv) {
        if (ct_dataset_stats(out->train, out->n_norm, out->mean, out->std) != CT_OK)
            return fail(cmd, "feature statistics");
    } else {
        idx_norm(cfg->kind, out->mean, out->std);
    }
    return true;
}

/* Every set checked against the training set's sample size and
 * normalized (an augmented training set is normalized by the loader). */
static bool normalize_sets(const char *cmd, const data_cfg *cfg, data_sets *out) {
    ct_dataset *sets[3] = {out->train, out->val, out->test};
    const char *names[3] = {"training set", "validation set", "test set"};
    for (int i = 0; i < 3; i++) {
        if (!sets[i]) continue;
        if (ct_dataset_sample_numel(sets[i]) != ct_dataset_sample_numel(out->train)) {
            fprintf(stderr, "ctrain: %s: the %s has %lld features per sample, the training set %lld\n", cmd,
                    names[i], (long long)ct_dataset_sample_numel(sets[i]),
                    (long long)ct_dataset_sample_numel(out->train));
            return false;
        }
        if (i == 0 && cfg->augment) continue; /* the loader normalizes it */
        if (ct_dataset_normalize(sets[i], out->n_norm, out->mean, out->std) != CT_OK)
            return fail(cmd, names[i]);
        if (!data_check_finite(cmd, sets[i], names[i], out->mean, out->std, out->n_norm)) return false;
    }
    return true;
}

bool data_load_train(const char *cmd, const data_cfg *cfg, data_sets *out) {
    memset(out, 0, sizeof *out);
    ct_dataset *all = NULL;
    bool csv = strcmp(cfg->kind, "csv") == 0;
    if (!load_sets(cmd, cfg, csv, out, &all)) goto fail;
    if (!limit(cmd, &all, cfg->train_limit, "--train-limit")) goto fail;
    if (out->test && !limit(cmd, &out->test, cfg->test_limit, "--test-limit")) goto fail;
    if (cfg->val_split > 0) {
        if (ct_dataset_split(all, cfg->val_split, cfg->split_seed, &out->train, &out->val) != CT_OK) {
            fail(cmd, "--val-split");
            goto fail;
        }
        ct_dataset_free(all);
    } else {
        out->train = all;
    }
    all = NULL;
    if (!norm_stats(cmd, cfg, csv, out)) goto fail;
    if (cfg->augment && !augment_setup(cmd, cfg, out)) goto fail;
    if (!normalize_sets(cmd, cfg, out)) goto fail;
    return true;
fail:
    ct_dataset_free(all);
    data_sets_free(out);
    return false;
}

bool data_load_eval(const char *cmd, const data_cfg *cfg, bool train_split, const float *mean, const float *std,
                    int64_t n_norm, ct_dataset **out, char *where, size_t where_cap) {
    *out = NULL;
    if (strcmp(cfg->kind, "csv") == 0) {
        const char *file = train_split ? cfg->train_file : cfg->test_file;
        if (!load_csv(cmd, file, train_split ? "--train-file" : "--test-file", cfg->label_column, cfg->num_classes,
                      "the model's classes", out))
            return false;
        snprintf(where, where_cap, "%s", file);
    } else {
        if (!idx_dir(cmd, cfg, where, where_cap)) return false;
        if (!load_images(cfg->kind, where, train_split, out))
            return fail(cmd, train_split ? "training set" : "test set");
    }
    if (!limit(cmd, out, cfg->test_limit, "--limit")) goto fail;
    if (n_norm != 1 && n_norm != ct_dataset_sample_numel(*out) && n_norm != ct_dataset_sample_shape(*out).dim[0]) {
        fprintf(stderr, "ctrain: %s: %s has %lld features per sample; the model was trained on %lld\n", cmd, where,
                (long long)ct_dataset_sample_numel(*out), (long long)n_norm);
        goto fail;
    }
    if (ct_dataset_normalize(*out, n_norm, mean, std) != CT_OK) {
        fail(cmd, "normalisation");
        goto fail;
    }
    if (!data_check_finite(cmd, *out, where, mean, std, n_norm)) goto fail;
    return true;
fail:
    ct_dataset_free(*out);
    *out = NULL;
    return false;
}

char *norm_to_json(const float *mean, const float *std, int64_t n) {
    cJSON *o = cJSON_CreateObject();
    cJSON *m = cJSON_CreateArray(), *s = cJSON_CreateArray();
    if (!o || !m || !s) {
        cJSON_Delete(o);
        cJSON_Delete(m);
        cJSON_Delete(s);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(m, cJSON_CreateNumber((double)mean[i]));
        cJSON_AddItemToArray(s, cJSON_CreateNumber((double)std[i]));
    }
    cJSON_AddItemToObject(o, "mean", m);
    cJSON_AddItemToObject(o, "std", s);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

bool norm_from_json(const char *json, float **mean, float **std, int64_t *n) {
    *mean = *std = NULL;
    *n = 0;
    cJSON *o = cJSON_Parse(json);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mean");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "std");
    int len = cJSON_GetArraySize(m);
    bool ok = cJSON_IsArray(m) && cJSON_IsArray(s) && len > 0 && len == cJSON_GetArraySize(s);
    if (ok) {
        *mean = malloc((size_t)len * sizeof **mean);
        *std = malloc((size_t)len * sizeof **std);
        ok = *mean && *std;
    }
    for (int i = 0; ok && i < len; i++) {
        const cJSON *a = cJSON_GetArrayItem(m, i), *b = cJSON_GetArrayItem(s, i);
        ok = cJSON_IsNumber(a) && cJSON_IsNumber(b);
        if (ok) {
            (*mean)[i] = (float)a->valuedouble;
            (*std)[i] = (float)b->valuedouble;
        }
    }
    cJSON_Delete(o);
    if (!ok) {
        free(*mean);
        free(*std);
        *mean = *std = NULL;
        return false;
    }
    *n = len;
    return true;
}
