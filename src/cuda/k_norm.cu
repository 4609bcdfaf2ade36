// CUDA kernels: batch norm and layer norm, forward and backward, hand
// written (cuDNN may take batch norm over later; these stay the reference
// for that).
//
// Same formulas as the CPU (src/cpu/k_norm.c): batch norm sees x as
// [N, C, S] and a block owns a channel; layer norm sees x as [R, D] and a
// block owns a row. Statistics use two passes (mean, then squared
// deviations), and the backward kernels recompute them from x. Every dtype
// computes in double, as the CPU does: in float, the mean's rounding error
// e shifts x - mean, and dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// then carries an error of about rstd^3 * e * |x - mean| * |g|, which
// exceeds any fixed tolerance where the variance is near eps (emulated on
// 530001 channels of two values: up to 67 times the F32 tolerance). The
// kernels are bound by memory, so double arithmetic costs little. Layer norm's
// parameter gradients are sums over rows per feature: the rows are split
// into parts whose partial sums (per feature) go to scratch and are added
// in a fixed order, so no atomics and the same bits every run.
#include "cuda/cuda_common.cuh"

#define LN_PARTS_MAX 64
#define LN_ROWS_PER_PART 256


// ---------------------------------------------------------------- batch norm

struct bn_geom {
    int64_t n, c, s, cnt;
};

__device__ __forceinline__ int64_t bn_index(const bn_geom &g, int64_t ch, int64_t t) {
    return ((t / g.s) * g.c + ch) * g.s + t % g.s;
}

// Mean and biased variance of channel ch, by the block, two passes.
template <typename C>
__device__ void bn_stats(const void *x, int xdt, const bn_geom &g, int64_t ch, C *sh, C *mean, C *var) {
    C sum = 0;
    for (int64_t t = threadIdx.x; t < g.cnt; t += blockDim.x) sum += ct_ld<C>(x, xdt, bn_index(g, ch, t));
    C m = ct_block_sum(sum, sh) / (C)g.cnt;
    C sq = 0;
    for (int64_t t = threadIdx.x; t < g.cnt; t += blockDim.x) {
        C d = ct_ld<C>(x, xdt, bn_index(g, ch, t)) - m;
        sq += d * d;
    }
    *mean = m;
    *var = ct_block_sum(sq, sh) / (C)g.cnt;
}

struct bn_args {
    const void *x, *w, *b, *dy;
    void *rm, *rv, *out;
    int xdt, wdt, bdt, dydt, rmdt, rvdt, odt;
    double momentum, eps, unbias;
    bool training;
    int which;
};

template <typename C>
__global__ void bn_forward(bn_args a, bn_geom g) {
    __shared__ C sh[32];
    for (int64_t ch = blockIdx.x; ch < g.c; ch += gridDim.x) {
        C mean, var;
        if (a.training) {
            bn_stats<C>(a.x, a.xdt, g, ch, sh, &mean, &var);
        } else {
            mean = ct_ld<C>(a.rm, a.rmdt, ch);
            var = ct_ld<C>(a.rv, a.rvdt, ch);
        }
        C rstd = (C)1 / sqrt(var + (C)a.eps);
        C scale = a.w ? ct_ld<C>(a.w, a.wdt, ch) : (C)1;
        C shift = a.b ? ct_ld<C>(a.b, a.bdt, ch) : (C)0;
        for (int64_t t = threadIdx.x; t < g.cnt; t += blockDim.x) {
            int64_t i = bn_index(g, ch, t);
            ct_st<C>(a.out, a.odt, i, (ct_ld<C>(a.x, a.xdt, i) - mean) * rstd * scale + shift);
        }
        if (a.training && threadIdx.x == 0) {
            C m0 = ct_ld<C>(a.rm, a.rmdt, ch), v0 = ct_ld<C>(a.rv, a.rvdt, ch);
            ct_st<C>(a.rm, a.rmdt, ch, (C)(1.0 - a.momentum) * m0 + (C)a.momentum * mean);
            ct_st<C>(a.rv, a.rvdt, ch, (C)(1.0 - a.momentum) * v0 + (C)a.momentum * var * (C)a.unbias);
        }
    }
}

