/* BF16 matrix products through oneDNN (src/cpu/k_matmul_dnnl.c) against
 * the reference path (BF16 widened to F32, sgemm): F32 accumulation on
 * both sides, so the results differ only by the order of the sums. The
 * bound: |got - want| <= 4 K eps_f32 sum_k |a_ik b_kj| + a tiny floor
 * (each of K terms can carry one rounding of the running sum on either
 * side), which a real fault (a wrong stride, a transposed operand) exceeds
 * by orders of magnitude. Covers both transposes, batched products with a
 * broadcast weight (folded into one tall product) and with batched
 * weights, F32 and BF16 outputs, and the same bytes on 2 and 3 threads.
 * Where oneDNN is not built in both runs take the reference path and the
 * test still checks the reference against itself and the bound. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "ctrain/ctrain.h"
#include "core/autocast.h"
#include "cpu/cpu_matmul.h"

typedef struct mm_case {
    const char *name;
    ct_shape a, b;
    bool ta, tb;
    ct_dtype out;
} mm_case;

static const mm_case cases[] = {
    {"plain", {2, {33, 70}}, {2, {70, 45}}, false, false, CT_F32},
    {"b transposed (a linear layer)", {2, {64, 129}}, {2, {17, 129}}, false, true, CT_F32},
    {"a transposed (a weight gradient)", {2, {96, 31}}, {2, {96, 40}}, true, false, CT_F32},
    {"both transposed", {2, {19, 23}}, {2, {29, 19}}, true, true, CT_F32},
    {"batched, shared weight (folded)", {3, {3, 21, 50}}, {2, {50, 37}}, false, false, CT_F32},
    {"batched weights", {3, {4, 9, 26}}, {3, {4, 26, 11}}, false, false, CT_F32},
    {"bf16 output", {2, {40, 64}}, {2, {64, 24}}, false, false, CT_BF16},
};

static void fill(uint16_t *v, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float x = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 4.0f;
        v[i] = ct_f32_to_bf16(x == 0.0f ? 0.25f : x);
    }
}

/* Runs the product; out holds numel floats (BF16 outputs widened). */
static void run(const mm_case *c, const uint16_t *a, const uint16_t *b, float *out, int64_t numel) {
    ct_graph *g = ct_graph_new();
    ct_node na = ct_input(g, "a", CT_BF16, c->a), nb = ct_input(g, "b", CT_BF16, c->b);
    ct_node y = ct_matmul_typed(g, na, nb, c->ta, c->tb, c->out, false);
    ct_program *p = ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1});
    cr_assert(p, "%s: %s", c->name, ct_last_error());
    cr_assert_eq(ct_program_set_input(p, "a", a, (size_t)ct_shape_numel(c->a) * 2), CT_OK);
    cr_assert_eq(ct_program_set_input(p, "b", b, (size_t)ct_shape_numel(c->b) * 2), CT_OK);
    cr_assert_eq(ct_program_run(p), CT_OK, "%s: %s", c->name, ct_last_error());
    if (c->out == CT_F32) {
        cr_assert_eq(ct_program_read(p, y, out, (size_t)numel * sizeof(float)), CT_OK);
    } else {
        uint16_t *h = malloc((size_t)numel * 2);
        cr_assert_eq(ct_program_read(p, y, h, (size_t)numel * 2), CT_OK);
        for (int64_t i = 0; i < numel; i++) out[i] = ct_bf16_to_f32(h[i]);
        free(h);
    }
    ct_program_free(p);
    ct_graph_free(g);
}

Test(matmul_bf16, onednn_matches_the_widening_path) {
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const mm_case *c = &cases[ci];
        int64_t na = ct_shape_numel(c->a), nb = ct_shape_numel(c->b);
        int64_t k = c->ta ? c->a.dim[c->a.ndim - 2] : c->a.dim[c->a.ndim - 1];
        uint16_t *a = malloc((size_t)na * 2), *b = malloc((size_t)nb * 2);
        fill(a, na, 7u + (uint32_t)ci), fill(b, nb, 99u + (uint32_t)ci);
        int64_t m = c->ta ? c->a.dim[c->a.ndim - 1] : c->a.dim[c->a.ndim - 2];
        int64_t n = c->tb ? c->b.dim[c->b.ndim - 2] : c->b.dim[c->b.ndim - 1];
        int64_t numel = (c->a.ndim > 2 ? c->a.dim[0] : c->b.ndim > 2 ? c->b.dim[0] : 1) * m * n;
        float *ref = calloc((size_t)numel, sizeof(float)), *got = calloc((size_t)numel, sizeof(float));
        float *got3 = calloc((size_t)numel, sizeof(float));
        ct_cpu_set_fast_paths(false);
        run(c, a, b, ref, numel);
        ct_cpu_set_fast_paths(true);
        omp_set_num_threads(2);
        run(c, a, b, got, numel);
        omp_set_num_threads(3);
        run(c, a, b, got3, numel);
        omp_set_num_threads(2);
        /* |a|, |b| <= 2: each |a_ik b_kj| <= 4, so the sum of magnitudes is
         * at most 4 K; a BF16 output adds one BF16 rounding of the result. */
        double tol = 4.0 * (double)k * 0x1p-23 * 4.0 * (double)k + 1e-6;
        for (int64_t i = 0; i < numel; i++) {
            double t = c->out == CT_BF16 ? tol + fabs((double)ref[i]) * 0x1p-7 : tol;
            cr_expect(fabs((double)got[i] - (double)ref[i]) <= t, "%s: [%lld] %g vs %g", c->name, (long long)i,
                      (double)got[i], (double)ref[i]);
            cr_expect(ref[i] != 0.0f || got[i] == 0.0f, "%s: [%lld] nothing computed", c->name, (long long)i);
        }
        cr_expect(memcmp(got, got3, (size_t)numel * sizeof(float)) == 0, "%s: 2 and 3 threads differ", c->name);
        free(a), free(b), free(ref), free(got), free(got3);
    }
}

/* Where the build has oneDNN, the products above did go through it. */
Test(matmul_bf16, onednn_serves_bf16_where_built_in) {
#ifdef CTRAIN_HAVE_DNNL
    cr_expect(ct_cpu_dnnl_mm_get(64, 17, 129, false, true, CT_BF16, CT_F32) != NULL, "oneDNN refused a plain bf16 product");
    ct_cpu_set_fast_paths(false);
    cr_expect(ct_cpu_dnnl_mm_get(64, 17, 129, false, true, CT_BF16, CT_F32) == NULL, "CTRAIN_CPU_REFERENCE must bypass it");
    ct_cpu_set_fast_paths(true);
#else
    cr_expect(ct_cpu_dnnl_mm_get(64, 17, 129, false, true, CT_BF16, CT_F32) == NULL);
#endif
    cr_expect(ct_cpu_dnnl_mm_get(64, 17, 129, false, true, CT_BF16, CT_F16) == NULL, "F16 outputs stay on the reference");
}
