/* Programs: the flat parameter layout, initial weights keyed by the seed,
 * shared parameters, parameter I/O, dropout masks keyed by the step and
 * turned off outside training, data errors reported by ct_program_run, and
 * the gradients of parameters that do not reach the loss. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

#define S0 ((ct_shape){0, {0}})
#define S1(a) ((ct_shape){1, {a}})
#define S2(a, b) ((ct_shape){2, {a, b}})

TestSuite(program, .timeout = 60);

static void fill_random(float *v, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        v[i] = lo + (hi - lo) * ct_philox_uniform(seed, 9, 0, i);
        if (fabsf(v[i]) < 1e-3f) v[i] = 0.25f;
    }
}

/* ---- layout ------------------------------------------------------------- */

Test(program, params_in_creation_order_aligned_to_16) {
    ct_graph *g = ct_graph_new();
    static const ct_shape shapes[] = {S1(5), S1(16), S1(17), S0, S2(2, 3), S2(4, 8)};
    static const size_t want_off[] = {0, 16, 32, 64, 80, 96};
    const int n = 6;
    ct_node p[6];
    char name[16];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "p%d", i);
        p[i] = ct_param(g, name, CT_F32, shapes[i], ct_init_constant(i + 1.0));
        cr_assert_neq(p[i], CT_NO_NODE, "%s", ct_last_error());
    }
    cr_assert_eq(ct_graph_num_params(g), n);
    for (int i = 0; i < n; i++) cr_assert_eq(ct_graph_param(g, i), p[i]);
    ct_node loss = ct_sum(g, p[5], CT_AXIS_ALL, false);
    ct_program *pr = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1});
    cr_assert_not_null(pr, "%s", ct_last_error());
    cr_assert_eq(ct_program_param_dtype(pr), CT_F32);
    cr_assert_eq(ct_program_param_numel(pr), 128, "numel %zu", ct_program_param_numel(pr));
    for (int i = 0; i < n; i++)
        cr_assert_eq(ct_program_param_offset(pr, p[i]), want_off[i], "param %d at %zu, want %zu", i,
                     ct_program_param_offset(pr, p[i]), want_off[i]);
    cr_assert_eq(ct_program_param_offset(pr, loss), (size_t)-1, "not a parameter");
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);

    /* Values at their offsets, the gaps zero; the raw pointer agrees. */
    float flat[128];
    cr_assert_eq(ct_program_read_params(pr, flat, sizeof flat), CT_OK, "%s", ct_last_error());
    const float *raw = ct_program_params(pr);
    cr_assert_not_null(raw);
    cr_assert_not_null(ct_program_grads(pr));
    cr_assert(memcmp(raw, flat, sizeof flat) == 0);
    size_t covered[128] = {0};
    for (int i = 0; i < n; i++) {
        int64_t numel = ct_shape_numel(shapes[i]);
        for (int64_t j = 0; j < numel; j++) {
            cr_assert_eq(flat[want_off[i] + (size_t)j], (float)(i + 1), "param %d element %lld", i, (long long)j);
            covered[want_off[i] + (size_t)j] = 1;
        }
    }
    for (size_t k = 0; k < 128; k++)
        if (!covered[k]) cr_assert_eq(flat[k], 0.0f, "gap element %zu is %g", k, flat[k]);
    cr_assert_eq(ct_program_read_params(pr, flat, sizeof flat - 4), CT_ERR_SHAPE);
    ct_program_free(pr);
    ct_graph_free(g);
}

/* ---- initial weights ---------------------------------------------------- */

static ct_graph *init_graph(uint64_t seed, ct_node *loss) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, seed);
    ct_node x = ct_input(g, "x", CT_F32, S2(2, 10));
    ct_node w = ct_param(g, "w", CT_F32, S2(7, 10), ct_init_xavier_uniform(1.0));
    ct_node b = ct_param(g, "b", CT_F32, S1(7), ct_init_normal(0.0, 0.5));
    ct_node v = ct_param(g, "v", CT_F32, S2(3, 7), ct_init_kaiming_normal(0.0, CT_FAN_IN, CT_NONLIN_RELU));
    ct_node h = ct_relu(g, ct_add(g, ct_matmul(g, x, w, false, true), b));
    *loss = ct_sum(g, ct_matmul(g, h, v, false, true), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_status(g), CT_OK, "%s", ct_graph_error(g));
    return g;
}

