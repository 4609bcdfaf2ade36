/* CPU reference kernels that move data between dtypes and shapes: cast
 * (rounding and truncation at the edges), copy (bit for bit), broadcast_to
 * and sum_to, and sum_to as the adjoint of broadcast_to. Expected values are
 * computed here; kernels are called directly, outputs poisoned first
 * (cpu_elementwise_fixture.h). Part of the cpu_elementwise suite, with
 * test_cpu_elementwise.c and test_cpu_reduce_kernels.c.
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

/* ---- cast / copy -------------------------------------------------------- */

Test(cpu_elementwise, cast_between_dtypes) {
    double d[3] = {0.1, -1e-3, 12345.678};
    float f[3];
    ct_shape s3 = {1, {3}};
    ct_tview in = view(d, CT_F64, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(f, CT_F32, s3));
    for (int i = 0; i < 3; i++) cr_assert_eq(f[i], (float)d[i], "f64->f32 [%d]", i);

    /* float -> int truncates toward zero */
    float fv[5] = {-2.7f, 2.7f, -0.5f, 3.0f, -3.0f};
    int32_t iv[5];
    ct_shape s5 = {1, {5}};
    in = view(fv, CT_F32, s5);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(iv, CT_I32, s5));
    int32_t iwant[5] = {-2, 2, 0, 3, -3};
    for (int i = 0; i < 5; i++) cr_assert_eq(iv[i], iwant[i], "f32->i32 [%d]: %d", i, iv[i]);

    int32_t big[3] = {16777217, -7, 0};
    double dv[3];
    in = view(big, CT_I32, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(dv, CT_F64, s3));
    expect_near(dv, (double[]){16777217.0, -7.0, 0.0}, 3, 0, "i32->f64");
    /* 2^24 + 1 is not an f32: rounds to even */
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(f, CT_F32, s3));
    cr_assert_eq(f[0], 16777216.0f);

    /* f32 -> f16 / bf16 rounding to nearest even at the halfway points */
    float hv[3] = {1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -65504.0f};
    uint16_t h[3];
    in = view(hv, CT_F32, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(h, CT_F16, s3));
    cr_assert_eq(h[0], 0x3c00, "got 0x%04x", h[0]);
    cr_assert_eq(h[1], 0x3c02, "got 0x%04x", h[1]);
    cr_assert_eq(h[2], 0xfbff, "got 0x%04x", h[2]);

    float bv[3] = {1.0f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-10f, -2.0f};
    in = view(bv, CT_F32, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(h, CT_BF16, s3));
    cr_assert_eq(h[0], 0x3f80, "got 0x%04x", h[0]);
    cr_assert_eq(h[1], 0x3f81, "got 0x%04x", h[1]);
    cr_assert_eq(h[2], 0xc000, "got 0x%04x", h[2]);

    in = view(h, CT_BF16, s3);
    RUN_OK(CT_OP_CAST, NULL, &in, 1, view(f, CT_F32, s3));
    cr_assert_eq(f[0], 1.0f);
    cr_assert_eq(f[1], 1.0f + 0x1p-7f);
    cr_assert_eq(f[2], -2.0f);
}

Test(cpu_elementwise, copy_keeps_bits) {
    float x[4] = {-0.0f, NAN, 1.5f, -3.25f}, out[4];
    ct_shape s = {2, {2, 2}};
    ct_tview in = view(x, CT_F32, s);
    RUN_OK(CT_OP_COPY, NULL, &in, 1, view(out, CT_F32, s));
    cr_assert(memcmp(x, out, sizeof x) == 0);

    uint16_t hx[3] = {0x3c01, 0x8000, 0x7c00}, hout[3];
    in = view(hx, CT_F16, (ct_shape){1, {3}});
    RUN_OK(CT_OP_COPY, NULL, &in, 1, view(hout, CT_F16, (ct_shape){1, {3}}));
    cr_assert(memcmp(hx, hout, sizeof hx) == 0);
}

/* ---- broadcast_to / sum_to ---------------------------------------------- */

Test(cpu_elementwise, broadcast_to_shapes) {
    double v3[3] = {1.0, -2.0, 3.5}, v2[2] = {4.0, -5.0}, sc = 7.25, out[24], want[24];

    ct_tview in = view(v3, CT_F64, (ct_shape){1, {3}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 3}}));
    expect_near(out, (double[]){1.0, -2.0, 3.5, 1.0, -2.0, 3.5}, 6, 0, "[3]->[2,3]");

    in = view(v2, CT_F64, (ct_shape){2, {2, 1}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 3}}));
    expect_near(out, (double[]){4.0, 4.0, 4.0, -5.0, -5.0, -5.0}, 6, 0, "[2,1]->[2,3]");

    in = view(&sc, CT_F64, (ct_shape){0, {0}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 2}}));
    expect_near(out, (double[]){7.25, 7.25, 7.25, 7.25}, 4, 0, "scalar->[2,2]");

    in = view(v3, CT_F64, (ct_shape){3, {1, 3, 1}});
    RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){3, {2, 3, 4}}));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int l = 0; l < 4; l++) want[(i * 3 + j) * 4 + l] = v3[j];
    expect_near(out, want, 24, 0, "[1,3,1]->[2,3,4]");
}

