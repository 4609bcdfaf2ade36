/* The character vocabulary: built from text, stored in a checkpoint as a
 * JSON array of code points, read back, and used to turn prompts into ids
 * and generated ids into text.
 *
 * Ids are ranks in code-point order (nanoGPT's sorted(set(text))), so the
 * vocabulary is fully described by its sorted code points, and looking a
 * character up is a binary search in them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/text_internal.h"

/* The JSON text: "[" + up to 8 bytes ("1114111,") per entry + "]". */
static ct_status vocab_finish(ct_text_vocab *v, ct_text_vocab **out) {
    size_t cap = 2 + (size_t)v->n * 8 + 1;
    v->json = malloc(cap);
    if (!v->json) {
        ct_text_vocab_free(v);
        return ct_error(CT_ERR_OOM, "vocabulary: out of memory");
    }
    size_t at = 0;
    v->json[at++] = '[';
    for (int32_t i = 0; i < v->n; i++)
        at += (size_t)snprintf(v->json + at, cap - at, i ? ",%d" : "%d", v->cps[i]);
    v->json[at++] = ']';
    v->json[at] = '\0';
    *out = v;
    return CT_OK;
}

static ct_status vocab_alloc(int32_t n, ct_text_vocab **v) {
    *v = calloc(1, sizeof **v);
    if (*v) (*v)->cps = malloc((size_t)n * sizeof(int32_t));
    if (!*v || !(*v)->cps) {
        ct_text_vocab_free(*v);
        *v = NULL;
        return ct_error(CT_ERR_OOM, "vocabulary: out of memory");
    }
    (*v)->n = n;
    return CT_OK;
}

ct_status ct_text_vocab_from_marks(const unsigned char *marks, const char *name, ct_text_vocab **out) {
    int32_t n = 0;
    for (int32_t cp = 0; cp < CT_UNICODE_END; cp++) n += marks[cp >> 3] >> (cp & 7) & 1;
    if (n == 0) return ct_error(CT_ERR_INVALID_ARG, "%s: no characters to build a vocabulary from", name);
    ct_text_vocab *v;
    ct_status s = vocab_alloc(n, &v);
    if (s != CT_OK) return s;
    int32_t k = 0;
    for (int32_t cp = 0; cp < CT_UNICODE_END; cp++)
        if (marks[cp >> 3] >> (cp & 7) & 1) v->cps[k++] = cp;
    return vocab_finish(v, out);
}

ct_status ct_text_vocab_from_utf8(const char *text, size_t len, ct_text_vocab **out) {
    if (!out) return ct_error(CT_ERR_INVALID_ARG, "ct_text_vocab_from_utf8: NULL output pointer");
    *out = NULL;
    if (!text) return ct_error(CT_ERR_INVALID_ARG, "ct_text_vocab_from_utf8: NULL text");
    if (len == 0) return ct_error(CT_ERR_INVALID_ARG, "ct_text_vocab_from_utf8: empty text, no vocabulary");
    int32_t *cps = malloc(len * sizeof *cps);
    unsigned char *marks = calloc(CT_UNICODE_END / 8, 1);
    ct_status s = CT_OK;
    if (!cps || !marks) s = ct_error(CT_ERR_OOM, "ct_text_vocab_from_utf8: out of memory");
    int64_t n = 0;
    if (s == CT_OK) s = ct_utf8_decode((const unsigned char *)text, len, "text", cps, &n);
    if (s == CT_OK) {
        for (int64_t i = 0; i < n; i++) marks[cps[i] >> 3] |= (unsigned char)(1u << (cps[i] & 7));
        s = ct_text_vocab_from_marks(marks, "text", out);
    }
    free(cps);
    free(marks);
    return s;
}

void ct_text_vocab_free(ct_text_vocab *v) {
    if (!v) return;
    free(v->cps);
    free(v->json);
    free(v);
}

int32_t ct_text_vocab_size(const ct_text_vocab *v) { return v ? v->n : 0; }

int32_t ct_text_vocab_char(const ct_text_vocab *v, int32_t id) {
    return v && id >= 0 && id < v->n ? v->cps[id] : -1;
}

