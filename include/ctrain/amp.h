/* Mixed precision: a precision policy per graph, and a dynamic loss scaler.
 *
 * The policy (ct_graph_set_precision) works like an autocast scope: matrix
 * products and convolutions built while it is FP16 or BF16 get their
 * operands cast to that type (one cast node per value, reused by every
 * product that reads it) and accumulate in FP32 into an F32 result (a
 * convolution's bias stays F32, added to that result). Everything else -
 * elementwise ops, reductions, softmax, normalisation, losses - sees F32
 * values and computes in FP32. Parameters (master weights), their gradients and the optimizer
 * state stay F32 in the flat buffers: the cast's backward turns each
 * half-precision gradient back into F32 before it reaches them.
 *
 *     ct_graph_set_precision(g, CT_PRECISION_FP16);
 *     ... build the model and its loss ...
 *     ct_graph_backward_scaled(g, loss);          (seed = the loss scale)
 *     ct_program *p = ct_compile(g, &co);
 *     ct_scaler *s = ct_scaler_new(p, NULL);      (GradScaler's defaults)
 *     for (step...) {
 *         ct_program_run(p);
 *         ct_scaler_unscale(s);                   (grads /= scale; inf/NaN check)
 *         ... clip (skip it when ct_scaler_found_inf says so) ...
 *         ct_scaler_step(s, opt, lr);             (no update on inf/NaN)
 *         ct_scaler_update(s);                    (backoff or growth)
 *     }
 *
 * The scaler follows torch.cuda.amp.GradScaler: the scale starts at 2^16, is
 * multiplied by 2 after 2000 consecutive steps with finite gradients (unless
 * the result would overflow float), and halved on a step with an inf or NaN
 * gradient, which is skipped: weights and optimizer state are left as they
 * were. Its state (scale, found-inf flag, growth counter, skipped steps)
 * lives in the program's device memory; the backward seed, the unscale pass,
 * the optimizer update and the scale update all read it there, so the
 * decision to skip needs no copy to the host.
 */
#ifndef CTRAIN_AMP_H
#define CTRAIN_AMP_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/graph.h"
#include "ctrain/optim.h"
#include "ctrain/program.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the precision policy ------------------------------------------------ */

typedef enum ct_precision {
    CT_PRECISION_FP32 = 0, /* everything as built (no casts added) */
    CT_PRECISION_FP16,     /* matrix products and convolutions on F16 operands, F32 accumulation and result */
    CT_PRECISION_BF16,     /* the same with BF16 operands */
    CT_PRECISION_COUNT
} ct_precision;

/* "fp32", "fp16", "bf16" ("?" if invalid). */
const char *ct_precision_name(ct_precision p);
/* The inverse of ct_precision_name (CT_ERR_INVALID_ARG naming the choices). */
ct_status ct_precision_parse(const char *text, ct_precision *out);
/* The operand dtype of matrix products under p: F32, F16 or BF16. */
ct_dtype ct_precision_dtype(ct_precision p);

/* Sets the policy for the ops added to g from now on (an autocast scope:
 * set FP32 again to end it). Products already built keep their dtypes, and
 * the backward pass follows the dtypes of the forward nodes, whatever the
 * policy when ct_graph_backward runs. F64 operands are never cast (gradient
 * checks stay in F64). CT_ERR_INVALID_ARG for a NULL graph or unknown p. */
ct_status ct_graph_set_precision(ct_graph *g, ct_precision p);
ct_precision ct_graph_precision(const ct_graph *g);

/* Allows TF32 for the F32 matrix products added from now on: stored on each
 * product and passed to the backend, which may round the operands to TF32
 * on tensor cores (NVIDIA Ampere and later). The CPU ignores it. Off by
 * default, as torch.backends.cuda.matmul.allow_tf32. */
ct_status ct_graph_set_tf32(ct_graph *g, bool allow);
bool ct_graph_tf32(const ct_graph *g);

/* The name of the F32 scalar input that carries the loss scale. */
#define CT_LOSS_SCALE_INPUT "amp.loss_scale"

/* As ct_graph_backward, but the gradient of the loss is seeded with the
 * loss scale rather than 1, so every gradient comes out multiplied by it.
 * The scale is an F32 scalar input named CT_LOSS_SCALE_INPUT, which a
 * ct_scaler binds to its state in device memory: it changes from step to
 * step without recompiling. A program of such a graph must have a scaler
 * attached (or that input set by hand), or its gradients are all zero. */
