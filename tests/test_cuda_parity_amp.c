/* GPU vs CPU: mixed precision on the CUDA backend (docs/mixed_precision.md).
 *
 *   - amp_unscale: finite gradients, one +inf, -inf or NaN, a stale flag
 *     that must be cleared, scales that are and are not powers of two;
 *     a scale the CPU refuses is reported by the GPU at the next read.
 *     Exact: both sides divide and round once to the same float/double.
 *   - amp_update: sequences of finite and overflowing steps through the
 *     device state (growth at the interval, backoff, the float cap, a
 *     static scale), the whole state compared bit for bit after each step.
 *   - every optimizer gated by the scaler's state: found_inf = 1 leaves
 *     every buffer bit-identical; found_inf = 0 uses t - skipped
 *     (tolerances of tests/cuda_parity_optim.h).
 *   - the mixed product: F16/BF16 operands, F32 output. Both sides form
 *     exact products (11 x 11 bits fit a float) and add them in FP32, in
 *     different orders; tensor cores may also align and truncate inside
 *     their FP32 adds. Bound (not a measurement): rtol 1e-5, atol
 *     3e-5 * sqrt(k) + 1e-6, a hundred times tighter than rounding the
 *     result to F16 would need, so a product that went through F16 fails.
 *   - end to end: 100 steps of an MNIST MLP under the FP16 policy with
 *     dynamic loss scaling (initial scale 2^20 so that the first steps
 *     overflow and are skipped, growth interval 20), AdamW: the scaler's
 *     state must match exactly after every step (its decisions are far
 *     from the overflow threshold), the loss within 2e-3 relative and the
 *     final weights within 2e-3 absolute (twice the FP32 case's bounds:
 *     F16 casts of weights that differ in the last float bits may round
 *     the other way). Bounds, not measurements: never run on a GPU yet.
 */
#include "cuda_parity_optim.h"

/* ---- the scaler's state on both sides ----------------------------------- */

static ct_amp_state *state_to_gpu(const ct_backend *gpu, const ct_amp_state *h) {
    ct_amp_state *d = gpu->alloc(sizeof *d);
    cr_assert(d && gpu->upload(d, h, sizeof *h) == CT_OK, "%s", ct_last_error());
    return d;
}

static ct_amp_state state_from_gpu(const ct_backend *gpu, const ct_amp_state *d) {
    ct_amp_state h;
    cr_assert_eq(gpu->download(&h, d, sizeof h), CT_OK, "%s", ct_last_error());
    return h;
}

static void same_state(const char *what, const ct_amp_state *c, const ct_amp_state *g) {
    cr_assert(memcmp(&c->scale, &g->scale, sizeof c->scale) == 0 && c->found_inf == g->found_inf &&
                  c->growth_tracker == g->growth_tracker && c->skipped == g->skipped,
              "%s: gpu {scale %.9g, found_inf %d, tracker %d, skipped %lld}, cpu {%.9g, %d, %d, %lld}", what,
              (double)g->scale, g->found_inf, g->growth_tracker, (long long)g->skipped, (double)c->scale, c->found_inf,
              c->growth_tracker, (long long)c->skipped);
}

/* ---- amp_unscale -------------------------------------------------------- */

/* n gradients of dt, the element at n / 2 replaced by `poison` unless it
 * is 0; the state starts with a stale found_inf = 1. */
