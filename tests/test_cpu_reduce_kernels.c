/* CPU reference kernels for reductions and softmax: sum, mean and max along
 * each axis and over all, their accumulation in double, NaN propagation,
 * max's gradient, softmax and log_softmax (stable for large inputs) and
 * their gradients against finite differences. Expected values are computed
 * here; kernels are called directly, outputs poisoned first
 * (cpu_elementwise_fixture.h). Part of the cpu_elementwise suite, with
 * test_cpu_elementwise.c and test_cpu_cast_broadcast.c.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/backend.h"
#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

#include "cpu_elementwise_fixture.h"

TestSuite(cpu_elementwise, .init = setup);

/* ---- reductions --------------------------------------------------------- */

Test(cpu_elementwise, sum_mean_max_each_axis) {
    /* [2,3,4], distinct values in no particular order */
    double x[24], out[24], want_s[24], want_m[24], want_x[24];
    for (int i = 0; i < 24; i++) x[i] = sin(1.7 * i + 0.3) * 10.0;
    ct_shape s = {3, {2, 3, 4}};
    int64_t dims[3] = {2, 3, 4};
    ct_tview in = view(x, CT_F64, s);

    for (int axis = 0; axis < 3; axis++) {
        /* output shape is the input shape without `axis` */
        ct_shape so = {0, {0}};
        for (int d = 0; d < 3; d++)
            if (d != axis) so.dim[so.ndim++] = dims[d];
        int64_t no = numel(so);
        for (int64_t oi = 0; oi < no; oi++) {
            double sum = 0, mx = -INFINITY;
            for (int64_t l = 0; l < dims[axis]; l++) {
                int64_t idx[3], r = oi;
                /* rebuild the full index from the output index and l */
                for (int d = 2; d >= 0; d--) {
                    if (d == axis) continue;
                    idx[d] = r % dims[d];
                    r /= dims[d];
                }
                idx[axis] = l;
                double v = x[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
                sum += v;
                mx = fmax(mx, v);
            }
            want_s[oi] = sum;
            want_m[oi] = sum / (double)dims[axis];
            want_x[oi] = mx;
        }
        ct_attrs a = {.axis = axis};
        RUN_OK(CT_OP_SUM, &a, &in, 1, view(out, CT_F64, so));
        expect_near(out, want_s, no, 1e-14, "sum");
        RUN_OK(CT_OP_MEAN, &a, &in, 1, view(out, CT_F64, so));
        expect_near(out, want_m, no, 1e-14, "mean");
        RUN_OK(CT_OP_MAX, &a, &in, 1, view(out, CT_F64, so));
        expect_near(out, want_x, no, 0, "max");
        /* keepdim only changes the shape */
        ct_attrs ak = {.axis = axis, .keepdim = true};
        ct_shape sk = s;
        sk.dim[axis] = 1;
        RUN_OK(CT_OP_SUM, &ak, &in, 1, view(out, CT_F64, sk));
        expect_near(out, want_s, no, 1e-14, "sum keepdim");
    }

    double total = 0, mx = -INFINITY;
    for (int i = 0; i < 24; i++) {
        total += x[i];
        mx = fmax(mx, x[i]);
    }
    ct_attrs all = {.axis = CT_AXIS_ALL};
    ct_shape s0 = {0, {0}};
    RUN_OK(CT_OP_SUM, &all, &in, 1, view(out, CT_F64, s0));
    expect_near(out, &total, 1, 1e-14, "sum all");
    double mean = total / 24;
    RUN_OK(CT_OP_MEAN, &all, &in, 1, view(out, CT_F64, s0));
    expect_near(out, &mean, 1, 1e-14, "mean all");
    RUN_OK(CT_OP_MAX, &all, &in, 1, view(out, CT_F64, s0));
    expect_near(out, &mx, 1, 0, "max all");
}

Test(cpu_elementwise, reduce_f32_double_accumulation) {
    /* the f32 running sum would lose the 1s next to 1e8 */
    float x[6] = {1e8f, 1.0f, 1.0f, -1e8f, 0.5f, 0.25f}, out[2];
    ct_tview in = view(x, CT_F32, (ct_shape){2, {2, 3}});
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_SUM, &a, &in, 1, view(out, CT_F32, (ct_shape){1, {2}}));
    cr_assert_eq(out[0], (float)(1e8 + 2.0), "got %.9g", out[0]);
    cr_assert_eq(out[1], (float)(-1e8 + 0.75), "got %.9g", out[1]);
    ct_attrs all = {.axis = CT_AXIS_ALL};
    RUN_OK(CT_OP_SUM, &all, &in, 1, view(out, CT_F32, (ct_shape){0, {0}}));
    cr_assert_eq(out[0], 2.75f, "got %.9g", out[0]);
}

