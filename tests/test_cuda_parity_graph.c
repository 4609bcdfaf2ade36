/* GPU: the fused step's device-side pieces and CUDA Graph capture.
 *
 * - clip_norm (the norm, its factor and the scaling all on the device)
 *   against the CPU's ct_clip_grad_norm rule: norm and factor within 1e-12
 *   relative (the GPU adds per-block partial sums, the CPU one running sum,
 *   both in double); scaled gradients within 1e-6 relative for F32 (the
 *   factor may differ in its last bits before the F32 rounding), 1e-12 for
 *   F64; a non-finite element leaves the gradients exactly as they were.
 * - a replayed step allocates no device memory (cudaMemGetInfo before and
 *   after 20 replays), and rebinding an input captures the step again, with
 *   the results of an uncaptured run bit for bit.
 * - a GPT training step, whose q, k and v are views (core/program.c):
 *   loss within 1e-5, gradients within 1e-3 relative + 1e-5.
 * The end-to-end runs with and without capture are in
 * test_cuda_parity_train.c. */
#include "core/program_internal.h"
#include "cuda_parity.h"
#include "gpt_step.h"

/* ---- clip_norm ----------------------------------------------------------- */

/* The CPU reference: ct_clip_grad_norm's arithmetic on the backend's sumsq
 * and scale_clamp, without its error on a non-finite norm. */
static void ref_clip(const ct_backend *be, void *x, ct_dtype dt, size_t n, double max_norm, double *norm,
                     double *coef) {
    double ss = 0;
    bool finite = true;
    cr_assert_eq(be->sumsq(x, dt, n, &ss, &finite), CT_OK, "%s", ct_last_error());
    double total = sqrt(ss), c = finite && isfinite(total) ? max_norm / (total + 1e-6) : 1.0;
    *norm = finite ? total : NAN;
    *coef = c < 1 ? c : 1.0;
    if (*coef < 1) cr_assert_eq(be->scale_clamp(x, dt, n, *coef, 0), CT_OK);
}

static void clip_case(size_t n, ct_dtype dt, double max_norm, bool with_inf) {
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    cr_assert(gpu, "%s", ct_last_error());
    size_t b = n * ct_dtype_size(dt);
    cp_in in = cp_f(dt, (ct_shape){1, {(int64_t)n}});
    void *x = malloc(b), *orig = malloc(b), *back = malloc(b), *dx = gpu->alloc(b);
    ct_step_dev *sd = gpu->alloc(sizeof *sd);
    cr_assert(x && orig && back && dx && sd, "%s", ct_last_error());
    cp_fill(&in, x, cp_stream_counter++);
    if (with_inf) ct_st(x, dt, (int64_t)(n / 3), INFINITY);
    memcpy(orig, x, b);
    cr_assert_eq(gpu->upload(dx, x, b), CT_OK, "%s", ct_last_error());
    double hn, hc, v[2];
    ref_clip(cpu, x, dt, n, max_norm, &hn, &hc);
    if (gpu->clip_norm) {
        cr_assert_eq(gpu->clip_norm(dx, dt, n, max_norm, sd), CT_OK, "%s", ct_last_error());
        cr_assert_eq(gpu->download(v, &sd->norm, sizeof v), CT_OK, "%s", ct_last_error());
    } else { /* the CPU self-test: the reference on both sides */
        ref_clip(gpu, dx, dt, n, max_norm, &v[0], &v[1]);
    }
    cr_assert_eq(gpu->download(back, dx, b), CT_OK, "%s", ct_last_error());
    char name[96];
    snprintf(name, sizeof name, "clip_norm n %zu %s max %g%s", n, ct_dtype_name(dt), max_norm, with_inf ? " inf" : "");
    if (with_inf) {
        cr_assert(isnan(v[0]) && isnan(hn), "%s: norm gpu %g cpu %g", name, v[0], hn);
        cr_assert_eq(v[1], 1.0, "%s: factor %g", name, v[1]);
        cr_assert_eq(memcmp(back, orig, b), 0, "%s: the gradients changed", name);
    } else {
        cr_assert(fabs(v[0] - hn) <= 1e-12 * hn, "%s: norm gpu %.17g cpu %.17g", name, v[0], hn);
        cr_assert(fabs(v[1] - hc) <= 1e-12 * hc, "%s: factor gpu %.17g cpu %.17g", name, v[1], hc);
        cr_assert(cp_compare(name, "gradients", dt, x, back, (int64_t)n, dt == CT_F64 ? 1e-12 : 1e-6, 0));
    }
    free(x), free(orig), free(back);
    gpu->free(dx), gpu->free(sd);
}

