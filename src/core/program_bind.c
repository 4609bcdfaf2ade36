/* The steps of ct_compile that bind sources to persistent buffers:
 * parameters and their gradients in flat buffers (owned, or shared with
 * another program), buffers (running statistics) likewise, inputs and live
 * constants in buffers of their own. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/program_impl.h"

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

/* Programs may share parameters when their graphs declare the same ones
 * (names, shapes, dtype, order): a training graph and an evaluation graph
 * built for another batch size, say. */
bool ct_program_same_params(const ct_graph *a, const ct_graph *b) {
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

/* Takes q's flat parameters, gradients and buffers (q keeps owning them). */
static ct_status share_params(ct_program *p, const ct_program *q) {
    p->params = q->params;
    p->grads = q->grads;
    p->param_off = q->param_off;
    p->param_numel = q->param_numel;
    p->param_dtype = q->param_dtype;
    p->state = q->state;
    p->buf_off = q->buf_off;
    p->state_numel = q->state_numel;
    p->state_dtype = q->state_dtype;
    if (q->be != p->be) return ct_error(CT_ERR_INVALID_ARG, "ct_compile: share_params lives on another device");
    return CT_OK;
}

ct_status ct_program_bind_params(ct_program *p, const ct_program *share, bool grads) {
    const ct_graph *g = p->g;
    ct_status st;
    if (share) {
        if ((st = share_params(p, share)) != CT_OK) return st;
    } else if ((st = setup_params(p)) != CT_OK || (st = setup_buffers(p)) != CT_OK) {
        return st;
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
        ct_node gn = grads ? g->grad_of[pn] : CT_NO_NODE;
        if (gn != CT_NO_NODE) {
            p->data[gn] = (char *)p->grads + p->param_off[i] * pes;
            p->readable[gn] = true;
        }
    }
    return CT_OK;
}

ct_status ct_program_bind_inputs(ct_program *p, const bool *live) {
    const ct_graph *g = p->g;
    const ct_backend *be = p->be;
    int n = p->n;
    size_t in_bytes = 0, const_bytes = 0;
    for (int i = 0; i < n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_INPUT) in_bytes += round_up(node_bytes(nd), ARENA_ALIGN);
        if (nd->op == CT_OP_CONST && live[i]) const_bytes += round_up(node_bytes(nd), ARENA_ALIGN);
    }
    if ((in_bytes && !(p->inputs = be->alloc(in_bytes))) || (const_bytes && !(p->consts = be->alloc(const_bytes))))
        return ct_error(CT_ERR_OOM, "ct_compile: cannot allocate %zu bytes of inputs and constants on %s: %s",
                        in_bytes + const_bytes, be->name, ct_last_error());
    if (in_bytes) be->zero(p->inputs, in_bytes);
    p->inputs_bytes = in_bytes;
    p->consts_bytes = const_bytes;
    size_t in_off = 0, const_off = 0;
    ct_status st = CT_OK;
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
    return st;
}
