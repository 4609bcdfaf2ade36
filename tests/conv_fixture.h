/* The fixture and case table shape shared by the convolution fast-path
 * tests (test_conv_fast.c: F32; test_conv_bf16.c: BF16): the CPU conv
 * kernels in a table, the fast-path switch and the thread count restored
 * after each test, and one case = an input shape, output channels, a window
 * and whether there is a bias. */
#ifndef CT_TEST_CONV_FIXTURE_H
#define CT_TEST_CONV_FIXTURE_H

#include <criterion/criterion.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv_geom.h"
#include "cpu/conv_onednn.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"

static ct_kernel_fn table[CT_OP_COUNT];

static void setup(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_conv(table);
}

static void teardown(void) {
    ct_cpu_set_fast_paths(true);
    omp_set_num_threads(omp_get_num_procs());
}

#define S4(a, b, c, d) ((ct_shape){4, {a, b, c, d}})
#define WIN(kh, kw, sh, sw, ph, pw, dh, dw, g) {{kh, kw}, {sh, sw}, {ph, pw}, {dh, dw}, g}

typedef struct conv_case {
    const char *name;
    ct_shape x; /* [N, C, H, W] */
    int64_t o;  /* output channels */
    ct_window2d win;
    bool bias;
} conv_case;

static int64_t numel(ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

/* n non-zero values in +-[0.05, 1), rounded to BF16 when bf16 (kept as
 * floats), state advanced. */
static float *random_values(int64_t n, uint64_t *st, bool bf16) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    cr_assert_not_null(p);
    for (int64_t i = 0; i < n; i++) {
        *st = *st * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(*st >> 11) * 0x1p-53;
        float v = (float)((0.05 + 0.95 * u) * ((*st >> 7) & 1 ? 1.0 : -1.0));
        p[i] = bf16 ? ct_bf16_to_f32(ct_f32_to_bf16(v)) : v;
    }
    return p;
}

/* One problem: its shapes and its inputs (x, w, b, dy). */
typedef struct problem {
    const conv_case *c;
    ct_attrs attr;
    ct_shape xs, ws, ys, bs;
    float *x, *w, *b, *dy; /* BF16 values when made for BF16 */
} problem;

static problem make_problem(const conv_case *c, uint64_t seed, bool bf16) {
    problem p = {.c = c, .xs = c->x};
    p.attr.win = c->win;
    p.attr.has_bias = c->bias;
    int64_t oh = ct_window_out(c->x.dim[2], c->win.kernel[0], c->win.stride[0], c->win.pad[0], c->win.dilation[0]);
    int64_t ow = ct_window_out(c->x.dim[3], c->win.kernel[1], c->win.stride[1], c->win.pad[1], c->win.dilation[1]);
    p.ws = S4(c->o, c->x.dim[1] / c->win.groups, c->win.kernel[0], c->win.kernel[1]);
    p.ys = S4(c->x.dim[0], c->o, oh, ow);
    p.bs = (ct_shape){1, {c->o}};
    p.x = random_values(numel(p.xs), &seed, bf16);
    p.w = random_values(numel(p.ws), &seed, bf16);
    p.b = random_values(c->o, &seed, bf16);
    p.dy = random_values(numel(p.ys), &seed, bf16);
    return p;
}

static void free_problem(problem *p) { free(p->x), free(p->w), free(p->b), free(p->dy); }

#endif