static float *weights(ct_graph *g, ct_node loss, size_t *n) {
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    *n = ct_program_param_numel(p);
    float *w = malloc(*n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(ct_program_read_params(p, w, *n * sizeof *w), CT_OK);
    ct_program_free(p);
    return w;
}

Test(program, initial_weights_follow_the_seed) {
    ct_node l1, l2, l3;
    ct_graph *g1 = init_graph(42, &l1), *g2 = init_graph(42, &l2), *g3 = init_graph(43, &l3);
    size_t n1, n1b, n2, n3;
    float *a = weights(g1, l1, &n1);
    float *a2 = weights(g1, l1, &n1b); /* the same graph compiled again */
    float *b = weights(g2, l2, &n2);   /* a twin graph, same seed */
    float *c = weights(g3, l3, &n3);   /* another seed */
    cr_assert(n1 == n1b && n1 == n2 && n1 == n3);
    cr_assert(memcmp(a, a2, n1 * sizeof *a) == 0, "two compiles of one graph differ");
    cr_assert(memcmp(a, b, n1 * sizeof *a) == 0, "two graphs with the same seed differ");
    size_t same = 0, nonzero = 0;
    for (size_t i = 0; i < n1; i++) {
        same += a[i] == c[i];
        nonzero += a[i] != 0.0f;
    }
    cr_assert_lt(same, n1 / 2, "seed 43 gives %zu of %zu weights equal to seed 42's", same, n1);
    cr_assert_gt(nonzero, 70 + 7 + 21 - 3, "weights drawn: %zu non-zero", nonzero);

    /* Each parameter is its init rule drawn from stream (seed, index). */
    ct_program *p = ct_compile(g1, &(ct_compile_opts){.outputs = &l1, .n_outputs = 1});
    cr_assert_not_null(p);
    static const char *const names[] = {"w", "b", "v"};
    for (int i = 0; i < 3; i++) {
        ct_node pn = ct_graph_param(g1, i);
        ct_shape s = ct_node_shape(g1, pn);
        size_t numel = (size_t)ct_shape_numel(s);
        float got[70], want[70];
        cr_assert_str_eq(ct_node_name(g1, pn), names[i]);
        cr_assert_eq(ct_program_get_param(p, names[i], got, numel * sizeof(float)), CT_OK, "%s", ct_last_error());
        ct_init rule = i == 0 ? ct_init_xavier_uniform(1.0)
                       : i == 1 ? ct_init_normal(0.0, 0.5)
                                : ct_init_kaiming_normal(0.0, CT_FAN_IN, CT_NONLIN_RELU);
        cr_assert_eq(ct_init_fill(&rule, s, CT_F32, 42, (uint32_t)i, want), CT_OK);
        cr_assert(memcmp(got, want, numel * sizeof(float)) == 0, "param '%s' is not init(seed 42, stream %d)",
                  names[i], i);
        cr_assert(memcmp(got, a + ct_program_param_offset(p, pn), numel * sizeof(float)) == 0);
    }
    ct_program_free(p);
    free(a);
    free(a2);
    free(b);
    free(c);
    ct_graph_free(g1);
    ct_graph_free(g2);
    ct_graph_free(g3);
}

/* ---- parameter I/O and sharing ------------------------------------------ */

Test(program, read_write_params_round_trip) {
    ct_node loss;
    ct_graph *g = init_graph(7, &loss);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1});
    cr_assert_not_null(p);
    size_t n = ct_program_param_numel(p);
    float *w = malloc(n * sizeof *w), *r = malloc(n * sizeof *r);
    cr_assert(w && r);
    fill_random(w, n, 99, -3.0f, 3.0f);
    cr_assert_eq(ct_program_write_params(p, w, n * sizeof *w), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read_params(p, r, n * sizeof *r), CT_OK);
    cr_assert(memcmp(w, r, n * sizeof *w) == 0, "write_params then read_params changed the values");

    /* by name */
    float b[7], b2[7];
    fill_random(b, 7, 5, -1.0f, 1.0f);
    cr_assert_eq(ct_program_set_param(p, "b", b, sizeof b), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_get_param(p, "b", b2, sizeof b2), CT_OK);
    cr_assert(memcmp(b, b2, sizeof b) == 0);
    cr_assert_eq(ct_program_read_params(p, r, n * sizeof *r), CT_OK);
    size_t off = ct_program_param_offset(p, ct_find(g, "b"));
    cr_assert(memcmp(r + off, b, sizeof b) == 0, "set_param did not land at the parameter's offset");
    cr_assert(memcmp(r, w, off * sizeof *r) == 0, "set_param touched other parameters");

    /* errors */
    cr_assert_eq(ct_program_set_param(p, "b", b, sizeof b - 4), CT_ERR_SHAPE);
    cr_assert_eq(ct_program_get_param(p, "nope", b, sizeof b), CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "nope") != NULL, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_param(p, "x", b, sizeof b), CT_ERR_NOT_FOUND, "an input is not a parameter");
    cr_assert_eq(ct_program_write_params(p, w, n * sizeof *w + 4), CT_ERR_SHAPE);
    cr_assert_eq(ct_program_write_params(p, NULL, n * sizeof *w), CT_ERR_SHAPE);
    cr_assert_eq(ct_program_read_grads(p, r, 3), CT_ERR_SHAPE);
    free(w);
    free(r);
    ct_program_free(p);
    ct_graph_free(g);
}