Test(cuda_parity, clip_norm_on_the_device) {
    CP_NEED_GPU();
    const size_t sizes[] = {1, 257, 1000003};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 3; s++) {
            ct_dtype dt = d ? CT_F64 : CT_F32;
            clip_case(sizes[s], dt, 0.5, false);  /* clips: the norms are >= 1 */
            clip_case(sizes[s], dt, 1e9, false);  /* does not */
            clip_case(sizes[s], dt, 0.5, true);
        }
}

/* ---- capture ------------------------------------------------------------- */

#define GB 32
#define GIN 40

static ct_graph *net(ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 77);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {GB, GIN}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {GB}});
    ct_node h = ct_dropout(g, ct_relu(g, ct_linear(g, "fc1", x, 64, true, NULL)), 0.25);
    *loss = ct_cross_entropy(g, ct_linear(g, "fc2", h, 7, true, NULL), y, 0.0);
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

typedef struct rig {
    ct_graph *g;
    ct_program *p;
    ct_optimizer *o;
    ct_step_graph *sg;
    ct_node loss;
} rig;

static rig rig_new(bool no_capture) {
    rig r;
    r.g = net(&r.loss);
    r.p = ct_compile(r.g, &(ct_compile_opts){.device = cp_gpu_device(), .outputs = &r.loss, .n_outputs = 1,
                                             .grads = true});
    cr_assert(r.p, "%s", ct_last_error());
    r.o = ct_optimizer_new(r.g, r.p, &(ct_optim_opts){.kind = CT_OPTIM_ADAM, .lr = 1e-3});
    cr_assert(r.o, "%s", ct_last_error());
    r.sg = ct_step_graph_new(r.p, r.o, &(ct_step_graph_opts){.clip_norm = 0.7, .loss = &r.loss,
                                                            .no_capture = no_capture});
    cr_assert(r.sg, "%s", ct_last_error());
    return r;
}

static void rig_free(rig *r) {
    ct_step_graph_free(r->sg);
    ct_optimizer_free(r->o);
    ct_program_free(r->p);
    ct_graph_free(r->g);
}

static void batch(int s, float *x, int32_t *y) {
    for (int i = 0; i < GB * GIN; i++) x[i] = (float)(4 * ct_philox_uniform(9, 1, (uint32_t)s, (uint64_t)i) - 2);
    for (int i = 0; i < GB; i++) y[i] = (int32_t)(ct_philox_u32(9, 2, (uint32_t)s, (uint64_t)i) % 7);
}

static void rig_step(rig *r, int s, double lr) {
    float x[GB * GIN];
    int32_t y[GB];
    batch(s, x, y);
    cr_assert(ct_program_set_input(r->p, "x", x, sizeof x) == CT_OK && ct_program_set_input(r->p, "y", y, sizeof y) == CT_OK,
              "%s", ct_last_error());
    cr_assert_eq(ct_step_graph_run(r->sg, lr), CT_OK, "step %d: %s", s, ct_last_error());
}

