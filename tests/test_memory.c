/* Memory accounting and raw device memory: what a program reports holding
 * (ct_program_memory), buffers and copies on a device (ct_device_alloc,
 * ct_device_copy, ct_device_sync), and the build facts a benchmark record
 * carries (ct_build_commit, ct_blas_info). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

TestSuite(memory, .timeout = 60);

static const ct_device cpu = {CT_DEVICE_CPU, 0};

/* x [batch, 7] -> linear 7->5 -> relu -> linear 5->3 -> cross-entropy. */
static ct_graph *small_mlp(long batch, ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 11);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {batch, 7}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {batch}});
    ct_node h = ct_relu(g, ct_linear(g, "fc1", x, 5, true, NULL));
    *loss = ct_cross_entropy(g, ct_linear(g, "fc2", h, 3, true, NULL), y, 0.0);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    return g;
}

Test(memory, program_reports_what_it_holds) {
    ct_node loss;
    ct_graph *g = small_mlp(6, &loss);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    ct_program_mem m;
    cr_assert_eq(ct_program_memory(p, &m), CT_OK, "%s", ct_last_error());
    /* fc1.weight 35 -> 48, fc1.bias 5 -> 16, fc2.weight 15 -> 16, fc2.bias 3 -> 16 elements */
    cr_assert_eq(ct_program_param_numel(p), 96);
    cr_assert_eq(m.params, 96 * sizeof(float), "params %zu", m.params);
    cr_assert_eq(m.grads, m.params);
    cr_assert_eq(m.buffers, 0);
    cr_assert_eq(m.arena, ct_program_arena_bytes(p));
    cr_assert_gt(m.arena, 0);
    /* x (6 x 7 floats) and y (6 ints), each rounded up to the arena's alignment */
    cr_assert_geq(m.inputs, 6 * 7 * sizeof(float) + 6 * sizeof(int32_t));
    cr_assert_eq(m.total, m.arena + m.scratch + m.inputs + m.params + m.grads + m.buffers);

    /* A program sharing those parameters counts none of them. */
    ct_node loss2;
    ct_graph *g2 = small_mlp(2, &loss2);
    ct_program *q = ct_compile(g2, &(ct_compile_opts){.outputs = &loss2, .n_outputs = 1, .share_params = p});
    cr_assert_not_null(q, "%s", ct_last_error());
    ct_program_mem mq;
    cr_assert_eq(ct_program_memory(q, &mq), CT_OK);
    cr_assert_eq(mq.params, 0);
    cr_assert_eq(mq.grads, 0);
    cr_assert_gt(mq.inputs, 0);
    cr_assert_eq(mq.total, mq.arena + mq.scratch + mq.inputs);

    cr_assert_eq(ct_program_memory(NULL, &m), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "ct_program_memory"));
    cr_assert_eq(ct_program_memory(p, NULL), CT_ERR_INVALID_ARG);
    ct_program_free(q);
    ct_graph_free(g2);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(memory, half_precision_matmul_reports_its_scratch) {
    /* The CPU widens F16 operands into scratch; the report must show it. */
    ct_graph *g = ct_graph_new();
    ct_node a = ct_input(g, "a", CT_F16, (ct_shape){2, {8, 16}});
    ct_node b = ct_input(g, "b", CT_F16, (ct_shape){2, {16, 4}});
    ct_node c = ct_matmul(g, a, b, false, false);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &c, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    ct_program_mem m;
    cr_assert_eq(ct_program_memory(p, &m), CT_OK);
    cr_assert_geq(m.scratch, (8 * 16 + 16 * 4) * sizeof(float), "scratch %zu", m.scratch);
    ct_program_free(p);
    ct_graph_free(g);
}

/* The test below asks for more memory than a process can map. Under
 * AddressSanitizer the allocator would abort on such a request; it must
 * return NULL, as malloc does, for the engine's own report to be tested.
 * (Read by ASan at start-up; an ordinary build never calls it.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

Test(memory, an_arena_that_cannot_be_had_keeps_the_backends_reason) {
    /* Two 32 MiB inputs whose sum broadcasts to 2^46 floats (256 TiB, more
     * than a process can map): the arena's allocation fails, and the message
     * carries the backend's own words (on a GPU: cudaMalloc's error, the
     * bytes asked and the device's free memory), not only the planner's. */
    ct_graph *g = ct_graph_new();
    ct_node a = ct_input(g, "a", CT_F32, (ct_shape){8, {64, 1, 64, 1, 64, 1, 32, 1}});
    ct_node b = ct_input(g, "b", CT_F32, (ct_shape){8, {1, 64, 1, 64, 1, 64, 1, 32}});
    ct_node c = ct_add(g, a, b);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &c, .n_outputs = 1});
    cr_assert_null(p);
    cr_assert_eq(ct_last_status(), CT_ERR_OOM, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "281474976710656-byte activation arena on cpu"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "cpu: out of memory allocating 281474976710656 bytes"), "%s", ct_last_error());
    ct_graph_free(g);
}

