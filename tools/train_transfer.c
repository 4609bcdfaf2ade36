/* Transfer learning for `ctrain train`: --init-from (with --reset-head and
 * --strict) and --freeze, and the lines of the run's header that say what
 * was loaded, what was re-initialised and what is frozen.
 *
 * The head is the layer of the model's last parameter (the built-in
 * classifiers all end in one linear layer: "fc3." for the default MLP,
 * "fc." for resnet); --reset-head leaves it with the initialisation the
 * trainer gave it and ignores the file's tensors for it, so a model trained
 * on 10 classes can start a 5-class task.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_opts.h"

#define CMD "train"

/* The head's prefix ("fc3.") into buf: the last parameter's name up to
 * its last dot (the whole name if it has none). */
static const char *head_prefix(ct_graph *g, char *buf, size_t cap) {
    int n = ct_graph_num_params(g);
    const char *name = n ? ct_node_name(g, ct_graph_param(g, n - 1)) : NULL;
    if (!name) return NULL;
    const char *dot = strrchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) + 1 : strlen(name);
    if (len >= cap) len = cap - 1;
    memcpy(buf, name, len);
    buf[len] = 0;
    return buf;
}

/* The layers (names without their last ".part") of the parameters that
 * start with prefix (or, prefix NULL, are frozen), each once, into buf;
 * returns how many parameters. */
static int list_layers(ct_graph *g, const ct_optimizer *opt, const char *prefix, char *buf, size_t cap) {
    int count = 0;
    size_t used = 0;
    char last[128] = "";
    buf[0] = 0;
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        const char *name = ct_node_name(g, ct_graph_param(g, i));
        if (!name) continue;
        bool hit = prefix ? strncmp(name, prefix, strlen(prefix)) == 0 : ct_optimizer_is_frozen(opt, name);
        if (!hit) continue;
        count++;
        const char *dot = strrchr(name, '.');
        int len = dot ? (int)(dot - name) : (int)strlen(name);
        if ((int)strlen(last) == len && strncmp(last, name, (size_t)len) == 0) continue;
        snprintf(last, sizeof last, "%.*s", len, name);
        if (used + 2 < cap) used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", last);
    }
    return count;
}

/* --init-from, by name; with --reset-head the head is skipped. The summary
 * survives --quiet (on stderr then): a partial load is worth knowing about
 * whatever else is hidden. */
static bool init_from(ct_trainer *t, const train_cfg *c, FILE *out) {
    int loaded = 0;
    ct_graph *g = ct_trainer_graph(t);
    char head[128] = "";
    if (c->reset_head && !head_prefix(g, head, sizeof head)) {
        fprintf(stderr, "ctrain: %s: --reset-head: the model has no named parameter\n", CMD);
        return false;
    }
    ct_load_opts lo = {.non_strict = true, .require_all = c->strict, .loaded = &loaded,
                       .skip_prefix = c->reset_head ? head : NULL};
    ct_status st = ct_load_weights(g, ct_trainer_program(t), c->init_from, &lo);
    if (st == CT_ERR_SHAPE && !c->reset_head) {
        /* The usual cause: another class count. */
        fprintf(stderr, "ctrain: %s: --init-from: %s (--reset-head starts the last layer afresh)\n", CMD,
                ct_last_error());
        return false;
    }
    if (st != CT_OK) {
        cli_fail("train: --init-from");
        return false;
    }
    if (loaded == 0) {
        fprintf(stderr, "ctrain: %s: --init-from: '%s' holds no tensor named like a parameter of this model\n", CMD,
                c->init_from);
        return false;
    }
    int total = ct_graph_num_params(g) + ct_graph_num_buffers(g);
    if (out && c->reset_head) {
        char layers[256];
        int n = list_layers(g, NULL, head, layers, sizeof layers);
        fprintf(out, "initialised %d of %d tensors from %s; re-initialised the head %s (%d parameters)\n", loaded,
                total, c->init_from, layers, n);
    } else if (out) {
        fprintf(out, "initialised %d of %d tensors from %s%s\n", loaded, total, c->init_from,
                loaded < total ? " (the others keep their initial values; --strict refuses that)" : "");
    }
    return true;
}

/* --freeze: each prefix must name at least one parameter. */
static bool freeze(ct_trainer *t, const train_cfg *c, FILE *out) {
    ct_optimizer *opt = ct_trainer_optimizer(t);
    char *list = strdup(c->freeze);
    if (!list) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        return false;
    }
    bool ok = true;
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p && ok; p = strtok_r(NULL, ",", &save)) {
        if (ct_optimizer_freeze(opt, p, true) != CT_OK) {
            fprintf(stderr, "ctrain: %s: --freeze: no parameter's name starts with '%s'\n", CMD, p);
            ok = false;
        }
    }
    free(list);
    if (ok && out) {
        char layers[512];
        ct_graph *g = ct_trainer_graph(t);
        int n = list_layers(g, opt, NULL, layers, sizeof layers);
        fprintf(out, "frozen: %s (%d of %d parameters)\n", layers, n, ct_graph_num_params(g));
    }
    return ok;
}

bool train_transfer(ct_trainer *t, const train_cfg *c) {
    FILE *out = c->silent ? NULL : c->quiet ? stderr : stdout;
    if (c->init_from && !c->resume && !init_from(t, c, out)) return false;
    /* A resumed run freezes again what its options say (--freeze is
     * recorded in the checkpoint), without repeating the header line. */
    return !c->freeze || freeze(t, c, c->resume ? NULL : out);
}
