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
                if (*p == '\0')
                    return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: a NUL byte (is this a binary file?)",
                                    path, line, f->n);
                f->text[w++] = *p++;
            }
            while (p < end && is_pad(*p, delim)) p++;
            if (p < end && *p != delim)
                return ct_error(CT_ERR_FORMAT,
                                "%s: line %ld, column %d: text after the closing quote", path,
                                line, f->n);
        } else {
            size_t start = w;
            while (p < end && *p != delim) {
                if (*p == '\0') break;
                f->text[w++] = *p++;
            }
            if (p < end && *p == '\0')
                return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: a NUL byte (is this a binary file?)",
                                path, line, f->n);
            while (w > start && is_pad(f->text[w - 1], delim)) w--;
        }
        f->text[w++] = '\0';
        if (p == end) break;
        p++; /* the delimiter */
    }
    return CT_OK;
}

static const char *field(const fields *f, int k) { return f->text + f->off[k]; }

/* Labels are at most this: a model with more outputs than a float counts
 * exactly is never what a CSV label column means, and a stray 2e9 must be
 * reported as a bad label, not as a failed allocation of the model. */
#define CSV_MAX_LABEL ((1 << 24) - 1)

/* The characters of a decimal number. strtod also takes hexadecimal
 * ("0x2"), "nan" and "inf": a table holding those is almost certainly not
 * what its author meant, so they are not numbers here. */
static bool decimal_chars(const char *s) {
    return *s && s[strspn(s, "0123456789+-.eE")] == '\0';
}

/* A finite decimal number filling the whole field. Non-finite values are
 * refused: "nan" in a table is almost always a missing value, and one NaN
 * feature silently turns every loss into NaN. */
static bool parse_number(const char *s, double *v) {
    if (!decimal_chars(s)) return false;
    char *e;
    *v = strtod(s, &e);
    return *e == '\0' && isfinite(*v);
}

/* A field a header may have: a name, that is, text that strtod does not
 * read as a whole (so not "nan", "inf" or "0x2") and that is not a mangled
 * decimal number ("2.5.1", "1e"). A first row whose only odd fields are
 * those is data, and its error names the field. */
static bool is_name(const char *s) {
    if (!*s || decimal_chars(s)) return false;
    char *e;
    (void)strtod(s, &e);
    return *e != '\0';
}

/* Why a field is not a number, for the message. */
static const char *not_number_why(const char *s) {
    char *e;
    (void)strtod(s, &e);
    if (*e == '\0' && strpbrk(s, "xX")) return "is hexadecimal; only decimal numbers are read";
    return "is not a finite number";
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
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: %s'%s' %s", path, line, k + 1,
                            k == label_col ? "label " : "", quote(t, buf, sizeof buf), not_number_why(t));
        if (k != label_col) {
            /* Finite as a double is not enough: 1e39 is inf as a float, and
             * one inf feature makes every statistic and loss NaN. */
            float fv = (float)v;
            if (!isfinite(fv))
                return ct_error(CT_ERR_FORMAT,
                                "%s: line %ld, column %d: '%s' is beyond the float range (about 3.4e38)",
                                path, line, k + 1, quote(t, buf, sizeof buf));
            *x++ = fv;
            continue;
        }
        if (v != floor(v))
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: label '%s' is not an integer",
                            path, line, k + 1, quote(t, buf, sizeof buf));
        if (v < 0)
            return ct_error(CT_ERR_FORMAT, "%s: line %ld, column %d: label %s is negative", path,
                            line, k + 1, quote(t, buf, sizeof buf));
        if (num_classes > 0 && v >= num_classes)
            return ct_error(CT_ERR_FORMAT,
                            "%s: line %ld, column %d (row %lld): label %s is not below %d, the number of classes",
                            path, line, k + 1, (long long)g->rows + 1, quote(t, buf, sizeof buf),
                            (int)num_classes);
        if (v > CSV_MAX_LABEL)
            return ct_error(CT_ERR_FORMAT,
                            "%s: line %ld, column %d (row %lld): label %s is too large: labels are class "
                            "numbers, at most %d",
                            path, line, k + 1, (long long)g->rows + 1, quote(t, buf, sizeof buf), CSV_MAX_LABEL);
        g->y[g->rows] = (int32_t)v;
    }
    g->rows++;
    return CT_OK;
}

/* One read in progress: the column layout the first line fixed, and the
 * rows so far. */
typedef struct csv_read {
    const char *path;
    const ct_csv_opts *opts;
    char delim;
    fields f;             /* the line being read */
    growing g;
    int nf, label_col;    /* nf 0 until the first non-blank line */
    long first_line, header_line;
} csv_read;

