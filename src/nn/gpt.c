/* nanoGPT's GPT as a graph (ctrain/gpt.h): embeddings, pre-LN blocks of
 * causal self-attention and a GELU MLP, the final LayerNorm and the lm_head
 * tied to the token embedding.
 *
 * Module map, in the order parameters are declared (nanoGPT's state_dict
 * order, so a checkpoint lists them as PyTorch does):
 *   embed()      transformer.wte, transformer.wpe, dropout
 *   block()      ln_1 -> attention() -> residual, ln_2 -> mlp() -> residual
 *   ct_gpt()     the blocks, ln_f, the tied lm_head
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/autocast.h"
#include "core/error.h"
#include "ctrain/gpt.h"
#include "ctrain/ops.h"
#include "nn/nn_internal.h"

/* nanoGPT's _init_weights: N(0, 0.02) for every Linear and Embedding. */
#define GPT_INIT_STD 0.02

ct_status ct_gpt_config_check(const ct_gpt_config *c) {
    if (!c) return ct_error(CT_ERR_INVALID_ARG, "gpt: config is NULL");
    const struct {
        const char *name;
        int64_t v;
    } pos[] = {{"vocab_size", c->vocab_size}, {"block_size", c->block_size}, {"n_layer", c->n_layer},
               {"n_head", c->n_head}, {"n_embd", c->n_embd}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0)
            return ct_error(CT_ERR_INVALID_ARG, "gpt: %s = %lld; it must be > 0", pos[i].name, (long long)pos[i].v);
    if (c->n_embd % c->n_head != 0)
        return ct_error(CT_ERR_INVALID_ARG, "gpt: n_embd %lld is not divisible by n_head %lld",
                        (long long)c->n_embd, (long long)c->n_head);
    if (!(c->dropout >= 0.0 && c->dropout < 1.0))
        return ct_error(CT_ERR_INVALID_ARG, "gpt: dropout %g is outside [0, 1)", c->dropout);
    return CT_OK;
}

int64_t ct_gpt_num_params(const ct_gpt_config *c) {
    int64_t C = c->n_embd;
    int64_t block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
    return c->vocab_size * C + c->block_size * C + c->n_layer * block + 2 * C;
}

/* "<prefix>.<leaf>" into buf. The names here are short (the longest is
 * "transformer.h.<i>.attn.c_attn"); one cut short would become "", which
 * the layers reject by name rather than building a wrong one. */
static const char *join(char *buf, size_t n, const char *prefix, const char *leaf) {
    int r = snprintf(buf, n, "%s.%s", prefix, leaf);
    if (r < 0 || (size_t)r >= n) buf[0] = '\0';
    return buf;
}

/* A Linear with nanoGPT's initialisation: weight N(0, std), bias zero
 * (torch.nn.Linear's own default differs, hence not ct_linear). x is
 * [B, T, in]; the product follows the graph's precision policy. */
static ct_node linear(ct_graph *g, const char *name, ct_node x, int64_t out, double std) {
    if (x == CT_NO_NODE) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    int64_t in = nx->shape.dim[nx->shape.ndim - 1];
    ct_dtype xdt = nx->dtype, pdt = ct_nn_param_dtype(g, xdt);
    char ctx[96];
    snprintf(ctx, sizeof ctx, "in_features %lld, out_features %lld", (long long)in, (long long)out);
    ct_node w = ct_nn_state(g, "linear", name, "weight", false, (ct_shape){2, {out, in}}, pdt,
                            ct_init_normal(0.0, std), ctx);
    ct_node b = ct_nn_state(g, "linear", name, "bias", false, (ct_shape){1, {out}}, pdt, ct_init_zeros(), ctx);
    if (w == CT_NO_NODE || b == CT_NO_NODE) return CT_NO_NODE;
    ct_node y = ct_matmul(g, x, ct_autocast_param(g, w, xdt), false, true);
    if (y == CT_NO_NODE) return y;
    return ct_add(g, y, ct_cast_folded(g, ct_autocast_param(g, b, xdt), g->nodes[y].dtype));
}

/* q, k, v as heads [B, H, T, D] from qkv [B, T, 3C]: one permute to
 * [3, B, H, T, D], whose three parts along the leading axis are views of it
 * (the planner copies nothing for them, core/program.c); backward, their
 * gradients side by side are one value again, and one permute takes it
 * back to qkv's layout. */
static void heads(ct_graph *g, ct_node qkv, const ct_gpt_config *c, int64_t B, int64_t T, ct_node out[3]) {
    int64_t C = c->n_embd, H = c->n_head, D = C / H;
    ct_node x = ct_reshape(g, qkv, (ct_shape){5, {B, T, 3, H, D}});
    x = ct_permute(g, x, (const int[]){2, 0, 3, 1, 4});
    for (int i = 0; i < 3; i++) out[i] = ct_reshape(g, ct_slice(g, x, 0, i, i + 1), (ct_shape){4, {B, H, T, D}});
}

