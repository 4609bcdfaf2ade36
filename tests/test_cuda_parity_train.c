/* GPU vs CPU: the flat-buffer hooks (every optimizer's fused update,
 * sumsq, scale_clamp, axpby), errors found in the data on the GPU, and end
 * to end: 100 training steps of an MLP with dropout on MNIST, with the
 * separate calls and as a step graph with and without CUDA Graph capture.
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
            /* Exact: the kernel rounds each product as the CPU does (no
             * fused multiply-add, which nvcc would otherwise make of
             * a*x + b*y and which changes ~14 % of F64 results by one
             * rounding). */
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

/* How the GPU side runs its steps: the separate calls, or one step graph
 * (ctrain/step_graph.h) replayed from a CUDA Graph or issued kernel by
 * kernel. */
typedef enum e2e_mode { E2E_CALLS, E2E_GRAPH, E2E_NO_GRAPH } e2e_mode;

typedef struct e2e_out {
    float loss[E2E_STEPS];
    float *w;      /* final weights */
    size_t bytes;
    int captures;  /* step graphs: how often the step was captured */
} e2e_out;

static void e2e_run(const ct_dataset *ds, ct_device dev, e2e_mode mode, e2e_out *out) {
    const float *feat = ct_dataset_features(ds);
    const int32_t *lab = ct_dataset_labels(ds);
    ct_node l;
    ct_graph *g = mlp(&l);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.device = dev, .outputs = &l, .n_outputs = 1, .grads = true});
    cr_assert(p, "%s", ct_last_error());
    ct_optimizer *o = ct_optimizer_new(g, p, &(ct_optim_opts){.kind = CT_OPTIM_SGD, .lr = 0.05, .momentum = 0.9});
    cr_assert(o, "%s", ct_last_error());
    ct_step_graph *sg = NULL;
    if (mode != E2E_CALLS) {
        sg = ct_step_graph_new(p, o, &(ct_step_graph_opts){.loss = &l, .no_capture = mode == E2E_NO_GRAPH});
        cr_assert(sg, "%s", ct_last_error());
    }
    size_t xb = E2E_BATCH * 784 * sizeof(float), yb = E2E_BATCH * sizeof(int32_t);
    for (int step = 0; step < E2E_STEPS; step++) {
        cr_assert(ct_program_set_input(p, "x", feat + (size_t)step * E2E_BATCH * 784, xb) == CT_OK &&
                  ct_program_set_input(p, "y", lab + (size_t)step * E2E_BATCH, yb) == CT_OK, "%s", ct_last_error());
        if (sg) {
            cr_assert_eq(ct_step_graph_run(sg, 0.05), CT_OK, "step %d: %s", step, ct_last_error());
        } else {
            cr_assert(ct_program_run(p) == CT_OK && ct_optimizer_step(o, 0.05) == CT_OK, "%s", ct_last_error());
        }
        /* The loss node is not written by the update, so it still holds this step's loss. */
        cr_assert_eq(ct_program_read(p, l, &out->loss[step], sizeof(float)), CT_OK, "%s", ct_last_error());
    }
    out->bytes = ct_program_param_numel(p) * sizeof(float);
    out->w = malloc(out->bytes);
    cr_assert_eq(ct_program_read_params(p, out->w, out->bytes), CT_OK, "%s", ct_last_error());
    out->captures = ct_step_graph_capture_count(sg);
    ct_step_graph_free(sg);
    ct_optimizer_free(o);
    ct_program_free(p);
    ct_graph_free(g);
}

/* CPU (separate calls) against the GPU run in `mode`. */
static void e2e_compare(const e2e_out *c, const e2e_out *g, const char *what) {
    for (int step = 0; step < E2E_STEPS; step++)
        cr_assert(fabsf(g->loss[step] - c->loss[step]) <= 1e-3f * fabsf(c->loss[step]),
                  "%s, step %d: loss gpu %.7g cpu %.7g", what, step, g->loss[step], c->loss[step]);
    cr_assert(c->loss[E2E_STEPS - 1] < 0.6f * c->loss[0], "the MLP did not learn: loss %g -> %g", c->loss[0],
              c->loss[E2E_STEPS - 1]);
    cr_assert(cp_compare(what, "final weights", CT_F32, c->w, g->w, (int64_t)(c->bytes / sizeof(float)), 0, 1e-3));
}

Test(cuda_parity, mnist_mlp_100_steps) {
    CP_NEED_GPU();
    ct_dataset *ds = cp_mnist_train();
    e2e_out c, g;
    e2e_run(ds, (ct_device){CT_DEVICE_CPU, 0}, E2E_CALLS, &c);
    e2e_run(ds, cp_gpu_device(), E2E_CALLS, &g);
    e2e_compare(&c, &g, "mnist mlp");
    free(c.w), free(g.w);
    ct_dataset_free(ds);
}

/* The same 100 steps as one step graph, captured as a CUDA Graph and
 * replayed, and issued kernel by kernel (no_capture): the two GPU runs must
 * agree bit for bit (same kernels, same per-step values from device
 * memory), and each with the CPU within the tolerances above. */
Test(cuda_parity, mnist_mlp_100_steps_with_and_without_cuda_graph) {
    CP_NEED_GPU();
    ct_dataset *ds = cp_mnist_train();
    e2e_out c, on, off;
    e2e_run(ds, (ct_device){CT_DEVICE_CPU, 0}, E2E_CALLS, &c);
    e2e_run(ds, cp_gpu_device(), E2E_GRAPH, &on);
    e2e_run(ds, cp_gpu_device(), E2E_NO_GRAPH, &off);
    e2e_compare(&c, &on, "mnist mlp, captured");
    e2e_compare(&c, &off, "mnist mlp, not captured");
    cr_assert_eq(memcmp(on.loss, off.loss, sizeof on.loss), 0, "captured and uncaptured losses differ");
    cr_assert_eq(memcmp(on.w, off.w, on.bytes), 0, "captured and uncaptured weights differ");
    cr_assert_eq(off.captures, 0);
    cr_assert_eq(on.captures, cp_selftest() ? 0 : 1, "the step was captured %d times", on.captures);
    free(c.w), free(on.w), free(off.w);
    ct_dataset_free(ds);
}
