/* Fast paths of the fused optimizer update for F32 buffers: SGD (plain,
 * momentum, Nesterov), Adam and AdamW, in float arithmetic with PyTorch's
 * formulas.
 *
 * The reference (cpu_optim.c) computes every element in double. For Adam
 * the square root and the division in double cost about six cycles an
 * element, twice what memory needs, and SGD's conversions to and from
 * double kept it under the copy bandwidth on two cores. PyTorch's
 * optimizers (single-tensor, foreach, fused) compute in the parameter's
 * dtype, float here, with their scalars computed in double (Python) and
 * rounded to float once; these paths do the same, in the same structure:
 *
 *   gradient          g = -g (maximize); g + (float)wd * w (coupled L2)
 *   SGD momentum      buf = g (first step), else buf * mu + (float)(1 - damp) * g
 *                     g = g + mu * buf (Nesterov), else buf;  p = p - lr * g
 *   decoupled decay   p = p * (float)(1 - lr * wd)
 *   first moment      m = lerp(m, g, (float)(1 - b1))
 *   second moment     v = v * (float)b2 + (float)(1 - b2) * g * g
 *   AMSGrad           vmax = max(vmax, v), NaN propagating; v = vmax
 *   denominator       d = sqrt(v) / (float)sqrt(1 - b2^t) + (float)eps
 *   step              p = p - ((float)(lr / (1 - b1^t)) * m) / d
 *
 * and ctrain's own semantics around them: frozen elements untouched (the
 * update runs over runs of equal flags, found 64 flags at a time, with no
 * flag read per element), the coupled penalties (L2, L1's
 * l1 * sign(w)) and the decoupled decay only on elements flagged for decay,
 * from the weight before the step. The per-element choices are selects and
 * the loop invariants constants, so the compiler vectorises each loop
 * (CT_RANGE_KERNEL: SSE2, AVX2 and AVX-512 clones), each twice: for any
 * options, and plain (no maximize, no L1), where those selects are gone.
 * lerp is PyTorch's two-sided form
 * (m + w * (g - m) for |w| < 0.5, else g + (w - 1) * (g - m)), its product
 * and sum rounded apart where PyTorch's fused CPU kernel fuses them (a
 * last-bit difference at most): no multiply-add anywhere
 * (-ffp-contract=off), so both clones, every thread count and the CUDA
 * kernel's F32 updates (src/cuda/optim.cu, the same operations with
 * __f*_rn) give the same bits.
 *
 * They are not the reference's bits: tests/test_cpu_fast.c states the
 * difference, over one step and over 300, and checks the bytes on 1, 2 and
 * 3 threads. F64 buffers and CTRAIN_CPU_REFERENCE=1 keep the double loops.
 */
#include <math.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "ctrain/optim.h"

#define PAR_MIN ((int64_t)1 << 15)

/* How every algorithm first transforms the gradient (grad_f32). */
typedef struct grad_f32c {
    float wd, l1;
    int32_t l2, l1on, maximize; /* 0 or 1 */
} grad_f32c;

typedef struct adam_f32 {
    float *p, *s0, *s1, *s2;
    const float *g;
    const uint8_t *flags;
    grad_f32c gc;
    float shrink, lerp_w, b2, c2, step_size, bc2_sqrt, eps;
    int32_t decoupled, lerp_lo; /* 0 or 1 */
} adam_f32;

typedef struct sgd_f32 {
    float *p, *s0;
    const float *g;
    const uint8_t *flags;
    grad_f32c gc;
    float lr, mu, damp1; /* damp1: 1 - dampening */
    int32_t first, nesterov;
} sgd_f32;

/* The end of the run of equal flags that starts at i (below hi): the
 * first element after it whose flags byte differs from fl[i], or hi. 64
 * flags at a time through the long runs of one parameter (the update waits
 * for the scan), then eight, then one. */
static CT_ALWAYS_INLINE int64_t run_end(const uint8_t *fl, int64_t i, int64_t hi) {
    const uint64_t pat = 0x0101010101010101ull * fl[i];
    for (; i + 64 <= hi; i += 64) {
        uint64_t w[8], diff = 0;
        memcpy(w, fl + i, sizeof w);
        for (int j = 0; j < 8; j++) diff |= w[j] ^ pat;
        if (diff) break;
    }
    for (; i + 8 <= hi; i += 8) {
        uint64_t w;
        memcpy(&w, fl + i, sizeof w);
        if (w != pat) break;
    }
    while (i < hi && fl[i] == (uint8_t)pat) i++;
    return i;
}

/* The decay flag as a 32-bit 0 or 1, the width of the floats it selects. */
static CT_ALWAYS_INLINE int32_t decay_of(uint8_t f) { return (int32_t)f >> 1 & 1; }
_Static_assert(CT_PFLAG_DECAY == 2, "decay_of() reads bit 1");

