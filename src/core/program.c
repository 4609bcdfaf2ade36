/* Compiling a graph into a program for one backend, and running it.
 *
 * Compilation picks the nodes the requested outputs (and gradients) need,
 * binds sources and parameter gradients to persistent buffers, plans every
 * other value into one arena, sizes one scratch area, and prepares each
 * kernel's arguments, so that a run only calls kernels. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/error.h"
#include "core/planner.h"
#include "core/program_internal.h"
#include "ctrain/program.h"

#define ARENA_ALIGN 256   /* what GPU kernels and vector loads like */
#define PARAM_ALIGN 16    /* elements: 64 bytes of F32 */

struct ct_program {
    ct_graph *g;
    const ct_backend *be;
    ct_device device;
    int n;               /* graph nodes at compile time */
    void **data;         /* per node: its buffer on the device, or NULL */
    bool *readable;
    int n_exec;
    ct_kargs *kargs;     /* per executed node, in order */
    ct_attrs *attrs;     /* per executed node: a copy, since the graph's node
                            array moves when nodes are added after compiling */
    ct_node *exec;
    ct_tview *views;     /* input views of all kargs */
    void *arena, *scratch, *inputs, *consts;
    size_t arena_bytes;
    size_t scratch_bytes, inputs_bytes, consts_bytes; /* for ct_program_memory */
    void **private_bufs; /* no_plan: one buffer per node */
    void *params, *grads;
    size_t *param_off;   /* per parameter index, in elements */
    size_t param_numel;
    ct_dtype param_dtype;
    void *state;         /* buffers (running statistics), flat like the parameters */
    size_t *buf_off;     /* per buffer index, in elements */
    size_t state_numel;
    ct_dtype state_dtype;
    bool owns_params;
    uint32_t step;
    bool training;
    /* Gradient-ready hook (program_internal.h): after executed step k, the
     * parameters ready_param[ready_at[k] .. ready_at[k + 1]) have final
     * gradients that no later step reads. */
    int *ready_at, *ready_param;
    bool grads_on;       /* compiled with opts.grads */
    ct_grad_ready_fn hook;
    void *hook_user;
    uint64_t generation; /* bumped when the kernels' arguments change (program_internal.h) */
};

static size_t node_bytes(const ct_nodeinfo *nd) {
    return (size_t)ct_shape_numel(nd->shape) * ct_dtype_size(nd->dtype);
}

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

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

/* Parameters: one flat buffer, each at a PARAM_ALIGN-element offset, and a
 * gradient buffer of the same layout; both zeroed, then the weights drawn on
 * the host (identical on every backend) and uploaded. */
static ct_status setup_params(ct_program *p) {
    ct_graph *g = p->g;
    p->param_dtype = g->n_params ? g->nodes[g->params[0]].dtype : CT_F32;
    size_t es = ct_dtype_size(p->param_dtype);
    p->param_off = malloc((size_t)(g->n_params + 1) * sizeof *p->param_off);
    if (!p->param_off) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    size_t off = 0;
    for (int i = 0; i < g->n_params; i++) {
        p->param_off[i] = off;
        off = round_up(off + (size_t)ct_shape_numel(g->nodes[g->params[i]].shape), PARAM_ALIGN);
    }
    p->param_numel = off;
    p->owns_params = true;
    if (off == 0) return CT_OK;
    p->params = p->be->alloc(off * es);
    p->grads = p->be->alloc(off * es);
    if (!p->params || !p->grads)
        return ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes of parameters on %s: %s", 2 * off * es,
                        p->be->name, ct_last_error());
    unsigned char *host = calloc(off, es);
    if (!host) return ct_error(CT_ERR_OOM, "ct_compile: out of memory (%zu bytes)", off * es);
    ct_status st = CT_OK;
    for (int i = 0; i < g->n_params && st == CT_OK; i++) {
        const ct_nodeinfo *nd = &g->nodes[g->params[i]];
        st = ct_init_fill(&nd->init, nd->shape, nd->dtype, g->seed, (uint32_t)i, host + p->param_off[i] * es);
        if (st != CT_OK) ct_error(st, "ct_compile: initialising parameter '%s': %s", nd->name, ct_last_error());
    }
    if (st == CT_OK) st = p->be->upload(p->params, host, off * es);
    if (st == CT_OK) st = p->be->zero(p->grads, off * es);
    free(host);
    return st;
}

