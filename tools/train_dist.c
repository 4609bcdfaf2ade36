/* `ctrain train` under mpirun or srun: the same command line on every rank.
 *
 * MPI starts only when a launcher started this process (or --dist asks for
 * it), so a plain `ctrain train` never touches MPI. A launcher that started
 * several ranks of a build without MPI is an error rather than N copies of
 * the same run writing the same files.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train_dist.h"

#define CMD "train"

bool train_dist_open(train_cfg *c, ct_comm **out) {
    *out = NULL;
    const char *mode = c->dist ? c->dist : "auto";
    bool gpu = c->device.kind == CT_DEVICE_CUDA;
    ct_comm_kind kind = gpu ? CT_COMM_NCCL : CT_COMM_MPI;
    if (strcmp(mode, "off") == 0) return true;
    if (strcmp(mode, "auto") == 0) {
        if (!ct_dist_launched()) return true;
        if (!ct_comm_available(kind)) {
            if (ct_dist_launched_size() <= 1) return true;
            fprintf(stderr,
                    "ctrain: %s: started as one of %d ranks, but this ctrain has no %s communicator: every rank "
                    "would train alone (rebuild with %s, or pass --dist off)\n",
                    CMD, ct_dist_launched_size(), ct_comm_kind_name(kind), gpu ? "NCCL and MPI" : "MPI");
            return false;
        }
    } else {
        kind = strcmp(mode, "nccl") == 0 ? CT_COMM_NCCL : CT_COMM_MPI;
        /* NCCL would put every rank on a GPU whatever --device said. */
        if (kind == CT_COMM_NCCL && !gpu) {
            char d[32];
            fprintf(stderr, "ctrain: %s: --dist nccl reduces on GPUs and needs --device cuda (the device is %s)\n",
                    CMD, ct_device_str(c->device, d, sizeof d));
            return false;
        }
    }
    /* "cuda" leaves the GPU to the local rank; "cuda:N" fixes it. */
    ct_comm_opts o = {.timeout_s = c->dist_timeout,
                      .fixed_device = gpu && strchr(c->device_text, ':') != NULL,
                      .device_index = c->device.index};
    if (!(*out = ct_comm_new(kind, &o))) {
        cli_fail("train: --dist");
        /* The other ranks may be waiting inside their own ct_comm_new
         * (ncclCommInitRank has no deadline), and Open MPI's MPI_Finalize,
         * which exit() would run, waits for every rank to reach it: the job
         * would hang. Leaving without it makes the launcher end the job. */
        if (ct_dist_launched()) {
            fflush(stdout);
            fflush(stderr);
            _exit(CLI_EXIT_FAIL);
        }
        return false;
    }
    if (kind == CT_COMM_NCCL) c->device = ct_comm_device(*out);
    return true;
}

void train_dist_describe(const train_cfg *c, const ct_comm *comm) {
    int n = ct_comm_size(comm);
    printf("data parallel: %d rank%s (%s), %lld samples per rank and batch", n, n == 1 ? "" : "s",
           ct_comm_kind_name(ct_comm_get_kind(comm)), (long long)(c->batch_size / n));
    if (c->no_overlap)
        printf(", one all-reduce after backward\n");
    else
        printf(", all-reduce in %zu KiB buckets during backward\n", c->bucket_kb);
    fflush(stdout);
}