Test(cpu_elementwise, sum_to_shapes) {
    double x[24], out[6], want[6];
    for (int i = 0; i < 24; i++) x[i] = 0.5 * i - 3.0 + (i % 5) * 0.125;

    /* [2,3] -> [3] */
    ct_tview in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){1, {3}}));
    for (int j = 0; j < 3; j++) want[j] = x[j] + x[3 + j];
    expect_near(out, want, 3, 1e-15, "[2,3]->[3]");

    /* [2,3] -> scalar */
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){0, {0}}));
    want[0] = 0;
    for (int i = 0; i < 6; i++) want[0] += x[i];
    expect_near(out, want, 1, 1e-15, "[2,3]->[]");

    /* [2,3] -> [2,3] is a copy */
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {2, 3}}));
    expect_near(out, x, 6, 0, "[2,3]->[2,3]");

    /* [2,3,4] -> [3,1] and -> [1,3,1]: same sums, different output ranks */
    in = view(x, CT_F64, (ct_shape){3, {2, 3, 4}});
    for (int j = 0; j < 3; j++) {
        want[j] = 0;
        for (int i = 0; i < 2; i++)
            for (int l = 0; l < 4; l++) want[j] += x[(i * 3 + j) * 4 + l];
    }
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){2, {3, 1}}));
    expect_near(out, want, 3, 1e-14, "[2,3,4]->[3,1]");
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){3, {1, 3, 1}}));
    expect_near(out, want, 3, 1e-14, "[2,3,4]->[1,3,1]");

    /* [2,3,4] -> [2,1,4] */
    double w8[8];
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < 4; l++) {
            w8[i * 4 + l] = 0;
            for (int j = 0; j < 3; j++) w8[i * 4 + l] += x[(i * 3 + j) * 4 + l];
        }
    double out8[8];
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(out8, CT_F64, (ct_shape){3, {2, 1, 4}}));
    expect_near(out8, w8, 8, 1e-14, "[2,3,4]->[2,1,4]");

    /* f32 output, double accumulation */
    float xf[6] = {1e8f, 1.0f, -1e8f, 1.0f, 2.0f, 3.0f}, of[2];
    in = view(xf, CT_F32, (ct_shape){2, {3, 2}});
    RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(of, CT_F32, (ct_shape){2, {1, 2}}));
    cr_assert_eq(of[0], 2.0f, "got %g", of[0]); /* 1e8 + (-1e8) + 2 exactly in double */
    cr_assert_eq(of[1], 5.0f, "got %g", of[1]);

    in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    cr_assert_eq(run(CT_OP_SUM_TO, NULL, &in, 1, view(out, CT_F64, (ct_shape){1, {2}})),
                 CT_ERR_SHAPE);
}

Test(cpu_elementwise, sum_to_is_adjoint_of_broadcast_to) {
    /* <sum_to(u), v> == <u, broadcast_to(v)> for u of the big shape, v of the small */
    struct { ct_shape big, small; } pairs[] = {
        {{2, {2, 3}}, {1, {3}}},
        {{2, {2, 3}}, {2, {2, 1}}},
        {{3, {2, 3, 4}}, {2, {3, 1}}},
        {{3, {2, 3, 4}}, {3, {1, 3, 1}}},
        {{3, {2, 3, 4}}, {3, {2, 1, 4}}},
        {{3, {2, 3, 4}}, {0, {0}}},
        {{4, {4, 2, 3, 5}}, {3, {1, 3, 1}}},
        {{4, {4, 2, 3, 5}}, {4, {4, 1, 3, 5}}},
    };
    uint64_t seed = 42;
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        int64_t nb = numel(pairs[p].big), ns = numel(pairs[p].small);
        double u[120], v[120], su[120], bv[120];
        for (int64_t i = 0; i < nb; i++) u[i] = rnd(&seed);
        for (int64_t i = 0; i < ns; i++) v[i] = rnd(&seed);
        ct_tview in = view(u, CT_F64, pairs[p].big);
        RUN_OK(CT_OP_SUM_TO, NULL, &in, 1, view(su, CT_F64, pairs[p].small));
        in = view(v, CT_F64, pairs[p].small);
        RUN_OK(CT_OP_BROADCAST_TO, NULL, &in, 1, view(bv, CT_F64, pairs[p].big));
        double lhs = dot(su, v, ns), rhs = dot(u, bv, nb);
        cr_assert(fabs(lhs - rhs) <= 1e-12 * fmax(1.0, fabs(rhs)), "pair %zu: %.17g vs %.17g",
                  p, lhs, rhs);
    }
}
