/* Pruning's public pieces that hold no state: the names of its options,
 * their checks, the cubic schedule of Zhu & Gupta (2017), which
 * parameters are prunable, and the sparsity of a program's weights. The
 * masks themselves live in prune.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/prune.h"

static const char *const scope_names[] = {"layer", "global"};
static const char *const structure_names[] = {"unstructured", "neuron", "channel"};
static const char *const norm_names[] = {"l1", "l2"};

static ct_status parse_name(const char *text, const char *const *names, int n, const char *what, int *out) {
    for (int i = 0; text && i < n; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return CT_OK;
        }
    return ct_error(CT_ERR_NOT_FOUND, "unknown pruning %s '%s'", what, text ? text : "(null)");
}

const char *ct_prune_scope_name(ct_prune_scope s) { return (unsigned)s < 2 ? scope_names[s] : "?"; }
const char *ct_prune_structure_name(ct_prune_structure s) { return (unsigned)s < 3 ? structure_names[s] : "?"; }
const char *ct_prune_norm_name(ct_prune_norm n) { return (unsigned)n < 2 ? norm_names[n] : "?"; }

ct_status ct_prune_scope_parse(const char *text, ct_prune_scope *out) {
    int v = 0;
    ct_status st = parse_name(text, scope_names, 2, "scope", &v);
    if (st == CT_OK) *out = (ct_prune_scope)v;
    return st;
}
ct_status ct_prune_structure_parse(const char *text, ct_prune_structure *out) {
    int v = 0;
    ct_status st = parse_name(text, structure_names, 3, "structure", &v);
    if (st == CT_OK) *out = (ct_prune_structure)v;
    return st;
}
ct_status ct_prune_norm_parse(const char *text, ct_prune_norm *out) {
    int v = 0;
    ct_status st = parse_name(text, norm_names, 2, "norm", &v);
    if (st == CT_OK) *out = (ct_prune_norm)v;
    return st;
}

ct_status ct_prune_check(const ct_prune_opts *o) {
    if (!o) return ct_error(CT_ERR_INVALID_ARG, "prune: NULL options");
    if (!(o->sparsity >= 0 && o->sparsity < 1))
        return ct_error(CT_ERR_INVALID_ARG, "prune: sparsity %g is outside [0, 1)", o->sparsity);
    if (!(o->initial_sparsity >= 0 && o->initial_sparsity <= o->sparsity))
        return ct_error(CT_ERR_INVALID_ARG, "prune: initial sparsity %g is outside [0, %g] (the final sparsity)",
                        o->initial_sparsity, o->sparsity);
    if (o->start < 0 || o->end < 1 || o->every < 0)
        return ct_error(CT_ERR_INVALID_ARG, "prune: start %lld, end %lld, every %lld: start and every must be >= 0, "
                        "end >= 1", (long long)o->start, (long long)o->end, (long long)o->every);
    if (o->start > o->end)
        return ct_error(CT_ERR_INVALID_ARG, "prune: start step %lld is after end step %lld", (long long)o->start,
                        (long long)o->end);
    if ((unsigned)o->scope > CT_PRUNE_GLOBAL || (unsigned)o->structure > CT_PRUNE_CHANNEL ||
        (unsigned)o->norm > CT_PRUNE_L2)
        return ct_error(CT_ERR_INVALID_ARG, "prune: unknown scope (%d), structure (%d) or norm (%d)", (int)o->scope,
                        (int)o->structure, (int)o->norm);
    return CT_OK;
}

static int64_t every_of(const ct_prune_opts *o) { return o->every > 0 ? o->every : 100; }

double ct_prune_target(const ct_prune_opts *o, int64_t t) {
    if (t < o->start) return 0.0;
    if (t >= o->end) return o->sparsity;
    double f = 1.0 - (double)(t - o->start) / (double)(o->end - o->start);
    return o->sparsity + (o->initial_sparsity - o->sparsity) * f * f * f;
}

bool ct_prune_is_step(const ct_prune_opts *o, int64_t t) {
    if (t < o->start || t > o->end) return false;
    return t == o->end || (t - o->start) % every_of(o) == 0;
}

bool ct_prune_prunable(const ct_graph *g, ct_node param, ct_prune_structure s) {
    int nd = ct_node_shape(g, param).ndim;
    if (s == CT_PRUNE_CHANNEL) return nd == 4;
    if (s == CT_PRUNE_UNSTRUCTURED) return nd >= 2;
    if (nd != 2) return false;
    /* NEURON: not the last 2-d parameter, whose rows are the classes. */
    for (int i = ct_graph_num_params(g) - 1; i >= 0; i--) {
        ct_node p = ct_graph_param(g, i);
        if (ct_node_shape(g, p).ndim == 2) return p != param;
    }
    return false;
}

/* Zeros of one weight, read from the device. */
static ct_status count_zeros(const ct_graph *g, const ct_program *p, ct_node n, int64_t *zeros, int64_t *total) {
    int64_t numel = ct_shape_numel(ct_node_shape(g, n));
    ct_dtype dt = ct_node_dtype(g, n);
    size_t bytes = (size_t)numel * ct_dtype_size(dt);
    void *buf = malloc(bytes ? bytes : 1);
    if (!buf) return ct_error(CT_ERR_OOM, "out of memory");
    ct_status st = ct_program_get_param(p, ct_node_name(g, n), buf, bytes);
    int64_t z = 0;
    for (int64_t i = 0; st == CT_OK && i < numel; i++) {
        double v = dt == CT_F64 ? ((double *)buf)[i] : dt == CT_F32 ? ((float *)buf)[i] : 1.0;
        z += v == 0.0;
    }
    free(buf);
    *zeros = z;
    *total = numel;
    return st;
}

ct_status ct_weight_sparsity(const ct_graph *g, const ct_program *p, ct_sparsity *out, int cap, int *n,
                             double *overall) {
    if (!g || !p || (cap > 0 && !out)) return ct_error(CT_ERR_INVALID_ARG, "ct_weight_sparsity: NULL argument");
    int k = 0;
    int64_t zeros = 0, total = 0;
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node pn = ct_graph_param(g, i);
        if (ct_node_shape(g, pn).ndim < 2) continue;
        int64_t z = 0, tot = 0;
        ct_status st = count_zeros(g, p, pn, &z, &tot);
        if (st != CT_OK) return st;
        if (k < cap) out[k] = (ct_sparsity){ct_node_name(g, pn), z, tot};
        k++;
        zeros += z;
        total += tot;
    }
    if (n) *n = k;
    if (overall) *overall = total ? (double)zeros / (double)total : 0.0;
    return CT_OK;
}