/* Buffers: one flat buffer laid out like the parameters, filled from
 * their init rules (Philox streams after the parameters' ones). */
static ct_status setup_buffers(ct_program *p) {
    ct_graph *g = p->g;
    p->state_dtype = g->n_buffers ? g->nodes[g->buffers[0]].dtype : CT_F32;
    size_t es = ct_dtype_size(p->state_dtype);
    p->buf_off = malloc((size_t)(g->n_buffers + 1) * sizeof *p->buf_off);
    if (!p->buf_off) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    size_t off = 0;
    for (int i = 0; i < g->n_buffers; i++) {
        p->buf_off[i] = off;
        off = round_up(off + (size_t)ct_shape_numel(g->nodes[g->buffers[i]].shape), PARAM_ALIGN);
    }
    p->state_numel = off;
    if (off == 0) return CT_OK;
    if (!(p->state = p->be->alloc(off * es)))
        return ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes of buffers on %s: %s", off * es, p->be->name,
                        ct_last_error());
    unsigned char *host = calloc(off, es);
    if (!host) return ct_error(CT_ERR_OOM, "ct_compile: out of memory (%zu bytes)", off * es);
    ct_status st = CT_OK;
    for (int i = 0; i < g->n_buffers && st == CT_OK; i++) {
        const ct_nodeinfo *nd = &g->nodes[g->buffers[i]];
        st = ct_init_fill(&nd->init, nd->shape, nd->dtype, g->seed, (uint32_t)(g->n_params + i),
                          host + p->buf_off[i] * es);
        if (st != CT_OK) ct_error(st, "ct_compile: initialising buffer '%s': %s", nd->name, ct_last_error());
    }
    if (st == CT_OK) st = p->be->upload(p->state, host, off * es);
    free(host);
    return st;
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

/* Programs may share parameters when their graphs declare the same ones
 * (names, shapes, dtype, order): a training graph and an evaluation graph
 * built for another batch size, say. */
