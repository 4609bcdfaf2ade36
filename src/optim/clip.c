/* Gradient clipping and scaling over a program's flat gradient buffer.
 *
 * Because every gradient lives in one buffer, PyTorch's clip_grad_norm_
 * over all parameters is one sum of squares and one scale, each a single
 * backend call on the device; the only value that comes back to the host is
 * the norm itself.
 */
#include <math.h>

#include "ctrain/optim.h"
#include "optim/optim_internal.h"

ct_status ct_clip_grad_norm(ct_program *p, double max_norm, double *total_norm) {
    static const char fn[] = "ct_clip_grad_norm";
    if (total_norm) *total_norm = 0;
    if (!(max_norm >= 0) || isinf(max_norm))
        return ct_error(CT_ERR_INVALID_ARG, "%s: max_norm must be finite and >= 0, got %g", fn, max_norm);
    ct_flat_grads fg;
    ct_status st = ct_optim_grads_of(p, fn, &fg);
    if (st != CT_OK || fg.n == 0) return st;
    if (!fg.be->sumsq || !fg.be->scale_clamp) return ct_optim_no_hook(&fg, fn, "sumsq/scale_clamp");
    double ss = 0;
    bool finite = true;
    st = fg.be->sumsq(fg.data, fg.dtype, fg.n, &ss, &finite);
    if (st != CT_OK) return st;
    double total = sqrt(ss);
    if (total_norm) *total_norm = finite ? total : NAN;
    /* Both tests: the elements can be finite while their squares overflow. */
    if (!finite || !isfinite(total))
        return ct_error(CT_ERR_NUMERIC, "%s: the total gradient norm is not finite (%s); gradients left as they are",
                        fn, finite ? "the sum of squares overflows" : "a gradient is inf or NaN");
    /* PyTorch's exact rule: the factor max_norm / (total + 1e-6), clamped to
     * at most 1, so gradients are touched only when it is below 1. */
    double coef = max_norm / (total + 1e-6);
    if (coef < 1) st = fg.be->scale_clamp(fg.data, fg.dtype, fg.n, coef, 0);
    return st;
}

ct_status ct_clip_grad_value(ct_program *p, double clip) {
    static const char fn[] = "ct_clip_grad_value";
    if (!(clip > 0) || isinf(clip))
        return ct_error(CT_ERR_INVALID_ARG, "%s: clip must be finite and > 0, got %g", fn, clip);
    ct_flat_grads fg;
    ct_status st = ct_optim_grads_of(p, fn, &fg);
    if (st != CT_OK || fg.n == 0) return st;
    if (!fg.be->scale_clamp) return ct_optim_no_hook(&fg, fn, "scale_clamp");
    return fg.be->scale_clamp(fg.data, fg.dtype, fg.n, 1.0, clip);
}

ct_status ct_scale_grads(ct_program *p, double s) {
    static const char fn[] = "ct_scale_grads";
    if (!isfinite(s)) return ct_error(CT_ERR_INVALID_ARG, "%s: the factor must be finite, got %g", fn, s);
    ct_flat_grads fg;
    ct_status st = ct_optim_grads_of(p, fn, &fg);
    if (st != CT_OK || fg.n == 0) return st;
    if (!fg.be->scale_clamp) return ct_optim_no_hook(&fg, fn, "scale_clamp");
    return fg.be->scale_clamp(fg.data, fg.dtype, fg.n, s, 0);
}
