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
 * - the mixed forward of the precision policy (F16/BF16 x and weight, F32
 *   output and bias): the CPU rounds its FP32 sum s + b once into F32; the
 *   GPU rounds s to the half type first (cuDNN has no half-in, float-out
 *   convolution: src/cuda/k_conv.cu), then widens it and adds b in FP32.
 *   The extra error is at most u |s| <= u (|y| + |b|), with u = 2^-11
 *   (F16) or 2^-8 (BF16) and |b| <= 2: rtol r and atol r * sqrt(n) with
 *   r = 2e-3 / 1.6e-2 (about 4u), plus the F32 case's atol for the FP32
 *   sums' order. The policy's gradient ops are not mixed (half inputs and
 *   output for the input and weight gradients, F32 for the bias's): the
 *   "policy" tests run each conv-family, matmul and cast node of a CNN
 *   built under FP16 and BF16 with the exact dtypes and attributes the
 *   graph gave it (every other node of it is F32 only, which they check).
 *   The mixed tolerance is checked against an emulation of the GPU's
 *   arithmetic on the CPU (conv2d_mixed_tolerance_emulated, no GPU).
 * - pooling and dropout2d: exact. The GPU kernels take the same first
 *   maximum, sum in double in the CPU's order and round once; the channel
 *   mask is the same Philox draw compared in double. */
#include "cuda_parity.h"

#include "core/node.h" /* the policy tests read the nodes of a graph */

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

static bool is_half(ct_dtype dt) { return dt == CT_F16 || dt == CT_BF16; }

/* The tolerance of a conv-family case (see the header), from its op,
 * dtypes, shapes and window: n is the length of each output's sum. */
static void conv_case_tol(cp_case *c) {
    const ct_window2d *win = &c->attr.win;
    const ct_shape *in1 = &c->in[c->n_in > 1 ? 1 : 0].shape;
    int64_t taps = (int64_t)win->kernel[0] * win->kernel[1], n = 0;
    switch (c->op) {
    case CT_OP_CONV2D: n = in1->dim[1] * taps; break;
    case CT_OP_CONV2D_GRAD_INPUT: n = in1->dim[0] / win->groups * taps; break;
    case CT_OP_CONV2D_GRAD_WEIGHT: n = in1->dim[0] * in1->dim[2] * in1->dim[3]; break;
    default: /* the bias gradient: double sums, one rounding */
        cp_default_tol(c->out_dtype, &c->rtol, &c->atol);
        if (c->out_dtype == CT_F32) c->rtol = 1e-12, c->atol = 1e-12;
        return;
    }
    ct_dtype dt = c->in[0].dtype;
    conv_tol(c, dt, n);
    if (c->op == CT_OP_CONV2D && is_half(dt) && c->out_dtype == CT_F32) {
        cp_case f32 = {0};
        conv_tol(&f32, CT_F32, n);
        c->atol += f32.atol;
    }
}

/* which: 0 forward, 1 input gradient, 2 weight gradient, 3 bias gradient.
 * mixed (forward, dt F16/BF16): x and weight in dt, bias and output F32.
 * relu (forward): with a relu fused (ct_attrs.fused_relu). */
static void run_conv_relu(int si, ct_dtype dt, int which, bool mixed, bool relu) {
    const conv_spec *s = &conv_specs[si];
    int64_t oh = out_len(s->h, s->kh, s->stride[0], s->pad[0], s->dil[0]);
    int64_t ow = out_len(s->w, s->kw, s->stride[1], s->pad[1], s->dil[1]);
    ct_shape xs = {4, {s->n, s->c, s->h, s->w}}, ws = {4, {s->o, s->c / s->groups, s->kh, s->kw}};
    ct_shape ys = {4, {s->n, s->o, oh, ow}}, bs = {1, {s->o}};
    static const ct_op ops[] = {CT_OP_CONV2D, CT_OP_CONV2D_GRAD_INPUT, CT_OP_CONV2D_GRAD_WEIGHT,
                                CT_OP_CONV2D_GRAD_BIAS};
    char name[128];
    ct_dtype out_dt = mixed ? CT_F32 : dt;
    snprintf(name, sizeof name, "%s%s spec#%d %s%s", ct_op_name(ops[which]), relu ? "+relu" : "", si,
             ct_dtype_name(dt), mixed ? " -> f32" : "");
    cp_case c = {.name = name, .op = ops[which],
                 .attr = {.win = conv_win(s), .has_bias = s->bias, .fused_relu = relu}, .out_dtype = out_dt,
                 .zeros_ok = s->n == 0 /* gradients summed over an empty batch */};
    switch (which) {
    case 0:
        c.n_in = s->bias ? 3 : 2;
        c.in[0] = cp_f(dt, xs), c.in[1] = cp_f(dt, ws), c.in[2] = cp_f(out_dt, bs);
        c.out_shape = ys;
        break;
    case 1:
        c.n_in = 2;
        c.in[0] = cp_f(dt, ys), c.in[1] = cp_f(dt, ws);
        c.out_shape = xs;
        break;
    case 2:
        c.n_in = 2;
        c.in[0] = cp_f(dt, xs), c.in[1] = cp_f(dt, ys);
        c.out_shape = ws;
        break;
    default:
        c.n_in = 1;
        c.in[0] = cp_f(dt, ys);
        c.out_shape = bs;
        break;
    }
    conv_case_tol(&c);
    cp_run(&c);
}

static void run_conv(int si, ct_dtype dt, int which, bool mixed) { run_conv_relu(si, dt, which, mixed, false); }

/* The forward with its relu fused (core/program_fuse.c), plain and mixed:
 * the relu is exact, so the tolerances are the convolution's. */
OP_TEST(cuda_parity, conv2d_fused_relu, CT_OP_CONV2D) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
            ct_dtype dt = cp_float_dtype(d);
            run_conv_relu(s, dt, 0, false, true);
            if (dt == CT_F16 || dt == CT_BF16) run_conv_relu(s, dt, 0, true, true);
        }
}

