/* CPU reference kernels for matrix products, data movement and the
 * neural-network ops, called directly through their registration tables
 * with hand-built views. Every output is poisoned with NaN first, and every
 * expected value is computed here, independently of the kernel. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_util.h"
#include "ctrain/rng.h"

static ct_kernel_fn table[CT_OP_COUNT];

static void fill_table(void) {
    memset(table, 0, sizeof table);
    ct_cpu_register_matmul(table);
    ct_cpu_register_shape(table);
    ct_cpu_register_nn(table);
}

TestSuite(cpu_nn_kernels, .init = fill_table);

static int64_t numel(ct_shape s) {
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++) n *= s.dim[d];
    return n;
}

static ct_tview view(void *data, ct_dtype dt, ct_shape s) {
    return (ct_tview){.data = data, .dtype = dt, .shape = s, .numel = numel(s)};
}

static void poison(ct_tview v) {
    for (int64_t i = 0; i < v.numel; i++) {
        switch (v.dtype) {
        case CT_F32: ((float *)v.data)[i] = NAN; break;
        case CT_F64: ((double *)v.data)[i] = NAN; break;
        case CT_F16: ((uint16_t *)v.data)[i] = 0x7E00; break;
        case CT_BF16: ((uint16_t *)v.data)[i] = 0x7FC0; break;
        case CT_I32: ((int32_t *)v.data)[i] = INT32_MIN; break;
        default: ((uint8_t *)v.data)[i] = 0xAB; break;
        }
    }
}

typedef struct call {
    ct_attrs attr;
    void *scratch;
    bool training;
    uint64_t seed;
    uint32_t step;
} call;

static ct_status run_op(ct_op op, const call *c, const ct_tview *in, int n_in, ct_tview out) {
    cr_assert_not_null(table[op], "no kernel for op %d", (int)op);
    poison(out);
    ct_kargs k = {.op = op,
                  .attr = &c->attr,
                  .n_in = n_in,
                  .in = in,
                  .out = out,
                  .scratch = c->scratch,
                  .seed = c->seed,
                  .step = c->step,
                  .training = c->training};
    return table[op](&k);
}

/* A small deterministic generator, so failures reproduce. */
static uint64_t lcg_state = 88172645463325252ull;
static double rnd(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * 0x1p-53 * 2.0 - 1.0;
}

/* ---- matmul ------------------------------------------------------------- */

/* Batched reference: a_off/b_off give each output batch item's operand
 * offsets (elements), worked out by the test for its case. */
static double ref_entry(const double *a, const double *b, bool ta, bool tb, int64_t m, int64_t n,
                        int64_t k, int64_t i, int64_t j) {
    double s = 0.0;
    for (int64_t l = 0; l < k; l++) {
        double av = ta ? a[l * m + i] : a[i * k + l];
        double bv = tb ? b[j * k + l] : b[l * n + j];
        s += av * bv;
    }
    return s;
}

static void check_matmul_2d(ct_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
    int64_t na = m * k, nb = k * n, nc = m * n;
    double *a = malloc(sizeof(double) * na), *b = malloc(sizeof(double) * nb);
    for (int64_t i = 0; i < na; i++) a[i] = rnd();
    for (int64_t i = 0; i < nb; i++) b[i] = rnd();
    size_t es = ct_dtype_size(dt);
    void *ab = malloc(es * na), *bb = malloc(es * nb), *cb = malloc(es * nc);
    for (int64_t i = 0; i < na; i++) ct_st(ab, dt, i, a[i]);
    for (int64_t i = 0; i < nb; i++) ct_st(bb, dt, i, b[i]);
    /* The reference sees exactly the operand values the kernel sees. */
    for (int64_t i = 0; i < na; i++) a[i] = ct_ld(ab, dt, i);
    for (int64_t i = 0; i < nb; i++) b[i] = ct_ld(bb, dt, i);
    ct_tview in[2] = {view(ab, dt, ta ? (ct_shape){2, {k, m}} : (ct_shape){2, {m, k}}),
                      view(bb, dt, tb ? (ct_shape){2, {n, k}} : (ct_shape){2, {k, n}})};
    ct_tview out = view(cb, dt, (ct_shape){2, {m, n}});
    call c = {.attr = {.trans_a = ta, .trans_b = tb}};
    ct_kargs probe = {.op = CT_OP_MATMUL, .attr = &c.attr, .n_in = 2, .in = in, .out = out};
    size_t sb = ct_cpu_matmul_scratch(&probe);
    if (dt == CT_F64)
        cr_assert_eq(sb, 0);
    else if (dt == CT_F16 || (dt == CT_BF16 && !ct_cpu_bf16_native())) /* else oneDNN's scratchpad, if any */
        cr_assert_eq(sb, (size_t)(na + nb + nc) * sizeof(float));
    c.scratch = sb ? malloc(sb) : NULL;
    cr_assert_eq(run_op(CT_OP_MATMUL, &c, in, 2, out), CT_OK, "%s", ct_last_error());
    double tol = dt == CT_F64 ? 1e-12 : dt == CT_F32 ? 1e-5 : 1e-2;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double want = ref_entry(a, b, ta, tb, m, n, k, i, j);
            double got = ct_ld(cb, dt, i * n + j);
            cr_assert(fabs(got - want) <= tol * (1.0 + fabs(want)),
                      "%s ta=%d tb=%d c[%lld,%lld] = %.17g, want %.17g", ct_dtype_name(dt), ta, tb,
                      (long long)i, (long long)j, got, want);
        }
    free(a), free(b), free(ab), free(bb), free(cb), free(c.scratch);
}