/* The gradient as the algorithm sees it: negated when maximizing, then the
 * coupled penalties (L2 unless decoupled, L1) on decayed elements, from the
 * weight before the step: torch's grad.add(param, alpha=wd), in float. */
static CT_ALWAYS_INLINE float grad_f32(const grad_f32c *k, int32_t decay, float w, float g) {
    g = k->maximize ? -g : g;
    g = (decay & k->l2) ? g + k->wd * w : g;
    const float sign = (float)((w > 0) - (w < 0));
    g = (decay & k->l1on) ? g + k->l1 * sign : g;
    return g;
}

/* One element, up to the second moment (AMSGrad's maximum applied by the
 * caller); returns the decayed weight, stores m and v. */
#define ADAM_F32_MOMENTS(k, i, w, m, v)                                         \
    const int32_t decay_ = decay;                                               \
    float w = p[i];                                                             \
    const float g_ = grad_f32(&(k)->gc, decay_, w, gr[i]);                           \
    w = ((k)->decoupled & decay_) ? w * (k)->shrink : w;                        \
    const float m0_ = s0[i];                                                    \
    const float m = ((k)->lerp_lo ? m0_ : g_) + (k)->lerp_w * (g_ - m0_);       \
    float v = s1[i] * (k)->b2 + (k)->c2 * g_ * g_;                              \
    s0[i] = m;                                                                  \
    s1[i] = v

static CT_ALWAYS_INLINE float adam_f32_step(const adam_f32 *k, float w, float m, float v) {
    const float denom = sqrtf(v) / k->bc2_sqrt + k->eps;
    return w - k->step_size * m / denom;
}

/* For the plain clones (no maximize, no L1: every model workload) those
 * two options as the constant 0, so the compiler drops their per-element
 * selects. */
static CT_ALWAYS_INLINE grad_f32c plain_if(grad_f32c gc, bool plain) {
    if (plain) gc.maximize = gc.l1on = 0;
    return gc;
}

static CT_ALWAYS_INLINE void adam_run(const adam_f32 *k, int64_t lo, int64_t hi, bool plain, int32_t decay) {
    float *restrict p = k->p, *restrict s0 = k->s0, *restrict s1 = k->s1;
    const float *restrict gr = k->g;
    adam_f32 kk = *k; /* the constants in registers, not reloaded through k */
    kk.gc = plain_if(kk.gc, plain);
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        ADAM_F32_MOMENTS(&kk, i, w, m, v);
        p[i] = adam_f32_step(&kk, w, m, v);
    }
}

static CT_ALWAYS_INLINE void amsgrad_run(const adam_f32 *k, int64_t lo, int64_t hi, bool plain, int32_t decay) {
    float *restrict p = k->p, *restrict s0 = k->s0, *restrict s1 = k->s1, *restrict s2 = k->s2;
    const float *restrict gr = k->g;
    adam_f32 kk = *k;
    kk.gc = plain_if(kk.gc, plain);
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        ADAM_F32_MOMENTS(&kk, i, w, m, v);
        /* torch.maximum: a NaN on either side is the result */
        const float vmax = s2[i];
        v = (v != v || v > vmax) ? v : vmax;
        s2[i] = v;
        p[i] = adam_f32_step(&kk, w, m, v);
    }
}

static CT_ALWAYS_INLINE void sgd_run(const sgd_f32 *k, int64_t lo, int64_t hi, bool plain, int32_t decay) {
    float *restrict p = k->p;
    const float *restrict gr = k->g;
    sgd_f32 kk = *k;
    kk.gc = plain_if(kk.gc, plain);
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        const float w = p[i];
        p[i] = w - kk.lr * grad_f32(&kk.gc, decay, w, gr[i]);
    }
}

/* torch's buf.mul_(mu).add_(g, alpha=1 - dampening), the buffer starting
 * as the first gradient; Nesterov's g.add(buf, alpha=mu). */
static CT_ALWAYS_INLINE void sgd_momentum_run(const sgd_f32 *k, int64_t lo, int64_t hi, bool plain,
                                               int32_t decay) {
    float *restrict p = k->p, *restrict s0 = k->s0;
    const float *restrict gr = k->g;
    sgd_f32 kk = *k;
    kk.gc = plain_if(kk.gc, plain);
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        const float w = p[i];
        float g = grad_f32(&kk.gc, decay, w, gr[i]);
        const float buf = kk.first ? g : s0[i] * kk.mu + kk.damp1 * g;
        s0[i] = buf;
        g = kk.nesterov ? g + kk.mu * buf : buf;
        p[i] = w - kk.lr * g;
    }
}

/* Frozen elements keep every bit (the reference skips them), so the update
 * runs over the runs of equal flags (one parameter's elements, say), the
 * unfrozen ones only, with their decay flag as a constant: no flag is read
 * in the vectorised loop. */
