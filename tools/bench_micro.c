/* Bandwidth-bound micro-benchmarks: the fused optimizer update and the
 * softmax cross-entropy loss.
 *
 * Both do a few operations per element and are bound by memory traffic, so
 * their work is stated in bytes: the minimum a single fused pass must read
 * and write (benchmarks/README.md gives the formulas). The engine may move
 * more (ctrain's optimizer also reads one flag byte per parameter, and its
 * CPU cross-entropy reads the logits twice in the backward pass); the
 * figure is the algorithm's, so that engines compare on the same work.
 */
#include <math.h>
#include <stdlib.h>

#include "bench.h"

/* ---- fused optimizer update ----------------------------------------------- */

/* The 1-d parameter is decayed too (decay_bias_and_norm), as PyTorch decays
 * every tensor handed to it. */
const ct_optim_opts bench_optim_sgd = {.kind = CT_OPTIM_SGD, .lr = 0.01, .momentum = 0.9,
                                       .decay_bias_and_norm = true};
const ct_optim_opts bench_optim_adamw = {.kind = CT_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.01,
                                         .decay_bias_and_norm = true};

typedef struct optim_state {
    ct_graph *g;
    ct_program *p;
    ct_optimizer *opt;
    double lr;
} optim_state;

void bench_optim_teardown(void *state) {
    optim_state *s = state;
    if (!s) return;
    ct_optimizer_free(s->opt);
    ct_program_free(s->p);
    ct_graph_free(s->g);
    free(s);
}

static int64_t optim_numel(const bench_opts *o) {
    if (o->quick) return 4096;
    return o->device.kind == CT_DEVICE_CPU ? (int64_t)1 << 22 : (int64_t)1 << 26;
}

ct_status bench_optim_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out) {
    const ct_optim_opts *oo = w->params;
    int64_t n = optim_numel(o);
    optim_state *s = calloc(1, sizeof *s);
    if (!s) return bench_oom(sizeof *s);
    ct_status st;
    if (!(s->g = ct_graph_new())) {
        st = bench_oom(0);
        goto fail;
    }
    ct_graph_set_seed(s->g, o->seed);
    /* loss = sum(w * x): one run leaves x in w's gradient, so the update
     * works on real values. */
    ct_node wp = ct_param(s->g, "w", CT_F32, (ct_shape){1, {n}}, ct_init_uniform(-1.0, 1.0));
    ct_node x = ct_input(s->g, "x", CT_F32, (ct_shape){1, {n}});
    ct_node loss = ct_sum(s->g, ct_mul(s->g, wp, x), CT_AXIS_ALL, false);
    if ((st = ct_graph_status(s->g)) != CT_OK || (st = ct_graph_backward(s->g, loss)) != CT_OK) goto fail;
    ct_compile_opts co = {.device = o->device, .outputs = &loss, .n_outputs = 1, .grads = true};
    if (!(s->p = ct_compile(s->g, &co)) || !(s->opt = ct_optimizer_new(s->g, s->p, oo))) {
        st = ct_last_status();
        goto fail;
    }
    float *xs = bench_random_values(o->seed, 1, (size_t)n, CT_F32);
    if (!xs) {
        st = CT_ERR_OOM;
        goto fail;
    }
    st = ct_program_set_input(s->p, "x", xs, (size_t)n * sizeof *xs);
    free(xs);
    if (st != CT_OK || (st = ct_program_run(s->p)) != CT_OK) goto fail;
    s->lr = oo->lr;

    /* Elements read and written per parameter: SGD with momentum reads
     * w, g, buf and writes w, buf; AdamW reads w, g, m, v, writes w, m, v. */
    int touched = oo->kind == CT_OPTIM_ADAMW ? 7 : 5;
    snprintf(out->config, sizeof out->config, "%lld params %s", (long long)n, ct_optim_kind_name(oo->kind));
    out->bytes_per_step = (double)touched * (double)n * sizeof(float);
    out->metric = BENCH_METRIC_BYTES;
    if (o->precision != BENCH_FP32)
        snprintf(out->dtype_note, sizeof out->dtype_note,
                 "parameters and optimizer state stay F32 (master weights) in every precision");
    ct_program_memory(s->p, &out->mem);
    out->optim_bytes = bench_optim_state_bytes(s->opt, s->p);
    *state = s;
    return CT_OK;
fail:
    bench_optim_teardown(s);
    return st;
}

size_t bench_optim_state_bytes(ct_optimizer *opt, const ct_program *p) {
    size_t bytes = 0;
    for (int i = 0; i < ct_optimizer_num_states(opt); i++) {
        size_t numel = 0;
        if (ct_optimizer_state(opt, i, NULL, NULL, &numel) == CT_OK)
            bytes += numel * ct_dtype_size(ct_program_param_dtype(p));
    }
    return bytes;
}

