/* The checks a tensor passes before it becomes a parameter's value (see
 * st_param.h for why there is exactly one place for them). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "io/st_param.h"

ct_status ct_st_check_param(const ct_st_file *f, int i, const char *param, ct_shape shape) {
    const char *fname = ct_st_name(f, i);
    if (!fname) return ct_error(CT_ERR_INVALID_ARG, "no tensor %d for parameter '%.150s'", i, param);
    ct_dtype fdt;
    ct_shape fshape;
    char a[160], b[160];
    /* ct_st_info fails only for more dimensions than ctrain has; its
     * message says so, where a shape printed from an unset struct would not. */
    if (ct_st_info(f, i, &fdt, &fshape) != CT_OK)
        return ct_error(CT_ERR_SHAPE, "tensor '%.150s' for parameter '%.150s': %s", fname, param, ct_last_error());
    if (!ct_shape_equal(fshape, shape))
        return ct_error(CT_ERR_SHAPE, "tensor '%.150s' has shape %s, parameter '%.150s' has shape %s", fname,
                        ct_shape_str(fshape, a, sizeof a), param, ct_shape_str(shape, b, sizeof b));
    if (fdt == CT_DTYPE_COUNT || !ct_dtype_is_float(fdt))
        return ct_error(CT_ERR_DTYPE, "tensor '%.150s' is %s; parameter '%.150s' needs a float (F16, BF16, F32 or F64)",
                        fname, ct_st_dtype_name(f, i), param);
    return CT_OK;
}

static double value_at(const void *p, ct_dtype dt, size_t k) {
    switch (dt) {
    case CT_F64: return ((const double *)p)[k];
    case CT_F32: return ((const float *)p)[k];
    case CT_F16: return ct_f16_to_f32(((const uint16_t *)p)[k]);
    default: return ct_bf16_to_f32(((const uint16_t *)p)[k]);
    }
}

ct_status ct_st_read_param(const ct_st_file *f, int i, const char *param, ct_shape shape, ct_dtype dtype,
                           void *dst, size_t bytes) {
    ct_status st = ct_st_check_param(f, i, param, shape);
    if (st != CT_OK) return st;
    if (!ct_dtype_is_float(dtype))
        return ct_error(CT_ERR_INTERNAL, "parameter '%.150s' is %s, not a float", param, ct_dtype_name(dtype));
    if ((st = ct_st_read(f, i, dtype, dst, bytes)) != CT_OK) return st;
    /* A NaN or inf weight makes every later loss NaN, and the trainer would
     * then blame the learning rate: say here which tensor holds it. */
    size_t n = bytes / ct_dtype_size(dtype);
    for (size_t k = 0; k < n; k++) {
        double v = value_at(dst, dtype, k);
        if (isfinite(v)) continue;
        ct_dtype fdt;
        ct_st_info(f, i, &fdt, NULL);
        return ct_error(CT_ERR_NUMERIC, "tensor '%.150s' holds %s at element %zu%s%s", ct_st_name(f, i),
                        isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf", k, fdt != dtype ? " once converted to " : "",
                        fdt != dtype ? ct_dtype_name(dtype) : "");
    }
    return CT_OK;
}
