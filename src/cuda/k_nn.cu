// CUDA kernels: embedding and its deterministic gradient, dropout and
// channel dropout (dropout2d).
//
// EMBEDDING_GRAD must not use float atomics (their order, hence the
// rounding, would change from run to run). Instead the positions are
// sorted by index with a stable radix sort (CUB, part of the CUDA toolkit),
// which groups the positions of each row in position order; each row's
// segment is found, and one thread per output element sums its segment's dy
// values in that order and in double - the CPU reference's order and
// precision.
//
// Dropout draws the CPU's Philox stream (philox.cuh), one block of four
// words per thread, and compares in double as the CPU does, so the masks
// are the same bits on both.
#include <cub/device/device_radix_sort.cuh>

#include "cuda/cuda_common.cuh"
#include "cuda/philox.cuh"

static ct_cuda_data_error *err_word(void) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    return c ? c->err_dev : nullptr;
}

// ---------------------------------------------------------------- embedding

template <typename C>
__global__ void embedding_kernel(const void *w, int wdt, const int32_t *idx, void *o, int odt, int64_t n, int64_t v,
                                 int64_t d, ct_cuda_data_error *err) {
    CT_GRID_STRIDE(t, n * d) {
        int64_t i = t / d, j = t % d;
        int32_t r = idx[i];
        if (r < 0 || r >= v) {
            if (j == 0) ct_cuda_report(err, CT_CUDA_ERR_EMBED_INDEX, i, r, v);
            ct_st<C>(o, odt, t, (C)NAN);
        } else {
            ct_st<C>(o, odt, t, ct_ld<C>(w, wdt, (int64_t)r * d + j));
        }
    }
}

static ct_status need(bool ok, ct_status s, const char *op, const char *msg) {
    return ok ? CT_OK : ct_cuda_arg_error(s, op, "%s", msg);
}

static ct_status k_embedding(const ct_kargs *k) {
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &w = k->in[0], &ix = k->in[1], &o = k->out;
    if ((s = need(ct_dtype_is_float(w.dtype), CT_ERR_DTYPE, "embedding", "weight must be a float dtype")) != CT_OK ||
        (s = need(ix.dtype == CT_I32, CT_ERR_DTYPE, "embedding", "indices must be i32")) != CT_OK ||
        (s = need(w.shape.ndim == 2, CT_ERR_SHAPE, "embedding", "weight must have 2 axes")) != CT_OK)
        return s;
    int64_t v = w.shape.dim[0], d = w.shape.dim[1], n = ix.numel;
    if (o.numel != n * d)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "embedding", "output has %lld elements, want %lld x %lld",
                                 (long long)o.numel, (long long)n, (long long)d);
    if (o.numel == 0) return CT_OK;
    cudaStream_t st = ct_cuda_stream(k);
    unsigned b = ct_cuda_blocks(o.numel);
    if (ct_cuda_is_f64(o.dtype))
        embedding_kernel<double><<<b, CT_CUDA_THREADS, 0, st>>>(w.data, w.dtype, (const int32_t *)ix.data, o.data,
                                                                o.dtype, n, v, d, err_word());
    else
        embedding_kernel<float><<<b, CT_CUDA_THREADS, 0, st>>>(w.data, w.dtype, (const int32_t *)ix.data, o.data,
                                                               o.dtype, n, v, d, err_word());
    CT_CUDA_LAUNCHED("embedding", "%lld rows of %lld from a [%lld, %lld] table", (long long)n, (long long)d,
                     (long long)v, (long long)d);
    return CT_OK;
}

// The scratch of EMBEDDING_GRAD, carved from one area (each part aligned).
struct emb_scratch {
    int32_t *pos_in, *keys_out, *pos_out, *start, *end;
    void *temp;
    size_t temp_bytes, total;
};

static size_t align256(size_t x) { return (x + 255) / 256 * 256; }

static int key_bits(int64_t v) {
    int b = 1;
    while (b < 31 && ((int64_t)1 << b) < v) b++;
    return b;
}

