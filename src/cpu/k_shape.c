/* CPU data movement: reshape, permute, concat, slice and slice's gradient.
 *
 * None of these does arithmetic, so they move whole elements as bytes and
 * work for every dtype alike. Each one copies the longest contiguous run it
 * can find, which keeps the common layouts (a trailing axis left in place)
 * at memcpy speed.
 */
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_util.h"

static int64_t numel_of(const ct_shape *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->dim[d];
    return n;
}

static ct_status check_dtype(const char *op, const ct_tview *in, const ct_tview *out) {
    if (in->dtype != out->dtype || ct_dtype_size(out->dtype) == 0)
        return ct_error(CT_ERR_DTYPE, "%s: input %s, output %s (need the same valid dtype)", op,
                        ct_dtype_name(in->dtype), ct_dtype_name(out->dtype));
    return CT_OK;
}

static ct_status k_reshape(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s == CT_OK) s = check_dtype("reshape", &k->in[0], &k->out);
    if (s != CT_OK) return s;
    int64_t n = numel_of(&k->out.shape);
    if (numel_of(&k->in[0].shape) != n)
        return ct_error(CT_ERR_SHAPE, "reshape: input has %lld elements, output %lld",
                        (long long)numel_of(&k->in[0].shape), (long long)n);
    /* The planner may alias a reshape with its input; memmove is then a no-op. */
    if (n > 0 && k->out.data != k->in[0].data)
        memmove(k->out.data, k->in[0].data, (size_t)n * ct_dtype_size(k->out.dtype));
    return CT_OK;
}

static ct_status k_permute(const ct_kargs *k) {
    const ct_tview *x = &k->in[0];
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s == CT_OK) s = check_dtype("permute", x, &k->out);
    if (s != CT_OK) return s;
    const int *perm = k->attr->perm;
    int nd = x->shape.ndim;
    if (k->out.shape.ndim != nd)
        return ct_error(CT_ERR_SHAPE, "permute: input has %d axes, output %d", nd,
                        k->out.shape.ndim);
    unsigned seen = 0;
    for (int i = 0; i < nd; i++) {
        if (perm[i] < 0 || perm[i] >= nd || (seen & (1u << perm[i])) ||
            k->out.shape.dim[i] != x->shape.dim[perm[i]])
            return ct_error(CT_ERR_INVALID_ARG, "permute: perm[%d] = %d does not fit an input of %d axes",
                            i, perm[i], nd);
        seen |= 1u << perm[i];
    }
    int64_t n = numel_of(&k->out.shape);
    if (n == 0) return CT_OK;
    size_t es = ct_dtype_size(x->dtype);
    int64_t istride[CT_MAX_DIMS];
    ct_strides(&x->shape, istride);
    /* Trailing axes that stay in place are one contiguous run in both. */
    int lead = nd;
    int64_t run = 1;
    while (lead > 0 && perm[lead - 1] == lead - 1) {
        lead--;
        run *= x->shape.dim[lead];
    }
    size_t run_bytes = (size_t)run * es;
    int64_t idx[CT_MAX_DIMS] = {0};
    int64_t off = 0; /* input element offset of the current output run */
    char *dst = k->out.data;
    const char *src = x->data;
    for (int64_t r = 0; r < n / run; r++) {
        memcpy(dst + (size_t)(r * run) * es, src + (size_t)off * es, run_bytes);
        /* Odometer over the permuted axes, last fastest, moving off with it. */
        for (int d = lead - 1; d >= 0; d--) {
            int64_t st = istride[perm[d]];
            if (++idx[d] < k->out.shape.dim[d]) {
                off += st;
                break;
            }
            off -= (idx[d] - 1) * st;
            idx[d] = 0;
        }
    }
    return CT_OK;
}

static ct_status k_concat(const ct_kargs *k) {
    int axis = k->attr->axis;
    const ct_shape *os = &k->out.shape;
    if (axis < 0 || axis >= os->ndim)
        return ct_error(CT_ERR_INVALID_ARG, "concat: axis %d for an output of %d axes", axis,
                        os->ndim);
    int64_t outer, olen, inner, total = 0;
    ct_axis_split(os, axis, &outer, &olen, &inner);
    for (int j = 0; j < k->n_in; j++) {
        ct_status s = check_dtype("concat", &k->in[j], &k->out);
        if (s != CT_OK) return s;
        const ct_shape *is = &k->in[j].shape;
        bool ok = is->ndim == os->ndim;
        for (int d = 0; ok && d < os->ndim; d++)
            if (d != axis && is->dim[d] != os->dim[d]) ok = false;
        if (!ok) {
            char a[96], b[96];
            return ct_error(CT_ERR_SHAPE, "concat: input %d %s does not fit output %s on axis %d", j,
                            ct_shape_str(*is, a, sizeof a), ct_shape_str(*os, b, sizeof b), axis);
        }
        total += is->dim[axis];
    }
    if (total != olen)
        return ct_error(CT_ERR_SHAPE, "concat: inputs sum to %lld along axis %d, output has %lld",
                        (long long)total, axis, (long long)olen);
    size_t es = ct_dtype_size(k->out.dtype);
    size_t orow = (size_t)(olen * inner) * es;
    size_t at = 0; /* byte offset of input j's block inside one output row */
    for (int j = 0; j < k->n_in; j++) {
        size_t row = (size_t)(k->in[j].shape.dim[axis] * inner) * es;
        const char *src = k->in[j].data;
        char *dst = (char *)k->out.data + at;
        if (row > 0)
            for (int64_t o = 0; o < outer; o++) memcpy(dst + (size_t)o * orow, src + (size_t)o * row, row);
        at += row;
    }
    return CT_OK;
}