/* A training graph and an evaluation graph for another batch size share one
 * set of parameters. */
static ct_graph *batch_graph(int batch, ct_node *loss, ct_node *out) {
    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, batch); /* different seeds: sharing must not redraw */
    ct_node x = ct_input(g, "x", CT_F32, S2(batch, 4));
    ct_node w = ct_param(g, "w", CT_F32, S2(3, 4), ct_init_uniform(-1, 1));
    ct_node b = ct_param(g, "b", CT_F32, S1(3), ct_init_uniform(-1, 1));
    *out = ct_add(g, ct_matmul(g, x, w, false, true), b);
    *loss = ct_mean(g, ct_mul(g, *out, *out), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, *loss), CT_OK, "%s", ct_last_error());
    return g;
}

Test(program, share_params) {
    ct_node lt, ot, le, oe;
    ct_graph *gt = batch_graph(8, &lt, &ot), *ge = batch_graph(2, &le, &oe);
    ct_program *pt = ct_compile(gt, &(ct_compile_opts){.outputs = &lt, .n_outputs = 1, .grads = true});
    cr_assert_not_null(pt, "%s", ct_last_error());
    ct_program *pe = ct_compile(ge, &(ct_compile_opts){.outputs = &oe, .n_outputs = 1, .share_params = pt});
    cr_assert_not_null(pe, "%s", ct_last_error());
    cr_assert_eq(ct_program_params(pe), ct_program_params(pt), "not the same buffer");
    cr_assert_eq(ct_program_grads(pe), ct_program_grads(pt));
    cr_assert_eq(ct_program_param_numel(pe), ct_program_param_numel(pt));

    /* A write through one is seen by the other, and used by its runs. */
    float w[12], b[3], got[12];
    fill_random(w, 12, 1, -1, 1);
    fill_random(b, 3, 2, -1, 1);
    cr_assert_eq(ct_program_set_param(pt, "w", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_set_param(pt, "b", b, sizeof b), CT_OK);
    cr_assert_eq(ct_program_get_param(pe, "w", got, sizeof got), CT_OK);
    cr_assert(memcmp(w, got, sizeof w) == 0);
    float x[8] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 1, -2};
    cr_assert_eq(ct_program_set_input(pe, "x", x, sizeof x), CT_OK);
    cr_assert_eq(ct_program_run(pe), CT_OK, "%s", ct_last_error());
    float out[6];
    cr_assert_eq(ct_program_read(pe, oe, out, sizeof out), CT_OK);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 3; j++) {
            double want = b[j];
            for (int k = 0; k < 4; k++) want += (double)x[r * 4 + k] * w[j * 4 + k];
            cr_assert_float_eq(out[r * 3 + j], want, 1e-5, "out[%d][%d]", r, j);
        }
    /* and the other way round */
    w[5] = 9.0f;
    cr_assert_eq(ct_program_write_params(pe, ct_program_params(pt), ct_program_param_numel(pt) * sizeof(float)),
                 CT_OK);
    cr_assert_eq(ct_program_set_param(pe, "w", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_get_param(pt, "w", got, sizeof got), CT_OK);
    cr_assert_eq(got[5], 9.0f);

    /* A graph with other parameters cannot share. */
    ct_graph *go = ct_graph_new();
    ct_node xo = ct_input(go, "x", CT_F32, S2(2, 4));
    ct_node wo = ct_param(go, "w", CT_F32, S2(4, 4), ct_init_zeros());
    ct_node bo = ct_param(go, "b", CT_F32, S1(3), ct_init_zeros());
    ct_node oo = ct_add(go, ct_sum(go, ct_matmul(go, xo, wo, false, true), CT_AXIS_ALL, false),
                        ct_sum(go, bo, CT_AXIS_ALL, false));
    cr_assert_null(ct_compile(go, &(ct_compile_opts){.outputs = &oo, .n_outputs = 1, .share_params = pt}));
    cr_assert_neq(ct_last_status(), CT_OK);
    cr_assert(strstr(ct_last_error(), "share_params") != NULL, "%s", ct_last_error());

    ct_program_free(pe);
    ct_program_free(pt);
    ct_graph_free(go);
    ct_graph_free(gt);
    ct_graph_free(ge);
}

