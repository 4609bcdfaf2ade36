/* GPU vs CPU: embedding and its deterministic gradient, dropout (the same
 * mask, bit for bit), the losses (cross-entropy with and without label
 * smoothing and its gradient, MSE, BCE with logits), batch norm and layer
 * norm with their gradients (tests/cuda_parity.h).
 *
 * Tolerances: embedding forward and dropout are exact (a copy, and the same
 * double computation rounded once); embedding_grad F32 rtol 1e-5 atol 1e-5
 * (sums of up to ~50 rows in float vs double); losses F32 rtol 1e-5 atol
 * 1e-5; norms F32 the default rtol 1e-5 atol 1e-6 (both sides compute in
 * double and differ only in the order of their sums: float statistics
 * would fail dx by far where a variance is near eps, which the [2, 530001]
 * batch norm and [530001, 3] layer norm meet); F16 / BF16 outputs the
 * dtype's rounding plus looser bounds. */
#include "cuda_parity.h"

OP_TEST(cuda_parity, embedding, CT_OP_EMBEDDING) {
    CP_NEED_GPU();
    for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
        ct_dtype dt = cp_float_dtype(d);
        cp_case c = {.name = "embedding", .op = CT_OP_EMBEDDING, .n_in = 2,
                     .in = {cp_f(dt, (ct_shape){2, {50, 33}}), cp_i32((ct_shape){2, {7, 13}}, 0, 50)},
                     .out_dtype = dt, .out_shape = {3, {7, 13, 33}}, .exact = true};
        cp_run(&c);
    }
}

OP_TEST(cuda_parity, embedding_grad, CT_OP_EMBEDDING_GRAD) {
    CP_NEED_GPU();
    /* Many positions per row (91 indices into 7 rows), rows never picked
     * (91 into 1000), and one row picked by everyone. */
    const struct {
        int64_t n, v, d;
        int32_t hi;
    } specs[] = {{91, 7, 33, 7}, {91, 1000, 257, 1000}, {300, 5, 3, 1}, {1, 3, 1, 3}};
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
            ct_dtype dt = cp_float_dtype(d);
            char name[64];
            snprintf(name, sizeof name, "embedding_grad#%d %s", s, ct_dtype_name(dt));
            cp_case c = {.name = name, .op = CT_OP_EMBEDDING_GRAD, .n_in = 2,
                         .in = {cp_i32((ct_shape){1, {specs[s].n}}, 0, specs[s].hi),
                                cp_f(dt, (ct_shape){2, {specs[s].n, specs[s].d}})},
                         .out_dtype = dt, .out_shape = {2, {specs[s].v, specs[s].d}}};
            if (dt == CT_F32) c.rtol = 1e-5, c.atol = 1e-5;
            if (dt == CT_F16 || dt == CT_BF16) cp_set_atol(&c, 0.1);
            cp_run(&c);
        }
}

OP_TEST(cuda_parity, dropout_same_mask, CT_OP_DROPOUT) {
    CP_NEED_GPU();
    const double ps[] = {0.1, 0.5, 0.9, 0.0, 1.0};
    const ct_shape shapes[] = {{1, {1}}, {1, {3}}, {2, {7, 13}}, {2, {64, 1025}}};
    for (int p = 0; p < 5; p++)
        for (int s = 0; s < 4; s++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++)
                for (int train = 0; train < 2; train++) {
                    ct_dtype dt = cp_float_dtype(d);
                    char name[96];
                    snprintf(name, sizeof name, "dropout p %g shape#%d %s %s", ps[p], s, ct_dtype_name(dt),
                             train ? "training" : "evaluation");
                    cp_case c = {.name = name, .op = CT_OP_DROPOUT, .attr = {.alpha = ps[p], .stream = 3 + (uint32_t)s},
                                 .n_in = 1, .in = {cp_f(dt, shapes[s])}, .out_dtype = dt, .out_shape = shapes[s],
                                 .exact = true, .eval = !train, .step = 12345u + (uint32_t)p,
                                 .zeros_ok = train && ps[p] >= 0.9 /* every element or channel may drop */};
                    cp_run(&c);
                }
}

