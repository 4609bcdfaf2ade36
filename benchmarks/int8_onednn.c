/* The int8 products of `ctrain eval` against oneDNN's (libdnnl-dev, Debian's
 * oneDNN 2.6): the same uint8 x int8 -> int32 products on the MNIST MLP's
 * layer shapes, results compared (they must be equal: integer sums), then
 * timed. Not part of the build (oneDNN is no dependency of ctrain); it is
 * the measurement behind the choice of kernels in docs/compression.md,
 * for a quiet machine:
 *
 *     cmake --build build --target ctrain_static
 *     gcc -O2 -fopenmp -Iinclude benchmarks/int8_onednn.c build/libctrain.a \
 *         $(pkg-config --libs openblas) -ldnnl -lm -o /tmp/int8_onednn
 *     /tmp/int8_onednn            # OMP_NUM_THREADS=1 for one core
 *
 * oneDNN gets its weights reordered once into the layout it prefers
 * (format "any"), as ctrain packs its own once; only the products are timed
 * (median of 21 runs after 3 warm-up runs). */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ctrain/ctrain.h>

#define CHECK(call)                                                                      \
    do {                                                                                 \
        dnnl_status_t s_ = (call);                                                       \
        if (s_ != dnnl_success) {                                                        \
            fprintf(stderr, "int8_onednn: %s failed (status %d)\n", #call, (int)s_);     \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct onednn_mm {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t prim;
    dnnl_memory_t a, w, c;
} onednn_mm;

/* c [m, n] = a [m, k] (u8) . w [n, k]^T (s8), weights reordered once. */
static void onednn_setup(onednn_mm *o, const uint8_t *a, const int8_t *w, int32_t *c, int64_t m, int64_t n,
                         int64_t k) {
    CHECK(dnnl_engine_create(&o->eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&o->st, o->eng, dnnl_stream_default_flags));
    dnnl_memory_desc_t a_md, w_user, w_any, c_md;
    dnnl_dims_t ad = {m, k}, wd = {k, n}, cd = {m, n};
    CHECK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dnnl_u8, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&w_user, 2, wd, dnnl_s8, dnnl_ba)); /* [n, k] row-major is k x n "ba" */
    CHECK(dnnl_memory_desc_init_by_tag(&w_any, 2, wd, dnnl_s8, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_s32, dnnl_ab));
    dnnl_matmul_desc_t md;
    CHECK(dnnl_matmul_desc_init(&md, &a_md, &w_any, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, o->eng, NULL));
    CHECK(dnnl_primitive_create(&o->prim, pd));
    const dnnl_memory_desc_t *w_best = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t w_src;
    CHECK(dnnl_memory_create(&w_src, &w_user, o->eng, (void *)w));
    CHECK(dnnl_memory_create(&o->w, w_best, o->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &w_user, o->eng, w_best, o->eng, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, w_src}, {DNNL_ARG_TO, o->w}};
    CHECK(dnnl_primitive_execute(reorder, o->st, 2, rargs));
    CHECK(dnnl_stream_wait(o->st));
    CHECK(dnnl_memory_create(&o->a, &a_md, o->eng, (void *)a));
    CHECK(dnnl_memory_create(&o->c, &c_md, o->eng, c));
}

static void onednn_run(onednn_mm *o) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, o->a}, {DNNL_ARG_WEIGHTS, o->w}, {DNNL_ARG_DST, o->c}};
    CHECK(dnnl_primitive_execute(o->prim, o->st, 3, args));
    CHECK(dnnl_stream_wait(o->st));
}

static double median_seconds(void (*fn)(void *), void *arg) {
    double t[21];
    for (int i = 0; i < 3; i++) fn(arg);
    for (int i = 0; i < 21; i++) {
        double t0 = now();
        fn(arg);
        t[i] = now() - t0;
    }
    qsort(t, 21, sizeof t[0], cmp_double);
    return t[10];
}

typedef struct ours {
    const ct_int8_matrix *w;
    const uint8_t *a;
    int64_t m, k;
    int32_t *c;
} ours;

static void run_ours(void *p) {
    ours *o = p;
    ct_int8_matmul(o->w, o->a, o->m, o->k, o->c);
}
static void run_onednn(void *p) { onednn_run(p); }

int main(void) {
    /* ctrain's own kernel against oneDNN (which AUTO would pick in a build with it). */
    if (ct_int8_set_kernel(CT_INT8_VNNI) != CT_OK) ct_int8_set_kernel(CT_INT8_PORTABLE);
    const int64_t shapes[][3] = {{1000, 512, 784}, {1000, 256, 512}, {1000, 10, 256}, {64, 512, 784}};
    printf("%-18s %12s %12s %8s  %s\n", "m x n x k", "ctrain GOP/s", "oneDNN GOP/s", "ratio", "kernel");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        uint8_t *a = malloc((size_t)(m * k));
        int8_t *w = malloc((size_t)(n * k));
        int32_t *c1 = malloc((size_t)(m * n) * 4), *c2 = malloc((size_t)(m * n) * 4);
        for (int64_t i = 0; i < m * k; i++) a[i] = (uint8_t)(i * 7919 % 256);
        for (int64_t i = 0; i < n * k; i++) w[i] = (int8_t)(i * 104729 % 255 - 127);
        ct_int8_matrix *pw = ct_int8_pack(w, n, k);
        ours o = {pw, a, m, k, c1};
        onednn_mm d;
        onednn_setup(&d, a, w, c2, m, n, k);
        double t1 = median_seconds(run_ours, &o), t2 = median_seconds(run_onednn, &d);
        if (memcmp(c1, c2, (size_t)(m * n) * 4) != 0) {
            fprintf(stderr, "int8_onednn: the results differ for %lld x %lld x %lld\n", (long long)m, (long long)n,
                    (long long)k);
            return 1;
        }
        double ops = 2.0 * (double)m * (double)n * (double)k;
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
        printf("%-18s %12.1f %12.1f %8.2f  %s\n", shape, ops / t1 * 1e-9, ops / t2 * 1e-9, t2 / t1,
               ct_int8_kernel_name());
        ct_int8_matrix_free(pw);
        free(a), free(w), free(c1), free(c2);
    }
    return 0;
}
