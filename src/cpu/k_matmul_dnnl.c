/* BF16 and F32 matrix products through oneDNN's matmul (Debian's
 * libdnnl-dev), where the build found it (gcc builds: Debian's libdnnl runs
 * on libgomp, the same OpenMP pool as the kernels and OpenBLAS).
 *
 * Why: OpenBLAS 0.3.21 as Debian builds it has no bf16 GEMM, so the
 * reference widens BF16 operands to F32 in scratch and calls sgemm - slower
 * than F32 itself. oneDNN multiplies BF16 directly with the CPU's
 * AVX512-BF16 (or AMX) units where it has them, accumulating in F32 as the
 * reference does (products of two BF16 are exact in F32; only the order of
 * the sums differs, as between any two GEMMs).
 *
 * One primitive per product shape (sizes, transposes, output dtype),
 * created the first time the shape is asked for - at compile time, when the
 * backend asks for the kernel's scratch - and kept for the life of the
 * process, like a GPU library's plan cache. Its scratchpad is ctrain's
 * scratch (user mode), and its memory objects take the operands' addresses
 * per run, so a run allocates nothing. Runs of one entry are serialised by
 * a lock (the memory objects are shared); programs run from one host
 * thread, so it is never contended in practice.
 *
 * F32 products: oneDNN's matmul (its brgemm kernels, JIT-compiled per
 * shape) ran the GPT's products 1.6 times faster than OpenBLAS 0.3.21 on
 * this project's 2-core AVX-512 machine (17.5 against 28.2 ms for a step's
 * set, same two threads; docs/cpu_backend.md), mostly because OpenBLAS
 * barely gains from a second thread on these small shapes. k_matmul.c
 * sends it the F32 products whose K is below DNNL_MM_MAX_K: oneDNN splits
 * the K sum across threads for some shapes with a long K (weight gradients
 * of 2048 rows or more, K of 20000 or more), and that would make results
 * depend on the number of threads. Large products beyond that go to
 * oneDNN's sgemm (ct_cpu_dnnl_sgemm), the rest to OpenBLAS. */
#include <stddef.h>

#include "cpu/cpu_matmul.h"
#include "ctrain/device.h"

#ifdef CTRAIN_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

#include "cpu/cpu_simd.h"

#define CACHE_SIZE 512 /* shapes; a model has a few dozen */

struct ct_dnnl_mm {
    int64_t m, n, k;
    bool ta, tb;
    ct_dtype in, out;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, pad;
    size_t pad_bytes;
};

static struct ct_dnnl_mm cache[CACHE_SIZE];
static int n_cached;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static dnnl_stream_t stream;
static int started; /* 0: not yet; 1: usable; -1: oneDNN refused */

static bool start(void) {
    if (!started)
        started = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success &&
                          dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success
                      ? 1
                      : -1;
    return started == 1;
}

/* Row-major [rows, cols] stored as such, or transposed ([cols, rows] in
 * memory): the strides oneDNN needs for the logical [rows, cols]. */
static dnnl_status_t plain_md(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, bool trans, dnnl_data_type_t dt) {
    dnnl_dims_t d = {rows, cols}, s = {trans ? 1 : cols, trans ? rows : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, d, dt, s);
}

static bool build(struct ct_dnnl_mm *e) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_data_type_t idt = e->in == CT_BF16 ? dnnl_bf16 : dnnl_f32, odt = e->out == CT_BF16 ? dnnl_bf16 : dnnl_f32;
    bool ok = plain_md(&a_md, e->m, e->k, e->ta, idt) == dnnl_success &&
              plain_md(&b_md, e->k, e->n, e->tb, idt) == dnnl_success &&
              plain_md(&c_md, e->m, e->n, false, odt) == dnnl_success &&
              dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success &&
              dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
              dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) == dnnl_success &&
              dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    const dnnl_memory_desc_t *pad_md = ok ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    e->pad_bytes = pad_md ? dnnl_memory_desc_get_size(pad_md) : 0;
    ok = ok && dnnl_memory_create(&e->a, &a_md, engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->b, &b_md, engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&e->c, &c_md, engine, DNNL_MEMORY_NONE) == dnnl_success &&
         (!e->pad_bytes || dnnl_memory_create(&e->pad, pad_md, engine, DNNL_MEMORY_NONE) == dnnl_success);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok;
}

