/* Optimizers: each update rule against a reference, and frozen parameters.
 *
 * Every optimizer runs five steps on the small fixed problem of
 * optim_problem.h. The reference is written here, in double, from the update
 * rules in PyTorch's documentation (the pseudo-code of torch.optim.SGD,
 * Adagrad, RMSprop, Adam, AdamW), not from the library's code, and every
 * parameter and every state element is compared to 1e-12 relative.
 *
 * The rest of the optimizer tests: test_optim_options.c (defaults,
 * validation, state access and resume), test_optim_grads.c (clipping,
 * gradient accumulation, the CPU hooks).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include <ctrain/ctrain.h>
#include <ctrain/optim.h>

#include "optim_problem.h"

/* ---- the reference: PyTorch's documented algorithms, in double --------- */

typedef struct ref {
    ct_optim_opts o;    /* every field given explicitly (no defaults here) */
    bool decay[NV];     /* weight decay / L1 apply */
    bool frozen[NV];
    double x[NV];
    double s0[NV], s1[NV], s2[NV]; /* momentum_buffer / sum / square_avg / exp_avg ..., see state_names */
    int t;
} ref;

static void ref_init(ref *r, const ct_optim_opts *o) {
    memset(r, 0, sizeof *r);
    r->o = *o;
    for (int i = 0; i < NV; i++) {
        r->x[i] = X0[i];
        /* 2-d parameters are decayed; the bias (1-d) only on request. */
        r->decay[i] = o->decay_bias_and_norm || !(i >= START[1] && i < START[2]);
        if (o->kind == CT_OPTIM_ADAGRAD) r->s0[i] = o->initial_accumulator_value;
    }
}

static double sgn(double v) { return v > 0 ? 1 : v < 0 ? -1 : 0; }

static void ref_step(ref *r, double lr) {
    const ct_optim_opts *o = &r->o;
    r->t++;
    const int t = r->t;
    for (int i = 0; i < NV; i++) {
        if (r->frozen[i]) continue;
        double x = r->x[i];
        double g = 2 * C[i] * x + D[i]; /* d/dx (c x^2 + d x) */
        if (o->maximize) g = -g;
        bool wd = r->decay[i] && o->weight_decay != 0;
        if (wd && o->kind != CT_OPTIM_ADAMW) g = g + o->weight_decay * x;
        if (r->decay[i] && o->l1 != 0) g = g + o->l1 * sgn(x);
        switch (o->kind) {
        case CT_OPTIM_SGD:
            if (o->momentum != 0) {
                double *b = &r->s0[i];
                *b = t > 1 ? o->momentum * *b + (1 - o->dampening) * g : g;
                g = o->nesterov ? g + o->momentum * *b : *b;
            }
            x = x - lr * g;
            break;
        case CT_OPTIM_ADAGRAD: {
            double clr = lr / (1 + (t - 1) * o->lr_decay);
            r->s0[i] = r->s0[i] + g * g;
            x = x - clr * g / (sqrt(r->s0[i]) + o->eps);
            break;
        }
        case CT_OPTIM_RMSPROP: {
            double a = o->alpha;
            r->s0[i] = a * r->s0[i] + (1 - a) * g * g;
            double vt = r->s0[i];
            if (o->centered) {
                r->s2[i] = r->s2[i] * a + (1 - a) * g;
                vt = vt - r->s2[i] * r->s2[i];
            }
            if (o->momentum > 0) {
                r->s1[i] = o->momentum * r->s1[i] + g / (sqrt(vt) + o->eps);
                x = x - lr * r->s1[i];
            } else {
                x = x - lr * g / (sqrt(vt) + o->eps);
            }
            break;
        }
        default: { /* Adam, AdamW */
            double b1 = o->betas[0], b2 = o->betas[1];
            if (wd && o->kind == CT_OPTIM_ADAMW) x = x - lr * o->weight_decay * x;
            r->s0[i] = b1 * r->s0[i] + (1 - b1) * g;
            r->s1[i] = b2 * r->s1[i] + (1 - b2) * g * g;
            double mhat = r->s0[i] / (1 - pow(b1, t));
            double vhat;
            if (o->amsgrad) {
                r->s2[i] = fmax(r->s2[i], r->s1[i]);
                vhat = r->s2[i] / (1 - pow(b2, t));
            } else {
                vhat = r->s1[i] / (1 - pow(b2, t));
            }
            x = x - lr * mhat / (sqrt(vhat) + o->eps);
            break;
        }
        }
        r->x[i] = x;
    }
}

/* The state names of the reference's s0, s1, s2 for these options (NULL:
 * not kept). */
