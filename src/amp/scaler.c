/* The loss scaler: torch.cuda.amp.GradScaler's semantics over a program's
 * flat gradient buffer.
 *
 * The state is one small struct in the program's device memory (see
 * ct_amp_state in core/backend.h). The program's loss-scale input is bound
 * to its first field, so the backward seed reads the current scale there;
 * the backend's amp_unscale writes the found-inf flag, the optimizer update
 * and amp_update read it. The host only reads the state when asked (metrics,
 * checkpoints, the clipping decision), never to decide a step.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "amp/amp_internal.h"
#include "core/error.h"
#include "core/program_internal.h"
#include "ctrain/amp.h"
#include "optim/optim_internal.h"

struct ct_scaler {
    ct_program *p;
    const ct_backend *be;
    ct_scaler_opts o;   /* resolved */
    ct_amp_state *st;   /* device memory */
};

static bool is_float_value(double v) {
    float f = (float)v;
    return isfinite(v) && v > 0 && isfinite(f) && f > 0;
}

static ct_status resolve(const ct_scaler_opts *in, ct_scaler_opts *o) {
    const char *fn = "ct_scaler_new";
    *o = in ? *in : (ct_scaler_opts){0};
    if (o->mode == CT_LOSS_SCALE_AUTO) o->mode = CT_LOSS_SCALE_DYNAMIC;
    if (o->mode == CT_LOSS_SCALE_NONE)
        return ct_error(CT_ERR_INVALID_ARG, "%s: mode 'none' needs no scaler (use ct_graph_backward)", fn);
    if (o->mode != CT_LOSS_SCALE_STATIC && o->mode != CT_LOSS_SCALE_DYNAMIC)
        return ct_error(CT_ERR_INVALID_ARG, "%s: unknown mode %d", fn, (int)o->mode);
    if (o->init_scale == 0) o->init_scale = 65536.0;
    if (o->growth_factor == 0) o->growth_factor = 2.0;
    if (o->backoff_factor == 0) o->backoff_factor = 0.5;
    if (o->growth_interval == 0) o->growth_interval = 2000;
    if (!is_float_value(o->init_scale))
        return ct_error(CT_ERR_INVALID_ARG, "%s: init_scale %g must be finite, > 0 and within float range", fn,
                        o->init_scale);
    if (!(o->growth_factor > 1) || isinf(o->growth_factor))
        return ct_error(CT_ERR_INVALID_ARG, "%s: growth_factor %g must be finite and > 1", fn, o->growth_factor);
    if (!(o->backoff_factor > 0 && o->backoff_factor < 1))
        return ct_error(CT_ERR_INVALID_ARG, "%s: backoff_factor %g must be in (0, 1)", fn, o->backoff_factor);
    if (o->growth_interval < 1 || o->growth_interval > INT32_MAX)
        return ct_error(CT_ERR_INVALID_ARG, "%s: growth_interval %lld outside 1 .. %d", fn,
                        (long long)o->growth_interval, INT32_MAX);
    return CT_OK;
}

void ct_scaler_free(ct_scaler *s) {
    if (!s) return;
    if (s->be) s->be->free(s->st);
    free(s);
}

ct_status ct_scaler_attach(ct_scaler *s, ct_program *q) {
    if (!s || !q) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_attach: NULL scaler or program");
    if (ct_program_backend(q) != s->be || ct_program_grads(q) != ct_program_grads(s->p))
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_scaler_attach: the program does not write the scaler's gradients (compile it with "
                        "share_params)");
    ct_status st = ct_program_bind_input(q, CT_LOSS_SCALE_INPUT, &s->st->scale, sizeof s->st->scale);
    if (st == CT_ERR_NOT_FOUND)
        return ct_error(CT_ERR_STATE, "the program has no loss-scale input: differentiate its graph with "
                        "ct_graph_backward_scaled");
    return st;
}