template <typename C>
__global__ void bn_backward(bn_args a, bn_geom g) {
    __shared__ C sh[32];
    for (int64_t ch = blockIdx.x; ch < g.c; ch += gridDim.x) {
        C mean = 0, var = 0;
        if (a.which != CT_NORM_GRAD_BIAS) {
            if (a.training) {
                bn_stats<C>(a.x, a.xdt, g, ch, sh, &mean, &var);
            } else {
                mean = ct_ld<C>(a.rm, a.rmdt, ch);
                var = ct_ld<C>(a.rv, a.rvdt, ch);
            }
        }
        C rstd = (C)1 / sqrt(var + (C)a.eps);
        C sum_dy = 0, sum_dy_xhat = 0;
        if (a.which != CT_NORM_GRAD_X || a.training) {
            for (int64_t t = threadIdx.x; t < g.cnt; t += blockDim.x) {
                int64_t i = bn_index(g, ch, t);
                C d = ct_ld<C>(a.dy, a.dydt, i);
                sum_dy += d;
                if (a.which != CT_NORM_GRAD_BIAS) sum_dy_xhat += d * (ct_ld<C>(a.x, a.xdt, i) - mean) * rstd;
            }
            sum_dy = ct_block_sum(sum_dy, sh);
            sum_dy_xhat = ct_block_sum(sum_dy_xhat, sh);
        }
        if (a.which != CT_NORM_GRAD_X) {
            if (threadIdx.x == 0) ct_st<C>(a.out, a.odt, ch, a.which == CT_NORM_GRAD_BIAS ? sum_dy : sum_dy_xhat);
            continue;
        }
        C scale = (a.w ? ct_ld<C>(a.w, a.wdt, ch) : (C)1) * rstd;
        C mean_dy = sum_dy / (C)g.cnt, mean_dy_xhat = sum_dy_xhat / (C)g.cnt;
        for (int64_t t = threadIdx.x; t < g.cnt; t += blockDim.x) {
            int64_t i = bn_index(g, ch, t);
            C d = ct_ld<C>(a.dy, a.dydt, i);
            C r = a.training ? scale * (d - mean_dy - (ct_ld<C>(a.x, a.xdt, i) - mean) * rstd * mean_dy_xhat) : scale * d;
            ct_st<C>(a.out, a.odt, i, r);
        }
    }
}

static ct_status check_numel(const char *op, const char *what, const ct_tview &v, int64_t want) {
    if (v.numel != want)
        return ct_cuda_arg_error(CT_ERR_SHAPE, op, "%s has %lld elements, expected %lld", what, (long long)v.numel,
                                 (long long)want);
    if (!ct_dtype_is_float(v.dtype))
        return ct_cuda_arg_error(CT_ERR_DTYPE, op, "%s is %s, need a float dtype", what, ct_dtype_name(v.dtype));
    return CT_OK;
}

// The checks both normalisations' gradients start with: which gradient,
// whether the weight is an input, and the input count (base + weight).
static ct_status grad_args(const ct_kargs *k, const char *op, int base, int *which, bool *has_w) {
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "no attributes");
    *which = k->attr->which;
    if (*which < CT_NORM_GRAD_X || *which > CT_NORM_GRAD_BIAS)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "unknown gradient %d", *which);
    *has_w = *which == CT_NORM_GRAD_X && k->attr->has_weight;
    if (k->n_in != base + *has_w)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "expected %d inputs, got %d", base + *has_w, k->n_in);
    return CT_OK;
}

static ct_status bn_geom_of(const char *op, const ct_tview &x, bn_geom *g) {
    if (x.shape.ndim < 2) return ct_cuda_arg_error(CT_ERR_SHAPE, op, "x has %d axes, need at least 2", x.shape.ndim);
    int64_t outer = 0, len = 0, inner = 0;
    ct_cuda_axis_split(x.shape, 1, &outer, &len, &inner);
    *g = bn_geom{outer, len, inner, outer * inner};
    return CT_OK;
}

