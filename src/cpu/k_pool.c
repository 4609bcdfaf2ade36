/* CPU pooling (max, average) with their gradients. (Channel dropout shares
 * dropout's kernel, in k_nn.c.)
 *
 * Direct loops over [N, C, H, W] planes, one plane per OpenMP iteration.
 * The shape rule (src/core/ops_conv.c) keeps the padding at most half the
 * kernel, so every window overlaps the input: the max of a window is taken
 * over its elements inside the input (padding is -inf and never wins), and
 * the average divides by KH * KW (padding counts as zeros).
 *
 * Both gradients sum in double and in a fixed order, plane by plane:
 * average pooling's as a gather (each dx element adds the dy of the
 * windows holding it), max pooling's by adding each window's dy to the
 * scratch accumulator of its first maximum, found again from x. Overlapping
 * windows therefore need no atomics and give the same bits on every run.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "core/conv_geom.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"

#define PAR_MIN 4096 /* elements below which threads cost more than they save */

typedef struct pool_dims {
    int64_t planes, h, w, oh, ow; /* planes = N * C */
    const ct_window2d *win;
} pool_dims;

/* Checks the views of a pool op: x is the input of the forward ops and of
 * MAX_POOL2D_GRAD, the output of AVG_POOL2D_GRAD; y the forward's output
 * or dy. */
static ct_status pool_dims_of(const char *op, const ct_kargs *k, const ct_tview *x, const ct_tview *y, pool_dims *d) {
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    bool ok = ct_dtype_is_float(k->out.dtype);
    for (int i = 0; i < k->n_in; i++) ok = ok && k->in[i].dtype == k->out.dtype;
    if (!ok) return ct_error(CT_ERR_DTYPE, "cpu %s: inputs and output must share one float dtype", op);
    const ct_window2d *win = &k->attr->win;
    char sx[96], sy[96];
    ok = x->shape.ndim == 4 && y->shape.ndim == 4 && x->shape.dim[0] == y->shape.dim[0] &&
         x->shape.dim[1] == y->shape.dim[1];
    if (ok) {
        *d = (pool_dims){x->shape.dim[0] * x->shape.dim[1], x->shape.dim[2], x->shape.dim[3], y->shape.dim[2],
                         y->shape.dim[3], win};
        for (int i = 0; i < 2; i++)
            ok = ok && win->pad[i] >= 0 && 2 * win->pad[i] <= win->kernel[i] && win->dilation[i] == 1;
        ok = ok && d->oh == ct_window_out(d->h, win->kernel[0], win->stride[0], win->pad[0], 1) &&
             d->ow == ct_window_out(d->w, win->kernel[1], win->stride[1], win->pad[1], 1);
    }
    if (!ok)
        return ct_error(CT_ERR_SHAPE, "cpu %s: x %s and y %s do not fit the window", op,
                        ct_shape_str(x->shape, sx, sizeof sx), ct_shape_str(y->shape, sy, sizeof sy));
    return CT_OK;
}

/* The part of window (oh, ow) inside the input: rows [*h0, *h1), columns [*w0, *w1). */
static inline void window(const pool_dims *d, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1, int64_t *w0,
                          int64_t *w1) {
    const ct_window2d *win = d->win;
    int64_t hs = oh * win->stride[0] - win->pad[0], ws = ow * win->stride[1] - win->pad[1];
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = hs + win->kernel[0] < d->h ? hs + win->kernel[0] : d->h;
    *w1 = ws + win->kernel[1] < d->w ? ws + win->kernel[1] : d->w;
}

/* The windows holding input row ih (or column): outputs [*lo, *hi). */
static void holders(int64_t i, int k, int stride, int pad, int64_t outs, int64_t *lo, int64_t *hi) {
    int64_t first = i + pad - k + 1, last = i + pad;
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last / stride + 1;
    if (*hi > outs) *hi = outs;
}

/* Plane-local index of the first maximum of window (oh, ow) of plane pl;
 * a NaN is the maximum (the first NaN), as in ct_max. F32, the common
 * case, reads the floats directly. */
