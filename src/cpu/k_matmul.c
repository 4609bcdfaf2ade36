/* CPU matrix products: every MATMUL goes to BLAS.
 *
 * F32 and F64 call sgemm/dgemm directly on the operands. F16 and BF16 are
 * widened to F32 in the scratch area (exact), multiplied in F32 and rounded
 * once into the output; with an F32 output (the mixed-precision policy's
 * products) the F32 result is the output: half-precision operands, F32
 * accumulation and result. Where oneDNN is built in (and the fast paths
 * are on), BF16 operands go to its bf16 matmul instead (k_matmul_dnnl.c),
 * on the CPU's bf16 units, and so do F32 products with K below
 * DNNL_MM_MAX_K, to its F32 matmul; F64 stays with BLAS.
 */
#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_half.h"
#include "cpu/cpu_matmul.h"
#include "cpu/cpu_util.h"

/* The geometry of one (possibly batched) product, resolved from the views. */
typedef struct mm_geom {
    int64_t m, n, k;
    ct_shape batch_out, batch_a, batch_b; /* leading axes only */
    int64_t batch;                        /* numel of batch_out */
} mm_geom;

static int64_t numel_of(const ct_shape *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->dim[d];
    return n;
}

static ct_shape leading(const ct_shape *s) {
    ct_shape b = {0, {0}};
    b.ndim = s->ndim - 2;
    for (int d = 0; d < b.ndim; d++) b.dim[d] = s->dim[d];
    return b;
}

/* An operand's batch axes must each equal the output's or be 1; anything
 * else would make the broadcast offsets run outside the operand. */
static bool batch_fits(const ct_shape *out, const ct_shape *in) {
    if (in->ndim > out->ndim) return false;
    int shift = out->ndim - in->ndim;
    for (int d = 0; d < in->ndim; d++)
        if (in->dim[d] != 1 && in->dim[d] != out->dim[d + shift]) return false;
    return true;
}

static ct_status mm_resolve(const ct_kargs *k, mm_geom *g) {
    const ct_shape *a = &k->in[0].shape, *b = &k->in[1].shape, *o = &k->out.shape;
    char sa[96], sb[96], so[96];
    if (a->ndim < 2 || b->ndim < 2 || o->ndim < 2)
        return ct_error(CT_ERR_SHAPE, "matmul: operands %s and %s, output %s: each needs at least 2 axes",
                        ct_shape_str(*a, sa, sizeof sa), ct_shape_str(*b, sb, sizeof sb),
                        ct_shape_str(*o, so, sizeof so));
    bool ta = k->attr->trans_a, tb = k->attr->trans_b;
    int64_t am = a->dim[a->ndim - 2], ak = a->dim[a->ndim - 1];
    int64_t bk = b->dim[b->ndim - 2], bn = b->dim[b->ndim - 1];
    g->m = ta ? ak : am;
    g->k = ta ? am : ak;
    int64_t kb = tb ? bn : bk;
    g->n = tb ? bk : bn;
    g->batch_out = leading(o);
    g->batch_a = leading(a);
    g->batch_b = leading(b);
    g->batch = numel_of(&g->batch_out);
    int want_nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    if (g->k != kb || o->dim[o->ndim - 2] != g->m || o->dim[o->ndim - 1] != g->n ||
        o->ndim != want_nd || !batch_fits(&g->batch_out, &g->batch_a) ||
        !batch_fits(&g->batch_out, &g->batch_b))
        return ct_error(CT_ERR_SHAPE, "matmul: a %s%s and b %s%s do not give output %s",
                        ct_shape_str(*a, sa, sizeof sa), ta ? " (transposed)" : "",
                        ct_shape_str(*b, sb, sizeof sb), tb ? " (transposed)" : "",
                        ct_shape_str(*o, so, sizeof so));
    /* BLAS takes int sizes. */
    if (g->m > INT_MAX || g->n > INT_MAX || g->k > INT_MAX)
        return ct_error(CT_ERR_UNSUPPORTED, "matmul: sizes m=%lld n=%lld k=%lld exceed BLAS int range",
                        (long long)g->m, (long long)g->n, (long long)g->k);
    return CT_OK;
}

#define DNNL_SGEMM_MIN 268435456.0 /* m n k: 2^28 multiply-adds */
/* F32 products with K below this go to oneDNN's matmul (k_matmul_dnnl.c:
 * below it oneDNN never splits the K sum across threads). */
#define DNNL_MM_MAX_K 2048

static int ld(int64_t v) { return v > 0 ? (int)v : 1; }

