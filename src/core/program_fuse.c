/* Fusing a relu into the op that makes its input, at compile time.
 *
 * A static graph knows, before the first run, every reader of every
 * value. Where a relu is the only reader of a convolution's or an add's
 * output (a layer's bias add), the two run as one kernel that applies the
 * relu to each output element as it is made, and the pre-activation is
 * never written: one pass over the activations less, forward. Backward,
 * relu's gradient reads the relu's output (grad_rules.c), and where the
 * gradient it masks comes from a max pool that read that same output
 * (conv - relu - pool), the mask is applied by the pool's gradient kernel.
 *
 * The fused kernel computes the same bits as the two kernels did: relu
 * and its mask are exact (a select, a product by 0 or 1), applied to the
 * same values. The graph is not changed (another program of it may read
 * the pre-activation); the program runs the producer's op, inputs and
 * attributes, with attr.fused_relu set, in the relu's step and buffer.
 *
 * Nothing is fused for a backend that does not say its kernels honour
 * fused_relu, with opts.no_plan (every value kept readable), or when
 * CTRAIN_NO_FUSE=1 is set (to measure what fusing gains). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/program_impl.h"

/* The producer fused into node i, or CT_NO_NODE. uses[n]: the live
 * readers of n (an input read twice counts twice). */
static ct_node producer(const ct_graph *g, const int *uses, const bool *root, ct_node i) {
    const ct_nodeinfo *nd = &g->nodes[i];
    ct_node p;
    if (nd->op == CT_OP_RELU) {
        p = nd->in[0];
        ct_op op = g->nodes[p].op;
        if (op != CT_OP_CONV2D && op != CT_OP_ADD) return CT_NO_NODE;
    } else if (nd->op == CT_OP_UNARY_GRAD && nd->attr.fwd_op == CT_OP_RELU) {
        /* dx = dy * (y > 0), dy = max_pool2d_grad(y, ...): the same y */
        p = nd->in[1];
        const ct_nodeinfo *pn = &g->nodes[p];
        if (pn->op != CT_OP_MAX_POOL2D_GRAD || pn->in[0] != nd->in[0]) return CT_NO_NODE;
    } else {
        return CT_NO_NODE;
    }
    const ct_nodeinfo *pn = &g->nodes[p];
    bool same = pn->dtype == nd->dtype && ct_shape_equal(pn->shape, nd->shape);
    return same && !root[p] && uses[p] == 1 ? p : CT_NO_NODE;
}

static bool fusing_off(void) {
    const char *v = getenv("CTRAIN_NO_FUSE");
    return v && *v && strcmp(v, "0") != 0;
}

ct_status ct_program_fuse(const ct_program *p, bool *live, const bool *root, bool on, ct_node *src) {
    const ct_graph *g = p->g;
    for (int i = 0; i < p->n; i++) src[i] = i;
    if (!on || !p->be->fuses_relu || fusing_off()) return CT_OK;
    int *uses = calloc((size_t)(p->n ? p->n : 1), sizeof *uses);
    if (!uses) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    for (int i = 0; i < p->n; i++)
        if (live[i])
            for (int j = 0; j < g->nodes[i].n_in; j++) uses[g->nodes[i].in[j]]++;
    for (int i = 0; i < p->n; i++) {
        ct_node q = live[i] ? producer(g, uses, root, i) : CT_NO_NODE;
        if (q == CT_NO_NODE) continue;
        src[i] = q;
        live[q] = false; /* its step and buffer are i's */
    }
    free(uses);
    return CT_OK;
}
