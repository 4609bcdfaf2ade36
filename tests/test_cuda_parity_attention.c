/* GPU vs CPU: the fused attention (CT_OP_ATTENTION) and its gradients
 * (CT_OP_ATTENTION_GRAD: dq, dk, dv), causal and not, in F32, F64, F16 and
 * BF16 (tests/cuda_parity.h: fresh random inputs in [-2, 2], poisoned
 * outputs, every element checked).
 *
 * Shapes: odd lengths and lengths that are not a multiple of the kernels'
 * tiles (16 rows per block, 32 per tile): T = 1, 17, 33, 35, 40, 45, 77,
 * 100 and 300 (ten key tiles: the online softmax rescales nine times);
 * head sizes D = 1, 5, 32, 64, 96, 128 and 256 (the GPU's largest: 8 values
 * per lane, and more than 48 KiB of shared memory); 384 (b, h) pairs, and
 * 525312 blocks, more than one grid (65535 * 8), so the block loops run.
 *
 * Tolerances. The CPU computes in double and rounds once; the GPU computes
 * in float for F32/F16/BF16 (double for F64), with the softmax in online
 * form (rescaled per key tile) and the backward's p as exp(s - lse). Its
 * float error grows with the size of the scores (an error of e in a score
 * is a relative error of e in its p; the scores' terms add up to about
 * scale * D), with the lengths of its sums (over D and over T) and with
 * the size of the output's values, M (att_mag), so each case's absolute
 * bound is
 *   atol = ATT_F32_ATOL * (scale * D + sqrt(D + T)) * M,  rtol 1e-5;
 * F64 the same form with ATT_F64_ATOL and rtol 1e-12; F16 and BF16 the
 * dtype's rtol and atol (one rounding of the result) plus the F32 bound.
 * ATT_F32_ATOL was set from attention_tolerance_emulated below, which runs
 * without a GPU: the kernels' arithmetic (the same sums in the same order,
 * fused multiply-adds where nvcc forms them, the warp sums' butterfly,
 * float or double) emulated on the CPU must stay within the bounds, and
 * its worst error is logged: about 0.2 of the tolerance in F32, 0.03 in
 * F64, 0.4 in F16 and 0.3 in BF16 (a scale of 1 with D = 96, the peaked
 * case, is the one that needs the scale * D term). */
#include "cuda_parity.h"

#include "core/attention.h"

#define ATT_F32_ATOL 3e-7 /* times (scale * D + sqrt(D + T)) times the size of the output (att_mag) */
#define ATT_F64_ATOL 1e-15

typedef struct att_spec {
    const char *what;
    int64_t b, h, t, d;
    double scale; /* 0: ct_attention_default_scale(D) */
} att_spec;

static const att_spec att_specs[] = {
    {"odd T, D 32", 2, 3, 77, 32, 0},
    {"T 45 (not a multiple of a tile), D 64", 1, 4, 45, 64, 0},
    {"D 128, T 100", 2, 2, 100, 128, 0},
    {"T 1", 3, 2, 1, 64, 0},
    {"384 (b, h) pairs", 16, 24, 17, 32, 0},
    {"odd D 5, T 33", 2, 2, 33, 5, 0},
    {"D 96, scale 1 (a peaked softmax)", 1, 2, 40, 96, 1.0},
    {"D 256", 1, 2, 35, 256, 0},
    {"T 300 (ten key tiles)", 1, 1, 300, 64, 0},
};
#define N_ATT_SPECS ((int)(sizeof att_specs / sizeof att_specs[0]))

static const char *const att_which_names[5] = {"attention", "dq", "dk", "dv", "dq dk dv"};

