/* The fake-quantization op on the CPU against PyTorch
 * (tests/ref/quant_reference.py: torch.fake_quantize_per_tensor_affine and
 * fake_quantize_per_channel_affine, forward values and the gradient from
 * autograd), bit for bit, including values that are exact halves of a step
 * (round half to even) and values clamped at either end of the range (zero
 * gradient there: the straight-through estimator). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ctrain/ctrain.h"

#define REF CTRAIN_TEST_SOURCE_DIR "/ref/quant_ref.safetensors"
#define R 3
#define C 10

static void ref(const ct_st_file *f, const char *name, float *dst, size_t n) {
    int i = ct_st_find(f, name);
    cr_assert(i >= 0, "%s missing", name);
    cr_assert_eq(ct_st_read(f, i, CT_F32, dst, n * sizeof *dst), CT_OK, "%s: %s", name, ct_last_error());
}

/* y = fake_quant(x) and dx of sum(y * gy), through a graph. */
static void run(const float *x, const float *gy, const float *scale, const float *zp, int n_param, int axis,
                int64_t qmin, int64_t qmax, float *y, float *dx) {
    ct_graph *g = ct_graph_new();
    ct_node xn = ct_input(g, "x", CT_F32, (ct_shape){2, {R, C}});
    ct_set_requires_grad(g, xn, true);
    ct_node s = ct_constant(g, CT_F32, (ct_shape){1, {n_param}}, scale);
    ct_node z = ct_constant(g, CT_F32, (ct_shape){1, {n_param}}, zp);
    ct_node yn = ct_fake_quantize(g, xn, s, z, axis, qmin, qmax);
    ct_node w = ct_constant(g, CT_F32, (ct_shape){2, {R, C}}, gy);
    ct_node loss = ct_sum(g, ct_mul(g, yn, w), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node outs[2] = {yn, ct_grad(g, xn)};
    ct_compile_opts co = {.outputs = outs, .n_outputs = 2};
    ct_program *p = ct_compile(g, &co);
    cr_assert(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_input(p, "x", x, R * C * sizeof *x), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, outs[0], y, R * C * sizeof *y), CT_OK);
    cr_assert_eq(ct_program_read(p, outs[1], dx, R * C * sizeof *dx), CT_OK);
    ct_program_free(p);
    ct_graph_free(g);
}

static void compare(const char *what, const float *got, const float *want, int *zeros) {
    for (int i = 0; i < R * C; i++) {
        cr_expect_eq(got[i], want[i], "%s[%d]: %.9g, torch %.9g", what, i, got[i], want[i]);
        *zeros += want[i] == 0;
    }
}

Test(cpu_fakequant, per_tensor_matches_torch) {
    ct_st_file *f = ct_st_open(REF);
    cr_assert(f, "%s", ct_last_error());
    float x[R * C], gy[R * C], y_ref[R * C], dx_ref[R * C], y[R * C], dx[R * C], s = 0.25f, z = 3;
    ref(f, "fq_x", x, R * C);
    ref(f, "fq_gy", gy, R * C);
    ref(f, "fq_t_y", y_ref, R * C);
    ref(f, "fq_t_dx", dx_ref, R * C);
    run(x, gy, &s, &z, 1, -1, 0, 255, y, dx);
    int zy = 0, zdx = 0;
    compare("y", y, y_ref, &zy);
    compare("dx", dx, dx_ref, &zdx);
    cr_expect(zdx > 0 && zdx < R * C, "some values clamped (zero gradient), not all: %d", zdx);
    cr_expect_eq(y[0], -0.75f, "-1.125 / 0.25 = -4.5 rounds to -4 (half to even), then clamps at 0 - 3");
    ct_st_close(f);
}

