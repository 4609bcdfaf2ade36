/* The F32 convolution fast paths (k_conv.c, conv_onednn.c): the forward
 * and the input gradient through oneDNN where the build has it, the weight
 * gradient by fixed chunks of the batch. Against the reference path
 * (ct_cpu_set_fast_paths(false): im2col + one large sgemm per chunk), over
 * strides, paddings, dilations, groups, odd sizes, bias or not, and the
 * cnn-mnist shapes; and the fast path's bytes on 1, 2 and 3 threads, which
 * must be identical.
 *
 * Tolerance. Both paths compute each output element as a float sum of L
 * products (L: C/G KH KW taps and channels plus the bias for the forward,
 * O/G KH KW for the input gradient, N OH OW for the weight gradient), in
 * different orders. Each one's error is within gamma_L = L u / (1 - L u)
 * of S, the sum of the terms' magnitudes (u = 2^-24), so they differ by at
 * most 2 gamma_L S. S is computed exactly as the op itself is, by the
 * reference kernel on the inputs' absolute values; the bound is the
 * textbook worst case (the observed differences are far smaller), honest
 * for any order either library picks, and zero where S is zero.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_fixture.h"

TestSuite(conv_fast, .init = setup, .fini = teardown, .timeout = 300);

static const conv_case cases[] = {
    {"cnn-mnist conv1", S4(6, 1, 28, 28), 32, WIN(5, 5, 1, 1, 0, 0, 1, 1, 1), true},
    {"cnn-mnist conv2", S4(36, 32, 12, 12), 64, WIN(5, 5, 1, 1, 0, 0, 1, 1, 1), true},
    {"3x3 pad 1", S4(3, 16, 9, 9), 32, WIN(3, 3, 1, 1, 1, 1, 1, 1, 1), true},
    {"odd channels, stride 2", S4(5, 3, 11, 13), 7, WIN(3, 3, 2, 2, 1, 1, 1, 1, 1), true},
    {"stride 2 remainder", S4(2, 5, 10, 9), 6, WIN(3, 2, 2, 3, 0, 1, 1, 1, 1), false},
    {"dilation 2", S4(3, 8, 12, 11), 16, WIN(3, 3, 1, 1, 2, 2, 2, 2, 1), true},
    {"dilation, stride, asymmetric", S4(2, 4, 13, 10), 5, WIN(2, 3, 2, 1, 1, 0, 3, 2, 1), true},
    {"groups 2", S4(3, 32, 8, 8), 32, WIN(3, 3, 1, 1, 1, 1, 1, 1, 2), true},
    {"groups 3, odd", S4(2, 6, 7, 9), 9, WIN(2, 3, 1, 2, 1, 1, 1, 1, 3), false},
    {"depthwise", S4(4, 16, 10, 10), 16, WIN(3, 3, 1, 1, 1, 1, 1, 1, 16), true},
    {"1x1", S4(7, 24, 5, 6), 40, WIN(1, 1, 1, 1, 0, 0, 1, 1, 1), true},
    {"1x1 stride 2", S4(3, 17, 9, 7), 33, WIN(1, 1, 2, 2, 0, 0, 1, 1, 1), false},
    {"one sample", S4(1, 20, 7, 7), 24, WIN(3, 3, 1, 1, 1, 1, 1, 1, 1), true},
    {"wide image, many samples", S4(37, 3, 16, 20), 8, WIN(5, 5, 1, 1, 2, 2, 1, 1, 1), true},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

enum { FWD, GRAD_INPUT, GRAD_WEIGHT };



static float *absolute(const float *p, int64_t n) {
    float *a = malloc((size_t)(n ? n : 1) * sizeof *a);
    for (int64_t i = 0; i < n; i++) a[i] = fabsf(p[i]);
    return a;
}



static ct_tview view(void *data, ct_shape s) { return (ct_tview){data, CT_F32, s, numel(s)}; }

/* Runs op on inputs (x, w, b, dy: those the op reads) into a fresh buffer. */
static float *run_op(const problem *p, int op, const float *x, const float *w, const float *b, const float *dy) {
    ct_tview in[3];
    int n_in = 2;
    ct_kargs k = {.attr = &p->attr, .in = in};
    ct_shape os = op == FWD ? p->ys : op == GRAD_INPUT ? p->xs : p->ws;
    float *out = malloc((size_t)numel(os) * sizeof *out + 4);
    for (int64_t i = 0; i < numel(os); i++) out[i] = NAN;
    if (op == FWD) {
        k.op = CT_OP_CONV2D;
        in[0] = view((void *)x, p->xs), in[1] = view((void *)w, p->ws);
        if (p->c->bias) in[n_in++] = view((void *)b, p->bs);
    } else if (op == GRAD_INPUT) {
        k.op = CT_OP_CONV2D_GRAD_INPUT;
        in[0] = view((void *)dy, p->ys), in[1] = view((void *)w, p->ws);
    } else {
        k.op = CT_OP_CONV2D_GRAD_WEIGHT;
        in[0] = view((void *)x, p->xs), in[1] = view((void *)dy, p->ys);
    }
    k.n_in = n_in;
    k.out = view(out, os);
    size_t sb = ct_cpu_conv_scratch(&k);
    k.scratch = sb ? malloc(sb) : NULL;
    if (sb) memset(k.scratch, 0xFF, sb); /* poisoned: nothing may read it before writing it */
    ct_status s = table[k.op](&k);
    cr_assert_eq(s, CT_OK, "%s: op %d failed: %s", p->c->name, op, ct_last_error());
    free(k.scratch);
    return out;
}

