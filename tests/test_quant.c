/* Int8 quantization: the parameters and rounding against PyTorch's
 * (tests/ref/quant_reference.py), the int8 products against a plain integer
 * reference (exact), the quantized linear layer against the same
 * arithmetic in double, and int8 tensors in safetensors files. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctrain/ctrain.h"

#define REF CTRAIN_TEST_SOURCE_DIR "/ref/quant_ref.safetensors"

/* A tensor of the reference file as F32 / raw bytes. */
static void ref_f32(const ct_st_file *f, const char *name, float *dst, size_t n) {
    int i = ct_st_find(f, name);
    cr_assert(i >= 0, "%s missing", name);
    cr_assert_eq(ct_st_read(f, i, CT_F32, dst, n * sizeof *dst), CT_OK, "%s: %s", name, ct_last_error());
}

static const void *ref_bytes(const ct_st_file *f, const char *name, const char *dtype, size_t n) {
    int i = ct_st_find(f, name);
    cr_assert(i >= 0, "%s missing", name);
    cr_assert_str_eq(ct_st_dtype_name(f, i), dtype);
    cr_assert_eq(ct_st_nbytes(f, i), n * (strcmp(dtype, "I32") == 0 ? 4 : 1));
    return ct_st_data(f, i);
}

Test(quant_params, round_half_to_even) {
    const float in[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4999998f, 126.5f, -127.5f};
    const float want[] = {0, 2, 2, -0.0f, -2, -2, 2, 126, -128};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) cr_expect_eq(ct_quant_round(in[i]), want[i], "%g", in[i]);
}

Test(quant_params, weights_match_torch_per_channel_symmetric) {
    ct_st_file *f = ct_st_open(REF);
    cr_assert(f, "%s", ct_last_error());
    float w[6 * 37], s[6], ws[6];
    int8_t q[6 * 37];
    ref_f32(f, "w", w, 6 * 37);
    ref_f32(f, "w_scale", ws, 6);
    const int8_t *wq = ref_bytes(f, "w_q", "I8", 6 * 37);
    cr_assert_eq(ct_quant_weights(w, 6, 37, q, s), CT_OK);
    for (int r = 0; r < 6; r++) cr_expect_eq(s[r], ws[r], "scale %d: %.9g vs torch %.9g", r, s[r], ws[r]);
    cr_expect_eq(s[2], FLT_EPSILON, "an all-zero row gets eps");
    cr_expect_eq(s[3], 1.0f, "the row of halves has scale 1");
    int ties = 0;
    for (int i = 0; i < 6 * 37; i++) {
        cr_expect_eq(q[i], wq[i], "element %d (%.9g): %d vs torch %d", i, w[i], q[i], wq[i]);
        ties += w[i] != floorf(w[i]) && w[i] * 2 == floorf(w[i] * 2) && (i / 37 == 3 || i / 37 == 4);
    }
    cr_expect_eq(ties, 72, "the reference holds exact halves");
    ct_st_close(f);
}

Test(quant_params, weights_refuse_nan) {
    float w[4] = {1, 2, NAN, 3};
    int8_t q[4];
    float s[2];
    cr_expect_eq(ct_quant_weights(w, 2, 2, q, s), CT_ERR_NUMERIC);
    cr_expect(strstr(ct_last_error(), "row 1") != NULL, "%s", ct_last_error());
}

static void check_act(const ct_st_file *f, const char *name, int64_t n) {
    char key[32];
    float *x = malloc((size_t)n * sizeof *x), s, ref_s, lo = INFINITY, hi = -INFINITY;
    uint8_t *q = malloc((size_t)n);
    int32_t zp, ref_zp;
    ref_f32(f, name, x, (size_t)n);
    snprintf(key, sizeof key, "%s_scale", name);
    ref_f32(f, key, &ref_s, 1);
    snprintf(key, sizeof key, "%s_zp", name);
    memcpy(&ref_zp, ref_bytes(f, key, "I32", 1), 4);
    for (int64_t i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    cr_assert_eq(ct_quant_act_params(lo, hi, &s, &zp), CT_OK);
    cr_expect_eq(s, ref_s, "%s scale %.9g vs torch %.9g", name, s, ref_s);
    cr_expect_eq(zp, ref_zp, "%s zero point %d vs torch %d", name, zp, ref_zp);
    snprintf(key, sizeof key, "%s_q", name);
    const uint8_t *rq = ref_bytes(f, key, "U8", (size_t)n);
    ct_quant_act(x, n, s, zp, q);
    int distinct = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_expect_eq(q[i], rq[i], "%s[%lld] = %.9g: %d vs torch %d", name, (long long)i, x[i], q[i], rq[i]);
        distinct += i > 0 && q[i] != q[i - 1];
    }
    cr_expect_gt(distinct, n / 2, "real values, not a constant");
    free(x);
    free(q);
}

