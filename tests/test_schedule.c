/* Learning-rate schedules: every kind against its closed form written out
 * here, the simple ones also against PyTorch's recursive (chainable) form
 * stepped one step at a time, the cyclic and one-cycle shapes at their
 * peaks and troughs, warmup in front of other schedules, and
 * ReduceLROnPlateau's patience, threshold, cooldown and floor on a metric
 * sequence whose outcome is worked out by hand.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include <ctrain/schedule.h>

#define PI 3.14159265358979323846

static void expect_lr(const ct_schedule *s, int64_t step, double want) {
    double got = ct_schedule_lr(s, step);
    cr_expect(fabs(got - want) <= 1e-13 * fmax(fabs(want), 1e-12), "%s step %lld: got %.17g, want %.17g",
              ct_schedule_kind_name(s->kind), (long long)step, got, want);
}

Test(schedule, constant) {
    ct_schedule s = {.kind = CT_SCHED_CONSTANT, .lr = 0.3};
    for (int64_t t = 0; t < 50; t += 7) expect_lr(&s, t, 0.3);
}

Test(schedule, step) {
    ct_schedule s = {.kind = CT_SCHED_STEP, .lr = 0.1, .step_size = 3, .gamma = 0.5};
    /* PyTorch's StepLR.get_lr, stepped: multiply by gamma when the epoch
     * is a positive multiple of step_size. */
    double lr = s.lr;
    for (int64_t t = 0; t < 20; t++) {
        if (t > 0 && t % 3 == 0) lr *= 0.5;
        expect_lr(&s, t, lr);
        expect_lr(&s, t, 0.1 * pow(0.5, (double)(t / 3)));
    }
    s.gamma = 0; /* PyTorch's default 0.1 */
    expect_lr(&s, 3, 0.1 * 0.1);
    expect_lr(&s, 6, 0.1 * 0.01);
}

Test(schedule, multistep) {
    /* Unordered, with a repeated milestone that applies gamma twice (as
     * PyTorch's Counter of milestones does). */
    ct_schedule s = {.kind = CT_SCHED_MULTISTEP, .lr = 1.0, .gamma = 0.5, .milestones = {9, 2, 5, 5},
                     .n_milestones = 4};
    static const double want[12] = {1, 1, 0.5, 0.5, 0.5, 0.125, 0.125, 0.125, 0.125, 0.0625, 0.0625, 0.0625};
    for (int t = 0; t < 12; t++) expect_lr(&s, t, want[t]);
}

Test(schedule, exponential) {
    ct_schedule s = {.kind = CT_SCHED_EXPONENTIAL, .lr = 0.2, .gamma = 0.9};
    double lr = 0.2;
    for (int64_t t = 0; t < 30; t++) {
        expect_lr(&s, t, lr);
        lr *= 0.9;
    }
}

Test(schedule, cosine) {
    const double base = 0.1, eta = 0.001;
    const int64_t T = 10;
    ct_schedule s = {.kind = CT_SCHED_COSINE, .lr = base, .T_max = T, .eta_min = eta};
    expect_lr(&s, 0, base);
    expect_lr(&s, 5, eta + (base - eta) / 2);
    expect_lr(&s, 10, eta);
    expect_lr(&s, 20, base); /* past T_max it rises again, no restart */
    /* PyTorch's CosineAnnealingLR.get_lr stepped one epoch at a time, with
     * its special case at the bottom of each period. */
    double lr = base;
    for (int64_t e = 0; e < 35; e++) {
        if (e == 0) lr = base;
        else if ((e - 1 - T) % (2 * T) == 0) lr = lr + (base - eta) * (1 - cos(PI / (double)T)) / 2;
        else
            lr = (1 + cos(PI * (double)e / (double)T)) / (1 + cos(PI * (double)(e - 1) / (double)T)) * (lr - eta) +
                 eta;
        double got = ct_schedule_lr(&s, e);
        cr_expect(fabs(got - lr) <= 1e-12, "cosine step %lld: closed form %.17g, recursive %.17g", (long long)e,
                  got, lr);
        expect_lr(&s, e, eta + (base - eta) * (1 + cos(PI * (double)e / (double)T)) / 2);
    }
}

