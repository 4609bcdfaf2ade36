/* Every op of the op list (src/core/op_list.h) has what it needs, so that a
 * new op missing any of it fails the suite:
 *   - a CPU kernel (sources are bound by the program instead), and for a
 *     unary op, its math in core/ew_math.h (the class's one kernel takes
 *     every unary op, and would give NaN for one the header lacks);
 *   - a gradient rule unless its class says it has none (sources and
 *     internal ops), and none where it says so (no double backward);
 *   - a float64 gradient check, if it has a rule: an OP_TEST declaring it
 *     in test_gradcheck*.c;
 *   - a CUDA kernel, in a build with CUDA;
 *   - a GPU parity case: an OP_TEST declaring it in test_cuda_parity_*.c
 *     (checked in every build: the declarations do not need a GPU).
 * The tests' declarations are read from the test executables themselves
 * (op_tests.h: CTRAIN_LIST_OP_TESTS=1 makes one list them), and each
 * OP_TEST fails when it does not check exactly what it declares. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctrain/ctrain.h>

#include "core/backend.h"

/* Ops merged before their CUDA kernel and parity case exist, by name
 * ("conv2d"): each entry is a known gap, to be listed in docs/cuda.md and
 * removed when the kernel lands. Empty: every op is covered. */
static const char *const not_yet[] = {NULL};

static bool known_gap(int op) {
    for (int i = 0; not_yet[i]; i++)
        if (strcmp(not_yet[i], ct_op_name(op)) == 0) return true;
    return false;
}

static bool is_source(int op) { return ct_op_class_of(op) == CT_OPC_SOURCE; }

Test(op_coverage, every_op_has_a_cpu_kernel) {
    for (int op = 0; op < ct_op_count(); op++)
        cr_expect(ct_device_implements(CT_DEVICE_CPU, op), "the CPU backend has no kernel for %s", ct_op_name(op));
}

/* f(0.5) and f'(0.5) through the CPU's kernels, with alpha = 1 (a valid
 * factor, exponent, slope or beta) and the other attributes 0. */
Test(op_coverage, every_unary_op_has_its_math) {
    const ct_backend *cpu = ct_cpu_backend();
    double x = 0.5, dy = 1.0, y = NAN, dx = NAN;
    ct_shape s = {1, {1}};
    ct_tview in[2] = {{&x, CT_F64, s, 1}, {&dy, CT_F64, s, 1}};
    int n = 0;
    for (int op = 0; op < CT_OP_COUNT; op++) {
        if (ct_op_class_of(op) != CT_OPC_UNARY) continue;
        n++;
        ct_attrs a = {.fwd_op = op, .alpha = 1.0};
        ct_kargs f = {.op = (ct_op)op, .attr = &a, .n_in = 1, .in = in, .out = {&y, CT_F64, s, 1}};
        ct_kargs b = {.op = CT_OP_UNARY_GRAD, .attr = &a, .n_in = 2, .in = in, .out = {&dx, CT_F64, s, 1}};
        cr_assert_eq(cpu->kernels[op](&f), CT_OK, "%s: %s", ct_op_name(op), ct_last_error());
        cr_assert_eq(cpu->kernels[CT_OP_UNARY_GRAD](&b), CT_OK, "%s: %s", ct_op_name(op), ct_last_error());
        cr_expect(isfinite(y) && isfinite(dx), "%s(0.5) = %g, %s'(0.5) = %g: is it in core/ew_math.h?",
                  ct_op_name(op), y, ct_op_name(op), dx);
    }
    cr_assert_gt(n, 10);
}

Test(op_coverage, every_op_has_a_gradient_rule_by_its_class) {
    for (int op = 0; op < ct_op_count(); op++) {
        bool none = is_source(op) || ct_op_internal(op);
        cr_expect(ct_op_differentiable(op) != none, "%s (class %s) %s a gradient rule", ct_op_name(op),
                  ct_op_class_name(op), none ? "has" : "lacks");
    }
}

/* The ARITY column is checked once for every node, where it is added, and
 * by the kernels (which tests call directly) through the same helper. */
