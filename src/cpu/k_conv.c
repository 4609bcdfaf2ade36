/* CPU convolution: forward, and the gradients of its input, weight and bias.
 *
 * im2col + BLAS. A chunk of samples is unfolded into a column matrix
 * col [C * KH * KW, nb * OH * OW] (row (c, i, j), column (sample, oh, ow)),
 * so that per group one GEMM computes
 *     forward:      Y_g  [O/G, nb*P] = W_g [O/G, K_g] @ col_g [K_g, nb*P]
 *     grad input:   dcol_g           = W_g^T @ dY_g, folded back onto dx
 *     grad weight:  dW_g            += dY_g @ col_g^T
 * with P = OH * OW and K_g = C/G * KH * KW. Chunks bound the scratch (a
 * budget of CONV_BUDGET compute elements) while keeping each GEMM large
 * enough for BLAS to use every core; the per-element loops around it run
 * under OpenMP.
 *
 * Compute type: F64 for F64 tensors, F32 otherwise (F16/BF16 are widened
 * while unfolding, the weight into scratch, and rounded once on output),
 * which is the matmul kernel's rule. The forward also takes the precision
 * policy's mixed form, F16/BF16 x and weight with an F32 output and bias:
 * the same F32 computation without the final rounding. Folding dcol back
 * (col2im) adds into double accumulators plane by plane, in a fixed order,
 * so the result is deterministic and needs no atomics.
 *
 * That is the reference path. All-F32 convolutions take the fast paths
 * below (oneDNN, chunked weight gradient) unless they are switched off
 * (CTRAIN_CPU_REFERENCE=1, ct_cpu_set_fast_paths(false)); so do BF16 ones
 * (BF16 x, weight and dy; a BF16 output, or the mixed forward's F32 one)
 * where the CPU multiplies BF16 natively (ct_cpu_bf16_native).
 */
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "core/conv_geom.h"
#include "cpu/conv_onednn.h"
#include "cpu/cpu_half.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "cpu/cpu_vmath.h"
#include "ctrain/device.h"

/* Compute elements of scratch one chunk may use (the weight buffer comes
 * on top): 32 MiB in F64, 16 MiB in F32. */
#define CONV_BUDGET ((int64_t)1 << 22)
#define PAR_MIN 4096 /* elements below which threads cost more than they save */

typedef struct conv_dims {
    int64_t n, c, h, w;   /* x */
    int64_t o, oh, ow;    /* y */
    int kh, kw, groups;
    int64_t cg, og, kg;   /* per group: input channels, output channels, C/G * KH * KW */
    int64_t k, p;         /* rows of col (C * KH * KW), output pixels per sample (OH * OW) */
    int64_t nb;           /* samples per chunk */
    const ct_window2d *win;
} conv_dims;

/* The views of x, weight and y for each op (one of them is the output). */
static void roles(const ct_kargs *k, const ct_tview **x, const ct_tview **w, const ct_tview **y) {
    switch (k->op) {
    case CT_OP_CONV2D: *x = &k->in[0], *w = &k->in[1], *y = &k->out; break;
    case CT_OP_CONV2D_GRAD_INPUT: *y = &k->in[0], *w = &k->in[1], *x = &k->out; break;
    default: *x = &k->in[0], *y = &k->in[1], *w = &k->out; break; /* CONV2D_GRAD_WEIGHT */
    }
}

/* The ops whose views roles() reads: x, weight and y (or their gradients). */
static bool is_conv(ct_op op) {
    return op == CT_OP_CONV2D || op == CT_OP_CONV2D_GRAD_INPUT || op == CT_OP_CONV2D_GRAD_WEIGHT;
}

/* Checks that the three shapes agree with the window and fills d. */
static ct_status dims_of(const ct_kargs *k, conv_dims *d) {
    const char *op = ct_op_name(k->op);
    if (!is_conv(k->op)) return ct_error(CT_ERR_INTERNAL, "cpu %s: not a convolution", op);
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in); /* the gradients' fixed arity */
    if (s != CT_OK) return s;
    int want = 2 + (k->attr->has_bias ? 1 : 0); /* CONV2D's, which the bias decides */
    if (k->op == CT_OP_CONV2D && k->n_in != want)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: expected %d inputs, got %d", op, want, k->n_in);
    const ct_tview *x, *w, *y;
    roles(k, &x, &w, &y);
    const ct_window2d *win = &k->attr->win;
    char sx[96], sw[96], sy[96];
    bool ok = x->shape.ndim == 4 && w->shape.ndim == 4 && y->shape.ndim == 4 && win->groups >= 1;
    if (ok) {
        *d = (conv_dims){.n = x->shape.dim[0], .c = x->shape.dim[1], .h = x->shape.dim[2], .w = x->shape.dim[3],
                         .o = w->shape.dim[0], .oh = y->shape.dim[2], .ow = y->shape.dim[3],
                         .kh = win->kernel[0], .kw = win->kernel[1], .groups = win->groups, .win = win};
        d->cg = d->c / d->groups;
        d->og = d->o / d->groups;
        d->kg = d->cg * d->kh * d->kw;
        d->k = d->c * d->kh * d->kw;
        d->p = d->oh * d->ow;
        ok = d->c % d->groups == 0 && d->o % d->groups == 0 && w->shape.dim[1] == d->cg &&
             w->shape.dim[2] == d->kh && w->shape.dim[3] == d->kw && y->shape.dim[0] == d->n &&
             y->shape.dim[1] == d->o &&
             d->oh == ct_window_out(d->h, d->kh, win->stride[0], win->pad[0], win->dilation[0]) &&
             d->ow == ct_window_out(d->w, d->kw, win->stride[1], win->pad[1], win->dilation[1]);
    }
    if (!ok)
        return ct_error(CT_ERR_SHAPE, "cpu %s: x %s, weight %s and y %s do not fit the window (groups %d)", op,
                        ct_shape_str(x->shape, sx, sizeof sx), ct_shape_str(w->shape, sw, sizeof sw),
                        ct_shape_str(y->shape, sy, sizeof sy), win->groups);
    int64_t per_sample = (d->k + d->o) * d->p + (k->op == CT_OP_CONV2D_GRAD_INPUT ? 2 * d->c * d->h * d->w : 0);
    d->nb = per_sample > 0 ? CONV_BUDGET / per_sample : d->n;
    if (d->nb < 1) d->nb = 1;
    if (d->nb > d->n) d->nb = d->n;
    return CT_OK;
}

