/* The int8 model of `ctrain eval` (quant_model.h): the layers read from
 * the file and checked against the model record and the data, and the
 * forward pass: int8 products, then batch norm (running statistics), the
 * activation and the CNN's 2x2 max pooling in F32 on the host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant_model.h"

#define EVAL "eval"

void qmodel_free(qmodel *q) {
    for (int k = 0; k < q->n_layers; k++) ct_qlinear_free(&q->lin[k]);
    for (int k = 0; k < QUANT_MAX_LAYERS; k++)
        for (int p = 0; p < 4; p++) free(q->bn[k][p]);
    memset(q, 0, sizeof *q);
}

/* An integer tensor's bytes: dtype, and (want_ndim 0) any shape or else
 * that many axes; its shape into *s. */
static const void *int_tensor(const char *path, const ct_st_file *f, const char *name, const char *dtype,
                              int want_ndim, ct_shape *s) {
    int i = ct_st_find(f, name);
    if (i >= 0 && ct_st_info(f, i, NULL, s) == CT_OK && strcmp(ct_st_dtype_name(f, i), dtype) == 0 &&
        (!want_ndim || s->ndim == want_ndim) && ct_shape_numel(*s) >= 1)
        return ct_st_data(f, i);
    fprintf(stderr, "ctrain: %s: '%s': tensor '%s' is %s, not %s with %d axes\n", EVAL, path, name,
            i < 0 ? "missing" : ct_st_dtype_name(f, i), dtype, want_ndim);
    return NULL;
}

/* Layer k: its int8 weights [out, in] (or [out, C, KH, KW]) with in the
 * width (or, for a convolution, the channels) the previous layer gives. */
static bool load_layer(qmodel *q, const char *path, const ct_st_file *f, int k, int64_t in, ct_shape *ws) {
    char base[16], name[64];
    quant_layer_name(q->m, k, base, sizeof base);
    bool conv = quant_layer_is_conv(q->m, k);
    snprintf(name, sizeof name, "%s.qweight", base);
    const int8_t *w = int_tensor(path, f, name, "I8", conv ? 4 : 2, ws);
    if (!w) return false;
    if (ws->dim[1] != in) {
        const char *what = conv ? "channels" : "features per sample";
        if (k == 0)
            fprintf(stderr, "ctrain: %s: '%s' takes %lld %s; the samples of %s have %lld\n", EVAL, path,
                    (long long)ws->dim[1], what, q->where, (long long)in);
        else
            fprintf(stderr, "ctrain: %s: '%s': layer %s takes %lld %s; it gets %lld\n", EVAL, path, base,
                    (long long)ws->dim[1], what, (long long)in);
        return false;
    }
    int64_t out = ws->dim[0], n_in = ct_shape_numel(*ws) / out;
    ct_shape zs;
    snprintf(name, sizeof name, "%s.input_zero_point", base);
    const void *zp_bytes = int_tensor(path, f, name, "I32", 1, &zs);
    float *scale = NULL, *bias = NULL, *in_scale = NULL;
    snprintf(name, sizeof name, "%s.weight_scale", base);
    if (zp_bytes) scale = quant_read_f32(EVAL, path, f, name, out, 0);
    snprintf(name, sizeof name, "%s.bias", base);
    if (scale) bias = quant_read_f32(EVAL, path, f, name, out, 0);
    snprintf(name, sizeof name, "%s.input_scale", base);
    if (bias) in_scale = quant_read_f32(EVAL, path, f, name, 1, 0);
    bool ok = in_scale != NULL;
    if (ok) {
        int32_t zp;
        memcpy(&zp, zp_bytes, sizeof zp); /* the bytes may be unaligned in another writer's file */
        ok = ct_qlinear_init(&q->lin[k], w, scale, bias, out, n_in, *in_scale, zp) == CT_OK;
        if (!ok) fprintf(stderr, "ctrain: %s: '%s': layer %s: %s\n", EVAL, path, base, ct_last_error());
        else q->n_layers = k + 1;
    }
    free(scale);
    free(bias);
    free(in_scale);
    return ok;
}

static bool load_norm(qmodel *q, const char *path, const ct_st_file *f, int k, int64_t n) {
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    char bn[16], name[64];
    if (!quant_norm_name(q->m, k, bn, sizeof bn)) return true;
    for (int p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "%s.%s", bn, parts[p]);
        if (!(q->bn[k][p] = quant_read_f32(EVAL, path, f, name, n, 0))) return false;
    }
    return true;
}

/* The image a CNN sees in a sample: [C, H, W], [H, W] or S * S pixels. */
static bool image_of(ct_shape s, int64_t *c, int64_t *h, int64_t *w) {
    *c = 1;
    if (s.ndim == 3) *c = s.dim[0], *h = s.dim[1], *w = s.dim[2];
    else if (s.ndim == 2) *h = s.dim[0], *w = s.dim[1];
    else {
        int64_t side = (int64_t)llround(sqrt((double)ct_shape_numel(s)));
        if (side * side != ct_shape_numel(s)) return false;
        *h = *w = side;
    }
    return true;
}

