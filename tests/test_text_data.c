/* Character-level text (text.h): UTF-8 decoding, the vocabulary and its
 * checkpoint string, encoding and decoding, loading and splitting files
 * (nanoGPT's conventions, checked on Tiny Shakespeare), and every kind of
 * bad input. Token files and batches: test_text_batches.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctrain/text.h"
#include "expect_msg.h"
#include "tmpfiles.h"

/* ------------------------------------------------------------------ helpers */

static ct_text_vocab *vocab_of(const char *s) {
    ct_text_vocab *v = NULL;
    cr_assert_eq(ct_text_vocab_from_utf8(s, strlen(s), &v), CT_OK, "%s", ct_last_error());
    return v;
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* ../shared/data/tinyshakespeare/input.txt, or the test is skipped. */
static const char *shakespeare_path(void) {
    static char buf[4096];
    const char *root = getenv("CTRAIN_DATA_DIR");
    if (!root || !*root) cr_skip_test("CTRAIN_DATA_DIR is not set; Tiny Shakespeare tests need ../shared/data");
    snprintf(buf, sizeof buf, "%s/tinyshakespeare/input.txt", root);
    struct stat st;
    if (stat(buf, &st) != 0) cr_skip_test("%s does not exist", buf);
    return buf;
}

/* ------------------------------------------------------------------ vocabulary */

Test(text_vocab, sorted_code_points_of_a_small_string) {
    /* 'é' is two bytes, '→' three: the vocabulary counts characters. */
    ct_text_vocab *v = vocab_of("héllo → wörld\nhé");
    static const int32_t want[] = {'\n', ' ', 'd', 'h', 'l', 'o', 'r', 'w', 0xE9, 0xF6, 0x2192};
    int32_t n = (int32_t)(sizeof want / sizeof want[0]);
    cr_assert_eq(ct_text_vocab_size(v), n);
    for (int32_t i = 0; i < n; i++) {
        cr_expect_eq(ct_text_vocab_char(v, i), want[i], "id %d", i);
        cr_expect_eq(ct_text_vocab_id(v, want[i]), i);
    }
    cr_expect_eq(ct_text_vocab_char(v, -1), -1);
    cr_expect_eq(ct_text_vocab_char(v, n), -1);
    cr_expect_eq(ct_text_vocab_id(v, 'a'), -1);
    cr_expect_eq(ct_text_vocab_id(v, 0x10FFFF), -1);
    cr_expect_str_eq(ct_text_vocab_json(v), "[10,32,100,104,108,111,114,119,233,246,8594]");
    ct_text_vocab_free(v);
}

Test(text_vocab, four_byte_characters_and_nul) {
    /* U+0000 is a character of a text like any other; U+1F600 takes 4 bytes. */
    const char s[] = "b\0a\xF0\x9F\x98\x80" "a";
    ct_text_vocab *v = NULL;
    cr_assert_eq(ct_text_vocab_from_utf8(s, sizeof s - 1, &v), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_text_vocab_size(v), 4);
    cr_expect_str_eq(ct_text_vocab_json(v), "[0,97,98,128512]");
    ct_text_vocab_free(v);
}

Test(text_vocab, json_round_trip) {
    ct_text_vocab *v = vocab_of("zebra → é\t\xF4\x8F\xBF\xBF");
    ct_text_vocab *w = NULL;
    cr_assert_eq(ct_text_vocab_parse(ct_text_vocab_json(v), &w), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_text_vocab_size(w), ct_text_vocab_size(v));
    for (int32_t i = 0; i < ct_text_vocab_size(v); i++) cr_expect_eq(ct_text_vocab_char(w, i), ct_text_vocab_char(v, i));
    cr_expect_str_eq(ct_text_vocab_json(w), ct_text_vocab_json(v));
    cr_expect_eq(ct_text_vocab_char(v, ct_text_vocab_size(v) - 1), 0x10FFFF);
    ct_text_vocab_free(w);
    /* Whitespace between elements, as a pretty-printer would write it. */
    cr_assert_eq(ct_text_vocab_parse(" [ 10 ,\n 32,  0x ] ", &w), CT_ERR_FORMAT);
    cr_assert_eq(ct_text_vocab_parse(" [ 10 ,\n 32,\t97 ]\n", &w), CT_OK, "%s", ct_last_error());
    cr_expect_str_eq(ct_text_vocab_json(w), "[10,32,97]");
    ct_text_vocab_free(w);
    ct_text_vocab_free(v);
}

Test(text_vocab, bad_json) {
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"", "not a JSON array"},
        {"{}", "not a JSON array"},
        {"[]", "empty array"},
        {"[ ]", "empty array"},
        {"[1,1]", "element 1 (1) is not above the one before it (1)"},
        {"[5,2]", "element 1 (2) is not above"},
        {"[-1]", "element 0 is not a non-negative integer"},
        {"[\"a\"]", "element 0 is not a non-negative integer"},
        {"[1114112]", "element 0 (1114112) is above U+10FFFF"},
        {"[99999999999999999999999]", "above U+10FFFF"},
        {"[55296]", "element 0 (55296) is a surrogate"},
        {"[1,]", "element 1 is not a non-negative integer"},
        {"[1 2]", "expected ',' or ']' after element 0"},
        {"[1,2", "expected ',' or ']' after element 1"},
        {"[1.5]", "expected ',' or ']' after element 0"},
        {"[1] x", "text after the closing ']'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_text_vocab *v = (ct_text_vocab *)1;
        cr_expect_eq(ct_text_vocab_parse(cases[i].json, &v), CT_ERR_FORMAT, "'%s'", cases[i].json);
        cr_expect_null(v);
        expect_msg_has("vocabulary: ", cases[i].msg);
    }
    ct_text_vocab *v;
    cr_expect_eq(ct_text_vocab_parse(NULL, &v), CT_ERR_INVALID_ARG);
}