int32_t ct_text_vocab_id(const ct_text_vocab *v, int32_t cp) {
    if (!v) return -1;
    int32_t lo = 0, hi = v->n; /* the answer, if any, is in [lo, hi) */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (v->cps[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n && v->cps[lo] == cp ? lo : -1;
}

const char *ct_text_vocab_json(const ct_text_vocab *v) { return v ? v->json : NULL; }

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Element k of the array at *p (after the '[' or ','): a decimal code point
 * above prev. Advances *p past it. */
static ct_status parse_element(const char **p, int32_t k, int32_t prev, int32_t *cp) {
    const char *q = skip_space(*p);
    if (*q < '0' || *q > '9')
        return ct_error(CT_ERR_FORMAT, "vocabulary: element %d is not a non-negative integer", k);
    errno = 0;
    char *end;
    long long v = strtoll(q, &end, 10);
    if (errno == ERANGE || v >= CT_UNICODE_END)
        return ct_error(CT_ERR_FORMAT, "vocabulary: element %d (%.*s) is above U+10FFFF", k,
                        end - q < 24 ? (int)(end - q) : 24, q);
    if (v >= 0xD800 && v <= 0xDFFF)
        return ct_error(CT_ERR_FORMAT, "vocabulary: element %d (%lld) is a surrogate, not a character", k, v);
    if (v <= prev)
        return ct_error(CT_ERR_FORMAT,
                        "vocabulary: element %d (%lld) is not above the one before it (%d): "
                        "code points must be sorted and distinct", k, v, prev);
    *cp = (int32_t)v;
    *p = end;
    return CT_OK;
}

ct_status ct_text_vocab_parse(const char *json, ct_text_vocab **out) {
    if (!out) return ct_error(CT_ERR_INVALID_ARG, "ct_text_vocab_parse: NULL output pointer");
    *out = NULL;
    if (!json) return ct_error(CT_ERR_INVALID_ARG, "ct_text_vocab_parse: NULL string");
    const char *p = skip_space(json);
    if (*p != '[') return ct_error(CT_ERR_FORMAT, "vocabulary: not a JSON array (no '[')");
    /* Elements are at most one per two bytes ("1,"): enough room at once. */
    size_t cap = strlen(p) / 2 + 1;
    if (cap > CT_UNICODE_END) cap = CT_UNICODE_END;
    int32_t *cps = malloc(cap * sizeof *cps);
    if (!cps) return ct_error(CT_ERR_OOM, "vocabulary: out of memory");
    p++;
    int32_t n = 0;
    ct_status s = CT_OK;
    if (*skip_space(p) == ']') s = ct_error(CT_ERR_FORMAT, "vocabulary: empty array");
    while (s == CT_OK) {
        s = parse_element(&p, n, n ? cps[n - 1] : -1, &cps[n]);
        if (s != CT_OK) break;
        n++;
        p = skip_space(p);
        if (*p == ']') break;
        if (*p != ',')
            s = ct_error(CT_ERR_FORMAT, "vocabulary: expected ',' or ']' after element %d", n - 1);
        p++;
    }
    if (s == CT_OK && *skip_space(p + 1) != '\0')
        s = ct_error(CT_ERR_FORMAT, "vocabulary: text after the closing ']'");
    ct_text_vocab *v = NULL;
    if (s == CT_OK) s = vocab_alloc(n, &v);
    if (s == CT_OK) {
        memcpy(v->cps, cps, (size_t)n * sizeof *cps);
        s = vocab_finish(v, out);
    }
    free(cps);
    return s;
}

ct_status ct_text_encode(const ct_text_vocab *v, const char *text, size_t len, int32_t *ids, int64_t *n) {
    if (n) *n = 0;
    if (!v || (!text && len) || !ids || !n) return ct_error(CT_ERR_INVALID_ARG, "ct_text_encode: NULL argument");
    int64_t count = 0;
    ct_status s = ct_utf8_decode((const unsigned char *)text, len, "text", ids, &count);
    if (s != CT_OK) return s;
    /* The byte offset of each character is recounted only for the message. */
    size_t offset = 0;
    for (int64_t i = 0; i < count; i++) {
        int32_t cp = ids[i];
        ids[i] = ct_text_vocab_id(v, cp);
        if (ids[i] < 0) {
            char what[32];
            ct_utf8_describe(cp, what, sizeof what);
            return ct_error(CT_ERR_FORMAT, "text: character %s at byte offset %zu is not in the vocabulary (%d characters)",
                            what, offset, v->n);
        }
        char tmp[4];
        offset += (size_t)ct_utf8_encode(cp, tmp);
    }
    *n = count;
    return CT_OK;
}

ct_status ct_text_decode(const ct_text_vocab *v, const int32_t *ids, int64_t n, char *out, size_t cap,
                         size_t *len) {
    if (len) *len = 0;
    if (!v || (!ids && n) || !len) return ct_error(CT_ERR_INVALID_ARG, "ct_text_decode: NULL argument");
    if (n < 0) return ct_error(CT_ERR_INVALID_ARG, "ct_text_decode: %lld ids", (long long)n);
    size_t need = 0;
    char tmp[4];
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n)
            return ct_error(CT_ERR_INVALID_ARG, "ct_text_decode: id %d at index %lld is outside the vocabulary [0, %d)",
                            ids[i], (long long)i, v->n);
        need += (size_t)ct_utf8_encode(v->cps[ids[i]], tmp);
    }
    *len = need;
    if (!out) return CT_OK;
    if (cap <= need)
        return ct_error(CT_ERR_INVALID_ARG, "ct_text_decode: the text needs %zu bytes with its NUL, the buffer has %zu",
                        need + 1, cap);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) at += (size_t)ct_utf8_encode(v->cps[ids[i]], out + at);
    out[at] = '\0';
    return CT_OK;
}
