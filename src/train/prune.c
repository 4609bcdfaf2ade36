/* The trainer's pruning masks (ctrain/prune.h, docs/compression.md).
 *
 * One mask byte per element of the flat parameter buffer, kept on the host
 * (where masks are computed, every `every` steps) and on the device (where
 * the backend's mask_apply zeroes the parameters and the optimizer state
 * after every update). Gaps and unpruned parameters have mask 1. Units are
 * elements (unstructured) or rows along the first axis (neurons, conv
 * output channels); a unit is dead when its first element's mask is 0, and
 * the k smallest live units by magnitude (|w|, or the row's L1/L2 norm)
 * die, ties in index order, so the count is exact and the outcome does not
 * depend on the sort. Dead units sort first (key -1): they stay dead.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/program_internal.h"
#include "train/compress_internal.h"

typedef struct prune_tensor {
    ct_node node;
    size_t off;           /* in the flat buffer, elements */
    int64_t units, unit_len;
} prune_tensor;

struct ct_pruner {
    ct_prune_opts o;      /* end resolved */
    const ct_backend *be;
    ct_dtype dtype;
    size_t n;             /* flat elements */
    uint8_t *mask, *mask_dev, *staged;
    void *host;           /* the flat parameters, on a pruning step */
    prune_tensor *pt;
    int n_pt;
    int64_t total_units;
    double *keys, *sorted;
};

static ct_pruner *pruner_new(ct_trainer *t, const ct_prune_opts *o) {
    ct_pruner *pr = calloc(1, sizeof *pr);
    if (!pr) return NULL;
    pr->o = *o;
    pr->be = ct_program_backend(t->tr.p);
    pr->dtype = ct_program_param_dtype(t->tr.p);
    pr->n = ct_program_param_numel(t->tr.p);
    ct_graph *g = t->tr.g;
    pr->pt = calloc((size_t)ct_graph_num_params(g) + 1, sizeof *pr->pt);
    pr->mask = malloc(pr->n + 1);
    pr->staged = malloc(pr->n + 1);
    pr->host = malloc(pr->n * ct_dtype_size(pr->dtype) + 1);
    if (!pr->pt || !pr->mask || !pr->staged || !pr->host) return pr;
    memset(pr->mask, 1, pr->n);
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node pn = ct_graph_param(g, i);
        if (!ct_prune_prunable(g, pn, o->structure)) continue;
        ct_shape s = ct_node_shape(g, pn);
        int64_t numel = ct_shape_numel(s);
        int64_t units = o->structure == CT_PRUNE_UNSTRUCTURED ? numel : s.dim[0];
        pr->pt[pr->n_pt++] = (prune_tensor){pn, ct_program_param_offset(t->tr.p, pn), units, numel / units};
        pr->total_units += units;
    }
    pr->keys = malloc((size_t)pr->total_units * sizeof(double) + 1);
    pr->sorted = malloc((size_t)pr->total_units * sizeof(double) + 1);
    return pr;
}

static void pruner_free(ct_pruner *pr) {
    if (!pr) return;
    if (pr->be && pr->mask_dev) pr->be->free(pr->mask_dev);
    free(pr->mask);
    free(pr->staged);
    free(pr->host);
    free(pr->pt);
    free(pr->keys);
    free(pr->sorted);
    free(pr);
}

void ct_train_prune_free(ct_trainer *t) {
    pruner_free(t->pruner);
    t->pruner = NULL;
}

/* Why a model has nothing to prune, in the structure's words. */
static ct_status nothing_to_prune(ct_prune_structure s) {
    const char *what = s == CT_PRUNE_CHANNEL ? "no convolution weight (4-d parameter)"
                       : s == CT_PRUNE_NEURON ? "no hidden layer (a 2-d weight before the last one)"
                                              : "no weight (parameter of two or more dimensions)";
    return ct_error(CT_ERR_INVALID_ARG, "prune: the model has nothing to prune: %s %s", what,
                    "for the structure to remove");
}

