/* Views: values the planner places where their input already lies instead
 * of copying them (core/program.c): reshapes, slices whose window is one
 * aligned run of their input, and concatenations of such runs side by side
 * in order. Each case checks where the value lies (ct_program_node_data)
 * and what it holds; the cases that must be copied are checked too. A GPT
 * training step, whose q, k and v are slices of one [3, B, H, T, D] value,
 * gives the same bits planned (views) as with a private buffer for every
 * value (no views), and so do 200 random graphs of slices, reshapes and
 * concatenations. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/program_impl.h"
#include "core/program_internal.h"
#include "gpt_step.h"

TestSuite(views, .timeout = 120);

static const ct_device cpu = {CT_DEVICE_CPU, 0};

/* x [R, W] filled with 0.25 + i / 8 - R W / 16: distinct, non-zero, both signs. */
static void feed(ct_program *p, int64_t R, int64_t W) {
    float *x = malloc((size_t)(R * W) * sizeof *x);
    for (int64_t i = 0; i < R * W; i++) x[i] = 0.25f + (float)i / 8.0f - (float)(R * W) / 16.0f;
    cr_assert_eq(ct_program_set_input(p, "x", x, (size_t)(R * W) * sizeof *x), CT_OK, "%s", ct_last_error());
    free(x);
}

static ct_program *compile_outputs(ct_graph *g, ct_node *outs, int n) {
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = cpu, .outputs = outs, .n_outputs = n});
    cr_assert_not_null(p, "%s", ct_last_error());
    return p;
}

static const char *data_of(const ct_program *p, ct_node n) {
    const char *d = ct_program_node_data(p, n, NULL, NULL);
    cr_assert_not_null(d, "node %d has no readable buffer", (int)n);
    return d;
}

/* Rows [r0, r0 + rows) of y = 2x, as read from node n, are 2x's. */
static void holds_rows(const ct_program *p, ct_node n, int64_t r0, int64_t rows, int64_t W, int64_t R) {
    float *got = malloc((size_t)(rows * W) * sizeof *got);
    cr_assert_eq(ct_program_read(p, n, got, (size_t)(rows * W) * sizeof *got), CT_OK, "%s", ct_last_error());
    for (int64_t i = 0; i < rows * W; i++) {
        float x = 0.25f + (float)(r0 * W + i) / 8.0f - (float)(R * W) / 16.0f;
        cr_assert_eq(got[i], 2.0f * x, "element %lld: %g, want %g", (long long)i, got[i], 2.0f * x);
    }
    free(got);
}

/* y = x + x over an input x [R, W]: a planned value to take views of. */
typedef struct rig {
    ct_graph *g;
    ct_node x, y;
    ct_program *p;
    int64_t R, W;
} rig;

static rig rig_open(int64_t R, int64_t W) {
    rig r = {.g = ct_graph_new(), .R = R, .W = W};
    r.x = ct_input(r.g, "x", CT_F32, (ct_shape){2, {R, W}});
    r.y = ct_add(r.g, r.x, r.x);
    return r;
}

/* Compiles the program with outputs outs[0..n), feeds x and runs it. */
static void rig_run(rig *r, ct_node *outs, int n) {
    r->p = compile_outputs(r->g, outs, n);
    feed(r->p, r->R, r->W);
    cr_assert_eq(ct_program_run(r->p), CT_OK, "%s", ct_last_error());
}

static void rig_close(rig *r) {
    ct_program_free(r->p);
    ct_graph_free(r->g);
}

