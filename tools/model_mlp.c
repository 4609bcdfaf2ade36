/* The CLI's built-in model: a multi-layer perceptron.
 *
 * Layer names follow a torch.nn module written the obvious way,
 *
 *     self.fc1 = nn.Linear(784, 512); self.bn1 = nn.BatchNorm1d(512)
 *     self.fc2 = nn.Linear(512, 256); ...; self.fc3 = nn.Linear(256, 10)
 *
 * so `--init-from` takes that module's state_dict (saved with safetensors)
 * and our checkpoints load there. The architecture is recorded as JSON in
 * every checkpoint: it is the fingerprint a resumed run must match, and
 * what `ctrain eval` rebuilds the model from.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/nn.h>

#include "train_cli.h"

bool model_init_rule(const char *init, ct_init *out) {
    if (strcmp(init, "xavier") == 0) {
        *out = ct_init_xavier_uniform(1.0);
        return true;
    }
    if (strcmp(init, "kaiming") == 0) {
        /* He et al.'s rule for ReLU networks: N(0, 2 / fan_in). */
        *out = ct_init_kaiming_normal(0.0, CT_FAN_IN, CT_NONLIN_RELU);
        return true;
    }
    return false; /* "default": PyTorch's nn.Linear initialisation */
}

ct_node model_build(ct_graph *g, ct_node x, bool training, void *user) {
    /* Dropout and batch norm follow the program's mode; training only
     * tells a stateful recurrent model to take its states as inputs. */
    const model_cfg *m = user;
    if (strcmp(m->model, "gpt") == 0) {
        ct_gpt_config c = model_gpt_config(m);
        return ct_gpt(g, &c, x);
    }
    if (model_is_recurrent(m)) return model_build_rnn(g, x, training, m);
    if (strcmp(m->model, "cnn") == 0) return model_build_cnn(g, x, m);
    if (strcmp(m->model, "resnet") == 0) return model_build_resnet(g, x, m);
    return model_build_mlp(g, x, m, NULL);
}

ct_node model_build_mlp(ct_graph *g, ct_node x, const model_cfg *m, ct_node *taps) {
    ct_shape s = ct_node_shape(g, x);
    if (s.ndim < 1) return CT_NO_NODE;
    ct_node h = s.ndim == 2 ? x : ct_reshape(g, x, (ct_shape){2, {s.dim[0], -1}});
    ct_init rule;
    const ct_init *w_init = model_init_rule(m->init, &rule) ? &rule : NULL;
    char name[32];
    for (int i = 0; i < m->n_hidden; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        if (taps) taps[i] = h;
        h = (m->qat ? ct_linear_qat : ct_linear)(g, name, h, m->hidden[i], true, w_init);
        if (m->batchnorm) {
            snprintf(name, sizeof name, "bn%d", i + 1);
            h = ct_batch_norm(g, name, h, 0, 0);
        }
        h = ct_activation(g, h, m->activation);
        if (m->dropout > 0) h = ct_dropout(g, h, m->dropout);
    }
    snprintf(name, sizeof name, "fc%d", m->n_hidden + 1);
    if (taps) taps[m->n_hidden] = h;
    return (m->qat ? ct_linear_qat : ct_linear)(g, name, h, m->classes, true, w_init);
}

bool model_parse_hidden(const char *text, model_cfg *cfg) {
    cfg->n_hidden = 0;
    if (strcmp(text, "") == 0 || strcmp(text, "none") == 0) return true;
    const char *p = text;
    for (;;) {
        if (!isdigit((unsigned char)*p)) return false;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno == ERANGE || v < 1 || v > (1LL << 24) || cfg->n_hidden == MLP_MAX_HIDDEN) return false;
        cfg->hidden[cfg->n_hidden++] = v;
        if (*end == '\0') return true;
        if (*end != ',') return false;
        p = end + 1;
    }
}

void model_describe(const model_cfg *cfg, int64_t inputs, char *buf, size_t cap) {
    if (strcmp(cfg->model, "gpt") == 0) {
        model_describe_gpt(cfg, buf, cap);
        return;
    }
    if (model_is_recurrent(cfg)) {
        model_describe_rnn(cfg, buf, cap);
        return;
    }
    if (model_is_image(cfg)) {
        model_describe_image(cfg, inputs, buf, cap);
        return;
    }
    size_t len = (size_t)snprintf(buf, cap, "%s %lld", cfg->model, (long long)inputs);
    for (int i = 0; i < cfg->n_hidden && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "-%lld", (long long)cfg->hidden[i]);
    if (len < cap) len += (size_t)snprintf(buf + len, cap - len, "-%lld %s", (long long)cfg->classes, cfg->activation);
    if (len < cap && cfg->batchnorm) len += (size_t)snprintf(buf + len, cap - len, " batchnorm");
    if (len < cap && cfg->dropout > 0) snprintf(buf + len, cap - len, " dropout %g", cfg->dropout);
}

