/* Internal: what other modules of the library need from a compiled program
 * beyond the public API. The optimizer and the gradient helpers call the
 * program's backend directly, on the program's own buffers, so that an
 * update is one fused backend call rather than a round trip to the host. */
#ifndef CT_CORE_PROGRAM_INTERNAL_H
#define CT_CORE_PROGRAM_INTERNAL_H

#include "core/backend.h"
#include "ctrain/program.h"

/* The backend p was compiled for (NULL if p is NULL). */
const ct_backend *ct_program_backend(const ct_program *p);

/* Makes the input named `name` read device memory owned by the caller
 * (bytes long, outliving p) instead of the program's own buffer, so a value
 * that the device itself updates - the loss scaler's scale - feeds the
 * program with no upload. CT_ERR_NOT_FOUND without such an input,
 * CT_ERR_SHAPE when bytes is not the input's size. */
ct_status ct_program_bind_input(ct_program *p, const char *name, void *device_ptr, size_t bytes);
/* Gradient-ready hook: ct_program_run calls fn(user, param) as soon as the
 * gradient of parameter `param` (its index among the graph's parameters) is
 * final, i.e. the kernels that write it and every kernel that reads it have
 * been issued (on a GPU: queued on the backend's stream). The order is the
 * same on every run of the program. This is how a data-parallel reducer
 * starts reducing gradients while the rest of backward still runs. NULL fn
 * removes the hook. */
typedef void (*ct_grad_ready_fn)(void *user, int param);
void ct_program_set_grad_hook(ct_program *p, ct_grad_ready_fn fn, void *user);
/* Whether a run of p writes the gradient of parameter `param` (compiled with
 * grads and the parameter reaches the loss); the others stay zero. */
bool ct_program_computes_grad(const ct_program *p, int param);

/* ct_program_run, with the kernels reading the dropout step counter from
 * device memory (a uint32 the caller keeps equal to ct_program_step(p)) when
 * step_dev is not NULL: a run captured as a CUDA Graph then stays valid as
 * the counter advances. The backend's set_step_source points its kernels
 * there for this run only; a backend without one (the CPU, which never
 * replays) uses the host's counter, the same value. The host's counter
 * advances as in ct_program_run. */
ct_status ct_program_run_dev(ct_program *p, const uint32_t *step_dev);
/* A number that changes whenever something a captured run baked into its
 * kernels changes (ct_program_bind_input, ct_program_set_training): a graph
 * captured at another generation must be captured again. */
uint64_t ct_program_generation(const ct_program *p);
/* Whether a gradient-ready hook is set (it cannot fire inside a replayed
 * graph). */
bool ct_program_has_grad_hook(const ct_program *p);
/* The device buffer of a readable node (an output, input, parameter...),
 * with its dtype and element count (either pointer may be NULL); NULL
 * when n is not readable in p. */
const void *ct_program_node_data(const ct_program *p, ct_node n, ct_dtype *dtype, int64_t *numel);

#endif
