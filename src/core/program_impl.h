/* Internal to the program's own files: the layout of a compiled program,
 * shared by compilation and running (program.c) and the binding of sources
 * to persistent buffers (program_bind.c). Other modules see a program only
 * through ctrain/program.h and program_internal.h. */
#ifndef CT_CORE_PROGRAM_IMPL_H
#define CT_CORE_PROGRAM_IMPL_H

#include "core/backend.h"
#include "core/program_internal.h"
#include "ctrain/program.h"

#define ARENA_ALIGN 256   /* what GPU kernels and vector loads like */
#define PARAM_ALIGN 16    /* elements: 64 bytes of F32 */

struct ct_program {
    ct_graph *g;
    const ct_backend *be;
    ct_device device;
    int n;               /* graph nodes at compile time */
    void **data;         /* per node: its buffer on the device, or NULL */
    bool *readable;
    int n_exec;
    ct_kargs *kargs;     /* per executed node, in order */
    ct_attrs *attrs;     /* per executed node: a copy, since the graph's node
                            array moves when nodes are added after compiling */
    ct_node *exec;
    ct_node *src;        /* per executed node: the node whose op, inputs and attributes
                            it runs: itself, or the producer fused into it (program_fuse.c) */
    ct_tview *views;     /* input views of all kargs */
    void *arena, *scratch, *inputs, *consts;
    size_t arena_bytes;
    size_t scratch_bytes, inputs_bytes, consts_bytes; /* for ct_program_memory */
    void **private_bufs; /* no_plan: one buffer per node */
    void *params, *grads;
    size_t *param_off;   /* per parameter index, in elements */
    size_t param_numel;
    ct_dtype param_dtype;
    void *state;         /* buffers (running statistics), flat like the parameters */
    size_t *buf_off;     /* per buffer index, in elements */
    size_t state_numel;
    ct_dtype state_dtype;
    bool owns_params;
    uint32_t step;
    bool training;
    /* Gradient-ready hook (program_internal.h): after executed step k, the
     * parameters ready_param[ready_at[k] .. ready_at[k + 1]) have final
     * gradients that no later step reads. */
    int *ready_at, *ready_param;
    bool grads_on;       /* compiled with opts.grads */
    ct_grad_ready_fn hook;
    void *hook_user;
    uint64_t generation; /* bumped when the kernels' arguments change (program_internal.h) */
};

static inline size_t node_bytes(const ct_nodeinfo *nd) {
    return (size_t)ct_shape_numel(nd->shape) * ct_dtype_size(nd->dtype);
}

static inline size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* ---- program_bind.c: the steps of ct_compile that bind sources ---- */

/* Whether graph b declares the same parameters and buffers as a (names,
 * shapes, dtype, order), so that a program of b may share a's; if not, the
 * difference is the last error. */
bool ct_program_same_params(const ct_graph *a, const ct_graph *b);
/* Gives p its parameters, their gradients and its buffers: share's when
 * share is not NULL, else its own, initialised; then points every
 * parameter, buffer and (with grads) parameter gradient node at its slot. */
ct_status ct_program_bind_params(ct_program *p, const ct_program *share, bool grads);
/* Gives every input (so any can be fed) and every live constant a buffer,
 * the constants uploaded. live[i]: node i is computed by the program. */
ct_status ct_program_bind_inputs(ct_program *p, const bool *live);

/* ---- program_fuse.c: a relu fused into the op that makes its input ---- */

/* src[i] = the node whose op, inputs and attributes live node i runs: i,
 * or the producer fused into it, which is then no longer live (its value
 * is never made). on: fusing allowed (not opts.no_plan). root: the nodes
 * that must stay readable. */
ct_status ct_program_fuse(const ct_program *p, bool *live, const bool *root, bool on, ct_node *src);

#endif
