/* Optimizer options and state: the defaults of each kind, the validation
 * of every option (a clear error naming it), the state buffers each kind
 * keeps, and a run saved and resumed through the state API bit for bit.
 * On the small fixed problem of optim_problem.h; the update rules
 * themselves are checked in test_optim.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>
#include <ctrain/optim.h>

#include "optim_problem.h"

/* ---- options: defaults, validation, state access ----------------------- */

static const double BETAS[2] = {0.9, 0.999};

Test(optim, defaults) {
    problem pr = make_problem(CT_F64);
    static const struct {
        ct_optim_kind kind;
        double lr, eps;
    } want[] = {{CT_OPTIM_SGD, 1e-3, 1e-8},
                {CT_OPTIM_ADAGRAD, 1e-2, 1e-10},
                {CT_OPTIM_RMSPROP, 1e-2, 1e-8},
                {CT_OPTIM_ADAM, 1e-3, 1e-8},
                {CT_OPTIM_ADAMW, 1e-3, 1e-8}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        ct_optim_opts o = {.kind = want[k].kind};
        ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &o);
        cr_assert_not_null(opt, "%s", ct_last_error());
        const ct_optim_opts *r = ct_optimizer_opts(opt);
        cr_expect_eq(r->lr, want[k].lr, "%s lr", ct_optim_kind_name(want[k].kind));
        cr_expect_eq(r->eps, want[k].eps, "%s eps", ct_optim_kind_name(want[k].kind));
        cr_expect_eq(r->betas[0], BETAS[0]);
        cr_expect_eq(r->betas[1], BETAS[1]);
        cr_expect_eq(r->alpha, 0.99);
        cr_expect_eq(r->weight_decay, 0.0);
        ct_optimizer_free(opt);
    }
    /* A given pair of betas is taken as it is, beta1 = 0 included. */
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .betas = {0, 0.99}};
    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &o);
    cr_assert_not_null(opt);
    cr_expect_eq(ct_optimizer_opts(opt)->betas[0], 0.0);
    cr_expect_eq(ct_optimizer_opts(opt)->betas[1], 0.99);
    ct_optimizer_free(opt);

    ct_optim_kind k;
    cr_expect_eq(ct_optim_kind_parse("adamw", &k), CT_OK);
    cr_expect_eq(k, CT_OPTIM_ADAMW);
    cr_expect_eq(ct_optim_kind_parse("lbfgs", &k), CT_ERR_NOT_FOUND);
    cr_expect_str_eq(ct_optim_kind_name(CT_OPTIM_RMSPROP), "rmsprop");
    free_problem(&pr);
}

static void expect_invalid(const problem *pr, ct_optim_opts o, const char *needle) {
    ct_clear_error();
    ct_optimizer *opt = ct_optimizer_new(pr->g, pr->p, &o);
    cr_expect_null(opt, "options accepted, expected an error about '%s'", needle);
    ct_optimizer_free(opt);
    cr_expect_eq(ct_last_status(), CT_ERR_INVALID_ARG, "status for '%s': %s", needle, ct_last_error());
    cr_expect(strstr(ct_last_error(), needle) != NULL, "message '%s' does not mention '%s'", ct_last_error(),
              needle);
}

Test(optim, validation) {
    problem pr = make_problem(CT_F64);
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = -0.1}, "lr");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = NAN}, "lr");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .momentum = -0.9}, "momentum");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAM, .eps = -1e-8}, "eps");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAMW, .weight_decay = -0.01}, "weight_decay");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAM, .betas = {1.0, 0.999}}, "betas[0]");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAM, .betas = {0.9, -0.5}}, "betas[1]");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .nesterov = true}, "nesterov");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .nesterov = true, .momentum = 0.9, .dampening = 0.1},
                   "dampening");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .amsgrad = true}, "amsgrad");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAM, .centered = true}, "centered");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAGRAD, .lr_decay = -1}, "lr_decay");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_ADAGRAD, .initial_accumulator_value = -1},
                   "initial_accumulator_value");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_RMSPROP, .alpha = 1.5}, "alpha");
    expect_invalid(&pr, (ct_optim_opts){.kind = CT_OPTIM_SGD, .l1 = -1}, "l1");
    expect_invalid(&pr, (ct_optim_opts){.kind = (ct_optim_kind)42}, "kind");

    cr_expect_null(ct_optimizer_new(NULL, pr.p, &(ct_optim_opts){0}));
    cr_expect_eq(ct_last_status(), CT_ERR_INVALID_ARG);

    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &(ct_optim_opts){.kind = CT_OPTIM_SGD});
    cr_assert_not_null(opt);
    cr_expect_eq(ct_optimizer_step(opt, -1), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_optimizer_step(opt, INFINITY), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_optimizer_step_count(opt), 0, "a refused step counted");
    cr_expect_eq(ct_optimizer_set_step_count(opt, -3), CT_ERR_INVALID_ARG);
    ct_optimizer_free(opt);

    /* A graph that is not the program's. */
    ct_graph *other = ct_graph_new();
    ct_param(other, "big", CT_F64, (ct_shape){2, {10, 10}}, ct_init_zeros());
    cr_expect_null(ct_optimizer_new(other, pr.p, &(ct_optim_opts){0}));
    cr_expect_eq(ct_last_status(), CT_ERR_INVALID_ARG, "%s", ct_last_error());
    ct_graph_free(other);
    free_problem(&pr);
}