Test(cpu_nn_kernels, matmul_transposes_f64_f32) {
    for (int t = 0; t < 4; t++) {
        check_matmul_2d(CT_F64, t & 1, t & 2, 3, 7, 5);
        check_matmul_2d(CT_F32, t & 1, t & 2, 3, 7, 5);
    }
    check_matmul_2d(CT_F32, false, false, 1, 1, 1);
    check_matmul_2d(CT_F64, true, false, 17, 9, 33);
}

Test(cpu_nn_kernels, matmul_bf16_f16) {
    check_matmul_2d(CT_BF16, false, false, 3, 7, 5);
    check_matmul_2d(CT_BF16, true, true, 4, 6, 5);
    check_matmul_2d(CT_F16, false, true, 3, 7, 5);
}

/* Runs a batched product and compares each output item with the 2-d
 * reference on the operand items NumPy broadcasting pairs it with. */
static void check_batched(ct_dtype dt, ct_shape as, ct_shape bs, ct_shape os, bool ta, bool tb) {
    int64_t na = numel(as), nb = numel(bs), nc = numel(os);
    int64_t am = as.dim[as.ndim - 2], ak = as.dim[as.ndim - 1];
    int64_t m = ta ? ak : am, k = ta ? am : ak;
    int64_t n = tb ? bs.dim[bs.ndim - 2] : bs.dim[bs.ndim - 1];
    size_t es = ct_dtype_size(dt);
    double *a = malloc(sizeof(double) * na), *b = malloc(sizeof(double) * nb);
    void *ab = malloc(es * na), *bb = malloc(es * nb), *cb = malloc(es * nc);
    for (int64_t i = 0; i < na; i++) ct_st(ab, dt, i, rnd()), a[i] = ct_ld(ab, dt, i);
    for (int64_t i = 0; i < nb; i++) ct_st(bb, dt, i, rnd()), b[i] = ct_ld(bb, dt, i);
    ct_tview in[2] = {view(ab, dt, as), view(bb, dt, bs)};
    call c = {.attr = {.trans_a = ta, .trans_b = tb}};
    ct_kargs probe = {.op = CT_OP_MATMUL, .attr = &c.attr, .n_in = 2, .in = in, .out = view(cb, dt, os)};
    size_t sb = ct_cpu_matmul_scratch(&probe); /* oneDNN's scratchpad where it serves F32 */
    c.scratch = sb ? malloc(sb) : NULL;
    cr_assert_eq(run_op(CT_OP_MATMUL, &c, in, 2, view(cb, dt, os)), CT_OK, "%s", ct_last_error());
    free(c.scratch);
    int nb_out = os.ndim - 2;
    int64_t batch = nc / (m * n);
    for (int64_t t = 0; t < batch; t++) {
        /* Decompose t over the output batch axes, then index each operand
         * with its own axes, clamping size-1 axes to 0. */
        int64_t idx[CT_MAX_DIMS], rem = t;
        for (int d = nb_out - 1; d >= 0; d--) idx[d] = rem % os.dim[d], rem /= os.dim[d];
        int64_t oa = 0, ob = 0;
        for (int d = 0; d < as.ndim - 2; d++) {
            int64_t i = as.dim[d] == 1 ? 0 : idx[d + nb_out - (as.ndim - 2)];
            oa = oa * as.dim[d] + i;
        }
        for (int d = 0; d < bs.ndim - 2; d++) {
            int64_t i = bs.dim[d] == 1 ? 0 : idx[d + nb_out - (bs.ndim - 2)];
            ob = ob * bs.dim[d] + i;
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double want = ref_entry(a + oa * m * k, b + ob * k * n, ta, tb, m, n, k, i, j);
                double got = ct_ld(cb, dt, t * m * n + i * n + j);
                cr_assert(fabs(got - want) <= 1e-5 * (1.0 + fabs(want)),
                          "batch %lld c[%lld,%lld] = %.17g, want %.17g", (long long)t, (long long)i,
                          (long long)j, got, want);
            }
    }
    free(a), free(b), free(ab), free(bb), free(cb);
}

