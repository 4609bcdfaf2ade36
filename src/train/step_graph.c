/* The fused training step (ctrain/step_graph.h).
 *
 * issue() queues one step with the usual calls - program run, scaler,
 * clipping, optimizer, loss sum - except that every value that changes
 * between steps is read by the kernels from the ct_step_dev struct in
 * device memory, not baked into their arguments. That makes the queued work
 * the same every step, so it can be captured once (backend graph_* hooks)
 * and replayed; the host only uploads the struct's first fields before each
 * step. The same issue() runs every step when the step is not captured, so
 * captured and plain steps compute the same thing.
 *
 * Capturing records the work without running it: the host's counters
 * (program step, optimizer t), which issue() advances, are put back, and
 * advanced once the launch is queued, as for every replay.
 *
 * On a backend without the device-side clip_norm and loss_acc hooks (the
 * CPU, whose "device" memory is host memory) the same results come from
 * the sumsq / scale_clamp hooks and small copies, and are stored in the
 * struct all the same, so the readers below do not care which ran.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "amp/amp_internal.h"
#include "core/error.h"
#include "core/program_internal.h"
#include "ctrain/step_graph.h"
#include "optim/optim_internal.h"

struct ct_step_graph {
    ct_program *p;
    ct_optimizer *opt;
    const ct_backend *be;
    ct_step_graph_opts o;
    const void *loss;     /* the loss node's buffer (o.loss) */
    ct_dtype loss_dtype;
    ct_step_dev *dev;     /* device memory */
    void *exec;           /* the captured step, or NULL */
    uint64_t generation;  /* the program's, when exec was captured */
    int captures;
    bool ran;
};

static const char fn_new[] = "ct_step_graph_new";

void ct_step_graph_free(ct_step_graph *sg) {
    if (!sg) return;
    if (sg->exec) sg->be->graph_free(sg->exec);
    sg->be->free(sg->dev);
    free(sg);
}

static ct_status check_opts(ct_program *p, ct_optimizer *opt, const ct_step_graph_opts *o) {
    if (!p || !opt) return ct_error(CT_ERR_INVALID_ARG, "%s: %s is NULL", fn_new, p ? "optimizer" : "program");
    if (ct_program_grads(ct_optimizer_program(opt)) != ct_program_grads(p) ||
        ct_program_backend(ct_optimizer_program(opt)) != ct_program_backend(p))
        return ct_error(CT_ERR_INVALID_ARG, "%s: the optimizer updates another program's parameters", fn_new);
    if (!(o->clip_norm >= 0) || isinf(o->clip_norm) || !(o->clip_value >= 0) || isinf(o->clip_value))
        return ct_error(CT_ERR_INVALID_ARG, "%s: clip_norm (%g) and clip_value (%g) must be finite and >= 0", fn_new,
                        o->clip_norm, o->clip_value);
    if (!isfinite(o->loss_weight))
        return ct_error(CT_ERR_INVALID_ARG, "%s: loss_weight must be finite, got %g", fn_new, o->loss_weight);
    if (o->scaler && ct_program_grads(ct_scaler_program(o->scaler)) != ct_program_grads(p))
        return ct_error(CT_ERR_INVALID_ARG, "%s: the loss scaler belongs to another program's gradients", fn_new);
    return CT_OK;
}

ct_step_graph *ct_step_graph_new(ct_program *p, ct_optimizer *opt, const ct_step_graph_opts *o) {
    ct_step_graph_opts none = {0};
    if (!o) o = &none;
    if (check_opts(p, opt, o) != CT_OK) return NULL;
    ct_step_graph *sg = calloc(1, sizeof *sg);
    if (!sg) return ct_error(CT_ERR_OOM, "%s: out of memory", fn_new), NULL;
    sg->p = p;
    sg->opt = opt;
    sg->be = ct_program_backend(p);
    sg->o = *o;
    if (sg->o.loss_weight == 0) sg->o.loss_weight = 1;
    ct_status st = CT_OK;
    if (o->loss) {
        int64_t numel = 0;
        sg->loss = ct_program_node_data(p, *o->loss, &sg->loss_dtype, &numel);
        sg->o.loss = NULL; /* the caller's pointer need not outlive this call */
        if (!sg->loss || numel != 1 || (sg->loss_dtype != CT_F32 && sg->loss_dtype != CT_F64))
            st = ct_error(CT_ERR_INVALID_ARG, "%s: the loss (node %d) must be an f32 or f64 scalar output of the "
                          "program (ct_compile_opts.outputs)", fn_new, (int)*o->loss);
    }
    if (st == CT_OK) {
        sg->dev = sg->be->alloc(sizeof *sg->dev);
        if (!sg->dev) st = ct_error(CT_ERR_OOM, "%s: %s", fn_new, ct_last_error());
    }
    if (st == CT_OK) {
        ct_step_dev init = {.norm = NAN, .coef = 1};
        st = sg->be->upload(sg->dev, &init, sizeof init);
    }
    if (st != CT_OK) {
        ct_step_graph_free(sg);
        return NULL;
    }
    return sg;
}

