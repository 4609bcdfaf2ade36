/* GPU vs CPU: matrix products (cuBLAS against OpenBLAS) and the data
 * movement ops: reshape, permute, concat, slice, slice_grad
 * (tests/cuda_parity.h).
 *
 * Tolerances for MATMUL, with inputs in [-2, 2] and k terms per output:
 *   F32 (FP32 compute): rtol 1e-5, atol 1e-5 * sqrt(k)
 *   F32 with attr.tf32: rtol 1e-5, atol 1e-2 * sqrt(k) (TF32 keeps 10
 *     mantissa bits of each input, a relative error below 2^-10 per
 *     operand, of random sign: the error of a sum grows like sqrt(k). An
 *     emulation, operands cut or rounded to TF32 and products added
 *     exactly, over 2e6 dot products for each k here with inputs like the
 *     harness's: |tf32 - fp32| <= 0.0052 sqrt(k) cut, 0.0023 sqrt(k)
 *     rounded. The bound 5e-3 * k used before, 3.9 at k = 784, passed a
 *     product missing a whole term.)
 *   F64: rtol 1e-12, atol 1e-12 * k
 *   F16 / BF16: the output dtype's rounding plus k-term accumulation
 * Data movement is exact. */
#include "cuda_parity.h"

typedef struct mm_spec {
    ct_shape a, b, out;
    bool ta, tb;
} mm_spec;

static const mm_spec mm_specs[] = {
    {{2, {64, 784}}, {2, {512, 784}}, {2, {64, 512}}, false, true},  /* x @ W^T: a linear layer */
    {{2, {64, 512}}, {2, {512, 784}}, {2, {64, 784}}, false, false}, /* dx = dy @ W */
    {{2, {64, 512}}, {2, {64, 784}}, {2, {512, 784}}, true, false},  /* dW = dy^T @ x */
    {{2, {7, 13}}, {2, {13, 5}}, {2, {7, 5}}, false, false},
    {{2, {13, 7}}, {2, {5, 13}}, {2, {7, 5}}, true, true},
    {{3, {3, 17, 33}}, {3, {3, 33, 9}}, {3, {3, 17, 9}}, false, false},  /* batched */
    {{3, {4, 17, 33}}, {2, {33, 9}}, {3, {4, 17, 9}}, false, false},     /* shared weight: one tall GEMM */
    {{2, {17, 33}}, {3, {4, 33, 9}}, {3, {4, 17, 9}}, false, false},     /* broadcast a */
    {{4, {2, 1, 5, 6}}, {4, {1, 3, 6, 4}}, {4, {2, 3, 5, 4}}, false, false}, /* partial broadcast */
    {{3, {2, 6, 5}}, {3, {2, 4, 6}}, {3, {2, 5, 4}}, true, true},
    {{2, {3, 0}}, {2, {0, 4}}, {2, {3, 4}}, false, false}, /* k = 0: zeros */
};
#define N_MM ((int)(sizeof mm_specs / sizeof mm_specs[0]))

static int64_t inner_k(const mm_spec *m) { return m->ta ? m->a.dim[m->a.ndim - 2] : m->a.dim[m->a.ndim - 1]; }

static void run_matmul(ct_dtype dt, bool tf32) {
    for (int i = 0; i < N_MM; i++) {
        const mm_spec *m = &mm_specs[i];
        double k = (double)inner_k(m);
        char name[96];
        snprintf(name, sizeof name, "matmul#%d %s%s", i, ct_dtype_name(dt), tf32 ? " tf32" : "");
        /* TF32 is the node's attribute, as ct_graph_set_tf32 records it. */
        cp_case c = {.name = name, .op = CT_OP_MATMUL, .attr = {.trans_a = m->ta, .trans_b = m->tb, .tf32 = tf32},
                     .n_in = 2, .in = {cp_f(dt, m->a), cp_f(dt, m->b)}, .out_dtype = dt, .out_shape = m->out,
                     .zeros_ok = k == 0};
        switch (dt) {
        case CT_F32: c.rtol = 1e-5, c.atol = (tf32 ? 1e-2 : 1e-5) * sqrt(k) + 1e-6; break;
        case CT_F64: c.rtol = 1e-12, c.atol = 1e-12 * k + 1e-12; break;
        case CT_F16: c.rtol = 2e-3, c.atol = 1e-3 * sqrt(k) + 1e-3; break;
        default: c.rtol = 1.6e-2, c.atol = 1e-2 * sqrt(k) + 1e-2; break;
        }
        cp_run(&c);
    }
}

OP_TEST(cuda_parity, matmul_f32, CT_OP_MATMUL) {
    CP_NEED_GPU();
    run_matmul(CT_F32, false);
}

OP_TEST(cuda_parity, matmul_tf32, CT_OP_MATMUL) {
    CP_NEED_GPU();
    run_matmul(CT_F32, true);
}

