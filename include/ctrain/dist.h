/* Distributed data-parallel training: communicators and the gradient reducer.
 *
 * One process per device. Every rank holds the whole model; the trainer (or
 * a loop of your own) gives each rank its shard of every global batch, and
 * after backward the gradients are averaged across ranks so that every rank
 * takes the same optimizer step. Processes are started by a launcher the
 * cluster already has - `mpirun -np N prog`, `srun --mpi=pmix prog` - and
 * find each other through MPI (docs/distributed.md).
 *
 * A communicator (ct_comm) moves float buffers between the ranks:
 *   CT_COMM_SINGLE  one process, every operation a no-op (tests, and code
 *                   that should not care whether it runs distributed);
 *   CT_COMM_MPI     MPI_COMM_WORLD, on host buffers (CPU ranks);
 *   CT_COMM_NCCL    NCCL on device buffers, one GPU per rank picked by the
 *                   local rank; NCCL's unique id travels through MPI.
 *
 *     ct_comm *c = ct_comm_new(CT_COMM_MPI, NULL);
 *     ct_train_opts o = {..., .comm = c};   (batch_size stays the global batch)
 *     ... ct_trainer_run ...
 *     ct_comm_free(c);
 *
 * The reducer (ct_ddp) averages a program's flat gradient buffer in buckets
 * that start while backward is still running: buckets cover the parameters
 * in reverse order (backward finishes the last layers first), and every rank
 * launches them in the same fixed order, as PyTorch's DistributedDataParallel
 * does.
 *
 * Collectives wait with a deadline (ct_comm_opts.timeout_s): a rank whose
 * partner died or hangs gets CT_ERR_DEVICE naming the operation instead of
 * waiting forever. A rank that cannot go on should call ct_comm_abort, which
 * ends every rank of the job (MPI_Abort), so the launcher exits non-zero.
 */
#ifndef CTRAIN_DIST_H
#define CTRAIN_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "ctrain/device.h"
#include "ctrain/graph.h"
#include "ctrain/program.h"
#include "ctrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_comm_kind {
    CT_COMM_SINGLE = 0,
    CT_COMM_MPI,
    CT_COMM_NCCL
} ct_comm_kind;

typedef enum ct_reduce_op {
    CT_REDUCE_SUM = 0,
    CT_REDUCE_AVG        /* the sum divided by the number of ranks */
} ct_reduce_op;

/* Options of ct_comm_new; zero is the default of every field. */
typedef struct ct_comm_opts {
    /* Seconds a collective may wait for the other ranks before it fails.
     * 0: the environment's CTRAIN_DIST_TIMEOUT, else 600. */
    double timeout_s;
    /* NCCL: use GPU device_index instead of the local rank's (the local
     * rank modulo the number of visible GPUs). */
    bool fixed_device;
    int device_index;
} ct_comm_opts;

typedef struct ct_comm ct_comm;

/* True when this process was started by an MPI launcher: mpirun / mpiexec
 * (Open MPI's OMPI_COMM_WORLD_SIZE, MPICH's PMI_RANK) or Slurm's srun with
 * PMIx or PMI-2 (PMIX_RANK, PMI_RANK). Plain srun without --mpi sets none of
 * these and is not detected. */
bool ct_dist_launched(void);

/* The number of ranks the launcher started (1 when not launched, or when
 * the launcher does not say before MPI starts). */
int ct_dist_launched_size(void);

/* True when this build can make communicators of that kind (MPI and NCCL
 * are optional at build time). */
bool ct_comm_available(ct_comm_kind kind);
/* "single", "mpi", "nccl" ("?" for another value). */
const char *ct_comm_kind_name(ct_comm_kind kind);

/* A communicator over every rank of the job. opts may be NULL.
 * MPI: initialises MPI (threads funnelled to the caller) unless the program
 * already has, and then leaves it initialised until ct_dist_finalize or the
 * end of the process; a program that initialised MPI itself finalises it.
 * NCCL: initialises MPI the same way, selects this rank's GPU
 * (cudaSetDevice) and creates the NCCL communicator, with its unique id
 * sent from rank 0 by MPI_Bcast.
 * NULL on error: CT_ERR_UNSUPPORTED for a kind this build lacks,
 * CT_ERR_DEVICE when MPI, CUDA or NCCL fail to start (naming the call),
 * CT_ERR_INVALID_ARG for a bad option. Free with ct_comm_free. Making an
 * MPI or NCCL communicator is collective: every rank makes it, in the same
 * order as its other communicators. */
ct_comm *ct_comm_new(ct_comm_kind kind, const ct_comm_opts *opts);

/* Frees the communicator (waiting for nothing: started reductions are
 * abandoned). NULL is ignored. */
void ct_comm_free(ct_comm *c);

/* Ends every rank of the job with exit code `code` (MPI_Abort), for a rank
 * that failed and would otherwise leave the others waiting. A single-process
 * communicator (or NULL) just exits with that code. Does not return. */
void ct_comm_abort(ct_comm *c, int code);

/* Finalises MPI if a communicator initialised it; after this no MPI or NCCL
 * communicator may be used or made. Called at exit if never called. */
void ct_dist_finalize(void);

/* What a communicator is (single, MPI or NCCL), and where this process
 * stands in it; NULL reads as a single process. */