static bool same_params(const ct_graph *a, const ct_graph *b) {
    if (a->n_params != b->n_params) {
        ct_error(CT_ERR_INVALID_ARG, "ct_compile: share_params has %d parameters, this graph %d", a->n_params,
                 b->n_params);
        return false;
    }
    for (int i = 0; i < a->n_params; i++) {
        const ct_nodeinfo *x = &a->nodes[a->params[i]], *y = &b->nodes[b->params[i]];
        if (strcmp(x->name, y->name) != 0 || x->dtype != y->dtype || !ct_shape_equal(x->shape, y->shape)) {
            ct_error(CT_ERR_INVALID_ARG, "ct_compile: share_params: parameter %d differs ('%s' vs '%s')", i,
                     x->name, y->name);
            return false;
        }
    }
    if (a->n_buffers != b->n_buffers) {
        ct_error(CT_ERR_INVALID_ARG, "ct_compile: share_params has %d buffers, this graph %d", a->n_buffers,
                 b->n_buffers);
        return false;
    }
    for (int i = 0; i < a->n_buffers; i++) {
        const ct_nodeinfo *x = &a->nodes[a->buffers[i]], *y = &b->nodes[b->buffers[i]];
        if (strcmp(x->name, y->name) != 0 || x->dtype != y->dtype || !ct_shape_equal(x->shape, y->shape)) {
            ct_error(CT_ERR_INVALID_ARG, "ct_compile: share_params: buffer %d differs ('%s' vs '%s')", i, x->name,
                     y->name);
            return false;
        }
    }
    return true;
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
        const ct_nodeinfo *nd = &g->nodes[p->exec[k]];
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

ct_program *ct_compile(ct_graph *g, const ct_compile_opts *opts) {
    ct_compile_opts o = opts ? *opts : (ct_compile_opts){0};
    if (!g) return ct_error(CT_ERR_INVALID_ARG, "ct_compile: graph is NULL"), NULL;
    if (g->status != CT_OK)
        return ct_error(g->status, "ct_compile: the graph has an earlier error: %s", g->error), NULL;
    if (o.grads && !g->backward_done)
        return ct_error(CT_ERR_STATE, "ct_compile: grads requested but ct_graph_backward was not called"), NULL;
    if (o.n_outputs < 0 || (o.n_outputs > 0 && !o.outputs))
        return ct_error(CT_ERR_INVALID_ARG, "ct_compile: bad outputs list"), NULL;
    for (int i = 0; i < o.n_outputs; i++)
        if (!ct_graph_node(g, o.outputs[i]))
            return ct_error(CT_ERR_INVALID_ARG, "ct_compile: output %d is not a node (%d)", i,
                            (int)o.outputs[i]), NULL;
    if (o.share_params && !same_params(o.share_params->g, g)) return NULL;
    const ct_backend *be = backend_for(o.device);
    if (!be) return NULL;

    ct_program *p = calloc(1, sizeof *p);
    int n = g->n;
    bool *live = calloc((size_t)n, sizeof *live);
    bool *root = calloc((size_t)n, sizeof *root);
    ct_plan_buf *plan = malloc((size_t)n * sizeof *plan);
    int *plan_node = malloc((size_t)n * sizeof *plan_node);
    int *pos = malloc((size_t)n * sizeof *pos);
    if (p) {
        p->data = calloc((size_t)n, sizeof *p->data);
        p->readable = calloc((size_t)n, sizeof *p->readable);
        p->exec = malloc((size_t)n * sizeof *p->exec);
        p->kargs = calloc((size_t)n, sizeof *p->kargs);
        p->attrs = calloc((size_t)n, sizeof *p->attrs);
    }
    ct_status st = CT_OK;
    if (!p || !live || !root || !plan || !plan_node || !pos || !p->data || !p->readable || !p->exec || !p->kargs ||
        !p->attrs) {
        st = ct_error(CT_ERR_OOM, "ct_compile: out of memory");
        goto done;
    }
    p->g = g;
    p->be = be;
    p->device = o.device;
    p->n = n;
    p->training = true;

    /* Roots: outputs and, for training, every source's gradient. */
    for (int i = 0; i < o.n_outputs; i++) root[o.outputs[i]] = true;
    if (o.grads)
        for (int i = 0; i < g->n_grad_of; i++)
            if (g->grad_of[i] != CT_NO_NODE) root[g->grad_of[i]] = true;
    memcpy(live, root, (size_t)n * sizeof *live);
    mark_live(g, live, n);

    for (int i = 0; i < n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (live[i] && !is_source(nd->op) && !be->kernels[nd->op]) {
            st = ct_error(CT_ERR_UNSUPPORTED, "ct_compile: the %s backend has no kernel for %s", be->name,
                          ct_op_name(nd->op));
            goto done;
        }
    }

    /* Parameters and their gradients. */
    if (o.share_params) {
        ct_program *q = o.share_params;
        p->params = q->params;
        p->grads = q->grads;
        p->param_off = q->param_off;
        p->param_numel = q->param_numel;
        p->param_dtype = q->param_dtype;
        p->state = q->state;
        p->buf_off = q->buf_off;
        p->state_numel = q->state_numel;
        p->state_dtype = q->state_dtype;
        if (q->be != be) {
            st = ct_error(CT_ERR_INVALID_ARG, "ct_compile: share_params lives on another device");
            goto done;
        }
    } else if ((st = setup_params(p)) != CT_OK || (st = setup_buffers(p)) != CT_OK) {
        goto done;
    }
    for (int i = 0; i < g->n_buffers; i++) {
        ct_node bn = g->buffers[i];
        p->data[bn] = (char *)p->state + p->buf_off[i] * ct_dtype_size(p->state_dtype);
        p->readable[bn] = true;
    }
    size_t pes = ct_dtype_size(p->param_dtype);
    for (int i = 0; i < g->n_params; i++) {
        ct_node pn = g->params[i];
        p->data[pn] = (char *)p->params + p->param_off[i] * pes;
        p->readable[pn] = true;
        ct_node gn = o.grads ? g->grad_of[pn] : CT_NO_NODE;
        if (gn != CT_NO_NODE) {
            p->data[gn] = (char *)p->grads + p->param_off[i] * pes;
            p->readable[gn] = true;
        }
    }

    /* Inputs (all of them, so any can be fed) and live constants. */
    size_t in_bytes = 0, const_bytes = 0;
    for (int i = 0; i < n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_INPUT) in_bytes += round_up(node_bytes(nd), ARENA_ALIGN);
        if (nd->op == CT_OP_CONST && live[i]) const_bytes += round_up(node_bytes(nd), ARENA_ALIGN);
    }
    if ((in_bytes && !(p->inputs = be->alloc(in_bytes))) || (const_bytes && !(p->consts = be->alloc(const_bytes)))) {
        st = ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes of inputs and constants on %s: %s",
                      in_bytes + const_bytes, be->name, ct_last_error());
        goto done;
    }
    if (in_bytes) be->zero(p->inputs, in_bytes);
    p->inputs_bytes = in_bytes;
    p->consts_bytes = const_bytes;
    size_t in_off = 0, const_off = 0;
    for (int i = 0; i < n && st == CT_OK; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_INPUT) {
            p->data[i] = (char *)p->inputs + in_off;
            p->readable[i] = true;
            in_off += round_up(node_bytes(nd), ARENA_ALIGN);
        } else if (nd->op == CT_OP_CONST && live[i]) {
            p->data[i] = (char *)p->consts + const_off;
            p->readable[i] = true;
            const_off += round_up(node_bytes(nd), ARENA_ALIGN);
            st = be->upload(p->data[i], nd->const_data, node_bytes(nd));
        }
    }
    if (st != CT_OK) goto done;

    /* Execution order, and the step at which each value is last needed. */
    for (int i = 0; i < n; i++)
        if (live[i] && !is_source(g->nodes[i].op)) p->exec[p->n_exec++] = i;
    p->grads_on = o.grads;
    if ((st = setup_grad_ready(p, o.grads)) != CT_OK) goto done;
    int n_plan = 0;
    for (int k = 0; k < p->n_exec; k++) {
        ct_node i = p->exec[k];
        if (p->data[i]) continue; /* a parameter gradient, bound above */
        plan_node[n_plan] = i;
        plan[n_plan] = (ct_plan_buf){node_bytes(&g->nodes[i]), k, root[i] ? p->n_exec : k, 0};
        n_plan++;
    }
    for (int i = 0; i < n; i++) pos[i] = -1; /* from here: node -> its plan entry */
    for (int b = 0; b < n_plan; b++) pos[plan_node[b]] = b;
    for (int k = 0; k < p->n_exec; k++) {
        const ct_nodeinfo *nd = &g->nodes[p->exec[k]];
        for (int j = 0; j < nd->n_in; j++) {
            int b = pos[nd->in[j]];
            if (b >= 0 && plan[b].last < k) plan[b].last = k;
        }
    }
    if (o.no_plan) {
        p->private_bufs = calloc((size_t)n, sizeof *p->private_bufs);
        if (!p->private_bufs) {
            st = ct_error(CT_ERR_OOM, "ct_compile: out of memory");
            goto done;
        }
        for (int b = 0; b < n_plan; b++) {
            ct_node i = plan_node[b];
            p->private_bufs[i] = be->alloc(plan[b].bytes ? plan[b].bytes : 1);
            if (!p->private_bufs[i]) {
                st = ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes on %s: %s", plan[b].bytes, be->name,
                              ct_last_error());
                goto done;
            }
            p->data[i] = p->private_bufs[i];
            p->arena_bytes += round_up(plan[b].bytes, ARENA_ALIGN);
        }
        for (int i = 0; i < n; i++)
            if (p->data[i]) p->readable[i] = true;
    } else {
        size_t total = ct_plan_arena(plan, n_plan, ARENA_ALIGN);
        if (total == (size_t)-1) {
            st = ct_error(CT_ERR_OOM, "ct_compile: out of memory while planning");
            goto done;
        }
        p->arena_bytes = total;
        if (total && !(p->arena = be->alloc(total))) {
            st = ct_error(CT_ERR_OOM, "ct_compile: cannot allocate a %zu-byte activation arena on %s: %s", total,
                          be->name, ct_last_error());
            goto done;
        }
        for (int b = 0; b < n_plan; b++) {
            p->data[plan_node[b]] = (char *)p->arena + plan[b].offset;
            if (root[plan_node[b]]) p->readable[plan_node[b]] = true;
        }
    }

    /* Kernel arguments, and one scratch area for the hungriest kernel. */
    int n_views = 0;
    for (int k = 0; k < p->n_exec; k++) n_views += g->nodes[p->exec[k]].n_in;
    p->views = malloc((size_t)(n_views ? n_views : 1) * sizeof *p->views);
    if (!p->views) {
        st = ct_error(CT_ERR_OOM, "ct_compile: out of memory");
        goto done;
    }
    size_t scratch = 0;
    for (int k = 0, v = 0; k < p->n_exec; k++) {
        ct_node i = p->exec[k];
        const ct_nodeinfo *nd = &g->nodes[i];
        ct_kargs *ka = &p->kargs[k];
        ka->op = nd->op;
        p->attrs[k] = nd->attr;
        ka->attr = &p->attrs[k];
        ka->n_in = nd->n_in;
        ka->in = &p->views[v];
        for (int j = 0; j < nd->n_in; j++) p->views[v++] = view_of(p, nd->in[j]);
        ka->out = view_of(p, i);
        ka->seed = g->seed;
        ka->allow_tf32 = nd->op == CT_OP_MATMUL && nd->attr.tf32;
        if (be->scratch_bytes) {
            /* asked with no data pointers, as the interface promises */
            ct_kargs probe = *ka;
            ct_tview *tmp = malloc((size_t)(nd->n_in ? nd->n_in : 1) * sizeof *tmp);
            if (!tmp) {
                st = ct_error(CT_ERR_OOM, "ct_compile: out of memory");
                goto done;
            }
            for (int j = 0; j < nd->n_in; j++) {
                tmp[j] = ka->in[j];
                tmp[j].data = NULL;
            }
            probe.in = tmp;
            probe.out.data = NULL;
            size_t s = be->scratch_bytes(&probe);
            free(tmp);
            if (s > scratch) scratch = s;
        }
    }
    if (scratch && !(p->scratch = be->alloc(scratch))) {
        st = ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes of scratch on %s: %s", scratch, be->name,
                      ct_last_error());
        goto done;
    }
    for (int k = 0; k < p->n_exec; k++) p->kargs[k].scratch = scratch ? p->scratch : NULL;
    p->scratch_bytes = scratch;

done:
    free(live);
    free(root);
    free(plan);
    free(plan_node);
    free(pos);
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

ct_status ct_program_run(ct_program *p) { return ct_program_run_dev(p, NULL); }

ct_status ct_program_run_dev(ct_program *p, const uint32_t *step_dev) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "ct_program_run: program is NULL");
    for (int k = 0; k < p->n_exec; k++) {
        ct_kargs *ka = &p->kargs[k];
        ka->step = p->step;
        ka->step_dev = step_dev;
        ka->training = p->training;
        ct_status st = p->be->kernels[ka->op](ka);
        ka->step_dev = NULL; /* a later plain run uses the host's counter */
        if (st != CT_OK) {
            const ct_nodeinfo *nd = &p->g->nodes[p->exec[k]];
            return ct_error(st, "running %s (node %d%s%s): %s", ct_op_name(nd->op), (int)p->exec[k],
                            nd->name ? ", " : "", nd->name ? nd->name : "", ct_last_error());
        }
        if (p->hook)
            for (int r = p->ready_at[k]; r < p->ready_at[k + 1]; r++) p->hook(p->hook_user, p->ready_param[r]);
    }
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