static void run_unscale(ct_dtype dt, size_t n, float scale, double poison) {
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    char name[96];
    snprintf(name, sizeof name, "unscale %s n %zu scale %g poison %g", ct_dtype_name(dt), n, (double)scale, poison);
    size_t b = n * ct_dtype_size(dt);
    cp_in in = cp_range(dt, (ct_shape){1, {(int64_t)n}}, -4000, 4000);
    void *h = malloc(b ? b : 1), *back = malloc(b ? b : 1), *d = gpu->alloc(b ? b : 1);
    cr_assert(h && back && d, "%s", ct_last_error());
    cp_fill(&in, h, cp_stream_counter++);
    if (poison != 0) ct_st(h, dt, (int64_t)(n / 2), poison);
    cr_assert_eq(gpu->upload(d, h, b), CT_OK, "%s", ct_last_error());
    ct_amp_state hs = {.scale = scale, .found_inf = 1, .growth_tracker = 5, .skipped = 3};
    ct_amp_state *ds = state_to_gpu(gpu, &hs);
    cr_assert_eq(cpu->amp_unscale(h, dt, n, &hs), CT_OK, "%s: %s", name, ct_last_error());
    cr_assert_eq(gpu->amp_unscale(d, dt, n, ds), CT_OK, "%s: %s", name, ct_last_error());
    ct_amp_state gs = state_from_gpu(gpu, ds);
    same_state(name, &hs, &gs);
    cr_assert_eq(hs.found_inf, poison != 0, "%s: the CPU's flag is %d", name, hs.found_inf);
    cr_assert_eq(gpu->download(back, d, b), CT_OK, "%s", ct_last_error());
    cr_assert(cp_compare(name, "gradients", dt, h, back, (int64_t)n, 0, 0), "%s: gradients differ", name);
    free(h), free(back);
    gpu->free(d), gpu->free(ds);
}

Test(cuda_parity, amp_unscale_finite_inf_nan) {
    CP_NEED_GPU();
    const size_t sizes[] = {1, 257, 1000003};
    const float scales[] = {65536.0f, 3.0f, 0.75f};
    const double poisons[] = {0, INFINITY, -INFINITY, NAN};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < 3; k++)
                for (int p = 0; p < 4; p++) run_unscale(d ? CT_F64 : CT_F32, sizes[s], scales[k], poisons[p]);
}

Test(cuda_parity, amp_unscale_of_nothing_clears_the_flag) {
    CP_NEED_GPU();
    run_unscale(CT_F32, 0, 1024.0f, 0);
}

/* A scale the CPU refuses: the GPU cannot refuse it without a host read,
 * so it skips the step (found_inf = 1, gradients untouched) and reports it
 * at the next synchronisation. */
Test(cuda_parity, amp_unscale_bad_scale_is_reported) {
    CP_NEED_GPU();
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    const float bad[] = {0.0f, -2.0f, INFINITY, NAN};
    size_t n = 1000, b = n * sizeof(float);
    float *h = malloc(b), *back = malloc(b), *d = gpu->alloc(b);
    cr_assert(h && back && d, "%s", ct_last_error());
    for (int i = 0; i < 4; i++) {
        cp_in in = cp_f(CT_F32, (ct_shape){1, {(int64_t)n}});
        cp_fill(&in, h, cp_stream_counter++);
        cr_assert_eq(gpu->upload(d, h, b), CT_OK, "%s", ct_last_error());
        ct_amp_state hs = {.scale = bad[i]};
        ct_amp_state *ds = state_to_gpu(gpu, &hs);
        cr_assert_eq(cpu->amp_unscale(h, CT_F32, n, &hs), CT_ERR_NUMERIC, "cpu accepted scale %g", (double)bad[i]);
        ct_status st = gpu->amp_unscale(d, CT_F32, n, ds);
        if (st == CT_OK) { /* queued: the error comes with the next read */
            ct_amp_state gs;
            st = gpu->download(&gs, ds, sizeof gs);
            cr_assert_eq(st, CT_ERR_NUMERIC, "scale %g: status %d", (double)bad[i], (int)st);
            cr_assert(strstr(ct_last_error(), "loss scale"), "message: %s", ct_last_error());
            gs = state_from_gpu(gpu, ds); /* reported once: this read is clean */
            cr_assert_eq(gs.found_inf, 1, "scale %g: the step was not marked skipped", (double)bad[i]);
        } else {
            cr_assert_eq(st, CT_ERR_NUMERIC, "scale %g: %s", (double)bad[i], ct_last_error());
        }
        cr_assert_eq(gpu->download(back, d, b), CT_OK, "%s", ct_last_error());
        cr_assert(memcmp(h, back, b) == 0, "scale %g: the gradients were touched", (double)bad[i]);
        gpu->free(ds);
    }
    free(h), free(back);
    gpu->free(d);
}

/* ---- amp_update --------------------------------------------------------- */

