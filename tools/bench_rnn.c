/* Recurrent language-model workloads: a training step of the CLI's
 * character model (embedding -> 2-layer nn.LSTM or nn.GRU of 256 -> linear
 * head; tools/model_rnn.c, ctrain/rnn.h) on random token ids - forward,
 * the mean cross-entropy over every position, backward, AdamW - at the
 * shape of the recurrent-network issue's target run:
 *
 *     lstm-char   LSTM, hidden 256, 2 layers, block 64, vocab 65, batch 32
 *     gru-char    GRU, the same shape
 *
 * AdamW lr 2e-3, betas (0.9, 0.99), weight decay 0.01 (the CLI's default)
 * on the matrices and the embedding. benchmarks/torch_rnn.py is the
 * PyTorch twin (nn.Embedding, nn.LSTM / nn.GRU with batch_first, nn.Linear),
 * run by benchmarks/torch_bench.py.
 *
 * FLOPs are the matrix products', forward and backward, per token: per
 * layer the input projection 2 G H I and the hidden product 2 G H H (G the
 * gates: 4 LSTM, 3 GRU; I = H here, the embedding being H wide), the head
 * 2 H V; backward twice the forward: 6 (L G H (I + H) + H V). The cells'
 * elementwise work, the embedding, the loss and the update are left out.
 */
#include <stdio.h>

#include "bench.h"
#include "train_cli.h"

#define CHAR_VOCAB 65

static const ct_optim_opts rnn_adamw = {
    .kind = CT_OPTIM_ADAMW, .lr = 2e-3, .betas = {0.9, 0.99}, .weight_decay = 0.01};

/* --quick shrinks the model and the sequence. */
static model_cfg rnn_cfg(const char *kind, const bench_opts *o) {
    model_cfg m = {.vocab_size = CHAR_VOCAB, .classes = CHAR_VOCAB, .hidden_size = o->quick ? 32 : 256,
                   .num_layers = 2, .block_size = o->quick ? 16 : 64};
    snprintf(m.model, sizeof m.model, "%s", kind);
    return m;
}

static double rnn_flops(const model_cfg *m) {
    double G = m->model[0] == 'l' ? 4.0 : 3.0, H = (double)m->hidden_size, L = (double)m->num_layers;
    double T = (double)m->block_size, V = (double)m->vocab_size;
    return T * 6.0 * (L * G * H * (H + H) + H * V);
}

/* "lstm L2 H256 T64 V65": benchmarks/torch_rnn.py writes the same. */
static void rnn_describe(const model_cfg *m, char *buf, size_t cap) {
    snprintf(buf, cap, "%s L%lld H%lld T%lld V%lld", m->model, (long long)m->num_layers, (long long)m->hidden_size,
             (long long)m->block_size, (long long)m->vocab_size);
}

static const char rnn_half_note[] = "the recurrences' state and cell, the embedding and the loss stay F32 (each step's hidden product and dW_hh are half products, as the others)";

#define RNN_MODEL(prefix, kind)                                                                                \
    static ct_node prefix##_input(ct_graph *g, long b, const bench_opts *o) {                                  \
        model_cfg m = rnn_cfg(kind, o);                                                                        \
        return ct_input(g, "x", CT_I32, (ct_shape){2, {b, m.block_size}});                                     \
    }                                                                                                          \
    static ct_node prefix##_build(ct_graph *g, ct_node x, const bench_opts *o) {                               \
        model_cfg m = rnn_cfg(kind, o);                                                                        \
        return model_build_rnn(g, x, false, &m); /* never stateful */                                  \
    }                                                                                                          \
    static double prefix##_flops(const bench_opts *o) {                                                        \
        model_cfg m = rnn_cfg(kind, o);                                                                        \
        return rnn_flops(&m);                                                                                  \
    }                                                                                                          \
    static void prefix##_describe(const bench_opts *o, char *buf, size_t cap) {                                \
        model_cfg m = rnn_cfg(kind, o);                                                                        \
        rnn_describe(&m, buf, cap);                                                                            \
    }                                                                                                          \
    static long prefix##_seq(const bench_opts *o) { return (long)rnn_cfg(kind, o).block_size; }                \
    const bench_model bench_model_##prefix = {.input = prefix##_input, .build = prefix##_build,                \
                                              .flops_per_sample = prefix##_flops,                              \
                                              .describe = prefix##_describe, .classes = CHAR_VOCAB,            \
                                              .default_batch = 32, .half_note = rnn_half_note,                 \
                                              .seq_len = prefix##_seq, .optim = &rnn_adamw};

RNN_MODEL(lstm_char, "lstm")
RNN_MODEL(gru_char, "gru")
