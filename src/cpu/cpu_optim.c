/* CPU reference implementations of the flat-buffer hooks: the fused
 * optimizer update, the sum of squares behind gradient-norm clipping, the
 * scale-and-clamp of clipping by value, and axpby for gradient accumulation.
 *
 * Every element is loaded as a double, updated in double and stored back with
 * the buffer's rounding, so an F64 program reproduces PyTorch's documented
 * update rules to the last few ulps and the CUDA kernels have a reference to
 * be compared against. Elements are independent, so the loops split across
 * OpenMP threads without changing any result; the one reduction (sumsq) sums
 * fixed chunks in a fixed order for the same reason. F32 buffers, the common
 * case, get loops of their own with typed loads and stores (OPTIM_LOOP).
 */
#include <math.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "ctrain/optim.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PAR_MIN ((int64_t)1 << 15)

static ct_status check_dtype(ct_dtype dt, const char *fn) {
    if (dt != CT_F32 && dt != CT_F64)
        return ct_error(CT_ERR_DTYPE, "cpu %s: buffers must be f32 or f64, got %s", fn, ct_dtype_name(dt));
    return CT_OK;
}

static inline double sign_of(double w) { return (double)((w > 0) - (w < 0)); }

/* The gradient as every algorithm first transforms it: negated when
 * maximizing, then the coupled penalties on decayed elements (L2, unless
 * decoupled, then L1), all from the weight before this step. */
static inline double effective_grad(const ct_optim_args *a, uint8_t f, double w, double g) {
    if (a->maximize) g = -g;
    if (f & CT_PFLAG_DECAY) {
        if (a->weight_decay != 0 && !a->decoupled) g += a->weight_decay * w;
        if (a->l1 != 0) g += a->l1 * sign_of(w);
    }
    return g;
}

/* Each algorithm is written once, for one element, and run by OPTIM_LOOP
 * with the dtype a constant: in the F32 loop ct_ld/ct_st become plain float
 * loads and stores, so the loop keeps no dtype switch and the compiler can
 * keep the arguments in registers, while the arithmetic is the same double
 * arithmetic as in the F64 loop. */
#define OPTIM_LOOP(a, elem, consts)                                                       \
    do {                                                                                  \
        const int64_t n_ = (int64_t)(a)->n;                                               \
        if ((a)->dtype == CT_F32) {                                                       \
            _Pragma("omp parallel for schedule(static) if (n_ >= PAR_MIN)")               \
            for (int64_t i = 0; i < n_; i++) elem(a, CT_F32, i, consts);                  \
        } else {                                                                          \
            _Pragma("omp parallel for schedule(static) if (n_ >= PAR_MIN)")               \
            for (int64_t i = 0; i < n_; i++) elem(a, CT_F64, i, consts);                  \
        }                                                                                 \
    } while (0)

/* Per-step constants of the algorithms, computed once per call. */
typedef struct optim_consts {
    double c0, c1, c2;
    bool first;
} optim_consts;

static inline void sgd_at(const ct_optim_args *a, ct_dtype dt, int64_t i, const optim_consts *k) {
    const double mu = a->momentum, damp = a->dampening;
    uint8_t f = a->flags[i];
    if (f & CT_PFLAG_FROZEN) return;
    double w = ct_ld(a->params, dt, i);
    double g = effective_grad(a, f, w, ct_ld(a->grads, dt, i));
    if (mu != 0) {
        double buf = k->first ? g : mu * ct_ld(a->state0, dt, i) + (1 - damp) * g;
        ct_st(a->state0, dt, i, buf);
        g = a->nesterov ? g + mu * buf : buf;
    }
    ct_st(a->params, dt, i, w - a->lr * g);
}

static void sgd(const ct_optim_args *a) {
    /* PyTorch creates the buffer from the first gradient (buf = g) rather
     * than from zero, which is what dampening would otherwise shrink. */
    const optim_consts k = {.first = a->t == 1};
    OPTIM_LOOP(a, sgd_at, &k);
}

static inline void adagrad_at(const ct_optim_args *a, ct_dtype dt, int64_t i, const optim_consts *k) {
    const double clr = k->c0;
    uint8_t f = a->flags[i];
    if (f & CT_PFLAG_FROZEN) return;
    double w = ct_ld(a->params, dt, i);
    double g = effective_grad(a, f, w, ct_ld(a->grads, dt, i));
    double sum = ct_ld(a->state0, dt, i) + g * g;
    ct_st(a->state0, dt, i, sum);
    ct_st(a->params, dt, i, w - clr * (g / (sqrt(sum) + a->eps)));
}

static void adagrad(const ct_optim_args *a) {
    const optim_consts k = {.c0 = a->lr / (1 + (double)(a->t - 1) * a->lr_decay)};
    OPTIM_LOOP(a, adagrad_at, &k);
}

