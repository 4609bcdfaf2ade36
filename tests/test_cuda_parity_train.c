/* GPU vs CPU: the flat-buffer hooks (every optimizer's fused update,
 * sumsq, scale_clamp, axpby), errors found in the data on the GPU, and end
 * to end: 100 training steps of an MLP with dropout on MNIST.
 *
 * Tolerances: optimizer updates as tests/cuda_parity_optim.h states.
 * End to end (F32, SGD with momentum): the loss of every step within
 * 1e-3 relative, final weights within 1e-3 absolute (the GPU's float
 * reductions and cuBLAS's summation order differ from the CPU's in the last
 * bits, and 100 steps carry that forward; dropout masks are identical). */
#include "cuda_parity_optim.h"

/* ---- optimizer updates (tests/cuda_parity_optim.h) ---------------------- */

Test(cuda_parity, optimizers) {
    CP_NEED_GPU();
    for (int s = 0; s < CPO_N_SPECS; s++) {
        cpo_run(cpo_specs[s].name, cpo_specs[s].a, CT_F32, NULL);
        cpo_run(cpo_specs[s].name, cpo_specs[s].a, CT_F64, NULL);
    }
}

Test(cuda_parity, sumsq_scale_clamp_axpby) {
    CP_NEED_GPU();
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    cr_assert(gpu, "%s", ct_last_error());
    const size_t sizes[] = {1, 255, 257, 1000003};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 4; s++) {
            ct_dtype dt = d ? CT_F64 : CT_F32;
            size_t n = sizes[s], b = n * ct_dtype_size(dt);
            cp_in in = cp_f(dt, (ct_shape){1, {(int64_t)n}});
            void *x = malloc(b), *y = malloc(b), *back = malloc(b), *dx = gpu->alloc(b), *dy = gpu->alloc(b);
            cp_fill(&in, x, cp_stream_counter++);
            cp_fill(&in, y, cp_stream_counter++);
            cr_assert(gpu->upload(dx, x, b) == CT_OK && gpu->upload(dy, y, b) == CT_OK, "%s", ct_last_error());
            double hs, ds;
            bool hf, df;
            cr_assert_eq(cpu->sumsq(x, dt, n, &hs, &hf), CT_OK);
            cr_assert_eq(gpu->sumsq(dx, dt, n, &ds, &df), CT_OK, "%s", ct_last_error());
            cr_assert(hf && df && fabs(hs - ds) <= 1e-12 * hs, "sumsq n %zu: gpu %.17g cpu %.17g", n, ds, hs);
            cr_assert_eq(cpu->scale_clamp(x, dt, n, 0.7, 0.9), CT_OK);
            cr_assert_eq(gpu->scale_clamp(dx, dt, n, 0.7, 0.9), CT_OK, "%s", ct_last_error());
            cr_assert_eq(gpu->download(back, dx, b), CT_OK, "%s", ct_last_error());
            cr_assert(cp_compare("scale_clamp", "x", dt, x, back, (int64_t)n, 0, 0));
            cr_assert_eq(cpu->axpby(0.5, x, -1.5, y, dt, n), CT_OK);
            cr_assert_eq(gpu->axpby(0.5, dx, -1.5, dy, dt, n), CT_OK, "%s", ct_last_error());
            cr_assert_eq(gpu->download(back, dy, b), CT_OK, "%s", ct_last_error());
            cr_assert(cp_compare("axpby", "y", dt, y, back, (int64_t)n, 0, 0));
            /* b = 0 must not read y: NaN there stays out of the result */
            memset(back, 0xFF, b);
            cr_assert_eq(gpu->upload(dy, back, b), CT_OK);
            cr_assert_eq(cpu->axpby(2.0, x, 0.0, y, dt, n), CT_OK);
            cr_assert_eq(gpu->axpby(2.0, dx, 0.0, dy, dt, n), CT_OK, "%s", ct_last_error());
            cr_assert_eq(gpu->download(back, dy, b), CT_OK, "%s", ct_last_error());
            cr_assert(cp_compare("axpby b=0", "y", dt, y, back, (int64_t)n, 0, 0));
            /* a non-finite element is reported */
            ct_st(x, dt, (int64_t)(n / 2), INFINITY);
            cr_assert_eq(gpu->upload(dx, x, b), CT_OK);
            cr_assert_eq(gpu->sumsq(dx, dt, n, &ds, &df), CT_OK, "%s", ct_last_error());
            cr_assert(!df, "sumsq n %zu: an inf was not noticed", n);
            free(x), free(y), free(back);
            gpu->free(dx), gpu->free(dy);
        }
}

/* ---- errors in the data ------------------------------------------------- */