Test(cpu_nn_kernels, matmul_batched_broadcast) {
    /* the folded linear-layer case */
    check_batched(CT_F32, (ct_shape){3, {2, 3, 4}}, (ct_shape){2, {4, 5}}, (ct_shape){3, {2, 3, 5}},
                  false, false);
    check_batched(CT_F32, (ct_shape){3, {2, 3, 4}}, (ct_shape){2, {5, 4}}, (ct_shape){3, {2, 3, 5}},
                  false, true);
    /* a batch of size 1 on b still folds */
    check_batched(CT_F64, (ct_shape){3, {2, 3, 4}}, (ct_shape){3, {1, 4, 5}},
                  (ct_shape){3, {2, 3, 5}}, false, false);
    /* transposed a cannot fold */
    check_batched(CT_F64, (ct_shape){3, {2, 4, 3}}, (ct_shape){2, {4, 5}}, (ct_shape){3, {2, 3, 5}},
                  true, false);
    check_batched(CT_F64, (ct_shape){3, {1, 3, 4}}, (ct_shape){3, {2, 4, 5}},
                  (ct_shape){3, {2, 3, 5}}, false, false);
    check_batched(CT_F32, (ct_shape){2, {3, 4}}, (ct_shape){3, {2, 4, 5}}, (ct_shape){3, {2, 3, 5}},
                  false, false);
    check_batched(CT_F64, (ct_shape){4, {2, 1, 3, 4}}, (ct_shape){3, {3, 5, 4}},
                  (ct_shape){4, {2, 3, 3, 5}}, false, true);
}

Test(cpu_nn_kernels, matmul_shape_mismatch_is_an_error) {
    float a[12], b[12], c[9];
    ct_tview in[2] = {view(a, CT_F32, (ct_shape){2, {3, 4}}), view(b, CT_F32, (ct_shape){2, {3, 4}})};
    call cl = {0};
    cr_assert_neq(run_op(CT_OP_MATMUL, &cl, in, 2, view(c, CT_F32, (ct_shape){2, {3, 3}})), CT_OK);
    cr_assert(strstr(ct_last_error(), "matmul") != NULL, "%s", ct_last_error());
}

Test(cpu_nn_kernels, matmul_empty_k_gives_zeros) {
    float a[1], b[1], c[6];
    ct_tview in[2] = {view(a, CT_F32, (ct_shape){2, {2, 0}}), view(b, CT_F32, (ct_shape){2, {0, 3}})};
    call cl = {0};
    cr_assert_eq(run_op(CT_OP_MATMUL, &cl, in, 2, view(c, CT_F32, (ct_shape){2, {2, 3}})), CT_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(c[i], 0.0f);
}

/* ---- data movement ------------------------------------------------------ */

static void check_permute(const int *perm, ct_dtype dt) {
    ct_shape xs = {3, {2, 3, 4}}, os = {3, {0}};
    for (int i = 0; i < 3; i++) os.dim[i] = xs.dim[perm[i]];
    size_t es = ct_dtype_size(dt);
    void *x = malloc(24 * es), *o = malloc(24 * es);
    for (int i = 0; i < 24; i++) ct_st(x, dt, i, i + 1);
    ct_tview in = view(x, dt, xs);
    call c = {0};
    memcpy(c.attr.perm, perm, 3 * sizeof(int));
    cr_assert_eq(run_op(CT_OP_PERMUTE, &c, &in, 1, view(o, dt, os)), CT_OK, "%s", ct_last_error());
    int64_t oi[3];
    for (oi[0] = 0; oi[0] < os.dim[0]; oi[0]++)
        for (oi[1] = 0; oi[1] < os.dim[1]; oi[1]++)
            for (oi[2] = 0; oi[2] < os.dim[2]; oi[2]++) {
                int64_t xi[3];
                for (int d = 0; d < 3; d++) xi[perm[d]] = oi[d];
                double want = ct_ld(x, dt, (xi[0] * 3 + xi[1]) * 4 + xi[2]);
                double got = ct_ld(o, dt, (oi[0] * os.dim[1] + oi[1]) * os.dim[2] + oi[2]);
                cr_assert_eq(got, want, "perm {%d,%d,%d} %s at (%lld,%lld,%lld)", perm[0], perm[1],
                             perm[2], ct_dtype_name(dt), (long long)oi[0], (long long)oi[1],
                             (long long)oi[2]);
            }
    free(x), free(o);
}

Test(cpu_nn_kernels, permute_all_orders) {
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int p = 0; p < 6; p++) {
        check_permute(perms[p], CT_F32);
        check_permute(perms[p], CT_F64);
        check_permute(perms[p], CT_BF16);
        check_permute(perms[p], CT_U8);
    }
}

