/* Internal: the recurrent cells' arithmetic for one hidden unit, forward
 * and backward, written once for the CPU kernel (double) and the CUDA
 * kernels (templates on float or double), as core/ew_math.h is.
 *
 * Per unit u of one batch row at one step, with x[k] = (W_ih x_t + b_ih)
 * and hp[k] = (W_hh h_prev + b_hh) at row k*H + u of gate k (G gates in
 * PyTorch's order), the forward fills the unit's record values rec[j]
 * (column j*H + u of the record, core/rnn.h):
 *   RNN   h = act(x0 + hp0)                                  rec: h
 *   LSTM  i, f, o = sigmoid, g = tanh of x + hp per gate;
 *         c = f c_prev + i g; h = o tanh(c)                   rec: h, c, i, f, g, o
 *   GRU   r, z = sigmoid(x + hp); n = tanh(x_n + r hp_n);
 *         h = (1 - z) n + z h_prev                            rec: h, r, z, n, hp_n
 * The backward takes drec, the gradient of the unit's record values at this
 * step (every column is an output: h, c and the gates), and dh_next,
 * dc_next, what the next step walked passes back to this step's h and c,
 * and gives dx[k], the gradient of x[k] (the gates' pre-activations),
 * dhp[k], that of hp[k] (dx[k] but for the GRU's n gate: dx_n * r plus
 * the record's own hp_n gradient), and the parts of the
 * previous step's gradients that do not go through W_hh: dc_prev (the
 * LSTM's f dc) and dh_direct (the GRU's z dh); the rest of dh_prev is
 * W_hh^T dhp, summed by the caller over the units.
 */
#ifndef CT_CORE_RNN_CELL_H
#define CT_CORE_RNN_CELL_H

#include "core/ew_math.h"
#include "ctrain/rnn.h"

CT_EW_FN void ct_rnn_cell_fwd(int cell, const ct_real *x, const ct_real *hp, ct_real h_prev, ct_real c_prev,
                              ct_real *rec) {
    const ct_real one = (ct_real)1;
    if (cell == CT_LSTM) {
        ct_real i = ct_ew_sigmoid(x[0] + hp[0]), f = ct_ew_sigmoid(x[1] + hp[1]);
        ct_real g = tanh(x[2] + hp[2]), o = ct_ew_sigmoid(x[3] + hp[3]);
        ct_real c = f * c_prev + i * g;
        rec[0] = o * tanh(c);
        rec[1] = c;
        rec[2] = i, rec[3] = f, rec[4] = g, rec[5] = o;
    } else if (cell == CT_GRU) {
        ct_real r = ct_ew_sigmoid(x[0] + hp[0]), z = ct_ew_sigmoid(x[1] + hp[1]);
        ct_real n = tanh(x[2] + r * hp[2]);
        rec[0] = (one - z) * n + z * h_prev;
        rec[1] = r, rec[2] = z, rec[3] = n, rec[4] = hp[2];
    } else {
        ct_real a = x[0] + hp[0];
        /* relu as PyTorch's: NaN passes through */
        rec[0] = cell == CT_RNN_RELU ? (a < (ct_real)0 ? (ct_real)0 : a) : tanh(a);
    }
}

CT_EW_FN void ct_rnn_cell_bwd(int cell, const ct_real *rec, const ct_real *drec, ct_real dh_next, ct_real dc_next,
                              ct_real h_prev, ct_real c_prev, ct_real *dx, ct_real *dhp, ct_real *dc_prev,
                              ct_real *dh_direct) {
    const ct_real one = (ct_real)1;
    ct_real dh = drec[0] + dh_next;
    *dc_prev = (ct_real)0;
    *dh_direct = (ct_real)0;
    if (cell == CT_LSTM) {
        ct_real c = rec[1], i = rec[2], f = rec[3], g = rec[4], o = rec[5], tc = tanh(c);
        ct_real dc = drec[1] + dc_next + dh * o * (one - tc * tc);
        dx[0] = (dc * g + drec[2]) * i * (one - i);
        dx[1] = (dc * c_prev + drec[3]) * f * (one - f);
        dx[2] = (dc * i + drec[4]) * (one - g * g);
        dx[3] = (dh * tc + drec[5]) * o * (one - o);
        for (int k = 0; k < 4; k++) dhp[k] = dx[k];
        *dc_prev = dc * f;
    } else if (cell == CT_GRU) {
        ct_real r = rec[1], z = rec[2], n = rec[3], hn = rec[4];
        ct_real dn = (dh * (one - z) + drec[3]) * (one - n * n);
        dx[0] = (dn * hn + drec[1]) * r * (one - r);
        dx[1] = (dh * (h_prev - n) + drec[2]) * z * (one - z);
        dx[2] = dn;
        dhp[0] = dx[0], dhp[1] = dx[1], dhp[2] = dn * r + drec[4];
        *dh_direct = dh * z;
    } else {
        ct_real h = rec[0];
        dx[0] = cell == CT_RNN_RELU ? (h > (ct_real)0 ? dh : (ct_real)0) : dh * (one - h * h);
        dhp[0] = dx[0];
    }
}

#endif
