/* `ctrain prune`: a physically smaller MLP from a checkpoint.
 *
 * Hidden neurons whose incoming weights are all zero (what training with
 * --prune-structure neuron leaves), and with --sparsity S also the
 * fraction S of each hidden layer's neurons with the smallest L1 or L2
 * norm, are removed: their rows of fcK.weight and fcK.bias and their
 * columns of fc(K+1).weight. Such a neuron's output is a constant,
 * act(bias), which is folded into the next layer's bias first, so the
 * smaller model computes what the masked one did (exactly, for neurons
 * that were all zero; with batch norm, act(bn(bias)) in evaluation mode,
 * and the neuron's batch-norm entries go too). The output is a weights
 * file with the model record of the new widths, which `ctrain eval` and
 * `ctrain train --init-from` (with the new --hidden) take as that model
 * (docs/compression.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "compress_cli.h"

#define CMD "prune"

typedef struct prune_cfg {
    const char *checkpoint, *out;
    double sparsity;
    int norm;
} prune_cfg;

#define T prune_cfg
#define ROW(n, k, member) .name = n, .section = "options", .kind = k, CLI_FIELD(T, member)

static const cli_section sections[] = {{"options", "options"}};
static const cli_row options[] = {
    {ROW("checkpoint", CLI_STRING, checkpoint), .meta = "FILE", .help = "an MLP checkpoint of 'ctrain train' (required)"},
    {ROW("out", CLI_STRING, out), .meta = "FILE", .help = "the smaller model's weights file (required)"},
    {ROW("sparsity", CLI_DOUBLE, sparsity), .min = 0, .max = 1, .bounds = CLI_OPEN_MAX, .meta = "S", .def = "0",
     .help = "also remove this fraction of each hidden layer's neurons, the smallest by --norm"},
    {ROW("norm", CLI_ENUM, norm), .choices = &compress_norm_choices, .def = "l1",
     .help = "how --sparsity ranks a neuron's incoming weights"},
};

const cli_table prune_table = {
    .cmd = CMD,
    .usage = "usage: ctrain prune --checkpoint FILE --out FILE [options]\n",
    .about = "Removes the hidden neurons of an MLP checkpoint whose incoming weights are all\n"
             "zero (train with --prune-structure neuron), and with --sparsity S the fraction S\n"
             "of each hidden layer's smallest neurons, folding their constant outputs into\n"
             "the next layer's bias. Writes the smaller model with its record, for 'ctrain\n"
             "eval' and 'ctrain train --init-from' (docs/compression.md).\n",
    .footer = "Prints the widths before and after. Exits 0 on success, 1 when the file cannot\n"
              "be used or has nothing to prune, 2 for a bad command line.\n",
    .sections = sections,
    .n_sections = 1,
    .options = options,
    .n_options = (int)(sizeof options / sizeof options[0]),
};

void cmd_prune_usage(FILE *out) { cli_print_help(out, &prune_table); }

/* The MLP's linear layers fc1 .. fc(L): weights [out, in], biases [out]. */
/* With --batchnorm, bnK's weight, bias, running_mean and running_var
 * ([out] each) follow fcK. */
#define BN_PARTS 4
static const char *const bn_parts[BN_PARTS] = {"weight", "bias", "running_mean", "running_var"};
#define BN_EPS 1e-5 /* ct_batch_norm's default, as the model builds it */

typedef struct mlp_w {
    int L;
    bool bn;
    int64_t out[MLP_MAX_HIDDEN + 1], in[MLP_MAX_HIDDEN + 1];
    float *w[MLP_MAX_HIDDEN + 1], *b[MLP_MAX_HIDDEN + 1];
    float *norm[MLP_MAX_HIDDEN][BN_PARTS];
} mlp_w;

static void mlp_free(mlp_w *m) {
    for (int k = 0; k < m->L; k++) {
        free(m->w[k]);
        free(m->b[k]);
        for (int i = 0; m->bn && k < m->L - 1 && i < BN_PARTS; i++) free(m->norm[k][i]);
    }
}