/* nanoGPT's CausalSelfAttention on x [B, T, C]. */
static ct_node attention(ct_graph *g, const char *pre, ct_node x, const ct_gpt_config *c, int64_t B, int64_t T) {
    char nm[CT_NN_NAME_MAX];
    int64_t C = c->n_embd, D = C / c->n_head;
    ct_node qkv = linear(g, join(nm, sizeof nm, pre, "c_attn"), x, 3 * C, GPT_INIT_STD);
    if (qkv == CT_NO_NODE) return CT_NO_NODE;
    ct_node qkv_h[3];
    heads(g, qkv, c, B, T, qkv_h);
    ct_node y = ct_attention(g, qkv_h[0], qkv_h[1], qkv_h[2], true, 1.0 / sqrt((double)D));
    y = ct_permute(g, y, (const int[]){0, 2, 1, 3});
    y = ct_reshape(g, y, (ct_shape){3, {B, T, C}});
    double proj_std = GPT_INIT_STD / sqrt(2.0 * (double)c->n_layer);
    y = linear(g, join(nm, sizeof nm, pre, "c_proj"), y, C, proj_std);
    return c->dropout > 0 ? ct_dropout(g, y, c->dropout) : y;
}

/* nanoGPT's MLP: c_fc -> GELU (exact) -> c_proj -> dropout. */
static ct_node mlp(ct_graph *g, const char *pre, ct_node x, const ct_gpt_config *c) {
    char nm[CT_NN_NAME_MAX];
    ct_node h = linear(g, join(nm, sizeof nm, pre, "c_fc"), x, 4 * c->n_embd, GPT_INIT_STD);
    h = ct_gelu(g, h, false);
    h = linear(g, join(nm, sizeof nm, pre, "c_proj"), h, c->n_embd, GPT_INIT_STD / sqrt(2.0 * (double)c->n_layer));
    return c->dropout > 0 ? ct_dropout(g, h, c->dropout) : h;
}

static ct_node block(ct_graph *g, int64_t i, ct_node x, const ct_gpt_config *c, int64_t B, int64_t T) {
    char pre[CT_NN_NAME_MAX], nm[CT_NN_NAME_MAX];
    snprintf(pre, sizeof pre, "transformer.h.%lld", (long long)i);
    ct_node h = ct_layer_norm(g, join(nm, sizeof nm, pre, "ln_1"), x, 1e-5, true);
    x = ct_add(g, x, attention(g, join(nm, sizeof nm, pre, "attn"), h, c, B, T));
    h = ct_layer_norm(g, join(nm, sizeof nm, pre, "ln_2"), x, 1e-5, true);
    return ct_add(g, x, mlp(g, join(nm, sizeof nm, pre, "mlp"), h, c));
}

/* The token table, and tok_emb + pos_emb [B, T, C] with dropout. */
static ct_node embed(ct_graph *g, const ct_gpt_config *c, ct_node idx, int64_t T, ct_node *wte) {
    char ctx[96];
    snprintf(ctx, sizeof ctx, "vocab_size %lld, block_size %lld, n_embd %lld", (long long)c->vocab_size,
             (long long)c->block_size, (long long)c->n_embd);
    ct_dtype pdt = ct_nn_param_dtype(g, CT_F32);
    *wte = ct_nn_state(g, "gpt", "transformer.wte", "weight", false, (ct_shape){2, {c->vocab_size, c->n_embd}}, pdt,
                       ct_init_normal(0.0, GPT_INIT_STD), ctx);
    ct_node wpe = ct_nn_state(g, "gpt", "transformer.wpe", "weight", false,
                              (ct_shape){2, {c->block_size, c->n_embd}}, pdt, ct_init_normal(0.0, GPT_INIT_STD), ctx);
    if (*wte == CT_NO_NODE || wpe == CT_NO_NODE) return CT_NO_NODE;
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    if (!pos) return ct_graph_fail(g, CT_ERR_OOM, "gpt: out of memory for %lld positions", (long long)T);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)t;
    ct_node p = ct_constant(g, CT_I32, (ct_shape){1, {T}}, pos);
    free(pos);
    ct_node x = ct_add(g, ct_embedding(g, *wte, idx), ct_embedding(g, wpe, p));
    return c->dropout > 0 ? ct_dropout(g, x, c->dropout) : x;
}

ct_node ct_gpt(ct_graph *g, const ct_gpt_config *c, ct_node idx) {
    if (!ct_nn_begin(g, "gpt", "transformer", idx, false)) return CT_NO_NODE;
    if (ct_gpt_config_check(c) != CT_OK) return ct_graph_fail(g, ct_last_status(), "%s", ct_last_error());
    const ct_nodeinfo *ni = &g->nodes[idx];
    char s[CT_SHAPE_STR];
    if (ni->dtype != CT_I32 || ni->shape.ndim != 2)
        return ct_graph_fail(g, CT_ERR_SHAPE, "gpt: idx must be i32 [B, T], got %s %s", ct_dtype_name(ni->dtype),
                             SHP(ni->shape, s));
    int64_t B = ni->shape.dim[0], T = ni->shape.dim[1];
    if (T > c->block_size)
        return ct_graph_fail(g, CT_ERR_SHAPE, "gpt: sequence length %lld is longer than block_size %lld",
                             (long long)T, (long long)c->block_size);
    ct_node wte;
    ct_node x = embed(g, c, idx, T, &wte);
    for (int64_t i = 0; i < c->n_layer && x != CT_NO_NODE; i++) x = block(g, i, x, c, B, T);
    x = ct_layer_norm(g, "transformer.ln_f", x, 1e-5, true);
    if (x == CT_NO_NODE) return CT_NO_NODE;
    /* The lm_head is wte itself: the same parameter node, so autodiff adds
     * the two uses' gradients, as PyTorch does for tied weights. */
    return ct_matmul(g, x, ct_autocast_param(g, wte, g->nodes[x].dtype), false, true);
}
