/* Internal to src/train: the trainer's pruning (prune.c) and distillation
 * (distill.c), each NULL in a trainer that does not use it, and the
 * metrics fields they add (docs/compression.md). */
#ifndef CT_TRAIN_COMPRESS_INTERNAL_H
#define CT_TRAIN_COMPRESS_INTERNAL_H

#include <cjson/cJSON.h>

#include "ctrain/distill.h"
#include "ctrain/prune.h"
#include "ctrain/safetensors.h"
#include "train/train_internal.h"

/* ---- pruning (prune.c) */
/* After the programs, optimizer and run length exist: t->pruner from
 * t->o.prune (nothing without it). Errors: the options (ct_prune_check),
 * a model with nothing to prune, a backend without mask_apply. An end
 * after the run's last step is allowed: a run cut short by max_steps and
 * resumed for the rest reaches it. */
ct_status ct_train_prune_setup(ct_trainer *t);
void ct_train_prune_free(ct_trainer *t);
/* After optimizer step t->step: new masks on a pruning step, then the
 * parameters and optimizer state masked. */
ct_status ct_train_prune_after_step(ct_trainer *t);
/* Checkpoints: the masks as "prune.mask.<param>" (U8); on resume, read
 * and checked into a staging copy (a checkpoint without them: nothing
 * pruned yet), then made current by commit. */
ct_status ct_train_prune_save(ct_trainer *t, ct_st_writer *w);
ct_status ct_train_prune_stage(ct_trainer *t, const ct_st_file *f, const char *path);
ct_status ct_train_prune_commit(ct_trainer *t);

/* ---- distillation (distill.c) */
/* The options of t->o.distill on their own (before the programs). */
ct_status ct_train_distill_check(const ct_trainer *t);
ct_status ct_train_distill_setup(ct_trainer *t);
void ct_train_distill_free(ct_trainer *t);
/* The teacher's logits of batch b into the training program of tg. */
ct_status ct_train_distill_feed(ct_trainer *t, const ct_tgraph *tg, const ct_batch *b);
/* After a micro-batch of `count` samples ran in tg: its two terms summed
 * for the epoch's means. */
ct_status ct_train_distill_account(ct_trainer *t, const ct_tgraph *tg, int64_t count);
/* The epoch's mean KL and CE terms so far (NAN before any batch); reset
 * starts the next epoch's sums. */
void ct_train_distill_means(ct_trainer *t, double *kl, double *ce, bool reset);

/* The metrics fields of both (sparsity, distill_kl, distill_ce) into o;
 * the epoch's distillation sums restart at an epoch line. */
ct_status ct_train_compress_metrics(ct_trainer *t, cJSON *o, const char *event);

#endif
