/* A float64 gradient checker for the test suite.
 *
 * A case describes its inputs (shapes and value ranges) and a builder that
 * turns F64 graph inputs into one output. The checker
 *   - makes the inputs (ct_input F64, marked requires_grad unless told not
 *     to) and fills them with fresh random values from a seeded Philox
 *     stream (never zero: every value keeps a small margin away from 0),
 *   - forms loss = sum(out * R) with R a fixed random F64 constant, so the
 *     upstream gradient of the op is not all ones,
 *   - calls ct_graph_backward, compiles a program with .grads = true whose
 *     outputs are the loss and every ct_grad node, and reads the analytic
 *     gradients of every input and every parameter (ct_param F64, which a
 *     builder may create: the checker overwrites their initial values with
 *     random ones),
 *   - compiles a second, forward-only program sharing the parameters and
 *     compares each gradient element with a central finite difference
 *     (L(x + h) - L(x - h)) / 2h, re-running that program with the element
 *     perturbed.
 * A failure names the case, the input, the worst element (flat index and
 * multi-index), both values and the tolerance.
 *
 * The program step is set to the same value before every run, so a dropout
 * mask is the same in every evaluation and finite differences see one
 * fixed (piecewise linear) function.
 *
 * A case's op counts as checked for the OP_TEST it runs in (op_tests.h):
 * the gradient checks of every differentiable op are declared there, and
 * tests/test_op_coverage.c reads those declarations.
 *
 * Header-only (static functions) because the test build compiles only
 * tests/test_*.c. */
#ifndef CTRAIN_TESTS_GRADCHECK_H
#define CTRAIN_TESTS_GRADCHECK_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "op_tests.h"

#define GC_MAX_IN 8
#define GC_STEP 7u /* the program step of every run (keys dropout masks) */

typedef struct gc_in {
    ct_shape shape;
    double lo, hi;  /* values in [lo, hi]; both 0 means [-1, 1] */
    double margin;  /* |value| >= margin (default 0.01: never zero) */
    bool distinct;  /* well separated values (gaps >> h), e.g. for max */
    bool no_grad;   /* fed, but not differentiated (e.g. a fixed target) */
} gc_in;

typedef ct_node (*gc_build_fn)(ct_graph *g, const ct_node *x, const void *ctx);

typedef struct gc_case {
    const char *name; /* for messages */
    const char *op;   /* if set: the graph must contain a node of this op, and the case
                         checks that op (op_tests.h) */
    int n_in;
    gc_in in[GC_MAX_IN];
    gc_build_fn build;
    const void *ctx;
    double h;         /* finite-difference step (default 1e-6) */
    double rtol;      /* default 1e-5 */
    double atol;      /* default 1e-6 */
    uint64_t seed;    /* value stream (default derived from the name) */
    bool eval;        /* run out of training (dropout off, batch norm on its running
                         statistics); the harness then checks that no buffer moves */
} gc_case;

/* Uniform double in [0, 1) from two Philox draws (48 random bits). */
static double gc_uniform(uint64_t seed, uint32_t stream, uint64_t i) {
    uint32_t hi = ct_philox_u32(seed, stream, 0, 2 * i) >> 8;
    uint32_t lo = ct_philox_u32(seed, stream, 0, 2 * i + 1) >> 8;
    return ((double)hi * 16777216.0 + (double)lo) * 0x1p-48;
}

static uint64_t gc_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Fills v[0..n) with values in [lo, hi] and |v| >= margin (rejection). */
static void gc_fill(double *v, int64_t n, double lo, double hi, double margin, uint64_t seed,
                    uint32_t stream) {
    if (lo == 0.0 && hi == 0.0) {
        lo = -1.0;
        hi = 1.0;
    }
    uint64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        double x;
        int tries = 0;
        do {
            x = lo + (hi - lo) * gc_uniform(seed, stream, k++);
            tries++;
        } while (fabs(x) < margin && tries < 1000);
        cr_assert(fabs(x) >= margin, "gradcheck: cannot draw values in [%g, %g] with |x| >= %g", lo, hi,
                  margin);
        v[i] = x;
    }
}

/* Distinct, well separated values: a random permutation of n evenly spaced
 * levels in [lo, hi], each jittered by at most 15% of the spacing. */
