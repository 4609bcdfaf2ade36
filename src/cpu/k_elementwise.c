/* CPU reference kernels: binary and unary elementwise ops, the unary ops'
 * gradient, casts, copies, and the BROADCAST_TO / SUM_TO pair.
 *
 * These are the values every other backend is checked against, so each op
 * is one plain loop that loads elements as double and stores them with the
 * output's rounding (cpu_util.h). The math itself (f, f' and the binary
 * operators) is core/ew_math.h's, shared with the CUDA kernels; one kernel
 * serves every op of class UNARY, one every op of class BINARY. Kernels check the shapes they rely on,
 * because a wrong shape here would otherwise read out of bounds instead of
 * failing a test.
 *
 * Speed without changing a bit: elements are independent, so large tensors
 * split across OpenMP threads (each element computed exactly as alone), and
 * F32 operands, the common case, are read and written through typed
 * pointers, so the dtype switch of ct_ld/ct_st leaves the inner loop; the
 * arithmetic stays the double arithmetic of the generic loop.
 *
 * The exception: F32 unary ops whose math is a transcendental function
 * (exp, tanh, GELU, the sigmoid...) and their gradient compute in float
 * with vector math where SLEEF is built in, as the CUDA kernels do
 * (cpu_fast_unary.c, docs/cpu_backend.md "Float math").
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/ew_math.h"
#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "ctrain/ops.h"

/* Elements below which a parallel region costs more than the loop. */
#define PAR_MIN ((int64_t)1 << 15)
/* Same-shape operands are cut into rows of this many elements to share them
 * out (the cut changes nothing: every element is computed alone). */
#define FLAT_ROW ((int64_t)4096)

/* True when `in` broadcasts to `out` by NumPy rules (which is also what
 * ct_bcast_offset assumes: `in` has no more axes than `out`). */
static bool broadcasts_to(const ct_shape *in, const ct_shape *out) {
    if (in->ndim > out->ndim) return false;
    int shift = out->ndim - in->ndim;
    for (int d = 0; d < in->ndim; d++)
        if (in->dim[d] != 1 && in->dim[d] != out->dim[d + shift]) return false;
    return true;
}

static ct_status shape_error(ct_op op, const char *what, const ct_shape *a, const ct_shape *b) {
    char sa[96], sb[96];
    return ct_error(CT_ERR_SHAPE, "cpu %s: %s %s vs %s", ct_op_name(op), what,
                    ct_shape_str(*a, sa, sizeof sa), ct_shape_str(*b, sb, sizeof sb));
}

/* ---- a fused relu (ct_attrs.fused_relu, core/program_fuse.c) ----------- */

/* o[i] = relu(o[i]) for i in [lo, hi): for the paths that do not apply it
 * as they go (F32: ct_ew_relu in float, the same bits). */
static void relu_range(const ct_tview *o, int64_t lo, int64_t hi) {
    if (o->dtype == CT_F32) {
        float *os = o->data;
#pragma omp parallel for schedule(static) if (hi - lo >= PAR_MIN)
        for (int64_t i = lo; i < hi; i++) os[i] = ct_relu_f32(os[i]);
        return;
    }
#pragma omp parallel for schedule(static) if (hi - lo >= PAR_MIN)
    for (int64_t i = lo; i < hi; i++) ct_st(o->data, o->dtype, i, ct_ew_relu(ct_ld(o->data, o->dtype, i)));
}

void ct_cpu_relu_inplace(const ct_tview *o) { relu_range(o, 0, o->numel); }

/* o[i] *= relu'(x[i]), as k_unary_grad computes dy * f'(x) for relu. */
void ct_cpu_relu_mask(const ct_tview *o, const ct_tview *x) {
    const int64_t n = o->numel;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double d = ct_ld(x->data, x->dtype, i) > 0 ? 1.0 : 0.0;
        ct_st(o->data, o->dtype, i, ct_ld(o->data, o->dtype, i) * d);
    }
}

/* ---- binary ------------------------------------------------------------ */

/* Row length m when `in`, broadcast to `out`, repeats with period m along
 * out's flat index (its shape, without leading 1s, is out's trailing axes:
 * a bias row, or a scalar with m = 1); 0 otherwise. */