static ct_status check_opts(const ct_csv_opts *opts, char delim) {
    if (delim == '"' || delim == '\n' || delim == '\r')
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: delimiter %d cannot be used",
                        (int)delim);
    if (opts->header < CT_CSV_HEADER_AUTO || opts->header > CT_CSV_HEADER_NO)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: unknown header mode %d",
                        (int)opts->header);
    if (opts->num_classes < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: num_classes %d < 0",
                        (int)opts->num_classes);
    return CT_OK;
}

/* The first non-blank line fixes the column count, the label column and
 * whether it is a header (*header). */
static ct_status first_fields(csv_read *r, long line, bool *header) {
    const ct_csv_opts *opts = r->opts;
    int nf = r->nf = r->f.n;
    r->first_line = line;
    if (nf < 2)
        return ct_error(CT_ERR_FORMAT,
                        "%s: line %ld has %d field; need at least 2 (features and a label; "
                        "is the delimiter '%c' right?)",
                        r->path, line, nf, r->delim);
    int lc = opts->label_column;
    r->label_col = lc == 0 ? nf - 1 : lc > 0 ? lc - 1 : nf + lc;
    if (r->label_col < 0 || r->label_col >= nf)
        return ct_error(CT_ERR_INVALID_ARG,
                        "%s: label column %d is outside the %d fields of line %ld", r->path,
                        lc, nf, line);
    *header = opts->header == CT_CSV_HEADER_YES;
    if (opts->header == CT_CSV_HEADER_AUTO) {
        for (int k = 0; k < nf && !*header; k++) *header = is_name(field(&r->f, k));
    }
    if (*header) r->header_line = line;
    return CT_OK;
}

/* One non-blank line [p, le): the layout (first line), or a data row. */
static ct_status read_line(csv_read *r, const char *p, const char *le, long line) {
    ct_status s = split_line(p, le, r->delim, &r->f, r->path, line);
    if (s != CT_OK) return s;
    if (r->nf == 0) {
        bool header = false;
        if ((s = first_fields(r, line, &header)) != CT_OK || header) return s;
    } else if (r->f.n != r->nf) {
        return ct_error(CT_ERR_FORMAT, "%s: line %ld has %d fields, expected %d as on line %ld",
                        r->path, line, r->f.n, r->nf, r->first_line);
    }
    s = grow(&r->g, r->nf - 1, r->path);
    if (s == CT_OK) s = parse_row(&r->f, r->label_col, r->opts->num_classes, &r->g, r->path, line);
    return s;
}

/* Every line of the file's bytes [p, end), blank ones skipped. */
static ct_status read_lines(csv_read *r, const char *p, const char *end) {
    ct_status s = CT_OK;
    long line = 0;
    /* Spreadsheets on Windows start UTF-8 files with a byte order mark. */
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    while (s == CT_OK && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        line++;
        if (le > p && le[-1] == '\r') le--;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q)) q++;
        if (q != le) s = read_line(r, p, le, line); /* else blank */
        p = next;
    }
    return s;
}

/* The dataset of the rows read. */
static ct_status make_dataset(const csv_read *r, ct_dataset **out) {
    const growing *g = &r->g;
    if (g->rows == 0)
        return ct_error(CT_ERR_FORMAT, "%s: %s", r->path,
                        r->header_line ? "a header but no data rows" : "empty file, no data rows");
    ct_dataset *ds = NULL;
    ct_status s = ct_data_alloc(g->rows, (ct_shape){1, {r->nf - 1}}, &ds);
    if (s != CT_OK) return s;
    memcpy(ds->x, g->x, (size_t)(g->rows * (r->nf - 1)) * sizeof(float));
    memcpy(ds->y, g->y, (size_t)g->rows * sizeof(int32_t));
    ds->num_classes =
        r->opts->num_classes > 0 ? r->opts->num_classes : ct_data_count_classes(ds->y, ds->n);
    *out = ds;
    return CT_OK;
}

ct_status ct_dataset_load_csv(const char *path, const ct_csv_opts *opts, ct_dataset **out) {
    if (out) *out = NULL;
    if (!path || !out) return ct_error(CT_ERR_INVALID_ARG, "ct_dataset_load_csv: NULL argument");
    const ct_csv_opts defaults = {0};
    if (!opts) opts = &defaults;
    const char delim = opts->delimiter ? opts->delimiter : ',';
    ct_status s = check_opts(opts, delim);
    if (s != CT_OK) return s;

    unsigned char *data;
    size_t len;
    if ((s = ct_data_read_file(path, &data, &len)) != CT_OK) return s;
    csv_read r = {.path = path, .opts = opts, .delim = delim};
    s = read_lines(&r, (const char *)data, (const char *)data + len);
    if (s == CT_OK) s = make_dataset(&r, out);
    free(r.g.x);
    free(r.g.y);
    fields_free(&r.f);
    free(data);
    return s;
}
