/* CPU reference implementations of the loss scaler's hooks: the fused
 * unscale and inf/NaN check over the flat gradient buffer, and
 * torch.cuda.amp.GradScaler's scale update. The state is host memory here;
 * the CUDA backend keeps it in device memory and does the same there. */
#include <math.h>

#include "cpu/cpu_util.h"

#define PAR_MIN ((int64_t)1 << 15)

ct_status ct_cpu_amp_unscale(void *g, ct_dtype dtype, size_t n, ct_amp_state *st) {
    if (dtype != CT_F32 && dtype != CT_F64)
        return ct_error(CT_ERR_DTYPE, "cpu amp_unscale: gradients must be f32 or f64, got %s", ct_dtype_name(dtype));
    if (!st || (n && !g)) return ct_error(CT_ERR_INVALID_ARG, "cpu amp_unscale: NULL buffer or state");
    if (!(st->scale > 0) || isinf(st->scale))
        return ct_error(CT_ERR_NUMERIC, "cpu amp_unscale: the loss scale is %g", (double)st->scale);
    const double scale = st->scale;
    const int64_t len = (int64_t)n;
    int found = 0;
    /* Unscaled whatever the verdict, as GradScaler does: the step is
     * skipped anyway, and the buffer is overwritten by the next backward. */
#pragma omp parallel for schedule(static) reduction(| : found) if (len >= PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        double v = ct_ld(g, dtype, i);
        found |= !isfinite(v);
        ct_st(g, dtype, i, v / scale);
    }
    st->found_inf = found ? 1 : 0;
    return CT_OK;
}

ct_status ct_cpu_amp_update(ct_amp_state *st, double growth, double backoff, int32_t growth_interval) {
    if (!st) return ct_error(CT_ERR_INVALID_ARG, "cpu amp_update: state is NULL");
    if (growth_interval < 1)
        return ct_error(CT_ERR_INVALID_ARG, "cpu amp_update: growth_interval %d < 1", (int)growth_interval);
    if (st->found_inf) {
        st->scale = (float)((double)st->scale * backoff);
        st->growth_tracker = 0;
        st->skipped++;
        return CT_OK;
    }
    int32_t successful = st->growth_tracker + 1;
    if (successful >= growth_interval) {
        /* The product is rounded to float first: a scale that would
         * overflow the float the seed is made of stays where it is. */
        float grown = (float)((double)st->scale * growth);
        if (isfinite(grown)) st->scale = grown;
        successful = 0;
    }
    st->growth_tracker = successful;
    return CT_OK;
}