Test(cpu_nn_kernels, permute_rejects_a_repeated_axis) {
    float x[24], o[24];
    ct_tview in = view(x, CT_F32, (ct_shape){3, {2, 3, 4}});
    call c = {.attr = {.perm = {0, 0, 2}}};
    cr_assert_neq(run_op(CT_OP_PERMUTE, &c, &in, 1, view(o, CT_F32, (ct_shape){3, {2, 2, 4}})), CT_OK);
}

Test(cpu_nn_kernels, reshape_copies) {
    double x[6] = {1, 2, 3, 4, 5, 6}, o[6];
    ct_tview in = view(x, CT_F64, (ct_shape){2, {2, 3}});
    call c = {0};
    cr_assert_eq(run_op(CT_OP_RESHAPE, &c, &in, 1, view(o, CT_F64, (ct_shape){3, {3, 1, 2}})), CT_OK);
    cr_assert_arr_eq(o, x, sizeof x);
}

/* concat along each axis, slice each piece back out, and scatter each piece
 * into zeros with slice_grad. */
static void concat_round_trip(int axis, ct_dtype dt) {
    ct_shape as = {3, {2, 3, 4}}, bs = as, os = as;
    bs.dim[axis] = 2;
    os.dim[axis] = as.dim[axis] + bs.dim[axis];
    int64_t na = numel(as), nb = numel(bs), no = numel(os);
    size_t es = ct_dtype_size(dt);
    void *a = malloc(na * es), *b = malloc(nb * es), *o = malloc(no * es);
    void *back = malloc(no * es), *g = malloc(no * es);
    for (int64_t i = 0; i < na; i++) ct_st(a, dt, i, i + 1);
    for (int64_t i = 0; i < nb; i++) ct_st(b, dt, i, -(i + 1));
    ct_tview in[2] = {view(a, dt, as), view(b, dt, bs)};
    call c = {.attr = {.axis = axis}};
    cr_assert_eq(run_op(CT_OP_CONCAT, &c, in, 2, view(o, dt, os)), CT_OK, "%s", ct_last_error());
    /* Independent check of the concat: walk the output's multi-index. */
    for (int64_t i = 0; i < no; i++) {
        int64_t idx[3], r = i;
        for (int d = 2; d >= 0; d--) idx[d] = r % os.dim[d], r /= os.dim[d];
        double want;
        if (idx[axis] < as.dim[axis]) {
            want = ct_ld(a, dt, (idx[0] * as.dim[1] + idx[1]) * as.dim[2] + idx[2]);
        } else {
            idx[axis] -= as.dim[axis];
            want = ct_ld(b, dt, (idx[0] * bs.dim[1] + idx[1]) * bs.dim[2] + idx[2]);
        }
        cr_assert_eq(ct_ld(o, dt, i), want, "concat axis %d at %lld", axis, (long long)i);
    }
    ct_tview ov = view(o, dt, os);
    /* slice back */
    call sa = {.attr = {.axis = axis, .start = 0, .end = as.dim[axis]}};
    cr_assert_eq(run_op(CT_OP_SLICE, &sa, &ov, 1, view(back, dt, as)), CT_OK, "%s", ct_last_error());
    cr_assert_arr_eq(back, a, na * es, "slice a, axis %d", axis);
    call sb = {.attr = {.axis = axis, .start = as.dim[axis], .end = os.dim[axis]}};
    cr_assert_eq(run_op(CT_OP_SLICE, &sb, &ov, 1, view(back, dt, bs)), CT_OK, "%s", ct_last_error());
    cr_assert_arr_eq(back, b, nb * es, "slice b, axis %d", axis);
    /* slice_grad of each piece; the two together rebuild the concat */
    ct_tview bv = view(b, dt, bs), av = view(a, dt, as);
    call gb = {.attr = {.axis = axis, .start = as.dim[axis]}};
    cr_assert_eq(run_op(CT_OP_SLICE_GRAD, &gb, &bv, 1, view(g, dt, os)), CT_OK, "%s", ct_last_error());
    call ga = {.attr = {.axis = axis, .start = 0}};
    cr_assert_eq(run_op(CT_OP_SLICE_GRAD, &ga, &av, 1, view(back, dt, os)), CT_OK, "%s", ct_last_error());
    for (int64_t i = 0; i < no; i++) {
        double vb = ct_ld(g, dt, i), va = ct_ld(back, dt, i), want = ct_ld(o, dt, i);
        /* exactly one of the two is nonzero, and it is the concat's value */
        cr_assert((va == 0.0) != (vb == 0.0), "slice_grad axis %d at %lld: %g %g", axis, (long long)i,
                  va, vb);
        cr_assert_eq(va + vb, want, "slice_grad axis %d at %lld", axis, (long long)i);
    }
    free(a), free(b), free(o), free(back), free(g);
}