#define FOR_UNFROZEN_RUNS(k, lo, hi, run, plain)                               \
    for (int64_t a_ = (lo); a_ < (hi);) {                                      \
        const uint8_t f_ = (k)->flags[a_];                                     \
        const int64_t b_ = run_end((k)->flags, a_, (hi));                      \
        if (!(f_ & CT_PFLAG_FROZEN)) run((k), a_, b_, (plain), decay_of(f_));  \
        a_ = b_;                                                               \
    }

/* Each update as two workers: any options, and plain (the constant 0 for
 * maximize and L1). */
#define OPTIM_WORKERS(NAME, RUN, CTX)                                                   \
    static CT_ALWAYS_INLINE void NAME##_any(const CTX *k, int64_t lo, int64_t hi) {     \
        FOR_UNFROZEN_RUNS(k, lo, hi, RUN, false);                                       \
    }                                                                                   \
    static CT_ALWAYS_INLINE void NAME##_plain(const CTX *k, int64_t lo, int64_t hi) {   \
        FOR_UNFROZEN_RUNS(k, lo, hi, RUN, true);                                        \
    }                                                                                   \
    CT_RANGE_KERNEL(NAME##_any_worker, NAME##_any, CTX)                                 \
    CT_RANGE_KERNEL(NAME##_plain_worker, NAME##_plain, CTX)                             \
    static ct_range_fn NAME##_worker(bool plain) { return plain ? NAME##_plain_worker() : NAME##_any_worker(); }

OPTIM_WORKERS(adam_f32, adam_run, adam_f32)
OPTIM_WORKERS(amsgrad_f32, amsgrad_run, adam_f32)
OPTIM_WORKERS(sgd_f32, sgd_run, sgd_f32)
OPTIM_WORKERS(sgd_momentum_f32, sgd_momentum_run, sgd_f32)

static grad_f32c grad_consts(const ct_optim_args *a) {
    return (grad_f32c){.wd = (float)a->weight_decay, .l1 = (float)a->l1,
                       .l2 = a->weight_decay != 0 && !a->decoupled, .l1on = a->l1 != 0, .maximize = a->maximize};
}

static void sgd(const ct_optim_args *a) {
    sgd_f32 k = {.p = a->params, .s0 = a->state0, .g = a->grads, .flags = a->flags, .gc = grad_consts(a),
                 .lr = (float)a->lr, .mu = (float)a->momentum, .damp1 = (float)(1 - a->dampening),
                 .first = a->t == 1, .nesterov = a->nesterov};
    const bool plain = !a->maximize && a->l1 == 0;
    ct_par_ranges((int64_t)a->n, PAR_MIN, a->momentum != 0 ? sgd_momentum_f32_worker(plain) : sgd_f32_worker(plain),
                  &k);
}

static void adam(const ct_optim_args *a) {
    /* The scalars in double, as PyTorch computes them in Python (the
     * reference's formulas in cpu_optim.c), each rounded to float once;
     * lerp's 1 - weight in float, as torch.lerp takes it. */
    const float w1 = (float)(1 - a->beta1);
    const bool lo = fabsf(w1) < 0.5f;
    adam_f32 k = {
        .p = a->params, .s0 = a->state0, .s1 = a->state1, .s2 = a->state2, .g = a->grads, .flags = a->flags,
        .gc = grad_consts(a),
        .shrink = (float)(1 - a->lr * a->weight_decay),
        .lerp_lo = lo, .lerp_w = lo ? w1 : w1 - 1.0f,
        .b2 = (float)a->beta2, .c2 = (float)(1 - a->beta2),
        .step_size = (float)(a->lr / (1 - pow(a->beta1, (double)a->t))),
        .bc2_sqrt = (float)sqrt(1 - pow(a->beta2, (double)a->t)),
        .eps = (float)a->eps,
        .decoupled = a->decoupled,
    };
    const bool plain = !a->maximize && a->l1 == 0;
    ct_par_ranges((int64_t)a->n, PAR_MIN, a->amsgrad ? amsgrad_f32_worker(plain) : adam_f32_worker(plain), &k);
}

/* Runs the update when a fast path covers it (F32 buffers: SGD, Adam,
 * AdamW, every option) and returns true; false leaves it to the reference
 * (Adagrad, RMSprop, F64, CTRAIN_CPU_REFERENCE=1). The caller has checked
 * the arguments and found the state buffers it needs. */
bool ct_cpu_optim_fast(const ct_optim_args *a) {
    if (a->dtype != CT_F32 || !ct_cpu_fast_paths_enabled()) return false;
    switch (a->kind) {
    case CT_OPTIM_SGD: sgd(a); return true;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW: adam(a); return true;
    default: return false;
    }
}