static ct_status emb_layout(int64_t n, int64_t v, char *base, emb_scratch *s) {
    *s = emb_scratch{};
    size_t temp = 0;
    CT_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, temp, (const int32_t *)nullptr, (int32_t *)nullptr,
                                                (const int32_t *)nullptr, (int32_t *)nullptr, (int)n, 0, key_bits(v)),
                "embedding_grad: sort of %lld indices", (long long)n);
    size_t nb = align256((size_t)n * sizeof(int32_t)), vb = align256((size_t)v * sizeof(int32_t));
    size_t off = 0;
    s->pos_in = (int32_t *)(base + off), off += nb;
    s->keys_out = (int32_t *)(base + off), off += nb;
    s->pos_out = (int32_t *)(base + off), off += nb;
    s->start = (int32_t *)(base + off), off += vb;
    s->end = (int32_t *)(base + off), off += vb;
    s->temp = base + off, s->temp_bytes = temp, off += align256(temp);
    s->total = off;
    return CT_OK;
}

__global__ void iota_kernel(int32_t *p, int64_t n) {
    CT_GRID_STRIDE(i, n) p[i] = (int32_t)i;
}

// Marks each row's segment [start, end) in the sorted keys; out-of-range
// keys (already reported) are skipped, so their positions count nowhere.
__global__ void segments_kernel(const int32_t *keys, int64_t n, int64_t v, int32_t *start, int32_t *end,
                                const int32_t *idx, ct_cuda_data_error *err) {
    CT_GRID_STRIDE(i, n) {
        if (idx[i] < 0 || idx[i] >= v) ct_cuda_report(err, CT_CUDA_ERR_EMBED_INDEX, i, idx[i], v);
        int32_t key = keys[i];
        if (key < 0 || key >= v) continue;
        if (i == 0 || keys[i - 1] != key) start[key] = (int32_t)i;
        if (i == n - 1 || keys[i + 1] != key) end[key] = (int32_t)(i + 1);
    }
}

template <typename C>
__global__ void emb_grad_kernel(const void *dy, int dydt, const int32_t *pos, const int32_t *start,
                                const int32_t *end, void *o, int odt, int64_t v, int64_t d) {
    CT_GRID_STRIDE(t, v * d) {
        int64_t r = t / d, j = t % d;
        C acc = 0;
        for (int32_t p = start[r]; p < end[r]; p++) acc += ct_ld<C>(dy, dydt, (int64_t)pos[p] * d + j);
        ct_st<C>(o, odt, t, acc);
    }
}

static bool emb_grad_dims(const ct_kargs *k, int64_t *n, int64_t *v, int64_t *d) {
    if (k->n_in != 2 || k->out.shape.ndim != 2) return false;
    *n = k->in[0].numel;
    *v = k->out.shape.dim[0];
    *d = k->out.shape.dim[1];
    return true;
}

size_t ct_cuda_nn_scratch(const ct_kargs *k) {
    int64_t n = 0, v = 0, d = 0;
    if (k->op != CT_OP_EMBEDDING_GRAD || !emb_grad_dims(k, &n, &v, &d) || n == 0 || n > INT32_MAX) return 0;
    emb_scratch s;
    if (emb_layout(n, v, nullptr, &s) != CT_OK) return 0;
    return s.total;
}

