/* GPU vs CPU: convolution (forward, input, weight and bias gradients),
 * max and average pooling with their gradients, and channel dropout
 * (tests/cuda_parity.h). Geometries mix odd sizes, strides, padding,
 * dilation, groups (depthwise too), 1x1 kernels, non-square windows and an
 * empty batch.
 *
 * Tolerances:
 * - conv2d and its input/weight gradients: both sides sum n products of
 *   values within [-2, 2] in FP32 (cuDNN with FMA math, the CPU's sgemm) in
 *   different orders, so F32 allows rtol 1e-5 and atol 1e-6 * n + 1e-5,
 *   with n the length of the sum (C/G * KH * KW forward, O/G * KH * KW for
 *   the input gradient, N * OH * OW for the weight's). F64: rtol 1e-12,
 *   atol 1e-13 * n + 1e-12. F16 / BF16 also compute in FP32 on both sides
 *   but round the result once more to 11 / 8 bits, and the GPU adds the
 *   bias after that rounding: rtol 2e-3 / 1.6e-2 and atol of the same times
 *   sqrt(n) (an output's typical size is sqrt(n)).
 * - conv2d_grad_bias: sums in double on both sides, rounded once: 1e-12
 *   relative in F32 and F64, the dtype's rounding in F16 / BF16.
 * - pooling and dropout2d: exact. The GPU kernels take the same first
 *   maximum, sum in double in the CPU's order and round once; the channel
 *   mask is the same Philox draw compared in double. */
#include "cuda_parity.h"

typedef struct conv_spec {
    int64_t n, c, h, w, o;
    int kh, kw, stride[2], pad[2], dil[2], groups;
    bool bias;
} conv_spec;

static const conv_spec conv_specs[] = {
    {2, 3, 7, 9, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},   /* "same" 3x3 on odd sizes */
    {3, 4, 11, 10, 6, 3, 2, {2, 1}, {1, 0}, {1, 2}, 2, true}, /* groups, mixed stride and dilation */
    {1, 6, 13, 13, 6, 5, 5, {2, 2}, {2, 2}, {2, 2}, 6, false}, /* depthwise, dilated */
    {5, 1, 28, 28, 8, 5, 5, {1, 1}, {0, 0}, {1, 1}, 1, true}, /* MNIST's first layer */
    {2, 8, 6, 5, 16, 1, 1, {2, 2}, {0, 0}, {1, 1}, 1, false}, /* 1x1 projection, stride 2 */
    {4, 3, 9, 8, 5, 4, 3, {3, 2}, {2, 1}, {1, 1}, 1, true},   /* even kernel, padding wider than stride */
    {0, 3, 5, 5, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true},   /* empty batch */
};
#define N_CONV_SPECS ((int)(sizeof conv_specs / sizeof conv_specs[0]))

static ct_window2d conv_win(const conv_spec *s) {
    return (ct_window2d){.kernel = {s->kh, s->kw},
                         .stride = {s->stride[0], s->stride[1]},
                         .pad = {s->pad[0], s->pad[1]},
                         .dilation = {s->dil[0], s->dil[1]},
                         .groups = s->groups};
}

