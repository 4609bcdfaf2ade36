/* The fixture of the graph tests (test_graph.c, test_graph_errors.c,
 * test_graph_misuse.c): a fresh graph per test in `g`, shapes, inputs, and
 * the checks of a built node's shape and of a failure (CT_NO_NODE or a
 * status, and a message naming what went wrong). Static inline: each test
 * executable that includes this gets its own copy. */
#ifndef CTRAIN_TESTS_GRAPH_FIXTURE_H
#define CTRAIN_TESTS_GRAPH_FIXTURE_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include <ctrain/ctrain.h>

#define S0 ((ct_shape){0, {0}})
#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})
#define S3(a, b, c) ((ct_shape){3, {a, b, c}})
#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

static ct_graph *g;

static inline void setup(void) {
    g = ct_graph_new();
    cr_assert_not_null(g);
    ct_clear_error();
}
static inline void teardown(void) { ct_graph_free(g); }

static inline ct_node in(const char *name, ct_dtype dt, ct_shape s) {
    ct_node n = ct_input(g, name, dt, s);
    cr_assert_neq(n, CT_NO_NODE, "ct_input %s: %s", name, ct_last_error());
    return n;
}

/* The node exists and has this shape and dtype. */
static inline void expect_shape(ct_node n, ct_shape want, ct_dtype dt, const char *what) {
    char a[96], b[96];
    cr_assert_neq(n, CT_NO_NODE, "%s: failed: %s", what, ct_last_error());
    ct_shape got = ct_node_shape(g, n);
    cr_expect(ct_shape_equal(got, want), "%s: shape %s, want %s", what, ct_shape_str(got, a, sizeof a),
              ct_shape_str(want, b, sizeof b));
    cr_expect_eq(ct_node_dtype(g, n), dt, "%s: dtype %s, want %s", what, ct_dtype_name(ct_node_dtype(g, n)),
                 ct_dtype_name(dt));
}

/* A failed build: CT_NO_NODE, the status in the graph and ct_last_status,
 * and a message (in both places) containing every needle (NULL-ended). */
static inline void expect_build_error(ct_node n, ct_status st, ...) {
    cr_assert_eq(n, CT_NO_NODE, "the builder should have failed (got node %d)", (int)n);
    cr_assert_eq(ct_graph_status(g), st, "graph status %s, want %s (%s)", ct_status_name(ct_graph_status(g)),
                 ct_status_name(st), ct_graph_error(g));
    cr_assert_eq(ct_last_status(), st, "last status %s, want %s", ct_status_name(ct_last_status()),
                 ct_status_name(st));
    const char *msg = ct_graph_error(g);
    cr_assert_str_eq(msg, ct_last_error());
    va_list ap;
    va_start(ap, st);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        cr_expect(strstr(msg, needle) != NULL, "message \"%s\" does not mention \"%s\"", msg, needle);
    va_end(ap);
}

/* A failed call returning a status: the status and message needles. */
static inline void expect_status(ct_status got, ct_status st, ...) {
    cr_assert_eq(got, st, "status %s, want %s (%s)", ct_status_name(got), ct_status_name(st), ct_last_error());
    cr_assert_eq(ct_last_status(), st);
    const char *msg = ct_last_error();
    cr_assert(msg && *msg, "no message");
    va_list ap;
    va_start(ap, st);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        cr_expect(strstr(msg, needle) != NULL, "message \"%s\" does not mention \"%s\"", msg, needle);
    va_end(ap);
}

#endif
