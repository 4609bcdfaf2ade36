/* A GPT language model: nanoGPT's GPT (model.py), built into a graph.
 *
 * The architecture, parameter names and initialisation are nanoGPT's, so
 * weights move both ways through safetensors files:
 *
 *     transformer.wte.weight [V, C]        token embedding, also the lm_head
 *     transformer.wpe.weight [T, C]        position embedding
 *     transformer.h.<i>.ln_1.{weight,bias} [C]
 *     transformer.h.<i>.attn.c_attn.{weight [3C, C], bias [3C]}
 *     transformer.h.<i>.attn.c_proj.{weight [C, C], bias [C]}
 *     transformer.h.<i>.ln_2.{weight,bias} [C]
 *     transformer.h.<i>.mlp.c_fc.{weight [4C, C], bias [4C]}
 *     transformer.h.<i>.mlp.c_proj.{weight [C, 4C], bias [C]}
 *     transformer.ln_f.{weight,bias} [C]
 *
 * Each block is pre-LN: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)), with
 * causal scaled-dot-product attention over n_head heads of C / n_head,
 * GELU (exact, erf) in the MLP, LayerNorm eps 1e-5, biases everywhere. The
 * lm_head is tied to wte (one parameter used twice; its gradient is the sum
 * of both uses), so there is no "lm_head.weight" parameter.
 *
 * Initialisation (nanoGPT's _init_weights): linear and embedding weights
 * N(0, 0.02), biases zero, LayerNorm weight one and bias zero, and the
 * residual projections (attn.c_proj and mlp.c_proj weights) N(0, 0.02 /
 * sqrt(2 * n_layer)).
 *
 * Dropout p (nanoGPT's config.dropout) applies after the embeddings, after
 * each residual projection, as nanoGPT's; nanoGPT also drops attention
 * probabilities inside scaled_dot_product_attention, which the fused
 * attention op does not do: with dropout > 0 that one place differs.
 */
#ifndef CTRAIN_GPT_H
#define CTRAIN_GPT_H

#include <stdint.h>

#include "ctrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The shape of a GPT (nanoGPT's GPTConfig). */
typedef struct ct_gpt_config {
    int64_t vocab_size; /**< V: token ids are in [0, V) */
    int64_t block_size; /**< the longest context: the rows of wpe */
    int64_t n_layer;    /**< transformer blocks, >= 1 */
    int64_t n_head;     /**< attention heads; must divide n_embd */
    int64_t n_embd;     /**< C: the width of the residual stream */
    double dropout;     /**< in [0, 1) */
} ct_gpt_config;

/** Checks a configuration; CT_ERR_INVALID_ARG with a one-line message
 * naming the field at fault (e.g. "n_embd 130 is not divisible by n_head
 * 4"). */
ct_status ct_gpt_config_check(const ct_gpt_config *c);

/** Adds the GPT to g: idx is an I32 [B, T] node of token ids, T <=
 * block_size; returns the logits [B, T, V] (F32 under every precision
 * policy: the lm_head product accumulates in F32), or CT_NO_NODE after an
 * error, which the graph records. Calling it again on the same graph
 * applies the same model (shared parameters). */
ct_node ct_gpt(ct_graph *g, const ct_gpt_config *c, ct_node idx);

/** Parameters of a GPT of this shape (wte counted once). */
int64_t ct_gpt_num_params(const ct_gpt_config *c);

#ifdef __cplusplus
}
#endif
#endif
