/* Fusing a relu, or a cast, into the op that makes its input, at compile
 * time.
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
 * Under a half precision policy (ctrain/amp.h) a product's operands are
 * casts of F32 values. Where such a cast is the only reader of an F32
 * value made by an op whose kernel can write a half output (the backend's
 * casts_output: on the CPU layer norm and the unary ops, e.g. a GPT's
 * ln_1, ln_2, ln_f and GELU), that op writes the F16 or BF16 values
 * directly, rounded as CAST rounds: the F32 value is never written nor
 * read back, and the cast's pass is gone.
 *
 * The fused kernel computes the same bits as the two kernels did: relu
 * and its mask are exact (a select, a product by 0 or 1), applied to the
 * same values; a fused cast rounds the F32 result the kernel would have
 * stored, with CAST's rounding (tests/test_fuse_cast.c; on the reference
 * loops, which run with the fast paths off, a NaN's sign may differ). The
 * graph is not changed (another program of it may read the pre-activation
 * or the F32 value); the program runs the producer's op, inputs and
 * attributes, with attr.fused_relu or attr.fused_cast set, in the
 * consumer's step and buffer.
 *
 * Nothing is fused for a backend that does not say its kernels honour
 * fused_relu (or, for casts, has no casts_output), with opts.no_plan
 * (every value kept readable), or when CTRAIN_NO_FUSE=1 is set (to measure
 * what fusing gains). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/program_impl.h"

/* For a relu at i: the producer whose relu it is, or CT_NO_NODE. */
static ct_node relu_producer(const ct_graph *g, ct_node i) {
    const ct_nodeinfo *nd = &g->nodes[i];
    if (nd->op == CT_OP_RELU) {
        ct_node p = nd->in[0];
        ct_op op = g->nodes[p].op;
        return op == CT_OP_CONV2D || op == CT_OP_ADD ? p : CT_NO_NODE;
    }
    if (nd->op == CT_OP_UNARY_GRAD && nd->attr.fwd_op == CT_OP_RELU) {
        /* dx = dy * (y > 0), dy = max_pool2d_grad(y, ...): the same y */
        ct_node p = nd->in[1];
        const ct_nodeinfo *pn = &g->nodes[p];
        return pn->op == CT_OP_MAX_POOL2D_GRAD && pn->in[0] == nd->in[0] ? p : CT_NO_NODE;
    }
    return CT_NO_NODE;
}

/* For a cast at i from F32 to F16 or BF16: the producer that can write
 * the cast's output itself (be->casts_output), or CT_NO_NODE. src[p] == p:
 * a producer that already runs another's op (a relu fused into it) keeps
 * its F32 output. */
static ct_node cast_producer(const ct_graph *g, const ct_backend *be, const ct_node *src, ct_node i) {
    const ct_nodeinfo *nd = &g->nodes[i];
    if (nd->op != CT_OP_CAST || !be->casts_output || (nd->dtype != CT_F16 && nd->dtype != CT_BF16))
        return CT_NO_NODE;
    ct_node p = nd->in[0];
    const ct_nodeinfo *pn = &g->nodes[p];
    bool f32 = pn->dtype == CT_F32;
    for (int j = 0; f32 && j < pn->n_in; j++) f32 = g->nodes[pn->in[j]].dtype == CT_F32;
    return f32 && src[p] == p && be->casts_output(pn->op) ? p : CT_NO_NODE;
}

/* The producer fused into node i, or CT_NO_NODE. uses[n]: the live
 * readers of n (an input read twice counts twice). */
static ct_node producer(const ct_program *pr, const int *uses, const bool *root, const bool *live, const ct_node *src,
                        ct_node i) {
    const ct_graph *g = pr->g;
    const ct_nodeinfo *nd = &g->nodes[i];
    bool cast = nd->op == CT_OP_CAST;
    ct_node p = cast ? cast_producer(g, pr->be, src, i) : pr->be->fuses_relu ? relu_producer(g, i) : CT_NO_NODE;
    if (p == CT_NO_NODE || !live[p]) return CT_NO_NODE;
    const ct_nodeinfo *pn = &g->nodes[p];
    bool same = (cast || pn->dtype == nd->dtype) && ct_shape_equal(pn->shape, nd->shape);
    return same && !root[p] && uses[p] == 1 ? p : CT_NO_NODE;
}

static bool fusing_off(void) {
    const char *v = getenv("CTRAIN_NO_FUSE");
    return v && *v && strcmp(v, "0") != 0;
}

ct_status ct_program_fuse(const ct_program *p, bool *live, const bool *root, bool on, ct_node *src) {
    const ct_graph *g = p->g;
    for (int i = 0; i < p->n; i++) src[i] = i;
    if (!on || (!p->be->fuses_relu && !p->be->casts_output) || fusing_off()) return CT_OK;
    int *uses = calloc((size_t)(p->n ? p->n : 1), sizeof *uses);
    if (!uses) return ct_error(CT_ERR_OOM, "ct_compile: out of memory");
    for (int i = 0; i < p->n; i++)
        if (live[i])
            for (int j = 0; j < g->nodes[i].n_in; j++) uses[g->nodes[i].in[j]]++;
    /* in node order: a relu's producer is fused before a cast of the relu
     * is looked at, so a cast never takes a producer that runs another's op */
    for (int i = 0; i < p->n; i++) {
        ct_node q = live[i] ? producer(p, uses, root, live, src, i) : CT_NO_NODE;
        if (q == CT_NO_NODE) continue;
        src[i] = q;
        live[q] = false; /* its step and buffer are i's */
    }
    free(uses);
    return CT_OK;
}
