/* `ctrain eval` of an int8 model: the MLP run with int8 products
 * (ct_qlinear: uint8 inputs x int8 weights -> int32, dequantised in F32),
 * batch norm and the activation in F32 on the host, and the same data run
 * through the F32 checkpoint in the same process, so that accuracy and
 * samples/s are compared on equal terms (same batches, same machine state).
 * Only the batch loops are timed: building, compiling and loading are not.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "quant_cli.h"

typedef struct qmodel {
    int n_lin;
    ct_qlinear lin[MLP_MAX_HIDDEN + 1];
    float *bn[MLP_MAX_HIDDEN][4]; /* weight, bias, running_mean, running_var */
    const model_cfg *m;
} qmodel;

typedef struct score {
    int64_t correct, count;
    double loss, seconds;
} score;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void qmodel_free(qmodel *q) {
    for (int k = 0; k < q->n_lin; k++) ct_qlinear_free(&q->lin[k]);
    for (int k = 0; k < MLP_MAX_HIDDEN; k++)
        for (int p = 0; p < 4; p++) free(q->bn[k][p]);
}

/* An integer tensor's bytes, checked to be dtype [n] (or [rows, cols]). */
static const void *int_tensor(const eval_int8_args *a, const char *name, const char *dtype, int64_t rows,
                              int64_t cols) {
    int i = ct_st_find(a->f, name);
    ct_shape s = {0};
    if (i >= 0) ct_st_info(a->f, i, NULL, &s);
    bool ok = i >= 0 && strcmp(ct_st_dtype_name(a->f, i), dtype) == 0 &&
              (cols ? s.ndim == 2 && s.dim[0] == rows && s.dim[1] == cols : s.ndim == 1 && s.dim[0] == rows);
    if (ok) return ct_st_data(a->f, i);
    fprintf(stderr, "ctrain: eval: '%s': tensor '%s' is %s, not %s [%lld%s%lld]\n", a->path, name,
            i < 0 ? "missing" : ct_st_dtype_name(a->f, i), dtype, (long long)rows, cols ? ", " : "",
            (long long)cols);
    return NULL;
}

static bool load_linear(const eval_int8_args *a, qmodel *q, int k, int64_t in, int64_t out) {
    char name[64];
    snprintf(name, sizeof name, "fc%d.qweight", k + 1);
    const int8_t *w = int_tensor(a, name, "I8", out, in);
    snprintf(name, sizeof name, "fc%d.input_zero_point", k + 1);
    const void *zp_bytes = w ? int_tensor(a, name, "I32", 1, 0) : NULL;
    float *scale = NULL, *bias = NULL, *in_scale = NULL;
    snprintf(name, sizeof name, "fc%d.weight_scale", k + 1);
    if (zp_bytes) scale = quant_read_f32("eval", a->path, a->f, name, out, 0);
    snprintf(name, sizeof name, "fc%d.bias", k + 1);
    if (scale) bias = quant_read_f32("eval", a->path, a->f, name, out, 0);
    snprintf(name, sizeof name, "fc%d.input_scale", k + 1);
    if (bias) in_scale = quant_read_f32("eval", a->path, a->f, name, 1, 0);
    bool ok = in_scale != NULL;
    if (ok) {
        int32_t zp;
        memcpy(&zp, zp_bytes, sizeof zp); /* the bytes may be unaligned in another writer's file */
        ok = ct_qlinear_init(&q->lin[k], w, scale, bias, out, in, *in_scale, zp) == CT_OK;
        if (!ok) fprintf(stderr, "ctrain: eval: '%s': layer fc%d: %s\n", a->path, k + 1, ct_last_error());
        q->n_lin = k + 1;
    }
    free(scale);
    free(bias);
    free(in_scale);
    return ok;
}

/* The file's format version, and the data's width against the first layer's. */
static bool file_fits(const eval_int8_args *a) {
    const char *fmt = ct_st_meta(a->f, "quant.format");
    if (strcmp(fmt, QUANT_FORMAT) != 0) {
        fprintf(stderr, "ctrain: eval: '%s' is an int8 model of format '%.40s'; this ctrain reads '%s'\n", a->path,
                fmt, QUANT_FORMAT);
        return false;
    }
    int i = ct_st_find(a->f, "fc1.qweight");
    ct_shape s = {0};
    if (i >= 0) ct_st_info(a->f, i, NULL, &s);
    int64_t feat = ct_dataset_sample_numel(a->ds);
    if (i >= 0 && s.ndim == 2 && s.dim[1] != feat) {
        fprintf(stderr, "ctrain: eval: '%s' takes %lld features per sample; the samples of %s have %lld\n", a->path,
                (long long)s.dim[1], a->where, (long long)feat);
        return false;
    }
    return true;
}