/* [3, 64] floats: rows of 256 bytes, the arena's alignment. */
Test(views, slices_of_the_leading_axis_are_views) {
    rig r = rig_open(3, 64);
    ct_graph *g = r.g;
    ct_node y = r.y;
    ct_node outs[4] = {y, ct_slice(g, y, 0, 0, 1), ct_slice(g, y, 0, 1, 2), ct_slice(g, y, 0, 1, 3)};
    rig_run(&r, outs, 4);
    const ct_program *p = r.p;
    cr_assert_eq(data_of(p, outs[1]), data_of(p, y));
    cr_assert_eq(data_of(p, outs[2]), data_of(p, y) + 256);
    cr_assert_eq(data_of(p, outs[3]), data_of(p, y) + 256);
    holds_rows(p, outs[1], 0, 1, 64, 3);
    holds_rows(p, outs[2], 1, 1, 64, 3);
    holds_rows(p, outs[3], 1, 2, 64, 3);
    rig_close(&r);
}

/* A window that does not start on the alignment, one inside every row, and
 * a slice of a source (an input keeps its own buffer) are copies. */
Test(views, other_windows_are_copied) {
    rig r = rig_open(3, 10);
    ct_graph *g = r.g;
    ct_node y = r.y;
    ct_node outs[4] = {y, ct_slice(g, y, 0, 1, 2), ct_slice(g, y, 1, 0, 5), ct_slice(g, r.x, 0, 0, 1)};
    rig_run(&r, outs, 4);
    const ct_program *p = r.p;
    const char *base = data_of(p, y), *end = base + 30 * sizeof(float);
    for (int i = 1; i < 4; i++) {
        const char *d = data_of(p, outs[i]);
        cr_assert(d < base || d >= end, "output %d lies inside y", i);
    }
    holds_rows(p, outs[1], 1, 1, 10, 3);
    float cols[15];
    cr_assert_eq(ct_program_read(p, outs[2], cols, sizeof cols), CT_OK);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) {
            float want = 2.0f * (0.25f + (float)(r * 10 + c) / 8.0f - 30.0f / 16.0f);
            cr_assert_eq(cols[r * 5 + c], want, "[%d, %d]: %g, want %g", r, c, cols[r * 5 + c], want);
        }
    float row[10];
    cr_assert_eq(ct_program_read(p, outs[3], row, sizeof row), CT_OK);
    for (int c = 0; c < 10; c++) cr_assert_eq(row[c], 0.25f + (float)c / 8.0f - 30.0f / 16.0f);
    rig_close(&r);
}

/* The parts side by side, in order, are the value itself; in another order
 * they are copied into a buffer of their own. */
Test(views, a_concat_of_views_in_order_is_a_view) {
    rig r = rig_open(3, 64);
    ct_graph *g = r.g;
    ct_node y = r.y;
    ct_node s[3];
    for (int i = 0; i < 3; i++) s[i] = ct_reshape(g, ct_slice(g, y, 0, i, i + 1), (ct_shape){2, {1, 64}});
    ct_node swapped[3] = {s[1], s[0], s[2]};
    ct_node outs[3] = {y, ct_concat(g, s, 3, 0), ct_concat(g, swapped, 3, 0)};
    rig_run(&r, outs, 3);
    const ct_program *p = r.p;
    cr_assert_eq(data_of(p, outs[1]), data_of(p, y));
    holds_rows(p, outs[1], 0, 3, 64, 3);
    const char *d = data_of(p, outs[2]), *base = data_of(p, y);
    cr_assert(d < base || d >= base + 3 * 64 * sizeof(float), "the swapped concat lies inside y");
    float got[3 * 64], want[3 * 64];
    cr_assert_eq(ct_program_read(p, outs[2], got, sizeof got), CT_OK);
    cr_assert_eq(ct_program_read(p, y, want, sizeof want), CT_OK);
    cr_assert(memcmp(got, want + 64, 64 * sizeof(float)) == 0 && memcmp(got + 64, want, 64 * sizeof(float)) == 0 &&
                  memcmp(got + 128, want + 128, 64 * sizeof(float)) == 0,
              "the swapped concat holds rows 1, 0, 2 of y");
    rig_close(&r);
}

/* Adds p's slices and concatenations to *ops, and those that are views
 * (output inside the first input's bytes for a slice, at them for a
 * concatenation) to *slices and *concats. */