static ct_status bn_training_ok(const char *op, const ct_tview &x, const bn_geom &g) {
    if (g.cnt > 1) return CT_OK;
    char s[96];
    return ct_cuda_arg_error(CT_ERR_INVALID_ARG, op,
                             "training needs more than 1 value per channel, got x %s (use a larger batch, or "
                             "evaluation mode)",
                             ct_shape_str(x.shape, s, sizeof s));
}

static ct_status k_batch_norm(const ct_kargs *k) {
    const char *op = "batch_norm";
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "no attributes");
    bool has_w = k->attr->has_weight, has_b = k->attr->has_bias;
    if (k->n_in != 3 + has_w + has_b)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "expected %d inputs, got %d", 3 + has_w + has_b, k->n_in);
    const ct_tview &x = k->in[0], &rm = k->in[1], &rv = k->in[2];
    const ct_tview *w = has_w ? &k->in[3] : nullptr, *b = has_b ? &k->in[3 + has_w] : nullptr;
    bn_geom g;
    ct_status st;
    if ((st = bn_geom_of(op, x, &g)) != CT_OK || (st = check_numel(op, "x", x, x.numel)) != CT_OK ||
        (st = check_numel(op, "output", k->out, x.numel)) != CT_OK ||
        (st = check_numel(op, "running_mean", rm, g.c)) != CT_OK ||
        (st = check_numel(op, "running_var", rv, g.c)) != CT_OK ||
        (w && (st = check_numel(op, "weight", *w, g.c)) != CT_OK) || (b && (st = check_numel(op, "bias", *b, g.c)) != CT_OK))
        return st;
    if (k->training && (st = bn_training_ok(op, x, g)) != CT_OK) return st;
    if (g.c == 0) return CT_OK;
    bn_args a = {};
    a.x = x.data, a.xdt = x.dtype;
    a.w = w ? w->data : nullptr, a.wdt = w ? w->dtype : 0;
    a.b = b ? b->data : nullptr, a.bdt = b ? b->dtype : 0;
    a.rm = rm.data, a.rmdt = rm.dtype, a.rv = rv.data, a.rvdt = rv.dtype;
    a.out = k->out.data, a.odt = k->out.dtype;
    a.momentum = k->attr->alpha, a.eps = k->attr->eps, a.training = k->training;
    a.unbias = k->training ? (double)g.cnt / (double)(g.cnt - 1) : 1.0;
    cudaStream_t s = ct_cuda_stream(k);
    int th = ct_cuda_row_threads(g.cnt);
    bn_forward<double><<<ct_cuda_rows_grid(g.c), th, 0, s>>>(a, g);
    CT_CUDA_LAUNCHED("batch_norm", "[%lld, %lld, %lld]", (long long)g.n, (long long)g.c, (long long)g.s);
    return CT_OK;
}

