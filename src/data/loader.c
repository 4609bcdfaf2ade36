/* The batch loader: epochs of (optionally shuffled, optionally sharded)
 * batches, with an optional thread that assembles the next batch while the
 * caller trains on the current one.
 *
 * Every batch is a pure function of (dataset, options, epoch, batch number):
 * the order is the Philox permutation of (seed, epoch), batch k is the slice
 * [k * global, ...) of it and a shard's part is a fixed sub-slice. The
 * prefetch thread runs the very same function a step ahead, which is why it
 * cannot change what the caller sees, only when it is ready.
 *
 * Augmentation is part of that function: each sample is augmented as it is
 * copied into its slot, with random choices keyed by (seed, epoch, the
 * sample's dataset index), never by which thread or batch handles it.
 *
 * Without shuffle or augmentation a batch is a contiguous run of the dataset
 * and is handed out in place, with no copy and no thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data_internal.h"

struct ct_loader {
    const ct_dataset *ds;
    ct_loader_opts o;
    int shards;       /* >= 1 */
    int64_t global;   /* batch_size * shards */
    int64_t nb;       /* batches per epoch */
    int64_t *perm;    /* this epoch's order; the identity without shuffle */
    uint32_t epoch;
    bool copy;        /* assemble batches into slots (shuffle, augment) or point into ds */
    bool augment;
    ct_aug aug;
    float *scratch;   /* one image, for the thread that assembles */
    float *sx[2];     /* slots: one without prefetch, two with */
    int32_t *sy[2];

    /* The next batch number to hand out. With a thread: under mu. */
    int64_t consumed;

    bool threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* any change of the fields below; two threads, so broadcast */
    int64_t produced;   /* batches [0, produced) of this epoch are assembled */
    bool busy;          /* the thread is assembling; perm and its slot are in use */
    bool quit;
};

/* Where batch k of this shard lies in the permutation. */
static void batch_range(const ct_loader *ld, int64_t k, int64_t *start, int64_t *count,
                        int64_t *global_count) {
    const int64_t n = ld->ds->n, bs = ld->o.batch_size, S = ld->shards;
    const int64_t r = ld->shards > 1 ? ld->o.shard_index : 0;
    int64_t gstart = k * ld->global;
    int64_t gcount = n - gstart < ld->global ? n - gstart : ld->global;
    *global_count = gcount;
    if (gcount == ld->global) {
        *start = gstart + r * bs;
        *count = bs;
        return;
    }
    /* A short last global batch: as even as possible, the lower ranks taking
     * one extra; batches shorter than S were not counted in nb. */
    int64_t base = gcount / S, extra = gcount % S;
    *start = gstart + r * base + (r < extra ? r : extra);
    *count = base + (r < extra ? 1 : 0);
}

static void assemble(const ct_loader *ld, int64_t k, int slot) {
    int64_t start, count, gc;
    batch_range(ld, k, &start, &count, &gc);
    const ct_dataset *ds = ld->ds;
    const size_t row = (size_t)ds->numel * sizeof(float);
    float *x = ld->sx[slot];
    int32_t *y = ld->sy[slot];
    for (int64_t i = 0; i < count; i++) {
        int64_t src = ld->perm[start + i];
        if (ld->augment)
            ct_aug_sample(&ld->aug, ld->o.seed, ld->epoch, src, ds->x + src * ds->numel, x + i * ds->numel,
                          ld->scratch);
        else
            memcpy(x + i * ds->numel, ds->x + src * ds->numel, row);
        y[i] = ds->y[src];
    }
}

static void describe(const ct_loader *ld, int64_t k, int slot, ct_batch *b) {
    int64_t start, count, gc;
    batch_range(ld, k, &start, &count, &gc);
    if (ld->copy) {
        b->x = ld->sx[slot];
        b->y = ld->sy[slot];
    } else {
        b->x = ld->ds->x + start * ld->ds->numel;
        b->y = ld->ds->y + start;
    }
    b->indices = ld->perm + start;
    b->count = count;
    b->global_count = gc;
    b->index = k;
}

