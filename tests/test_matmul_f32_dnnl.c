/* F32 matrix products through oneDNN's matmul (src/cpu/k_matmul_dnnl.c,
 * products with K below DNNL_MM_MAX_K = 2048) against OpenBLAS's sgemm (the
 * fast paths off): both accumulate in F32, so the results differ only by
 * the order of the sums. The bound: |got - want| <= 2 K eps_f32 sum_k
 * |a_ik b_kj| + a tiny floor (each of K terms can carry one rounding of
 * the running sum on either side), which a real fault (a wrong stride, a
 * transposed operand) exceeds by orders of magnitude; the measured worst
 * is far below it. Covers the GPT's shapes (a linear layer's forward, its
 * input and weight gradients), both transposes, batched products with a
 * shared weight (folded) and batched weights, K just below and at the
 * limit, and the same bytes on 1, 2 and 3 threads (oneDNN's threads split
 * rows and columns only below the limit). F64 never goes there. Where
 * oneDNN is not built in both runs take OpenBLAS and the test checks it
 * against itself. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_matmul.h"
#include "cpu/cpu_simd.h"
#include "ctrain/ctrain.h"

typedef struct mm_case {
    const char *name;
    ct_shape a, b;
    bool ta, tb;
} mm_case;

static const mm_case cases[] = {
    {"linear forward [768, 128] x [384, 128]^T", {2, {768, 128}}, {2, {384, 128}}, false, true},
    {"input gradient [768, 512] x [512, 128]", {2, {768, 512}}, {2, {512, 128}}, false, false},
    {"weight gradient [768, 128]^T x [768, 65]", {2, {768, 128}}, {2, {768, 65}}, true, false},
    {"odd sizes", {2, {37, 70}}, {2, {70, 45}}, false, false},
    {"both transposed", {2, {19, 23}}, {2, {29, 19}}, true, true},
    {"batched, shared weight (folded)", {3, {3, 21, 50}}, {2, {50, 37}}, false, false},
    {"batched weights", {3, {4, 9, 26}}, {3, {4, 26, 11}}, false, false},
    {"K 2047 (oneDNN)", {2, {20, 2047}}, {2, {2047, 24}}, false, false},
    {"K 2048 weight gradient (BLAS)", {2, {2048, 24}}, {2, {2048, 16}}, true, false},
};

static void fill(float *v, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float x = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 4.0f;
        v[i] = x == 0.0f ? 0.25f : x;
    }
}

static void run(const mm_case *c, const float *a, const float *b, float *out, int64_t numel) {
    ct_graph *g = ct_graph_new();
    ct_node na = ct_input(g, "a", CT_F32, c->a), nb = ct_input(g, "b", CT_F32, c->b);
    ct_node y = ct_matmul(g, na, nb, c->ta, c->tb);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert(p, "%s: %s", c->name, ct_last_error());
    cr_assert_eq(ct_program_set_input(p, "a", a, (size_t)ct_shape_numel(c->a) * 4), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "b", b, (size_t)ct_shape_numel(c->b) * 4), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s: %s", c->name, ct_last_error());
    cr_assert_eq(ct_program_read(p, y, out, (size_t)numel * sizeof(float)), CT_OK);
    ct_program_free(p);
    ct_graph_free(g);
}

static void check_case(const mm_case *c, uint32_t seed) {
    int64_t na = ct_shape_numel(c->a), nb = ct_shape_numel(c->b);
    int64_t k = c->ta ? c->a.dim[c->a.ndim - 2] : c->a.dim[c->a.ndim - 1];
    int64_t m = c->ta ? c->a.dim[c->a.ndim - 1] : c->a.dim[c->a.ndim - 2];
    int64_t n = c->tb ? c->b.dim[c->b.ndim - 2] : c->b.dim[c->b.ndim - 1];
    int64_t numel = (c->a.ndim > 2 ? c->a.dim[0] : c->b.ndim > 2 ? c->b.dim[0] : 1) * m * n;
    float *a = malloc((size_t)na * 4), *b = malloc((size_t)nb * 4), *got[3];
    float *ref = malloc((size_t)numel * 4);
    cr_assert(a && b && ref);
    fill(a, na, seed), fill(b, nb, seed * 31u + 5u);
    ct_cpu_set_fast_paths(false);
    run(c, a, b, ref, numel);
    ct_cpu_set_fast_paths(true);
    for (int t = 0; t < 3; t++) {
        got[t] = malloc((size_t)numel * 4);
        cr_assert_not_null(got[t]);
        for (int64_t i = 0; i < numel; i++) got[t][i] = NAN; /* poisoned */
        omp_set_num_threads(t + 1);
        run(c, a, b, got[t], numel);
    }
    omp_set_num_threads(2);
    /* |a|, |b| <= 2: sum_k |a_ik b_kj| <= 4 K */
    double tol = 2.0 * (double)k * FLT_EPSILON * 4.0 * (double)k + 1e-6;
    for (int64_t i = 0; i < numel; i++)
        cr_assert(fabs((double)got[0][i] - (double)ref[i]) <= tol, "%s: [%lld] %.9g vs BLAS %.9g", c->name,
                  (long long)i, (double)got[0][i], (double)ref[i]);
    for (int t = 1; t < 3; t++)
        cr_assert(memcmp(got[0], got[t], (size_t)numel * 4) == 0, "%s: %d threads differ from 1", c->name, t + 1);
    for (int t = 0; t < 3; t++) free(got[t]);
    free(a), free(b), free(ref);
}

