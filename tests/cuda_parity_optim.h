/* GPU vs CPU for the fused optimizer update (tests/cuda_parity.h): one
 * ct_optim_args applied by both backends to the same random flat buffers,
 * with or without a loss scaler's state, then params and every state
 * buffer compared.
 *
 * Tolerances: the updates are computed in double on both backends and
 * rounded once, so F32 agrees to rtol 1e-6 (sqrt and pow of CUDA's library
 * are within an ulp of glibc's in double) and F64 to 1e-13. F32 SGD, Adam
 * and AdamW compute in float on both (src/cpu/cpu_optim_fast.c; sgd_f32 and
 * adam_f32 in src/cuda/optim.cu), the same operations each rounded alike
 * (no fused multiply-add on either side), so they agree to the bit unless
 * a step scalar computed in double (pow) rounds to another float: rtol
 * 1e-6 covers that too (one float ulp of a scalar is 6e-8 relative). A step the
 * scaler skips (found_inf set) must leave every buffer bit-identical. */
#ifndef CTRAIN_TESTS_CUDA_PARITY_OPTIM_H
#define CTRAIN_TESTS_CUDA_PARITY_OPTIM_H

#include "cuda_parity.h"

typedef struct cpo_flat {
    void *p, *g, *s[3];
    uint8_t *flags;
} cpo_flat;

/* Host buffers of n elements: random params, grads and (positive) states;
 * every 7th element frozen, every other one decayed. */
static inline cpo_flat cpo_flat_host(ct_dtype dt, size_t n, uint32_t stream) {
    cpo_flat f = {0};
    size_t b = n * ct_dtype_size(dt);
    cp_in in = cp_f(dt, (ct_shape){1, {(int64_t)n}}), pos = cp_range(dt, in.shape, 0.01, 1);
    f.p = malloc(b), f.g = malloc(b), f.flags = malloc(n);
    cp_fill(&in, f.p, stream);
    cp_fill(&in, f.g, stream + 1);
    for (int s = 0; s < 3; s++) {
        f.s[s] = malloc(b);
        cp_fill(&pos, f.s[s], stream + 2 + (uint32_t)s);
    }
    for (size_t i = 0; i < n; i++) f.flags[i] = (uint8_t)((i % 7 == 6 ? CT_PFLAG_FROZEN : 0) | (i % 2 ? CT_PFLAG_DECAY : 0));
    return f;
}

static inline cpo_flat cpo_flat_device(const ct_backend *be, const cpo_flat *h, ct_dtype dt, size_t n) {
    cpo_flat d = {0};
    size_t b = n * ct_dtype_size(dt);
    const void *src[] = {h->p, h->g, h->s[0], h->s[1], h->s[2]};
    void **dst[] = {&d.p, &d.g, &d.s[0], &d.s[1], &d.s[2]};
    for (int i = 0; i < 5; i++) {
        *dst[i] = be->alloc(b);
        cr_assert(*dst[i] && be->upload(*dst[i], src[i], b) == CT_OK, "%s", ct_last_error());
    }
    d.flags = be->alloc(n);
    cr_assert(d.flags && be->upload(d.flags, h->flags, n) == CT_OK, "%s", ct_last_error());
    return d;
}

static inline void cpo_flat_free(const ct_backend *be, cpo_flat *f, bool host) {
    void *ps[] = {f->p, f->g, f->s[0], f->s[1], f->s[2], f->flags};
    for (int i = 0; i < 6; i++) host ? free(ps[i]) : be->free(ps[i]);
}

/* Runs a on both backends over 1000003 elements of dt and compares. With
 * amp (a host state), the CPU gets it as is and the GPU a device copy;
 * when amp->found_inf is set the buffers must come back unchanged. */