ct_status ct_graph_backward_scaled(ct_graph *g, ct_node loss);

/* ---- the loss scaler ------------------------------------------------------ */

typedef enum ct_loss_scale_mode {
    CT_LOSS_SCALE_AUTO = 0, /* dynamic for FP16, none otherwise (the trainer's choice) */
    CT_LOSS_SCALE_NONE,     /* no scaling, no inf/NaN check */
    CT_LOSS_SCALE_STATIC,   /* a fixed scale (init_scale); steps with inf/NaN are still skipped */
    CT_LOSS_SCALE_DYNAMIC   /* GradScaler's dynamic scale */
} ct_loss_scale_mode;

/* Options. A zero field means GradScaler's default. */
typedef struct ct_scaler_opts {
    ct_loss_scale_mode mode;  /* ct_scaler_new takes STATIC or DYNAMIC (AUTO: DYNAMIC) */
    double init_scale;        /* 0: 65536 (2^16); finite, > 0, representable as a float */
    double growth_factor;     /* 0: 2.0; > 1 */
    double backoff_factor;    /* 0: 0.5; in (0, 1) */
    int64_t growth_interval;  /* 0: 2000; 1 .. INT32_MAX */
} ct_scaler_opts;

/* "auto", "none", "static", "dynamic" ("?" if invalid). */
const char *ct_loss_scale_mode_name(ct_loss_scale_mode m);

/* The state a checkpoint carries. */
typedef struct ct_scaler_state {
    double scale;             /* the current loss scale (a float value) */
    int64_t growth_tracker;   /* consecutive finite steps since the scale last changed */
    int64_t skipped_steps;    /* steps skipped for inf/NaN gradients so far */
} ct_scaler_state;

typedef struct ct_scaler ct_scaler;

/* A scaler for the gradients of p, whose graph was differentiated with
 * ct_graph_backward_scaled; its state is allocated on p's device and p's
 * loss-scale input bound to it. o may be NULL (dynamic, defaults). p must
 * outlive the scaler. NULL on error: invalid options (CT_ERR_INVALID_ARG,
 * naming the field), p without a CT_LOSS_SCALE_INPUT input (CT_ERR_STATE),
 * a backend without the mixed-precision hooks (CT_ERR_UNSUPPORTED), OOM. */
ct_scaler *ct_scaler_new(ct_program *p, const ct_scaler_opts *o);
void ct_scaler_free(ct_scaler *s);
/* Binds the loss-scale input of another program that writes the same
 * gradients (one compiled with share_params = p, e.g. for a short last
 * batch) to this scaler's state. */
ct_status ct_scaler_attach(ct_scaler *s, ct_program *q);
/* The options in use, defaults filled in. */
const ct_scaler_opts *ct_scaler_options(const ct_scaler *s);

/* One fused pass over p's flat gradient buffer (after the gradients of the
 * step are complete: accumulated, all-reduced): every gradient is divided
 * by the scale, and the found-inf flag set if any was inf or NaN. */
ct_status ct_scaler_unscale(ct_scaler *s);
/* Reads the flag of the last unscale (a copy from the device). */
ct_status ct_scaler_found_inf(const ct_scaler *s, bool *found);
/* The optimizer step with learning rate lr, gated on the device by the
 * flag: on inf/NaN nothing is written. The optimizer's step count then
 * counts attempted steps; the update uses t - skipped_steps, which is the
 * number of steps really taken (PyTorch's). opt must update s's program. */
ct_status ct_scaler_step(ct_scaler *s, ct_optimizer *opt, double lr);
/* The scale update, after the step: on inf/NaN the scale is multiplied by
 * backoff_factor, the growth counter reset and the step counted as skipped;
 * otherwise the counter grows, and when it reaches growth_interval the scale
 * is multiplied by growth_factor (unless that overflows float) and the
 * counter reset. A static scaler only counts skipped steps. */
ct_status ct_scaler_update(ct_scaler *s);

/* Host copies of the state (for checkpoints and metrics). */
ct_status ct_scaler_get_state(const ct_scaler *s, ct_scaler_state *out);
/* Replaces the state, e.g. on resume. scale must be finite, > 0 and a
 * float; the counters >= 0 (growth_tracker < growth_interval). */
ct_status ct_scaler_set_state(ct_scaler *s, const ct_scaler_state *in);

#ifdef __cplusplus
}
#endif
#endif