static int64_t row_period(const ct_shape *in, const ct_shape *out) {
    int lead = 0;
    while (lead < in->ndim && in->dim[lead] == 1) lead++;
    int64_t m = 1;
    for (int d = lead; d < in->ndim; d++) {
        if (in->dim[d] != out->dim[out->ndim - in->ndim + d]) return 0;
        m *= in->dim[d];
    }
    return m;
}

/* out = a op b where each operand is either out's shape (full) or repeats
 * with period m (row); rows split across threads. Only full operands may
 * leave a tail of fewer than m elements. */
static void binary_rows(ct_op op, const ct_tview *a, bool a_full, const ct_tview *b, bool b_full,
                        const ct_tview *o, int64_t m, bool relu) {
    const int64_t rows = m > 0 ? o->numel / m : 0;
    const bool fast = ct_cpu_fast_binary_rows(op, a, a_full, b, b_full, o, m, rows, relu);
    if (fast) {
        /* vectorised, the same bits, the relu applied row by row (cpu_fast_ew.c) */
    } else if (a->dtype == CT_F32 && b->dtype == CT_F32 && o->dtype == CT_F32) {
        const float *pa = a->data, *pb = b->data;
        float *po = o->data;
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const float *ra = a_full ? pa + r * m : pa, *rb = b_full ? pb + r * m : pb;
            float *ro = po + r * m;
            for (int64_t j = 0; j < m; j++) ro[j] = (float)ct_ew_binary(op, ra[j], rb[j]);
        }
    } else {
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < m; j++) {
                int64_t i = r * m + j;
                double va = ct_ld(a->data, a->dtype, a_full ? i : j);
                double vb = ct_ld(b->data, b->dtype, b_full ? i : j);
                ct_st(o->data, o->dtype, i, ct_ew_binary(op, va, vb));
            }
    }
    /* the tail of a full-by-full product cut into FLAT_ROW pieces */
    for (int64_t i = rows * m; i < o->numel; i++)
        ct_st(o->data, o->dtype, i, ct_ew_binary(op, ct_ld(a->data, a->dtype, i), ct_ld(b->data, b->dtype, i)));
    if (relu) relu_range(o, fast ? rows * m : 0, o->numel);
}

/* Every op of class BINARY (core/op_list.h); the math is core/ew_math.h's. */
static ct_status k_binary(const ct_kargs *k) {
    const ct_op op = k->op;
    ct_status s = ct_op_check_inputs("cpu", op, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *a = &k->in[0], *b = &k->in[1], *o = &k->out;
    if (!broadcasts_to(&a->shape, &o->shape))
        return shape_error(op, "first operand does not broadcast to output", &a->shape, &o->shape);
    if (!broadcasts_to(&b->shape, &o->shape))
        return shape_error(op, "second operand does not broadcast to output", &b->shape,
                           &o->shape);

    bool a_full = ct_shape_equal(a->shape, o->shape), b_full = ct_shape_equal(b->shape, o->shape);
    const bool relu = k->attr && k->attr->fused_relu;
    if (a_full && b_full) {
        /* one row of the whole tensor would run on one thread: split it */
        binary_rows(op, a, true, b, true, o, o->numel >= PAR_MIN ? FLAT_ROW : o->numel, relu);
        return CT_OK;
    }
    int64_t ma = a_full ? 0 : row_period(&a->shape, &o->shape);
    int64_t mb = b_full ? 0 : row_period(&b->shape, &o->shape);
    if ((a_full || ma > 0) && (b_full || mb > 0) && (a_full || b_full || ma == mb)) {
        binary_rows(op, a, a_full, b, b_full, o, a_full ? mb : ma, relu);
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
    for (int64_t i = 0; i < o->numel; i++) {
        double va = ct_ld(a->data, a->dtype, ct_bcast_offset(&o->shape, &a->shape, i));
        double vb = ct_ld(b->data, b->dtype, ct_bcast_offset(&o->shape, &b->shape, i));
        ct_st(o->data, o->dtype, i, ct_ew_binary(op, va, vb));
    }
    if (relu) relu_range(o, 0, o->numel);
    return CT_OK;
}

/* ---- unary ------------------------------------------------------------- */

static ct_status same_numel(ct_op op, const ct_tview *in, const ct_tview *out) {
    if (in->numel != out->numel) return shape_error(op, "input and output differ", &in->shape,
                                                    &out->shape);
    return CT_OK;
}

/* Every op of class UNARY (core/op_list.h): f(x) from core/ew_math.h,
 * computed in double. */
static ct_status k_unary(const ct_kargs *k) {
    const ct_op op = k->op;
    ct_status s = ct_op_check_inputs("cpu", op, k->n_in);
    if (s == CT_OK) s = same_numel(op, &k->in[0], &k->out);
    if (s != CT_OK) return s;
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", ct_op_name(op));
    const ct_tview *x = &k->in[0], *o = &k->out;
    const ct_ew_params p = ct_ew_params_of(op, k->attr);
    const int64_t n = o->numel;
    if (ct_cpu_fast_unary(&p, x, o)) return CT_OK; /* float math (cpu_fast_unary.c) */
    if (x->dtype == CT_F32 && o->dtype == CT_F32) {
        const float *xs = x->data;
        float *os = o->data;
        if (op == CT_OP_RELU) { /* the hot one: its own loop, which vectorises */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t i = 0; i < n; i++) os[i] = (float)ct_ew_relu((double)xs[i]);
            return CT_OK;
        }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) os[i] = (float)ct_ew_unary(&p, xs[i]);
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) ct_st(o->data, o->dtype, i, ct_ew_unary(&p, ct_ld(x->data, x->dtype, i)));
    return CT_OK;
}

