/* Builders and shape rules of convolution, pooling, channel dropout and
 * the two conveniences built from other ops (global average pooling,
 * flatten).
 *
 * Every rule a kernel relies on is checked here, so that a bad geometry is
 * reported by the builder call that made it, naming the op, the shapes and
 * the geometry, rather than by the program at run time. */
#include <limits.h>
#include <stdio.h>

#include "core/autocast.h"
#include "core/conv_geom.h"
#include "core/node.h"
#include "core/shape_util.h"
#include "ctrain/conv.h"
#include "ctrain/ops.h"

ct_conv2d_geom ct_conv_geom(int stride, int padding, int dilation, int groups) {
    return (ct_conv2d_geom){{stride, stride}, {padding, padding}, {dilation, dilation}, groups};
}

ct_pool2d_geom ct_pool_geom(int kernel, int stride, int padding) {
    if (stride == 0) stride = kernel;
    return (ct_pool2d_geom){{kernel, kernel}, {stride, stride}, {padding, padding}};
}

/* x must be a float [N, C, H, W]. */
static bool image_ok(ct_graph *g, const char *op, ct_node x) {
    const ct_nodeinfo *nx = &g->nodes[x];
    char s[CT_SHAPE_STR];
    if (!ct_dtype_is_float(nx->dtype)) {
        ct_graph_fail(g, CT_ERR_DTYPE, "%s: x is %s; it takes floats", op, ct_dtype_name(nx->dtype));
        return false;
    }
    if (nx->shape.ndim != 4) {
        ct_graph_fail(g, CT_ERR_SHAPE, "%s: x %s has %d ax%s; it takes [N, C, H, W]", op, SHP(nx->shape, s),
                      nx->shape.ndim, nx->shape.ndim == 1 ? "is" : "es");
        return false;
    }
    return true;
}

/* "kernel 5x5" etc. for messages. */
static const char *pair_str(const int v[2], char *buf, size_t cap) {
    snprintf(buf, cap, "%dx%d", v[0], v[1]);
    return buf;
}

/* The parts of a window both convolution and pooling have: positive
 * stride, non-negative padding, positive dilation, and a (dilated) kernel
 * no larger than the padded input. Sets the output's spatial size. */
static bool window_ok(ct_graph *g, const char *op, ct_shape xs, const ct_window2d *w, int64_t out_hw[2]) {
    char s[CT_SHAPE_STR], a[32], b[32], c[32];
    for (int i = 0; i < 2; i++) {
        const char *axis = i == 0 ? "height" : "width";
        if (w->stride[i] < 1) {
            ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: stride %s; it must be >= 1 (x %s)", op,
                          pair_str(w->stride, a, sizeof a), SHP(xs, s));
            return false;
        }
        if (w->pad[i] < 0) {
            ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: padding %s; it must be >= 0 (x %s)", op,
                          pair_str(w->pad, a, sizeof a), SHP(xs, s));
            return false;
        }
        if (w->dilation[i] < 1) {
            ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: dilation %s; it must be >= 1 (x %s)", op,
                          pair_str(w->dilation, a, sizeof a), SHP(xs, s));
            return false;
        }
        int64_t in = xs.dim[2 + i];
        out_hw[i] = ct_window_out(in, w->kernel[i], w->stride[i], w->pad[i], w->dilation[i]);
        if (out_hw[i] < 1) {
            int64_t span = (int64_t)w->dilation[i] * (w->kernel[i] - 1) + 1;
            ct_graph_fail(g, CT_ERR_SHAPE,
                          "%s: kernel %s (dilation %s) spans %lld along the %s, more than the padded input's "
                          "%lld (x %s, padding %s)",
                          op, pair_str(w->kernel, a, sizeof a), pair_str(w->dilation, b, sizeof b), (long long)span,
                          axis, (long long)(in + 2 * (int64_t)w->pad[i]), SHP(xs, s),
                          pair_str(w->pad, c, sizeof c));
            return false;
        }
    }
    return true;
}