Test(cpu_nn_kernels, concat_slice_slice_grad_round_trip) {
    for (int axis = 0; axis < 3; axis++) {
        concat_round_trip(axis, CT_F32);
        concat_round_trip(axis, CT_F64);
        concat_round_trip(axis, CT_F16);
        concat_round_trip(axis, CT_I32);
    }
}

Test(cpu_nn_kernels, slice_middle_window) {
    float x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, o[8];
    ct_tview in = view(x, CT_F32, (ct_shape){2, {2, 5}});
    call c = {.attr = {.axis = 1, .start = 1, .end = 5}};
    cr_assert_eq(run_op(CT_OP_SLICE, &c, &in, 1, view(o, CT_F32, (ct_shape){2, {2, 4}})), CT_OK);
    float want[8] = {1, 2, 3, 4, 6, 7, 8, 9};
    cr_assert_arr_eq(o, want, sizeof want);
    float dy[4] = {10, 20, 30, 40}, g[10];
    ct_tview dv = view(dy, CT_F32, (ct_shape){2, {2, 2}});
    call cg = {.attr = {.axis = 1, .start = 2}};
    cr_assert_eq(run_op(CT_OP_SLICE_GRAD, &cg, &dv, 1, view(g, CT_F32, (ct_shape){2, {2, 5}})), CT_OK);
    float gwant[10] = {0, 0, 10, 20, 0, 0, 0, 30, 40, 0};
    cr_assert_arr_eq(g, gwant, sizeof gwant);
}

/* ---- embedding ---------------------------------------------------------- */

Test(cpu_nn_kernels, embedding_forward) {
    float w[15];
    for (int i = 0; i < 15; i++) w[i] = (float)(i * 0.5 - 3);
    int32_t idx[6] = {1, 4, 1, 0, 4, 1};
    float o[18];
    ct_tview in[2] = {view(w, CT_F32, (ct_shape){2, {5, 3}}), view(idx, CT_I32, (ct_shape){2, {2, 3}})};
    call c = {0};
    cr_assert_eq(run_op(CT_OP_EMBEDDING, &c, in, 2, view(o, CT_F32, (ct_shape){3, {2, 3, 3}})), CT_OK);
    for (int p = 0; p < 6; p++)
        for (int j = 0; j < 3; j++) cr_assert_eq(o[p * 3 + j], w[idx[p] * 3 + j]);
}

static double round_to(ct_dtype dt, double v) {
    double buf[1];
    ct_st(buf, dt, 0, v);
    return ct_ld(buf, dt, 0);
}

static void check_embedding_grad(ct_dtype dt, int64_t v, int64_t d, int64_t n, bool random_idx) {
    int32_t *idx = malloc(sizeof(int32_t) * n);
    static const int32_t fixed[7] = {2, 0, 2, 5, 2, 0, 3};
    for (int64_t p = 0; p < n; p++)
        idx[p] = random_idx ? (int32_t)((rnd() + 1.0) * 0.5 * (double)v) % (int32_t)v : fixed[p % 7];
    size_t es = ct_dtype_size(dt);
    void *dy = malloc(n * d * es), *o = malloc(v * d * es);
    for (int64_t i = 0; i < n * d; i++) ct_st(dy, dt, i, random_idx ? rnd() : 0.25 * (double)(i + 1) - 1.0);
    ct_tview in[2] = {view(idx, CT_I32, (ct_shape){2, {1, n}}),
                      view(dy, dt, (ct_shape){3, {1, n, d}})};
    ct_tview out = view(o, dt, (ct_shape){2, {v, d}});
    call c = {0};
    cr_assert_eq(run_op(CT_OP_EMBEDDING_GRAD, &c, in, 2, out), CT_OK, "%s", ct_last_error());
    double *want = calloc((size_t)(v * d), sizeof(double));
    for (int64_t p = 0; p < n; p++)
        for (int64_t j = 0; j < d; j++) want[idx[p] * d + j] += ct_ld(dy, dt, p * d + j);
    for (int64_t i = 0; i < v * d; i++)
        /* summed in double in position order, rounded once into the output */
        cr_assert_eq(ct_ld(o, dt, i), round_to(dt, want[i]), "%s V=%lld D=%lld: element %lld",
                     ct_dtype_name(dt), (long long)v, (long long)d, (long long)i);
    free(idx), free(dy), free(o), free(want);
}