static void unbuild(struct ct_dnnl_mm *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    dnnl_memory_t *m[4] = {&e->a, &e->b, &e->c, &e->pad};
    for (int i = 0; i < 4; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
}

const ct_dnnl_mm *ct_cpu_dnnl_mm_get(int64_t m, int64_t n, int64_t k, bool ta, bool tb, ct_dtype in, ct_dtype out) {
    bool dtypes = in == CT_BF16 ? out == CT_F32 || out == CT_BF16 : in == CT_F32 && out == CT_F32;
    if (!ct_cpu_fast_paths_enabled() || m <= 0 || n <= 0 || k <= 0 || !dtypes) return NULL;
    pthread_mutex_lock(&lock);
    struct ct_dnnl_mm *found = NULL;
    for (int i = 0; i < n_cached && !found; i++) {
        struct ct_dnnl_mm *e = &cache[i];
        if (e->m == m && e->n == n && e->k == k && e->ta == ta && e->tb == tb && e->in == in && e->out == out)
            found = e;
    }
    if (!found && n_cached < CACHE_SIZE && start()) {
        struct ct_dnnl_mm *e = &cache[n_cached];
        *e = (struct ct_dnnl_mm){.m = m, .n = n, .k = k, .ta = ta, .tb = tb, .in = in, .out = out};
        if (build(e)) found = e, n_cached++;
        else unbuild(e), *e = (struct ct_dnnl_mm){0}; /* refused: the widening path serves this shape */
    }
    pthread_mutex_unlock(&lock);
    return found;
}

size_t ct_cpu_dnnl_mm_scratch(const ct_dnnl_mm *e) { return e ? e->pad_bytes : 0; }

bool ct_cpu_dnnl_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float *c, int64_t ldc) {
    if (!ct_cpu_fast_paths_enabled()) return false;
    return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc) == dnnl_success;
}

bool ct_cpu_bf16_native(void) { return ct_cpu_dnnl_mm_get(16, 16, 16, false, false, CT_BF16, CT_F32) != NULL; }

ct_status ct_cpu_dnnl_mm_run(const ct_dnnl_mm *e, const void *a, const void *b, void *c, void *scratch) {
    struct ct_dnnl_mm *w = (struct ct_dnnl_mm *)e; /* handles change per run, the entry does not */
    pthread_mutex_lock(&lock);
    bool ok = dnnl_memory_set_data_handle(w->a, (void *)a) == dnnl_success &&
              dnnl_memory_set_data_handle(w->b, (void *)b) == dnnl_success &&
              dnnl_memory_set_data_handle(w->c, c) == dnnl_success &&
              (!w->pad || dnnl_memory_set_data_handle(w->pad, scratch) == dnnl_success);
    if (ok) {
        dnnl_exec_arg_t args[4] = {
            {DNNL_ARG_SRC, w->a}, {DNNL_ARG_WEIGHTS, w->b}, {DNNL_ARG_DST, w->c}, {DNNL_ARG_SCRATCHPAD, w->pad}};
        ok = dnnl_primitive_execute(w->prim, stream, w->pad ? 4 : 3, args) == dnnl_success &&
             dnnl_stream_wait(stream) == dnnl_success;
    }
    pthread_mutex_unlock(&lock);
    return ok ? CT_OK
              : ct_error(CT_ERR_INTERNAL, "matmul: oneDNN's %s product [%lld, %lld] x [%lld, %lld] failed",
                         ct_dtype_name(e->in), (long long)e->m, (long long)e->k, (long long)e->k, (long long)e->n);
}

#else
bool ct_cpu_dnnl_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float *c, int64_t ldc) {
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)c, (void)ldc;
    return false;
}
bool ct_cpu_bf16_native(void) { return false; }
const ct_dnnl_mm *ct_cpu_dnnl_mm_get(int64_t m, int64_t n, int64_t k, bool ta, bool tb, ct_dtype in, ct_dtype out) {
    (void)m, (void)n, (void)k, (void)ta, (void)tb, (void)in, (void)out;
    return NULL;
}
size_t ct_cpu_dnnl_mm_scratch(const ct_dnnl_mm *e) {
    (void)e;
    return 0;
}
ct_status ct_cpu_dnnl_mm_run(const ct_dnnl_mm *e, const void *a, const void *b, void *c, void *scratch) {
    (void)e, (void)a, (void)b, (void)c, (void)scratch;
    return CT_ERR_UNSUPPORTED;
}
#endif
