/* ct_blas_info(): which BLAS the CPU backend's matrix products run on, for
 * `ctrain bench` records and bug reports (a benchmark figure means little
 * without the BLAS build and thread count behind it). */
#include <cblas.h>
#include <stdio.h>

#include "ctrain/device.h"

const char *ct_blas_info(void) {
    /* Built once; a benchmark asks before any thread of its own runs. */
    static char info[256];
    if (!info[0]) {
        /* The config string already starts with "OpenBLAS <version>". */
        const char *config = openblas_get_config();
        snprintf(info, sizeof info, "%s, %d thread%s", config ? config : "OpenBLAS",
                 openblas_get_num_threads(), openblas_get_num_threads() == 1 ? "" : "s");
    }
    return info;
}