OP_TEST(cuda_parity, cross_entropy, CT_OP_CROSS_ENTROPY, CT_OP_CROSS_ENTROPY_GRAD) {
    CP_NEED_GPU();
    /* 530001 rows: more than one grid of row blocks (65535 * 8) */
    const int64_t sizes[][2] = {{64, 10}, {1, 2}, {33, 1000}, {5, 30011}, {0, 10}, {530001, 3}};
    const double smooth[] = {0.0, 0.1};
    for (int s = 0; s < 6; s++)
        for (int e = 0; e < 2; e++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
                ct_dtype dt = cp_float_dtype(d);
                int64_t n = sizes[s][0], c = sizes[s][1];
                char name[96];
                snprintf(name, sizeof name, "cross_entropy [%lld, %lld] smoothing %g %s", (long long)n, (long long)c,
                         smooth[e], ct_dtype_name(dt));
                cp_case f = {.name = name, .op = CT_OP_CROSS_ENTROPY, .attr = {.alpha = smooth[e]}, .n_in = 2,
                             .in = {cp_range(dt, (ct_shape){2, {n, c}}, -8, 8), cp_i32((ct_shape){1, {n}}, 0, (int32_t)c)},
                             .out_dtype = dt, .out_shape = {0, {0}}};
                if (dt == CT_F32) f.rtol = 1e-5, f.atol = 1e-5;
                cp_run(&f);
                snprintf(name, sizeof name, "cross_entropy_grad [%lld, %lld] smoothing %g %s", (long long)n,
                         (long long)c, smooth[e], ct_dtype_name(dt));
                cp_case g = {.name = name, .op = CT_OP_CROSS_ENTROPY_GRAD, .attr = {.alpha = smooth[e]}, .n_in = 3,
                             .in = {cp_range(dt, (ct_shape){2, {n, c}}, -8, 8), cp_i32((ct_shape){1, {n}}, 0, (int32_t)c),
                                    cp_range(dt, (ct_shape){0, {0}}, 0.5, 2)},
                             .out_dtype = dt, .out_shape = {2, {n, c}}};
                /* |dl / n| <= 2 / n times the float softmax's error, a few
                 * ulp of p <= 1 (CUDA's expf is within 2 ulp; rounding its
                 * argument adds about one): <= 2 / n * 4 * 2^-24 <
                 * 5e-7 / n. (A fixed 1e-7 is below that at n = 1, where a
                 * label with p near 1 leaves the rtol part nothing.) */
                if (dt == CT_F32) g.rtol = 1e-5, g.atol = 2e-6 / (double)(n > 0 ? n : 1);
                /* the gradient is (softmax - one-hot) * dl / n: the half
                 * types' absolute bound shrinks with it (F16's subnormal
                 * step is 6e-8) */
                if (dt == CT_F16 || dt == CT_BF16) cp_set_atol(&g, 1e-3 * 64.0 / (double)(n > 64 ? n : 64));
                cp_run(&g);
            }
}

OP_TEST(cuda_parity, mse_and_bce, CT_OP_MSE, CT_OP_BCE_WITH_LOGITS) {
    CP_NEED_GPU();
    const ct_shape shapes[] = {{1, {1}}, {2, {7, 13}}, {2, {64, 1025}}, {1, {300007}}};
    const ct_op ops[] = {CT_OP_MSE, CT_OP_BCE_WITH_LOGITS};
    for (int o = 0; o < 2; o++)
        for (int s = 0; s < 4; s++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
                ct_dtype dt = cp_float_dtype(d);
                char name[96];
                snprintf(name, sizeof name, "%s shape#%d %s", ct_op_name(ops[o]), s, ct_dtype_name(dt));
                cp_in b = ops[o] == CT_OP_BCE_WITH_LOGITS ? cp_range(dt, shapes[s], 0, 1) : cp_f(dt, shapes[s]);
                cp_case c = {.name = name, .op = ops[o], .n_in = 2, .in = {cp_range(dt, shapes[s], -30, 30), b},
                             .out_dtype = dt, .out_shape = {0, {0}}};
                if (dt == CT_F32) c.rtol = 1e-5, c.atol = 1e-5;
                cp_run(&c);
            }
}

/* ---- normalisation ------------------------------------------------------ */

static void norm_tol(cp_case *c, ct_dtype dt) {
    if (dt == CT_F16) c->rtol = 4e-3, c->atol = 4e-3;
    if (dt == CT_BF16) c->rtol = 3e-2, c->atol = 3e-2;
}

/* {2, 530001}: more channels than one grid of channel blocks (65535 * 8) */
static const ct_shape bn_shapes[] = {{2, {64, 10}}, {4, {3, 5, 7, 9}}, {3, {2, 3, 1025}}, {2, {2, 1}}, {2, {2, 530001}}};
#define N_BN ((int)(sizeof bn_shapes / sizeof bn_shapes[0]))

OP_TEST(cuda_parity, batch_norm, CT_OP_BATCH_NORM) {
    CP_NEED_GPU();
    for (int s = 0; s < N_BN; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++)
            for (int mode = 0; mode < 4; mode++) { /* bit 0: evaluation, bit 1: no weight and bias */
                ct_dtype dt = cp_float_dtype(d);
                ct_shape x = bn_shapes[s], ch = {1, {x.dim[1]}};
                bool eval = mode & 1, affine = !(mode & 2);
                char name[96];
                snprintf(name, sizeof name, "batch_norm shape#%d %s %s%s", s, ct_dtype_name(dt),
                         eval ? "evaluation" : "training", affine ? "" : " no affine");
                cp_case c = {.name = name, .op = CT_OP_BATCH_NORM,
                             .attr = {.alpha = 0.1, .eps = 1e-5, .has_weight = affine, .has_bias = affine},
                             .n_in = affine ? 5 : 3, .out_dtype = dt, .out_shape = x, .eval = eval};
                c.in[0] = cp_range(dt, x, -3, 5);
                c.in[1] = cp_range(dt, ch, -1, 1);
                c.in[2] = cp_range(dt, ch, 0.5, 2);
                c.in[1].check = c.in[2].check = true; /* running statistics, updated in place */
                if (affine) c.in[3] = cp_f(dt, ch), c.in[4] = cp_f(dt, ch);
                norm_tol(&c, dt);
                cp_run(&c);
            }
}