Test(cuda_parity, bad_index_is_reported_at_the_next_read) {
    CP_NEED_GPU();
    ct_graph *g = ct_graph_new();
    ct_node w = ct_param(g, "emb", CT_F32, (ct_shape){2, {10, 4}}, ct_init_normal(0, 1));
    ct_node ix = ct_input(g, "ix", CT_I32, (ct_shape){1, {3}});
    ct_node out = ct_embedding(g, w, ix);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = cp_gpu_device(), .outputs = &out, .n_outputs = 1});
    cr_assert(p, "%s", ct_last_error());
    int32_t idx[3] = {1, 12, 3};
    cr_assert_eq(ct_program_set_input(p, "ix", idx, sizeof idx), CT_OK, "%s", ct_last_error());
    ct_status st = ct_program_run(p); /* asynchronous: may not know yet */
    float o[12];
    if (st == CT_OK) st = ct_program_read(p, out, o, sizeof o);
    cr_assert_neq(st, CT_OK);
    cr_assert(strstr(ct_last_error(), "index 12 at position 1"), "message: %s", ct_last_error());
    /* the next, valid run is clean */
    idx[1] = 9;
    cr_assert_eq(ct_program_set_input(p, "ix", idx, sizeof idx), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, out, o, sizeof o), CT_OK, "%s", ct_last_error());
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- end to end --------------------------------------------------------- */

#define E2E_BATCH 64
#define E2E_STEPS 100

static ct_graph *mlp(ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 1234);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {E2E_BATCH, 784}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {E2E_BATCH}});
    ct_node h = ct_dropout(g, ct_relu(g, ct_linear(g, "fc1", x, 256, true, NULL)), 0.2);
    h = ct_dropout(g, ct_relu(g, ct_linear(g, "fc2", h, 128, true, NULL)), 0.2);
    *loss = ct_cross_entropy(g, ct_linear(g, "fc3", h, 10, true, NULL), y, 0.0);
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

Test(cuda_parity, mnist_mlp_100_steps) {
    CP_NEED_GPU();
    ct_dataset *ds = cp_mnist_train();
    const float *feat = ct_dataset_features(ds);
    const int32_t *lab = ct_dataset_labels(ds);

    ct_node lc, lg;
    ct_graph *gc = mlp(&lc), *gg = mlp(&lg);
    ct_program *pc = ct_compile(gc, &(ct_compile_opts){.outputs = &lc, .n_outputs = 1, .grads = true});
    ct_program *pg = ct_compile(gg, &(ct_compile_opts){.device = cp_gpu_device(), .outputs = &lg,
                                                        .n_outputs = 1, .grads = true});
    cr_assert(pc && pg, "%s", ct_last_error());
    ct_optim_opts oo = {.kind = CT_OPTIM_SGD, .lr = 0.05, .momentum = 0.9};
    ct_optimizer *oc = ct_optimizer_new(gc, pc, &oo), *og = ct_optimizer_new(gg, pg, &oo);
    cr_assert(oc && og, "%s", ct_last_error());
    float first = 0, last = 0;
    for (int step = 0; step < E2E_STEPS; step++) {
        const float *x = feat + (size_t)step * E2E_BATCH * 784;
        const int32_t *y = lab + (size_t)step * E2E_BATCH;
        size_t xb = E2E_BATCH * 784 * sizeof(float), yb = E2E_BATCH * sizeof(int32_t);
        float loss_c, loss_g;
        cr_assert(ct_program_set_input(pc, "x", x, xb) == CT_OK && ct_program_set_input(pc, "y", y, yb) == CT_OK &&
                  ct_program_run(pc) == CT_OK && ct_program_read(pc, lc, &loss_c, sizeof loss_c) == CT_OK,
                  "%s", ct_last_error());
        cr_assert(ct_program_set_input(pg, "x", x, xb) == CT_OK && ct_program_set_input(pg, "y", y, yb) == CT_OK &&
                  ct_program_run(pg) == CT_OK && ct_program_read(pg, lg, &loss_g, sizeof loss_g) == CT_OK,
                  "%s", ct_last_error());
        cr_assert(fabsf(loss_g - loss_c) <= 1e-3f * fabsf(loss_c), "step %d: loss gpu %.7g cpu %.7g", step, loss_g,
                  loss_c);
        cr_assert(ct_optimizer_step(oc, 0.05) == CT_OK && ct_optimizer_step(og, 0.05) == CT_OK, "%s", ct_last_error());
        if (step == 0) first = loss_c;
        last = loss_c;
    }
    cr_assert(last < 0.6f * first, "the MLP did not learn: loss %g -> %g", first, last);
    size_t n = ct_program_param_numel(pc), b = n * sizeof(float);
    float *wc = malloc(b), *wg = malloc(b);
    cr_assert_eq(ct_program_read_params(pc, wc, b), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read_params(pg, wg, b), CT_OK, "%s", ct_last_error());
    cr_assert(cp_compare("mnist mlp", "final weights", CT_F32, wc, wg, (int64_t)n, 0, 1e-3));
    free(wc), free(wg);
    ct_optimizer_free(oc), ct_optimizer_free(og);
    ct_program_free(pc), ct_program_free(pg);
    ct_graph_free(gc), ct_graph_free(gg);
    ct_dataset_free(ds);
}
