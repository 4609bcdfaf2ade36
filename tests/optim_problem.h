/* The small fixed problem of the optimizer tests (test_optim*.c), built with
 * the public graph API so that an update reads the program's real gradient
 * buffer: three parameters named like a layer stack (fc1.weight [2,3],
 * fc1.bias [3], fc2.weight [2,2]) and loss = sum(c * x^2 + d * x), whose
 * gradient 2 c x + d is known in closed form and changes sign for some
 * elements as x moves. Here: the problem, its parameters and state buffers
 * gathered in reference order, the step rates and the comparison. Static
 * inline: each test executable that includes this gets its own copy. */
#ifndef CTRAIN_TESTS_OPTIM_PROBLEM_H
#define CTRAIN_TESTS_OPTIM_PROBLEM_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>
#include <ctrain/optim.h>

#define NP 3
#define NV 13 /* values over all parameters */
#define STEPS 5

static const char *const NAMES[NP] = {"fc1.weight", "fc1.bias", "fc2.weight"};
static const ct_shape SHAPES[NP] = {{2, {2, 3}}, {1, {3}}, {2, {2, 2}}};
static const int START[NP + 1] = {0, 6, 9, 13}; /* each parameter's range in the reference arrays */

static const double X0[NV] = {0.5, -1.2, 0.3, 2.0, -0.7, 1.1, 0.25, -0.4, 0.9, -1.5, 0.6, 0.05, -0.8};
static const double C[NV] = {0.5, 1.0, 2.0, 0.3, 1.5, 0.8, 1.2, 0.4, 0.7, 0.9, 2.5, 0.6, 1.1};
static const double D[NV] = {0.1, -0.3, 0.5, -0.2, 0.0, 0.4, -0.5, 0.2, 0.05, 0.3, -0.1, -0.7, 0.25};

typedef struct problem {
    ct_graph *g;
    ct_program *p;
    ct_node param[NP];
} problem;

static inline problem make_problem(ct_dtype dt) {
    problem pr = {.g = ct_graph_new()};
    cr_assert_not_null(pr.g);
    ct_node loss = CT_NO_NODE;
    for (int k = 0; k < NP; k++) {
        int len = START[k + 1] - START[k];
        double cbuf[8], dbuf[8];
        float cf[8], df[8];
        for (int i = 0; i < len; i++) {
            cbuf[i] = C[START[k] + i], dbuf[i] = D[START[k] + i];
            cf[i] = (float)cbuf[i], df[i] = (float)dbuf[i];
        }
        ct_node x = ct_param(pr.g, NAMES[k], dt, SHAPES[k], ct_init_zeros());
        ct_node c = ct_constant(pr.g, dt, SHAPES[k], dt == CT_F64 ? (const void *)cbuf : (const void *)cf);
        ct_node d = ct_constant(pr.g, dt, SHAPES[k], dt == CT_F64 ? (const void *)dbuf : (const void *)df);
        ct_node term = ct_add(pr.g, ct_mul(pr.g, c, ct_mul(pr.g, x, x)), ct_mul(pr.g, d, x));
        ct_node s = ct_sum(pr.g, term, CT_AXIS_ALL, false);
        loss = loss == CT_NO_NODE ? s : ct_add(pr.g, loss, s);
        pr.param[k] = x;
    }
    cr_assert_eq(ct_graph_status(pr.g), CT_OK, "%s", ct_graph_error(pr.g));
    cr_assert_eq(ct_graph_backward(pr.g, loss), CT_OK, "%s", ct_last_error());
    ct_compile_opts co = {.outputs = &loss, .n_outputs = 1, .grads = true};
    pr.p = ct_compile(pr.g, &co);
    cr_assert_not_null(pr.p, "%s", ct_last_error());
    for (int k = 0; k < NP; k++) {
        int len = START[k + 1] - START[k];
        double vb[8];
        float vf[8];
        for (int i = 0; i < len; i++) vb[i] = X0[START[k] + i], vf[i] = (float)vb[i];
        cr_assert_eq(ct_program_set_param(pr.p, NAMES[k], dt == CT_F64 ? (const void *)vb : (const void *)vf,
                                          (size_t)len * ct_dtype_size(dt)),
                     CT_OK, "%s", ct_last_error());
    }
    return pr;
}

static inline void free_problem(problem *pr) {
    ct_program_free(pr->p);
    ct_graph_free(pr->g);
}

/* The parameters as one array in reference order. */
static inline void get_params(const problem *pr, double *out) {
    ct_dtype dt = ct_program_param_dtype(pr->p);
    for (int k = 0; k < NP; k++) {
        int len = START[k + 1] - START[k];
        double vb[8];
        float vf[8];
        cr_assert_eq(ct_program_get_param(pr->p, NAMES[k], dt == CT_F64 ? (void *)vb : (void *)vf,
                                          (size_t)len * ct_dtype_size(dt)),
                     CT_OK, "%s", ct_last_error());
        for (int i = 0; i < len; i++) out[START[k] + i] = dt == CT_F64 ? vb[i] : vf[i];
    }
}

/* A state buffer (flat layout, F64 program) gathered into reference order. */
static inline void get_state(const problem *pr, const ct_optimizer *opt, const char *name, double *out) {
    size_t n = ct_program_param_numel(pr->p);
    double *flat = malloc(n * sizeof *flat);
    cr_assert_not_null(flat);
    cr_assert_eq(ct_optimizer_read_state(opt, name, flat, n * sizeof *flat), CT_OK, "%s", ct_last_error());
    for (int k = 0; k < NP; k++) {
        size_t off = ct_program_param_offset(pr->p, pr->param[k]);
        for (int i = START[k]; i < START[k + 1]; i++) out[i] = flat[off + (size_t)(i - START[k])];
    }
    free(flat);
}

/* The rate of step t (0-based): varies, so a step that ignored its lr
 * argument would show. */
static inline double lr_at(double base, int t) { return base * (1.0 + 0.25 * t); }

static inline void expect_close(const char *what, int i, double got, double want, double rtol) {
    double tol = rtol * fabs(want) + 1e-300;
    cr_expect(fabs(got - want) <= tol || (got == want), "%s[%d]: got %.17g, want %.17g (rel err %.3g)", what, i,
              got, want, fabs(got - want) / fmax(fabs(want), 1e-300));
}

#endif
