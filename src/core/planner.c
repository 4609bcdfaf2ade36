#include "core/planner.h"

#include <stdlib.h>

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static int by_size_desc(const void *pa, const void *pb, void *ctx) {
    const ct_plan_buf *bufs = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (bufs[a].bytes != bufs[b].bytes) return bufs[a].bytes < bufs[b].bytes ? 1 : -1;
    return a - b; /* stable: equal sizes keep program order */
}

/* qsort has no context argument in C11; a tiny insertion sort keeps this
 * portable and is fast enough for graphs of thousands of nodes. */
static void sort_idx(int *idx, int n, ct_plan_buf *bufs) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && by_size_desc(&idx[j], &v, bufs) > 0) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

static int by_offset(const void *pa, const void *pb) {
    const ct_plan_buf *a = *(ct_plan_buf *const *)pa, *b = *(ct_plan_buf *const *)pb;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

size_t ct_plan_arena(ct_plan_buf *bufs, int n, size_t align) {
    if (n == 0) return 0;
    int *idx = malloc((size_t)n * sizeof *idx);
    ct_plan_buf **live = malloc((size_t)n * sizeof *live);
    if (!idx || !live) {
        free(idx);
        free(live);
        return (size_t)-1;
    }
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_idx(idx, n, bufs);
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        ct_plan_buf *b = &bufs[idx[k]];
        size_t need = round_up(b->bytes ? b->bytes : 1, align);
        /* The already placed buffers alive at the same time, by offset. */
        int m = 0;
        for (int j = 0; j < k; j++) {
            ct_plan_buf *o = &bufs[idx[j]];
            if (o->first <= b->last && b->first <= o->last) live[m++] = o;
        }
        qsort(live, (size_t)m, sizeof *live, by_offset);
        size_t at = 0;
        for (int j = 0; j < m; j++) {
            if (live[j]->offset >= at + need) break; /* the gap before it fits */
            size_t end = live[j]->offset + round_up(live[j]->bytes ? live[j]->bytes : 1, align);
            if (end > at) at = end;
        }
        b->offset = at;
        if (at + need > total) total = at + need;
    }
    free(idx);
    free(live);
    return total;
}