/* ---- dropout ------------------------------------------------------------ */

#define DN 4000

typedef struct drop {
    ct_graph *g;
    ct_node x, y, loss, gx;
    ct_program *p;
} drop;

static drop drop_program(double p) {
    drop d;
    d.g = ct_graph_new();
    ct_graph_set_seed(d.g, 77);
    d.x = ct_input(d.g, "x", CT_F32, S1(DN));
    ct_set_requires_grad(d.g, d.x, true);
    d.y = ct_dropout(d.g, d.x, p);
    static float r[DN];
    fill_random(r, DN, 3, 0.5f, 1.5f);
    d.loss = ct_sum(d.g, ct_mul(d.g, d.y, ct_constant(d.g, CT_F32, S1(DN), r)), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(d.g, d.loss), CT_OK, "%s", ct_last_error());
    d.gx = ct_grad(d.g, d.x);
    ct_node outs[] = {d.y, d.loss, d.gx};
    d.p = ct_compile(d.g, &(ct_compile_opts){.outputs = outs, .n_outputs = 3, .grads = true});
    cr_assert_not_null(d.p, "%s", ct_last_error());
    return d;
}

static void drop_run(drop *d, const float *x, float *y, float *gx) {
    cr_assert_eq(ct_program_set_input(d->p, "x", x, DN * sizeof(float)), CT_OK);
    cr_assert_eq(ct_program_run(d->p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(d->p, d->y, y, DN * sizeof(float)), CT_OK);
    if (gx) cr_assert_eq(ct_program_read(d->p, d->gx, gx, DN * sizeof(float)), CT_OK);
}

Test(program, dropout_masks_follow_the_step) {
    drop d = drop_program(0.3);
    static float x[DN], y0[DN], y1[DN], y0b[DN], g0[DN];
    fill_random(x, DN, 8, 0.5f, 2.0f); /* no zeros: a zero output means dropped */
    cr_assert_eq(ct_program_step(d.p), 0);
    drop_run(&d, x, y0, g0);
    cr_assert_eq(ct_program_step(d.p), 1, "a run advances the step");
    drop_run(&d, x, y1, NULL);
    cr_assert_eq(ct_program_step(d.p), 2);

    int dropped = 0, differ = 0;
    for (int i = 0; i < DN; i++) {
        bool z0 = y0[i] == 0.0f, z1 = y1[i] == 0.0f;
        dropped += z0;
        differ += z0 != z1;
        if (!z0) cr_assert_float_eq(y0[i], x[i] / 0.7f, 1e-6f * x[i], "kept element %d is not x / (1 - p)", i);
        /* the backward drops the same elements and scales the rest alike */
        if (z0) cr_assert_eq(g0[i], 0.0f, "element %d dropped forward but not backward", i);
        else cr_assert_neq(g0[i], 0.0f, "element %d kept forward but dropped backward", i);
    }
    cr_assert(dropped > 0.25 * DN && dropped < 0.35 * DN, "dropped %d of %d at p = 0.3", dropped, DN);
    cr_assert_gt(differ, DN / 5, "steps 0 and 1 have nearly the same mask (%d differ)", differ);

    /* the same step gives the same mask */
    ct_program_set_step(d.p, 0);
    cr_assert_eq(ct_program_step(d.p), 0);
    drop_run(&d, x, y0b, NULL);
    cr_assert(memcmp(y0, y0b, sizeof y0) == 0, "step 0 twice gave different masks");
    ct_program_set_step(d.p, 1);
    drop_run(&d, x, y0b, NULL);
    cr_assert(memcmp(y1, y0b, sizeof y1) == 0, "step 1 twice gave different masks");

    /* not training: the identity, whatever the step */
    ct_program_set_training(d.p, false);
    for (uint32_t s = 0; s < 3; s++) {
        ct_program_set_step(d.p, s);
        drop_run(&d, x, y0b, g0);
        cr_assert(memcmp(x, y0b, sizeof x) == 0, "dropout is not the identity outside training (step %u)", s);
        for (int i = 0; i < DN; i++) cr_assert_neq(g0[i], 0.0f, "no element may be dropped in eval");
    }
    ct_program_set_training(d.p, true);
    ct_program_set_step(d.p, 0);
    drop_run(&d, x, y0b, NULL);
    cr_assert(memcmp(y0, y0b, sizeof y0) == 0, "training again reproduces step 0's mask");
    ct_program_free(d.p);
    ct_graph_free(d.g);
}

Test(program, dropout_seed_and_node_streams) {
    /* two dropout nodes of one graph draw different masks */
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S1(DN));
    ct_node a = ct_dropout(g, x, 0.5), b = ct_dropout(g, x, 0.5);
    ct_node outs[] = {a, b};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2});
    cr_assert_not_null(p);
    static float xv[DN], ya[DN], yb[DN];
    for (int i = 0; i < DN; i++) xv[i] = 1.0f;
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK);
    cr_assert_eq(ct_program_read(p, a, ya, sizeof ya), CT_OK);
    cr_assert_eq(ct_program_read(p, b, yb, sizeof yb), CT_OK);
    int differ = 0;
    for (int i = 0; i < DN; i++) {
        cr_assert(ya[i] == 0.0f || ya[i] == 2.0f, "value %g", ya[i]);
        differ += (ya[i] == 0.0f) != (yb[i] == 0.0f);
    }
    cr_assert_gt(differ, DN / 4, "two dropout nodes share a mask");
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- data errors at run time -------------------------------------------- */

