/* Fast paths of the fused optimizer update for F32 buffers: SGD (with and
 * without momentum) and Adam/AdamW, the updates every default run takes.
 *
 * Each is the reference's per-element update of cpu_optim.c, same double
 * arithmetic in the same order, rewritten so the compiler vectorises it:
 * the per-element choice (decayed or not) becomes a select between the
 * same values the reference's branches compute; frozen elements, which
 * the reference skips, are skipped as whole runs; the loop-invariant
 * choices (momentum, Nesterov, the first step) are selects on constants or
 * separate loops. The rest (Adagrad, RMSprop, AMSGrad, maximize, F64) stays
 * on the reference loops.
 * tests/test_cpu_fast.c compares both, byte for byte.
 */
#include <math.h>
#include <string.h>

#include "cpu/cpu_simd.h"
#include "cpu/cpu_util.h"
#include "ctrain/optim.h"

#define PAR_MIN ((int64_t)1 << 15)

typedef struct fast_optim {
    float *p, *s0, *s1;
    const float *g;
    const uint8_t *flags;
    double lr, wd, l1, mu, damp, b1, b2, step_size, bc2_sqrt, shrink, eps;
    bool l2, l1on, decoupled, first, nesterov;
} fast_optim;

/* Next element at or after i (below hi) whose flags have (want) the frozen
 * bit: eight flags at a time through the long runs of one parameter. */
static CT_ALWAYS_INLINE int64_t next_frozen(const uint8_t *fl, int64_t i, int64_t hi, bool want) {
    const uint64_t bits = 0x0101010101010101ull * CT_PFLAG_FROZEN, none = want ? 0 : bits;
    for (; i + 8 <= hi; i += 8) {
        uint64_t w;
        memcpy(&w, fl + i, sizeof w);
        if ((w & bits) != none) break;
    }
    while (i < hi && ((fl[i] & CT_PFLAG_FROZEN) != 0) != want) i++;
    return i;
}

/* Frozen elements keep every bit (the reference skips them), so the update
 * runs over the runs of unfrozen ones, with no per-element test of the
 * frozen flag left in the vectorised loop. */
#define FOR_UNFROZEN_RUNS(k, lo, hi, run)                                  \
    for (int64_t a_ = (lo); a_ < (hi);) {                                  \
        a_ = next_frozen((k)->flags, a_, (hi), false);                     \
        int64_t b_ = next_frozen((k)->flags, a_, (hi), true);              \
        if (a_ < b_) run((k), a_, b_);                                     \
        a_ = b_;                                                           \
    }

/* The loop invariants of effective_grad(), loaded once into registers. */
typedef struct grad_consts {
    double wd, l1;
    int64_t l2, l1on; /* 0 or 1 */
} grad_consts;

static CT_ALWAYS_INLINE grad_consts grad_consts_of(const fast_optim *k) {
    return (grad_consts){k->wd, k->l1, k->l2, k->l1on};
}

/* effective_grad() of cpu_optim.c as selects: the same additions, made or
 * not, in the same order (bitwise &, not &&: no branch in the loop).
 * Maximizing (rare) is left to the reference loops. */
static CT_ALWAYS_INLINE double fast_grad(grad_consts c, int64_t decay, double w, double g) {
    g = (decay & c.l2) ? g + c.wd * w : g;
    const double sign = (double)((w > 0) - (w < 0));
    g = (decay & c.l1on) ? g + c.l1 * sign : g;
    return g;
}

/* The decay flag as a 64-bit 0 or 1: the selects it drives pick between
 * doubles, and a mask of the doubles' width is what the vector units
 * blend with. */
static CT_ALWAYS_INLINE int64_t decay_of(uint8_t f) { return (int64_t)f >> 1 & 1; }
_Static_assert(CT_PFLAG_DECAY == 2, "decay_of() reads bit 1");

static CT_ALWAYS_INLINE void sgd_run(const fast_optim *k, int64_t lo, int64_t hi) {
    float *restrict p = k->p;
    const float *restrict gr = k->g;
    const uint8_t *restrict fl = k->flags;
    const grad_consts gc = grad_consts_of(k);
    const double lr = k->lr;
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        const double w = p[i];
        const double g = fast_grad(gc, decay_of(fl[i]), w, gr[i]);
        p[i] = (float)(w - lr * g);
    }
}
static CT_ALWAYS_INLINE void sgd_body(const fast_optim *k, int64_t lo, int64_t hi) {
    FOR_UNFROZEN_RUNS(k, lo, hi, sgd_run);
}
CT_RANGE_KERNEL(sgd_worker, sgd_body, fast_optim)

