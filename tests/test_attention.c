/* The fused attention op on the CPU: its builder's checks and messages,
 * its outputs and gradients against attention composed from other ops
 * (matmul, scale, an additive causal mask, softmax, matmul), a small case
 * computed by hand, T = 1, each storage dtype against the F64 kernel, and
 * the backward's node structure (one attention_grad node for all three
 * gradients, else one per gradient wanted). The float64 gradient checks are in test_gradcheck_attention.c,
 * the GPU's parity cases in test_cuda_parity_attention.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/attention.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "graph_fixture.h"

TestSuite(attention, .init = setup, .fini = teardown);

/* A fresh graph in the middle of a test. */
static void reset(void) {
    teardown();
    setup();
}

/* ---- helpers ------------------------------------------------------------- */

static void fill(double *x, int64_t n, uint32_t stream, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ct_philox_uniform(0xA77Eu, stream, 0, (uint64_t)i);
}

/* Runs a program of g computing outs[0..n) from inputs q, k, v (F64 arrays
 * of numel elements each) and reads each output into res[j]. */
static void run(ct_node *outs, int n, const double *const qkv[3], int64_t numel, double **res) {
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = n});
    cr_assert_not_null(p, "%s", ct_last_error());
    static const char *const names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ct_program_set_input(p, names[i], qkv[i], (size_t)numel * sizeof(double)), CT_OK, "%s",
                     ct_last_error());
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    for (int j = 0; j < n; j++) {
        int64_t on = ct_shape_numel(ct_node_shape(g, outs[j]));
        cr_assert_eq(ct_program_read(p, outs[j], res[j], (size_t)on * sizeof(double)), CT_OK, "%s", ct_last_error());
    }
    ct_program_free(p);
}

/* Attention as a user would write it without the fused op. */
static ct_node composed(ct_node q, ct_node k, ct_node v, bool causal, double scale, int64_t t) {
    ct_node s = ct_scale(g, ct_matmul(g, q, k, false, true), scale);
    if (causal) {
        double *mask = malloc((size_t)(t * t) * sizeof *mask);
        cr_assert_not_null(mask);
        for (int64_t i = 0; i < t; i++)
            for (int64_t j = 0; j < t; j++) mask[i * t + j] = j <= i ? 0.0 : -INFINITY;
        s = ct_add(g, s, ct_constant(g, CT_F64, S2(t, t), mask));
        free(mask);
    }
    return ct_matmul(g, ct_softmax(g, s, -1), v, false, false);
}

/* y, dq, dk, dv (through loss = sum(y * r)) of the fused or the composed
 * attention, in g (rebuilt). */
static void attention_and_grads(bool fused, ct_shape s, bool causal, double scale, const double *const qkv[3],
                                const double *r, double *res[4]) {
    reset();
    ct_node q = in("q", CT_F64, s), k = in("k", CT_F64, s), v = in("v", CT_F64, s);
    const ct_node x[3] = {q, k, v};
    for (int i = 0; i < 3; i++) cr_assert_eq(ct_set_requires_grad(g, x[i], true), CT_OK);
    ct_node y = fused ? ct_attention(g, q, k, v, causal, scale) : composed(q, k, v, causal, scale, s.dim[2]);
    ct_node loss = ct_sum(g, ct_mul(g, y, ct_constant(g, CT_F64, s, r)), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node outs[4] = {y, ct_grad(g, q), ct_grad(g, k), ct_grad(g, v)};
    run(outs, 4, qkv, ct_shape_numel(s), res);
}

static void expect_close(const char *what, const double *got, const double *want, int64_t n, double rtol,
                         double atol) {
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i]), "%s element %lld: %.17g, want %.17g", what,
                  (long long)i, got[i], want[i]);
}

/* ---- against composed ops ------------------------------------------------ */