/* Fallback of the backend's clip_norm (core/backend.h): the host finishes
 * the sum, as ct_clip_grad_norm does, without its error. */
static ct_status clip_on_host(ct_step_graph *sg, ct_flat_grads *fg) {
    if (!fg->be->sumsq || !fg->be->scale_clamp)
        return ct_optim_no_hook(fg, "ct_step_graph_run", "sumsq/scale_clamp");
    double ss = 0, v[2];
    bool finite = true;
    ct_status st = fg->n ? fg->be->sumsq(fg->data, fg->dtype, fg->n, &ss, &finite) : CT_OK;
    if (st != CT_OK) return st;
    double norm = sqrt(ss);
    double coef = finite && isfinite(norm) ? sg->o.clip_norm / (norm + 1e-6) : 1.0;
    v[0] = finite ? norm : NAN;
    v[1] = coef < 1 ? coef : 1.0;
    if (v[1] < 1) st = fg->be->scale_clamp(fg->data, fg->dtype, fg->n, v[1], 0);
    return st != CT_OK ? st : sg->be->upload(&sg->dev->norm, v, sizeof v);
}

/* Fallback of the backend's loss_acc. */
static ct_status loss_on_host(ct_step_graph *sg) {
    double v[2];
    float f;
    ct_status st = sg->loss_dtype == CT_F32 ? sg->be->download(&f, sg->loss, sizeof f)
                                            : sg->be->download(&v[0], sg->loss, sizeof v[0]);
    if (st == CT_OK && sg->loss_dtype == CT_F32) v[0] = (double)f;
    if (st == CT_OK) st = sg->be->download(&v[1], &sg->dev->loss_sum, sizeof v[1]);
    if (st != CT_OK) return st;
    v[0] *= sg->o.loss_weight;
    v[1] += v[0];
    return sg->be->upload(&sg->dev->loss_last, v, sizeof v);
}

/* One step's work, every per-step value read from sg->dev. */
static ct_status issue(ct_step_graph *sg, double lr) {
    const ct_backend *be = sg->be;
    ct_scaler *sc = sg->o.scaler;
    ct_status st = ct_program_run_dev(sg->p, &sg->dev->step);
    if (st == CT_OK && sc) st = ct_scaler_unscale(sc);
    /* Frozen parameters have no gradient in PyTorch: none in the norm (a
     * memset per frozen parameter, captured with the rest). */
    if (st == CT_OK && (sg->o.clip_norm > 0 || sg->o.clip_value > 0)) st = ct_optimizer_zero_frozen_grads(sg->opt);
    if (st == CT_OK && sg->o.clip_norm > 0) {
        ct_flat_grads fg;
        st = ct_optim_grads_of(sg->p, "ct_step_graph_run", &fg);
        if (st == CT_OK && be->clip_norm) st = be->clip_norm(fg.data, fg.dtype, fg.n, sg->o.clip_norm, sg->dev);
        else if (st == CT_OK) st = clip_on_host(sg, &fg);
    }
    if (st == CT_OK && sg->o.clip_value > 0) st = ct_clip_grad_value(sg->p, sg->o.clip_value);
    if (st == CT_OK)
        st = ct_optimizer_step_dev(sg->opt, lr, sc ? ct_scaler_program(sc) : NULL, sc ? ct_scaler_dev_state(sc) : NULL,
                                   sg->dev);
    if (st == CT_OK && sc) st = ct_scaler_update(sc);
    if (st == CT_OK && sg->loss)
        st = be->loss_acc ? be->loss_acc(sg->loss, sg->loss_dtype, sg->o.loss_weight, sg->dev) : loss_on_host(sg);
    return st;
}

