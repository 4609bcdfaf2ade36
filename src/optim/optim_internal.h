/* Internal to src/optim: reaching a program's backend and flat gradients. */
#ifndef CT_OPTIM_INTERNAL_H
#define CT_OPTIM_INTERNAL_H

#include "core/error.h"
#include "core/program_internal.h"
#include "ctrain/optim.h"

typedef struct ct_flat_grads {
    const ct_backend *be;
    void *data;       /* device pointer */
    ct_dtype dtype;
    size_t n;         /* elements */
} ct_flat_grads;

/* The flat gradient buffer of p; fn names the public function in the
 * error message. Callers check that the backend has the hook they use. */
static inline ct_status ct_optim_grads_of(ct_program *p, const char *fn, ct_flat_grads *out) {
    *out = (ct_flat_grads){0};
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "%s: program is NULL", fn);
    out->be = ct_program_backend(p);
    out->data = ct_program_grads(p);
    out->dtype = ct_program_param_dtype(p);
    out->n = ct_program_param_numel(p);
    if (out->n && out->dtype != CT_F32 && out->dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "%s: gradients are %s; f32 or f64 expected", fn, ct_dtype_name(out->dtype));
    return CT_OK;
}

static inline ct_status ct_optim_no_hook(const ct_flat_grads *fg, const char *fn, const char *hook) {
    return ct_error(CT_ERR_UNSUPPORTED, "%s: the %s backend has no %s", fn, fg->be ? fg->be->name : "(none)", hook);
}

/* ct_optimizer_step, gated by a loss scaler's state on the device (NULL:
 * ungated): the backend skips the update when amp->found_inf is set and uses
 * t - amp->skipped as the step; the host's count includes skipped steps. p
 * is the scaler's program, which must write opt's gradients. */
ct_status ct_optimizer_step_gated(ct_optimizer *opt, double lr, ct_program *p, const ct_amp_state *amp);
/* The same, the update reading t and lr from dev (device memory, NULL:
 * the host's values) so that it can be captured once and replayed; the
 * caller writes dev->t = the optimizer's count + 1 and dev->lr = lr before
 * the update runs. The host's count advances as usual. */
ct_status ct_optimizer_step_dev(ct_optimizer *opt, double lr, ct_program *p, const ct_amp_state *amp,
                                const ct_step_dev *dev);
/* The program whose buffers opt updates (NULL for NULL). */
ct_program *ct_optimizer_program(const ct_optimizer *opt);

#endif