static ct_status k_batch_norm_grad(const ct_kargs *k) {
    const char *op = "batch_norm_grad";
    int which = 0;
    bool has_w = false;
    ct_status st = grad_args(k, op, 4, &which, &has_w);
    if (st != CT_OK) return st;
    const ct_tview &x = k->in[0], &rm = k->in[1], &rv = k->in[2], &dy = k->in[3];
    const ct_tview *w = has_w ? &k->in[4] : nullptr;
    bn_geom g;
    if ((st = bn_geom_of(op, x, &g)) != CT_OK || (st = check_numel(op, "x", x, x.numel)) != CT_OK ||
        (st = check_numel(op, "dy", dy, x.numel)) != CT_OK ||
        (st = check_numel(op, "output", k->out, which == CT_NORM_GRAD_X ? x.numel : g.c)) != CT_OK ||
        (st = check_numel(op, "running_mean", rm, g.c)) != CT_OK ||
        (st = check_numel(op, "running_var", rv, g.c)) != CT_OK || (w && (st = check_numel(op, "weight", *w, g.c)) != CT_OK))
        return st;
    if (k->training && (st = bn_training_ok(op, x, g)) != CT_OK) return st;
    if (g.c == 0) return CT_OK;
    bn_args a = {};
    a.x = x.data, a.xdt = x.dtype, a.dy = dy.data, a.dydt = dy.dtype;
    a.w = w ? w->data : nullptr, a.wdt = w ? w->dtype : 0;
    a.rm = rm.data, a.rmdt = rm.dtype, a.rv = rv.data, a.rvdt = rv.dtype;
    a.out = k->out.data, a.odt = k->out.dtype;
    a.eps = k->attr->eps, a.training = k->training, a.which = which;
    cudaStream_t s = ct_cuda_stream(k);
    int th = ct_cuda_row_threads(g.cnt);
    bn_backward<double><<<ct_cuda_rows_grid(g.c), th, 0, s>>>(a, g);
    CT_CUDA_LAUNCHED("batch_norm_grad", "[%lld, %lld, %lld]", (long long)g.n, (long long)g.c, (long long)g.s);
    return CT_OK;
}

// ---------------------------------------------------------------- layer norm

struct ln_args {
    const void *x, *w, *b, *dy;
    void *out;
    int xdt, wdt, bdt, dydt, odt;
    int64_t rows, dim;
    double eps;
};

template <typename C>
__device__ void ln_stats(const ln_args &a, int64_t r, C *sh, C *mean, C *rstd) {
    int64_t base = r * a.dim;
    C sum = 0;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) sum += ct_ld<C>(a.x, a.xdt, base + j);
    C m = ct_block_sum(sum, sh) / (C)a.dim;
    C sq = 0;
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
        C d = ct_ld<C>(a.x, a.xdt, base + j) - m;
        sq += d * d;
    }
    *mean = m;
    *rstd = (C)1 / sqrt(ct_block_sum(sq, sh) / (C)a.dim + (C)a.eps);
}

template <typename C>
__global__ void ln_forward(ln_args a) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        C mean, rstd;
        ln_stats<C>(a, r, sh, &mean, &rstd);
        int64_t base = r * a.dim;
        for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
            C v = (ct_ld<C>(a.x, a.xdt, base + j) - mean) * rstd;
            if (a.w) v *= ct_ld<C>(a.w, a.wdt, j);
            if (a.b) v += ct_ld<C>(a.b, a.bdt, j);
            ct_st<C>(a.out, a.odt, base + j, v);
        }
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
template <typename C>
__global__ void ln_backward_x(ln_args a) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        C mean, rstd;
        ln_stats<C>(a, r, sh, &mean, &rstd);
        int64_t base = r * a.dim;
        C sg = 0, sgx = 0;
        for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
            C g = ct_ld<C>(a.dy, a.dydt, base + j) * (a.w ? ct_ld<C>(a.w, a.wdt, j) : (C)1);
            sg += g;
            sgx += g * (ct_ld<C>(a.x, a.xdt, base + j) - mean) * rstd;
        }
        C mg = ct_block_sum(sg, sh) / (C)a.dim;
        C mgx = ct_block_sum(sgx, sh) / (C)a.dim;
        for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) {
            C g = ct_ld<C>(a.dy, a.dydt, base + j) * (a.w ? ct_ld<C>(a.w, a.wdt, j) : (C)1);
            C xhat = (ct_ld<C>(a.x, a.xdt, base + j) - mean) * rstd;
            ct_st<C>(a.out, a.odt, base + j, rstd * (g - mg - xhat * mgx));
        }
    }
}

// Per-row mean and rstd into stats[2r], stats[2r + 1].
template <typename C>
__global__ void ln_row_stats(ln_args a, C *stats) {
    __shared__ C sh[32];
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        C mean, rstd;
        ln_stats<C>(a, r, sh, &mean, &rstd);
        if (threadIdx.x == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = rstd;
        }
    }
}