static void count_views(const ct_program *p, int *ops, int *slices, int *concats) {
    for (int k = 0; k < p->n_exec; k++) {
        const ct_kargs *a = &p->kargs[k];
        if (a->op != CT_OP_SLICE && a->op != CT_OP_CONCAT) continue;
        const char *in = a->in[0].data, *out = a->out.data;
        size_t bytes = (size_t)a->in[0].numel * ct_dtype_size(a->in[0].dtype);
        *ops += 1;
        if (a->op == CT_OP_SLICE) *slices += out >= in && out < in + bytes;
        else *concats += out == in;
    }
}

/* One GPT training step's loss and gradients, planned or not. Planned, the
 * slices that make q, k, v and their gradients are views. */
static float gpt_step(bool planned, float **grads, size_t *n) {
    ct_graph *g = ct_graph_new();
    ct_node loss;
    ct_program *p = gs_compile(g, cpu, !planned, &loss);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    int ops = 0, views = 0, concats = 0;
    if (planned) count_views(p, &ops, &views, &concats);
    cr_assert(!planned || views == 6 * gs_cfg.n_layer, "%d slices are views, want %lld", views,
              (long long)(6 * gs_cfg.n_layer));
    float l = gs_results(p, loss, grads, n);
    ct_program_free(p);
    ct_graph_free(g);
    return l;
}

Test(views, a_gpt_step_gives_the_same_bits_with_views_or_without) {
    float *gv, *gp;
    size_t nv, np;
    float lv = gpt_step(true, &gv, &nv), lp = gpt_step(false, &gp, &np);
    cr_assert(isfinite(lv) && lv > 1.0f, "loss %g", lv);
    cr_assert(memcmp(&lv, &lp, sizeof lv) == 0, "loss %.9g planned, %.9g private", lv, lp);
    cr_assert_eq(nv, np);
    size_t nonzero = 0;
    for (size_t i = 0; i < nv; i++) {
        cr_assert(memcmp(&gv[i], &gp[i], sizeof *gv) == 0, "gradient %zu: %.9g planned, %.9g private", i, gv[i],
                  gp[i]);
        nonzero += gv[i] != 0;
    }
    cr_assert_gt(nonzero, nv / 2, "the gradients are real values");
    free(gv), free(gp);
}

/* ---- random graphs of views: planned against private buffers ----------- */

static uint64_t rs = 0x243f6a8885a308d3ull;

static int64_t rnd(int64_t n) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (int64_t)((rs >> 33) % (uint64_t)n);
}

/* Appends to the pool a random op on a random member: a slice (any axis,
 * any window), a reshape (a leading axis of 1 added, or the value
 * flattened), a concatenation of two or three slices of one member along
 * an axis (in order or not), or a + a (a new planned value). Views and
 * copies mix, aligned or not, as the shapes fall. */
static void grow(ct_graph *g, ct_node *pool, int *n) {
    ct_node a = pool[rnd(*n)];
    ct_shape s = ct_node_shape(g, a);
    int axis = (int)rnd(s.ndim), kind = (int)rnd(4);
    int64_t len = s.dim[axis], lo = rnd(len), hi = lo + 1 + rnd(len - lo);
    ct_node r;
    if (kind == 0) {
        r = ct_slice(g, a, axis, lo, hi);
    } else if (kind == 1) {
        ct_shape t = {1, {ct_shape_numel(s)}};
        if (s.ndim < CT_MAX_DIMS && rnd(2)) {
            t.ndim = s.ndim + 1, t.dim[0] = 1;
            for (int d = 0; d < s.ndim; d++) t.dim[d + 1] = s.dim[d];
        }
        r = ct_reshape(g, a, t);
    } else if (kind == 2 && len >= 2) {
        int64_t cut = 1 + rnd(len - 1);
        ct_node parts[3] = {ct_slice(g, a, axis, 0, cut), ct_slice(g, a, axis, cut, len), ct_slice(g, a, axis, 0, cut)};
        int np = 2 + (int)rnd(2);
        if (rnd(2)) parts[0] = parts[1], parts[1] = ct_slice(g, a, axis, 0, cut); /* out of order */
        r = ct_concat(g, parts, np, axis);
    } else {
        r = ct_add(g, a, a);
    }
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    pool[(*n)++] = r;
}