static inline int64_t window_argmax(const ct_tview *x, const pool_dims *d, int64_t pl, int64_t oh, int64_t ow) {
    int64_t h0, h1, w0, w1;
    window(d, oh, ow, &h0, &h1, &w0, &w1);
    int64_t base = pl * d->h * d->w, best = h0 * d->w + w0;
    double m = -INFINITY;
    const float *xf = x->dtype == CT_F32 ? (const float *)x->data + base : NULL;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            int64_t at = ih * d->w + iw;
            double v = xf ? xf[at] : ct_ld(x->data, x->dtype, base + at);
            if (v > m) {
                m = v;
                best = at;
            } else if (isnan(v)) {
                return at;
            }
        }
    return best;
}

/* ---- F32 fast path: unpadded windows (docs/cpu_backend.md) ---------------
 *
 * The same first maximum as window_argmax, without its per-window bounds,
 * its widening to double and its early return: every window lies inside
 * the plane, and the choice rule becomes "take v when the maximum so far
 * is not NaN and v is larger or NaN", which picks the same element (the
 * first NaN, else the first of the largest; a -inf start is the first
 * element either way). Comparisons of floats are exact, so the bits are
 * the reference's. */

static bool fast_pool_ok(const ct_tview *x, const pool_dims *d) {
    return x->dtype == CT_F32 && d->win->pad[0] == 0 && d->win->pad[1] == 0 && ct_cpu_fast_paths_enabled();
}

/* Plane-local index of the first maximum of the window at p (row stride w). */
static inline int64_t first_max(const float *plane, int64_t at0, int64_t w, int kh, int kw) {
    const float *p = plane + at0;
    float m = p[0];
    int64_t best = 0;
    for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw; j++) {
            float v = p[i * w + j];
            if (!isnan(m) && (v > m || isnan(v))) m = v, best = i * w + j;
        }
    return at0 + best;
}

/* The 2x2, stride 2 windows of the models, four at a time in SSE2 (the
 * x86-64 baseline): the choice rule above as masks, take(m, v) = m is not
 * NaN and (v > m or v is NaN); a select by mask is exact. */
#if defined(__x86_64__)
#define POOL22_SSE 1
static inline __m128 take4(__m128 m, __m128 v) {
    return _mm_and_ps(_mm_cmpord_ps(m, m), _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_cmpunord_ps(v, v)));
}
static inline __m128 sel4(__m128 t, __m128 v, __m128 m) { return _mm_or_ps(_mm_and_ps(t, v), _mm_andnot_ps(t, m)); }
#else
#define POOL22_SSE 0
#endif

static inline int take(float m, float v) { return !isnan(m) && (v > m || isnan(v)); }

#if POOL22_SSE
/* Windows j .. j+3 of rows r0, r1: their top-left, top-right, bottom-left
 * and bottom-right elements, one vector each. */
static inline void windows4(const float *r0, const float *r1, int64_t j, __m128 *m, __m128 *b, __m128 *c, __m128 *e) {
    __m128 a0 = _mm_loadu_ps(r0 + 2 * j), a1 = _mm_loadu_ps(r0 + 2 * j + 4);
    __m128 c0 = _mm_loadu_ps(r1 + 2 * j), c1 = _mm_loadu_ps(r1 + 2 * j + 4);
    *m = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), *b = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
    *c = _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)), *e = _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1));
}
#endif

static void pool22_rows(const float *r0, const float *r1, float *out, int64_t ow) {
    int64_t j = 0;
#if POOL22_SSE
    for (; j + 4 <= ow; j += 4) {
        __m128 m, b, c, e;
        windows4(r0, r1, j, &m, &b, &c, &e);
        m = sel4(take4(m, b), b, m);
        m = sel4(take4(m, c), c, m);
        _mm_storeu_ps(out + j, sel4(take4(m, e), e, m));
    }
#endif
    for (; j < ow; j++) {
        float m = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], e = r1[2 * j + 1];
        m = take(m, b) ? b : m;
        m = take(m, c) ? c : m;
        out[j] = take(m, e) ? e : m;
    }
}

/* dx of rows r0, r1 (o0, o1): each window's dy + 0.0 at its first maximum,
 * +0 elsewhere, written once. */
