/* The trainer's data-parallel side (ct_train_opts.comm).
 *
 * The loop in trainer.c stays that of one process; these functions are the
 * points where ranks meet. Each rank trains on its shard of every global
 * batch: the loader's shards are consecutive slices of the batch, so rank r
 * takes samples [r * B/N, (r + 1) * B/N) of each shuffled global batch of
 * B, the shuffle being the same (seed, epoch) permutation on every rank.
 * A rank's loss is the mean over its shard, so before the average each rank
 * weighs its gradients by N * (its samples) / (global samples): 1 for full
 * batches, and the exact global mean for an uneven last batch.
 *
 * Every rank steps the same optimizer on the same averaged gradients, so
 * the weights stay identical without being sent again; decisions taken on
 * numbers (a non-finite loss, early stopping, a plateau) use reduced
 * numbers, so every rank takes them together.
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "train/train_internal.h"

ct_status ct_train_dist_setup(ct_trainer *t) {
    t->rank = 0;
    t->world = 1;
    ct_comm *c = t->o.comm;
    if (!c) return CT_OK;
    t->rank = ct_comm_rank(c);
    t->world = ct_comm_size(c);
    if (t->o.batch_size % t->world != 0)
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_trainer_new: batch_size %lld is the global batch and must be a multiple of the %d ranks",
                        (long long)t->o.batch_size, t->world);
    /* Weights come from rank 0 anyway; a seed of its own per rank keeps the
     * dropout masks of different ranks independent. Rank 0 keeps the seed,
     * so one rank is exactly a plain run. */
    if (t->rank > 0) t->b.seed = t->o.seed + 0x9E3779B97F4A7C15ull * (uint64_t)t->rank;
    return CT_OK;
}

ct_status ct_train_dist_attach(ct_trainer *t) {
    if (!t->o.comm) return CT_OK;
    ct_ddp_opts o = {.bucket_bytes = t->o.dist_bucket_bytes, .no_overlap = t->o.dist_no_overlap};
    if (!(t->ddp = ct_ddp_new(t->o.comm, t->tr.g, t->tr.p, &o)))
        return ct_error(ct_last_status(), "ct_trainer_new: %s", ct_last_error());
    return CT_OK;
}

ct_status ct_train_dist_begin(ct_trainer *t) {
    if (!t->ddp) return CT_OK;
    return ct_ddp_broadcast(t->ddp);
}

ct_status ct_train_dist_run(ct_trainer *t, ct_program *p, const ct_batch *b, bool sync) {
    if (!t->ddp) return ct_program_run(p);
    double weight = (double)t->world * (double)b->count / (double)b->global_count;
    return ct_ddp_run(t->ddp, p, sync, weight);
}

ct_status ct_train_dist_loss(ct_trainer *t, float *loss, int64_t *count) {
    if (!t->ddp) return CT_OK;
    double v[2] = {(double)*loss * (double)*count, (double)*count};
    ct_status st = ct_comm_sum_host(t->o.comm, v, 2);
    if (st != CT_OK) return ct_error(st, "the training loss of step %lld: %s", (long long)t->step + 1, ct_last_error());
    *loss = (float)(v[0] / v[1]);
    *count = (int64_t)v[1];
    return CT_OK;
}

ct_status ct_train_evaluate(ct_trainer *t, const ct_dataset *ds, ct_eval_result *out) {
    if (!t->ddp) return ct_evaluator_run(&t->ev, ds, out);
    ct_status st = ct_ddp_broadcast_buffers(t->ddp);
    if (st != CT_OK) return st;
    int64_t n = ct_dataset_size(ds);
    int64_t lo = n * t->rank / t->world, hi = n * (t->rank + 1) / t->world;
    ct_eval_result r = {0};
    if (hi > lo && (st = ct_evaluator_run_range(&t->ev, ds, lo, hi, &r)) != CT_OK) return st;
    double v[3] = {r.count ? r.loss * (double)r.count : 0, (double)r.correct, (double)r.count};
    if ((st = ct_comm_sum_host(t->o.comm, v, 3)) != CT_OK) return ct_error(st, "evaluate: %s", ct_last_error());
    out->count = (int64_t)v[2];
    out->correct = (int64_t)v[1];
    out->loss = v[0] / v[2];
    out->accuracy = v[1] / v[2];
    return CT_OK;
}
