/* Internal: the one check every loader of weights applies to a tensor it
 * takes as a parameter's (or buffer's, or optimizer state's) value.
 *
 * ct_load_weights (weights.c: --init-from, eval, generate) and
 * ct_trainer_resume (train/checkpoint.c) both read through here, so a
 * tensor refused by one is refused by every other: a shape that differs, a
 * dtype that is not a float (an I32 header of the same byte count would
 * otherwise be converted into garbage weights), or a value that is NaN or
 * infinite once converted.
 */
#ifndef CT_IO_ST_PARAM_H
#define CT_IO_ST_PARAM_H

#include <stddef.h>

#include "ctrain/safetensors.h"

/* That tensor i of f may hold the value of `param` of the given shape:
 * same shape, a float dtype. The message (no file name: the caller adds
 * it) names the tensor, the parameter and what differs. Errors:
 * CT_ERR_SHAPE, CT_ERR_DTYPE. */
ct_status ct_st_check_param(const ct_st_file *f, int i, const char *param, ct_shape shape);

/* ct_st_check_param, then the tensor converted into dst (bytes of dtype,
 * a float type), then every value checked finite. Errors: those of the
 * check and of ct_st_read, CT_ERR_NUMERIC naming the tensor, the element
 * and its value. */
ct_status ct_st_read_param(const ct_st_file *f, int i, const char *param, ct_shape shape, ct_dtype dtype,
                           void *dst, size_t bytes);

#endif
