/* The metrics fields of compression (docs/compression.md), added to every
 * line of the metrics file: with pruning the share of exact zeros over all
 * weights ("sparsity") and per weight ("sparsity_layers": name -> share),
 * read from the device; with distillation the epoch's mean KL and CE terms
 * so far ("distill_kl", "distill_ce"), whose sums restart after an epoch
 * line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/compress_internal.h"

static ct_status add_num(cJSON *o, const char *key, double v) {
    cJSON *item = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
    if (!item || !cJSON_AddItemToObject(o, key, item)) {
        cJSON_Delete(item);
        return ct_error(CT_ERR_OOM, "out of memory");
    }
    return CT_OK;
}

static ct_status add_sparsity(ct_trainer *t, cJSON *o) {
    int n = 0;
    double overall;
    ct_status st = ct_weight_sparsity(t->tr.g, t->tr.p, NULL, 0, &n, &overall);
    if (st != CT_OK) return st;
    ct_sparsity *sp = calloc((size_t)n + 1, sizeof *sp);
    cJSON *layers = cJSON_CreateObject();
    if (!sp || !layers) st = ct_error(CT_ERR_OOM, "out of memory");
    if (st == CT_OK) st = ct_weight_sparsity(t->tr.g, t->tr.p, sp, n, NULL, NULL);
    for (int i = 0; st == CT_OK && i < n; i++)
        st = add_num(layers, sp[i].name, sp[i].total ? (double)sp[i].zeros / (double)sp[i].total : 0.0);
    free(sp);
    if (st == CT_OK) st = add_num(o, "sparsity", overall);
    if (st == CT_OK && !cJSON_AddItemToObject(o, "sparsity_layers", layers)) st = ct_error(CT_ERR_OOM, "out of memory");
    else if (st == CT_OK) layers = NULL;
    cJSON_Delete(layers);
    return st;
}

ct_status ct_train_compress_metrics(ct_trainer *t, cJSON *o, const char *event) {
    ct_status st = CT_OK;
    if (t->pruner) st = add_sparsity(t, o);
    if (st == CT_OK && t->distill) {
        double kl, ce;
        ct_train_distill_means(t, &kl, &ce, strcmp(event, "epoch") == 0);
        if ((st = add_num(o, "distill_kl", kl)) == CT_OK) st = add_num(o, "distill_ce", ce);
    }
    return st;
}