ct_status ct_train_prune_setup(ct_trainer *t) {
    if (!t->o.prune) return CT_OK;
    if (t->lm) return ct_error(CT_ERR_INVALID_ARG, "prune: not implemented for language models");
    ct_prune_opts o = *t->o.prune;
    if (o.end == 0) o.end = t->total_steps > 0 ? t->total_steps : 1;
    ct_status st = ct_prune_check(&o);
    if (st != CT_OK) return st;
    ct_pruner *pr = pruner_new(t, &o);
    if (!pr || !pr->keys || !pr->sorted || !pr->host) {
        pruner_free(pr);
        return ct_error(CT_ERR_OOM, "prune: out of memory for the masks");
    }
    if (pr->n_pt == 0) {
        pruner_free(pr);
        return nothing_to_prune(o.structure);
    }
    if (!pr->be->mask_apply) {
        st = ct_error(CT_ERR_UNSUPPORTED, "prune: the %s backend has no mask_apply", pr->be->name);
        pruner_free(pr);
        return st;
    }
    if (!(pr->mask_dev = pr->be->alloc(pr->n + 1)) || (st = pr->be->upload(pr->mask_dev, pr->mask, pr->n)) != CT_OK) {
        st = ct_last_status() != CT_OK ? ct_last_status() : CT_ERR_OOM;
        pruner_free(pr);
        return ct_error(st, "prune: the device mask: %s", ct_last_error());
    }
    t->pruner = pr;
    return CT_OK;
}

/* ---------------------------------------------------------------- masks */

static double elem(const ct_pruner *pr, size_t i) {
    return pr->dtype == CT_F64 ? ((const double *)pr->host)[i] : (double)((const float *)pr->host)[i];
}

