/* The activation memory planner: the unit function ct_plan_arena on
 * hand-made lifetimes (buffers alive at the same time never share memory,
 * buffers that are not reuse it), and whole programs compiled with the
 * planner and with .no_plan (a private buffer per node), which must give
 * bit-identical outputs and gradients while the planned arena is a small
 * fraction of the unplanned one. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#include "core/planner.h"

TestSuite(planner, .timeout = 60);

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* Every invariant of a plan: offsets aligned, inside the arena, and no two
 * buffers whose lifetimes overlap share a byte. */
static void check_plan(const ct_plan_buf *b, int n, size_t align, size_t total) {
    for (int i = 0; i < n; i++) {
        cr_assert_eq(b[i].offset % align, 0, "buffer %d at offset %zu is not %zu-aligned", i, b[i].offset, align);
        cr_assert_leq(b[i].offset + b[i].bytes, total, "buffer %d [%zu, +%zu) ends past the arena (%zu)", i,
                      b[i].offset, b[i].bytes, total);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            bool live_together = b[i].first <= b[j].last && b[j].first <= b[i].last;
            if (!live_together || b[i].bytes == 0 || b[j].bytes == 0) continue;
            bool apart = b[i].offset + b[i].bytes <= b[j].offset || b[j].offset + b[j].bytes <= b[i].offset;
            cr_assert(apart,
                      "buffers %d (steps %d..%d, [%zu, %zu)) and %d (steps %d..%d, [%zu, %zu)) are alive "
                      "together and overlap",
                      i, b[i].first, b[i].last, b[i].offset, b[i].offset + b[i].bytes, j, b[j].first, b[j].last,
                      b[j].offset, b[j].offset + b[j].bytes);
        }
}

/* The largest sum of (aligned) sizes alive at one step: no plan can be
 * smaller than that. */
static size_t peak_live(const ct_plan_buf *b, int n, size_t align) {
    int last = 0;
    for (int i = 0; i < n; i++)
        if (b[i].last > last) last = b[i].last;
    size_t peak = 0;
    for (int s = 0; s <= last; s++) {
        size_t live = 0;
        for (int i = 0; i < n; i++)
            if (b[i].first <= s && s <= b[i].last) live += round_up(b[i].bytes, align);
        if (live > peak) peak = live;
    }
    return peak;
}

Test(planner, empty) {
    cr_assert_eq(ct_plan_arena(NULL, 0, 256), 0);
}

Test(planner, chain_reuses_two_slots) {
    /* b_i lives over steps [i, i + 1]: only neighbours overlap. */
    ct_plan_buf b[20];
    for (int i = 0; i < 20; i++) b[i] = (ct_plan_buf){1000, i, i + 1, 0};
    size_t total = ct_plan_arena(b, 20, 256);
    check_plan(b, 20, 256, total);
    cr_assert_eq(total, 2 * 1024, "a chain needs two 1024-byte slots, got %zu", total);
}

Test(planner, disjoint_lifetimes_share_everything) {
    ct_plan_buf b[6];
    static const size_t sizes[] = {100, 5000, 300, 4096, 7, 2500};
    for (int i = 0; i < 6; i++) b[i] = (ct_plan_buf){sizes[i], 2 * i, 2 * i + 1, 12345};
    size_t total = ct_plan_arena(b, 6, 64);
    check_plan(b, 6, 64, total);
    cr_assert_eq(total, round_up(5000, 64));
    for (int i = 0; i < 6; i++) cr_assert_eq(b[i].offset, 0, "buffer %d at %zu", i, b[i].offset);
}

Test(planner, all_alive_together_share_nothing) {
    ct_plan_buf b[5];
    static const size_t sizes[] = {10, 300, 256, 1, 513};
    size_t sum = 0;
    for (int i = 0; i < 5; i++) {
        b[i] = (ct_plan_buf){sizes[i], 0, 4, 0};
        sum += round_up(sizes[i], 256);
    }
    size_t total = ct_plan_arena(b, 5, 256);
    check_plan(b, 5, 256, total);
    cr_assert_eq(total, sum);
}

