/* Internal: the fake-quantization op (ops_fakequant.c), its backward
 * (grad_fakequant.c) and the one formula both backends compute.
 *
 * FAKE_QUANT is PyTorch's fake_quantize_per_tensor_affine /
 * fake_quantize_per_channel_affine: with inv = 1 / scale and zp the zero
 * point rounded to an integer,
 *     q = round(x * inv) + zp                 (half to even)
 *     y = (clamp(q, quant_min, quant_max) - zp) * scale
 * computed in float (double for F64 tensors), as torch computes it. Its
 * gradient is the straight-through estimator of torch's FakeQuantize:
 * dx = dy where quant_min <= q <= quant_max, 0 elsewhere; scale and zero
 * point get none (they come from observed statistics, not from training).
 * Included from C++ (.cu) too.
 */
#ifndef CT_CORE_FAKEQUANT_H
#define CT_CORE_FAKEQUANT_H

#include <math.h>
#include <stdbool.h>

#ifdef __CUDACC__
#define CT_FQ_FN __host__ __device__ static inline
#else
#define CT_FQ_FN static inline
#include "core/autodiff.h"
/* The backward of FAKE_QUANT node nd: one FAKE_QUANT_GRAD node for x. */
bool ct_grad_fake_quant(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);
#endif

/* One element in float; *inside: q within the range (the gradient mask). */
CT_FQ_FN float ct_fq_f32(float x, float scale, float zp_in, float qmin, float qmax, bool *inside) {
    float inv = 1.0f / scale, zp = rintf(zp_in);
    float q = rintf(x * inv) + zp;
    *inside = q >= qmin && q <= qmax;
    float c = q < qmin ? qmin : q > qmax ? qmax : q;
    return (c - zp) * scale;
}

/* The same in double, for F64 tensors (gradient checks). */
CT_FQ_FN double ct_fq_f64(double x, double scale, double zp_in, double qmin, double qmax, bool *inside) {
    double inv = 1.0 / scale, zp = rint(zp_in);
    double q = rint(x * inv) + zp;
    *inside = q >= qmin && q <= qmax;
    double c = q < qmin ? qmin : q > qmax ? qmax : q;
    return (c - zp) * scale;
}

#endif
