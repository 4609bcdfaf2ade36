/* GPU vs CPU: binary ops with broadcasting, unary ops and their gradient
 * (UNARY_GRAD), casts, copy, BROADCAST_TO and SUM_TO (tests/cuda_parity.h).
 *
 * Tolerances (|gpu - cpu| <= atol + rtol |cpu|): F32 rtol 1e-5 atol 1e-6
 * (the GPU computes in float, the CPU in double; transcendental functions
 * of CUDA's math library are within 2 ulp), F64 1e-12, F16 rtol 2e-3, BF16
 * rtol 1.6e-2 (one rounding of the result: both round the same float or
 * double value, so they differ by at most one unit in the last place).
 * Casts and copies are exact. Shapes include sizes that do not divide the
 * 256-thread block (13, 257, 1025). */
#include "cuda_parity.h"

static const ct_op binary_ops[] = {CT_OP_ADD, CT_OP_SUB, CT_OP_MUL, CT_OP_DIV};

/* (a, b, out) triples: same shape, row broadcast, both sides broadcast. */
static const ct_shape bin_shapes[][3] = {
    {{2, {7, 13}}, {2, {7, 13}}, {2, {7, 13}}},
    {{2, {33, 1025}}, {1, {1025}}, {2, {33, 1025}}},
    {{3, {3, 1, 257}}, {2, {5, 1}}, {3, {3, 5, 257}}},
    {{1, {1}}, {2, {9, 31}}, {2, {9, 31}}},
    {{0, {0}}, {0, {0}}, {0, {0}}},
};

OP_TEST(cuda_parity, binary_broadcasting, CT_OP_ADD, CT_OP_SUB, CT_OP_MUL, CT_OP_DIV) {
    CP_NEED_GPU();
    for (int o = 0; o < 4; o++)
        for (int s = 0; s < (int)(sizeof bin_shapes / sizeof bin_shapes[0]); s++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
                ct_dtype dt = cp_float_dtype(d);
                char name[96];
                snprintf(name, sizeof name, "%s shapes#%d %s", ct_op_name(binary_ops[o]), s, ct_dtype_name(dt));
                cp_case c = {.name = name, .op = binary_ops[o], .n_in = 2,
                             .in = {cp_f(dt, bin_shapes[s][0]), cp_f(dt, bin_shapes[s][1])},
                             .out_dtype = dt, .out_shape = bin_shapes[s][2]};
                cp_run(&c);
            }
}

/* ADD with a relu fused (core/program_fuse.c: a layer's bias add and its
 * activation), on every shape pair. */
OP_TEST(cuda_parity, add_fused_relu, CT_OP_ADD) {
    CP_NEED_GPU();
    for (int s = 0; s < (int)(sizeof bin_shapes / sizeof bin_shapes[0]); s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
            ct_dtype dt = cp_float_dtype(d);
            char name[96];
            snprintf(name, sizeof name, "add+relu shapes#%d %s", s, ct_dtype_name(dt));
            cp_case c = {.name = name, .op = CT_OP_ADD, .attr = {.fused_relu = true}, .n_in = 2,
                         .in = {cp_f(dt, bin_shapes[s][0]), cp_f(dt, bin_shapes[s][1])}, .out_dtype = dt,
                         .out_shape = bin_shapes[s][2]};
            cp_run(&c);
        }
}

/* Each unary op with the input range and the attributes it is checked on. */
typedef struct unary_spec {
    ct_op op;
    double lo, hi; /* 0, 0: [-2, 2] away from 0 */
    ct_attrs attr; /* unary_grad adds fwd_op */
} unary_spec;

