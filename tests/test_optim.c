/* Optimizers, clipping and gradient accumulation.
 *
 * Every optimizer runs five steps on a small fixed problem built with the
 * public graph API, so the update reads the program's real gradient buffer:
 * three parameters named like a layer stack (fc1.weight [2,3], fc1.bias [3],
 * fc2.weight [2,2]) and loss = sum(c * x^2 + d * x), whose gradient
 * 2 c x + d is known in closed form and changes sign for some elements as x
 * moves. The reference is written here, in double, from the update rules in
 * PyTorch's documentation (the pseudo-code of torch.optim.SGD, Adagrad,
 * RMSprop, Adam, AdamW), not from the library's code, and every parameter
 * and every state element is compared to 1e-12 relative.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include <ctrain/ctrain.h>
#include <ctrain/optim.h>

#include "core/backend.h"

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

static problem make_problem(ct_dtype dt) {
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

static void free_problem(problem *pr) {
    ct_program_free(pr->p);
    ct_graph_free(pr->g);
}

/* The parameters as one array in reference order. */
static void get_params(const problem *pr, double *out) {
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
static void get_state(const problem *pr, const ct_optimizer *opt, const char *name, double *out) {
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

/* The rate of step t (0-based): varies, so a step that ignored its lr
 * argument would show. */
static double lr_at(double base, int t) { return base * (1.0 + 0.25 * t); }

static void expect_close(const char *what, int i, double got, double want, double rtol) {
    double tol = rtol * fabs(want) + 1e-300;
    cr_expect(fabs(got - want) <= tol || (got == want), "%s[%d]: got %.17g, want %.17g (rel err %.3g)", what, i,
              got, want, fabs(got - want) / fmax(fabs(want), 1e-300));
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

static const double BETAS[2] = {0.9, 0.999};

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

/* ---- options: defaults, validation, state access ----------------------- */

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

/* ---- clipping ----------------------------------------------------------- */

static void read_grads_ref(const problem *pr, double *out) {
    size_t n = ct_program_param_numel(pr->p);
    double *flat = malloc(n * sizeof *flat);
    cr_assert_eq(ct_program_read_grads(pr->p, flat, n * sizeof *flat), CT_OK);
    for (int k = 0; k < NP; k++) {
        size_t off = ct_program_param_offset(pr->p, pr->param[k]);
        for (int i = START[k]; i < START[k + 1]; i++) out[i] = flat[off + (size_t)(i - START[k])];
    }
    free(flat);
}

Test(optim, clip_grad_norm) {
    problem pr = make_problem(CT_F64);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    /* The program's own gradients are the baseline (the closed form 2cx + d
     * may round differently where the compiler fuses a multiply-add). */
    double g0[NV], g[NV], ss = 0, ss_formula = 0;
    read_grads_ref(&pr, g0);
    for (int i = 0; i < NV; i++) {
        double f = 2 * C[i] * X0[i] + D[i];
        expect_close("grad", i, g0[i], f, 1e-14);
        ss += g0[i] * g0[i];
        ss_formula += f * f;
    }
    double want_norm = sqrt(ss), norm = -1;
    expect_close("norm (closed form)", 0, want_norm, sqrt(ss_formula), 1e-13);

    /* Below the limit: untouched, norm reported. */
    cr_assert_eq(ct_clip_grad_norm(pr.p, want_norm * 2, &norm), CT_OK, "%s", ct_last_error());
    expect_close("norm", 0, norm, want_norm, 1e-14);
    read_grads_ref(&pr, g);
    for (int i = 0; i < NV; i++) cr_expect_eq(g[i], g0[i], "grad %d changed below the limit", i);

    /* Above: scaled by max_norm / (norm + 1e-6), PyTorch's factor. */
    double max_norm = 0.5;
    cr_assert_eq(ct_clip_grad_norm(pr.p, max_norm, &norm), CT_OK);
    expect_close("norm", 0, norm, want_norm, 1e-14);
    read_grads_ref(&pr, g);
    double coef = max_norm / (want_norm + 1e-6), after = 0;
    for (int i = 0; i < NV; i++) {
        expect_close("clipped grad", i, g[i], g0[i] * coef, 1e-14);
        after += g[i] * g[i];
    }
    cr_expect(sqrt(after) <= max_norm, "norm after clipping %g > %g", sqrt(after), max_norm);
    cr_expect_eq(ct_clip_grad_norm(pr.p, -1, NULL), CT_ERR_INVALID_ARG);
    free_problem(&pr);
}

Test(optim, clip_grad_norm_nan) {
    problem pr = make_problem(CT_F64);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    /* On the CPU the flat gradient buffer is host memory. */
    double *flat = ct_program_grads(pr.p);
    size_t off = ct_program_param_offset(pr.p, pr.param[2]);
    flat[off + 1] = NAN;
    double before[NV], after[NV], norm = 0;
    read_grads_ref(&pr, before);
    cr_expect_eq(ct_clip_grad_norm(pr.p, 0.1, &norm), CT_ERR_NUMERIC);
    cr_expect(strstr(ct_last_error(), "not finite") != NULL, "%s", ct_last_error());
    cr_expect(isnan(norm));
    read_grads_ref(&pr, after);
    for (int i = 0; i < NV; i++)
        cr_expect(memcmp(&before[i], &after[i], sizeof(double)) == 0, "grad %d touched after a NaN norm", i);
    flat[off + 1] = INFINITY;
    cr_expect_eq(ct_clip_grad_norm(pr.p, 0.1, &norm), CT_ERR_NUMERIC);
    free_problem(&pr);
}

Test(optim, clip_grad_value_and_scale) {
    problem pr = make_problem(CT_F64);
    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    double g0[NV], g[NV];
    read_grads_ref(&pr, g0);
    cr_assert_eq(ct_clip_grad_value(pr.p, 0.5), CT_OK, "%s", ct_last_error());
    read_grads_ref(&pr, g);
    for (int i = 0; i < NV; i++) cr_expect_eq(g[i], fmin(0.5, fmax(-0.5, g0[i])), "grad %d", i);
    cr_expect_eq(ct_clip_grad_value(pr.p, 0), CT_ERR_INVALID_ARG);

    cr_assert_eq(ct_program_run(pr.p), CT_OK);
    cr_assert_eq(ct_scale_grads(pr.p, 0.25), CT_OK);
    read_grads_ref(&pr, g);
    for (int i = 0; i < NV; i++) cr_expect_eq(g[i], g0[i] * 0.25, "scaled grad %d", i);
    cr_expect_eq(ct_scale_grads(pr.p, NAN), CT_ERR_INVALID_ARG);
    free_problem(&pr);
}

/* ---- gradient accumulation --------------------------------------------- */

/* A linear model with mean-squared error over a batch of B rows. */
static ct_graph *mse_graph(int B, ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F64, (ct_shape){2, {B, 3}});
    ct_node y = ct_input(g, "y", CT_F64, (ct_shape){2, {B, 2}});
    ct_node w = ct_param(g, "w", CT_F64, (ct_shape){2, {3, 2}}, ct_init_uniform(-1, 1));
    ct_node b = ct_param(g, "b", CT_F64, (ct_shape){1, {2}}, ct_init_uniform(-1, 1));
    *loss = ct_mse(g, ct_add(g, ct_matmul(g, x, w, false, false), b), y);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

Test(optim, grad_accumulation) {
    enum { MICRO = 2, N_MICRO = 3, FULL = MICRO * N_MICRO };
    double xs[FULL * 3], ys[FULL * 2];
    for (int i = 0; i < FULL * 3; i++) xs[i] = sin(1.0 + i * 0.7);
    for (int i = 0; i < FULL * 2; i++) ys[i] = cos(0.3 + i * 1.3);

    ct_node lm, lf;
    ct_graph *gm = mse_graph(MICRO, &lm), *gf = mse_graph(FULL, &lf);
    ct_program *pm = ct_compile(gm, &(ct_compile_opts){.outputs = &lm, .n_outputs = 1, .grads = true});
    cr_assert_not_null(pm, "%s", ct_last_error());
    ct_program *pf =
        ct_compile(gf, &(ct_compile_opts){.outputs = &lf, .n_outputs = 1, .grads = true, .share_params = pm});
    cr_assert_not_null(pf, "%s", ct_last_error());

    ct_grad_accum *acc = ct_grad_accum_new(pm);
    cr_assert_not_null(acc, "%s", ct_last_error());
    cr_expect_eq(ct_grad_accum_finish(acc), CT_ERR_STATE, "finish with nothing added");
    /* Twice: the second round checks that finish started a fresh sum. */
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < N_MICRO; k++) {
            cr_assert_eq(ct_program_set_input(pm, "x", xs + k * MICRO * 3, MICRO * 3 * sizeof(double)), CT_OK);
            cr_assert_eq(ct_program_set_input(pm, "y", ys + k * MICRO * 2, MICRO * 2 * sizeof(double)), CT_OK);
            cr_assert_eq(ct_program_run(pm), CT_OK, "%s", ct_last_error());
            cr_assert_eq(ct_grad_accum_add(acc), CT_OK, "%s", ct_last_error());
        }
        cr_expect_eq(ct_grad_accum_count(acc), N_MICRO);
        cr_assert_eq(ct_grad_accum_finish(acc), CT_OK, "%s", ct_last_error());
        cr_expect_eq(ct_grad_accum_count(acc), 0);
    }
    cr_assert_eq(ct_program_set_input(pf, "x", xs, sizeof xs), CT_OK);
    cr_assert_eq(ct_program_set_input(pf, "y", ys, sizeof ys), CT_OK);
    cr_assert_eq(ct_program_run(pf), CT_OK, "%s", ct_last_error());

    size_t n = ct_program_param_numel(pm);
    double *ga = malloc(n * sizeof *ga), *gfull = malloc(n * sizeof *gfull);
    cr_assert_eq(ct_program_read_grads(pm, ga, n * sizeof *ga), CT_OK);
    cr_assert_eq(ct_program_read_grads(pf, gfull, n * sizeof *gfull), CT_OK);
    double biggest = 0;
    for (size_t i = 0; i < n; i++) {
        cr_expect(fabs(ga[i] - gfull[i]) <= 1e-12 * fmax(1e-3, fabs(gfull[i])),
                  "grad %zu: accumulated %.17g, full batch %.17g", i, ga[i], gfull[i]);
        biggest = fmax(biggest, fabs(gfull[i]));
    }
    cr_expect_gt(biggest, 1e-3, "gradients are all zero: the test shows nothing");
    free(ga);
    free(gfull);
    ct_grad_accum_free(acc);
    ct_program_free(pf);
    ct_program_free(pm);
    ct_graph_free(gf);
    ct_graph_free(gm);
}

/* ---- the CPU hooks directly --------------------------------------------- */

Test(optim, cpu_hooks) {
    const ct_backend *be = ct_cpu_backend();
    cr_assert(be->optim_update && be->sumsq && be->scale_clamp && be->axpby, "CPU hooks not registered");
    /* axpby with b = 0 never reads y (NaN there must not leak). */
    double x[4] = {1, -2, 3, 0.5}, y[4] = {NAN, NAN, INFINITY, 7};
    cr_assert_eq(be->axpby(2.0, x, 0.0, y, CT_F64, 4), CT_OK);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], 2 * x[i]);
    cr_assert_eq(be->axpby(1.0, x, -0.5, y, CT_F64, 4), CT_OK);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], x[i] + -0.5 * 2 * x[i]);
    float xf[3] = {1.5f, -1, 2}, yf[3] = {1, 1, 1};
    cr_assert_eq(be->axpby(1.0, xf, 1.0, yf, CT_F32, 3), CT_OK);
    cr_expect_eq(yf[0], 2.5f);
    cr_expect_eq(be->axpby(1.0, x, 1.0, y, CT_I32, 1), CT_ERR_DTYPE);

    /* sumsq over a buffer large enough to run in parallel: close to a
     * serial sum (the chunked order rounds differently), identical from one
     * call to the next, and the finite flag set by inf and NaN. */
    size_t n = 200003;
    float *big = malloc(n * sizeof *big);
    double serial = 0;
    for (size_t i = 0; i < n; i++) {
        big[i] = (float)sin((double)i);
        serial += (double)big[i] * big[i];
    }
    double ss = 0, ss2 = 0;
    bool fin = false;
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss, &fin), CT_OK);
    cr_expect(fin);
    cr_expect(fabs(ss - serial) <= 1e-10 * serial, "sumsq %.17g vs %.17g", ss, serial);
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss2, &fin), CT_OK);
    cr_expect_eq(ss, ss2, "sumsq is not reproducible");
    big[n - 1] = INFINITY;
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss, &fin), CT_OK);
    cr_expect(!fin);
    big[n - 1] = NAN;
    cr_assert_eq(be->sumsq(big, CT_F32, n, &ss, &fin), CT_OK);
    cr_expect(!fin);
    free(big);

    /* scale_clamp: NaN passes through the clamp, as torch.clamp's does. */
    double v[4] = {3, -3, 0.1, NAN};
    cr_assert_eq(be->scale_clamp(v, CT_F64, 4, 2.0, 1.0), CT_OK);
    cr_expect_eq(v[0], 1.0);
    cr_expect_eq(v[1], -1.0);
    cr_expect_eq(v[2], 0.2);
    cr_expect(isnan(v[3]));
}