static int64_t out_len(int64_t in, int k, int stride, int pad, int dil) {
    return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

/* The tolerance for a sum of n products (see the header). */
static void conv_tol(cp_case *c, ct_dtype dt, int64_t n) {
    double sq = sqrt((double)(n > 0 ? n : 1));
    switch (dt) {
    case CT_F64: c->rtol = 1e-12, c->atol = 1e-13 * (double)n + 1e-12; break;
    case CT_F16: c->rtol = 2e-3, c->atol = 2e-3 * sq; break;
    case CT_BF16: c->rtol = 1.6e-2, c->atol = 1.6e-2 * sq; break;
    default: c->rtol = 1e-5, c->atol = 1e-6 * (double)n + 1e-5; break;
    }
}

/* which: 0 forward, 1 input gradient, 2 weight gradient, 3 bias gradient */
static void run_conv(int si, ct_dtype dt, int which) {
    const conv_spec *s = &conv_specs[si];
    int64_t oh = out_len(s->h, s->kh, s->stride[0], s->pad[0], s->dil[0]);
    int64_t ow = out_len(s->w, s->kw, s->stride[1], s->pad[1], s->dil[1]);
    ct_shape xs = {4, {s->n, s->c, s->h, s->w}}, ws = {4, {s->o, s->c / s->groups, s->kh, s->kw}};
    ct_shape ys = {4, {s->n, s->o, oh, ow}}, bs = {1, {s->o}};
    static const ct_op ops[] = {CT_OP_CONV2D, CT_OP_CONV2D_GRAD_INPUT, CT_OP_CONV2D_GRAD_WEIGHT,
                                CT_OP_CONV2D_GRAD_BIAS};
    char name[128];
    snprintf(name, sizeof name, "%s spec#%d %s", ct_op_name(ops[which]), si, ct_dtype_name(dt));
    cp_case c = {.name = name, .op = ops[which], .attr = {.win = conv_win(s), .has_bias = s->bias}, .out_dtype = dt};
    int64_t terms = 0;
    switch (which) {
    case 0:
        c.n_in = s->bias ? 3 : 2;
        c.in[0] = cp_f(dt, xs), c.in[1] = cp_f(dt, ws), c.in[2] = cp_f(dt, bs);
        c.out_shape = ys;
        terms = s->c / s->groups * s->kh * s->kw;
        break;
    case 1:
        c.n_in = 2;
        c.in[0] = cp_f(dt, ys), c.in[1] = cp_f(dt, ws);
        c.out_shape = xs;
        terms = s->o / s->groups * s->kh * s->kw;
        break;
    case 2:
        c.n_in = 2;
        c.in[0] = cp_f(dt, xs), c.in[1] = cp_f(dt, ys);
        c.out_shape = ws;
        terms = s->n * oh * ow;
        break;
    default:
        c.n_in = 1;
        c.in[0] = cp_f(dt, ys);
        c.out_shape = bs;
        break;
    }
    if (which == 3) {
        cp_default_tol(dt, &c.rtol, &c.atol);
        if (dt == CT_F32) c.rtol = 1e-12, c.atol = 1e-12; /* double sums, one rounding */
    } else {
        conv_tol(&c, dt, terms);
    }
    cp_run(&c);
}

Test(cuda_parity, conv2d) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 0);
}

Test(cuda_parity, conv2d_grad_input) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 1);
}

Test(cuda_parity, conv2d_grad_weight) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 2);
}

Test(cuda_parity, conv2d_grad_bias) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 3);
}

/* ---- pooling ------------------------------------------------------------ */

typedef struct pool_spec {
    int64_t n, c, h, w;
    int kh, kw, sh, sw, ph, pw;
    int nan_every; /* NaNs in x (max pooling: NaN wins its window) */
} pool_spec;

static const pool_spec pool_specs[] = {
    {2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0},   /* exact tiling */
    {3, 2, 7, 9, 3, 3, 2, 2, 1, 1, 0},   /* overlapping windows with padding, odd sizes */
    {1, 4, 5, 6, 3, 2, 1, 2, 1, 0, 0},   /* non-square window and stride */
    {2, 1, 13, 11, 5, 5, 3, 3, 2, 2, 0}, /* large window, stride 3 */
    {2, 3, 9, 7, 3, 3, 2, 2, 1, 1, 11},  /* NaNs */
    {0, 3, 4, 4, 2, 2, 2, 2, 0, 0, 0},   /* empty batch */
};
#define N_POOL_SPECS ((int)(sizeof pool_specs / sizeof pool_specs[0]))

