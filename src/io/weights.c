/* A program's parameters and buffers to and from safetensors files, by name.
 *
 * Only the public graph and program API is used, so this works for any
 * backend: parameters travel through host copies (ct_program_get_param /
 * ct_program_set_param). Loading is all-or-nothing: every check and every
 * conversion happens on host copies first, and should a device write still
 * fail half-way, the parameters already written are put back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/safetensors.h"
#include "io/st_param.h"

/* The named state of a model, as in PyTorch's state_dict: the parameters,
 * then the buffers (running statistics). */
static int state_count(const ct_graph *g) { return ct_graph_num_params(g) + ct_graph_num_buffers(g); }
static ct_node state_node(const ct_graph *g, int i) {
    int np = ct_graph_num_params(g);
    return i < np ? ct_graph_param(g, i) : ct_graph_buffer(g, i - np);
}

ct_status ct_save_weights(const ct_graph *g, const ct_program *p, const char *path) {
    if (!g || !p || !path) return ct_error(CT_ERR_INVALID_ARG, "ct_save_weights: graph, program or path is NULL");
    ct_st_writer *w = ct_st_writer_new();
    if (!w) return ct_last_status();
    ct_status st = CT_OK;
    int n = state_count(g);
    for (int i = 0; i < n && st == CT_OK; i++) {
        ct_node node = state_node(g, i);
        const char *name = ct_node_name(g, node);
        ct_shape shape = ct_node_shape(g, node);
        ct_dtype dt = ct_node_dtype(g, node);
        if (!name || shape.ndim < 0) {
            st = ct_error(CT_ERR_INTERNAL, "ct_save_weights: parameter %d has no name or shape", i);
            break;
        }
        size_t bytes = (size_t)ct_shape_numel(shape) * ct_dtype_size(dt);
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf) {
            st = ct_error(CT_ERR_OOM, "ct_save_weights: out of memory for '%.200s' (%zu bytes)", name, bytes);
            break;
        }
        st = ct_program_get_param(p, name, buf, bytes);
        if (st == CT_OK) st = ct_st_writer_add(w, name, dt, shape, buf);
        free(buf);
    }
    if (st == CT_OK) st = ct_st_writer_meta(w, "format", "ctrain");
    if (st == CT_OK) st = ct_st_writer_save(w, path);
    ct_st_writer_free(w);
    if (st != CT_OK) return ct_error(st, "ct_save_weights '%s': %s", path, ct_last_error());
    return CT_OK;
}

/* ------------------------------------------------------------ loading */

typedef struct pinfo {
    const char *name;
    ct_shape shape;
    ct_dtype dtype;
    size_t bytes;
    int tensor;   /* index in the file, -1 if none */
    void *staged; /* converted file data */
    void *backup; /* the program's value before the load */
} pinfo;

static int cmp_pinfo_name(const void *a, const void *b) {
    return strcmp((*(pinfo *const *)a)->name, (*(pinfo *const *)b)->name);
}

static pinfo *find_param(pinfo **sorted, int n, const char *name) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid]->name, name);
        if (c == 0) return sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* Appends a name to a list such as "'a', 'b' and 3 more", keeping the
 * message short enough to still show the path after it. */
typedef struct namelist {
    char text[480];
    size_t len;
    int shown, hidden;
} namelist;

static void namelist_add(namelist *l, const char *name) {
    if (l->shown < 8 && l->len + strlen(name) + 8 < sizeof l->text) {
        int w = snprintf(l->text + l->len, sizeof l->text - l->len, "%s'%s'", l->shown ? ", " : "", name);
        if (w > 0) l->len += (size_t)w;
        l->shown++;
    } else {
        l->hidden++;
    }
}

static int namelist_count(const namelist *l) { return l->shown + l->hidden; }

static const char *namelist_str(namelist *l) {
    if (l->hidden) {
        char tail[48];
        snprintf(tail, sizeof tail, " and %d more", l->hidden);
        size_t room = sizeof l->text - l->len;
        snprintf(l->text + l->len, room, "%s", tail);
        l->hidden = 0; /* printed once */
    }
    return l->text;
}

