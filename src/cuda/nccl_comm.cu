// The NCCL communicator (dist.h, CT_COMM_NCCL): all-reduce and broadcast of
// device buffers, one GPU per rank.
//
// MPI sets it up (src/dist/comm.c makes the MPI communicator first): rank 0
// creates NCCL's unique id and MPI_Bcast hands it to the others, and the
// local rank picks the GPU. Collectives run on a stream of their own, after
// an event recorded on the compute stream, so a bucket's all-reduce overlaps
// the backward kernels queued after it. Waiting polls the stream's event and
// NCCL's asynchronous error state with the communicator's deadline; on an
// error or a timeout the NCCL communicator is aborted (the documented way to
// free a rank stuck in a collective whose peer died) and the error returned.
//
// Compiled only when CUDA and NCCL are found, and used only when MPI is
// built in too.
#if defined(CTRAIN_HAVE_NCCL) && defined(CTRAIN_HAVE_MPI)

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#include "cuda/cuda_common.cuh"

extern "C" {
#include "core/error.h"
#include "dist/comm_internal.h"
}

namespace {

struct nccl_state {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;  // collectives
    cudaEvent_t ready = nullptr;    // compute stream -> collectives
    cudaEvent_t done = nullptr;     // collectives -> compute stream
    bool aborted = false;
};

nccl_state *state(ct_comm *c) { return static_cast<nccl_state *>(c->impl); }

// The stream set with ct_comm_set_stream, else the CUDA backend's: its
// stream is non-blocking, so the legacy default stream (NULL) would order
// the collectives after none of its kernels (the gradients would be read
// before backward wrote them) and nothing queued on it after them.
cudaStream_t compute_stream(ct_comm *c) {
    if (c->stream) return static_cast<cudaStream_t>(c->stream);
    ct_cuda_ctx *ctx = ct_cuda_ctx_get();
    return ctx ? ctx->stream : nullptr;
}

ct_status cuda_fail(ct_comm *c, cudaError_t e, const char *call) {
    cudaGetLastError();
    ct_error(CT_ERR_DEVICE, "rank %d (cuda:%d): %s failed: %s", c->rank, c->device.index, call,
             cudaGetErrorString(e));
    return ct_comm_fail(c, CT_ERR_DEVICE);
}

// A failed collective leaves the ranks out of step: the communicator is
// aborted so that no kernel of it keeps the GPU busy, and refuses further use.
ct_status nccl_fail(ct_comm *c, ncclResult_t r, const char *call) {
    nccl_state *s = state(c);
    ct_error(CT_ERR_DEVICE, "rank %d (cuda:%d): %s failed: %s%s%s", c->rank, c->device.index, call,
             ncclGetErrorString(r), ncclGetLastError(s->comm)[0] ? ": " : "", ncclGetLastError(s->comm));
    if (s->comm && !s->aborted) {
        ncclCommAbort(s->comm);
        s->aborted = true;
    }
    return ct_comm_fail(c, CT_ERR_DEVICE);
}

// The collectives wait for what the compute stream has queued so far.
ct_status after_compute(ct_comm *c) {
    nccl_state *s = state(c);
    cudaError_t e = cudaEventRecord(s->ready, compute_stream(c));
    if (e == cudaSuccess) e = cudaStreamWaitEvent(s->stream, s->ready, 0);
    return e == cudaSuccess ? CT_OK : cuda_fail(c, e, "ordering the collective after the compute stream");
}

ct_status poll_done(ct_comm *c, bool *done) {
    nccl_state *s = state(c);
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(s->comm, &async);
    if (r != ncclSuccess) return nccl_fail(c, r, "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress) return nccl_fail(c, async, "an NCCL collective");
    cudaError_t e = cudaEventQuery(s->done);
    if (e == cudaErrorNotReady) {
        *done = false;
        return CT_OK;
    }
    if (e != cudaSuccess) return cuda_fail(c, e, "an NCCL collective (cudaEventQuery)");
    *done = true;
    return CT_OK;
}

ct_status nccl_allreduce_start(ct_comm *c, float *buf, size_t n, ct_reduce_op op) {
    ct_status st = after_compute(c);
    if (st != CT_OK) return st;
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat32, op == CT_REDUCE_AVG ? ncclAvg : ncclSum,
                                   state(c)->comm, state(c)->stream);
    return r == ncclSuccess ? CT_OK : nccl_fail(c, r, "ncclAllReduce");
}

ct_status nccl_progress(ct_comm *c) {
    bool done;
    nccl_state *s = state(c);
    cudaError_t e = cudaEventRecord(s->done, s->stream);
    if (e != cudaSuccess) return cuda_fail(c, e, "cudaEventRecord");
    return poll_done(c, &done);
}

ct_status nccl_wait(ct_comm *c) {
    nccl_state *s = state(c);
    cudaError_t e = cudaEventRecord(s->done, s->stream);
    if (e != cudaSuccess) return cuda_fail(c, e, "cudaEventRecord");
    ct_status st = ct_comm_wait_until(c, "an NCCL collective", poll_done);
    if (st != CT_OK) {
        if (!s->aborted) {
            ncclCommAbort(s->comm);
            s->aborted = true;
        }
        return st;
    }
    e = cudaStreamWaitEvent(compute_stream(c), s->done, 0);
    return e == cudaSuccess ? CT_OK : cuda_fail(c, e, "ordering the compute stream after the collectives");
}

ct_status nccl_broadcast(ct_comm *c, void *buf, size_t bytes, int root) {
    ct_status st = after_compute(c);
    if (st != CT_OK) return st;
    ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclInt8, root, state(c)->comm, state(c)->stream);
    if (r != ncclSuccess) return nccl_fail(c, r, "ncclBroadcast");
    return nccl_wait(c);
}

