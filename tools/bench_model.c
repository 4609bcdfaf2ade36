/* Model workloads: one training step of a classifier or a language model,
 * as `ctrain train` runs it - copy a batch from host memory, forward,
 * backward, AdamW update. (A language model's labels are a token per
 * position and its rates count tokens; bench_gpt.c.)
 * In fp16 and bf16 the step is the trainer's mixed-precision step: the
 * graph is built under that precision policy (half-precision operands for
 * the matrix products, F32 accumulation and master weights), and fp16 adds
 * the dynamic loss scaler (scaled backward, unscale with the inf/NaN check,
 * the gated update, the scale update), so the timed step pays for all of it.
 *
 * The models are descriptions (bench_model): how to make the input, the
 * layers, and the floating-point operations of a step per sample. The FLOPs
 * are the matrix products' only, counted from the layer sizes: a product of
 * [M, K] and [K, N] is 2MNK; a linear layer in -> out costs 2 in out per
 * sample forward, the same again for its weight gradient and once more for
 * its input gradient, except in the first layer, whose input needs none.
 * Biases, activations, the loss and the update add well under 1% for these
 * sizes and are left out, as is usual (benchmarks/README.md).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define POOL 4         /* batches of synthetic data, used in turn */
#define MAX_LAYERS 64
#define ADAMW_LR 1e-3

/* ---- MLPs ---------------------------------------------------------------- */

/* Layer widths, input first: n + 1 sizes for n linear layers. */
typedef struct mlp_dims {
    int n;
    int64_t d[MAX_LAYERS + 2];
} mlp_dims;

static mlp_dims mnist_dims(const bench_opts *o) {
    (void)o;
    return (mlp_dims){3, {784, 1024, 1024, 10}};
}

/* mlp-small: the per-step overhead case (issue: a C engine with a planned
 * arena should pay no dispatch cost), the MLP of ctrain's quick start
 * shrunk to one hidden layer of 128 at batch 32. */
static mlp_dims small_dims(const bench_opts *o) {
    (void)o;
    return (mlp_dims){2, {784, 128, 10}};
}

/* mlp-wide: `layers` linear layers hidden -> hidden on an input as wide as
 * they are, and a 10-class head. The default width suits the device: 4096
 * keeps a GPU busy, 1024 keeps a CPU step under a second. */
static mlp_dims wide_dims(const bench_opts *o) {
    int64_t h = o->hidden ? o->hidden : o->quick ? 64 : o->device.kind == CT_DEVICE_CPU ? 1024 : 4096;
    int layers = (int)(o->layers ? o->layers : o->quick ? 2 : 4);
    mlp_dims m = {layers + 1, {0}};
    for (int i = 0; i <= layers; i++) m.d[i] = h;
    m.d[layers + 1] = 10;
    return m;
}

static ct_node mlp_input(ct_graph *g, long batch, const mlp_dims *m) {
    return ct_input(g, "x", CT_F32, (ct_shape){2, {batch, m->d[0]}});
}

static ct_node mlp_build(ct_graph *g, ct_node x, const mlp_dims *m) {
    ct_node h = x;
    char name[16];
    for (int i = 0; i < m->n; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        h = ct_linear(g, name, h, m->d[i + 1], true, NULL);
        if (i + 1 < m->n) h = ct_relu(g, h);
    }
    return h;
}

static double mlp_flops(const mlp_dims *m) {
    double f = 0.0;
    for (int i = 0; i < m->n; i++) {
        double mac = (double)m->d[i] * (double)m->d[i + 1];
        f += 2.0 * mac * (i == 0 ? 2.0 : 3.0); /* forward, weight grad, input grad */
    }
    return f;
}

/* "784-1024-1024-10"; a run of three or more equal widths is written once
 * with its count, "1024(x5)-10", to keep deep models readable. */
static void mlp_describe(const mlp_dims *m, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i <= m->n && len < cap;) {
        int run = 1;
        while (i + run <= m->n && m->d[i + run] == m->d[i]) run++;
        if (run < 3) run = 1;
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "-" : "", (long long)m->d[i]);
        if (run > 1 && len < cap) len += (size_t)snprintf(buf + len, cap - len, "(x%d)", run);
        i += run;
    }
}

#define MLP_MODEL(prefix, dims, batch)                                                               \
    static ct_node prefix##_input(ct_graph *g, long b, const bench_opts *o) {                          \
        mlp_dims m = dims(o);                                                                          \
        return mlp_input(g, b, &m);                                                                    \
    }                                                                                                  \
    static ct_node prefix##_build(ct_graph *g, ct_node x, const bench_opts *o) {                       \
        mlp_dims m = dims(o);                                                                          \
        return mlp_build(g, x, &m);                                                                    \
    }                                                                                                  \
    static double prefix##_flops(const bench_opts *o) {                                                \
        mlp_dims m = dims(o);                                                                          \
        return mlp_flops(&m);                                                                          \
    }                                                                                                  \
    static void prefix##_describe(const bench_opts *o, char *buf, size_t cap) {                        \
        mlp_dims m = dims(o);                                                                          \
        mlp_describe(&m, buf, cap);                                                                    \
    }                                                                                                  \
    const bench_model bench_model_##prefix = {.input = prefix##_input, .build = prefix##_build,       \
                                              .flops_per_sample = prefix##_flops,                      \
                                              .describe = prefix##_describe, .classes = 10,            \
                                              .default_batch = batch};