/* Every tensor of the file against the parameters: pi->tensor set for
 * each match; without non_strict, a parameter with no tensor or a tensor
 * with no parameter is an error naming them. */
static ct_status match_tensors(const char *path, const ct_load_opts *o, ct_st_file *f, pinfo *ps,
                               pinfo **sorted, int n) {
    size_t plen = o->strip_prefix ? strlen(o->strip_prefix) : 0;
    size_t slen = o->skip_prefix ? strlen(o->skip_prefix) : 0;
    namelist extra = {0}, missing = {0};
    for (int i = 0; i < ct_st_count(f); i++) {
        const char *fname = ct_st_name(f, i);
        const char *pname = fname;
        if (plen && strncmp(fname, o->strip_prefix, plen) == 0) pname = fname + plen;
        if (slen && strncmp(pname, o->skip_prefix, slen) == 0) continue;
        pinfo *pi = find_param(sorted, n, pname);
        if (!pi) {
            namelist_add(&extra, fname);
            continue;
        }
        if (pi->tensor >= 0)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_load_weights '%s': tensors '%.150s' and '%.150s' both match parameter '%.150s'",
                            path, ct_st_name(f, pi->tensor), fname, pi->name);
        pi->tensor = i;
    }
    for (int j = 0; j < n; j++)
        if (ps[j].tensor < 0 && !(slen && strncmp(ps[j].name, o->skip_prefix, slen) == 0))
            namelist_add(&missing, ps[j].name);
    /* require_all: the missing parameters are errors even when the extra
     * tensors are not. */
    bool extra_bad = !o->non_strict && namelist_count(&extra);
    if (((!o->non_strict || o->require_all) && namelist_count(&missing)) || extra_bad) {
        char miss[520] = "", ext[520] = "";
        if (namelist_count(&missing))
            snprintf(miss, sizeof miss, "%d parameter(s) not in the file: %s", namelist_count(&missing),
                     namelist_str(&missing));
        if (extra_bad)
            snprintf(ext, sizeof ext, "%s%d tensor(s) that are not parameters: %s",
                     namelist_count(&missing) ? "; " : "", namelist_count(&extra), namelist_str(&extra));
        return ct_error(CT_ERR_NOT_FOUND, "ct_load_weights '%s': %s%s", path, miss, ext);
    }
    return CT_OK;
}

/* Shapes and dtypes of the matched tensors, before anything is converted:
 * the checks every loader of weights shares (io/st_param.h). */
static ct_status check_tensors(const char *path, ct_st_file *f, const pinfo *ps, int n) {
    for (int j = 0; j < n; j++) {
        const pinfo *pi = &ps[j];
        if (pi->tensor < 0) continue;
        ct_status st = ct_st_check_param(f, pi->tensor, pi->name, pi->shape);
        if (st != CT_OK) return ct_error(st, "ct_load_weights '%s': %s", path, ct_last_error());
    }
    return CT_OK;
}

/* Host copies: the converted values, and the current ones to undo with. */
static ct_status stage_values(ct_program *p, const char *path, ct_st_file *f, pinfo *ps, int n) {
    for (int j = 0; j < n; j++) {
        pinfo *pi = &ps[j];
        if (pi->tensor < 0) continue;
        pi->staged = malloc(pi->bytes ? pi->bytes : 1);
        pi->backup = malloc(pi->bytes ? pi->bytes : 1);
        if (!pi->staged || !pi->backup)
            return ct_error(CT_ERR_OOM, "ct_load_weights '%s': out of memory for '%.150s' (%zu bytes)", path,
                            pi->name, pi->bytes);
        ct_status st = ct_st_read_param(f, pi->tensor, pi->name, pi->shape, pi->dtype, pi->staged, pi->bytes);
        if (st == CT_OK) st = ct_program_get_param(p, pi->name, pi->backup, pi->bytes);
        if (st != CT_OK) return ct_error(st, "ct_load_weights '%s': %s", path, ct_last_error());
    }
    return CT_OK;
}