/* Slices and concatenations run so far by the planned programs, and those
 * of them that were views. */
static int shape_ops, shape_views;

/* Every output and x's gradient of one compiled program, as bytes. */
static float *run_all(ct_graph *g, const ct_node *outs, int n_out, ct_node x, bool no_plan, size_t *floats) {
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = cpu, .outputs = outs, .n_outputs = n_out,
                                                     .grads = true, .no_plan = no_plan});
    cr_assert_not_null(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    if (!no_plan) count_views(p, &shape_ops, &shape_views, &shape_views);
    size_t total = (size_t)ct_shape_numel(ct_node_shape(g, x));
    for (int i = 0; i < n_out; i++) total += (size_t)ct_shape_numel(ct_node_shape(g, outs[i]));
    float *v = malloc(total * sizeof *v), *at = v;
    for (int i = 0; i < n_out; i++) {
        size_t k = (size_t)ct_shape_numel(ct_node_shape(g, outs[i]));
        cr_assert_eq(ct_program_read(p, outs[i], at, k * sizeof *v), CT_OK, "%s", ct_last_error());
        at += k;
    }
    size_t k = (size_t)ct_shape_numel(ct_node_shape(g, x));
    cr_assert_eq(ct_program_read(p, ct_grad(g, x), at, k * sizeof *v), CT_OK, "%s", ct_last_error());
    *floats = total;
    ct_program_free(p);
    return v;
}

/* 200 random graphs: x, a parameter [A, B, C] (C of 16 or 64 floats keeps
 * some windows on the alignment, 10 or 33 does not), x + x, then twelve
 * random ops; the outputs are the last four values and the loss, the sum
 * of every value times itself, so every view has a gradient too. Planned
 * and with private buffers, every output and x's gradient must be the same
 * bits; over the trials, more than 100 slices and concatenations must have
 * been views and more than 100 copies. */
Test(views, random_graphs_of_views_give_the_bits_of_private_buffers) {
    static const int64_t widths[4] = {16, 64, 10, 33};
    for (int trial = 0; trial < 200; trial++) {
        ct_graph *g = ct_graph_new();
        ct_graph_set_seed(g, (uint64_t)trial + 1);
        ct_shape xs = {3, {1 + rnd(4), 1 + rnd(5), widths[rnd(4)]}};
        ct_node x = ct_param(g, "x", CT_F32, xs, ct_init_normal(0.0, 1.0));
        ct_node pool[64];
        int n = 0;
        pool[n++] = ct_add(g, x, x);
        for (int i = 0; i < 12; i++) grow(g, pool, &n);
        ct_node loss = ct_sum(g, ct_mul(g, pool[0], pool[0]), CT_AXIS_ALL, false);
        for (int i = 1; i < n; i++) loss = ct_add(g, loss, ct_sum(g, ct_mul(g, pool[i], pool[i]), CT_AXIS_ALL, false));
        cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
        ct_node outs[5] = {pool[n - 1], pool[n - 2], pool[n - 3], pool[n - 4], loss};
        size_t na, nb;
        float *a = run_all(g, outs, 5, x, false, &na), *b = run_all(g, outs, 5, x, true, &nb);
        cr_assert_eq(na, nb);
        cr_assert(memcmp(a, b, na * sizeof *a) == 0, "trial %d: planned and private results differ", trial);
        free(a), free(b);
        ct_graph_free(g);
    }
    cr_log_info("%d slices and concatenations, %d of them views", shape_ops, shape_views);
    /* both kinds came up, in numbers */
    cr_assert(shape_views > 100 && shape_ops - shape_views > 100, "%d slices and concatenations, %d of them views",
              shape_ops, shape_views);
}
