/* The int8 model file: recognising it, refusing it where F32 weights are
 * wanted, and writing it from an F32 checkpoint and its calibration
 * (layout in quant_cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "quant_calib.h"
#include "quant_cli.h"
#include "train_opts.h"

bool quant_is_file(const ct_st_file *f) {
    const char *v = ct_st_meta(f, "quant.format");
    return v != NULL;
}

static int refuse_for_training(const char *cmd, const char *flag, const char *path) {
    if (!path) return CLI_EXIT_OK;
    ct_st_file *f = ct_st_open(path);
    if (!f) return CLI_EXIT_OK; /* reported where the file is used, as before */
    bool q = quant_is_file(f);
    ct_st_close(f);
    if (!q) return CLI_EXIT_OK;
    fprintf(stderr,
            "ctrain: %s: %s '%s': this is an int8 model written by 'ctrain quantize', for 'ctrain eval' only; "
            "give the F32 checkpoint it was made from\n",
            cmd, flag, path);
    return CLI_EXIT_FAIL;
}

int quant_check_train(const char *cmd, const struct train_cfg *c) {
    int rc = refuse_for_training(cmd, "--resume", c->resume);
    if (rc == CLI_EXIT_OK) rc = refuse_for_training(cmd, "--init-from", c->init_from);
    if (rc == CLI_EXIT_OK && c->model.qat && strcmp(c->model.model, "mlp") != 0)
        rc = cli_usage_error(cmd, "--qat is for --model mlp (its linear layers), not %s", c->model.model);
    return rc;
}

const char *quant_model_unsupported(const model_cfg *m) {
    if (strcmp(m->model, "mlp") != 0)
        return strcmp(m->model, "gpt") == 0 ? "only MLP models are quantized, and this is a GPT"
                                            : "only MLP models are quantized (int8 convolutions are not implemented)";
    return NULL;
}

/* Reads tensor name of f as F32 [rows, cols] (cols 0: a vector), malloc'ed. */
float *quant_read_f32(const char *cmd, const char *path, const ct_st_file *f, const char *name, int64_t rows,
                      int64_t cols) {
    int i = ct_st_find(f, name);
    ct_shape s;
    ct_dtype dt;
    bool ok = i >= 0 && ct_st_info(f, i, &dt, &s) == CT_OK &&
              (cols ? s.ndim == 2 && s.dim[0] == rows && s.dim[1] == cols : s.ndim == 1 && s.dim[0] == rows);
    int64_t n = cols ? rows * cols : rows;
    float *v = ok ? malloc((size_t)n * sizeof *v) : NULL;
    if (v && ct_st_read(f, i, CT_F32, v, (size_t)n * sizeof *v) == CT_OK) return v;
    if (i < 0)
        fprintf(stderr, "ctrain: %s: '%s' has no tensor '%s'\n", cmd, path, name);
    else
        fprintf(stderr, "ctrain: %s: '%s': tensor '%s' is not F32 [%lld%s%lld]%s%s\n", cmd, path, name,
                (long long)rows, cols ? ", " : "", (long long)(cols ? cols : 0), v ? ": " : "",
                v ? ct_last_error() : "");
    free(v);
    return NULL;
}

/* Layer k's (0-based) tensors into w: int8 weights, their scales, the
 * bias and the input parameters. *in: the layer's input width. */
static bool add_linear(const quant_write_args *a, ct_st_writer *w, int k, int64_t *in) {
    const model_cfg *m = a->m;
    int64_t out = k < m->n_hidden ? m->hidden[k] : m->classes;
    char name[64], base[16];
    snprintf(base, sizeof base, "fc%d", k + 1);
    snprintf(name, sizeof name, "%s.weight", base);
    if (k == 0) { /* the input width is the data's: read it off the weights */
        ct_shape s = {0};
        int i = ct_st_find(a->f, name);
        if (i >= 0) ct_st_info(a->f, i, NULL, &s);
        *in = s.ndim == 2 ? s.dim[1] : 1;
    }
    float *wt = quant_read_f32(a->cmd, a->path, a->f, name, out, *in);
    snprintf(name, sizeof name, "%s.bias", base);
    float *bias = wt ? quant_read_f32(a->cmd, a->path, a->f, name, out, 0) : NULL;
    int8_t *q = malloc((size_t)(out * *in));
    float *scale = malloc((size_t)out * sizeof *scale), in_scale;
    int32_t zp;
    bool ok = wt && bias && q && scale && ct_quant_weights(wt, out, *in, q, scale) == CT_OK &&
              ct_quant_act_params(a->co->lo[k], a->co->hi[k], &in_scale, &zp) == CT_OK;
#define ADD(suffix, call)                                          \
    (snprintf(name, sizeof name, "%s.%s", base, suffix), (call) == CT_OK)
    ok = ok && ADD("qweight", ct_st_writer_add_int(w, name, "I8", (ct_shape){2, {out, *in}}, q)) &&
         ADD("weight_scale", ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {out}}, scale)) &&
         ADD("bias", ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {out}}, bias)) &&
         ADD("input_scale", ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {1}}, &in_scale)) &&
         ADD("input_zero_point", ct_st_writer_add_int(w, name, "I32", (ct_shape){1, {1}}, &zp));
