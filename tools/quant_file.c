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
    if (strcmp(m->model, "gpt") == 0) return "only MLP and CNN models are quantized, and this is a GPT";
    if (strcmp(m->model, "mlp") != 0 && strcmp(m->model, "cnn") != 0)
        return "only MLP and CNN models are quantized (not the ResNet: its residual additions and strided "
               "convolutions have no int8 path)";
    return NULL;
}

static bool is_cnn(const model_cfg *m) { return strcmp(m->model, "cnn") == 0; }

int quant_layers(const model_cfg *m) { return (is_cnn(m) ? 2 : 0) + m->n_hidden + 1; }

bool quant_layer_is_conv(const model_cfg *m, int k) { return is_cnn(m) && k < 2; }

void quant_layer_name(const model_cfg *m, int k, char *buf, size_t cap) {
    if (quant_layer_is_conv(m, k))
        snprintf(buf, cap, "conv%d", k + 1);
    else
        snprintf(buf, cap, "fc%d", k + 1 - (is_cnn(m) ? 2 : 0));
}

/* The MLP's batch norms follow its hidden layers, the CNN's its convolutions. */
bool quant_norm_name(const model_cfg *m, int k, char *buf, size_t cap) {
    if (!m->batchnorm || k >= (is_cnn(m) ? 2 : m->n_hidden)) return false;
    snprintf(buf, cap, "bn%d", k + 1);
    return true;
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

/* Layer k's F32 weights, [out, in] or [out, C, KH, KW], malloc'ed. */
static float *read_weight(const quant_write_args *a, const char *name, ct_shape *s) {
    int i = ct_st_find(a->f, name);
    ct_dtype dt;
    bool conv = quant_layer_is_conv(a->m, 0) && strncmp(name, "conv", 4) == 0;
    if (i < 0 || ct_st_info(a->f, i, &dt, s) != CT_OK || s->ndim != (conv ? 4 : 2) || ct_shape_numel(*s) < 1) {
        fprintf(stderr, "ctrain: %s: '%s': %s '%s'%s\n", a->cmd, a->path, i < 0 ? "no tensor" : "tensor", name,
                i < 0 ? "" : conv ? " is not [out, C, KH, KW]" : " is not [out, in]");
        return NULL;
    }
    size_t bytes = (size_t)ct_shape_numel(*s) * sizeof(float);
    float *v = malloc(bytes);
    if (v && ct_st_read(a->f, i, CT_F32, v, bytes) == CT_OK) return v;
    fprintf(stderr, "ctrain: %s: '%s': tensor '%s': %s\n", a->cmd, a->path, name, v ? ct_last_error() : "out of memory");
    free(v);
    return NULL;
}

/* Layer k's tensors into w: int8 weights (in their own shape), their
 * scales, the bias and the input parameters; *f32 += the F32 bytes. */
static bool add_layer(const quant_write_args *a, ct_st_writer *w, int k, long long *f32, int64_t *out_k) {
    char name[64], base[16];
    quant_layer_name(a->m, k, base, sizeof base);
    snprintf(name, sizeof name, "%s.weight", base);
    ct_shape ws;
    float *wt = read_weight(a, name, &ws);
    int64_t out = wt ? ws.dim[0] : 0, in = wt ? ct_shape_numel(ws) / out : 0;
    snprintf(name, sizeof name, "%s.bias", base);
    float *bias = wt ? quant_read_f32(a->cmd, a->path, a->f, name, out, 0) : NULL;
    int8_t *q = wt ? malloc((size_t)(out * in)) : NULL;
    float *scale = wt ? malloc((size_t)out * sizeof *scale) : NULL, in_scale;
    int32_t zp;
    bool ok = wt && bias && q && scale && ct_quant_weights(wt, out, in, q, scale) == CT_OK &&
              ct_quant_act_params(a->co->lo[k], a->co->hi[k], &in_scale, &zp) == CT_OK;
#define ADD(suffix, call) (snprintf(name, sizeof name, "%s.%s", base, suffix), (call) == CT_OK)
    ok = ok && ADD("qweight", ct_st_writer_add_int(w, name, "I8", ws, q)) &&
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
    *f32 += 4LL * (out * in + out);
    *out_k = out;
    return ok;
}

/* The batch norm after layer k (of n channels), as it is. */
static bool add_norm(const quant_write_args *a, ct_st_writer *w, int k, int64_t n, long long *f32) {
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    char bn[16];
    if (!quant_norm_name(a->m, k, bn, sizeof bn)) return true;
    for (int p = 0; p < 4; p++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", bn, parts[p]);
        float *v = quant_read_f32(a->cmd, a->path, a->f, name, n, 0);
        bool ok = v && ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {n}}, v) == CT_OK;
        free(v);
        if (!ok) return false;
    }
    *f32 += 16LL * n;
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

int quant_write(const quant_write_args *a) {
    ct_st_writer *w = ct_st_writer_new();
    bool ok = w != NULL;
    long long f32 = 0;
    for (int k = 0; ok && k < quant_layers(a->m); k++) {
        int64_t out;
        ok = add_layer(a, w, k, &f32, &out) && add_norm(a, w, k, out, &f32);
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
    printf("quantized %d %s to int8 (calibration: %s); F32 weights %lld bytes, int8 file %lld bytes (%.3fx): %s\n",
           quant_layers(a->m), strcmp(a->m->model, "cnn") == 0 ? "layers (2 convolutions)" : "linear layers",
           a->calibration, f32, size, f32 > 0 ? (double)size / (double)f32 : 0.0, a->out);
    return CLI_EXIT_OK;
}