OP_TEST(cuda_parity, conv2d, CT_OP_CONV2D) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 0, false);
}

OP_TEST(cuda_parity, conv2d_grad_input, CT_OP_CONV2D_GRAD_INPUT) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 1, false);
}

OP_TEST(cuda_parity, conv2d_grad_weight, CT_OP_CONV2D_GRAD_WEIGHT) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 2, false);
}

OP_TEST(cuda_parity, conv2d_grad_bias, CT_OP_CONV2D_GRAD_BIAS) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_conv(s, cp_float_dtype(d), 3, false);
}

/* The precision policy's forward: F16/BF16 x and weight, F32 bias (in the
 * specs that have one) and output, every geometry. */
OP_TEST(cuda_parity, conv2d_mixed, CT_OP_CONV2D) {
    CP_NEED_GPU();
    for (int s = 0; s < N_CONV_SPECS; s++) {
        run_conv(s, CT_F16, 0, true);
        run_conv(s, CT_BF16, 0, true);
    }
}

/* Runs the CPU's conv2d kernel on x, w (and b) into out; allocates scratch. */
static void cpu_conv(const ct_window2d *win, ct_tview *in, int n_in, ct_tview *out) {
    const ct_backend *cpu = ct_cpu_backend();
    ct_attrs a = {.win = *win, .has_bias = n_in == 3};
    ct_kargs k = {.op = CT_OP_CONV2D, .attr = &a, .n_in = n_in, .in = in, .out = *out};
    size_t sb = cpu->scratch_bytes(&k);
    k.scratch = sb ? malloc(sb) : NULL;
    cr_assert(!sb || k.scratch);
    cr_assert_eq(cpu->kernels[CT_OP_CONV2D](&k), CT_OK, "%s", ct_last_error());
    free(k.scratch);
}

