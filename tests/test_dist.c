/* Data parallelism within one process: the single-process communicator,
 * argument errors, launcher detection, the program's gradient-ready hook
 * and the reducer. The 2-rank runs are in tests/mpi (under mpirun).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>
#include <ctrain/nn.h>

#include "core/program_internal.h"

#define B 6
#define FEAT 5
#define CLASSES 3

static float rnd(uint64_t seed, uint64_t i) { return ct_philox_uniform(seed, 0, 0, i) * 2 - 1; }

/* ------------------------------------------------------------ communicator */

Test(dist, single_communicator_is_a_no_op) {
    ct_comm *c = ct_comm_new(CT_COMM_SINGLE, NULL);
    cr_assert_not_null(c, "%s", ct_last_error());
    cr_assert_eq(ct_comm_rank(c), 0);
    cr_assert_eq(ct_comm_size(c), 1);
    cr_assert_eq(ct_comm_local_rank(c), 0);
    cr_assert_eq(ct_comm_get_kind(c), CT_COMM_SINGLE);
    cr_assert_eq(ct_comm_device(c).kind, CT_DEVICE_CPU);
    float x[37], x0[37];
    for (int i = 0; i < 37; i++) x[i] = x0[i] = rnd(1, (uint64_t)i);
    cr_assert_eq(ct_comm_allreduce(c, x, 37, CT_REDUCE_SUM), CT_OK);
    cr_assert_eq(ct_comm_allreduce(c, x, 37, CT_REDUCE_AVG), CT_OK);
    cr_assert_eq(ct_comm_allreduce_start(c, x, 37, CT_REDUCE_AVG), CT_OK);
    cr_assert_eq(ct_comm_progress(c), CT_OK);
    cr_assert_eq(ct_comm_wait(c), CT_OK);
    cr_assert_eq(ct_comm_broadcast(c, x, sizeof x, 0), CT_OK);
    cr_assert_eq(ct_comm_barrier(c), CT_OK);
    cr_assert_arr_eq(x, x0, sizeof x);
    double h[2] = {rnd(2, 0), rnd(2, 1)}, h0[2] = {h[0], h[1]};
    cr_assert_eq(ct_comm_sum_host(c, h, 2), CT_OK);
    cr_assert_arr_eq(h, h0, sizeof h);
    ct_comm_free(c);
}