static void check_against_composed(ct_shape s, bool causal, double scale) {
    int64_t n = ct_shape_numel(s);
    double *buf = malloc((size_t)n * 12 * sizeof *buf);
    cr_assert_not_null(buf);
    double *qkv[3] = {buf, buf + n, buf + 2 * n}, *r = buf + 3 * n;
    for (int i = 0; i < 3; i++) fill(qkv[i], n, 1u + (uint32_t)i, -2, 2);
    fill(r, n, 9u, -1, 1);
    double *fused[4], *ref[4];
    for (int j = 0; j < 4; j++) fused[j] = buf + (4 + j) * n, ref[j] = buf + (8 + j) * n;
    attention_and_grads(true, s, causal, scale, (const double *const *)qkv, r, fused);
    attention_and_grads(false, s, causal, scale, (const double *const *)qkv, r, ref);
    static const char *const what[4] = {"y", "dq", "dk", "dv"};
    for (int j = 0; j < 4; j++) expect_close(what[j], fused[j], ref[j], n, 1e-12, 1e-13);
    free(buf);
}

Test(attention, matches_composed_ops) {
    check_against_composed(S4(2, 3, 7, 5), false, ct_attention_default_scale(5));
    check_against_composed(S4(2, 3, 7, 5), true, ct_attention_default_scale(5));
    check_against_composed(S4(1, 2, 33, 8), true, 0.7);
    check_against_composed(S4(3, 1, 1, 4), true, 0.5);
}

/* ---- by hand ------------------------------------------------------------- */

/* B = H = 1, T = 2, D = 2, scale 0.5: q = [[1, 0], [0, 2]],
 * k = [[1, 1], [0, 1]], v = [[1, 2], [3, -1]]. Row 0's scores are
 * [0.5, 0], p = [e^.5, 1] / (e^.5 + 1) = [0.62245933, 0.37754067]; row 1's
 * are [1, 1], p = [0.5, 0.5], y_1 = [2, 0.5]. With dy = [[1, 0], [0, 1]]:
 * dv_j = sum_i p_ij dy_i; dS row 0 = p (dy_0 . v_j - delta_0) with
 * dy_0 . v = [1, 3], delta_0 = 1.75508134 -> [-0.47000742, 0.47000742];
 * row 1: dy_1 . v = [2, -1], delta_1 = 0.5 -> [0.75, -0.75]; then
 * dq_i = 0.5 sum_j dS_ij k_j and dk_j = 0.5 sum_i dS_ij q_i. */
Test(attention, small_case_by_hand) {
    const double q[4] = {1, 0, 0, 2}, k[4] = {1, 1, 0, 1}, v[4] = {1, 2, 3, -1}, dy[4] = {1, 0, 0, 1};
    const double *const qkv[3] = {q, k, v};
    const double p0 = 0.6224593312018546, p1 = 0.3775406687981454, ds = 0.4700074244031888;
    const double y[4] = {1.7550813375962906, 0.8673779936055638, 2, 0.5};
    const double y_causal[4] = {1, 2, 2, 0.5};
    const double dq[4] = {-0.5 * ds, 0, 0.375, 0}, dq_causal[4] = {0, 0, 0.375, 0};
    const double dk[4] = {-0.5 * ds, 0.75, 0.5 * ds, -0.75}, dk_causal[4] = {0, 0.75, 0, -0.75};
    const double dv[4] = {p0, 0.5, p1, 0.5}, dv_causal[4] = {1, 0.5, 0, 0.5};
    double res[4][4], *rp[4] = {res[0], res[1], res[2], res[3]};
    for (int causal = 0; causal <= 1; causal++) {
        attention_and_grads(true, S4(1, 1, 2, 2), causal, 0.5, qkv, dy, rp);
        expect_close("y", res[0], causal ? y_causal : y, 4, 1e-15, 1e-15);
        expect_close("dq", res[1], causal ? dq_causal : dq, 4, 1e-14, 1e-15);
        expect_close("dk", res[2], causal ? dk_causal : dk, 4, 1e-14, 1e-15);
        expect_close("dv", res[3], causal ? dv_causal : dv, 4, 1e-15, 1e-15);
    }
}

/* One position: the softmax of one score is 1, so y = v exactly, and
 * dq = dk = 0 exactly, dv = dy. */
