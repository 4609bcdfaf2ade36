// CUDA kernels: the losses. Cross-entropy over [N, C] logits with I32
// labels and label smoothing (a fused log-softmax, forward and backward),
// MSE and BCE with logits, all with mean reduction.
//
// Each loss is two passes with no atomics: per-row (or per-block) partial
// sums into the scratch area, then one block adds them in a fixed order,
// so the loss is the same bit for bit on every run. A label out of range is
// recorded in the context's data-error word (reported at the next
// synchronisation) and makes its row's loss NaN; nothing is read out of
// bounds.
#include "cuda/cuda_common.cuh"

#define PAIR_BLOCKS 1024 // partial sums of MSE / BCE

// log-sum-exp of the row at off of x [N, c], computed by the block.
template <typename C>
__device__ C block_lse(const void *x, int xdt, int64_t off, int64_t c, C *sh) {
    C m, sum;
    ct_block_max_sumexp<C>(x, xdt, off, c, sh, &m, &sum);
    return m + log(sum);
}

// Row loss: -(1 - eps) * logp[y] - eps / c * sum_j logp[j].
template <typename C>
__global__ void ce_rows(const void *x, int xdt, const int32_t *y, int64_t n, int64_t c, double eps, C *part,
                        ct_cuda_data_error *err) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        int64_t off = r * c;
        int32_t label = y[r];
        bool bad = label < 0 || label >= c;
        C lse = block_lse<C>(x, xdt, off, c, sh);
        C sum_logp = 0;
        if (eps != 0.0) {
            for (int64_t j = threadIdx.x; j < c; j += blockDim.x) sum_logp += ct_ld<C>(x, xdt, off + j) - lse;
            sum_logp = ct_block_sum(sum_logp, sh);
        }
        if (threadIdx.x == 0) {
            if (bad) {
                ct_cuda_report(err, CT_CUDA_ERR_LABEL, r, label, c);
                part[r] = (C)NAN;
            } else {
                C loss = -(C)(1.0 - eps) * (ct_ld<C>(x, xdt, off + label) - lse);
                if (eps != 0.0) loss -= (C)(eps / (double)c) * sum_logp;
                part[r] = loss;
            }
        }
    }
}

// d logits = dloss / n * (softmax - target), target = 1 - eps + eps / c at
// the label and eps / c elsewhere.
template <typename C>
__global__ void ce_grad_rows(const void *x, int xdt, const int32_t *y, const void *dl, int dldt, void *out, int odt,
                             int64_t n, int64_t c, double eps, ct_cuda_data_error *err) {
    __shared__ C sh[32];
    C g = ct_ld<C>(dl, dldt, 0) / (C)n;
    C off_t = (C)(eps / (double)c), on_t = (C)(1.0 - eps) + off_t;
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        int64_t off = r * c;
        int32_t label = y[r];
        if (label < 0 || label >= c) {
            if (threadIdx.x == 0) ct_cuda_report(err, CT_CUDA_ERR_LABEL, r, label, c);
            for (int64_t j = threadIdx.x; j < c; j += blockDim.x) ct_st<C>(out, odt, off + j, (C)NAN);
            continue; // uniform across the block: no barrier is skipped by part of it
        }
        // p = exp(x - m) / sum, as the CPU's float path (cpu_fast_softmax.c)
        // and the softmax kernels; not exp(x - (m + log(sum))): rounding
        // m + log(sum) to float costs half an ulp of the largest logit in
        // every p (2.4e-7 relative for logits in [4, 8)).
        C m, sum;
        ct_block_max_sumexp<C>(x, xdt, off, c, sh, &m, &sum);
        for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
            C p = exp(ct_ld<C>(x, xdt, off + j) - m) / sum;
            ct_st<C>(out, odt, off + j, g * (p - (j == label ? on_t : off_t)));
        }
    }
}

static ct_status need_float(const char *op, const char *what, ct_dtype dt) {
    if (!ct_dtype_is_float(dt))
        return ct_cuda_arg_error(CT_ERR_DTYPE, op, "%s is %s, need a float dtype", what, ct_dtype_name(dt));
    return CT_OK;
}