Test(dist, bad_arguments_are_errors) {
    ct_comm *c = ct_comm_new(CT_COMM_SINGLE, NULL);
    float x[4] = {1, 2, 3, 4};
    cr_assert_eq(ct_comm_broadcast(c, x, sizeof x, 1), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "root 1 outside 0 .. 0"), "%s", ct_last_error());
    cr_assert_eq(ct_comm_allreduce(c, NULL, 4, CT_REDUCE_SUM), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_comm_allreduce(c, x, 4, (ct_reduce_op)7), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_comm_sum_host(c, NULL, 1), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_comm_allreduce(NULL, x, 4, CT_REDUCE_SUM), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_comm_new((ct_comm_kind)9, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert_null(ct_comm_new(CT_COMM_SINGLE, &(ct_comm_opts){.timeout_s = -1}));
    cr_assert(strstr(ct_last_error(), "timeout_s -1"), "%s", ct_last_error());
    setenv("CTRAIN_DIST_TIMEOUT", "soon", 1);
    cr_assert_null(ct_comm_new(CT_COMM_SINGLE, NULL));
    cr_assert(strstr(ct_last_error(), "CTRAIN_DIST_TIMEOUT='soon'"), "%s", ct_last_error());
    unsetenv("CTRAIN_DIST_TIMEOUT");
    ct_comm_free(c);
}

Test(dist, kinds_this_build_lacks_are_refused) {
    cr_assert(ct_comm_available(CT_COMM_SINGLE));
    cr_assert_str_eq(ct_comm_kind_name(CT_COMM_MPI), "mpi");
    cr_assert_str_eq(ct_comm_kind_name(CT_COMM_NCCL), "nccl");
#ifndef CTRAIN_HAVE_MPI
    cr_assert_not(ct_comm_available(CT_COMM_MPI));
    cr_assert_null(ct_comm_new(CT_COMM_MPI, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_UNSUPPORTED);
    cr_assert(strstr(ct_last_error(), "no mpi communicator"), "%s", ct_last_error());
#endif
    if (!ct_comm_available(CT_COMM_NCCL)) {
        cr_assert_null(ct_comm_new(CT_COMM_NCCL, NULL));
        cr_assert_eq(ct_last_status(), CT_ERR_UNSUPPORTED);
    }
}

Test(dist, launcher_detected_from_the_environment) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_RANK");
    unsetenv("PMI_SIZE");
    cr_assert_not(ct_dist_launched());
    cr_assert_eq(ct_dist_launched_size(), 1);
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    cr_assert(ct_dist_launched());
    cr_assert_eq(ct_dist_launched_size(), 3);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("PMI_RANK", "0", 1);
    setenv("PMI_SIZE", "4", 1);
    cr_assert(ct_dist_launched());
    cr_assert_eq(ct_dist_launched_size(), 4);
}

/* ------------------------------------------------------------ a model */

typedef struct net {
    ct_graph *g;
    ct_program *p;
    ct_node loss;
} net;

/* A 3-layer MLP; `unused` adds a parameter that does not reach the loss. */
static net make_net(bool unused, ct_dtype dtype) {
    net n = {.g = ct_graph_new()};
    ct_graph_set_seed(n.g, 5);
    ct_node x = ct_input(n.g, "x", dtype, (ct_shape){2, {B, FEAT}});
    ct_node y = ct_input(n.g, "labels", CT_I32, (ct_shape){1, {B}});
    if (unused) ct_param(n.g, "spare", dtype, (ct_shape){1, {7}}, ct_init_uniform(-1, 1));
    ct_node h = ct_activation(n.g, ct_linear(n.g, "fc1", x, 9, true, NULL), "tanh");
    h = ct_activation(n.g, ct_linear(n.g, "fc2", h, 8, true, NULL), "relu");
    n.loss = ct_cross_entropy(n.g, ct_linear(n.g, "fc3", h, CLASSES, true, NULL), y, 0);
    cr_assert_eq(ct_graph_backward(n.g, n.loss), CT_OK, "%s", ct_last_error());
    n.p = ct_compile(n.g, &(ct_compile_opts){.outputs = &n.loss, .n_outputs = 1, .grads = true});
    cr_assert_not_null(n.p, "%s", ct_last_error());
    if (dtype == CT_F32) {
        float xs[B * FEAT];
        int32_t ys[B];
        for (int i = 0; i < B * FEAT; i++) xs[i] = rnd(3, (uint64_t)i);
        for (int i = 0; i < B; i++) ys[i] = (int32_t)(ct_philox_u32(4, 0, 0, (uint64_t)i) % CLASSES);
        cr_assert_eq(ct_program_set_input(n.p, "x", xs, sizeof xs), CT_OK);
        cr_assert_eq(ct_program_set_input(n.p, "labels", ys, sizeof ys), CT_OK);
    }
    return n;
}

static void free_net(net *n) {
    ct_program_free(n->p);
    ct_graph_free(n->g);
}

static float *grads_copy(ct_program *p) {
    size_t n = ct_program_param_numel(p);
    float *g = malloc(n * sizeof *g);
    cr_assert_not_null(g);
    cr_assert_eq(ct_program_read_grads(p, g, n * sizeof *g), CT_OK);
    return g;
}

/* ------------------------------------------------------------ the hook */

typedef struct seen {
    net *n;
    int order[16];
    int count;
    float *at_report; /* the gradient buffer as each parameter was reported */
} seen;

static void record(void *user, int param) {
    seen *s = user;
    cr_assert_lt(s->count, 16);
    s->order[s->count++] = param;
    /* Copy this parameter's slot as it is now, to compare with the end. */
    ct_node pn = ct_graph_param(s->n->g, param);
    size_t off = ct_program_param_offset(s->n->p, pn);
    size_t len = (size_t)ct_shape_numel(ct_node_shape(s->n->g, pn));
    const float *g = ct_program_grads(s->n->p);
    memcpy(s->at_report + off, g + off, len * sizeof *g);
}

Test(dist, grad_hook_reports_every_final_gradient_once) {
    net n = make_net(true, CT_F32);
    int np = ct_graph_num_params(n.g); /* spare + 3 x (weight, bias) */
    cr_assert_eq(np, 7);
    seen s = {.n = &n, .at_report = calloc(ct_program_param_numel(n.p), sizeof(float))};
    ct_program_set_grad_hook(n.p, record, &s);
    cr_assert_eq(ct_program_run(n.p), CT_OK, "%s", ct_last_error());
    float *final = grads_copy(n.p);
    /* The spare parameter never gets a gradient and is never reported. */
    cr_assert_not(ct_program_computes_grad(n.p, 0));
    cr_assert_eq(s.count, np - 1);
    bool got[7] = {false};
    for (int k = 0; k < s.count; k++) {
        cr_assert(s.order[k] >= 1 && s.order[k] < np && !got[s.order[k]], "parameter %d reported twice", s.order[k]);
        got[s.order[k]] = true;
        cr_assert(ct_program_computes_grad(n.p, s.order[k]));
    }
    /* What was reported was already final, bit for bit. */
    cr_assert_arr_eq(s.at_report, final, ct_program_param_numel(n.p) * sizeof(float));
    /* Backward finishes the last layer first, the first layer last. */
    cr_assert(s.order[0] >= 5, "first reported: parameter %d", s.order[0]);
    cr_assert(s.order[s.count - 1] <= 2, "last reported: parameter %d", s.order[s.count - 1]);
    /* Removed, it is silent. */
    int before = s.count;
    ct_program_set_grad_hook(n.p, NULL, NULL);
    cr_assert_eq(ct_program_run(n.p), CT_OK);
    cr_assert_eq(s.count, before);
    free(final);
    free(s.at_report);
    free_net(&n);
}

/* ------------------------------------------------------------ reducer */

Test(dist, reducer_over_one_rank_keeps_the_gradients) {
    net n = make_net(false, CT_F32);
    cr_assert_eq(ct_program_run(n.p), CT_OK);
    float *plain = grads_copy(n.p);
    size_t len = ct_program_param_numel(n.p);
    ct_comm *c = ct_comm_new(CT_COMM_SINGLE, NULL);
    for (int mode = 0; mode < 2; mode++) {
        ct_ddp *d = ct_ddp_new(c, n.g, n.p, &(ct_ddp_opts){.bucket_bytes = 64, .no_overlap = mode == 1});
        cr_assert_not_null(d, "%s", ct_last_error());
        cr_assert_eq(ct_ddp_run(d, n.p, true, 1.0), CT_OK, "%s", ct_last_error());
        float *g = grads_copy(n.p);
        cr_assert_arr_eq(g, plain, len * sizeof *g);
        free(g);
        /* A rank's weight scales what it contributes. */
        cr_assert_eq(ct_ddp_run(d, n.p, true, 0.5), CT_OK);
        g = grads_copy(n.p);
        for (size_t i = 0; i < len; i++) cr_assert_eq(g[i], plain[i] * 0.5f);
        free(g);
        cr_assert_eq(ct_ddp_sync(d, 4.0), CT_OK);
        g = grads_copy(n.p);
        for (size_t i = 0; i < len; i++) cr_assert_eq(g[i], plain[i] * 2.0f);
        free(g);
        ct_ddp_stats st = ct_ddp_get_stats(d);
        /* 6 parameters, each 16-float aligned slot >= 64 bytes: a bucket each. */
        cr_assert_eq(st.buckets, mode == 1 ? 1 : 6);
        cr_assert_eq(st.reductions, 3);
        cr_assert_eq(st.early, mode == 1 ? 0 : 12);
        cr_assert_eq(ct_ddp_broadcast(d), CT_OK);
        ct_ddp_free(d);
    }
    free(plain);
    ct_comm_free(c);
    free_net(&n);
}

Test(dist, reducer_refuses_what_it_cannot_reduce) {
    ct_comm *c = ct_comm_new(CT_COMM_SINGLE, NULL);
    net n = make_net(false, CT_F64);
    cr_assert_null(ct_ddp_new(c, n.g, n.p, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_DTYPE);
    cr_assert(strstr(ct_last_error(), "f32"), "%s", ct_last_error());
    cr_assert_null(ct_ddp_new(NULL, n.g, n.p, NULL));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_ddp_run(NULL, n.p, true, 1), CT_ERR_INVALID_ARG);
    free_net(&n);
    /* A program with other gradients than the reducer's. */
    net a = make_net(false, CT_F32), b = make_net(false, CT_F32);
    ct_ddp *d = ct_ddp_new(c, a.g, a.p, NULL);
    cr_assert_not_null(d);
    cr_assert_eq(ct_ddp_run(d, b.p, true, 1), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "does not share"), "%s", ct_last_error());
    ct_ddp_free(d);
    free_net(&a);
    free_net(&b);
    ct_comm_free(c);
}