Test(attention, one_position_is_v) {
    ct_shape s = S4(2, 3, 1, 5);
    double q[30], k[30], v[30], r[30], res[4][30], *rp[4] = {res[0], res[1], res[2], res[3]};
    fill(q, 30, 1, -3, 3), fill(k, 30, 2, -3, 3), fill(v, 30, 3, -3, 3), fill(r, 30, 4, -1, 1);
    const double *const qkv[3] = {q, k, v};
    attention_and_grads(true, s, false, 0.3, qkv, r, rp);
    for (int i = 0; i < 30; i++) {
        cr_expect_eq(res[0][i], v[i], "y[%d]", i);
        cr_expect_eq(res[1][i], 0.0, "dq[%d]", i);
        cr_expect_eq(res[2][i], 0.0, "dk[%d]", i);
        cr_expect_eq(res[3][i], r[i], "dv[%d]", i);
    }
}

/* ---- storage dtypes ------------------------------------------------------ */

/* The reference kernel in F32, F16 and BF16 computes in double and rounds
 * once: its output is the F64 kernel's on the same (rounded) inputs, stored
 * in the dtype, bit for bit. Forward and the three gradients, causal and
 * not. (F32's float fast path is off here: test_attention_fast.c.) */
Test(attention, storage_dtypes_round_the_f64_result_once) {
    ct_cpu_set_fast_paths(false);
    ct_kernel_fn table[CT_OP_COUNT] = {0};
    ct_cpu_register_attention(table);
    ct_shape s = S4(2, 2, 9, 6);
    int64_t n = ct_shape_numel(s);
    const ct_dtype dts[3] = {CT_F32, CT_F16, CT_BF16};
    double *x64 = malloc((size_t)(4 * n) * sizeof *x64), *o64 = malloc((size_t)n * sizeof *o64);
    void *scratch = malloc(ct_cpu_attention_scratch(&(ct_kargs){.n_in = 1, .in = &(ct_tview){.shape = s}}));
    unsigned char *xd = malloc((size_t)(4 * n) * sizeof(float)), *od = malloc((size_t)n * sizeof(float)),
                  *want = malloc((size_t)n * sizeof(float));
    cr_assert(x64 && o64 && scratch && xd && od && want);
    for (int di = 0; di < 3; di++) {
        ct_dtype dt = dts[di];
        size_t es = ct_dtype_size(dt);
        for (int64_t i = 0; i < 4 * n; i++) {
            ct_st(xd, dt, i, -2.0 + 4.0 * ct_philox_uniform(7u, (uint32_t)di, 0, (uint64_t)i));
            x64[i] = ct_ld(xd, dt, i);
        }
        for (int which = -1; which <= CT_ATTN_GRAD_V; which++)
            for (int causal = 0; causal <= 1; causal++) {
                ct_attrs a = {.alpha = 0.45, .causal = causal, .which = which < 0 ? 0 : which};
                ct_op op = which < 0 ? CT_OP_ATTENTION : CT_OP_ATTENTION_GRAD;
                int n_in = which < 0 ? 3 : 4;
                ct_tview in64[4], ind[4];
                for (int j = 0; j < 4; j++) {
                    in64[j] = (ct_tview){x64 + j * n, CT_F64, s, n};
                    ind[j] = (ct_tview){xd + (size_t)(j * n) * es, dt, s, n};
                }
                ct_kargs k64 = {.op = op, .attr = &a, .n_in = n_in, .in = in64, .out = {o64, CT_F64, s, n},
                                .scratch = scratch};
                ct_kargs kd = {.op = op, .attr = &a, .n_in = n_in, .in = ind, .out = {od, dt, s, n}, .scratch = scratch};
                cr_assert_eq(table[op](&k64), CT_OK, "%s", ct_last_error());
                cr_assert_eq(table[op](&kd), CT_OK, "%s", ct_last_error());
                for (int64_t i = 0; i < n; i++) ct_st(want, dt, i, o64[i]);
                cr_assert(memcmp(od, want, (size_t)n * es) == 0, "%s, which %d, causal %d: not the F64 result rounded",
                          ct_dtype_name(dt), which, causal);
            }
    }
    free(x64), free(o64), free(scratch), free(xd), free(od), free(want);
    ct_cpu_set_fast_paths(true);
}