Test(schedule, cyclic) {
    /* Rising for 4 steps, falling for 6: troughs at 0, 10, 20; peaks at 4,
     * 14, 24. */
    const double lo = 0.1, hi = 1.0, amp = hi - lo;
    ct_schedule s = {.kind = CT_SCHED_CYCLIC, .lr = lo, .max_lr = hi, .step_size_up = 4, .step_size_down = 6};
    for (int c = 0; c < 3; c++) {
        expect_lr(&s, 10 * c, lo);
        expect_lr(&s, 10 * c + 4, hi);
        expect_lr(&s, 10 * c + 2, lo + amp * 0.5);  /* half-way up */
        expect_lr(&s, 10 * c + 7, lo + amp * 0.5);  /* half-way down */
        expect_lr(&s, 10 * c + 1, lo + amp * 0.25);
        expect_lr(&s, 10 * c + 9, lo + amp * (1.0 / 6));
    }
    /* triangular2: the amplitude halves every cycle. */
    s.mode = CT_CYCLIC_TRIANGULAR2;
    expect_lr(&s, 4, hi);
    expect_lr(&s, 14, lo + amp / 2);
    expect_lr(&s, 24, lo + amp / 4);
    expect_lr(&s, 17, lo + amp / 2 * 0.5);
    expect_lr(&s, 20, lo);
    /* exp_range: amplitude times gamma^step (the step, not the cycle). */
    s.mode = CT_CYCLIC_EXP_RANGE;
    s.gamma = 0.9;
    expect_lr(&s, 4, lo + amp * pow(0.9, 4));
    expect_lr(&s, 14, lo + amp * pow(0.9, 14));
    expect_lr(&s, 12, lo + amp * 0.5 * pow(0.9, 12));
    expect_lr(&s, 10, lo);
    /* step_size_down defaults to step_size_up: symmetric. */
    ct_schedule sym = {.kind = CT_SCHED_CYCLIC, .lr = lo, .max_lr = hi, .step_size_up = 5};
    expect_lr(&sym, 5, hi);
    expect_lr(&sym, 10, lo);
    expect_lr(&sym, 8, lo + amp * 0.4);
    /* step_size_up defaults to PyTorch's 2000. */
    ct_schedule dflt = {.kind = CT_SCHED_CYCLIC, .lr = lo, .max_lr = hi};
    expect_lr(&dflt, 2000, hi);
    expect_lr(&dflt, 4000, lo);
}

static double cos_anneal(double start, double end, double pct) { return end + (start - end) / 2 * (cos(PI * pct) + 1); }

Test(schedule, one_cycle) {
    /* PyTorch's defaults: pct_start 0.3, div_factor 25, final_div_factor
     * 1e4, cosine annealing. */
    ct_schedule s = {.kind = CT_SCHED_ONE_CYCLE, .max_lr = 1.0, .total_steps = 100};
    const double initial = 1.0 / 25, final = initial / 1e4;
    expect_lr(&s, 0, initial);
    expect_lr(&s, 29, 1.0); /* the peak: pct_start * total - 1 */
    expect_lr(&s, 99, final);
    expect_lr(&s, 150, final); /* past the end the final rate holds */
    expect_lr(&s, 10, cos_anneal(initial, 1.0, 10.0 / 29));
    expect_lr(&s, 60, cos_anneal(1.0, final, (60.0 - 29) / (99 - 29)));
    /* Rising then falling, never past the peak. */
    for (int64_t t = 1; t < 100; t++) {
        double a = ct_schedule_lr(&s, t - 1), b = ct_schedule_lr(&s, t);
        if (t <= 29) cr_expect_gt(b, a, "not rising at %lld", (long long)t);
        else cr_expect_lt(b, a, "not falling at %lld", (long long)t);
    }
    /* Linear annealing, other factors; max_lr 0 takes lr as the peak. */
    ct_schedule l = {.kind = CT_SCHED_ONE_CYCLE, .lr = 0.5, .total_steps = 50, .pct_start = 0.2, .div_factor = 10,
                     .final_div_factor = 100, .anneal = CT_ANNEAL_LINEAR};
    const double li = 0.05, lf = 0.05 / 100;
    expect_lr(&l, 0, li);
    expect_lr(&l, 9, 0.5);
    expect_lr(&l, 49, lf);
    expect_lr(&l, 4, li + (0.5 - li) * 4.0 / 9);
    expect_lr(&l, 30, 0.5 + (lf - 0.5) * (30.0 - 9) / (49 - 9));
}

