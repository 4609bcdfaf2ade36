/* Learning-rate schedules in closed form, and ReduceLROnPlateau's state.
 *
 * PyTorch's schedulers are written as recurrences (each step multiplies the
 * previous rate); their closed forms give the same values without history,
 * so resuming at any step needs nothing but the step. Each formula below is
 * the one PyTorch computes, including its quirks (CyclicLR's cycle and
 * position arithmetic, OneCycleLR's phase boundaries at pct_start * total - 1
 * and total - 1).
 */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "ctrain/schedule.h"

#define PI 3.14159265358979323846

static const char *const kind_names[CT_SCHED_KIND_COUNT] = {
    "constant", "step", "multistep", "exponential", "cosine", "cyclic", "one_cycle", "plateau"};

const char *ct_schedule_kind_name(ct_schedule_kind kind) {
    return kind >= 0 && kind < CT_SCHED_KIND_COUNT ? kind_names[kind] : "?";
}

ct_status ct_schedule_kind_parse(const char *text, ct_schedule_kind *out) {
    for (int k = 0; text && k < CT_SCHED_KIND_COUNT; k++)
        if (strcmp(text, kind_names[k]) == 0) {
            if (out) *out = (ct_schedule_kind)k;
            return CT_OK;
        }
    return ct_error(CT_ERR_NOT_FOUND,
                    "unknown schedule '%s' (constant, step, multistep, exponential, cosine, cyclic, one_cycle, "
                    "plateau)", text ? text : "(null)");
}

/* `!(x >= 0)` so that NaN fails too. */
static ct_status need_nonneg(double x, const char *field) {
    if (!(x >= 0) || isinf(x))
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: %s must be finite and >= 0, got %g", field, x);
    return CT_OK;
}

static ct_status need_positive(double x, const char *field) {
    if (!(x > 0) || isinf(x))
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: %s must be finite and > 0, got %g", field, x);
    return CT_OK;
}

static ct_status need_count(int64_t x, const char *field, int64_t min) {
    if (x < min)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: %s must be >= %lld, got %lld", field, (long long)min,
                        (long long)x);
    return CT_OK;
}

/* multistep: gamma (default 0.1) and the milestones. */
static ct_status resolve_multistep(ct_schedule *s) {
    ct_status st;
    if (s->gamma == 0) s->gamma = 0.1;
    if ((st = need_positive(s->gamma, "gamma"))) return st;
    if (s->n_milestones < 0 || s->n_milestones > CT_SCHED_MAX_MILESTONES)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: n_milestones must be in [0, %d], got %d",
                        CT_SCHED_MAX_MILESTONES, s->n_milestones);
    for (int i = 0; i < s->n_milestones; i++)
        if (s->milestones[i] < 0)
            return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: milestones[%d] must be >= 0, got %lld", i,
                            (long long)s->milestones[i]);
    return CT_OK;
}

/* cyclic: the rise and fall lengths (default 2000 steps each), max_lr,
 * gamma and mode. */
static ct_status resolve_cyclic(ct_schedule *s) {
    ct_status st;
    if (s->step_size_up == 0) s->step_size_up = 2000;
    if (s->step_size_down == 0) s->step_size_down = s->step_size_up;
    if (s->gamma == 0) s->gamma = 1.0;
    if ((st = need_positive(s->max_lr, "max_lr (cyclic: required)")) ||
        (st = need_count(s->step_size_up, "step_size_up", 1)) ||
        (st = need_count(s->step_size_down, "step_size_down", 1)) || (st = need_positive(s->gamma, "gamma")))
        return st;
    if (s->mode < CT_CYCLIC_TRIANGULAR || s->mode > CT_CYCLIC_EXP_RANGE)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: unknown cyclic mode %d", (int)s->mode);
    return CT_OK;
}

/* one_cycle: PyTorch's defaults, and two phases of positive length. */
static ct_status resolve_one_cycle(ct_schedule *s) {
    ct_status st;
    if (s->max_lr == 0) s->max_lr = s->lr;
    if (s->pct_start == 0) s->pct_start = 0.3;
    if (s->div_factor == 0) s->div_factor = 25;
    if (s->final_div_factor == 0) s->final_div_factor = 1e4;
    if ((st = need_positive(s->max_lr, "max_lr (one_cycle: or lr)")) ||
        (st = need_count(s->total_steps, "total_steps", 2)) ||
        (st = need_positive(s->div_factor, "div_factor")) ||
        (st = need_positive(s->final_div_factor, "final_div_factor")))
        return st;
    if (s->anneal != CT_ANNEAL_COS && s->anneal != CT_ANNEAL_LINEAR)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: unknown anneal strategy %d", (int)s->anneal);
    /* Both phases need a positive length, or PyTorch's pct divides by
     * zero: the rise ends at pct_start * total - 1 > 0, the fall at
     * total - 1 beyond that. */
    if (!(s->pct_start * (double)s->total_steps - 1 > 0 && s->pct_start < 1))
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_schedule: one_cycle needs pct_start * total_steps > 1 and pct_start < 1 "
                        "(pct_start %g, total_steps %lld)", s->pct_start, (long long)s->total_steps);
    return CT_OK;
}

