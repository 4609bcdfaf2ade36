/* Float64 gradient check of kl_div (distillation's loss term,
 * docs/compression.md) in both inputs, through log_softmax and softmax as
 * distillation uses it, and on its raw inputs. */
#include <criterion/criterion.h>
#include <math.h>

#include <ctrain/ctrain.h>

#include "gradcheck.h"

/* input = log_softmax(x0 / T), target = softmax(x1 / T): distillation's form. */
static ct_node b_kl_softmax(ct_graph *g, const ct_node *x, const void *ctx) {
    double inv_t = 1.0 / *(const double *)ctx;
    ct_node s = ct_log_softmax(g, ct_scale(g, x[0], inv_t), -1);
    ct_node t = ct_softmax(g, ct_scale(g, x[1], inv_t), -1);
    return ct_kl_div(g, s, t);
}

/* Raw inputs: any input, and a positive target (log t needs t > 0). */
static ct_node b_kl_raw(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_kl_div(g, x[0], x[1]);
}

OP_TEST(gradcheck, kl_div, CT_OP_KL_DIV) {
    static const double temps[] = {1.0, 4.0};
    for (int i = 0; i < 2; i++) {
        gc_case c = {.name = i ? "kl_div softmax T=4" : "kl_div softmax T=1", .op = "kl_div", .n_in = 2,
                     .build = b_kl_softmax, .ctx = &temps[i]};
        c.in[0] = (gc_in){.shape = {2, {5, 7}}, .lo = -3, .hi = 3};
        c.in[1] = (gc_in){.shape = {2, {5, 7}}, .lo = -3, .hi = 3};
        gc_check(&c);
    }
    gc_case r = {.name = "kl_div raw [3,4] both inputs", .op = "kl_div", .n_in = 2, .build = b_kl_raw};
    r.in[0] = (gc_in){.shape = {2, {3, 4}}, .lo = -2, .hi = 2};
    r.in[1] = (gc_in){.shape = {2, {3, 4}}, .lo = 0.05, .hi = 1};
    gc_check(&r);
    gc_case f = {.name = "kl_div raw [2,3,2] fixed target", .op = "kl_div", .n_in = 2, .build = b_kl_raw};
    f.in[0] = (gc_in){.shape = {3, {2, 3, 2}}, .lo = -2, .hi = 2};
    f.in[1] = (gc_in){.shape = {3, {2, 3, 2}}, .lo = 0.05, .hi = 1, .no_grad = true};
    gc_check(&f);
}
