/* A character-level data set from text files: decode, build the
 * vocabulary, turn characters into ids, and split.
 *
 * With a separate validation file the vocabulary is the union of both
 * files' characters. nanoGPT builds its vocabulary from one file that it
 * then splits, so its vocabulary is that of training and validation text
 * together; the union is the same thing for two files. It also means a
 * validation character can never be missing from the vocabulary, which
 * otherwise would make the validation file unusable (or force a silent
 * "unknown" id that no other tool would agree with).
 */
#include <stdlib.h>

#include "core/error.h"
#include "data/data_internal.h"
#include "data/text_internal.h"

/* One file's characters as code points, in place in *cps (malloc'ed). */
typedef struct text_file {
    const char *path;
    int32_t *cps;
    int64_t n;
} text_file;

static ct_status read_text(text_file *f) {
    unsigned char *b;
    size_t len;
    ct_status s = ct_data_read_file(f->path, &b, &len);
    if (s != CT_OK) return s;
    if (len == 0) {
        free(b);
        return ct_error(CT_ERR_FORMAT, "%s: empty file, no text", f->path);
    }
    f->cps = malloc(len * sizeof *f->cps);
    if (!f->cps) s = ct_error(CT_ERR_OOM, "%s: out of memory for %zu bytes of text", f->path, len);
    if (s == CT_OK) s = ct_utf8_decode(b, len, f->path, f->cps, &f->n);
    if (s == CT_OK && f->n > CT_TOKENS_MAX)
        s = ct_error(CT_ERR_FORMAT, "%s: %lld characters, more than the %d a token sequence holds", f->path,
                     (long long)f->n, CT_TOKENS_MAX);
    free(b);
    return s;
}

/* Every character of the files marked, then the vocabulary of them. */
static ct_status build_vocab(text_file *files, int nf, ct_text_vocab **vocab) {
    unsigned char *marks = calloc(CT_UNICODE_END / 8, 1);
    if (!marks) return ct_error(CT_ERR_OOM, "%s: out of memory", files[0].path);
    for (int k = 0; k < nf; k++)
        for (int64_t i = 0; i < files[k].n; i++)
            marks[files[k].cps[i] >> 3] |= (unsigned char)(1u << (files[k].cps[i] & 7));
    ct_status s = ct_text_vocab_from_marks(marks, files[0].path, vocab);
    free(marks);
    return s;
}

/* The file's code points replaced by their ids, and handed to a sequence. */
static ct_status to_tokens(text_file *f, const ct_text_vocab *v, ct_tokens **out) {
    for (int64_t i = 0; i < f->n; i++) f->cps[i] = ct_text_vocab_id(v, f->cps[i]);
    int32_t *ids = f->cps;
    f->cps = NULL;
    return ct_tokens_adopt(ids, f->n, v->n, f->path, "", out);
}

ct_status ct_text_load(const char *train_path, const char *val_path, ct_text_vocab **vocab, ct_tokens **train,
                       ct_tokens **val) {
    if (vocab) *vocab = NULL;
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (!train_path || !vocab || !train || !val) return ct_error(CT_ERR_INVALID_ARG, "ct_text_load: NULL argument");
    text_file files[2] = {{train_path, NULL, 0}, {val_path, NULL, 0}};
    int nf = val_path ? 2 : 1;
    ct_status s = CT_OK;
    for (int k = 0; k < nf && s == CT_OK; k++) s = read_text(&files[k]);
    if (s == CT_OK) s = build_vocab(files, nf, vocab);
    ct_tokens *all = NULL;
    if (s == CT_OK && val_path) {
        s = to_tokens(&files[0], *vocab, train);
        if (s == CT_OK) s = to_tokens(&files[1], *vocab, val);
    } else if (s == CT_OK) {
        s = to_tokens(&files[0], *vocab, &all);
        if (s == CT_OK) s = ct_tokens_split(all, CT_TEXT_TRAIN_FRACTION, train, val);
    }
    ct_tokens_free(all);
    for (int k = 0; k < nf; k++) free(files[k].cps);
    if (s != CT_OK) {
        ct_text_vocab_free(*vocab);
        ct_tokens_free(*train);
        ct_tokens_free(*val);
        *vocab = NULL;
        *train = *val = NULL;
    }
    return s;
}