static bool can_capture(const ct_step_graph *sg) {
    return !sg->o.no_capture && sg->be->graph_begin && !ct_program_has_grad_hook(sg->p);
}

/* Captures issue() into sg->exec, leaving the host's counters as they were. */
static ct_status capture(ct_step_graph *sg, double lr) {
    uint32_t step0 = ct_program_step(sg->p);
    int64_t t0 = ct_optimizer_step_count(sg->opt);
    ct_status st = sg->be->graph_begin();
    if (st != CT_OK) return st;
    st = issue(sg, lr);
    char why[1024];
    if (st != CT_OK) snprintf(why, sizeof why, "%s", ct_last_error());
    void *exec = NULL;
    ct_status end = sg->be->graph_end(st == CT_OK, &exec);
    ct_program_set_step(sg->p, step0);
    ct_optimizer_set_step_count(sg->opt, t0);
    if (st != CT_OK) return ct_error(st, "capturing the training step: %s", why);
    if (end != CT_OK) return end;
    sg->exec = exec;
    sg->generation = ct_program_generation(sg->p);
    sg->captures++;
    return CT_OK;
}

ct_status ct_step_graph_run(ct_step_graph *sg, double lr) {
    if (!sg) return ct_error(CT_ERR_INVALID_ARG, "ct_step_graph_run: step graph is NULL");
    if (!(lr >= 0) || isinf(lr))
        return ct_error(CT_ERR_INVALID_ARG, "ct_step_graph_run: lr must be finite and >= 0, got %g", lr);
    uint32_t step = ct_program_step(sg->p);
    int64_t t = ct_optimizer_step_count(sg->opt);
    ct_step_dev h = {.step = step, .t = t + 1, .lr = lr};
    ct_status st = sg->be->upload(sg->dev, &h, CT_STEP_DEV_HOST_BYTES);
    if (st != CT_OK) return st;
    if (sg->exec && (!can_capture(sg) || sg->generation != ct_program_generation(sg->p))) {
        sg->be->graph_free(sg->exec);
        sg->exec = NULL;
    }
    /* The first step runs uncaptured: what the CUDA runtime and its
     * libraries do once, on first use (loading kernels lazily, a handle's
     * first-call setup), then happens outside the capture, where it may
     * allocate and synchronise. Both forms compute the same step. */
    if (!can_capture(sg) || !sg->ran) st = issue(sg, lr);
    else {
        if (!sg->exec) st = capture(sg, lr);
        if (st == CT_OK) st = sg->be->graph_launch(sg->exec);
        if (st == CT_OK) {
            ct_program_set_step(sg->p, step + 1);
            ct_optimizer_set_step_count(sg->opt, t + 1);
        }
    }
    if (st == CT_OK) sg->ran = true;
    return st;
}

ct_status ct_step_graph_loss(const ct_step_graph *sg, double *last, double *sum) {
    if (!sg) return ct_error(CT_ERR_INVALID_ARG, "ct_step_graph_loss: step graph is NULL");
    if (!sg->loss) return ct_error(CT_ERR_STATE, "ct_step_graph_loss: the step graph was made without a loss");
    double v[2];
    ct_status st = sg->be->download(v, &sg->dev->loss_last, sizeof v);
    if (st != CT_OK) return st;
    if (last) *last = v[0];
    if (sum) *sum = v[1];
    return CT_OK;
}

ct_status ct_step_graph_clear_loss(ct_step_graph *sg) {
    if (!sg) return ct_error(CT_ERR_INVALID_ARG, "ct_step_graph_clear_loss: step graph is NULL");
    return sg->be->zero(&sg->dev->loss_sum, sizeof sg->dev->loss_sum);
}

ct_status ct_step_graph_grad_norm(const ct_step_graph *sg, double *norm) {
    if (!sg || !norm) return ct_error(CT_ERR_INVALID_ARG, "ct_step_graph_grad_norm: NULL argument");
    if (!(sg->o.clip_norm > 0) || !sg->ran)
        return ct_error(CT_ERR_STATE, "ct_step_graph_grad_norm: %s",
                        sg->ran ? "the step graph does not clip by norm" : "no step has run yet");
    return sg->be->download(norm, &sg->dev->norm, sizeof *norm);
}

bool ct_step_graph_captures(const ct_step_graph *sg) { return sg && can_capture(sg); }
int ct_step_graph_capture_count(const ct_step_graph *sg) { return sg ? sg->captures : 0; }
