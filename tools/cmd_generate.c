/* `ctrain generate`: text from a GPT checkpoint of `ctrain train`.
 *
 * The model is rebuilt from the checkpoint's record and compiled once for
 * one window [1, T] (T the model's block size, or --block-size). Each new
 * token runs that window over the last T tokens of the sequence, padded
 * with token 0 after its end when it is shorter, and samples from the
 * logits at the last real position: causal attention makes them independent
 * of the padding (tests/test_train_lm.c checks it bit for bit). This is
 * nanoGPT's cropped context without a key-value cache: simple, and O(T)
 * work per token over one fixed graph.
 *
 * Sampling as nanoGPT's sample.py: logits / temperature, only the top k
 * kept (those below the k-th largest set to -inf), softmax in double, one
 * draw from Philox (seed, stream 0x6E4E0001, token index); temperature 0 is
 * greedy (the first maximum). A character model prints text (an empty
 * prompt starts from "\n" when the vocabulary has it, else from id 0); a
 * token model reads and prints ids, there being no tokenizer here.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "lm_cli.h"

#define CMD "generate"
#define GEN_STREAM 0x6E4E0001u

typedef struct gen_cfg {
    const char *checkpoint, *prompt;
    int64_t tokens, top_k, block_size;
    double temperature;
    uint64_t seed;
    ct_device device;
} gen_cfg;

#define T gen_cfg
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)

static const cli_section sections[] = {{"options", "options"}};

static const cli_row options[] = {
    {ROW("checkpoint", CLI_STRING, checkpoint), .meta = "FILE",
     .help = "a GPT checkpoint of 'ctrain train --data text|tokens' (required)"},
    {ROW("prompt", CLI_STRING, prompt), .meta = "TEXT",
     .help = "the start: text (character models), or token ids separated by commas (token models)"},
    {ROW("tokens", CLI_INT, tokens), .min = 0, .max = 1 << 30, .def = "200", .help = "tokens to generate"},
    {ROW("temperature", CLI_DOUBLE, temperature), .min = 0, .max = 1e6, .def = "1.0",
     .help = "divides the logits; 0: always the most likely token"},
    {ROW("top-k", CLI_INT, top_k), .min = 1, .max = 1 << 30, .help = "sample only among the K most likely tokens"},
    {ROW("seed", CLI_U64, seed), .def = "1", .help = "the draws"},
    {ROW("block-size", CLI_INT, block_size), .min = 1, .max = 1 << 30, .def = "the model's",
     .help = "context in tokens, at most the model's"},
    {ROW("device", CLI_DEVICE, device), .def = "auto: a GPU when there is one", .help = "where to run the model"},
};

const cli_table generate_table = {
    .cmd = CMD,
    .usage = "usage: ctrain generate --checkpoint FILE [options]\n",
    .about = "Samples text from a language model (gpt, lstm, gru, rnn) trained by 'ctrain\n"
             "train --data text' (or token ids from one trained on --data tokens), one token\n"
             "at a time over a context of the model's block size (docs/language_models.md).\n",
    .footer = "Prints the prompt and what follows it. Exits 0 on success, 1 when the\n"
              "checkpoint cannot be used, 2 for a bad command line or prompt.\n",
    .sections = sections,
    .n_sections = (int)(sizeof sections / sizeof sections[0]),
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_generate_usage(FILE *out) {
    cli_print_help(out, &generate_table);
}

/* The model for one window, with the checkpoint's weights. */
typedef struct gen_model {
    ct_graph *g;
    ct_program *p;
    ct_node idx, logits;
    int64_t T, V;
} gen_model;

static bool model_open(gen_model *m, const gen_cfg *c, const lm_record *r) {
    m->T = c->block_size ? c->block_size : r->model.block_size;
    m->V = r->model.vocab_size;
    m->g = ct_graph_new();
    if (!m->g) return cli_fail(CMD), false;
    m->idx = ct_input(m->g, "idx", CT_I32, (ct_shape){2, {1, m->T}});
    m->logits = model_build(m->g, m->idx, false, (void *)&r->model); /* gpt, lstm, gru or rnn */
    if (ct_graph_status(m->g) != CT_OK) {
        fprintf(stderr, "ctrain: %s: building the model: %s\n", CMD, ct_graph_error(m->g));
        return false;
    }
    ct_compile_opts co = {.device = c->device, .outputs = &m->logits, .n_outputs = 1};
    int loaded = 0;
    ct_load_opts lo = {.non_strict = true, .loaded = &loaded}; /* the optimizer state is skipped */
    if (!(m->p = ct_compile(m->g, &co)) || ct_load_weights(m->g, m->p, c->checkpoint, &lo) != CT_OK)
        return cli_fail(CMD), false;
    if (loaded != ct_graph_num_params(m->g)) {
        fprintf(stderr, "ctrain: %s: '%s' holds %d of the model's %d parameters\n", CMD, c->checkpoint, loaded,
                ct_graph_num_params(m->g));
        return false;
    }
    ct_program_set_training(m->p, false);
    return true;
}

static void model_close(gen_model *m) {
    ct_program_free(m->p);
    ct_graph_free(m->g);
}