ct_comm_kind ct_comm_get_kind(const ct_comm *c);
int ct_comm_rank(const ct_comm *c);       /* 0 .. size - 1 (0 for NULL) */
int ct_comm_size(const ct_comm *c);       /* >= 1 (1 for NULL) */
int ct_comm_local_rank(const ct_comm *c); /* rank among the ranks of this machine */
/* Where the buffers handed to the collectives live: the CPU for SINGLE and
 * MPI, this rank's GPU for NCCL. */
ct_device ct_comm_device(const ct_comm *c);

/* Reduces n floats in place across ranks; every rank passes the same n, in
 * the same order of calls. Blocking. Errors: CT_ERR_DEVICE for a failed or
 * timed-out collective (the communicator is unusable afterwards). */
ct_status ct_comm_allreduce(ct_comm *c, float *buf, size_t n, ct_reduce_op op);

/* The same, started without waiting: buf must stay untouched until
 * ct_comm_wait. Reductions complete in the order started. */
ct_status ct_comm_allreduce_start(ct_comm *c, float *buf, size_t n, ct_reduce_op op);
/* Lets started reductions advance (MPI progresses them only inside MPI
 * calls); never blocks. */
ct_status ct_comm_progress(ct_comm *c);
/* Waits for every started reduction. On a GPU the results are ready for
 * work queued on the compute stream afterwards. */
ct_status ct_comm_wait(ct_comm *c);

/* Copies root's bytes into every other rank's buf. Blocking. */
ct_status ct_comm_broadcast(ct_comm *c, void *buf, size_t bytes, int root);
ct_status ct_comm_barrier(ct_comm *c);

/* Sums n doubles of host memory across ranks, in place, whatever the
 * communicator's device: losses and counts. Blocking. */
ct_status ct_comm_sum_host(ct_comm *c, double *buf, size_t n);

/* NCCL: the stream the program's kernels run on (the collectives wait for
 * the work queued on it, and work queued after ct_comm_wait waits for them);
 * NULL: the CUDA backend's stream. Ignored by the other kinds. */
void ct_comm_set_stream(ct_comm *c, void *stream);

/* ------------------------------------------------------------ reducer */

typedef struct ct_ddp ct_ddp;

typedef struct ct_ddp_opts {
    /* Target size of a bucket; 0: 4 MiB (CT_DDP_DEFAULT_BUCKET). A parameter
     * larger than this makes a bucket of its own. */
    size_t bucket_bytes;
    /* One all-reduce of the whole gradient buffer after backward instead of
     * buckets started during it (for comparison). */
    bool no_overlap;
} ct_ddp_opts;

#define CT_DDP_DEFAULT_BUCKET ((size_t)4 << 20)

typedef struct ct_ddp_stats {
    int buckets;           /* per reduction */
    long long reductions;  /* gradient reductions done */
    long long early;       /* buckets started while a backward pass still ran */
    double wait_s;         /* host seconds spent waiting for reductions after
                              backward: the communication not hidden by it */
} ct_ddp_stats;

/* A reducer of the flat gradient buffer of p (compiled from g with grads)
 * over c; all three are borrowed and must outlive it. Every rank must build
 * the same graph, so that buckets line up. opts may be NULL. NULL on error:
 * CT_ERR_INVALID_ARG (NULL arguments), CT_ERR_DTYPE (parameters not F32),
 * CT_ERR_UNSUPPORTED (p runs
 * on a device c does not reduce on: MPI reduces host memory, NCCL its GPU's),
 * CT_ERR_OOM. */
ct_ddp *ct_ddp_new(ct_comm *c, const ct_graph *g, ct_program *p, const ct_ddp_opts *opts);
void ct_ddp_free(ct_ddp *d);

/* Copies rank 0's parameters and buffers (ct_buffer state) to every rank,
 * so that all start from the same weights. */
ct_status ct_ddp_broadcast(ct_ddp *d);
/* Only the buffers (running statistics), e.g. before an evaluation, so
 * that every rank evaluates rank 0's. */
ct_status ct_ddp_broadcast_buffers(ct_ddp *d);

/* Runs q - p itself or a program sharing p's parameters (another batch
 * size) - as ct_program_run. With sync, the gradients are averaged across
 * ranks when it returns: each bucket is multiplied by `scale` (this rank's
 * weight in the average: 1 when every rank's shard is as large) and its
 * all-reduce started as soon as backward has finished its gradients, unless
 * no_overlap. Without sync it is ct_program_run (an accumulation step).
 * Errors: those of the run, CT_ERR_INVALID_ARG for a q that does not share
 * p's gradients, CT_ERR_DEVICE from the communicator. After an error the
 * ranks are out of step: end the job (ct_comm_abort). */
ct_status ct_ddp_run(ct_ddp *d, ct_program *q, bool sync, double scale);

/* Averages the gradient buffer as it is now, after multiplying it by scale
 * (the last step of gradient accumulation): one all-reduce. */
ct_status ct_ddp_sync(ct_ddp *d, double scale);

/* Counters since ct_ddp_new (all zero for NULL). */
ct_ddp_stats ct_ddp_get_stats(const ct_ddp *d);

#ifdef __cplusplus
}
#endif
#endif