/* Terms per output element (see the tolerance note at the top). */
static int64_t terms(const problem *p, int op) {
    const ct_window2d *win = &p->c->win;
    int64_t taps = (int64_t)win->kernel[0] * win->kernel[1];
    if (op == FWD) return p->ws.dim[1] * taps + 1;
    if (op == GRAD_INPUT) return p->c->o / win->groups * taps;
    return p->ys.dim[0] * p->ys.dim[2] * p->ys.dim[3];
}

static void check_op(const problem *p, int op) {
    const char *names[] = {"forward", "input gradient", "weight gradient"};
    int64_t nx = numel(p->xs), nw = numel(p->ws), ny = numel(p->ys);
    ct_cpu_set_fast_paths(false);
    float *ref = run_op(p, op, p->x, p->w, p->b, p->dy);
    float *ax = absolute(p->x, nx), *aw = absolute(p->w, nw), *ab = absolute(p->b, p->c->o), *ady = absolute(p->dy, ny);
    float *mag = run_op(p, op, ax, aw, ab, ady); /* S: the sum of the terms' magnitudes */
    ct_cpu_set_fast_paths(true);
    float *fast[3];
    for (int t = 1; t <= 3; t++) {
        omp_set_num_threads(t);
        fast[t - 1] = run_op(p, op, p->x, p->w, p->b, p->dy);
    }
    int64_t n = op == FWD ? ny : op == GRAD_INPUT ? nx : nw;
    for (int t = 1; t < 3; t++)
        cr_assert(memcmp(fast[0], fast[t], (size_t)n * sizeof(float)) == 0, "%s, %s: %d threads differ from 1",
                  p->c->name, names[op], t + 1);
    double gamma = 2.0 * (double)terms(p, op) * 0x1p-24 * 1.01;
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs((double)fast[0][i] - ref[i]) <= gamma * mag[i], "%s, %s: element %lld is %.9g, reference %.9g (S %g)",
                  p->c->name, names[op], (long long)i, fast[0][i], ref[i], mag[i]);
    for (int t = 0; t < 3; t++) free(fast[t]);
    free(ref), free(mag), free(ax), free(aw), free(ab), free(ady);
}


Test(conv_fast, forward_matches_reference_and_thread_counts) {
    for (int i = 0; i < N_CASES; i++) {
        problem p = make_problem(&cases[i], 100 + (uint64_t)i, false);
        check_op(&p, FWD);
        free_problem(&p);
    }
}

Test(conv_fast, input_gradient_matches_reference_and_thread_counts) {
    for (int i = 0; i < N_CASES; i++) {
        problem p = make_problem(&cases[i], 200 + (uint64_t)i, false);
        check_op(&p, GRAD_INPUT);
        free_problem(&p);
    }
}

Test(conv_fast, weight_gradient_matches_reference_and_thread_counts) {
    for (int i = 0; i < N_CASES; i++) {
        problem p = make_problem(&cases[i], 300 + (uint64_t)i, false);
        check_op(&p, GRAD_WEIGHT);
        free_problem(&p);
    }
}

/* The workload's shapes do take oneDNN's path where the build has it (a
 * silent fall back to the reference would pass the comparisons above). */
Test(conv_fast, onednn_takes_the_cnn_shapes) {
#ifdef CTRAIN_HAVE_DNNL
    for (int i = 0; i < 2; i++)
        for (int grad = 0; grad < 1 + i; grad++) { /* conv1's input gradient is the reference's (C = 1) */
            const conv_case *c = &cases[i];
            ct_conv_shape s;
            memset(&s, 0, sizeof s);
            s.op = grad ? CT_OP_CONV2D_GRAD_INPUT : CT_OP_CONV2D;
            s.n = c->x.dim[0], s.c = c->x.dim[1], s.h = c->x.dim[2], s.w = c->x.dim[3], s.o = c->o;
            s.oh = c->x.dim[2] - 4, s.ow = c->x.dim[3] - 4, s.kh = s.kw = 5, s.groups = 1;
            s.stride[0] = s.stride[1] = s.dil[0] = s.dil[1] = 1;
            s.bias = s.op == CT_OP_CONV2D;
            size_t bytes = 0;
            cr_assert(ct_conv_onednn_declare(&s, &bytes), "%s: oneDNN declined it", c->name);
        }
#else
    cr_skip_test("built without oneDNN: the reference path runs the forward and the input gradient");
#endif
}
