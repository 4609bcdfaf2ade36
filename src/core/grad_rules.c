/* The gradient table: one backward rule per differentiable op, indexed by
 * op at the end of this file; an op without a row is not differentiable.
 *
 * A rule gets the forward node y (nd, a copy that stays valid while
 * builders grow the node array) and its upstream gradient gy, and
 * accumulates each input's vector-Jacobian product, built with the
 * builders users call or with an internal op where fusing saves passes
 * (UNARY_GRAD, SUM_TO, ...). A new op's backward is one rule and one row.
 * The rules of convolution and pooling are in grad_conv.c, attention's in
 * grad_attention.c. */
#include "core/attention.h"
#include "core/rnn.h"
#include "core/autocast.h"
#include "core/autodiff.h"
#include "core/error.h"
#include "core/fakequant.h"
#include "ctrain/ops.h"

/* Every rule has the signature of ct_grad_rule_fn; few need y. */
#define RULE(name) \
    static bool name(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, __attribute__((unused)) ct_node y, \
                     ct_node gy)

ct_node ct_grad_sum_to(ct_graph *g, ct_node gy, ct_shape shape) {
    if (gy == CT_NO_NODE) return gy;
    if (ct_shape_equal(g->nodes[gy].shape, shape)) return gy;
    /* newest first: the sum another rule made is usually recent */
    for (ct_node i = g->n - 1; i > gy; i--) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (nd->op == CT_OP_SUM_TO && nd->in[0] == gy && ct_shape_equal(nd->shape, shape)) return i;
    }
    return ct_graph_add(g, CT_OP_SUM_TO, g->nodes[gy].dtype, shape, &gy, 1, NULL);
}