typedef struct upd_case {
    const char *name;
    float init;
    double growth, backoff;
    int32_t interval;
    const char *verdicts; /* one step per character: 'f' finite, 'i' inf */
} upd_case;

/* Runs the verdicts through unscale + update on both backends (the flag
 * travels on the device, as in training) and compares the state after
 * every step; returns the CPU's final state. */
static ct_amp_state run_updates(const upd_case *u) {
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    size_t n = 4099, b = n * sizeof(float);
    float *h = malloc(b), *d = gpu->alloc(b);
    cr_assert(h && d, "%s", ct_last_error());
    ct_amp_state hs = {.scale = u->init};
    ct_amp_state *ds = state_to_gpu(gpu, &hs);
    for (int s = 0; u->verdicts[s]; s++) {
        cp_in in = cp_f(CT_F32, (ct_shape){1, {(int64_t)n}});
        cp_fill(&in, h, cp_stream_counter++);
        if (u->verdicts[s] == 'i') h[(size_t)s * 31 % n] = s % 2 ? INFINITY : NAN;
        cr_assert_eq(gpu->upload(d, h, b), CT_OK, "%s", ct_last_error());
        cr_assert_eq(cpu->amp_unscale(h, CT_F32, n, &hs), CT_OK, "%s: %s", u->name, ct_last_error());
        cr_assert_eq(gpu->amp_unscale(d, CT_F32, n, ds), CT_OK, "%s: %s", u->name, ct_last_error());
        cr_assert_eq(cpu->amp_update(&hs, u->growth, u->backoff, u->interval), CT_OK, "%s", ct_last_error());
        cr_assert_eq(gpu->amp_update(ds, u->growth, u->backoff, u->interval), CT_OK, "%s", ct_last_error());
        ct_amp_state gs = state_from_gpu(gpu, ds);
        char what[128];
        snprintf(what, sizeof what, "%s, after step %d ('%c')", u->name, s, u->verdicts[s]);
        same_state(what, &hs, &gs);
    }
    free(h);
    gpu->free(d), gpu->free(ds);
    return hs;
}

Test(cuda_parity, amp_update_sequences) {
    CP_NEED_GPU();
    const upd_case cases[] = {
        {"defaults, interval 3", 65536.0f, 2.0, 0.5, 3, "fffiffffffiifff"},
        {"odd factors", 1000.0f, 3.0, 0.3, 2, "ffiffififfffiiiff"},
        {"the float cap", 1.7014118e38f /* 2^127 */, 2.0, 0.5, 1, "fffifff"},
        {"a grown scale just under the cap", 3.0e38f, 1.05, 0.5, 1, "ffff"},
        {"static", 512.0f, 1.0, 1.0, 2000, "ffiffiif"},
    };
    ct_amp_state end[5];
    for (int c = 0; c < 5; c++) end[c] = run_updates(&cases[c]);
    /* The cases exercise what they are named for (the CPU's own tests check
     * the rules; these make sure the sequences reach them). */
    cr_assert_eq(end[0].skipped, 3);
    cr_assert_eq(end[0].scale, 131072.0f); /* grown at steps 2, 6, 9 and 14, halved at 3, 10 and 11 */
    cr_assert_eq(end[2].scale, 1.7014118e38f, "the scale at the cap moved: %g", (double)end[2].scale);
    cr_assert(end[3].scale > 3.0e38f, "the scale did not grow under the cap");
    cr_assert_eq(end[4].scale, 512.0f);
    cr_assert_eq(end[4].skipped, 3);
}

/* ---- the optimizers, gated ---------------------------------------------- */

Test(cuda_parity, optimizers_gated_by_the_loss_scaler) {
    CP_NEED_GPU();
    for (int s = 0; s < CPO_N_SPECS; s++) {
        char name[96];
        /* Two steps skipped before this one: the update is the one of step
         * t, not t + 2 (for "first step" cases: the first step's rule). */
        ct_optim_args a = cpo_specs[s].a;
        a.t += 2;
        ct_amp_state taken = {.scale = 1024, .found_inf = 0, .skipped = 2};
        snprintf(name, sizeof name, "%s, 2 skipped before", cpo_specs[s].name);
        cpo_run(name, a, CT_F32, &taken);
        cpo_run(name, a, CT_F64, &taken);
        /* This step overflowed: nothing is written. */
        ct_amp_state skip = {.scale = 1024, .found_inf = 1, .skipped = 0};
        snprintf(name, sizeof name, "%s, skipped", cpo_specs[s].name);
        cpo_run(name, cpo_specs[s].a, CT_F32, &skip);
        cpo_run(name, cpo_specs[s].a, CT_F64, &skip);
    }
}

