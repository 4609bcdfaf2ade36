/* CSV files of numbers: one sample per line, one field of it the label.
 *
 * Deliberately a small dialect: a delimiter, optional double quotes around
 * a field ("" inside quotes is one quote), blank lines skipped, CRLF
 * accepted, no line breaks inside quotes. That covers what pandas'
 * to_csv, numpy.savetxt and spreadsheets write for numeric tables, and
 * every failure names the line and column it happened at.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data_internal.h"

/* A line cut into fields: each field's text NUL-terminated in `text`, the
 * field starting at text + off[k]. */
typedef struct fields {
    char *text;
    size_t text_cap;
    size_t *off;
    int n, cap;
} fields;

static void fields_free(fields *f) {
    free(f->text);
    free(f->off);
}

/* Space that may surround a field, unless it is the delimiter itself. */
static bool is_pad(char c, char delim) { return (c == ' ' || c == '\t') && c != delim; }

/* Splits [p, end) into fields. Returns CT_OK, or CT_ERR_FORMAT / CT_ERR_OOM
 * with the message set; path and line are for the message. */
static ct_status split_line(const char *p, const char *end, char delim, fields *f,
                            const char *path, long line) {
    f->n = 0;
    /* A field's text is never longer than the line, so room for the line
     * plus one terminator per field is enough for all of them. */
    size_t need = (size_t)(end - p) * 2 + 2;
    if (need > f->text_cap) {
        char *t = realloc(f->text, need);
        if (!t) return ct_error(CT_ERR_OOM, "%s: out of memory", path);
        f->text = t;
        f->text_cap = need;
    }
    size_t w = 0;
    for (;;) {
        if (f->n == f->cap) {
            int nc = f->cap ? f->cap * 2 : 16;
            size_t *no = realloc(f->off, (size_t)nc * sizeof *no);
            if (!no) return ct_error(CT_ERR_OOM, "%s: out of memory", path);
            f->off = no;
            f->cap = nc;
        }
        f->off[f->n++] = w;
        while (p < end && is_pad(*p, delim)) p++;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p == end)
                    return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: unterminated quote",
                                    path, line, f->n);
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        f->text[w++] = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                f->text[w++] = *p++;
            }
            while (p < end && is_pad(*p, delim)) p++;
            if (p < end && *p != delim)
                return ct_error(CT_ERR_FORMAT,
                                "%s: line %ld, column %d: text after the closing quote", path,
                                line, f->n);
        } else {
            size_t start = w;
            while (p < end && *p != delim) f->text[w++] = *p++;
            while (w > start && is_pad(f->text[w - 1], delim)) w--;
        }
        f->text[w++] = '\0';
        if (p == end) break;
        p++; /* the delimiter */
    }
    return CT_OK;
}

static const char *field(const fields *f, int k) { return f->text + f->off[k]; }

/* A finite number filling the whole field. Non-finite values are refused:
 * "nan" in a table is almost always a missing value, and one NaN feature
 * silently turns every loss into NaN. */
static bool parse_number(const char *s, double *v) {
    if (!*s) return false;
    char *e;
    *v = strtod(s, &e);
    return *e == '\0' && isfinite(*v);
}

/* A field quoted in a message, cut short so one bad line stays one line. */
static const char *quote(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    if (n < cap) return s;
    memcpy(buf, s, cap - 4);
    memcpy(buf + cap - 4, "...", 4);
    return buf;
}

typedef struct growing {
    float *x;
    int32_t *y;
    int64_t rows, cap;
} growing;

static ct_status grow(growing *g, int64_t per_row, const char *path) {
    if (g->rows < g->cap) return CT_OK;
    if (g->cap >= CT_DATASET_MAX_SAMPLES)
        return ct_error(CT_ERR_FORMAT, "%s: more than %d rows", path, CT_DATASET_MAX_SAMPLES);
    int64_t nc = g->cap ? g->cap * 2 : 1024;
    if (nc > CT_DATASET_MAX_SAMPLES) nc = CT_DATASET_MAX_SAMPLES;
    if ((uint64_t)nc * (uint64_t)per_row > SIZE_MAX / sizeof(float))
        return ct_error(CT_ERR_OOM, "%s: too large", path);
    float *nx = realloc(g->x, (size_t)(nc * per_row) * sizeof(float));
    if (!nx) return ct_error(CT_ERR_OOM, "%s: out of memory at %lld rows", path, (long long)g->rows);
    g->x = nx;
    int32_t *ny = realloc(g->y, (size_t)nc * sizeof(int32_t));
    if (!ny) return ct_error(CT_ERR_OOM, "%s: out of memory at %lld rows", path, (long long)g->rows);
    g->y = ny;
    g->cap = nc;
    return CT_OK;
}