/* One float dtype for all, except the mixed forward of the precision
 * policy: F16/BF16 x and weight, F32 output and bias. */
static ct_status check_dtypes(const ct_kargs *k) {
    ct_dtype dt = k->out.dtype;
    bool mixed = k->op == CT_OP_CONV2D && dt == CT_F32 && k->n_in >= 2 && ct_cpu_is_half(k->in[0].dtype);
    bool ok = ct_dtype_is_float(dt);
    for (int i = 0; i < k->n_in; i++) ok = ok && k->in[i].dtype == (mixed && i < 2 ? k->in[0].dtype : dt);
    if (!ok)
        return ct_error(CT_ERR_DTYPE,
                        "cpu %s: inputs and output must share one float dtype, or be F16/BF16 x and weight with an "
                        "F32 output and bias (output %s, x %s)",
                        ct_op_name(k->op), ct_dtype_name(dt), ct_dtype_name(k->n_in ? k->in[0].dtype : dt));
    return CT_OK;
}

static bool is_f64(ct_dtype dt) { return dt == CT_F64; }
static size_t compute_size(ct_dtype dt) { return is_f64(dt) ? sizeof(double) : sizeof(float); }
/* The weight gradient's accumulator, or a half weight widened (the weight
 * is in[1] of the forward and of the input gradient). */
static bool needs_wbuf(const ct_kargs *k) {
    return k->op == CT_OP_CONV2D_GRAD_WEIGHT || (k->n_in >= 2 && ct_cpu_is_half(k->in[1].dtype));
}

/* The reference path's scratch. */
static size_t ref_scratch(const ct_kargs *k) {
    if (!is_conv(k->op)) return 0; /* the bias gradient, pooling and dropout2d need none */
    conv_dims d = {0};
    if (dims_of(k, &d) != CT_OK) return 0; /* the run reports it */
    int64_t n = (d.k + d.o) * d.nb * d.p + (needs_wbuf(k) ? d.o * d.kg : 0);
    /* grad input: col2im's double accumulators, after the rest */
    size_t acc = k->op == CT_OP_CONV2D_GRAD_INPUT ? (size_t)(d.nb * d.c * d.h * d.w) * sizeof(double) + 8 : 0;
    return (size_t)n * compute_size(k->out.dtype) + acc;
}

static size_t fast_scratch(const ct_kargs *k);

/* The larger of the two paths' needs: the fast paths can be switched off
 * between compiling and running (tests/test_conv_fast.c does). */
size_t ct_cpu_conv_scratch(const ct_kargs *k) {
    size_t r = ref_scratch(k), f = fast_scratch(k);
    return r > f ? r : f;
}

/* ---- element movement in the compute type ------------------------------- */

/* dst[0..n) = src[si + t * sstride], converted to the compute type. The
 * dtype switch is outside the loop: this is the inner loop of im2col. */
static void gather(void *dst, bool dbl, const void *src, ct_dtype st, int64_t si, int64_t sstride, int64_t n) {
    if (sstride == 1 && !dbl && st == CT_F32 && n <= 32) { /* short rows: a call to memcpy costs more */
        float *o = dst;
        const float *s = (const float *)src + si;
        for (int64_t t = 0; t < n; t++) o[t] = s[t];
    } else if (sstride == 1 && (dbl || st == CT_F32)) { /* stride-1 convolutions: a copy */
        if (n > 0) memcpy(dst, (const char *)src + (size_t)si * (dbl ? 8 : 4), (size_t)n * (dbl ? 8 : 4));
    } else if (dbl) {
        double *o = dst;
        const double *s = (const double *)src + si;
        for (int64_t t = 0; t < n; t++) o[t] = s[t * sstride];
    } else if (st == CT_F32) {
        float *o = dst;
        const float *s = (const float *)src + si;
        for (int64_t t = 0; t < n; t++) o[t] = s[t * sstride];
    } else {
        float *o = dst;
        for (int64_t t = 0; t < n; t++) o[t] = (float)ct_ld(src, st, si + t * sstride);
    }
}

