/* Compiling a graph into a program for one backend, and running it.
 *
 * Compilation picks the nodes the requested outputs (and gradients) need,
 * binds sources and parameter gradients to persistent buffers
 * (program_bind.c), plans every other value into one arena, sizes one
 * scratch area, and prepares each kernel's arguments, so that a run only
 * calls kernels. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/op_profile.h"
#include "core/planner.h"
#include "core/program_impl.h"

static ct_tview view_of(const ct_program *p, ct_node n) {
    const ct_nodeinfo *nd = &p->g->nodes[n];
    return (ct_tview){p->data[n], nd->dtype, nd->shape, ct_shape_numel(nd->shape)};
}

void ct_program_free(ct_program *p) {
    if (!p) return;
    const ct_backend *be = p->be;
    if (be) {
        be->free(p->arena);
        be->free(p->scratch);
        be->free(p->inputs);
        be->free(p->consts);
        if (p->owns_params) {
            be->free(p->params);
            be->free(p->grads);
            be->free(p->state);
        }
        if (p->private_bufs)
            for (int i = 0; i < p->n; i++) be->free(p->private_bufs[i]);
    }
    free(p->private_bufs);
    if (p->owns_params) {
        free(p->param_off);
        free(p->buf_off);
    }
    free(p->data);
    free(p->readable);
    free(p->kargs);
    free(p->attrs);
    free(p->exec);
    free(p->src);
    free(p->views);
    free(p->ready_at);
    free(p->ready_param);
    free(p);
}

static const ct_backend *backend_for(ct_device d) {
    if (ct_device_check(d) != CT_OK) return NULL;
    if (d.kind == CT_DEVICE_CPU) return ct_cpu_backend();
    return ct_cuda_backend(d.index);
}

/* Marks the nodes the roots depend on (creation order is topological). */
static void mark_live(const ct_graph *g, bool *live, int n) {
    for (int i = n - 1; i >= 0; i--)
        if (live[i])
            for (int j = 0; j < g->nodes[i].n_in; j++) live[g->nodes[i].in[j]] = true;
}

static bool is_source(ct_op op) {
    return ct_op_class_of(op) == CT_OPC_SOURCE;
}

/* For the gradient-ready hook: the last executed step that writes or reads
 * each parameter's gradient, as lists per step (a counting sort). */
static ct_status setup_grad_ready(ct_program *p, bool grads) {
    const ct_graph *g = p->g;
    int np = grads ? g->n_params : 0;
    p->ready_at = calloc((size_t)p->n_exec + 1, sizeof *p->ready_at);
    p->ready_param = malloc((size_t)(np ? np : 1) * sizeof *p->ready_param);
    int *when = malloc((size_t)(np ? np : 1) * sizeof *when);
    int *param_of = malloc((size_t)p->n * sizeof *param_of);
    ct_status st = CT_OK;
    if (!p->ready_at || !p->ready_param || !when || !param_of) {
        st = ct_error(CT_ERR_OOM, "ct_compile: out of memory");
        goto out;
    }
    for (int i = 0; i < p->n; i++) param_of[i] = -1;
    for (int i = 0; i < np; i++) {
        ct_node gn = g->grad_of[g->params[i]];
        when[i] = -1;
        if (gn != CT_NO_NODE) param_of[gn] = i;
    }
    for (int k = 0; k < p->n_exec; k++) {
        const ct_nodeinfo *nd = &g->nodes[p->src[k]];
        if (param_of[p->exec[k]] >= 0) when[param_of[p->exec[k]]] = k;
        for (int j = 0; j < nd->n_in; j++)
            if (param_of[nd->in[j]] >= 0) when[param_of[nd->in[j]]] = k;
    }
    for (int i = 0; i < np; i++)
        if (when[i] >= 0) p->ready_at[when[i] + 1]++;
    for (int k = 0; k < p->n_exec; k++) p->ready_at[k + 1] += p->ready_at[k];
    /* Filling moves each start to the next list's start; shifting by one
     * puts them back. */
    for (int i = 0; i < np; i++)
        if (when[i] >= 0) p->ready_param[p->ready_at[when[i]]++] = i;
    for (int k = p->n_exec; k > 0; k--) p->ready_at[k] = p->ready_at[k - 1];
    p->ready_at[0] = 0;
out:
    free(when);
    free(param_of);
    return st;
}

