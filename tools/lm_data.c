/* Data of the CLI's language models: character text or llm.c token files,
 * split 90/10 without a validation file (nanoGPT's prepare.py), and the
 * record a GPT checkpoint carries. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_cli.h"

void lm_data_free(lm_data *d) {
    ct_text_vocab_free(d->vocab);
    ct_tokens_free(d->train);
    ct_tokens_free(d->val);
    memset(d, 0, sizeof *d);
}

/* Why the last load failed, for the message (the library's, or our own). */
typedef struct why_buf {
    char text[1024];
} why_buf;

static bool fail_lib(why_buf *w) {
    snprintf(w->text, sizeof w->text, "%s", ct_last_error());
    return false;
}

/* A whole file, malloc'ed; NULL after filling w. */
static char *read_file(const char *path, size_t *len, why_buf *w) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(w->text, sizeof w->text, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap);
            if (!b) free(buf);
            buf = b;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(w->text, sizeof w->text, "cannot read '%s'%s", path, buf ? "" : ": out of memory");
        return NULL;
    }
    *len = n;
    return buf;
}

/* The tokens of a text file in a given vocabulary (a checkpoint's). */
static bool encode_file(const char *path, const ct_text_vocab *v, ct_tokens **out, why_buf *w) {
    size_t len;
    char *text = read_file(path, &len, w);
    if (!text) return false;
    bool ok = false;
    int32_t *ids = len ? malloc(len * sizeof *ids) : NULL;
    int64_t n = 0;
    if (len == 0)
        snprintf(w->text, sizeof w->text, "'%s' is empty", path);
    else if (!ids)
        snprintf(w->text, sizeof w->text, "out of memory for the tokens of '%s'", path);
    else if (ct_text_encode(v, text, len, ids, &n) != CT_OK)
        snprintf(w->text, sizeof w->text, "'%s': %s (the checkpoint's vocabulary lacks it)", path, ct_last_error());
    else
        ok = ct_tokens_from_array(ids, n, ct_text_vocab_size(v), out) == CT_OK || fail_lib(w);
    free(ids);
    free(text);
    return ok;
}

/* One file of the kind: tokens, or text in the given vocabulary. */
static bool load_one(const data_cfg *d, const char *path, const ct_text_vocab *v, ct_tokens **out, why_buf *w) {
    if (strcmp(d->kind, "tokens") == 0) return ct_tokens_load(path, (int32_t)d->vocab_size, out) == CT_OK || fail_lib(w);
    return encode_file(path, v, out, w);
}

bool lm_data_load(const char *cmd, const data_cfg *d, const ct_text_vocab *vocab, lm_data *out) {
    memset(out, 0, sizeof *out);
    const char *flag = "--train-file";
    why_buf w;
    bool ok;
    if (strcmp(d->kind, "text") == 0 && !vocab) {
        ok = ct_text_load(d->train_file, d->val_file, &out->vocab, &out->train, &out->val) == CT_OK || fail_lib(&w);
        if (!ok && d->val_file && strstr(w.text, d->val_file)) flag = "--val-file";
    } else {
        ct_tokens *all = NULL;
        ok = load_one(d, d->train_file, vocab, d->val_file ? &out->train : &all, &w);
        if (ok && d->val_file) {
            flag = "--val-file";
            ok = load_one(d, d->val_file, vocab, &out->val, &w);
        } else if (ok) {
            ok = ct_tokens_split(all, CT_TEXT_TRAIN_FRACTION, &out->train, &out->val) == CT_OK || fail_lib(&w);
        }
        ct_tokens_free(all);
    }
    if (!ok) {
        fprintf(stderr, "ctrain: %s: %s: %s\n", cmd, flag, w.text);
        lm_data_free(out);
        return false;
    }
    out->vocab_size = ct_tokens_vocab_size(out->train);
    if (ct_tokens_vocab_size(out->val) > out->vocab_size) out->vocab_size = ct_tokens_vocab_size(out->val);
    return true;
}

/* ---------------------------------------------------------------- checkpoint record */

bool lm_is_checkpoint(const ct_st_file *f) {
    const char *rec = ct_st_meta(f, "cli.model");
    static const char *const kinds[] = {"gpt", "lstm", "gru", "rnn"};
    char key[32];
    for (size_t i = 0; rec && i < sizeof kinds / sizeof kinds[0]; i++) {
        snprintf(key, sizeof key, "\"model\":\"%s\"", kinds[i]);
        if (strstr(rec, key)) return true;
    }
    return false;
}

void lm_record_free(lm_record *r) {
    ct_text_vocab_free(r->vocab);
    r->vocab = NULL;
}

bool lm_record_read(const char *cmd, const ct_st_file *f, const char *path, lm_record *r) {
    memset(r, 0, sizeof *r);
    const char *rec = ct_st_meta(f, "cli.model"), *kind = ct_st_meta(f, "cli.data");
    const char *why = "it has no record of its model (metadata cli.model)";
    if (!rec || !model_from_json(rec, &r->model, &why) || !model_is_lm(&r->model)) {
        fprintf(stderr, "ctrain: %s: '%s' is not a language model checkpoint of 'ctrain train': %s\n", cmd, path,
                rec ? why : "it has no record of its model (metadata cli.model)");
        return false;
    }
    if (!kind || (strcmp(kind, "text") != 0 && strcmp(kind, "tokens") != 0)) {
        fprintf(stderr, "ctrain: %s: '%s': its data record (metadata cli.data) is not text or tokens\n", cmd, path);
        return false;
    }
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    const char *vj = ct_st_meta(f, LM_VOCAB_KEY);
    if (strcmp(kind, "text") == 0 && (!vj || ct_text_vocab_parse(vj, &r->vocab) != CT_OK)) {
        fprintf(stderr, "ctrain: %s: '%s': its vocabulary (metadata " LM_VOCAB_KEY ") is %s\n", cmd, path,
                vj ? ct_last_error() : "missing");
        return false;
    }
    if (r->vocab && ct_text_vocab_size(r->vocab) > r->model.vocab_size) {
        fprintf(stderr, "ctrain: %s: '%s': its vocabulary has %d characters, the model %lld\n", cmd, path,
                (int)ct_text_vocab_size(r->vocab), (long long)r->model.vocab_size);
        lm_record_free(r);
        return false;
    }
    const char *b = ct_st_meta(f, "ctrain.batch_size"), *s = ct_st_meta(f, "ctrain.data_seed");
    const char *sh = ct_st_meta(f, "ctrain.shuffle");
    /* Numbers read from the file: whole, in range, or the record is refused. */
    char *end = NULL;
    errno = 0;
    r->batch_size = b ? strtoll(b, &end, 10) : 0;
    if (b && (!*b || *end || errno || r->batch_size < 1 || r->batch_size > (1 << 30))) {
        fprintf(stderr, "ctrain: %s: '%s': metadata 'ctrain.batch_size' is '%.40s', not a batch size\n", cmd, path, b);
        lm_record_free(r);
        return false;
    }
    errno = 0;
    r->data_seed = s ? strtoull(s, &end, 10) : 0;
    if (s && (!*s || *end || errno || *s == '-')) {
        fprintf(stderr, "ctrain: %s: '%s': metadata 'ctrain.data_seed' is '%.40s', not a seed\n", cmd, path, s);
        lm_record_free(r);
        return false;
    }
    r->shuffle = !sh || strcmp(sh, "0") != 0;
    return true;
}
