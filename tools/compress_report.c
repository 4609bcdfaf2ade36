/* The sparsity line of `ctrain eval` (docs/compression.md): the share of
 * exact zeros over every weight of a file (float tensors of two or more
 * dimensions, not a checkpoint's optimizer state, best weights or masks)
 * and per weight. Printed only when some weight has a zero: a dense model
 * reports as it always did. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress_cli.h"

static bool is_weight(const ct_st_file *f, int i, int64_t *n) {
    const char *name = ct_st_name(f, i);
    ct_dtype dt;
    ct_shape s;
    if (strncmp(name, "optim.", 6) == 0 || strncmp(name, "best.", 5) == 0 || strncmp(name, "prune.", 6) == 0)
        return false;
    if (ct_st_info(f, i, &dt, &s) != CT_OK || s.ndim < 2 || !ct_dtype_is_float(dt)) return false;
    *n = ct_shape_numel(s);
    return true;
}

static int64_t zeros_of(const ct_st_file *f, int i, int64_t n) {
    float *v = malloc((size_t)n * sizeof *v + 1);
    int64_t z = 0;
    if (v && ct_st_read(f, i, CT_F32, v, (size_t)n * sizeof *v) == CT_OK)
        for (int64_t j = 0; j < n; j++) z += v[j] == 0.0f;
    free(v);
    return z;
}

void compress_print_sparsity(const ct_st_file *f) {
    char layers[1024];
    size_t len = 0;
    int64_t zeros = 0, total = 0;
    layers[0] = 0;
    for (int i = 0; i < ct_st_count(f); i++) {
        int64_t n;
        if (!is_weight(f, i, &n)) continue;
        int64_t z = zeros_of(f, i, n);
        zeros += z;
        total += n;
        if (len < sizeof layers)
            len += (size_t)snprintf(layers + len, sizeof layers - len, "%s%s %.2f%%", len ? ", " : "", ct_st_name(f, i),
                                    n ? 100.0 * (double)z / (double)n : 0.0);
    }
    if (zeros == 0) return;
    printf("sparsity %.2f%% of %lld weights (exact zeros): %s\n", 100.0 * (double)zeros / (double)total,
           (long long)total, layers);
}