/* which: 0 max forward, 1 max gradient, 2 average forward, 3 average gradient */
static void run_pool(int si, ct_dtype dt, int which) {
    const pool_spec *s = &pool_specs[si];
    int64_t oh = out_len(s->h, s->kh, s->sh, s->ph, 1), ow = out_len(s->w, s->kw, s->sw, s->pw, 1);
    ct_shape xs = {4, {s->n, s->c, s->h, s->w}}, ys = {4, {s->n, s->c, oh, ow}};
    static const ct_op ops[] = {CT_OP_MAX_POOL2D, CT_OP_MAX_POOL2D_GRAD, CT_OP_AVG_POOL2D, CT_OP_AVG_POOL2D_GRAD};
    char name[128];
    snprintf(name, sizeof name, "%s spec#%d %s", ct_op_name(ops[which]), si, ct_dtype_name(dt));
    ct_window2d win = {.kernel = {s->kh, s->kw}, .stride = {s->sh, s->sw}, .pad = {s->ph, s->pw},
                       .dilation = {1, 1}, .groups = 1};
    cp_case c = {.name = name, .op = ops[which], .attr = {.win = win}, .out_dtype = dt, .exact = true};
    cp_in x = cp_f(dt, xs);
    x.nan_every = s->nan_every;
    switch (which) {
    case 0:
    case 2: c.n_in = 1, c.in[0] = x, c.out_shape = ys; break;
    case 1: c.n_in = 2, c.in[0] = x, c.in[1] = cp_f(dt, ys), c.out_shape = xs; break;
    default: c.n_in = 1, c.in[0] = cp_f(dt, ys), c.out_shape = xs; break;
    }
    cp_run(&c);
}

Test(cuda_parity, max_pool2d) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 0);
}

Test(cuda_parity, max_pool2d_grad) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 1);
}

/* Ties: values in [0, 0.05) rounded to bfloat16's 8 bits repeat within a
 * window, so the first-maximum rule decides where the gradient goes. */
Test(cuda_parity, max_pool2d_grad_ties) {
    CP_NEED_GPU();
    ct_shape xs = {4, {2, 3, 9, 9}}, ys = {4, {2, 3, 4, 4}};
    ct_window2d win = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {0, 0}, .dilation = {1, 1}, .groups = 1};
    for (int fwd = 0; fwd < 2; fwd++) {
        cp_case c = {.name = fwd ? "max_pool2d ties bf16" : "max_pool2d_grad ties bf16",
                     .op = fwd ? CT_OP_MAX_POOL2D : CT_OP_MAX_POOL2D_GRAD, .attr = {.win = win},
                     .n_in = fwd ? 1 : 2, .in = {cp_range(CT_BF16, xs, 0.0, 0.05), cp_f(CT_BF16, ys)},
                     .out_dtype = CT_BF16, .out_shape = fwd ? ys : xs, .exact = true};
        cp_run(&c);
    }
}

Test(cuda_parity, avg_pool2d) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 2);
}

Test(cuda_parity, avg_pool2d_grad) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 3);
}

/* ---- channel dropout ---------------------------------------------------- */

Test(cuda_parity, dropout2d_same_mask) {
    CP_NEED_GPU();
    const double ps[] = {0.1, 0.5, 0.9, 0.0, 1.0};
    /* channels of 25, 1 (a [N, C] input draws per element) and 143 elements */
    const ct_shape shapes[] = {{4, {2, 3, 5, 5}}, {2, {4, 7}}, {4, {3, 16, 1, 1}}, {4, {2, 5, 13, 11}},
                               {3, {1, 1, 1}}, {4, {0, 3, 2, 2}}};
    for (int p = 0; p < 5; p++)
        for (int s = 0; s < 6; s++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++)
                for (int train = 0; train < 2; train++) {
                    ct_dtype dt = cp_float_dtype(d);
                    char name[96];
                    snprintf(name, sizeof name, "dropout2d p %g shape#%d %s %s", ps[p], s, ct_dtype_name(dt),
                             train ? "training" : "evaluation");
                    cp_case c = {.name = name, .op = CT_OP_DROPOUT2D,
                                 .attr = {.alpha = ps[p], .stream = 7 + (uint32_t)s}, .n_in = 1,
                                 .in = {cp_f(dt, shapes[s])}, .out_dtype = dt, .out_shape = shapes[s],
                                 .exact = true, .eval = !train, .step = 777u + (uint32_t)p};
                    cp_run(&c);
                }
}