static void pool22_grad_rows(const float *r0, const float *r1, const float *g, float *o0, float *o1, int64_t ow) {
    int64_t j = 0;
#if POOL22_SSE
    for (; j + 4 <= ow; j += 4) {
        __m128 m, b, c, e;
        windows4(r0, r1, j, &m, &b, &c, &e);
        __m128 t1 = take4(m, b);
        m = sel4(t1, b, m);
        __m128 t2 = take4(m, c);
        m = sel4(t2, c, m);
        __m128 t3 = take4(m, e);
        __m128 v = _mm_add_ps(_mm_loadu_ps(g + j), _mm_setzero_ps());
        __m128 p3 = t3, p2 = _mm_andnot_ps(t3, t2), p1 = _mm_andnot_ps(_mm_or_ps(t2, t3), t1);
        __m128 p0 = _mm_andnot_ps(_mm_or_ps(t1, _mm_or_ps(t2, t3)), _mm_castsi128_ps(_mm_set1_epi32(-1)));
        __m128 v0 = _mm_and_ps(p0, v), v1 = _mm_and_ps(p1, v), v2 = _mm_and_ps(p2, v), v3 = _mm_and_ps(p3, v);
        _mm_storeu_ps(o0 + 2 * j, _mm_unpacklo_ps(v0, v1));
        _mm_storeu_ps(o0 + 2 * j + 4, _mm_unpackhi_ps(v0, v1));
        _mm_storeu_ps(o1 + 2 * j, _mm_unpacklo_ps(v2, v3));
        _mm_storeu_ps(o1 + 2 * j + 4, _mm_unpackhi_ps(v2, v3));
    }
#endif
    for (; j < ow; j++) {
        float m = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], e = r1[2 * j + 1];
        int k = 0;
        if (take(m, b)) m = b, k = 1;
        if (take(m, c)) m = c, k = 2;
        if (take(m, e)) k = 3;
        float v = g[j] + 0.0f;
        o0[2 * j] = k == 0 ? v : 0.0f;
        o0[2 * j + 1] = k == 1 ? v : 0.0f;
        o1[2 * j] = k == 2 ? v : 0.0f;
        o1[2 * j + 1] = k == 3 ? v : 0.0f;
    }
}

static bool is_22(const ct_window2d *win) {
    return win->kernel[0] == 2 && win->kernel[1] == 2 && win->stride[0] == 2 && win->stride[1] == 2;
}

/* One plane of dx for 2x2 windows; rows and columns past the last window are zero. */
static void pool22_grad_plane(const float *x, const float *g, float *dx, const pool_dims *d) {
    for (int64_t oh = 0; oh < d->oh; oh++) {
        const float *r0 = x + 2 * oh * d->w;
        float *o0 = dx + 2 * oh * d->w;
        pool22_grad_rows(r0, r0 + d->w, g + oh * d->ow, o0, o0 + d->w, d->ow);
        for (int64_t c = 2 * d->ow; c < d->w; c++) o0[c] = o0[d->w + c] = 0.0f;
    }
    for (int64_t t = 2 * d->oh * d->w; t < d->h * d->w; t++) dx[t] = 0.0f;
}

static bool fast_max_pool(const ct_tview *x, const ct_tview *y, const pool_dims *d) {
    if (!fast_pool_ok(x, d)) return false;
    const float *xs = x->data;
    float *ys = y->data;
    int kh = d->win->kernel[0], kw = d->win->kernel[1], sh = d->win->stride[0], sw = d->win->stride[1];
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t pl = 0; pl < d->planes; pl++) {
        const float *plane = xs + pl * d->h * d->w;
        float *out = ys + pl * d->oh * d->ow;
        if (is_22(d->win)) {
            for (int64_t oh = 0; oh < d->oh; oh++)
                pool22_rows(plane + 2 * oh * d->w, plane + (2 * oh + 1) * d->w, out + oh * d->ow, d->ow);
            continue;
        }
        for (int64_t oh = 0; oh < d->oh; oh++)
            for (int64_t ow = 0; ow < d->ow; ow++)
                out[oh * d->ow + ow] = plane[first_max(plane, oh * sh * d->w + ow * sw, d->w, kh, kw)];
    }
    return true;
}

/* A fused relu's gradient (ct_attrs.fused_relu: x is the relu's output) on
 * one plane while it is in cache: dx * (x > 0 ? 1 : 0), the product
 * relu's UNARY_GRAD computes (exact, so float or double alike). */
static void relu_mask_plane(float *out, const float *x, int64_t n) {
    for (int64_t t = 0; t < n; t++) out[t] = out[t] * (x[t] > 0.0f ? 1.0f : 0.0f);
}

