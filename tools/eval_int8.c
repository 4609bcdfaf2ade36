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
#include "quant_model.h"

typedef struct score {
    int64_t correct, count;
    double loss, seconds;
} score;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
    int64_t n = ct_dataset_size(a->ds), feat = ct_dataset_sample_numel(a->ds);
    size_t scratch_bytes = qmodel_scratch(q, a->batch), act = (size_t)(a->batch * q->widest) * sizeof(float);
    float *h0 = malloc(act), *h1 = malloc(act);
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
    bool ok = qmodel_load(&q, a->path, a->f, a->m, ct_dataset_sample_shape(a->ds), a->where) && run_int8(a, &q, &si);
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
