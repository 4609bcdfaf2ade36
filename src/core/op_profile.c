/* Per-op timing of program runs (ct_op_profile_*; ctrain bench --profile).
 *
 * Off by default: then a run pays one well-predicted branch per kernel. On,
 * every kernel call is bracketed by the backend's sync and a monotonic clock,
 * so the figures are wall time per op type on any backend (on a GPU the sync
 * serialises the queue: the total is then slower than a normal run, the
 * shares are still right). One global table, not per program: what a user
 * asks is where a workload's step goes, whichever programs run it. Not
 * thread-safe by design: programs run from one host thread. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/op_profile.h"
#include "ctrain/graph.h"

static bool g_on;
/* Rows: each op, then each op with a relu fused into it (program_fuse.c),
 * reported as "conv2d+relu", then each op that writes the half output of
 * the cast fused into it, "layer_norm+cast". */
#define ROWS (3 * CT_OP_COUNT)
static double g_secs[ROWS];
static long long g_calls[ROWS];

void ct_op_profile_enable(bool on) { g_on = on; }
bool ct_op_profile_enabled(void) { return g_on; }

void ct_op_profile_reset(void) {
    memset(g_secs, 0, sizeof g_secs);
    memset(g_calls, 0, sizeof g_calls);
}

double ct_op_profile_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ct_op_profile_add(int op, const ct_attrs *a, double seconds) {
    if (op < 0 || op >= CT_OP_COUNT) return;
    int row = op + (a && a->fused_relu ? CT_OP_COUNT : a && a->fused_cast ? 2 * CT_OP_COUNT : 0);
    g_secs[row] += seconds;
    g_calls[row]++;
}

/* Ops by time, largest first; `per` divides the times (e.g. the number of
 * timed steps, for milliseconds per step). */
void ct_op_profile_report(FILE *f, double per) {
    if (!f) return;
    if (!(per > 0)) per = 1;
    int order[ROWS], n = 0;
    double total = 0;
    for (int op = 0; op < ROWS; op++)
        if (g_calls[op]) {
            order[n++] = op;
            total += g_secs[op];
        }
    for (int i = 1; i < n; i++) /* insertion sort: a few dozen ops */
        for (int j = i; j > 0 && g_secs[order[j]] > g_secs[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(f, "  %-20s %10s %7s %10s\n", "op", "ms", "share", "calls");
    for (int i = 0; i < n; i++) {
        int op = order[i];
        char name[40];
        static const char *const band[3] = {"", "+relu", "+cast"};
        snprintf(name, sizeof name, "%s%s", ct_op_name(op % CT_OP_COUNT), band[op / CT_OP_COUNT]);
        fprintf(f, "  %-20s %10.3f %6.1f%% %10.1f\n", name, 1e3 * g_secs[op] / per,
                total > 0 ? 100.0 * g_secs[op] / total : 0.0, (double)g_calls[op] / per);
    }
    fprintf(f, "  %-20s %10.3f\n", "total", 1e3 * total / per);
}
