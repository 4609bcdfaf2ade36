/* Helpers of the layer tests (test_nn.c, test_nn_norm.c): shapes, fresh
 * random inputs that are never zero (a Philox stream), a one-output
 * compile, and checks of a layer's parameters and of values against a
 * reference. Static inline: each test executable that includes this gets
 * its own copy. */
#ifndef CTRAIN_TESTS_NN_LAYERS_H
#define CTRAIN_TESTS_NN_LAYERS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <ctrain/ctrain.h>

#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

/* Values in [lo, hi] with |v| >= 0.05: never zero. */
static inline void rand_fill(double *v, size_t n, uint64_t seed, double lo, double hi) {
    for (size_t i = 0; i < n; i++) {
        uint64_t k = i;
        double x;
        do {
            x = lo + (hi - lo) * ct_philox_uniform(seed, 3, 0, k);
            k += n;
        } while (fabs(x) < 0.05);
        v[i] = x;
    }
}

static inline double *rand_new(size_t n, uint64_t seed, double lo, double hi) {
    double *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    rand_fill(v, n, seed, lo, hi);
    return v;
}

static inline ct_program *compile1(ct_graph *g, ct_node out) {
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &out, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    return p;
}

static inline void run_ok(ct_program *p) { cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error()); }

static inline void expect_param(ct_graph *g, const char *name, const char *op, ct_shape shape) {
    ct_node n = ct_find(g, name);
    cr_assert_neq(n, CT_NO_NODE, "no node '%s'", name);
    cr_assert_str_eq(ct_node_op(g, n), op, "'%s' is a %s, want %s", name, ct_node_op(g, n), op);
    char a[96], b[96];
    cr_assert(ct_shape_equal(ct_node_shape(g, n), shape), "'%s' is %s, want %s", name,
              ct_shape_str(ct_node_shape(g, n), a, sizeof a), ct_shape_str(shape, b, sizeof b));
}

static inline void close_all(const double *got, const double *want, size_t n, double tol, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])), "%s[%zu] = %.15g, want %.15g", what, i,
                  got[i], want[i]);
}

#endif
