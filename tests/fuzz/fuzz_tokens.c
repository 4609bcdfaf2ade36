/* llm.c token files (ct_tokens_load), and the text loader behind
 * `--data text` (ct_text_load) on the same bytes. The input's first byte
 * picks the vocabulary size checked against (0 is GPT-2's). Promises: every
 * loaded id is below the vocabulary size; a loaded sequence saves
 * (ct_tokens_save) and loads back the same; a loaded text's two splits use
 * ids of its vocabulary only. */
#include <string.h>

#include <ctrain/ctrain.h>

#include "fuzz_util.h"

static void check_ids(const ct_tokens *t, int32_t vocab) {
    FUZZ_PROMISE(ct_tokens_size(t) >= 1, "a sequence has a token");
    FUZZ_PROMISE(ct_tokens_vocab_size(t) == vocab, "the vocabulary size is the one asked for");
    const int32_t *ids = ct_tokens_data(t);
    for (int64_t i = 0; i < ct_tokens_size(t); i++)
        FUZZ_PROMISE(ids[i] >= 0 && ids[i] < vocab, "every id is below the vocabulary size");
}

static void check_tokens(const char *path, int32_t vocab) {
    ct_tokens *t = NULL;
    if (ct_tokens_load(path, vocab, &t) != CT_OK) return;
    int32_t v = vocab ? vocab : CT_TOKENS_GPT2_VOCAB;
    check_ids(t, v);
    const char *again = fuzz_path(1, ".bin");
    if (ct_tokens_save(t, again) == CT_OK) {
        ct_tokens *back = NULL;
        FUZZ_PROMISE(ct_tokens_load(again, v, &back) == CT_OK, "a saved sequence loads");
        FUZZ_PROMISE(ct_tokens_size(back) == ct_tokens_size(t) &&
                         memcmp(ct_tokens_data(back), ct_tokens_data(t),
                                (size_t)ct_tokens_size(t) * sizeof(int32_t)) == 0,
                     "and holds the same ids");
        ct_tokens_free(back);
    }
    ct_tokens_free(t);
}

static void check_text(const char *path) {
    ct_text_vocab *v = NULL;
    ct_tokens *train = NULL, *val = NULL;
    if (ct_text_load(path, NULL, &v, &train, &val) != CT_OK) {
        FUZZ_PROMISE(!v && !train && !val, "on error every output is NULL");
        return;
    }
    check_ids(train, ct_text_vocab_size(v));
    check_ids(val, ct_text_vocab_size(v));
    ct_tokens_free(train);
    ct_tokens_free(val);
    ct_text_vocab_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    static const int32_t vocabs[4] = {0, 256, 65536, 7};
    unsigned pick = fuzz_take_u8(&data, &n);
    const char *path = fuzz_write(0, ".bin", data, n);
    check_tokens(path, vocabs[pick & 3]);
    check_text(path);
    return 0;
}