/* Compile-time arrays: which nodes the program computes, and the plan of
 * the values that go in the arena. */
typedef struct {
    bool *live, *root;     /* per node */
    ct_node *src;          /* per node: what it runs (ct_program_fuse) */
    ct_plan_buf *plan;     /* per planned value */
    int *plan_node;        /* per planned value: its node */
    int n_plan;
    int *pos;              /* per node: its plan entry, or -1 */
    size_t *off;           /* per node: its byte offset inside that entry (a view's) */
} compile_work;

/* What ct_compile checks before allocating anything. */
static bool compile_args_ok(const ct_graph *g, const ct_compile_opts *o) {
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "ct_compile: graph is NULL"), false;
    if (g->status != CT_OK)
        return ct_error(g->status, "ct_compile: the graph has an earlier error: %s", g->error), false;
    if (o->grads && !g->backward_done)
        return ct_error(CT_ERR_STATE, "ct_compile: grads requested but ct_graph_backward was not called"), false;
    if (o->n_outputs < 0 || (o->n_outputs > 0 && !o->outputs))
        return ct_error(CT_ERR_INVALID_ARG, "ct_compile: bad outputs list"), false;
    for (int i = 0; i < o->n_outputs; i++)
        if (!ct_graph_node(g, o->outputs[i]))
            return ct_error(CT_ERR_INVALID_ARG, "ct_compile: output %d is not a node (%d)", i,
                            (int)o->outputs[i]), false;
    return !o->share_params || ct_program_same_params(o->share_params->g, g);
}

/* The program's per-node arrays and the compile-time ones. */
static ct_status alloc_arrays(ct_program *p, int n, compile_work *w) {
    w->live = calloc((size_t)n, sizeof *w->live);
    w->root = calloc((size_t)n, sizeof *w->root);
    w->plan = malloc((size_t)n * sizeof *w->plan);
    w->plan_node = malloc((size_t)n * sizeof *w->plan_node);
    w->pos = malloc((size_t)n * sizeof *w->pos);
    w->off = calloc((size_t)n, sizeof *w->off);
    w->src = malloc((size_t)n * sizeof *w->src);
    if (p) {
        p->data = calloc((size_t)n, sizeof *p->data);
        p->readable = calloc((size_t)n, sizeof *p->readable);
        p->exec = malloc((size_t)n * sizeof *p->exec);
        p->src = malloc((size_t)n * sizeof *p->src);
        p->kargs = calloc((size_t)n, sizeof *p->kargs);
        p->attrs = calloc((size_t)n, sizeof *p->attrs);
    }
    if (!p || !w->live || !w->root || !w->plan || !w->plan_node || !w->pos || !w->off || !w->src || !p->data ||
        !p->readable || !p->exec || !p->src || !p->kargs || !p->attrs)
        return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    return CT_OK;
}

static void free_work(compile_work *w) {
    free(w->live);
    free(w->root);
    free(w->plan);
    free(w->plan_node);
    free(w->pos);
    free(w->off);
    free(w->src);
}

/* Roots: outputs and, for training, every source's gradient; live: the
 * roots and every node they depend on. */
static void find_live(const ct_graph *g, const ct_compile_opts *o, compile_work *w) {
    for (int i = 0; i < o->n_outputs; i++) w->root[o->outputs[i]] = true;
    if (o->grads)
        for (int i = 0; i < g->n_grad_of; i++)
            if (g->grad_of[i] != CT_NO_NODE) w->root[g->grad_of[i]] = true;
    memcpy(w->live, w->root, (size_t)g->n * sizeof *w->live);
    mark_live(g, w->live, g->n);
}

