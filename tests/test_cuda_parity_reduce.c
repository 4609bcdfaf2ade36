/* GPU vs CPU: SUM, MEAN and MAX over each axis and over everything, with
 * and without keepdim, MAX's gradient, softmax and log-softmax over the
 * last and a middle axis, and their gradients (tests/cuda_parity.h).
 *
 * Tolerances: the GPU sums in float (double for F64) in a tree, the CPU in
 * double in index order; for sums of n terms of size ~1, F32 gets rtol
 * 1e-5 and atol 1e-6 * sqrt(n) + 1e-6 (means: sqrt(n) / n), F16/BF16 the
 * dtype's rtol and atol 0.05 * sqrt(n) (means: 0.01 / sqrt(n)). MAX and MAX_GRAD are exact (the same
 * element is chosen: the first NaN, else the first of equal maxima).
 * Softmax family: F32 rtol 1e-5 atol 1e-6 (gradients: 1e-5 + 3e-6 *
 * sqrt(len), a float sum over the row), F16/BF16 the dtype's rtol with
 * atol 1e-7 for softmax (probabilities of 30011 classes are ~1e-5) and
 * 0.05 / 0.5 for the gradients (sums over the row).
 * Shapes include rows of 1, 13, 257, 1025 and 100003 elements (the last
 * takes the two-pass path of long rows), and 530001 rows of 3, more rows
 * than one grid of row blocks. */
#include "cuda_parity.h"

/* The last: more rows than a grid holds (65535 for row_sum's grid.y,
 * 65535 * 8 blocks for the others), so the kernels' row loops run. */
static const ct_shape red_shapes[] = {
    {1, {13}}, {2, {7, 257}}, {3, {3, 5, 1025}}, {2, {2, 100003}}, {3, {4, 1, 9}}, {2, {530001, 3}},
};
#define N_RED ((int)(sizeof red_shapes / sizeof red_shapes[0]))

/* The reduced shape (as ops_reduce.c infers it). */
static ct_shape reduced(ct_shape s, int axis, bool keepdim) {
    if (axis == CT_AXIS_ALL) {
        if (!keepdim) return (ct_shape){0, {0}};
        for (int d = 0; d < s.ndim; d++) s.dim[d] = 1;
        return s;
    }
    if (keepdim) {
        s.dim[axis] = 1;
        return s;
    }
    ct_shape r = {s.ndim - 1, {0}};
    for (int d = 0, k = 0; d < s.ndim; d++)
        if (d != axis) r.dim[k++] = s.dim[d];
    return r;
}

static int64_t axis_len(ct_shape s, int axis) { return axis == CT_AXIS_ALL ? ct_shape_numel(s) : s.dim[axis]; }

static void run_reduce(ct_op op, ct_dtype dt) {
    for (int s = 0; s < N_RED; s++) {
        ct_shape sh = red_shapes[s];
        for (int axis = -1; axis < sh.ndim; axis++) {
            int ax = axis < 0 ? CT_AXIS_ALL : axis;
            for (int keep = 0; keep < 2; keep++) {
                char name[96];
                snprintf(name, sizeof name, "%s shape#%d axis %d keepdim %d %s", ct_op_name(op), s, axis, keep,
                         ct_dtype_name(dt));
                cp_case c = {.name = name, .op = op, .attr = {.axis = ax, .keepdim = keep}, .n_in = 1,
                             .in = {cp_f(dt, sh)}, .out_dtype = dt, .out_shape = reduced(sh, ax, keep)};
                double n = (double)axis_len(sh, ax);
                /* a sum's rounding grows like sqrt(n); a mean's is that / n
                 * (a mean of 1.6M values is ~1e-3: sqrt(n) would pass 0) */
                double grow = op == CT_OP_MEAN ? 1 / sqrt(n) : sqrt(n);
                if (op == CT_OP_MAX) c.exact = true;
                else if (dt == CT_F32) c.rtol = 1e-5, c.atol = 1e-6 * grow + 1e-6;
                else if (dt == CT_F16 || dt == CT_BF16) cp_set_atol(&c, (op == CT_OP_SUM ? 0.05 : 0.01) * grow);
                cp_run(&c);
            }
        }
    }
}

OP_TEST(cuda_parity, sum, CT_OP_SUM) {
    CP_NEED_GPU();
    for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_reduce(CT_OP_SUM, cp_float_dtype(d));
}

OP_TEST(cuda_parity, mean, CT_OP_MEAN) {
    CP_NEED_GPU();
    for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_reduce(CT_OP_MEAN, cp_float_dtype(d));
}

OP_TEST(cuda_parity, max, CT_OP_MAX) {
    CP_NEED_GPU();
    for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) run_reduce(CT_OP_MAX, cp_float_dtype(d));
}