Test(cpu_nn_kernels, embedding_grad_repeated_indices) {
    check_embedding_grad(CT_F32, 6, 3, 7, false);
    check_embedding_grad(CT_F64, 6, 3, 7, false);
    check_embedding_grad(CT_BF16, 6, 3, 7, false);
    /* several row blocks of the accumulator, and rows wider than it */
    check_embedding_grad(CT_F32, 300, 20, 500, true);
    check_embedding_grad(CT_F64, 3, 5000, 9, true);
    check_embedding_grad(CT_F16, 7, 4097, 20, true);
}

Test(cpu_nn_kernels, embedding_bad_index_is_an_error) {
    float w[6] = {0}, o[6];
    int32_t idx[2] = {1, 3};
    ct_tview in[2] = {view(w, CT_F32, (ct_shape){2, {3, 2}}), view(idx, CT_I32, (ct_shape){1, {2}})};
    call c = {0};
    ct_status s = run_op(CT_OP_EMBEDDING, &c, in, 2, view(o, CT_F32, (ct_shape){2, {2, 2}}));
    cr_assert_neq(s, CT_OK);
    cr_assert_eq(s, CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "index 3 at position 1") != NULL, "%s", ct_last_error());
    idx[1] = -1;
    s = run_op(CT_OP_EMBEDDING, &c, in, 2, view(o, CT_F32, (ct_shape){2, {2, 2}}));
    cr_assert(s != CT_OK && strstr(ct_last_error(), "index -1") != NULL, "%s", ct_last_error());
    float dy[4] = {0}, g[6];
    ct_tview gin[2] = {view(idx, CT_I32, (ct_shape){1, {2}}), view(dy, CT_F32, (ct_shape){2, {2, 2}})};
    s = run_op(CT_OP_EMBEDDING_GRAD, &c, gin, 2, view(g, CT_F32, (ct_shape){2, {3, 2}}));
    cr_assert(s != CT_OK && strstr(ct_last_error(), "index -1") != NULL, "%s", ct_last_error());
}

/* ---- dropout ------------------------------------------------------------ */

enum { DN = 100000 };

static float *dropout_run(const float *x, double p, bool training, uint32_t step) {
    float *o = malloc(sizeof(float) * DN);
    ct_tview in = view((void *)x, CT_F32, (ct_shape){1, {DN}});
    call c = {.attr = {.alpha = p, .stream = 7}, .training = training, .seed = 1234, .step = step};
    cr_assert_eq(run_op(CT_OP_DROPOUT, &c, &in, 1, view(o, CT_F32, (ct_shape){1, {DN}})), CT_OK, "%s",
                 ct_last_error());
    return o;
}

Test(cpu_nn_kernels, dropout_mask) {
    float *x = malloc(sizeof(float) * DN);
    for (int i = 0; i < DN; i++) x[i] = (float)(1 + i % 13) * 0.37f;
    double p = 0.3;
    float *o1 = dropout_run(x, p, true, 5);
    int dropped = 0;
    for (int i = 0; i < DN; i++) {
        if (o1[i] == 0.0f) {
            dropped++;
        } else {
            float want = (float)(x[i] / (1.0 - p));
            cr_assert(fabsf(o1[i] - want) <= 1e-6f * fabsf(want), "kept %d: %g vs %g", i, o1[i], want);
        }
    }
    /* std of the fraction is sqrt(p(1-p)/n) ~ 0.0015: 0.01 is ~7 sigma */
    cr_assert(fabs((double)dropped / DN - p) < 0.01, "dropped fraction %g", (double)dropped / DN);

    /* the mask is a function of (seed, stream, step, i) only */
    for (int i = 0; i < DN; i++)
        cr_assert_eq((o1[i] == 0.0f), ct_philox_uniform(1234, 7, 5, (uint64_t)i) < p);
    float *o2 = dropout_run(x, p, true, 5);
    cr_assert_arr_eq(o1, o2, sizeof(float) * DN);
    float *o3 = dropout_run(x, p, true, 6);
    int differ = 0;
    for (int i = 0; i < DN; i++) differ += (o1[i] == 0.0f) != (o3[i] == 0.0f);
    /* two independent masks disagree on 2p(1-p) = 42% of elements */
    cr_assert(differ > DN / 4, "masks of steps 5 and 6 differ at %d elements", differ);

    float *o4 = dropout_run(x, p, false, 5);
    cr_assert_arr_eq(o4, x, sizeof(float) * DN);
    float *o5 = dropout_run(x, 0.0, true, 5);
    cr_assert_arr_eq(o5, x, sizeof(float) * DN);
    float *o6 = dropout_run(x, 1.0, true, 5);
    for (int i = 0; i < DN; i++) cr_assert_eq(o6[i], 0.0f);
    free(x), free(o1), free(o2), free(o3), free(o4), free(o5), free(o6);
}