static ct_status check_kernels(const ct_program *p, const bool *live) {
    for (int i = 0; i < p->n; i++) {
        const ct_nodeinfo *nd = &p->g->nodes[i];
        if (live[i] && !is_source(nd->op) && !p->be->kernels[nd->op])
            return ct_error(CT_ERR_UNSUPPORTED, "ct_compile: the %s backend has no kernel for %s", p->be->name,
                            ct_op_name(nd->op));
    }
    return CT_OK;
}

/* Execution order: the live nodes that are not sources, in creation
 * order, each with the node it runs. */
static void list_exec(ct_program *p, const compile_work *w) {
    for (int i = 0; i < p->n; i++)
        if (w->live[i] && !is_source(p->g->nodes[i].op)) {
            p->src[p->n_exec] = w->src[i];
            p->exec[p->n_exec++] = i;
        }
}

/* Where nd's bytes already lie, as a view of one planned value: the byte
 * offset inside the entry *b, or -1 when they must be written anew.
 *  - a reshape: the same bytes in the same order as its input;
 *  - a slice whose window is one run of its input (every axis before the
 *    sliced one has extent 1, as in slicing q, k, v off a [3, ...] value);
 *  - a concatenation whose inputs lie side by side, in order, in one entry
 *    along an axis with nothing before it (the gradients of such slices).
 * A view's kernel finds its output where it would copy it and copies
 * nothing. Offsets stay multiples of ARENA_ALIGN, which vector loads and
 * GPU kernels expect. Sources keep their own buffers (an input may be
 * rebound later). */
static int64_t aliased_at(const ct_graph *g, const compile_work *w, const ct_nodeinfo *nd, int *b) {
    int first = nd->n_in > 0 ? w->pos[nd->in[0]] : -1;
    if (first < 0) return -1;
    *b = first;
    size_t at = w->off[nd->in[0]];
    if (nd->op == CT_OP_RESHAPE) return (int64_t)at;
    if (nd->op != CT_OP_SLICE && nd->op != CT_OP_CONCAT) return -1;
    const ct_shape *s = nd->op == CT_OP_SLICE ? &g->nodes[nd->in[0]].shape : &nd->shape;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < nd->attr.axis; d++) outer *= s->dim[d];
    for (int d = nd->attr.axis + 1; d < s->ndim; d++) inner *= s->dim[d];
    if (outer != 1) return -1;
    if (nd->op == CT_OP_SLICE) {
        at += (size_t)(nd->attr.start * inner) * ct_dtype_size(nd->dtype);
        return at % ARENA_ALIGN == 0 ? (int64_t)at : -1;
    }
    size_t next = at;
    for (int j = 0; j < nd->n_in; j++) {
        if (w->pos[nd->in[j]] != first || w->off[nd->in[j]] != next) return -1;
        next += node_bytes(&g->nodes[nd->in[j]]);
    }
    return (int64_t)at;
}

/* The values the arena holds (every executed node not bound to a buffer of
 * its own), each with the step that writes it and the last step that needs
 * it: a root is needed to the end, since it stays readable. */