MLP_MODEL(mlp_mnist, mnist_dims, 128)
MLP_MODEL(mlp_wide, wide_dims, 256)
MLP_MODEL(mlp_small, small_dims, 32)

/* ---- the training step ---------------------------------------------------- */

typedef struct model_state {
    ct_graph *g;
    ct_program *p;
    ct_optimizer *opt;
    ct_scaler *scaler;   /* fp16 only: dynamic loss scaling, as the trainer */
    ct_node x, y, loss;
    void *xs;            /* POOL batches of inputs, host memory */
    int32_t *ys;         /* POOL batches of labels */
    size_t x_bytes, y_count;
    double lr;
    int next;
} model_state;

const char *bench_model_unsupported(const bench_workload *w, const bench_opts *o) {
    const bench_model *m = w->params;
    const char *why = bench_precision_unsupported(o);
    return why || !m->refuse ? why : m->refuse(o);
}

void bench_model_teardown(void *state) {
    model_state *s = state;
    if (!s) return;
    ct_scaler_free(s->scaler);
    ct_optimizer_free(s->opt);
    ct_program_free(s->p);
    ct_graph_free(s->g);
    free(s->xs);
    free(s->ys);
    free(s);
}

static ct_status fail(model_state *s, ct_status st) {
    bench_model_teardown(s);
    return st;
}

/* The precision policy of the model's graph, set before its layers are
 * built: half-precision matrix products for fp16/bf16, TF32 on a GPU. */
static ct_status set_precision(ct_graph *g, const bench_opts *o) {
    switch (o->precision) {
    case BENCH_FP16: return ct_graph_set_precision(g, CT_PRECISION_FP16);
    case BENCH_BF16: return ct_graph_set_precision(g, CT_PRECISION_BF16);
    case BENCH_TF32: return ct_graph_set_tf32(g, true);
    default: return CT_OK;
    }
}

/* What ran at a precision other than fp32, for the report. */
static void describe_precision(const bench_model *m, const bench_opts *o, char *buf, size_t cap) {
    bool cpu = o->device.kind == CT_DEVICE_CPU;
    switch (o->precision) {
    case BENCH_FP16:
    case BENCH_BF16:
        snprintf(buf, cap, "%s matrix-product operands%s, F32 accumulation and master weights%s%s%s",
                 bench_precision_name(o->precision),
                 !cpu                                                  ? ""
                 : o->precision == BENCH_BF16 && ct_cpu_bf16_native() ? " (oneDNN's bf16 matmul on the CPU)"
                                                                       : " (widened to F32 for sgemm on the CPU)",
                 o->precision == BENCH_FP16 ? ", dynamic loss scale" : "", m->half_note ? "; " : "",
                 m->half_note ? m->half_note : "");
        break;
    case BENCH_TF32: snprintf(buf, cap, "F32 matrix products may round their operands to TF32"); break;
    default: buf[0] = '\0';
    }
}

/* Inputs, labels and the loss. A classifier's labels are [batch]; a
 * language model's are the next tokens, [batch, T], and its loss is the
 * mean over every position, as nanoGPT's: logits [batch, T, V] and labels
 * are flattened to batch x T rows first. */
static ct_status build_loss(model_state *s, const bench_model *m, long batch, long seq, const bench_opts *o) {
    s->x = m->input(s->g, batch, o);
    s->y = ct_input(s->g, "y", CT_I32, seq ? (ct_shape){2, {batch, seq}} : (ct_shape){1, {batch}});
    ct_node logits = m->build(s->g, s->x, o), y = s->y;
    if (seq) {
        logits = ct_reshape(s->g, logits, (ct_shape){2, {(int64_t)batch * seq, m->classes}});
        y = ct_reshape(s->g, y, (ct_shape){1, {(int64_t)batch * seq}});
    }
    s->loss = ct_cross_entropy(s->g, logits, y, 0.0);
    return ct_graph_status(s->g);
}

/* POOL batches of synthetic data: standard normal features, or token ids
 * uniform over the vocabulary where the input is I32; uniform labels. */
