/* Mixed precision: the precision policy (where casts go, what the
 * gradients reaching the optimizer are), the mixed-dtype matrix product,
 * and the loss scaler (GradScaler's semantics, the gated optimizer step,
 * its state).
 *
 * The graphs inspect node inputs through core/node.h; the scaler tests
 * drive a small FP16 regression program directly, with gradients injected
 * into its flat buffer (host memory on the CPU) where a test needs them.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "amp_checks.h"
#include "core/node.h"
#include "gradcheck.h"

#define BATCH 8
#define IN 6
#define HID 5
#define OUT 3

static void fill(float *v, int64_t n, uint64_t seed, uint32_t stream) {
    for (int64_t i = 0; i < n; i++) v[i] = 2.0f * ct_philox_uniform(seed, stream, 0, (uint64_t)i) - 1.0f;
}

/* A two-layer MLP classifier built under `prec`; returns the loss. */
static ct_node mlp_loss(ct_graph *g, ct_precision prec) {
    cr_assert_eq(ct_graph_set_precision(g, prec), CT_OK);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {BATCH, IN}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {BATCH}});
    ct_node h = ct_relu(g, ct_linear(g, "fc1", x, HID, true, NULL));
    ct_node logits = ct_softmax(g, ct_linear(g, "fc2", h, OUT, true, NULL), -1);
    ct_node loss = ct_cross_entropy(g, ct_log(g, logits), y, 0.0);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    return loss;
}

static bool consumers_all(const ct_graph *g, ct_node n, ct_op op) {
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] == n && g->nodes[i].op != op) return false;
    return true;
}

static void check_policy(ct_precision prec, ct_dtype half) {
    ct_graph *g = ct_graph_new();
    ct_node loss = mlp_loss(g, prec);
    cr_assert_eq(ct_graph_backward_scaled(g, loss), CT_OK, "%s", ct_last_error());
    int fwd_casts = 0, matmuls = 0;
    for (int i = 0; i < g->n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        ct_dtype in0 = nd->n_in ? g->nodes[nd->in[0]].dtype : CT_F32;
        if (nd->op == CT_OP_MATMUL) {
            matmuls++;
            cr_assert(in0 == half && g->nodes[nd->in[1]].dtype == half, "matmul %d on %s operands", i,
                      ct_dtype_name(in0));
            /* Forward and backward alike: the products' F32 results, not
             * rounded to half and widened by a cast (grad_cast). */
            cr_assert_eq(nd->dtype, CT_F32, "matmul %d gives %s", i, ct_dtype_name(nd->dtype));
        }
        cr_assert(!(nd->op == CT_OP_CAST && nd->dtype == CT_F32), "cast %d widens %s to F32", i,
                  ct_dtype_name(in0));
        if (nd->op == CT_OP_CAST && nd->dtype == half) {
            /* Forward casts (F32 -> half) and the upstream gradients of the
             * products: all of them feed matrix products only. */
            cr_assert(consumers_all(g, i, CT_OP_MATMUL), "cast %d feeds something else than matmul", i);
            if (i < loss) fwd_casts++;
        }
        if (nd->op == CT_OP_SOFTMAX || nd->op == CT_OP_LOG || nd->op == CT_OP_CROSS_ENTROPY ||
            nd->op == CT_OP_CROSS_ENTROPY_GRAD || nd->op == CT_OP_SOFTMAX_GRAD || nd->op == CT_OP_RELU ||
            nd->op == CT_OP_ADD || nd->op == CT_OP_SUM_TO)
            cr_assert(nd->dtype == CT_F32 && in0 == CT_F32, "%s (node %d) is %s on %s", ct_op_name(nd->op), i,
                      ct_dtype_name(nd->dtype), ct_dtype_name(in0));
    }
    /* x, fc1.weight, h, fc2.weight: one cast each; the biases are added in F32. */
    cr_assert_eq(fwd_casts, 4);
    cr_assert_eq(matmuls, 2 + 3, "two products forward, dW1, dW2 and dh backward (dx is not needed)");
    amp_expect_f32_master(g);
    ct_graph_free(g);
}

Test(amp, fp16_policy_casts_matmul_operands_only) { check_policy(CT_PRECISION_FP16, CT_F16); }
Test(amp, bf16_policy_casts_matmul_operands_only) { check_policy(CT_PRECISION_BF16, CT_BF16); }