static void plan_lifetimes(const ct_program *p, compile_work *w, bool alias) {
    const ct_graph *g = p->g;
    w->n_plan = 0;
    for (int i = 0; i < p->n; i++) w->pos[i] = -1; /* node -> its plan entry */
    for (int k = 0; k < p->n_exec; k++) {
        ct_node i = p->exec[k];
        if (p->data[i]) continue; /* a parameter gradient, bound by ct_program_bind_params */
        const ct_nodeinfo *nd = &g->nodes[i];
        /* A view shares its value's entry, whose lifetime then covers the
         * view's uses too. */
        int b;
        int64_t at = alias && p->src[k] == i ? aliased_at(g, w, nd, &b) : -1;
        if (at >= 0) {
            w->pos[i] = b, w->off[i] = (size_t)at;
            if (w->root[i]) w->plan[b].last = p->n_exec;
            continue;
        }
        w->plan_node[w->n_plan] = i;
        w->plan[w->n_plan] = (ct_plan_buf){node_bytes(nd), k, w->root[i] ? p->n_exec : k, 0};
        w->pos[i] = w->n_plan++;
    }
    for (int k = 0; k < p->n_exec; k++) {
        const ct_nodeinfo *nd = &g->nodes[p->src[k]];
        for (int j = 0; j < nd->n_in; j++) {
            int b = w->pos[nd->in[j]];
            if (b >= 0 && w->plan[b].last < k) w->plan[b].last = k;
        }
    }
}

/* opts.no_plan: a private buffer for every planned value instead of the
 * arena, and every node with a buffer readable. */
static ct_status place_private(ct_program *p, const compile_work *w) {
    const ct_backend *be = p->be;
    p->private_bufs = calloc((size_t)p->n, sizeof *p->private_bufs);
    if (!p->private_bufs) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    for (int b = 0; b < w->n_plan; b++) {
        ct_node i = w->plan_node[b];
        p->private_bufs[i] = be->alloc(w->plan[b].bytes ? w->plan[b].bytes : 1);
        if (!p->private_bufs[i])
            return ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes on %s: %s", w->plan[b].bytes,
                            be->name, ct_last_error());
        p->data[i] = p->private_bufs[i];
        p->arena_bytes += round_up(w->plan[b].bytes, ARENA_ALIGN);
    }
    for (int i = 0; i < p->n; i++)
        if (p->data[i]) p->readable[i] = true;
    return CT_OK;
}

/* The planned values in one arena, by lifetimes (planner.c). */
static ct_status place_in_arena(ct_program *p, compile_work *w) {
    size_t total = ct_plan_arena(w->plan, w->n_plan, ARENA_ALIGN);
    if (total == (size_t)-1) return ct_error(CT_ERR_OOM, "ct_compile: out of memory while planning");
    p->arena_bytes = total;
    if (total && !(p->arena = p->be->alloc(total)))
        return ct_error(CT_ERR_OOM, "ct_compile: cannot allocate a %zu-byte activation arena on %s: %s", total,
                        p->be->name, ct_last_error());
    for (int k = 0; k < p->n_exec; k++) { /* every planned node, aliased reshapes included */
        ct_node i = p->exec[k];
        int b = w->pos[i];
        if (b < 0 || p->data[i]) continue;
        p->data[i] = (char *)p->arena + w->plan[b].offset + w->off[i];
        if (w->root[i]) p->readable[i] = true;
    }
    return CT_OK;
}

/* The scratch bytes ka's kernel needs, asked with no data pointers, as the
 * interface promises. */
static ct_status scratch_for(const ct_backend *be, const ct_kargs *ka, size_t *bytes) {
    ct_kargs probe = *ka;
    ct_tview *tmp = malloc((size_t)(ka->n_in ? ka->n_in : 1) * sizeof *tmp);
    if (!tmp) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    for (int j = 0; j < ka->n_in; j++) {
        tmp[j] = ka->in[j];
        tmp[j].data = NULL;
    }
    probe.in = tmp;
    probe.out.data = NULL;
    *bytes = be->scratch_bytes(&probe);
    free(tmp);
    return CT_OK;
}