Test(program, embedding_index_out_of_range) {
    ct_graph *g = ct_graph_new();
    ct_node table = ct_param(g, "table", CT_F32, S2(5, 3), ct_init_uniform(-1, 1));
    ct_node idx = ct_input(g, "idx", CT_I32, S1(4));
    ct_node e = ct_embedding(g, table, idx);
    ct_node loss = ct_sum(g, e, CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());

    int32_t bad[4] = {0, 4, 5, 1};
    cr_assert_eq(ct_program_set_input(p, "idx", bad, sizeof bad), CT_OK);
    ct_status st = ct_program_run(p);
    cr_assert_neq(st, CT_OK, "index 5 of a 5-row table must fail");
    cr_assert_eq(ct_last_status(), st);
    cr_assert(strstr(ct_last_error(), "embedding") != NULL, "message: %s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "5") != NULL, "message: %s", ct_last_error());

    int32_t neg[4] = {0, -1, 2, 1};
    cr_assert_eq(ct_program_set_input(p, "idx", neg, sizeof neg), CT_OK);
    cr_assert_neq(ct_program_run(p), CT_OK, "index -1 must fail");
    cr_assert(strstr(ct_last_error(), "-1") != NULL, "message: %s", ct_last_error());

    /* the program is still usable with good data; repeats accumulate */
    int32_t good[4] = {0, 4, 4, 1};
    cr_assert_eq(ct_program_set_input(p, "idx", good, sizeof good), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    float gt[15];
    cr_assert_eq(ct_program_read(p, ct_grad(g, table), gt, sizeof gt), CT_OK);
    static const float rows[5] = {1, 1, 0, 0, 2};
    for (int r = 0; r < 5; r++)
        for (int j = 0; j < 3; j++) cr_assert_eq(gt[r * 3 + j], rows[r], "grad table[%d][%d] = %g", r, j, gt[r * 3 + j]);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(program, cross_entropy_label_out_of_range) {
    ct_graph *g = ct_graph_new();
    ct_node logits = ct_input(g, "logits", CT_F32, S2(3, 4));
    ct_node labels = ct_input(g, "labels", CT_I32, S1(3));
    ct_node loss = ct_cross_entropy(g, logits, labels, 0.0);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());
    float lg[12];
    fill_random(lg, 12, 4, -1, 1);
    int32_t y[3] = {1, 4, 0};
    cr_assert_eq(ct_program_set_input(p, "logits", lg, sizeof lg), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "labels", y, sizeof y), CT_OK);
    cr_assert_neq(ct_program_run(p), CT_OK);
    cr_assert(strstr(ct_last_error(), "cross_entropy") != NULL && strstr(ct_last_error(), "4") != NULL,
              "message: %s", ct_last_error());
    y[1] = 3;
    cr_assert_eq(ct_program_set_input(p, "labels", y, sizeof y), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    float l;
    cr_assert_eq(ct_program_read(p, loss, &l, sizeof l), CT_OK);
    double want = 0;
    for (int r = 0; r < 3; r++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, lg[r * 4 + j]);
        for (int j = 0; j < 4; j++) s += exp(lg[r * 4 + j] - m);
        want += m + log(s) - lg[r * 4 + y[r]];
    }
    cr_assert_float_eq(l, want / 3, 1e-5);
    ct_program_free(p);
    ct_graph_free(g);
}

/* ---- gradients ---------------------------------------------------------- */

Test(program, unused_param_gets_zero_gradient) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S2(2, 3));
    ct_node used = ct_param(g, "used", CT_F32, S2(4, 3), ct_init_uniform(-1, 1));
    ct_node unused = ct_param(g, "unused", CT_F32, S1(20), ct_init_uniform(-1, 1));
    ct_node side = ct_param(g, "side", CT_F32, S1(5), ct_init_uniform(-1, 1));
    ct_node side_out = ct_tanh(g, side); /* computed, but not part of the loss */
    ct_node loss = ct_sum(g, ct_tanh(g, ct_matmul(g, x, used, false, true)), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    cr_assert_neq(ct_grad(g, used), CT_NO_NODE);
    cr_assert_eq(ct_grad(g, unused), CT_NO_NODE);
    cr_assert_eq(ct_grad(g, side), CT_NO_NODE);
    ct_node outs[] = {loss, side_out};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    float xv[6] = {0.3f, -0.7f, 1.1f, 0.9f, -0.2f, 0.5f};
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    size_t n = ct_program_param_numel(p);
    float *gr = malloc(n * sizeof *gr);
    cr_assert_not_null(gr);
    for (int run = 0; run < 2; run++) {
        cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_program_read_grads(p, gr, n * sizeof *gr), CT_OK);
        size_t ou = ct_program_param_offset(p, used), on = ct_program_param_offset(p, unused),
               os = ct_program_param_offset(p, side);
        int nonzero = 0;
        for (size_t i = 0; i < 12; i++) nonzero += gr[ou + i] != 0.0f;
        cr_assert_eq(nonzero, 12, "the used parameter's gradient has zeros");
        for (size_t i = 0; i < 20; i++) cr_assert_eq(gr[on + i], 0.0f, "unused grad[%zu] = %g", i, gr[on + i]);
        for (size_t i = 0; i < 5; i++) cr_assert_eq(gr[os + i], 0.0f, "side grad[%zu] = %g", i, gr[os + i]);
    }
    free(gr);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(program, gradients_are_overwritten_not_accumulated) {
    ct_node loss, out;
    ct_graph *g = batch_graph(4, &loss, &out);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    float x[16];
    fill_random(x, 16, 21, -1, 1);
    cr_assert_eq(ct_program_set_input(p, "x", x, sizeof x), CT_OK);
    size_t n = ct_program_param_numel(p);
    float *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
    cr_assert(g1 && g2);
    cr_assert_eq(ct_program_run(p), CT_OK);
    cr_assert_eq(ct_program_read_grads(p, g1, n * sizeof *g1), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK);
    cr_assert_eq(ct_program_read_grads(p, g2, n * sizeof *g2), CT_OK);
    cr_assert(memcmp(g1, g2, n * sizeof *g1) == 0, "a second run changed the gradients");
    double norm = 0;
    for (size_t i = 0; i < n; i++) norm += (double)g1[i] * g1[i];
    cr_assert_gt(norm, 1e-6);
    /* The gradient of b is d mean(out^2) / db = 2 * sum over rows of out / numel. */
    float w[12], b[3];
    cr_assert_eq(ct_program_get_param(p, "w", w, sizeof w), CT_OK);
    cr_assert_eq(ct_program_get_param(p, "b", b, sizeof b), CT_OK);
    size_t ob = ct_program_param_offset(p, ct_find(g, "b"));
    for (int j = 0; j < 3; j++) {
        double want = 0;
        for (int r = 0; r < 4; r++) {
            double o = b[j];
            for (int k = 0; k < 4; k++) o += (double)x[r * 4 + k] * w[j * 4 + k];
            want += 2.0 * o / 12.0;
        }
        cr_assert_float_eq(g1[ob + (size_t)j], want, 1e-5, "grad b[%d]", j);
    }
    free(g1);
    free(g2);
    ct_program_free(p);
    ct_graph_free(g);
}