Test(matmul_f32_dnnl, matches_blas_and_ignores_the_thread_count) {
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) check_case(&cases[ci], 11u + (uint32_t)ci);
}

/* Where the build has oneDNN, F32 products go through it; F64 and the
 * reference mode never do. */
Test(matmul_f32_dnnl, onednn_serves_f32_where_built_in) {
#ifdef CTRAIN_HAVE_DNNL
    cr_expect(ct_cpu_dnnl_mm_get(768, 384, 128, false, true, CT_F32, CT_F32) != NULL,
              "oneDNN refused an F32 product");
    ct_cpu_set_fast_paths(false);
    cr_expect(ct_cpu_dnnl_mm_get(768, 384, 128, false, true, CT_F32, CT_F32) == NULL,
              "CTRAIN_CPU_REFERENCE must bypass it");
    ct_cpu_set_fast_paths(true);
#else
    cr_expect(ct_cpu_dnnl_mm_get(768, 384, 128, false, true, CT_F32, CT_F32) == NULL);
#endif
    cr_expect(ct_cpu_dnnl_mm_get(16, 16, 16, false, false, CT_F64, CT_F64) == NULL, "F64 stays with BLAS");
    cr_expect(ct_cpu_dnnl_mm_get(16, 16, 16, false, false, CT_F32, CT_BF16) == NULL, "no F32 -> BF16 product");
}

/* A program compiled with the fast paths off declares no scratchpad; run
 * with them on, its F32 products take BLAS, as declared, with no error and
 * BLAS's bytes. */
Test(matmul_f32_dnnl, compiled_without_fast_paths_runs_blas) {
    const mm_case *c = &cases[0];
    int64_t na = ct_shape_numel(c->a), nb = ct_shape_numel(c->b), numel = 768 * 384;
    float *a = malloc((size_t)na * 4), *b = malloc((size_t)nb * 4), *ref = malloc((size_t)numel * 4),
          *got = malloc((size_t)numel * 4);
    cr_assert(a && b && ref && got);
    fill(a, na, 3u), fill(b, nb, 4u);
    ct_cpu_set_fast_paths(false);
    run(c, a, b, ref, numel);
    ct_graph *g = ct_graph_new();
    ct_node y = ct_matmul(g, ct_input(g, "a", CT_F32, c->a), ct_input(g, "b", CT_F32, c->b), c->ta, c->tb);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert(p, "%s", ct_last_error());
    ct_cpu_set_fast_paths(true);
    cr_assert_eq(ct_program_set_input(p, "a", a, (size_t)na * 4), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "b", b, (size_t)nb * 4), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_program_read(p, y, got, (size_t)numel * 4), CT_OK);
    cr_expect(memcmp(got, ref, (size_t)numel * 4) == 0, "not BLAS's bytes");
    ct_program_free(p);
    ct_graph_free(g);
    free(a), free(b), free(ref), free(got);
}