/* Kernel arguments, and one scratch area for the hungriest kernel. */
static ct_status prepare_kargs(ct_program *p) {
    const ct_graph *g = p->g;
    const ct_backend *be = p->be;
    int n_views = 0;
    for (int k = 0; k < p->n_exec; k++) n_views += g->nodes[p->src[k]].n_in;
    p->views = malloc((size_t)(n_views ? n_views : 1) * sizeof *p->views);
    if (!p->views) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    size_t scratch = 0;
    for (int k = 0, v = 0; k < p->n_exec; k++) {
        ct_node i = p->exec[k];
        const ct_nodeinfo *nd = &g->nodes[p->src[k]];
        ct_kargs *ka = &p->kargs[k];
        ka->op = nd->op;
        p->attrs[k] = nd->attr;
        /* fused: a relu, or a cast whose half output the producer writes */
        bool cast = g->nodes[i].op == CT_OP_CAST;
        p->attrs[k].fused_relu = p->src[k] != i && !cast;
        p->attrs[k].fused_cast = p->src[k] != i && cast;
        ka->attr = &p->attrs[k];
        ka->n_in = nd->n_in;
        ka->in = &p->views[v];
        for (int j = 0; j < nd->n_in; j++) p->views[v++] = view_of(p, nd->in[j]);
        ka->out = view_of(p, i);
        ka->seed = g->seed;
        if (be->scratch_bytes) {
            size_t s = 0;
            ct_status st = scratch_for(be, ka, &s);
            if (st != CT_OK) return st;
            if (s > scratch) scratch = s;
        }
    }
    if (scratch && !(p->scratch = be->alloc(scratch)))
        return ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes of scratch on %s: %s", scratch, be->name,
                        ct_last_error());
    for (int k = 0; k < p->n_exec; k++) p->kargs[k].scratch = scratch ? p->scratch : NULL;
    p->scratch_bytes = scratch;
    return CT_OK;
}

/* The steps of ct_compile after allocation, in order; each needs the ones
 * before it (the arena plan, for one, skips what binding gave a buffer). */
static ct_status compile_steps(ct_program *p, const ct_compile_opts *o, compile_work *w) {
    ct_status st;
    find_live(p->g, o, w);
    if ((st = check_kernels(p, w->live)) != CT_OK) return st;
    if ((st = ct_program_fuse(p, w->live, w->root, !o->no_plan, w->src)) != CT_OK) return st;
    if ((st = ct_program_bind_params(p, o->share_params, o->grads)) != CT_OK) return st;
    if ((st = ct_program_bind_inputs(p, w->live)) != CT_OK) return st;
    list_exec(p, w);
    p->grads_on = o->grads;
    if ((st = setup_grad_ready(p, o->grads)) != CT_OK) return st;
    plan_lifetimes(p, w, !o->no_plan);
    st = o->no_plan ? place_private(p, w) : place_in_arena(p, w);
    if (st != CT_OK) return st;
    return prepare_kargs(p);
}

ct_program *ct_compile(ct_graph *g, const ct_compile_opts *opts) {
    ct_compile_opts o = opts ? *opts : (ct_compile_opts){0};
    if (!compile_args_ok(g, &o)) return NULL;
    const ct_backend *be = backend_for(o.device);
    if (!be) return NULL;

    compile_work w = {0};
    ct_program *p = calloc(1, sizeof *p);
    ct_status st = alloc_arrays(p, g->n, &w);
    if (st == CT_OK) {
        p->g = g;
        p->be = be;
        p->device = o.device;
        p->n = g->n;
        p->training = true;
        st = compile_steps(p, &o, &w);
    }
    free_work(&w);
    if (st != CT_OK) {
        ct_program_free(p);
        return NULL;
    }
    return p;
}

ct_status ct_program_set_input_node(ct_program *p, ct_node input, const void *data, size_t bytes) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "ct_program_set_input: program is NULL");
    const ct_nodeinfo *nd = ct_graph_node(p->g, input);
    if (!nd || input >= p->n || nd->op != CT_OP_INPUT)
        return ct_error(CT_ERR_INVALID_ARG, "ct_program_set_input: node %d is not an input", (int)input);
    if (!data) return ct_error(CT_ERR_INVALID_ARG, "ct_program_set_input: '%s': data is NULL", nd->name);
    if (bytes != node_bytes(nd)) {
        char s[96];
        return ct_error(CT_ERR_SHAPE, "ct_program_set_input: '%s' is %s %s (%zu bytes), got %zu bytes", nd->name,
                        ct_dtype_name(nd->dtype), ct_shape_str(nd->shape, s, sizeof s), node_bytes(nd), bytes);
    }
    return p->be->upload(p->data[input], data, bytes);
}