static bool qmodel_load(const eval_int8_args *a, qmodel *q) {
    memset(q, 0, sizeof *q);
    q->m = a->m;
    if (!file_fits(a)) return false;
    static const char *const parts[] = {"weight", "bias", "running_mean", "running_var"};
    int64_t in = ct_dataset_sample_numel(a->ds);
    for (int k = 0; k <= a->m->n_hidden; k++) {
        int64_t out = k < a->m->n_hidden ? a->m->hidden[k] : a->m->classes;
        if (!load_linear(a, q, k, in, out)) return false;
        for (int p = 0; k < a->m->n_hidden && a->m->batchnorm && p < 4; p++) {
            char name[64];
            snprintf(name, sizeof name, "bn%d.%s", k + 1, parts[p]);
            if (!(q->bn[k][p] = quant_read_f32("eval", a->path, a->f, name, out, 0))) return false;
        }
        in = out;
    }
    return true;
}

/* The activations of ct_activation, in float on the host (the F32 parts
 * of the int8 model); the kinds are those model_from_json accepts. */
static float act1(const char *k, float x) {
    if (strcmp(k, "relu") == 0) return x > 0 ? x : 0;
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

/* Batch norm in evaluation: the running statistics, eps as ct_batch_norm's. */
static void normalize(float *const bn[4], float *x, int64_t b, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float s = bn[0][j] / sqrtf(bn[3][j] + 1e-5f), t = bn[1][j] - bn[2][j] * s;
        for (int64_t i = 0; i < b; i++) x[i * n + j] = x[i * n + j] * s + t;
    }
}

/* logits [b, classes] of x [b, in]; h0, h1: [b, widest] each. */
static bool qmodel_forward(const qmodel *q, const float *x, int64_t b, float *h0, float *h1, void *scratch) {
    const float *in = x;
    float *out = h0;
    for (int k = 0; k < q->n_lin; k++) {
        if (ct_qlinear_forward(&q->lin[k], in, b, out, scratch) != CT_OK) return false;
        if (k < q->m->n_hidden) {
            if (q->m->batchnorm) normalize(q->bn[k], out, b, q->lin[k].out);
            activate(q->m->activation, out, b * q->lin[k].out);
        }
        in = out;
        out = out == h0 ? h1 : h0;
    }
    if (in != h0) memcpy(h0, in, (size_t)(b * q->lin[q->n_lin - 1].out) * sizeof *h0);
    return true;
}

/* Accuracy (first maximal logit) and cross-entropy of a batch. */
static void add_score(score *s, const float *logits, const int32_t *labels, int64_t b, int64_t c) {
    for (int64_t i = 0; i < b; i++) {
        const float *l = logits + i * c;
        int64_t best = 0;
        double mx = l[0], sum = 0;
        for (int64_t j = 1; j < c; j++)
            if (l[j] > l[best]) best = j, mx = l[j];
        for (int64_t j = 0; j < c; j++) sum += exp((double)l[j] - mx);
        s->loss += mx + log(sum) - (double)l[labels[i]];
        s->correct += best == labels[i];
    }
    s->count += b;
}

static bool run_int8(const eval_int8_args *a, const qmodel *q, score *s) {
    int64_t n = ct_dataset_size(a->ds), feat = ct_dataset_sample_numel(a->ds), widest = 0;
    for (int k = 0; k < q->n_lin; k++) widest = q->lin[k].out > widest ? q->lin[k].out : widest;
    size_t scratch_bytes = 0;
    for (int k = 0; k < q->n_lin; k++) {
        size_t b = ct_qlinear_scratch(&q->lin[k], a->batch);
        scratch_bytes = b > scratch_bytes ? b : scratch_bytes;
    }
    float *h0 = malloc((size_t)(a->batch * widest) * sizeof *h0), *h1 = malloc((size_t)(a->batch * widest) * sizeof *h1);
    void *scratch = aligned_alloc(64, (scratch_bytes + 63) / 64 * 64);
    bool ok = h0 && h1 && scratch;
    if (!ok) fprintf(stderr, "ctrain: eval: out of memory for batches of %lld\n", (long long)a->batch);
    /* One untimed batch first, as for the F32 model: threads started, pages touched. */
    if (ok) qmodel_forward(q, ct_dataset_features(a->ds), n < a->batch ? n : a->batch, h0, h1, scratch);
    double t0 = now();
    for (int64_t i = 0; ok && i < n; i += a->batch) {
        int64_t b = n - i < a->batch ? n - i : a->batch;
        ok = qmodel_forward(q, ct_dataset_features(a->ds) + i * feat, b, h0, h1, scratch);
        if (ok) add_score(s, h0, ct_dataset_labels(a->ds) + i, b, a->m->classes);
        else fprintf(stderr, "ctrain: eval: the int8 model: %s\n", ct_last_error());
    }
    s->seconds = now() - t0;
    free(h0);
    free(h1);
    free(scratch);
    return ok;
}

/* The F32 model for batches of b, sharing share's weights (or loading
 * them from path when share is NULL). */
typedef struct f32_prog {
    ct_graph *g;
    ct_program *p;
    ct_node x, logits;
} f32_prog;

static void f32_free(f32_prog *r) {
    ct_program_free(r->p);
    ct_graph_free(r->g);
    memset(r, 0, sizeof *r);
}

