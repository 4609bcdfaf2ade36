/* Internal: the F32 and BF16 convolutions (forward, input gradient, and
 * the weight gradient of one chunk of the batch) through oneDNN (Debian's
 * libdnnl-dev), where the build found it (CTRAIN_HAVE_DNNL, gcc builds
 * only). docs/cpu_backend.md says why and what it measured. BF16 operands
 * are multiplied in BF16 with F32 accumulation; k_conv.c runs them only
 * where the CPU has BF16 units (ct_cpu_bf16_native).
 *
 * One cached oneDNN primitive per geometry, created when the kernel
 * declares its scratch (at ct_compile): nothing is created during a step
 * (oneDNN's execute still makes a small allocation of its own for the
 * argument list). The forward's and input gradient's primitive is rebuilt
 * only when the number of OpenMP threads changed. The blocked copies of x,
 * the weight and y that oneDNN's direct kernels want live in ctrain's
 * scratch, and so does oneDNN's own scratchpad (user mode). For the
 * forward and the input gradient only oneDNN's direct kernels are taken
 * (its gemm-based ones keep a scratchpad per thread), the scratch is the
 * size the first declaration found, and a rebuild for another thread
 * count that would need more runs the reference path instead; the weight
 * gradient's primitive is made for one thread, so its size is fixed. Entries live until the process ends (at most 256 of each kind;
 * past that the other paths run). */
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
    int slots;              /* CONV2D_GRAD_WEIGHT: buffers for concurrent chunks (n is a chunk's samples) */
    int src_dt, dst_dt;     /* ct_dtype (F32 = 0 or BF16) of the inputs (x, weight, dy) and of the output
                             * and bias; F32 for a weight gradient's chunks, which write F32 partials */
} ct_conv_shape;

/* Whether oneDNN can run this geometry; *bytes is the scratch it then
 * needs. Creates and caches the primitive (the declaration, at compile). */
bool ct_conv_onednn_declare(const ct_conv_shape *s, size_t *bytes);

/* Runs it: forward y = conv(x, w) + b (src = x, dst = y), or the input
 * gradient (src = dy, dst = dx). False when oneDNN did not run (not
 * available, never declared, the thread count changed the layouts): the
 * caller runs the reference path. *st is the status when it did run.
 * *relu: in, whether a relu is fused into the forward (ct_attrs.fused_relu);
 * out, whether it was applied here (as the F32 output came out of oneDNN's
 * blocked layout); else the caller applies it. */
bool ct_conv_onednn_run(const ct_conv_shape *s, const void *src, const void *w, const void *b, void *dst,
                        void *scratch, bool *relu, ct_status *st);

/* The weight gradient of one chunk of s->n samples on the calling thread
 * alone (a primitive made for one thread: oneDNN's own threads would split
 * the batch and add in an order that depends on their number). Declared
 * with the chunk's shape; each of s->slots slots needs *slot_bytes of
 * scratch. A chunk writes dw [O, C/G, KH, KW] (not accumulated) from x and
 * dy of its samples, using slot `slot`'s scratch. False when not declared
 * or declined: the caller computes the chunk itself. Declaring creates the
 * primitive (create) or only looks it up (at run time). */
bool ct_conv_onednn_wgrad_declare(const ct_conv_shape *s, bool create, size_t *slot_bytes);
bool ct_conv_onednn_wgrad_chunk(const ct_conv_shape *s, int slot, const void *x, const void *dy, float *dw,
                                void *scratch, ct_status *st);

#endif