static inline void cpo_run(const char *name, ct_optim_args a, ct_dtype dt, const ct_amp_state *amp) {
    const ct_backend *cpu = ct_cpu_backend(), *gpu = cp_gpu();
    cr_assert(gpu, "%s", ct_last_error());
    size_t n = 1000003, b = n * ct_dtype_size(dt);
    cpo_flat h = cpo_flat_host(dt, n, cp_stream_counter), d = cpo_flat_device(gpu, &h, dt, n);
    cp_stream_counter += 8;
    ct_amp_state *damp = NULL;
    if (amp) {
        damp = gpu->alloc(sizeof *damp);
        cr_assert(damp && gpu->upload(damp, amp, sizeof *amp) == CT_OK, "%s", ct_last_error());
    }
    a.dtype = dt, a.n = n;
    ct_optim_args ha = a, da = a;
    ha.params = h.p, ha.grads = h.g, ha.state0 = h.s[0], ha.state1 = h.s[1], ha.state2 = h.s[2], ha.flags = h.flags;
    da.params = d.p, da.grads = d.g, da.state0 = d.s[0], da.state1 = d.s[1], da.state2 = d.s[2], da.flags = d.flags;
    ha.amp = amp, da.amp = damp;
    cr_assert_eq(cpu->optim_update(&ha), CT_OK, "%s: %s", name, ct_last_error());
    cr_assert_eq(gpu->optim_update(&da), CT_OK, "%s: %s", name, ct_last_error());
    bool skipped = amp && amp->found_inf;
    double rtol = skipped ? 0 : dt == CT_F64 ? 1e-13 : 1e-6, atol = skipped ? 0 : dt == CT_F64 ? 1e-15 : 1e-9;
    void *back = malloc(b);
    void *hs[] = {h.p, h.s[0], h.s[1], h.s[2]}, *ds[] = {d.p, d.s[0], d.s[1], d.s[2]};
    const char *what[] = {"params", "state0", "state1", "state2"};
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(gpu->download(back, ds[i], b), CT_OK, "%s: %s", name, ct_last_error());
        ok = cp_compare(name, what[i], dt, hs[i], back, (int64_t)n, rtol, atol) && ok;
    }
    if (skipped) {
        /* The CPU reference wrote nothing either: its buffers are the inputs. */
        cpo_flat fresh = cpo_flat_host(dt, n, cp_stream_counter - 8);
        for (int i = 0; i < 3; i++) ok = memcmp(fresh.s[i], h.s[i], b) == 0 && ok;
        ok = memcmp(fresh.p, h.p, b) == 0 && ok;
        cpo_flat_free(NULL, &fresh, true);
    }
    free(back);
    cpo_flat_free(NULL, &h, true);
    cpo_flat_free(gpu, &d, false);
    if (damp) gpu->free(damp);
    cr_assert(ok, "%s: the GPU update differs from the CPU's (see above)", name);
}

/* The optimizer configurations every parity test runs. */
typedef struct cpo_spec {
    const char *name;
    ct_optim_args a;
} cpo_spec;

#define CPO_N_SPECS 10
static const cpo_spec cpo_specs[CPO_N_SPECS] = {
    {"sgd", {.kind = CT_OPTIM_SGD, .lr = 0.1, .t = 3}},
    {"sgd momentum first step", {.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .dampening = 0.1, .t = 1}},
    {"sgd nesterov decay l1", {.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .nesterov = true,
                               .weight_decay = 0.01, .l1 = 1e-3, .t = 5}},
    {"sgd maximize", {.kind = CT_OPTIM_SGD, .lr = 0.1, .momentum = 0.5, .maximize = true, .t = 2}},
    {"adagrad", {.kind = CT_OPTIM_ADAGRAD, .lr = 0.01, .eps = 1e-10, .lr_decay = 0.01, .weight_decay = 0.1, .t = 4}},
    {"rmsprop", {.kind = CT_OPTIM_RMSPROP, .lr = 0.01, .alpha = 0.99, .eps = 1e-8, .t = 2}},
    {"rmsprop centered momentum", {.kind = CT_OPTIM_RMSPROP, .lr = 0.01, .alpha = 0.9, .eps = 1e-8,
                                   .momentum = 0.9, .centered = true, .t = 7}},
    {"adam", {.kind = CT_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .t = 1}},
    {"adam amsgrad", {.kind = CT_OPTIM_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .amsgrad = true, .t = 9}},
    {"adamw", {.kind = CT_OPTIM_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
               .decoupled = true, .t = 100}},
};

#endif