Test(amp, fp32_policy_adds_no_cast_and_f64_is_never_cast) {
    ct_graph *g = ct_graph_new();
    ct_node loss = mlp_loss(g, CT_PRECISION_FP32);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK);
    for (int i = 0; i < g->n; i++) cr_assert_neq(g->nodes[i].op, CT_OP_CAST);
    ct_graph_free(g);

    g = ct_graph_new();
    ct_graph_set_precision(g, CT_PRECISION_FP16);
    ct_node a = ct_input(g, "a", CT_F64, (ct_shape){2, {2, 3}});
    ct_node b = ct_input(g, "b", CT_F64, (ct_shape){2, {3, 4}});
    ct_node c = ct_matmul(g, a, b, false, false);
    cr_assert_eq(ct_node_dtype(g, c), CT_F64);
    cr_assert_eq(ct_graph_num_nodes(g), 3);
    ct_graph_free(g);
}

Test(amp, a_weight_read_twice_is_cast_once_and_the_scope_ends) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {4, IN}});
    ct_graph_set_precision(g, CT_PRECISION_FP16);
    ct_node y1 = ct_linear(g, "shared", x, IN, false, NULL);
    ct_node y2 = ct_linear(g, "shared", y1, IN, false, NULL);
    int casts_of_w = 0;
    ct_node w = ct_find(g, "shared.weight");
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == CT_OP_CAST && g->nodes[i].in[0] == w) casts_of_w++;
    cr_assert_eq(casts_of_w, 1);
    cr_assert_eq(ct_node_dtype(g, y2), CT_F32);
    /* Back to FP32: products built now are not cast. */
    ct_graph_set_precision(g, CT_PRECISION_FP32);
    cr_assert_eq(ct_graph_precision(g), CT_PRECISION_FP32);
    int before = ct_graph_num_nodes(g);
    ct_node y3 = ct_linear(g, "shared", y2, IN, false, NULL);
    cr_assert_eq(ct_graph_num_nodes(g), before + 1, "one product, no cast");
    cr_assert_eq(ct_node_dtype(g, y3), CT_F32);
    ct_graph_free(g);
}

Test(amp, tf32_is_recorded_on_f32_products_only) {
    ct_graph *g = ct_graph_new();
    ct_node a = ct_input(g, "a", CT_F32, (ct_shape){2, {2, 3}});
    ct_node b = ct_input(g, "b", CT_F32, (ct_shape){2, {3, 2}});
    cr_assert_eq(ct_graph_set_tf32(g, true), CT_OK);
    cr_assert(ct_graph_tf32(g));
    ct_node c = ct_matmul(g, a, b, false, false);
    cr_assert(g->nodes[c].attr.tf32);
    ct_graph_set_precision(g, CT_PRECISION_BF16);
    ct_node d = ct_matmul(g, a, b, false, false);
    cr_assert_not(g->nodes[d].attr.tf32, "bf16 operands: TF32 means nothing");
    ct_graph_free(g);
}

Test(amp, names_parse_and_errors) {
    ct_precision p;
    cr_assert_eq(ct_precision_parse("bf16", &p), CT_OK);
    cr_assert_eq(p, CT_PRECISION_BF16);
    cr_assert_str_eq(ct_precision_name(CT_PRECISION_FP16), "fp16");
    cr_assert_eq(ct_precision_dtype(CT_PRECISION_FP16), CT_F16);
    cr_assert_eq(ct_precision_parse("fp8", &p), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "fp32, fp16, bf16"));
    cr_assert_eq(ct_graph_set_precision(NULL, CT_PRECISION_FP16), CT_ERR_INVALID_ARG);
    ct_graph *g = ct_graph_new();
    cr_assert_eq(ct_graph_set_precision(g, (ct_precision)7), CT_ERR_INVALID_ARG);
    ct_graph_free(g);
    cr_assert_str_eq(ct_loss_scale_mode_name(CT_LOSS_SCALE_DYNAMIC), "dynamic");
}

/* The product of F16 operands into F32 is the exact product of the
 * rounded operands, accumulated in F32 (rtol 1e-5 against double). */