/* Tensor name of f as F32 [rows (, cols)]; false after reporting. */
static bool read_f32(const ct_st_file *f, const char *path, const char *name, int ndim, float **out, int64_t *rows,
                     int64_t *cols) {
    int i = ct_st_find(f, name);
    ct_dtype dt;
    ct_shape s;
    if (i < 0 || ct_st_info(f, i, &dt, &s) != CT_OK || s.ndim != ndim || !ct_dtype_is_float(dt)) {
        fprintf(stderr, "ctrain: %s: '%s' has no float %d-d tensor '%s' as its model record says\n", CMD, path, ndim,
                name);
        return false;
    }
    int64_t n = ct_shape_numel(s);
    *out = malloc((size_t)n * sizeof **out + 1);
    if (!*out || ct_st_read(f, i, CT_F32, *out, (size_t)n * sizeof **out) != CT_OK) {
        fprintf(stderr, "ctrain: %s: '%s': %s\n", CMD, path, *out ? ct_last_error() : "out of memory");
        return false;
    }
    *rows = s.dim[0];
    if (cols) *cols = ndim == 2 ? s.dim[1] : 1;
    return true;
}

static bool load_mlp(const ct_st_file *f, const char *path, const model_cfg *mc, mlp_w *m) {
    m->L = mc->n_hidden + 1;
    m->bn = mc->batchnorm;
    char name[32];
    for (int k = 0; k < m->L; k++) {
        int64_t rows;
        snprintf(name, sizeof name, "fc%d.weight", k + 1);
        if (!read_f32(f, path, name, 2, &m->w[k], &m->out[k], &m->in[k])) return false;
        snprintf(name, sizeof name, "fc%d.bias", k + 1);
        if (!read_f32(f, path, name, 1, &m->b[k], &rows, NULL)) return false;
        for (int i = 0; m->bn && k < m->L - 1 && i < BN_PARTS; i++) {
            int64_t len;
            snprintf(name, sizeof name, "bn%d.%s", k + 1, bn_parts[i]);
            if (!read_f32(f, path, name, 1, &m->norm[k][i], &len, NULL)) return false;
            rows = len == m->out[k] ? rows : -1;
        }
        bool chained = k == 0 || m->in[k] == m->out[k - 1];
        if (rows != m->out[k] || !chained || (k < mc->n_hidden && m->out[k] != mc->hidden[k])) {
            fprintf(stderr, "ctrain: %s: '%s': fc%d's shapes do not chain as its model record says\n", CMD, path, k + 1);
            return false;
        }
    }
    return true;
}

static double row_norm(const float *w, int64_t len, int norm) {
    double acc = 0;
    for (int64_t j = 0; j < len; j++) acc += norm == CT_PRUNE_L2 ? (double)w[j] * w[j] : fabs((double)w[j]);
    return norm == CT_PRUNE_L2 ? sqrt(acc) : acc;
}

/* dead[j] for hidden layer k: rows all zero, then the smallest live ones
 * up to floor(sparsity * width); one neuron always stays. The count. */
static int64_t pick_dead(const mlp_w *m, int k, double sparsity, int norm, uint8_t *dead) {
    int64_t n = m->out[k], len = m->in[k], count = 0;
    double *key = malloc((size_t)n * sizeof *key);
    if (!key) return -1;
    for (int64_t j = 0; j < n; j++) {
        key[j] = row_norm(m->w[k] + j * len, len, norm);
        dead[j] = key[j] == 0.0;
        count += dead[j];
    }
    int64_t target = (int64_t)floor(sparsity * (double)n);
    while (count < target) { /* the smallest live row, the first on ties */
        int64_t best = -1;
        for (int64_t j = 0; j < n; j++)
            if (!dead[j] && (best < 0 || key[j] < key[best])) best = j;
        if (best < 0) break;
        dead[best] = 1;
        count++;
    }
    if (n > 0 && count == n) dead[0] = 0, count--;
    free(key);
    return count;
}

