/* The CLI's recurrent language models: --model lstm, gru or rnn (tanh).
 *
 *   embed.weight [V, H]           nn.Embedding, N(0, 1)
 *   rnn.weight_ih_l0 ...          nn.LSTM / GRU / RNN(H, H, num_layers,
 *                                 batch_first, bidirectional, dropout)
 *   head.weight [V, D*H], head.bias [V]   nn.Linear's default init
 *
 * (ctrain/rnn.h), PyTorch's names and defaults, so the weights load into
 * the same torch module. The JSON record ({"model", "vocab_size",
 * "block_size", "hidden_size", "num_layers", "bidirectional", "dropout"})
 * is the checkpoint's fingerprint and what eval and generate rebuild the
 * model from. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "train_cli.h"

bool model_is_recurrent(const model_cfg *m) {
    return strcmp(m->model, "lstm") == 0 || strcmp(m->model, "gru") == 0 || strcmp(m->model, "rnn") == 0;
}

bool model_is_lm(const model_cfg *m) { return strcmp(m->model, "gpt") == 0 || model_is_recurrent(m); }

static ct_rnn_cell cell_of(const char *model) {
    return strcmp(model, "lstm") == 0 ? CT_LSTM : strcmp(model, "gru") == 0 ? CT_GRU : CT_RNN_TANH;
}

ct_rnn_config model_rnn_config(const model_cfg *m) {
    int64_t H = m->hidden_size ? m->hidden_size : RNN_DEFAULT_HIDDEN;
    return (ct_rnn_config){.cell = cell_of(m->model), .input_size = H, .hidden_size = H,
                           .num_layers = m->num_layers ? m->num_layers : RNN_DEFAULT_LAYERS, .batch_first = true,
                           .dropout = m->dropout, .bidirectional = m->bidirectional};
}

bool model_rnn_check(const model_cfg *m) {
    ct_rnn_config c = model_rnn_config(m);
    return ct_rnn_config_check(&c) == CT_OK;
}

static int64_t num_params(const model_cfg *m) {
    ct_rnn_config c = model_rnn_config(m);
    int64_t D = c.bidirectional ? 2 : 1;
    return m->vocab_size * c.hidden_size + ct_rnn_num_params(&c) + m->vocab_size * (D * c.hidden_size + 1);
}

void model_describe_rnn(const model_cfg *m, char *buf, size_t cap) {
    ct_rnn_config c = model_rnn_config(m);
    int n = snprintf(buf, cap, "%s %lld layer%s x %lld%s, block %lld, vocab %lld, %lld parameters", m->model,
                     (long long)c.num_layers, c.num_layers == 1 ? "" : "s", (long long)c.hidden_size,
                     c.bidirectional ? " bidirectional" : "", (long long)m->block_size, (long long)m->vocab_size,
                     (long long)num_params(m));
    if (n > 0 && (size_t)n < cap && m->dropout > 0) snprintf(buf + n, cap - (size_t)n, " dropout %g", m->dropout);
}

bool model_rnn_to_json(const model_cfg *m, void *object) {
    cJSON *o = object;
    ct_rnn_config c = model_rnn_config(m);
    const struct { const char *key; int64_t v; } f[] = {{"vocab_size", m->vocab_size}, {"block_size", m->block_size},
                                                        {"hidden_size", c.hidden_size}, {"num_layers", c.num_layers}};
    bool ok = cJSON_AddStringToObject(o, "model", m->model) != NULL;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) ok = ok && cJSON_AddNumberToObject(o, f[i].key, (double)f[i].v);
    ok = ok && cJSON_AddBoolToObject(o, "bidirectional", c.bidirectional) != NULL;
    return ok && cJSON_AddNumberToObject(o, "dropout", m->dropout) != NULL;
}

bool model_rnn_from_json(const void *object, const char *kind, model_cfg *m, const char **why) {
    const cJSON *o = object;
    const char *keys[] = {"vocab_size", "block_size", "hidden_size", "num_layers"};
    int64_t *dst[] = {&m->vocab_size, &m->block_size, &m->hidden_size, &m->num_layers};
    for (int i = 0; i < 4; i++)
        if (!model_json_count(o, keys[i], 1, i == 0 ? 1 << 30 : GPT_MAX_SIZE, dst[i], why)) return false;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    const cJSON *bi = cJSON_GetObjectItemCaseSensitive(o, "bidirectional");
    if (!cJSON_IsNumber(d) || !(d->valuedouble >= 0 && d->valuedouble < 1)) {
        *why = "field 'dropout' is not a number in [0, 1)";
        return false;
    }
    if (!cJSON_IsBool(bi)) {
        *why = "field 'bidirectional' is not true or false";
        return false;
    }
    m->dropout = d->valuedouble;
    m->bidirectional = cJSON_IsTrue(bi);
    m->classes = m->vocab_size;
    snprintf(m->model, sizeof m->model, "%s", kind);
    return true;
}

int model_rnn_states(const model_cfg *m, ct_lm_state out[2]) {
    out[0] = (ct_lm_state){"rnn.h0", "rnn.h_n"};
    out[1] = (ct_lm_state){"rnn.c0", "rnn.c_n"};
    return model_rnn_config(m).cell == CT_LSTM ? 2 : 1;
}

ct_node model_build_rnn(ct_graph *g, ct_node x, bool training, const model_cfg *m) {
    ct_rnn_config c = model_rnn_config(m);
    ct_node e = ct_embedding_layer(g, "embed", x, m->vocab_size, c.hidden_size);
    ct_node h0 = CT_NO_NODE, c0 = CT_NO_NODE;
    bool carry = m->stateful && training;
    if (carry) {
        /* The states the trainer carries from the last window (zero at the
         * start of an epoch); an input has no gradient, so they arrive
         * detached. */
        ct_shape xs = ct_node_shape(g, x);
        ct_shape hs = {3, {c.num_layers * (c.bidirectional ? 2 : 1), xs.dim[0], c.hidden_size}};
        h0 = ct_input(g, "rnn.h0", CT_F32, hs);
        if (c.cell == CT_LSTM) c0 = ct_input(g, "rnn.c0", CT_F32, hs);
    }
    ct_rnn_out out;
    ct_node y = ct_recurrent(g, "rnn", &c, e, h0, c0, &out);
    if (carry && y != CT_NO_NODE) {
        ct_set_name(g, out.h_n, "rnn.h_n");
        if (c.cell == CT_LSTM) ct_set_name(g, out.c_n, "rnn.c_n");
    }
    return ct_linear(g, "head", y, m->vocab_size, true, NULL);
}