static void zero(void *dst, bool dbl, int64_t n) {
    if (n > 0) memset(dst, 0, (size_t)n * (dbl ? sizeof(double) : sizeof(float)));
}

static double cget(const void *buf, bool dbl, int64_t i) {
    return dbl ? ((const double *)buf)[i] : ((const float *)buf)[i];
}

/* First ow whose tap (ow * stride + off) lies at or after 0, and one past
 * the last that lies before len. */
static void valid_range(int64_t len, int64_t off, int stride, int64_t outs, int64_t *lo, int64_t *hi) {
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = len - off <= 0 ? 0 : (len - 1 - off) / stride + 1;
    if (*hi > outs) *hi = outs;
    if (*lo > *hi) *lo = *hi;
}

/* Row r of col [K, nb * P] from samples n0 .. n0 + nb - 1 of x. */
static void im2col_row(const ct_tview *x, const conv_dims *d, int64_t n0, int64_t nb, void *col, bool dbl, int64_t r) {
    size_t es = dbl ? sizeof(double) : sizeof(float);
    int64_t ncols = nb * d->p;
    const ct_window2d *win = d->win;
    int64_t c = r / (d->kh * d->kw), i = r / d->kw % d->kh, j = r % d->kw;
    int64_t offh = i * win->dilation[0] - win->pad[0], offw = j * win->dilation[1] - win->pad[1];
    int64_t lo, hi;
    valid_range(d->w, offw, win->stride[1], d->ow, &lo, &hi);
    char *row = (char *)col + (size_t)(r * ncols) * es;
    for (int64_t s = 0; s < nb; s++) {
        for (int64_t oh = 0; oh < d->oh; oh++) {
            char *dst = row + (size_t)(s * d->p + oh * d->ow) * es;
            int64_t ih = oh * win->stride[0] + offh;
            if (ih < 0 || ih >= d->h) {
                zero(dst, dbl, d->ow);
                continue;
            }
            int64_t base = (((n0 + s) * d->c + c) * d->h + ih) * d->w + offw;
            zero(dst, dbl, lo);
            gather(dst + (size_t)lo * es, dbl, x->data, x->dtype, base + lo * win->stride[1], win->stride[1], hi - lo);
            zero(dst + (size_t)hi * es, dbl, d->ow - hi);
        }
    }
}

/* col [K, nb * P] from samples n0 .. n0 + nb - 1 of x. */
static void im2col(const ct_tview *x, const conv_dims *d, int64_t n0, int64_t nb, void *col, bool dbl) {
#pragma omp parallel for schedule(static) if (d->k * nb * d->p >= PAR_MIN)
    for (int64_t r = 0; r < d->k; r++) im2col_row(x, d, n0, nb, col, dbl, r);
}

/* Row o of mat [O, nb * P] from samples n0 .. of y [N, O, OH, OW] (dy). */
static void y_to_mat_row(const ct_tview *y, const conv_dims *d, int64_t n0, int64_t nb, void *mat, bool dbl,
                         int64_t o) {
    size_t es = dbl ? sizeof(double) : sizeof(float);
    for (int64_t s = 0; s < nb; s++)
        gather((char *)mat + (size_t)((o * nb + s) * d->p) * es, dbl, y->data, y->dtype, ((n0 + s) * d->o + o) * d->p,
               1, d->p);
}

/* mat [O, nb * P] from samples n0 .. of y [N, O, OH, OW] (dy). */
static void y_to_mat(const ct_tview *y, const conv_dims *d, int64_t n0, int64_t nb, void *mat, bool dbl) {
#pragma omp parallel for schedule(static) if (d->o * nb * d->p >= PAR_MIN)
    for (int64_t o = 0; o < d->o; o++) y_to_mat_row(y, d, n0, nb, mat, dbl, o);
}

/* The converse, into the output y, adding the bias. */
static void mat_to_y(const void *mat, const conv_dims *d, int64_t n0, int64_t nb, bool dbl, const ct_tview *bias,
                     const ct_tview *y) {
#pragma omp parallel for schedule(static) if (d->o * nb * d->p >= PAR_MIN)
    for (int64_t o = 0; o < d->o; o++) {
        double b = bias ? ct_ld(bias->data, bias->dtype, o) : 0.0;
        for (int64_t s = 0; s < nb; s++) {
            int64_t src = (o * nb + s) * d->p, dst = ((n0 + s) * d->o + o) * d->p;
            if (!dbl && y->dtype == CT_F32) {
                const float *m = (const float *)mat + src;
                float *out = (float *)y->data + dst, fb = (float)b;
                for (int64_t t = 0; t < d->p; t++) out[t] = m[t] + fb;
            } else {
                for (int64_t t = 0; t < d->p; t++) ct_st(y->data, y->dtype, dst + t, cget(mat, dbl, src + t) + b);
            }
        }
    }
}

/* dx for samples n0 .. from dcol [K, nb * P]: the converse of im2col,
 * adding every tap's value into a double plane of acc (nb * C * H * W
 * doubles of scratch) in a fixed order (rows (i, j), then oh, then ow),
 * then rounding once into dx. Planes are independent, so they split
 * across threads without changing any bit. */
