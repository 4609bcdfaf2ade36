/* `ctrain predict` of a language model checkpoint (gpt, lstm, gru, rnn;
 * predict_cli.h): the distribution of the token after --prompt, its K most likely values as CSV rows
 * rank,token,text,probability (softmax in double of the logits at the
 * prompt's last position; text models spell the token, token models leave
 * the text empty). A prompt longer than the context keeps its last
 * block_size tokens, as `ctrain generate` does.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_cli.h"
#include "predict_cli.h"

#define CMD "predict"
#define LM_DEFAULT_TOP_K 10

/* The prompt's ids (text: encoded; tokens: ids separated by commas). */
static bool prompt_ids(const char *prompt, const lm_record *r, int32_t *ids, int64_t cap, int64_t *n) {
    *n = 0;
    if (!*prompt) return cli_usage_error(CMD, "--prompt: empty"), false;
    if (r->vocab) {
        if (ct_text_encode(r->vocab, prompt, strlen(prompt), ids, n) == CT_OK) return true;
        cli_usage_error(CMD, "--prompt: %s", ct_last_error());
        return false;
    }
    for (const char *p = prompt; *p && *n < cap;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v >= r->model.vocab_size || (*end && *end != ',')) {
            cli_usage_error(CMD, "--prompt: token models take ids below %lld separated by commas, not '%s'",
                            (long long)r->model.vocab_size, prompt);
            return false;
        }
        ids[(*n)++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    return true;
}

/* The logits after the prompt (V of them) into last. */
static bool run_model(const predict_cfg *c, const lm_record *r, const int32_t *ids, int64_t n, float *last) {
    int64_t T = r->model.block_size, V = r->model.vocab_size, len = n < T ? n : T;
    ct_graph *g = ct_graph_new();
    ct_program *p = NULL;
    int32_t *win = calloc((size_t)T, sizeof *win);
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    bool ok = g && win && logits;
    ct_node idx = ok ? ct_input(g, "idx", CT_I32, (ct_shape){2, {1, T}}) : CT_NO_NODE;
    /* gpt, lstm, gru or rnn. The window is zero-padded after the prompt:
     * causal models never read the padding for the prompt's last token; a
     * bidirectional recurrent model does, as in generate's short windows. */
    ct_node out = ok ? model_build(g, idx, false, (void *)&r->model) : CT_NO_NODE;
    ct_compile_opts co = {.device = c->device, .outputs = &out, .n_outputs = 1};
    ct_load_opts lo = {.non_strict = true, .require_all = true}; /* the optimizer state is skipped */
    if (ok && ct_graph_status(g) == CT_OK) memcpy(win, ids + n - len, (size_t)len * sizeof *win);
    ok = ok && ct_graph_status(g) == CT_OK && (p = ct_compile(g, &co)) &&
         ct_load_weights(g, p, c->checkpoint, &lo) == CT_OK;
    if (ok) ct_program_set_training(p, false);
    ok = ok && ct_program_set_input_node(p, idx, win, (size_t)T * sizeof *win) == CT_OK && ct_program_run(p) == CT_OK &&
         ct_program_read(p, out, logits, (size_t)(T * V) * sizeof *logits) == CT_OK;
    if (ok) memcpy(last, logits + (len - 1) * V, (size_t)V * sizeof *last);
    else if (!g || !win || !logits) fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
    else cli_fail(CMD);
    ct_program_free(p);
    ct_graph_free(g);
    free(win);
    free(logits);
    return ok;
}

/* One row: the token's text quoted as CSV quotes a field. */
static void write_row(FILE *f, const lm_record *r, int64_t rank, int32_t id, double prob) {
    fprintf(f, "%lld,%d,", (long long)rank, (int)id);
    char buf[16];
    size_t len = 0;
    if (r->vocab && ct_text_decode(r->vocab, &id, 1, buf, sizeof buf, &len) == CT_OK) {
        fputc('"', f);
        for (size_t i = 0; i < len; i++) {
            if (buf[i] == '"') fputc('"', f);
            fputc(buf[i], f);
        }
        fputc('"', f);
    }
    fprintf(f, ",%.9g\n", prob);
}

int predict_next_token(const predict_cfg *c, const ct_st_file *f, FILE *out) {
    lm_record r;
    if (!lm_record_read(CMD, f, c->checkpoint, &r)) return CLI_EXIT_FAIL;
    int64_t V = r.model.vocab_size, k = c->top_k ? c->top_k : (V < LM_DEFAULT_TOP_K ? V : LM_DEFAULT_TOP_K);
    int64_t cap = (int64_t)strlen(c->prompt) + 1, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    float *logits = malloc((size_t)V * sizeof *logits);
    double *prob = malloc((size_t)V * sizeof *prob);
    int rc = CLI_EXIT_FAIL;
    if (k > V) {
        rc = cli_usage_error(CMD, "--top-k %lld: the model has %lld tokens", (long long)k, (long long)V);
    } else if (!ids || !logits || !prob) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
    } else if (!prompt_ids(c->prompt, &r, ids, cap, &n)) {
        rc = CLI_EXIT_USAGE;
    } else if (run_model(c, &r, ids, n, logits)) {
        double mx = -INFINITY, sum = 0;
        for (int64_t v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
        for (int64_t v = 0; v < V; v++) sum += prob[v] = exp((double)logits[v] - mx);
        fprintf(out, "rank,token,text,probability\n");
        for (int64_t j = 0; j < k; j++) {
            int64_t best = 0; /* the most probable left; ties: the lower id */
            for (int64_t v = 1; v < V; v++)
                if (prob[v] > prob[best]) best = v;
            write_row(out, &r, j + 1, (int32_t)best, prob[best] / sum);
            prob[best] = -1;
        }
        rc = CLI_EXIT_OK;
    }
    free(ids);
    free(logits);
    free(prob);
    lm_record_free(&r);
    return rc;
}
