/* Token sequences: from arrays, split into training and validation parts,
 * and read from and written to llm.c's token files.
 *
 * A token file is read whole and every field is checked against the bytes
 * actually present before anything is allocated for its tokens, so a
 * damaged header gives a message naming the field rather than a huge
 * allocation or a read past the end. Ids are widened to int32 on reading:
 * that is what the embedding and cross-entropy ops index with, and it lets
 * one sequence type serve both tokens and characters (whose vocabulary may
 * exceed what uint16 holds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/data_internal.h"
#include "data/text_internal.h"

/* 256 int32 of header, as llm.c writes it. */
#define HEADER_BYTES 1024

ct_status ct_tokens_adopt(int32_t *ids, int64_t n, int32_t vocab_size, const char *name, const char *suffix,
                          ct_tokens **out) {
    *out = NULL;
    ct_tokens *t = calloc(1, sizeof *t);
    size_t nl = strlen(name), sl = strlen(suffix);
    char *nm = malloc(nl + sl + 1);
    if (!t || !nm) {
        free(t);
        free(nm);
        free(ids);
        return ct_error(CT_ERR_OOM, "%s: out of memory", name);
    }
    memcpy(nm, name, nl);
    memcpy(nm + nl, suffix, sl + 1);
    t->n = n;
    t->vocab_size = vocab_size;
    t->ids = ids;
    t->name = nm;
    *out = t;
    return CT_OK;
}

ct_status ct_tokens_from_array(const int32_t *ids, int64_t n, int32_t vocab_size, ct_tokens **out) {
    if (!out) return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_from_array: NULL output pointer");
    *out = NULL;
    if (!ids) return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_from_array: NULL ids");
    if (n < 1 || n > CT_TOKENS_MAX)
        return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_from_array: %lld tokens, expected 1 to %d", (long long)n,
                        CT_TOKENS_MAX);
    if (vocab_size < 1)
        return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_from_array: vocabulary size %d, expected >= 1", vocab_size);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size)
            return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_from_array: token index %lld is %d, outside [0, %d)",
                            (long long)i, ids[i], vocab_size);
    int32_t *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return ct_error(CT_ERR_OOM, "ct_tokens_from_array: out of memory");
    memcpy(copy, ids, (size_t)n * sizeof *copy);
    return ct_tokens_adopt(copy, n, vocab_size, "tokens", "", out);
}

void ct_tokens_free(ct_tokens *t) {
    if (!t) return;
    free(t->ids);
    free(t->name);
    free(t);
}

int64_t ct_tokens_size(const ct_tokens *t) { return t ? t->n : 0; }
int32_t ct_tokens_vocab_size(const ct_tokens *t) { return t ? t->vocab_size : 0; }
const int32_t *ct_tokens_data(const ct_tokens *t) { return t ? t->ids : NULL; }
const char *ct_tokens_name(const ct_tokens *t) { return t ? t->name : NULL; }

/* A copy of ids[from, from + n) named after t with suffix. */
static ct_status copy_part(const ct_tokens *t, int64_t from, int64_t n, const char *suffix, ct_tokens **out) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return ct_error(CT_ERR_OOM, "%s: out of memory splitting %lld tokens", t->name, (long long)t->n);
    memcpy(ids, t->ids + from, (size_t)n * sizeof *ids);
    return ct_tokens_adopt(ids, n, t->vocab_size, t->name, suffix, out);
}

ct_status ct_tokens_split(const ct_tokens *t, double train_fraction, ct_tokens **train, ct_tokens **val) {
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (!t || !train || !val) return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_split: NULL argument");
    if (!(train_fraction > 0.0 && train_fraction < 1.0))
        return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_split: training fraction %g is outside (0, 1)",
                        train_fraction);
    /* Python's int() truncates toward zero, as this cast does, and both
     * multiply in IEEE double: the same count as nanoGPT for every n. */
    int64_t n_train = (int64_t)((double)t->n * train_fraction);
    if (n_train < 1 || n_train > t->n - 1)
        return ct_error(CT_ERR_INVALID_ARG, "%s: %lld tokens split at %g leave the %s split empty", t->name,
                        (long long)t->n, train_fraction, n_train < 1 ? "training" : "validation");
    ct_status s = copy_part(t, 0, n_train, " (training split)", train);
    if (s == CT_OK) s = copy_part(t, n_train, t->n - n_train, " (validation split)", val);
    if (s != CT_OK) {
        ct_tokens_free(*train);
        *train = NULL;
    }
    return s;
}