static void state_names(const ct_optim_opts *o, const char *nm[3]) {
    nm[0] = nm[1] = nm[2] = NULL;
    switch (o->kind) {
    case CT_OPTIM_SGD: nm[0] = o->momentum != 0 ? "momentum_buffer" : NULL; break;
    case CT_OPTIM_ADAGRAD: nm[0] = "sum"; break;
    case CT_OPTIM_RMSPROP:
        nm[0] = "square_avg";
        nm[1] = o->momentum > 0 ? "momentum_buffer" : NULL;
        nm[2] = o->centered ? "grad_avg" : NULL;
        break;
    default:
        nm[0] = "exp_avg";
        nm[1] = "exp_avg_sq";
        nm[2] = o->amsgrad ? "max_exp_avg_sq" : NULL;
    }
}

/* Runs STEPS steps of o through the library and the reference and compares
 * every parameter and state element. Returns the final parameters. */
static void check_against_ref(const ct_optim_opts *o, double base_lr, double *final_x) {
    problem pr = make_problem(CT_F64);
    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, o);
    cr_assert_not_null(opt, "%s", ct_last_error());
    ref r;
    ref_init(&r, o);
    for (int t = 0; t < STEPS; t++) {
        cr_assert_eq(ct_program_run(pr.p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_optimizer_step(opt, lr_at(base_lr, t)), CT_OK, "%s", ct_last_error());
        ref_step(&r, lr_at(base_lr, t));
    }
    cr_expect_eq(ct_optimizer_step_count(opt), STEPS);
    double x[NV];
    get_params(&pr, x);
    for (int i = 0; i < NV; i++) expect_close("param", i, x[i], r.x[i], 1e-12);
    const char *nm[3];
    state_names(o, nm);
    const double *rs[3] = {r.s0, r.s1, r.s2};
    for (int s = 0; s < 3; s++) {
        if (!nm[s]) continue;
        double st[NV];
        get_state(&pr, opt, nm[s], st);
        for (int i = 0; i < NV; i++) expect_close(nm[s], i, st[i], rs[s][i], 1e-12);
    }
    if (final_x) memcpy(final_x, x, sizeof x);
    ct_optimizer_free(opt);
    free_problem(&pr);
}

/* ---- each optimizer against the reference ------------------------------ */

Test(optim, sgd_plain) {
    ct_optim_opts o = {.kind = CT_OPTIM_SGD, .lr = 0.1};
    check_against_ref(&o, 0.1, NULL);
}

Test(optim, sgd_momentum_dampening) {
    ct_optim_opts o = {.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .dampening = 0.3};
    check_against_ref(&o, 0.1, NULL);
}

Test(optim, sgd_nesterov) {
    ct_optim_opts o = {.kind = CT_OPTIM_SGD, .lr = 0.05, .momentum = 0.8, .nesterov = true};
    check_against_ref(&o, 0.05, NULL);
}

Test(optim, sgd_weight_decay) {
    ct_optim_opts o = {.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.5, .weight_decay = 0.3};
    check_against_ref(&o, 0.1, NULL);
}

Test(optim, sgd_maximize) {
    /* PyTorch's implementation negates the gradient first, then adds the decay. */
    ct_optim_opts o = {.kind = CT_OPTIM_SGD, .lr = 0.02, .momentum = 0.9, .weight_decay = 0.1, .maximize = true};
    check_against_ref(&o, 0.02, NULL);
}

Test(optim, adagrad_lr_decay) {
    ct_optim_opts o = {.kind = CT_OPTIM_ADAGRAD, .lr = 0.2, .lr_decay = 0.1, .initial_accumulator_value = 0.2,
                       .weight_decay = 0.05, .eps = 1e-10};
    check_against_ref(&o, 0.2, NULL);
}

Test(optim, rmsprop_plain) {
    ct_optim_opts o = {.kind = CT_OPTIM_RMSPROP, .lr = 0.01, .alpha = 0.9, .eps = 1e-8};
    check_against_ref(&o, 0.01, NULL);
}

Test(optim, rmsprop_centered) {
    ct_optim_opts o = {.kind = CT_OPTIM_RMSPROP, .lr = 0.01, .alpha = 0.9, .eps = 1e-8, .centered = true};
    check_against_ref(&o, 0.01, NULL);
}

Test(optim, rmsprop_momentum) {
    ct_optim_opts o = {.kind = CT_OPTIM_RMSPROP, .lr = 0.01, .alpha = 0.99, .eps = 1e-8, .momentum = 0.7,
                       .weight_decay = 0.02};
    check_against_ref(&o, 0.01, NULL);
}

Test(optim, rmsprop_centered_momentum) {
    ct_optim_opts o = {.kind = CT_OPTIM_RMSPROP, .lr = 0.005, .alpha = 0.8, .eps = 1e-8, .momentum = 0.5,
                       .centered = true};
    check_against_ref(&o, 0.005, NULL);
}

