/* Internal to src/dist (and the NCCL communicator in src/cuda): what a
 * communicator implementation provides. comm.c checks the arguments and
 * dispatches; an implementation only talks to its library. A NULL entry in
 * the table is a no-op (the single-process communicator has them all NULL).
 */
#ifndef CT_DIST_COMM_INTERNAL_H
#define CT_DIST_COMM_INTERNAL_H

#include "ctrain/dist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_comm_ops {
    ct_status (*allreduce_start)(ct_comm *c, float *buf, size_t n, ct_reduce_op op);
    ct_status (*progress)(ct_comm *c);
    ct_status (*wait)(ct_comm *c);
    ct_status (*broadcast)(ct_comm *c, void *buf, size_t bytes, int root);
    ct_status (*barrier)(ct_comm *c);
    ct_status (*sum_host)(ct_comm *c, double *buf, size_t n);
    void (*abort)(ct_comm *c, int code);
    void (*free)(ct_comm *c);
} ct_comm_ops;

struct ct_comm {
    const ct_comm_ops *ops;
    ct_comm_kind kind;
    int rank, size, local_rank, local_size;
    ct_device device;
    double timeout_s;
    void *stream;        /* NCCL: the compute stream (NULL: the default one) */
    void *impl;          /* the implementation's state */
    ct_comm *boot;       /* NCCL: the MPI communicator it was set up through */
    /* A collective failed or timed out: the ranks may disagree on what was
     * sent, so every later call refuses, repeating this. */
    char failed[256];
};

/* MPI (comm_mpi.c): fills c from MPI_COMM_WORLD, initialising MPI if
 * needed. CT_ERR_UNSUPPORTED in a build without MPI. */
ct_status ct_comm_mpi_init(ct_comm *c);
/* Finalises MPI if ct_comm_mpi_init initialised it (no-op otherwise). */
void ct_comm_mpi_finalize(void);
/* Waits until the implementation's `done` says true, calling `poll` between
 * checks (neither may be NULL), or the communicator's deadline passes: the
 * one place that decides how the host waits. `what` names the collective
 * in the timeout error, which also marks c failed. */
ct_status ct_comm_wait_until(ct_comm *c, const char *what, ct_status (*poll)(ct_comm *c, bool *done));
/* Marks c failed with the message of the error st just set; returns st. */
ct_status ct_comm_fail(ct_comm *c, ct_status st);

/* NCCL (src/cuda/nccl_comm.cu): c->boot is an MPI communicator of the same
 * ranks; picks the GPU, creates the NCCL communicator and sets c's table. */
ct_status ct_comm_nccl_init(ct_comm *c, const ct_comm_opts *o);

#ifdef __cplusplus
}
#endif
#endif