Test(quant_params, activations_match_torch_minmax_affine) {
    ct_st_file *f = ct_st_open(REF);
    cr_assert(f, "%s", ct_last_error());
    check_act(f, "x", 5 * 23);
    check_act(f, "xpos", 4 * 19); /* all positive: zero point 0 */
    ct_st_close(f);
}

Test(quant_params, act_params_refuse_bad_ranges) {
    float s;
    int32_t zp;
    cr_expect_eq(ct_quant_act_params(1, 0, &s, &zp), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_quant_act_params(NAN, 0, &s, &zp), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_quant_act_params(0, INFINITY, &s, &zp), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_quant_act_params(0, 0, &s, &zp), CT_OK); /* a constant zero input */
    cr_expect_eq(s, FLT_EPSILON);
    cr_expect_eq(zp, 0);
}

Test(quant_params, percentile_matches_torch_quantile) {
    ct_st_file *f = ct_st_open(REF);
    cr_assert(f, "%s", ct_last_error());
    float v[1001], hi, lo, mid;
    ref_f32(f, "p_hi", &hi, 1);
    ref_f32(f, "p_lo", &lo, 1);
    ref_f32(f, "p_mid", &mid, 1);
    const struct { double p; float want; } cases[] = {{99.99, hi}, {0.01, lo}, {50, mid}};
    for (int c = 0; c < 3; c++) {
        ref_f32(f, "p_vals", v, 1001);
        float got = ct_quant_percentile(v, 1001, cases[c].p);
        cr_expect(fabsf(got - cases[c].want) <= 1e-6f * fabsf(cases[c].want) + 1e-7f, "p %g: %.9g vs torch %.9g",
                  cases[c].p, got, cases[c].want);
    }
    ct_st_close(f);
}

/* ------------------------------------------------------------ int8 products */

static uint32_t rng_state = 12345;
static uint32_t next_u32(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void fill(uint8_t *a, int64_t na, int8_t *w, int64_t nw, bool extreme) {
    for (int64_t i = 0; i < na; i++) a[i] = extreme ? 255 : (uint8_t)(next_u32() % 256);
    for (int64_t i = 0; i < nw; i++) w[i] = extreme ? (i % 3 ? 127 : -127) : (int8_t)((int)(next_u32() % 255) - 127);
}

/* The plain reference: int64 sums, so an overflow of int32 would show. */
static void reference(const uint8_t *a, int64_t lda, const int8_t *w, int64_t m, int64_t n, int64_t k, int64_t *c) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t o = 0; o < n; o++) {
            int64_t s = 0;
            for (int64_t kk = 0; kk < k; kk++) s += (int64_t)a[i * lda + kk] * w[o * k + kk];
            c[i * n + o] = s;
        }
}