// Partial sums over the rows of part p (blockIdx.y) for each feature:
// dy * xhat (stats given) or dy (stats NULL).
template <typename C>
__global__ void ln_param_parts(ln_args a, const C *stats, int64_t parts, C *part) {
    int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j >= a.dim) return;
    int64_t p = blockIdx.y, per = (a.rows + parts - 1) / parts;
    int64_t r0 = p * per, r1 = r0 + per < a.rows ? r0 + per : a.rows;
    C acc = 0;
    for (int64_t r = r0; r < r1; r++) {
        C d = ct_ld<C>(a.dy, a.dydt, r * a.dim + j);
        acc += stats ? d * (ct_ld<C>(a.x, a.xdt, r * a.dim + j) - stats[2 * r]) * stats[2 * r + 1] : d;
    }
    part[p * a.dim + j] = acc;
}

template <typename C>
__global__ void ln_param_finish(ln_args a, int64_t parts, const C *part) {
    CT_GRID_STRIDE(j, a.dim) {
        C acc = 0;
        for (int64_t p = 0; p < parts; p++) acc += part[p * a.dim + j];
        ct_st<C>(a.out, a.odt, j, acc);
    }
}

static int64_t ln_parts(int64_t rows) {
    int64_t p = (rows + LN_ROWS_PER_PART - 1) / LN_ROWS_PER_PART;
    return p < 1 ? 1 : p > LN_PARTS_MAX ? LN_PARTS_MAX : p;
}

static ct_status ln_dims(const char *op, const ct_tview &x, int64_t *rows, int64_t *dim) {
    if (x.shape.ndim < 1) return ct_cuda_arg_error(CT_ERR_SHAPE, op, "x is a scalar");
    *dim = x.shape.dim[x.shape.ndim - 1];
    *rows = *dim ? x.numel / *dim : 0;
    return CT_OK;
}

size_t ct_cuda_norm_scratch(const ct_kargs *k) {
    if (k->op != CT_OP_LAYER_NORM_GRAD || !k->attr || k->attr->which == CT_NORM_GRAD_X || k->n_in < 1) return 0;
    int64_t rows = 0, dim = 0;
    if (ln_dims("layer_norm_grad", k->in[0], &rows, &dim) != CT_OK) return 0;
    return (size_t)(2 * rows + ln_parts(rows) * dim) * sizeof(double);
}

static ct_status k_layer_norm(const ct_kargs *k) {
    const char *op = "layer_norm";
    if (!k->attr) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "no attributes");
    bool has_w = k->attr->has_weight, has_b = k->attr->has_bias;
    if (k->n_in != 1 + has_w + has_b)
        return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "expected %d inputs, got %d", 1 + has_w + has_b, k->n_in);
    const ct_tview &x = k->in[0];
    const ct_tview *w = has_w ? &k->in[1] : nullptr, *b = has_b ? &k->in[1 + has_w] : nullptr;
    ln_args a = {};
    ct_status st;
    if ((st = ln_dims(op, x, &a.rows, &a.dim)) != CT_OK || (st = check_numel(op, "x", x, x.numel)) != CT_OK ||
        (st = check_numel(op, "output", k->out, x.numel)) != CT_OK ||
        (w && (st = check_numel(op, "weight", *w, a.dim)) != CT_OK) || (b && (st = check_numel(op, "bias", *b, a.dim)) != CT_OK))
        return st;
    if (a.rows == 0) return CT_OK;
    a.x = x.data, a.xdt = x.dtype, a.out = k->out.data, a.odt = k->out.dtype, a.eps = k->attr->eps;
    a.w = w ? w->data : nullptr, a.wdt = w ? w->dtype : 0;
    a.b = b ? b->data : nullptr, a.bdt = b ? b->dtype : 0;
    cudaStream_t s = ct_cuda_stream(k);
    ln_forward<double><<<ct_cuda_rows_grid(a.rows), ct_cuda_row_threads(a.dim), 0, s>>>(a);
    CT_CUDA_LAUNCHED("layer_norm", "%lld rows of %lld", (long long)a.rows, (long long)a.dim);
    return CT_OK;
}