/* dx = dy * f'(x), f' from core/ew_math.h, for the forward op in attr. */
static ct_status k_unary_grad(const ct_kargs *k) {
    const ct_op op = CT_OP_UNARY_GRAD;
    ct_status s = ct_op_check_inputs("cpu", op, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *dy = &k->in[1], *o = &k->out;
    if (x->numel != o->numel || dy->numel != o->numel)
        return shape_error(op, "x and dy differ", &x->shape, &dy->shape);
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", ct_op_name(op));
    const int fop = k->attr->fwd_op;
    if (ct_op_class_of(fop) != CT_OPC_UNARY)
        return ct_error(CT_ERR_INTERNAL, "cpu unary_grad: forward op %d (%s) is not unary", fop,
                        ct_op_name(fop) ? ct_op_name(fop) : "?");
    const ct_ew_params p = ct_ew_params_of(fop, k->attr);
    const int64_t n = o->numel;
    if (ct_cpu_fast_unary_grad(&p, x, dy, o)) return CT_OK; /* float math (cpu_fast_unary.c) */
    if (x->dtype == CT_F32 && dy->dtype == CT_F32 && o->dtype == CT_F32) {
        const float *xs = x->data, *dys = dy->data;
        float *os = o->data;
        if (fop == CT_OP_RELU) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t i = 0; i < n; i++) {
                double d = xs[i] > 0 ? 1.0 : 0.0;
                os[i] = (float)((double)dys[i] * d);
            }
            return CT_OK;
        }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) os[i] = (float)((double)dys[i] * ct_ew_unary_deriv(&p, xs[i]));
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double d = ct_ew_unary_deriv(&p, ct_ld(x->data, x->dtype, i));
        ct_st(o->data, o->dtype, i, ct_ld(dy->data, dy->dtype, i) * d);
    }
    return CT_OK;
}

/* ---- conversion and movement --------------------------------------------- */

static ct_status k_cast(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", CT_OP_CAST, k->n_in);
    if (s == CT_OK) s = same_numel(CT_OP_CAST, &k->in[0], &k->out);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    if (ct_cpu_fast_cast(x, o)) return CT_OK;
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
    for (int64_t i = 0; i < o->numel; i++)
        ct_st(o->data, o->dtype, i, ct_ld(x->data, x->dtype, i));
    return CT_OK;
}

static ct_status k_copy(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", CT_OP_COPY, k->n_in);
    if (s == CT_OK) s = same_numel(CT_OP_COPY, &k->in[0], &k->out);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    if (x->dtype != o->dtype)
        return ct_error(CT_ERR_DTYPE, "cpu copy: %s input, %s output (use cast)",
                        ct_dtype_name(x->dtype), ct_dtype_name(o->dtype));
    /* bytes, not values: a copy must keep every bit (NaN payloads, -0) */
    if (o->numel > 0 && x->data != o->data)
        memmove(o->data, x->data, (size_t)o->numel * ct_dtype_size(o->dtype));
    return CT_OK;
}

