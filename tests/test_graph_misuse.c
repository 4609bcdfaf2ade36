/* Misuse after the graph is built: backward on a loss that is not a
 * float scalar, on a bad node, or twice; requires_grad marks refused;
 * compile without backward or with bad outputs; a program's inputs set or
 * read wrongly. Each comes back as a status and a message, and the graph or
 * program stays usable. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "graph_fixture.h"

TestSuite(graph, .init = setup, .fini = teardown);

/* ---- backward and compile misuse ---------------------------------------- */

Test(graph, backward_non_scalar) {
    ct_node x = ct_param(g, "w", CT_F32, S2(2, 3), ct_init_ones());
    ct_node y = ct_tanh(g, x);
    expect_status(ct_graph_backward(g, y), CT_ERR_SHAPE, "[2, 3]", NULL);
    /* a refused backward leaves the graph usable */
    ct_node loss = ct_sum(g, y, CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    cr_assert_neq(ct_grad(g, x), CT_NO_NODE);
}

Test(graph, backward_keepdim_scalar_ok) {
    /* numel 1 with rank 2 is a scalar loss too */
    ct_node x = ct_param(g, "w", CT_F64, S2(2, 3), ct_init_ones());
    ct_node loss = ct_sum(g, x, CT_AXIS_ALL, true);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    expect_shape(ct_grad(g, x), S2(2, 3), CT_F64, "grad of w");
}

Test(graph, backward_integer_loss) {
    ct_node x = in("x", CT_F32, S1(3));
    ct_node loss = ct_cast(g, ct_sum(g, x, CT_AXIS_ALL, false), CT_I32);
    expect_status(ct_graph_backward(g, loss), CT_ERR_SHAPE, "i32", NULL);
}

Test(graph, backward_bad_node) {
    expect_status(ct_graph_backward(g, 42), CT_ERR_INVALID_ARG, NULL);
    expect_status(ct_graph_backward(g, CT_NO_NODE), CT_ERR_INVALID_ARG, NULL);
}

Test(graph, backward_twice) {
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    ct_node loss = ct_sum(g, ct_mul(g, w, w), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gw = ct_grad(g, w);
    int n = ct_graph_num_nodes(g);
    expect_status(ct_graph_backward(g, loss), CT_ERR_STATE, "already", NULL);
    cr_assert_eq(ct_graph_num_nodes(g), n, "the refused backward added nodes");
    cr_assert_eq(ct_grad(g, w), gw);
    /* Nor can the graph gain parameters or requires_grad marks afterwards. */
    cr_assert_eq(ct_param(g, "v", CT_F32, S1(3), ct_init_ones()), CT_NO_NODE);
    cr_assert_eq(ct_last_status(), CT_ERR_STATE);
}

Test(graph, set_requires_grad_errors) {
    ct_node xi = in("xi", CT_I32, S1(3));
    expect_status(ct_set_requires_grad(g, xi, true), CT_ERR_DTYPE, "xi", "i32", NULL);
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    expect_status(ct_set_requires_grad(g, w, true), CT_ERR_INVALID_ARG, "param", NULL);
    expect_status(ct_set_requires_grad(g, 77, true), CT_ERR_INVALID_ARG, "77", NULL);
    ct_node x = in("x", CT_F32, S1(3));
    cr_assert_eq(ct_graph_backward(g, ct_sum(g, ct_mul(g, w, x), CT_AXIS_ALL, false)), CT_OK);
    expect_status(ct_set_requires_grad(g, x, true), CT_ERR_STATE, NULL);
    cr_assert_eq(ct_grad(g, x), CT_NO_NODE, "an unmarked input has no gradient");
    cr_assert_eq(ct_grad(g, xi), CT_NO_NODE);
}

Test(graph, compile_grads_without_backward) {
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    ct_node loss = ct_sum(g, w, CT_AXIS_ALL, false);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_null(p);
    cr_assert_eq(ct_last_status(), CT_ERR_STATE);
    cr_assert(strstr(ct_last_error(), "ct_graph_backward") != NULL, "%s", ct_last_error());
}

Test(graph, compile_bad_outputs) {
    ct_node w = ct_param(g, "w", CT_F32, S1(3), ct_init_ones());
    ct_node bad[] = {w, 500};
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = bad, .n_outputs = 2}));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = NULL, .n_outputs = 2}));
    cr_assert_null(ct_compile(g, &(ct_compile_opts){.outputs = bad, .n_outputs = -1}));
}

/* ---- program input errors ------------------------------------------------ */

Test(graph, set_input_errors) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    ct_node y = ct_tanh(g, x);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    float data[6] = {0.5f, -1, 2, 3, -4, 0.25f};
    expect_status(ct_program_set_input(p, "nope", data, sizeof data), CT_ERR_NOT_FOUND, "nope", NULL);
    expect_status(ct_program_set_input(p, NULL, data, sizeof data), CT_ERR_NOT_FOUND, NULL);
    expect_status(ct_program_set_input(p, "x", data, 5 * sizeof(float)), CT_ERR_SHAPE, "'x'", "[2, 3]", "24",
                  "20", NULL);
    expect_status(ct_program_set_input(p, "x", NULL, sizeof data), CT_ERR_INVALID_ARG, "x", NULL);
    expect_status(ct_program_set_input_node(p, y, data, sizeof data), CT_ERR_INVALID_ARG, NULL);
    expect_status(ct_program_set_input_node(p, 1234, data, sizeof data), CT_ERR_INVALID_ARG, NULL);
    /* a named non-input is not an input either */
    cr_assert_eq(ct_set_name(g, y, "y"), CT_OK);
    expect_status(ct_program_set_input(p, "y", data, sizeof data), CT_ERR_NOT_FOUND, "y", NULL);
    /* and the right call still works */
    cr_assert_eq(ct_program_set_input(p, "x", data, sizeof data), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK);
    float out[6];
    cr_assert_eq(ct_program_read(p, y, out, sizeof out), CT_OK);
    for (int i = 0; i < 6; i++) cr_expect_float_eq(out[i], tanhf(data[i]), 1e-6f);
    expect_status(ct_program_read(p, y, out, 4), CT_ERR_SHAPE, "24", "4", NULL);
    ct_program_free(p);
}

Test(graph, read_unkept_node) {
    ct_node x = in("x", CT_F32, S2(2, 3));
    ct_node h = ct_tanh(g, x);
    ct_node y = ct_exp(g, h);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    float buf[6];
    expect_status(ct_program_read(p, h, buf, sizeof buf), CT_ERR_INVALID_ARG, "outputs", NULL);
    cr_assert_eq(ct_program_read(p, x, buf, sizeof buf), CT_OK, "inputs are readable");
    ct_program_free(p);
}