/* One GEMM over row-major C[m, n] = op(A) op(B), with A stored [m, k] (or
 * [k, m] transposed) and B stored [k, n] (or [n, k]). */
static void gemm(bool dbl, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
                 const void *b, void *c) {
    int lda = ld(ta ? m : k), ldb = ld(tb ? k : n), ldc = ld(n);
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE opb = tb ? CblasTrans : CblasNoTrans;
    /* Large F32 products that oneDNN's matmul does not take (K too long) to
     * its sgemm where it is built in (faster there on the machines measured,
     * docs/cpu_backend.md); the others stay with OpenBLAS. */
    if (!dbl && (double)m * (double)n * (double)k >= DNNL_SGEMM_MIN &&
        ct_cpu_dnnl_sgemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc))
        return;
    if (dbl)
        cblas_dgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)k, 1.0, a, lda, b, ldb, 0.0, c,
                    ldc);
    else
        cblas_sgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)k, 1.0f, a, lda, b, ldb, 0.0f,
                    c, ldc);
}

/* A weight without batch axes applied to [B.., M, K]: the batch rows are
 * contiguous, so they form one tall GEMM instead of B small ones. */
static bool folds(const ct_kargs *k, const mm_geom *g) {
    return !k->attr->trans_a && numel_of(&g->batch_b) == 1 && g->batch * g->m <= INT_MAX;
}

/* The product on operands already in F32 (dbl false) or F64 (dbl true). */
static void mm_run(const ct_kargs *k, const mm_geom *g, bool dbl, const void *a, const void *b,
                   void *c) {
    size_t es = dbl ? sizeof(double) : sizeof(float);
    bool ta = k->attr->trans_a, tb = k->attr->trans_b;
    if (g->m == 0 || g->n == 0 || g->batch == 0) return;
    if (g->k == 0) {
        /* BLAS rejects lda = 0 on some builds; an empty sum is zero anyway. */
        memset(c, 0, (size_t)(g->batch * g->m * g->n) * es);
        return;
    }
    if (folds(k, g)) {
        gemm(dbl, ta, tb, g->batch * g->m, g->n, g->k, a, b, c);
        return;
    }
    int64_t sa = g->m * g->k, sb = g->k * g->n, sc = g->m * g->n;
    for (int64_t i = 0; i < g->batch; i++) {
        int64_t oa = ct_bcast_offset(&g->batch_out, &g->batch_a, i) * sa;
        int64_t ob = ct_bcast_offset(&g->batch_out, &g->batch_b, i) * sb;
        gemm(dbl, ta, tb, g->m, g->n, g->k, (const char *)a + (size_t)oa * es,
             (const char *)b + (size_t)ob * es, (char *)c + (size_t)(i * sc) * es);
    }
}

/* BF16 operands, or F32 ones with K below DNNL_MM_MAX_K: oneDNN's product
 * for this geometry (cpu_matmul.h), or NULL for the widening path (BF16) or
 * BLAS (F32). The same answer at compile time (scratch) and at run time:
 * entries are created once and never dropped. */
static const ct_dnnl_mm *dnnl_product(const ct_kargs *k, const mm_geom *g) {
    ct_dtype dt = k->in[0].dtype;
    if (k->in[1].dtype != dt || g->batch == 0) return NULL;
    if (dt != CT_BF16 && !(dt == CT_F32 && g->k < DNNL_MM_MAX_K)) return NULL;
    int64_t m = folds(k, g) ? g->batch * g->m : g->m;
    return ct_cpu_dnnl_mm_get(m, g->n, g->k, k->attr->trans_a, k->attr->trans_b, dt, k->out.dtype);
}

/* The product with oneDNN, over the batch as mm_run goes. */
static ct_status mm_run_dnnl(const ct_kargs *k, const mm_geom *g, const ct_dnnl_mm *e) {
    const char *a = k->in[0].data, *b = k->in[1].data;
    char *c = k->out.data;
    if (folds(k, g)) return ct_cpu_dnnl_mm_run(e, a, b, c, k->scratch);
    size_t es = ct_dtype_size(k->in[0].dtype), os = ct_dtype_size(k->out.dtype);
    int64_t sa = g->m * g->k, sb = g->k * g->n, sc = g->m * g->n;
    for (int64_t i = 0; i < g->batch; i++) {
        int64_t oa = ct_bcast_offset(&g->batch_out, &g->batch_a, i) * sa;
        int64_t ob = ct_bcast_offset(&g->batch_out, &g->batch_b, i) * sb;
        ct_status st = ct_cpu_dnnl_mm_run(e, a + (size_t)oa * es, b + (size_t)ob * es, c + (size_t)(i * sc) * os,
                                          k->scratch);
        if (st != CT_OK) return st;
    }
    return CT_OK;
}