Test(schedule, warmup) {
    /* Cosine behind 5 warmup steps from 0: lr (t + 1) / 5, then cosine
     * from its own step 0. */
    ct_schedule s = {.kind = CT_SCHED_COSINE, .lr = 0.1, .T_max = 10, .eta_min = 0.0, .warmup_steps = 5};
    for (int t = 0; t < 5; t++) expect_lr(&s, t, 0.1 * (t + 1) / 5.0);
    expect_lr(&s, 5, 0.1);
    expect_lr(&s, 10, 0.05);
    expect_lr(&s, 15, 0.0);
    /* A start factor: from 0.1 * lr to lr. */
    s.warmup_start_factor = 0.1;
    for (int t = 0; t < 5; t++) expect_lr(&s, t, 0.1 * (0.1 + 0.9 * (t + 1) / 5.0));
    /* Step decay behind warmup: the decay counts from the end of warmup. */
    ct_schedule st = {.kind = CT_SCHED_STEP, .lr = 1.0, .step_size = 3, .gamma = 0.5, .warmup_steps = 4};
    static const double want[12] = {0.25, 0.5, 0.75, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25};
    for (int t = 0; t < 12; t++) expect_lr(&st, t, want[t]);
    /* The ramp leads to the rate the wrapped schedule starts at: for one
     * cycle, its initial rate. */
    ct_schedule oc = {.kind = CT_SCHED_ONE_CYCLE, .max_lr = 1.0, .total_steps = 100, .warmup_steps = 2};
    expect_lr(&oc, 0, 0.04 / 2);
    expect_lr(&oc, 1, 0.04);
    expect_lr(&oc, 2, 0.04);
    expect_lr(&oc, 31, 1.0);
}

Test(schedule, plateau) {
    ct_schedule s = {.kind = CT_SCHED_PLATEAU, .lr = 0.1, .factor = 0.5, .patience = 2, .cooldown = 1,
                     .min_lr = 0.02};
    ct_plateau st;
    cr_assert_eq(ct_plateau_init(&st, &s), CT_OK, "%s", ct_last_error());
    cr_expect_eq(st.s.threshold, 1e-4, "threshold default");
    /* Worked by hand (threshold 1e-4 relative): 1.0 and 0.9 improve; then
     * three bad epochs (more than patience 2) halve the rate; the next epoch
     * is cooldown, so three more bad epochs are needed; the third reduction
     * hits min_lr 0.02 and the fourth changes nothing. */
    static const struct {
        double metric, lr;
    } seq[] = {
        {1.0, 0.1},   {0.9, 0.1},   {0.95, 0.1},  {0.95, 0.1},  {0.95, 0.05}, /* reduced */
        {0.95, 0.05}, /* cooldown */
        {0.95, 0.05}, {0.95, 0.05}, {0.95, 0.025},                            /* reduced */
        {0.95, 0.025}, {0.95, 0.025}, {0.95, 0.025}, {0.95, 0.02},            /* floor */
        {0.95, 0.02}, {0.95, 0.02}, {0.95, 0.02}, {0.95, 0.02},
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        double lr = ct_plateau_observe(&st, seq[i].metric);
        cr_expect(fabs(lr - seq[i].lr) < 1e-15, "epoch %zu: lr %.17g, want %.17g", i + 1, lr, seq[i].lr);
    }
    cr_expect_eq(st.epochs, (int64_t)(sizeof seq / sizeof seq[0]));
    cr_expect_eq(st.best, 0.9);

    /* The threshold: within 1e-4 relative of the best is not better. */
    ct_schedule t = {.kind = CT_SCHED_PLATEAU, .lr = 1.0, .patience = 1};
    cr_assert_eq(ct_plateau_init(&st, &t), CT_OK);
    ct_plateau_observe(&st, 1.0);
    cr_expect_eq(ct_plateau_observe(&st, 0.99995), 1.0);  /* bad 1 */
    cr_expect_eq(ct_plateau_observe(&st, 0.99995), 0.1, "two epochs within the threshold should reduce");
    ct_plateau_observe(&st, 0.5);
    cr_expect_eq(st.num_bad_epochs, 0);
    cr_expect_eq(ct_plateau_observe(&st, 0.49), 0.1, "a real improvement counted as bad");
    cr_expect_eq(st.best, 0.49);
    /* A NaN metric is never an improvement. */
    ct_plateau_observe(&st, NAN);
    cr_expect_eq(st.num_bad_epochs, 1);
    cr_expect_eq(st.best, 0.49);

    /* Mode max with an absolute threshold and patience 0: every epoch
     * that does not beat the best by 0.1 reduces. */
    ct_schedule m = {.kind = CT_SCHED_PLATEAU, .lr = 1.0, .plateau_mode = CT_PLATEAU_MAX, .factor = 0.5,
                     .threshold = 0.1, .threshold_mode = CT_THRESHOLD_ABS};
    cr_assert_eq(ct_plateau_init(&st, &m), CT_OK);
    cr_expect_eq(ct_plateau_observe(&st, 0.5), 1.0);
    cr_expect_eq(ct_plateau_observe(&st, 0.65), 1.0);  /* +0.15: better */
    cr_expect_eq(ct_plateau_observe(&st, 0.7), 0.5);   /* +0.05: not */
    cr_expect_eq(ct_plateau_observe(&st, 0.2), 0.25);

    cr_expect_eq(ct_plateau_init(&st, &(ct_schedule){.kind = CT_SCHED_COSINE, .lr = 1, .T_max = 5}),
                 CT_ERR_INVALID_ARG);
    cr_expect(isnan(ct_plateau_observe(NULL, 1.0)));
    /* Before the plateau takes over, ct_schedule_lr gives its warmup. */
    ct_schedule w = {.kind = CT_SCHED_PLATEAU, .lr = 0.4, .warmup_steps = 4};
    expect_lr(&w, 0, 0.1);
    expect_lr(&w, 3, 0.4);
    expect_lr(&w, 100, 0.4);
}