Test(text_vocab, empty_text_is_an_error) {
    ct_text_vocab *v = (ct_text_vocab *)1;
    cr_expect_eq(ct_text_vocab_from_utf8("", 0, &v), CT_ERR_INVALID_ARG);
    cr_expect_null(v);
    expect_msg_has("empty text");
}

/* ------------------------------------------------------------------ UTF-8 */

Test(text_utf8, invalid_sequences_name_the_byte_offset) {
    static const struct {
        const char *bytes, *offset, *why;
    } cases[] = {
        {"ab\xFF", "offset 2 (byte 0xFF)", "never occurs in UTF-8"},
        {"a\x80", "offset 1 (byte 0x80)", "continuation byte where a character should start"},
        {"\xC0\xAF", "offset 0 (byte 0xC0)", "overlong"},
        {"x\xE0\x80\x80", "offset 1 (byte 0xE0)", "overlong"},
        {"xy\xF0\x80\x80\x80", "offset 2 (byte 0xF0)", "overlong"},
        {"\xED\xA0\x80", "offset 0 (byte 0xED)", "surrogate"},
        {"\xF4\x90\x80\x80", "offset 0 (byte 0xF4)", "above U+10FFFF"},
        {"ok \xE2\x86", "offset 3 (byte 0xE2)", "cut off by the end of the text"},
        {"ok \xC3", "offset 3 (byte 0xC3)", "cut off by the end of the text"},
        {"\xE2\x41\x41", "offset 0 (byte 0xE2)", "not followed by a continuation byte"},
        {"\xE2\x86\x41", "offset 0 (byte 0xE2)", "not followed by enough continuation bytes"},
        {"\xC3\xA9\xC3", "offset 2 (byte 0xC3)", "cut off"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_text_vocab *v = (ct_text_vocab *)1;
        cr_expect_eq(ct_text_vocab_from_utf8(cases[i].bytes, strlen(cases[i].bytes), &v), CT_ERR_FORMAT, "case %zu",
                     i);
        cr_expect_null(v);
        expect_msg_has("text: invalid UTF-8 at byte ", cases[i].offset, cases[i].why);
    }
}

Test(text_utf8, boundaries_of_each_length_decode) {
    /* The smallest and largest value of each encoded length, and the
     * characters either side of the surrogates. */
    const char s[] = "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
                     "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF";
    ct_text_vocab *v = NULL;
    cr_assert_eq(ct_text_vocab_from_utf8(s, sizeof s - 1, &v), CT_OK, "%s", ct_last_error());
    cr_expect_str_eq(ct_text_vocab_json(v), "[127,128,2047,2048,55295,57344,65535,65536,1114111]");
    ct_text_vocab_free(v);
}

/* ------------------------------------------------------------------ encode and decode */

Test(text_codec, round_trip) {
    ct_text_vocab *v = vocab_of("abcé→\n ");
    const char *text = "é → cab\nba";
    size_t len = strlen(text);
    int32_t ids[64];
    int64_t n = -1;
    cr_assert_eq(ct_text_encode(v, text, len, ids, &n), CT_OK, "%s", ct_last_error());
    /* vocabulary: '\n' ' ' a b c é → */
    static const int32_t want[] = {5, 1, 6, 1, 4, 2, 3, 0, 3, 2};
    cr_assert_eq(n, 10);
    for (int i = 0; i < 10; i++) cr_expect_eq(ids[i], want[i], "character %d", i);
    size_t need = 0;
    cr_assert_eq(ct_text_decode(v, ids, n, NULL, 0, &need), CT_OK);
    cr_expect_eq(need, len);
    char out[64];
    size_t got = 0;
    cr_assert_eq(ct_text_decode(v, ids, n, out, sizeof out, &got), CT_OK, "%s", ct_last_error());
    cr_expect_eq(got, len);
    cr_expect_str_eq(out, text);
    /* Exactly need + 1 bytes is enough; one less is not. */
    cr_expect_eq(ct_text_decode(v, ids, n, out, len + 1, &got), CT_OK);
    cr_expect_eq(ct_text_decode(v, ids, n, out, len, &got), CT_ERR_INVALID_ARG);
    expect_msg_has("needs 14 bytes with its NUL, the buffer has 13");
    /* The empty prompt is fine both ways. */
    cr_expect_eq(ct_text_encode(v, "", 0, ids, &n), CT_OK);
    cr_expect_eq(n, 0);
    cr_expect_eq(ct_text_decode(v, ids, 0, out, 1, &got), CT_OK);
    cr_expect_eq(got, 0);
    cr_expect_str_eq(out, "");
    ct_text_vocab_free(v);
}

Test(text_codec, character_outside_the_vocabulary) {
    ct_text_vocab *v = vocab_of("abc");
    int32_t ids[16];
    int64_t n = 7;
    cr_expect_eq(ct_text_encode(v, "abéx", 5, ids, &n), CT_ERR_FORMAT);
    cr_expect_eq(n, 0);
    expect_msg_has("text: character 'é' (U+00E9) at byte offset 2 is not in the vocabulary (3 characters)");
    cr_expect_eq(ct_text_encode(v, "ab\nc", 4, ids, &n), CT_ERR_FORMAT);
    expect_msg_has("character U+000A at byte offset 2");
    cr_expect(strchr(ct_last_error(), '\n') == NULL, "the message stays on one line");
    cr_expect_eq(ct_text_encode(v, "a\xFF", 2, ids, &n), CT_ERR_FORMAT);
    expect_msg_has("invalid UTF-8 at byte offset 1");
    ct_text_vocab_free(v);
}

Test(text_codec, decode_refuses_unknown_ids) {
    ct_text_vocab *v = vocab_of("abc");
    const int32_t ids[] = {0, 2, 3};
    char out[16];
    size_t len;
    cr_expect_eq(ct_text_decode(v, ids, 3, out, sizeof out, &len), CT_ERR_INVALID_ARG);
    expect_msg_has("id 3 at index 2 is outside the vocabulary [0, 3)");
    const int32_t neg[] = {-1};
    cr_expect_eq(ct_text_decode(v, neg, 1, NULL, 0, &len), CT_ERR_INVALID_ARG);
    expect_msg_has("id -1 at index 0");
    ct_text_vocab_free(v);
}

/* ------------------------------------------------------------------ files and splits */

Test(text_load, split_sizes_are_nanogpts) {
    /* int(n * 0.9) in Python for these n (checked there). */
    static const struct {
        int64_t n, train;
    } cases[] = {{2, 1}, {10, 9}, {11, 9}, {19, 17}, {20, 18}, {29, 26}, {1000, 900}, {1115394, 1003854}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c].n;
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(i % 7);
        ct_tokens *all, *train, *val;
        cr_assert_eq(ct_tokens_from_array(ids, n, 7, &all), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_tokens_split(all, CT_TEXT_TRAIN_FRACTION, &train, &val), CT_OK, "%s", ct_last_error());
        cr_expect_eq(ct_tokens_size(train), cases[c].train, "n = %lld", (long long)n);
        cr_expect_eq(ct_tokens_size(val), n - cases[c].train);
        cr_expect_eq(ct_tokens_vocab_size(val), 7);
        /* train is the head, val the tail, in order. */
        cr_expect_eq(memcmp(ct_tokens_data(train), ids, (size_t)cases[c].train * 4), 0);
        cr_expect_eq(memcmp(ct_tokens_data(val), ids + cases[c].train, (size_t)(n - cases[c].train) * 4), 0);
        cr_expect_str_eq(ct_tokens_name(train), "tokens (training split)");
        cr_expect_str_eq(ct_tokens_name(val), "tokens (validation split)");
        ct_tokens_free(train);
        ct_tokens_free(val);
        ct_tokens_free(all);
        free(ids);
    }
}

