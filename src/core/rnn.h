/* Internal: the fused recurrent op (ops_rnn.c) and its backward
 * (grad_rnn.c), shared with the kernels (src/cpu/k_rnn.c,
 * src/cuda/k_rnn.cu).
 *
 * RNN runs one layer and one direction of a recurrent network (the
 * recurrence inside the kernel); the input projection of every step,
 * xp = x W_ih^T + b_ih, is one matrix product in the graph before it.
 * Inputs: xp [B, T, G*H], w_hh [G*H, H], b_hh [G*H], h0 [B, H], and c0
 * [B, H] for an LSTM; one float dtype. G is the number of gates (1 for the
 * plain RNN, 4 for the LSTM, 3 for the GRU), in PyTorch's order (LSTM i, f,
 * g, o; GRU r, z, n). attr.cell is a ct_rnn_cell, attr.reverse walks t
 * from T-1 down to 0 (the "_reverse" direction).
 *
 * One node has one output, so the op's output is its record R [B, T, W]:
 * per step what the backward needs, h first so that the layer's output is
 * a slice of it:
 *   RNN_TANH, RNN_RELU  W = H   h
 *   LSTM                W = 6H  h, c, i, f, g, o (gates after activation)
 *   GRU                 W = 5H  h, r, z, n, W_hn h_prev + b_hn
 * The state a step starts from is the previous step's h (and c) as stored
 * in R (or h0, c0), on both backends, so they run the same recurrence.
 *
 * RNN_GRAD (internal) reads R, dR (R's gradient: from a layer, dy in the h
 * columns and the final states' gradients at the last step; every column
 * is differentiable), w_hh, h0 (and c0) and walks the steps backwards.
 * dR is either [B, T, W] or, when only the layer's output has a gradient,
 * its h columns alone, [B, T, H] (the other columns zero; grad_rnn.c takes
 * dy instead of the zero-filled record that SLICE_GRAD would write).
 * attr.which says what it writes: CT_RNN_GRAD_GATES, the gradient of xp
 * [B, T, G*H] (the gates' pre-activations on the input side; the hidden
 * side's is the same except the GRU's n gate: times r, plus the gradient
 * of the record's W_hn h + b_hn column),
 * from which the rule builds dw_hh and db_hh as products in the graph; or
 * CT_RNN_GRAD_H0 / CT_RNN_GRAD_C0 [B, H]. Each node runs the backward
 * recurrence itself (one per gradient wanted, as attention's backward), so
 * a training step without initial-state gradients runs it once.
 */
#ifndef CT_CORE_RNN_H
#define CT_CORE_RNN_H

#include "core/autodiff.h"
#include "ctrain/rnn.h"

/* Which gradient an RNN_GRAD node produces (attr.which). */
typedef enum ct_rnn_grad { CT_RNN_GRAD_GATES = 0, CT_RNN_GRAD_H0, CT_RNN_GRAD_C0 } ct_rnn_grad;

/* Gates per cell: 1, 1, 4, 3 (0 for an unknown cell). */
int ct_rnn_gates(int cell);
/* Columns of the record per hidden unit: 1, 1, 6, 5 (0 for an unknown cell). */
int ct_rnn_record_units(int cell);

/* The dtype of the step products' operands that attr.half asks for: F16 or
 * BF16 (an F32 recurrence under that autocast policy), else F32 (no
 * rounding). The kernels apply it to F32 operands only. */
static inline ct_dtype ct_rnn_products_dtype(const ct_attrs *a) {
    return a->half == CT_F16 || a->half == CT_BF16 ? a->half : CT_F32;
}

/* The fused op: xp, w_hh, b_hh, h0, c0 (c0 CT_NO_NODE unless an LSTM).
 * Returns the record R [B, T, W]. */
ct_node ct_rnn_op(ct_graph *g, int cell, bool reverse, ct_node xp, ct_node w_hh, ct_node b_hh, ct_node h0,
                  ct_node c0);

/* The backward rule of RNN (a row of the gradient table). */
bool ct_grad_rnn(ct_graph *g, ct_grad_acc *acc, const ct_nodeinfo *nd, ct_node y, ct_node gy);

#endif