Test(planner, hole_is_reused) {
    /* A (big, steps 0..1) dies; B (steps 0..5) stays; C (steps 2..3) fits
     * into A's place. */
    ct_plan_buf b[3] = {{4096, 0, 1, 0}, {1024, 0, 5, 0}, {2048, 2, 3, 0}};
    size_t total = ct_plan_arena(b, 3, 256);
    check_plan(b, 3, 256, total);
    cr_assert_eq(total, 4096 + 1024);
    cr_assert_eq(b[2].offset, b[0].offset, "C should take A's place");
}

Test(planner, touching_steps_overlap) {
    /* lifetimes are inclusive: [0, 3] and [3, 5] are alive together at 3 */
    ct_plan_buf b[2] = {{512, 0, 3, 0}, {512, 3, 5, 0}};
    size_t total = ct_plan_arena(b, 2, 256);
    check_plan(b, 2, 256, total);
    cr_assert_eq(total, 1024);
}

Test(planner, zero_byte_buffers) {
    ct_plan_buf b[3] = {{0, 0, 2, 0}, {100, 0, 2, 0}, {0, 1, 1, 0}};
    size_t total = ct_plan_arena(b, 3, 16);
    check_plan(b, 3, 16, total);
    cr_assert_geq(total, 112);
}

Test(planner, random_lifetimes) {
    /* Many random plans: every pair checked, the peak-live lower bound and
     * the no-reuse upper bound hold, and the plan is well below no reuse. */
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int trial = 0; trial < 40; trial++) {
        int n = 20 + trial * 5;
        size_t align = trial % 3 == 0 ? 256 : trial % 3 == 1 ? 64 : 1;
        ct_plan_buf *b = malloc((size_t)n * sizeof *b);
        cr_assert_not_null(b);
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(state >> 33);
            int first = (int)(r % (unsigned)n);
            int len = (int)((r >> 8) % 12u);
            size_t bytes = 1 + (size_t)((r >> 12) % 20000u);
            b[i] = (ct_plan_buf){bytes, first, first + len, 0};
            sum += round_up(bytes, align);
        }
        size_t total = ct_plan_arena(b, n, align);
        check_plan(b, n, align, total);
        size_t lower = peak_live(b, n, align);
        cr_assert_geq(total, lower);
        cr_assert_leq(total, sum);
        /* Quality, not correctness: greedy by size stays near the bound
         * here (at most 1.34x over these 40 plans). */
        cr_assert_leq(total, 2 * lower, "trial %d: %zu bytes for a peak live of %zu", trial, total, lower);
        free(b);
    }
}

/* ---- whole programs ----------------------------------------------------- */

#define ROWS 64
#define COLS 256

static void fill_random(float *v, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        float u = ct_philox_uniform(seed, 3, 0, i);
        v[i] = lo + (hi - lo) * u;
        if (fabsf(v[i]) < 1e-3f) v[i] = 0.5f;
    }
}

/* 50 alternating tanh / scale nodes on a [64, 256] input, with a branch
 * from node 10 (sigmoid) merged back at the end. */
typedef struct chain {
    ct_graph *g;
    ct_node x, out, loss, gx;
} chain;

static chain build_chain(void) {
    chain c;
    c.g = ct_graph_new();
    cr_assert_not_null(c.g);
    c.x = ct_input(c.g, "x", CT_F32, (ct_shape){2, {ROWS, COLS}});
    cr_assert_eq(ct_set_requires_grad(c.g, c.x, true), CT_OK);
    ct_node h = c.x, branch = CT_NO_NODE;
    for (int i = 0; i < 50; i++) {
        h = i % 2 == 0 ? ct_tanh(c.g, h) : ct_scale(c.g, h, 1.25);
        if (i == 10) branch = ct_sigmoid(c.g, h);
    }
    c.out = ct_add(c.g, h, ct_mul(c.g, branch, h));
    c.loss = ct_mean(c.g, ct_mul(c.g, c.out, c.out), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_status(c.g), CT_OK, "%s", ct_graph_error(c.g));
    cr_assert_eq(ct_graph_backward(c.g, c.loss), CT_OK, "%s", ct_last_error());
    c.gx = ct_grad(c.g, c.x);
    cr_assert_neq(c.gx, CT_NO_NODE);
    return c;
}

typedef struct chain_run {
    float loss;
    float *out, *gx;
    size_t arena;
} chain_run;

