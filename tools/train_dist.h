/* `ctrain train` across processes: which communicator the options and the
 * environment ask for (train_dist.c). */
#ifndef CTRAIN_TOOLS_TRAIN_DIST_H
#define CTRAIN_TOOLS_TRAIN_DIST_H

#include <stdbool.h>

#include <ctrain/ctrain.h>

#include "train_opts.h"

/* Opens the communicator for --dist: with "auto" (the default), MPI when a
 * launcher (mpirun, srun --mpi=...) started this process, NCCL instead of
 * MPI for --device cuda; "off" never; "mpi" / "nccl" always. *out stays
 * NULL for one process. For NCCL, c->device becomes this rank's GPU unless
 * --device named one. Returns false after printing the reason. */
bool train_dist_open(train_cfg *c, ct_comm **out);

/* The line under the header: ranks, communicator, shards, buckets. */
void train_dist_describe(const train_cfg *c, const ct_comm *comm);

#endif
