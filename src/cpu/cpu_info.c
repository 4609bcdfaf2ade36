/* ct_blas_info(): which BLAS the CPU backend's matrix products run on, for
 * `ctrain bench` records and bug reports (a benchmark figure means little
 * without the BLAS build and thread count behind it). The kernel set
 * (corename) is the one OpenBLAS's DYNAMIC_ARCH picked for this CPU. */
#include <cblas.h>
#include <stdio.h>

#include "ctrain/device.h"

const char *ct_blas_info(void) {
    /* Built once; a benchmark asks before any thread of its own runs. */
    static char info[256];
    if (!info[0]) {
        /* The config string already starts with "OpenBLAS <version>". */
        const char *config = openblas_get_config();
        /* How its threads run matters as much as how many: the pthread
         * build keeps a pool of its own beside OpenMP's (docs/cpu_backend.md). */
        int par = openblas_get_parallel();
        const char *pool = par == 2 ? "OpenMP's pool" : par == 1 ? "its own pthread pool" : "sequential";
        const char *core = openblas_get_corename();
        snprintf(info, sizeof info, "%s, kernels %s, %d thread%s (%s)", config ? config : "OpenBLAS",
                 core ? core : "unknown", openblas_get_num_threads(),
                 openblas_get_num_threads() == 1 ? "" : "s", pool);
    }
    return info;
}
