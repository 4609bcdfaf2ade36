/* Optimizers, gradient clipping and gradient accumulation.
 *
 * An optimizer updates a compiled program's flat parameter buffer from its
 * flat gradient buffer in one fused pass per step (one backend call), with
 * its state (momentum, Adam moments...) in buffers of the same layout on the
 * same device. The algorithms are PyTorch's torch.optim.SGD, Adagrad,
 * RMSprop, Adam and AdamW exactly as their documentation writes them, so a
 * model and its hyper-parameters move between the two unchanged.
 *
 *     ct_optim_opts o = {.kind = CT_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.01};
 *     ct_optimizer *opt = ct_optimizer_new(g, p, &o);
 *     for (step...) {
 *         ct_program_run(p);                       (forward + backward)
 *         ct_clip_grad_norm(p, 1.0, &norm);        (optional)
 *         ct_optimizer_step(opt, ct_schedule_lr(&sched, step));
 *     }
 *     ct_optimizer_free(opt);
 *
 * Weight decay and L1 apply per parameter: by default every parameter with
 * two or more dimensions is decayed, and 1-d (and 0-d) ones - biases and the
 * weights of normalisation layers - are not, as is usual practice (in
 * PyTorch it takes two parameter groups); decay_bias_and_norm decays them
 * too. Parameters can be frozen by name prefix: a frozen parameter is not
 * updated and its optimizer state is left as it is.
 *
 * The step count t is one for the whole optimizer, where PyTorch keeps one
 * per parameter. The two agree unless a parameter is frozen and unfrozen
 * again: it then resumes with the optimizer's t (Adam's bias corrections, and
 * SGD's first-step buffer initialisation, are those of the current t).
 */
#ifndef CTRAIN_OPTIM_H
#define CTRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrain/graph.h"
#include "ctrain/program.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_optim_kind {
    CT_OPTIM_SGD = 0,
    CT_OPTIM_ADAGRAD,
    CT_OPTIM_RMSPROP,
    CT_OPTIM_ADAM,
    CT_OPTIM_ADAMW,
    CT_OPTIM_KIND_COUNT
} ct_optim_kind;

/* Options. A zero field means PyTorch's default where PyTorch has a
 * non-zero one (noted on each field); zero otherwise means zero. Fields the
 * chosen algorithm does not use are ignored, except the switches nesterov,
 * amsgrad and centered, which are rejected on an algorithm without them. */
typedef struct ct_optim_opts {
    ct_optim_kind kind;
    /* The base learning rate, for a schedule to start from (ct_optimizer_step
     * takes the rate of each step). 0: PyTorch's default, 1e-3 for SGD, Adam
     * and AdamW, 1e-2 for Adagrad and RMSprop. */
    double lr;
    /* SGD: momentum factor, dampening, Nesterov momentum (needs momentum > 0
     * and dampening 0). RMSprop: momentum factor. */
    double momentum;
    double dampening;
    bool nesterov;
    /* Adam, AdamW: {beta1, beta2}, each in [0, 1). {0, 0}: {0.9, 0.999};
     * any other pair is taken as given, so beta1 = 0 is {0, 0.999}. */
    double betas[2];
    /* Adagrad, RMSprop, Adam, AdamW: added to the denominator. 0: 1e-10 for
     * Adagrad, 1e-8 for the others. */
    double eps;
    bool amsgrad;            /* Adam, AdamW: keep the maximum of exp_avg_sq */
    /* RMSprop: smoothing constant in [0, 1]. 0: 0.99. */
    double alpha;
    bool centered;           /* RMSprop: normalise by the estimated variance */
    /* Adagrad: the step size at step t is lr / (1 + (t - 1) * lr_decay);
     * the sum of squares starts at initial_accumulator_value. */
    double lr_decay;
    double initial_accumulator_value;
    /* L2 penalty: added to the gradient (weight_decay * w) for SGD, Adagrad,
     * RMSprop and Adam; decoupled for AdamW (w *= 1 - lr * weight_decay
     * before the Adam update). Zero means none for every algorithm, AdamW
     * included (PyTorch's AdamW defaults to 0.01: set it). */
    double weight_decay;
    /* L1 penalty: l1 * sign(w) is added to the gradient (sign(0) = 0), for
     * every algorithm, AdamW included, on the decayed parameters. Not in
     * PyTorch; 0 means none. */
    double l1;
    /* Decay (weight_decay and l1) 1-d parameters too; see the top. */
    bool decay_bias_and_norm;
    /* Ascend instead of descend: the gradient is negated before anything
     * else is done with it, as PyTorch's implementations do. (SGD's
     * documented pseudo-code instead flips the sign of the final step; the
     * two differ only where weight decay or L1 applies.) */
    bool maximize;
} ct_optim_opts;

typedef struct ct_optimizer ct_optimizer;

/* "sgd", "adagrad", "rmsprop", "adam", "adamw" ("?" if invalid). */
const char *ct_optim_kind_name(ct_optim_kind kind);
/* The inverse of ct_optim_kind_name (CT_ERR_NOT_FOUND for other text). */
ct_status ct_optim_kind_parse(const char *text, ct_optim_kind *out);

/* An optimizer for the parameters of p, which was compiled from g (the
 * graph gives the names and shapes; both must outlive the optimizer) with
 * .grads = true (otherwise the gradients it reads stay zero). State
 * buffers are allocated on p's device in the flat layout and dtype of the
 * parameters, only those the algorithm needs, zeroed (Adagrad's sum: the
 * initial accumulator value). NULL on error: invalid options
 * (CT_ERR_INVALID_ARG, naming the field), g not p's graph, a backend without
 * an optimizer (CT_ERR_UNSUPPORTED), parameters that are not F32 or F64
 * (CT_ERR_DTYPE), out of memory. */
