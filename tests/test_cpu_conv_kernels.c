/* CPU kernels of convolution, pooling and channel dropout, called directly
 * through their registration tables with hand-built views. Every output is
 * poisoned with NaN first; every expected value comes from a naive direct
 * loop written here (the definition of the op, no im2col), on fresh random
 * inputs, in F64, F32, F16 and BF16. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv_geom.h"
#include "cpu/cpu_util.h"
#include "ctrain/rng.h"

static ct_kernel_fn table[CT_OP_COUNT];

static void fill_table(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_conv(table);
    ct_cpu_register_pool(table);
    ct_cpu_register_nn(table); /* dropout2d */
}

TestSuite(cpu_conv_kernels, .init = fill_table, .timeout = 120);

#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})

static int64_t numel(ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

static void poison(ct_tview v) {
    for (int64_t i = 0; i < v.numel; i++) {
        switch (v.dtype) {
        case CT_F32: ((float *)v.data)[i] = NAN; break;
        case CT_F64: ((double *)v.data)[i] = NAN; break;
        case CT_F16: ((uint16_t *)v.data)[i] = 0x7E00; break;
        default: ((uint16_t *)v.data)[i] = 0x7FC0; break; /* BF16 */
        }
    }
}

/* A tensor in a storage dtype and the exact values it holds, as doubles. */
typedef struct tensor {
    ct_tview v;
    double *d;
} tensor;

static uint64_t lcg_state = 0x2545F4914F6CDD1Dull;
static double rnd(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * 0x1p-53 * 2.0 - 1.0;
}

static tensor make(ct_dtype dt, ct_shape s, bool random) {
    tensor t = {.v = {.dtype = dt, .shape = s, .numel = numel(s)}};
    t.v.data = malloc((size_t)t.v.numel * ct_dtype_size(dt));
    t.d = malloc((size_t)t.v.numel * sizeof(double));
    cr_assert(t.v.data && t.d);
    if (random) {
        for (int64_t i = 0; i < t.v.numel; i++) {
            ct_st(t.v.data, dt, i, rnd());
            t.d[i] = ct_ld(t.v.data, dt, i); /* the reference sees the rounded value */
        }
    } else {
        poison(t.v);
    }
    return t;
}

static void drop(tensor *t) {
    free(t->v.data);
    free(t->d);
}

static ct_status run(ct_op op, const ct_attrs *a, const ct_tview *in, int n_in, ct_tview out, bool training,
                     uint32_t step) {
    cr_assert_not_null(table[op], "no kernel for op %d", (int)op);
    poison(out);
    ct_kargs k = {.op = op, .attr = a, .n_in = n_in, .in = in, .out = out, .seed = 1234, .step = step,
                  .training = training};
    size_t sb = ct_cpu_conv_scratch(&k) + ct_cpu_pool_scratch(&k);
    k.scratch = sb ? malloc(sb) : NULL;
    /* Poisoned scratch too: nothing may read it before writing it. */
    if (sb) memset(k.scratch, 0xFF, sb);
    ct_status s = table[op](&k);
    free(k.scratch);
    return s;
}

static double tol_of(ct_dtype dt) { return dt == CT_F64 ? 1e-11 : dt == CT_F32 ? 2e-5 : dt == CT_F16 ? 4e-3 : 2e-2; }

static void expect_close(const char *what, const ct_tview *got, const double *want, double tol, double scale) {
    for (int64_t i = 0; i < got->numel; i++) {
        double g = ct_ld(got->data, got->dtype, i);
        cr_assert(fabs(g - want[i]) <= tol * fmax(scale, fabs(want[i])),
                  "%s (%s): element %lld is %.10g, want %.10g", what, ct_dtype_name(got->dtype), (long long)i, g,
                  want[i]);
    }
}

/* ---- convolution -------------------------------------------------------- */

typedef struct conv_case {
    ct_shape x, w;
    ct_window2d win;
    bool bias;
} conv_case;

#define WIN(kh, kw, sh, sw, ph, pw, dh, dw, g) {{kh, kw}, {sh, sw}, {ph, pw}, {dh, dw}, g}

static const conv_case conv_cases[] = {
    {S4(2, 3, 7, 6), S4(4, 3, 3, 2), WIN(3, 2, 1, 1, 0, 0, 1, 1, 1), true},
    {S4(2, 2, 7, 9), S4(3, 2, 3, 3), WIN(3, 3, 2, 2, 1, 1, 1, 1, 1), true},
    {S4(1, 2, 8, 7), S4(2, 2, 3, 2), WIN(3, 2, 2, 1, 2, 2, 2, 2, 1), true},
    {S4(2, 4, 5, 5), S4(6, 2, 3, 3), WIN(3, 3, 1, 1, 1, 1, 1, 1, 2), true},
    {S4(2, 3, 6, 5), S4(6, 1, 2, 3), WIN(2, 3, 2, 2, 0, 1, 1, 1, 3), false},
    {S4(3, 3, 5, 5), S4(2, 3, 1, 1), WIN(1, 1, 2, 2, 0, 0, 1, 1, 1), true},
    {S4(2, 2, 9, 10), S4(4, 1, 2, 3), WIN(2, 3, 1, 3, 2, 0, 1, 2, 2), true},
};

/* y, dx, dw and db by the definition of the op, in double. */
static void conv_reference(const conv_case *cc, const double *x, const double *w, const double *b, const double *dy,
                           ct_shape ys, double *y, double *dx, double *dw, double *db) {
    int64_t n = cc->x.dim[0], c = cc->x.dim[1], h = cc->x.dim[2], wd = cc->x.dim[3];
    int64_t o = cc->w.dim[0], cg = cc->w.dim[1], kh = cc->w.dim[2], kw = cc->w.dim[3];
    int64_t oh = ys.dim[2], ow = ys.dim[3], og = o / cc->win.groups;
    const ct_window2d *win = &cc->win;
    memset(dx, 0, sizeof(double) * (size_t)numel(cc->x));
    memset(dw, 0, sizeof(double) * (size_t)numel(cc->w));
    memset(db, 0, sizeof(double) * (size_t)o);
    for (int64_t s = 0; s < n; s++)
        for (int64_t oc = 0; oc < o; oc++)
            for (int64_t r = 0; r < oh; r++)
                for (int64_t q = 0; q < ow; q++) {
                    int64_t yi = ((s * o + oc) * oh + r) * ow + q;
                    double acc = b ? b[oc] : 0.0, g = dy[yi];
                    db[oc] += g;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t i = 0; i < kh; i++)
                            for (int64_t j = 0; j < kw; j++) {
                                int64_t ih = r * win->stride[0] - win->pad[0] + i * win->dilation[0];
                                int64_t iw = q * win->stride[1] - win->pad[1] + j * win->dilation[1];
                                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                int64_t ch = oc / og * cg + ci;
                                int64_t xi = ((s * c + ch) * h + ih) * wd + iw, wi = ((oc * cg + ci) * kh + i) * kw + j;
                                acc += x[xi] * w[wi];
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                    y[yi] = acc;
                }
}

static void check_conv(const conv_case *cc, ct_dtype dt) {
    ct_window2d win = cc->win;
    ct_shape ys = S4(cc->x.dim[0], cc->w.dim[0],
                     ct_window_out(cc->x.dim[2], win.kernel[0], win.stride[0], win.pad[0], win.dilation[0]),
                     ct_window_out(cc->x.dim[3], win.kernel[1], win.stride[1], win.pad[1], win.dilation[1]));
    cr_assert(ys.dim[2] > 0 && ys.dim[3] > 0);
    int64_t o = cc->w.dim[0];
    tensor x = make(dt, cc->x, true), w = make(dt, cc->w, true), b = make(dt, (ct_shape){1, {o}}, true);
    tensor dy = make(dt, ys, true), y = make(dt, ys, false), dx = make(dt, cc->x, false);
    tensor dw = make(dt, cc->w, false), db = make(dt, (ct_shape){1, {o}}, false);
    double *ry = malloc(sizeof(double) * (size_t)numel(ys)), *rdx = malloc(sizeof(double) * (size_t)numel(cc->x));
    double *rdw = malloc(sizeof(double) * (size_t)numel(cc->w)), *rdb = malloc(sizeof(double) * (size_t)o);
    conv_reference(cc, x.d, w.d, cc->bias ? b.d : NULL, dy.d, ys, ry, rdx, rdw, rdb);
    ct_attrs a = {.win = win, .has_bias = cc->bias};
    double tol = tol_of(dt);
    /* Sums of many products of values in [-1, 1] (dw sums N * OH * OW of
     * them) have rounding errors growing as the square root of their
     * count: compare relative to that scale. */
    double scale = sqrt((double)(ys.dim[0] * ys.dim[2] * ys.dim[3] + numel(cc->w) / o));
    ct_tview fin[3] = {x.v, w.v, b.v};
    cr_assert_eq(run(CT_OP_CONV2D, &a, fin, cc->bias ? 3 : 2, y.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("conv2d", &y.v, ry, tol, scale);
    ct_tview gin[2] = {dy.v, w.v};
    cr_assert_eq(run(CT_OP_CONV2D_GRAD_INPUT, &a, gin, 2, dx.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("conv2d_grad_input", &dx.v, rdx, tol, scale);
    ct_tview gw[2] = {x.v, dy.v};
    cr_assert_eq(run(CT_OP_CONV2D_GRAD_WEIGHT, &a, gw, 2, dw.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("conv2d_grad_weight", &dw.v, rdw, tol, scale);
    cr_assert_eq(run(CT_OP_CONV2D_GRAD_BIAS, &a, &dy.v, 1, db.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("conv2d_grad_bias", &db.v, rdb, tol, scale);
    drop(&x), drop(&w), drop(&b), drop(&dy), drop(&y), drop(&dx), drop(&dw), drop(&db);
    free(ry), free(rdx), free(rdw), free(rdb);
}

Test(cpu_conv_kernels, conv2d_all_geometries_all_dtypes) {
    static const ct_dtype dts[] = {CT_F64, CT_F32, CT_F16, CT_BF16};
    for (size_t d = 0; d < 4; d++)
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) check_conv(&conv_cases[i], dts[d]);
}

/* The precision policy's mixed forward: F16/BF16 x and weight, F32 bias
 * and output. The product of the rounded operands accumulated in F32, with
 * no rounding to half on output: F32's tolerance. */
Test(cpu_conv_kernels, conv2d_mixed_half_operands_f32_output) {
    static const ct_dtype halves[] = {CT_F16, CT_BF16};
    for (size_t d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
            const conv_case *cc = &conv_cases[i];
            ct_window2d win = cc->win;
            ct_shape ys = S4(cc->x.dim[0], cc->w.dim[0],
                             ct_window_out(cc->x.dim[2], win.kernel[0], win.stride[0], win.pad[0], win.dilation[0]),
                             ct_window_out(cc->x.dim[3], win.kernel[1], win.stride[1], win.pad[1], win.dilation[1]));
            int64_t o = cc->w.dim[0];
            tensor x = make(halves[d], cc->x, true), w = make(halves[d], cc->w, true);
            tensor b = make(CT_F32, (ct_shape){1, {o}}, true), dy = make(CT_F64, ys, true);
            tensor y = make(CT_F32, ys, false);
            double *ry = malloc(sizeof(double) * (size_t)numel(ys)), *rdx = malloc(sizeof(double) * (size_t)x.v.numel);
            double *rdw = malloc(sizeof(double) * (size_t)w.v.numel), *rdb = malloc(sizeof(double) * (size_t)o);
            conv_reference(cc, x.d, w.d, cc->bias ? b.d : NULL, dy.d, ys, ry, rdx, rdw, rdb);
            ct_attrs a = {.win = win, .has_bias = cc->bias};
            ct_tview in[3] = {x.v, w.v, b.v};
            cr_assert_eq(run(CT_OP_CONV2D, &a, in, cc->bias ? 3 : 2, y.v, true, 0), CT_OK, "%s", ct_last_error());
            expect_close("mixed conv2d", &y.v, ry, tol_of(CT_F32),
                         sqrt((double)(ys.dim[0] * ys.dim[2] * ys.dim[3] + w.v.numel / o)));
            drop(&x), drop(&w), drop(&b), drop(&dy), drop(&y);
            free(ry), free(rdx), free(rdw), free(rdb);
        }
}

/* Mixed means half x and weight of one dtype with F32 output and bias;
 * anything else is refused, naming the dtypes. */
Test(cpu_conv_kernels, conv2d_mixed_dtypes_refused_otherwise) {
    ct_attrs a = {.win = WIN(3, 3, 1, 1, 0, 0, 1, 1, 1), .has_bias = true};
    tensor xh = make(CT_F16, S4(1, 2, 5, 5), true), wh = make(CT_F16, S4(3, 2, 3, 3), true);
    tensor wb = make(CT_BF16, S4(3, 2, 3, 3), true), w32 = make(CT_F32, S4(3, 2, 3, 3), true);
    tensor bh = make(CT_F16, (ct_shape){1, {3}}, true), b32 = make(CT_F32, (ct_shape){1, {3}}, true);
    tensor y = make(CT_F32, S4(1, 3, 3, 3), false);
    const ct_tview cases[][3] = {{xh.v, w32.v, b32.v}, {xh.v, wb.v, b32.v}, {xh.v, wh.v, bh.v}};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(run(CT_OP_CONV2D, &a, cases[i], 3, y.v, true, 0), CT_ERR_DTYPE, "case %zu", i);
        cr_assert(strstr(ct_last_error(), "F16/BF16 x and weight with an F32 output and bias"), "%s",
                  ct_last_error());
    }
    /* The gradients have no mixed form: the graph casts dy to the operands' dtype. */
    ct_tview gin[2] = {y.v, wh.v};
    tensor dx = make(CT_F16, S4(1, 2, 5, 5), false);
    cr_assert_eq(run(CT_OP_CONV2D_GRAD_INPUT, &a, gin, 2, dx.v, true, 0), CT_ERR_DTYPE);
    drop(&xh), drop(&wh), drop(&wb), drop(&w32), drop(&bh), drop(&b32), drop(&y), drop(&dx);
}

Test(cpu_conv_kernels, conv2d_in_several_chunks) {
    /* (K + O) * P per sample is about 615k compute elements, so the 2^22
     * element budget takes 6 samples a chunk: 9 samples make two chunks,
     * the second one short. */
    conv_case cc = {S4(9, 16, 64, 64), S4(16, 16, 3, 3), WIN(3, 3, 1, 1, 0, 0, 1, 1, 1), true};
    ct_shape ys = S4(9, 16, 62, 62);
    ct_attrs a = {.win = cc.win, .has_bias = true};
    ct_tview in[3] = {{.shape = cc.x, .dtype = CT_F32}, {.shape = cc.w, .dtype = CT_F32},
                      {.shape = {1, {16}}, .dtype = CT_F32}};
    ct_kargs probe = {.op = CT_OP_CONV2D, .attr = &a, .n_in = 3, .in = in,
                      .out = {.shape = ys, .dtype = CT_F32, .numel = numel(ys)}};
    size_t per_sample = (size_t)(16 * 9 + 16) * 62 * 62 * sizeof(float);
    cr_assert_eq(ct_cpu_conv_scratch(&probe), 6 * per_sample, "scratch %zu, want 6 samples' worth",
                 ct_cpu_conv_scratch(&probe));
    check_conv(&cc, CT_F32);
}

Test(cpu_conv_kernels, conv2d_rejects_views_that_do_not_fit) {
    ct_attrs a = {.win = WIN(3, 3, 1, 1, 0, 0, 1, 1, 1), .has_bias = false};
    tensor x = make(CT_F32, S4(1, 2, 5, 5), true), w = make(CT_F32, S4(3, 2, 3, 3), true);
    tensor y = make(CT_F32, S4(1, 3, 4, 4), false); /* should be 3x3 */
    ct_tview in[2] = {x.v, w.v};
    cr_assert_eq(run(CT_OP_CONV2D, &a, in, 2, y.v, true, 0), CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "conv2d") != NULL, "%s", ct_last_error());
    tensor w64 = make(CT_F64, S4(3, 2, 3, 3), true), y3 = make(CT_F32, S4(1, 3, 3, 3), false);
    ct_tview mixed[2] = {x.v, w64.v};
    cr_assert_eq(run(CT_OP_CONV2D, &a, mixed, 2, y3.v, true, 0), CT_ERR_DTYPE);
    drop(&x), drop(&w), drop(&y), drop(&w64), drop(&y3);
}

/* ---- pooling ------------------------------------------------------------ */

typedef struct pool_case {
    ct_shape x;
    ct_window2d win;
} pool_case;

static const pool_case pool_cases[] = {
    {S4(2, 3, 7, 6), WIN(3, 3, 2, 2, 1, 1, 1, 1, 1)},
    {S4(2, 2, 8, 8), WIN(2, 2, 2, 2, 0, 0, 1, 1, 1)},
    {S4(1, 3, 7, 5), WIN(3, 2, 1, 2, 1, 0, 1, 1, 1)},
    {S4(2, 1, 6, 7), WIN(3, 3, 1, 1, 0, 0, 1, 1, 1)},
    {S4(1, 2, 9, 6), WIN(5, 4, 3, 1, 2, 2, 1, 1, 1)},
};

/* Both pools and their gradients by definition. Max: the first maximum in
 * row-major window order, over the in-bounds part (padding is -inf). */
static void pool_reference(const pool_case *pc, ct_shape ys, const double *x, const double *dy, double *ymax,
                           double *dxmax, double *yavg, double *dxavg) {
    int64_t planes = pc->x.dim[0] * pc->x.dim[1], h = pc->x.dim[2], w = pc->x.dim[3];
    int64_t oh = ys.dim[2], ow = ys.dim[3];
    const ct_window2d *win = &pc->win;
    double area = (double)win->kernel[0] * win->kernel[1];
    memset(dxmax, 0, sizeof(double) * (size_t)numel(pc->x));
    memset(dxavg, 0, sizeof(double) * (size_t)numel(pc->x));
    for (int64_t p = 0; p < planes; p++)
        for (int64_t r = 0; r < oh; r++)
            for (int64_t q = 0; q < ow; q++) {
                int64_t yi = (p * oh + r) * ow + q, best = -1;
                double m = -INFINITY, sum = 0.0;
                for (int i = 0; i < win->kernel[0]; i++)
                    for (int j = 0; j < win->kernel[1]; j++) {
                        int64_t ih = r * win->stride[0] - win->pad[0] + i, iw = q * win->stride[1] - win->pad[1] + j;
                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                        int64_t xi = (p * h + ih) * w + iw;
                        sum += x[xi];
                        if (best < 0 || x[xi] > m) m = x[xi], best = xi;
                    }
                ymax[yi] = m;
                dxmax[best] += dy[yi];
                yavg[yi] = sum / area;
                for (int i = 0; i < win->kernel[0]; i++)
                    for (int j = 0; j < win->kernel[1]; j++) {
                        int64_t ih = r * win->stride[0] - win->pad[0] + i, iw = q * win->stride[1] - win->pad[1] + j;
                        if (ih >= 0 && ih < h && iw >= 0 && iw < w) dxavg[(p * h + ih) * w + iw] += dy[yi] / area;
                    }
            }
}

static void check_pool(const pool_case *pc, ct_dtype dt, bool ties) {
    ct_window2d win = pc->win;
    ct_shape ys = S4(pc->x.dim[0], pc->x.dim[1],
                     ct_window_out(pc->x.dim[2], win.kernel[0], win.stride[0], win.pad[0], 1),
                     ct_window_out(pc->x.dim[3], win.kernel[1], win.stride[1], win.pad[1], 1));
    tensor x = make(dt, pc->x, true), dy = make(dt, ys, true);
    if (ties) /* few distinct values: many windows have tied maxima */
        for (int64_t i = 0; i < x.v.numel; i++) {
            ct_st(x.v.data, dt, i, floor(x.d[i] * 2.0) / 2.0);
            x.d[i] = ct_ld(x.v.data, dt, i);
        }
    tensor y = make(dt, ys, false), dx = make(dt, pc->x, false);
    int64_t nx = numel(pc->x), ny = numel(ys);
    double *rmax = malloc(sizeof(double) * (size_t)ny), *ravg = malloc(sizeof(double) * (size_t)ny);
    double *rdmax = malloc(sizeof(double) * (size_t)nx), *rdavg = malloc(sizeof(double) * (size_t)nx);
    pool_reference(pc, ys, x.d, dy.d, rmax, rdmax, ravg, rdavg);
    ct_attrs a = {.win = win};
    double tol = tol_of(dt);
    cr_assert_eq(run(CT_OP_MAX_POOL2D, &a, &x.v, 1, y.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("max_pool2d", &y.v, rmax, 0.0, 1.0); /* a max is exact */
    ct_tview gin[2] = {x.v, dy.v};
    cr_assert_eq(run(CT_OP_MAX_POOL2D_GRAD, &a, gin, 2, dx.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("max_pool2d_grad", &dx.v, rdmax, tol, 1.0);
    cr_assert_eq(run(CT_OP_AVG_POOL2D, &a, &x.v, 1, y.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("avg_pool2d", &y.v, ravg, tol, 1.0);
    cr_assert_eq(run(CT_OP_AVG_POOL2D_GRAD, &a, &dy.v, 1, dx.v, true, 0), CT_OK, "%s", ct_last_error());
    expect_close("avg_pool2d_grad", &dx.v, rdavg, tol, 1.0);
    drop(&x), drop(&dy), drop(&y), drop(&dx);
    free(rmax), free(ravg), free(rdmax), free(rdavg);
}

Test(cpu_conv_kernels, pools_all_geometries_all_dtypes) {
    static const ct_dtype dts[] = {CT_F64, CT_F32, CT_F16, CT_BF16};
    for (size_t d = 0; d < 4; d++)
        for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
            check_pool(&pool_cases[i], dts[d], false);
            check_pool(&pool_cases[i], dts[d], true);
        }
}

Test(cpu_conv_kernels, max_pool2d_propagates_nan) {
    ct_attrs a = {.win = WIN(2, 2, 2, 2, 0, 0, 1, 1, 1)};
    double xs[16] = {1, 2, 3, 4, 5, NAN, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    tensor y = make(CT_F64, S4(1, 1, 2, 2), false), dx = make(CT_F64, S4(1, 1, 4, 4), false);
    ct_tview x = {.data = xs, .dtype = CT_F64, .shape = S4(1, 1, 4, 4), .numel = 16};
    cr_assert_eq(run(CT_OP_MAX_POOL2D, &a, &x, 1, y.v, true, 0), CT_OK);
    const double *out = y.v.data;
    cr_assert(isnan(out[0]), "the window holding NaN gives %g", out[0]);
    cr_assert_eq(out[1], 8.0);
    cr_assert_eq(out[2], 14.0);
    cr_assert_eq(out[3], 16.0);
    double dys[4] = {0.5, -1.5, 2.5, 3.5};
    ct_tview in[2] = {x, {.data = dys, .dtype = CT_F64, .shape = S4(1, 1, 2, 2), .numel = 4}};
    cr_assert_eq(run(CT_OP_MAX_POOL2D_GRAD, &a, in, 2, dx.v, true, 0), CT_OK);
    const double *g = dx.v.data;
    cr_assert_eq(g[5], 0.5, "the NaN takes its window's gradient");
    cr_assert_eq(g[7], -1.5);
    cr_assert_eq(g[0], 0.0);
    drop(&y), drop(&dx);
}

/* An empty batch asks for no scratch; its gradient is then empty, not an error. */
Test(cpu_conv_kernels, max_pool2d_grad_of_an_empty_batch_needs_no_scratch) {
    ct_attrs a = {.win = WIN(2, 2, 2, 2, 0, 0, 1, 1, 1)};
    char byte = 0;
    ct_tview in[2] = {{.data = &byte, .dtype = CT_F32, .shape = S4(0, 3, 4, 4), .numel = 0},
                      {.data = &byte, .dtype = CT_F32, .shape = S4(0, 3, 2, 2), .numel = 0}};
    ct_tview dx = {.data = &byte, .dtype = CT_F32, .shape = S4(0, 3, 4, 4), .numel = 0};
    ct_kargs k = {.op = CT_OP_MAX_POOL2D_GRAD, .attr = &a, .n_in = 2, .in = in, .out = dx, .training = true};
    cr_assert_eq(ct_cpu_pool_scratch(&k), 0u);
    cr_assert_eq(table[CT_OP_MAX_POOL2D_GRAD](&k), CT_OK, "%s", ct_last_error());
}

/* ---- channel dropout ---------------------------------------------------- */

Test(cpu_conv_kernels, dropout2d_drops_whole_channels_with_the_philox_rule) {
    ct_shape s = S4(4, 6, 3, 5);
    int64_t per = 15, channels = 24;
    double p = 0.4;
    ct_attrs a = {.alpha = p, .stream = 3};
    static const ct_dtype dts[] = {CT_F64, CT_F32, CT_BF16};
    for (size_t d = 0; d < 3; d++) {
        ct_dtype dt = dts[d];
        tensor x = make(dt, s, true), y = make(dt, s, false), back = make(dt, s, false);
        cr_assert_eq(run(CT_OP_DROPOUT2D, &a, &x.v, 1, y.v, true, 9), CT_OK, "%s", ct_last_error());
        int kept = 0;
        for (int64_t ch = 0; ch < channels; ch++) {
            bool keep = ct_philox_uniform(1234, 3, 9, (uint64_t)ch) >= p;
            kept += keep;
            for (int64_t t = ch * per; t < (ch + 1) * per; t++) {
                double want = keep ? x.d[t] / (1.0 - p) : 0.0, got = ct_ld(y.v.data, dt, t);
                cr_assert(fabs(got - want) <= tol_of(dt) * fmax(1.0, fabs(want)),
                          "%s channel %lld elem %lld: %g, want %g", ct_dtype_name(dt), (long long)ch, (long long)t,
                          got, want);
            }
        }
        cr_assert(kept > 0 && kept < channels, "kept %d of %lld channels", kept, (long long)channels);
        /* The backward is the same op on dy: the same channels drop. */
        cr_assert_eq(run(CT_OP_DROPOUT2D, &a, &y.v, 1, back.v, true, 9), CT_OK);
        for (int64_t t = 0; t < x.v.numel; t++)
            cr_assert_eq(ct_ld(back.v.data, dt, t) == 0.0, ct_ld(y.v.data, dt, t) == 0.0);
        /* Out of training: the identity, bit for bit. */
        cr_assert_eq(run(CT_OP_DROPOUT2D, &a, &x.v, 1, y.v, false, 9), CT_OK);
        cr_assert(memcmp(x.v.data, y.v.data, (size_t)x.v.numel * ct_dtype_size(dt)) == 0);
        drop(&x), drop(&y), drop(&back);
    }
}

Test(cpu_conv_kernels, dropout2d_mask_changes_with_the_step_and_p_one_zeroes) {
    ct_attrs a = {.alpha = 0.5, .stream = 1};
    tensor x = make(CT_F32, S4(8, 8, 2, 2), true), y1 = make(CT_F32, S4(8, 8, 2, 2), false);
    tensor y2 = make(CT_F32, S4(8, 8, 2, 2), false);
    cr_assert_eq(run(CT_OP_DROPOUT2D, &a, &x.v, 1, y1.v, true, 1), CT_OK);
    cr_assert_eq(run(CT_OP_DROPOUT2D, &a, &x.v, 1, y2.v, true, 2), CT_OK);
    cr_assert(memcmp(y1.v.data, y2.v.data, 256 * sizeof(float)) != 0, "steps 1 and 2 gave the same mask");
    a.alpha = 1.0;
    cr_assert_eq(run(CT_OP_DROPOUT2D, &a, &x.v, 1, y1.v, true, 1), CT_OK);
    for (int i = 0; i < 256; i++) cr_assert_eq(((float *)y1.v.data)[i], 0.0f);
    drop(&x), drop(&y1), drop(&y2);
}
