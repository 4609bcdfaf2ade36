// CUDA data movement: reshape, permute, concat, slice and slice's gradient.
//
// None of these does arithmetic, so they move whole elements as bytes for
// every dtype. Reshape is one device copy; concat, slice and slice_grad are
// strided 2-D copies (rows of one operand's block, cudaMemcpy2DAsync), and
// permute is a gather kernel over the output with the input strides
// permuted. A reshape, slice or concat the planner aliased (a view:
// program.c) finds its output in place and copies nothing.
#include "cuda/cuda_common.cuh"

static ct_status check_dtype(const char *op, const ct_tview &in, const ct_tview &out) {
    if (in.dtype != out.dtype || ct_dtype_size(out.dtype) == 0)
        return ct_cuda_arg_error(CT_ERR_DTYPE, op, "input %s, output %s (need the same valid dtype)",
                                 ct_dtype_name(in.dtype), ct_dtype_name(out.dtype));
    return CT_OK;
}

static ct_status k_reshape(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s == CT_OK) s = check_dtype("reshape", k->in[0], k->out);
    if (s != CT_OK) return s;
    if (k->in[0].numel != k->out.numel)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "reshape", "input has %lld elements, output %lld",
                                 (long long)k->in[0].numel, (long long)k->out.numel);
    size_t bytes = (size_t)k->out.numel * ct_dtype_size(k->out.dtype);
    if (bytes == 0 || k->out.data == k->in[0].data) return CT_OK;
    CT_CUDA_TRY(cudaMemcpyAsync(k->out.data, k->in[0].data, bytes, cudaMemcpyDeviceToDevice, ct_cuda_stream(k)),
                "reshape of %zu bytes", bytes);
    return CT_OK;
}

struct perm_geom {
    int nd;
    int64_t odim[CT_MAX_DIMS];
    int64_t istride[CT_MAX_DIMS]; // stride in the input of each output axis
};

template <typename T>
__global__ void permute_kernel(perm_geom g, const T *x, T *o, int64_t n) {
    CT_GRID_STRIDE(i, n) {
        int64_t rem = i, off = 0;
        for (int d = g.nd - 1; d >= 0; d--) {
            off += (rem % g.odim[d]) * g.istride[d];
            rem /= g.odim[d];
        }
        o[i] = x[off];
    }
}

static ct_status k_permute(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    s = check_dtype("permute", x, o);
    if (s != CT_OK) return s;
    const int *perm = k->attr->perm;
    int nd = x.shape.ndim;
    if (o.shape.ndim != nd)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "permute", "input has %d axes, output %d", nd, o.shape.ndim);
    int64_t istride[CT_MAX_DIMS], acc = 1;
    for (int d = nd - 1; d >= 0; d--) {
        istride[d] = acc;
        acc *= x.shape.dim[d];
    }
    perm_geom g = {};
    g.nd = nd;
    unsigned seen = 0;
    for (int i = 0; i < nd; i++) {
        if (perm[i] < 0 || perm[i] >= nd || (seen & (1u << perm[i])) || o.shape.dim[i] != x.shape.dim[perm[i]])
            return ct_cuda_arg_error(CT_ERR_INVALID_ARG, "permute", "perm[%d] = %d does not fit an input of %d axes", i,
                                     perm[i], nd);
        seen |= 1u << perm[i];
        g.odim[i] = o.shape.dim[i];
        g.istride[i] = istride[perm[i]];
    }
    if (o.numel == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    unsigned b = ct_cuda_blocks(o.numel);
    switch (ct_dtype_size(o.dtype)) {
    case 1: permute_kernel<uint8_t><<<b, CT_CUDA_THREADS, 0, st>>>(g, (const uint8_t *)x.data, (uint8_t *)o.data, o.numel); break;
    case 2: permute_kernel<uint16_t><<<b, CT_CUDA_THREADS, 0, st>>>(g, (const uint16_t *)x.data, (uint16_t *)o.data, o.numel); break;
    case 4: permute_kernel<uint32_t><<<b, CT_CUDA_THREADS, 0, st>>>(g, (const uint32_t *)x.data, (uint32_t *)o.data, o.numel); break;
    default: permute_kernel<uint64_t><<<b, CT_CUDA_THREADS, 0, st>>>(g, (const uint64_t *)x.data, (uint64_t *)o.data, o.numel); break;
    }
    CT_CUDA_LAUNCHED("permute", "%lld elements of %d axes", (long long)o.numel, nd);
    return CT_OK;
}