static inline void rmsprop_at(const ct_optim_args *a, ct_dtype dt, int64_t i, const optim_consts *k) {
    (void)k;
    const double al = a->alpha, mu = a->momentum;
    uint8_t f = a->flags[i];
    if (f & CT_PFLAG_FROZEN) return;
    double w = ct_ld(a->params, dt, i);
    double g = effective_grad(a, f, w, ct_ld(a->grads, dt, i));
    double sq = al * ct_ld(a->state0, dt, i) + (1 - al) * g * g;
    ct_st(a->state0, dt, i, sq);
    double var = sq;
    if (a->centered) {
        double ga = al * ct_ld(a->state2, dt, i) + (1 - al) * g;
        ct_st(a->state2, dt, i, ga);
        var -= ga * ga;
    }
    double avg = sqrt(var) + a->eps;
    if (mu > 0) {
        double buf = mu * ct_ld(a->state1, dt, i) + g / avg;
        ct_st(a->state1, dt, i, buf);
        ct_st(a->params, dt, i, w - a->lr * buf);
    } else {
        ct_st(a->params, dt, i, w - a->lr * (g / avg));
    }
}

static void rmsprop(const ct_optim_args *a) {
    const optim_consts k = {0};
    OPTIM_LOOP(a, rmsprop_at, &k);
}

static inline void adam_at(const ct_optim_args *a, ct_dtype dt, int64_t i, const optim_consts *k) {
    const double b1 = a->beta1, b2 = a->beta2;
    const double step_size = k->c0, bc2_sqrt = k->c1, shrink = k->c2;
    uint8_t f = a->flags[i];
    if (f & CT_PFLAG_FROZEN) return;
    double w = ct_ld(a->params, dt, i);
    double g = effective_grad(a, f, w, ct_ld(a->grads, dt, i));
    if (a->decoupled && (f & CT_PFLAG_DECAY)) w *= shrink;
    double m = b1 * ct_ld(a->state0, dt, i) + (1 - b1) * g;
    double v = b2 * ct_ld(a->state1, dt, i) + (1 - b2) * g * g;
    ct_st(a->state0, dt, i, m);
    ct_st(a->state1, dt, i, v);
    if (a->amsgrad) {
        /* The maximum of the raw (uncorrected) second moments, as
         * PyTorch keeps it; a NaN propagates as torch.maximum's does. */
        double vmax = ct_ld(a->state2, dt, i);
        if (v != v || v > vmax) vmax = v;
        ct_st(a->state2, dt, i, vmax);
        v = vmax;
    }
    ct_st(a->params, dt, i, w - step_size * (m / (sqrt(v) / bc2_sqrt + a->eps)));
}

static void adam(const ct_optim_args *a) {
    /* PyTorch's arrangement of the bias corrections: lr / (1 - b1^t) on the
     * first moment, sqrt(1 - b2^t) dividing the root of the second. */
    const optim_consts k = {
        .c0 = a->lr / (1 - pow(a->beta1, (double)a->t)),
        .c1 = sqrt(1 - pow(a->beta2, (double)a->t)),
        .c2 = 1 - a->lr * a->weight_decay, /* AdamW's decoupled decay */
    };
    OPTIM_LOOP(a, adam_at, &k);
}

static ct_status update(const ct_optim_args *a) {
    ct_status st = check_dtype(a->dtype, "optim_update");
    if (st != CT_OK) return st;
    if (a->n == 0) return CT_OK;
    if (a->t < 1)
        return ct_error(CT_ERR_INVALID_ARG, "cpu optim_update: step t must be >= 1, got %lld", (long long)a->t);
    if (!a->params || !a->grads || !a->flags)
        return ct_error(CT_ERR_INVALID_ARG, "cpu optim_update: params, grads and flags are required");
    /* Which state buffers each algorithm reads, so that a caller's mistake
     * is an error here rather than a NULL dereference in the loop. */
    bool need0 = false, need1 = false, need2 = false;
    switch (a->kind) {
    case CT_OPTIM_SGD: need0 = a->momentum != 0; break;
    case CT_OPTIM_ADAGRAD: need0 = true; break;
    case CT_OPTIM_RMSPROP: need0 = true, need1 = a->momentum > 0, need2 = a->centered; break;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW: need0 = need1 = true, need2 = a->amsgrad; break;
    default: return ct_error(CT_ERR_INVALID_ARG, "cpu optim_update: unknown optimizer kind %d", a->kind);
    }
    if ((need0 && !a->state0) || (need1 && !a->state1) || (need2 && !a->state2))
        return ct_error(CT_ERR_INTERNAL, "cpu optim_update: %s is missing a state buffer",
                        ct_optim_kind_name((ct_optim_kind)a->kind));
    /* F32 SGD, Adam and AdamW: vectorised, in float as PyTorch computes
     * them (cpu_optim_fast.c) */
    if (ct_cpu_optim_fast(a)) return CT_OK;
    switch (a->kind) {
    case CT_OPTIM_SGD: sgd(a); break;
    case CT_OPTIM_ADAGRAD: adagrad(a); break;
    case CT_OPTIM_RMSPROP: rmsprop(a); break;
    default: adam(a); break;
    }
    return CT_OK;
}