/* plateau: PyTorch's ReduceLROnPlateau defaults and modes. */
static ct_status resolve_plateau(ct_schedule *s) {
    ct_status st;
    if (s->factor == 0) s->factor = 0.1;
    if (s->threshold == 0) s->threshold = 1e-4;
    if (s->plateau_eps == 0) s->plateau_eps = 1e-8;
    if (!(s->factor > 0 && s->factor < 1))
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: factor must be in (0, 1), got %g", s->factor);
    if ((st = need_count(s->patience, "patience", 0)) || (st = need_count(s->cooldown, "cooldown", 0)) ||
        (st = need_nonneg(s->threshold, "threshold")) || (st = need_nonneg(s->min_lr, "min_lr")) ||
        (st = need_nonneg(s->plateau_eps, "plateau_eps")))
        return st;
    if (s->plateau_mode != CT_PLATEAU_MIN && s->plateau_mode != CT_PLATEAU_MAX)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: unknown plateau mode %d", (int)s->plateau_mode);
    if (s->threshold_mode != CT_THRESHOLD_REL && s->threshold_mode != CT_THRESHOLD_ABS)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: unknown threshold mode %d", (int)s->threshold_mode);
    return CT_OK;
}

/* Checks s and writes it with every zero-means-default field filled in. */
static ct_status resolve(const ct_schedule *in, ct_schedule *s) {
    if (!in) return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: schedule is NULL");
    *s = *in;
    if (s->kind < 0 || s->kind >= CT_SCHED_KIND_COUNT)
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: unknown kind %d", (int)s->kind);
    ct_status st;
    if ((st = need_nonneg(s->lr, "lr"))) return st;
    if ((st = need_count(s->warmup_steps, "warmup_steps", 0))) return st;
    if (!(s->warmup_start_factor >= 0 && s->warmup_start_factor <= 1))
        return ct_error(CT_ERR_INVALID_ARG, "ct_schedule: warmup_start_factor must be in [0, 1], got %g",
                        s->warmup_start_factor);
    switch (s->kind) {
    case CT_SCHED_CONSTANT: break;
    case CT_SCHED_STEP:
        if (s->gamma == 0) s->gamma = 0.1;
        if ((st = need_count(s->step_size, "step_size", 1)) || (st = need_positive(s->gamma, "gamma"))) return st;
        break;
    case CT_SCHED_MULTISTEP: return resolve_multistep(s);
    case CT_SCHED_EXPONENTIAL:
        if ((st = need_positive(s->gamma, "gamma (exponential: required)"))) return st;
        break;
    case CT_SCHED_COSINE:
        if ((st = need_count(s->T_max, "T_max", 1)) || (st = need_nonneg(s->eta_min, "eta_min"))) return st;
        break;
    case CT_SCHED_CYCLIC: return resolve_cyclic(s);
    case CT_SCHED_ONE_CYCLE: return resolve_one_cycle(s);
    case CT_SCHED_PLATEAU: return resolve_plateau(s);
    default: break;
    }
    return CT_OK;
}

ct_status ct_schedule_check(const ct_schedule *s) {
    ct_schedule r;
    return resolve(s, &r);
}

static double cyclic_lr(const ct_schedule *s, int64_t step) {
    double total = (double)(s->step_size_up + s->step_size_down);
    double ratio = (double)s->step_size_up / total;
    double cycle = floor(1 + (double)step / total);
    double x = 1.0 + (double)step / total - cycle; /* position in the cycle, [0, 1) */
    double scale = x <= ratio ? x / ratio : (x - 1) / (ratio - 1);
    double height = (s->max_lr - s->lr) * scale;
    switch (s->mode) {
    case CT_CYCLIC_TRIANGULAR2: return s->lr + height / pow(2.0, cycle - 1);
    case CT_CYCLIC_EXP_RANGE: return s->lr + height * pow(s->gamma, (double)step);
    default: return s->lr + height;
    }
}