// rows copies of `width` bytes from src (rows `spitch` apart) to dst
// (`dpitch` apart). cudaMemcpy2DAsync fails on a pitch above the device's
// maximum (cudaDevAttrMaxPitch, 2^31 - 1 bytes on current GPUs), which a
// slice or concat along axis 0 of a tensor over 2 GiB passes as one row:
// one row, or rows contiguous on both sides, is a flat copy instead, and
// rows pitched wider than the maximum are copied one by one. Rows already
// in place (a view the planner aliased: program.c) are not copied.
static ct_status copy_rows(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, int64_t rows,
                           cudaStream_t st, const char *op) {
    if (width == 0 || rows == 0 || (dst == src && (rows == 1 || dpitch == spitch))) return CT_OK;
    if (rows == 1 || (dpitch == width && spitch == width)) {
        size_t bytes = width * (size_t)rows;
        CT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st), "%s: %zu bytes", op, bytes);
        return CT_OK;
    }
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    if (!c) return ct_cuda_arg_error(CT_ERR_STATE, op, "the CUDA backend is not initialised");
    if (dpitch > (size_t)c->max_pitch || spitch > (size_t)c->max_pitch) {
        for (int64_t r = 0; r < rows; r++)
            CT_CUDA_TRY(cudaMemcpyAsync((char *)dst + (size_t)r * dpitch, (const char *)src + (size_t)r * spitch, width,
                                        cudaMemcpyDeviceToDevice, st),
                        "%s: row %lld of %zu bytes", op, (long long)r, width);
        return CT_OK;
    }
    CT_CUDA_TRY(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, (size_t)rows, cudaMemcpyDeviceToDevice, st),
                "%s: %lld rows of %zu bytes", op, (long long)rows, width);
    return CT_OK;
}

static ct_status k_concat(const ct_kargs *k) {
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, "concat", "no attributes");
    int axis = k->attr->axis;
    const ct_shape &os = k->out.shape;
    if (axis < 0 || axis >= os.ndim)
        return ct_cuda_arg_error(CT_ERR_INVALID_ARG, "concat", "axis %d for an output of %d axes", axis, os.ndim);
    int64_t outer = 0, olen = 0, inner = 0, total = 0;
    ct_cuda_axis_split(os, axis, &outer, &olen, &inner);
    for (int j = 0; j < k->n_in; j++) {
        ct_status s = check_dtype("concat", k->in[j], k->out);
        if (s != CT_OK) return s;
        const ct_shape &is = k->in[j].shape;
        bool ok = is.ndim == os.ndim;
        for (int d = 0; ok && d < os.ndim; d++)
            if (d != axis && is.dim[d] != os.dim[d]) ok = false;
        if (!ok) {
            char a[96], b[96];
            return ct_cuda_arg_error(CT_ERR_SHAPE, "concat", "input %d %s does not fit output %s on axis %d", j,
                                     ct_shape_str(is, a, sizeof a), ct_shape_str(os, b, sizeof b), axis);
        }
        total += is.dim[axis];
    }
    if (total != olen)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "concat", "inputs sum to %lld along axis %d, output has %lld",
                                 (long long)total, axis, (long long)olen);
    size_t es = ct_dtype_size(k->out.dtype), orow = (size_t)(olen * inner) * es, at = 0;
    cudaStream_t st = ct_cuda_stream(k);
    for (int j = 0; j < k->n_in; j++) {
        size_t row = (size_t)(k->in[j].shape.dim[axis] * inner) * es;
        ct_status s = copy_rows((char *)k->out.data + at, orow, k->in[j].data, row, row, outer, st, "concat");
        if (s != CT_OK) return s;
        at += row;
    }
    return CT_OK;
}