/* act(v) for the n values, through the engine's own activation. */
static bool activate(const char *act, double *v, int64_t n) {
    if (n == 0) return true;
    ct_graph *g = ct_graph_new();
    ct_node x = g ? ct_constant(g, CT_F64, (ct_shape){1, {n}}, v) : CT_NO_NODE;
    ct_node y = ct_activation(g, x, act);
    ct_program *p = y != CT_NO_NODE ? ct_compile(g, &(ct_compile_opts){.outputs = &y, .n_outputs = 1}) : NULL;
    bool ok = p && ct_program_run(p) == CT_OK && ct_program_read(p, y, v, (size_t)n * sizeof *v) == CT_OK;
    if (!ok) fprintf(stderr, "ctrain: %s: the activation '%s': %s\n", CMD, act, ct_last_error());
    ct_program_free(p);
    ct_graph_free(g);
    return ok;
}

/* Layer k's dead neurons folded into layer k+1's bias, then removed: rows
 * of layer k, columns of layer k+1. */
static bool remove_dead(mlp_w *m, int k, const uint8_t *dead, const char *act) {
    int64_t n = m->out[k], in = m->in[k], next = m->out[k + 1], keep = 0;
    double *c = malloc((size_t)n * sizeof *c + 1);
    if (!c) return false;
    for (int64_t j = 0; j < n; j++) {
        c[j] = m->b[k][j];
        if (m->bn) { /* evaluation-mode batch norm of the constant */
            float *const *bn = m->norm[k];
            c[j] = (c[j] - bn[2][j]) / sqrt((double)bn[3][j] + BN_EPS) * bn[0][j] + bn[1][j];
        }
    }
    if (!activate(act, c, n)) return free(c), false;
    for (int64_t r = 0; r < next; r++) {
        double add = 0;
        for (int64_t j = 0; j < n; j++)
            if (dead[j]) add += (double)m->w[k + 1][r * n + j] * c[j];
        m->b[k + 1][r] = (float)((double)m->b[k + 1][r] + add);
    }
    free(c);
    for (int64_t j = 0; j < n; j++) {
        if (dead[j]) continue;
        memmove(m->w[k] + keep * in, m->w[k] + j * in, (size_t)in * sizeof(float));
        m->b[k][keep] = m->b[k][j];
        for (int i = 0; m->bn && i < BN_PARTS; i++) m->norm[k][i][keep] = m->norm[k][i][j];
        keep++;
    }
    for (int64_t r = 0; r < next; r++) { /* in place: row r's kept columns move left */
        int64_t at = 0;
        for (int64_t j = 0; j < n; j++)
            if (!dead[j]) m->w[k + 1][r * keep + at++] = m->w[k + 1][r * n + j];
    }
    m->out[k] = keep;
    m->in[k + 1] = keep;
    return true;
}

/* The smaller model with its record (and the data's, copied); atomic. */
static bool write_mlp(const mlp_w *m, const model_cfg *mc, const ct_st_file *f, const char *out) {
    ct_st_writer *w = ct_st_writer_new();
    char *rec = model_to_json(mc);
    if (!w || !rec) {
        fprintf(stderr, "ctrain: %s: out of memory\n", CMD);
        free(rec);
        ct_st_writer_free(w);
        return false;
    }
    ct_status st = CT_OK;
    char name[32];
    for (int k = 0; st == CT_OK && k < m->L; k++) {
        snprintf(name, sizeof name, "fc%d.weight", k + 1);
        st = ct_st_writer_add(w, name, CT_F32, (ct_shape){2, {m->out[k], m->in[k]}}, m->w[k]);
        snprintf(name, sizeof name, "fc%d.bias", k + 1);
        if (st == CT_OK) st = ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {m->out[k]}}, m->b[k]);
        for (int i = 0; st == CT_OK && m->bn && k < m->L - 1 && i < BN_PARTS; i++) {
            snprintf(name, sizeof name, "bn%d.%s", k + 1, bn_parts[i]);
            st = ct_st_writer_add(w, name, CT_F32, (ct_shape){1, {m->out[k]}}, m->norm[k][i]);
        }
    }
    if (st == CT_OK) st = ct_st_writer_meta(w, "cli.model", rec);
    const char *keys[] = {"cli.data", "cli.normalize"};
    for (int i = 0; i < 2 && st == CT_OK; i++)
        if (ct_st_meta(f, keys[i])) st = ct_st_writer_meta(w, keys[i], ct_st_meta(f, keys[i]));
    if (st == CT_OK) st = ct_st_writer_save(w, out);
    if (st != CT_OK) fprintf(stderr, "ctrain: %s: --out '%s': %s\n", CMD, out, ct_last_error());
    free(rec);
    ct_st_writer_free(w);
    return st == CT_OK;
}