static const unary_spec unary_specs[] = {
    {CT_OP_NEG, 0, 0, {.alpha = 0}},
    {CT_OP_SCALE, 0, 0, {.alpha = -1.75}},
    {CT_OP_EXP, -4, 4, {.alpha = 0}},
    {CT_OP_LOG, 0.05, 5, {.alpha = 0}},
    {CT_OP_SQRT, 0.05, 5, {.alpha = 0}},
    {CT_OP_POW, 0.1, 3, {.alpha = 2.5}},
    {CT_OP_POW, 0.1, 3, {.alpha = -1.25}},
    {CT_OP_ABS, 0, 0, {.alpha = 0}},
    {CT_OP_RELU, 0, 0, {.alpha = 0}},
    {CT_OP_LEAKY_RELU, 0, 0, {.alpha = 0.01}},
    {CT_OP_GELU, -5, 5, {.approx = CT_GELU_EXACT}},
    {CT_OP_GELU, -5, 5, {.approx = CT_GELU_TANH}},
    {CT_OP_TANH, -4, 4, {.alpha = 0}},
    {CT_OP_SIGMOID, -8, 8, {.alpha = 0}},
    {CT_OP_SILU, -6, 6, {.alpha = 0}},
    {CT_OP_SOFTPLUS, -30, 30, {.alpha = 1, .threshold = 20}},
    /* beta 2 crosses its threshold at x = 3: 2x is exact in float and double, so both take the same side */
    {CT_OP_SOFTPLUS, -8, 8, {.alpha = 2, .threshold = 6}},
};
#define N_UNARY ((int)(sizeof unary_specs / sizeof unary_specs[0]))

static const ct_shape unary_shapes[] = {{1, {1}}, {2, {7, 13}}, {3, {3, 5, 257}}, {2, {61, 1025}}};

static cp_in unary_input(const unary_spec *u, ct_dtype dt, ct_shape s) {
    return u->lo == 0 && u->hi == 0 ? cp_f(dt, s) : cp_range(dt, s, u->lo, u->hi);
}

OP_TEST(cuda_parity, unary_forward, CT_OP_NEG, CT_OP_SCALE, CT_OP_EXP, CT_OP_LOG, CT_OP_SQRT, CT_OP_POW, CT_OP_ABS,
        CT_OP_RELU, CT_OP_LEAKY_RELU, CT_OP_GELU, CT_OP_TANH, CT_OP_SIGMOID, CT_OP_SILU, CT_OP_SOFTPLUS) {
    CP_NEED_GPU();
    for (int u = 0; u < N_UNARY; u++)
        for (int s = 0; s < 4; s++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
                const unary_spec *us = &unary_specs[u];
                ct_dtype dt = cp_float_dtype(d);
                char name[96];
                snprintf(name, sizeof name, "%s(spec %d) shape#%d %s", ct_op_name(us->op), u, s, ct_dtype_name(dt));
                cp_case c = {.name = name, .op = us->op, .attr = us->attr, .n_in = 1,
                             .in = {unary_input(us, dt, unary_shapes[s])}, .out_dtype = dt,
                             .out_shape = unary_shapes[s]};
                cp_run(&c);
            }
}

OP_TEST(cuda_parity, unary_grad, CT_OP_UNARY_GRAD) {
    CP_NEED_GPU();
    for (int u = 0; u < N_UNARY; u++)
        for (int s = 0; s < 4; s++)
            for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
                const unary_spec *us = &unary_specs[u];
                ct_dtype dt = cp_float_dtype(d);
                char name[96];
                snprintf(name, sizeof name, "unary_grad of %s(spec %d) shape#%d %s", ct_op_name(us->op), u, s,
                         ct_dtype_name(dt));
                cp_case c = {.name = name, .op = CT_OP_UNARY_GRAD, .attr = us->attr, .n_in = 2,
                             .in = {unary_input(us, dt, unary_shapes[s]), cp_f(dt, unary_shapes[s])},
                             .out_dtype = dt, .out_shape = unary_shapes[s]};
                c.attr.fwd_op = us->op;
                cp_run(&c);
            }
}