Test(program, device_and_defaults) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S1(3));
    ct_node y = ct_exp(g, x);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p);
    cr_assert_eq(ct_program_device(p).kind, CT_DEVICE_CPU);
    cr_assert_eq(ct_program_step(p), 0);
    cr_assert_eq(ct_program_param_numel(p), 0, "no parameters");
    float v[3] = {0.5f, -1.0f, 2.0f}, o[3];
    cr_assert_eq(ct_program_set_input(p, "x", v, sizeof v), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK);
    cr_assert_eq(ct_program_read(p, y, o, sizeof o), CT_OK);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(o[i], expf(v[i]), 1e-6f);
    /* a program without parameters reads and writes an empty flat buffer */
    cr_assert_eq(ct_program_read_params(p, o, 0), CT_OK);
    /* NULL options: the CPU, no outputs kept */
    ct_program *q = ct_compile(g, NULL);
    cr_assert_not_null(q, "%s", ct_last_error());
    cr_assert_eq(ct_program_run(q), CT_OK);
    ct_program_free(q);
    ct_program_free(p);
    ct_graph_free(g);
}

/* A program stays valid when its graph grows afterwards: compiling a
 * forward program first and calling ct_graph_backward later (or building
 * more of the model) reallocates the graph's node array, and the program
 * must not keep pointers into it. (It once kept each node's attributes by
 * pointer: a use-after-free that AddressSanitizer reports at once, and
 * that gives wrong scale factors and softmax axes once the freed block is
 * reused, which the scribbling below provokes without a sanitizer.) */