Test(text_load, split_errors) {
    const int32_t ids[] = {0};
    ct_tokens *one, *train, *val;
    cr_assert_eq(ct_tokens_from_array(ids, 1, 1, &one), CT_OK);
    cr_expect_eq(ct_tokens_split(one, 0.9, &train, &val), CT_ERR_INVALID_ARG);
    cr_expect_null(train);
    cr_expect_null(val);
    expect_msg_has("tokens: 1 tokens split at 0.9 leave the training split empty");
    cr_expect_eq(ct_tokens_split(one, 1.0, &train, &val), CT_ERR_INVALID_ARG);
    expect_msg_has("training fraction 1 is outside (0, 1)");
    ct_tokens_free(one);
}

Test(text_load, single_file_split_90_10) {
    char *dir = make_tmpdir();
    const char *p = path_in(dir, "t.txt");
    /* 20 characters: 18 train, 2 validation. */
    write_text(p, "abcabcabcabcabcabc\xC3\xA9z");
    ct_text_vocab *v;
    ct_tokens *train, *val;
    cr_assert_eq(ct_text_load(p, NULL, &v, &train, &val), CT_OK, "%s", ct_last_error());
    cr_expect_str_eq(ct_text_vocab_json(v), "[97,98,99,122,233]");
    cr_expect_eq(ct_tokens_size(train), 18);
    cr_expect_eq(ct_tokens_size(val), 2);
    cr_expect_eq(ct_tokens_vocab_size(train), 5);
    cr_expect_eq(ct_tokens_data(val)[0], 4); /* é */
    cr_expect_eq(ct_tokens_data(val)[1], 3); /* z */
    cr_expect(strstr(ct_tokens_name(val), "t.txt (validation split)") != NULL);
    /* The validation split is shorter than a window of 4 (5 tokens). */
    ct_tokens_batch_opts bo = {.batch_size = 1, .block_size = 4};
    cr_expect_eq(ct_tokens_check_batch(train, &bo), CT_OK);
    cr_expect_eq(ct_tokens_check_batch(val, &bo), CT_ERR_INVALID_ARG);
    expect_msg_has("t.txt (validation split): 2 tokens, too few for one window of block size 4");
    /* And the training split shorter than one of 18. */
    bo.block_size = 18;
    cr_expect_eq(ct_tokens_check_batch(train, &bo), CT_ERR_INVALID_ARG);
    expect_msg_has("t.txt (training split): 18 tokens, too few for one window of block size 18");
    ct_text_vocab_free(v);
    ct_tokens_free(train);
    ct_tokens_free(val);
    rm_tmpdir(dir);
}