Test(cpu_nn_kernels, dropout_f64_same_mask_as_f32) {
    enum { n = 1000 };
    float xf[n], of[n];
    double xd[n], od[n];
    for (int i = 0; i < n; i++) xf[i] = (float)(xd[i] = 1.0 + i);
    call c = {.attr = {.alpha = 0.5, .stream = 3}, .training = true, .seed = 9, .step = 2};
    ct_tview inf = view(xf, CT_F32, (ct_shape){1, {n}}), ind = view(xd, CT_F64, (ct_shape){1, {n}});
    cr_assert_eq(run_op(CT_OP_DROPOUT, &c, &inf, 1, view(of, CT_F32, (ct_shape){1, {n}})), CT_OK);
    cr_assert_eq(run_op(CT_OP_DROPOUT, &c, &ind, 1, view(od, CT_F64, (ct_shape){1, {n}})), CT_OK);
    for (int i = 0; i < n; i++) cr_assert_eq((double)of[i], od[i], "element %d", i);
}

Test(cpu_nn_kernels, dropout_rejects_bad_p) {
    float x[4] = {1, 2, 3, 4}, o[4];
    ct_tview in = view(x, CT_F32, (ct_shape){1, {4}});
    call c = {.attr = {.alpha = 1.5}, .training = true};
    cr_assert_neq(run_op(CT_OP_DROPOUT, &c, &in, 1, view(o, CT_F32, (ct_shape){1, {4}})), CT_OK);
}

/* ---- losses ------------------------------------------------------------- */

static const double ce_logits[3 * 4] = {0.5, -1.25, 2.0, 0.0,  3.0, 1.0, -2.0, 0.25,
                                        -0.5, 0.75, 0.1, -3.0};
static int32_t ce_labels[3] = {2, 0, 3};

/* The textbook form: softmax probabilities, then -log of each. */
static double ce_by_hand(const double *x, const int32_t *y, int n, int c, double eps) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        double z = 0.0;
        for (int j = 0; j < c; j++) z += exp(x[i * c + j]);
        for (int j = 0; j < c; j++) {
            double q = (j == y[i] ? 1.0 - eps : 0.0) + eps / c;
            total += -q * log(exp(x[i * c + j]) / z);
        }
    }
    return total / n;
}

static double ce_kernel(const double *x, ct_dtype dt, double eps) {
    double xs[12];
    float xf[12];
    void *xp = dt == CT_F64 ? (void *)xs : (void *)xf;
    for (int i = 0; i < 12; i++) ct_st(xp, dt, i, x[i]);
    ct_tview in[2] = {view(xp, dt, (ct_shape){2, {3, 4}}), view(ce_labels, CT_I32, (ct_shape){1, {3}})};
    double o[1];
    call c = {.attr = {.alpha = eps}};
    cr_assert_eq(run_op(CT_OP_CROSS_ENTROPY, &c, in, 2, view(o, dt, (ct_shape){0, {0}})), CT_OK, "%s",
                 ct_last_error());
    return ct_ld(o, dt, 0);
}

Test(cpu_nn_kernels, cross_entropy_value) {
    for (int e = 0; e < 3; e++) {
        double eps = e * 0.15;
        double want = ce_by_hand(ce_logits, ce_labels, 3, 4, eps);
        double got = ce_kernel(ce_logits, CT_F64, eps);
        cr_assert(fabs(got - want) < 1e-12, "eps %g: %.17g vs %.17g", eps, got, want);
        got = ce_kernel(ce_logits, CT_F32, eps);
        cr_assert(fabs(got - want) < 1e-5, "f32 eps %g: %.9g vs %.9g", eps, got, want);
    }
    /* uniform logits: log C whatever the label and smoothing */
    double zeros[12] = {0};
    cr_assert(fabs(ce_kernel(zeros, CT_F64, 0.0) - log(4.0)) < 1e-14);
    cr_assert(fabs(ce_kernel(zeros, CT_F64, 0.3) - log(4.0)) < 1e-14);
}

Test(cpu_nn_kernels, cross_entropy_large_logits_stay_finite) {
    double x[2] = {1000.0, 0.0}, o;
    int32_t y[1] = {1};
    ct_tview in[2] = {view(x, CT_F64, (ct_shape){2, {1, 2}}), view(y, CT_I32, (ct_shape){1, {1}})};
    call c = {0};
    cr_assert_eq(run_op(CT_OP_CROSS_ENTROPY, &c, in, 2, view(&o, CT_F64, (ct_shape){0, {0}})), CT_OK);
    cr_assert(fabs(o - 1000.0) < 1e-9, "%.17g", o);
    y[0] = 0;
    cr_assert_eq(run_op(CT_OP_CROSS_ENTROPY, &c, in, 2, view(&o, CT_F64, (ct_shape){0, {0}})), CT_OK);
    cr_assert(o >= 0.0 && o < 1e-300, "%.17g", o);
}

