/* The CLI's language model: ctrain/gpt.h's GPT, with the shape from
 * --n-layer, --n-head, --n-embd, --block-size and the data's vocabulary.
 * Its JSON record ({"model": "gpt", "vocab_size", "block_size", "n_layer",
 * "n_head", "n_embd", "dropout"}) is the checkpoint's fingerprint and what
 * `ctrain eval` and `ctrain generate` rebuild the model from. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "train_cli.h"

ct_gpt_config model_gpt_config(const model_cfg *m) {
    return (ct_gpt_config){.vocab_size = m->vocab_size,
                           .block_size = m->block_size,
                           .n_layer = m->n_layer,
                           .n_head = m->n_head,
                           .n_embd = m->n_embd,
                           .dropout = m->dropout};
}

void model_describe_gpt(const model_cfg *m, char *buf, size_t cap) {
    ct_gpt_config c = model_gpt_config(m);
    int n = snprintf(buf, cap, "gpt %lld layers, %lld heads, %lld wide, block %lld, vocab %lld, %lld parameters",
                     (long long)c.n_layer, (long long)c.n_head, (long long)c.n_embd, (long long)c.block_size,
                     (long long)c.vocab_size, (long long)ct_gpt_num_params(&c));
    if (n > 0 && (size_t)n < cap && m->dropout > 0) snprintf(buf + n, cap - (size_t)n, " dropout %g", m->dropout);
}

bool model_gpt_to_json(const model_cfg *m, void *object) {
    cJSON *o = object;
    const struct { const char *key; int64_t v; } f[] = {{"vocab_size", m->vocab_size}, {"block_size", m->block_size},
                                                        {"n_layer", m->n_layer},       {"n_head", m->n_head},
                                                        {"n_embd", m->n_embd}};
    bool ok = cJSON_AddStringToObject(o, "model", "gpt") != NULL;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) ok = ok && cJSON_AddNumberToObject(o, f[i].key, (double)f[i].v);
    return ok && cJSON_AddNumberToObject(o, "dropout", m->dropout) != NULL;
}

bool model_gpt_from_json(const void *object, model_cfg *m, const char **why) {
    const cJSON *o = object;
    const char *keys[] = {"vocab_size", "block_size", "n_layer", "n_head", "n_embd"};
    int64_t *dst[] = {&m->vocab_size, &m->block_size, &m->n_layer, &m->n_head, &m->n_embd};
    for (int i = 0; i < 5; i++)
        if (!model_json_count(o, keys[i], 1, i == 0 ? 1 << 30 : GPT_MAX_SIZE, dst[i], why)) return false;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    if (!cJSON_IsNumber(d) || !(d->valuedouble >= 0 && d->valuedouble < 1)) {
        *why = "field 'dropout' is not a number in [0, 1)";
        return false;
    }
    m->dropout = d->valuedouble;
    m->classes = m->vocab_size;
    snprintf(m->model, sizeof m->model, "gpt");
    ct_gpt_config c = model_gpt_config(m);
    if (ct_gpt_config_check(&c) != CT_OK) {
        *why = "the gpt's shape is invalid";
        return false;
    }
    return true;
}