ct_status ct_program_set_input(ct_program *p, const char *name, const void *data, size_t bytes) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "ct_program_set_input: program is NULL");
    ct_node n = ct_find(p->g, name);
    if (n == CT_NO_NODE || p->g->nodes[n].op != CT_OP_INPUT)
        return ct_error(CT_ERR_NOT_FOUND, "ct_program_set_input: no input named '%s'", name ? name : "(null)");
    return ct_program_set_input_node(p, n, data, bytes);
}

/* One kernel between two syncs of its backend, its time added to the op
 * profile. */
static ct_status run_timed(const ct_backend *be, ct_kargs *ka) {
    ct_status st = be->sync();
    double t0 = ct_op_profile_now();
    if (st == CT_OK) st = be->kernels[ka->op](ka);
    if (st == CT_OK) st = be->sync();
    ct_op_profile_add(ka->op, ka->attr, ct_op_profile_now() - t0);
    return st;
}

ct_status ct_program_run(ct_program *p) { return ct_program_run_dev(p, NULL); }

ct_status ct_program_run_dev(ct_program *p, const uint32_t *step_dev) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "ct_program_run: program is NULL");
    /* For this run only: a later plain run uses the host's counter. */
    void (*step_source)(const uint32_t *) = step_dev ? p->be->set_step_source : NULL;
    if (step_source) step_source(step_dev);
    for (int k = 0; k < p->n_exec; k++) {
        ct_kargs *ka = &p->kargs[k];
        ka->step = p->step;
        ka->training = p->training;
        ct_status st = ct_op_profile_enabled() ? run_timed(p->be, ka) : p->be->kernels[ka->op](ka);
        if (st != CT_OK) {
            if (step_source) step_source(NULL);
            const ct_nodeinfo *nd = &p->g->nodes[p->exec[k]];
            return ct_error(st, "running %s%s (node %d%s%s): %s", ct_op_name(ka->op),
                            ka->attr->fused_relu   ? " with its relu"
                            : ka->attr->fused_cast ? " with its cast"
                                                   : "",
                            (int)p->exec[k], nd->name ? ", " : "",
                            nd->name ? nd->name : "", ct_last_error());
        }
        if (p->hook)
            for (int r = p->ready_at[k]; r < p->ready_at[k + 1]; r++) p->hook(p->hook_user, p->ready_param[r]);
    }
    if (step_source) step_source(NULL);
    p->step++;
    return CT_OK;
}

ct_status ct_program_read(const ct_program *p, ct_node n, void *dst, size_t bytes) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "ct_program_read: program is NULL");
    const ct_nodeinfo *nd = ct_graph_node(p->g, n);
    if (!nd || n >= p->n)
        return ct_error(CT_ERR_INVALID_ARG, "ct_program_read: node %d is not in this program", (int)n);
    if (!p->readable[n])
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_program_read: node %d (%s) is not kept; list it in ct_compile_opts.outputs", (int)n,
                        ct_op_name(nd->op));
    if (!dst || bytes != node_bytes(nd))
        return ct_error(CT_ERR_SHAPE, "ct_program_read: node %d holds %zu bytes, asked for %zu", (int)n,
                        node_bytes(nd), bytes);
    return p->be->download(dst, p->data[n], bytes);
}

