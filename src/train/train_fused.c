/* The trainer's fused steps (GPU): one step graph per full batch, and the
 * loss kept on the device until a value must reach the host.
 *
 * The plain loop reads every step's loss (for the progress line and its
 * finiteness check) and, when clipping, the gradient norm: on a GPU each
 * read waits for the step, so the host can never queue the next one ahead.
 * Here a full-batch step is ct_step_graph_run (captured once, replayed),
 * each step's loss times its batch size is added to a sum on the device,
 * and ct_train_fused_sync brings that sum to the host where a value is
 * needed: a progress line that shows the loss, a validation pass, the end
 * of an epoch, a checkpoint, the end of the run. A non-finite loss is
 * therefore found at the next of those points rather than at once; the
 * error names the range of steps it happened in.
 *
 * Not fused: the CPU (its loop is unchanged), accumulation over micro-
 * batches, data parallelism (the loss is summed over ranks every step and
 * the gradient reducer runs on the host during backward), and the short
 * last batch of an epoch, which runs through the plain path.
 */
#include <math.h>

#include "core/error.h"
#include "core/program_internal.h"
#include "train/train_internal.h"

bool ct_train_fused_wanted(const ct_trainer *t) {
    const ct_backend *be = ct_program_backend(t->tr.p);
    /* Pruning masks and the teacher run between steps: not in the graph. */
    return be && be->graph_begin && !t->o.comm && t->accum == 1 && !t->o.prune && !t->o.distill &&
           !t->n_carry; /* carried states go through the host between steps */
}

ct_status ct_train_fused_begin(ct_trainer *t) {
    if (!t->fused || t->sg) return CT_OK;
    ct_step_graph_opts o = {.clip_norm = t->o.clip_norm,
                            .clip_value = t->o.clip_value,
                            .scaler = t->scaler,
                            .loss = &t->tr.loss,
                            .loss_weight = (double)t->tr.batch,
                            .no_capture = t->o.no_cuda_graph};
    if (!(t->sg = ct_step_graph_new(t->tr.p, t->opt, &o)))
        return ct_error(ct_last_status(), "the fused training step: %s", ct_last_error());
    t->fused_synced = t->step;
    t->fused_loss = NAN;
    return CT_OK;
}

ct_status ct_train_fused_step(ct_trainer *t, const ct_batch *b, double lr) {
    ct_status st;
    if ((st = ct_train_set_inputs(t, &t->tr, b)) != CT_OK || (st = ct_step_graph_run(t->sg, lr)) != CT_OK)
        return ct_error(st, "step %lld: %s", (long long)t->step + 1, ct_last_error());
    t->lr = lr;
    t->step++;
    return CT_OK;
}

ct_status ct_train_fused_sync(ct_trainer *t) {
    if (!t->sg || t->fused_synced == t->step) return CT_OK;
    double last, sum;
    ct_status st = ct_step_graph_loss(t->sg, &last, &sum);
    if (st == CT_OK) st = ct_step_graph_clear_loss(t->sg);
    if (st != CT_OK) return ct_error(st, "reading the training loss: %s", ct_last_error());
    int64_t from = t->fused_synced + 1;
    t->fused_synced = t->step;
    if (!isfinite(sum))
        return ct_error(CT_ERR_NUMERIC,
                        "the training loss is %g in a step between %lld and %lld (epoch %lld; the loss is read "
                        "from the GPU only when shown); try a smaller learning rate",
                        sum, (long long)from, (long long)t->step, (long long)t->epoch + 1);
    t->loss_sum += sum;
    t->fused_loss = last / (double)t->tr.batch;
    return CT_OK;
}
