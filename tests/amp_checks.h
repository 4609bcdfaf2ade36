/* Checks shared by the mixed-precision tests (test_amp.c, test_amp_conv.c).
 * Static functions: each test executable that includes this gets its own
 * copy. */
#ifndef CTRAIN_TESTS_AMP_CHECKS_H
#define CTRAIN_TESTS_AMP_CHECKS_H

#include <criterion/criterion.h>

#include <ctrain/ctrain.h>

/* Under any policy the master weights and the gradients reaching the
 * optimizer are F32 (call after ct_graph_backward). */
static inline void amp_expect_f32_master(const ct_graph *g) {
    for (int i = 0; i < ct_graph_num_params(g); i++) {
        ct_node p = ct_graph_param(g, i);
        cr_assert_eq(ct_node_dtype(g, p), CT_F32, "parameter %s is %s", ct_node_name(g, p),
                     ct_dtype_name(ct_node_dtype(g, p)));
        cr_assert_eq(ct_node_dtype(g, ct_grad(g, p)), CT_F32, "the gradient of %s reaching the optimizer is %s",
                     ct_node_name(g, p), ct_dtype_name(ct_node_dtype(g, ct_grad(g, p))));
    }
}

#endif