Test(optim, adam) {
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .lr = 0.1, .betas = {0.9, 0.999}, .eps = 1e-8};
    check_against_ref(&o, 0.1, NULL);
}

Test(optim, adam_amsgrad) {
    /* A fast beta2 and a large step, so that the second moment falls for
     * some elements and the maximum matters: the result must differ from
     * plain Adam's. */
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .lr = 0.3, .betas = {0.5, 0.5}, .eps = 1e-8, .amsgrad = true};
    double with[NV], without[NV];
    check_against_ref(&o, 0.3, with);
    o.amsgrad = false;
    check_against_ref(&o, 0.3, without);
    double diff = 0;
    for (int i = 0; i < NV; i++) diff = fmax(diff, fabs(with[i] - without[i]));
    cr_expect_gt(diff, 1e-6, "amsgrad made no difference: the test does not exercise it");
}

Test(optim, adam_weight_decay) {
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .lr = 0.1, .betas = {0.8, 0.99}, .eps = 1e-8, .weight_decay = 0.2};
    check_against_ref(&o, 0.1, NULL);
}

Test(optim, adamw) {
    ct_optim_opts o = {.kind = CT_OPTIM_ADAMW, .lr = 0.1, .betas = {0.9, 0.999}, .eps = 1e-8, .weight_decay = 0.3};
    check_against_ref(&o, 0.1, NULL);
}

Test(optim, adamw_amsgrad) {
    ct_optim_opts o = {.kind = CT_OPTIM_ADAMW, .lr = 0.3, .betas = {0.5, 0.5}, .eps = 1e-8, .weight_decay = 0.1,
                       .amsgrad = true};
    check_against_ref(&o, 0.3, NULL);
}

Test(optim, l1_penalty) {
    ct_optim_opts o = {.kind = CT_OPTIM_SGD, .lr = 0.1, .l1 = 0.05, .weight_decay = 0.1};
    check_against_ref(&o, 0.1, NULL);
    ct_optim_opts a = {.kind = CT_OPTIM_ADAMW, .lr = 0.05, .betas = {0.9, 0.999}, .eps = 1e-8, .l1 = 0.2,
                       .weight_decay = 0.1};
    check_against_ref(&a, 0.05, NULL);
}

Test(optim, bias_not_decayed_by_default) {
    /* With only weight decay and L1 the bias must move exactly as without
     * them, the weights must not. */
    ct_optim_opts plain = {.kind = CT_OPTIM_SGD, .lr = 0.1};
    ct_optim_opts decay = {.kind = CT_OPTIM_SGD, .lr = 0.1, .weight_decay = 0.5, .l1 = 0.1};
    double a[NV], b[NV];
    check_against_ref(&plain, 0.1, a);
    check_against_ref(&decay, 0.1, b);
    for (int i = 0; i < NV; i++) {
        bool bias = i >= START[1] && i < START[2];
        if (bias) cr_expect_eq(a[i], b[i], "bias element %d was decayed", i);
        else cr_expect_neq(a[i], b[i], "weight element %d was not decayed", i);
    }
    /* decay_bias_and_norm decays the bias too (the reference follows it). */
    decay.decay_bias_and_norm = true;
    check_against_ref(&decay, 0.1, b);
    for (int i = START[1]; i < START[2]; i++) cr_expect_neq(a[i], b[i], "bias element %d not decayed", i);
}

Test(optim, f32_program) {
    /* The F32 path: the same algorithm with F32 storage, to float accuracy. */
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .lr = 0.1, .betas = {0.9, 0.999}, .eps = 1e-8, .weight_decay = 0.1};
    problem pr = make_problem(CT_F32);
    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &o);
    cr_assert_not_null(opt, "%s", ct_last_error());
    ref r;
    ref_init(&r, &o);
    for (int t = 0; t < STEPS; t++) {
        cr_assert_eq(ct_program_run(pr.p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_optimizer_step(opt, lr_at(0.1, t)), CT_OK, "%s", ct_last_error());
        ref_step(&r, lr_at(0.1, t));
    }
    double x[NV];
    get_params(&pr, x);
    for (int i = 0; i < NV; i++) cr_expect(fabs(x[i] - r.x[i]) <= 1e-5 * fmax(1, fabs(r.x[i])),
                                           "f32 param %d: %g vs %g", i, x[i], r.x[i]);
    ct_optimizer_free(opt);
    free_problem(&pr);
}

/* ---- freezing ----------------------------------------------------------- */

