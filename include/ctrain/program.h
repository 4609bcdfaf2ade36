/* Programs: a graph compiled for one device.
 *
 * Compiling fixes the order of the nodes, plans memory (one activation arena
 * whose regions are reused by buffers whose lifetimes do not overlap), lays
 * every parameter out in one contiguous buffer and every parameter gradient
 * in a second with the same layout, and draws the initial weights. Running a
 * compiled program allocates nothing.
 *
 *     ct_compile_opts o = {.outputs = &loss, .n_outputs = 1, .grads = true};
 *     ct_program *p = ct_compile(g, &o);
 *     ct_program_set_input(p, "x", batch, sizeof batch);
 *     ct_program_run(p);
 *     float l; ct_program_read(p, loss, &l, sizeof l);
 */
#ifndef CTRAIN_PROGRAM_H
#define CTRAIN_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctrain/device.h"
#include "ctrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_program ct_program;

typedef struct ct_compile_opts {
    ct_device device;        /* zero: the CPU */
    const ct_node *outputs;  /* nodes whose values stay readable after a run */
    int n_outputs;
    bool grads;              /* also compute every parameter gradient (after ct_graph_backward) */
    bool no_plan;            /* a private buffer for every node: slower, for checking the planner */
    ct_program *share_params; /* use this program's parameters instead of new ones: its graph
                                 must declare the same parameters (names, shapes, order); it
                                 must outlive this program */
    bool allow_tf32;         /* F32 matrix products may use TF32 tensor cores on GPUs that have
                                them (10-bit mantissa inputs, FP32 accumulation; PyTorch's
                                allow_tf32); the CPU ignores it */
} ct_compile_opts;

/* Compiles g (which must outlive the program). NULL on error. */
ct_program *ct_compile(ct_graph *g, const ct_compile_opts *opts);
void ct_program_free(ct_program *p);

/* Copies host data into an input; bytes must be numel * dtype size. */
ct_status ct_program_set_input(ct_program *p, const char *name, const void *data, size_t bytes);
ct_status ct_program_set_input_node(ct_program *p, ct_node input, const void *data, size_t bytes);

/* Runs every node the outputs (and gradients) need, then advances the step
 * counter that keys dropout masks. Errors found in the data (an index out of
 * range) are reported here. */
ct_status ct_program_run(ct_program *p);

/* Copies a node's value to the host. Readable: outputs, inputs, parameters,
 * parameter gradients (their ct_grad nodes), and every node with no_plan. */
ct_status ct_program_read(const ct_program *p, ct_node n, void *dst, size_t bytes);

/* Training mode (default true): dropout is active. */
void ct_program_set_training(ct_program *p, bool training);
/* The step counter keying dropout masks (advanced by each run). */
uint32_t ct_program_step(const ct_program *p);
void ct_program_set_step(ct_program *p, uint32_t step);

/* Bytes of the activation arena (the planned peak of intermediate values). */
size_t ct_program_arena_bytes(const ct_program *p);
ct_device ct_program_device(const ct_program *p);

/* The flat parameter buffer: every parameter at its offset (elements), in
 * creation order, each aligned to 16 elements; the gaps are zero. The grad
 * buffer has the same layout. */
ct_dtype ct_program_param_dtype(const ct_program *p);
size_t ct_program_param_numel(const ct_program *p);  /* length of the buffer */
size_t ct_program_param_offset(const ct_program *p, ct_node param);
/* Device pointers to the buffers (host pointers on the CPU). */
void *ct_program_params(ct_program *p);
void *ct_program_grads(ct_program *p);

/* The flat buffer of the graph's buffers (ct_buffer), laid out the same way. */
ct_dtype ct_program_buffer_dtype(const ct_program *p);
size_t ct_program_buffer_numel(const ct_program *p);
void *ct_program_buffers(ct_program *p);

/* Host copies of one parameter (or buffer) by name, or of the whole flat
 * parameter buffers. */
ct_status ct_program_get_param(const ct_program *p, const char *name, void *dst, size_t bytes);
ct_status ct_program_set_param(ct_program *p, const char *name, const void *src, size_t bytes);
ct_status ct_program_read_params(const ct_program *p, void *dst, size_t bytes);
ct_status ct_program_write_params(ct_program *p, const void *src, size_t bytes);
ct_status ct_program_read_grads(const ct_program *p, void *dst, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