Test(text_load, separate_val_file_unites_the_vocabularies) {
    char *dir = make_tmpdir();
    const char *tp = path_in(dir, "train.txt"), *vp = path_in(dir, "val.txt");
    write_text(tp, "abcab");
    write_text(vp, "d→a");
    ct_text_vocab *v;
    ct_tokens *train, *val;
    cr_assert_eq(ct_text_load(tp, vp, &v, &train, &val), CT_OK, "%s", ct_last_error());
    cr_expect_str_eq(ct_text_vocab_json(v), "[97,98,99,100,8594]");
    cr_expect_eq(ct_tokens_size(train), 5);
    cr_expect_eq(ct_tokens_size(val), 3);
    cr_expect_eq(ct_tokens_vocab_size(val), 5);
    static const int32_t want[] = {3, 4, 0};
    for (int i = 0; i < 3; i++) cr_expect_eq(ct_tokens_data(val)[i], want[i]);
    cr_expect_str_eq(ct_tokens_name(train), tp);
    cr_expect_str_eq(ct_tokens_name(val), vp);
    ct_text_vocab_free(v);
    ct_tokens_free(train);
    ct_tokens_free(val);
    rm_tmpdir(dir);
}

Test(text_load, bad_files) {
    char *dir = make_tmpdir();
    const char *good = path_in(dir, "good.txt"), *empty = path_in(dir, "empty.txt"), *bad = path_in(dir, "bad.txt");
    write_text(good, "hello");
    write_bytes(empty, "", 0);
    write_text(bad, "line one\nline tw\xC3\x28");
    ct_text_vocab *v = (ct_text_vocab *)1;
    ct_tokens *train = (ct_tokens *)1, *val = (ct_tokens *)1;
    cr_expect_eq(ct_text_load(empty, NULL, &v, &train, &val), CT_ERR_FORMAT);
    expect_msg_has(empty, ": empty file");
    cr_expect(v == NULL && train == NULL && val == NULL);
    cr_expect_eq(ct_text_load(good, empty, &v, &train, &val), CT_ERR_FORMAT);
    expect_msg_has(empty, ": empty file");
    cr_expect_eq(ct_text_load(bad, NULL, &v, &train, &val), CT_ERR_FORMAT);
    expect_msg_has(bad, ": invalid UTF-8 at byte offset 16 (byte 0xC3)");
    cr_expect_eq(ct_text_load(good, bad, &v, &train, &val), CT_ERR_FORMAT);
    expect_msg_has(bad, ": invalid UTF-8 at byte offset 16");
    cr_expect_eq(ct_text_load(path_in(dir, "missing.txt"), NULL, &v, &train, &val), CT_ERR_IO);
    expect_msg_has("missing.txt: cannot open");
    cr_expect(v == NULL && train == NULL && val == NULL);
    /* One character cannot be split into two non-empty parts. */
    write_text(good, "x");
    cr_expect_eq(ct_text_load(good, NULL, &v, &train, &val), CT_ERR_INVALID_ARG);
    expect_msg_has(good, "leave the training split empty");
    cr_expect_eq(ct_text_load(NULL, NULL, &v, &train, &val), CT_ERR_INVALID_ARG);
    rm_tmpdir(dir);
}