OP_TEST(cuda_parity, batch_norm_grad, CT_OP_BATCH_NORM_GRAD) {
    CP_NEED_GPU();
    for (int s = 0; s < N_BN; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++)
            for (int which = 0; which < 3; which++)
                for (int eval = 0; eval < 2; eval++) {
                    ct_dtype dt = cp_float_dtype(d);
                    ct_shape x = bn_shapes[s], ch = {1, {x.dim[1]}};
                    bool has_w = which == CT_NORM_GRAD_X;
                    char name[96];
                    snprintf(name, sizeof name, "batch_norm_grad shape#%d %s which %d %s", s, ct_dtype_name(dt),
                             which, eval ? "evaluation" : "training");
                    cp_case c = {.name = name, .op = CT_OP_BATCH_NORM_GRAD,
                                 .attr = {.eps = 1e-5, .has_weight = true, .has_bias = true, .which = which},
                                 .n_in = has_w ? 5 : 4, .out_dtype = dt,
                                 .out_shape = which == CT_NORM_GRAD_X ? x : ch, .eval = eval};
                    c.in[0] = cp_range(dt, x, -3, 5);
                    c.in[1] = cp_range(dt, ch, -1, 1);
                    c.in[2] = cp_range(dt, ch, 0.5, 2);
                    c.in[3] = cp_f(dt, x);
                    if (has_w) c.in[4] = cp_f(dt, ch);
                    norm_tol(&c, dt);
                    cp_run(&c);
                }
}

/* {530001, 3}: more rows than one grid of row blocks (65535 * 8) */
static const ct_shape ln_shapes[] = {{2, {64, 10}}, {3, {3, 5, 257}}, {2, {7, 1025}},
                                     {2, {3000, 3}}, {1, {33}},        {2, {530001, 3}}};
#define N_LN ((int)(sizeof ln_shapes / sizeof ln_shapes[0]))

OP_TEST(cuda_parity, layer_norm, CT_OP_LAYER_NORM) {
    CP_NEED_GPU();
    for (int s = 0; s < N_LN; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++)
            for (int affine = 0; affine < 2; affine++) {
                ct_dtype dt = cp_float_dtype(d);
                ct_shape x = ln_shapes[s], f = {1, {x.dim[x.ndim - 1]}};
                char name[96];
                snprintf(name, sizeof name, "layer_norm shape#%d %s%s", s, ct_dtype_name(dt), affine ? "" : " no affine");
                cp_case c = {.name = name, .op = CT_OP_LAYER_NORM,
                             .attr = {.eps = 1e-5, .has_weight = affine, .has_bias = affine},
                             .n_in = affine ? 3 : 1, .out_dtype = dt, .out_shape = x};
                c.in[0] = cp_range(dt, x, -3, 5);
                if (affine) c.in[1] = cp_f(dt, f), c.in[2] = cp_f(dt, f);
                norm_tol(&c, dt);
                cp_run(&c);
            }
}

OP_TEST(cuda_parity, layer_norm_grad, CT_OP_LAYER_NORM_GRAD) {
    CP_NEED_GPU();
    for (int s = 0; s < N_LN; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++)
            for (int which = 0; which < 3; which++) {
                ct_dtype dt = cp_float_dtype(d);
                ct_shape x = ln_shapes[s], f = {1, {x.dim[x.ndim - 1]}};
                bool has_w = which == CT_NORM_GRAD_X;
                char name[96];
                snprintf(name, sizeof name, "layer_norm_grad shape#%d %s which %d", s, ct_dtype_name(dt), which);
                cp_case c = {.name = name, .op = CT_OP_LAYER_NORM_GRAD,
                             .attr = {.eps = 1e-5, .has_weight = true, .has_bias = true, .which = which},
                             .n_in = has_w ? 3 : 2, .out_dtype = dt, .out_shape = which == CT_NORM_GRAD_X ? x : f};
                c.in[0] = cp_range(dt, x, -3, 5);
                c.in[1] = cp_f(dt, x);
                if (has_w) c.in[2] = cp_f(dt, f);
                norm_tol(&c, dt);
                /* parameter gradients sum over up to 530001 rows */
                if (which != CT_NORM_GRAD_X && dt != CT_F32 && dt != CT_F64) c.atol = 0.5;
                cp_run(&c);
            }
}