static void col2im(const void *dcol, const conv_dims *d, int64_t n0, int64_t nb, bool dbl, double *acc,
                   const ct_tview *dx) {
    const ct_window2d *win = d->win;
    int64_t ncols = nb * d->p, hw = d->h * d->w;
#pragma omp parallel for schedule(static) if (nb * d->c * hw >= PAR_MIN)
    for (int64_t plane = 0; plane < nb * d->c; plane++) {
        int64_t s = plane / d->c, c = plane % d->c;
        double *a = acc + plane * hw;
        for (int64_t t = 0; t < hw; t++) a[t] = 0.0;
        for (int64_t i = 0; i < d->kh; i++)
            for (int64_t j = 0; j < d->kw; j++) {
                int64_t r = (c * d->kh + i) * d->kw + j;
                int64_t offh = i * win->dilation[0] - win->pad[0], offw = j * win->dilation[1] - win->pad[1];
                int64_t lo, hi, sw = win->stride[1];
                valid_range(d->w, offw, win->stride[1], d->ow, &lo, &hi);
                for (int64_t oh = 0; oh < d->oh; oh++) {
                    int64_t ih = oh * win->stride[0] + offh;
                    if (ih < 0 || ih >= d->h) continue;
                    int64_t at = ih * d->w + offw, src = r * ncols + s * d->p + oh * d->ow;
                    if (dbl) {
                        const double *v = (const double *)dcol + src;
                        for (int64_t ow = lo; ow < hi; ow++) a[at + ow * sw] += v[ow];
                    } else if (sw == 1) { /* unit stride: a loop the compiler vectorises */
                        const float *v = (const float *)dcol + src;
                        double *ap = a + at;
                        for (int64_t ow = lo; ow < hi; ow++) ap[ow] += v[ow];
                    } else {
                        const float *v = (const float *)dcol + src;
                        for (int64_t ow = lo; ow < hi; ow++) a[at + ow * sw] += v[ow];
                    }
                }
            }
        int64_t base = (n0 + s) * d->c * hw + c * hw;
        if (dx->dtype == CT_F32)
            for (int64_t t = 0; t < hw; t++) ((float *)dx->data)[base + t] = (float)a[t];
        else
            for (int64_t t = 0; t < hw; t++) ct_st(dx->data, dx->dtype, base + t, a[t]);
    }
}

/* C = op(A) @ op(B) (+ C when accumulate), row-major with leading dims. */
static void gemm(bool dbl, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda,
                 const void *b, int64_t ldb, bool accumulate, void *c, int64_t ldc) {
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    if (dbl)
        cblas_dgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)k, 1.0, a, (int)lda, b, (int)ldb,
                    accumulate ? 1.0 : 0.0, c, (int)ldc);
    else
        cblas_sgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
                    accumulate ? 1.0f : 0.0f, c, (int)ldc);
}

/* The weight in the compute type: the tensor itself for F32/F64, else
 * widened into wbuf. */
static const void *weight_compute(const ct_tview *w, const conv_dims *d, void *wbuf) {
    if (w->dtype == CT_F32 || w->dtype == CT_F64) return w->data;
    gather(wbuf, false, w->data, w->dtype, 0, 1, d->o * d->kg);
    return wbuf;
}

/* ---- F32 fast paths (docs/cpu_backend.md) ---------------------------------
 *
 * Forward and input gradient: oneDNN's direct convolution where the build
 * has it (conv_onednn.c); the reference path otherwise. Weight gradient:
 * the batch cut into chunks whose size depends on the shapes only, each
 * chunk computed on one thread (the threads share the chunks, not a
 * product) by oneDNN's kernel made for one thread where it is declared,
 * by im2col and a one-thread OpenBLAS product otherwise (the tail chunk,
 * builds without oneDNN); one partial gradient per chunk, then the
 * partials summed in chunk order, in double. Every element is therefore
 * the same arithmetic whatever the number of threads; the reference
 * instead lets OpenBLAS split one large product, which computes
 * differently on one thread than on several. */

#define WG_COLS 1024            /* columns (samples x pixels) of a chunk's product, at least */
#define WG_PARTIALS ((int64_t)1 << 21) /* floats of partial gradients, at most (8 MiB) */
#define WG_MIN_SLOTS 4          /* chunk buffers, at least (up to the chunk count) */
#define WG_SUM 256              /* gradient elements summed over the chunks at a time */

static bool all_f32(const ct_kargs *k) {
    bool ok = k->out.dtype == CT_F32;
    for (int i = 0; i < k->n_in; i++) ok = ok && k->in[i].dtype == CT_F32;
    return ok;
}

/* BF16 inputs (x, weight, dy) with a BF16 output, or the precision
 * policy's mixed forward (F32 output and bias). */
static bool bf16_dtypes(const ct_kargs *k) {
    ct_dtype out = k->out.dtype;
    return k->n_in >= 2 && k->in[0].dtype == CT_BF16 && k->in[1].dtype == CT_BF16 &&
           (out == CT_BF16 || (out == CT_F32 && k->op == CT_OP_CONV2D)) && (k->n_in < 3 || k->in[2].dtype == out);
}

