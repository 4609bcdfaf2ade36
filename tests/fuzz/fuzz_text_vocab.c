/* Character vocabularies from UTF-8 text (ct_text_vocab_from_utf8). For
 * text it accepts: ids and code points map both ways; the vocabulary
 * round-trips through its JSON (ct_text_vocab_json, ct_text_vocab_parse);
 * and the text itself round-trips through ct_text_encode and
 * ct_text_decode, byte for byte. */
#include <string.h>

#include <ctrain/ctrain.h>

#include "fuzz_util.h"

static void check_json_round_trip(const ct_text_vocab *v) {
    ct_text_vocab *back = NULL;
    FUZZ_PROMISE(ct_text_vocab_parse(ct_text_vocab_json(v), &back) == CT_OK,
                 "a vocabulary's JSON parses");
    int32_t size = ct_text_vocab_size(v);
    FUZZ_PROMISE(ct_text_vocab_size(back) == size, "the parsed vocabulary has the same size");
    for (int32_t id = 0; id < size; id++) {
        int32_t cp = ct_text_vocab_char(v, id);
        FUZZ_PROMISE(cp >= 0 && cp <= 0x10FFFF, "a vocabulary holds code points");
        FUZZ_PROMISE(ct_text_vocab_char(back, id) == cp, "the parsed vocabulary has the same characters");
        FUZZ_PROMISE(ct_text_vocab_id(v, cp) == id, "ids and characters map both ways");
        if (id > 0) FUZZ_PROMISE(cp > ct_text_vocab_char(v, id - 1), "characters are sorted, no repeats");
    }
    FUZZ_PROMISE(strcmp(ct_text_vocab_json(back), ct_text_vocab_json(v)) == 0, "the JSON comes back the same");
    FUZZ_PROMISE(ct_text_vocab_char(v, size) == -1 && ct_text_vocab_char(v, -1) == -1, "no id outside");
    ct_text_vocab_free(back);
}

static void check_text_round_trip(const ct_text_vocab *v, const char *text, size_t len) {
    int32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    char *out = malloc(4 * len + 1);
    FUZZ_PROMISE(ids && out, "memory for the round trip");
    int64_t count = -1;
    FUZZ_PROMISE(ct_text_encode(v, text, len, ids, &count) == CT_OK, "text a vocabulary was made of encodes");
    FUZZ_PROMISE(count >= 1 && (size_t)count <= len, "at most one id per byte");
    for (int64_t i = 0; i < count; i++)
        FUZZ_PROMISE(ids[i] >= 0 && ids[i] < ct_text_vocab_size(v), "ids are below the vocabulary size");
    size_t got = 0;
    FUZZ_PROMISE(ct_text_decode(v, ids, count, out, 4 * len + 1, &got) == CT_OK, "the ids decode");
    FUZZ_PROMISE(got == len && memcmp(out, text, len) == 0 && out[len] == 0, "the text comes back byte for byte");
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    ct_text_vocab *v = NULL;
    /* A copy of exactly n bytes, so ASan sees a read past the given length. */
    char *text = malloc(n ? n : 1);
    FUZZ_PROMISE(text != NULL, "memory for the input");
    memcpy(text, data, n);
    if (ct_text_vocab_from_utf8(text, n, &v) == CT_OK) {
        FUZZ_PROMISE(n > 0 && ct_text_vocab_size(v) >= 1, "a vocabulary has a character");
        check_json_round_trip(v);
        check_text_round_trip(v, text, n);
    }
    ct_text_vocab_free(v);
    free(text);
    return 0;
}
