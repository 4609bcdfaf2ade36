/* Calibration for `ctrain quantize`: the F32 model runs on a few batches
 * and the input of every linear layer is observed, giving each layer's
 * activation range: its minimum and maximum, or (percentile) the p-th and
 * (100 - p)-th percentiles of all the values seen, which ignores rare
 * outliers that would otherwise stretch the range and coarsen the steps.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "quant_calib.h"
#include "quant_cli.h"

typedef struct calib_run {
    ct_graph *g;
    ct_program *p;
    ct_node x, taps[QUANT_MAX_LAYERS];
    int n_taps;
    int64_t width[QUANT_MAX_LAYERS];
} calib_run;

static void run_free(calib_run *r) {
    ct_program_free(r->p);
    ct_graph_free(r->g);
}

/* The model for batches of b samples, its layer inputs as outputs, with
 * the checkpoint's weights. */
static bool run_build(calib_run *r, const calib_args *a, int64_t b) {
    memset(r, 0, sizeof *r);
    ct_shape sample = ct_dataset_sample_shape(a->ds), xs = {sample.ndim + 1, {b}};
    for (int i = 0; i < sample.ndim; i++) xs.dim[i + 1] = sample.dim[i];
    if (!(r->g = ct_graph_new())) return false;
    r->x = ct_input(r->g, "x", CT_F32, xs);
    r->n_taps = quant_layers(a->m);
    if (strcmp(a->m->model, "cnn") == 0)
        model_build_cnn_taps(r->g, r->x, a->m, r->taps);
    else
        model_build_mlp(r->g, r->x, a->m, r->taps);
    if (ct_graph_status(r->g) != CT_OK) {
        fprintf(stderr, "ctrain: %s: building the model of '%s': %s\n", a->cmd, a->path, ct_graph_error(r->g));
        return false;
    }
    for (int t = 0; t < r->n_taps; t++) r->width[t] = ct_shape_numel(ct_node_shape(r->g, r->taps[t])) / b;
    ct_compile_opts co = {.device = a->device, .outputs = r->taps, .n_outputs = r->n_taps};
    ct_load_opts lo = {.non_strict = true, .require_all = true};
    if (!(r->p = ct_compile(r->g, &co)) || ct_load_weights(r->g, r->p, a->path, &lo) != CT_OK) {
        fprintf(stderr, "ctrain: %s: %s\n", a->cmd, ct_last_error());
        return false;
    }
    ct_program_set_training(r->p, false);
    return true;
}

/* Observes tap t's values of one batch: the running range, and every value
 * kept for the percentiles. */
static bool observe(const calib_args *a, calib_out *o, int t, const float *v, int64_t n, int64_t at) {
    for (int64_t i = 0; i < n; i++) {
        o->lo[t] = fminf(o->lo[t], v[i]);
        o->hi[t] = fmaxf(o->hi[t], v[i]);
    }
    if (a->percentile > 0) memcpy(o->values[t] + at, v, (size_t)n * sizeof *v);
    return true;
}

static bool run_batches(calib_run *r, const calib_args *a, calib_out *o, int64_t b) {
    int64_t feat = ct_dataset_sample_numel(a->ds);
    const float *xs = ct_dataset_features(a->ds);
    int64_t most = 0;
    for (int t = 0; t < r->n_taps; t++) most = r->width[t] > most ? r->width[t] : most;
    float *buf = malloc((size_t)(b * most) * sizeof *buf);
    for (int t = 0; t < r->n_taps && a->percentile > 0; t++)
        o->values[t] = malloc((size_t)(o->batches * b * r->width[t]) * sizeof(float));
    bool ok = buf != NULL;
    for (int t = 0; ok && t < r->n_taps && a->percentile > 0; t++) ok = o->values[t] != NULL;
    if (!ok) fprintf(stderr, "ctrain: %s: out of memory for the calibration values\n", a->cmd);
    for (int64_t k = 0; ok && k < o->batches; k++) {
        const float *x = xs + k * b * feat;
        ok = ct_program_set_input_node(r->p, r->x, x, (size_t)(b * feat) * sizeof *x) == CT_OK &&
             ct_program_run(r->p) == CT_OK;
        for (int t = 0; ok && t < r->n_taps; t++) {
            int64_t n = b * r->width[t];
            ok = ct_program_read(r->p, r->taps[t], buf, (size_t)n * sizeof *buf) == CT_OK &&
                 observe(a, o, t, buf, n, k * n);
        }
        if (!ok && buf) fprintf(stderr, "ctrain: %s: calibration batch %lld: %s\n", a->cmd, (long long)k + 1,
                                ct_last_error());
    }
    free(buf);
    for (int t = 0; ok && t < r->n_taps; t++) {
        if (!isfinite(o->lo[t]) || !isfinite(o->hi[t])) {
            char name[16];
            quant_layer_name(a->m, t, name, sizeof name);
            fprintf(stderr, "ctrain: %s: the input of %s is not finite on the calibration data\n", a->cmd, name);
            return false;
        }
        if (a->percentile > 0) {
            int64_t n = o->batches * b * r->width[t];
            o->lo[t] = ct_quant_percentile(o->values[t], n, 100.0 - a->percentile);
            o->hi[t] = ct_quant_percentile(o->values[t], n, a->percentile);
        }
    }
    return ok;
}

bool quant_calibrate(const calib_args *a, calib_out *o) {
    memset(o, 0, sizeof *o);
    int64_t n = ct_dataset_size(a->ds);
    int64_t b = a->batch < n ? a->batch : n;
    o->batch = b;
    o->batches = b > 0 ? n / b : 0;
    if (o->batches > a->batches) o->batches = a->batches;
    if (o->batches < 1) {
        fprintf(stderr, "ctrain: %s: calibration needs at least one batch, and %s has no samples\n", a->cmd,
                a->where);
        return false;
    }
    for (int t = 0; t < quant_layers(a->m); t++) o->lo[t] = INFINITY, o->hi[t] = -INFINITY;
    calib_run r;
    bool ok = run_build(&r, a, b) && run_batches(&r, a, o, b);
    run_free(&r);
    return ok;
}

void calib_out_free(calib_out *o) {
    for (int t = 0; t < QUANT_MAX_LAYERS; t++) free(o->values[t]);
    memset(o->values, 0, sizeof o->values);
}
