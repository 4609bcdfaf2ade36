/* `ctrain predict`'s files (predict_cli.h): the checkpoint's record of the
 * classifier, a CSV of features, and the rows of predictions.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_checks.h"
#include "predict_cli.h"

#define CMD "predict"

bool predict_model_read(const char *path, const ct_st_file *f, predict_model *pm) {
    const char *rec = ct_st_meta(f, "cli.model"), *why = NULL;
    pm->kind = ct_st_meta(f, "cli.data");
    const char *norm = ct_st_meta(f, "cli.normalize");
    if (!rec || !pm->kind || !norm) {
        fprintf(stderr,
                "ctrain: %s: '%s' has no record of its model, data and normalisation (metadata cli.model, "
                "cli.data, cli.normalize): predict needs a checkpoint of 'ctrain train'\n",
                CMD, path);
        return false;
    }
    if (!model_from_json(rec, &pm->m, &why)) {
        fprintf(stderr, "ctrain: %s: '%s': its model record (metadata cli.model) is unusable: %s\n", CMD, path, why);
        return false;
    }
    if (!norm_from_json(norm, &pm->mean, &pm->std, &pm->n_norm)) {
        fprintf(stderr, "ctrain: %s: '%s': its normalisation record (metadata cli.normalize) is unusable\n", CMD,
                path);
        return false;
    }
    if (pm->m.classes < 1 || pm->m.classes > (1 << 24)) {
        fprintf(stderr, "ctrain: %s: '%s': its model record claims %lld classes\n", CMD, path,
                (long long)pm->m.classes);
        return false;
    }
    return eval_norm_ok(CMD, path, pm->mean, pm->std, pm->n_norm) && eval_weights_finite(CMD, path, f);
}

/* The fields of one line into *vals (grown as needed); -1 with the bad
 * field's column in *col when one is not a finite number. */
static int64_t parse_line(char *line, float **vals, int64_t *cap, int64_t *col) {
    int64_t n = 0;
    for (char *p = line;; n++) {
        char *end;
        while (*p == ' ' || *p == '\t') p++;
        errno = 0;
        double v = strtod(p, &end);
        char *q = end;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
        if (end == p || errno == ERANGE || !isfinite(v) || fabs(v) > 3.4e38 || (*q && *q != ',')) {
            *col = n + 1;
            return -1;
        }
        if (n == *cap) {
            float *more = realloc(*vals, (size_t)(*cap = *cap ? 2 * *cap : 1024) * sizeof *more);
            if (!more) return -2;
            *vals = more;
        }
        (*vals)[n] = (float)v;
        if (!*q) return n + 1;
        p = q + 1;
    }
}

static bool blank(const char *s) {
    return s[strspn(s, " \t\r\n")] == 0;
}

bool predict_read_csv(const char *path, ct_dataset **out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ctrain: %s: --input '%s': %s\n", CMD, path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t lcap = 0;
    float *row = NULL, *all = NULL;
    int64_t rcap = 0, width = 0, n = 0, acap = 0, lineno = 0, col = 0;
    bool ok = true;
    while (ok && getline(&line, &lcap, f) >= 0) {
        lineno++;
        if (blank(line)) continue;
        int64_t k = parse_line(line, &row, &rcap, &col);
        if (k == -1 && n == 0 && lineno == 1) continue; /* a header */
        if (k < 0 || (width && k != width) || (size_t)(n + 1) * (size_t)(k > 0 ? k : 1) > (1ull << 34)) {
            if (k == -1)
                fprintf(stderr, "ctrain: %s: --input '%s': line %lld, column %lld is not a finite number\n", CMD, path,
                        (long long)lineno, (long long)col);
            else if (k > 0 && width && k != width)
                fprintf(stderr, "ctrain: %s: --input '%s': line %lld has %lld values, the rows before %lld\n", CMD,
                        path, (long long)lineno, (long long)k, (long long)width);
            else
                fprintf(stderr, "ctrain: %s: --input '%s': out of memory\n", CMD, path);
            ok = false;
            break;
        }
        width = k;
        if ((n + 1) * width > acap) {
            acap = 2 * (n + 1) * width;
            float *more = realloc(all, (size_t)acap * sizeof *more);
            if (!more) {
                fprintf(stderr, "ctrain: %s: --input '%s': out of memory\n", CMD, path);
                ok = false;
                break;
            }
            all = more;
        }
        memcpy(all + n * width, row, (size_t)width * sizeof *row);
        n++;
    }
    if (ok && ferror(f)) {
        fprintf(stderr, "ctrain: %s: --input '%s': cannot read it\n", CMD, path);
        ok = false;
    }
    if (ok && n == 0) {
        fprintf(stderr, "ctrain: %s: --input '%s': no rows of numbers\n", CMD, path);
        ok = false;
    }
    int32_t *labels = ok ? calloc((size_t)n, sizeof *labels) : NULL;
    if (ok && (!labels || ct_dataset_from_arrays(n, (ct_shape){1, {width}}, all, labels, 1, out) != CT_OK)) {
        cli_fail(CMD);
        ok = false;
    }
    free(labels);
    free(all);
    free(row);
    free(line);
    fclose(f);
    return ok;
}

/* The k most probable classes of one row, most probable first (ties: the
 * lower class), into idx. */
static void top(const float *probs, int64_t C, int64_t k, int64_t *idx) {
    for (int64_t j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t c = 0; c < C; c++) {
            bool used = false;
            for (int64_t u = 0; u < j && !used; u++) used = idx[u] == c;
            if (!used && (best < 0 || probs[c] > probs[best])) best = c;
        }
        idx[j] = best;
    }
}

void predict_write_rows(FILE *f, const ct_prediction *p, int64_t top_k) {
    int64_t C = p->classes;
    fprintf(f, "sample,class");
    for (int64_t j = 0; j < (top_k ? top_k : C); j++) {
        if (top_k)
            fprintf(f, ",top%lld,p_top%lld", (long long)j + 1, (long long)j + 1);
        else
            fprintf(f, ",p%lld", (long long)j);
    }
    fputc('\n', f);
    int64_t *idx = top_k ? malloc((size_t)top_k * sizeof *idx) : NULL;
    for (int64_t i = 0; i < p->count; i++) {
        const float *row = p->probs + i * C;
        fprintf(f, "%lld,%d", (long long)i, (int)p->label[i]);
        if (idx) {
            top(row, C, top_k, idx);
            for (int64_t j = 0; j < top_k; j++) fprintf(f, ",%lld,%.9g", (long long)idx[j], (double)row[idx[j]]);
        } else {
            for (int64_t c = 0; c < C; c++) fprintf(f, ",%.9g", (double)row[c]);
        }
        fputc('\n', f);
    }
    free(idx);
}