/* ---- the backward's nodes -------------------------------------------------- */

static int count_op(const char *op) {
    int c = 0;
    for (int i = 0; i < ct_graph_num_nodes(g); i++) c += strcmp(ct_node_op(g, i), op) == 0;
    return c;
}

/* One attention_grad node for all three gradients, else one per gradient
 * wanted, none for the rest. */
Test(attention, grad_nodes_as_wanted) {
    ct_shape s = S4(1, 2, 3, 4);
    ct_node q = in("q", CT_F32, s), k = in("k", CT_F32, s), v = in("v", CT_F32, s);
    cr_assert_eq(ct_set_requires_grad(g, q, true), CT_OK);
    ct_node y = ct_attention(g, q, k, v, true, 0.5);
    expect_shape(y, s, CT_F32, "attention");
    cr_assert_str_eq(ct_node_op(g, y), "attention");
    cr_assert_eq(ct_graph_backward(g, ct_sum(g, y, CT_AXIS_ALL, false)), CT_OK, "%s", ct_last_error());
    cr_expect_eq(count_op("attention_grad"), 1);
    expect_shape(ct_grad(g, q), s, CT_F32, "dq");
    cr_expect_eq(ct_grad(g, k), CT_NO_NODE);

    reset();
    ct_node x = in("x", CT_BF16, s);
    cr_assert_eq(ct_set_requires_grad(g, x, true), CT_OK);
    ct_node y2 = ct_attention(g, x, x, x, false, 1.0);
    cr_assert_eq(ct_graph_backward(g, ct_sum(g, y2, CT_AXIS_ALL, false)), CT_OK, "%s", ct_last_error());
    cr_expect_eq(count_op("attention_grad"), 1, "dq, dk, dv: one node");
    cr_expect_eq(count_op("slice"), 3);
    expect_shape(ct_grad(g, x), s, CT_BF16, "dx = dq + dk + dv");

    reset();
    q = in("q", CT_F32, s), k = in("k", CT_F32, s), v = in("v", CT_F32, s);
    cr_assert_eq(ct_set_requires_grad(g, q, true), CT_OK);
    cr_assert_eq(ct_set_requires_grad(g, v, true), CT_OK);
    ct_node y3 = ct_attention(g, q, k, v, true, 0.5);
    cr_assert_eq(ct_graph_backward(g, ct_sum(g, y3, CT_AXIS_ALL, false)), CT_OK, "%s", ct_last_error());
    cr_expect_eq(count_op("attention_grad"), 2, "dq and dv: two nodes");
    cr_expect_eq(ct_grad(g, k), CT_NO_NODE);
}

/* ---- bad input ------------------------------------------------------------- */

Test(attention, default_scale) {
    cr_expect_eq(ct_attention_default_scale(64), 0.125);
    cr_expect_eq(ct_attention_default_scale(1), 1.0);
    cr_expect(fabs(ct_attention_default_scale(128) - 1.0 / sqrt(128.0)) < 1e-17);
    cr_expect_eq(ct_attention_default_scale(0), 1.0);
}

Test(attention, bad_shapes) {
    ct_node q = in("q", CT_F32, S4(2, 4, 8, 16));
    expect_build_error(ct_attention(g, q, in("k", CT_F32, S4(2, 4, 9, 16)), q, false, 0.25), CT_ERR_SHAPE,
                       "attention", "[2, 4, 8, 16]", "[2, 4, 9, 16]", "query and key lengths T must be equal", NULL);
    reset();
    q = in("q", CT_F32, S4(2, 4, 8, 16));
    expect_build_error(ct_attention(g, q, q, in("v", CT_F32, S4(2, 4, 8, 32)), false, 0.25), CT_ERR_SHAPE,
                       "v [2, 4, 8, 32]", "one shape [B, H, T, D]", NULL);
    reset();
    q = in("q", CT_F32, S4(2, 4, 8, 16));
    expect_build_error(ct_attention(g, q, in("k", CT_F32, S4(2, 2, 8, 16)), q, false, 0.25), CT_ERR_SHAPE,
                       "k [2, 2, 8, 16]", "one shape", NULL);
    reset();
    ct_node q3 = in("q", CT_F32, S3(4, 8, 16));
    expect_build_error(ct_attention(g, q3, q3, q3, true, 0.25), CT_ERR_SHAPE, "q [4, 8, 16] has 3 axes",
                       "[B, H, T, D]", NULL);
    reset();
    ct_node q4 = in("q", CT_F32, S4(1, 1, 2, 2));
    expect_build_error(ct_attention(g, q4, q4, in("v", CT_F32, S1(4)), true, 0.25), CT_ERR_SHAPE,
                       "v [4] has 1 axis", NULL);
}

