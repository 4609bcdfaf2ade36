/* The BF16 convolution fast paths (k_conv.c, conv_onednn.c): oneDNN's BF16
 * kernels where the CPU multiplies BF16 natively, against the reference
 * path (ct_cpu_set_fast_paths(false): BF16 widened to F32 while unfolding,
 * sgemm), over strides, paddings, dilations, groups, odd sizes, bias or
 * not, and the cnn-mnist shapes. The dtypes are those the precision policy
 * builds (docs/mixed_precision.md): the mixed forward (BF16 x and weight,
 * F32 bias and output), the all-BF16 forward (a BF16 input without a
 * policy), and the input and weight gradients (BF16 in, BF16 out). The fast
 * path's bytes must be the same on 1, 2 and 3 threads. FP16 convolutions
 * stay on the reference: their bytes must be the reference's.
 *
 * Tolerance. Products of two BF16 values are exact in F32, so both paths
 * compute each result before its final rounding as a float sum of the same
 * L exact terms (L: C/G KH KW taps plus the bias for the forward, O/G KH KW
 * for the input gradient, N OH OW for the weight gradient) in different
 * orders: each within gamma_L = L u / (1 - L u) of S, the sum of the terms'
 * magnitudes (u = 2^-24), so within 2 gamma_L S of each other. An F32
 * output is that value. A BF16 output is it rounded to 8 significant bits
 * (unit roundoff 2^-8), which adds at most 2^-8 (|fast| + |reference|): two
 * sums a hair apart can round to neighbouring BF16 values, one BF16 step.
 * S is computed by the F32 reference on the inputs' absolute values (the
 * BF16 inputs widen exactly). The observed differences are printed. Where
 * the build or the CPU has no native BF16 both runs take the reference
 * path, and the comparisons still hold (trivially).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrain/device.h"
#include "conv_fixture.h"

TestSuite(conv_bf16, .init = setup, .fini = teardown, .timeout = 300);

static const conv_case cases[] = {
    {"cnn-mnist conv1", S4(9, 1, 28, 28), 32, WIN(5, 5, 1, 1, 0, 0, 1, 1, 1), true},
    {"cnn-mnist conv2", S4(21, 32, 12, 12), 64, WIN(5, 5, 1, 1, 0, 0, 1, 1, 1), true},
    {"3x3 pad 1", S4(3, 16, 9, 9), 32, WIN(3, 3, 1, 1, 1, 1, 1, 1, 1), true},
    {"odd channels, stride 2", S4(5, 3, 11, 13), 7, WIN(3, 3, 2, 2, 1, 1, 1, 1, 1), true},
    {"stride 2 remainder", S4(2, 5, 10, 9), 6, WIN(3, 2, 2, 3, 0, 1, 1, 1, 1), false},
    {"dilation 2", S4(3, 8, 12, 11), 16, WIN(3, 3, 1, 1, 2, 2, 2, 2, 1), true},
    {"groups 2", S4(3, 32, 8, 8), 32, WIN(3, 3, 1, 1, 1, 1, 1, 1, 2), true},
    {"groups 3, odd", S4(2, 6, 7, 9), 9, WIN(2, 3, 1, 2, 1, 1, 1, 1, 3), false},
    {"depthwise", S4(4, 16, 10, 10), 16, WIN(3, 3, 1, 1, 1, 1, 1, 1, 16), true},
    {"1x1 stride 2", S4(3, 17, 9, 7), 33, WIN(1, 1, 2, 2, 0, 0, 1, 1, 1), false},
    {"one sample", S4(1, 20, 7, 7), 24, WIN(3, 3, 1, 1, 1, 1, 1, 1, 1), true},
    {"wide image, many samples", S4(37, 3, 16, 20), 8, WIN(5, 5, 1, 1, 2, 2, 1, 1, 1), true},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* The ops, each with the dtypes the policy gives it. */
enum { FWD_MIXED, FWD_BF16, GRAD_INPUT, GRAD_WEIGHT, N_OPS };
static const char *op_names[] = {"mixed forward", "bf16 forward", "input gradient", "weight gradient"};



/* A copy of n floats in dtype dt (BF16, F16 or F32; absolute values when abs). */
static void *as_dtype(const float *p, int64_t n, ct_dtype dt, bool abs) {
    size_t es = dt == CT_F32 ? 4 : 2;
    void *q = malloc((size_t)(n ? n : 1) * es);
    cr_assert_not_null(q);
    for (int64_t i = 0; i < n; i++) ct_st(q, dt, i, abs ? fabsf(p[i]) : p[i]);
    return q;
}




static ct_shape out_shape(const problem *p, int op) {
    return op == GRAD_INPUT ? p->xs : op == GRAD_WEIGHT ? p->ws : p->ys;
}

#define GUARD 4096 /* poisoned bytes after the scratch, which no path may touch */

/* Runs op with inputs in dtype in (the bias and output: out) and returns
 * the output widened to floats. abs: on the inputs' absolute values.
 * scratch_off: the scratch sized with the fast paths off (as a program
 * compiled so would have it), whatever they are at the run. */