Test(amp, mixed_matmul_kernel_matches_a_double_reference) {
    enum { M = 7, K = 33, N = 5 };
    for (int prec = CT_PRECISION_FP16; prec <= CT_PRECISION_BF16; prec++) {
        ct_graph *g = ct_graph_new();
        ct_graph_set_precision(g, (ct_precision)prec);
        ct_node a = ct_input(g, "a", CT_F32, (ct_shape){2, {M, K}});
        ct_node b = ct_input(g, "b", CT_F32, (ct_shape){2, {N, K}});
        ct_node c = ct_matmul(g, a, b, false, true);
        ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &c, .n_outputs = 1});
        cr_assert_not_null(p, "%s", ct_last_error());
        float av[M * K], bv[N * K], cv[M * N];
        fill(av, M * K, 3, (uint32_t)prec);
        fill(bv, N * K, 4, (uint32_t)prec);
        for (int i = 0; i < M * N; i++) cv[i] = NAN; /* poisoned */
        ct_program_set_input(p, "a", av, sizeof av);
        ct_program_set_input(p, "b", bv, sizeof bv);
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read(p, c, cv, sizeof cv), CT_OK);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double ref = 0, mag = 0;
                for (int k = 0; k < K; k++) {
                    double x = prec == CT_PRECISION_FP16 ? ct_f16_to_f32(ct_f32_to_f16(av[i * K + k]))
                                                         : ct_bf16_to_f32(ct_f32_to_bf16(av[i * K + k]));
                    double y = prec == CT_PRECISION_FP16 ? ct_f16_to_f32(ct_f32_to_f16(bv[j * K + k]))
                                                         : ct_bf16_to_f32(ct_f32_to_bf16(bv[j * K + k]));
                    ref += x * y;
                    mag += fabs(x * y);
                }
                cr_assert(fabs(cv[i * N + j] - ref) <= 1e-5 * mag + 1e-7, "%s c[%d,%d] = %.9g, want %.9g",
                          ct_precision_name((ct_precision)prec), i, j, cv[i * N + j], ref);
            }
        ct_program_free(p);
        ct_graph_free(g);
    }
}

static double rounded(ct_precision prec, float v) {
    return prec == CT_PRECISION_FP16 ? ct_f16_to_f32(ct_f32_to_f16(v)) : ct_bf16_to_f32(ct_f32_to_bf16(v));
}

/* The backward's products give the weight's gradient in F32 straight from
 * the rounded operands (x and the upstream gradient t): within F32
 * accumulation of a double reference, and not itself rounded to half (some
 * values need more than half's bits), where a product in half, widened by a
 * cast, would be. */
Test(amp, backward_products_give_f32_gradients_of_the_rounded_operands) {
    enum { M = 9, K = 21, N = 4 };
    for (int prec = CT_PRECISION_FP16; prec <= CT_PRECISION_BF16; prec++) {
        ct_graph *g = ct_graph_new();
        ct_graph_set_precision(g, (ct_precision)prec);
        ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {M, K}});
        ct_node t = ct_input(g, "t", CT_F32, (ct_shape){2, {M, N}});
        ct_node w = ct_param(g, "w", CT_F32, (ct_shape){2, {N, K}}, ct_init_uniform(-1.0, 1.0));
        ct_node loss = ct_sum(g, ct_mul(g, ct_matmul(g, x, w, false, true), t), CT_AXIS_ALL, false);
        cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
        ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
        cr_assert_not_null(p, "%s", ct_last_error());
        float xv[M * K], tv[M * N];
        fill(xv, M * K, 5, (uint32_t)prec);
        fill(tv, M * N, 6, (uint32_t)prec);
        size_t flat = ct_program_param_numel(p), at = ct_program_param_offset(p, w);
        cr_assert(at + N * K <= flat);
        float *all = malloc(flat * sizeof *all), *dw = all + at;
        for (size_t i = 0; i < flat; i++) all[i] = NAN; /* poisoned */
        ct_program_set_input(p, "x", xv, sizeof xv);
        ct_program_set_input(p, "t", tv, sizeof tv);
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read_grads(p, all, flat * sizeof *all), CT_OK, "%s", ct_last_error());
        int beyond_half = 0;
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) {
                double ref = 0, mag = 0;
                for (int i = 0; i < M; i++) {
                    ct_precision pr = (ct_precision)prec;
                    double term = rounded(pr, tv[i * N + j]) * rounded(pr, xv[i * K + k]);
                    ref += term;
                    mag += fabs(term);
                }
                float v = dw[j * K + k];
                cr_assert(fabs(v - ref) <= 1e-5 * mag + 1e-7, "%s dw[%d,%d] = %.9g, want %.9g",
                          ct_precision_name((ct_precision)prec), j, k, v, ref);
                beyond_half += rounded((ct_precision)prec, v) != v;
            }
        cr_assert_gt(beyond_half, N * K / 2, "%s: only %d of %d gradients need more than half's bits",
                     ct_precision_name((ct_precision)prec), beyond_half, N * K);
        free(all);
        ct_program_free(p);
        ct_graph_free(g);
    }
}