/* The mixed tolerance against the GPU's arithmetic, without a GPU: the
 * CPU's half convolution (FP32 sums rounded once to the half type, as
 * cuDNN's pseudo-half configuration) widened and added to the F32 bias in
 * FP32, as k_conv.cu's last pass, must lie within the tolerance of the
 * CPU's mixed result. (Both CPU results sum in the same order: what this
 * measures is the extra rounding alone.) */
Test(cuda_parity, conv2d_mixed_tolerance_emulated) {
    double worst = 0.0; /* the largest |error| / tolerance met */
    for (int si = 0; si < N_CONV_SPECS; si++) {
        const conv_spec *s = &conv_specs[si];
        if (!s->bias || s->n == 0) continue;
        ct_window2d win = conv_win(s);
        int64_t oh = out_len(s->h, s->kh, s->stride[0], s->pad[0], s->dil[0]);
        int64_t ow = out_len(s->w, s->kw, s->stride[1], s->pad[1], s->dil[1]);
        for (int d = 0; d < 2; d++) {
            ct_dtype dt = d ? CT_BF16 : CT_F16;
            cp_case c = {.name = "emulated mixed conv2d", .op = CT_OP_CONV2D, .attr = {.win = win, .has_bias = true},
                         .n_in = 3, .out_dtype = CT_F32, .out_shape = CP_SHAPE(s->n, s->o, oh, ow)};
            c.in[0] = cp_f(dt, CP_SHAPE(s->n, s->c, s->h, s->w));
            c.in[1] = cp_f(dt, CP_SHAPE(s->o, s->c / s->groups, s->kh, s->kw));
            c.in[2] = cp_f(CT_F32, CP_SHAPE(s->o));
            conv_case_tol(&c);
            ct_tview in[3];
            for (int j = 0; j < 3; j++) {
                int64_t n = ct_shape_numel(c.in[j].shape);
                in[j] = (ct_tview){malloc(cp_bytes(c.in[j].dtype, c.in[j].shape)), c.in[j].dtype, c.in[j].shape, n};
                cp_fill(&c.in[j], in[j].data, cp_stream_counter++);
            }
            int64_t ny = ct_shape_numel(c.out_shape), hw = oh * ow;
            float *ref = malloc((size_t)ny * sizeof *ref), *emu = malloc((size_t)ny * sizeof *emu);
            void *half = malloc((size_t)ny * ct_dtype_size(dt));
            ct_tview yref = {ref, CT_F32, c.out_shape, ny}, yh = {half, dt, c.out_shape, ny};
            cpu_conv(&win, in, 3, &yref);
            cpu_conv(&win, in, 2, &yh);
            for (int64_t i = 0; i < ny; i++)
                emu[i] = (float)ct_ld(half, dt, i) + ((const float *)in[2].data)[i / hw % s->o];
            cr_assert(cp_compare("emulated mixed conv2d", "output", CT_F32, ref, emu, ny, c.rtol, c.atol),
                      "spec#%d %s: the half rounding exceeds the mixed tolerance", si, ct_dtype_name(dt));
            for (int64_t i = 0; i < ny; i++)
                worst = fmax(worst, fabs(emu[i] - ref[i]) / (c.atol + c.rtol * fabs(ref[i])));
            for (int j = 0; j < 3; j++) free(in[j].data);
            free(ref), free(emu), free(half);
        }
    }
    cr_log_info("emulated mixed conv2d: worst error %.3f of the tolerance", worst);
}

/* The tolerance of a node of the policy graph that is not a convolution:
 * casts are exact (one rounding of the same value on both sides); products
 * take tests/test_cuda_parity_matmul.c's half bounds, or
 * tests/test_cuda_parity_amp.c's for half operands into F32. */
static void policy_node_tol(cp_case *c) {
    if (c->op == CT_OP_CAST) {
        c->exact = true;
        return;
    }
    const ct_shape *a = &c->in[0].shape;
    double k = (double)(c->attr.trans_a ? a->dim[a->ndim - 2] : a->dim[a->ndim - 1]);
    if (c->out_dtype == CT_F32) c->rtol = 1e-5, c->atol = 3e-5 * sqrt(k) + 1e-6;
    else if (c->out_dtype == CT_F16) c->rtol = 2e-3, c->atol = 1e-3 * sqrt(k) + 1e-3;
    else c->rtol = 1.6e-2, c->atol = 1e-2 * sqrt(k) + 1e-2;
}

