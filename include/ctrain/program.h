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
#include <stdio.h>

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
} ct_compile_opts;

/* Compiles g (which must outlive the program). NULL on error. */
ct_program *ct_compile(ct_graph *g, const ct_compile_opts *opts);
/* Frees the program and its device memory (not the graph); NULL is
 * ignored. A program others share parameters with (share_params) is freed
 * after them. */
void ct_program_free(ct_program *p);

/* Copies host data into an input; bytes must be numel * dtype size. */
ct_status ct_program_set_input(ct_program *p, const char *name, const void *data, size_t bytes);
/* The same, naming the input by its node. Errors for both: no such input
 * (CT_ERR_NOT_FOUND / CT_ERR_INVALID_ARG), another size (CT_ERR_SHAPE). */
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

/* The device memory a program holds, in bytes, as allocated at compile time
 * (a run allocates nothing, so this is also its peak). Parameters, their
 * gradients and buffers count only in the program that owns them: a program
 * compiled with share_params reports 0 for them. Optimizer state is the
 * optimizer's (ct_optimizer_state). */
typedef struct ct_program_mem {
    size_t arena;    /* planned intermediate values */
    size_t scratch;  /* the largest scratch area a kernel asked for */
    size_t inputs;   /* inputs and live constants */
    size_t params;   /* the flat parameter buffer */
    size_t grads;    /* the flat gradient buffer (allocated with the parameters) */
    size_t buffers;  /* the flat buffer of ct_buffer state */
    size_t total;    /* the sum of the above */
} ct_program_mem;
/* Fills *out. CT_ERR_INVALID_ARG if p or out is NULL. */
ct_status ct_program_memory(const ct_program *p, ct_program_mem *out);
/* The device the program was compiled for. */
ct_device ct_program_device(const ct_program *p);

/* The flat parameter buffer: every parameter at its offset (elements), in
 * creation order, each aligned to 16 elements; the gaps are zero. The grad
 * buffer has the same layout. */
ct_dtype ct_program_param_dtype(const ct_program *p);
size_t ct_program_param_numel(const ct_program *p);  /* length of the buffer */
/* Where param starts in the buffer, in elements; (size_t)-1, with the
 * error set, if it is no parameter of the program's graph. */
size_t ct_program_param_offset(const ct_program *p, ct_node param);
/* Device pointers to the buffers (host pointers on the CPU). */
void *ct_program_params(ct_program *p);
void *ct_program_grads(ct_program *p);

/* The flat buffer of the graph's buffers (ct_buffer), laid out the same way. */
ct_dtype ct_program_buffer_dtype(const ct_program *p);
size_t ct_program_buffer_numel(const ct_program *p);
void *ct_program_buffers(ct_program *p);

/* Host copies of one parameter (or buffer) by name, or of the whole flat
 * parameter (or gradient) buffer; bytes must be the tensor's or the
 * buffer's size exactly. Errors: an unknown name (CT_ERR_NOT_FOUND),
 * another size (CT_ERR_SHAPE), a failing device copy (CT_ERR_DEVICE). */
ct_status ct_program_get_param(const ct_program *p, const char *name, void *dst, size_t bytes);
ct_status ct_program_set_param(ct_program *p, const char *name, const void *src, size_t bytes);
ct_status ct_program_read_params(const ct_program *p, void *dst, size_t bytes);
ct_status ct_program_write_params(ct_program *p, const void *src, size_t bytes);
ct_status ct_program_read_grads(const ct_program *p, void *dst, size_t bytes);

/* Op profiler: with it on, every kernel of every program run is timed
 * (the backend synchronised around it) and added to one table by op type;
 * ct_op_profile_report prints that table, largest first, to f with the times
 * divided by `per` (e.g. the number of runs: milliseconds per run).
 * `ctrain bench --profile` uses it. Off by default; not for concurrent runs
 * from several threads. */
void ct_op_profile_enable(bool on);
void ct_op_profile_reset(void);
void ct_op_profile_report(FILE *f, double per);

#ifdef __cplusplus
}
#endif
#endif