/* Unit u of tensor p: -1 when dead, else |w| or the norm of its row. */
static double unit_key(const ct_pruner *pr, const prune_tensor *p, int64_t u) {
    size_t at = p->off + (size_t)(u * p->unit_len);
    if (!pr->mask[at]) return -1.0;
    double acc = 0;
    for (int64_t j = 0; j < p->unit_len; j++) {
        double v = elem(pr, at + (size_t)j);
        acc += pr->o.norm == CT_PRUNE_L2 && p->unit_len > 1 ? v * v : fabs(v);
    }
    return pr->o.norm == CT_PRUNE_L2 && p->unit_len > 1 ? sqrt(acc) : acc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* dead[i] = 1 for the k smallest of key[0..n), ties in index order. */
static void select_smallest(const double *key, double *sorted, int64_t n, int64_t k, uint8_t *dead) {
    memset(dead, 0, (size_t)n);
    if (k <= 0) return;
    if (k > n) k = n;
    memcpy(sorted, key, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    double thr = sorted[k - 1];
    int64_t below = 0;
    for (int64_t i = 0; i < n; i++) below += key[i] < thr;
    int64_t ties = k - below;
    for (int64_t i = 0; i < n; i++) {
        if (key[i] < thr) dead[i] = 1;
        else if (key[i] == thr && ties > 0) dead[i] = 1, ties--;
    }
}

/* Marks the dead units of tensor p (dead[u], its units) in the mask. */
static void kill_units(ct_pruner *pr, const prune_tensor *p, const uint8_t *dead) {
    for (int64_t u = 0; u < p->units; u++)
        if (dead[u]) memset(pr->mask + p->off + (size_t)(u * p->unit_len), 0, (size_t)p->unit_len);
}

/* The masks for sparsity s from the parameters in pr->host. */
static ct_status recompute(ct_pruner *pr, double s) {
    uint8_t *dead = malloc((size_t)pr->total_units + 1);
    if (!dead) return ct_error(CT_ERR_OOM, "prune: out of memory");
    int64_t at = 0;
    for (int i = 0; i < pr->n_pt; i++)
        for (int64_t u = 0; u < pr->pt[i].units; u++) pr->keys[at++] = unit_key(pr, &pr->pt[i], u);
    if (pr->o.scope == CT_PRUNE_GLOBAL) {
        select_smallest(pr->keys, pr->sorted, pr->total_units, (int64_t)floor(s * (double)pr->total_units), dead);
    } else {
        at = 0;
        for (int i = 0; i < pr->n_pt; i++) {
            int64_t n = pr->pt[i].units;
            select_smallest(pr->keys + at, pr->sorted, n, (int64_t)floor(s * (double)n), dead + at);
            at += n;
        }
    }
    at = 0;
    for (int i = 0; i < pr->n_pt; i++) {
        kill_units(pr, &pr->pt[i], dead + at);
        at += pr->pt[i].units;
    }
    free(dead);
    return CT_OK;
}

/* The device mask over the parameters and every optimizer state. */
static ct_status apply_masks(ct_trainer *t) {
    ct_pruner *pr = t->pruner;
    ct_status st = pr->be->mask_apply(ct_program_params(t->tr.p), pr->mask_dev, pr->dtype, pr->n);
    for (int k = 0; st == CT_OK && k < ct_optimizer_num_states(t->opt); k++) {
        void *ptr;
        size_t numel;
        if ((st = ct_optimizer_state(t->opt, k, NULL, &ptr, &numel)) == CT_OK && numel == pr->n && ptr)
            st = pr->be->mask_apply(ptr, pr->mask_dev, pr->dtype, pr->n);
    }
    return st;
}

ct_status ct_train_prune_after_step(ct_trainer *t) {
    ct_pruner *pr = t->pruner;
    if (!pr) return CT_OK;
    ct_status st;
    if (ct_prune_is_step(&pr->o, t->step)) {
        if ((st = ct_program_read_params(t->tr.p, pr->host, pr->n * ct_dtype_size(pr->dtype))) != CT_OK ||
            (st = recompute(pr, ct_prune_target(&pr->o, t->step))) != CT_OK ||
            (st = pr->be->upload(pr->mask_dev, pr->mask, pr->n)) != CT_OK)
            return ct_error(st, "pruning at step %lld: %s", (long long)t->step, ct_last_error());
    }
    st = apply_masks(t);
    return st == CT_OK ? CT_OK : ct_error(st, "masking at step %lld: %s", (long long)t->step, ct_last_error());
}

/* ---------------------------------------------------------------- checkpoints */

static void mask_name(const ct_trainer *t, const prune_tensor *p, char *buf, size_t cap) {
    snprintf(buf, cap, "prune.mask.%s", ct_node_name(t->tr.g, p->node));
}

ct_status ct_train_prune_save(ct_trainer *t, ct_st_writer *w) {
    ct_pruner *pr = t->pruner;
    char name[512];
    for (int i = 0; pr && i < pr->n_pt; i++) {
        mask_name(t, &pr->pt[i], name, sizeof name);
        ct_status st = ct_st_writer_add(w, name, CT_U8, ct_node_shape(t->tr.g, pr->pt[i].node), pr->mask + pr->pt[i].off);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

/* One mask from the file into pr->staged: U8 of the parameter's shape,
 * every byte 0 or 1. */
static ct_status stage_one(ct_trainer *t, const ct_st_file *f, const char *path, const prune_tensor *p, int i) {
    ct_pruner *pr = t->pruner;
    char name[512], a[96], b[96];
    mask_name(t, p, name, sizeof name);
    ct_dtype dt;
    ct_shape s, want = ct_node_shape(t->tr.g, p->node);
    ct_status st = ct_st_info(f, i, &dt, &s);
    if (st != CT_OK) return st;
    if (dt != CT_U8 || !ct_shape_equal(s, want))
        return ct_error(CT_ERR_SHAPE, "'%s': mask '%s' is %s %s; U8 %s expected", path, name, ct_st_dtype_name(f, i),
                        ct_shape_str(s, a, sizeof a), ct_shape_str(want, b, sizeof b));
    int64_t n = ct_shape_numel(s);
    uint8_t *dst = pr->staged + p->off;
    if ((st = ct_st_read(f, i, CT_U8, dst, (size_t)n)) != CT_OK) return ct_error(st, "'%s': %s", path, ct_last_error());
    for (int64_t j = 0; j < n; j++)
        if (dst[j] > 1)
            return ct_error(CT_ERR_FORMAT, "'%s': mask '%s' holds %d at element %lld; masks are 0 or 1", path, name,
                            (int)dst[j], (long long)j);
    return CT_OK;
}

ct_status ct_train_prune_stage(ct_trainer *t, const ct_st_file *f, const char *path) {
    ct_pruner *pr = t->pruner;
    if (!pr) return CT_OK;
    memset(pr->staged, 1, pr->n);
    char name[512];
    int found = 0;
    for (int i = 0; i < pr->n_pt; i++) {
        mask_name(t, &pr->pt[i], name, sizeof name);
        int k = ct_st_find(f, name);
        if (k < 0) continue;
        ct_status st = stage_one(t, f, path, &pr->pt[i], k);
        if (st != CT_OK) return st;
        found++;
    }
    /* None: a run from before pruning began. Some: a file cut short. */
    if (found > 0 && found < pr->n_pt) {
        for (int i = 0; i < pr->n_pt; i++) {
            mask_name(t, &pr->pt[i], name, sizeof name);
            if (ct_st_find(f, name) < 0) break;
        }
        return ct_error(CT_ERR_NOT_FOUND, "'%s' has masks of %d pruned parameters but not '%s'", path, found, name);
    }
    return CT_OK;
}

ct_status ct_train_prune_commit(ct_trainer *t) {
    ct_pruner *pr = t->pruner;
    if (!pr) return CT_OK;
    memcpy(pr->mask, pr->staged, pr->n);
    ct_status st = pr->be->upload(pr->mask_dev, pr->mask, pr->n);
    return st == CT_OK ? apply_masks(t) : st;
}
