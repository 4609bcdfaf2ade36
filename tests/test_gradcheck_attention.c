/* Float64 gradient checks of the fused attention (harness: gradcheck.h)
 * with respect to q, k and v, causal and not, over odd lengths, T = 1 (a
 * softmax of one key: y = v, dq = dk = 0), a head size of 1, a scale that
 * is not the default, and one input used as q, k and v at once (its three
 * gradients accumulated). test_gradcheck.c's coverage list names the op and
 * points here. */
#include <criterion/criterion.h>

#include <ctrain/ctrain.h>

#include "gradcheck.h"

#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

TestSuite(gradcheck_attention, .timeout = 300);

typedef struct att_ctx {
    bool causal;
    double scale; /* 0: the default for the head size */
    bool shared;  /* q = k = v = x0 */
} att_ctx;

static ct_node b_attention(ct_graph *g, const ct_node *x, const void *ctx) {
    const att_ctx *a = ctx;
    double scale = a->scale > 0 ? a->scale : ct_attention_default_scale(ct_node_shape(g, x[0]).dim[3]);
    if (a->shared) return ct_attention(g, x[0], x[0], x[0], a->causal, scale);
    return ct_attention(g, x[0], x[1], x[2], a->causal, scale);
}

static void check_attention(const char *name, ct_shape s, bool causal, double scale, double lo, double hi) {
    att_ctx ctx = {causal, scale, false};
    gc_case c = {.name = name, .op = "attention", .n_in = 3, .build = b_attention, .ctx = &ctx};
    for (int i = 0; i < 3; i++) c.in[i] = (gc_in){.shape = s, .lo = lo, .hi = hi};
    gc_check(&c);
}

OP_TEST(gradcheck_attention, plain_odd_lengths, CT_OP_ATTENTION) {
    check_attention("attention [2, 3, 5, 4]", S4(2, 3, 5, 4), false, 0, 0, 0);
    check_attention("attention [1, 2, 7, 3]", S4(1, 2, 7, 3), false, 0, 0, 0);
}

OP_TEST(gradcheck_attention, causal_odd_lengths, CT_OP_ATTENTION) {
    check_attention("causal attention [2, 3, 5, 4]", S4(2, 3, 5, 4), true, 0, 0, 0);
    check_attention("causal attention [1, 2, 7, 3]", S4(1, 2, 7, 3), true, 0, 0, 0);
}

/* One key per query: the softmax is 1 whatever the scores, so dq and dk
 * are exactly zero and dv is the upstream gradient. */
OP_TEST(gradcheck_attention, one_position, CT_OP_ATTENTION) {
    check_attention("attention T = 1", S4(2, 2, 1, 3), false, 0, 0, 0);
    check_attention("causal attention T = 1", S4(2, 2, 1, 3), true, 0, 0, 0);
}

/* Larger scores (values in [-2, 2], scale 0.9 over D = 6): a peaked
 * softmax, where a wrong max subtraction or a wrong delta shows. */
OP_TEST(gradcheck_attention, explicit_scale_peaked, CT_OP_ATTENTION) {
    check_attention("attention scale 0.9", S4(1, 2, 6, 6), false, 0.9, -2, 2);
    check_attention("causal attention scale 0.9", S4(1, 2, 6, 6), true, 0.9, -2, 2);
}

OP_TEST(gradcheck_attention, head_size_one, CT_OP_ATTENTION) {
    check_attention("attention D = 1", S4(1, 1, 4, 1), false, 0, 0, 0);
    check_attention("causal attention D = 1", S4(1, 1, 4, 1), true, 0, 0, 0);
}

/* Self-attention of one tensor: x's gradient is dq + dk + dv. */
OP_TEST(gradcheck_attention, one_input_as_q_k_and_v, CT_OP_ATTENTION) {
    for (int causal = 0; causal <= 1; causal++) {
        att_ctx ctx = {causal, 0, true};
        gc_case c = {.name = causal ? "causal attention(x, x, x)" : "attention(x, x, x)", .op = "attention",
                     .n_in = 1, .build = b_attention, .ctx = &ctx};
        c.in[0].shape = S4(2, 1, 5, 3);
        gc_check(&c);
    }
}

/* Only v needs a gradient (q and k are fixed inputs): dv alone, causal. */
static ct_node b_attention_const_qk(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    return ct_attention(g, x[0], x[1], x[2], true, 0.5);
}

OP_TEST(gradcheck_attention, gradient_of_v_only, CT_OP_ATTENTION) {
    gc_case c = {.name = "attention, v only", .op = "attention", .n_in = 3, .build = b_attention_const_qk};
    for (int i = 0; i < 3; i++) c.in[i] = (gc_in){.shape = S4(1, 2, 5, 3), .no_grad = i < 2};
    gc_check(&c);
}