static void gc_fill_distinct(double *v, int64_t n, double lo, double hi, uint64_t seed, uint32_t stream) {
    if (lo == 0.0 && hi == 0.0) {
        lo = -1.0;
        hi = 1.0;
    }
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    cr_assert_not_null(perm);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(gc_uniform(seed, stream, (uint64_t)i) * (double)(i + 1));
        if (j > i) j = i;
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    double step = (hi - lo) / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double jitter = (gc_uniform(seed, stream + 1000u, (uint64_t)i) - 0.5) * 0.3;
        v[i] = lo + step * ((double)perm[i] + 0.5 + jitter);
    }
    free(perm);
}

static const char *gc_index_str(ct_shape s, int64_t flat, char *buf, size_t cap) {
    int64_t idx[CT_MAX_DIMS];
    for (int d = s.ndim - 1; d >= 0; d--) {
        idx[d] = flat % s.dim[d];
        flat /= s.dim[d];
    }
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < s.ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

/* The worst mismatch over all checked elements. */
typedef struct gc_worst {
    double ratio; /* |analytic - numeric| / tolerance; > 1 fails */
    double analytic, numeric, tol;
    char what[64]; /* "input x0", "param 'W1'" */
    ct_shape shape;
    int64_t index;
    int checked;
} gc_worst;

static void gc_compare(gc_worst *w, const char *what, ct_shape shape, int64_t index, double analytic,
                       double numeric, double rtol, double atol) {
    double tol = atol + rtol * fmax(fabs(analytic), fabs(numeric));
    double err = fabs(analytic - numeric);
    double ratio = isfinite(analytic) && isfinite(numeric) ? err / tol : INFINITY;
    w->checked++;
    if (ratio > w->ratio || w->checked == 1) {
        w->ratio = ratio;
        w->analytic = analytic;
        w->numeric = numeric;
        w->tol = tol;
        snprintf(w->what, sizeof w->what, "%s", what);
        w->shape = shape;
        w->index = index;
    }
}

static double gc_loss(ct_program *p, ct_node loss) {
    ct_program_set_step(p, GC_STEP);
    ct_status st = ct_program_run(p);
    cr_assert_eq(st, CT_OK, "gradcheck: run failed: %s", ct_last_error());
    double l = NAN;
    cr_assert_eq(ct_program_read(p, loss, &l, sizeof l), CT_OK, "%s", ct_last_error());
    return l;
}

static bool gc_graph_has_op(const ct_graph *g, const char *op) {
    int n = ct_graph_num_nodes(g);
    for (int i = 0; i < n; i++)
        if (strcmp(ct_node_op(g, i), op) == 0) return true;
    return false;
}

/* The op named (-1 for no op). */
static int gc_op_of(const char *name) {
    for (int op = 0; op < ct_op_count(); op++)
        if (strcmp(ct_op_name(op), name) == 0) return op;
    return -1;
}

/* Fresh random values for every parameter of pg, written there and
 * returned (pnum elements; the alignment gaps stay zero). */
static double *gc_random_params(const gc_case *c, ct_graph *g, ct_program *pg, uint64_t seed) {
    size_t pnum = ct_program_param_numel(pg);
    cr_assert_eq(ct_program_param_dtype(pg), CT_F64, "%s: parameters must be f64", c->name);
    double *pv = calloc(pnum, sizeof *pv);
    cr_assert_not_null(pv);
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node pn = ct_graph_param(g, i);
        size_t off = ct_program_param_offset(pg, pn);
        int64_t pnel = ct_shape_numel(ct_node_shape(g, pn));
        cr_assert_leq(off + (size_t)pnel, pnum);
        gc_fill(pv + off, pnel, -1.0, 1.0, 0.01, seed, 100u + (uint32_t)i);
    }
    cr_assert_eq(ct_program_write_params(pg, pv, pnum * sizeof *pv), CT_OK, "%s", ct_last_error());
    return pv;
}

/* The inputs' half of gc_run: each input's gradient node against central
 * differences of the forward program pf, perturbing xv in place. */