/* A recurrence built under a BF16 policy stays F32 but records the
 * policy's half dtype (attr.half), and its hidden weight's gradient is a
 * BF16 product with an F32 result, as the input projection's is. */
Test(amp, bf16_policy_takes_the_recurrence_weight_gradient_as_a_bf16_product) {
    for (int half = 0; half <= 1; half++) {
        ct_graph *g = ct_graph_new();
        if (half) ct_graph_set_precision(g, CT_PRECISION_BF16);
        ct_rnn_config c = {.input_size = IN, .hidden_size = HID, .num_layers = 1};
        ct_node x = ct_input(g, "x", CT_F32, (ct_shape){3, {BATCH, 3, IN}});
        ct_node y = ct_lstm(g, "lstm", &c, x, CT_NO_NODE, CT_NO_NODE, NULL);
        ct_node loss = ct_sum(g, y, CT_AXIS_ALL, false);
        cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
        ct_dtype want = half ? CT_BF16 : CT_F32;
        int rnn_nodes = 0;
        for (int i = 0; i < g->n; i++)
            if (g->nodes[i].op == CT_OP_RNN || g->nodes[i].op == CT_OP_RNN_GRAD) {
                rnn_nodes++;
                cr_assert_eq(g->nodes[i].dtype, CT_F32);
                cr_assert_eq(g->nodes[i].attr.half, want, "%s node %d", ct_op_name(g->nodes[i].op), i);
            }
        cr_assert_eq(rnn_nodes, 2);
        const ct_nodeinfo *dw = &g->nodes[ct_grad(g, ct_find(g, "lstm.weight_hh_l0"))];
        cr_assert_eq(dw->op, CT_OP_MATMUL);
        cr_assert_eq(dw->dtype, CT_F32);
        for (int k = 0; k < 2; k++)
            cr_assert_eq(g->nodes[dw->in[k]].dtype, want, "dW_hh operand %d is %s", k,
                         ct_dtype_name(g->nodes[dw->in[k]].dtype));
        amp_expect_f32_master(g);
        ct_graph_free(g);
    }
}

/* A float64 gradient check of a product built under an FP16 policy: F64
 * operands are left alone, so the check is as exact as ever. */
static ct_node b_policy_matmul(ct_graph *g, const ct_node *x, const void *ctx) {
    (void)ctx;
    ct_graph_set_precision(g, CT_PRECISION_FP16);
    return ct_matmul(g, ct_cast(g, ct_cast(g, x[0], CT_F32), CT_F64), x[1], false, true);
}

Test(amp, f64_gradient_check_through_casts_under_a_policy) {
    /* The tolerances of the cast's own check (test_gradcheck.c): the F32
     * round trip is linear, so a large h costs no truncation error. */
    gc_case c = {.name = "matmul of a cast round trip under fp16", .op = "cast", .n_in = 2,
                 .in = {{.shape = {2, {3, 4}}}, {.shape = {2, {5, 4}}}}, .build = b_policy_matmul,
                 .h = 1e-2, .rtol = 1e-4, .atol = 1e-4};
    gc_check(&c);
}

/* ------------------------------------------------------------ the scaler */

/* An FP16 regression y = x W^T (F32 target) with mean squared error,
 * differentiated with the loss-scale seed, with its scaler and Adam. */
typedef struct rig {
    ct_graph *g;
    ct_program *p;
    ct_scaler *s;
    ct_optimizer *opt;
    ct_node loss;
    size_t n;
} rig;