static void *prefetch_main(void *arg) {
    ct_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        /* Batch `produced` may go into slot produced % 2 once the caller has
         * moved past the batch that last used that slot, i.e. asked for
         * batch produced - 1: produced <= consumed. */
        while (!ld->quit && !(ld->produced < ld->nb && ld->produced <= ld->consumed))
            pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->quit) break;
        int64_t k = ld->produced;
        ld->busy = true;
        pthread_mutex_unlock(&ld->mu);
        assemble(ld, k, (int)(k & 1));
        pthread_mutex_lock(&ld->mu);
        ld->busy = false;
        ld->produced = k + 1;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static ct_status check_opts(const ct_dataset *ds, const ct_loader_opts *opts) {
    if (!ds || !opts)
        return ct_error(CT_ERR_INVALID_ARG, "ct_loader_new: NULL %s", ds ? "options" : "dataset");
    const int64_t n = ds->n;
    if (opts->num_shards < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_loader_new: num_shards %d < 0", opts->num_shards);
    const int shards = opts->num_shards > 1 ? opts->num_shards : 1;
    if (opts->shard_index < 0 || opts->shard_index >= shards)
        return ct_error(CT_ERR_INVALID_ARG, "ct_loader_new: shard_index %d outside [0, %d)",
                        opts->shard_index, shards);
    if (n < shards)
        return ct_error(CT_ERR_INVALID_ARG, "ct_loader_new: %lld samples cannot feed %d shards",
                        (long long)n, shards);
    if (opts->batch_size < 1 || opts->batch_size > n / shards) {
        if (shards > 1)
            return ct_error(CT_ERR_INVALID_ARG,
                            "ct_loader_new: batch_size %lld x %d shards does not fit %lld samples "
                            "(need 1 <= batch_size <= %lld)",
                            (long long)opts->batch_size, shards, (long long)n, (long long)(n / shards));
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_loader_new: batch_size %lld outside 1 .. %lld (the dataset size)",
                        (long long)opts->batch_size, (long long)n);
    }
    return CT_OK;
}

/* The permutation, the augmentation's scratch image and the batch slots;
 * false when memory runs out. */
static bool alloc_buffers(ct_loader *ld) {
    const ct_dataset *ds = ld->ds;
    ld->perm = malloc((size_t)ds->n * sizeof *ld->perm);
    bool ok = ld->perm != NULL;
    if (ok && ld->augment) ok = (ld->scratch = malloc((size_t)ds->numel * sizeof(float))) != NULL;
    for (int s = 0; ok && ld->copy && s < (ld->threaded ? 2 : 1); s++) {
        ld->sx[s] = malloc((size_t)(ld->o.batch_size * ds->numel) * sizeof(float));
        ld->sy[s] = malloc((size_t)ld->o.batch_size * sizeof(int32_t));
        ok = ld->sx[s] && ld->sy[s];
    }
    return ok;
}

/* The prefetch thread and what it synchronises with; 0 or an errno value,
 * with nothing left to destroy. */
static int start_prefetch(ct_loader *ld) {
    int err = pthread_mutex_init(&ld->mu, NULL);
    if (!err) {
        err = pthread_cond_init(&ld->cv, NULL);
        if (err) pthread_mutex_destroy(&ld->mu);
    }
    if (!err) {
        err = pthread_create(&ld->thread, NULL, prefetch_main, ld);
        if (err) {
            pthread_cond_destroy(&ld->cv);
            pthread_mutex_destroy(&ld->mu);
        }
    }
    return err;
}

ct_loader *ct_loader_new(const ct_dataset *ds, const ct_loader_opts *opts) {
    if (check_opts(ds, opts) != CT_OK) return NULL;
    const int64_t n = ds->n;
    const int shards = opts->num_shards > 1 ? opts->num_shards : 1;
    ct_loader *ld = calloc(1, sizeof *ld);
    if (!ld) {
        ct_error(CT_ERR_OOM, "ct_loader_new: out of memory");
        return NULL;
    }
    ld->ds = ds;
    ld->o = *opts;
    ld->o.augment = NULL; /* the caller's; ld->aug is the loader's copy */
    if (ct_augment_active(opts->augment)) {
        if (ct_aug_init(&ld->aug, "ct_loader_new", opts->augment, ds->shape) != CT_OK) {
            free(ld);
            return NULL;
        }
        ld->augment = true;
    }
    ld->shards = shards;
    ld->global = opts->batch_size * shards;
    int64_t tail = n % ld->global;
    ld->nb = n / ld->global + (tail > 0 && !opts->drop_last && tail >= shards ? 1 : 0);
    ld->copy = opts->shuffle || ld->augment;
    ld->threaded = ld->copy && opts->prefetch;
    if (!alloc_buffers(ld)) {
        ld->threaded = false; /* nothing to join */
        ct_loader_free(ld);
        ct_error(CT_ERR_OOM, "ct_loader_new: out of memory for batches of %lld x %lld floats",
                 (long long)opts->batch_size, (long long)ds->numel);
        return NULL;
    }
    if (opts->shuffle)
        ct_data_permutation(opts->seed, CT_DATA_STREAM_SHUFFLE, 0, n, ld->perm);
    else
        for (int64_t i = 0; i < n; i++) ld->perm[i] = i;
    int err = ld->threaded ? start_prefetch(ld) : 0;
    if (err) {
        ld->threaded = false;
        ct_loader_free(ld);
        ct_error(CT_ERR_OOM, "ct_loader_new: cannot start the prefetch thread: %s", strerror(err));
        return NULL;
    }
    return ld;
}