static bool is_conv_op(ct_op op) {
    return op == CT_OP_CONV2D || op == CT_OP_CONV2D_GRAD_INPUT || op == CT_OP_CONV2D_GRAD_WEIGHT ||
           op == CT_OP_CONV2D_GRAD_BIAS;
}

/* Every conv-family, matmul and cast node of a small CNN built under the
 * policy `prec`, run as a case with the node's own dtypes, shapes and
 * attributes: whatever the graph's rules produce (the mixed forward, the
 * half gradients, the F32 bias gradient, the classifier's mixed product
 * and its half gradients, the casts between) is what the GPU is checked
 * on. The other nodes of the graph are F32 only. */
static void run_policy_graph(ct_precision prec) {
    ct_graph *g = ct_graph_new();
    cr_assert(g);
    cr_assert_eq(ct_graph_set_precision(g, prec), CT_OK);
    ct_node x = ct_input(g, "x", CT_F32, CP_SHAPE(3, 4, 11, 10));
    ct_node y = ct_input(g, "y", CT_I32, CP_SHAPE(3));
    cr_assert_eq(ct_set_requires_grad(g, x, true), CT_OK); /* the first layer's input gradient too */
    ct_node h = ct_relu(g, ct_conv2d_layer(g, "c1", x, 6, 3, 3, ct_conv_geom(1, 1, 1, 1), true, NULL));
    h = ct_relu(g, ct_conv2d_layer(g, "c2", h, 4, 3, 2, ct_conv_geom(2, 1, 2, 2), false, NULL));
    h = ct_conv2d_layer(g, "c3", h, 8, 1, 1, ct_conv_geom(1, 0, 1, 4), true, NULL); /* grouped 1x1 */
    ct_node logits = ct_linear(g, "fc", ct_flatten(g, h, 1), 5, true, NULL);
    ct_node loss = ct_cross_entropy(g, logits, y, 0.0);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    int mixed = 0, convs = 0, gin = 0, gw = 0, gb = 0;
    for (int i = 0; i < g->n; i++) {
        const ct_nodeinfo *nd = &g->nodes[i];
        if (!is_conv_op(nd->op) && nd->op != CT_OP_MATMUL && nd->op != CT_OP_CAST) {
            bool half = is_half(nd->dtype);
            for (int j = 0; j < nd->n_in; j++) half = half || is_half(g->nodes[nd->in[j]].dtype);
            cr_assert(!half, "node %d (%s) meets a half type: add it to the cases", i, ct_op_name(nd->op));
            continue;
        }
        char name[160];
        int o = snprintf(name, sizeof name, "%s node %d:", ct_op_name(nd->op), i);
        cp_case c = {.name = name, .op = nd->op, .attr = nd->attr, .n_in = nd->n_in, .out_dtype = nd->dtype,
                     .out_shape = nd->shape};
        for (int j = 0; j < nd->n_in; j++) {
            const ct_nodeinfo *in = &g->nodes[nd->in[j]];
            c.in[j] = cp_f(in->dtype, in->shape);
            o += snprintf(name + o, sizeof name - (size_t)o, " %s", ct_dtype_name(in->dtype));
        }
        snprintf(name + o, sizeof name - (size_t)o, " -> %s (%s)", ct_dtype_name(nd->dtype),
                 prec == CT_PRECISION_FP16 ? "fp16 policy" : "bf16 policy");
        if (is_conv_op(nd->op)) conv_case_tol(&c);
        else policy_node_tol(&c);
        cp_run(&c);
        convs += nd->op == CT_OP_CONV2D;
        gin += nd->op == CT_OP_CONV2D_GRAD_INPUT;
        gw += nd->op == CT_OP_CONV2D_GRAD_WEIGHT;
        gb += nd->op == CT_OP_CONV2D_GRAD_BIAS;
        mixed += nd->op == CT_OP_CONV2D && nd->dtype == CT_F32 && is_half(c.in[0].dtype);
    }
    /* Three convolutions, all mixed; an input and a weight gradient each;
     * two biases. */
    cr_assert(mixed == 3 && convs == 3 && gin == 3 && gw == 3 && gb == 2,
              "the CNN gave %d mixed of %d convolutions, %d/%d/%d input/weight/bias gradients", mixed, convs, gin,
              gw, gb);
    ct_graph_free(g);
}

