/* Tests that declare which ops they check: the case tables that
 * tests/test_op_coverage.c reads to prove that every op has a gradient
 * check and a GPU parity case.
 *
 *     OP_TEST(gradcheck, add, CT_OP_ADD) { ... }
 *     OP_TEST(cuda_parity, mse_and_bce, CT_OP_MSE, CT_OP_BCE_WITH_LOGITS) { ... }
 *
 * defines the Criterion test gradcheck::add and declares the ops it checks
 * (by name, never by class: the declarations alone must show, without
 * running anything, that a new op has its tests). The harnesses report
 * every case they run (op_case_ran: gc_check in gradcheck.h, cp_run in
 * cuda_parity.h), and an OP_TEST fails when it runs a case of an op it does
 * not declare, or ends without a case of every op it declares. A test that
 * is skipped (no GPU) checks nothing and is not failed for it. So a
 * declaration is exactly what its test checks whenever the test runs.
 *
 * With CTRAIN_LIST_OP_TESTS=1 in the environment, an executable built from
 * a file that includes this prints one line "<op> <suite>::<test>" per op
 * each of its OP_TESTs declares, and exits before running any test.
 *
 * Header-only (static functions): each test executable is one file. */
#ifndef CTRAIN_TESTS_OP_TESTS_H
#define CTRAIN_TESTS_OP_TESTS_H

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/node.h"

/* The list rides in the test's .data, where the runner's listing hook
 * finds it (Criterion passes .data to the runner, not to the worker that
 * runs the body, so the body gets the list directly). */
#define OP_TEST(suite, name, ...)                                                  \
    static const int op_test_ops_##suite##_##name[] = {__VA_ARGS__, -1};           \
    static void op_test_body_##suite##_##name(void);                               \
    Test(suite, name, .data = (void *)op_test_ops_##suite##_##name) {              \
        op_test_begin(op_test_ops_##suite##_##name);                               \
        op_test_body_##suite##_##name();                                           \
        op_test_end();                                                             \
    }                                                                              \
    static void op_test_body_##suite##_##name(void)

/* True when the -1-terminated list names op. */
static inline bool op_test_declares(const int *ops, int op) {
    for (; *ops >= 0; ops++)
        if (*ops == op) return true;
    return false;
}

/* The running OP_TEST's list (NULL in any other test) and the ops it has
 * run cases of. Every test runs in a process of its own. */
static const int *op_test_list;
static bool op_test_seen[CT_OP_COUNT];

static inline void op_test_begin(const int *ops) {
    op_test_list = ops;
    memset(op_test_seen, 0, sizeof op_test_seen);
}

/* Called by the harnesses for every case they run. */
static inline void op_case_ran(int op) {
    if (!op_test_list) return;
    cr_assert(op >= 0 && op < CT_OP_COUNT, "a case of op %d, which is not an op", op);
    cr_assert(op_test_declares(op_test_list, op), "%s::%s runs a case of %s, which its OP_TEST does not declare",
              criterion_current_test->category, criterion_current_test->name, ct_op_name(op));
    op_test_seen[op] = true;
}

static inline void op_test_end(void) {
    for (int op = 0; op < CT_OP_COUNT; op++)
        cr_assert(!op_test_declares(op_test_list, op) || op_test_seen[op],
                  "%s::%s declares %s but ran no case of it", criterion_current_test->category,
                  criterion_current_test->name, ct_op_name(op));
    op_test_list = NULL;
}

/* The listing (runs in the runner, before any test). */
ReportHook(PRE_ALL)(struct criterion_test_set *set) {
    const char *e = getenv("CTRAIN_LIST_OP_TESTS");
    if (!e || !*e || strcmp(e, "0") == 0) return;
    FOREACH_SET(struct criterion_suite_set *ss, set->suites) {
        FOREACH_SET(struct criterion_test *t, ss->tests) {
            const int *ops = t->data ? (const int *)t->data->data : NULL;
            if (!ops) continue;
            for (int op = 0; op < CT_OP_COUNT; op++)
                if (op_test_declares(ops, op)) printf("%s %s::%s\n", ct_op_name(op), t->category, t->name);
        }
    }
    fflush(stdout);
    _exit(0);
}

#endif