/* Windows that do not overlap: each element takes at most one dy, written
 * as the reference writes 0.0 + dy (a -0 gradient becomes +0). */
static bool fast_max_pool_grad(const ct_tview *x, const ct_tview *dy, const ct_tview *dx, const pool_dims *d,
                               bool relu) {
    const ct_window2d *win = d->win;
    if (!fast_pool_ok(x, d) || win->stride[0] < win->kernel[0] || win->stride[1] < win->kernel[1]) return false;
    const float *xs = x->data, *dys = dy->data;
    float *dxs = dx->data;
    int kh = win->kernel[0], kw = win->kernel[1], sh = win->stride[0], sw = win->stride[1];
    int64_t hw = d->h * d->w;
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t pl = 0; pl < d->planes; pl++) {
        const float *plane = xs + pl * hw, *g = dys + pl * d->oh * d->ow;
        float *out = dxs + pl * hw;
        if (is_22(win)) {
            pool22_grad_plane(plane, g, out, d);
        } else {
            memset(out, 0, (size_t)hw * sizeof *out);
            for (int64_t oh = 0; oh < d->oh; oh++)
                for (int64_t ow = 0; ow < d->ow; ow++)
                    out[first_max(plane, oh * sh * d->w + ow * sw, d->w, kh, kw)] = g[oh * d->ow + ow] + 0.0f;
        }
        if (relu) relu_mask_plane(out, plane, hw);
    }
    return true;
}

static ct_status k_max_pool2d(const ct_kargs *k) {
    const ct_tview *x = &k->in[0], *y = &k->out;
    pool_dims d;
    ct_status s = pool_dims_of("max_pool2d", k, x, y, &d);
    if (s != CT_OK || fast_max_pool(x, y, &d)) return s;
    if (x->dtype == CT_F32) { /* the maximum itself, without the dtype switch */
        const float *xs = x->data;
        float *ys = y->data;
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
        for (int64_t pl = 0; pl < d.planes; pl++)
            for (int64_t oh = 0; oh < d.oh; oh++)
                for (int64_t ow = 0; ow < d.ow; ow++)
                    ys[(pl * d.oh + oh) * d.ow + ow] = xs[pl * d.h * d.w + window_argmax(x, &d, pl, oh, ow)];
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t pl = 0; pl < d.planes; pl++)
        for (int64_t oh = 0; oh < d.oh; oh++)
            for (int64_t ow = 0; ow < d.ow; ow++) {
                int64_t at = window_argmax(x, &d, pl, oh, ow);
                ct_st(y->data, y->dtype, (pl * d.oh + oh) * d.ow + ow, ct_ld(x->data, x->dtype, pl * d.h * d.w + at));
            }
    return CT_OK;
}

size_t ct_cpu_pool_scratch(const ct_kargs *k) {
    /* MAX_POOL2D_GRAD: a double accumulator per element of dx. */
    return k->op == CT_OP_MAX_POOL2D_GRAD ? (size_t)k->out.numel * sizeof(double) : 0;
}

/* Inputs: x, dy. Each window adds its dy to the accumulator of its first
 * maximum (windows in row-major order), then each plane is rounded once
 * into dx. */