// Host-side synchronisation is MPI's business.
ct_status nccl_barrier(ct_comm *c) { return ct_comm_barrier(c->boot); }

void nccl_abort(ct_comm *c, int code) {
    (void)code;
    nccl_state *s = state(c);
    if (s && s->comm && !s->aborted) {
        ncclCommAbort(s->comm);
        s->aborted = true;
    }
}

void nccl_free(ct_comm *c) {
    nccl_state *s = state(c);
    if (!s) return;
    if (s->comm && !s->aborted) ncclCommDestroy(s->comm);
    if (s->done) cudaEventDestroy(s->done);
    if (s->ready) cudaEventDestroy(s->ready);
    if (s->stream) cudaStreamDestroy(s->stream);
    delete s;
    c->impl = nullptr;
}

const ct_comm_ops nccl_ops = {
    nccl_allreduce_start, nccl_progress, nccl_wait, nccl_broadcast, nccl_barrier, nullptr, nccl_abort, nccl_free,
};

// This rank's GPU: the one asked for, else local rank modulo the GPUs it
// sees; made current.
ct_status pick_device(ct_comm *c, const ct_comm_opts *o, int *out) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return ct_error(CT_ERR_DEVICE, "ct_comm_new: rank %d: no GPU for NCCL (%s)", c->rank,
                        e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
    }
    int dev = o && o->fixed_device ? o->device_index : c->local_rank % count;
    if (dev >= count)
        return ct_error(CT_ERR_INVALID_ARG, "ct_comm_new: rank %d: cuda:%d asked for, %d GPUs visible", c->rank, dev,
                        count);
    // NCCL refuses two ranks on one GPU; saying why beats its own message.
    // Only when every rank sees every GPU: a launcher that binds GPUs to
    // ranks (Slurm's --gpu-bind, a CUDA_VISIBLE_DEVICES per rank) may show
    // each rank one GPU of its own, which local_rank % count then picks;
    // NCCL itself still refuses a GPU that two ranks really share.
    if (!(o && o->fixed_device) && c->local_size > count && !getenv("CUDA_VISIBLE_DEVICES"))
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_comm_new: %d ranks on this machine but %d GPUs visible: start one rank per GPU",
                        c->local_size, count);
    if ((e = cudaSetDevice(dev)) != cudaSuccess) {
        cudaGetLastError();
        return ct_error(CT_ERR_DEVICE, "ct_comm_new: rank %d: cudaSetDevice(%d) failed: %s", c->rank, dev,
                        cudaGetErrorString(e));
    }
    *out = dev;
    return CT_OK;
}

}  // namespace

extern "C" ct_status ct_comm_nccl_init(ct_comm *c, const ct_comm_opts *o) {
    int dev = 0;
    ct_status picked = pick_device(c, o, &dev);
    char why[1024] = "";
    if (picked != CT_OK) snprintf(why, sizeof why, "%s", ct_last_error());
    // Every rank learns whether every rank has its GPU before any of them
    // enters ncclCommInitRank, which waits for all ranks with no deadline:
    // a rank that failed alone would otherwise leave the others hanging.
    double failed = picked != CT_OK ? 1.0 : 0.0;
    ct_status voted = ct_comm_sum_host(c->boot, &failed, 1);
    if (picked != CT_OK) return ct_error(picked, "%s", why);
    if (voted != CT_OK) return ct_error(voted, "ct_comm_new: rank %d: waiting for the other ranks' GPUs: %s", c->rank,
                                        ct_last_error());
    if (failed > 0)
        return ct_error(CT_ERR_DEVICE, "ct_comm_new: rank %d: %.0f other rank(s) could not set up their GPU", c->rank,
                        failed);
    cudaError_t e = cudaSuccess;
    c->device = ct_device{CT_DEVICE_CUDA, dev};
    nccl_state *s = new (std::nothrow) nccl_state;
    if (!s) return ct_error(CT_ERR_OOM, "ct_comm_new: out of memory");
    c->impl = s;
    c->ops = &nccl_ops;

    ncclUniqueId id = {};
    ncclResult_t r = ncclSuccess;
    if (c->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess)
        return ct_error(CT_ERR_DEVICE, "ct_comm_new: ncclGetUniqueId failed: %s", ncclGetErrorString(r));
    // Had rank 0 failed above, it would have returned: the others then time
    // out in this broadcast, which names what they waited for.
    ct_status st = ct_comm_broadcast(c->boot, &id, sizeof id, 0);
    if (st != CT_OK) return ct_error(st, "ct_comm_new: sending NCCL's unique id: %s", ct_last_error());
    if ((r = ncclCommInitRank(&s->comm, c->size, id, c->rank)) != ncclSuccess) {
        s->comm = nullptr;
        return ct_error(CT_ERR_DEVICE, "ct_comm_new: rank %d (cuda:%d): ncclCommInitRank failed: %s", c->rank, dev,
                        ncclGetErrorString(r));
    }
    if ((e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming)) != cudaSuccess) {
        cudaGetLastError();
        return ct_error(CT_ERR_DEVICE, "ct_comm_new: rank %d (cuda:%d): creating the NCCL stream: %s", c->rank, dev,
                        cudaGetErrorString(e));
    }
    return CT_OK;
}

#endif