ct_node ct_conv2d(ct_graph *g, ct_node x, ct_node weight, ct_node bias, ct_conv2d_geom geom) {
    const char *op = "conv2d";
    ct_node req[2] = {x, weight};
    if (!ct_graph_inputs_ok(g, op, req, 2)) return CT_NO_NODE;
    bool has_b = bias != CT_NO_NODE;
    if (!has_b && g->status != CT_OK) return CT_NO_NODE; /* a failed bias builder, already reported */
    if (has_b && !ct_graph_inputs_ok(g, op, &bias, 1)) return CT_NO_NODE;
    if (!image_ok(g, op, x)) return CT_NO_NODE;
    /* The precision policy's rule of matrix products (core/autocast.h):
     * under FP16/BF16, x and weight in the half type, an F32 result
     * accumulated in FP32. The bias is added to that result in its dtype,
     * so a half bias is widened (exactly) rather than the sum rounded. */
    ct_node opnd[2] = {x, weight};
    ct_dtype out_dt;
    if (!ct_autocast_operands(g, opnd, 2, &out_dt)) return CT_NO_NODE;
    x = opnd[0], weight = opnd[1];
    bool mixed = out_dt != g->nodes[x].dtype;
    if (mixed && has_b && (g->nodes[bias].dtype == CT_F16 || g->nodes[bias].dtype == CT_BF16) &&
        (bias = ct_cast_folded(g, bias, out_dt)) == CT_NO_NODE)
        return CT_NO_NODE;
    /* Only now: the casts above may have moved g->nodes. */
    const ct_nodeinfo *nx = &g->nodes[x], *nw = &g->nodes[weight];
    ct_shape xs = nx->shape, ws = nw->shape;
    char sx[CT_SHAPE_STR], sw[CT_SHAPE_STR], sb[CT_SHAPE_STR];
    if (nw->dtype != nx->dtype)
        return ct_graph_fail(g, CT_ERR_DTYPE, "%s: x is %s but weight is %s; cast one (ct_cast)", op,
                             ct_dtype_name(nx->dtype), ct_dtype_name(nw->dtype));
    if (ws.ndim != 4)
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: weight %s must be [O, C / groups, KH, KW]", op, SHP(ws, sw));
    if (ws.dim[2] > INT_MAX || ws.dim[3] > INT_MAX)
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: weight %s: kernel too large", op, SHP(ws, sw));
    int64_t c = xs.dim[1], o = ws.dim[0];
    int groups = geom.groups;
    if (groups < 1)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: groups = %d; it must be >= 1", op, groups);
    if (c % groups != 0)
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: groups %d does not divide the %lld input channels of x %s", op,
                             groups, (long long)c, SHP(xs, sx));
    if (o % groups != 0)
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: groups %d does not divide the %lld output channels of weight %s",
                             op, groups, (long long)o, SHP(ws, sw));
    if (ws.dim[1] * groups != c)
        return ct_graph_fail(g, CT_ERR_SHAPE, "%s: x %s has %lld channels, but weight %s with groups %d takes %lld",
                             op, SHP(xs, sx), (long long)c, SHP(ws, sw), groups, (long long)(ws.dim[1] * groups));
    if (has_b) {
        const ct_nodeinfo *nb = &g->nodes[bias];
        if (nb->dtype != out_dt)
            return ct_graph_fail(g, CT_ERR_DTYPE, "%s: bias is %s; x and weight are %s%s%s", op,
                                 ct_dtype_name(nb->dtype), ct_dtype_name(nx->dtype),
                                 mixed ? " with an output in " : "", mixed ? ct_dtype_name(out_dt) : "");
        if (nb->shape.ndim != 1 || nb->shape.dim[0] != o)
            return ct_graph_fail(g, CT_ERR_SHAPE, "%s: bias %s does not match weight %s (want [%lld])", op,
                                 SHP(nb->shape, sb), SHP(ws, sw), (long long)o);
    }
    ct_window2d w = {.kernel = {(int)ws.dim[2], (int)ws.dim[3]},
                     .stride = {geom.stride[0], geom.stride[1]},
                     .pad = {geom.padding[0], geom.padding[1]},
                     .dilation = {geom.dilation[0], geom.dilation[1]},
                     .groups = groups};
    int64_t out_hw[2];
    if (!window_ok(g, op, xs, &w, out_hw)) return CT_NO_NODE;
    ct_node in[3] = {x, weight, bias};
    ct_attrs a = {.win = w, .has_bias = has_b};
    return ct_graph_add(g, CT_OP_CONV2D, out_dt, (ct_shape){4, {xs.dim[0], o, out_hw[0], out_hw[1]}}, in,
                        has_b ? 3 : 2, &a);
}

