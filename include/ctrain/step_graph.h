/* A fused training step: forward, backward, clipping and the optimizer
 * update issued as one unit, captured once as a CUDA Graph and replayed.
 *
 * On a GPU, launching a few hundred small kernels one by one costs more
 * host time than they take to run on a small model. A step graph issues the
 * whole step - the program's run, the loss scaler's unscale (mixed
 * precision), clip_grad_norm_ / clip_grad_value_, the optimizer update, the
 * scale update - once under CUDA stream capture and then replays it with
 * one launch per step. The values that change from step to step (the
 * dropout step counter, the optimizer's t, the learning rate) live in a
 * small struct in device memory that the kernels read; the host writes them
 * with one asynchronous upload before each launch. Clipping computes the
 * norm and its factor on the device, and the loss is summed on the device:
 * nothing reaches the host unless asked, so a step neither allocates nor
 * waits for the GPU.
 *
 *     ct_step_graph *sg = ct_step_graph_new(p, opt, &(ct_step_graph_opts){
 *                                               .clip_norm = 1.0, .loss = &loss});
 *     for (step...) {
 *         ct_program_set_input(p, "x", ...);  ct_program_set_input(p, "y", ...);
 *         ct_step_graph_run(sg, lr);
 *         if (logging) ct_step_graph_loss(sg, &last, &sum);   (waits for the GPU)
 *     }
 *     ct_step_graph_free(sg);
 *
 * Inputs are fed as usual (their buffers are the ones captured). A graph is
 * captured again when something it baked in changes: an input bound to
 * other memory (ct_program_bind_input, a scaler attached), the program's
 * training flag. On the CPU, on a backend that cannot capture, with
 * no_capture, or when the program has a gradient-ready hook (data-parallel
 * reduction, which must run on the host during backward), the same calls
 * are issued one by one each step, with the same results.
 *
 * Semantics differ from the separate calls in one place: a non-finite
 * gradient norm is not an error (nothing reaches the host to raise it);
 * the gradients are then left unclipped and ct_step_graph_grad_norm reports
 * NaN. A diverging run shows up in the loss (ct_step_graph_loss).
 */
#ifndef CTRAIN_STEP_GRAPH_H
#define CTRAIN_STEP_GRAPH_H

#include <stdbool.h>

#include "ctrain/amp.h"
#include "ctrain/optim.h"
#include "ctrain/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_step_graph_opts {
    double clip_norm;     /* > 0: clip_grad_norm_ to this (on the device) */
    double clip_value;    /* > 0: clip_grad_value_ to this */
    ct_scaler *scaler;    /* NULL, or the loss scaler of the program (FP16) */
    const ct_node *loss;  /* NULL, or a scalar output of the program whose value each step adds to
                             a sum on the device (ct_step_graph_loss) */
    double loss_weight;   /* what each loss is multiplied by before it is added; 0: 1 */
    bool no_capture;      /* issue the kernels one by one every step: debugging, comparisons */
} ct_step_graph_opts;

typedef struct ct_step_graph ct_step_graph;

/* A step graph for program p (compiled with grads) and optimizer opt (made
 * for p; or for a program whose parameters p shares). Both must outlive it;
 * o may be NULL (no clipping, no scaler, no loss). Nothing is captured
 * until the first ct_step_graph_run. NULL on error: bad options
 * (CT_ERR_INVALID_ARG), a scaler or optimizer of other gradients, no
 * device memory. */
ct_step_graph *ct_step_graph_new(ct_program *p, ct_optimizer *opt, const ct_step_graph_opts *o);
/* Frees the graph and its device memory; NULL is ignored. */
void ct_step_graph_free(ct_step_graph *sg);

/* One training step with learning rate lr on the inputs set in p: the
 * program's run, [unscale], [clipping], the update, [scale update], [the
 * loss added to the sum]; p's step counter and the optimizer's count advance
 * by one. The first call runs uncaptured (first-use setup of the CUDA
 * runtime and its libraries stays out of the graph), the second (and the
 * first after an invalidation) captures, the others replay. Returns once
 * the work is queued. Errors: lr not finite or < 0 (CT_ERR_INVALID_ARG), a
 * failing kernel, capture or launch (the step is then not counted). */
ct_status ct_step_graph_run(ct_step_graph *sg, double lr);

/* The loss of the last step (times loss_weight) and the sum of those since
 * the last ct_step_graph_clear_loss (or the start), read from the device
 * (waits for the queued steps); either pointer may be NULL. NaN or inf when
 * a loss was. CT_ERR_STATE without opts.loss. */
ct_status ct_step_graph_loss(const ct_step_graph *sg, double *last, double *sum);
/* Sets the device's loss sum to zero (queued, no wait). */
ct_status ct_step_graph_clear_loss(ct_step_graph *sg);
/* The total gradient norm of the last step, before clipping (waits for the
 * GPU); NaN when an element was not finite. CT_ERR_STATE without clip_norm
 * or before the first step. */
ct_status ct_step_graph_grad_norm(const ct_step_graph *sg, double *norm);

/* Whether steps are replayed from a captured graph (false on the CPU, with
 * no_capture, or with a gradient-ready hook), and how many times the step
 * has been captured so far (1 after the second step; more after
 * invalidations). */
bool ct_step_graph_captures(const ct_step_graph *sg);
int ct_step_graph_capture_count(const ct_step_graph *sg);

#ifdef __cplusplus
}
#endif
#endif
