#include "core/shape_util.h"

bool ct_broadcast_shapes(ct_shape a, ct_shape b, ct_shape *out) {
    ct_shape r = {a.ndim > b.ndim ? a.ndim : b.ndim, {0}};
    for (int i = 0; i < r.ndim; i++) {
        int da = a.ndim - 1 - i, db = b.ndim - 1 - i;
        int64_t sa = da >= 0 ? a.dim[da] : 1, sb = db >= 0 ? b.dim[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) return false;
        r.dim[r.ndim - 1 - i] = sa == 1 ? sb : sa;
    }
    *out = r;
    return true;
}

int ct_resolve_axis(int axis, int ndim) {
    if (axis < -ndim || axis >= ndim) return -1;
    return axis < 0 ? axis + ndim : axis;
}