OP_TEST(cuda_parity, max_grad, CT_OP_MAX_GRAD) {
    CP_NEED_GPU();
    for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
        ct_dtype dt = cp_float_dtype(d);
        for (int s = 0; s < N_RED; s++) {
            ct_shape sh = red_shapes[s];
            for (int axis = -1; axis < sh.ndim; axis++) {
                int ax = axis < 0 ? CT_AXIS_ALL : axis;
                char name[96];
                snprintf(name, sizeof name, "max_grad shape#%d axis %d %s", s, axis, ct_dtype_name(dt));
                /* BF16 has few distinct values in [-2, 2]: ties test the
                 * first-of-equal-maxima rule */
                cp_case c = {.name = name, .op = CT_OP_MAX_GRAD, .attr = {.axis = ax, .keepdim = true}, .n_in = 2,
                             .in = {cp_f(dt, sh), cp_f(dt, reduced(sh, ax, true))}, .out_dtype = dt, .out_shape = sh,
                             .exact = true};
                cp_run(&c);
            }
        }
    }
}

/* {530001, 3}: more rows than the row kernels' grid (65535 * 8 blocks) */
static const ct_shape sm_shapes[] = {{2, {64, 10}},   {2, {7, 1}},     {3, {3, 13, 257}},
                                     {2, {5, 1025}}, {2, {3, 30011}}, {2, {530001, 3}}};
#define N_SM ((int)(sizeof sm_shapes / sizeof sm_shapes[0]))

static void run_softmax(ct_op op, bool grad) {
    for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
        ct_dtype dt = cp_float_dtype(d);
        for (int s = 0; s < N_SM; s++) {
            ct_shape sh = sm_shapes[s];
            /* the last axis (block per row) and axis 1 of 3-d shapes
             * (thread per column) */
            for (int axis = sh.ndim == 3 ? 1 : sh.ndim - 1; axis < sh.ndim; axis++) {
                char name[96];
                snprintf(name, sizeof name, "%s shape#%d axis %d %s", ct_op_name(op), s, axis, ct_dtype_name(dt));
                cp_case c = {.name = name, .op = op, .attr = {.axis = axis}, .n_in = grad ? 2 : 1,
                             .out_dtype = dt, .out_shape = sh};
                if (!grad) {
                    c.in[0] = cp_range(dt, sh, -6, 6);
                } else if (op == CT_OP_SOFTMAX_GRAD) {
                    c.in[0] = cp_range(dt, sh, 0.001, 0.5); /* y: probabilities */
                    c.in[1] = cp_f(dt, sh);
                } else {
                    c.in[0] = cp_range(dt, sh, -8, -0.01); /* y: log-probabilities */
                    c.in[1] = cp_f(dt, sh);
                }
                /* The gradients subtract a float sum over the row (the
                 * GPU's, a block tree) from dy, times y <= 1: its error,
                 * like SUM's, grows like sqrt(len) and does not shrink with
                 * the result. An emulation of the block sum over 20000 rows
                 * of 30011: |error| <= 1.7e-4 = 1.0e-6 sqrt(len); with
                 * atol 1e-5 alone 2.4 % of the rows failed. */
                if (dt == CT_F32) c.rtol = 1e-5, c.atol = grad ? 1e-5 + 3e-6 * sqrt((double)sh.dim[axis]) : 1e-6;
                if ((dt == CT_F16 || dt == CT_BF16) && grad) cp_set_atol(&c, dt == CT_F16 ? 0.05 : 0.5);
                /* probabilities of 30011 classes lie far below the default
                 * atol (1e-3), which would pass zeros: one rounding of a
                 * subnormal F16 is 2^-24 */
                if ((dt == CT_F16 || dt == CT_BF16) && op == CT_OP_SOFTMAX) cp_set_atol(&c, 1e-7);
                cp_run(&c);
            }
        }
    }
}

OP_TEST(cuda_parity, softmax, CT_OP_SOFTMAX) {
    CP_NEED_GPU();
    run_softmax(CT_OP_SOFTMAX, false);
}

OP_TEST(cuda_parity, log_softmax, CT_OP_LOG_SOFTMAX) {
    CP_NEED_GPU();
    run_softmax(CT_OP_LOG_SOFTMAX, false);
}

OP_TEST(cuda_parity, softmax_grad, CT_OP_SOFTMAX_GRAD) {
    CP_NEED_GPU();
    run_softmax(CT_OP_SOFTMAX_GRAD, true);
}

OP_TEST(cuda_parity, log_softmax_grad, CT_OP_LOG_SOFTMAX_GRAD) {
    CP_NEED_GPU();
    run_softmax(CT_OP_LOG_SOFTMAX_GRAD, true);
}

/* A NaN anywhere in a row is the row's maximum and makes the row's
 * softmax NaN, on both backends; rows without one are unaffected. */
OP_TEST(cuda_parity, nan_rows, CT_OP_MAX, CT_OP_SOFTMAX, CT_OP_LOG_SOFTMAX) {
    CP_NEED_GPU();
    const ct_op ops[] = {CT_OP_MAX, CT_OP_SOFTMAX, CT_OP_LOG_SOFTMAX};
    ct_shape sh = {2, {5, 37}};
    cp_in in = cp_f(CT_F32, sh);
    in.nan_every = 71; /* elements 70 and 141: rows 1 and 3 hold a NaN, the others none */
    for (int o = 0; o < 3; o++) {
        cp_case c = {.name = ct_op_name(ops[o]), .op = ops[o], .attr = {.axis = 1}, .n_in = 1, .in = {in},
                     .out_dtype = CT_F32, .out_shape = ops[o] == CT_OP_MAX ? (ct_shape){1, {5}} : sh};
        cp_run(&c);
    }
}