static void check_product(ct_int8_kernel kernel, int64_t m, int64_t n, int64_t k, int64_t lda, bool extreme) {
    uint8_t *a = malloc((size_t)(m * lda));
    int8_t *w = malloc((size_t)(n * k));
    int32_t *c = malloc((size_t)(m * n) * sizeof *c);
    int64_t *ref = malloc((size_t)(m * n) * sizeof *ref);
    fill(a, m * lda, w, n * k, extreme);
    memset(c, 0x5a, (size_t)(m * n) * sizeof *c); /* poison */
    reference(a, lda, w, m, n, k, ref);
    ct_int8_matrix *pw = ct_int8_pack(w, n, k);
    cr_assert(pw, "%s", ct_last_error());
    cr_assert_eq(ct_int8_set_kernel(kernel), CT_OK);
    cr_assert_eq(ct_int8_matmul(pw, a, m, lda, c), CT_OK);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < m * n; i++) {
        cr_expect_eq((int64_t)c[i], ref[i], "%s [%lld x %lld x %lld]: c[%lld] = %d, reference %lld",
                     ct_int8_kernel_name(), (long long)m, (long long)n, (long long)k, (long long)i, c[i],
                     (long long)ref[i]);
        nonzero += ref[i] != 0;
        if (c[i] != ref[i]) break; /* one message per case */
    }
    cr_expect_gt(nonzero, m * n / 2);
    ct_int8_set_kernel(CT_INT8_AUTO);
    ct_int8_matrix_free(pw);
    free(a);
    free(w);
    free(c);
    free(ref);
}

/* Sizes off every block edge: k not a multiple of 4, n not of 16 or 64,
 * m not of 4; a row stride longer than k; one large enough to thread; full
 * 4 x 64 tiles whose last block is partial ({8, 60, ...}, {12, 500, ...}). */
static const int64_t sizes[][4] = {{1, 1, 1, 1},   {3, 5, 7, 9},     {4, 16, 4, 4},     {5, 17, 13, 13},
                                   {9, 70, 33, 40}, {8, 64, 784, 784}, {130, 100, 257, 260}, {64, 512, 784, 784},
                                   {8, 60, 37, 37}, {12, 500, 30, 33}};

Test(int8_matmul, portable_matches_reference) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        check_product(CT_INT8_PORTABLE, sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3], false);
}

Test(int8_matmul, vnni_matches_reference) {
    if (ct_int8_set_kernel(CT_INT8_VNNI) != CT_OK) {
        cr_expect_eq(ct_last_status(), CT_ERR_UNSUPPORTED);
        cr_skip_test("this CPU has no AVX-512 VNNI: %s", ct_last_error());
    }
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        check_product(CT_INT8_VNNI, sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3], false);
}

Test(int8_matmul, onednn_matches_reference) {
    if (ct_int8_set_kernel(CT_INT8_ONEDNN) != CT_OK) {
        cr_expect_eq(ct_last_status(), CT_ERR_UNSUPPORTED);
        cr_skip_test("this build has no oneDNN: %s", ct_last_error());
    }
    cr_expect_str_eq(ct_int8_kernel_name(), "onednn");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        check_product(CT_INT8_ONEDNN, sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3], false);
    check_product(CT_INT8_ONEDNN, 5, 18, 4096, 4096, true);
}

/* 255 x +-127 over k = 4096: sums far beyond int16, exact in int32. */
Test(int8_matmul, extreme_values_are_exact) {
    check_product(CT_INT8_PORTABLE, 5, 18, 4096, 4096, true);
    if (ct_int8_set_kernel(CT_INT8_VNNI) == CT_OK) check_product(CT_INT8_VNNI, 5, 18, 4096, 4096, true);
    uint8_t a[8] = {255, 255, 255, 255, 255, 255, 255, 255};
    int8_t w[8] = {127, 127, 127, 127, 127, 127, 127, 127};
    int32_t c = 0;
    ct_int8_matrix *pw = ct_int8_pack(w, 1, 8);
    cr_assert_eq(ct_int8_matmul(pw, a, 1, 8, &c), CT_OK);
    cr_expect_eq(c, 8 * 255 * 127);
    ct_int8_matrix_free(pw);
}

Test(int8_matmul, refuses_bad_arguments) {
    int8_t w[4] = {1, 2, 3, 4};
    cr_expect_null(ct_int8_pack(w, 0, 4));
    cr_expect_null(ct_int8_pack(w, 1, 70000));
    ct_int8_matrix *pw = ct_int8_pack(w, 2, 2);
    uint8_t a[4] = {1, 2, 3, 4};
    int32_t c[4];
    cr_expect_eq(ct_int8_matmul(pw, a, 2, 1, c), CT_ERR_INVALID_ARG, "lda < k");
    cr_expect_eq(ct_int8_set_kernel((ct_int8_kernel)7), CT_ERR_INVALID_ARG);
    ct_int8_matrix_free(pw);
}

