/* Internal: the output-size rule of convolution and pooling windows, shared
 * by the shape rules (src/core/ops_conv.c) and the kernels, which check
 * their views against it. */
#ifndef CT_CORE_CONV_GEOM_H
#define CT_CORE_CONV_GEOM_H

#include <stdint.h>

/* Output length along one axis: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1,
 * or 0 when the dilated kernel does not fit the padded input. */
static inline int64_t ct_window_out(int64_t in, int k, int stride, int pad, int dil) {
    int64_t span = (int64_t)dil * (k - 1) + 1, padded = in + 2 * (int64_t)pad;
    if (stride < 1 || span > padded) return 0;
    return (padded - span) / stride + 1;
}

#endif
