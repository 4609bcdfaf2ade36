/* The gradients of slices, placed in their operand's shape once all of them
 * are known (core/autodiff.h).
 *
 * A slice's gradient is its upstream gradient placed in a zero tensor of
 * the operand's shape (SLICE_GRAD). An operand cut into pieces along one
 * axis, as a fused projection is cut into q, k and v, would so get one
 * zero-filled copy per piece and their sum: three full-size writes and two
 * additions where the pieces side by side are the whole gradient. The
 * driver visits an operand only after every node reading it, so its slices'
 * gradients are all known by then; pieces that tile it become one CONCAT,
 * and any others SLICE_GRADs as before. */
#include <stdlib.h>

#include "core/autodiff.h"
#include "ctrain/ops.h"

/* Pieces concatenated at most (more: SLICE_GRADs, as before). */
#define MAX_PARTS 16

bool ct_grad_accumulate_slice(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *s, ct_node dy) {
    if (dy == CT_NO_NODE) return false;
    ct_node x = s->in[0];
    if (!acc->needs[x]) return true;
    if (acc->n_pieces == acc->cap_pieces) {
        int cap = acc->cap_pieces ? 2 * acc->cap_pieces : 16;
        ct_slice_piece *p = realloc(acc->pieces, (size_t)cap * sizeof *p);
        if (!p) {
            ct_graph_fail(g, CT_ERR_OOM, "ct_graph_backward: out of memory");
            return false;
        }
        acc->pieces = p, acc->cap_pieces = cap;
    }
    acc->pieces[acc->n_pieces++] = (ct_slice_piece){.x = x, .dy = dy, .attr = s->attr};
    return true;
}

static int by_start(const void *a, const void *b) {
    int64_t sa = ((const ct_slice_piece *)a)->attr.start, sb = ((const ct_slice_piece *)b)->attr.start;
    return (sa > sb) - (sa < sb);
}

/* Whether the n pieces (sorted by start) cover x's axis exactly, each once,
 * in x's dtype (a concatenation is then the whole gradient). */
static bool tiles(const ct_graph *g, const ct_slice_piece *p, int n, ct_node x) {
    const ct_nodeinfo *nx = &g->nodes[x];
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].attr.axis != p[0].attr.axis || p[i].attr.start != at || g->nodes[p[i].dy].dtype != nx->dtype)
            return false;
        at = p[i].attr.end;
    }
    return n > 1 && n <= MAX_PARTS && at == nx->shape.dim[p[0].attr.axis];
}

bool ct_grad_place_slices(ct_graph *g, ct_grad_acc *acc, ct_node x) {
    /* x's pieces to the front of the list, then in order of start */
    int n = 0;
    for (int i = 0; i < acc->n_pieces; i++)
        if (acc->pieces[i].x == x) {
            ct_slice_piece t = acc->pieces[i];
            for (int j = i; j > n; j--) acc->pieces[j] = acc->pieces[j - 1];
            acc->pieces[n++] = t;
        }
    if (n == 0) return true;
    ct_slice_piece *p = acc->pieces;
    qsort(p, (size_t)n, sizeof *p, by_start);
    bool ok = true;
    if (tiles(g, p, n, x)) {
        ct_node parts[MAX_PARTS];
        for (int i = 0; i < n; i++) parts[i] = p[i].dy;
        ok = ct_grad_accumulate(g, acc, x, ct_concat(g, parts, n, p[0].attr.axis));
    } else {
        /* copies: adding nodes may move the node array */
        const ct_dtype dt = g->nodes[x].dtype;
        const ct_shape shape = g->nodes[x].shape;
        for (int i = 0; i < n && ok; i++)
            ok = ct_grad_accumulate(g, acc, x, ct_graph_add(g, CT_OP_SLICE_GRAD, dt, shape, &p[i].dy, 1, &p[i].attr));
    }
    /* drop the placed pieces */
    acc->n_pieces -= n;
    for (int i = 0; i < acc->n_pieces; i++) acc->pieces[i] = acc->pieces[i + n];
    return ok;
}