Test(int8_matmul, s8_cpu_path_matches_reference) {
    int64_t m = 7, n = 9, k = 21;
    int8_t a[7 * 21], w[9 * 21];
    int32_t c[63];
    for (int i = 0; i < m * k; i++) a[i] = (int8_t)((int)(next_u32() % 255) - 127);
    for (int i = 0; i < n * k; i++) w[i] = (int8_t)((int)(next_u32() % 255) - 127);
    ct_device cpu = {CT_DEVICE_CPU, 0};
    cr_assert_eq(ct_int8_matmul_s8(cpu, a, w, m, n, k, c), CT_OK);
    for (int i = 0; i < m; i++)
        for (int o = 0; o < n; o++) {
            int32_t s = 0;
            for (int kk = 0; kk < k; kk++) s += a[i * k + kk] * w[o * k + kk];
            cr_expect_eq(c[i * n + o], s);
        }
}

/* ------------------------------------------------------------ the layer */

static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() % 1000000) / 1e6f; }

Test(qlinear, forward_is_the_dequantised_product) {
    enum { M = 6, IN = 30, OUT = 19 };
    float x[M * IN], w[OUT * IN], b[OUT], s[OUT], y[M * OUT], in_s, lo = INFINITY, hi = -INFINITY;
    int8_t q[OUT * IN];
    int32_t zp;
    for (int i = 0; i < M * IN; i++) x[i] = uniform(-1.0f, 3.0f), lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    for (int i = 0; i < OUT * IN; i++) w[i] = uniform(-0.5f, 0.5f);
    for (int i = 0; i < OUT; i++) b[i] = uniform(-1, 1);
    cr_assert_eq(ct_quant_weights(w, OUT, IN, q, s), CT_OK);
    cr_assert_eq(ct_quant_act_params(lo, hi, &in_s, &zp), CT_OK);
    cr_assert(zp > 0 && zp < 255, "an asymmetric range: zero point %d", zp);
    ct_qlinear l;
    cr_assert_eq(ct_qlinear_init(&l, q, s, b, OUT, IN, in_s, zp), CT_OK, "%s", ct_last_error());
    void *scratch = malloc(ct_qlinear_scratch(&l, M));
    cr_assert_eq(ct_qlinear_forward(&l, x, M, y, scratch), CT_OK);
    uint8_t qx[IN];
    for (int i = 0; i < M; i++) {
        ct_quant_act(x + i * IN, IN, in_s, zp, qx);
        for (int o = 0; o < OUT; o++) {
            double deq = 0, exact = 0;
            for (int k = 0; k < IN; k++) {
                deq += ((double)qx[k] - zp) * in_s * (double)q[o * IN + k] * s[o];
                exact += (double)x[i * IN + k] * w[o * IN + k];
            }
            float got = y[i * OUT + o];
            cr_expect(fabs(got - (deq + b[o])) <= 1e-5 * (1 + fabs(deq)), "y[%d,%d] %.9g vs %.9g", i, o, got, deq + b[o]);
            /* and close to the F32 layer: a few steps of each quantizer */
            cr_expect(fabs(got - (exact + b[o])) <= 0.05, "y[%d,%d] %.6g vs the F32 layer %.6g", i, o, got, exact + b[o]);
        }
    }
    free(scratch);
    ct_qlinear_free(&l);
}

Test(qlinear, init_refuses_bad_parameters) {
    int8_t q[4] = {1, -2, 3, 4}, bad[4] = {1, -128, 3, 4};
    float s[2] = {0.1f, 0.2f}, zero[2] = {0.1f, 0};
    ct_qlinear l;
    cr_expect_eq(ct_qlinear_init(&l, q, s, NULL, 2, 2, 0.0f, 0), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_qlinear_init(&l, q, s, NULL, 2, 2, 0.1f, 256), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_qlinear_init(&l, q, zero, NULL, 2, 2, 0.1f, 3), CT_ERR_INVALID_ARG);
    cr_expect(strstr(ct_last_error(), "channel 1") != NULL, "%s", ct_last_error());
    cr_expect_eq(ct_qlinear_init(&l, bad, s, NULL, 2, 2, 0.1f, 3), CT_ERR_INVALID_ARG);
    cr_expect(strstr(ct_last_error(), "-128") != NULL, "%s", ct_last_error());
}

