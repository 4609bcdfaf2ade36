/* Recurrent layers: torch.nn.RNN, LSTM and GRU, built into a graph.
 *
 * Semantics, parameter names and shapes, and initialisation are PyTorch's,
 * so weights move both ways through safetensors files. For layer k and
 * direction suffix s ("" forward, "_reverse" backward in time), with G
 * gates (1 RNN, 4 LSTM, 3 GRU), H the hidden size and I_k the layer's
 * input size (input_size for k = 0, else H * directions):
 *
 *     <name>.weight_ih_l<k><s> [G*H, I_k]
 *     <name>.weight_hh_l<k><s> [G*H, H]
 *     <name>.bias_ih_l<k><s>   [G*H]     (unless no_bias)
 *     <name>.bias_hh_l<k><s>   [G*H]     (unless no_bias)
 *
 * declared in that order, layer by layer, forward direction first (the
 * order of PyTorch's state_dict), all initialised uniform(-1/sqrt(H),
 * 1/sqrt(H)). The cells, with xW = W_i* x_t + b_i* and hW = W_h* h + b_h*:
 *
 *   RNN   h' = tanh(xW + hW)  (or relu)
 *   LSTM  i, f, o = sigmoid(.), g = tanh(.) (gate rows in the order i, f,
 *         g, o); c' = f c + i g; h' = o tanh(c')
 *   GRU   r, z = sigmoid(.) (rows r, z, n); n = tanh(xW_n + r (W_hn h +
 *         b_hn)); h' = (1 - z) n + z h
 *
 * Layers after the first take the previous layer's output (both directions
 * concatenated, forward first); dropout p applies to every layer's output
 * but the last, in training only, as PyTorch's.
 *
 * Each layer and direction is one fused op (the recurrence runs inside the
 * kernel; the input projection of all steps is one matrix product before
 * it): docs/language_models.md, "Recurrent networks".
 */
#ifndef CTRAIN_RNN_H
#define CTRAIN_RNN_H

#include <stdbool.h>
#include <stdint.h>

#include "ctrain/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The cell: nn.RNN (tanh or relu nonlinearity), nn.LSTM or nn.GRU. */
typedef enum ct_rnn_cell { CT_RNN_TANH = 0, CT_RNN_RELU, CT_LSTM, CT_GRU } ct_rnn_cell;

/** The arguments of PyTorch's constructor (zero-initialised: no bias
 * is PyTorch's bias=True, time-first input). */
typedef struct ct_rnn_config {
    ct_rnn_cell cell;      /**< set by ct_lstm and ct_gru; ct_rnn takes CT_RNN_TANH or CT_RNN_RELU */
    int64_t input_size;    /**< I: x's last axis */
    int64_t hidden_size;   /**< H, >= 1 */
    int64_t num_layers;    /**< >= 1 */
    bool no_bias;          /**< PyTorch's bias=False: no bias_ih / bias_hh parameters */
    bool batch_first;      /**< x and y are [B, T, .] instead of [T, B, .] (h0, h_n stay [L*D, B, H]) */
    double dropout;        /**< in [0, 1): on each layer's output but the last, in training */
    bool bidirectional;    /**< D = 2: a "_reverse" direction per layer */
} ct_rnn_config;

/** What a recurrent layer returns: y [T, B, D*H] (or [B, T, D*H]), the
 * final hidden states h_n [L*D, B, H] (layer by layer, forward direction
 * first) and, for an LSTM, the final cell states c_n (else CT_NO_NODE). */
typedef struct ct_rnn_out {
    ct_node y, h_n, c_n;
} ct_rnn_out;

/** Checks a configuration; CT_ERR_INVALID_ARG with one line naming the
 * field at fault (e.g. "rnn: hidden_size = 0; it must be >= 1"). */
ct_status ct_rnn_config_check(const ct_rnn_config *c);

/** The layer named `name` applied to x (float [T, B, I], or [B, T, I] with
 * batch_first; T >= 1), from initial states h0 (and c0 for an LSTM), each
 * [L*D, B, H] or CT_NO_NODE for zeros, as PyTorch's forward(x, h0) /
 * forward(x, (h0, c0)). Fills *out (may be NULL) and returns y, or
 * CT_NO_NODE after an error the graph records (a wrong shape of x, h0 or c0
 * names it). Calling it again with the same name applies the same layer. */
ct_node ct_recurrent(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_node c0,
                     ct_rnn_out *out);

/** nn.RNN (c->cell CT_RNN_TANH or CT_RNN_RELU), nn.LSTM and nn.GRU: the
 * same as ct_recurrent with the cell set. */
ct_node ct_rnn(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_rnn_out *out);
ct_node ct_lstm(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_node c0,
                ct_rnn_out *out);
ct_node ct_gru(ct_graph *g, const char *name, const ct_rnn_config *c, ct_node x, ct_node h0, ct_rnn_out *out);

/** Parameters of a layer of this configuration. */
int64_t ct_rnn_num_params(const ct_rnn_config *c);

/** "rnn_tanh", "rnn_relu", "lstm", "gru" (NULL for another value). */
const char *ct_rnn_cell_name(ct_rnn_cell cell);

#ifdef __cplusplus
}
#endif
#endif
