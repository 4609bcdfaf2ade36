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

#endif