ct_status bench_optim_step(void *state) {
    optim_state *s = state;
    return ct_optimizer_step(s->opt, s->lr);
}

/* ---- softmax cross-entropy ------------------------------------------------ */

#define XENT_CLASSES_CPU 1000   /* ImageNet's classes */
#define XENT_CLASSES_CUDA 32768 /* a language model's vocabulary */

typedef struct xent_state {
    ct_graph *g;
    ct_program *p;
    ct_node loss;
} xent_state;

void bench_xent_teardown(void *state) {
    xent_state *s = state;
    if (!s) return;
    ct_program_free(s->p);
    ct_graph_free(s->g);
    free(s);
}

ct_status bench_xent_setup(const bench_workload *w, const bench_opts *o, void **state, bench_setup *out) {
    (void)w;
    bool cpu = o->device.kind == CT_DEVICE_CPU;
    int64_t b = o->batch_size ? o->batch_size : o->quick ? 8 : cpu ? 1024 : 8192;
    int64_t c = o->quick ? 16 : cpu ? XENT_CLASSES_CPU : XENT_CLASSES_CUDA;
    ct_dtype dt = bench_precision_dtype(o->precision);
    xent_state *s = calloc(1, sizeof *s);
    if (!s) return bench_oom(sizeof *s);
    ct_status st;
    void *logits_host = NULL;
    int32_t *labels_host = NULL;
    if (!(s->g = ct_graph_new())) {
        st = bench_oom(0);
        goto fail;
    }
    ct_node logits = ct_input(s->g, "logits", dt, (ct_shape){2, {b, c}});
    ct_node labels = ct_input(s->g, "labels", CT_I32, (ct_shape){1, {b}});
    s->loss = ct_cross_entropy(s->g, logits, labels, 0.0);
    if ((st = ct_graph_status(s->g)) != CT_OK || (st = ct_set_requires_grad(s->g, logits, true)) != CT_OK ||
        (st = ct_graph_backward(s->g, s->loss)) != CT_OK)
        goto fail;
    ct_node outs[2] = {s->loss, ct_grad(s->g, logits)};
    ct_compile_opts co = {.device = o->device, .outputs = outs, .n_outputs = 2};
    if (!(s->p = ct_compile(s->g, &co))) {
        st = ct_last_status();
        goto fail;
    }
    logits_host = bench_random_values(o->seed, 1, (size_t)(b * c), dt);
    labels_host = bench_random_labels(o->seed, 2, (size_t)b, (int)c);
    if (!logits_host || !labels_host) {
        st = CT_ERR_OOM;
        goto fail;
    }
    if ((st = ct_program_set_input(s->p, "logits", logits_host, (size_t)(b * c) * ct_dtype_size(dt))) != CT_OK ||
        (st = ct_program_set_input(s->p, "labels", labels_host, (size_t)b * sizeof *labels_host)) != CT_OK)
        goto fail;
    free(logits_host);
    free(labels_host);

    snprintf(out->config, sizeof out->config, "%lldx%lld %s", (long long)b, (long long)c, ct_dtype_name(dt));
    out->batch_size = (long)b;
    out->samples_per_step = (double)b;
    /* The forward pass reads the logits; the backward pass reads them and
     * writes their gradient; each pass reads the labels. */
    out->bytes_per_step = 3.0 * (double)(b * c) * (double)ct_dtype_size(dt) + 2.0 * (double)b * 4.0;
    out->metric = BENCH_METRIC_BYTES;
    if (o->precision == BENCH_TF32)
        snprintf(out->dtype_note, sizeof out->dtype_note, "no matrix product: tf32 runs it in F32");
    ct_program_memory(s->p, &out->mem);
    *state = s;
    return CT_OK;
fail:
    free(logits_host);
    free(labels_host);
    bench_xent_teardown(s);
    return st;
}

ct_status bench_xent_step(void *state) {
    xent_state *s = state;
    return ct_program_run(s->p);
}

ct_status bench_xent_check(void *state) {
    xent_state *s = state;
    /* The loss has the logits' dtype. */
    ct_dtype dt = ct_node_dtype(s->g, s->loss);
    uint16_t half = 0;
    float f = NAN;
    ct_status st = dt == CT_F32 ? ct_program_read(s->p, s->loss, &f, sizeof f)
                                : ct_program_read(s->p, s->loss, &half, sizeof half);
    if (st != CT_OK) return st;
    if (dt == CT_F16) f = ct_f16_to_f32(half);
    if (dt == CT_BF16) f = ct_bf16_to_f32(half);
    /* Random logits against random labels: about log(C), and finite. */
    if (!isfinite(f)) return bench_set_error("the loss is %g after the timed steps", (double)f);
    return CT_OK;
}