/* grads: a training program (outputs loss, out and the gradient of x);
 * otherwise a forward-only one (loss and out). */
static chain_run run_chain(chain *c, const float *x, bool grads, bool no_plan) {
    ct_node outs[] = {c->loss, c->out, c->gx};
    ct_program *p = ct_compile(c->g, &(ct_compile_opts){.outputs = outs, .n_outputs = grads ? 3 : 2,
                                                        .grads = grads, .no_plan = no_plan});
    cr_assert_not_null(p, "compile (no_plan %d): %s", no_plan, ct_last_error());
    size_t n = (size_t)ROWS * COLS;
    chain_run r = {.out = malloc(n * sizeof(float)), .gx = malloc(n * sizeof(float)),
                   .arena = ct_program_arena_bytes(p)};
    cr_assert(r.out && r.gx);
    cr_assert_eq(ct_program_set_input(p, "x", x, n * sizeof(float)), CT_OK, "%s", ct_last_error());
    /* Twice: a planned program must not depend on what a previous run left
     * in the arena. */
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read(p, c->loss, &r.loss, sizeof r.loss), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read(p, c->out, r.out, n * sizeof(float)), CT_OK, "%s", ct_last_error());
        if (grads)
            cr_assert_eq(ct_program_read(p, c->gx, r.gx, n * sizeof(float)), CT_OK, "%s", ct_last_error());
        else
            memset(r.gx, 0, n * sizeof(float));
    }
    ct_program_free(p);
    return r;
}

static void expect_same_chain(const chain_run *a, const chain_run *b, size_t n) {
    cr_assert(isfinite(a->loss) && a->loss > 0.0f, "loss %g", a->loss);
    cr_assert(memcmp(&a->loss, &b->loss, sizeof(float)) == 0, "loss %.9g vs %.9g", a->loss, b->loss);
    for (size_t i = 0; i < n; i++) {
        cr_assert(memcmp(&a->out[i], &b->out[i], sizeof(float)) == 0, "out[%zu]: %.9g vs %.9g", i, a->out[i],
                  b->out[i]);
        cr_assert(memcmp(&a->gx[i], &b->gx[i], sizeof(float)) == 0, "grad x[%zu]: %.9g vs %.9g", i, a->gx[i],
                  b->gx[i]);
    }
}

static void free_run(chain_run *r) {
    free(r->out);
    free(r->gx);
}

/* Forward only: nothing has to outlive its consumer, so the planned chain
 * needs a few values where no_plan holds all ~52. */
Test(planner, deep_chain_forward) {
    chain c = build_chain();
    size_t n = (size_t)ROWS * COLS, node_bytes = n * sizeof(float);
    float *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    fill_random(x, n, 11, -2.0f, 2.0f);
    chain_run planned = run_chain(&c, x, false, false);
    chain_run unplanned = run_chain(&c, x, false, true);
    cr_log_info("deep chain, forward: planned arena %zu bytes, no_plan %zu bytes (%.1fx smaller)", planned.arena,
                unplanned.arena, (double)unplanned.arena / (double)planned.arena);
    expect_same_chain(&planned, &unplanned, n);
    cr_assert_geq(unplanned.arena, 50 * node_bytes, "no_plan should hold every value (%zu bytes)",
                  unplanned.arena);
    cr_assert_lt(planned.arena * 5, unplanned.arena, "planned %zu bytes is not < 1/5 of unplanned %zu",
                 planned.arena, unplanned.arena);
    /* the branch, the value read, the value written, the output, a spare */
    cr_assert_leq(planned.arena, 6 * node_bytes, "planned arena %zu bytes holds more than 6 values",
                  planned.arena);
    free_run(&planned);
    free_run(&unplanned);
    free(x);
    ct_graph_free(c.g);
}

/* Training: the backward of each tanh reads its input, so the 24 scale
 * outputs that feed a tanh must all stay alive until the backward reaches
 * them (no planner can do better without recomputation); the plan must
 * still hold only those and a handful more, and give identical results. */