/* which: -1 the forward op, else a ct_attn_grad. */
static cp_case att_case(const att_spec *s, ct_dtype dt, int which, bool causal, char *name, size_t cap) {
    snprintf(name, cap, "%s %s%s %s", att_which_names[which + 1], causal ? "causal " : "", s->what, ct_dtype_name(dt));
    ct_shape sh = CP_SHAPE(s->b, s->h, s->t, s->d);
    double scale = s->scale > 0 ? s->scale : ct_attention_default_scale(s->d);
    cp_case c = {.name = name, .op = which < 0 ? CT_OP_ATTENTION : CT_OP_ATTENTION_GRAD,
                 .attr = {.alpha = scale, .causal = causal, .which = which < 0 ? 0 : which},
                 .n_in = which < 0 ? 3 : 4, .out_dtype = dt,
                 .out_shape = which == CT_ATTN_GRAD_QKV ? CP_SHAPE(3, s->b, s->h, s->t, s->d) : sh,
                 /* one key per query: dq = dk = 0 exactly */
                 .zeros_ok = s->t == 1 && which >= CT_ATTN_GRAD_Q && which != CT_ATTN_GRAD_V};
    for (int j = 0; j < c.n_in; j++) c.in[j] = cp_f(dt, sh);
    return c;
}

/* The size of the case's output values, from the inputs' range [-2, 2]:
 * y and dv are averages of rows of v or dy (<= 2); dq and dk are scale
 * times averages of (dy . v_j - delta) k_j, where dy . v_j, a sum of D
 * products, is about 1.4 sqrt(D) (the products' spread). */
static double att_mag(const cp_case *c) {
    if (c->op == CT_OP_ATTENTION || c->attr.which == CT_ATTN_GRAD_V) return 2.0;
    const ct_shape *s = &c->out_shape;
    double dqk = 2.0 * 1.4 * sqrt((double)s->dim[s->ndim - 1]) * c->attr.alpha;
    return c->attr.which == CT_ATTN_GRAD_QKV ? fmax(dqk, 2.0) : dqk; /* QKV holds dv too */
}

/* The case's tolerance (see the top). */
static void att_tol(cp_case *c) {
    const ct_shape *s = &c->in[0].shape; /* [B, H, T, D] (the output of QKV has a leading 3) */
    double bound = (c->attr.alpha * (double)s->dim[3] + sqrt((double)(s->dim[2] + s->dim[3]))) * att_mag(c);
    double r, a;
    cp_default_tol(c->out_dtype, &r, &a);
    switch (c->out_dtype) {
    case CT_F64: c->rtol = 1e-12, c->atol = ATT_F64_ATOL * bound; break;
    case CT_F32: c->rtol = 1e-5, c->atol = ATT_F32_ATOL * bound; break;
    default: c->rtol = r, c->atol = ATT_F32_ATOL * bound + a; break;
    }
}

/* ---- GPU against CPU ------------------------------------------------------ */

/* Every shape, causal and not, in every float dtype. */
static void att_run_all(int which) {
    for (int si = 0; si < N_ATT_SPECS; si++)
        for (int di = 0; di < CP_N_FLOAT_DTYPES; di++)
            for (int causal = 0; causal <= 1; causal++) {
                char name[128];
                cp_case c = att_case(&att_specs[si], cp_float_dtype(di), which, causal, name, sizeof name);
                att_tol(&c);
                cp_run(&c);
            }
}

OP_TEST(cuda_parity, attention, CT_OP_ATTENTION) {
    CP_NEED_GPU();
    att_run_all(-1);
}

OP_TEST(cuda_parity, attention_grad_q, CT_OP_ATTENTION_GRAD) {
    CP_NEED_GPU();
    att_run_all(CT_ATTN_GRAD_Q);
}

OP_TEST(cuda_parity, attention_grad_k, CT_OP_ATTENTION_GRAD) {
    CP_NEED_GPU();
    att_run_all(CT_ATTN_GRAD_K);
}

OP_TEST(cuda_parity, attention_grad_v, CT_OP_ATTENTION_GRAD) {
    CP_NEED_GPU();
    att_run_all(CT_ATTN_GRAD_V);
}

/* The three gradients from one node, stacked: what a GPT's backward runs. */
OP_TEST(cuda_parity, attention_grad_qkv, CT_OP_ATTENTION_GRAD) {
    CP_NEED_GPU();
    att_run_all(CT_ATTN_GRAD_QKV);
}

/* 1024 * 513 (b, h) pairs of two positions: 525312 blocks, more than one
 * grid holds (65535 * 8), so every kernel's block loop takes a second
 * turn. D = 1: small tensors. */