static void gc_check_inputs(const gc_case *c, ct_graph *g, const ct_node *x, double *const *xv, const int64_t *xn,
                            char (*names)[16], ct_program *pg, ct_program *pf, ct_node loss, double h, double rtol,
                            double atol, gc_worst *w) {
    char what[64];
    for (int i = 0; i < c->n_in; i++) {
        if (c->in[i].no_grad) continue;
        double *ga = calloc((size_t)xn[i], sizeof *ga);
        cr_assert_not_null(ga);
        ct_node gn = ct_grad(g, x[i]);
        if (gn != CT_NO_NODE) {
            cr_assert(ct_shape_equal(ct_node_shape(g, gn), c->in[i].shape), "%s: gradient of x%d has a wrong shape",
                      c->name, i);
            cr_assert_eq(ct_program_read(pg, gn, ga, (size_t)xn[i] * sizeof *ga), CT_OK, "%s: %s", c->name,
                         ct_last_error());
        }
        snprintf(what, sizeof what, "input x%d", i);
        for (int64_t j = 0; j < xn[i]; j++) {
            double keep = xv[i][j];
            xv[i][j] = keep + h;
            ct_program_set_input(pf, names[i], xv[i], (size_t)xn[i] * sizeof(double));
            double lp = gc_loss(pf, loss);
            xv[i][j] = keep - h;
            ct_program_set_input(pf, names[i], xv[i], (size_t)xn[i] * sizeof(double));
            double lm = gc_loss(pf, loss);
            xv[i][j] = keep;
            gc_compare(w, what, c->in[i].shape, j, ga[j], (lp - lm) / (2 * h), rtol, atol);
        }
        ct_program_set_input(pf, names[i], xv[i], (size_t)xn[i] * sizeof(double));
        free(ga);
    }
}

/* The parameters' half of gc_run: each gradient node against the flat
 * gradient buffer (same values at the same offset, and zeros in the
 * alignment gaps: the buffer is read once), then against central
 * differences of the forward program pf, perturbing pv in place. */
static void gc_check_params(const gc_case *c, ct_graph *g, ct_program *pg, ct_program *pf, ct_node loss, double *pv,
                            size_t pnum, double h, double rtol, double atol, gc_worst *w) {
    int np = ct_graph_num_params(g);
    double *flat = malloc(pnum * sizeof *flat);
    bool *used = calloc(pnum, sizeof *used);
    cr_assert(flat && used);
    cr_assert_eq(ct_program_read_grads(pg, flat, pnum * sizeof *flat), CT_OK, "%s", ct_last_error());
    char what[64];
    for (int i = 0; i < np; i++) {
        ct_node pn = ct_graph_param(g, i);
        ct_shape ps = ct_node_shape(g, pn);
        int64_t pnel = ct_shape_numel(ps);
        size_t off = ct_program_param_offset(pg, pn);
        double *ga = calloc((size_t)pnel, sizeof *ga);
        cr_assert_not_null(ga);
        ct_node gn = ct_grad(g, pn);
        if (gn != CT_NO_NODE)
            cr_assert_eq(ct_program_read(pg, gn, ga, (size_t)pnel * sizeof *ga), CT_OK, "%s: %s", c->name,
                         ct_last_error());
        /* The flat gradient buffer holds the same values at the same offset. */
        cr_assert(memcmp(flat + off, ga, (size_t)pnel * sizeof *ga) == 0,
                  "%s: ct_program_read_grads disagrees with the gradient node of '%s'", c->name,
                  ct_node_name(g, pn));
        for (int64_t j = 0; j < pnel; j++) used[off + (size_t)j] = true;
        snprintf(what, sizeof what, "param '%s'", ct_node_name(g, pn));
        for (int64_t j = 0; j < pnel; j++) {
            double keep = pv[off + (size_t)j];
            pv[off + (size_t)j] = keep + h;
            ct_program_write_params(pf, pv, pnum * sizeof *pv);
            double lp = gc_loss(pf, loss);
            pv[off + (size_t)j] = keep - h;
            ct_program_write_params(pf, pv, pnum * sizeof *pv);
            double lm = gc_loss(pf, loss);
            pv[off + (size_t)j] = keep;
            gc_compare(w, what, ps, j, ga[j], (lp - lm) / (2 * h), rtol, atol);
        }
        ct_program_write_params(pf, pv, pnum * sizeof *pv);
        free(ga);
    }
    /* the gradient buffer's alignment gaps are zero */
    for (size_t k = 0; k < pnum; k++)
        if (!used[k]) cr_assert_eq(flat[k], 0.0, "%s: gradient buffer gap element %zu is %g", c->name, k, flat[k]);
    free(flat);
    free(used);
}