void ct_loader_free(ct_loader *ld) {
    if (!ld) return;
    if (ld->threaded) {
        pthread_mutex_lock(&ld->mu);
        ld->quit = true;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        /* The thread finishes the batch it may be assembling, then sees
         * quit; nothing it touches is freed before this returns. */
        pthread_join(ld->thread, NULL);
        pthread_cond_destroy(&ld->cv);
        pthread_mutex_destroy(&ld->mu);
    }
    for (int s = 0; s < 2; s++) {
        free(ld->sx[s]);
        free(ld->sy[s]);
    }
    free(ld->perm);
    free(ld->scratch);
    ct_aug_free(&ld->aug);
    free(ld);
}

ct_status ct_loader_start_epoch_at(ct_loader *ld, uint32_t epoch, int64_t first_batch) {
    if (!ld) return ct_error(CT_ERR_INVALID_ARG, "ct_loader_start_epoch: NULL loader");
    if (first_batch < 0 || first_batch > ld->nb)
        return ct_error(CT_ERR_INVALID_ARG,
                        "ct_loader_start_epoch_at: batch %lld outside 0 .. %lld (batches per epoch)",
                        (long long)first_batch, (long long)ld->nb);
    if (ld->threaded) {
        pthread_mutex_lock(&ld->mu);
        /* The permutation may be rewritten only while the thread is not
         * reading it; a batch it finishes now is simply discarded below. */
        while (ld->busy) pthread_cond_wait(&ld->cv, &ld->mu);
    }
    /* perm always holds the order of ld->epoch, so the same epoch again
     * (start_epoch(0) on a new loader, say) needs no new one. */
    if (ld->o.shuffle && epoch != ld->epoch)
        ct_data_permutation(ld->o.seed, CT_DATA_STREAM_SHUFFLE, epoch, ld->ds->n, ld->perm);
    ld->epoch = epoch;
    ld->consumed = first_batch;
    if (ld->threaded) {
        ld->produced = first_batch;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
    }
    return CT_OK;
}

ct_status ct_loader_start_epoch(ct_loader *ld, uint32_t epoch) {
    return ct_loader_start_epoch_at(ld, epoch, 0);
}

ct_status ct_loader_next(ct_loader *ld, ct_batch *b) {
    if (!ld || !b) return ct_error(CT_ERR_INVALID_ARG, "ct_loader_next: NULL argument");
    memset(b, 0, sizeof *b);
    if (!ld->threaded) {
        if (ld->consumed >= ld->nb) return CT_OK; /* end of epoch: count 0 */
        int64_t k = ld->consumed++;
        if (ld->copy) assemble(ld, k, 0);
        describe(ld, k, 0, b);
        return CT_OK;
    }
    pthread_mutex_lock(&ld->mu);
    if (ld->consumed < ld->nb) {
        while (ld->produced <= ld->consumed) pthread_cond_wait(&ld->cv, &ld->mu);
        int64_t k = ld->consumed++;
        describe(ld, k, (int)(k & 1), b);
        /* Handing out batch k frees the slot of batch k - 1 for k + 1. */
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return CT_OK;
}

int64_t ct_loader_num_batches(const ct_loader *ld) { return ld ? ld->nb : 0; }

uint32_t ct_loader_epoch(const ct_loader *ld) { return ld ? ld->epoch : 0; }