Test(program, graph_grows_after_compile) {
    ct_graph *g = ct_graph_new();
    ct_node x = ct_input(g, "x", CT_F32, S2(2, 3));
    ct_set_requires_grad(g, x, true);
    ct_node h = x;
    for (int i = 0; i < 10; i++) h = ct_scale(g, h, i % 2 ? 0.5 : 3.0);
    ct_node y = ct_softmax(g, h, 0);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert_not_null(p, "%s", ct_last_error());

    /* grow well past any capacity: backward, then many more nodes */
    ct_node loss = ct_sum(g, ct_mul(g, y, y), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node z = loss;
    for (int i = 0; i < 2000; i++) z = ct_scale(g, z, 1.0);
    cr_assert_eq(ct_graph_status(g), CT_OK);
    for (int i = 0; i < 64; i++) {
        size_t sz = (size_t)(i + 1) * 4096;
        unsigned char *junk = malloc(sz);
        cr_assert_not_null(junk);
        memset(junk, 0x41, sz);
        free(junk);
    }

    float xv[6] = {0.1f, 0.2f, 0.3f, -0.1f, 0.05f, 0.4f}, out[6];
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, y, out, sizeof out), CT_OK);
    /* the chain multiplies by 3 * 0.5 five times: 1.5^5; softmax over axis 0 */
    double k = pow(1.5, 5);
    for (int j = 0; j < 3; j++) {
        double a = exp(k * xv[j]), b = exp(k * xv[3 + j]);
        cr_assert_float_eq(out[j], a / (a + b), 1e-5, "out[0][%d]", j);
        cr_assert_float_eq(out[3 + j], b / (a + b), 1e-5, "out[1][%d]", j);
    }
    /* and a program compiled now, with gradients, works too */
    ct_node outs[] = {loss, ct_grad(g, x)};
    ct_program *q = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true});
    cr_assert_not_null(q, "%s", ct_last_error());
    cr_assert_eq(ct_program_set_input(q, "x", xv, sizeof xv), CT_OK);
    cr_assert_eq(ct_program_run(q), CT_OK, "%s", ct_last_error());
    ct_program_free(q);
    ct_program_free(p);
    ct_graph_free(g);
}

/* Gradient nodes that autodiff would share: two parameters receiving the
 * very same upstream gradient, a loss that is a parameter itself, and a
 * loss that no parameter reaches. Each parameter's gradient must land in
 * its own slot of the flat buffer. */
