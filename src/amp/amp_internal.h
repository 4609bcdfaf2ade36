/* Internal: what other modules need from a loss scaler beyond amp.h. The
 * fused training step (src/train/step_graph.c) issues the scaler's gated
 * optimizer update itself, with the step's scalars in device memory. */
#ifndef CT_AMP_INTERNAL_H
#define CT_AMP_INTERNAL_H

#include "core/backend.h"
#include "ctrain/amp.h"

/* The scaler's state in device memory, and the program whose gradients it
 * scales (NULL for a NULL scaler). */
const ct_amp_state *ct_scaler_dev_state(const ct_scaler *s);
ct_program *ct_scaler_program(const ct_scaler *s);

#endif