static ct_status ce_check(const char *op, const ct_kargs *k, int64_t *n, int64_t *c) {
    ct_status s = ct_cuda_check_args(k, true);
    if (s != CT_OK) return s;
    const ct_tview &lg = k->in[0], &lb = k->in[1];
    if ((s = need_float(op, "logits", lg.dtype)) != CT_OK) return s;
    if ((s = need_float(op, "output", k->out.dtype)) != CT_OK) return s;
    if (lb.dtype != CT_I32) return ct_cuda_arg_error(CT_ERR_DTYPE, op, "labels are %s, need i32", ct_dtype_name(lb.dtype));
    if (lg.shape.ndim != 2 || lb.numel != lg.shape.dim[0]) {
        char a[96], b[96];
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "logits %s and labels %s (need [N, C] and [N])",
                                 ct_shape_str(lg.shape, a, sizeof a), ct_shape_str(lb.shape, b, sizeof b));
    }
    *n = lg.shape.dim[0];
    *c = lg.shape.dim[1];
    return CT_OK;
}

static ct_cuda_data_error *err_word(void) {
    ct_cuda_ctx *c = ct_cuda_ctx_get();
    return c ? c->err_dev : nullptr;
}

static ct_status k_cross_entropy(const ct_kargs *k) {
    int64_t n = 0, c = 0;
    ct_status s = ce_check("cross_entropy", k, &n, &c);
    if (s != CT_OK) return s;
    const ct_tview &lg = k->in[0], &o = k->out;
    bool f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    if (n > 0) {
        if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, "cross_entropy", "needs scratch, got none");
        if (c == 0) return ct_cuda_arg_error(CT_ERR_SHAPE, "cross_entropy", "logits have no classes");
        const int32_t *y = (const int32_t *)k->in[1].data;
        if (f64)
            ce_rows<double><<<ct_cuda_rows_grid(n), ct_cuda_row_threads(c), 0, st>>>(lg.data, lg.dtype, y, n, c, k->attr->alpha,
                                                                     (double *)k->scratch, err_word());
        else
            ce_rows<float><<<ct_cuda_rows_grid(n), ct_cuda_row_threads(c), 0, st>>>(lg.data, lg.dtype, y, n, c, k->attr->alpha,
                                                                    (float *)k->scratch, err_word());
        CT_CUDA_LAUNCHED("cross_entropy", "[%lld, %lld] logits", (long long)n, (long long)c);
    }
    // An empty batch gives 0 * (1 / 0) = NaN, as the CPU's 0 / 0 does.
    return ct_cuda_finish_sum(k->scratch, f64, n, n ? 1.0 / (double)n : NAN, o.data, o.dtype, st);
}

static ct_status k_cross_entropy_grad(const ct_kargs *k) {
    int64_t n = 0, c = 0;
    ct_status s = ce_check("cross_entropy_grad", k, &n, &c);
    if (s != CT_OK) return s;
    if (k->in[2].numel != 1)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "cross_entropy_grad", "dloss must be a scalar");
    const ct_tview &lg = k->in[0], &dl = k->in[2], &o = k->out;
    if (o.numel != n * c)
        return ct_cuda_arg_error(CT_ERR_SHAPE, "cross_entropy_grad", "output has %lld elements, want %lld x %lld",
                                 (long long)o.numel, (long long)n, (long long)c);
    if (n == 0 || c == 0) return CT_OK;
    const int32_t *y = (const int32_t *)k->in[1].data;
    cudaStream_t st = ct_cuda_stream(k);
    if (ct_cuda_is_f64(o.dtype))
        ce_grad_rows<double><<<ct_cuda_rows_grid(n), ct_cuda_row_threads(c), 0, st>>>(lg.data, lg.dtype, y, dl.data, dl.dtype, o.data,
                                                                      o.dtype, n, c, k->attr->alpha, err_word());
    else
        ce_grad_rows<float><<<ct_cuda_rows_grid(n), ct_cuda_row_threads(c), 0, st>>>(lg.data, lg.dtype, y, dl.data, dl.dtype, o.data,
                                                                     o.dtype, n, c, k->attr->alpha, err_word());
    CT_CUDA_LAUNCHED("cross_entropy_grad", "[%lld, %lld] logits", (long long)n, (long long)c);
    return CT_OK;
}