/* Runs the check and returns the worst element (ratio <= 1: a pass).
 * Set-up failures (a graph that does not build, a run that fails) fail the
 * current test at once. */
/* The case's inputs x0, x1, ... as F64 graph inputs, with their random
 * values (xv, xn elements each). */
static void gc_make_inputs(const gc_case *c, ct_graph *g, uint64_t seed, ct_node *x, char (*names)[16], double **xv,
                           int64_t *xn) {
    for (int i = 0; i < c->n_in; i++) {
        const gc_in *in = &c->in[i];
        snprintf(names[i], sizeof names[i], "x%d", i);
        x[i] = ct_input(g, names[i], CT_F64, in->shape);
        cr_assert_neq(x[i], CT_NO_NODE, "%s: ct_input: %s", c->name, ct_last_error());
        if (!in->no_grad)
            cr_assert_eq(ct_set_requires_grad(g, x[i], true), CT_OK, "%s: %s", c->name, ct_last_error());
        xn[i] = ct_shape_numel(in->shape);
        xv[i] = malloc((size_t)xn[i] * sizeof(double));
        cr_assert_not_null(xv[i]);
        if (in->distinct)
            gc_fill_distinct(xv[i], xn[i], in->lo, in->hi, seed, 10u + (uint32_t)i);
        else
            gc_fill(xv[i], xn[i], in->lo, in->hi, in->margin > 0 ? in->margin : 0.01, seed, 10u + (uint32_t)i);
    }
}

/* The training program (loss and every gradient) and a forward program
 * sharing its parameters. */
static ct_program *gc_compile_pair(const gc_case *c, ct_graph *g, const ct_node *x, ct_node loss, int np,
                                   ct_program **forward) {
    ct_node *outs = malloc((size_t)(1 + c->n_in + np) * sizeof *outs);
    cr_assert_not_null(outs);
    int n_out = 0;
    outs[n_out++] = loss;
    for (int i = 0; i < c->n_in; i++)
        if (!c->in[i].no_grad && ct_grad(g, x[i]) != CT_NO_NODE) outs[n_out++] = ct_grad(g, x[i]);
    for (int i = 0; i < np; i++)
        if (ct_grad(g, ct_graph_param(g, i)) != CT_NO_NODE) outs[n_out++] = ct_grad(g, ct_graph_param(g, i));

    ct_program *pg = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = n_out, .grads = true});
    cr_assert_not_null(pg, "%s: ct_compile (grads): %s", c->name, ct_last_error());
    ct_program *pf = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .share_params = pg});
    cr_assert_not_null(pf, "%s: ct_compile (forward): %s", c->name, ct_last_error());
    free(outs);
    *forward = pf;
    return pg;
}