OP_TEST(cuda_parity, attention_more_blocks_than_a_grid, CT_OP_ATTENTION, CT_OP_ATTENTION_GRAD) {
    CP_NEED_GPU();
    const att_spec s = {"525312 blocks", 1024, 513, 2, 1, 0.7};
    for (int which = -1; which <= CT_ATTN_GRAD_V; which++)
        for (int causal = 0; causal <= 1; causal++) {
            char name[128];
            cp_case c = att_case(&s, CT_F32, which, causal, name, sizeof name);
            att_tol(&c);
            cp_run(&c);
        }
}

/* D > 256 is refused on the GPU, naming D (the CPU has no limit). */
Test(cuda_parity, attention_head_size_over_the_gpu_limit) {
    CP_NEED_GPU();
    if (cp_selftest()) cr_skip_test("a GPU-only limit: the self-test runs the CPU on both sides");
    const ct_backend *gpu = cp_gpu();
    ct_shape sh = CP_SHAPE(1, 1, 3, 257);
    int64_t n = ct_shape_numel(sh);
    void *buf = gpu->alloc((size_t)(5 * n) * sizeof(float));
    cr_assert(buf, "%s", ct_last_error());
    ct_tview in[4];
    for (int j = 0; j < 4; j++) in[j] = (ct_tview){(float *)buf + j * n, CT_F32, sh, n};
    ct_attrs a = {.alpha = 0.1, .causal = true, .which = CT_ATTN_GRAD_Q};
    for (int grad = 0; grad <= 1; grad++) {
        ct_op op = grad ? CT_OP_ATTENTION_GRAD : CT_OP_ATTENTION;
        ct_kargs k = {.op = op, .attr = &a, .n_in = grad ? 4 : 3, .in = in, .out = {(float *)buf + 4 * n, CT_F32, sh, n}};
        cr_assert_eq(gpu->kernels[op](&k), CT_ERR_UNSUPPORTED, "%s: %s", ct_op_name(op), ct_last_error());
        cr_assert(strstr(ct_last_error(), "D = 257") && strstr(ct_last_error(), "D <= 256"), "%s", ct_last_error());
    }
    gpu->free(buf);
}

/* ---- the kernels' arithmetic, emulated on the CPU ------------------------ */

/* k_attention.cu's sums, in float (f32) or double, in its order: dot
 * products over d one term at a time as fused multiply-adds, the tile's
 * softmax terms summed by a warp's butterfly, the outputs accumulated key
 * (or query) by key as fused multiply-adds, rescaled once per key tile. */
typedef struct att_emu {
    bool f32;
    const ct_tview *q, *k, *v, *dy;
    int64_t t, d;
    double scale;
    bool causal;
} att_emu;

static double em_r(const att_emu *e, double x) { return e->f32 ? (double)(float)x : x; }
static double em_fma(const att_emu *e, double a, double b, double c) {
    return e->f32 ? (double)fmaf((float)a, (float)b, (float)c) : fma(a, b, c);
}
static double em_exp(const att_emu *e, double x) { return e->f32 ? (double)expf((float)x) : exp(x); }

static double em_ld(const ct_tview *x, int64_t bh, int64_t t, int64_t row, int64_t d, int64_t c) {
    return ct_ld(x->data, x->dtype, (bh * t + row) * d + c);
}

/* Row a of x dotted with row b of y, as a lane does it. */
static double em_dot(const att_emu *e, const ct_tview *x, const ct_tview *y, int64_t bh, int64_t a, int64_t b) {
    double s = 0;
    for (int64_t c = 0; c < e->d; c++) s = em_fma(e, em_ld(x, bh, e->t, a, e->d, c), em_ld(y, bh, e->t, b, e->d, c), s);
    return s;
}

/* ct_warp_sum: after the butterfly every lane holds lane 0's value. */
static double em_warp_sum(const att_emu *e, const double v[32]) {
    double w[32], nw[32];
    memcpy(w, v, sizeof w);
    for (int o = 16; o > 0; o >>= 1) {
        for (int l = 0; l < 32; l++) nw[l] = em_r(e, w[l] + w[l ^ o]);
        memcpy(w, nw, sizeof w);
    }
    return w[0];
}

/* Query row i of the forward kernel: its maximum, sum and unnormalised
 * output acc[0..d). */