// ---------------------------------------------------------------- MSE, BCE

template <typename C>
__device__ __forceinline__ C pair_term(bool bce, C a, C b) {
    if (!bce) {
        C d = a - b;
        return d * d;
    }
    // the log1p(exp(-|x|)) form never overflows, for any sign of x
    return (a > (C)0 ? a : (C)0) - a * b + log1p(exp(-fabs(a)));
}

template <typename C>
__global__ void pair_parts(bool bce, const void *a, int adt, const void *b, int bdt, int64_t n, C *part) {
    __shared__ C sh[32];
    C acc = 0;
    CT_GRID_STRIDE(i, n) acc += pair_term<C>(bce, ct_ld<C>(a, adt, i), ct_ld<C>(b, bdt, i));
    acc = ct_block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

static unsigned pair_blocks(int64_t n) {
    int64_t b = (n + CT_CUDA_THREADS - 1) / CT_CUDA_THREADS;
    return (unsigned)(b < 1 ? 1 : b > PAIR_BLOCKS ? PAIR_BLOCKS : b);
}

static ct_status pair_loss(const ct_kargs *k, bool bce) {
    const char *op = bce ? "bce_with_logits" : "mse";
    ct_status s = ct_cuda_check_args(k, false);
    if (s != CT_OK) return s;
    const ct_tview &a = k->in[0], &b = k->in[1], &o = k->out;
    if ((s = need_float(op, "first input", a.dtype)) != CT_OK || (s = need_float(op, "second input", b.dtype)) != CT_OK ||
        (s = need_float(op, "output", o.dtype)) != CT_OK)
        return s;
    if (!ct_shape_equal(a.shape, b.shape)) {
        char sa[96], sb[96];
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "inputs %s and %s differ", ct_shape_str(a.shape, sa, sizeof sa),
                                 ct_shape_str(b.shape, sb, sizeof sb));
    }
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "needs scratch, got none");
    bool f64 = ct_cuda_is_f64(o.dtype);
    cudaStream_t st = ct_cuda_stream(k);
    int64_t n = a.numel;
    unsigned blocks = pair_blocks(n);
    if (f64)
        pair_parts<double><<<blocks, CT_CUDA_THREADS, 0, st>>>(bce, a.data, a.dtype, b.data, b.dtype, n,
                                                               (double *)k->scratch);
    else
        pair_parts<float><<<blocks, CT_CUDA_THREADS, 0, st>>>(bce, a.data, a.dtype, b.data, b.dtype, n,
                                                              (float *)k->scratch);
    CT_CUDA_LAUNCHED("pair loss", "%s over %lld elements", op, (long long)n);
    return ct_cuda_finish_sum(k->scratch, f64, blocks, n ? 1.0 / (double)n : NAN, o.data, o.dtype, st);
}

static ct_status k_mse(const ct_kargs *k) { return pair_loss(k, false); }
static ct_status k_bce(const ct_kargs *k) { return pair_loss(k, true); }

size_t ct_cuda_loss_scratch(const ct_kargs *k) {
    switch (k->op) {
    case CT_OP_CROSS_ENTROPY: return k->n_in >= 1 && k->in[0].shape.ndim == 2 ? (size_t)k->in[0].shape.dim[0] * sizeof(double) : 0;
    case CT_OP_MSE:
    case CT_OP_BCE_WITH_LOGITS: return (size_t)PAIR_BLOCKS * sizeof(double);
    default: return 0;
    }
}

void ct_cuda_register_loss(ct_kernel_fn *t) {
    t[CT_OP_CROSS_ENTROPY] = k_cross_entropy;
    t[CT_OP_CROSS_ENTROPY_GRAD] = k_cross_entropy_grad;
    t[CT_OP_MSE] = k_mse;
    t[CT_OP_BCE_WITH_LOGITS] = k_bce;
}
