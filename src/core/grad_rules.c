/* Backward rules: for node y with upstream gradient gy, append the nodes
 * computing each input's vector-Jacobian product and accumulate them.
 *
 * Builders may grow the node array, so rules copy what they need out of
 * the node before calling any builder. */
#include "core/attention.h"
#include "core/autocast.h"
#include "core/autodiff.h"
#include "core/error.h"
#include "ctrain/ops.h"

/* Reduces a broadcast gradient back to the shape of the operand. */
static ct_node sum_to(ct_graph *g, ct_node gy, ct_shape shape) {
    if (gy == CT_NO_NODE) return gy;
    if (ct_shape_equal(g->nodes[gy].shape, shape)) return gy;
    return ct_graph_add(g, CT_OP_SUM_TO, g->nodes[gy].dtype, shape, &gy, 1, NULL);
}

static ct_node broadcast_to(ct_graph *g, ct_node x, ct_shape shape) {
    if (x == CT_NO_NODE) return x;
    if (ct_shape_equal(g->nodes[x].shape, shape)) return x;
    return ct_graph_add(g, CT_OP_BROADCAST_TO, g->nodes[x].dtype, shape, &x, 1, NULL);
}

static ct_node internal(ct_graph *g, ct_op op, ct_shape shape, ct_dtype dt, const ct_node *in,
                        int n, const ct_attrs *a) {
    for (int i = 0; i < n; i++)
        if (in[i] == CT_NO_NODE) return CT_NO_NODE;
    return ct_graph_add(g, op, dt, shape, in, n, a);
}

/* The products of a matmul's backward: in the operands' dtype, whatever
 * policy is in force now, so each gradient has its operand's dtype. */
static ct_node mm(ct_graph *g, ct_node a, ct_node b, bool ta, bool tb, const ct_nodeinfo *fwd) {
    if (a == CT_NO_NODE || b == CT_NO_NODE) return CT_NO_NODE;
    return ct_matmul_typed(g, a, b, ta, tb, g->nodes[a].dtype, fwd->attr.tf32);
}

/* d(op(A) @ op(B)): the four transpose cases, then the batch axes summed.
 * A mixed-precision product (F16/BF16 operands, F32 result) takes its
 * upstream gradient cast to the operands' dtype, once for both products. */
static bool matmul_grad(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo nd, ct_node gy) {
    ct_node a = nd.in[0], b = nd.in[1];
    bool ta = nd.attr.trans_a, tb = nd.attr.trans_b;
    ct_shape sa = g->nodes[a].shape, sb = g->nodes[b].shape;
    gy = ct_cast_folded(g, gy, g->nodes[a].dtype);
    const ct_nodeinfo *f = &nd;
    if (acc->needs[a]) {
        ct_node da;
        if (!ta) da = tb ? mm(g, gy, b, false, false, f) : mm(g, gy, b, false, true, f);
        else da = tb ? mm(g, b, gy, true, true, f) : mm(g, b, gy, false, true, f);
        if (!ct_grad_accumulate(g, acc, a, sum_to(g, da, sa))) return false;
    }
    if (acc->needs[b]) {
        ct_node db;
        if (sb.ndim == 2 && sa.ndim > 2 && !ta) {
            /* A linear layer over a batch of sequences: fold the batch axes
             * into rows so dB is one product, not a stack summed later. */
            int64_t k = sa.dim[sa.ndim - 1], n = nd.shape.dim[nd.shape.ndim - 1];
            ct_node a2 = ct_reshape(g, a, (ct_shape){2, {-1, k}});
            ct_node g2 = ct_reshape(g, gy, (ct_shape){2, {-1, n}});
            db = tb ? mm(g, g2, a2, true, false, f) : mm(g, a2, g2, true, false, f);
        } else if (!tb) {
            db = ta ? mm(g, a, gy, false, false, f) : mm(g, a, gy, true, false, f);
        } else {
            db = ta ? mm(g, gy, a, true, true, f) : mm(g, gy, a, true, false, f);
        }
        if (!ct_grad_accumulate(g, acc, b, sum_to(g, db, sb))) return false;
    }
    return true;
}

/* The keepdim form of a reduced gradient, so it broadcasts against x. */
static ct_node keepdim_form(ct_graph *g, ct_node gy, ct_shape xs, int axis, bool keepdim) {
    if (keepdim || axis == CT_AXIS_ALL) return gy;
    return ct_reshape(g, gy, ct_reduced_shape(xs, axis, true));
}

/* Batch norm and layer norm: one BATCH_NORM_GRAD / LAYER_NORM_GRAD node per
 * gradient wanted (dx, dweight, dbias), each recomputing the statistics
 * from x rather than keeping them from the forward pass. The weight is an
 * input of the dx node only; the running statistics go to every batch-norm
 * node, since out of training they are the statistics. */