OP_TEST(cuda_parity, cast_every_pair, CT_OP_CAST) {
    CP_NEED_GPU();
    ct_shape s = {2, {19, 37}};
    for (int from = 0; from < CT_DTYPE_COUNT; from++)
        for (int to = 0; to < CT_DTYPE_COUNT; to++) {
            char name[64];
            snprintf(name, sizeof name, "cast %s -> %s", ct_dtype_name((ct_dtype)from), ct_dtype_name((ct_dtype)to));
            cp_in in = from == CT_I32 || from == CT_U8
                           ? (cp_in){.dtype = (ct_dtype)from, .shape = s, .ilo = from == CT_U8 ? 0 : -300, .ihi = 300}
                           : cp_range((ct_dtype)from, s, -300.7, 300.7);
            /* exact: both go through double and round once the same way */
            cp_case c = {.name = name, .op = CT_OP_CAST, .attr = {.dtype = (ct_dtype)to}, .n_in = 1, .in = {in},
                         .out_dtype = (ct_dtype)to, .out_shape = s, .exact = true};
            cp_run(&c);
        }
}

OP_TEST(cuda_parity, copy_keeps_bytes, CT_OP_COPY) {
    CP_NEED_GPU();
    const ct_dtype dts[] = {CT_F32, CT_F64, CT_F16, CT_I32};
    for (int d = 0; d < 4; d++) {
        ct_shape s = {3, {5, 7, 11}};
        cp_in in = dts[d] == CT_I32 ? cp_i32(s, -1000, 1000) : cp_f(dts[d], s);
        cp_case c = {.name = "copy", .op = CT_OP_COPY, .n_in = 1, .in = {in}, .out_dtype = dts[d], .out_shape = s,
                     .exact = true};
        cp_run(&c);
    }
}

/* (small, big): BROADCAST_TO goes small -> big, SUM_TO big -> small. */
static const ct_shape bcast_pairs[][2] = {
    {{2, {1, 13}}, {2, {7, 13}}},
    {{3, {5, 1, 3}}, {4, {2, 5, 4, 3}}},
    {{1, {1025}}, {2, {33, 1025}}},
    {{2, {33, 1}}, {2, {33, 1025}}},
    {{0, {0}}, {2, {67, 129}}},
    {{2, {1, 1}}, {3, {3, 7, 9}}},
};
#define N_BCAST ((int)(sizeof bcast_pairs / sizeof bcast_pairs[0]))

OP_TEST(cuda_parity, broadcast_to, CT_OP_BROADCAST_TO) {
    CP_NEED_GPU();
    for (int p = 0; p < N_BCAST; p++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
            ct_dtype dt = cp_float_dtype(d);
            char name[64];
            snprintf(name, sizeof name, "broadcast_to pair#%d %s", p, ct_dtype_name(dt));
            cp_case c = {.name = name, .op = CT_OP_BROADCAST_TO, .n_in = 1, .in = {cp_f(dt, bcast_pairs[p][0])},
                         .out_dtype = dt, .out_shape = bcast_pairs[p][1], .exact = true};
            cp_run(&c);
        }
}

OP_TEST(cuda_parity, sum_to, CT_OP_SUM_TO) {
    CP_NEED_GPU();
    for (int p = 0; p < N_BCAST; p++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
            ct_dtype dt = cp_float_dtype(d);
            char name[64];
            snprintf(name, sizeof name, "sum_to pair#%d %s", p, ct_dtype_name(dt));
            /* sums of up to 8643 terms of size ~1: float's rounding grows
             * with the count, hence the looser F32 bound */
            cp_case c = {.name = name, .op = CT_OP_SUM_TO, .n_in = 1, .in = {cp_f(dt, bcast_pairs[p][1])},
                         .out_dtype = dt, .out_shape = bcast_pairs[p][0]};
            if (dt == CT_F32) c.rtol = 1e-5, c.atol = 1e-4;
            if (dt == CT_F16 || dt == CT_BF16) cp_set_atol(&c, 0.1);
            cp_run(&c);
        }
}