static ct_status k_embedding_grad(const ct_kargs *k) {
    const char *op = "embedding_grad";
    int64_t n = 0, v = 0, d = 0;
    if (!emb_grad_dims(k, &n, &v, &d)) return ct_cuda_arg_error(CT_ERR_SHAPE, op, "need indices, dy and a [V, D] output");
    const ct_tview &ix = k->in[0], &dy = k->in[1], &o = k->out;
    ct_status s;
    if ((s = need(ix.dtype == CT_I32, CT_ERR_DTYPE, op, "indices must be i32")) != CT_OK ||
        (s = need(ct_dtype_is_float(dy.dtype) && ct_dtype_is_float(o.dtype), CT_ERR_DTYPE, op,
                  "dy and the output must be float dtypes")) != CT_OK)
        return s;
    if (dy.numel != n * d)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "dy has %lld elements, want %lld x %lld", (long long)dy.numel,
                                 (long long)n, (long long)d);
    if (n > INT32_MAX || v > INT32_MAX)
        return ct_cuda_arg_error(CT_ERR_UNSUPPORTED, op, "%lld indices into %lld rows exceed the 32-bit sort",
                                 (long long)n, (long long)v);
    cudaStream_t st = ct_cuda_stream(k);
    if (o.numel == 0) return CT_OK;
    if (n == 0) {
        CT_CUDA_TRY(cudaMemsetAsync(o.data, 0, (size_t)o.numel * ct_dtype_size(o.dtype), st), "%s: %lld elements", op,
                    (long long)o.numel);
        return CT_OK;
    }
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "needs scratch, got none");
    emb_scratch sc;
    if ((s = emb_layout(n, v, (char *)k->scratch, &sc)) != CT_OK) return s;
    const int32_t *idx = (const int32_t *)ix.data;
    iota_kernel<<<ct_cuda_blocks(n), CT_CUDA_THREADS, 0, st>>>(sc.pos_in, n);
    CT_CUDA_LAUNCHED("embedding_grad (positions)", "%lld indices", (long long)n);
    CT_CUDA_TRY(cub::DeviceRadixSort::SortPairs(sc.temp, sc.temp_bytes, idx, sc.keys_out, sc.pos_in, sc.pos_out, (int)n,
                                                0, key_bits(v), st),
                "%s: sort of %lld indices", op, (long long)n);
    size_t vb = (size_t)v * sizeof(int32_t);
    CT_CUDA_TRY(cudaMemsetAsync(sc.start, 0, vb, st), "%s: %zu bytes", op, vb);
    CT_CUDA_TRY(cudaMemsetAsync(sc.end, 0, vb, st), "%s: %zu bytes", op, vb);
    segments_kernel<<<ct_cuda_blocks(n), CT_CUDA_THREADS, 0, st>>>(sc.keys_out, n, v, sc.start, sc.end, idx, err_word());
    CT_CUDA_LAUNCHED("embedding_grad (segments)", "%lld indices", (long long)n);
    unsigned b = ct_cuda_blocks(v * d);
    // In double for every dtype, as the CPU sums: same order, same
    // precision, one rounding, so the result is the CPU's bit for bit.
    emb_grad_kernel<double><<<b, CT_CUDA_THREADS, 0, st>>>(dy.data, dy.dtype, sc.pos_out, sc.start, sc.end, o.data,
                                                           o.dtype, v, d);
    CT_CUDA_LAUNCHED("embedding_grad (sums)", "[%lld, %lld] output", (long long)v, (long long)d);
    return CT_OK;
}

// ---------------------------------------------------------------- dropout

// The step counter keying the masks: from device memory when the run's
// step source is set (ct_cuda_step_source: a step captured to be replayed),
// else the argument.
__device__ __forceinline__ uint32_t step_of(const uint32_t *step_dev, uint32_t step) {
    return step_dev ? *step_dev : step;
}

// keep element i iff uniform(seed, stream, step, i) >= p, compared in
// double; kept elements are x * (1 / (1 - p)) computed in double and
// rounded once, exactly as the CPU does.
__global__ void dropout_kernel(const void *x, int xdt, void *o, int odt, int64_t n, double p, double scale,
                               uint64_t seed, uint32_t stream, const uint32_t *step_dev, uint32_t step_arg) {
    const uint32_t step = step_of(step_dev, step_arg);
    CT_GRID_STRIDE(b, (n + 3) / 4) {
        uint32_t w[4];
        ct_philox_words(seed, stream, step, (uint64_t)b, w);
        for (int e = 0; e < 4; e++) {
            int64_t i = b * 4 + e;
            if (i >= n) break;
            bool keep = (double)ct_philox_to_uniform(w[e]) >= p;
            ct_st<double>(o, odt, i, keep ? ct_ld<double>(x, xdt, i) * scale : 0.0);
        }
    }
}