static bool norm_grad(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo nd, ct_node gy) {
    bool bn = nd.op == CT_OP_BATCH_NORM;
    ct_op gop = bn ? CT_OP_BATCH_NORM_GRAD : CT_OP_LAYER_NORM_GRAD;
    int first_affine = bn ? 3 : 1; /* weight, then bias, follow the required inputs */
    ct_node x = nd.in[0];
    ct_node w = nd.attr.has_weight ? nd.in[first_affine] : CT_NO_NODE;
    ct_node b = nd.attr.has_bias ? nd.in[first_affine + (nd.attr.has_weight ? 1 : 0)] : CT_NO_NODE;
    ct_node in[5];
    int n = 0;
    in[n++] = x;
    if (bn) {
        in[n++] = nd.in[1];
        in[n++] = nd.in[2];
    }
    in[n++] = gy;
    const ct_node targets[3] = {x, w, b};
    for (int which = CT_NORM_GRAD_X; which <= CT_NORM_GRAD_BIAS; which++) {
        ct_node t = targets[which];
        if (t == CT_NO_NODE || !acc->needs[t]) continue;
        ct_attrs a = nd.attr;
        a.which = which;
        int m = n;
        if (which == CT_NORM_GRAD_X && w != CT_NO_NODE) in[m++] = w;
        ct_node d = internal(g, gop, g->nodes[t].shape, g->nodes[t].dtype, in, m, &a);
        if (!ct_grad_accumulate(g, acc, t, d)) return false;
    }
    return true;
}

