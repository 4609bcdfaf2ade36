/* UTF-8 to code points and back, for character-level text.
 *
 * The decoder is strict, following Unicode's table of well-formed byte
 * sequences (The Unicode Standard, 3.9, table 3-7): an overlong form, a
 * surrogate or a value above U+10FFFF is an error, not a character. A text
 * that is not valid UTF-8 is most likely another encoding (Latin-1, say),
 * and training on its guessed characters would silently give a vocabulary
 * that no other tool agrees with.
 */
#include <stdio.h>

#include "core/error.h"
#include "data/text_internal.h"

/* Why the character at s[0..avail) is malformed, or NULL if it is not; on
 * success *cp is its value and *size its length in bytes. */
static const char *decode_one(const unsigned char *s, size_t avail, int32_t *cp, int *size) {
    unsigned b = s[0];
    if (b < 0x80) {
        *cp = (int32_t)b;
        *size = 1;
        return NULL;
    }
    if (b < 0xC0) return "a continuation byte where a character should start";
    if (b < 0xC2) return "an overlong (two-byte) encoding";
    if (b > 0xF4) return "a byte that never occurs in UTF-8";
    int len = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    /* The second byte's range is narrower after a few lead bytes: that is
     * where overlong forms, surrogates and values above U+10FFFF would be. */
    unsigned lo = 0x80, hi = 0xBF;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
    if (avail < 2) return "a character cut off by the end of the text";
    if (s[1] < lo || s[1] > hi) {
        if (s[1] < 0x80 || s[1] > 0xBF) return "a lead byte not followed by a continuation byte";
        if (b == 0xED) return "a surrogate (U+D800..U+DFFF), which UTF-8 does not encode";
        if (b == 0xF4) return "a value above U+10FFFF";
        return "an overlong encoding";
    }
    uint32_t v = b & (0xFFu >> (len + 1));
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= avail) return "a character cut off by the end of the text";
        if (s[i] < 0x80 || s[i] > 0xBF) return "a lead byte not followed by enough continuation bytes";
        v = v << 6 | (s[i] & 0x3Fu);
    }
    *cp = (int32_t)v;
    *size = len;
    return NULL;
}

ct_status ct_utf8_decode(const unsigned char *s, size_t len, const char *name, int32_t *cps, int64_t *n) {
    int64_t count = 0;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs, the bulk of most texts, skip the general decoder. */
        if (s[i] < 0x80) {
            cps[count++] = s[i++];
            continue;
        }
        int32_t cp = 0;
        int size = 0;
        const char *why = decode_one(s + i, len - i, &cp, &size);
        if (why) {
            *n = 0;
            return ct_error(CT_ERR_FORMAT, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02X): %s", name, i,
                            s[i], why);
        }
        cps[count++] = cp;
        i += (size_t)size;
    }
    *n = count;
    return CT_OK;
}

int ct_utf8_encode(int32_t cp, char out[4]) {
    uint32_t v = (uint32_t)cp;
    if (v < 0x80) {
        out[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (char)(0xC0 | v >> 6);
        out[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | v >> 12);
        out[1] = (char)(0x80 | (v >> 6 & 0x3F));
        out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | v >> 18);
    out[1] = (char)(0x80 | (v >> 12 & 0x3F));
    out[2] = (char)(0x80 | (v >> 6 & 0x3F));
    out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

void ct_utf8_describe(int32_t cp, char *buf, size_t cap) {
    /* C0 controls, DEL and the C1 controls: shown by number only. */
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
        snprintf(buf, cap, "U+%04X", (unsigned)cp);
        return;
    }
    char u[5] = {0};
    u[ct_utf8_encode(cp, u)] = '\0';
    snprintf(buf, cap, "'%s' (U+%04X)", u, (unsigned)cp);
}