/* Parses one data line into row `g->rows`. */
static ct_status parse_row(const fields *f, int label_col, int32_t num_classes, growing *g,
                           const char *path, long line) {
    char buf[48];
    float *x = g->x + g->rows * (f->n - 1);
    for (int k = 0; k < f->n; k++) {
        double v;
        const char *t = field(f, k);
        if (!*t)
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: empty field", path, line, k + 1);
        if (!parse_number(t, &v))
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: %s'%s' is not a finite number",
                            path, line, k + 1, k == label_col ? "label " : "",
                            quote(t, buf, sizeof buf));
        if (k != label_col) {
            *x++ = (float)v;
            continue;
        }
        if (v != floor(v))
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: label '%s' is not an integer",
                            path, line, k + 1, quote(t, buf, sizeof buf));
        if (v < 0)
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: label %s is negative", path,
                            line, k + 1, quote(t, buf, sizeof buf));
        if (v >= (double)INT32_MAX || (num_classes > 0 && v >= num_classes))
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: label %s is not below %d", path,
                            line, k + 1, quote(t, buf, sizeof buf),
                            num_classes > 0 ? (int)num_classes : INT32_MAX);
        g->y[g->rows] = (int32_t)v;
    }
    g->rows++;
    return CT_OK;
}

ct_status ct_dataset_load_csv(const char *path, const ct_csv_opts *opts, ct_dataset **out) {
    if (out) *out = NULL;
    if (!path || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: NULL argument");
    const ct_csv_opts defaults = {0};
    if (!opts) opts = &defaults;
    const char delim = opts->delimiter ? opts->delimiter : ',';
    if (delim == '"' || delim == '\n' || delim == '\r')
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: delimiter %d cannot be used",
                        (int)delim);
    if (opts->header < CT_CSV_HEADER_AUTO || opts->header > CT_CSV_HEADER_NO)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: unknown header mode %d",
                        (int)opts->header);
    if (opts->num_classes < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: num_classes %d < 0",
                        (int)opts->num_classes);

    unsigned char *data;
    size_t len;
    ct_status s = ct_data_read_file(path, &data, &len);
    if (s != CT_OK) return s;

    fields f = {0};
    growing g = {0};
    int nf = 0, label_col = -1;
    long line = 0, first_line = 0, header_line = 0;
    const char *p = (const char *)data, *end = p + len;
    /* Spreadsheets on Windows start UTF-8 files with a byte order mark. */
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;

    while (s == CT_OK && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        line++;
        if (le > p && le[-1] == '\r') le--;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q)) q++;
        if (q == le) { /* blank */
            p = next;
            continue;
        }
        s = split_line(p, le, delim, &f, path, line);
        p = next;
        if (s != CT_OK) break;
        if (nf == 0) {
            /* The first non-blank line fixes the column count, the label
             * column and whether it is a header. */
            nf = f.n;
            first_line = line;
            if (nf < 2) {
                s = ct_error(CT_ERR_FORMAT,
                             "%s: line %ld has %d field; need at least 2 (features and a label; "
                             "is the delimiter '%c' right?)",
                             path, line, nf, delim);
                break;
            }
            int lc = opts->label_column;
            label_col = lc == 0 ? nf - 1 : lc > 0 ? lc - 1 : nf + lc;
            if (label_col < 0 || label_col >= nf) {
                s = ct_error(CT_ERR_INVALID_ARG,
                             "%s: label column %d is outside the %d fields of line %ld", path,
                             lc, nf, line);
                break;
            }
            bool header = opts->header == CT_CSV_HEADER_YES;
            if (opts->header == CT_CSV_HEADER_AUTO) {
                double v;
                for (int k = 0; k < nf && !header; k++) header = !parse_number(field(&f, k), &v);
            }
            if (header) {
                header_line = line;
                continue;
            }
        } else if (f.n != nf) {
            s = ct_error(CT_ERR_FORMAT, "%s: line %ld has %d fields, expected %d as on line %ld",
                         path, line, f.n, nf, first_line);
            break;
        }
        s = grow(&g, nf - 1, path);
        if (s == CT_OK) s = parse_row(&f, label_col, opts->num_classes, &g, path, line);
    }
    if (s == CT_OK && g.rows == 0)
        s = ct_error(CT_ERR_FORMAT, "%s: %s", path,
                     header_line ? "a header but no data rows" : "empty file, no data rows");
    ct_dataset *ds = NULL;
    if (s == CT_OK) s = ct_data_alloc(g.rows, (ct_shape){1, {nf - 1}}, &ds);
    if (s == CT_OK) {
        memcpy(ds->x, g.x, (size_t)(g.rows * (nf - 1)) * sizeof(float));
        memcpy(ds->y, g.y, (size_t)g.rows * sizeof(int32_t));
        ds->num_classes =
            opts->num_classes > 0 ? opts->num_classes : ct_data_count_classes(ds->y, ds->n);
        *out = ds;
    }
    free(g.x);
    free(g.y);
    fields_free(&f);
    free(data);
    return s;
}
