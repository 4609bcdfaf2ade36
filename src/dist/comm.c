/* Communicators: argument checks, the single-process communicator, launcher
 * detection and the host's waiting loop. The MPI and NCCL implementations
 * (comm_mpi.c, src/cuda/nccl_comm.cu) fill in a table of operations; a NULL
 * entry is a no-op, which is all a single process needs.
 */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "dist/comm_internal.h"

#define DEFAULT_TIMEOUT_S 600.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < 0 || x > 1 << 24 ? fallback : (int)x;
}

bool ct_dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int ct_dist_launched_size(void) {
    int n = env_int("OMPI_COMM_WORLD_SIZE", 0);
    if (!n) n = env_int("PMI_SIZE", 0);
    if (!n && getenv("PMIX_RANK")) n = env_int("SLURM_NTASKS", 0);
    return n > 0 ? n : 1;
}

bool ct_comm_available(ct_comm_kind kind) {
    switch (kind) {
    case CT_COMM_SINGLE: return true;
#ifdef CTRAIN_HAVE_MPI
    case CT_COMM_MPI: return true;
#endif
#if defined(CTRAIN_HAVE_MPI) && defined(CTRAIN_HAVE_NCCL)
    case CT_COMM_NCCL: return true;
#endif
    default: return false;
    }
}

const char *ct_comm_kind_name(ct_comm_kind kind) {
    switch (kind) {
    case CT_COMM_SINGLE: return "single";
    case CT_COMM_MPI: return "mpi";
    case CT_COMM_NCCL: return "nccl";
    }
    return "?";
}

/* How long collectives wait: the option, else CTRAIN_DIST_TIMEOUT, else
 * ten minutes (long enough for rank 0 to write a large checkpoint while
 * the others wait at the next step). */
static ct_status resolve_timeout(const ct_comm_opts *o, double *out) {
    double t = o ? o->timeout_s : 0;
    if (!(t >= 0) || isinf(t))
        return ct_error(CT_ERR_INVALID_ARG, "ct_comm_new: timeout_s %g is not a finite number >= 0", t);
    const char *env = getenv("CTRAIN_DIST_TIMEOUT");
    if (t == 0 && env && *env) {
        char *end;
        t = strtod(env, &end);
        if (*end || !(t > 0) || isinf(t))
            return ct_error(CT_ERR_INVALID_ARG, "CTRAIN_DIST_TIMEOUT='%s' is not a number of seconds > 0", env);
    }
    *out = t > 0 ? t : DEFAULT_TIMEOUT_S;
    return CT_OK;
}

