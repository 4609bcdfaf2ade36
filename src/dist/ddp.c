/* The data-parallel gradient reducer.
 *
 * The flat gradient buffer is cut into buckets of contiguous ranges, built
 * from the last parameter backwards: backward produces the last layers'
 * gradients first, so the first bucket fills while most of backward is still
 * to run. The program's gradient-ready hook counts down each bucket's
 * parameters; buckets are launched strictly in order (0, 1, 2, ...) as soon
 * as they and all before them are complete, so every rank issues the same
 * collectives in the same order whatever its timing - the one rule MPI and
 * NCCL impose. Ranges include the alignment gaps between parameters (zero)
 * and tile the whole buffer, so bucketed and whole-buffer reductions add the
 * same numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/program_internal.h"
#include "ctrain/dist.h"

typedef struct bucket {
    size_t lo, hi;       /* elements [lo, hi) of the flat buffer */
    int pending;         /* gradients still to come in the current run */
} bucket;

struct ct_ddp {
    ct_comm *c;
    const ct_graph *g;
    ct_program *p;
    ct_ddp_opts o;
    const ct_backend *be;
    int n_params;
    int *bucket_of;      /* per parameter */
    bucket *b;
    int nb;
    /* the current synchronised run */
    int next;            /* the next bucket to launch */
    double scale;
    bool in_backward;
    ct_status err;       /* the first failure inside the hook */
    char why[512];
    ct_ddp_stats stats;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ct_ddp_free(ct_ddp *d) {
    if (!d) return;
    free(d->bucket_of);
    free(d->b);
    free(d);
}

/* Buckets from the last parameter down: a bucket closes before the
 * parameter that would take it past bucket_bytes (a larger parameter is a
 * bucket of its own), so the small last layers start their all-reduce
 * before the large layers' gradients are computed. The last bucket reaches
 * down to offset 0. */
static ct_status make_buckets(ct_ddp *d) {
    const ct_graph *g = d->g;
    size_t cap = d->o.bucket_bytes / sizeof(float);
    d->bucket_of = malloc((size_t)(d->n_params ? d->n_params : 1) * sizeof *d->bucket_of);
    d->b = malloc((size_t)(d->n_params ? d->n_params : 1) * sizeof *d->b);
    if (!d->bucket_of || !d->b) return ct_error(CT_ERR_OOM, "ct_ddp_new: out of memory");
    size_t hi = ct_program_param_numel(d->p), lo = hi;
    for (int i = d->n_params - 1; i >= 0; i--) {
        size_t off = ct_program_param_offset(d->p, ct_graph_param(g, i));
        if (off == (size_t)-1) return ct_last_status();
        if (lo < hi && hi - off > cap) {
            d->b[d->nb++] = (bucket){lo, hi, 0};
            hi = lo;
        }
        d->bucket_of[i] = d->nb;
        lo = off;
    }
    if (d->n_params) d->b[d->nb++] = (bucket){0, hi, 0};
    d->stats.buckets = d->o.no_overlap ? (d->n_params ? 1 : 0) : d->nb;
    return CT_OK;
}

ct_ddp *ct_ddp_new(ct_comm *c, const ct_graph *g, ct_program *p, const ct_ddp_opts *opts) {
    static const char fn[] = "ct_ddp_new";
    if (!c || !g || !p) return ct_error(CT_ERR_INVALID_ARG, "%s: NULL communicator, graph or program", fn), NULL;
    if (ct_graph_num_params(g) && ct_program_param_dtype(p) != CT_F32)
        return ct_error(CT_ERR_DTYPE, "%s: the parameters are %s; the reducer averages f32 gradients", fn,
                        ct_dtype_name(ct_program_param_dtype(p))),
               NULL;
    ct_device pd = ct_program_device(p), cd = ct_comm_device(c);
    if (ct_comm_get_kind(c) != CT_COMM_SINGLE && (pd.kind != cd.kind || (pd.kind != CT_DEVICE_CPU && pd.index != cd.index))) {
        char a[32], b[32];
        ct_device_str(pd, a, sizeof a);
        ct_device_str(cd, b, sizeof b);
        return ct_error(CT_ERR_UNSUPPORTED, "%s: the program runs on %s but the %s communicator reduces on %s%s", fn,
                        a, ct_comm_kind_name(ct_comm_get_kind(c)), b,
                        pd.kind == CT_DEVICE_CPU ? "" : " (use NCCL for GPUs)"),
               NULL;
    }
    ct_ddp *d = calloc(1, sizeof *d);
    if (!d) return ct_error(CT_ERR_OOM, "%s: out of memory", fn), NULL;
    d->c = c;
    d->g = g;
    d->p = p;
    d->o = opts ? *opts : (ct_ddp_opts){0};
    if (d->o.bucket_bytes == 0) d->o.bucket_bytes = CT_DDP_DEFAULT_BUCKET;
    d->be = ct_program_backend(p);
    d->n_params = ct_graph_num_params(g);
    d->err = CT_OK;
    if (make_buckets(d) != CT_OK) {
        ct_ddp_free(d); /* sets no error: the reason stays */
        return NULL;
    }
    return d;
}

ct_status ct_ddp_broadcast_buffers(ct_ddp *d) {
    if (!d) return ct_error(CT_ERR_INVALID_ARG, "ct_ddp_broadcast_buffers: reducer is NULL");
    size_t bytes = ct_program_buffer_numel(d->p) * ct_dtype_size(ct_program_buffer_dtype(d->p));
    ct_status st = ct_comm_broadcast(d->c, ct_program_buffers(d->p), bytes, 0);
    return st == CT_OK ? CT_OK : ct_error(st, "broadcasting the buffers from rank 0: %s", ct_last_error());
}

ct_status ct_ddp_broadcast(ct_ddp *d) {
    if (!d) return ct_error(CT_ERR_INVALID_ARG, "ct_ddp_broadcast: reducer is NULL");
    size_t bytes = ct_program_param_numel(d->p) * sizeof(float);
    ct_status st = ct_comm_broadcast(d->c, ct_program_params(d->p), bytes, 0);
    if (st != CT_OK) return ct_error(st, "broadcasting the weights from rank 0: %s", ct_last_error());
    return ct_ddp_broadcast_buffers(d);
}

/* Multiplies elements [lo, hi) by scale (this rank's weight) and starts
 * their average. */
static ct_status start(ct_ddp *d, size_t lo, size_t hi) {
    float *g = (float *)ct_program_grads(d->p) + lo;
    ct_status st = CT_OK;
    if (d->scale != 1.0) {
        if (!d->be->scale_clamp)
            return ct_error(CT_ERR_UNSUPPORTED, "the %s backend cannot scale gradients", d->be->name);
        st = d->be->scale_clamp(g, CT_F32, hi - lo, d->scale, 0);
    }
    return st == CT_OK ? ct_comm_allreduce_start(d->c, g, hi - lo, CT_REDUCE_AVG) : st;
}

/* Starts every complete bucket whose predecessors have started. */
static ct_status launch_ready(ct_ddp *d) {
    while (d->next < d->nb && d->b[d->next].pending == 0) {
        bucket *b = &d->b[d->next++];
        ct_status st = start(d, b->lo, b->hi);
        if (st != CT_OK) return st;
        if (d->in_backward) d->stats.early++;
    }
    return CT_OK;
}

static void on_grad_ready(void *user, int param) {
    ct_ddp *d = user;
    if (d->err != CT_OK || param < 0 || param >= d->n_params) return;
    d->b[d->bucket_of[param]].pending--;
    ct_status st = launch_ready(d);
    /* MPI moves a started reduction along only inside MPI calls. */
    if (st == CT_OK) st = ct_comm_progress(d->c);
    if (st != CT_OK) {
        d->err = st;
        snprintf(d->why, sizeof d->why, "%s", ct_last_error());
    }
}

/* Waits for the started reductions, counting the time as not hidden. */
static ct_status finish(ct_ddp *d) {
    double t0 = now_s();
    ct_status st = ct_comm_wait(d->c);
    d->stats.wait_s += now_s() - t0;
    if (st == CT_OK) d->stats.reductions++;
    return st == CT_OK ? CT_OK : ct_error(st, "averaging the gradients: %s", ct_last_error());
}

ct_status ct_ddp_sync(ct_ddp *d, double scale) {
    if (!d) return ct_error(CT_ERR_INVALID_ARG, "ct_ddp_sync: reducer is NULL");
    d->scale = scale;
    ct_status st = start(d, 0, ct_program_param_numel(d->p));
    if (st != CT_OK) return ct_error(st, "averaging the gradients: %s", ct_last_error());
    return finish(d);
}

ct_status ct_ddp_run(ct_ddp *d, ct_program *q, bool sync, double scale) {
    if (!d || !q) return ct_error(CT_ERR_INVALID_ARG, "ct_ddp_run: NULL reducer or program");
    if (ct_program_grads(q) != ct_program_grads(d->p))
        return ct_error(CT_ERR_INVALID_ARG, "ct_ddp_run: the program does not share the reducer's gradients");
    if (!sync) return ct_program_run(q);
    if (d->o.no_overlap) {
        ct_status st = ct_program_run(q);
        return st == CT_OK ? ct_ddp_sync(d, scale) : st;
    }
    for (int k = 0; k < d->nb; k++) d->b[k].pending = 0;
    for (int i = 0; i < d->n_params; i++)
        if (ct_program_computes_grad(q, i)) d->b[d->bucket_of[i]].pending++;
    d->next = 0;
    d->scale = scale;
    d->err = CT_OK;
    d->in_backward = true;
    /* Buckets no gradient of q reaches (frozen tail layers) go first. */
    ct_status st = launch_ready(d);
    if (st != CT_OK) {
        d->in_backward = false;
        return ct_error(st, "averaging the gradients: %s", ct_last_error());
    }
    ct_program_set_grad_hook(q, on_grad_ready, d);
    st = ct_program_run(q);
    ct_program_set_grad_hook(q, NULL, NULL);
    d->in_backward = false;
    if (st != CT_OK) return st;
    if (d->err != CT_OK) return ct_error(d->err, "averaging the gradients: %s", d->why);
    /* Whatever the hook did not start (nothing, unless a gradient was never
     * reported), in order. */
    for (int k = d->next; k < d->nb; k++) d->b[k].pending = 0;
    if ((st = launch_ready(d)) != CT_OK) return ct_error(st, "averaging the gradients: %s", ct_last_error());
    return finish(d);
}

ct_ddp_stats ct_ddp_get_stats(const ct_ddp *d) { return d ? d->stats : (ct_ddp_stats){0}; }