ct_scaler *ct_scaler_new(ct_program *p, const ct_scaler_opts *o) {
    if (!p) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_new: program is NULL"), NULL;
    ct_scaler *s = calloc(1, sizeof *s);
    if (!s) return ct_error(CT_ERR_OOM, "ct_scaler_new: out of memory"), NULL;
    s->p = p;
    ct_status st = resolve(o, &s->o);
    if (st == CT_OK) {
        s->be = ct_program_backend(p);
        if (!s->be->amp_unscale || !s->be->amp_update)
            st = ct_error(CT_ERR_UNSUPPORTED, "ct_scaler_new: the %s backend has no loss-scaling hooks", s->be->name);
    }
    if (st == CT_OK && !(s->st = s->be->alloc(sizeof *s->st))) st = ct_last_status();
    if (st == CT_OK) {
        ct_amp_state init = {.scale = (float)s->o.init_scale};
        st = s->be->upload(s->st, &init, sizeof init);
    }
    if (st == CT_OK) st = ct_scaler_attach(s, p);
    if (st != CT_OK) {
        ct_scaler_free(s); /* sets no error: the message stays the reason */
        return NULL;
    }
    return s;
}

const ct_scaler_opts *ct_scaler_options(const ct_scaler *s) { return s ? &s->o : NULL; }

ct_status ct_scaler_unscale(ct_scaler *s) {
    if (!s) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_unscale: scaler is NULL");
    ct_status st = s->be->amp_unscale(ct_program_grads(s->p), ct_program_param_dtype(s->p),
                                      ct_program_param_numel(s->p), s->st);
    if (st != CT_OK) return ct_error(st, "ct_scaler_unscale: %s", ct_last_error());
    return CT_OK;
}

ct_status ct_scaler_found_inf(const ct_scaler *s, bool *found) {
    if (!s || !found) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_found_inf: NULL argument");
    int32_t f = 0;
    ct_status st = s->be->download(&f, &s->st->found_inf, sizeof f);
    *found = f != 0;
    return st;
}

ct_status ct_scaler_step(ct_scaler *s, ct_optimizer *opt, double lr) {
    if (!s || !opt) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_step: NULL scaler or optimizer");
    return ct_optimizer_step_gated(opt, lr, s->p, s->st);
}

ct_status ct_scaler_update(ct_scaler *s) {
    if (!s) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_update: scaler is NULL");
    /* A static scale takes the same path with factors of 1: the scale stays,
     * and skipped steps are still counted. */
    bool dyn = s->o.mode == CT_LOSS_SCALE_DYNAMIC;
    ct_status st = s->be->amp_update(s->st, dyn ? s->o.growth_factor : 1.0, dyn ? s->o.backoff_factor : 1.0,
                                     (int32_t)s->o.growth_interval);
    if (st != CT_OK) return ct_error(st, "ct_scaler_update: %s", ct_last_error());
    return CT_OK;
}

ct_status ct_scaler_get_state(const ct_scaler *s, ct_scaler_state *out) {
    if (!s || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_get_state: NULL argument");
    ct_amp_state h;
    ct_status st = s->be->download(&h, s->st, sizeof h);
    if (st != CT_OK) return st;
    *out = (ct_scaler_state){.scale = h.scale, .growth_tracker = h.growth_tracker, .skipped_steps = h.skipped};
    return CT_OK;
}

ct_status ct_scaler_set_state(ct_scaler *s, const ct_scaler_state *in) {
    if (!s || !in) return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_set_state: NULL argument");
    if (!is_float_value(in->scale) || (double)(float)in->scale != in->scale)
        return ct_error(CT_ERR_INVALID_ARG, "ct_scaler_set_state: scale %g is not a finite, positive float value",
                        in->scale);
    if (in->growth_tracker < 0 || in->growth_tracker >= s->o.growth_interval || in->skipped_steps < 0)
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_scaler_set_state: growth_tracker %lld (interval %lld) or skipped_steps %lld out of range",
                        (long long)in->growth_tracker, (long long)s->o.growth_interval,
                        (long long)in->skipped_steps);
    ct_amp_state h = {.scale = (float)in->scale,
                      .growth_tracker = (int32_t)in->growth_tracker,
                      .skipped = in->skipped_steps};
    return s->be->upload(s->st, &h, sizeof h);
}

const ct_amp_state *ct_scaler_dev_state(const ct_scaler *s) { return s ? s->st : NULL; }
ct_program *ct_scaler_program(const ct_scaler *s) { return s ? s->p : NULL; }