Test(cuda_parity, a_captured_step_allocates_nothing_and_recaptures_after_rebinding) {
    CP_NEED_GPU();
    rig on = rig_new(false), off = rig_new(true);
    bool gpu = !cp_selftest();
    cr_assert_eq(ct_step_graph_captures(on.sg), gpu);
    for (int s = 0; s < 2; s++) rig_step(&on, s, 1e-3), rig_step(&off, s, 1e-3);
    double sum;
    cr_assert_eq(ct_step_graph_loss(on.sg, NULL, &sum), CT_OK, "%s", ct_last_error());
    size_t free0 = 0, free1 = 0;
    if (gpu) cr_assert_eq(ct_cuda_mem_info(0, &free0, NULL), CT_OK, "%s", ct_last_error());
    /* the learning rate changes every step: a device value, not a recapture */
    for (int s = 2; s < 22; s++) rig_step(&on, s, 1e-3 / (1 + s)), rig_step(&off, s, 1e-3 / (1 + s));
    cr_assert_eq(ct_step_graph_loss(on.sg, NULL, &sum), CT_OK, "%s", ct_last_error());
    if (gpu) {
        cr_assert_eq(ct_cuda_mem_info(0, &free1, NULL), CT_OK, "%s", ct_last_error());
        cr_assert_eq(free1, free0, "20 replayed steps changed free device memory: %zu -> %zu bytes", free0, free1);
    }
    cr_assert_eq(ct_step_graph_capture_count(on.sg), gpu ? 1 : 0);

    /* Rebinding x to memory of the caller's: the next step captures again. */
    const ct_backend *be = cp_gpu();
    float x[GB * GIN];
    int32_t y[GB];
    void *xa = be->alloc(sizeof x), *xb = be->alloc(sizeof x);
    cr_assert(xa && xb, "%s", ct_last_error());
    cr_assert(ct_program_bind_input(on.p, "x", xa, sizeof x) == CT_OK &&
              ct_program_bind_input(off.p, "x", xb, sizeof x) == CT_OK, "%s", ct_last_error());
    for (int s = 22; s < 26; s++) {
        batch(s, x, y);
        cr_assert(be->upload(xa, x, sizeof x) == CT_OK && be->upload(xb, x, sizeof x) == CT_OK &&
                  ct_program_set_input(on.p, "y", y, sizeof y) == CT_OK &&
                  ct_program_set_input(off.p, "y", y, sizeof y) == CT_OK, "%s", ct_last_error());
        cr_assert(ct_step_graph_run(on.sg, 5e-4) == CT_OK && ct_step_graph_run(off.sg, 5e-4) == CT_OK, "%s",
                  ct_last_error());
    }
    cr_assert_eq(ct_step_graph_capture_count(on.sg), gpu ? 2 : 0);
    cr_assert_eq(ct_program_step(on.p), 26u);
    cr_assert_eq(ct_optimizer_step_count(on.o), 26);

    double ln, lf, sn, sf, nn, nf;
    cr_assert(ct_step_graph_loss(on.sg, &ln, &sn) == CT_OK && ct_step_graph_loss(off.sg, &lf, &sf) == CT_OK &&
              ct_step_graph_grad_norm(on.sg, &nn) == CT_OK && ct_step_graph_grad_norm(off.sg, &nf) == CT_OK,
              "%s", ct_last_error());
    cr_assert(ln == lf && sn == sf && nn == nf, "captured vs not: loss %.17g/%.17g, sum %.17g/%.17g, norm %.17g/%.17g",
              ln, lf, sn, sf, nn, nf);
    cr_assert(isfinite(sn) && sn > 0 && nn > 0);
    size_t bytes = ct_program_param_numel(on.p) * sizeof(float);
    float *wn = malloc(bytes), *wf = malloc(bytes);
    cr_assert(ct_program_read_params(on.p, wn, bytes) == CT_OK && ct_program_read_params(off.p, wf, bytes) == CT_OK);
    cr_assert_eq(memcmp(wn, wf, bytes), 0, "captured and uncaptured weights differ");
    free(wn), free(wf);
    rig_free(&on), rig_free(&off);
    be->free(xa), be->free(xb);
}

/* ---- views: a GPT step, whose q, k, v are views of one value ----------- */

/* One GPT training step on dev: its loss and gradients (gpt_step.h). */
static float gpt_step(ct_device dev, float **grads, size_t *n) {
    ct_graph *g = ct_graph_new();
    ct_node loss;
    ct_program *p = gs_compile(g, dev, false, &loss);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    float l = gs_results(p, loss, grads, n);
    ct_program_free(p);
    ct_graph_free(g);
    return l;
}

Test(cuda_parity, a_gpt_step_with_views) {
    CP_NEED_GPU();
    float *gc, *gg;
    size_t nc, ng;
    float lc = gpt_step((ct_device){CT_DEVICE_CPU, 0}, &gc, &nc), lg = gpt_step(cp_gpu_device(), &gg, &ng);
    cr_assert(isfinite(lc) && lc > 1.0f, "loss %g", lc);
    cr_assert(fabsf(lg - lc) <= 1e-5f * lc, "loss gpu %.9g cpu %.9g", lg, lc);
    cr_assert_eq(nc, ng);
    cr_assert(cp_compare("gpt step", "gradients", CT_F32, gc, gg, (int64_t)nc, 1e-3, 1e-5));
    free(gc), free(gg);
}