/* The fast paths' dtypes: all F32, or BF16 ones (bf16_dtypes). Anything
 * else (F64, F16) is the reference's. BF16 ones are declared (and their
 * scratch kept) whatever the CPU, as F32 ones are whatever the fast-path
 * switch, which may change between compiling and running; they run only
 * where fast_runs says so. */
static bool fast_dtypes(const ct_kargs *k, int *src, int *dst) {
    *src = *dst = CT_F32;
    if (all_f32(k)) return true;
    if (!bf16_dtypes(k)) return false;
    *src = CT_BF16, *dst = k->out.dtype;
    return true;
}

/* Whether the fast paths run for these dtypes: switched on, and for BF16
 * where the CPU multiplies BF16 natively (ct_cpu_bf16_native; elsewhere
 * oneDNN would emulate it or decline). */
static bool fast_runs(int src) {
    return ct_cpu_fast_paths_enabled() && (src != CT_BF16 || ct_cpu_bf16_native());
}

/* The oneDNN cache's key (zeroed first: it is compared as bytes); false
 * when the dtypes are not the fast paths'. */
static bool shape_of(const ct_kargs *k, const conv_dims *d, ct_conv_shape *s) {
    memset(s, 0, sizeof *s);
    if (!fast_dtypes(k, &s->src_dt, &s->dst_dt)) return false;
    const ct_window2d *win = d->win;
    s->op = k->op, s->n = d->n, s->c = d->c, s->h = d->h, s->w = d->w, s->o = d->o, s->oh = d->oh, s->ow = d->ow;
    s->kh = d->kh, s->kw = d->kw, s->groups = d->groups;
    for (int i = 0; i < 2; i++) s->stride[i] = win->stride[i], s->pad[i] = win->pad[i], s->dil[i] = win->dilation[i];
    s->bias = k->op == CT_OP_CONV2D && k->attr->has_bias;
    return true;
}

/* The weight gradient's chunks: samples per chunk, chunks, and buffer
 * slots (a fixed number: the scratch is declared before the thread count
 * of a run is known). */
typedef struct wg_plan {
    int64_t cs, chunks, slots;
} wg_plan;

static wg_plan wg_plan_of(const conv_dims *d) {
    wg_plan w = {.cs = d->p > 0 ? (WG_COLS + d->p - 1) / d->p : 1};
    if (w.cs > d->n) w.cs = d->n > 0 ? d->n : 1;
    for (;;) {
        w.chunks = (d->n + w.cs - 1) / w.cs;
        if (w.chunks * d->o * d->kg <= WG_PARTIALS || w.cs >= d->n) break;
        w.cs = 2 * w.cs < d->n ? 2 * w.cs : d->n;
    }
    int procs = omp_get_num_procs();
    w.slots = procs > WG_MIN_SLOTS ? procs : WG_MIN_SLOTS;
    if (w.slots > w.chunks) w.slots = w.chunks;
    return w;
}

static int64_t wg_slot_floats(const conv_dims *d, const wg_plan *w) { return (d->k + d->o) * w->cs * d->p; }

/* Bytes before oneDNN's slots in the scratch: the partials and the im2col
 * slots, rounded up for oneDNN's blocked copies. */
static size_t wg_own_bytes(const conv_dims *d, const wg_plan *w) {
    size_t b = (size_t)(w->chunks * d->o * d->kg + w->slots * wg_slot_floats(d, w)) * sizeof(float);
    return (b + 63) / 64 * 64;
}

/* oneDNN's chunk primitive: full chunks of cs samples, one slot per buffer
 * set. *slot_bytes is its scratch per slot; false without it. */
static bool wg_onednn(const ct_kargs *k, const conv_dims *d, const wg_plan *w, bool create, ct_conv_shape *s,
                      size_t *slot_bytes) {
    if (!shape_of(k, d, s)) return false;
    s->n = w->cs, s->slots = (int)w->slots, s->bias = 0, s->dst_dt = CT_F32; /* F32 partials */
    return ct_conv_onednn_wgrad_declare(s, create, slot_bytes);
}

static size_t fast_scratch(const ct_kargs *k) {
    conv_dims d = {0};
    ct_conv_shape s;
    if (!is_conv(k->op) || dims_of(k, &d) != CT_OK || !shape_of(k, &d, &s)) return 0;
    if (k->op == CT_OP_CONV2D_GRAD_WEIGHT) {
        wg_plan w = wg_plan_of(&d);
        size_t slot = 0;
        return wg_own_bytes(&d, &w) + (wg_onednn(k, &d, &w, true, &s, &slot) ? (size_t)w.slots * slot : 0);
    }
    size_t bytes = 0;
    return ct_conv_onednn_declare(&s, &bytes) ? bytes : 0;
}

/* The forward or the input gradient through oneDNN; false when it did not
 * run. *relu: in, whether one is fused; out, whether oneDNN's path applied it. */
static bool fast_onednn(const ct_kargs *k, const conv_dims *d, bool *relu, ct_status *st) {
    ct_conv_shape s;
    if (!shape_of(k, d, &s) || !fast_runs(s.src_dt)) return *relu = false, false;
    const void *b = s.bias ? k->in[2].data : NULL;
    return ct_conv_onednn_run(&s, k->in[0].data, k->in[1].data, b, k->out.data, k->scratch, relu, st);
}