static double anneal(ct_anneal how, double start, double end, double pct) {
    if (how == CT_ANNEAL_LINEAR) return (end - start) * pct + start;
    return end + (start - end) / 2.0 * (cos(PI * pct) + 1);
}

static double one_cycle_lr(const ct_schedule *s, int64_t step) {
    double initial = s->max_lr / s->div_factor, final = initial / s->final_div_factor;
    double peak_step = s->pct_start * (double)s->total_steps - 1, end_step = (double)(s->total_steps - 1);
    double x = (double)step;
    if (x >= end_step) return final;
    if (x <= peak_step) return anneal(s->anneal, initial, s->max_lr, x / peak_step);
    return anneal(s->anneal, s->max_lr, final, (x - peak_step) / (end_step - peak_step));
}

/* The wrapped schedule, at its own step (warmup excluded). */
static double base_lr(const ct_schedule *s, int64_t step) {
    switch (s->kind) {
    case CT_SCHED_STEP: return s->lr * pow(s->gamma, (double)(step / s->step_size));
    case CT_SCHED_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < s->n_milestones; i++) passed += s->milestones[i] <= step;
        return s->lr * pow(s->gamma, passed);
    }
    case CT_SCHED_EXPONENTIAL: return s->lr * pow(s->gamma, (double)step);
    case CT_SCHED_COSINE:
        return s->eta_min + (s->lr - s->eta_min) * (1 + cos(PI * (double)step / (double)s->T_max)) / 2;
    case CT_SCHED_CYCLIC: return cyclic_lr(s, step);
    case CT_SCHED_ONE_CYCLE: return one_cycle_lr(s, step);
    default: return s->lr; /* CONSTANT, and PLATEAU's starting rate */
    }
}

double ct_schedule_lr(const ct_schedule *s, int64_t step) {
    ct_schedule r;
    if (resolve(s, &r) != CT_OK) return NAN;
    if (step < 0) return ct_error(CT_ERR_INVALID_ARG, "ct_schedule_lr: step must be >= 0, got %lld",
                                  (long long)step), NAN;
    if (step < r.warmup_steps) {
        double f = r.warmup_start_factor;
        return base_lr(&r, 0) * (f + (1 - f) * (double)(step + 1) / (double)r.warmup_steps);
    }
    return base_lr(&r, step - r.warmup_steps);
}

ct_status ct_plateau_init(ct_plateau *st, const ct_schedule *s) {
    if (!st) return ct_error(CT_ERR_INVALID_ARG, "ct_plateau_init: state is NULL");
    ct_schedule r;
    ct_status rc = resolve(s, &r);
    if (rc != CT_OK) return rc;
    if (r.kind != CT_SCHED_PLATEAU)
        return ct_error(CT_ERR_INVALID_ARG, "ct_plateau_init: the schedule is %s, not plateau", kind_names[r.kind]);
    *st = (ct_plateau){.s = r,
                       .lr = r.lr,
                       .best = r.plateau_mode == CT_PLATEAU_MIN ? INFINITY : -INFINITY};
    return CT_OK;
}

/* PyTorch's is_better; comparisons with NaN are false, so a NaN metric is
 * never an improvement. */
static bool is_better(const ct_schedule *s, double a, double best) {
    bool rel = s->threshold_mode == CT_THRESHOLD_REL;
    if (s->plateau_mode == CT_PLATEAU_MIN) return rel ? a < best * (1 - s->threshold) : a < best - s->threshold;
    return rel ? a > best * (s->threshold + 1) : a > best + s->threshold;
}

double ct_plateau_observe(ct_plateau *st, double metric) {
    if (!st) return ct_error(CT_ERR_INVALID_ARG, "ct_plateau_observe: state is NULL"), NAN;
    const ct_schedule *s = &st->s;
    st->epochs++;
    if (is_better(s, metric, st->best)) {
        st->best = metric;
        st->num_bad_epochs = 0;
    } else {
        st->num_bad_epochs++;
    }
    if (st->cooldown_counter > 0) {
        st->cooldown_counter--;
        st->num_bad_epochs = 0;
    }
    if (st->num_bad_epochs > s->patience) {
        double reduced = fmax(st->lr * s->factor, s->min_lr);
        if (st->lr - reduced > s->plateau_eps) st->lr = reduced;
        st->cooldown_counter = s->cooldown;
        st->num_bad_epochs = 0;
    }
    return st->lr;
}
