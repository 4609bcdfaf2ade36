/* The GPU int8 product (cuBLASLt, int8 x int8 -> int32) against the CPU's
 * on random operands: integer sums, so the results must match bit for bit.
 * The CPU side is ct_int8_matmul_s8 on the CPU, itself checked against a
 * plain loop in tests/test_quant.c. Skipped without a GPU (CP_NEED_GPU);
 * in the self-test mode of the parity harness both sides are the CPU. */
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