/* Chunk ch's gradient [O, K/G] per group into part, on this thread. */
static void wg_chunk(const ct_kargs *k, const conv_dims *d, const wg_plan *w, int64_t ch, float *slot, float *part) {
    int64_t n0 = ch * w->cs, nb = d->n - n0 < w->cs ? d->n - n0 : w->cs, ncols = nb * d->p;
    float *col = slot, *mat = slot + d->k * ncols;
    for (int64_t r = 0; r < d->k; r++) im2col_row(&k->in[0], d, n0, nb, col, false, r);
    for (int64_t o = 0; o < d->o; o++) y_to_mat_row(&k->in[1], d, n0, nb, mat, false, o);
    for (int g = 0; g < d->groups; g++)
        gemm(false, false, true, d->og, d->kg, ncols, mat + g * d->og * ncols, ncols, col + g * d->kg * ncols, ncols,
             false, part + g * d->og * d->kg, d->kg);
}

/* Every chunk's partial gradient into part: chunks of the full size
 * through oneDNN where it is declared (the tail chunk, or every chunk
 * without it, by im2col and OpenBLAS), so which way a chunk goes depends on
 * the shapes only. */
static ct_status wg_chunks(const ct_kargs *k, const conv_dims *d, const wg_plan *w, float *part) {
    int64_t wn = d->o * d->kg;
    float *slots = part + w->chunks * wn;
    ct_conv_shape s;
    size_t dslot = 0, es = k->in[0].dtype == CT_BF16 ? 2 : 4;
    bool dnnl = wg_onednn(k, d, w, false, &s, &dslot);
    char *dbase = (char *)k->scratch + wg_own_bytes(d, w);
    const char *x = k->in[0].data, *dy = k->in[1].data;
    int nt = omp_get_max_threads() < w->slots ? omp_get_max_threads() : (int)w->slots;
    ct_status bad = CT_OK;
#pragma omp parallel num_threads(nt)
    {
        /* This thread's products run on it alone: OpenBLAS's OpenMP build
         * and oneDNN read the count, and their one-thread paths are the same
         * on any team. */
        omp_set_num_threads(1);
        int t = omp_get_thread_num();
        float *slot = slots + t * wg_slot_floats(d, w);
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < w->chunks; ch++) {
            ct_status cs = CT_OK;
            bool full = (ch + 1) * w->cs <= d->n;
            size_t xo = (size_t)(ch * w->cs * d->c * d->h * d->w) * es, yo = (size_t)(ch * w->cs * d->o * d->p) * es;
            if (!(dnnl && full &&
                  ct_conv_onednn_wgrad_chunk(&s, t, x + xo, dy + yo, part + ch * wn, dbase + (size_t)t * dslot, &cs)))
                wg_chunk(k, d, w, ch, slot, part + ch * wn);
            if (cs != CT_OK) {
#pragma omp critical(ct_conv_wg)
                bad = cs;
            }
        }
    }
    return bad;
}

/* The partials summed in chunk order, in double, rounded once into the
 * output's dtype (F32, or BF16 as the reference rounds: to float, then to
 * BF16). */
static void wg_sum(const conv_dims *d, const wg_plan *w, const float *part, const ct_tview *out) {
    int64_t wn = d->o * d->kg;
    /* WG_SUM elements at a time, so each chunk's partials are read in runs */
#pragma omp parallel for schedule(static) if (wn * w->chunks >= PAR_MIN)
    for (int64_t i0 = 0; i0 < wn; i0 += WG_SUM) {
        int64_t m = wn - i0 < WG_SUM ? wn - i0 : WG_SUM;
        double acc[WG_SUM] = {0};
        for (int64_t ch = 0; ch < w->chunks; ch++)
            for (int64_t j = 0; j < m; j++) acc[j] += part[ch * wn + i0 + j];
        if (out->dtype == CT_F32)
            for (int64_t j = 0; j < m; j++) ((float *)out->data)[i0 + j] = (float)acc[j];
        else
            for (int64_t j = 0; j < m; j++) ct_st(out->data, out->dtype, i0 + j, acc[j]);
    }
}

static bool fast_grad_weight(const ct_kargs *k, const conv_dims *d, ct_status *st) {
    int src, dst;
    if (d->n == 0 || !k->scratch || !fast_dtypes(k, &src, &dst) || !fast_runs(src)) return false;
    wg_plan w = wg_plan_of(d);
    float *part = k->scratch;
    *st = wg_chunks(k, d, &w, part);
    if (*st == CT_OK) wg_sum(d, &w, part, &k->out);
    return true;
}

static ct_status prepare(const ct_kargs *k, conv_dims *d) {
    ct_status s = check_dtypes(k);
    if (s == CT_OK) s = dims_of(k, d);
    if (s != CT_OK) return s;
    if (!k->scratch && ref_scratch(k) > 0)
        return ct_error(CT_ERR_INTERNAL, "cpu %s: no scratch (%zu bytes needed)", ct_op_name(k->op), ref_scratch(k));
    return CT_OK;
}

/* Scratch layout: col [K, nb * P], then mat [O, nb * P], then wbuf, then
 * (grad input) col2im's accumulators, aligned for doubles. */