#undef ADD
    if (!ok && wt && bias) fprintf(stderr, "ctrain: %s: layer %s: %s\n", a->cmd, base, ct_last_error());
    free(wt);
    free(bias);
    free(q);
    free(scale);
    *in = out;
    return ok;
}

/* Batch norm k's parameters and running statistics, as they are. */
static bool add_norm(const quant_write_args *a, ct_st_writer *w, int k) {
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    int64_t n = a->m->hidden[k];
    for (int p = 0; p < 4; p++) {
        char name[64];
        snprintf(name, sizeof name, "bn%d.%s", k + 1, parts[p]);
        float *v = quant_read_f32(a->cmd, a->path, a->f, name, n, 0);
        bool ok = v && ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {n}}, v) == CT_OK;
        free(v);
        if (!ok) return false;
    }
    return true;
}

static bool add_meta(const quant_write_args *a, ct_st_writer *w) {
    static const char *const copied[] = {"cli.model", "cli.data", "cli.normalize"};
    bool ok = ct_st_writer_meta(w, "format", "ctrain") == CT_OK &&
              ct_st_writer_meta(w, "quant.format", QUANT_FORMAT) == CT_OK &&
              ct_st_writer_meta(w, "quant.scheme",
                                "weights int8 symmetric per output channel [-127, 127]; layer inputs uint8 "
                                "affine per tensor") == CT_OK &&
              ct_st_writer_meta(w, "quant.calibration", a->calibration) == CT_OK &&
              ct_st_writer_meta(w, "quant.calibration_data", a->data_where) == CT_OK &&
              ct_st_writer_meta(w, "quant.source", a->path) == CT_OK;
    for (int i = 0; ok && i < 3; i++) {
        const char *v = ct_st_meta(a->f, copied[i]);
        if (v) ok = ct_st_writer_meta(w, copied[i], v) == CT_OK;
    }
    return ok;
}

/* The bytes of the F32 model: every tensor the int8 file replaces or keeps. */
static long long f32_bytes(const model_cfg *m, int64_t inputs) {
    long long n = 0, in = inputs;
    for (int k = 0; k <= m->n_hidden; k++) {
        long long out = k < m->n_hidden ? m->hidden[k] : m->classes;
        n += out * in + out + (k < m->n_hidden && m->batchnorm ? 4 * out : 0);
        in = out;
    }
    return 4 * n;
}

int quant_write(const quant_write_args *a) {
    ct_st_writer *w = ct_st_writer_new();
    bool ok = w != NULL;
    int64_t in = 0;
    for (int k = 0; ok && k <= a->m->n_hidden; k++) {
        ok = add_linear(a, w, k, &in);
        if (ok && k < a->m->n_hidden && a->m->batchnorm) ok = add_norm(a, w, k);
    }
    if (ok && !add_meta(a, w)) {
        ok = false;
        fprintf(stderr, "ctrain: %s: %s\n", a->cmd, ct_last_error());
    }
    if (ok && ct_st_writer_save(w, a->out) != CT_OK) {
        ok = false;
        fprintf(stderr, "ctrain: %s: %s\n", a->cmd, ct_last_error());
    }
    ct_st_writer_free(w);
    if (!ok) return CLI_EXIT_FAIL;
    struct stat st;
    long long size = stat(a->out, &st) == 0 ? (long long)st.st_size : -1;
    int i = ct_st_find(a->f, "fc1.weight");
    ct_shape s = {0};
    if (i >= 0) ct_st_info(a->f, i, NULL, &s);
    long long f32 = f32_bytes(a->m, s.ndim == 2 ? s.dim[1] : 0);
    printf("quantized %d linear layers to int8 (calibration: %s); F32 weights %lld bytes, int8 file %lld bytes "
           "(%.3fx): %s\n",
           a->m->n_hidden + 1, a->calibration, f32, size, f32 > 0 ? (double)size / (double)f32 : 0.0, a->out);
    return CLI_EXIT_OK;
}