static void em_row(const att_emu *e, int64_t bh, int64_t i, double *acc, double *m_out, double *l_out) {
    double m = -INFINITY, l = 0, s[32], p[32];
    float sc32 = (float)e->scale;
    double sc = e->f32 ? (double)sc32 : e->scale;
    for (int64_t c = 0; c < e->d; c++) acc[c] = 0;
    for (int64_t k0 = 0; k0 < e->t; k0 += 32) {
        int64_t end = e->t < k0 + 32 ? e->t : k0 + 32;
        if (e->causal && i + 1 < end) end = i + 1;
        int n = end > k0 ? (int)(end - k0) : 0;
        if (n == 0) continue;
        double mt = -INFINITY;
        for (int l2 = 0; l2 < 32; l2++) {
            s[l2] = l2 < n ? em_r(e, em_dot(e, e->q, e->k, bh, i, k0 + l2) * sc) : -INFINITY;
            mt = fmax(mt, s[l2]);
        }
        double mn = fmax(m, mt), alpha = em_exp(e, em_r(e, m - mn));
        for (int l2 = 0; l2 < 32; l2++) p[l2] = l2 < n ? em_exp(e, em_r(e, s[l2] - mn)) : 0;
        l = em_fma(e, l, alpha, em_warp_sum(e, p));
        for (int64_t c = 0; c < e->d; c++) {
            acc[c] = em_r(e, acc[c] * alpha);
            for (int jj = 0; jj < n; jj++) acc[c] = em_fma(e, p[jj], em_ld(e->v, bh, e->t, k0 + jj, e->d, c), acc[c]);
        }
        m = mn;
    }
    *m_out = m;
    *l_out = l;
}

/* The stats pass: lse = m + log l and delta = dy . (acc / l), the latter
 * as per-lane partial sums (lane + 32 t) then a warp sum. */
static void em_stats(const att_emu *e, int64_t bh, int64_t i, double *acc, double *lse, double *delta) {
    double m, l, part[32] = {0};
    em_row(e, bh, i, acc, &m, &l);
    for (int64_t c = 0; c < e->d; c++)
        part[c % 32] = em_fma(e, em_ld(e->dy, bh, e->t, i, e->d, c), em_r(e, acc[c] / l), part[c % 32]);
    *lse = em_r(e, m + (e->f32 ? (double)logf((float)l) : log(l)));
    *delta = em_warp_sum(e, part);
}

/* The emulated kernel's output for `which` (-1: the forward) into out. */
static void em_output(const att_emu *e, int64_t bh_n, int which, const ct_tview *out) {
    int64_t t = e->t, d = e->d;
    double *acc = malloc((size_t)(d ? d : 1) * sizeof *acc), *lse = malloc((size_t)(t ? t : 1) * sizeof *lse),
           *delta = malloc((size_t)(t ? t : 1) * sizeof *delta);
    cr_assert(acc && lse && delta);
    double sc = em_r(e, e->scale);
    for (int64_t bh = 0; bh < bh_n; bh++) {
        for (int64_t i = 0; i < t; i++) {
            if (which < 0) {
                double m, l;
                em_row(e, bh, i, acc, &m, &l);
                for (int64_t c = 0; c < d; c++) ct_st(out->data, out->dtype, (bh * t + i) * d + c, em_r(e, acc[c] / l));
            } else {
                em_stats(e, bh, i, acc, &lse[i], &delta[i]);
            }
        }
        if (which < 0) continue;
        for (int64_t r = 0; r < t; r++) { /* r: the output row, a query (dq) or a key (dk, dv) */
            for (int64_t c = 0; c < d; c++) acc[c] = 0;
            int64_t lo = which == CT_ATTN_GRAD_Q ? 0 : e->causal ? r : 0;
            int64_t hi = which == CT_ATTN_GRAD_Q ? (e->causal ? r + 1 : t) : t;
            for (int64_t o = lo; o < hi; o++) { /* the other side: keys j (dq), queries i (dk, dv) */
                int64_t i = which == CT_ATTN_GRAD_Q ? r : o, j = which == CT_ATTN_GRAD_Q ? o : r;
                double p = em_exp(e, em_fma(e, em_dot(e, e->q, e->k, bh, i, j), sc, -lse[i]));
                double w = p;
                if (which != CT_ATTN_GRAD_V) w = em_r(e, p * em_r(e, em_dot(e, e->dy, e->v, bh, i, j) - delta[i]));
                const ct_tview *x = which == CT_ATTN_GRAD_Q ? e->k : which == CT_ATTN_GRAD_K ? e->q : e->dy;
                for (int64_t c = 0; c < d; c++) acc[c] = em_fma(e, w, em_ld(x, bh, t, o, d, c), acc[c]);
            }
            for (int64_t c = 0; c < d; c++)
                ct_st(out->data, out->dtype, (bh * t + r) * d + c, which == CT_ATTN_GRAD_V ? acc[c] : em_r(e, sc * acc[c]));
        }
    }
    free(acc), free(lse), free(delta);
}