template <typename C>
static ct_status ln_params(const ln_args &a, int which, void *scratch, cudaStream_t s) {
    C *stats = (C *)scratch, *part = stats + 2 * a.rows;
    int64_t parts = ln_parts(a.rows);
    if (which == CT_NORM_GRAD_WEIGHT) {
        ln_row_stats<C><<<ct_cuda_rows_grid(a.rows), ct_cuda_row_threads(a.dim), 0, s>>>(a, stats);
        CT_CUDA_LAUNCHED("layer_norm_grad (row statistics)", "%lld rows of %lld", (long long)a.rows, (long long)a.dim);
    }
    dim3 grid((unsigned)((a.dim + CT_CUDA_THREADS - 1) / CT_CUDA_THREADS), (unsigned)parts);
    ln_param_parts<C><<<grid, CT_CUDA_THREADS, 0, s>>>(a, which == CT_NORM_GRAD_WEIGHT ? stats : nullptr, parts, part);
    CT_CUDA_LAUNCHED("layer_norm_grad (partial sums)", "%lld rows of %lld in %lld parts", (long long)a.rows,
                     (long long)a.dim, (long long)parts);
    ln_param_finish<C><<<ct_cuda_blocks(a.dim), CT_CUDA_THREADS, 0, s>>>(a, parts, part);
    CT_CUDA_LAUNCHED("layer_norm_grad (sums)", "%lld features", (long long)a.dim);
    return CT_OK;
}

static ct_status k_layer_norm_grad(const ct_kargs *k) {
    const char *op = "layer_norm_grad";
    int which = 0;
    bool has_w = false;
    ct_status st = grad_args(k, op, 2, &which, &has_w);
    if (st != CT_OK) return st;
    const ct_tview &x = k->in[0], &dy = k->in[1];
    const ct_tview *w = has_w ? &k->in[2] : nullptr;
    ln_args a = {};
    if ((st = ln_dims(op, x, &a.rows, &a.dim)) != CT_OK || (st = check_numel(op, "x", x, x.numel)) != CT_OK ||
        (st = check_numel(op, "dy", dy, x.numel)) != CT_OK ||
        (st = check_numel(op, "output", k->out, which == CT_NORM_GRAD_X ? x.numel : a.dim)) != CT_OK ||
        (w && (st = check_numel(op, "weight", *w, a.dim)) != CT_OK))
        return st;
    a.x = x.data, a.xdt = x.dtype, a.dy = dy.data, a.dydt = dy.dtype, a.out = k->out.data, a.odt = k->out.dtype;
    a.w = w ? w->data : nullptr, a.wdt = w ? w->dtype : 0, a.eps = k->attr->eps;
    if (a.dim == 0) return CT_OK;
    cudaStream_t s = ct_cuda_stream(k);
    if (which == CT_NORM_GRAD_X) {
        if (a.rows == 0) return CT_OK;
        ln_backward_x<double><<<ct_cuda_rows_grid(a.rows), ct_cuda_row_threads(a.dim), 0, s>>>(a);
        CT_CUDA_LAUNCHED("layer_norm_grad", "%lld rows of %lld", (long long)a.rows, (long long)a.dim);
        return CT_OK;
    }
    if (!k->scratch) return ct_cuda_arg_error(CT_ERR_INTERNAL, op, "needs scratch, got none");
    return ln_params<double>(a, which, k->scratch, s);
}

void ct_cuda_register_norm(ct_kernel_fn *t) {
    t[CT_OP_BATCH_NORM] = k_batch_norm;
    t[CT_OP_BATCH_NORM_GRAD] = k_batch_norm_grad;
    t[CT_OP_LAYER_NORM] = k_layer_norm;
    t[CT_OP_LAYER_NORM_GRAD] = k_layer_norm_grad;
}
