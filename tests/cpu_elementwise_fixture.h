/* Helpers of the CPU elementwise, data-movement and reduction kernel tests
 * (test_cpu_elementwise.c, test_cpu_cast_broadcast.c,
 * test_cpu_reduce_kernels.c). Kernels are called directly through a table
 * filled by the register functions, with every output poisoned (NaN, or a
 * sentinel for integers) first, so an element a kernel forgets to write
 * fails the comparison. Static inline: each test executable that includes
 * this gets its own copy (and its own table, filled by its suite's setup). */
#ifndef CTRAIN_TESTS_CPU_ELEMENTWISE_FIXTURE_H
#define CTRAIN_TESTS_CPU_ELEMENTWISE_FIXTURE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/backend.h"
#include "cpu/cpu_util.h"

static ct_kernel_fn table[CT_OP_COUNT];

static inline void setup(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_elementwise(table);
    ct_cpu_register_reduce(table);
}

static inline int64_t numel(ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

static inline ct_tview view(void *data, ct_dtype dt, ct_shape s) {
    return (ct_tview){.data = data, .dtype = dt, .shape = s, .numel = numel(s)};
}

static inline void poison(const ct_tview *v) {
    for (int64_t i = 0; i < v->numel; i++) {
        switch (v->dtype) {
        case CT_F64: ((double *)v->data)[i] = NAN; break;
        case CT_F32: ((float *)v->data)[i] = NAN; break;
        case CT_F16: ((uint16_t *)v->data)[i] = 0x7e00; break;
        case CT_BF16: ((uint16_t *)v->data)[i] = 0x7fc0; break;
        case CT_I32: ((int32_t *)v->data)[i] = INT32_MIN; break;
        default: ((uint8_t *)v->data)[i] = 0xa5; break;
        }
    }
}

static inline ct_status run(ct_op op, const ct_attrs *attr, const ct_tview *in, int n_in, ct_tview out) {
    static const ct_attrs none;
    cr_assert_not_null(table[op], "no kernel for op %d", (int)op);
    poison(&out);
    ct_kargs k = {.op = op, .attr = attr ? attr : &none, .n_in = n_in, .in = in, .out = out};
    return table[op](&k);
}

#define RUN_OK(op, attr, in, n_in, out) \
    cr_assert_eq(run(op, attr, in, n_in, out), CT_OK, "%s", ct_last_error())

/* |got - want| <= tol * max(1, |want|); NaN in got (a poisoned element) fails. */
static inline void expect_near(const double *got, const double *want, int64_t n, double tol,
                        const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double lim = tol * fmax(1.0, fabs(want[i]));
        cr_assert(fabs(got[i] - want[i]) <= lim, "%s[%lld]: got %.17g, want %.17g", what,
                  (long long)i, got[i], want[i]);
    }
}

static inline void expect_near_f32(const float *got, const double *want, int64_t n, double tol,
                            const char *what) {
    double g[256];
    cr_assert(n <= 256);
    for (int64_t i = 0; i < n; i++) g[i] = got[i];
    expect_near(g, want, n, tol, what);
}

/* Deterministic values in [-1, 1), so tests need no seed plumbing. */
static inline double rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static inline double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

#endif
