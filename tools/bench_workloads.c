/* The table of named workloads `ctrain bench` knows, and the runner's own
 * error message (for failures that are not the engine's, such as running
 * out of host memory for synthetic data).
 *
 * A new model is one more line here, MODEL(bench_model_NAME), with
 * bench_model_NAME written beside the others (bench_model.c, bench_cnn.c,
 * bench_gpt.c, bench_rnn.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define MODEL(m) bench_model_unsupported, bench_model_setup, bench_model_step, bench_model_check, \
                 bench_model_teardown, &(m)
#define MATMUL(s) bench_precision_unsupported_for, bench_matmul_setup, bench_matmul_step, NULL, \
                  bench_matmul_teardown, &(s)
#define OPTIM(o) bench_precision_unsupported_for, bench_optim_setup, bench_optim_step, NULL, bench_optim_teardown, &(o)

static const bench_workload workloads[] = {
    {"mlp-mnist", "model", "MLP 784-1024-1024-10 (ReLU), cross-entropy, AdamW: one training step",
     MODEL(bench_model_mlp_mnist)},
    {"mlp-small", "model", "MLP 784-128-10 (ReLU), batch 32, cross-entropy, AdamW: per-step overhead",
     MODEL(bench_model_mlp_small)},
    {"mlp-wide", "model", "wide MLP, --layers x --hidden (ReLU), matmul-bound: one training step",
     MODEL(bench_model_mlp_wide)},
    {"cnn-mnist", "model", "CNN conv5x5(32)-pool-conv5x5(64)-pool-128-10 on 1x28x28, AdamW: one training step",
     MODEL(bench_model_cnn_mnist)},
    {"gpt-char", "model", "GPT 4 layers x 128 (4 heads), block 64, vocab 65, AdamW: one step; tokens/s",
     MODEL(bench_model_gpt_char)},
    {"gpt2-124m", "model", "GPT-2 small, 12 layers x 768, block 1024, vocab 50257 (GPU): one step; tokens/s",
     MODEL(bench_model_gpt2_124m)},
    {"lstm-char", "model", "LSTM 2 layers x 256, block 64, vocab 65, batch 32, AdamW: one step; tokens/s",
     MODEL(bench_model_lstm_char)},
    {"gru-char", "model", "GRU 2 layers x 256, block 64, vocab 65, batch 32, AdamW: one step; tokens/s",
     MODEL(bench_model_gru_char)},
    {"matmul-square", "micro", "C = A @ B, square (M = K = N)", MATMUL(bench_matmul_square)},
    {"matmul-skinny", "micro", "C = A @ B, few rows (M small, K = N large)", MATMUL(bench_matmul_skinny)},
    {"matmul-tall", "micro", "C = A @ B, many rows, narrow (M large, K = N small)", MATMUL(bench_matmul_tall)},
    {"optim-sgd", "micro", "fused SGD update (momentum 0.9) over N parameters", OPTIM(bench_optim_sgd)},
    {"optim-adamw", "micro", "fused AdamW update over N parameters", OPTIM(bench_optim_adamw)},
    {"softmax-xent", "micro", "softmax cross-entropy, forward + backward, logits [B, C]",
     bench_precision_unsupported_for, bench_xent_setup, bench_xent_step, bench_xent_check, bench_xent_teardown, NULL},
};
#define N_WORKLOADS ((int)(sizeof workloads / sizeof workloads[0]))

int bench_workload_count(void) { return N_WORKLOADS; }

const bench_workload *bench_workload_at(int i) { return i >= 0 && i < N_WORKLOADS ? &workloads[i] : NULL; }

const bench_workload *bench_workload_find(const char *name) {
    for (int i = 0; i < N_WORKLOADS; i++)
        if (strcmp(workloads[i].name, name) == 0) return &workloads[i];
    return NULL;
}

/* ---- the runner's error message ---------------------------------------- */

static char bench_error[512];

ct_status bench_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bench_error, sizeof bench_error, fmt, ap);
    va_end(ap);
    return CT_ERR_INTERNAL;
}

ct_status bench_oom(size_t bytes) {
    if (bytes)
        bench_set_error("out of host memory (%zu bytes)", bytes);
    else
        bench_set_error("out of host memory");
    return CT_ERR_OOM;
}

const char *bench_last_error(void) {
    if (bench_error[0]) return bench_error;
    const char *e = ct_last_error();
    return e && e[0] ? e : "failed";
}

void bench_clear_error(void) {
    bench_error[0] = '\0';
    ct_clear_error();
}
