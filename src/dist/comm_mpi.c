/* The MPI communicator: host buffers, MPI_COMM_WORLD (duplicated, so that
 * the program's own MPI traffic never mixes with ours).
 *
 * Every collective is the non-blocking MPI-3 form, completed by polling
 * with a deadline (ct_comm_wait_until): a blocking MPI_Allreduce whose
 * partner died would wait forever. Errors are returned, not fatal
 * (MPI_ERRORS_RETURN), so they reach ct_last_error(). An average is a sum
 * divided by the number of ranks once the sum has arrived: MPI has no
 * average of its own.
 */
#include "dist/comm_internal.h"

#ifdef CTRAIN_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* MPI counts are ints: longer buffers go in pieces of this many elements. */
#define CHUNK ((size_t)1 << 30)

typedef struct job {
    float *avg;        /* divide these n floats by the size once done; NULL: nothing */
    size_t n;
} job;

typedef struct mpi_state {
    MPI_Comm comm;
    MPI_Request *reqs; /* started, not yet completed, in the order started */
    job *jobs;
    int n_req, cap;
} mpi_state;

static bool we_initialised; /* ct_comm_mpi_init called MPI_Init_thread */

static ct_status mpi_error(int rc, const char *call) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", rc);
    return ct_error(CT_ERR_DEVICE, "%s failed: %s", call, msg);
}

/* Room for one more request: its index, or -1 with the error set. */
static int push(mpi_state *m) {
    if (m->n_req == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        MPI_Request *r = realloc(m->reqs, (size_t)cap * sizeof *r);
        if (r) m->reqs = r;
        job *j = r ? realloc(m->jobs, (size_t)cap * sizeof *j) : NULL;
        if (!j) return ct_error(CT_ERR_OOM, "MPI communicator: out of memory"), -1;
        m->jobs = j;
        m->cap = cap;
    }
    m->jobs[m->n_req] = (job){NULL, 0};
    return m->n_req++;
}

/* After an MPI_I* call on the request just pushed. */
static ct_status started(ct_comm *c, int rc, const char *call) {
    if (rc == MPI_SUCCESS) return CT_OK;
    ((mpi_state *)c->impl)->n_req--;
    return ct_comm_fail(c, mpi_error(rc, call));
}

/* Tests every started request; when all are done, finishes the averages. */
static ct_status poll_all(ct_comm *c, bool *done) {
    mpi_state *m = c->impl;
    int flag = 1;
    if (m->n_req) {
        int rc = MPI_Testall(m->n_req, m->reqs, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Testall");
    }
    *done = flag != 0;
    if (!flag) return CT_OK;
    const float size = (float)c->size;
    for (int r = 0; r < m->n_req; r++)
        for (size_t i = 0; i < m->jobs[r].n; i++) m->jobs[r].avg[i] /= size;
    m->n_req = 0;
    return CT_OK;
}

static ct_status mpi_progress(ct_comm *c) {
    bool done;
    return poll_all(c, &done);
}

static ct_status mpi_wait(ct_comm *c) { return ct_comm_wait_until(c, "an MPI collective", poll_all); }

static ct_status mpi_allreduce_start(ct_comm *c, float *buf, size_t n, ct_reduce_op op) {
    mpi_state *m = c->impl;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t cnt = n - off < CHUNK ? n - off : CHUNK;
        int k = push(m);
        if (k < 0) return ct_comm_fail(c, CT_ERR_OOM);
        ct_status st = started(
            c, MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)cnt, MPI_FLOAT, MPI_SUM, m->comm, &m->reqs[k]),
            "MPI_Iallreduce");
        if (st != CT_OK) return st;
        if (op == CT_REDUCE_AVG && c->size > 1) m->jobs[k] = (job){buf + off, cnt};
    }
    return CT_OK;
}

static ct_status mpi_broadcast(ct_comm *c, void *buf, size_t bytes, int root) {
    mpi_state *m = c->impl;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t cnt = bytes - off < CHUNK ? bytes - off : CHUNK;
        int k = push(m);
        if (k < 0) return ct_comm_fail(c, CT_ERR_OOM);
        ct_status st = started(c, MPI_Ibcast((char *)buf + off, (int)cnt, MPI_BYTE, root, m->comm, &m->reqs[k]),
                               "MPI_Ibcast");
        if (st != CT_OK) return st;
    }
    return ct_comm_wait_until(c, "a broadcast", poll_all);
}