static ct_status k_max_pool2d_grad(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", CT_OP_MAX_POOL2D_GRAD, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *dy = &k->in[1], *dx = &k->out;
    pool_dims d;
    s = pool_dims_of("max_pool2d_grad", k, x, dy, &d);
    if (s != CT_OK) return s;
    if (dx->numel != x->numel) return ct_error(CT_ERR_SHAPE, "cpu max_pool2d_grad: dx and x differ in size");
    const bool relu = k->attr->fused_relu;
    if (dx->numel == 0 || fast_max_pool_grad(x, dy, dx, &d, relu)) return CT_OK; /* an empty batch asks for no scratch */
    if (!k->scratch) return ct_error(CT_ERR_INTERNAL, "cpu max_pool2d_grad: no scratch");
    int64_t hw = d.h * d.w;
    const ct_window2d *win = d.win;
    if (dx->dtype == CT_F32 && x->dtype == CT_F32 && win->stride[0] >= win->kernel[0] &&
        win->stride[1] >= win->kernel[1]) {
        /* Windows that do not overlap add at most one dy to an element: the
         * accumulator would hold 0.0 + dy, which is written straight away
         * (0.0 + dy, so a -0 gradient still becomes +0 as it did). */
        const float *dys = dy->data;
        float *dxs = dx->data;
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
        for (int64_t pl = 0; pl < d.planes; pl++) {
            float *out = dxs + pl * hw;
            for (int64_t t = 0; t < hw; t++) out[t] = 0.0f;
            for (int64_t oh = 0; oh < d.oh; oh++)
                for (int64_t ow = 0; ow < d.ow; ow++)
                    out[window_argmax(x, &d, pl, oh, ow)] = (float)(0.0 + (double)dys[(pl * d.oh + oh) * d.ow + ow]);
            if (relu) relu_mask_plane(out, (const float *)x->data + pl * hw, hw);
        }
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t pl = 0; pl < d.planes; pl++) {
        double *acc = (double *)k->scratch + pl * hw;
        for (int64_t t = 0; t < hw; t++) acc[t] = 0.0;
        for (int64_t oh = 0; oh < d.oh; oh++)
            for (int64_t ow = 0; ow < d.ow; ow++)
                acc[window_argmax(x, &d, pl, oh, ow)] += ct_ld(dy->data, dy->dtype, (pl * d.oh + oh) * d.ow + ow);
        for (int64_t t = 0; t < hw; t++) ct_st(dx->data, dx->dtype, pl * hw + t, acc[t]);
    }
    if (relu) ct_cpu_relu_mask(dx, x);
    return CT_OK;
}

static ct_status k_avg_pool2d(const ct_kargs *k) {
    const ct_tview *x = &k->in[0], *y = &k->out;
    pool_dims d;
    ct_status s = pool_dims_of("avg_pool2d", k, x, y, &d);
    if (s != CT_OK) return s;
    double inv = 1.0 / ((double)d.win->kernel[0] * d.win->kernel[1]);
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t pl = 0; pl < d.planes; pl++)
        for (int64_t oh = 0; oh < d.oh; oh++)
            for (int64_t ow = 0; ow < d.ow; ow++) {
                int64_t h0, h1, w0, w1;
                window(&d, oh, ow, &h0, &h1, &w0, &w1);
                double acc = 0.0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) acc += ct_ld(x->data, x->dtype, (pl * d.h + ih) * d.w + iw);
                ct_st(y->data, y->dtype, (pl * d.oh + oh) * d.ow + ow, acc * inv);
            }
    return CT_OK;
}

/* Input: dy; the output dx has x's shape. */
static ct_status k_avg_pool2d_grad(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", CT_OP_AVG_POOL2D_GRAD, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *dy = &k->in[0], *dx = &k->out;
    pool_dims d;
    s = pool_dims_of("avg_pool2d_grad", k, dx, dy, &d);
    if (s != CT_OK) return s;
    const ct_window2d *win = d.win;
    double inv = 1.0 / ((double)win->kernel[0] * win->kernel[1]);
#pragma omp parallel for schedule(static) if (dx->numel >= PAR_MIN)
    for (int64_t pl = 0; pl < d.planes; pl++)
        for (int64_t ih = 0; ih < d.h; ih++) {
            int64_t hlo, hhi;
            holders(ih, win->kernel[0], win->stride[0], win->pad[0], d.oh, &hlo, &hhi);
            for (int64_t iw = 0; iw < d.w; iw++) {
                int64_t wlo, whi;
                holders(iw, win->kernel[1], win->stride[1], win->pad[1], d.ow, &wlo, &whi);
                double acc = 0.0;
                for (int64_t oh = hlo; oh < hhi; oh++)
                    for (int64_t ow = wlo; ow < whi; ow++)
                        acc += ct_ld(dy->data, dy->dtype, (pl * d.oh + oh) * d.ow + ow);
                ct_st(dx->data, dx->dtype, (pl * d.h + ih) * d.w + iw, acc * inv);
            }
        }
    return CT_OK;
}

void ct_cpu_register_pool(ct_kernel_fn *t) {
    t[CT_OP_MAX_POOL2D] = k_max_pool2d;
    t[CT_OP_MAX_POOL2D_GRAD] = k_max_pool2d_grad;
    t[CT_OP_AVG_POOL2D] = k_avg_pool2d;
    t[CT_OP_AVG_POOL2D_GRAD] = k_avg_pool2d_grad;
}