static rig rig_new(const ct_scaler_opts *so) {
    rig r = {.g = ct_graph_new()};
    ct_graph_set_seed(r.g, 5);
    ct_graph_set_precision(r.g, CT_PRECISION_FP16);
    ct_node x = ct_input(r.g, "x", CT_F32, (ct_shape){2, {BATCH, IN}});
    ct_node t = ct_input(r.g, "t", CT_F32, (ct_shape){2, {BATCH, OUT}});
    ct_node y = ct_linear(r.g, "fc", x, OUT, true, NULL);
    r.loss = ct_mse(r.g, y, t);
    cr_assert_eq(ct_graph_backward_scaled(r.g, r.loss), CT_OK, "%s", ct_last_error());
    r.p = ct_compile(r.g, &(ct_compile_opts){.outputs = &r.loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(r.p, "%s", ct_last_error());
    float xv[BATCH * IN], tv[BATCH * OUT];
    fill(xv, BATCH * IN, 9, 1);
    fill(tv, BATCH * OUT, 9, 2);
    ct_program_set_input(r.p, "x", xv, sizeof xv);
    ct_program_set_input(r.p, "t", tv, sizeof tv);
    r.s = ct_scaler_new(r.p, so);
    cr_assert_not_null(r.s, "%s", ct_last_error());
    r.opt = ct_optimizer_new(r.g, r.p, &(ct_optim_opts){.kind = CT_OPTIM_ADAM, .lr = 0.01});
    cr_assert_not_null(r.opt);
    r.n = ct_program_param_numel(r.p);
    return r;
}

static void rig_free(rig *r) {
    ct_optimizer_free(r->opt);
    ct_scaler_free(r->s);
    ct_program_free(r->p);
    ct_graph_free(r->g);
}

static ct_scaler_state state_of(const rig *r) {
    ct_scaler_state s;
    cr_assert_eq(ct_scaler_get_state(r->s, &s), CT_OK);
    return s;
}

/* One training step; with `inject` the first weight's gradient is made inf
 * (or NaN) after backward. Returns whether the scaler found it. */
static bool rig_step(rig *r, float inject) {
    cr_assert_eq(ct_program_run(r->p), CT_OK, "%s", ct_last_error());
    if (inject != 0) ((float *)ct_program_grads(r->p))[1] = inject;
    cr_assert_eq(ct_scaler_unscale(r->s), CT_OK, "%s", ct_last_error());
    bool found;
    cr_assert_eq(ct_scaler_found_inf(r->s, &found), CT_OK);
    cr_assert_eq(ct_scaler_step(r->s, r->opt, 0.01), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_scaler_update(r->s), CT_OK);
    return found;
}

Test(amp, the_seed_is_the_scale_and_unscaling_restores_the_gradient) {
    /* The same model and inputs without scaling give the reference. */
    rig r = rig_new(&(ct_scaler_opts){.mode = CT_LOSS_SCALE_STATIC, .init_scale = 1024});
    float *g = ct_program_grads(r.p);
    float *ref = malloc(r.n * sizeof *ref), *scaled = malloc(r.n * sizeof *scaled);
    cr_assert_eq(ct_scaler_set_state(r.s, &(ct_scaler_state){.scale = 1}), CT_OK);
    cr_assert_eq(ct_program_run(r.p), CT_OK);
    memcpy(ref, g, r.n * sizeof *ref);
    cr_assert_eq(ct_scaler_set_state(r.s, &(ct_scaler_state){.scale = 1024}), CT_OK);
    cr_assert_eq(ct_program_run(r.p), CT_OK);
    memcpy(scaled, g, r.n * sizeof *scaled);
    cr_assert_eq(ct_scaler_unscale(r.s), CT_OK);
    double norm = 0;
    for (size_t i = 0; i < r.n; i++) norm += fabs(ref[i]);
    cr_assert(norm > 1e-3, "gradients are not trivially zero");
    for (size_t i = 0; i < r.n; i++) {
        /* Scaled by 1024 in F16 then unscaled: as the unscaled F16 gradient
         * up to F16 rounding of smaller values (scaling helps precision). */
        cr_assert(fabs(scaled[i] - 1024 * ref[i]) <= 2e-3 * 1024 * fabs(ref[i]) + 1e-3, "[%zu] %g vs %g", i,
                  scaled[i], 1024 * ref[i]);
        cr_assert(fabs(g[i] - ref[i]) <= 2e-3 * fabs(ref[i]) + 1e-6, "[%zu] %g vs %g", i, g[i], ref[i]);
    }
    free(ref);
    free(scaled);
    rig_free(&r);
}

static void *snapshot(const rig *r, const char *state) {
    size_t bytes = r->n * sizeof(float);
    void *buf = malloc(bytes);
    cr_assert_not_null(buf);
    if (state) cr_assert_eq(ct_optimizer_read_state(r->opt, state, buf, bytes), CT_OK);
    else cr_assert_eq(ct_program_read_params(r->p, buf, bytes), CT_OK);
    return buf;
}

static void check_skip(float inject) {
    rig r = rig_new(NULL);
    cr_assert_not(rig_step(&r, 0));
    cr_assert_not(rig_step(&r, 0)); /* non-trivial optimizer state */
    void *w0 = snapshot(&r, NULL), *m0 = snapshot(&r, "exp_avg"), *v0 = snapshot(&r, "exp_avg_sq");
    ct_scaler_state before = state_of(&r);
    cr_assert_eq(before.scale, 65536.0);
    cr_assert_eq(before.growth_tracker, 2);
    cr_assert(rig_step(&r, inject), "the injected %g was not found", (double)inject);
    void *w1 = snapshot(&r, NULL), *m1 = snapshot(&r, "exp_avg"), *v1 = snapshot(&r, "exp_avg_sq");
    size_t bytes = r.n * sizeof(float);
    cr_assert(memcmp(w0, w1, bytes) == 0, "weights changed on a skipped step");
    cr_assert(memcmp(m0, m1, bytes) == 0 && memcmp(v0, v1, bytes) == 0, "optimizer state changed");
    ct_scaler_state after = state_of(&r);
    cr_assert_eq(after.scale, 32768.0);
    cr_assert_eq(after.growth_tracker, 0);
    cr_assert_eq(after.skipped_steps, 1);
    /* The next finite step updates again. */
    cr_assert_not(rig_step(&r, 0));
    void *w2 = snapshot(&r, NULL);
    cr_assert(memcmp(w1, w2, bytes) != 0);
    free(w0), free(m0), free(v0), free(w1), free(m1), free(v1), free(w2);
    rig_free(&r);
}

Test(amp, an_inf_gradient_skips_the_step_and_halves_the_scale) { check_skip(INFINITY); }
Test(amp, a_nan_gradient_skips_the_step_too) { check_skip(NAN); }

/* Adam after a skipped step is Adam without it: t counts taken steps. */
Test(amp, a_skipped_step_does_not_advance_the_optimizer_t) {
    rig a = rig_new(NULL), b = rig_new(NULL);
    rig_step(&a, 0);
    rig_step(&a, INFINITY);
    rig_step(&b, 0);
    /* Same scale on both sides for the last step: only t may differ. */
    ct_scaler_state s = state_of(&a);
    s.skipped_steps = 0;
    cr_assert_eq(ct_scaler_set_state(b.s, &s), CT_OK);
    rig_step(&a, 0);
    rig_step(&b, 0);
    void *wa = snapshot(&a, NULL), *wb = snapshot(&b, NULL);
    cr_assert(memcmp(wa, wb, a.n * sizeof(float)) == 0, "a skipped step changed the later updates");
    cr_assert_eq(ct_optimizer_step_count(a.opt), 3, "the host counts attempted steps");
    free(wa), free(wb);
    rig_free(&a);
    rig_free(&b);
}

/* Finite steps through the hooks only (no forward pass): growth after
 * exactly growth_interval of them. */
static void finite_steps(rig *r, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(ct_scaler_unscale(r->s), CT_OK);
        cr_assert_eq(ct_scaler_update(r->s), CT_OK);
    }
}

Test(amp, two_thousand_finite_steps_double_the_scale) {
    rig r = rig_new(NULL);
    cr_assert_eq(ct_program_run(r.p), CT_OK);
    finite_steps(&r, 1999);
    cr_assert_eq(state_of(&r).scale, 65536.0);
    cr_assert_eq(state_of(&r).growth_tracker, 1999);
    finite_steps(&r, 1);
    cr_assert_eq(state_of(&r).scale, 131072.0);
    cr_assert_eq(state_of(&r).growth_tracker, 0);
    cr_assert_eq(state_of(&r).skipped_steps, 0);
    rig_free(&r);
}

Test(amp, custom_growth_interval_and_factors_are_honoured) {
    rig r = rig_new(&(ct_scaler_opts){.init_scale = 8, .growth_factor = 4, .backoff_factor = 0.25, .growth_interval = 3});
    cr_assert_eq(ct_scaler_options(r.s)->mode, CT_LOSS_SCALE_DYNAMIC);
    cr_assert_not(rig_step(&r, 0));
    cr_assert_not(rig_step(&r, 0));
    cr_assert_eq(state_of(&r).scale, 8.0);
    cr_assert_not(rig_step(&r, 0));
    cr_assert_eq(state_of(&r).scale, 32.0);
    cr_assert(rig_step(&r, INFINITY));
    cr_assert_eq(state_of(&r).scale, 8.0);
    cr_assert(rig_step(&r, INFINITY));
    cr_assert_eq(state_of(&r).scale, 2.0);
    cr_assert_eq(state_of(&r).skipped_steps, 2);
    rig_free(&r);
}

Test(amp, a_scale_that_would_overflow_float_is_not_grown) {
    rig r = rig_new(&(ct_scaler_opts){.init_scale = 0x1p127, .growth_interval = 2});
    /* No backward here: seeded with 2^127 its gradients would overflow. */
    float *g = ct_program_grads(r.p);
    for (size_t i = 0; i < r.n; i++) g[i] = 0.5f;
    finite_steps(&r, 2);
    ct_scaler_state s = state_of(&r);
    cr_assert_eq(s.scale, 0x1p127, "2^128 is not a float: the scale stays");
    cr_assert_eq(s.growth_tracker, 0, "the counter restarts as in GradScaler");
    rig_free(&r);
}

Test(amp, a_static_scale_stays_and_still_skips) {
    rig r = rig_new(&(ct_scaler_opts){.mode = CT_LOSS_SCALE_STATIC, .init_scale = 512, .growth_interval = 2});
    cr_assert_not(rig_step(&r, 0));
    cr_assert_not(rig_step(&r, 0));
    cr_assert_not(rig_step(&r, 0));
    cr_assert_eq(state_of(&r).scale, 512.0);
    void *w0 = snapshot(&r, NULL);
    cr_assert(rig_step(&r, INFINITY));
    void *w1 = snapshot(&r, NULL);
    cr_assert(memcmp(w0, w1, r.n * sizeof(float)) == 0);
    cr_assert_eq(state_of(&r).scale, 512.0);
    cr_assert_eq(state_of(&r).skipped_steps, 1);
    free(w0), free(w1);
    rig_free(&r);
}

Test(amp, bad_options_and_programs_are_errors) {
    static const ct_scaler_opts bad[] = {
        {.mode = CT_LOSS_SCALE_NONE},   {.init_scale = -1},      {.init_scale = 1e39},
        {.growth_factor = 0.5},         {.backoff_factor = 1.5}, {.growth_interval = -3},
        {.mode = (ct_loss_scale_mode)9},
    };
    rig r = rig_new(NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_null(ct_scaler_new(r.p, &bad[i]), "options %zu accepted", i);
        cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    }
    cr_assert_eq(ct_scaler_set_state(r.s, &(ct_scaler_state){.scale = NAN}), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_scaler_set_state(r.s, &(ct_scaler_state){.scale = 1, .growth_tracker = 2000}), CT_ERR_INVALID_ARG);
    /* A program differentiated without the scale seed has no scale input. */
    ct_graph *g = ct_graph_new();
    ct_node w = ct_param(g, "w", CT_F32, (ct_shape){1, {3}}, ct_init_uniform(-1, 1));
    ct_node loss = ct_sum(g, ct_mul(g, w, w), CT_AXIS_ALL, false);
    ct_graph_backward(g, loss);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_null(ct_scaler_new(p, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_STATE);
    cr_assert(strstr(ct_last_error(), "ct_graph_backward_scaled"), "%s", ct_last_error());
    cr_assert_eq(ct_scaler_attach(r.s, p), CT_ERR_INVALID_ARG, "another program's gradients");
    /* The optimizer of another program cannot be gated by this scaler. */
    ct_optimizer *other = ct_optimizer_new(g, p, &(ct_optim_opts){.kind = CT_OPTIM_SGD});
    cr_assert_eq(ct_scaler_step(r.s, other, 0.1), CT_ERR_INVALID_ARG);
    ct_optimizer_free(other);
    ct_program_free(p);
    ct_graph_free(g);
    rig_free(&r);
}

Test(amp, state_round_trips) {
    rig r = rig_new(NULL);
    ct_scaler_state in = {.scale = 0x1p-3, .growth_tracker = 17, .skipped_steps = 5};
    cr_assert_eq(ct_scaler_set_state(r.s, &in), CT_OK);
    ct_scaler_state out = state_of(&r);
    cr_assert(memcmp(&in, &out, sizeof in) == 0);
    rig_free(&r);
}
