/* Vocabularies as checkpoints store them (ct_text_vocab_parse): the input,
 * NUL-terminated, is the JSON. What parses is sorted code points, and its
 * own JSON (ct_text_vocab_json, the canonical form) parses back the same. */
#include <string.h>

#include <ctrain/ctrain.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char *json = malloc(n + 1);
    FUZZ_PROMISE(json != NULL, "memory for the input");
    memcpy(json, data, n);
    json[n] = 0;
    ct_text_vocab *v = NULL;
    if (ct_text_vocab_parse(json, &v) == CT_OK) {
        int32_t size = ct_text_vocab_size(v);
        FUZZ_PROMISE(size >= 1, "a parsed vocabulary is not empty");
        for (int32_t id = 0; id < size; id++) {
            int32_t cp = ct_text_vocab_char(v, id);
            FUZZ_PROMISE(cp >= 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF),
                         "a parsed vocabulary holds Unicode scalar values");
            if (id > 0) FUZZ_PROMISE(cp > ct_text_vocab_char(v, id - 1), "strictly increasing");
            FUZZ_PROMISE(ct_text_vocab_id(v, cp) == id, "ids and characters map both ways");
        }
        ct_text_vocab *back = NULL;
        FUZZ_PROMISE(ct_text_vocab_parse(ct_text_vocab_json(v), &back) == CT_OK, "the canonical JSON parses");
        FUZZ_PROMISE(strcmp(ct_text_vocab_json(back), ct_text_vocab_json(v)) == 0, "and comes back the same");
        ct_text_vocab_free(back);
    } else {
        FUZZ_PROMISE(ct_last_error()[0] != 0, "a refused vocabulary has a message");
    }
    ct_text_vocab_free(v);
    free(json);
    return 0;
}