static ct_status make_data(model_state *s, const bench_model *m, const bench_opts *o) {
    size_t x_numel = (size_t)ct_shape_numel(ct_node_shape(s->g, s->x));
    ct_dtype xdt = ct_node_dtype(s->g, s->x);
    s->x_bytes = x_numel * ct_dtype_size(xdt);
    s->y_count = (size_t)ct_shape_numel(ct_node_shape(s->g, s->y));
    s->xs = xdt == CT_I32 ? (void *)bench_random_labels(o->seed, 1, POOL * x_numel, m->classes)
                          : bench_random_values(o->seed, 1, POOL * x_numel, xdt);
    s->ys = bench_random_labels(o->seed, 2, POOL * s->y_count, m->classes);
    return s->xs && s->ys ? CT_OK : CT_ERR_OOM;
}

/* The figures of the report: sizes, work per step, memory. */
static void describe_setup(const model_state *s, const bench_model *m, long batch, long seq, const bench_opts *o,
                           bench_setup *out) {
    m->describe(o, out->config, sizeof out->config);
    size_t len = strlen(out->config);
    snprintf(out->config + len, sizeof out->config - len, " adamw");
    out->batch_size = batch;
    out->samples_per_step = (double)batch * (double)(seq ? seq : 1);
    out->sample_unit = seq ? "tokens" : NULL;
    out->flops_per_step = m->flops_per_sample(o) * (double)batch;
    out->metric = BENCH_METRIC_FLOPS;
    describe_precision(m, o, out->dtype_note, sizeof out->dtype_note);
    ct_program_memory(s->p, &out->mem);
    out->optim_bytes = bench_optim_state_bytes(s->opt, s->p);
    /* Bytes are not the bound here; the parameters, gradients and state
     * touched once per step give a floor for the record. */
    out->bytes_per_step = (double)(out->mem.params + out->mem.grads + out->optim_bytes);
}

ct_status bench_model_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out) {
    const bench_model *m = w->params;
    long batch = o->batch_size ? o->batch_size : o->quick ? 8 : m->default_batch;
    long seq = m->seq_len ? m->seq_len(o) : 0;
    model_state *s = calloc(1, sizeof *s);
    if (!s) return bench_oom(sizeof *s);
    if (!(s->g = ct_graph_new())) return fail(s, bench_oom(0));
    ct_graph_set_seed(s->g, o->seed);
    ct_status st = set_precision(s->g, o);
    if (st == CT_OK) st = build_loss(s, m, batch, seq, o);
    if (st != CT_OK) return fail(s, st);
    /* Loss scaling as the trainer's default: dynamic for fp16; bf16 has
     * F32's exponent range and needs none. */
    bool scaled = o->precision == BENCH_FP16;
    st = scaled ? ct_graph_backward_scaled(s->g, s->loss) : ct_graph_backward(s->g, s->loss);
    if (st != CT_OK) return fail(s, st);
    ct_compile_opts co = {.device = o->device, .outputs = &s->loss, .n_outputs = 1, .grads = true};
    if (!(s->p = ct_compile(s->g, &co))) return fail(s, ct_last_status());
    ct_optim_opts oo = {.kind = CT_OPTIM_ADAMW, .lr = ADAMW_LR, .weight_decay = 0.01};
    if (m->optim) oo = *m->optim;
    s->lr = oo.lr;
    if (!(s->opt = ct_optimizer_new(s->g, s->p, &oo))) return fail(s, ct_last_status());
    if (scaled && !(s->scaler = ct_scaler_new(s->p, &(ct_scaler_opts){.mode = CT_LOSS_SCALE_DYNAMIC})))
        return fail(s, ct_last_status());
    if ((st = make_data(s, m, o)) != CT_OK) return fail(s, st);
    describe_setup(s, m, batch, seq, o, out);
    *state = s;
    return CT_OK;
}

ct_status bench_model_step(void *state) {
    model_state *s = state;
    int k = s->next;
    s->next = (s->next + 1) % POOL;
    ct_status st = ct_program_set_input_node(s->p, s->x, (char *)s->xs + (size_t)k * s->x_bytes, s->x_bytes);
    if (st == CT_OK)
        st = ct_program_set_input_node(s->p, s->y, s->ys + (size_t)k * s->y_count, s->y_count * sizeof *s->ys);
    if (st == CT_OK) st = ct_program_run(s->p);
    if (st != CT_OK) return st;
    if (!s->scaler) return ct_optimizer_step(s->opt, s->lr);
    /* The trainer's fp16 update (src/train/train_amp.c), without clipping. */
    if ((st = ct_scaler_unscale(s->scaler)) == CT_OK && (st = ct_scaler_step(s->scaler, s->opt, s->lr)) == CT_OK)
        st = ct_scaler_update(s->scaler);
    return st;
}

ct_status bench_model_check(void *state) {
    model_state *s = state;
    float loss = NAN;
    ct_status st = ct_program_read(s->p, s->loss, &loss, sizeof loss);
    if (st != CT_OK) return st;
    if (!isfinite(loss)) return bench_set_error("the loss is %g after the timed steps", (double)loss);
    return CT_OK;
}