/* Reduces a broadcast gradient back to the shape of the operand. */
static ct_node sum_to(ct_graph *g, ct_node gy, ct_shape shape) { return ct_grad_sum_to(g, gy, shape); }

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
RULE(grad_matmul) {
    ct_node a = nd->in[0], b = nd->in[1];
    bool ta = nd->attr.trans_a, tb = nd->attr.trans_b;
    ct_shape sa = g->nodes[a].shape, sb = g->nodes[b].shape;
    gy = ct_cast_folded(g, gy, g->nodes[a].dtype);
    const ct_nodeinfo *f = nd;
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
            int64_t k = sa.dim[sa.ndim - 1], n = nd->shape.dim[nd->shape.ndim - 1];
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
RULE(grad_norm) {
    bool bn = nd->op == CT_OP_BATCH_NORM;
    ct_op gop = bn ? CT_OP_BATCH_NORM_GRAD : CT_OP_LAYER_NORM_GRAD;
    int first_affine = bn ? 3 : 1; /* weight, then bias, follow the required inputs */
    ct_node x = nd->in[0];
    ct_node w = nd->attr.has_weight ? nd->in[first_affine] : CT_NO_NODE;
    ct_node b = nd->attr.has_bias ? nd->in[first_affine + (nd->attr.has_weight ? 1 : 0)] : CT_NO_NODE;
    ct_node in[5];
    int n = 0;
    in[n++] = x;
    if (bn) {
        in[n++] = nd->in[1];
        in[n++] = nd->in[2];
    }
    in[n++] = gy;
    const ct_node targets[3] = {x, w, b};
    for (int which = CT_NORM_GRAD_X; which <= CT_NORM_GRAD_BIAS; which++) {
        ct_node t = targets[which];
        if (t == CT_NO_NODE || !acc->needs[t]) continue;
        ct_attrs a = nd->attr;
        a.which = which;
        int m = n;
        if (which == CT_NORM_GRAD_X && w != CT_NO_NODE) in[m++] = w;
        ct_node d = internal(g, gop, g->nodes[t].shape, g->nodes[t].dtype, in, m, &a);
        if (!ct_grad_accumulate(g, acc, t, d)) return false;
    }
    return true;
}

static ct_shape shape_of(const ct_graph *g, ct_node n) { return g->nodes[n].shape; }

/* An internal op with x's shape and dtype (x = nd->in[0]). */
static ct_node like_x(ct_graph *g, const ct_nodeinfo *nd, ct_op op, const ct_node *in, int n, const ct_attrs *a) {
    ct_node x = nd->in[0];
    return internal(g, op, g->nodes[x].shape, g->nodes[x].dtype, in, n, a);
}

RULE(grad_add_sub) {
    ct_node a = nd->in[0], b = nd->in[1];
    if (acc->needs[a] && !ct_grad_accumulate(g, acc, a, sum_to(g, gy, shape_of(g, a)))) return false;
    if (!acc->needs[b]) return true;
    ct_node db = nd->op == CT_OP_ADD ? gy : ct_neg(g, gy);
    return ct_grad_accumulate(g, acc, b, sum_to(g, db, shape_of(g, b)));
}

RULE(grad_mul) {
    ct_node a = nd->in[0], b = nd->in[1];
    if (acc->needs[a] && !ct_grad_accumulate(g, acc, a, sum_to(g, ct_mul(g, gy, b), shape_of(g, a)))) return false;
    return !acc->needs[b] || ct_grad_accumulate(g, acc, b, sum_to(g, ct_mul(g, gy, a), shape_of(g, b)));
}

/* y = a / b: da = gy / b, db = -gy * y / b */
RULE(grad_div) {
    ct_node a = nd->in[0], b = nd->in[1];
    if (acc->needs[a] && !ct_grad_accumulate(g, acc, a, sum_to(g, ct_div(g, gy, b), shape_of(g, a)))) return false;
    if (!acc->needs[b]) return true;
    ct_node db = ct_neg(g, ct_mul(g, gy, ct_div(g, y, b)));
    return ct_grad_accumulate(g, acc, b, sum_to(g, db, shape_of(g, b)));
}

RULE(grad_neg) { return ct_grad_accumulate(g, acc, nd->in[0], ct_neg(g, gy)); }
RULE(grad_scale) { return ct_grad_accumulate(g, acc, nd->in[0], ct_scale(g, gy, nd->attr.alpha)); }

/* dx = dy * f'(x) in one kernel, f' from core/ew_math.h. Relu's from its
 * output, as PyTorch's threshold_backward does: relu' is the same at x
 * and at relu(x) (NaN and -0 included), and then nothing in the backward
 * reads x, so the compiler may fuse the relu into the op that makes x
 * (core/program_fuse.c). */
RULE(grad_unary) {
    ct_attrs a = nd->attr;
    a.fwd_op = nd->op;
    ct_node in[2] = {nd->op == CT_OP_RELU ? y : nd->in[0], gy};
    return ct_grad_accumulate(g, acc, nd->in[0], like_x(g, nd, CT_OP_UNARY_GRAD, in, 2, &a));
}

/* From the forward output y, not x: softmax' is simplest in y. */
RULE(grad_softmax) {
    ct_node in[2] = {y, gy};
    ct_op gop = nd->op == CT_OP_SOFTMAX ? CT_OP_SOFTMAX_GRAD : CT_OP_LOG_SOFTMAX_GRAD;
    return ct_grad_accumulate(g, acc, nd->in[0], like_x(g, nd, gop, in, 2, &nd->attr));
}

RULE(grad_sum_mean) {
    ct_shape xs = shape_of(g, nd->in[0]);
    ct_node d = broadcast_to(g, keepdim_form(g, gy, xs, nd->attr.axis, nd->attr.keepdim), xs);
    if (nd->op == CT_OP_MEAN && d != CT_NO_NODE)
        d = ct_scale(g, d, (double)ct_shape_numel(nd->shape) / (double)ct_shape_numel(xs));
    return ct_grad_accumulate(g, acc, nd->in[0], d);
}

RULE(grad_max) {
    ct_node in[2] = {nd->in[0], gy};
    return ct_grad_accumulate(g, acc, nd->in[0], like_x(g, nd, CT_OP_MAX_GRAD, in, 2, &nd->attr));
}

RULE(grad_reshape) { return ct_grad_accumulate(g, acc, nd->in[0], ct_reshape(g, gy, shape_of(g, nd->in[0]))); }

RULE(grad_permute) {
    int inv[CT_MAX_DIMS], nd_x = shape_of(g, nd->in[0]).ndim;
    for (int i = 0; i < nd_x; i++) inv[nd->attr.perm[i]] = i;
    return ct_grad_accumulate(g, acc, nd->in[0], ct_permute(g, gy, inv));
}

RULE(grad_concat) {
    int64_t off = 0;
    for (int i = 0; i < nd->n_in; i++) {
        ct_node xi = nd->in[i];
        int64_t len = shape_of(g, xi).dim[nd->attr.axis];
        if (acc->needs[xi] && !ct_grad_accumulate(g, acc, xi, ct_slice(g, gy, nd->attr.axis, off, off + len)))
            return false;
        off += len;
    }
    return true;
}

/* Placed with the operand's other slices (grad_slices.c). */
RULE(grad_slice) { return ct_grad_accumulate_slice(g, acc, nd, gy); }

/* Indices are integers: only the table gets a gradient. */
RULE(grad_embedding) {
    ct_node in[2] = {nd->in[1], gy};
    return ct_grad_accumulate(g, acc, nd->in[0], like_x(g, nd, CT_OP_EMBEDDING_GRAD, in, 2, NULL));
}

/* Same stream and step: the mask is regenerated, not stored. */
RULE(grad_dropout) { return ct_grad_accumulate(g, acc, nd->in[0], like_x(g, nd, CT_OP_DROPOUT, &gy, 1, &nd->attr)); }

RULE(grad_cross_entropy) {
    ct_node in[3] = {nd->in[0], nd->in[1], gy};
    return ct_grad_accumulate(g, acc, nd->in[0], like_x(g, nd, CT_OP_CROSS_ENTROPY_GRAD, in, 3, &nd->attr));
}

/* d/da mean((a-b)^2) = 2 (a-b) / n */
RULE(grad_mse) {
    ct_node a = nd->in[0], b = nd->in[1];
    double k = 2.0 / (double)ct_shape_numel(shape_of(g, a));
    ct_node da = ct_mul(g, ct_scale(g, ct_sub(g, a, b), k), gy);
    if (!ct_grad_accumulate(g, acc, a, da)) return false;
    return !acc->needs[b] || ct_grad_accumulate(g, acc, b, ct_neg(g, da));
}

/* d/dx = (sigmoid(x) - t) / n, d/dt = -x / n */
RULE(grad_bce_with_logits) {
    ct_node x = nd->in[0], t = nd->in[1];
    double k = 1.0 / (double)ct_shape_numel(shape_of(g, x));
    if (acc->needs[x] &&
        !ct_grad_accumulate(g, acc, x, ct_mul(g, ct_scale(g, ct_sub(g, ct_sigmoid(g, x), t), k), gy)))
        return false;
    return !acc->needs[t] || ct_grad_accumulate(g, acc, t, ct_mul(g, ct_scale(g, x, -k), gy));
}

/* kl_div = sum(t * (log t - x)) / N: d/dx = -t / N, d/dt = (log t + 1 - x) / N
 * (PyTorch's rule; a zero target's log is -inf there too). */
RULE(grad_kl_div) {
    ct_node x = nd->in[0], t = nd->in[1];
    double k = 1.0 / (double)shape_of(g, x).dim[0];
    if (acc->needs[x] && !ct_grad_accumulate(g, acc, x, ct_mul(g, ct_scale(g, t, -k), gy))) return false;
    if (!acc->needs[t]) return true;
    /* log t + 1 as log(e t): no constant node of t's dtype needed. */
    ct_node d = ct_sub(g, ct_log(g, ct_scale(g, t, 2.718281828459045)), x);
    return ct_grad_accumulate(g, acc, t, ct_mul(g, ct_scale(g, d, k), gy));
}

/* A cast's gradient is the upstream one cast back, except where that is a
 * half-precision product wanted in F32 (the backward of an autocast
 * product: dX and dW of x and W cast to BF16 or F16): the product then
 * gives its F32 result directly, as the forward's products do, rather
 * than rounding it to half and widening it in another pass. The product is
 * the whole gradient of the cast (no other consumer contributed, or gy
 * would be their sum), made by the rules that ran before this one and read
 * by nothing yet, so changing its result's dtype changes no other node. */
RULE(grad_cast) {
    ct_node x = nd->in[0];
    ct_dtype want = g->nodes[x].dtype;
    ct_nodeinfo *p = gy == CT_NO_NODE ? NULL : &g->nodes[gy];
    if (p && p->op == CT_OP_MATMUL && want == CT_F32 && (p->dtype == CT_BF16 || p->dtype == CT_F16)) {
        p->dtype = CT_F32;
        return ct_grad_accumulate(g, acc, x, gy);
    }
    return ct_grad_accumulate(g, acc, x, ct_cast(g, gy, want));
}

static const ct_grad_rule_fn rules[CT_OP_COUNT] = {
    [CT_OP_MATMUL] = grad_matmul,
    [CT_OP_ADD] = grad_add_sub,
    [CT_OP_SUB] = grad_add_sub,
    [CT_OP_MUL] = grad_mul,
    [CT_OP_DIV] = grad_div,
    [CT_OP_NEG] = grad_neg,
    [CT_OP_SCALE] = grad_scale,
    [CT_OP_EXP] = grad_unary,
    [CT_OP_LOG] = grad_unary,
    [CT_OP_SQRT] = grad_unary,
    [CT_OP_POW] = grad_unary,
    [CT_OP_ABS] = grad_unary,
    [CT_OP_RELU] = grad_unary,
    [CT_OP_LEAKY_RELU] = grad_unary,
    [CT_OP_GELU] = grad_unary,
    [CT_OP_TANH] = grad_unary,
    [CT_OP_SIGMOID] = grad_unary,
    [CT_OP_SILU] = grad_unary,
    [CT_OP_SOFTPLUS] = grad_unary,
    [CT_OP_SOFTMAX] = grad_softmax,
    [CT_OP_LOG_SOFTMAX] = grad_softmax,
    [CT_OP_SUM] = grad_sum_mean,
    [CT_OP_MEAN] = grad_sum_mean,
    [CT_OP_MAX] = grad_max,
    [CT_OP_RESHAPE] = grad_reshape,
    [CT_OP_PERMUTE] = grad_permute,
    [CT_OP_CONCAT] = grad_concat,
    [CT_OP_SLICE] = grad_slice,
    [CT_OP_EMBEDDING] = grad_embedding,
    [CT_OP_DROPOUT] = grad_dropout,
    [CT_OP_CROSS_ENTROPY] = grad_cross_entropy,
    [CT_OP_MSE] = grad_mse,
    [CT_OP_BCE_WITH_LOGITS] = grad_bce_with_logits,
    [CT_OP_KL_DIV] = grad_kl_div,
    [CT_OP_CAST] = grad_cast,
    [CT_OP_BATCH_NORM] = grad_norm,
    [CT_OP_LAYER_NORM] = grad_norm,
    [CT_OP_CONV2D] = ct_grad_conv2d,
    [CT_OP_MAX_POOL2D] = ct_grad_max_pool2d,
    [CT_OP_AVG_POOL2D] = ct_grad_avg_pool2d,
    [CT_OP_DROPOUT2D] = ct_grad_dropout2d,
    [CT_OP_ATTENTION] = ct_grad_attention,
    [CT_OP_RNN] = ct_grad_rnn,
    [CT_OP_FAKE_QUANT] = ct_grad_fake_quant,
};

ct_grad_rule_fn ct_grad_rule_of(int op) { return op >= 0 && op < CT_OP_COUNT ? rules[op] : NULL; }

ct_status ct_grad_rule(ct_graph *g, ct_grad_acc *acc, ct_node y, ct_node gy) {
    const ct_nodeinfo nd = g->nodes[y]; /* a copy: builders below may move the array */
    ct_grad_rule_fn rule = ct_grad_rule_of(nd.op);
    if (!rule) return ct_error(CT_ERR_INTERNAL, "ct_graph_backward: no rule for %s", ct_op_name(nd.op));
    bool ok = rule(g, acc, &nd, y, gy);
    if (!ok || g->status != CT_OK) {
        ct_status s = g->status != CT_OK ? g->status : ct_last_status();
        return ct_error(s == CT_OK ? CT_ERR_INTERNAL : s, "ct_graph_backward: through %s: %s",
                        ct_op_name(nd.op), g->status != CT_OK ? g->error : ct_last_error());
    }
    return CT_OK;
}