ct_comm *ct_comm_new(ct_comm_kind kind, const ct_comm_opts *opts) {
    if (kind != CT_COMM_SINGLE && kind != CT_COMM_MPI && kind != CT_COMM_NCCL)
        return ct_error(CT_ERR_INVALID_ARG, "ct_comm_new: unknown communicator kind %d", (int)kind), NULL;
    if (!ct_comm_available(kind))
        return ct_error(CT_ERR_UNSUPPORTED, "ct_comm_new: this build of ctrain has no %s communicator (%s)",
                        ct_comm_kind_name(kind),
                        kind == CT_COMM_MPI ? "rebuild with MPI: Debian's libopenmpi-dev, -DCTRAIN_MPI=ON"
                                            : "it needs CUDA, NCCL and MPI at build time"),
               NULL;
    if (opts && opts->fixed_device && opts->device_index < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_comm_new: device_index %d < 0", opts->device_index), NULL;
    ct_comm *c = calloc(1, sizeof *c);
    if (!c) return ct_error(CT_ERR_OOM, "ct_comm_new: out of memory"), NULL;
    c->kind = kind;
    c->size = c->local_size = 1;
    c->device = (ct_device){.kind = CT_DEVICE_CPU};
    ct_status st = resolve_timeout(opts, &c->timeout_s);
    if (st == CT_OK && kind == CT_COMM_MPI) st = ct_comm_mpi_init(c);
    if (st == CT_OK && kind == CT_COMM_NCCL) {
        /* NCCL needs MPI to hand its unique id around and to learn the
         * ranks; the MPI communicator stays underneath for host sums. */
        ct_comm_opts bo = {.timeout_s = c->timeout_s};
        c->boot = ct_comm_new(CT_COMM_MPI, &bo);
        st = c->boot ? CT_OK : ct_last_status();
        if (st == CT_OK) {
            c->rank = c->boot->rank;
            c->size = c->boot->size;
            c->local_rank = c->boot->local_rank;
            c->local_size = c->boot->local_size;
#if defined(CTRAIN_HAVE_MPI) && defined(CTRAIN_HAVE_NCCL)
            st = ct_comm_nccl_init(c, opts);
#endif
        }
    }
    if (st != CT_OK) {
        ct_comm_free(c); /* sets no error: the reason stays */
        return NULL;
    }
    return c;
}

void ct_comm_free(ct_comm *c) {
    if (!c) return;
    if (c->ops && c->ops->free) c->ops->free(c);
    ct_comm_free(c->boot);
    free(c);
}

void ct_comm_abort(ct_comm *c, int code) {
    /* NCCL's own abort first (it frees the GPU's side), then MPI's, which
     * takes the other ranks down. */
    if (c && c->ops && c->ops->abort) c->ops->abort(c, code);
    if (c && c->boot && c->boot->ops && c->boot->ops->abort) c->boot->ops->abort(c->boot, code);
    exit(code);
}

void ct_dist_finalize(void) { ct_comm_mpi_finalize(); }

ct_comm_kind ct_comm_get_kind(const ct_comm *c) { return c ? c->kind : CT_COMM_SINGLE; }
int ct_comm_rank(const ct_comm *c) { return c ? c->rank : 0; }
int ct_comm_size(const ct_comm *c) { return c ? c->size : 1; }
int ct_comm_local_rank(const ct_comm *c) { return c ? c->local_rank : 0; }
ct_device ct_comm_device(const ct_comm *c) { return c ? c->device : (ct_device){.kind = CT_DEVICE_CPU}; }

void ct_comm_set_stream(ct_comm *c, void *stream) {
    if (c) c->stream = stream;
}

ct_status ct_comm_fail(ct_comm *c, ct_status st) {
    snprintf(c->failed, sizeof c->failed, "%s", ct_last_error());
    return st;
}

/* Every entry point starts here. */
static ct_status usable(const ct_comm *c, const char *fn) {
    if (!c) return ct_error(CT_ERR_INVALID_ARG, "%s: communicator is NULL", fn);
    if (c->failed[0])
        return ct_error(CT_ERR_DEVICE, "%s: the communicator failed earlier (%s)", fn, c->failed);
    return CT_OK;
}

ct_status ct_comm_wait_until(ct_comm *c, const char *what, ct_status (*poll)(ct_comm *c, bool *done)) {
    double deadline = now_s() + c->timeout_s;
    for (long spins = 0;; spins++) {
        bool done = false;
        ct_status st = poll(c, &done);
        if (st != CT_OK) return ct_comm_fail(c, st);
        if (done) return CT_OK;
        /* Spinning first keeps a step's latency low; after that the core
         * goes to the ranks that still compute (ranks often share cores). */
        if (spins < 2000) {
            sched_yield();
        } else {
            if (now_s() > deadline) {
                ct_error(CT_ERR_DEVICE,
                         "%s timed out after %g s waiting for the other ranks: one failed, hangs or is far "
                         "behind (CTRAIN_DIST_TIMEOUT sets the limit)",
                         what, c->timeout_s);
                return ct_comm_fail(c, CT_ERR_DEVICE);
            }
            nanosleep(&(struct timespec){0, 50000}, NULL);
        }
    }
}

ct_status ct_comm_allreduce_start(ct_comm *c, float *buf, size_t n, ct_reduce_op op) {
    ct_status st = usable(c, "ct_comm_allreduce");
    if (st != CT_OK) return st;
    if (op != CT_REDUCE_SUM && op != CT_REDUCE_AVG)
        return ct_error(CT_ERR_INVALID_ARG, "ct_comm_allreduce: unknown reduction %d", (int)op);
    if (!buf && n) return ct_error(CT_ERR_INVALID_ARG, "ct_comm_allreduce: buffer is NULL");
    if (n == 0 || !c->ops || !c->ops->allreduce_start) return CT_OK;
    return c->ops->allreduce_start(c, buf, n, op);
}

ct_status ct_comm_progress(ct_comm *c) {
    ct_status st = usable(c, "ct_comm_progress");
    if (st != CT_OK || !c->ops || !c->ops->progress) return st;
    return c->ops->progress(c);
}

ct_status ct_comm_wait(ct_comm *c) {
    ct_status st = usable(c, "ct_comm_wait");
    if (st != CT_OK || !c->ops || !c->ops->wait) return st;
    return c->ops->wait(c);
}

ct_status ct_comm_allreduce(ct_comm *c, float *buf, size_t n, ct_reduce_op op) {
    ct_status st = ct_comm_allreduce_start(c, buf, n, op);
    return st == CT_OK ? ct_comm_wait(c) : st;
}

ct_status ct_comm_broadcast(ct_comm *c, void *buf, size_t bytes, int root) {
    ct_status st = usable(c, "ct_comm_broadcast");
    if (st != CT_OK) return st;
    if (root < 0 || root >= c->size)
        return ct_error(CT_ERR_INVALID_ARG, "ct_comm_broadcast: root %d outside 0 .. %d", root, c->size - 1);
    if (!buf && bytes) return ct_error(CT_ERR_INVALID_ARG, "ct_comm_broadcast: buffer is NULL");
    if (bytes == 0 || !c->ops || !c->ops->broadcast) return CT_OK;
    return c->ops->broadcast(c, buf, bytes, root);
}

ct_status ct_comm_barrier(ct_comm *c) {
    ct_status st = usable(c, "ct_comm_barrier");
    if (st != CT_OK || !c->ops || !c->ops->barrier) return st;
    return c->ops->barrier(c);
}

ct_status ct_comm_sum_host(ct_comm *c, double *buf, size_t n) {
    ct_status st = usable(c, "ct_comm_sum_host");
    if (st != CT_OK) return st;
    if (!buf && n) return ct_error(CT_ERR_INVALID_ARG, "ct_comm_sum_host: buffer is NULL");
    if (n == 0) return CT_OK;
    /* NCCL reduces device memory; host numbers go through MPI beneath it. */
    ct_comm *h = c->boot ? c->boot : c;
    if (!h->ops || !h->ops->sum_host) return CT_OK;
    if ((st = h->ops->sum_host(h, buf, n)) != CT_OK && c != h) ct_comm_fail(c, st);
    return st;
}