static double *scratch_parts(const ct_kargs *k, const conv_dims *d, void **col, void **mat, void **wbuf) {
    size_t es = compute_size(k->out.dtype);
    *col = k->scratch;
    *mat = (char *)*col + (size_t)(d->k * d->nb * d->p) * es;
    *wbuf = (char *)*mat + (size_t)(d->o * d->nb * d->p) * es;
    uintptr_t end = (uintptr_t)((char *)*wbuf + (size_t)(needs_wbuf(k) ? d->o * d->kg : 0) * es);
    return (double *)((end + 7) / 8 * 8);
}

/* A fused relu (ct_attrs.fused_relu) comes with the unblocking of oneDNN's
 * output where that is nChw16c, else it is a pass over the output in
 * place: oneDNN's relu post-op turns a NaN into 0, and its elu with alpha
 * 0 (which keeps the bits) computes an exp per element and measured
 * slower than the pass (docs/cpu_backend.md). */
static ct_status k_conv2d(const ct_kargs *k) {
    conv_dims d = {0};
    ct_status s = prepare(k, &d);
    if (s != CT_OK || d.n * d.o * d.p == 0) return s;
    bool relu = k->attr->fused_relu;
    if (fast_onednn(k, &d, &relu, &s)) {
        if (s == CT_OK && k->attr->fused_relu && !relu) ct_cpu_relu_inplace(&k->out);
        return s;
    }
    bool dbl = is_f64(k->out.dtype);
    size_t es = compute_size(k->out.dtype);
    void *col, *mat, *wbuf;
    scratch_parts(k, &d, &col, &mat, &wbuf);
    const void *w = weight_compute(&k->in[1], &d, wbuf);
    const ct_tview *bias = k->attr->has_bias ? &k->in[2] : NULL;
    for (int64_t n0 = 0; n0 < d.n; n0 += d.nb) {
        int64_t nb = d.n - n0 < d.nb ? d.n - n0 : d.nb, ncols = nb * d.p;
        im2col(&k->in[0], &d, n0, nb, col, dbl);
        for (int g = 0; g < d.groups; g++)
            gemm(dbl, false, false, d.og, ncols, d.kg, (const char *)w + (size_t)(g * d.og * d.kg) * es, d.kg,
                 (const char *)col + (size_t)(g * d.kg * ncols) * es, ncols, false,
                 (char *)mat + (size_t)(g * d.og * ncols) * es, ncols);
        mat_to_y(mat, &d, n0, nb, dbl, bias, &k->out);
    }
    if (k->attr->fused_relu) ct_cpu_relu_inplace(&k->out);
    return CT_OK;
}

static ct_status k_conv2d_grad_input(const ct_kargs *k) {
    conv_dims d = {0};
    ct_status s = prepare(k, &d);
    bool relu = false;
    if (s != CT_OK || d.n * d.c * d.h * d.w == 0 || fast_onednn(k, &d, &relu, &s)) return s;
    bool dbl = is_f64(k->out.dtype);
    size_t es = compute_size(k->out.dtype);
    void *dcol, *mat, *wbuf;
    double *acc = scratch_parts(k, &d, &dcol, &mat, &wbuf);
    const void *w = weight_compute(&k->in[1], &d, wbuf);
    for (int64_t n0 = 0; n0 < d.n; n0 += d.nb) {
        int64_t nb = d.n - n0 < d.nb ? d.n - n0 : d.nb, ncols = nb * d.p;
        y_to_mat(&k->in[0], &d, n0, nb, mat, dbl);
        for (int g = 0; g < d.groups; g++)
            gemm(dbl, true, false, d.kg, ncols, d.og, (const char *)w + (size_t)(g * d.og * d.kg) * es, d.kg,
                 (const char *)mat + (size_t)(g * d.og * ncols) * es, ncols, false,
                 (char *)dcol + (size_t)(g * d.kg * ncols) * es, ncols);
        col2im(dcol, &d, n0, nb, dbl, acc, &k->out);
    }
    return CT_OK;
}

static ct_status k_conv2d_grad_weight(const ct_kargs *k) {
    conv_dims d = {0};
    ct_status s = prepare(k, &d);
    if (s != CT_OK || fast_grad_weight(k, &d, &s)) return s;
    bool dbl = is_f64(k->out.dtype);
    size_t es = compute_size(k->out.dtype);
    void *col, *mat, *acc;
    scratch_parts(k, &d, &col, &mat, &acc);
    zero(acc, dbl, d.o * d.kg); /* an empty batch has a zero gradient */
    for (int64_t n0 = 0; n0 < d.n; n0 += d.nb) {
        int64_t nb = d.n - n0 < d.nb ? d.n - n0 : d.nb, ncols = nb * d.p;
        im2col(&k->in[0], &d, n0, nb, col, dbl);
        y_to_mat(&k->in[1], &d, n0, nb, mat, dbl);
        for (int g = 0; g < d.groups; g++)
            gemm(dbl, false, true, d.og, d.kg, ncols, (const char *)mat + (size_t)(g * d.og * ncols) * es, ncols,
                 (const char *)col + (size_t)(g * d.kg * ncols) * es, ncols, true,
                 (char *)acc + (size_t)(g * d.og * d.kg) * es, d.kg);
    }
    for (int64_t i = 0; i < d.o * d.kg; i++) ct_st(k->out.data, k->out.dtype, i, cget(acc, dbl, i));
    return CT_OK;
}