/* Half operands are widened into scratch; a half result is also gathered
 * there in F32 before rounding, while an F32 one (the mixed-precision case)
 * is written by BLAS straight into the output. Products that oneDNN runs
 * need its scratchpad instead. */
size_t ct_cpu_matmul_scratch(const ct_kargs *k) {
    if (k->n_in < 2) return 0;
    mm_geom g;
    const ct_dnnl_mm *e = mm_resolve(k, &g) == CT_OK ? dnnl_product(k, &g) : NULL;
    if (e) return ct_cpu_dnnl_mm_scratch(e);
    if (!ct_cpu_is_half(k->in[0].dtype)) return 0;
    int64_t n = numel_of(&k->in[0].shape) + numel_of(&k->in[1].shape);
    if (ct_cpu_is_half(k->out.dtype)) n += numel_of(&k->out.shape);
    return (size_t)n * sizeof(float);
}

static void widen(const void *src, ct_dtype dt, int64_t n, float *dst) {
    const uint16_t *h = src;
    if (dt == CT_F16)
        for (int64_t i = 0; i < n; i++) dst[i] = ct_f16_to_f32(h[i]);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = ct_bf16_to_f32(h[i]);
}

static ct_status k_matmul(const ct_kargs *k) {
    ct_status st = ct_op_check_inputs("cpu", CT_OP_MATMUL, k->n_in);
    if (st != CT_OK) return st;
    ct_dtype dt = k->in[0].dtype, odt = k->out.dtype;
    if (k->in[1].dtype != dt || !ct_dtype_is_float(dt) || (odt != dt && !(ct_cpu_is_half(dt) && odt == CT_F32)))
        return ct_error(CT_ERR_DTYPE,
                        "matmul: operands %s and %s with output %s (need one float dtype, or F16/BF16 "
                        "operands with an F32 output)",
                        ct_dtype_name(dt), ct_dtype_name(k->in[1].dtype), ct_dtype_name(odt));
    mm_geom g;
    ct_status s = mm_resolve(k, &g);
    if (s != CT_OK) return s;
    const ct_dnnl_mm *e = dnnl_product(k, &g);
    if (e && ct_cpu_dnnl_mm_scratch(e) > 0 && !k->scratch) {
        /* No scratch for oneDNN's scratchpad: the program was compiled with
         * the fast paths off (nothing declared) and runs with them on; an
         * F32 product then takes BLAS, as it was declared for. */
        if (dt != CT_F32)
            return ct_error(CT_ERR_INTERNAL, "matmul: oneDNN's %s product needs %zu bytes of scratch, got none",
                            ct_dtype_name(dt), ct_cpu_dnnl_mm_scratch(e));
        e = NULL;
    }
    if (e) return mm_run_dnnl(k, &g, e);
    if (dt == CT_F32 || dt == CT_F64) {
        mm_run(k, &g, dt == CT_F64, k->in[0].data, k->in[1].data, k->out.data);
        return CT_OK;
    }
    if (k->scratch == NULL && ct_cpu_matmul_scratch(k) > 0)
        return ct_error(CT_ERR_INTERNAL, "matmul: %s operands need %zu bytes of scratch, got none",
                        ct_dtype_name(dt), ct_cpu_matmul_scratch(k));
    int64_t na = numel_of(&k->in[0].shape), nb = numel_of(&k->in[1].shape);
    int64_t nc = numel_of(&k->out.shape);
    float *fa = k->scratch, *fb = fa + na;
    float *fc = odt == CT_F32 ? k->out.data : fb + nb;
    widen(k->in[0].data, dt, na, fa);
    widen(k->in[1].data, dt, nb, fb);
    mm_run(k, &g, false, fa, fb, fc);
    if (odt == CT_F32) return CT_OK;
    uint16_t *o = k->out.data;
    if (dt == CT_F16)
        for (int64_t i = 0; i < nc; i++) o[i] = ct_f32_to_f16(fc[i]);
    else
        for (int64_t i = 0; i < nc; i++) o[i] = ct_f32_to_bf16(fc[i]);
    return CT_OK;
}

void ct_cpu_register_matmul(ct_kernel_fn *t) { t[CT_OP_MATMUL] = k_matmul; }