Test(attention, bad_dtypes) {
    ct_node qi = in("q", CT_I32, S4(1, 1, 2, 2));
    expect_build_error(ct_attention(g, qi, qi, qi, false, 1.0), CT_ERR_DTYPE, "attention: q is i32",
                       "it takes floats", NULL);
    reset();
    ct_node q = in("q", CT_F32, S4(1, 1, 2, 2)), k = in("k", CT_F64, S4(1, 1, 2, 2));
    expect_build_error(ct_attention(g, q, k, q, false, 1.0), CT_ERR_DTYPE, "q is f32 but k is f64", "one dtype",
                       NULL);
}

Test(attention, bad_scale) {
    const double bad[5] = {0.0, -0.125, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 5; i++) {
        reset();
        ct_node q = in("q", CT_F32, S4(1, 2, 3, 4));
        expect_build_error(ct_attention(g, q, q, q, true, bad[i]), CT_ERR_INVALID_ARG, "attention: scale = ",
                           "finite and > 0", "ct_attention_default_scale", NULL);
    }
}

/* A failed earlier builder passes through silently; a foreign handle is an
 * error naming the input. */
Test(attention, propagates_earlier_failures) {
    ct_node q = in("q", CT_F32, S4(1, 2, 3, 4));
    cr_assert_eq(ct_attention(g, q, CT_NO_NODE, q, false, 1.0), CT_NO_NODE);
    cr_expect_eq(ct_graph_status(g), CT_OK);
    expect_build_error(ct_attention(g, q, q, 99, false, 1.0), CT_ERR_INVALID_ARG, "attention: input 2", NULL);
}

/* The kernels check their arguments too (the builder makes these
 * impossible; the checks keep a bad call from reading out of bounds). */
Test(attention, kernel_argument_checks) {
    ct_kernel_fn table[CT_OP_COUNT] = {0};
    ct_cpu_register_attention(table);
    float x[8] = {0}, o[8];
    double scratch[32];
    ct_tview v4 = {x, CT_F32, S4(1, 1, 2, 4), 8}, v3 = {x, CT_F32, S3(1, 2, 4), 8};
    ct_tview in4[4] = {v4, v4, v4, v4}, in3[3] = {v3, v3, v3};
    ct_attrs a = {.alpha = 1.0, .which = 7};
    ct_kargs k = {.op = CT_OP_ATTENTION_GRAD, .attr = &a, .n_in = 4, .in = in4, .out = {o, CT_F32, S4(1, 1, 2, 4), 8},
                  .scratch = scratch};
    expect_status(table[CT_OP_ATTENTION_GRAD](&k), CT_ERR_INTERNAL, "unknown gradient 7", NULL);
    k.n_in = 3;
    expect_status(table[CT_OP_ATTENTION_GRAD](&k), CT_ERR_INTERNAL, "expected 4 inputs, got 3", NULL);
    ct_kargs kf = {.op = CT_OP_ATTENTION, .attr = &a, .n_in = 3, .in = in3, .out = k.out, .scratch = scratch};
    expect_status(table[CT_OP_ATTENTION](&kf), CT_ERR_SHAPE, "q has 3 axes", NULL);
    kf.in = in4;
    kf.out.numel = 6;
    expect_status(table[CT_OP_ATTENTION](&kf), CT_ERR_SHAPE, "output has 6 elements, q has 8", NULL);
    kf.out.numel = 8;
    kf.scratch = NULL;
    expect_status(table[CT_OP_ATTENTION](&kf), CT_ERR_INTERNAL, "no scratch", NULL);
}