static ct_status mpi_barrier(ct_comm *c) {
    mpi_state *m = c->impl;
    int k = push(m);
    if (k < 0) return ct_comm_fail(c, CT_ERR_OOM);
    ct_status st = started(c, MPI_Ibarrier(m->comm, &m->reqs[k]), "MPI_Ibarrier");
    return st == CT_OK ? ct_comm_wait_until(c, "a barrier", poll_all) : st;
}

static ct_status mpi_sum_host(ct_comm *c, double *buf, size_t n) {
    mpi_state *m = c->impl;
    if (n > (size_t)INT_MAX) return ct_error(CT_ERR_INVALID_ARG, "ct_comm_sum_host: %zu values is too many", n);
    int k = push(m);
    if (k < 0) return ct_comm_fail(c, CT_ERR_OOM);
    ct_status st = started(c, MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, m->comm, &m->reqs[k]),
                           "MPI_Iallreduce");
    return st == CT_OK ? ct_comm_wait_until(c, "a sum of host values", poll_all) : st;
}

static void mpi_abort(ct_comm *c, int code) {
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, code);
}

static void mpi_free(ct_comm *c) {
    mpi_state *m = c->impl;
    if (!m) return;
    /* With requests still out (a timeout) the communicator is in use and
     * cannot be freed; the process is about to give up anyway. */
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && m->n_req == 0 && m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    free(m->reqs);
    free(m->jobs);
    free(m);
    c->impl = NULL;
}

static const ct_comm_ops mpi_ops = {
    .allreduce_start = mpi_allreduce_start,
    .progress = mpi_progress,
    .wait = mpi_wait,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .sum_host = mpi_sum_host,
    .abort = mpi_abort,
    .free = mpi_free,
};

static void finalize_at_exit(void) { ct_comm_mpi_finalize(); }

void ct_comm_mpi_finalize(void) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (we_initialised && inited && !finalized) MPI_Finalize();
}

/* The launcher's idea of the local rank, where it says: that is what its
 * CPU and GPU binding used. */
static int launcher_local_rank(void) {
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        char *end;
        long x = v && *v ? strtol(v, &end, 10) : -1;
        if (v && *v && !*end && x >= 0 && x < INT_MAX) return (int)x;
    }
    return -1;
}

ct_status ct_comm_mpi_init(ct_comm *c) {
    int inited = 0, finalized = 0, rc;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return ct_error(CT_ERR_STATE, "ct_comm_new: MPI was finalised already in this process");
    if (!inited) {
        int provided;
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
            return mpi_error(rc, "MPI_Init_thread");
        we_initialised = true;
        /* A rank that ends without MPI_Finalize makes mpirun report the job
         * as failed. */
        atexit(finalize_at_exit);
    }
    mpi_state *m = calloc(1, sizeof *m);
    if (!m) return ct_error(CT_ERR_OOM, "ct_comm_new: out of memory");
    m->comm = MPI_COMM_NULL;
    c->impl = m;
    c->ops = &mpi_ops;
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm)) != MPI_SUCCESS) return mpi_error(rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &c->rank);
    MPI_Comm_size(m->comm, &c->size);
    MPI_Comm node;
    if ((rc = MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node)) != MPI_SUCCESS)
        return mpi_error(rc, "MPI_Comm_split_type");
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    MPI_Comm_free(&node);
    int lr = launcher_local_rank();
    if (lr >= 0 && lr < c->local_size) c->local_rank = lr;
    return CT_OK;
}

#else /* no MPI in this build */

#include "core/error.h"

ct_status ct_comm_mpi_init(ct_comm *c) {
    (void)c;
    return ct_error(CT_ERR_UNSUPPORTED, "ct_comm_new: this build of ctrain has no MPI");
}

void ct_comm_mpi_finalize(void) {}

#endif