/* The tolerances hold for the kernels' arithmetic: the emulation against
 * the CPU's kernels, on the parity cases' shapes and inputs. No GPU. Every
 * shape in F32; F64, F16 and BF16 (whose errors are a double's, or the
 * result's rounding) on the shapes of under 1.5e6 score terms, which keeps
 * this test to seconds. */
Test(cuda_parity, attention_tolerance_emulated) {
    const ct_backend *cpu = ct_cpu_backend();
    for (int di = 0; di < CP_N_FLOAT_DTYPES; di++) {
        ct_dtype dt = cp_float_dtype(di);
        double worst = 0.0; /* the largest |error| / tolerance met in this dtype */
        for (int si = 0; si < N_ATT_SPECS; si++)
            for (int which = -1; which <= CT_ATTN_GRAD_V; which++)
                for (int causal = 0; causal <= 1; causal++) {
                    const att_spec *sp = &att_specs[si];
                    if (dt != CT_F32 && sp->b * sp->h * sp->t * sp->t * sp->d >= 1500000) continue;
                    char name[128];
                    cp_case c = att_case(&att_specs[si], dt, which, causal, name, sizeof name);
                    att_tol(&c);
                    ct_tview in[4];
                    for (int j = 0; j < c.n_in; j++) {
                        in[j] = (ct_tview){malloc(cp_bytes(dt, c.in[j].shape)), dt, c.in[j].shape,
                                           ct_shape_numel(c.in[j].shape)};
                        cr_assert(in[j].data);
                        cp_fill(&c.in[j], in[j].data, cp_stream_counter++);
                    }
                    int64_t n = ct_shape_numel(c.out_shape);
                    void *ref = malloc(cp_bytes(dt, c.out_shape)), *emu = malloc(cp_bytes(dt, c.out_shape));
                    ct_kargs k = {.op = c.op, .attr = &c.attr, .n_in = c.n_in, .in = in,
                                  .out = {ref, dt, c.out_shape, n}};
                    size_t sb = cpu->scratch_bytes(&k);
                    k.scratch = malloc(sb ? sb : 1);
                    cr_assert(ref && emu && k.scratch);
                    cr_assert_eq(cpu->kernels[c.op](&k), CT_OK, "%s: %s", name, ct_last_error());
                    att_emu e = {.f32 = dt != CT_F64, .q = &in[0], .k = &in[1], .v = &in[2],
                                 .dy = c.n_in > 3 ? &in[3] : NULL, .t = c.out_shape.dim[2],
                                 .d = c.out_shape.dim[3], .scale = c.attr.alpha, .causal = causal};
                    em_output(&e, c.out_shape.dim[0] * c.out_shape.dim[1], which,
                              &(ct_tview){emu, dt, c.out_shape, n});
                    cr_assert(cp_compare(name, "output (emulated)", dt, ref, emu, n, c.rtol, c.atol),
                              "%s: the emulated GPU arithmetic exceeds the tolerance", name);
                    for (int64_t i = 0; i < n; i++) {
                        double cv = ct_ld(ref, dt, i);
                        worst = fmax(worst, fabs(ct_ld(emu, dt, i) - cv) / (c.atol + c.rtol * fabs(cv)));
                    }
                    for (int j = 0; j < c.n_in; j++) free(in[j].data);
                    free(ref), free(emu), free(k.scratch);
                }
        cr_log_info("emulated attention %s: worst error %.3f of the tolerance", ct_dtype_name(dt), worst);
    }
}
