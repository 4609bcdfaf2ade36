/* Internal: shape rules shared by the op builders and autodiff. */
#ifndef CT_CORE_SHAPE_UTIL_H
#define CT_CORE_SHAPE_UTIL_H

#include <stdbool.h>

#include "ctrain/dtype.h"

/* NumPy broadcasting of a and b; false if they do not broadcast. */
bool ct_broadcast_shapes(ct_shape a, ct_shape b, ct_shape *out);
/* axis in [-ndim, ndim) -> [0, ndim); -1 when out of range. */
int ct_resolve_axis(int axis, int ndim);
/* "[2, 3]" into a caller's buffer of CT_SHAPE_STR bytes. */
#define CT_SHAPE_STR 96
#define SHP(s, buf) ct_shape_str((s), (buf), CT_SHAPE_STR)

#endif
