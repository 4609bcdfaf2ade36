/* Internal: the F32 convolution forward and input gradient through oneDNN
 * (Debian's libdnnl-dev), where the build found it (CTRAIN_HAVE_DNNL, gcc
 * builds only). docs/cpu_backend.md says why and what it measured.
 *
 * One cached oneDNN primitive per geometry, created when the kernel
 * declares its scratch (at ct_compile) and rebuilt only when the number of
 * OpenMP threads changed. The blocked copies of x, the weight and y that
 * oneDNN's direct kernels want live in ctrain's scratch, and so does
 * oneDNN's own scratchpad (user mode); a geometry whose primitive or
 * reorders would need a scratchpad (whose size depends on the thread
 * count) is left to the reference path, so the declared size holds for
 * every thread count. */
#ifndef CT_CPU_CONV_ONEDNN_H
#define CT_CPU_CONV_ONEDNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct ct_conv_shape {
    int op;                 /* CT_OP_CONV2D or CT_OP_CONV2D_GRAD_INPUT */
    int64_t n, c, h, w;     /* x */
    int64_t o, oh, ow;      /* y */
    int kh, kw, stride[2], pad[2], dil[2], groups;
    int bias;               /* CONV2D with a bias */
} ct_conv_shape;

/* Whether oneDNN can run this geometry; *bytes is the scratch it then
 * needs. Creates and caches the primitive (the declaration, at compile). */
bool ct_conv_onednn_declare(const ct_conv_shape *s, size_t *bytes);

/* Runs it: forward y = conv(x, w) + b (src = x, dst = y), or the input
 * gradient (src = dy, dst = dx). False when oneDNN did not run (not
 * available, never declared, the thread count changed the layouts): the
 * caller runs the reference path. *st is the status when it did run. */
bool ct_conv_onednn_run(const ct_conv_shape *s, const float *src, const float *w, const float *b, float *dst,
                        void *scratch, ct_status *st);

#endif