static ct_node pool(ct_graph *g, ct_op opk, ct_node x, ct_pool2d_geom geom) {
    const char *op = ct_op_name(opk);
    if (!ct_graph_inputs_ok(g, op, &x, 1) || !image_ok(g, op, x)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    char s[CT_SHAPE_STR], a[32], b[32];
    for (int i = 0; i < 2; i++)
        if (geom.kernel[i] < 1)
            return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: kernel %s; it must be >= 1 (x %s)", op,
                                 pair_str(geom.kernel, a, sizeof a), SHP(xs, s));
    ct_window2d w = {.kernel = {geom.kernel[0], geom.kernel[1]},
                     .stride = {geom.stride[0], geom.stride[1]},
                     .pad = {geom.padding[0], geom.padding[1]},
                     .dilation = {1, 1},
                     .groups = 1};
    int64_t out_hw[2];
    if (!window_ok(g, op, xs, &w, out_hw)) return CT_NO_NODE;
    /* PyTorch's rule; it also keeps every window overlapping the input, so
     * a max is never taken over padding alone. */
    for (int i = 0; i < 2; i++)
        if (w.pad[i] > w.kernel[i] / 2)
            return ct_graph_fail(g, CT_ERR_INVALID_ARG, "%s: padding %s is more than half the kernel %s", op,
                                 pair_str(w.pad, a, sizeof a), pair_str(w.kernel, b, sizeof b));
    ct_attrs at = {.win = w};
    return ct_graph_add(g, opk, g->nodes[x].dtype, (ct_shape){4, {xs.dim[0], xs.dim[1], out_hw[0], out_hw[1]}},
                        &x, 1, &at);
}

ct_node ct_max_pool2d(ct_graph *g, ct_node x, ct_pool2d_geom geom) { return pool(g, CT_OP_MAX_POOL2D, x, geom); }
ct_node ct_avg_pool2d(ct_graph *g, ct_node x, ct_pool2d_geom geom) { return pool(g, CT_OP_AVG_POOL2D, x, geom); }

ct_node ct_global_avg_pool2d(ct_graph *g, ct_node x) {
    const char *op = "global_avg_pool2d";
    if (!ct_graph_inputs_ok(g, op, &x, 1) || !image_ok(g, op, x)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    int64_t n = xs.dim[0], c = xs.dim[1];
    ct_node flat = ct_reshape(g, x, (ct_shape){3, {n, c, xs.dim[2] * xs.dim[3]}});
    return ct_reshape(g, ct_mean(g, flat, 2, false), (ct_shape){4, {n, c, 1, 1}});
}

ct_node ct_flatten(ct_graph *g, ct_node x, int start_axis) {
    if (!ct_graph_inputs_ok(g, "flatten", &x, 1)) return CT_NO_NODE;
    ct_shape xs = g->nodes[x].shape;
    char s[CT_SHAPE_STR];
    /* A scalar flattens to [1], as in PyTorch. */
    int nd = xs.ndim > 0 ? xs.ndim : 1;
    int a = ct_resolve_axis(start_axis, nd);
    if (a < 0)
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "flatten: start axis %d is out of range for x %s", start_axis,
                             SHP(xs, s));
    ct_shape out = {a + 1, {0}};
    for (int d = 0; d < a; d++) out.dim[d] = xs.dim[d];
    out.dim[a] = -1;
    return ct_reshape(g, x, out);
}

ct_node ct_dropout2d(ct_graph *g, ct_node x, double p) {
    if (!ct_graph_inputs_ok(g, "dropout2d", &x, 1)) return CT_NO_NODE;
    const ct_nodeinfo *nx = &g->nodes[x];
    char s[CT_SHAPE_STR];
    if (!(p >= 0.0 && p <= 1.0))
        return ct_graph_fail(g, CT_ERR_INVALID_ARG, "dropout2d: p = %g is outside [0, 1]", p);
    if (!ct_dtype_is_float(nx->dtype))
        return ct_graph_fail(g, CT_ERR_DTYPE, "dropout2d: input is %s; it takes floats", ct_dtype_name(nx->dtype));
    if (nx->shape.ndim < 2)
        return ct_graph_fail(g, CT_ERR_SHAPE, "dropout2d: x %s; it takes [N, C, ...] (channels on axis 1)",
                             SHP(nx->shape, s));
    /* Its own stream, shared with its backward, as ct_dropout. */
    ct_attrs a = {.alpha = p, .stream = ++g->next_stream};
    return ct_graph_add(g, CT_OP_DROPOUT2D, nx->dtype, nx->shape, &x, 1, &a);
}