void ct_program_set_training(ct_program *p, bool training) {
    if (!p) return;
    if (p->training != training) p->generation++; /* baked into captured kernels */
    p->training = training;
}
uint32_t ct_program_step(const ct_program *p) { return p ? p->step : 0; }
void ct_program_set_step(ct_program *p, uint32_t step) {
    if (p) p->step = step;
}
size_t ct_program_arena_bytes(const ct_program *p) { return p ? p->arena_bytes : 0; }

ct_status ct_program_memory(const ct_program *p, ct_program_mem *out) {
    if (!p || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_program_memory: %s is NULL", p ? "out" : "program");
    *out = (ct_program_mem){.arena = p->arena_bytes,
                            .scratch = p->scratch_bytes,
                            .inputs = p->inputs_bytes + p->consts_bytes};
    /* Shared parameters are counted once, by the program that owns them. */
    if (p->owns_params) {
        out->params = p->param_numel * ct_dtype_size(p->param_dtype);
        out->grads = out->params;
        out->buffers = p->state_numel * ct_dtype_size(p->state_dtype);
    }
    out->total = out->arena + out->scratch + out->inputs + out->params + out->grads + out->buffers;
    return CT_OK;
}
ct_device ct_program_device(const ct_program *p) { return p ? p->device : (ct_device){0}; }
ct_dtype ct_program_param_dtype(const ct_program *p) { return p ? p->param_dtype : CT_F32; }
size_t ct_program_param_numel(const ct_program *p) { return p ? p->param_numel : 0; }
void *ct_program_params(ct_program *p) { return p ? p->params : NULL; }
void *ct_program_grads(ct_program *p) { return p ? p->grads : NULL; }

size_t ct_program_param_offset(const ct_program *p, ct_node param) {
    const ct_nodeinfo *nd = p ? ct_graph_node(p->g, param) : NULL;
    if (!nd || nd->op != CT_OP_PARAM) {
        ct_error(CT_ERR_INVALID_ARG, "ct_program_param_offset: node %d is not a parameter", (int)param);
        return (size_t)-1;
    }
    return p->param_off[nd->param_index];
}

/* Parameters and buffers by name: both are named state users save and load. */
static const ct_nodeinfo *named_param(const ct_program *p, const char *name, const char *fn) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "%s: program is NULL", fn), NULL;
    ct_node n = ct_find(p->g, name);
    if (n == CT_NO_NODE || (p->g->nodes[n].op != CT_OP_PARAM && p->g->nodes[n].op != CT_OP_BUFFER))
        return ct_error(CT_ERR_NOT_FOUND, "%s: no parameter or buffer named '%s'", fn, name ? name : "(null)"),
               NULL;
    return &p->g->nodes[n];
}

static void *named_data(const ct_program *p, const ct_nodeinfo *nd) {
    if (nd->op == CT_OP_BUFFER)
        return (char *)p->state + p->buf_off[nd->param_index] * ct_dtype_size(nd->dtype);
    return (char *)p->params + p->param_off[nd->param_index] * ct_dtype_size(nd->dtype);
}

ct_status ct_program_get_param(const ct_program *p, const char *name, void *dst, size_t bytes) {
    const ct_nodeinfo *nd = named_param(p, name, "ct_program_get_param");
    if (!nd) return ct_last_status();
    if (!dst || bytes != node_bytes(nd))
        return ct_error(CT_ERR_SHAPE, "ct_program_get_param: '%s' holds %zu bytes, asked for %zu", name,
                        node_bytes(nd), bytes);
    return p->be->download(dst, named_data(p, nd), bytes);
}

ct_status ct_program_set_param(ct_program *p, const char *name, const void *src, size_t bytes) {
    const ct_nodeinfo *nd = named_param(p, name, "ct_program_set_param");
    if (!nd) return ct_last_status();
    if (!src || bytes != node_bytes(nd))
        return ct_error(CT_ERR_SHAPE, "ct_program_set_param: '%s' holds %zu bytes, got %zu", name,
                        node_bytes(nd), bytes);
    return p->be->upload(named_data(p, nd), src, bytes);
}