static ct_status k_broadcast_to(const ct_kargs *k) {
    const ct_op op = CT_OP_BROADCAST_TO;
    ct_status s = ct_op_check_inputs("cpu", op, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    if (!broadcasts_to(&x->shape, &o->shape))
        return shape_error(op, "input does not broadcast to output", &x->shape, &o->shape);
#pragma omp parallel for schedule(static) if (o->numel >= PAR_MIN)
    for (int64_t i = 0; i < o->numel; i++)
        ct_st(o->data, o->dtype, i,
              ct_ld(x->data, x->dtype, ct_bcast_offset(&o->shape, &x->shape, i)));
    return CT_OK;
}

/* Sizes of s right-aligned into nd axes (missing leading axes are 1). */
static void align_dims(const ct_shape *s, int nd, int64_t *dim) {
    int shift = nd - s->ndim;
    for (int d = 0; d < nd; d++) dim[d] = d < shift ? 1 : s->dim[d - shift];
}

/* True when the output is x's trailing axes with its leading ones summed
 * away: sizes 1 up to some axis, x's sizes from there on. x is then
 * [rows, numel(out)], each output element a column. */
static bool leading_only(const int64_t *odim, const int64_t *xdim, int nd) {
    int d = 0;
    while (d < nd && odim[d] == 1) d++;
    for (; d < nd; d++)
        if (odim[d] != xdim[d]) return false;
    return true;
}

/* Each output element is the sum of the x elements that BROADCAST_TO would
 * have filled from it, visited in row-major order and summed in double; no
 * scratch, and the order does not depend on anything but the shapes. */
static ct_status k_sum_to(const ct_kargs *k) {
    const ct_op op = CT_OP_SUM_TO;
    ct_status s = ct_op_check_inputs("cpu", op, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *x = &k->in[0], *o = &k->out;
    int nd = x->shape.ndim > o->shape.ndim ? x->shape.ndim : o->shape.ndim;
    int64_t xdim[CT_MAX_DIMS], odim[CT_MAX_DIMS], xstride[CT_MAX_DIMS];
    align_dims(&x->shape, nd, xdim);
    align_dims(&o->shape, nd, odim);
    for (int d = 0; d < nd; d++)
        if (odim[d] != xdim[d] && odim[d] != 1)
            return shape_error(op, "output is not a broadcast source of input", &o->shape,
                               &x->shape);
    int64_t acc = 1;
    for (int d = nd - 1; d >= 0; d--) {
        xstride[d] = acc;
        acc *= xdim[d];
    }

    int red[CT_MAX_DIMS], nred = 0;
    int64_t count = 1; /* x elements per output element */
    for (int d = 0; d < nd; d++) {
        if (odim[d] == 1 && xdim[d] != 1) {
            red[nred++] = d;
            count *= xdim[d];
        }
    }

    /* Summing over leading axes only (a bias gradient): the sums run
     * across the columns, vectorised, each still in row order. */
    if (o->numel > 0 && leading_only(odim, xdim, nd) &&
        ct_cpu_fast_sum_rows(x, o, x->numel / o->numel, o->numel))
        return CT_OK;
    /* Output elements are independent sums, each in its own fixed order. */
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (int64_t oi = 0; oi < o->numel; oi++) {
        int64_t base = 0, rem = oi;
        for (int d = nd - 1; d >= 0; d--) {
            base += (rem % odim[d]) * xstride[d];
            rem /= odim[d];
        }
        int64_t ridx[CT_MAX_DIMS] = {0};
        double sum = 0.0;
        for (int64_t r = 0; r < count; r++) {
            int64_t off = base;
            for (int q = 0; q < nred; q++) off += ridx[q] * xstride[red[q]];
            sum += ct_ld(x->data, x->dtype, off);
            for (int q = nred - 1; q >= 0; q--) { /* odometer, last axis fastest */
                if (++ridx[q] < xdim[red[q]]) break;
                ridx[q] = 0;
            }
        }
        ct_st(o->data, o->dtype, oi, sum);
    }
    return CT_OK;
}

void ct_cpu_register_elementwise(ct_kernel_fn *t) {
    for (int op = 0; op < CT_OP_COUNT; op++) {
        if (ct_op_class_of(op) == CT_OPC_BINARY) t[op] = k_binary;
        if (ct_op_class_of(op) == CT_OPC_UNARY) t[op] = k_unary;
    }
    t[CT_OP_UNARY_GRAD] = k_unary_grad;
    t[CT_OP_CAST] = k_cast;
    t[CT_OP_COPY] = k_copy;
    t[CT_OP_BROADCAST_TO] = k_broadcast_to;
    t[CT_OP_SUM_TO] = k_sum_to;
}