static bool f32_build(const eval_int8_args *a, const char *path, int64_t b, ct_program *share, f32_prog *r) {
    memset(r, 0, sizeof *r);
    ct_shape sample = ct_dataset_sample_shape(a->ds), xs = {sample.ndim + 1, {b}};
    for (int i = 0; i < sample.ndim; i++) xs.dim[i + 1] = sample.dim[i];
    if (!(r->g = ct_graph_new())) return false;
    r->x = ct_input(r->g, "x", CT_F32, xs);
    r->logits = model_build(r->g, r->x, false, (void *)a->m);
    ct_compile_opts co = {.device = a->device, .outputs = &r->logits, .n_outputs = 1, .share_params = share};
    ct_load_opts lo = {.non_strict = true, .require_all = true};
    bool ok = ct_graph_status(r->g) == CT_OK && (r->p = ct_compile(r->g, &co)) &&
              (share || ct_load_weights(r->g, r->p, path, &lo) == CT_OK);
    if (!ok) {
        fprintf(stderr, "ctrain: eval: the F32 model '%s': %s\n", path,
                ct_graph_status(r->g) != CT_OK ? ct_graph_error(r->g) : ct_last_error());
        return false;
    }
    ct_program_set_training(r->p, false);
    return true;
}

static bool run_f32(const eval_int8_args *a, const char *path, score *s) {
    int64_t n = ct_dataset_size(a->ds), feat = ct_dataset_sample_numel(a->ds), full = a->batch < n ? a->batch : n;
    int64_t rest = n % full;
    f32_prog main = {0}, tail = {0};
    float *logits = malloc((size_t)(full * a->m->classes) * sizeof *logits);
    bool ok = logits && f32_build(a, path, full, NULL, &main) && (!rest || f32_build(a, path, rest, main.p, &tail));
    if (ok) /* the untimed first batch */
        ok = ct_program_set_input_node(main.p, main.x, ct_dataset_features(a->ds),
                                       (size_t)(full * feat) * sizeof(float)) == CT_OK &&
             ct_program_run(main.p) == CT_OK;
    double t0 = now();
    for (int64_t i = 0; ok && i < n; i += full) {
        int64_t b = n - i < full ? n - i : full;
        f32_prog *r = b == full ? &main : &tail;
        const float *x = ct_dataset_features(a->ds) + i * feat;
        ok = ct_program_set_input_node(r->p, r->x, x, (size_t)(b * feat) * sizeof *x) == CT_OK &&
             ct_program_run(r->p) == CT_OK &&
             ct_program_read(r->p, r->logits, logits, (size_t)(b * a->m->classes) * sizeof *logits) == CT_OK;
        if (ok) add_score(s, logits, ct_dataset_labels(a->ds) + i, b, a->m->classes);
        else fprintf(stderr, "ctrain: eval: the F32 model: %s\n", ct_last_error());
    }
    s->seconds = now() - t0;
    f32_free(&tail);
    f32_free(&main);
    free(logits);
    return ok;
}

static void print_score(const char *what, const score *s, const char *note) {
    printf("%-5s accuracy %.2f%% (%lld/%lld)  loss %.4f  %.0f samples/s  (%s)\n", what,
           100.0 * (double)s->correct / (double)s->count, (long long)s->correct, (long long)s->count,
           s->loss / (double)s->count, (double)s->count / (s->seconds > 0 ? s->seconds : 1e-9), note);
}

int eval_int8(const eval_int8_args *a) {
    qmodel q;
    score si = {0}, sf = {0};
    bool ok = qmodel_load(a, &q) && run_int8(a, &q, &si);
    qmodel_free(&q);
    if (!ok) return CLI_EXIT_FAIL;
    char note[600];
    snprintf(note, sizeof note, "int8 products, kernel %s, batch %lld", ct_int8_kernel_name(), (long long)a->batch);
    printf("int8 model %s on %s %s set (%s)\n", a->path, a->data_kind, a->train_split ? "training" : "test",
           a->where);
    print_score("int8", &si, note);
    const char *ref = a->compare ? a->compare : ct_st_meta(a->f, "quant.source");
    if (!ref || (!a->compare && access(ref, R_OK) != 0)) {
        printf("f32   (no comparison: the F32 checkpoint %s%s is not there; give it with --compare)\n",
               ref ? ref : "", ref ? "" : "it was made from");
        return CLI_EXIT_OK;
    }
    if (!run_f32(a, ref, &sf)) return CLI_EXIT_FAIL;
    snprintf(note, sizeof note, "%s, batch %lld", ref, (long long)a->batch);
    print_score("f32", &sf, note);
    double di = (double)si.correct / (double)si.count - (double)sf.correct / (double)sf.count;
    printf("int8 - f32: %+.2f pp accuracy; int8 speed %.2fx the F32 model's\n", 100 * di,
           sf.seconds > 0 && si.seconds > 0 ? sf.seconds / si.seconds : 0.0);
    return CLI_EXIT_OK;
}