/* ------------------------------------------------------------ int8 tensors in files */

Test(quant_file, int8_tensors_round_trip) {
    char path[] = "/tmp/ctrain_quant_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    int8_t q[6] = {-127, -1, 0, 1, 64, 127};
    int32_t zp = 37;
    float s[3] = {0.5f, 0.25f, 2.0f};
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_add_int(w, "fc1.qweight", "I8", (ct_shape){2, {3, 2}}, q), CT_OK);
    cr_assert_eq(ct_st_writer_add_int(w, "fc1.input_zero_point", "I32", (ct_shape){1, {1}}, &zp), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "fc1.weight_scale", CT_F32, (ct_shape){1, {3}}, s), CT_OK);
    cr_expect_eq(ct_st_writer_add_int(w, "x", "F32", (ct_shape){1, {1}}, s), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add_int(w, "y", "BOOL", (ct_shape){1, {1}}, q), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_st_writer_add_int(w, "z", "Q7", (ct_shape){1, {1}}, q), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK);
    ct_st_writer_free(w);
    ct_st_file *f = ct_st_open(path);
    cr_assert(f, "%s", ct_last_error());
    int i = ct_st_find(f, "fc1.qweight");
    cr_assert_str_eq(ct_st_dtype_name(f, i), "I8");
    cr_expect_eq(memcmp(ct_st_data(f, i), q, 6), 0);
    int32_t back[6];
    cr_assert_eq(ct_st_read(f, i, CT_I32, back, sizeof back), CT_OK); /* widened, sign kept */
    cr_expect_eq(back[0], -127);
    cr_expect_eq(back[5], 127);
    i = ct_st_find(f, "fc1.input_zero_point");
    cr_assert_str_eq(ct_st_dtype_name(f, i), "I32");
    ct_st_close(f);
    unlink(path);
}

/* ------------------------------------------------------------ QAT layer */

/* ct_linear_qat's in-graph parameters are the ones `ctrain quantize`
 * computes (ct_quant_weights, ct_quant_act_params on the batch's range):
 * its output is the product of the dequantised input and weights. */
Test(qlinear, qat_layer_sees_the_ptq_rounding) {
    enum { B = 4, IN = 6, OUT = 5 };
    float x[B * IN], w[OUT * IN], b[OUT], y[B * OUT], s[OUT], in_s, lo = INFINITY, hi = -INFINITY;
    int8_t q[OUT * IN];
    uint8_t qx[B * IN];
    int32_t zp;
    for (int i = 0; i < B * IN; i++) x[i] = uniform(-0.7f, 2.0f), lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    for (int i = 0; i < OUT * IN; i++) w[i] = uniform(-0.4f, 0.4f);
    for (int i = 0; i < OUT; i++) b[i] = uniform(-0.1f, 0.1f);
    ct_graph *g = ct_graph_new();
    ct_node xn = ct_input(g, "x", CT_F32, (ct_shape){2, {B, IN}});
    ct_node yn = ct_linear_qat(g, "fc", xn, OUT, true, NULL);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_node lossn = ct_sum(g, yn, CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, lossn), CT_OK, "%s", ct_last_error()); /* scales take no gradient */
    ct_compile_opts co = {.outputs = &yn, .n_outputs = 1, .grads = true};
    ct_program *p = ct_compile(g, &co);
    cr_assert(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_param(p, "fc.weight", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_set_param(p, "fc.bias", b, sizeof b), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "x", x, sizeof x), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, yn, y, sizeof y), CT_OK);
    cr_assert_eq(ct_quant_weights(w, OUT, IN, q, s), CT_OK);
    cr_assert_eq(ct_quant_act_params(lo, hi, &in_s, &zp), CT_OK);
    ct_quant_act(x, B * IN, in_s, zp, qx);
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OUT; o++) {
            double want = b[o];
            for (int k = 0; k < IN; k++)
                want += (double)(((float)qx[i * IN + k] - (float)zp) * in_s) * (double)((float)q[o * IN + k] * s[o]);
            cr_expect(fabs(y[i * OUT + o] - want) <= 1e-5, "y[%d, %d] %.9g, dequantised product %.9g", i, o,
                      y[i * OUT + o], want);
        }
    /* d sum(y) / dw[o, k] through the straight-through estimator: the
     * batch's sum of the fake-quantized input (every weight is inside its
     * symmetric range, so none is cut). */
    size_t np = ct_program_param_numel(p);
    float *grads = malloc(np * sizeof *grads);
    cr_assert_eq(ct_program_read_grads(p, grads, np * sizeof *grads), CT_OK);
    const float *gw = grads + ct_program_param_offset(p, ct_find(g, "fc.weight"));
    for (int k = 0; k < IN; k++) {
        double want = 0;
        for (int i = 0; i < B; i++) want += ((float)qx[i * IN + k] - (float)zp) * in_s;
        for (int o = 0; o < OUT; o++)
            cr_expect(fabs(gw[o * IN + k] - want) <= 1e-5, "dw[%d, %d] %.9g, want %.9g", o, k, gw[o * IN + k], want);
    }
    free(grads);
    ct_program_free(p);
    ct_graph_free(g);
}

