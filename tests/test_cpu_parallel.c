/* The CPU backend's results do not depend on the number of OpenMP threads.
 *
 * The backend is the reference other backends are checked against, and its
 * hot kernels split their work across threads (elements, rows, planes,
 * channels; never one sum). Every case of cpu_par_cases.h runs on 1 thread
 * (2 for BLAS products, see base_threads) and on 3 and 4 (odd splits), with its output poisoned differently each
 * time, and the output bytes must be identical: an element computed
 * differently, summed in another order, or never written fails.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "cpu_par_cases.h"

/* The thread count the others are compared with: 1, except for the
 * kernels whose work is a BLAS product. OpenBLAS's OpenMP build (the one
 * the library links when installed) runs on as many threads as OpenMP
 * offers, and its single-threaded path blocks the inner dimension
 * differently from its threaded one, so a product can differ in the last
 * bits between 1 thread and several (as it did before, with the pthread
 * build, between a 1-core and a multi-core machine); from 2 threads up it
 * does not (docs/cpu_backend.md). */
static int base_threads(int i) {
    if (i >= CPC_N_KERNELS) return 1;
    ct_op op = cpc_cases[i].op;
    /* The recurrent op's steps are BLAS products too (k_rnn.c). */
    return op == CT_OP_CONV2D || op == CT_OP_CONV2D_GRAD_INPUT || op == CT_OP_CONV2D_GRAD_WEIGHT ||
                   op == CT_OP_RNN || op == CT_OP_RNN_GRAD
               ? 2
               : 1;
}

static void check_case(int i) {
    size_t n1, nt;
    ct_status s1, st;
    unsigned char *one = cpc_run(i, base_threads(i), 0xa5, &n1, &s1);
    cr_assert_eq(s1, CT_OK, "%s: %s", cpc_name(i), ct_last_error());
    /* The output holds real values: not left poisoned, not all zero. */
    size_t poisoned = 0, zero = 0;
    for (size_t b = 0; b < n1; b++) {
        poisoned += one[b] == 0xa5;
        zero += one[b] == 0;
    }
    cr_assert(n1 == 0 || (poisoned < n1 / 2 && zero < n1), "%s: output looks unwritten", cpc_name(i));
    for (int threads = 3; threads <= 4; threads++) {
        unsigned char *many = cpc_run(i, threads, (unsigned char)(0x5a + threads), &nt, &st);
        cr_assert_eq(st, CT_OK, "%s on %d threads: %s", cpc_name(i), threads, ct_last_error());
        cr_assert_eq(nt, n1);
        size_t first = n1;
        for (size_t b = 0; b < n1 && first == n1; b++)
            if (one[b] != many[b]) first = b;
        cr_assert_eq(first, n1, "%s: %d and %d threads differ from byte %zu of %zu", cpc_name(i),
                     base_threads(i), threads, first, n1);
        free(many);
    }
    free(one);
}

Test(cpu_parallel, every_kernel_case) {
    for (int i = 0; i < CPC_N_KERNELS; i++) check_case(i);
}

Test(cpu_parallel, optimizer_updates) {
    for (int i = CPC_N_KERNELS; i < CPC_COUNT; i++) check_case(i);
}

/* The F32 fast paths compute exactly what the generic double loops do:
 * relu and its gradient against the formulas, with NaN, infinities and
 * signed zeros in both operands. */
Test(cpu_parallel, relu_fast_path_matches_reference) {
    for (int i = 0; i < CPC_N_KERNELS; i++) {
        const cpc_case *c = &cpc_cases[i];
        bool grad = c->op == CT_OP_UNARY_GRAD && c->attr.fwd_op == CT_OP_RELU;
        if (!(c->op == CT_OP_RELU || grad) || c->in[0].dt != CT_F32) continue;
        size_t n;
        ct_status st;
        unsigned char *out = cpc_run(i, 2, 0xa5, &n, &st);
        cr_assert_eq(st, CT_OK);
        int64_t len = cpc_numel(c->out);
        float *x = cpc_fill(CT_F32, len, c->in[0].kind, 100 * (uint64_t)i, 0);
        float *dy = grad ? cpc_fill(CT_F32, len, c->in[1].kind, 100 * (uint64_t)i + 1, 0) : NULL;
        for (int64_t j = 0; j < len; j++) {
            double v = x[j];
            float want = grad ? (float)((double)dy[j] * (v > 0 ? 1.0 : 0.0)) : (float)(isnan(v) ? v : v > 0 ? v : 0.0);
            cr_assert(memcmp(&want, out + 4 * j, 4) == 0, "%s[%lld]: x %g", c->name, (long long)j, v);
        }
        free(x);
        free(dy);
        free(out);
    }
}
