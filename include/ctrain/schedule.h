/* Learning-rate schedules.
 *
 * A schedule is a plain options struct; ct_schedule_lr(s, step) gives the
 * learning rate of a step in closed form, so nothing has to be saved in a
 * checkpoint but the step itself, and a resumed run continues exactly. The
 * forms are those PyTorch's schedulers (StepLR, MultiStepLR, ExponentialLR,
 * CosineAnnealingLR, CyclicLR, OneCycleLR) produce when stepped that many
 * times. ReduceLROnPlateau depends on the metrics seen, so it is a small
 * state struct of its own (ct_plateau), plain data that a checkpoint can
 * store as it is.
 *
 *     ct_schedule s = {.kind = CT_SCHED_COSINE, .lr = 0.1, .T_max = 1000,
 *                      .warmup_steps = 100};
 *     for (int64_t step = 0; ...; step++)
 *         ct_optimizer_step(opt, ct_schedule_lr(&s, step));
 *
 * The unit of `step` is the caller's: optimizer steps or epochs (the trainer
 * passes whichever the user chose, and every count below - step_size,
 * milestones, T_max, total_steps, warmup_steps - is in that unit). Steps
 * count from 0, like PyTorch's last_epoch after construction.
 *
 * Zero-valued fields mean PyTorch's default where PyTorch has one; each
 * field says which.
 */
#ifndef CTRAIN_SCHEDULE_H
#define CTRAIN_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_schedule_kind {
    CT_SCHED_CONSTANT = 0, /* lr */
    CT_SCHED_STEP,         /* lr * gamma^floor(step / step_size) */
    CT_SCHED_MULTISTEP,    /* lr * gamma^(number of milestones <= step) */
    CT_SCHED_EXPONENTIAL,  /* lr * gamma^step */
    CT_SCHED_COSINE,       /* eta_min + (lr - eta_min) (1 + cos(pi step / T_max)) / 2 */
    CT_SCHED_CYCLIC,       /* CyclicLR between lr and max_lr */
    CT_SCHED_ONE_CYCLE,    /* OneCycleLR (two phases) peaking at max_lr */
    CT_SCHED_PLATEAU,      /* ReduceLROnPlateau: see ct_plateau */
    CT_SCHED_KIND_COUNT
} ct_schedule_kind;

typedef enum ct_cyclic_mode {
    CT_CYCLIC_TRIANGULAR = 0, /* constant amplitude */
    CT_CYCLIC_TRIANGULAR2,    /* amplitude halved every cycle */
    CT_CYCLIC_EXP_RANGE       /* amplitude times gamma^step */
} ct_cyclic_mode;

typedef enum ct_anneal { CT_ANNEAL_COS = 0, CT_ANNEAL_LINEAR } ct_anneal;
typedef enum ct_plateau_mode { CT_PLATEAU_MIN = 0, CT_PLATEAU_MAX } ct_plateau_mode;
typedef enum ct_threshold_mode { CT_THRESHOLD_REL = 0, CT_THRESHOLD_ABS } ct_threshold_mode;

#define CT_SCHED_MAX_MILESTONES 16