/* The writes. A failure here is the device's, after every check passed;
 * undo what was written so the program is as it was. */
static ct_status write_values(ct_program *p, const char *path, const pinfo *ps, int n, int *n_loaded) {
    for (int j = 0; j < n; j++) {
        const pinfo *pi = &ps[j];
        if (pi->tensor < 0) continue;
        ct_status st = ct_program_set_param(p, pi->name, pi->staged, pi->bytes);
        if (st != CT_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", ct_last_error());
            bool restored = true;
            for (int k = 0; k < j; k++)
                if (ps[k].tensor >= 0 && ct_program_set_param(p, ps[k].name, ps[k].backup, ps[k].bytes) != CT_OK)
                    restored = false;
            return ct_error(st, "ct_load_weights '%s': %s%s", path, why,
                            restored ? "" : " (and restoring the parameters written before it failed too)");
        }
        (*n_loaded)++;
    }
    return CT_OK;
}

static ct_status load(ct_program *p, const char *path, const ct_load_opts *o, ct_st_file *f,
                      pinfo *ps, pinfo **sorted, int n, int *n_loaded) {
    ct_status st;
    /* An int8 model (ctrain quantize, docs/compression.md) holds no F32
     * weights: say so rather than list its tensors as strangers. */
    if (ct_st_meta(f, "quant.format"))
        return ct_error(CT_ERR_FORMAT,
                        "ct_load_weights '%s': an int8 model (metadata quant.format), for int8 evaluation only; it "
                        "holds no float weights to load",
                        path);
    if ((st = match_tensors(path, o, f, ps, sorted, n)) != CT_OK || (st = check_tensors(path, f, ps, n)) != CT_OK ||
        (st = stage_values(p, path, f, ps, n)) != CT_OK)
        return st;
    return write_values(p, path, ps, n, n_loaded);
}

ct_status ct_load_weights(const ct_graph *g, ct_program *p, const char *path, const ct_load_opts *opts) {
    ct_load_opts o = opts ? *opts : (ct_load_opts){0};
    if (o.loaded) *o.loaded = 0;
    if (!g || !p || !path) return ct_error(CT_ERR_INVALID_ARG, "ct_load_weights: graph, program or path is NULL");
    int n = state_count(g);
    pinfo *ps = calloc((size_t)n + 1, sizeof *ps);
    pinfo **sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    if (!ps || !sorted) {
        free(ps);
        free(sorted);
        return ct_error(CT_ERR_OOM, "ct_load_weights: out of memory");
    }
    ct_status st = CT_OK;
    for (int j = 0; j < n; j++) {
        ct_node node = state_node(g, j);
        ps[j].name = ct_node_name(g, node);
        ps[j].shape = ct_node_shape(g, node);
        ps[j].dtype = ct_node_dtype(g, node);
        ps[j].tensor = -1;
        if (!ps[j].name || ps[j].shape.ndim < 0 || !ct_dtype_is_float(ps[j].dtype)) {
            st = ct_error(CT_ERR_INTERNAL, "ct_load_weights: parameter %d has no name, shape or float dtype", j);
            break;
        }
        ps[j].bytes = (size_t)ct_shape_numel(ps[j].shape) * ct_dtype_size(ps[j].dtype);
        sorted[j] = &ps[j];
    }
    ct_st_file *f = NULL;
    if (st == CT_OK) {
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_pinfo_name);
        f = ct_st_open(path);
        if (!f) st = ct_last_status();
    }
    int n_loaded = 0;
    if (st == CT_OK) st = load(p, path, &o, f, ps, sorted, n, &n_loaded);
    if (st == CT_OK && o.loaded) *o.loaded = n_loaded;
    for (int j = 0; j < n; j++) {
        free(ps[j].staged);
        free(ps[j].backup);
    }
    ct_st_close(f);
    free(ps);
    free(sorted);
    return st;
}
