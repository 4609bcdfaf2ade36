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
    (void)training; /* dropout and batch norm follow the program's mode */
    const model_cfg *m = user;
    if (strcmp(m->model, "gpt") == 0) {
        ct_gpt_config c = model_gpt_config(m);
        return ct_gpt(g, &c, x);
    }
    if (strcmp(m->model, "cnn") == 0) return model_build_cnn(g, x, m);
    if (strcmp(m->model, "resnet") == 0) return model_build_resnet(g, x, m);
    ct_shape s = ct_node_shape(g, x);
    if (s.ndim < 1) return CT_NO_NODE;
    ct_node h = s.ndim == 2 ? x : ct_reshape(g, x, (ct_shape){2, {s.dim[0], -1}});
    ct_init rule;
    const ct_init *w_init = model_init_rule(m->init, &rule) ? &rule : NULL;
    char name[32];
    for (int i = 0; i < m->n_hidden; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        h = ct_linear(g, name, h, m->hidden[i], true, w_init);
        if (m->batchnorm) {
            snprintf(name, sizeof name, "bn%d", i + 1);
            h = ct_batch_norm(g, name, h, 0, 0);
        }
        h = ct_activation(g, h, m->activation);
        if (m->dropout > 0) h = ct_dropout(g, h, m->dropout);
    }
    snprintf(name, sizeof name, "fc%d", m->n_hidden + 1);
    return ct_linear(g, name, h, m->classes, true, w_init);
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
    if (o && strcmp(cfg->model, "gpt") == 0) {
        char *text = model_gpt_to_json(cfg, o) ? cJSON_PrintUnformatted(o) : NULL;
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

bool model_from_json(const char *json, model_cfg *cfg, const char **why) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->init, sizeof cfg->init, "default");
    cJSON *o = cJSON_Parse(json);
    bool ok = false;
    *why = "not a JSON object";
    if (!cJSON_IsObject(o)) goto out;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (cJSON_IsString(model) && strcmp(model->valuestring, "gpt") == 0) {
        ok = model_gpt_from_json(o, cfg, why);
        goto out;
    }
    const cJSON *hidden = cJSON_GetObjectItemCaseSensitive(o, "hidden");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    const cJSON *bn = cJSON_GetObjectItemCaseSensitive(o, "batchnorm");
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(o, "classes");
    *why = "a field is missing or has the wrong type";
    if (!cJSON_IsString(model) || !cJSON_IsArray(hidden) || !cJSON_IsString(act) || !cJSON_IsNumber(drop) ||
        !cJSON_IsBool(bn) || !cJSON_IsNumber(classes))
        goto out;
    *why = "unknown model";
    if (strcmp(model->valuestring, "mlp") != 0 && strcmp(model->valuestring, "cnn") != 0 &&
        strcmp(model->valuestring, "resnet") != 0)
        goto out;
    snprintf(cfg->model, sizeof cfg->model, "%s", model->valuestring);
    if (model_is_image(cfg)) {
        const cJSON *width = cJSON_GetObjectItemCaseSensitive(o, "width");
        const cJSON *depth = cJSON_GetObjectItemCaseSensitive(o, "depth");
        *why = "bad width or depth";
        if (!cJSON_IsNumber(width) || !cJSON_IsNumber(depth) || width->valuedouble < 1 ||
            width->valuedouble > MODEL_MAX_WIDTH || depth->valuedouble < 1 || depth->valuedouble > MODEL_MAX_DEPTH)
            goto out;
        cfg->width = (int)width->valuedouble;
        cfg->depth = (int)depth->valuedouble;
    }
    *why = "bad hidden sizes";
    const cJSON *e;
    cJSON_ArrayForEach(e, hidden) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > (1 << 24) || cfg->n_hidden == MLP_MAX_HIDDEN)
            goto out;
        cfg->hidden[cfg->n_hidden++] = (int64_t)e->valuedouble;
    }
    *why = "unknown activation";
    if (!ct_activation_valid(act->valuestring) || strlen(act->valuestring) >= sizeof cfg->activation) goto out;
    snprintf(cfg->activation, sizeof cfg->activation, "%s", act->valuestring);
    *why = "bad dropout or classes";
    if (!(drop->valuedouble >= 0 && drop->valuedouble < 1) || classes->valuedouble < 1) goto out;
    cfg->dropout = drop->valuedouble;
    cfg->batchnorm = cJSON_IsTrue(bn);
    cfg->classes = (int64_t)classes->valuedouble;
    ok = true;
out:
    cJSON_Delete(o);
    return ok;
}