Test(cuda_parity, conv2d_policy_fp16) {
    CP_NEED_GPU();
    run_policy_graph(CT_PRECISION_FP16);
}

Test(cuda_parity, conv2d_policy_bf16) {
    CP_NEED_GPU();
    run_policy_graph(CT_PRECISION_BF16);
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

/* which: 0 max forward, 1 max gradient, 2 average forward, 3 average
 * gradient; relu: the max gradient with a relu's mask fused (x > 0). */
static void run_pool_relu(int si, ct_dtype dt, int which, bool relu) {
    const pool_spec *s = &pool_specs[si];
    int64_t oh = out_len(s->h, s->kh, s->sh, s->ph, 1), ow = out_len(s->w, s->kw, s->sw, s->pw, 1);
    ct_shape xs = {4, {s->n, s->c, s->h, s->w}}, ys = {4, {s->n, s->c, oh, ow}};
    static const ct_op ops[] = {CT_OP_MAX_POOL2D, CT_OP_MAX_POOL2D_GRAD, CT_OP_AVG_POOL2D, CT_OP_AVG_POOL2D_GRAD};
    char name[128];
    snprintf(name, sizeof name, "%s%s spec#%d %s", ct_op_name(ops[which]), relu ? "+relu" : "", si,
             ct_dtype_name(dt));
    ct_window2d win = {.kernel = {s->kh, s->kw}, .stride = {s->sh, s->sw}, .pad = {s->ph, s->pw},
                       .dilation = {1, 1}, .groups = 1};
    cp_case c = {.name = name, .op = ops[which], .attr = {.win = win, .fused_relu = relu}, .out_dtype = dt,
                 .exact = true};
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

static void run_pool(int si, ct_dtype dt, int which) { run_pool_relu(si, dt, which, false); }

OP_TEST(cuda_parity, max_pool2d_grad_fused_relu, CT_OP_MAX_POOL2D_GRAD) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool_relu(s, cp_float_dtype(d), 1, true);
}

OP_TEST(cuda_parity, max_pool2d, CT_OP_MAX_POOL2D) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 0);
}

OP_TEST(cuda_parity, max_pool2d_grad, CT_OP_MAX_POOL2D_GRAD) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 1);
}

/* Ties: values in [0, 0.05) rounded to bfloat16's 8 bits repeat within a
 * window, so the first-maximum rule decides where the gradient goes. */
OP_TEST(cuda_parity, max_pool2d_grad_ties, CT_OP_MAX_POOL2D, CT_OP_MAX_POOL2D_GRAD) {
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

OP_TEST(cuda_parity, avg_pool2d, CT_OP_AVG_POOL2D) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 2);
}

OP_TEST(cuda_parity, avg_pool2d_grad, CT_OP_AVG_POOL2D_GRAD) {
    CP_NEED_GPU();
    for (int s = 0; s < N_POOL_SPECS; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_pool(s, cp_float_dtype(d), 3);
}

/* ---- channel dropout ---------------------------------------------------- */

OP_TEST(cuda_parity, dropout2d_same_mask, CT_OP_DROPOUT2D) {
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
                                 .exact = true, .eval = !train, .step = 777u + (uint32_t)p,
                                 .zeros_ok = train && ps[p] >= 0.9 /* every element or channel may drop */};
                    cp_run(&c);
                }
}