Test(planner, deep_chain_training) {
    chain c = build_chain();
    size_t n = (size_t)ROWS * COLS, node_bytes = n * sizeof(float);
    float *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    fill_random(x, n, 11, -2.0f, 2.0f);
    chain_run planned = run_chain(&c, x, true, false);
    chain_run unplanned = run_chain(&c, x, true, true);
    cr_log_info("deep chain, training: planned arena %zu bytes (%zu values), no_plan %zu bytes (%zu values), "
                "%.1fx smaller",
                planned.arena, planned.arena / node_bytes, unplanned.arena, unplanned.arena / node_bytes,
                (double)unplanned.arena / (double)planned.arena);
    expect_same_chain(&planned, &unplanned, n);
    double gsum = 0;
    for (size_t i = 0; i < n; i++) gsum += fabs(planned.gx[i]);
    cr_assert_gt(gsum, 1e-3, "the gradient of x is (nearly) zero");

    cr_assert_geq(unplanned.arena, 100 * node_bytes, "no_plan should hold every value (%zu bytes)",
                  unplanned.arena);
    cr_assert_lt(planned.arena * 3, unplanned.arena, "planned %zu bytes is not < 1/3 of unplanned %zu",
                 planned.arena, unplanned.arena);
    cr_assert_leq(planned.arena, (24 + 8) * node_bytes, "planned arena holds %zu values; 24 saved + 8 expected",
                  planned.arena / node_bytes);
    free_run(&planned);
    free_run(&unplanned);
    free(x);
    ct_graph_free(c.g);
}

/* An MLP training step: params, dropout, cross-entropy. */
typedef struct mlp {
    ct_graph *g;
    ct_node loss, logits;
} mlp;

static mlp build_mlp(void) {
    mlp m;
    m.g = ct_graph_new();
    cr_assert_not_null(m.g);
    ct_graph_set_seed(m.g, 2024);
    ct_graph *g = m.g;
    ct_node x = ct_input(g, "x", CT_F32, (ct_shape){2, {32, 20}});
    ct_node y = ct_input(g, "y", CT_I32, (ct_shape){1, {32}});
    ct_node w1 = ct_param(g, "fc1.w", CT_F32, (ct_shape){2, {64, 20}}, ct_init_xavier_uniform(1.0));
    ct_node b1 = ct_param(g, "fc1.b", CT_F32, (ct_shape){1, {64}}, ct_init_uniform(-0.1, 0.1));
    ct_node w2 = ct_param(g, "fc2.w", CT_F32, (ct_shape){2, {10, 64}}, ct_init_xavier_uniform(1.0));
    ct_node b2 = ct_param(g, "fc2.b", CT_F32, (ct_shape){1, {10}}, ct_init_uniform(-0.1, 0.1));
    ct_node h = ct_relu(g, ct_add(g, ct_matmul(g, x, w1, false, true), b1));
    h = ct_dropout(g, h, 0.2);
    m.logits = ct_add(g, ct_matmul(g, h, w2, false, true), b2);
    m.loss = ct_cross_entropy(g, m.logits, y, 0.05);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    cr_assert_eq(ct_graph_backward(g, m.loss), CT_OK, "%s", ct_last_error());
    return m;
}