Test(cpu_elementwise, max_propagates_nan) {
    double x[6] = {1.0, NAN, 3.0, -1.0, 5.0, 2.0}, out[2];
    ct_tview in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_MAX, &a, &in, 1, view(out, CT_F64, (ct_shape){1, {2}}));
    cr_assert(isnan(out[0]));
    cr_assert_eq(out[1], 5.0);
    double y[4] = {NAN, 1.0, 7.0, 2.0};
    in = view(y, CT_F64, (ct_shape){1, {4}});
    a.axis = CT_AXIS_ALL;
    RUN_OK(CT_OP_MAX, &a, &in, 1, view(out, CT_F64, (ct_shape){0, {0}}));
    cr_assert(isnan(out[0]), "a leading NaN must win too");
}

Test(cpu_elementwise, max_grad_ties_go_to_first) {
    /* [2,3,2], axis 1: columns (o, j) with ties at rows 0 and 2, or 1 and 2 */
    double x[12] = {5.0, 1.0, 2.0, 4.0, 5.0, 4.0, /* o = 0: rows l = 0, 1, 2 */
                    -1.0, 0.0, -3.0, 0.0, -1.0, -2.0};
    double dy[4] = {10.0, 20.0, 30.0, 40.0}, out[12];
    ct_tview in[2] = {view(x, CT_F64, (ct_shape){3, {2, 3, 2}}),
                      view(dy, CT_F64, (ct_shape){2, {2, 2}})};
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_MAX_GRAD, &a, in, 2, view(out, CT_F64, (ct_shape){3, {2, 3, 2}}));
    double want[12] = {10.0, 0.0, 0.0, 20.0, 0.0, 0.0, 30.0, 40.0, 0.0, 0.0, 0.0, 0.0};
    expect_near(out, want, 12, 0, "max_grad axis 1");

    /* all elements: the first 5.0 in row-major order, nothing else */
    double g = -2.5;
    ct_attrs all = {.axis = CT_AXIS_ALL};
    ct_tview in2[2] = {in[0], view(&g, CT_F64, (ct_shape){0, {0}})};
    RUN_OK(CT_OP_MAX_GRAD, &all, in2, 2, view(out, CT_F64, (ct_shape){3, {2, 3, 2}}));
    double want2[12] = {-2.5};
    expect_near(out, want2, 12, 0, "max_grad all");
}

/* ---- softmax ------------------------------------------------------------ */

/* [2,3,2] softmax / log_softmax along axis 1, the naive way. */
static void ref_softmax_mid(const double *x, double *y, bool log_form) {
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < 2; j++) {
            double z = 0;
            for (int l = 0; l < 3; l++) z += exp(x[(o * 3 + l) * 2 + j]);
            for (int l = 0; l < 3; l++) {
                double v = x[(o * 3 + l) * 2 + j];
                y[(o * 3 + l) * 2 + j] = log_form ? v - log(z) : exp(v) / z;
            }
        }
}

static const double sm_x[12] = {0.3, -1.2, 2.0, 0.5, -0.7, 1.1, 1.4, 0.0, -2.2, 0.9, 0.6, -0.4};