static int32_t le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* Checks the header of a token file of len bytes; *count gets its count. */
static ct_status check_header(const char *path, const unsigned char *b, size_t len, int64_t *count) {
    if (len == 0) return ct_error(CT_ERR_FORMAT, "%s: empty file, not a token file", path);
    if (len < HEADER_BYTES)
        return ct_error(CT_ERR_FORMAT, "%s: %zu bytes, shorter than the %d-byte header of a token file", path, len,
                        HEADER_BYTES);
    int32_t magic = le32(b), version = le32(b + 4), n = le32(b + 8);
    if (magic != CT_TOKENS_MAGIC)
        return ct_error(CT_ERR_FORMAT, "%s: header magic is %d, expected %d (not an llm.c token file)", path, magic,
                        CT_TOKENS_MAGIC);
    if (version != CT_TOKENS_VERSION)
        return ct_error(CT_ERR_FORMAT, "%s: header version is %d, expected %d", path, version, CT_TOKENS_VERSION);
    if (n < 1) return ct_error(CT_ERR_FORMAT, "%s: header count is %d, expected at least 1 token", path, n);
    int64_t want = HEADER_BYTES + 2 * (int64_t)n;
    if ((uint64_t)want != (uint64_t)len)
        return ct_error(CT_ERR_FORMAT,
                        "%s: header count %d needs %lld bytes (%d + 2 per token), the file has %zu (%s)", path, n,
                        (long long)want, HEADER_BYTES, len, (uint64_t)want > (uint64_t)len ? "truncated" : "extra bytes");
    *count = n;
    return CT_OK;
}

ct_status ct_tokens_load(const char *path, int32_t vocab_size, ct_tokens **out) {
    if (!out) return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_load: NULL output pointer");
    *out = NULL;
    if (!path) return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_load: NULL path");
    if (vocab_size < 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_load: vocabulary size %d, expected >= 0", vocab_size);
    if (vocab_size == 0) vocab_size = CT_TOKENS_GPT2_VOCAB;
    unsigned char *b;
    size_t len;
    ct_status s = ct_data_read_file(path, &b, &len);
    if (s != CT_OK) return s;
    int64_t n = 0;
    s = check_header(path, b, len, &n);
    int32_t *ids = NULL;
    if (s == CT_OK && !(ids = malloc((size_t)n * sizeof *ids)))
        s = ct_error(CT_ERR_OOM, "%s: out of memory for %lld tokens", path, (long long)n);
    for (int64_t i = 0; s == CT_OK && i < n; i++) {
        const unsigned char *p = b + HEADER_BYTES + 2 * i;
        ids[i] = (int32_t)((unsigned)p[0] | (unsigned)p[1] << 8);
        if (ids[i] >= vocab_size)
            s = ct_error(CT_ERR_FORMAT, "%s: token index %lld is %d, not below the vocabulary size %d", path,
                         (long long)i, ids[i], vocab_size);
    }
    free(b);
    if (s != CT_OK) {
        free(ids);
        return s;
    }
    return ct_tokens_adopt(ids, n, vocab_size, path, "", out);
}

ct_status ct_tokens_save(const ct_tokens *t, const char *path) {
    if (!t || !path) return ct_error(CT_ERR_INVALID_ARG, "ct_tokens_save: NULL argument");
    for (int64_t i = 0; i < t->n; i++)
        if (t->ids[i] > 0xFFFF)
            return ct_error(CT_ERR_UNSUPPORTED, "%s: token index %lld is %d, above the 65535 a token file holds",
                            path, (long long)i, t->ids[i]);
    size_t bytes = HEADER_BYTES + 2 * (size_t)t->n;
    unsigned char *b = calloc(bytes, 1);
    if (!b) return ct_error(CT_ERR_OOM, "%s: out of memory", path);
    const int32_t head[3] = {CT_TOKENS_MAGIC, CT_TOKENS_VERSION, (int32_t)t->n};
    for (int f = 0; f < 3; f++)
        for (int k = 0; k < 4; k++) b[4 * f + k] = (unsigned char)((uint32_t)head[f] >> (8 * k));
    for (int64_t i = 0; i < t->n; i++) {
        b[HEADER_BYTES + 2 * i] = (unsigned char)t->ids[i];
        b[HEADER_BYTES + 2 * i + 1] = (unsigned char)(t->ids[i] >> 8);
    }
    ct_status s = CT_OK;
    FILE *f = fopen(path, "wb");
    if (!f) {
        s = ct_error(CT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    } else {
        bool ok = fwrite(b, 1, bytes, f) == bytes;
        int err = errno;
        if (fclose(f) != 0 && ok) {
            ok = false;
            err = errno;
        }
        if (!ok) s = ct_error(CT_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    free(b);
    return s;
}