static CT_ALWAYS_INLINE void sgd_momentum_run(const fast_optim *k, int64_t lo, int64_t hi) {
    float *restrict p = k->p, *restrict s0 = k->s0;
    const float *restrict gr = k->g;
    const uint8_t *restrict fl = k->flags;
    const grad_consts gc = grad_consts_of(k);
    const double lr = k->lr, mu = k->mu, damp = k->damp;
    const bool first = k->first, nesterov = k->nesterov;
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        const double w = p[i];
        double g = fast_grad(gc, decay_of(fl[i]), w, gr[i]);
        const double buf = first ? g : mu * (double)s0[i] + (1 - damp) * g;
        s0[i] = (float)buf;
        g = nesterov ? g + mu * buf : buf;
        p[i] = (float)(w - lr * g);
    }
}
static CT_ALWAYS_INLINE void sgd_momentum_body(const fast_optim *k, int64_t lo, int64_t hi) {
    FOR_UNFROZEN_RUNS(k, lo, hi, sgd_momentum_run);
}
CT_RANGE_KERNEL(sgd_momentum_worker, sgd_momentum_body, fast_optim)

static CT_ALWAYS_INLINE void adam_run(const fast_optim *k, int64_t lo, int64_t hi) {
    float *restrict p = k->p, *restrict s0 = k->s0, *restrict s1 = k->s1;
    const float *restrict gr = k->g;
    const uint8_t *restrict fl = k->flags;
    const grad_consts gc = grad_consts_of(k);
    const double b1 = k->b1, b2 = k->b2, step_size = k->step_size, bc2_sqrt = k->bc2_sqrt;
    const double shrink = k->shrink, eps = k->eps;
    const int64_t decoupled = k->decoupled;
    CT_SIMD_LOOP
    for (int64_t i = lo; i < hi; i++) {
        const int64_t decay = decay_of(fl[i]);
        double w = p[i];
        const double g = fast_grad(gc, decay, w, gr[i]);
        w = (decoupled & decay) ? w * shrink : w;
        const double m = b1 * (double)s0[i] + (1 - b1) * g;
        const double v = b2 * (double)s1[i] + (1 - b2) * g * g;
        s0[i] = (float)m;
        s1[i] = (float)v;
        p[i] = (float)(w - step_size * (m / (sqrt(v) / bc2_sqrt + eps)));
    }
}
static CT_ALWAYS_INLINE void adam_body(const fast_optim *k, int64_t lo, int64_t hi) {
    FOR_UNFROZEN_RUNS(k, lo, hi, adam_run);
}
CT_RANGE_KERNEL(adam_worker, adam_body, fast_optim)

/* Runs the update when a fast path covers it (F32; SGD, Adam or AdamW
 * without AMSGrad; not maximizing) and returns true; false leaves it to the reference. The
 * caller has checked the arguments and found the state buffers it needs. */
bool ct_cpu_optim_fast(const ct_optim_args *a) {
    if (a->dtype != CT_F32 || a->maximize || !ct_cpu_fast_paths_enabled()) return false;
    const bool adam = a->kind == CT_OPTIM_ADAM || a->kind == CT_OPTIM_ADAMW;
    if (!(a->kind == CT_OPTIM_SGD || (adam && !a->amsgrad))) return false;
    fast_optim k = {
        .p = a->params, .s0 = a->state0, .s1 = a->state1, .g = a->grads, .flags = a->flags,
        .lr = a->lr, .wd = a->weight_decay, .l1 = a->l1, .mu = a->momentum, .damp = a->dampening,
        .b1 = a->beta1, .b2 = a->beta2, .eps = a->eps,
        .l2 = a->weight_decay != 0 && !a->decoupled, .l1on = a->l1 != 0,
        .decoupled = a->decoupled, .first = a->t == 1, .nesterov = a->nesterov,
    };
    ct_range_fn fn;
    if (adam) {
        /* the constants exactly as adam() in cpu_optim.c computes them */
        k.step_size = a->lr / (1 - pow(a->beta1, (double)a->t));
        k.bc2_sqrt = sqrt(1 - pow(a->beta2, (double)a->t));
        k.shrink = 1 - a->lr * a->weight_decay;
        fn = adam_worker();
    } else {
        fn = a->momentum != 0 ? sgd_momentum_worker() : sgd_worker();
    }
    ct_par_ranges((int64_t)a->n, PAR_MIN, fn, &k);
    return true;
}