static void expect_bad(ct_schedule s, const char *needle) {
    ct_clear_error();
    cr_expect_eq(ct_schedule_check(&s), CT_ERR_INVALID_ARG, "accepted; expected an error about '%s'", needle);
    cr_expect(strstr(ct_last_error(), needle) != NULL, "message '%s' does not mention '%s'", ct_last_error(),
              needle);
    cr_expect(isnan(ct_schedule_lr(&s, 0)), "ct_schedule_lr of an invalid schedule is not NaN");
}

Test(schedule, validation) {
    expect_bad((ct_schedule){.kind = CT_SCHED_CONSTANT, .lr = -1}, "lr");
    expect_bad((ct_schedule){.kind = CT_SCHED_STEP, .lr = 1}, "step_size");
    expect_bad((ct_schedule){.kind = CT_SCHED_STEP, .lr = 1, .step_size = 2, .gamma = -0.5}, "gamma");
    expect_bad((ct_schedule){.kind = CT_SCHED_MULTISTEP, .lr = 1, .n_milestones = 17}, "n_milestones");
    expect_bad((ct_schedule){.kind = CT_SCHED_MULTISTEP, .lr = 1, .milestones = {3, -1}, .n_milestones = 2},
               "milestones[1]");
    expect_bad((ct_schedule){.kind = CT_SCHED_EXPONENTIAL, .lr = 1}, "gamma");
    expect_bad((ct_schedule){.kind = CT_SCHED_COSINE, .lr = 1}, "T_max");
    expect_bad((ct_schedule){.kind = CT_SCHED_COSINE, .lr = 1, .T_max = 3, .eta_min = -1}, "eta_min");
    expect_bad((ct_schedule){.kind = CT_SCHED_CYCLIC, .lr = 0.1}, "max_lr");
    expect_bad((ct_schedule){.kind = CT_SCHED_CYCLIC, .lr = 0.1, .max_lr = 1, .step_size_up = -2}, "step_size_up");
    expect_bad((ct_schedule){.kind = CT_SCHED_ONE_CYCLE, .max_lr = 1}, "total_steps");
    expect_bad((ct_schedule){.kind = CT_SCHED_ONE_CYCLE, .max_lr = 1, .total_steps = 10, .pct_start = 1.5},
               "pct_start");
    expect_bad((ct_schedule){.kind = CT_SCHED_ONE_CYCLE, .max_lr = 1, .total_steps = 3, .pct_start = 0.2},
               "pct_start");
    expect_bad((ct_schedule){.kind = CT_SCHED_PLATEAU, .lr = 1, .factor = 1.0}, "factor");
    expect_bad((ct_schedule){.kind = CT_SCHED_PLATEAU, .lr = 1, .patience = -1}, "patience");
    expect_bad((ct_schedule){.kind = CT_SCHED_PLATEAU, .lr = 1, .min_lr = -1}, "min_lr");
    expect_bad((ct_schedule){.kind = CT_SCHED_CONSTANT, .lr = 1, .warmup_steps = -1}, "warmup_steps");
    expect_bad((ct_schedule){.kind = CT_SCHED_CONSTANT, .lr = 1, .warmup_steps = 3, .warmup_start_factor = 2},
               "warmup_start_factor");
    expect_bad((ct_schedule){.kind = (ct_schedule_kind)99, .lr = 1}, "kind");

    ct_schedule ok = {.kind = CT_SCHED_CONSTANT, .lr = 1};
    cr_expect_eq(ct_schedule_check(&ok), CT_OK);
    cr_expect(isnan(ct_schedule_lr(&ok, -1)));
    cr_expect_eq(ct_last_status(), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_schedule_check(NULL), CT_ERR_INVALID_ARG);

    ct_schedule_kind k;
    cr_expect_eq(ct_schedule_kind_parse("one_cycle", &k), CT_OK);
    cr_expect_eq(k, CT_SCHED_ONE_CYCLE);
    cr_expect_eq(ct_schedule_kind_parse("warm_restarts", &k), CT_ERR_NOT_FOUND);
    cr_expect_str_eq(ct_schedule_kind_name(CT_SCHED_PLATEAU), "plateau");
}
