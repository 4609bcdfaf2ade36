/* The int8 product through oneDNN's matmul (Debian's libdnnl-dev), where the
 * build found it: uint8 x int8 -> int32, exact like ctrain's own kernels,
 * but with oneDNN's kernels for the CPU at hand, chosen at run time (AMX
 * tiles on CPUs that have them, VNNI otherwise), which reach several times
 * the throughput of int8_vnni.c there (benchmarks/int8_onednn.c measures
 * both). One primitive per weight matrix, created when the matrix is packed,
 * with the batch size left to run time and the weights reordered once into
 * the layout the primitive prefers. */
#include <stddef.h>

#include "quant/int8_internal.h"

#ifdef CTRAIN_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/error.h"

struct ct_int8_dnnl {
    dnnl_primitive_t prim;
    dnnl_memory_t w;
    int64_t n, k;
};

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static bool usable;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void start(void) {
    usable = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success &&
             dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
}

bool ct_int8_onednn_available(void) {
    pthread_once(&once, start);
    return usable;
}

/* The primitive for [m, k] (m and the row stride at run time) x [k, n]. */
static bool make_primitive(struct ct_int8_dnnl *d, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t a_md, w_any, c_md;
    dnnl_dims_t ad = {DNNL_RUNTIME_DIM_VAL, d->k}, as = {DNNL_RUNTIME_DIM_VAL, 1};
    dnnl_dims_t wd = {d->k, d->n}, cd = {DNNL_RUNTIME_DIM_VAL, d->n}, cs = {d->n, 1};
    dnnl_matmul_desc_t md;
    return dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dnnl_u8, as) == dnnl_success &&
           dnnl_memory_desc_init_by_tag(&w_any, 2, wd, dnnl_s8, dnnl_format_tag_any) == dnnl_success &&
           dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_s32, cs) == dnnl_success &&
           dnnl_matmul_desc_init(&md, &a_md, &w_any, NULL, &c_md) == dnnl_success &&
           dnnl_primitive_desc_create(pd, &md, NULL, engine, NULL) == dnnl_success &&
           dnnl_primitive_create(&d->prim, *pd) == dnnl_success;
}

/* w [n, k] row-major is the k x n matrix "ba"; reordered into d->w. */
static bool reorder_weights(struct ct_int8_dnnl *d, dnnl_primitive_desc_t pd, const int8_t *w) {
    const dnnl_memory_desc_t *best = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t user;
    dnnl_dims_t wd = {d->k, d->n};
    dnnl_memory_t src = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    bool ok = best && dnnl_memory_desc_init_by_tag(&user, 2, wd, dnnl_s8, dnnl_ba) == dnnl_success &&
              dnnl_memory_create(&src, &user, engine, (void *)w) == dnnl_success &&
              dnnl_memory_create(&d->w, best, engine, DNNL_MEMORY_ALLOCATE) == dnnl_success &&
              dnnl_reorder_primitive_desc_create(&rpd, &user, engine, best, engine, NULL) == dnnl_success &&
              dnnl_primitive_create(&reorder, rpd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, d->w}};
        ok = dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
    }
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (src) dnnl_memory_destroy(src);
    return ok;
}

struct ct_int8_dnnl *ct_int8_onednn_prepare(const int8_t *w, int64_t n, int64_t k) {
    if (!ct_int8_onednn_available()) return NULL;
    struct ct_int8_dnnl *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->n = n, d->k = k;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = make_primitive(d, &pd) && reorder_weights(d, pd, w);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        ct_int8_onednn_free(d);
        return NULL; /* the caller keeps ctrain's own kernels for this matrix */
    }
    return d;
}

void ct_int8_onednn_free(struct ct_int8_dnnl *d) {
    if (!d) return;
    if (d->prim) dnnl_primitive_destroy(d->prim);
    if (d->w) dnnl_memory_destroy(d->w);
    free(d);
}

ct_status ct_int8_onednn_run(const struct ct_int8_dnnl *d, const uint8_t *a, int64_t m, int64_t lda, int32_t *c) {
    dnnl_memory_desc_t a_md, c_md;
    dnnl_dims_t ad = {m, d->k}, as = {lda, 1}, cd = {m, d->n}, cs = {d->n, 1};
    dnnl_memory_t am = NULL, cm = NULL;
    bool ok = dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dnnl_u8, as) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_s32, cs) == dnnl_success &&
              dnnl_memory_create(&am, &a_md, engine, (void *)a) == dnnl_success &&
              dnnl_memory_create(&cm, &c_md, engine, c) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, d->w}, {DNNL_ARG_DST, cm}};
        ok = dnnl_primitive_execute(d->prim, stream, 3, args) == dnnl_success &&
             dnnl_stream_wait(stream) == dnnl_success;
    }
    if (am) dnnl_memory_destroy(am);
    if (cm) dnnl_memory_destroy(cm);
    return ok ? CT_OK
              : ct_error(CT_ERR_INTERNAL, "int8 product with oneDNN [%lld, %lld] x [%lld, %lld] failed", (long long)m,
                         (long long)d->k, (long long)d->n, (long long)d->k);
}

#else
bool ct_int8_onednn_available(void) { return false; }
struct ct_int8_dnnl *ct_int8_onednn_prepare(const int8_t *w, int64_t n, int64_t k) {
    (void)w, (void)n, (void)k;
    return NULL;
}
void ct_int8_onednn_free(struct ct_int8_dnnl *d) { (void)d; }
ct_status ct_int8_onednn_run(const struct ct_int8_dnnl *d, const uint8_t *a, int64_t m, int64_t lda, int32_t *c) {
    (void)d, (void)a, (void)m, (void)lda, (void)c;
    return CT_ERR_UNSUPPORTED;
}
#endif