Test(op_coverage, the_op_list_arity_is_enforced) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){1, {3}});
    cr_assert_eq(ct_graph_add(g, CT_OP_ADD, CT_F32, (ct_shape){1, {3}}, &x, 1, NULL), CT_NO_NODE);
    cr_assert_eq(ct_graph_status(g), CT_ERR_INTERNAL);
    cr_assert(strstr(ct_graph_error(g), "add: expected 2 inputs, got 1"), "%s", ct_graph_error(g));
    ct_graph_free(g);

    float v[3] = {1, 2, 3}, out[3];
    ct_tview in[2] = {{v, CT_F32, {1, {3}}, 3}, {v, CT_F32, {1, {3}}, 3}};
    ct_kargs k = {.op = CT_OP_EXP, .attr = &(ct_attrs){0}, .n_in = 2, .in = in, .out = {out, CT_F32, {1, {3}}, 3}};
    cr_assert_eq(ct_cpu_backend()->kernels[CT_OP_EXP](&k), CT_ERR_INTERNAL);
    cr_assert(strstr(ct_last_error(), "cpu exp: expected 1 input, got 2"), "%s", ct_last_error());
    cr_assert_eq(ct_op_check_inputs("x", CT_OP_CONCAT, 7), CT_OK, "a VAR op is its kernel's to check");
}

/* ---- the tests' declarations ----------------------------------------------- */

/* covered[op] += the number of OP_TESTs declaring op in the executables of
 * the test build whose names start with `prefix`; returns how many
 * executables were read. */
static int read_declarations(const char *prefix, int *covered) {
    DIR *dir = opendir(CTRAIN_TEST_BINARY_DIR);
    cr_assert(dir, "cannot list %s", CTRAIN_TEST_BINARY_DIR);
    int files = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", CTRAIN_TEST_BINARY_DIR, e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || strchr(e->d_name, '.') ||
            stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || access(path, X_OK) != 0)
            continue;
        /* BXFI_MAP would make the child a Criterion worker, as this
         * process is, instead of a runner that lists its tests. */
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "unset BXFI_MAP; CTRAIN_LIST_OP_TESTS=1 '%s'", path);
        FILE *p = popen(cmd, "r");
        cr_assert(p, "cannot run %s", path);
        char line[512];
        while (fgets(line, sizeof line, p)) {
            char name[128];
            cr_assert_eq(sscanf(line, "%127s", name), 1, "%s: bad line '%s'", e->d_name, line);
            int op = 0;
            while (op < ct_op_count() && strcmp(ct_op_name(op), name) != 0) op++;
            cr_assert_lt(op, ct_op_count(), "%s declares '%s', which is not an op", e->d_name, name);
            covered[op]++;
        }
        cr_assert_eq(pclose(p), 0, "%s did not list its tests", path);
        files++;
    }
    closedir(dir);
    return files;
}

Test(op_coverage, every_differentiable_op_has_a_gradient_check) {
    int covered[CT_OP_COUNT] = {0};
    int files = read_declarations("test_gradcheck", covered);
    cr_assert_geq(files, 2, "found %d gradient-check executables in %s", files, CTRAIN_TEST_BINARY_DIR);
    for (int op = 0; op < ct_op_count(); op++) {
        if (ct_op_differentiable(op))
            cr_expect(covered[op] > 0, "op '%s' is differentiable but no OP_TEST of test_gradcheck*.c declares it",
                      ct_op_name(op));
        else
            cr_expect(covered[op] == 0, "'%s' is not a differentiable op, yet a gradient check declares it",
                      ct_op_name(op));
    }
}

/* In a build with CUDA (GPU or not); sources have no kernel anywhere. */
Test(op_coverage, every_op_has_a_cuda_kernel) {
    char why[512];
    ct_cuda_device_count(why, sizeof why);
    if (strstr(why, "no CUDA support")) cr_skip_test("%s", why);
    for (int op = 0; op < ct_op_count(); op++)
        cr_expect(known_gap(op) || ct_device_implements(CT_DEVICE_CUDA, op), "the CUDA backend has no kernel for %s",
                  ct_op_name(op));
}

/* Sources have no kernel and are exercised by every program. */
Test(op_coverage, every_op_has_a_parity_case) {
    int covered[CT_OP_COUNT] = {0};
    int files = read_declarations("test_cuda_parity_", covered);
    cr_assert_geq(files, 6, "found %d parity executables in %s", files, CTRAIN_TEST_BINARY_DIR);
    for (int op = 0; op < ct_op_count(); op++) {
        if (is_source(op)) continue;
        if (known_gap(op)) {
            cr_expect(covered[op] == 0, "%s is listed as a known gap but has a parity case", ct_op_name(op));
            continue;
        }
        cr_expect(covered[op] > 0, "no OP_TEST of test_cuda_parity_*.c declares %s", ct_op_name(op));
    }
}
