/* The trainer's mixed-precision steps: the loss scaler around the update.
 *
 * Per optimizer step, after the gradients are complete (accumulated, and
 * all-reduced in data-parallel runs): unscale with the inf/NaN check (one
 * pass), clipping (not on a step that will be skipped: its norm is inf),
 * the optimizer update gated on the device by the scaler's flag, the scale
 * update. Without a scaler these are the plain optimizer step.
 */
#include <math.h>

#include "train/train_internal.h"

ct_status ct_train_amp_init(ct_trainer *t) {
    if (!t->b.scaled) return CT_OK;
    t->scaler = ct_scaler_new(t->tr.p, &t->o.loss_scale);
    return t->scaler ? CT_OK : ct_last_status();
}

ct_status ct_train_amp_unscale(ct_trainer *t, bool *skip) {
    *skip = false;
    if (!t->scaler) return CT_OK;
    ct_status st = ct_scaler_unscale(t->scaler);
    if (st == CT_OK && (t->o.clip_norm > 0 || t->o.clip_value > 0)) st = ct_scaler_found_inf(t->scaler, skip);
    return st;
}

ct_status ct_train_amp_step(ct_trainer *t, double lr) {
    if (!t->scaler) return ct_optimizer_step(t->opt, lr);
    ct_status st = ct_scaler_step(t->scaler, t->opt, lr);
    return st != CT_OK ? st : ct_scaler_update(t->scaler);
}

void ct_train_amp_report(const ct_trainer *t, double *scale, int64_t *skipped) {
    ct_scaler_state s = {.scale = 1.0};
    if (t->scaler && ct_scaler_get_state(t->scaler, &s) != CT_OK) s = (ct_scaler_state){.scale = NAN};
    *scale = s.scale;
    *skipped = s.skipped_steps;
}
