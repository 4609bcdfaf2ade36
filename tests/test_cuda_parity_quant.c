/* GPU vs CPU for quantization:
 *   - the int8 product (cuBLASLt, int8 x int8 -> int32) against the CPU's on
 *     random operands: integer sums, so the results must match bit for bit
 *     (the CPU side, ct_int8_matmul_s8 on the CPU, is checked against a
 *     plain loop in tests/test_quant.c);
 *   - fake quantization and its straight-through backward, per tensor and
 *     per channel, in every float dtype: one formula (core/fakequant.h) in
 *     float or double on both sides, so also bit for bit.
 * Skipped without a GPU (CP_NEED_GPU); in the self-test mode of the parity
 * harness both sides are the CPU. */
#include "cuda_parity.h"

static uint32_t seed = 99;
static int8_t rnd8(void) {
    seed = seed * 1664525u + 1013904223u;
    return (int8_t)((int)((seed >> 8) % 255) - 127);
}

static void parity(int64_t m, int64_t n, int64_t k) {
    int8_t *a = malloc((size_t)(m * k)), *w = malloc((size_t)(n * k));
    int32_t *want = malloc((size_t)(m * n) * sizeof *want), *got = malloc((size_t)(m * n) * sizeof *got);
    for (int64_t i = 0; i < m * k; i++) a[i] = rnd8();
    for (int64_t i = 0; i < n * k; i++) w[i] = rnd8();
    memset(got, 0xff, (size_t)(m * n) * sizeof *got); /* poison: -1 everywhere */
    ct_device cpu = {CT_DEVICE_CPU, 0};
    cr_assert_eq(ct_int8_matmul_s8(cpu, a, w, m, n, k, want), CT_OK);
    cr_assert_eq(ct_int8_matmul_s8(cp_gpu_device(), a, w, m, n, k, got), CT_OK, "%s", ct_last_error());
    int64_t nonzero = 0;
    for (int64_t i = 0; i < m * n; i++) {
        cr_expect_eq(got[i], want[i], "[%lld x %lld x %lld] c[%lld]: gpu %d, cpu %d", (long long)m, (long long)n,
                     (long long)k, (long long)i, got[i], want[i]);
        if (got[i] != want[i]) break;
        nonzero += want[i] != 0;
    }
    cr_expect_gt(nonzero, m * n / 2);
    free(a);
    free(w);
    free(want);
    free(got);
}

Test(cuda_parity, int8_matmul_cublaslt) {
    CP_NEED_GPU();
    parity(1, 1, 1);
    parity(3, 5, 7);    /* k and n padded to multiples of 4 */
    parity(16, 64, 64);
    parity(33, 70, 785);
    parity(128, 512, 784); /* the MNIST MLP's first layer */
}

/* x in [-2, 2] against steps of 0.01 .. 0.05 and a range of +-40 steps
 * around a zero point in [0, 10]: about half the values clamp. */
static cp_case fq_case(ct_dtype dt, int axis, bool grad, char *name, size_t cap) {
    ct_shape xs = CP_SHAPE(6, 37);
    int64_t n = axis < 0 ? 1 : xs.dim[axis];
    snprintf(name, cap, "%s %s %s", grad ? "fake_quant_grad" : "fake_quant", axis < 0 ? "per tensor" : "per channel",
             ct_dtype_name(dt));
    cp_case c = {.name = name, .op = grad ? CT_OP_FAKE_QUANT_GRAD : CT_OP_FAKE_QUANT,
                 .attr = {.axis = axis, .quant_min = -40, .quant_max = 40},
                 .n_in = grad ? 4 : 3, .out_dtype = dt, .out_shape = xs, .exact = true};
    c.in[0] = cp_f(dt, xs);
    c.in[1] = (cp_in){.dtype = dt, .shape = CP_SHAPE(n), .lo = 0.01, .hi = 0.05};
    c.in[2] = (cp_in){.dtype = dt, .shape = CP_SHAPE(n), .lo = 0.0, .hi = 10.0};
    if (grad) c.in[3] = cp_f(dt, xs);
    return c;
}

static void fq_run_all(bool grad) {
    for (int di = 0; di < CP_N_FLOAT_DTYPES; di++)
        for (int axis = -1; axis <= 1; axis++) {
            char name[96];
            cp_case c = fq_case(cp_float_dtype(di), axis, grad, name, sizeof name);
            cp_run(&c);
        }
}

OP_TEST(cuda_parity, fake_quant, CT_OP_FAKE_QUANT) {
    CP_NEED_GPU();
    fq_run_all(false);
}

OP_TEST(cuda_parity, fake_quant_grad, CT_OP_FAKE_QUANT_GRAD) {
    CP_NEED_GPU();
    fq_run_all(true);
}