/* ------------------------------------------------------------------ Tiny Shakespeare */

Test(text_shakespeare, vocabulary_and_split_as_nanogpt) {
    const char *path = shakespeare_path();
    ct_text_vocab *v;
    ct_tokens *train, *val;
    cr_assert_eq(ct_text_load(path, NULL, &v, &train, &val), CT_OK, "%s", ct_last_error());
    /* nanoGPT's data/shakespeare_char/prepare.py: length of dataset in
     * characters 1,115,394; vocab size 65; 1,003,854 train and 111,540 val. */
    cr_expect_eq(ct_text_vocab_size(v), 65);
    cr_expect_eq(ct_tokens_size(train) + ct_tokens_size(val), 1115394);
    cr_expect_eq(ct_tokens_size(train), 1003854);
    cr_expect_eq(ct_tokens_size(val), 111540);
    const char *chars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    cr_assert_eq(strlen(chars), 65);
    for (int32_t i = 0; i < 65; i++) cr_expect_eq(ct_text_vocab_char(v, i), (unsigned char)chars[i], "id %d", i);
    const char *json_head = "[10,32,33,36,38,39,44,45,46,51,58,59,63,65,66,67,";
    cr_expect(strncmp(ct_text_vocab_json(v), json_head, strlen(json_head)) == 0, "%s", ct_text_vocab_json(v));
    /* The file starts "First Citizen:"; nanoGPT's encode gives the same ids. */
    int32_t ids[32];
    int64_t n;
    cr_assert_eq(ct_text_encode(v, "First Citizen:\n", 15, ids, &n), CT_OK, "%s", ct_last_error());
    cr_assert_eq(n, 15);
    static const int32_t first[] = {18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10, 0};
    for (int i = 0; i < 15; i++) {
        cr_expect_eq(ids[i], first[i], "character %d", i);
        cr_expect_eq(ct_tokens_data(train)[i], first[i]);
    }
    char out[64];
    size_t len;
    cr_assert_eq(ct_text_decode(v, ct_tokens_data(train), 15, out, sizeof out, &len), CT_OK);
    cr_expect_str_eq(out, "First Citizen:\n");
    ct_text_vocab_free(v);
    ct_tokens_free(train);
    ct_tokens_free(val);
}