/* ------------------------------------------------------------ the convolution */

/* ct_qconv2d_forward against the same layer applied to patches unfolded
 * here (padding as the value 0) by ct_qlinear_forward: equal bit for bit,
 * with stride 2, padding 1 and several channels. */
Test(qlinear, conv2d_is_the_layer_on_patches) {
    enum { N = 2, C = 3, H = 7, W = 6, KH = 3, KW = 2, O = 5, S = 2, P = 1 };
    enum { OH = (H + 2 * P - KH) / S + 1, OW = (W + 2 * P - KW) / S + 1, K = C * KH * KW };
    float x[N * C * H * W], w[O * K], b[O], s[O], in_s, y[N * O * OH * OW];
    float patches[N * OH * OW * K], rows[N * OH * OW * O];
    int8_t q[O * K];
    int32_t zp;
    for (int i = 0; i < N * C * H * W; i++) x[i] = uniform(-0.5f, 1.5f);
    for (int i = 0; i < O * K; i++) w[i] = uniform(-0.3f, 0.3f);
    for (int i = 0; i < O; i++) b[i] = uniform(-0.1f, 0.1f);
    cr_assert_eq(ct_quant_weights(w, O, K, q, s), CT_OK);
    cr_assert_eq(ct_quant_act_params(-0.5f, 1.5f, &in_s, &zp), CT_OK);
    ct_qlinear l;
    cr_assert_eq(ct_qlinear_init(&l, q, s, b, O, K, in_s, zp), CT_OK);
    ct_qconv2d_geom g = {C, H, W, KH, KW, S, P};
    void *scratch = malloc(ct_qconv2d_scratch(&l, &g, N));
    cr_assert_eq(ct_qconv2d_forward(&l, &g, x, N, y, scratch), CT_OK, "%s", ct_last_error());
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < KH; ky++)
                        for (int kx = 0; kx < KW; kx++) {
                            int iy = oy * S - P + ky, ix = ox * S - P + kx;
                            bool in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                            patches[((n * OH + oy) * OW + ox) * K + (c * KH + ky) * KW + kx] =
                                in ? x[((n * C + c) * H + iy) * W + ix] : 0.0f;
                        }
    void *scratch2 = malloc(ct_qlinear_scratch(&l, N * OH * OW));
    cr_assert_eq(ct_qlinear_forward(&l, patches, N * OH * OW, rows, scratch2), CT_OK);
    int differ = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int p = 0; p < OH * OW; p++) {
                float got = y[(n * O + o) * OH * OW + p], want = rows[(n * OH * OW + p) * O + o];
                cr_expect_eq(got, want, "y[%d, %d, %d] %.9g vs %.9g", n, o, p, got, want);
                differ += got != b[o];
            }
    cr_expect_gt(differ, N * O * OH * OW / 2);
    ct_qconv2d_geom big = {C, 2, 2, KH, KW, 1, 0};
    cr_expect_eq(ct_qconv2d_forward(&l, &big, x, N, y, scratch), CT_ERR_SHAPE, "a kernel larger than the input");
    free(scratch);
    free(scratch2);
    ct_qlinear_free(&l);
}

