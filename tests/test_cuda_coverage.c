/* The CUDA backend's behaviour without a GPU; these run on any machine.
 * Where no GPU can be used (no CUDA in the build, no driver, no device),
 * asking for one is a clear error, never a crash: ct_device_check and
 * ct_compile both say why. (That every op has a CUDA kernel and a parity
 * case is tests/test_op_coverage.c's to check.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

Test(cuda_coverage, no_gpu_is_a_clear_error) {
    char why[512];
    if (ct_cuda_device_count(why, sizeof why) > 0) cr_skip_test("this machine has a GPU; the no-GPU path is not taken");
    cr_assert(why[0], "no reason given for having no GPU");
    ct_device d;
    cr_assert_eq(ct_device_parse("cuda:0", &d), CT_OK);
    ct_status st = ct_device_check(d);
    cr_assert(st == CT_ERR_UNSUPPORTED || st == CT_ERR_DEVICE, "status %d", st);
    cr_assert(strstr(ct_last_error(), "CUDA") || strstr(ct_last_error(), "cuda"), "message: %s", ct_last_error());

    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){1, {4}});
    ct_node y = ct_relu(g, x);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = d, .outputs = &y, .n_outputs = 1});
    cr_assert_null(p);
    cr_assert(ct_last_status() == CT_ERR_UNSUPPORTED || ct_last_status() == CT_ERR_DEVICE);
    cr_assert(strlen(ct_last_error()) > 10, "message: %s", ct_last_error());
    ct_graph_free(g);
}

/* "auto" (the CLI's default device) is the first GPU exactly when one can be
 * used, and the CPU otherwise, without leaving an error behind. */
Test(cuda_coverage, auto_device_is_the_gpu_when_usable) {
    ct_device d, gpu = {CT_DEVICE_CUDA, 0};
    bool usable = ct_device_check(gpu) == CT_OK;
    cr_assert_eq(ct_device_parse("auto", &d), CT_OK, "%s", ct_last_error());
    cr_expect_eq(d.kind, usable ? CT_DEVICE_CUDA : CT_DEVICE_CPU);
    cr_expect_eq(d.index, 0);
    cr_expect_eq(ct_last_status(), CT_OK, "left an error: %s", ct_last_error());
    cr_expect_neq(ct_device_parse("automatic", &d), CT_OK);
    cr_expect(strstr(ct_last_error(), "auto") != NULL, "message: %s", ct_last_error());
}