bool qmodel_load(qmodel *q, const char *path, const ct_st_file *f, const model_cfg *m, ct_shape sample,
                 const char *where) {
    memset(q, 0, sizeof *q);
    q->m = m;
    q->where = where;
    const char *fmt = ct_st_meta(f, "quant.format");
    if (!fmt || strcmp(fmt, QUANT_FORMAT) != 0) {
        fprintf(stderr, "ctrain: %s: '%s' is an int8 model of format '%.40s'; this ctrain reads '%s'\n", EVAL, path,
                fmt ? fmt : "", QUANT_FORMAT);
        return false;
    }
    int64_t c = ct_shape_numel(sample), h = 1, w = 1;
    if (quant_layer_is_conv(m, 0) && !image_of(sample, &c, &h, &w)) {
        fprintf(stderr, "ctrain: %s: the samples of %s are not images\n", EVAL, where);
        return false;
    }
    q->widest = c * h * w;
    for (int k = 0; k < quant_layers(m); k++) {
        ct_shape ws;
        bool conv = quant_layer_is_conv(m, k);
        if (!load_layer(q, path, f, k, c, &ws) || !load_norm(q, path, f, k, ws.dim[0])) return false;
        if (conv) {
            q->geom[k] = (ct_qconv2d_geom){c, h, w, ws.dim[2], ws.dim[3], 1, 0};
            if (h < ws.dim[2] || w < ws.dim[3]) {
                fprintf(stderr, "ctrain: %s: the images of %s are too small for layer conv%d\n", EVAL, where, k + 1);
                return false;
            }
            h -= ws.dim[2] - 1, w -= ws.dim[3] - 1; /* stride 1, no padding: the CLI's CNN */
            int64_t conv_out = ws.dim[0] * h * w;
            q->widest = conv_out > q->widest ? conv_out : q->widest;
            c = ws.dim[0], h /= 2, w /= 2; /* 2x2 max pooling */
            if (!quant_layer_is_conv(m, k + 1)) c *= h * w, h = w = 1; /* flattened */
        } else {
            c = ws.dim[0];
            q->widest = c > q->widest ? c : q->widest;
        }
    }
    return true;
}

size_t qmodel_scratch(const qmodel *q, int64_t b) {
    size_t most = 0;
    for (int k = 0; k < q->n_layers; k++) {
        size_t s = quant_layer_is_conv(q->m, k) ? ct_qconv2d_scratch(&q->lin[k], &q->geom[k], b)
                                                : ct_qlinear_scratch(&q->lin[k], b);
        most = s > most ? s : most;
    }
    return most;
}

/* The activations of ct_activation, in float on the host; the kinds are
 * those model_from_json accepts. */
static float act1(const char *k, float x) {
    if (strcmp(k, "leaky_relu") == 0) return x > 0 ? x : 0.01f * x;
    if (strcmp(k, "gelu") == 0) return 0.5f * x * (1 + erff(x / sqrtf(2)));
    if (strcmp(k, "gelu_tanh") == 0) return 0.5f * x * (1 + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    if (strcmp(k, "tanh") == 0) return tanhf(x);
    if (strcmp(k, "sigmoid") == 0) return 1 / (1 + expf(-x));
    if (strcmp(k, "silu") == 0) return x / (1 + expf(-x));
    if (strcmp(k, "softplus") == 0) return x > 20 ? x : log1pf(expf(x));
    return x; /* identity */
}

static void activate(const char *kind, float *x, int64_t n) {
    if (strcmp(kind, "relu") == 0) {
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        return;
    }
    for (int64_t i = 0; i < n; i++) x[i] = act1(kind, x[i]);
}

/* Batch norm in evaluation over x [b, n, spatial]: the running statistics,
 * eps as ct_batch_norm's. */
static void normalize(float *const bn[4], float *x, int64_t b, int64_t n, int64_t spatial) {
    for (int64_t j = 0; j < n; j++) {
        float s = bn[0][j] / sqrtf(bn[3][j] + 1e-5f), t = bn[1][j] - bn[2][j] * s;
        for (int64_t i = 0; i < b; i++) {
            float *p = x + (i * n + j) * spatial;
            for (int64_t e = 0; e < spatial; e++) p[e] = p[e] * s + t;
        }
    }
}

/* 2x2 max pooling, stride 2, of planes [planes, h, w] (floor). */
static void max_pool2(const float *x, int64_t planes, int64_t h, int64_t w, float *y) {
    int64_t oh = h / 2, ow = w / 2;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                const float *r0 = x + (p * h + 2 * i) * w + 2 * j, *r1 = r0 + w;
                float m = fmaxf(fmaxf(r0[0], r0[1]), fmaxf(r1[0], r1[1]));
                y[(p * oh + i) * ow + j] = m;
            }
}

bool qmodel_forward(const qmodel *q, const float *x, int64_t b, float *h0, float *h1, void *scratch) {
    const float *in = x;
    float *out = h0;
    for (int k = 0; k < q->n_layers; k++) {
        const ct_qlinear *l = &q->lin[k];
        bool conv = quant_layer_is_conv(q->m, k), last = k == q->n_layers - 1;
        const ct_qconv2d_geom *g = conv ? &q->geom[k] : NULL; /* geom has a row per conv layer only */
        int64_t spatial = conv ? (g->h - g->kh + 1) * (g->w - g->kw + 1) : 1;
        ct_status st = conv ? ct_qconv2d_forward(l, g, in, b, out, scratch) : ct_qlinear_forward(l, in, b, out, scratch);
        if (st != CT_OK) return false;
        if (!last) {
            if (q->bn[k][0]) normalize(q->bn[k], out, b, l->out, spatial);
            activate(q->m->activation, out, b * l->out * spatial);
        }
        in = out;
        out = out == h0 ? h1 : h0;
        if (conv) { /* pooled into the other buffer */
            max_pool2(in, b * l->out, g->h - g->kh + 1, g->w - g->kw + 1, out);
            in = out;
            out = out == h0 ? h1 : h0;
        }
    }
    if (in != h0) memcpy(h0, in, (size_t)(b * q->lin[q->n_layers - 1].out) * sizeof *h0);
    return true;
}