/* An int8 model is refused by ct_load_weights, naming what it is, and the
 * parameters are left as they were. */
Test(quant_file, load_weights_refuses_an_int8_model) {
    char path[] = "/tmp/ctrain_quant_load_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    int8_t q[6] = {1, 2, 3, 4, 5, 6};
    float bias[3] = {0.5f, 0.25f, 2.0f};
    ct_st_writer *w = ct_st_writer_new();
    cr_assert_eq(ct_st_writer_add_int(w, "fc.qweight", "I8", (ct_shape){2, {3, 2}}, q), CT_OK);
    cr_assert_eq(ct_st_writer_add(w, "fc.bias", CT_F32, (ct_shape){1, {3}}, bias), CT_OK);
    cr_assert_eq(ct_st_writer_meta(w, "quant.format", "ctrain-int8-v1"), CT_OK);
    cr_assert_eq(ct_st_writer_save(w, path), CT_OK);
    ct_st_writer_free(w);
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {1, 2}});
    ct_node y = ct_linear(g, "fc", x, 3, true, NULL);
    ct_compile_opts co = {.outputs = &y, .n_outputs = 1};
    ct_program *p = ct_compile(g, &co);
    cr_assert(p);
    float before[3], after[3];
    cr_assert_eq(ct_program_get_param(p, "fc.bias", before, sizeof before), CT_OK);
    ct_load_opts lo = {.non_strict = true};
    cr_expect_eq(ct_load_weights(g, p, path, &lo), CT_ERR_FORMAT);
    cr_expect(strstr(ct_last_error(), "an int8 model") != NULL, "%s", ct_last_error());
    cr_assert_eq(ct_program_get_param(p, "fc.bias", after, sizeof after), CT_OK);
    cr_expect_eq(memcmp(before, after, sizeof before), 0);
    ct_program_free(p);
    ct_graph_free(g);
    unlink(path);
}

/* The AVX-512 quantization of activations gives the scalar loop's bytes,
 * ties, saturation, infinities and NaN included. */
Test(quant_params, act_vectorized_matches_scalar) {
    enum { N = 1000 };
    float x[N];
    uint8_t a[N], b[N];
    for (int i = 0; i < N; i++) x[i] = uniform(-3.0f, 5.0f);
    const float edge[] = {0.5f * 0.0625f, 1.5f * 0.0625f, 2.5f * 0.0625f, -0.5f * 0.0625f, 1e30f, -1e30f,
                          INFINITY, -INFINITY, NAN, 3e9f, -3e9f, 0.0f, -0.0f};
    memcpy(x, edge, sizeof edge);
    cr_assert_eq(ct_int8_set_kernel(CT_INT8_PORTABLE), CT_OK);
    ct_quant_act(x, N - 3, 0.0625f, 17, a); /* N - 3: a tail shorter than a vector */
    if (ct_int8_set_kernel(CT_INT8_VNNI) != CT_OK) {
        ct_int8_set_kernel(CT_INT8_AUTO);
        cr_skip_test("no AVX-512 VNNI here: %s", ct_last_error());
    }
    memset(b, 0xee, sizeof b);
    ct_quant_act(x, N - 3, 0.0625f, 17, b);
    ct_int8_set_kernel(CT_INT8_AUTO);
    for (int i = 0; i < N - 3; i++) cr_expect_eq(a[i], b[i], "x[%d] = %g: scalar %d, avx512 %d", i, x[i], a[i], b[i]);
    cr_expect_eq(b[N - 3], 0xee, "nothing written past n");
    cr_expect_eq(a[0], 17, "0.5 steps round to 0");
    cr_expect_eq(a[1], 19, "1.5 rounds to 2");
    cr_expect_eq(a[2], 19, "2.5 rounds to 2");
    cr_expect_eq(a[4], 255);
    cr_expect_eq(a[5], 0);
    cr_expect_eq(a[8], 0, "NaN becomes 0");
}