Test(planner, mlp_step_planned_equals_unplanned) {
    mlp m = build_mlp();
    float x[32 * 20];
    int32_t y[32];
    fill_random(x, 32 * 20, 5, -1.5f, 1.5f);
    for (int i = 0; i < 32; i++) y[i] = (i * 7 + 3) % 10;
    ct_node outs[] = {m.loss, m.logits};
    ct_program *pp = ct_compile(m.g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true});
    ct_program *pu =
        ct_compile(m.g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true, .no_plan = true});
    cr_assert(pp && pu, "%s", ct_last_error());
    cr_log_info("MLP step: planned arena %zu bytes, no_plan %zu bytes", ct_program_arena_bytes(pp),
                ct_program_arena_bytes(pu));
    cr_assert_lt(ct_program_arena_bytes(pp), ct_program_arena_bytes(pu));
    size_t np = ct_program_param_numel(pp);
    cr_assert_eq(np, ct_program_param_numel(pu));
    float *pa = malloc(np * sizeof *pa), *pb = malloc(np * sizeof *pb);
    float *ga = malloc(np * sizeof *ga), *gb = malloc(np * sizeof *gb);
    cr_assert(pa && pb && ga && gb);
    cr_assert_eq(ct_program_read_params(pp, pa, np * sizeof *pa), CT_OK);
    cr_assert_eq(ct_program_read_params(pu, pb, np * sizeof *pb), CT_OK);
    cr_assert(memcmp(pa, pb, np * sizeof *pa) == 0, "same seed, same initial weights");

    for (int step = 0; step < 3; step++) {
        ct_program *ps[2] = {pp, pu};
        float loss[2], logits[2][320];
        for (int k = 0; k < 2; k++) {
            cr_assert_eq(ct_program_set_input(ps[k], "x", x, sizeof x), CT_OK);
            cr_assert_eq(ct_program_set_input(ps[k], "y", y, sizeof y), CT_OK);
            cr_assert_eq(ct_program_step(ps[k]), (uint32_t)step);
            cr_assert_eq(ct_program_run(ps[k]), CT_OK, "%s", ct_last_error());
            cr_assert_eq(ct_program_read(ps[k], m.loss, &loss[k], sizeof loss[k]), CT_OK);
            cr_assert_eq(ct_program_read(ps[k], m.logits, logits[k], sizeof logits[k]), CT_OK);
        }
        cr_assert(isfinite(loss[0]) && loss[0] > 0.5f && loss[0] < 10.0f, "loss %g", loss[0]);
        cr_assert(memcmp(&loss[0], &loss[1], sizeof(float)) == 0, "step %d: loss %.9g vs %.9g", step, loss[0],
                  loss[1]);
        cr_assert(memcmp(logits[0], logits[1], sizeof logits[0]) == 0, "step %d: logits differ", step);
        cr_assert_eq(ct_program_read_grads(pp, ga, np * sizeof *ga), CT_OK);
        cr_assert_eq(ct_program_read_grads(pu, gb, np * sizeof *gb), CT_OK);
        for (size_t i = 0; i < np; i++)
            cr_assert(memcmp(&ga[i], &gb[i], sizeof(float)) == 0, "step %d: grad[%zu] %.9g vs %.9g", step, i,
                      ga[i], gb[i]);
        double gn = 0;
        for (size_t i = 0; i < np; i++) gn += (double)ga[i] * ga[i];
        cr_assert_gt(gn, 1e-8, "gradients are all zero");
        /* A plain SGD step on both, so the next step sees new weights. */
        for (size_t i = 0; i < np; i++) pa[i] -= 0.1f * ga[i];
        cr_assert_eq(ct_program_write_params(pp, pa, np * sizeof *pa), CT_OK);
        cr_assert_eq(ct_program_write_params(pu, pa, np * sizeof *pa), CT_OK);
    }
    free(pa);
    free(pb);
    free(ga);
    free(gb);
    ct_program_free(pp);
    ct_program_free(pu);
    ct_graph_free(m.g);
}

Test(planner, no_plan_keeps_every_value_readable) {
    chain c = build_chain();
    size_t n = (size_t)ROWS * COLS;
    float *x = malloc(n * sizeof *x), *v = malloc(n * sizeof *v);
    cr_assert(x && v);
    fill_random(x, n, 12, -1.0f, 1.0f);
    ct_program *p = ct_compile(c.g, &(ct_compile_opts){.outputs = &c.loss, .n_outputs = 1, .no_plan = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_input(p, "x", x, n * sizeof *x), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    /* node x + 1 is the first tanh */
    cr_assert_str_eq(ct_node_op(c.g, c.x + 1), "tanh");
    cr_assert_eq(ct_program_read(p, c.x + 1, v, n * sizeof *v), CT_OK, "%s", ct_last_error());
    for (size_t i = 0; i < n; i++) cr_assert_float_eq(v[i], tanhf(x[i]), 1e-6f, "tanh[%zu]", i);
    ct_program_free(p);
    /* with the planner the intermediate is not kept */
    p = ct_compile(c.g, &(ct_compile_opts){.outputs = &c.loss, .n_outputs = 1});
    cr_assert_not_null(p);
    cr_assert_neq(ct_program_read(p, c.x + 1, v, n * sizeof *v), CT_OK);
    ct_program_free(p);
    free(x);
    free(v);
    ct_graph_free(c.g);
}