ct_status ct_cpu_optim_update(const ct_optim_args *a) {
    if (!a) return ct_error(CT_ERR_INVALID_ARG, "cpu optim_update: args are NULL");
    if (!a->amp) return update(a);
    /* The loss scaler's verdict, read where it was written (device memory
     * on a GPU): a step with inf/NaN gradients changes nothing, and the
     * algorithms count only the steps really taken. */
    if (a->amp->found_inf) return CT_OK;
    ct_optim_args b = *a;
    b.t -= a->amp->skipped;
    b.amp = NULL;
    return update(&b);
}

/* Fixed chunks summed in index order: the result does not depend on the
 * number of threads, so a clipped run is reproducible anywhere. */
#define SUMSQ_CHUNKS 64

ct_status ct_cpu_sumsq(const void *x, ct_dtype dtype, size_t n, double *out, bool *finite) {
    ct_status st = check_dtype(dtype, "sumsq");
    if (st != CT_OK) return st;
    if (n && !x) return ct_error(CT_ERR_INVALID_ARG, "cpu sumsq: buffer is NULL");
    double part[SUMSQ_CHUNKS];
    bool ok[SUMSQ_CHUNKS];
    const bool fast = dtype == CT_F32 && ct_cpu_fast_paths_enabled();
    const int64_t len = (int64_t)n, chunk = (len + SUMSQ_CHUNKS - 1) / SUMSQ_CHUNKS;
#pragma omp parallel for schedule(static) if (len >= PAR_MIN)
    for (int c = 0; c < SUMSQ_CHUNKS; c++) {
        int64_t lo = c * chunk, hi = lo + chunk < len ? lo + chunk : len;
        double s = 0;
        bool fin = true;
        if (fast) { /* F32, typed loads: the same sum in the same order */
            const float *xf = x;
            for (int64_t i = lo; i < hi; i++) {
                double v = xf[i];
                s += v * v;
                fin = fin && isfinite(v);
            }
        } else {
            for (int64_t i = lo; i < hi; i++) {
                double v = ct_ld(x, dtype, i);
                s += v * v;
                fin = fin && isfinite(v);
            }
        }
        part[c] = s;
        ok[c] = fin;
    }
    double total = 0;
    bool all = true;
    for (int c = 0; c < SUMSQ_CHUNKS; c++) {
        total += part[c];
        all = all && ok[c];
    }
    if (out) *out = total;
    if (finite) *finite = all;
    return CT_OK;
}

ct_status ct_cpu_scale_clamp(void *x, ct_dtype dtype, size_t n, double scale, double clamp) {
    ct_status st = check_dtype(dtype, "scale_clamp");
    if (st != CT_OK) return st;
    if (n && !x) return ct_error(CT_ERR_INVALID_ARG, "cpu scale_clamp: buffer is NULL");
    const int64_t len = (int64_t)n;
    if (dtype == CT_F32 && ct_cpu_fast_paths_enabled()) { /* typed: the same arithmetic, vectorised */
        float *xf = x;
#pragma omp parallel for schedule(static) if (len >= PAR_MIN)
        for (int64_t i = 0; i < len; i++) {
            double v = xf[i] * scale;
            if (clamp > 0) v = v > clamp ? clamp : v < -clamp ? -clamp : v;
            xf[i] = (float)v;
        }
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (len >= PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        double v = ct_ld(x, dtype, i) * scale;
        /* Comparisons are false for NaN, which therefore passes through as
         * it does through torch.clamp. */
        if (clamp > 0) v = v > clamp ? clamp : v < -clamp ? -clamp : v;
        ct_st(x, dtype, i, v);
    }
    return CT_OK;
}

ct_status ct_cpu_axpby(double a, const void *x, double b, void *y, ct_dtype dtype, size_t n) {
    ct_status st = check_dtype(dtype, "axpby");
    if (st != CT_OK) return st;
    if (n && (!x || !y)) return ct_error(CT_ERR_INVALID_ARG, "cpu axpby: buffer is NULL");
    const int64_t len = (int64_t)n;
    if (dtype == CT_F32 && ct_cpu_fast_paths_enabled()) { /* typed: the same arithmetic, vectorised */
        const float *xf = x;
        float *yf = y;
        if (b != 0) {
#pragma omp parallel for schedule(static) if (len >= PAR_MIN)
            for (int64_t i = 0; i < len; i++) yf[i] = (float)(a * xf[i] + b * yf[i]);
        } else {
#pragma omp parallel for schedule(static) if (len >= PAR_MIN)
            for (int64_t i = 0; i < len; i++) yf[i] = (float)(a * xf[i]);
        }
        return CT_OK;
    }
#pragma omp parallel for schedule(static) if (len >= PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        double v = a * ct_ld(x, dtype, i);
        if (b != 0) v += b * ct_ld(y, dtype, i);
        ct_st(y, dtype, i, v);
    }
    return CT_OK;
}