Test(optim, state_access_and_resume) {
    /* Two optimizers: one runs 5 steps; the other runs 2, is saved through
     * the state API, and a third restored from it runs the last 3. Same
     * result, bit for bit. */
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .lr = 0.1, .betas = {0.9, 0.99}, .amsgrad = true};
    problem a = make_problem(CT_F64), b = make_problem(CT_F64);
    ct_optimizer *oa = ct_optimizer_new(a.g, a.p, &o);
    ct_optimizer *ob = ct_optimizer_new(b.g, b.p, &o);
    cr_assert(oa && ob, "%s", ct_last_error());
    cr_assert_eq(ct_optimizer_num_states(oa), 3);
    static const char *const want[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    for (int i = 0; i < 3; i++) {
        const char *name;
        void *ptr;
        size_t numel;
        cr_assert_eq(ct_optimizer_state(oa, i, &name, &ptr, &numel), CT_OK);
        cr_expect_str_eq(name, want[i]);
        cr_expect_not_null(ptr);
        cr_expect_eq(numel, ct_program_param_numel(a.p));
    }
    cr_expect_eq(ct_optimizer_state(oa, 3, NULL, NULL, NULL), CT_ERR_INVALID_ARG);
    for (int t = 0; t < STEPS; t++) {
        cr_assert_eq(ct_program_run(a.p), CT_OK);
        cr_assert_eq(ct_optimizer_step(oa, lr_at(0.1, t)), CT_OK);
    }
    for (int t = 0; t < 2; t++) {
        cr_assert_eq(ct_program_run(b.p), CT_OK);
        cr_assert_eq(ct_optimizer_step(ob, lr_at(0.1, t)), CT_OK);
    }
    size_t n = ct_program_param_numel(b.p);
    double *params = malloc(n * sizeof(double)), *st[3];
    cr_assert_eq(ct_program_read_params(b.p, params, n * sizeof(double)), CT_OK);
    for (int i = 0; i < 3; i++) {
        st[i] = malloc(n * sizeof(double));
        cr_assert_eq(ct_optimizer_read_state(ob, want[i], st[i], n * sizeof(double)), CT_OK);
    }
    int64_t t_saved = ct_optimizer_step_count(ob);
    ct_optimizer_free(ob);
    free_problem(&b);

    problem c = make_problem(CT_F64);
    ct_optimizer *oc = ct_optimizer_new(c.g, c.p, &o);
    cr_assert_not_null(oc);
    cr_assert_eq(ct_program_write_params(c.p, params, n * sizeof(double)), CT_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(ct_optimizer_write_state(oc, want[i], st[i], n * sizeof(double)), CT_OK);
    cr_assert_eq(ct_optimizer_set_step_count(oc, t_saved), CT_OK);
    for (int t = 2; t < STEPS; t++) {
        cr_assert_eq(ct_program_run(c.p), CT_OK);
        cr_assert_eq(ct_optimizer_step(oc, lr_at(0.1, t)), CT_OK);
    }
    double xa[NV], xc[NV];
    get_params(&a, xa);
    get_params(&c, xc);
    for (int i = 0; i < NV; i++) cr_expect_eq(xa[i], xc[i], "resumed param %d: %.17g vs %.17g", i, xc[i], xa[i]);

    cr_expect_eq(ct_optimizer_read_state(oc, "momentum_buffer", st[0], n * sizeof(double)), CT_ERR_NOT_FOUND);
    cr_expect_eq(ct_optimizer_read_state(oc, "exp_avg", st[0], 8), CT_ERR_SHAPE);
    for (int i = 0; i < 3; i++) free(st[i]);
    free(params);
    ct_optimizer_free(oa);
    ct_optimizer_free(oc);
    free_problem(&a);
    free_problem(&c);
}

Test(optim, state_sets_per_kind) {
    problem pr = make_problem(CT_F64);
    static const struct {
        ct_optim_opts o;
        int n;
        const char *names[3];
    } cases[] = {
        {{.kind = CT_OPTIM_SGD}, 0, {NULL}},
        {{.kind = CT_OPTIM_SGD, .momentum = 0.9}, 1, {"momentum_buffer"}},
        {{.kind = CT_OPTIM_ADAGRAD}, 1, {"sum"}},
        {{.kind = CT_OPTIM_RMSPROP}, 1, {"square_avg"}},
        {{.kind = CT_OPTIM_RMSPROP, .momentum = 0.9, .centered = true}, 3,
         {"square_avg", "momentum_buffer", "grad_avg"}},
        {{.kind = CT_OPTIM_RMSPROP, .centered = true}, 2, {"square_avg", "grad_avg"}},
        {{.kind = CT_OPTIM_ADAM}, 2, {"exp_avg", "exp_avg_sq"}},
        {{.kind = CT_OPTIM_ADAMW, .amsgrad = true}, 3, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &cases[k].o);
        cr_assert_not_null(opt, "%s", ct_last_error());
        cr_expect_eq(ct_optimizer_num_states(opt), cases[k].n, "case %zu", k);
        for (int i = 0; i < cases[k].n; i++) {
            const char *name = NULL;
            cr_assert_eq(ct_optimizer_state(opt, i, &name, NULL, NULL), CT_OK);
            cr_expect_str_eq(name, cases[k].names[i], "case %zu state %d", k, i);
        }
        ct_optimizer_free(opt);
    }
    /* Adagrad's accumulator starts at initial_accumulator_value. */
    ct_optim_opts o = {.kind = CT_OPTIM_ADAGRAD, .initial_accumulator_value = 0.25};
    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &o);
    double s[NV];
    get_state(&pr, opt, "sum", s);
    for (int i = 0; i < NV; i++) cr_expect_eq(s[i], 0.25);
    ct_optimizer_free(opt);
    free_problem(&pr);
}
