/* Internal: the activation memory planner.
 *
 * Given each buffer's size and lifetime (the first and last step of the
 * program that touch it), assigns offsets in one arena so that buffers
 * whose lifetimes overlap never overlap in memory. Greedy by size, largest
 * first, each at the lowest offset that fits: simple and close to optimal
 * for the chain-like graphs of training steps. */
#ifndef CT_CORE_PLANNER_H
#define CT_CORE_PLANNER_H

#include <stddef.h>

typedef struct ct_plan_buf {
    size_t bytes;
    int first, last;   /* inclusive step range */
    size_t offset;     /* result */
} ct_plan_buf;

/* Places n buffers; returns the arena size (bytes), each offset aligned to
 * `align`. Returns (size_t)-1 on out of memory. */
size_t ct_plan_arena(ct_plan_buf *bufs, int n, size_t align);

#endif