/* ------------------------------------------------------------ trainer */

static ct_node mlp(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    return ct_linear(g, "fc2", ct_activation(g, ct_linear(g, "fc1", x, 12, true, NULL), "relu"), CLASSES, true, NULL);
}

static float *train_weights(ct_comm *c, int accum, size_t *n) {
    enum { N = 90 };
    float x[N * FEAT];
    int32_t y[N];
    for (int i = 0; i < N * FEAT; i++) x[i] = rnd(6, (uint64_t)i);
    for (int i = 0; i < N; i++) y[i] = (int32_t)(ct_philox_u32(7, 0, 0, (uint64_t)i) % CLASSES);
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(N, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK);
    ct_train_opts o = {.model = mlp,
                       .seed = 3,
                       .data_seed = 4,
                       .batch_size = 16,
                       .epochs = 2,
                       .accum_steps = accum,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.9},
                       .quiet = true,
                       .comm = c,
                       .dist_bucket_bytes = 128};
    ct_trainer *t = ct_trainer_new(&o, ds, NULL, ds);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    cr_assert(r.test_acc > 0.3, "test accuracy %g", r.test_acc);
    ct_program *p = ct_trainer_program(t);
    *n = ct_program_param_numel(p);
    float *w = malloc(*n * sizeof *w);
    cr_assert_eq(ct_program_read_params(p, w, *n * sizeof *w), CT_OK);
    ct_trainer_free(t);
    ct_dataset_free(ds);
    return w;
}

/* One rank through the data-parallel path is exactly a plain run. */
Test(dist, trainer_with_one_rank_is_a_plain_run) {
    ct_comm *c = ct_comm_new(CT_COMM_SINGLE, NULL);
    for (int accum = 1; accum <= 2; accum++) {
        size_t n1, n2;
        float *plain = train_weights(NULL, accum, &n1);
        float *dist = train_weights(c, accum, &n2);
        cr_assert_eq(n1, n2);
        cr_assert_arr_eq(plain, dist, n1 * sizeof *plain, "accum %d", accum);
        free(plain);
        free(dist);
    }
    ct_comm_free(c);
}