/* F32 in the near-reference mode (ct_cpu_float_math(), as layer norm's
 * row sums): each channel's sum in BIAS_LANES double partial sums, element
 * t of a sample's run into lane t mod BIAS_LANES, samples in order, the
 * lanes added pairwise at the end. The order depends on the shapes only,
 * not on threads; the lanes vectorise where the reference's one chain of
 * double additions waits on each result (conv1 of cnn-mnist: 2.4 million
 * elements a step). Within a float ULP or so of the reference
 * (tests/test_ew_float.c, conv_bias_grad_near_reference). */
#define BIAS_LANES 16
typedef struct gb_job {
    const float *g;
    float *b;
    int64_t n, o, p;
} gb_job;

static CT_ALWAYS_INLINE void gb_lanes_body(const gb_job *k, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
        double acc[BIAS_LANES] = {0};
        for (int64_t s = 0; s < k->n; s++) {
            const float *r = k->g + (s * k->o + c) * k->p;
            int64_t t = 0;
            for (; t + BIAS_LANES <= k->p; t += BIAS_LANES) {
                CT_SIMD_LOOP
                for (int l = 0; l < BIAS_LANES; l++) acc[l] += r[t + l];
            }
            for (int l = 0; t + l < k->p; l++) acc[l] += r[t + l];
        }
        for (int h = BIAS_LANES / 2; h > 0; h /= 2)
            for (int l = 0; l < h; l++) acc[l] += acc[l + h];
        k->b[c] = (float)acc[0];
    }
}
CT_RANGE_KERNEL(gb_lanes, gb_lanes_body, gb_job)

/* F32 otherwise: the reference's sums, each channel's in its order,
 * BIAS_BLOCK channels at a time so that their additions overlap (one
 * channel's chain of double additions waits on each result); the same
 * bits, several times faster. */
#define BIAS_BLOCK 8
static bool fast_grad_bias(const ct_tview *dy, const ct_tview *out, int64_t n, int64_t o, int64_t p) {
    if (dy->dtype != CT_F32 || out->dtype != CT_F32 || !ct_cpu_fast_paths_enabled()) return false;
    const float *g = dy->data;
    float *b = out->data;
    if (ct_cpu_float_math()) {
        const gb_job k = {g, b, n, o, p};
        ct_par_ranges(o, dy->numel >= PAR_MIN ? 1 : o + 1, gb_lanes(), &k);
        return true;
    }
#pragma omp parallel for schedule(static) if (dy->numel >= PAR_MIN)
    for (int64_t c0 = 0; c0 < o; c0 += BIAS_BLOCK) {
        int64_t nc = o - c0 < BIAS_BLOCK ? o - c0 : BIAS_BLOCK;
        double acc[BIAS_BLOCK] = {0};
        for (int64_t s = 0; s < n; s++) {
            const float *r = g + (s * o + c0) * p;
            if (nc == BIAS_BLOCK) {
                for (int64_t t = 0; t < p; t++)
                    for (int j = 0; j < BIAS_BLOCK; j++) acc[j] += r[j * p + t];
            } else {
                for (int64_t t = 0; t < p; t++)
                    for (int j = 0; j < nc; j++) acc[j] += r[j * p + t];
            }
        }
        for (int j = 0; j < nc; j++) b[c0 + j] = (float)acc[j];
    }
    return true;
}

static ct_status k_conv2d_grad_bias(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s == CT_OK) s = check_dtypes(k);
    if (s != CT_OK) return s;
    const ct_tview *dy = &k->in[0];
    char sy[96], so[96];
    if (dy->shape.ndim != 4 || k->out.shape.ndim != 1 || k->out.shape.dim[0] != dy->shape.dim[1])
        return ct_error(CT_ERR_SHAPE, "cpu conv2d_grad_bias: dy %s and output %s (want [N, O, OH, OW] and [O])",
                        ct_shape_str(dy->shape, sy, sizeof sy), ct_shape_str(k->out.shape, so, sizeof so));
    int64_t n = dy->shape.dim[0], o = dy->shape.dim[1], p = dy->shape.dim[2] * dy->shape.dim[3];
    if (fast_grad_bias(dy, &k->out, n, o, p)) return CT_OK;
#pragma omp parallel for schedule(static) if (dy->numel >= PAR_MIN)
    for (int64_t c = 0; c < o; c++) {
        double acc = 0.0;
        for (int64_t s2 = 0; s2 < n; s2++)
            for (int64_t t = 0; t < p; t++) acc += ct_ld(dy->data, dy->dtype, (s2 * o + c) * p + t);
        ct_st(k->out.data, k->out.dtype, c, acc);
    }
    return CT_OK;
}

void ct_cpu_register_conv(ct_kernel_fn *t) {
    t[CT_OP_CONV2D] = k_conv2d;
    t[CT_OP_CONV2D_GRAD_INPUT] = k_conv2d_grad_input;
    t[CT_OP_CONV2D_GRAD_WEIGHT] = k_conv2d_grad_weight;
    t[CT_OP_CONV2D_GRAD_BIAS] = k_conv2d_grad_bias;
}