Test(cpu_nn_kernels, cross_entropy_grad_matches_finite_difference) {
    for (int e = 0; e < 2; e++) {
        double eps = e * 0.2, dloss = 0.7, g[12];
        double x[12];
        memcpy(x, ce_logits, sizeof x);
        ct_tview in[3] = {view(x, CT_F64, (ct_shape){2, {3, 4}}),
                          view(ce_labels, CT_I32, (ct_shape){1, {3}}),
                          view(&dloss, CT_F64, (ct_shape){0, {0}})};
        call c = {.attr = {.alpha = eps}};
        cr_assert_eq(run_op(CT_OP_CROSS_ENTROPY_GRAD, &c, in, 3, view(g, CT_F64, (ct_shape){2, {3, 4}})),
                     CT_OK, "%s", ct_last_error());
        const double h = 1e-6;
        for (int i = 0; i < 12; i++) {
            double xp[12], xm[12];
            memcpy(xp, ce_logits, sizeof xp);
            memcpy(xm, ce_logits, sizeof xm);
            xp[i] += h;
            xm[i] -= h;
            double fd = dloss * (ce_kernel(xp, CT_F64, eps) - ce_kernel(xm, CT_F64, eps)) / (2 * h);
            cr_assert(fabs(g[i] - fd) < 1e-8, "eps %g, element %d: %.12g vs fd %.12g", eps, i, g[i], fd);
        }
    }
}

Test(cpu_nn_kernels, cross_entropy_bad_label_is_an_error) {
    double x[4] = {0}, o, g[4], dl = 1;
    int32_t y[2] = {0, 2};
    ct_tview in[3] = {view(x, CT_F64, (ct_shape){2, {2, 2}}), view(y, CT_I32, (ct_shape){1, {2}}),
                      view(&dl, CT_F64, (ct_shape){0, {0}})};
    call c = {0};
    cr_assert_neq(run_op(CT_OP_CROSS_ENTROPY, &c, in, 2, view(&o, CT_F64, (ct_shape){0, {0}})), CT_OK);
    cr_assert(strstr(ct_last_error(), "label 2 in row 1") != NULL, "%s", ct_last_error());
    cr_assert_neq(run_op(CT_OP_CROSS_ENTROPY_GRAD, &c, in, 3, view(g, CT_F64, (ct_shape){2, {2, 2}})),
                  CT_OK);
    cr_assert(strstr(ct_last_error(), "label 2 in row 1") != NULL, "%s", ct_last_error());
}

Test(cpu_nn_kernels, mse_value) {
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1.5f, 2, 1, 4, 8, 5.75f}, o;
    ct_tview in[2] = {view(a, CT_F32, (ct_shape){2, {2, 3}}), view(b, CT_F32, (ct_shape){2, {2, 3}})};
    call c = {0};
    cr_assert_eq(run_op(CT_OP_MSE, &c, in, 2, view(&o, CT_F32, (ct_shape){0, {0}})), CT_OK);
    /* (0.25 + 0 + 4 + 0 + 9 + 0.0625) / 6 */
    cr_assert_float_eq(o, 13.3125f / 6.0f, 1e-6f);
}

Test(cpu_nn_kernels, bce_with_logits_value) {
    double x[6] = {0.0, 2.5, -1.5, 7.0, -4.0, 0.3}, t[6] = {1, 0, 0.25, 1, 0, 0.5}, o;
    double want = 0.0;
    for (int i = 0; i < 6; i++) {
        double s = 1.0 / (1.0 + exp(-x[i]));
        want += -(t[i] * log(s) + (1 - t[i]) * log(1 - s));
    }
    want /= 6;
    ct_tview in[2] = {view(x, CT_F64, (ct_shape){1, {6}}), view(t, CT_F64, (ct_shape){1, {6}})};
    call c = {0};
    cr_assert_eq(run_op(CT_OP_BCE_WITH_LOGITS, &c, in, 2, view(&o, CT_F64, (ct_shape){0, {0}})), CT_OK);
    cr_assert(fabs(o - want) < 1e-12, "%.17g vs %.17g", o, want);
    /* far logits: no overflow, the limits are 0 and |x| */
    double xb[2] = {800.0, -800.0}, tb[2] = {1.0, 1.0};
    ct_tview inb[2] = {view(xb, CT_F64, (ct_shape){1, {2}}), view(tb, CT_F64, (ct_shape){1, {2}})};
    cr_assert_eq(run_op(CT_OP_BCE_WITH_LOGITS, &c, inb, 2, view(&o, CT_F64, (ct_shape){0, {0}})), CT_OK);
    cr_assert(fabs(o - 400.0) < 1e-9, "%.17g", o);
}
