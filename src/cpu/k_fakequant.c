/* CPU kernels of fake quantization and its straight-through backward
 * (core/fakequant.h): the formula shared with CUDA, one element at a
 * time, in float for float storage (as torch computes it, so that the
 * results are torch's bit for bit) and in double for F64. */
#include "core/error.h"
#include "core/fakequant.h"
#include "cpu/cpu_util.h"

#define FQ_PAR_MIN ((int64_t)1 << 15)

typedef struct fq_args {
    const ct_tview *x, *scale, *zp, *dy;
    int64_t n, len, inner; /* channel of element i: (i / inner) % len */
    double qmin, qmax;
} fq_args;

static ct_status fq_check(const ct_kargs *k, const char *op, int n_in, fq_args *a) {
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s != CT_OK) return s;
    if (!k->attr) return ct_error(CT_ERR_INTERNAL, "cpu %s: no attributes", op);
    a->x = &k->in[0], a->scale = &k->in[1], a->zp = &k->in[2], a->dy = n_in == 4 ? &k->in[3] : NULL;
    for (int i = 0; i < n_in; i++)
        if (!ct_dtype_is_float(k->in[i].dtype))
            return ct_error(CT_ERR_DTYPE, "cpu %s: input %d is %s; it takes floats", op, i,
                            ct_dtype_name(k->in[i].dtype));
    a->n = ct_shape_numel(a->x->shape);
    int axis = k->attr->axis;
    a->len = 1, a->inner = 1;
    if (axis >= 0) {
        int64_t outer;
        if (axis >= a->x->shape.ndim) return ct_error(CT_ERR_INTERNAL, "cpu %s: axis %d out of range", op, axis);
        ct_axis_split(&a->x->shape, axis, &outer, &a->len, &a->inner);
    }
    if (ct_shape_numel(a->scale->shape) != a->len || ct_shape_numel(a->zp->shape) != a->len ||
        ct_shape_numel(k->out.shape) != a->n || (a->dy && ct_shape_numel(a->dy->shape) != a->n))
        return ct_error(CT_ERR_SHAPE, "cpu %s: the scale, zero point or gradient does not fit x", op);
    a->qmin = (double)k->attr->quant_min, a->qmax = (double)k->attr->quant_max;
    return CT_OK;
}

/* Element i: y (forward) and whether it was inside the range. */
static inline double fq_at(const fq_args *a, int64_t i, bool *inside) {
    int64_t c = (i / a->inner) % a->len;
    double x = ct_ld(a->x->data, a->x->dtype, i), s = ct_ld(a->scale->data, a->scale->dtype, c),
           z = ct_ld(a->zp->data, a->zp->dtype, c);
    if (a->x->dtype == CT_F64) return ct_fq_f64(x, s, z, a->qmin, a->qmax, inside);
    return (double)ct_fq_f32((float)x, (float)s, (float)z, (float)a->qmin, (float)a->qmax, inside);
}

static ct_status k_fake_quant(const ct_kargs *k) {
    fq_args a;
    ct_status s = fq_check(k, "fake_quant", 3, &a);
    if (s != CT_OK) return s;
    const ct_tview *out = &k->out;
#pragma omp parallel for schedule(static) if (a.n >= FQ_PAR_MIN)
    for (int64_t i = 0; i < a.n; i++) {
        bool inside;
        ct_st(out->data, out->dtype, i, fq_at(&a, i, &inside));
    }
    return CT_OK;
}

static ct_status k_fake_quant_grad(const ct_kargs *k) {
    fq_args a;
    ct_status s = fq_check(k, "fake_quant_grad", 4, &a);
    if (s != CT_OK) return s;
    const ct_tview *out = &k->out;
#pragma omp parallel for schedule(static) if (a.n >= FQ_PAR_MIN)
    for (int64_t i = 0; i < a.n; i++) {
        bool inside;
        fq_at(&a, i, &inside);
        ct_st(out->data, out->dtype, i, inside ? ct_ld(a.dy->data, a.dy->dtype, i) : 0.0);
    }
    return CT_OK;
}

void ct_cpu_register_fakequant(ct_kernel_fn *t) {
    t[CT_OP_FAKE_QUANT] = k_fake_quant;
    t[CT_OP_FAKE_QUANT_GRAD] = k_fake_quant_grad;
}