Test(cpu_fakequant, per_channel_matches_torch) {
    ct_st_file *f = ct_st_open(REF);
    cr_assert(f, "%s", ct_last_error());
    float x[R * C], gy[R * C], y_ref[R * C], dx_ref[R * C], y[R * C], dx[R * C], s[R], z[R];
    ref(f, "fq_x", x, R * C);
    ref(f, "fq_gy", gy, R * C);
    ref(f, "fq_c_scale", s, R);
    ref(f, "fq_c_zp", z, R);
    ref(f, "fq_c_y", y_ref, R * C);
    ref(f, "fq_c_dx", dx_ref, R * C);
    run(x, gy, s, z, R, 0, -127, 127, y, dx);
    int zy = 0, zdx = 0;
    compare("y", y, y_ref, &zy);
    compare("dx", dx, dx_ref, &zdx);
    cr_expect_gt(zdx, 0, "a value clamped");
    ct_st_close(f);
}

/* The straight-through gradient directly: at a coarse scale, dx is dy
 * exactly wherever the value is inside the range, whatever the rounding. */
Test(cpu_fakequant, ste_passes_the_gradient_inside) {
    float x[R * C], gy[R * C], y[R * C], dx[R * C], s = 0.5f, z = 0;
    for (int i = 0; i < R * C; i++) x[i] = -3.1f + 0.21f * (float)i, gy[i] = 1.0f + 0.1f * (float)i;
    run(x, gy, &s, &z, 1, -1, -4, 4, y, dx); /* inside: |x| <= 2.25 */
    int inside = 0;
    for (int i = 0; i < R * C; i++) {
        bool in = fabsf(x[i]) <= 2.25f;
        cr_expect_eq(dx[i], in ? gy[i] : 0.0f, "x %g: dx %g", x[i], dx[i]);
        cr_expect_eq(y[i], fminf(fmaxf(nearbyintf(x[i] / 0.5f), -4), 4) * 0.5f, "x %g: y %g", x[i], y[i]);
        inside += in;
    }
    cr_expect(inside > 5 && inside < R * C);
}

Test(cpu_fakequant, builder_refuses_bad_arguments) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {3, 4}});
    ct_node s3 = ct_fill(g, CT_F32, (ct_shape){1, {3}}, 0.1), s1 = ct_fill(g, CT_F32, (ct_shape){1, {1}}, 0.1);
    ct_node d1 = ct_fill(g, CT_F64, (ct_shape){1, {1}}, 0.1);
    cr_expect_eq(ct_fake_quantize(g, x, s3, s3, -1, 0, 255), CT_NO_NODE);
    cr_expect(strstr(ct_graph_error(g), "scale is [3]") != NULL, "%s", ct_graph_error(g));
    ct_graph_free(g);
    g = ct_graph_new();
    x = ct_input(g, "x", CT_F32, (ct_shape){2, {3, 4}});
    s1 = ct_fill(g, CT_F32, (ct_shape){1, {1}}, 0.1);
    d1 = ct_fill(g, CT_F64, (ct_shape){1, {1}}, 0.1);
    cr_expect_eq(ct_fake_quantize(g, x, s1, d1, -1, 0, 255), CT_NO_NODE);
    cr_expect(strstr(ct_graph_error(g), "zero_point is f64") != NULL, "%s", ct_graph_error(g));
    ct_graph_free(g);
    g = ct_graph_new();
    x = ct_input(g, "x", CT_F32, (ct_shape){2, {3, 4}});
    s1 = ct_fill(g, CT_F32, (ct_shape){1, {1}}, 0.1);
    cr_expect_eq(ct_fake_quantize(g, x, s1, s1, -1, 5, 5), CT_NO_NODE);
    cr_expect(strstr(ct_graph_error(g), "quant_min < quant_max") != NULL, "%s", ct_graph_error(g));
    ct_graph_free(g);
    g = ct_graph_new();
    x = ct_input(g, "x", CT_F32, (ct_shape){2, {3, 4}});
    s3 = ct_fill(g, CT_F32, (ct_shape){1, {3}}, 0.1);
    cr_expect_neq(ct_fake_quantize(g, x, s3, s3, 0, -127, 127), CT_NO_NODE, "%s", ct_graph_error(g));
    cr_expect_eq(ct_fake_quantize(g, x, s3, s3, 2, -127, 127), CT_NO_NODE);
    ct_graph_free(g);
}