/* ---- the mixed product -------------------------------------------------- */

OP_TEST(cuda_parity, matmul_f16_bf16_operands_into_f32, CT_OP_MATMUL) {
    CP_NEED_GPU();
    const struct {
        ct_shape a, b, out;
        bool ta, tb;
        int64_t k;
    } specs[] = {
        {{2, {64, 784}}, {2, {512, 784}}, {2, {64, 512}}, false, true, 784},  /* x @ W^T: a linear layer */
        {{2, {64, 512}}, {2, {512, 784}}, {2, {64, 784}}, false, false, 512}, /* dx = dy @ W */
        {{2, {64, 512}}, {2, {64, 784}}, {2, {512, 784}}, true, false, 64},   /* dW = dy^T @ x */
        {{2, {7, 13}}, {2, {13, 5}}, {2, {7, 5}}, false, false, 13},
        {{3, {3, 17, 33}}, {3, {3, 33, 9}}, {3, {3, 17, 9}}, false, false, 33},    /* batched */
        {{3, {4, 17, 33}}, {2, {33, 9}}, {3, {4, 17, 9}}, false, false, 33},       /* shared weight */
        {{4, {2, 1, 5, 6}}, {4, {1, 3, 6, 4}}, {4, {2, 3, 5, 4}}, false, false, 6}, /* partial broadcast */
        {{2, {3, 0}}, {2, {0, 4}}, {2, {3, 4}}, false, false, 0},                  /* k = 0: zeros */
    };
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 8; i++) {
            ct_dtype dt = d ? CT_BF16 : CT_F16;
            char name[96];
            snprintf(name, sizeof name, "mixed matmul#%d %s -> f32", i, ct_dtype_name(dt));
            cp_case c = {.name = name, .op = CT_OP_MATMUL,
                         .attr = {.trans_a = specs[i].ta, .trans_b = specs[i].tb}, .n_in = 2,
                         .in = {cp_f(dt, specs[i].a), cp_f(dt, specs[i].b)}, .out_dtype = CT_F32,
                         .out_shape = specs[i].out, .rtol = 1e-5, .atol = 3e-5 * sqrt((double)specs[i].k) + 1e-6,
                         .zeros_ok = specs[i].k == 0};
            cp_run(&c);
        }
}

/* ---- end to end --------------------------------------------------------- */

#define AMP_BATCH 64
#define AMP_STEPS 100