/* The prompt's ids into ids (room for cap); false after a usage error. */
static bool prompt_ids(const gen_cfg *c, const lm_record *r, int32_t *ids, int64_t cap, int64_t *n) {
    const char *p = c->prompt ? c->prompt : "";
    *n = 0;
    if (r->vocab) {
        if (!*p) {
            int32_t nl = ct_text_vocab_id(r->vocab, '\n');
            ids[(*n)++] = nl >= 0 ? nl : 0;
            return true;
        }
        if (ct_text_encode(r->vocab, p, strlen(p), ids, n) == CT_OK) return true;
        cli_usage_error(CMD, "--prompt: %s", ct_last_error());
        return false;
    }
    if (!*p) {
        ids[(*n)++] = 0;
        return true;
    }
    for (char *end; *p && *n < cap; p = *end ? end + 1 : end) {
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v >= r->model.vocab_size || (*end && *end != ',')) {
            cli_usage_error(CMD, "--prompt: token models take ids below %lld separated by commas, not '%s'",
                            (long long)r->model.vocab_size, c->prompt);
            return false;
        }
        ids[(*n)++] = (int32_t)v;
    }
    return true;
}

/* The next token from one row of logits (V of them); w is scratch. */
static int32_t sample(const float *logits, int64_t V, const gen_cfg *c, int64_t i, double *w) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (c->temperature == 0) return (int32_t)best;
    double cut = -INFINITY;
    if (c->top_k > 0 && c->top_k < V) {
        /* The k-th largest: the largest value with at least k values >= it. */
        for (int64_t v = 0; v < V; v++) {
            int64_t ge = 0;
            for (int64_t u = 0; u < V && ge < c->top_k; u++) ge += logits[u] >= logits[v];
            if (ge >= c->top_k && logits[v] > cut) cut = logits[v];
        }
    }
    double mx = (double)logits[best] / c->temperature, sum = 0;
    for (int64_t v = 0; v < V; v++) {
        w[v] = (double)logits[v] < cut ? 0 : exp((double)logits[v] / c->temperature - mx);
        sum += w[v];
    }
    double u = (double)ct_philox_uniform(c->seed, GEN_STREAM, 0, (uint64_t)i) * sum;
    for (int64_t v = 0; v < V; v++) {
        if (u < w[v]) return (int32_t)v;
        u -= w[v];
    }
    return (int32_t)best; /* rounding left u past the end */
}

/* Prints id as text (or as a number for a token model). */
static void emit(const lm_record *r, int32_t id, bool first) {
    if (!r->vocab) {
        printf(first ? "%d" : ",%d", (int)id);
        return;
    }
    char buf[8];
    size_t len;
    if (ct_text_decode(r->vocab, &id, 1, buf, sizeof buf, &len) == CT_OK) fwrite(buf, 1, len, stdout);
}

static int generate(const gen_cfg *c, const lm_record *r, gen_model *m) {
    int64_t cap = (c->prompt ? (int64_t)strlen(c->prompt) : 0) + c->tokens + 1;
    int32_t *seq = malloc((size_t)cap * sizeof *seq), *win = calloc((size_t)m->T, sizeof *win);
    float *logits = malloc((size_t)(m->T * m->V) * sizeof *logits);
    double *w = malloc((size_t)m->V * sizeof *w);
    int rc = CLI_EXIT_FAIL;
    int64_t n;
    if (!seq || !win || !logits || !w) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
    } else if (!prompt_ids(c, r, seq, cap, &n)) {
        rc = CLI_EXIT_USAGE;
    } else {
        for (int64_t i = 0; i < n; i++) emit(r, seq[i], i == 0);
        rc = CLI_EXIT_OK;
        for (int64_t i = 0; i < c->tokens && rc == CLI_EXIT_OK; i++) {
            int64_t len = n < m->T ? n : m->T;
            memset(win, 0, (size_t)m->T * sizeof *win);
            memcpy(win, seq + n - len, (size_t)len * sizeof *win);
            if (ct_program_set_input_node(m->p, m->idx, win, (size_t)m->T * sizeof *win) != CT_OK ||
                ct_program_run(m->p) != CT_OK ||
                ct_program_read(m->p, m->logits, logits, (size_t)(m->T * m->V) * sizeof *logits) != CT_OK) {
                rc = cli_fail(CMD);
                break;
            }
            seq[n] = sample(logits + (len - 1) * m->V, m->V, c, i, w);
            emit(r, seq[n++], false);
            fflush(stdout);
        }
        printf("\n");
    }
    free(seq);
    free(win);
    free(logits);
    free(w);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    if (cli_help_asked(argc, argv)) {
        cmd_generate_usage(stdout);
        return CLI_EXIT_OK;
    }
    gen_cfg c = {.tokens = 200, .temperature = 1.0, .seed = 1};
    ct_device_parse("auto", &c.device);
    cli_parser p;
    cli_parser_init(&p, &generate_table, &c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    if (rc != CLI_EXIT_OK) return rc;
    if (!c.checkpoint) return cli_usage_error(CMD, "--checkpoint FILE is required");
    if (ct_device_check(c.device) != CT_OK) return cli_fail(CMD);
    ct_st_file *f = ct_st_open(c.checkpoint);
    if (!f) return cli_fail(CMD);
    lm_record r;
    bool ok = lm_record_read(CMD, f, c.checkpoint, &r);
    ct_st_close(f);
    if (!ok) return CLI_EXIT_FAIL;
    rc = CLI_EXIT_FAIL;
    gen_model m = {0};
    if (c.block_size > r.model.block_size)
        rc = cli_usage_error(CMD, "--block-size %lld is longer than the model's context, %lld", (long long)c.block_size,
                             (long long)r.model.block_size);
    else if (model_open(&m, &c, &r))
        rc = generate(&c, &r, &m);
    model_close(&m);
    lm_record_free(&r);
    return rc;
}