// Shared by SLICE and SLICE_GRAD: big's axis has blen entries, small's
// slen, the window starts at attr->start.
static ct_status slice_geom(const char *op, const ct_kargs *k, const ct_shape &big, const ct_shape &small,
                            int64_t *outer, int64_t *blen, int64_t *slen, int64_t *inner) {
    int axis = k->attr->axis;
    if (axis < 0 || axis >= big.ndim || small.ndim != big.ndim)
        return ct_cuda_arg_error(CT_ERR_INVALID_ARG, op, "axis %d for tensors of %d and %d axes", axis, big.ndim,
                                 small.ndim);
    for (int d = 0; d < big.ndim; d++)
        if (d != axis && big.dim[d] != small.dim[d]) {
            char a[96], b[96];
            return ct_cuda_arg_error(CT_ERR_SHAPE, op, "%s and %s differ off axis %d", ct_shape_str(big, a, sizeof a),
                                     ct_shape_str(small, b, sizeof b), axis);
        }
    ct_cuda_axis_split(big, axis, outer, blen, inner);
    *slen = small.dim[axis];
    int64_t start = k->attr->start;
    if (start < 0 || start + *slen > *blen)
        return ct_cuda_arg_error(CT_ERR_INVALID_ARG, op, "window [%lld, %lld) outside [0, %lld) on axis %d",
                                 (long long)start, (long long)(start + *slen), (long long)*blen, axis);
    return CT_OK;
}

static ct_status k_slice(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0];
    s = check_dtype("slice", x, k->out);
    if (s != CT_OK) return s;
    int64_t outer = 0, blen = 0, slen = 0, inner = 0;
    if ((s = slice_geom("slice", k, x.shape, k->out.shape, &outer, &blen, &slen, &inner)) != CT_OK) return s;
    if (k->attr->end - k->attr->start != slen)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "slice", "[%lld, %lld) does not match an output of %lld along axis %d",
                                 (long long)k->attr->start, (long long)k->attr->end, (long long)slen, k->attr->axis);
    size_t es = ct_dtype_size(x.dtype), brow = (size_t)(blen * inner) * es, srow = (size_t)(slen * inner) * es;
    const char *src = (const char *)x.data + (size_t)(k->attr->start * inner) * es;
    return copy_rows(k->out.data, srow, src, brow, srow, outer, ct_cuda_stream(k), "slice");
}

static ct_status k_slice_grad(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &dy = k->in[0];
    s = check_dtype("slice_grad", dy, k->out);
    if (s != CT_OK) return s;
    int64_t outer = 0, blen = 0, slen = 0, inner = 0;
    if ((s = slice_geom("slice_grad", k, k->out.shape, dy.shape, &outer, &blen, &slen, &inner)) != CT_OK) return s;
    size_t es = ct_dtype_size(dy.dtype), brow = (size_t)(blen * inner) * es, srow = (size_t)(slen * inner) * es;
    size_t bytes = (size_t)k->out.numel * es;
    cudaStream_t st = ct_cuda_stream(k);
    // all-zero bytes are 0 in every dtype
    if (bytes) CT_CUDA_TRY(cudaMemsetAsync(k->out.data, 0, bytes, st), "slice_grad: %zu bytes", bytes);
    char *dst = (char *)k->out.data + (size_t)(k->attr->start * inner) * es;
    return copy_rows(dst, brow, dy.data, srow, srow, outer, st, "slice_grad");
}

void ct_cuda_register_shape(ct_kernel_fn *t) {
    t[CT_OP_RESHAPE] = k_reshape;
    t[CT_OP_PERMUTE] = k_permute;
    t[CT_OP_CONCAT] = k_concat;
    t[CT_OP_SLICE] = k_slice;
    t[CT_OP_SLICE_GRAD] = k_slice_grad;
}