static ct_status flat_check(const ct_program *p, const void *buf, size_t bytes, const char *fn) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "%s: program is NULL", fn);
    size_t want = p->param_numel * ct_dtype_size(p->param_dtype);
    if (!buf || bytes != want)
        return ct_error(CT_ERR_SHAPE, "%s: the flat buffer holds %zu bytes, got %zu", fn, want, bytes);
    return CT_OK;
}

ct_status ct_program_read_params(const ct_program *p, void *dst, size_t bytes) {
    ct_status st = flat_check(p, dst, bytes, "ct_program_read_params");
    return st != CT_OK || bytes == 0 ? st : p->be->download(dst, p->params, bytes);
}

ct_status ct_program_write_params(ct_program *p, const void *src, size_t bytes) {
    ct_status st = flat_check(p, src, bytes, "ct_program_write_params");
    return st != CT_OK || bytes == 0 ? st : p->be->upload(p->params, src, bytes);
}

ct_status ct_program_read_grads(const ct_program *p, void *dst, size_t bytes) {
    ct_status st = flat_check(p, dst, bytes, "ct_program_read_grads");
    return st != CT_OK || bytes == 0 ? st : p->be->download(dst, p->grads, bytes);
}

const ct_backend *ct_program_backend(const ct_program *p) { return p ? p->be : NULL; }

ct_dtype ct_program_buffer_dtype(const ct_program *p) { return p ? p->state_dtype : CT_F32; }
size_t ct_program_buffer_numel(const ct_program *p) { return p ? p->state_numel : 0; }
void *ct_program_buffers(ct_program *p) { return p ? p->state : NULL; }

ct_status ct_program_bind_input(ct_program *p, const char *name, void *device_ptr, size_t bytes) {
    if (!p || !name || !device_ptr)
        return ct_error(CT_ERR_INVALID_ARG, "ct_program_bind_input: NULL program, name or pointer");
    ct_node n = ct_find(p->g, name);
    if (n == CT_NO_NODE || n >= p->n || p->g->nodes[n].op != CT_OP_INPUT)
        return ct_error(CT_ERR_NOT_FOUND, "ct_program_bind_input: the program has no input named '%s'", name);
    if (bytes != node_bytes(&p->g->nodes[n]))
        return ct_error(CT_ERR_SHAPE, "ct_program_bind_input: '%s' holds %zu bytes, the memory bound %zu", name,
                        node_bytes(&p->g->nodes[n]), bytes);
    p->data[n] = device_ptr;
    p->generation++;
    /* The kernels' argument views were filled at compile time. */
    for (int k = 0; k < p->n_exec; k++) {
        const ct_nodeinfo *nd = &p->g->nodes[p->exec[k]];
        for (int j = 0; j < nd->n_in; j++)
            if (nd->in[j] == n) ((ct_tview *)p->kargs[k].in)[j].data = device_ptr;
    }
    return CT_OK;
}

void ct_program_set_grad_hook(ct_program *p, ct_grad_ready_fn fn, void *user) {
    if (!p) return;
    p->hook = fn;
    p->hook_user = user;
}

bool ct_program_computes_grad(const ct_program *p, int param) {
    if (!p || !p->grads_on || param < 0 || param >= p->g->n_params) return false;
    return p->g->grad_of[p->g->params[param]] != CT_NO_NODE;
}

uint64_t ct_program_generation(const ct_program *p) { return p ? p->generation : 0; }

bool ct_program_has_grad_hook(const ct_program *p) { return p && p->hook; }

const void *ct_program_node_data(const ct_program *p, ct_node n, ct_dtype *dtype, int64_t *numel) {
    if (!p || n < 0 || n >= p->n || !p->readable[n]) return NULL;
    if (dtype) *dtype = p->g->nodes[n].dtype;
    if (numel) *numel = ct_shape_numel(p->g->nodes[n].shape);
    return p->data[n];
}