OP_TEST(cuda_parity, matmul_f64, CT_OP_MATMUL) {
    CP_NEED_GPU();
    run_matmul(CT_F64, false);
}

OP_TEST(cuda_parity, matmul_f16_bf16, CT_OP_MATMUL) {
    CP_NEED_GPU();
    run_matmul(CT_F16, false);
    run_matmul(CT_BF16, false);
}

/* ---- data movement ------------------------------------------------------ */

static cp_in any_dtype_input(ct_dtype dt, ct_shape s) { return dt == CT_I32 ? cp_i32(s, -9999, 9999) : cp_f(dt, s); }

static const ct_dtype move_dtypes[] = {CT_F32, CT_F64, CT_F16, CT_I32};

OP_TEST(cuda_parity, reshape, CT_OP_RESHAPE) {
    CP_NEED_GPU();
    for (int d = 0; d < 4; d++) {
        cp_case c = {.name = "reshape", .op = CT_OP_RESHAPE, .n_in = 1,
                     .in = {any_dtype_input(move_dtypes[d], (ct_shape){3, {3, 7, 11}})}, .out_dtype = move_dtypes[d],
                     .out_shape = {2, {21, 11}}, .exact = true};
        cp_run(&c);
    }
}

OP_TEST(cuda_parity, permute, CT_OP_PERMUTE) {
    CP_NEED_GPU();
    const struct {
        ct_shape in;
        int perm[4];
    } specs[] = {
        {{2, {33, 257}}, {1, 0}},
        {{3, {3, 5, 7}}, {2, 0, 1}},
        {{3, {3, 5, 7}}, {0, 2, 1}},
        {{4, {2, 3, 5, 7}}, {3, 1, 0, 2}},
        {{4, {2, 3, 5, 7}}, {0, 1, 2, 3}},
    };
    for (int s = 0; s < 5; s++)
        for (int d = 0; d < 4; d++) {
            ct_shape out = specs[s].in;
            ct_attrs a = {0};
            for (int i = 0; i < out.ndim; i++) {
                a.perm[i] = specs[s].perm[i];
                out.dim[i] = specs[s].in.dim[specs[s].perm[i]];
            }
            char name[64];
            snprintf(name, sizeof name, "permute#%d %s", s, ct_dtype_name(move_dtypes[d]));
            cp_case c = {.name = name, .op = CT_OP_PERMUTE, .attr = a, .n_in = 1,
                         .in = {any_dtype_input(move_dtypes[d], specs[s].in)}, .out_dtype = move_dtypes[d],
                         .out_shape = out, .exact = true};
            cp_run(&c);
        }
}

OP_TEST(cuda_parity, concat, CT_OP_CONCAT) {
    CP_NEED_GPU();
    for (int axis = 0; axis < 3; axis++)
        for (int d = 0; d < 4; d++) {
            ct_shape a = {3, {3, 5, 7}}, b = a, e = a, out = a;
            b.dim[axis] = 2;
            e.dim[axis] = 1;
            out.dim[axis] = a.dim[axis] + b.dim[axis] + e.dim[axis];
            char name[64];
            snprintf(name, sizeof name, "concat axis %d %s", axis, ct_dtype_name(move_dtypes[d]));
            cp_case c = {.name = name, .op = CT_OP_CONCAT, .attr = {.axis = axis}, .n_in = 3,
                         .in = {any_dtype_input(move_dtypes[d], a), any_dtype_input(move_dtypes[d], b),
                                any_dtype_input(move_dtypes[d], e)},
                         .out_dtype = move_dtypes[d], .out_shape = out, .exact = true};
            cp_run(&c);
        }
}

OP_TEST(cuda_parity, slice_and_slice_grad, CT_OP_SLICE, CT_OP_SLICE_GRAD) {
    CP_NEED_GPU();
    ct_shape big = {3, {4, 9, 13}};
    for (int axis = 0; axis < 3; axis++)
        for (int d = 0; d < 4; d++) {
            ct_shape small = big;
            int64_t start = 1, len = big.dim[axis] - 2;
            small.dim[axis] = len;
            char name[64];
            snprintf(name, sizeof name, "slice axis %d %s", axis, ct_dtype_name(move_dtypes[d]));
            cp_case c = {.name = name, .op = CT_OP_SLICE, .attr = {.axis = axis, .start = start, .end = start + len},
                         .n_in = 1, .in = {any_dtype_input(move_dtypes[d], big)}, .out_dtype = move_dtypes[d],
                         .out_shape = small, .exact = true};
            cp_run(&c);
            snprintf(name, sizeof name, "slice_grad axis %d %s", axis, ct_dtype_name(move_dtypes[d]));
            cp_case g = {.name = name, .op = CT_OP_SLICE_GRAD, .attr = {.axis = axis, .start = start}, .n_in = 1,
                         .in = {any_dtype_input(move_dtypes[d], small)}, .out_dtype = move_dtypes[d], .out_shape = big,
                         .exact = true};
            cp_run(&g);
        }
}