/* The MLP's record; false after reporting a model this cannot shrink. */
static bool mlp_record(const prune_cfg *c, const ct_st_file *f, model_cfg *mc) {
    const char *rec = ct_st_meta(f, "cli.model"), *why = "it has no model record (metadata cli.model)";
    if (!rec || !model_from_json(rec, mc, &why)) {
        fprintf(stderr, "ctrain: %s: '%s': %s\n", CMD, c->checkpoint, why);
        return false;
    }
    why = strcmp(mc->model, "mlp") != 0 ? "only MLPs lose neurons here (conv channels stay masked)"
          : mc->n_hidden == 0            ? "the model has nothing to prune: it has no hidden layer"
                                         : NULL;
    if (why) fprintf(stderr, "ctrain: %s: '%s' (--model %s): %s\n", CMD, c->checkpoint, mc->model, why);
    return why == NULL;
}

/* Every hidden layer's dead neurons out; the number removed (-1: error). */
static int64_t shrink(mlp_w *m, model_cfg *mc, const prune_cfg *c, char *report, size_t cap) {
    int64_t removed = 0;
    size_t len = 0;
    for (int k = 0; k < mc->n_hidden; k++) {
        uint8_t *dead = malloc((size_t)m->out[k] + 1);
        int64_t before = m->out[k], n = dead ? pick_dead(m, k, c->sparsity, c->norm, dead) : -1;
        bool ok = n >= 0 && remove_dead(m, k, dead, mc->activation);
        free(dead);
        if (!ok) return -1;
        removed += n;
        mc->hidden[k] = m->out[k];
        if (len < cap)
            len += (size_t)snprintf(report + len, cap - len, "%sfc%d %lld -> %lld", k ? ", " : "", k + 1,
                                    (long long)before, (long long)m->out[k]);
    }
    return removed;
}

int cmd_prune(int argc, char **argv) {
    if (cli_help_asked(argc, argv)) return cmd_prune_usage(stdout), CLI_EXIT_OK;
    prune_cfg c = {0};
    cli_parser p;
    cli_parser_init(&p, &prune_table, &c, false);
    int rc = cli_parse_argv(&p, argc, argv);
    cli_parser_free(&p);
    if (rc != CLI_EXIT_OK) return rc;
    if (!c.checkpoint || !c.out) return cli_usage_error(CMD, "--checkpoint FILE and --out FILE are required");
    if (strcmp(c.checkpoint, c.out) == 0)
        return cli_usage_error(CMD, "--out must differ from --checkpoint (the original is kept)");
    ct_st_file *f = ct_st_open(c.checkpoint);
    if (!f) return cli_fail(CMD);
    model_cfg mc;
    mlp_w m = {0};
    char report[512] = "";
    rc = CLI_EXIT_FAIL;
    if (mlp_record(&c, f, &mc) && load_mlp(f, c.checkpoint, &mc, &m)) {
        int64_t removed = shrink(&m, &mc, &c, report, sizeof report);
        if (removed == 0)
            fprintf(stderr, "ctrain: %s: '%s' has nothing to prune: no hidden neuron has all-zero weights (train "
                    "with --prune-structure neuron, or give --sparsity S)\n", CMD, c.checkpoint);
        else if (removed > 0 && write_mlp(&m, &mc, f, c.out)) {
            printf("removed %lld hidden neurons (%s); wrote %s\n", (long long)removed, report, c.out);
            rc = CLI_EXIT_OK;
        }
    }
    mlp_free(&m);
    ct_st_close(f);
    return rc;
}
