/* Example 5: a character-level GPT on tinyshakespeare, trained and sampled.
 *
 * What it shows: a text file turned into a vocabulary and token sequences
 * (ct_text_load: nanoGPT's sorted characters, 90/10 split); a GPT built with
 * ct_gpt as the trainer's model callback; the language-model trainer
 * (ct_trainer_new_lm: random windows of block_size tokens, AdamW with
 * warmup + cosine, clipping, the validation loss per token over fixed
 * batches); then sampling from the trained weights with a program of its
 * own on one window [1, T] that shares them (share_params), the context
 * cropped to the last T tokens and padded after its end, temperature and a
 * top-k cut, draws from Philox.
 *
 * Run:   05_char_gpt [TEXT [STEPS]]
 *        (TEXT: $CTRAIN_DATA_DIR/tinyshakespeare/input.txt; STEPS: 300)
 *
 * Result: from log(65) = 4.17 nats at the start, the validation loss falls
 * below 2.6 in 300 steps of 16 windows of 64 characters (a 2-layer,
 * 64-wide model; measured 2.41, 2 min of CPU time); the program exits with
 * status 1 above 2.6 (the test runs 200 steps). It prints a few lines
 * sampled from the model: words, names and line breaks begin to appear.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctrain/ctrain.h>

enum { BLOCK = 64, BATCH = 16, SAMPLE = 300, TOP_K = 10 };

static int fail(const char *what) {
    fprintf(stderr, "05_char_gpt: %s: %s\n", what, ct_last_error());
    return 1;
}

static ct_node gpt_model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training; /* dropout follows the program's mode */
    return ct_gpt(g, user, x);
}

/* One token from a row of logits (V <= 256): / temperature, only the top k
 * kept, softmax in double, one Philox draw (draw i of the seed). */
static int32_t sample(const float *row, int64_t V, double temperature, uint64_t i) {
    double w[256], kth = INFINITY, mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; v++) {
        int64_t above = 0;
        for (int64_t u = 0; u < V; u++) above += row[u] > row[v];
        if (above < TOP_K && row[v] < kth) kth = row[v]; /* the smallest of the top k */
        if (row[v] > mx) mx = row[v];
    }
    for (int64_t v = 0; v < V; v++) sum += w[v] = row[v] < kth ? 0 : exp((row[v] - mx) / temperature);
    double u = ct_philox_uniform(2024, 7, 0, i) * sum;
    for (int64_t v = 0; v < V; v++) {
        if (u < w[v]) return (int32_t)v;
        u -= w[v];
    }
    return (int32_t)(V - 1);
}

/* Samples n characters after a newline with a window program sharing the
 * trainer's weights, printing them as they come. */
static int generate(ct_trainer *t, const ct_gpt_config *cfg, const ct_text_vocab *vocab, int n) {
    ct_graph *g = ct_graph_new();
    ct_node idx = ct_input(g, "idx", CT_I32, (ct_shape){2, {1, BLOCK}});
    ct_node logits = ct_gpt(g, cfg, idx);
    if (ct_graph_status(g) != CT_OK) return fail("the sampling graph");
    ct_compile_opts co = {.outputs = &logits, .n_outputs = 1, .share_params = ct_trainer_program(t)};
    ct_program *p = ct_compile(g, &co);
    if (!p) return fail("compile");
    ct_program_set_training(p, false);
    int64_t V = cfg->vocab_size;
    int32_t *seq = malloc((size_t)(n + 1) * sizeof *seq), win[BLOCK];
    float *out = malloc((size_t)(BLOCK * V) * sizeof *out);
    int32_t nl = ct_text_vocab_id(vocab, '\n');
    seq[0] = nl >= 0 ? nl : 0;
    int rc = 0;
    for (int i = 1; i <= n && rc == 0; i++) {
        /* The last BLOCK tokens, padded with 0 after them: causal attention
         * keeps the padding out of the logits at position len - 1. */
        int len = i < BLOCK ? i : BLOCK;
        memset(win, 0, sizeof win);
        memcpy(win, seq + i - len, (size_t)len * sizeof *win);
        if (ct_program_set_input_node(p, idx, win, sizeof win) != CT_OK || ct_program_run(p) != CT_OK ||
            ct_program_read(p, logits, out, (size_t)(BLOCK * V) * sizeof *out) != CT_OK) {
            rc = fail("sampling");
            break;
        }
        seq[i] = sample(out + (len - 1) * V, V, 0.8, (uint64_t)i);
        char buf[8];
        size_t blen;
        if (ct_text_decode(vocab, &seq[i], 1, buf, sizeof buf, &blen) == CT_OK) fwrite(buf, 1, blen, stdout);
    }
    printf("\n");
    free(seq);
    free(out);
    ct_program_free(p);
    ct_graph_free(g);
    return rc;
}

int main(int argc, char **argv) {
    char def[4096];
    const char *dir = getenv("CTRAIN_DATA_DIR");
    snprintf(def, sizeof def, "%s/tinyshakespeare/input.txt", dir ? dir : "../shared/data");
    const char *path = argc > 1 ? argv[1] : def;
    int64_t steps = argc > 2 ? atoll(argv[2]) : 300;
    if (steps < 1) steps = 300;

    ct_text_vocab *vocab;
    ct_tokens *train, *val;
    if (ct_text_load(path, NULL, &vocab, &train, &val) != CT_OK) return fail("loading the text");
    ct_gpt_config cfg = {.vocab_size = ct_text_vocab_size(vocab), .block_size = BLOCK, .n_layer = 2, .n_head = 4,
                         .n_embd = 64};
    printf("%s: %lld training, %lld validation characters, vocabulary %d; GPT of %lld parameters\n", path,
           (long long)ct_tokens_size(train), (long long)ct_tokens_size(val), (int)ct_text_vocab_size(vocab),
           (long long)ct_gpt_num_params(&cfg));

    ct_train_opts o = {.model = gpt_model,
                       .model_user = &cfg,
                       .seed = 1337,
                       .data_seed = 1337,
                       .batch_size = BATCH,
                       .max_steps = steps,
                       .optim = {.kind = CT_OPTIM_ADAMW, .lr = 3e-3, .betas = {0.9, 0.99}, .weight_decay = 0.1},
                       .schedule = {.kind = CT_SCHED_COSINE, .warmup_steps = 30, .eta_min = 3e-4},
                       .clip_norm = 1.0,
                       .eval_every = steps / 3 > 0 ? steps / 3 : 1};
    ct_lm_data data = {.train = train, .val = val, .block_size = BLOCK, .eval_batches = 20};
    ct_trainer *t = ct_trainer_new_lm(&o, &data);
    if (!t) return fail("ct_trainer_new_lm");
    ct_train_result r;
    if (ct_trainer_run(t, &r) != CT_OK) return fail("training");
    printf("val_loss %.4f (log V = %.4f) after %lld steps, %.0f tokens/s\n", r.val_loss,
           log((double)cfg.vocab_size), (long long)r.steps, r.tokens_per_s);
    printf("--- sampled (temperature 0.8, top %d):", TOP_K);
    int rc = generate(t, &cfg, vocab, SAMPLE);
    ct_trainer_free(t);
    ct_tokens_free(train);
    ct_tokens_free(val);
    ct_text_vocab_free(vocab);
    if (rc == 0 && !(r.val_loss < 2.6)) {
        fprintf(stderr, "05_char_gpt: the validation loss %.4f is above 2.6\n", r.val_loss);
        rc = 1;
    }
    return rc;
}