static float *run_op_with(const problem *p, int op, ct_dtype in, ct_dtype out, bool abs, bool scratch_off) {
    ct_tview v[3];
    int n_in = 2;
    ct_kargs k = {.attr = &p->attr, .in = v};
    const float *src[3] = {p->x, p->w, p->b};
    ct_shape shp[3] = {p->xs, p->ws, p->bs};
    k.op = op == GRAD_INPUT ? CT_OP_CONV2D_GRAD_INPUT : op == GRAD_WEIGHT ? CT_OP_CONV2D_GRAD_WEIGHT : CT_OP_CONV2D;
    if (op == GRAD_INPUT) src[0] = p->dy, shp[0] = p->ys;
    if (op == GRAD_WEIGHT) src[1] = p->dy, shp[1] = p->ys;
    if (k.op == CT_OP_CONV2D && p->c->bias) n_in = 3;
    for (int i = 0; i < n_in; i++) {
        ct_dtype dt = i == 2 ? out : in;
        v[i] = (ct_tview){as_dtype(src[i], numel(shp[i]), dt, abs), dt, shp[i], numel(shp[i])};
    }
    ct_shape os = out_shape(p, op);
    int64_t n = numel(os);
    size_t es = out == CT_F32 ? 4 : 2;
    k.n_in = n_in;
    k.out = (ct_tview){malloc((size_t)n * es + 4), out, os, n};
    memset(k.out.data, 0xFF, (size_t)n * es); /* NaN in every dtype */
    bool fast = ct_cpu_fast_paths_enabled();
    if (scratch_off) ct_cpu_set_fast_paths(false);
    size_t sb = ct_cpu_conv_scratch(&k);
    ct_cpu_set_fast_paths(fast);
    k.scratch = malloc(sb + GUARD);
    memset(k.scratch, 0xFF, sb + GUARD); /* poisoned: nothing may read it before writing it */
    ct_status s = table[k.op](&k);
    cr_assert_eq(s, CT_OK, "%s, %s: failed: %s", p->c->name, op_names[op], ct_last_error());
    for (size_t i = sb; i < sb + GUARD; i++)
        cr_assert_eq(((unsigned char *)k.scratch)[i], 0xFF, "%s, %s: wrote past its scratch", p->c->name,
                     op_names[op]);
    float *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    for (int64_t i = 0; i < n; i++) r[i] = (float)ct_ld(k.out.data, out, i);
    for (int i = 0; i < n_in; i++) free(v[i].data);
    free(k.out.data), free(k.scratch);
    return r;
}

static float *run_op(const problem *p, int op, ct_dtype in, ct_dtype out, bool abs) {
    return run_op_with(p, op, in, out, abs, false);
}

/* Terms per output element (see the tolerance note at the top). */
static int64_t terms(const problem *p, int op) {
    const ct_window2d *win = &p->c->win;
    int64_t taps = (int64_t)win->kernel[0] * win->kernel[1];
    if (op == FWD_MIXED || op == FWD_BF16) return p->ws.dim[1] * taps + 1;
    if (op == GRAD_INPUT) return p->c->o / win->groups * taps;
    return p->ys.dim[0] * p->ys.dim[2] * p->ys.dim[3];
}

/* The largest differences seen, over all cases (printed at the end of
 * each test): in units of gamma_L S, and BF16 outputs that differ. */
static double worst_ratio;
static int64_t bf16_differ, bf16_total;

static void check_op(const problem *p, int op) {
    ct_dtype out = op == FWD_MIXED ? CT_F32 : CT_BF16;
    int64_t n = numel(out_shape(p, op));
    ct_cpu_set_fast_paths(false);
    float *ref = run_op(p, op, CT_BF16, out, false);
    float *mag = run_op(p, op, CT_F32, CT_F32, true); /* S */
    ct_cpu_set_fast_paths(true);
    float *fast[3];
    for (int t = 1; t <= 3; t++) {
        omp_set_num_threads(t);
        fast[t - 1] = run_op(p, op, CT_BF16, out, false);
    }
    for (int t = 1; t < 3; t++)
        cr_assert(memcmp(fast[0], fast[t], (size_t)n * sizeof(float)) == 0, "%s, %s: %d threads differ from 1",
                  p->c->name, op_names[op], t + 1);
    double gamma = (double)terms(p, op) * 0x1p-24 / (1.0 - (double)terms(p, op) * 0x1p-24);
    double half_step = out == CT_BF16 ? 0x1p-8 : 0.0;
    for (int64_t i = 0; i < n; i++) {
        double got = fast[0][i], want = ref[i], diff = fabs(got - want);
        double tol = 2.0 * gamma * mag[i] + half_step * (fabs(got) + fabs(want));
        cr_assert(diff <= tol * 1.001, "%s, %s: element %lld is %.9g, reference %.9g (S %g)", p->c->name,
                  op_names[op], (long long)i, got, want, mag[i]);
        if (out == CT_F32 && mag[i] > 0 && diff / (gamma * mag[i]) > worst_ratio) worst_ratio = diff / (gamma * mag[i]);
        if (out == CT_BF16) bf16_differ += got != want, bf16_total++;
    }
    for (int t = 0; t < 3; t++) free(fast[t]);
    free(ref), free(mag);
}