char *model_to_json(const model_cfg *cfg) {
    cJSON *o = cJSON_CreateObject();
    if (o && model_is_lm(cfg)) {
        bool ok = model_is_recurrent(cfg) ? model_rnn_to_json(cfg, o) : model_gpt_to_json(cfg, o);
        char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        return text;
    }
    cJSON *h = cJSON_CreateArray();
    if (!o || !h) {
        cJSON_Delete(o);
        cJSON_Delete(h);
        return NULL;
    }
    cJSON_AddItemToObject(o, "model", cJSON_CreateString(cfg->model));
    for (int i = 0; i < cfg->n_hidden; i++) cJSON_AddItemToArray(h, cJSON_CreateNumber((double)cfg->hidden[i]));
    cJSON_AddItemToObject(o, "hidden", h);
    cJSON_AddItemToObject(o, "activation", cJSON_CreateString(cfg->activation));
    cJSON_AddItemToObject(o, "dropout", cJSON_CreateNumber(cfg->dropout));
    cJSON_AddItemToObject(o, "batchnorm", cJSON_CreateBool(cfg->batchnorm));
    cJSON_AddItemToObject(o, "classes", cJSON_CreateNumber((double)cfg->classes));
    /* Only the image models have these: an MLP's record stays as it was. */
    if (model_is_image(cfg)) {
        cJSON_AddItemToObject(o, "width", cJSON_CreateNumber(model_width(cfg)));
        cJSON_AddItemToObject(o, "depth", cJSON_CreateNumber(model_depth(cfg)));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* The reason a record is refused, naming the field: static, as the CLI
 * reads one record at a time. */
static char json_why[160];

/* Field key of o as a count: a number, integral, in lo .. hi. A record is
 * read from a file that anyone may have edited: 1e30 must not reach an
 * int64 cast, nor 32.7 be cut to 32. */
bool model_json_count(const void *object, const char *key, int64_t lo, int64_t hi, int64_t *out,
                      const char **why) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)object, key);
    return model_json_count_item(v, key, lo, hi, out, why);
}

bool model_json_count_item(const void *item, const char *key, int64_t lo, int64_t hi, int64_t *out,
                           const char **why) {
    const cJSON *v = item;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        if (cJSON_IsNumber(v))
            snprintf(json_why, sizeof json_why, "field '%s' is %.17g, not an integer in %lld .. %lld", key, d,
                     (long long)lo, (long long)hi);
        else
            snprintf(json_why, sizeof json_why, "field '%s' is %s, not an integer", key, v ? "not a number" : "missing");
        *why = json_why;
        return false;
    }
    *out = (int64_t)d;
    return true;
}

static bool field_error(const char **why, const char *key, const char *what) {
    snprintf(json_why, sizeof json_why, "field '%s' %s", key, what);
    *why = json_why;
    return false;
}

/* The image models' width and depth. */
static bool image_from_json(const cJSON *o, model_cfg *cfg, const char **why) {
    int64_t width, depth;
    if (!model_json_count(o, "width", 1, MODEL_MAX_WIDTH, &width, why) ||
        !model_json_count(o, "depth", 1, MODEL_MAX_DEPTH, &depth, why))
        return false;
    cfg->width = (int)width;
    cfg->depth = (int)depth;
    return true;
}

/* A parsed record of mlp, cnn or resnet. */
static bool classifier_from_json(const cJSON *o, model_cfg *cfg, const char **why) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *hidden = cJSON_GetObjectItemCaseSensitive(o, "hidden");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    const cJSON *bn = cJSON_GetObjectItemCaseSensitive(o, "batchnorm");
    if (!cJSON_IsString(model) || (strcmp(model->valuestring, "mlp") != 0 && strcmp(model->valuestring, "cnn") != 0 &&
                                   strcmp(model->valuestring, "resnet") != 0))
        return field_error(why, "model", "is not mlp, cnn, resnet, gpt, lstm, gru or rnn");
    snprintf(cfg->model, sizeof cfg->model, "%s", model->valuestring);
    if (model_is_image(cfg) && !image_from_json(o, cfg, why)) return false;
    if (!cJSON_IsArray(hidden)) return field_error(why, "hidden", "is not an array");
    if (cJSON_GetArraySize(hidden) > MLP_MAX_HIDDEN) return field_error(why, "hidden", "has too many layers");
    const cJSON *e;
    cJSON_ArrayForEach(e, hidden) {
        if (!model_json_count_item(e, "hidden", 1, 1 << 24, &cfg->hidden[cfg->n_hidden], why)) return false;
        cfg->n_hidden++;
    }
    if (!cJSON_IsString(act) || !ct_activation_valid(act->valuestring) ||
        strlen(act->valuestring) >= sizeof cfg->activation)
        return field_error(why, "activation", "is not a known activation");
    snprintf(cfg->activation, sizeof cfg->activation, "%s", act->valuestring);
    if (!cJSON_IsNumber(drop) || !(drop->valuedouble >= 0 && drop->valuedouble < 1))
        return field_error(why, "dropout", "is not a number in [0, 1)");
    if (!cJSON_IsBool(bn)) return field_error(why, "batchnorm", "is not true or false");
    cfg->dropout = drop->valuedouble;
    cfg->batchnorm = cJSON_IsTrue(bn);
    return model_json_count(o, "classes", 1, 1 << 24, &cfg->classes, why);
}

bool model_from_json(const char *json, model_cfg *cfg, const char **why) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->init, sizeof cfg->init, "default");
    /* The whole string must be the one object: bytes after it mean the
     * record is not what was written. */
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(json, &end, true);
    bool ok = false;
    *why = "not one JSON object (or text follows it)";
    if (cJSON_IsObject(o)) {
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
        const char *k = cJSON_IsString(model) ? model->valuestring : "";
        if (strcmp(k, "gpt") == 0)
            ok = model_gpt_from_json(o, cfg, why);
        else if (strcmp(k, "lstm") == 0 || strcmp(k, "gru") == 0 || strcmp(k, "rnn") == 0)
            ok = model_rnn_from_json(o, k, cfg, why);
        else
            ok = classifier_from_json(o, cfg, why);
    }
    cJSON_Delete(o);
    return ok;
}
