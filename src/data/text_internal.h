/* Internal to src/data: the layouts of token sequences and character
 * vocabularies, and the UTF-8 helpers their files share (text.h). */
#ifndef CT_TEXT_INTERNAL_H
#define CT_TEXT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ctrain/text.h"

struct ct_tokens {
    int64_t n;          /* 1 .. CT_TOKENS_MAX */
    int32_t vocab_size; /* every id is in [0, vocab_size) */
    int32_t *ids;
    char *name;         /* for messages: the file, and which split */
};

struct ct_text_vocab {
    int32_t n;    /* characters, >= 1 */
    int32_t *cps; /* their code points, strictly increasing: id i is cps[i] */
    char *json;   /* ct_text_vocab_json's string */
};

/* The one past the largest Unicode code point, U+10FFFF. */
#define CT_UNICODE_END 0x110000

/* Decodes len bytes of UTF-8 into code points: cps must have room for len
 * entries; *n gets the count. Strict (Unicode's table of well-formed
 * sequences): no overlong forms, surrogates or values above U+10FFFF.
 * Errors (CT_ERR_FORMAT): "<name>: invalid UTF-8 at byte offset <k>: why",
 * k being the offset of the first byte of the bad character. */
ct_status ct_utf8_decode(const unsigned char *s, size_t len, const char *name, int32_t *cps, int64_t *n);

/* The UTF-8 bytes of cp (a Unicode scalar value) into out; returns 1 to 4. */
int ct_utf8_encode(int32_t cp, char out[4]);

/* cp for a message: "'é' (U+00E9)", or "U+000A" alone for a control
 * character, which would break the line or be invisible. */
void ct_utf8_describe(int32_t cp, char *buf, size_t cap);

/* A vocabulary of the code points marked in marks (CT_UNICODE_END bits, bit
 * cp % 8 of byte cp / 8). Errors: nothing marked (CT_ERR_INVALID_ARG,
 * naming name); CT_ERR_OOM. */
ct_status ct_text_vocab_from_marks(const unsigned char *marks, const char *name, ct_text_vocab **out);

/* A sequence that takes ownership of ids (n of them, already checked
 * against vocab_size), named name followed by suffix (which may be ""). On
 * error ids is freed. Errors: CT_ERR_OOM. */
ct_status ct_tokens_adopt(int32_t *ids, int64_t n, int32_t vocab_size, const char *name, const char *suffix,
                          ct_tokens **out);

#endif