ct_optimizer *ct_optimizer_new(ct_graph *g, ct_program *p, const ct_optim_opts *o);
/* Frees the optimizer and its state buffers (not the program or graph);
 * NULL is ignored. */
void ct_optimizer_free(ct_optimizer *opt);

/* The options in use, with every default filled in (so ->lr is the base
 * learning rate). NULL if opt is NULL. */
const ct_optim_opts *ct_optimizer_opts(const ct_optimizer *opt);

/* Freezes (or unfreezes) every parameter whose name starts with prefix:
 * "fc1." covers fc1.weight and fc1.bias, "" every parameter.
 * CT_ERR_NOT_FOUND if no parameter matches. */
ct_status ct_optimizer_freeze(ct_optimizer *opt, const char *name_prefix, bool frozen);
/* Whether the parameter of that exact name is frozen (false if none). */
bool ct_optimizer_is_frozen(const ct_optimizer *opt, const char *name);
/* Zeroes the gradients of the frozen parameters. PyTorch's frozen
 * parameters have no gradient, so they count nowhere; here the program
 * still computes them, and ct_clip_grad_norm would include them unless this
 * is called first. */
ct_status ct_optimizer_zero_frozen_grads(ct_optimizer *opt);

/* One update from the program's current gradients with learning rate lr
 * (finite, >= 0): increments the step count, then updates every parameter
 * that is not frozen. On error the step count is left as it was. */
ct_status ct_optimizer_step(ct_optimizer *opt, double lr);

/* Steps taken (t of the algorithms: 1 during the first step). Setting it
 * (>= 0) is for resuming from a checkpoint along with the state buffers. */
int64_t ct_optimizer_step_count(const ct_optimizer *opt);
ct_status ct_optimizer_set_step_count(ct_optimizer *opt, int64_t t);

/* The state buffers, for checkpoints. Names are PyTorch's state keys:
 * SGD "momentum_buffer" (momentum > 0 only); Adagrad "sum"; RMSprop
 * "square_avg", "momentum_buffer" (momentum > 0), "grad_avg" (centered);
 * Adam and AdamW "exp_avg", "exp_avg_sq", "max_exp_avg_sq" (amsgrad). Each
 * has ct_program_param_numel(p) elements of ct_program_param_dtype(p) in the
 * flat parameter layout. */
int ct_optimizer_num_states(const ct_optimizer *opt);
/* State i (0 <= i < num_states): its name, its device pointer (a host
 * pointer on the CPU) and its length in elements. Any output may be NULL. */
ct_status ct_optimizer_state(ct_optimizer *opt, int i, const char **name, void **device_ptr, size_t *numel);
/* Host copies of a state buffer by name; bytes must be numel * dtype size.
 * Errors: no state of that name (CT_ERR_NOT_FOUND), another size
 * (CT_ERR_SHAPE). */
ct_status ct_optimizer_read_state(const ct_optimizer *opt, const char *name, void *dst, size_t bytes);
ct_status ct_optimizer_write_state(ct_optimizer *opt, const char *name, const void *src, size_t bytes);

/* ---- clipping and scaling of a program's gradients ---------------------- */

/* PyTorch's clip_grad_norm_ with the L2 norm over every gradient of p: the
 * total norm T is computed (in double); if max_norm / (T + 1e-6) < 1 every
 * gradient is multiplied by that factor. *total_norm (may be NULL) gets T,
 * also on error. A non-finite T is CT_ERR_NUMERIC and leaves the gradients
 * as they are (a step should then be skipped). max_norm must be >= 0. */
ct_status ct_clip_grad_norm(ct_program *p, double max_norm, double *total_norm);
/* PyTorch's clip_grad_value_: every gradient clamped to [-clip, clip]
 * (clip > 0). NaN stays NaN. */
ct_status ct_clip_grad_value(ct_program *p, double clip);
/* Every gradient multiplied by s (finite). */
ct_status ct_scale_grads(ct_program *p, double s);

/* ---- gradient accumulation ----------------------------------------------
 * A run overwrites the program's gradients, so micro-batches are summed in a
 * separate flat buffer on the same device:
 *
 *     for (k = 0; k < n_micro; k++) { set inputs; ct_program_run(p); ct_grad_accum_add(acc); }
 *     ct_grad_accum_finish(acc);      (grads = mean of the micro-batch grads)
 *     ct_optimizer_step(opt, lr);
 *
 * With a mean loss over equal micro-batches the result is the gradient of
 * the mean loss over their union. */
typedef struct ct_grad_accum ct_grad_accum;

ct_grad_accum *ct_grad_accum_new(ct_program *p);  /* NULL on error */
/* Frees the sum buffer; NULL is ignored. */
void ct_grad_accum_free(ct_grad_accum *acc);
/* Adds the program's current gradients to the sum. */
ct_status ct_grad_accum_add(ct_grad_accum *acc);
/* Writes sum / count into the program's gradients and starts a new sum.
 * CT_ERR_STATE if nothing was added. */
ct_status ct_grad_accum_finish(ct_grad_accum *acc);
/* Micro-batches added since the last finish (or reset). */
int ct_grad_accum_count(const ct_grad_accum *acc);
/* Drops the sum (e.g. after a skipped step). */
void ct_grad_accum_reset(ct_grad_accum *acc);

#ifdef __cplusplus
}
#endif
#endif