Test(memory, device_copy_moves_every_byte) {
    const size_t n = 100003; /* not a multiple of any vector width */
    float *src = ct_device_alloc(cpu, n * sizeof(float));
    float *dst = ct_device_alloc(cpu, n * sizeof(float));
    cr_assert_not_null(src, "%s", ct_last_error());
    cr_assert_not_null(dst, "%s", ct_last_error());
    for (size_t i = 0; i < n; i++) {
        src[i] = ct_philox_uniform(5, 1, 0, i) * 2.0f - 1.0f;
        dst[i] = -7.0f;
    }
    cr_assert_eq(ct_device_copy(cpu, dst, src, n * sizeof(float)), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_device_sync(cpu), CT_OK);
    cr_assert(memcmp(dst, src, n * sizeof(float)) == 0);
    /* Overlapping regions copy as memmove does. */
    float want = src[0];
    cr_assert_eq(ct_device_copy(cpu, src + 1, src, (n - 1) * sizeof(float)), CT_OK);
    cr_assert_eq(src[1], want);
    cr_assert_eq(src[n - 1], dst[n - 2]);
    cr_assert_eq(ct_device_copy(cpu, dst, src, 0), CT_OK, "nothing to copy is fine");
    ct_device_free(cpu, src);
    ct_device_free(cpu, dst);
    ct_device_free(cpu, NULL);
}

Test(memory, device_errors_are_reported) {
    cr_assert_null(ct_device_alloc(cpu, 0));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "0 bytes"), "%s", ct_last_error());
    float x = 1.0f;
    cr_assert_eq(ct_device_copy(cpu, NULL, &x, sizeof x), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "dst is NULL"), "%s", ct_last_error());
    cr_assert_eq(ct_device_copy(cpu, &x, NULL, sizeof x), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_device_alloc((ct_device){CT_DEVICE_CPU, 3}, 16));
    cr_assert_eq(ct_device_sync((ct_device){CT_DEVICE_CPU, 3}), CT_ERR_INVALID_ARG);
    ct_device gpu = {CT_DEVICE_CUDA, 0};
    if (ct_device_check(gpu) != CT_OK) {
        /* No usable GPU here: every call says why rather than crashing. */
        cr_assert_null(ct_device_alloc(gpu, 16));
        cr_assert_neq(ct_device_sync(gpu), CT_OK);
        cr_assert_neq(ct_device_copy(gpu, &x, &x, sizeof x), CT_OK);
        cr_assert(ct_last_error()[0] != '\0');
    } else {
        /* cudaMemcpyAsync's regions may not overlap: refused, rather than
         * undefined bytes; disjoint halves of one buffer copy. */
        char *buf = ct_device_alloc(gpu, 64);
        cr_assert_not_null(buf, "%s", ct_last_error());
        cr_assert_eq(ct_device_copy(gpu, buf + 8, buf, 32), CT_ERR_INVALID_ARG);
        cr_assert(strstr(ct_last_error(), "overlap"), "%s", ct_last_error());
        cr_assert_eq(ct_device_copy(gpu, buf + 32, buf, 32), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_device_copy(gpu, buf, buf, 64), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_device_sync(gpu), CT_OK, "%s", ct_last_error());
        ct_device_free(gpu, buf);
    }
}

Test(memory, build_facts) {
    const char *commit = ct_build_commit();
    cr_assert_not_null(commit);
    if (strcmp(commit, "unknown") != 0) {
        cr_assert_eq(strlen(commit), 40, "commit '%s'", commit);
        for (const char *c = commit; *c; c++) cr_assert(isxdigit((unsigned char)*c), "commit '%s'", commit);
    }
    const char *blas = ct_blas_info();
    cr_assert_not_null(blas);
    cr_assert(strstr(blas, "OpenBLAS") == blas, "'%s'", blas);
    cr_assert(strstr(blas, "thread"), "'%s'", blas);
}