static ct_graph *mlp_fp16(ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, 4321);
    cr_assert_eq(ct_graph_set_precision(g, CT_PRECISION_FP16), CT_OK);
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {AMP_BATCH, 784}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {AMP_BATCH}});
    ct_node h = ct_dropout(g, ct_relu(g, ct_linear(g, "fc1", x, 256, true, NULL)), 0.2);
    h = ct_relu(g, ct_linear(g, "fc2", h, 128, true, NULL));
    *loss = ct_cross_entropy(g, ct_linear(g, "fc3", h, 10, true, NULL), y, 0.0);
    cr_assert_eq(ct_graph_backward_scaled(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

typedef struct amp_run {
    ct_graph *g;
    ct_node loss;
    ct_program *p;
    ct_optimizer *opt;
    ct_scaler *s;
} amp_run;

static amp_run amp_run_new(ct_device dev) {
    amp_run r = {0};
    r.g = mlp_fp16(&r.loss);
    r.p = ct_compile(r.g, &(ct_compile_opts){.device = dev, .outputs = &r.loss, .n_outputs = 1, .grads = true});
    cr_assert(r.p, "%s", ct_last_error());
    ct_optim_opts oo = {.kind = CT_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.01};
    r.opt = ct_optimizer_new(r.g, r.p, &oo);
    ct_scaler_opts so = {.mode = CT_LOSS_SCALE_DYNAMIC, .init_scale = 1048576.0, .growth_interval = 20};
    r.s = ct_scaler_new(r.p, &so);
    cr_assert(r.opt && r.s, "%s", ct_last_error());
    return r;
}

/* One step: forward/backward, loss, unscale, gated update, scale update. */
static float amp_step(amp_run *r, const float *x, const int32_t *y) {
    float loss;
    cr_assert(ct_program_set_input(r->p, "x", x, AMP_BATCH * 784 * sizeof(float)) == CT_OK &&
                  ct_program_set_input(r->p, "y", y, AMP_BATCH * sizeof(int32_t)) == CT_OK &&
                  ct_program_run(r->p) == CT_OK && ct_program_read(r->p, r->loss, &loss, sizeof loss) == CT_OK &&
                  ct_scaler_unscale(r->s) == CT_OK && ct_scaler_step(r->s, r->opt, 1e-3) == CT_OK &&
                  ct_scaler_update(r->s) == CT_OK,
              "%s", ct_last_error());
    return loss;
}

static void amp_run_free(amp_run *r) {
    ct_scaler_free(r->s);
    ct_optimizer_free(r->opt);
    ct_program_free(r->p);
    ct_graph_free(r->g);
}

Test(cuda_parity, mnist_mlp_fp16_100_steps) {
    CP_NEED_GPU();
    ct_dataset *ds = cp_mnist_train();
    const float *feat = ct_dataset_features(ds);
    const int32_t *lab = ct_dataset_labels(ds);
    amp_run c = amp_run_new((ct_device){CT_DEVICE_CPU, 0}), g = amp_run_new(cp_gpu_device());
    float first = 0, last = 0;
    for (int step = 0; step < AMP_STEPS; step++) {
        const float *x = feat + (size_t)step * AMP_BATCH * 784;
        const int32_t *y = lab + (size_t)step * AMP_BATCH;
        float loss_c = amp_step(&c, x, y), loss_g = amp_step(&g, x, y);
        cr_assert(fabsf(loss_g - loss_c) <= 2e-3f * fabsf(loss_c), "step %d: loss gpu %.7g cpu %.7g", step, loss_g,
                  loss_c);
        ct_scaler_state sc, sg;
        cr_assert(ct_scaler_get_state(c.s, &sc) == CT_OK && ct_scaler_get_state(g.s, &sg) == CT_OK, "%s",
                  ct_last_error());
        cr_assert(sc.scale == sg.scale && sc.growth_tracker == sg.growth_tracker && sc.skipped_steps == sg.skipped_steps,
                  "step %d: scaler gpu {%g, %lld, %lld}, cpu {%g, %lld, %lld}", step, sg.scale,
                  (long long)sg.growth_tracker, (long long)sg.skipped_steps, sc.scale, (long long)sc.growth_tracker,
                  (long long)sc.skipped_steps);
        if (step == 0) first = loss_c;
        last = loss_c;
    }
    ct_scaler_state end;
    cr_assert_eq(ct_scaler_get_state(c.s, &end), CT_OK);
    cr_log_info("fp16 MLP: loss %g -> %g, %lld steps skipped, final scale %g", first, last,
                (long long)end.skipped_steps, end.scale);
    cr_assert(end.skipped_steps > 0, "no step overflowed: the case does not exercise skipping");
    cr_assert(last < 0.6f * first, "the MLP did not learn: loss %g -> %g", first, last);
    size_t n = ct_program_param_numel(c.p), b = n * sizeof(float);
    float *wc = malloc(b), *wg = malloc(b);
    cr_assert_eq(ct_program_read_params(c.p, wc, b), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read_params(g.p, wg, b), CT_OK, "%s", ct_last_error());
    cr_assert(cp_compare("fp16 mnist mlp", "final weights", CT_F32, wc, wg, (int64_t)n, 0, 2e-3));
    free(wc), free(wg);
    amp_run_free(&c), amp_run_free(&g);
    ct_dataset_free(ds);
}
