/* CPU data movement: reshape, permute, concat, slice and slice's gradient.
 *
 * None of these does arithmetic, so they move whole elements as bytes and
 * work for every dtype alike. Each one copies the longest contiguous run it
 * can find, which keeps the common layouts (a trailing axis left in place)
 * at memcpy speed. A reshape, slice or concatenation whose output the
 * planner placed where its input already lies (a view: program.c) copies
 * nothing.
 */
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_simd.h"
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

/* rows copies of `width` bytes, src rows spitch apart, dst rows dpitch
 * apart; a slice_grad's rows (zero) also clear the gap of `head` bytes
 * before each copy and the rest of the dpitch after it. Rows split across
 * the threads once there is enough to move: each row is one memcpy
 * whichever thread makes it. Rows already in place (a view the planner
 * aliased) are not copied. */
typedef struct rows_job {
    char *dst;
    const char *src;
    size_t dpitch, spitch, width, head;
    bool zero;
} rows_job;

static void copy_rows_range(const void *ctx, int64_t r0, int64_t r1) {
    const rows_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        char *d = j->dst + (size_t)r * j->dpitch;
        if (j->zero) memset(d, 0, j->head);
        if (j->width) memcpy(d + j->head, j->src + (size_t)r * j->spitch, j->width);
        if (j->zero) memset(d + j->head + j->width, 0, j->dpitch - j->head - j->width);
    }
}

/* Bytes below which one thread moves them: a parallel region costs some
 * microseconds, a core copies about 10 bytes a nanosecond. */
#define ROWS_PAR_BYTES ((size_t)128 << 10)

static void copy_rows(const rows_job *j, int64_t rows) {
    if (!j->zero && j->dst == j->src && (rows == 1 || j->dpitch == j->spitch)) return;
    size_t bytes = (size_t)rows * (j->zero ? j->dpitch : j->width);
    if (bytes < ROWS_PAR_BYTES || rows < 2) {
        copy_rows_range(j, 0, rows);
        return;
    }
    ct_par_ranges(rows, 2, copy_rows_range, j);
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

/* A permute as copies of runs: the trailing axes it leaves in place are one
 * contiguous run in input and output; the output's runs are in order, each
 * from the input offset an odometer over the permuted axes gives. */
typedef struct perm_job {
    const char *src;
    char *dst;
    size_t run_bytes, es;
    int lead;                       /* the permuted (leading) axes */
    int64_t odim[CT_MAX_DIMS];      /* output extent of each */
    int64_t st[CT_MAX_DIMS];        /* input stride (elements) of each */
} perm_job;

/* Output runs [r0, r1): the odometer starts at r0's index. */
static void permute_runs(const void *ctx, int64_t r0, int64_t r1) {
    const perm_job *j = ctx;
    int64_t idx[CT_MAX_DIMS] = {0}, off = 0, rem = r0;
    for (int d = j->lead - 1; d >= 0; d--) {
        idx[d] = rem % j->odim[d];
        rem /= j->odim[d];
        off += idx[d] * j->st[d];
    }
    for (int64_t r = r0; r < r1; r++) {
        memcpy(j->dst + (size_t)r * j->run_bytes, j->src + (size_t)off * j->es, j->run_bytes);
        /* last axis fastest, moving off with it */
        for (int d = j->lead - 1; d >= 0; d--) {
            if (++idx[d] < j->odim[d]) {
                off += j->st[d];
                break;
            }
            off -= (idx[d] - 1) * j->st[d];
            idx[d] = 0;
        }
    }
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
    int64_t istride[CT_MAX_DIMS];
    ct_strides(&x->shape, istride);
    perm_job j = {.src = x->data, .dst = k->out.data, .es = ct_dtype_size(x->dtype), .lead = nd};
    int64_t run = 1;
    while (j.lead > 0 && perm[j.lead - 1] == j.lead - 1) {
        j.lead--;
        run *= x->shape.dim[j.lead];
    }
    for (int d = 0; d < j.lead; d++) j.odim[d] = k->out.shape.dim[d], j.st[d] = istride[perm[d]];
    j.run_bytes = (size_t)run * j.es;
    /* each run is copied alone, so the bytes are the same on any thread count */
    int64_t par_min = (int64_t)(ROWS_PAR_BYTES / j.run_bytes);
    ct_par_ranges(n / run, par_min > 2 ? par_min : 2, permute_runs, &j);
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
            copy_rows(&(rows_job){.dst = dst, .src = src, .dpitch = orow, .spitch = row, .width = row}, outer);
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
    copy_rows(&(rows_job){.dst = k->out.data, .src = src, .dpitch = srow, .spitch = brow, .width = srow}, outer);
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
    /* All-zero bytes are 0 in every dtype, so only the gaps need clearing. */
    copy_rows(&(rows_job){.dst = k->out.data, .src = dy->data, .dpitch = brow, .spitch = srow, .width = srow,
                          .head = head, .zero = true},
              outer);
    return CT_OK;
}

void ct_cpu_register_shape(ct_kernel_fn *t) {
    t[CT_OP_RESHAPE] = k_reshape;
    t[CT_OP_PERMUTE] = k_permute;
    t[CT_OP_CONCAT] = k_concat;
    t[CT_OP_SLICE] = k_slice;
    t[CT_OP_SLICE_GRAD] = k_slice_grad;
}
