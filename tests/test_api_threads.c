/* The API's thread contract (docs/api.md): different objects may be used
 * from different threads at once, with nothing shared between them, and
 * error messages are per thread. Criterion runs each test in a process of
 * its own, so the threads here are also the first users of the library in
 * that process (the backend table is filled while they race for it). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <ctrain/ctrain.h>

TestSuite(api_threads, .timeout = 120);

enum { THREADS = 4, N = 32, IN = 6, STEPS = 40 };

typedef struct job {
    uint64_t seed;     /* weights and data */
    float weights[64]; /* fc.weight [4, 6] then fc.bias [4], as trained */
    char error[256];   /* this thread's last error after a deliberate failure */
    int failed;        /* a call that should have worked did not */
} job;

/* Trains a small linear classifier from scratch: graph, program, optimizer,
 * all private to this thread. */
static void *train(void *arg) {
    job *j = arg;
    float x[N * IN];
    int32_t y[N];
    for (int i = 0; i < N * IN; i++) x[i] = 2.0f * ct_philox_uniform(j->seed, 1, 0, (uint64_t)i) - 1.0f;
    for (int i = 0; i < N; i++) y[i] = (int32_t)(ct_philox_u32(j->seed, 2, 0, (uint64_t)i) % 4);

    ct_graph *g = ct_graph_new();
    ct_graph_set_seed(g, j->seed);
    ct_node xn = ct_input(g, "x", CT_F32, (ct_shape){2, {N, IN}});
    ct_node yn = ct_input(g, "y", CT_I32, (ct_shape){1, {N}});
    ct_node loss = ct_cross_entropy(g, ct_linear(g, "fc", xn, 4, true, NULL), yn, 0.0);
    ct_program *p = NULL;
    ct_optimizer *opt = NULL;
    if (ct_graph_status(g) != CT_OK || ct_graph_backward(g, loss) != CT_OK ||
        !(p = ct_compile(g, &(ct_compile_opts){.outputs = &loss, .n_outputs = 1, .grads = true})) ||
        !(opt = ct_optimizer_new(g, p, &(ct_optim_opts){.kind = CT_OPTIM_ADAM, .lr = 0.05})) ||
        ct_program_set_input(p, "x", x, sizeof x) != CT_OK || ct_program_set_input(p, "y", y, sizeof y) != CT_OK)
        j->failed = 1;
    for (int s = 0; !j->failed && s < STEPS; s++)
        if (ct_program_run(p) != CT_OK || ct_optimizer_step(opt, 0.05) != CT_OK) j->failed = 1;
    if (!j->failed && (ct_program_get_param(p, "fc.weight", j->weights, 24 * sizeof(float)) != CT_OK ||
                       ct_program_get_param(p, "fc.bias", j->weights + 24, 4 * sizeof(float)) != CT_OK))
        j->failed = 1;
    /* A failure naming this thread's own seed: another thread's message
     * must not show up here. */
    char name[64];
    snprintf(name, sizeof name, "missing_%llu", (unsigned long long)j->seed);
    if (ct_program_set_input(p, name, x, sizeof x) == CT_OK) j->failed = 1;
    snprintf(j->error, sizeof j->error, "%s", ct_last_error());
    ct_optimizer_free(opt);
    ct_program_free(p);
    ct_graph_free(g);
    return NULL;
}

Test(api_threads, independent_objects_train_as_alone) {
    /* Threads 0 and 1 share a seed, 2 and 3 another: equal seeds must give
     * bit-identical weights however the threads interleave. */
    job jobs[THREADS] = {{.seed = 11}, {.seed = 11}, {.seed = 12}, {.seed = 12}};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) cr_assert_eq(pthread_create(&th[i], NULL, train, &jobs[i]), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);

    job alone = {.seed = 12};
    train(&alone);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_not(jobs[i].failed, "thread %d: %s", i, jobs[i].error);
        char want[64];
        snprintf(want, sizeof want, "missing_%llu", (unsigned long long)jobs[i].seed);
        cr_assert(strstr(jobs[i].error, want), "thread %d saw another thread's error: %s", i, jobs[i].error);
    }
    cr_assert_not(alone.failed, "%s", alone.error);
    cr_assert_eq(memcmp(jobs[0].weights, jobs[1].weights, 28 * sizeof(float)), 0);
    cr_assert_eq(memcmp(jobs[2].weights, jobs[3].weights, 28 * sizeof(float)), 0);
    cr_assert_eq(memcmp(jobs[2].weights, alone.weights, 28 * sizeof(float)), 0);
    /* The weights moved, and differently for different seeds. */
    cr_assert_neq(memcmp(jobs[0].weights, jobs[2].weights, 28 * sizeof(float)), 0);
    float sum = 0;
    for (int k = 0; k < 28; k++) sum += jobs[0].weights[k] * jobs[0].weights[k];
    cr_assert_gt(sum, 0.01f);
}