typedef struct ct_schedule {
    ct_schedule_kind kind;
    /* The base learning rate (> 0, or 0 for a zero rate); CYCLIC's lower
     * bound (PyTorch's base_lr). Unused by ONE_CYCLE unless max_lr is 0. */
    double lr;

    /* STEP: period (> 0). STEP, MULTISTEP: factor, 0 means 0.1;
     * EXPONENTIAL: factor (> 0, required); CYCLIC exp_range: 0 means 1. */
    int64_t step_size;
    double gamma;
    /* MULTISTEP: up to 16 steps (>= 0, in any order; a repeated one
     * applies gamma twice, as in PyTorch). */
    int64_t milestones[CT_SCHED_MAX_MILESTONES];
    int n_milestones;

    /* COSINE: half-period (> 0) and floor. Past T_max the rate rises again
     * along the same cosine, as PyTorch's CosineAnnealingLR does (no
     * restart). */
    int64_t T_max;
    double eta_min;

    /* CYCLIC: the other bound (> 0, required; normally above lr);
     * ONE_CYCLE: the peak (0 means lr). */
    double max_lr;
    /* CYCLIC: steps rising (0 means 2000) and falling (0 means
     * step_size_up); mode. Only the learning rate cycles; PyTorch's
     * cycle_momentum has no counterpart here. */
    int64_t step_size_up, step_size_down;
    ct_cyclic_mode mode;

    /* ONE_CYCLE (three_phase false): length (> 0, required); fraction of it
     * spent rising, 0 means 0.3; initial rate max_lr / div_factor (0 means
     * 25); final rate initial / final_div_factor (0 means 1e4); shape of both
     * phases (cos by default). Past total_steps - 1 the final rate holds
     * (PyTorch raises an error there). */
    int64_t total_steps;
    double pct_start, div_factor, final_div_factor;
    ct_anneal anneal;

    /* PLATEAU: minimise or maximise the metric; factor, 0 means 0.1 (must be
     * < 1); patience (epochs without improvement tolerated; taken as given,
     * so 0 reduces at the first bad epoch - PyTorch's default is 10);
     * threshold, 0 means 1e-4 (a practically-zero threshold: 1e-300);
     * cooldown epochs after a reduction; the lower bound; plateau_eps, 0
     * means 1e-8: a reduction smaller than this is skipped. */
    ct_plateau_mode plateau_mode;
    double factor;
    int patience;
    double threshold;
    ct_threshold_mode threshold_mode;
    int cooldown;
    double min_lr;
    double plateau_eps;

    /* Any kind: a linear warmup over the first warmup_steps steps, from
     * warmup_start_factor (in [0, 1], default 0) times the rate the schedule
     * starts at, to that rate:
     *     lr(step) = lr0 * (f + (1 - f) * (step + 1) / warmup_steps)
     * so the last warmup step runs at the full lr0 and, with f = 0, the
     * first at lr0 / warmup_steps rather than at zero (PyTorch's LinearLR
     * would spend its first step at f * lr0: this is that ramp one step
     * ahead). The wrapped schedule then starts at its own step 0. For
     * PLATEAU the ramp leads up to `lr` and the plateau takes over after. */
    int64_t warmup_steps;
    double warmup_start_factor;
} ct_schedule;

/* "constant", "step", "multistep", "exponential", "cosine", "cyclic",
 * "one_cycle", "plateau" ("?" if invalid), and the inverse. */
const char *ct_schedule_kind_name(ct_schedule_kind kind);
ct_status ct_schedule_kind_parse(const char *text, ct_schedule_kind *out);

/* CT_OK, or CT_ERR_INVALID_ARG naming the first bad field. */
ct_status ct_schedule_check(const ct_schedule *s);

/* The learning rate at step (>= 0). NaN, with the error set, for an invalid
 * schedule or a negative step. For PLATEAU: the warmup ramp, then `lr`
 * (the reduced rate comes from ct_plateau). */
double ct_schedule_lr(const ct_schedule *s, int64_t step);

/* ReduceLROnPlateau's state, with PyTorch's semantics: a metric better
 * than best by more than the threshold resets the count of bad epochs;
 * after more than `patience` bad epochs the rate is multiplied by factor
 * (never below min_lr), and the next `cooldown` epochs count no bad
 * epochs. Plain data: copy it into a checkpoint and back. */
typedef struct ct_plateau {
    ct_schedule s;           /* the options, defaults filled in */
    double lr;               /* the current learning rate */
    double best;             /* best metric so far (+inf / -inf before any) */
    int num_bad_epochs;
    int cooldown_counter;
    int64_t epochs;          /* metrics observed */
} ct_plateau;

/* Starts a plateau state from a PLATEAU schedule at rate s->lr. */
ct_status ct_plateau_init(ct_plateau *st, const ct_schedule *s);
/* Records one epoch's metric and returns the learning rate to use from now
 * on (NaN, with the error set, if st is NULL). A NaN metric counts as not
 * better. */
double ct_plateau_observe(ct_plateau *st, double metric);

#ifdef __cplusplus
}
#endif
#endif