/* Shared by SLICE (copy a window out of big) and SLICE_GRAD (write small
 * into a zeroed big): big's axis has blen entries, small's slen, the window
 * starts at start. */
static ct_status slice_geom(const char *op, const ct_kargs *k, const ct_shape *big,
                            const ct_shape *small, int64_t *outer, int64_t *blen, int64_t *slen,
                            int64_t *inner) {
    int axis = k->attr->axis;
    if (axis < 0 || axis >= big->ndim || small->ndim != big->ndim)
        return ct_error(CT_ERR_INVALID_ARG, "%s: axis %d for tensors of %d and %d axes", op, axis,
                        big->ndim, small->ndim);
    for (int d = 0; d < big->ndim; d++)
        if (d != axis && big->dim[d] != small->dim[d]) {
            char a[96], b[96];
            return ct_error(CT_ERR_SHAPE, "%s: %s and %s differ off axis %d", op,
                            ct_shape_str(*big, a, sizeof a), ct_shape_str(*small, b, sizeof b), axis);
        }
    ct_axis_split(big, axis, outer, blen, inner);
    *slen = small->dim[axis];
    int64_t start = k->attr->start;
    if (start < 0 || start + *slen > *blen)
        return ct_error(CT_ERR_INVALID_ARG, "%s: window [%lld, %lld) outside [0, %lld) on axis %d", op,
                        (long long)start, (long long)(start + *slen), (long long)*blen, axis);
    return CT_OK;
}

static ct_status k_slice(const ct_kargs *k) {
    const ct_tview *x = &k->in[0];
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s == CT_OK) s = check_dtype("slice", x, &k->out);
    if (s != CT_OK) return s;
    int64_t outer, blen, slen, inner;
    s = slice_geom("slice", k, &x->shape, &k->out.shape, &outer, &blen, &slen, &inner);
    if (s != CT_OK) return s;
    if (k->attr->end - k->attr->start != slen)
        return ct_error(CT_ERR_SHAPE, "slice: [%lld, %lld) does not match an output of %lld along axis %d",
                        (long long)k->attr->start, (long long)k->attr->end, (long long)slen,
                        k->attr->axis);
    size_t es = ct_dtype_size(x->dtype);
    size_t brow = (size_t)(blen * inner) * es, srow = (size_t)(slen * inner) * es;
    if (srow == 0 || outer == 0) return CT_OK;
    const char *src = (const char *)x->data + (size_t)(k->attr->start * inner) * es;
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)k->out.data + (size_t)o * srow, src + (size_t)o * brow, srow);
    return CT_OK;
}

static ct_status k_slice_grad(const ct_kargs *k) {
    const ct_tview *dy = &k->in[0];
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s == CT_OK) s = check_dtype("slice_grad", dy, &k->out);
    if (s != CT_OK) return s;
    int64_t outer, blen, slen, inner;
    s = slice_geom("slice_grad", k, &k->out.shape, &dy->shape, &outer, &blen, &slen, &inner);
    if (s != CT_OK) return s;
    size_t es = ct_dtype_size(dy->dtype);
    size_t brow = (size_t)(blen * inner) * es, srow = (size_t)(slen * inner) * es;
    size_t head = (size_t)(k->attr->start * inner) * es;
    if (brow == 0 || outer == 0) return CT_OK;
    char *dst = k->out.data;
    const char *src = dy->data;
    /* All-zero bytes are 0 in every dtype, so only the gaps need clearing. */
    for (int64_t o = 0; o < outer; o++) {
        char *row = dst + (size_t)o * brow;
        memset(row, 0, head);
        if (srow > 0) memcpy(row + head, src + (size_t)o * srow, srow);
        memset(row + head + srow, 0, brow - head - srow);
    }
    return CT_OK;
}

void ct_cpu_register_shape(ct_kernel_fn *t) {
    t[CT_OP_RESHAPE] = k_reshape;
    t[CT_OP_PERMUTE] = k_permute;
    t[CT_OP_CONCAT] = k_concat;
    t[CT_OP_SLICE] = k_slice;
    t[CT_OP_SLICE_GRAD] = k_slice_grad;
}