// DROPOUT2D: element i of [N, C, ...] takes draw j = i / per (its channel
// n * C + c, `per` elements each), word j % 4 of Philox block j / 4, so the
// channel masks are the CPU's. Each thread draws for its own element: the
// block is recomputed by neighbours sharing a channel, which is cheap next
// to the memory traffic and keeps the kernel one grid-stride loop.
__global__ void dropout2d_kernel(const void *x, int xdt, void *o, int odt, int64_t n, int64_t per, double p,
                                 double scale, uint64_t seed, uint32_t stream, const uint32_t *step_dev,
                                 uint32_t step_arg) {
    const uint32_t step = step_of(step_dev, step_arg);
    CT_GRID_STRIDE(i, n) {
        uint64_t j = (uint64_t)(i / per);
        uint32_t w[4];
        ct_philox_words(seed, stream, step, j / 4, w);
        bool keep = (double)ct_philox_to_uniform(w[j % 4]) >= p;
        ct_st<double>(o, odt, i, keep ? ct_ld<double>(x, xdt, i) * scale : 0.0);
    }
}

static ct_status k_dropout(const ct_kargs *k) {
    const char *op = ct_op_name(k->op); // dropout or dropout2d, which shares these checks
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &x = k->in[0], &o = k->out;
    double p = k->attr->alpha;
    if (!ct_dtype_is_float(x.dtype) || x.dtype != o.dtype)
        return ct_cuda_arg_error(CT_ERR_DTYPE, op, "input %s, output %s (need one float dtype)",
                                 ct_dtype_name(x.dtype), ct_dtype_name(o.dtype));
    if (!(p >= 0.0 && p <= 1.0)) return ct_cuda_arg_error(CT_ERR_INVALID_ARG, op, "p = %g is outside [0, 1]", p);
    if (x.numel != o.numel)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "input has %lld elements, output %lld", (long long)x.numel,
                                 (long long)o.numel);
    int64_t n = x.numel, per = 1;
    if (k->op == CT_OP_DROPOUT2D) {
        if (x.shape.ndim < 2)
            return ct_cuda_arg_error(CT_ERR_SHAPE, op, "input has %d axes, need [N, C, ...]", x.shape.ndim);
        int64_t channels = x.shape.dim[0] * x.shape.dim[1];
        per = channels > 0 ? n / channels : 1;
    }
    if (n == 0) return CT_OK;
    size_t bytes = (size_t)n * ct_dtype_size(x.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    if (!k->training || p == 0.0) {
        if (o.data != x.data)
            CT_CUDA_TRY(cudaMemcpyAsync(o.data, x.data, bytes, cudaMemcpyDeviceToDevice, st), "%s: %zu bytes", op, bytes);
        return CT_OK;
    }
    if (p == 1.0) {
        CT_CUDA_TRY(cudaMemsetAsync(o.data, 0, bytes, st), "%s: %zu bytes", op, bytes);
        return CT_OK;
    }
    if (per > 1) {
        dropout2d_kernel<<<ct_cuda_blocks(n), CT_CUDA_THREADS, 0, st>>>(x.data, x.dtype, o.data, o.dtype, n, per, p,
                                                                       1.0 / (1.0 - p), k->seed, k->attr->stream,
                                                                       ct_cuda_step_source(), k->step);
        CT_CUDA_LAUNCHED("dropout2d", "%lld elements in channels of %lld", (long long)n, (long long)per);
        return CT_OK;
    }
    // One element per channel draws as dropout does.
    dropout_kernel<<<ct_cuda_blocks((n + 3) / 4), CT_CUDA_THREADS, 0, st>>>(
        x.data, x.dtype, o.data, o.dtype, n, p, 1.0 / (1.0 - p), k->seed, k->attr->stream, ct_cuda_step_source(),
        k->step);
    CT_CUDA_LAUNCHED("dropout", "%lld elements", (long long)n);
    return CT_OK;
}

void ct_cuda_register_nn(ct_kernel_fn *t) {
    t[CT_OP_EMBEDDING] = k_embedding;
    t[CT_OP_EMBEDDING_GRAD] = k_embedding_grad;
    t[CT_OP_DROPOUT] = k_dropout;
    t[CT_OP_DROPOUT2D] = k_dropout;
}
