/* Gradient accumulation over micro-batches.
 *
 * A program overwrites its gradient buffer on every run, so the sum lives in
 * a second flat buffer on the same device, updated with the backend's axpby:
 * the first micro-batch copies (b = 0, so the buffer never needs zeroing and
 * a reset is just a count of zero), later ones add, and finish writes the
 * mean back into the program's gradients where the optimizer reads them.
 */
#include <stdlib.h>

#include "ctrain/optim.h"
#include "optim/optim_internal.h"

struct ct_grad_accum {
    ct_program *p;
    ct_flat_grads fg;
    void *sum;   /* device buffer, fg.n elements; meaningful while count > 0 */
    int count;
};

ct_grad_accum *ct_grad_accum_new(ct_program *p) {
    static const char fn[] = "ct_grad_accum_new";
    ct_flat_grads fg;
    if (ct_optim_grads_of(p, fn, &fg) != CT_OK) return NULL;
    if (!fg.be->axpby) return ct_optim_no_hook(&fg, fn, "axpby"), NULL;
    ct_grad_accum *acc = calloc(1, sizeof *acc);
    if (!acc) return ct_error(CT_ERR_OOM, "%s: out of memory", fn), NULL;
    acc->p = p;
    acc->fg = fg;
    if (fg.n) {
        acc->sum = fg.be->alloc(fg.n * ct_dtype_size(fg.dtype));
        if (!acc->sum) {
            ct_error(ct_last_status() == CT_OK ? CT_ERR_OOM : ct_last_status(), "%s: %s", fn, ct_last_error());
            free(acc);
            return NULL;
        }
    }
    return acc;
}

void ct_grad_accum_free(ct_grad_accum *acc) {
    if (!acc) return;
    acc->fg.be->free(acc->sum);
    free(acc);
}

ct_status ct_grad_accum_add(ct_grad_accum *acc) {
    if (!acc) return ct_error(CT_ERR_INVALID_ARG, "ct_grad_accum_add: accumulator is NULL");
    if (acc->fg.n) {
        ct_status st = acc->fg.be->axpby(1.0, acc->fg.data, acc->count ? 1.0 : 0.0, acc->sum, acc->fg.dtype,
                                         acc->fg.n);
        if (st != CT_OK) return st;
    }
    acc->count++;
    return CT_OK;
}

ct_status ct_grad_accum_finish(ct_grad_accum *acc) {
    if (!acc) return ct_error(CT_ERR_INVALID_ARG, "ct_grad_accum_finish: accumulator is NULL");
    if (acc->count == 0)
        return ct_error(CT_ERR_STATE, "ct_grad_accum_finish: no micro-batch was added since the last finish");
    ct_status st = CT_OK;
    if (acc->fg.n)
        st = acc->fg.be->axpby(1.0 / acc->count, acc->sum, 0.0, acc->fg.data, acc->fg.dtype, acc->fg.n);
    acc->count = 0;
    return st;
}

int ct_grad_accum_count(const ct_grad_accum *acc) { return acc ? acc->count : 0; }

void ct_grad_accum_reset(ct_grad_accum *acc) {
    if (acc) acc->count = 0;
}