Test(optim, freeze_prefix) {
    ct_optim_opts o = {.kind = CT_OPTIM_ADAM, .lr = 0.1, .betas = {0.9, 0.999}, .eps = 1e-8, .weight_decay = 0.1};
    problem pr = make_problem(CT_F64);
    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &o);
    cr_assert_not_null(opt, "%s", ct_last_error());
    ref r;
    ref_init(&r, &o);
    for (int t = 0; t < STEPS; t++) {
        if (t == 2) {
            /* "fc1." covers fc1.weight and fc1.bias, not fc2.weight. */
            cr_assert_eq(ct_optimizer_freeze(opt, "fc1.", true), CT_OK, "%s", ct_last_error());
            for (int i = START[0]; i < START[2]; i++) r.frozen[i] = true;
        }
        cr_assert_eq(ct_program_run(pr.p), CT_OK);
        cr_assert_eq(ct_optimizer_step(opt, lr_at(0.1, t)), CT_OK, "%s", ct_last_error());
        ref_step(&r, lr_at(0.1, t));
    }
    cr_expect(ct_optimizer_is_frozen(opt, "fc1.weight"));
    cr_expect(ct_optimizer_is_frozen(opt, "fc1.bias"));
    cr_expect(!ct_optimizer_is_frozen(opt, "fc2.weight"));
    double x[NV], m[NV], v[NV];
    get_params(&pr, x);
    get_state(&pr, opt, "exp_avg", m);
    get_state(&pr, opt, "exp_avg_sq", v);
    for (int i = 0; i < NV; i++) {
        /* Frozen elements hold their step-2 values (the reference stopped
         * touching them there); fc2 went on. Exact for the frozen ones. */
        expect_close("param", i, x[i], r.x[i], 1e-12);
        expect_close("exp_avg", i, m[i], r.s0[i], 1e-12);
        expect_close("exp_avg_sq", i, v[i], r.s1[i], 1e-12);
    }
    /* Frozen from the start: parameters and state never change. */
    ct_optimizer_free(opt);
    free_problem(&pr);

    pr = make_problem(CT_F64);
    opt = ct_optimizer_new(pr.g, pr.p, &o);
    cr_assert_not_null(opt);
    cr_assert_eq(ct_optimizer_freeze(opt, "fc2.weight", true), CT_OK);
    for (int t = 0; t < 3; t++) {
        cr_assert_eq(ct_program_run(pr.p), CT_OK);
        cr_assert_eq(ct_optimizer_step(opt, 0.1), CT_OK);
    }
    get_params(&pr, x);
    get_state(&pr, opt, "exp_avg", m);
    for (int i = START[2]; i < START[3]; i++) {
        cr_expect_eq(x[i], X0[i], "frozen fc2.weight[%d] changed", i - START[2]);
        cr_expect_eq(m[i], 0.0, "frozen fc2.weight[%d]'s state changed", i - START[2]);
    }
    for (int i = START[0]; i < START[2]; i++) cr_expect_neq(x[i], X0[i], "fc1 element %d did not move", i);
    /* Unfreezing lets it move again. */
    cr_assert_eq(ct_optimizer_freeze(opt, "fc2", false), CT_OK);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    cr_assert_eq(ct_optimizer_step(opt, 0.1), CT_OK);
    get_params(&pr, x);
    for (int i = START[2]; i < START[3]; i++) cr_expect_neq(x[i], X0[i]);

    cr_expect_eq(ct_optimizer_freeze(opt, "conv", true), CT_ERR_NOT_FOUND);
    cr_expect(strstr(ct_last_error(), "conv") != NULL, "message: %s", ct_last_error());
    ct_optimizer_free(opt);
    free_problem(&pr);
}

Test(optim, zero_frozen_grads) {
    problem pr = make_problem(CT_F64);
    ct_optim_opts o = {.kind = CT_OPTIM_SGD};
    ct_optimizer *opt = ct_optimizer_new(pr.g, pr.p, &o);
    cr_assert_not_null(opt);
    cr_assert_eq(ct_optimizer_freeze(opt, "fc1.bias", true), CT_OK);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    cr_assert_eq(ct_optimizer_zero_frozen_grads(opt), CT_OK);
    size_t n = ct_program_param_numel(pr.p);
    double *gr = malloc(n * sizeof *gr);
    cr_assert_eq(ct_program_read_grads(pr.p, gr, n * sizeof *gr), CT_OK);
    for (int k = 0; k < NP; k++) {
        size_t off = ct_program_param_offset(pr.p, pr.param[k]);
        for (int i = START[k]; i < START[k + 1]; i++) {
            double want = k == 1 ? 0.0 : 2 * C[i] * X0[i] + D[i];
            expect_close("grad", i, gr[off + (size_t)(i - START[k])], want, 1e-14);
        }
    }
    free(gr);
    ct_optimizer_free(opt);
    free_problem(&pr);
}
