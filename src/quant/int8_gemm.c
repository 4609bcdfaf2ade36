/* Int8 matrix products with int32 accumulation on the CPU: weight packing,
 * the kernel choice, and the portable kernel.
 *
 * Integer sums are exact, so every kernel and every thread split gives the
 * same int32 results; the tests compare them with a plain reference. The
 * portable kernel is the one every machine runs and the one the fast
 * kernel (int8_vnni.c) is checked against.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/quant.h"
#include "quant/int8_internal.h"

static ct_int8_kernel chosen = CT_INT8_AUTO;

ct_status ct_int8_set_kernel(ct_int8_kernel k) {
    if (k == CT_INT8_VNNI && !ct_int8_vnni_available())
        return ct_error(CT_ERR_UNSUPPORTED, "int8 kernel avx512-vnni: this CPU (or build) has no AVX-512 VNNI");
    if (k == CT_INT8_ONEDNN && !ct_int8_onednn_available())
        return ct_error(CT_ERR_UNSUPPORTED, "int8 kernel onednn: this build has no oneDNN (libdnnl-dev)");
    if (k != CT_INT8_AUTO && k != CT_INT8_PORTABLE && k != CT_INT8_VNNI && k != CT_INT8_ONEDNN)
        return ct_error(CT_ERR_INVALID_ARG, "int8 kernel %d does not exist", (int)k);
    chosen = k;
    return CT_OK;
}

/* The CPUID answer, asked once. */
static bool vnni_here(void) {
    static int known = -1;
    if (known < 0) known = ct_int8_vnni_available();
    return known;
}

static bool use_onednn(void) {
    return chosen == CT_INT8_ONEDNN || (chosen == CT_INT8_AUTO && ct_int8_onednn_available());
}

static bool use_vnni(void) {
    return chosen == CT_INT8_VNNI || ((chosen == CT_INT8_AUTO || chosen == CT_INT8_ONEDNN) && vnni_here());
}

bool ct_int8_use_avx512(void) { return chosen != CT_INT8_PORTABLE && vnni_here(); }

const char *ct_int8_kernel_name(void) {
    return use_onednn() ? "onednn" : use_vnni() ? "avx512-vnni" : "portable";
}

ct_int8_matrix *ct_int8_pack(const int8_t *w, int64_t n, int64_t k) {
    if (!w || n < 1 || k < 1 || k > (1 << 16) || n > (1LL << 31)) {
        ct_error(CT_ERR_INVALID_ARG, "ct_int8_pack: weights [%lld, %lld] (need 1 <= k <= 65536)", (long long)n,
                 (long long)k);
        return NULL;
    }
    ct_int8_matrix *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->n = n, p->k = k, p->kp = (k + 3) / 4 * 4, p->nblocks = (n + CT_INT8_NB - 1) / CT_INT8_NB;
    size_t pbytes = (size_t)(p->nblocks * CT_INT8_NB * p->kp);
    p->rows = malloc((size_t)(n * k));
    p->packed = aligned_alloc(64, (pbytes + 63) / 64 * 64);
    if (!p->rows || !p->packed) goto oom;
    memcpy(p->rows, w, (size_t)(n * k));
    p->onednn = ct_int8_onednn_prepare(w, n, k); /* NULL without oneDNN, or if it cannot take these */
    memset(p->packed, 0, pbytes);
    for (int64_t o = 0; o < n; o++) {
        int64_t j = o / CT_INT8_NB, c = o % CT_INT8_NB;
        for (int64_t kk = 0; kk < k; kk++) {
            int64_t g = kk / 4, t = kk % 4;
            p->packed[((j * (p->kp / 4) + g) * CT_INT8_NB + c) * 4 + t] = w[o * k + kk];
        }
    }
    return p;
oom:
    ct_int8_matrix_free(p);
    ct_error(CT_ERR_OOM, "ct_int8_pack: out of memory for weights [%lld, %lld]", (long long)n, (long long)k);
    return NULL;
}

void ct_int8_matrix_free(ct_int8_matrix *w) {
    if (!w) return;
    free(w->rows);
    free(w->packed);
    ct_int8_onednn_free(w->onednn);
    free(w);
}

int64_t ct_int8_matrix_rows(const ct_int8_matrix *w) { return w ? w->n : 0; }
int64_t ct_int8_matrix_cols(const ct_int8_matrix *w) { return w ? w->k : 0; }

/* One output row at a time; the inner loop over k is a plain dot product
 * the compiler may vectorize. */
static void gemm_portable(const ct_int8_matrix *w, const uint8_t *a, int64_t m, int64_t lda, int32_t *c) {
    int64_t n = w->n, k = w->k;
#pragma omp parallel for schedule(static) if (m * n * k >= (1 << 20))
    for (int64_t i = 0; i < m; i++) {
        const uint8_t *ar = a + i * lda;
        for (int64_t o = 0; o < n; o++) {
            const int8_t *wr = w->rows + o * k;
            int32_t acc = 0;
            for (int64_t kk = 0; kk < k; kk++) acc += (int32_t)ar[kk] * (int32_t)wr[kk];
            c[i * n + o] = acc;
        }
    }
}

ct_status ct_int8_matmul(const ct_int8_matrix *w, const uint8_t *a, int64_t m, int64_t lda, int32_t *c) {
    if (!w || !a || !c || m < 0 || lda < w->k)
        return ct_error(CT_ERR_INVALID_ARG, "ct_int8_matmul: NULL operand, m < 0 or lda < k");
    if (m == 0) return CT_OK;
    if (use_onednn() && w->onednn) return ct_int8_onednn_run(w->onednn, a, m, lda, c);
    if (use_vnni())
        ct_int8_gemm_vnni(w, a, m, lda, c);
    else
        gemm_portable(w, a, m, lda, c);
    return CT_OK;
}

ct_status ct_int8_matmul_s8(ct_device dev, const int8_t *a, const int8_t *w, int64_t m, int64_t n, int64_t k,
                            int32_t *c) {
    if (!a || !w || !c || m < 1 || n < 1 || k < 1 || k > (1 << 16))
        return ct_error(CT_ERR_INVALID_ARG, "ct_int8_matmul_s8: NULL operand or sizes [%lld, %lld] x [%lld, %lld]",
                        (long long)m, (long long)k, (long long)n, (long long)k);
    if (dev.kind == CT_DEVICE_CUDA) return ct_cuda_int8_matmul_s8(dev.index, a, w, m, n, k, c);
    for (int64_t i = 0; i < m; i++)
        for (int64_t o = 0; o < n; o++) {
            int32_t acc = 0;
            for (int64_t kk = 0; kk < k; kk++) acc += (int32_t)a[i * k + kk] * (int32_t)w[o * k + kk];
            c[i * n + o] = acc;
        }
    return CT_OK;
}

#ifndef CTRAIN_HAVE_CUDA
ct_status ct_cuda_int8_matmul_s8(int ordinal, const int8_t *a, const int8_t *w, int64_t m, int64_t n, int64_t k,
                                 int32_t *c) {
    (void)ordinal, (void)a, (void)w, (void)m, (void)n, (void)k, (void)c;
    return ct_error(CT_ERR_UNSUPPORTED, "int8 products on CUDA: this build has no CUDA");
}
#endif