Test(program, shared_and_trivial_gradients) {
    ct_graph *g = ct_graph_new();
    ct_node w = ct_param(g, "w", CT_F32, S2(2, 3), ct_init_uniform(-1, 1));
    ct_node v = ct_param(g, "v", CT_F32, S2(2, 3), ct_init_uniform(-1, 1));
    ct_node u = ct_param(g, "u", CT_F32, S0, ct_init_constant(2.0));
    ct_node x = ct_input(g, "x", CT_F32, S2(2, 3));
    ct_set_requires_grad(g, x, true);
    /* loss = 3 * sum(w + v + x) + u: dw = dv = dx = 3, du = 1 */
    ct_node s = ct_scale(g, ct_sum(g, ct_add(g, ct_add(g, w, v), x), CT_AXIS_ALL, false), 3.0);
    ct_node loss = ct_add(g, s, u);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    ct_node gw = ct_grad(g, w), gv = ct_grad(g, v), gu = ct_grad(g, u), gx = ct_grad(g, x);
    cr_assert(gw != CT_NO_NODE && gv != CT_NO_NODE && gu != CT_NO_NODE && gx != CT_NO_NODE);
    cr_assert(gw != gv && gw != gx && gv != gx, "sources must not share a gradient node");
    ct_node outs[] = {loss, gx};
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = outs, .n_outputs = 2, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    float xv[6] = {1, 2, 3, 4, 5, 6};
    cr_assert_eq(ct_program_set_input(p, "x", xv, sizeof xv), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    size_t n = ct_program_param_numel(p);
    float gr[64];
    cr_assert_leq(n, 64);
    cr_assert_eq(ct_program_read_grads(p, gr, n * sizeof(float)), CT_OK);
    size_t ow = ct_program_param_offset(p, w), ov = ct_program_param_offset(p, v), ou = ct_program_param_offset(p, u);
    for (int i = 0; i < 6; i++) {
        cr_assert_float_eq(gr[ow + (size_t)i], 3.0f, 1e-6f, "dw[%d]", i);
        cr_assert_float_eq(gr[ov + (size_t)i], 3.0f, 1e-6f, "dv[%d]", i);
    }
    cr_assert_float_eq(gr[ou], 1.0f, 1e-6f, "du");
    float gxv[6];
    cr_assert_eq(ct_program_read(p, gx, gxv, sizeof gxv), CT_OK);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(gxv[i], 3.0f, 1e-6f, "dx[%d]", i);
    ct_program_free(p);
    ct_graph_free(g);

    /* The loss is a parameter. */
    g = ct_graph_new();
    u = ct_param(g, "u", CT_F64, S0, ct_init_constant(5.0));
    cr_assert_eq(ct_graph_backward(g, u), CT_OK, "%s", ct_last_error());
    cr_assert_neq(ct_grad(g, u), CT_NO_NODE);
    p = ct_compile(g, &(ct_compile_opts){.outputs = &u, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    double du = 0, uv = 0;
    cr_assert_eq(ct_program_read(p, ct_grad(g, u), &du, sizeof du), CT_OK);
    cr_assert_eq(ct_program_read(p, u, &uv, sizeof uv), CT_OK);
    cr_assert_eq(du, 1.0);
    cr_assert_eq(uv, 5.0);
    ct_program_free(p);
    ct_graph_free(g);

    /* No parameter reaches the loss: backward succeeds, gradients are zero. */
    g = ct_graph_new();
    w = ct_param(g, "w", CT_F32, S1(4), ct_init_ones());
    x = ct_input(g, "x", CT_F32, S1(4));
    loss = ct_sum(g, ct_exp(g, x), CT_AXIS_ALL, false);
    cr_assert_eq(ct_graph_backward(g, loss), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_grad(g, w), CT_NO_NODE);
    p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(p, "%s", ct_last_error());
    float x4[4] = {0.1f, 0.2f, 0.3f, 0.4f}, g4[16];
    cr_assert_eq(ct_program_set_input(p, "x", x4, sizeof x4), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_param_numel(p), 16);
    cr_assert_eq(ct_program_read_grads(p, g4, sizeof g4), CT_OK);
    for (int i = 0; i < 16; i++) cr_assert_eq(g4[i], 0.0f);
    ct_program_free(p);
    ct_graph_free(g);
}
