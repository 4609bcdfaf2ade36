/* GPU vs CPU: kl_div (distillation's loss term, docs/compression.md) on
 * random log-probability-like inputs and positive targets, every float
 * dtype, shapes from one element to a large batch. Both sides add in
 * double in different orders: F32 rtol 1e-5 atol 1e-5 (tests/cuda_parity.h
 * poisons the outputs first). */
#include "cuda_parity.h"

OP_TEST(cuda_parity, kl_div, CT_OP_KL_DIV) {
    CP_NEED_GPU();
    const ct_shape shapes[] = {{1, {1}}, {2, {7, 13}}, {2, {64, 10}}, {2, {513, 1025}}, {3, {3, 5, 7}}};
    for (int s = 0; s < 5; s++)
        for (int d = 0; d < CP_N_FLOAT_DTYPES; d++) {
            ct_dtype dt = cp_float_dtype(d);
            char name[96];
            snprintf(name, sizeof name, "kl_div shape#%d %s", s, ct_dtype_name(dt));
            cp_case c = {.name = name, .op = CT_OP_KL_DIV, .n_in = 2,
                         .in = {cp_range(dt, shapes[s], -8, 0), cp_range(dt, shapes[s], 0, 1)},
                         .out_dtype = dt, .out_shape = {0, {0}}};
            if (dt == CT_F32) c.rtol = 1e-5, c.atol = 1e-5;
            cp_run(&c);
        }
}