static void check_all(int op, uint64_t seed) {
    worst_ratio = 0.0, bf16_differ = bf16_total = 0;
    for (int i = 0; i < N_CASES; i++) {
        problem p = make_problem(&cases[i], seed + (uint64_t)i, true);
        check_op(&p, op);
        free_problem(&p);
    }
    if (op == FWD_MIXED)
        fprintf(stderr, "conv_bf16 %s: largest difference %.3g gamma_L S (bound 2)\n", op_names[op], worst_ratio);
    else
        fprintf(stderr, "conv_bf16 %s: %lld of %lld BF16 outputs differ from the reference (by one step at most)\n",
                op_names[op], (long long)bf16_differ, (long long)bf16_total);
}

Test(conv_bf16, mixed_forward_matches_reference_and_thread_counts) { check_all(FWD_MIXED, 100); }
Test(conv_bf16, bf16_forward_matches_reference_and_thread_counts) { check_all(FWD_BF16, 200); }
Test(conv_bf16, input_gradient_matches_reference_and_thread_counts) { check_all(GRAD_INPUT, 300); }
Test(conv_bf16, weight_gradient_matches_reference_and_thread_counts) { check_all(GRAD_WEIGHT, 400); }

/* FP16 convolutions have no fast path: with the fast paths on they are the
 * reference's bytes. */
Test(conv_bf16, f16_stays_on_the_reference) {
    for (int i = 0; i < N_CASES; i += 3)
        for (int op = 0; op < N_OPS; op++) {
            problem p = make_problem(&cases[i], 500 + (uint64_t)i, true);
            int64_t n = numel(out_shape(&p, op));
            ct_dtype out = op == FWD_MIXED ? CT_F32 : CT_F16;
            ct_cpu_set_fast_paths(false);
            float *ref = run_op(&p, op, CT_F16, out, false);
            ct_cpu_set_fast_paths(true);
            float *fast = run_op(&p, op, CT_F16, out, false);
            cr_assert(memcmp(ref, fast, (size_t)n * sizeof(float)) == 0, "%s, %s: F16 changed", p.c->name,
                      op_names[op]);
            free(ref), free(fast);
            free_problem(&p);
        }
}

/* A program compiled with the fast paths off and run with them on: the
 * scratch it has must do (the BF16 paths are declared whatever the switch,
 * as the F32 ones are), and the result is the fast path's. */
Test(conv_bf16, scratch_from_a_compile_with_fast_paths_off_suffices) {
    for (int i = 0; i < 2; i++)
        for (int op = 0; op < N_OPS; op++) {
            problem p = make_problem(&cases[i], 600 + (uint64_t)i, true);
            ct_dtype out = op == FWD_MIXED ? CT_F32 : CT_BF16;
            int64_t n = numel(out_shape(&p, op));
            float *want = run_op(&p, op, CT_BF16, out, false);
            float *got = run_op_with(&p, op, CT_BF16, out, false, true);
            cr_assert(memcmp(want, got, (size_t)n * sizeof(float)) == 0, "%s, %s: not the fast path's result",
                      p.c->name, op_names[op]);
            free(want), free(got);
            free_problem(&p);
        }
}

/* The workload's shapes do take oneDNN's BF16 kernels where the CPU has
 * them (a silent fall back to the reference would pass the comparisons
 * above). */
Test(conv_bf16, onednn_takes_the_cnn_shapes) {
    if (!ct_cpu_bf16_native()) cr_skip_test("no native BF16 (or no oneDNN): the reference path runs");
    const char *names[] = {"mixed forward", "bf16 forward", "weight gradient chunk", "input gradient"};
    for (int i = 0; i < 2; i++)
        for (int op = 0; op < 3 + i; op++) { /* conv1's input gradient is the reference's (C = 1), as in F32 */
            const conv_case *c = &cases[i];
            ct_conv_shape s;
            memset(&s, 0, sizeof s);
            s.op = op == 3 ? CT_OP_CONV2D_GRAD_INPUT : op == 2 ? CT_OP_CONV2D_GRAD_WEIGHT : CT_OP_CONV2D;
            s.n = op == 2 ? 2 : c->x.dim[0], s.c = c->x.dim[1], s.h = c->x.dim[2], s.w = c->x.dim[3], s.o = c->o;
            s.oh = c->x.dim[2] - 4, s.ow = c->x.dim[3] - 4, s.kh = s.kw = 5, s.groups = 1;
            s.stride[0] = s.stride[1] = s.dil[0] = s.dil[1] = 1;
            s.bias = s.op == CT_OP_CONV2D;
            s.src_dt = CT_BF16, s.dst_dt = op == 1 || op == 3 ? CT_BF16 : CT_F32;
            s.slots = op == 2 ? 1 : 0;
            size_t bytes = 0;
            bool ok = op == 2 ? ct_conv_onednn_wgrad_declare(&s, true, &bytes) : ct_conv_onednn_declare(&s, &bytes);
            cr_assert(ok, "%s, %s: oneDNN declined it", c->name, names[op]);
        }
}