ct_status ct_grad_rule(ct_graph *g, ct_grad_acc *acc, ct_node y, ct_node gy) {
    const ct_nodeinfo nd = g->nodes[y]; /* a copy: builders below may move the array */
    ct_node x = nd.n_in > 0 ? nd.in[0] : CT_NO_NODE;
    ct_node x1 = nd.n_in > 1 ? nd.in[1] : CT_NO_NODE;
    ct_shape xs = x != CT_NO_NODE ? g->nodes[x].shape : nd.shape;
    ct_dtype xdt = x != CT_NO_NODE ? g->nodes[x].dtype : nd.dtype;
    bool ok = true;
    switch (nd.op) {
    case CT_OP_MATMUL:
        ok = matmul_grad(g, acc, nd, gy);
        break;
    case CT_OP_ADD:
    case CT_OP_SUB: {
        ct_shape s1 = g->nodes[x1].shape;
        if (acc->needs[x]) ok = ct_grad_accumulate(g, acc, x, sum_to(g, gy, xs));
        if (ok && acc->needs[x1]) {
            ct_node d1 = nd.op == CT_OP_ADD ? gy : ct_neg(g, gy);
            ok = ct_grad_accumulate(g, acc, x1, sum_to(g, d1, s1));
        }
        break;
    }
    case CT_OP_MUL: {
        ct_shape s1 = g->nodes[x1].shape;
        if (acc->needs[x]) ok = ct_grad_accumulate(g, acc, x, sum_to(g, ct_mul(g, gy, x1), xs));
        if (ok && acc->needs[x1]) ok = ct_grad_accumulate(g, acc, x1, sum_to(g, ct_mul(g, gy, x), s1));
        break;
    }
    case CT_OP_DIV: {
        /* y = a / b: da = gy / b, db = -gy * y / b */
        ct_shape s1 = g->nodes[x1].shape;
        if (acc->needs[x]) ok = ct_grad_accumulate(g, acc, x, sum_to(g, ct_div(g, gy, x1), xs));
        if (ok && acc->needs[x1]) {
            ct_node t = ct_neg(g, ct_mul(g, gy, ct_div(g, y, x1)));
            ok = ct_grad_accumulate(g, acc, x1, sum_to(g, t, s1));
        }
        break;
    }
    case CT_OP_NEG:
        ok = ct_grad_accumulate(g, acc, x, ct_neg(g, gy));
        break;
    case CT_OP_SCALE:
        ok = ct_grad_accumulate(g, acc, x, ct_scale(g, gy, nd.attr.alpha));
        break;
    case CT_OP_EXP: case CT_OP_LOG: case CT_OP_SQRT: case CT_OP_POW: case CT_OP_ABS:
    case CT_OP_RELU: case CT_OP_LEAKY_RELU: case CT_OP_GELU: case CT_OP_TANH:
    case CT_OP_SIGMOID: case CT_OP_SILU: {
        ct_attrs a = nd.attr;
        a.fwd_op = nd.op;
        ct_node in[2] = {x, gy};
        ok = ct_grad_accumulate(g, acc, x, internal(g, CT_OP_UNARY_GRAD, xs, xdt, in, 2, &a));
        break;
    }
    case CT_OP_SOFTMAX:
    case CT_OP_LOG_SOFTMAX: {
        ct_node in[2] = {y, gy};
        ct_op gop = nd.op == CT_OP_SOFTMAX ? CT_OP_SOFTMAX_GRAD : CT_OP_LOG_SOFTMAX_GRAD;
        ok = ct_grad_accumulate(g, acc, x, internal(g, gop, xs, xdt, in, 2, &nd.attr));
        break;
    }
    case CT_OP_SUM:
    case CT_OP_MEAN: {
        ct_node d = broadcast_to(g, keepdim_form(g, gy, xs, nd.attr.axis, nd.attr.keepdim), xs);
        if (nd.op == CT_OP_MEAN && d != CT_NO_NODE)
            d = ct_scale(g, d, (double)ct_shape_numel(nd.shape) / (double)ct_shape_numel(xs));
        ok = ct_grad_accumulate(g, acc, x, d);
        break;
    }
    case CT_OP_MAX: {
        ct_node in[2] = {x, gy};
        ok = ct_grad_accumulate(g, acc, x, internal(g, CT_OP_MAX_GRAD, xs, xdt, in, 2, &nd.attr));
        break;
    }
    case CT_OP_RESHAPE:
        ok = ct_grad_accumulate(g, acc, x, ct_reshape(g, gy, xs));
        break;
    case CT_OP_PERMUTE: {
        int inv[CT_MAX_DIMS];
        for (int i = 0; i < xs.ndim; i++) inv[nd.attr.perm[i]] = i;
        ok = ct_grad_accumulate(g, acc, x, ct_permute(g, gy, inv));
        break;
    }
    case CT_OP_CONCAT: {
        int64_t off = 0;
        for (int i = 0; i < nd.n_in && ok; i++) {
            ct_node xi = nd.in[i];
            int64_t len = g->nodes[xi].shape.dim[nd.attr.axis];
            if (acc->needs[xi]) ok = ct_grad_accumulate(g, acc, xi, ct_slice(g, gy, nd.attr.axis, off, off + len));
            off += len;
        }
        break;
    }
    case CT_OP_SLICE:
        ok = ct_grad_accumulate(g, acc, x, internal(g, CT_OP_SLICE_GRAD, xs, xdt, &gy, 1, &nd.attr));
        break;
    case CT_OP_EMBEDDING: {
        /* Indices are integers: only the table gets a gradient. */
        ct_node in[2] = {x1, gy};
        ok = ct_grad_accumulate(g, acc, x, internal(g, CT_OP_EMBEDDING_GRAD, xs, xdt, in, 2, NULL));
        break;
    }
    case CT_OP_DROPOUT:
        /* Same stream and step: the mask is regenerated, not stored. */
        ok = ct_grad_accumulate(g, acc, x, internal(g, CT_OP_DROPOUT, xs, xdt, &gy, 1, &nd.attr));
        break;
    case CT_OP_CROSS_ENTROPY: {
        ct_node in[3] = {x, x1, gy};
        ok = ct_grad_accumulate(g, acc, x, internal(g, CT_OP_CROSS_ENTROPY_GRAD, xs, xdt, in, 3, &nd.attr));
        break;
    }
    case CT_OP_MSE: {
        /* d/da mean((a-b)^2) = 2 (a-b) / n */
        double k = 2.0 / (double)ct_shape_numel(xs);
        ct_node da = ct_mul(g, ct_scale(g, ct_sub(g, x, x1), k), gy);
        ok = ct_grad_accumulate(g, acc, x, da);
        if (ok && acc->needs[x1]) ok = ct_grad_accumulate(g, acc, x1, ct_neg(g, da));
        break;
    }
    case CT_OP_BCE_WITH_LOGITS: {
        /* d/dx = (sigmoid(x) - t) / n, d/dt = -x / n */
        double k = 1.0 / (double)ct_shape_numel(xs);
        if (acc->needs[x])
            ok = ct_grad_accumulate(g, acc, x, ct_mul(g, ct_scale(g, ct_sub(g, ct_sigmoid(g, x), x1), k), gy));
        if (ok && acc->needs[x1]) ok = ct_grad_accumulate(g, acc, x1, ct_mul(g, ct_scale(g, x, -k), gy));
        break;
    }
    case CT_OP_CAST:
        ok = ct_grad_accumulate(g, acc, x, ct_cast(g, gy, xdt));
        break;
    case CT_OP_BATCH_NORM:
    case CT_OP_LAYER_NORM:
        ok = norm_grad(g, acc, nd, gy);
        break;
    case CT_OP_CONV2D:
    case CT_OP_MAX_POOL2D:
    case CT_OP_AVG_POOL2D:
    case CT_OP_DROPOUT2D:
        ok = ct_grad_conv(g, acc, nd, gy);
        break;
    case CT_OP_ATTENTION:
        ok = ct_grad_attention(g, acc, nd, gy);
        break;
    default:
        return ct_error(CT_ERR_INTERNAL, "ct_graph_backward: no rule for %s", ct_op_name(nd.op));
    }
    if (!ok || g->status != CT_OK) {
        ct_status s = g->status != CT_OK ? g->status : ct_last_status();
        return ct_error(s == CT_OK ? CT_ERR_INTERNAL : s, "ct_graph_backward: through %s: %s",
                        ct_op_name(nd.op), g->status != CT_OK ? g->error : ct_last_error());
    }
    return CT_OK;
}