Test(cpu_elementwise, softmax_middle_axis) {
    double y[12], want[12];
    ct_shape s = {3, {2, 3, 2}};
    ct_tview in = view((void *)sm_x, CT_F64, s);
    ct_attrs a = {.axis = 1};

    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    ref_softmax_mid(sm_x, want, false);
    expect_near(y, want, 12, 1e-15, "softmax");
    for (int o = 0; o < 2; o++)
        for (int j = 0; j < 2; j++) {
            double t = 0;
            for (int l = 0; l < 3; l++) t += y[(o * 3 + l) * 2 + j];
            cr_assert(fabs(t - 1.0) < 1e-15, "column sums to %.17g", t);
        }

    RUN_OK(CT_OP_LOG_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    ref_softmax_mid(sm_x, want, true);
    expect_near(y, want, 12, 1e-15, "log_softmax");

    /* f32 */
    float xf[12], yf[12];
    for (int i = 0; i < 12; i++) xf[i] = (float)sm_x[i];
    double xd[12];
    for (int i = 0; i < 12; i++) xd[i] = xf[i];
    in = view(xf, CT_F32, s);
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(yf, CT_F32, s));
    ref_softmax_mid(xd, want, false);
    expect_near_f32(yf, want, 12, 1e-7, "softmax f32");
}

Test(cpu_elementwise, softmax_large_inputs_are_stable) {
    double x[4] = {1000.0, 1001.0, 1002.0, -INFINITY}, y[4];
    double e0 = exp(-2.0), e1 = exp(-1.0), z = e0 + e1 + 1.0;
    ct_shape s = {2, {1, 4}};
    ct_tview in = view(x, CT_F64, s);
    ct_attrs a = {.axis = 1};
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    expect_near(y, (double[]){e0 / z, e1 / z, 1.0 / z, 0.0}, 4, 1e-15, "softmax large");
    RUN_OK(CT_OP_LOG_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    expect_near(y, (double[]){-2.0 - log(z), -1.0 - log(z), -log(z)}, 3, 1e-15,
                "log_softmax large");
    cr_assert(isinf(y[3]) && y[3] < 0, "log_softmax(-inf) = %g", y[3]);

    /* axis 0 of a [4,1] column: the row stride is the inner size */
    in = view(x, CT_F64, (ct_shape){2, {4, 1}});
    a.axis = 0;
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, (ct_shape){2, {4, 1}}));
    expect_near(y, (double[]){e0 / z, e1 / z, 1.0 / z, 0.0}, 4, 1e-15, "softmax axis 0");
}

/* L(x) = <dy, softmax(x)> (or log_softmax); its gradient by central
 * differences is what the *_GRAD kernels must return. */
static void fd_softmax_grad(const double *dy, bool log_form, double *want) {
    const double h = 1e-6;
    for (int i = 0; i < 12; i++) {
        double xp[12], xm[12], yp[12], ym[12];
        memcpy(xp, sm_x, sizeof xp);
        memcpy(xm, sm_x, sizeof xm);
        xp[i] += h;
        xm[i] -= h;
        ref_softmax_mid(xp, yp, log_form);
        ref_softmax_mid(xm, ym, log_form);
        want[i] = (dot(dy, yp, 12) - dot(dy, ym, 12)) / (2 * h);
    }
}

Test(cpu_elementwise, softmax_grads_match_finite_differences) {
    double dy[12] = {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.0, -0.3, 0.8, -1.6, 0.1, 0.4};
    double y[12], dx[12], want[12];
    ct_shape s = {3, {2, 3, 2}};
    ct_attrs a = {.axis = 1};

    ct_tview in = view((void *)sm_x, CT_F64, s);
    RUN_OK(CT_OP_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    ct_tview gin[2] = {view(y, CT_F64, s), view(dy, CT_F64, s)};
    RUN_OK(CT_OP_SOFTMAX_GRAD, &a, gin, 2, view(dx, CT_F64, s));
    fd_softmax_grad(dy, false, want);
    expect_near(dx, want, 12, 1e-8, "softmax_grad");

    RUN_OK(CT_OP_LOG_SOFTMAX, &a, &in, 1, view(y, CT_F64, s));
    RUN_OK(CT_OP_LOG_SOFTMAX_GRAD, &a, gin, 2, view(dx, CT_F64, s));
    fd_softmax_grad(dy, true, want);
    expect_near(dx, want, 12, 1e-8, "log_softmax_grad");
}