static gc_worst gc_run(const gc_case *c) {
    double h = c->h > 0 ? c->h : 1e-6;
    double rtol = c->rtol > 0 ? c->rtol : 1e-5;
    double atol = c->atol > 0 ? c->atol : 1e-6;
    uint64_t seed = c->seed ? c->seed : gc_hash(c->name);
    cr_assert(c->n_in >= 0 && c->n_in <= GC_MAX_IN);

    ct_graph *g = ct_graph_new();
    cr_assert_not_null(g);
    ct_graph_set_seed(g, seed);
    ct_node x[GC_MAX_IN];
    char names[GC_MAX_IN][16];
    double *xv[GC_MAX_IN];
    int64_t xn[GC_MAX_IN];
    gc_make_inputs(c, g, seed, x, names, xv, xn);

    ct_node out = c->build(g, x, c->ctx);
    cr_assert_neq(out, CT_NO_NODE, "%s: building the graph failed: %s", c->name, ct_graph_error(g));
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s: %s", c->name, ct_graph_error(g));
    cr_assert_eq(ct_node_dtype(g, out), CT_F64, "%s: the output must be f64", c->name);
    if (c->op) {
        cr_assert(gc_graph_has_op(g, c->op), "%s: the graph has no %s node", c->name, c->op);
        op_case_ran(gc_op_of(c->op));
    }

    /* loss = sum(out * R), R fixed random with |R| >= 0.1 */
    ct_shape os = ct_node_shape(g, out);
    int64_t on = ct_shape_numel(os);
    double *r = malloc((size_t)on * sizeof *r);
    cr_assert_not_null(r);
    gc_fill(r, on, -1.0, 1.0, 0.1, seed, 1u);
    ct_node rn = ct_constant(g, CT_F64, os, r);
    free(r);
    ct_node loss = ct_sum(g, ct_mul(g, out, rn), CT_AXIS_ALL, false);
    cr_assert_neq(loss, CT_NO_NODE, "%s: %s", c->name, ct_graph_error(g));
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s: ct_graph_backward: %s", c->name, ct_last_error());

    int np = ct_graph_num_params(g);
    ct_program *pf = NULL;
    ct_program *pg = gc_compile_pair(c, g, x, loss, np, &pf);
    size_t bnum = ct_program_buffer_numel(pg);
    double *buf0 = NULL;
    if (c->eval) {
        ct_program_set_training(pg, false);
        ct_program_set_training(pf, false);
        buf0 = malloc((bnum ? bnum : 1) * sizeof *buf0);
        cr_assert_not_null(buf0);
        if (bnum) memcpy(buf0, ct_program_buffers(pg), bnum * sizeof *buf0); /* CPU: host memory */
    }

    size_t pnum = ct_program_param_numel(pg);
    double *pv = np > 0 ? gc_random_params(c, g, pg, seed) : NULL;
    for (int i = 0; i < c->n_in; i++) {
        size_t bytes = (size_t)xn[i] * sizeof(double);
        cr_assert_eq(ct_program_set_input(pg, names[i], xv[i], bytes), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_set_input(pf, names[i], xv[i], bytes), CT_OK, "%s", ct_last_error());
    }

    double l0 = gc_loss(pg, loss);
    double l1 = gc_loss(pf, loss);
    cr_assert(isfinite(l0), "%s: the loss is %g", c->name, l0);
    cr_assert(fabs(l0 - l1) <= 1e-12 * fmax(1.0, fabs(l0)),
              "%s: the forward program's loss %.17g differs from the training program's %.17g", c->name, l1, l0);

    gc_worst w = {0};
    gc_check_inputs(c, g, x, xv, xn, names, pg, pf, loss, h, rtol, atol, &w);
    if (np > 0) gc_check_params(c, g, pg, pf, loss, pv, pnum, h, rtol, atol, &w);

    if (c->eval) { /* out of training, buffers are read, never written */
        cr_assert(bnum == 0 || memcmp(buf0, ct_program_buffers(pg), bnum * sizeof *buf0) == 0,
                  "%s: a buffer changed in evaluation mode", c->name);
        free(buf0);
    }
    for (int i = 0; i < c->n_in; i++) free(xv[i]);
    free(pv);
    ct_program_free(pf);
    ct_program_free(pg);
    ct_graph_free(g);
    return w;
}

/* Runs the check; fails the current Criterion test on a mismatch, naming
 * the worst element. Returns the worst ratio (<= 1). With GC_VERBOSE set in
 * the environment, logs the worst element of every case. */
static double gc_check(const gc_case *c) {
    gc_worst w = gc_run(c);
    char idx[128], shp[96];
    cr_assert(w.checked > 0, "%s: nothing to check", c->name);
    if (getenv("GC_VERBOSE"))
        cr_log_info("%s: worst %s element %s: analytic %.12g numeric %.12g ratio %.3g (%d checked)", c->name,
                    w.what, gc_index_str(w.shape, w.index, idx, sizeof idx), w.analytic, w.numeric, w.ratio,
                    w.checked);
    cr_assert(w.ratio <= 1.0,
              "%s: gradient mismatch at %s %s element %lld %s: analytic %.12g, numeric %.12g "
              "(|diff| %.3g > tol %.3g; %d elements checked)",
              c->name, w.what, ct_shape_str(w.shape, shp, sizeof shp), (long long)w.index,
              gc_index_str(w.shape, w.index, idx, sizeof idx), w.analytic, w.numeric,
              fabs(w.analytic - w.numeric), w.tol, w.checked);
    return w.ratio;
}

#endif
