/* Language-model workloads: a training step of the library's GPT
 * (ctrain/gpt.h, nanoGPT's architecture) on random token ids - forward,
 * the mean cross-entropy over every position, backward, AdamW - at two of
 * nanoGPT's shapes:
 *
 *     gpt-char    the "baby GPT" of train_shakespeare_char.py: 4 layers,
 *                 4 heads, n_embd 128, block 64, vocab 65, batch 12
 *     gpt2-124m   GPT-2 small: 12 layers, 12 heads, n_embd 768, block
 *                 1024, vocab 50257, batch 4 (GPU-sized: refused on the CPU
 *                 but under --quick)
 *
 * Each sequence is a full block (T = block_size). AdamW takes nanoGPT's
 * settings for each (weight decay 0.1 on the matrices and embeddings, none
 * on biases and LayerNorm weights, which is the library's default rule);
 * nanoGPT's gradient clipping is left out, as in the other model workloads.
 * Dropout is 0: with dropout nanoGPT also drops attention probabilities,
 * which the fused attention op does not.
 *
 * FLOPs are the matrix products', forward and backward, per token: each
 * block's four linear layers 2 x 12 C^2 forward (c_attn 3C^2, c_proj C^2,
 * c_fc and mlp.c_proj 4C^2 each), the attention scores and their weighted
 * sum 2 x 2 T C forward, counted over the full T x T square as is usual
 * (nanoGPT's estimate_mfu, the PaLM paper) although causal attention needs
 * only half; the lm_head 2 C V; backward twice the forward for all of them
 * (every input here needs its gradient). Per token that is
 * 72 L C^2 + 12 L T C + 6 C V: 6 N + 12 L T C for N = the matrix
 * parameters, nanoGPT's formula. Embeddings, LayerNorm, GELU, softmax, the
 * loss and the update are left out (benchmarks/README.md).
 */
#include <stdio.h>

#include "bench.h"

#define QUICK_LAYERS 2
#define QUICK_HEADS 2
#define QUICK_EMBD 32
#define CHAR_VOCAB 65    /* tinyshakespeare's characters */
#define GPT2_VOCAB 50257 /* GPT-2's BPE tokens */

/* nanoGPT's train_shakespeare_char.py. */
static const ct_optim_opts char_adamw = {
    .kind = CT_OPTIM_ADAMW, .lr = 1e-3, .betas = {0.9, 0.99}, .weight_decay = 0.1};
/* nanoGPT's train.py defaults (GPT-2). */
static const ct_optim_opts gpt2_adamw = {
    .kind = CT_OPTIM_ADAMW, .lr = 6e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1};

/* --quick keeps each vocabulary (GPT-2's large lm_head is the point of that
 * workload) and shrinks the rest. */
static ct_gpt_config char_cfg(const bench_opts *o) {
    if (o->quick) return (ct_gpt_config){.vocab_size = CHAR_VOCAB, .block_size = 16, .n_layer = QUICK_LAYERS,
                                         .n_head = QUICK_HEADS, .n_embd = QUICK_EMBD};
    return (ct_gpt_config){.vocab_size = CHAR_VOCAB, .block_size = 64, .n_layer = 4, .n_head = 4, .n_embd = 128};
}

static ct_gpt_config gpt2_cfg(const bench_opts *o) {
    if (o->quick) return (ct_gpt_config){.vocab_size = GPT2_VOCAB, .block_size = 8, .n_layer = QUICK_LAYERS,
                                         .n_head = QUICK_HEADS, .n_embd = QUICK_EMBD};
    return (ct_gpt_config){.vocab_size = GPT2_VOCAB, .block_size = 1024, .n_layer = 12, .n_head = 12, .n_embd = 768};
}

static ct_node gpt_input(ct_graph *g, long batch, const ct_gpt_config *c) {
    return ct_input(g, "x", CT_I32, (ct_shape){2, {batch, c->block_size}});
}

/* Per sequence of T = block_size tokens (see the top). */
static double gpt_flops(const ct_gpt_config *c) {
    double L = (double)c->n_layer, C = (double)c->n_embd, T = (double)c->block_size, V = (double)c->vocab_size;
    return T * (72.0 * L * C * C + 12.0 * L * T * C + 6.0 * C * V);
}

/* "gpt L4 H4 C128 T64 V65": benchmarks/torch_bench.py writes the same. */
static void gpt_describe(const ct_gpt_config *c, char *buf, size_t cap) {
    snprintf(buf, cap, "gpt L%lld H%lld C%lld T%lld V%lld", (long long)c->n_layer, (long long)c->n_head,
             (long long)c->n_embd, (long long)c->block_size, (long long)c->vocab_size);
}

/* GPT-2 small is a GPU workload: about 3.5 TFLOP per step at batch 4,
 * minutes per step on a CPU, which no one should meet by running `all`. */
static const char *gpt2_refuse(const bench_opts *o) {
    if (o->device.kind == CT_DEVICE_CPU && !o->quick)
        return "gpt2-124m is GPU-sized (about 3.5 TFLOP per step at batch 4, minutes on a CPU): run it with "
               "--device cuda (--quick runs a shrunken copy that checks the runner)";
    return NULL;
}

static const char gpt_half_note[] =
    "attention, LayerNorm, GELU, the embeddings and the loss stay F32";

#define GPT_MODEL(prefix, cfg, vocab, batch, adamw_opts, refuse_fn)                                            \
    static ct_node prefix##_input(ct_graph *g, long b, const bench_opts *o) {                                  \
        ct_gpt_config c = cfg(o);                                                                              \
        return gpt_input(g, b, &c);                                                                            \
    }                                                                                                          \
    static ct_node prefix##_build(ct_graph *g, ct_node x, const bench_opts *o) {                               \
        ct_gpt_config c = cfg(o);                                                                              \
        return ct_gpt(g, &c, x);                                                                               \
    }                                                                                                          \
    static double prefix##_flops(const bench_opts *o) {                                                        \
        ct_gpt_config c = cfg(o);                                                                              \
        return gpt_flops(&c);                                                                                  \
    }                                                                                                          \
    static void prefix##_describe(const bench_opts *o, char *buf, size_t cap) {                                \
        ct_gpt_config c = cfg(o);                                                                              \
        gpt_describe(&c, buf, cap);                                                                            \
    }                                                                                                          \
    static long prefix##_seq(const bench_opts *o) { return (long)cfg(o).block_size; }                          \
    const bench_model bench_model_##prefix = {.input = prefix##_input, .build = prefix##_build,                \
                                              .flops_per_sample = prefix##_flops,                              \
                                              .describe = prefix##_describe, .classes = vocab,                 \
                                              .default_batch = batch, .half_note = gpt_half_note,              \
                                              .seq_len = prefix##_seq, .refuse = refuse_fn, .optim = &(adamw_opts)};

GPT_MODEL(gpt_char, char_cfg, CHAR_VOCAB, 12, char_adamw, NULL)
GPT_MODEL(gpt2_124m, gpt2_cfg, GPT2_VOCAB, 4, gpt2_adamw, gpt2_refuse)
