/* CPU kernel of kl_div (PyTorch's F.kl_div with reduction='batchmean'):
 * sum over every element of target * (log(target) - input), a zero target
 * contributing 0 (xlogy), divided by the first axis' size. One serial sum
 * in double, in element order: the reference the CUDA kernel is checked
 * against. The gradient is made of ordinary ops (grad_rules.c). */
#include <math.h>

#include "cpu/cpu_compress.h"
#include "cpu/cpu_util.h"

static ct_status k_kl_div(const ct_kargs *k) {
    ct_status s = ct_op_check_inputs("cpu", k->op, k->n_in);
    if (s != CT_OK) return s;
    const ct_tview *a = &k->in[0], *t = &k->in[1];
    if (!ct_dtype_is_float(a->dtype) || !ct_dtype_is_float(t->dtype) || !ct_dtype_is_float(k->out.dtype))
        return ct_error(CT_ERR_DTYPE, "kl_div: input %s, target %s, output %s: floats needed",
                        ct_dtype_name(a->dtype), ct_dtype_name(t->dtype), ct_dtype_name(k->out.dtype));
    if (!ct_shape_equal(a->shape, t->shape) || a->shape.ndim < 1 || a->shape.dim[0] < 1) {
        char sa[96], sb[96];
        return ct_error(CT_ERR_SHAPE, "kl_div: input %s and target %s: same shape [N, ...] with N >= 1 needed",
                        ct_shape_str(a->shape, sa, sizeof sa), ct_shape_str(t->shape, sb, sizeof sb));
    }
    double total = 0.0;
    for (int64_t i = 0; i < a->numel; i++) {
        /* PyTorch's xlogy(t, t) - t * input: 0 * inf stays NaN there too. */
        double p = ct_ld(t->data, t->dtype, i);
        total += (p != 0.0 ? p * log(p) : 0.0) - p * ct_ld(a->data, a->dtype, i);
    }
    ct_st(k->out.data, k->out.dtype, 0, total / (double)a->shape.dim[0]);
    return CT_OK;
}

void ct_cpu_register_kl(ct_kernel_fn *t) { t[CT_OP_KL_DIV] = k_kl_div; }
