/* Token sequences (text.h): llm.c token files written here, with every kind
 * of damage, and the batches of windows cut from a sequence - x/y shifted
 * by one, sequential windows at k * T with the wrap-around, random starts
 * in range, reproducible per (seed, batch) and drawn from the documented
 * Philox stream, streams (row r of consecutive batches walking stream r),
 * and the fixed evaluation batches. Text: test_text_data.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrain/rng.h"
#include "ctrain/text.h"
#include "expect_msg.h"
#include "tmpfiles.h"

/* ------------------------------------------------------------------ helpers */

/* 0, 1, ..., n-1: a token's value is its position, so a window's content
 * tells where it starts. */
static ct_tokens *iota(int64_t n) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    cr_assert_not_null(ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)i;
    ct_tokens *t = NULL;
    cr_assert_eq(ct_tokens_from_array(ids, n, (int32_t)n, &t), CT_OK, "%s", ct_last_error());
    free(ids);
    return t;
}

static void put32(unsigned char *p, int32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)((uint32_t)v >> (8 * k));
}

/* A token file as llm.c writes it, with the header fields given (so tests
 * can damage them); extra bytes are appended after the tokens. Returns the
 * file's size. */
static size_t write_token_file(const char *path, int32_t magic, int32_t version, int32_t count,
                               const uint16_t *tokens, size_t n, size_t extra) {
    size_t len = 1024 + 2 * n + extra;
    unsigned char *b = calloc(len, 1);
    cr_assert_not_null(b);
    put32(b, magic);
    put32(b + 4, version);
    put32(b + 8, count);
    for (size_t i = 0; i < n; i++) {
        b[1024 + 2 * i] = (unsigned char)(tokens[i] & 0xFF);
        b[1024 + 2 * i + 1] = (unsigned char)(tokens[i] >> 8);
    }
    write_bytes(path, b, len);
    free(b);
    return len;
}

/* Checks that x and y hold the windows at the starts (on an iota sequence). */
static void expect_windows(const int32_t *x, const int32_t *y, const int64_t *starts, int64_t B, int64_t T) {
    for (int64_t r = 0; r < B; r++)
        for (int64_t j = 0; j < T; j++) {
            cr_expect_eq(x[r * T + j], starts[r] + j, "row %lld column %lld", (long long)r, (long long)j);
            cr_expect_eq(y[r * T + j], starts[r] + j + 1, "row %lld column %lld", (long long)r, (long long)j);
        }
}

/* ------------------------------------------------------------------ token files */

Test(token_file, round_trip) {
    char *dir = make_tmpdir();
    const char *mine = path_in(dir, "mine.bin"), *theirs = path_in(dir, "saved.bin");
    const uint16_t tok[] = {0, 1, 50256, 256, 65535, 7, 42};
    size_t len = write_token_file(mine, 20240520, 1, 7, tok, 7, 0);
    ct_tokens *t = NULL;
    cr_assert_eq(ct_tokens_load(mine, 65536, &t), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_tokens_size(t), 7);
    cr_expect_eq(ct_tokens_vocab_size(t), 65536);
    for (int i = 0; i < 7; i++) cr_expect_eq(ct_tokens_data(t)[i], tok[i]);
    cr_expect_str_eq(ct_tokens_name(t), mine);
    /* Saved again, the bytes are those llm.c's writer gives. */
    cr_assert_eq(ct_tokens_save(t, theirs), CT_OK, "%s", ct_last_error());
    FILE *a = fopen(mine, "rb"), *b = fopen(theirs, "rb");
    cr_assert(a && b);
    unsigned char *ba = malloc(len + 1), *bb = malloc(len + 1);
    cr_assert_eq(fread(ba, 1, len + 1, a), len);
    cr_assert_eq(fread(bb, 1, len + 1, b), len);
    cr_expect_eq(memcmp(ba, bb, len), 0);
    fclose(a);
    fclose(b);
    free(ba);
    free(bb);
    ct_tokens_free(t);
    /* vocab_size 0 is GPT-2's 50257: the 65535 is then out of range. */
    cr_expect_eq(ct_tokens_load(mine, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(mine, ": token index 4 is 65535, not below the vocabulary size 50257");
    rm_tmpdir(dir);
}

Test(token_file, damaged_files_name_the_field) {
    char *dir = make_tmpdir();
    const char *p = path_in(dir, "tok.bin");
    const uint16_t tok[] = {5, 6, 7, 8};
    ct_tokens *t = (ct_tokens *)1;

    write_bytes(p, "", 0);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    cr_expect_null(t);
    expect_msg_has(p, ": empty file");

    write_bytes(p, "0123456789", 10);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": 10 bytes, shorter than the 1024-byte header");

    write_token_file(p, 20240521, 1, 4, tok, 4, 0);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": header magic is 20240521, expected 20240520");

    write_token_file(p, 20240520, 2, 4, tok, 4, 0);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": header version is 2, expected 1");

    write_token_file(p, 20240520, 1, 0, tok, 0, 0);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": header count is 0, expected at least 1");

    write_token_file(p, 20240520, 1, -3, tok, 4, 0);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": header count is -3");

    write_token_file(p, 20240520, 1, 5, tok, 4, 0);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": header count 5 needs 1034 bytes", "the file has 1032 (truncated)");

    write_token_file(p, 20240520, 1, 4, tok, 4, 1);
    cr_expect_eq(ct_tokens_load(p, 0, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": header count 4 needs 1032 bytes", "the file has 1033 (extra bytes)");

    write_token_file(p, 20240520, 1, 4, tok, 4, 0);
    cr_expect_eq(ct_tokens_load(p, 8, &t), CT_ERR_FORMAT);
    expect_msg_has(p, ": token index 3 is 8, not below the vocabulary size 8");
    cr_expect_eq(ct_tokens_load(p, 9, &t), CT_OK, "%s", ct_last_error());
    ct_tokens_free(t);

    cr_expect_eq(ct_tokens_load(p, -1, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_tokens_load(path_in(dir, "none.bin"), 0, &t), CT_ERR_IO);
    expect_msg_has("none.bin: cannot open");
    for (const char *m = ct_last_error(); *m; m++) cr_expect(*m != '\n', "one line");
    rm_tmpdir(dir);
}

Test(token_file, save_refuses_ids_above_uint16) {
    const int32_t ids[] = {1, 70000};
    ct_tokens *t;
    cr_assert_eq(ct_tokens_from_array(ids, 2, 100000, &t), CT_OK);
    cr_expect_eq(ct_tokens_save(t, "/nonexistent/x.bin"), CT_ERR_UNSUPPORTED);
    expect_msg_has("token index 1 is 70000, above the 65535");
    ct_tokens_free(t);
}

Test(token_file, from_array_checks) {
    const int32_t ids[] = {0, 3, 4};
    ct_tokens *t = (ct_tokens *)1;
    cr_expect_eq(ct_tokens_from_array(ids, 3, 4, &t), CT_ERR_INVALID_ARG);
    cr_expect_null(t);
    expect_msg_has("token index 2 is 4, outside [0, 4)");
    cr_expect_eq(ct_tokens_from_array(ids, 0, 5, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_tokens_from_array(ids, 3, 0, &t), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_tokens_from_array(NULL, 3, 5, &t), CT_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------ windows */

Test(windows, x_and_y_shift_by_one) {
    ct_tokens *t = iota(100);
    ct_tokens_batch_opts o = {.batch_size = 4, .block_size = 8, .seed = 3};
    int32_t x[32], y[32];
    int64_t starts[4];
    for (int64_t k = 0; k < 20; k++) {
        cr_assert_eq(ct_tokens_batch(t, &o, k, x, y), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_tokens_batch_starts(t, &o, k, starts), CT_OK);
        expect_windows(x, y, starts, 4, 8);
    }
    ct_tokens_free(t);
}

Test(windows, sequential_windows_start_at_k_times_T_and_wrap) {
    /* n = 100, T = 8: windows start at 0, 8, ..., 88 (W = 99 / 8 = 12; the
     * window at 96 would need token 104). */
    ct_tokens *t = iota(100);
    ct_tokens_batch_opts o = {.batch_size = 5, .block_size = 8, .sequential = true};
    int64_t starts[5];
    int32_t x[40], y[40];
    static const int64_t want[4][5] = {
        {0, 8, 16, 24, 32}, {40, 48, 56, 64, 72}, {80, 88, 0, 8, 16}, /* batch 2 wraps inside */
        {24, 32, 40, 48, 56}};
    for (int64_t k = 0; k < 4; k++) {
        cr_assert_eq(ct_tokens_batch_starts(t, &o, k, starts), CT_OK, "%s", ct_last_error());
        for (int r = 0; r < 5; r++) cr_expect_eq(starts[r], want[k][r], "batch %lld row %d", (long long)k, r);
        cr_assert_eq(ct_tokens_batch(t, &o, k, x, y), CT_OK);
        expect_windows(x, y, starts, 5, 8);
    }
    /* Batch k depends on k alone: batch 12 (windows 60..64 mod 12 = 0..4) is batch 0 again. */
    cr_assert_eq(ct_tokens_batch_starts(t, &o, 12, starts), CT_OK);
    for (int r = 0; r < 5; r++) cr_expect_eq(starts[r], want[0][r]);
    /* The last window may end on the last token: n = 17, T = 8 has 2 windows. */
    ct_tokens *u = iota(17);
    o.batch_size = 3;
    cr_assert_eq(ct_tokens_batch_starts(u, &o, 0, starts), CT_OK);
    cr_expect(starts[0] == 0 && starts[1] == 8 && starts[2] == 0);
    ct_tokens_free(u);
    ct_tokens_free(t);
}

Test(windows, random_starts_reproducible_and_seeded) {
    ct_tokens *t = iota(10000);
    ct_tokens_batch_opts o = {.batch_size = 16, .block_size = 32, .seed = 1337};
    int64_t a[16], b[16], c[16], d[16];
    /* Batch 7 asked for first, and again after others: the same. */
    cr_assert_eq(ct_tokens_batch_starts(t, &o, 7, a), CT_OK);
    for (int64_t k = 0; k < 7; k++) cr_assert_eq(ct_tokens_batch_starts(t, &o, k, c), CT_OK);
    cr_assert_eq(ct_tokens_batch_starts(t, &o, 7, b), CT_OK);
    cr_expect_eq(memcmp(a, b, sizeof a), 0);
    /* Another seed, or another batch number, gives other windows. */
    ct_tokens_batch_opts o2 = o;
    o2.seed = 1338;
    cr_assert_eq(ct_tokens_batch_starts(t, &o2, 7, c), CT_OK);
    cr_expect_neq(memcmp(a, c, sizeof a), 0);
    cr_assert_eq(ct_tokens_batch_starts(t, &o, 8, d), CT_OK);
    cr_expect_neq(memcmp(a, d, sizeof a), 0);
    /* The rows of a batch are not all the same window. */
    int distinct = 0;
    for (int r = 1; r < 16; r++) distinct += a[r] != a[0];
    cr_expect_gt(distinct, 0);
    ct_tokens_free(t);
}

/* Lemire's bounded draw from the words of (seed, stream, k), as text.h
 * documents it, written out again from ct_philox_u32. */
static void documented_starts(uint64_t seed, uint32_t stream, uint32_t k, uint32_t range, int64_t B,
                              int64_t *starts) {
    uint64_t i = 0;
    for (int64_t r = 0; r < B; r++) {
        uint64_t m = (uint64_t)ct_philox_u32(seed, stream, k, i++) * range;
        while ((uint32_t)m < (uint32_t)(0u - range) % range) m = (uint64_t)ct_philox_u32(seed, stream, k, i++) * range;
        starts[r] = (int64_t)(m >> 32);
    }
}

Test(windows, random_starts_follow_the_documented_stream) {
    ct_tokens *t = iota(1000);
    ct_tokens_batch_opts o = {.batch_size = 64, .block_size = 10, .seed = 0x123456789ABCDEFull};
    int64_t got[64], want[64];
    for (int64_t k = 0; k < 5; k++) {
        cr_assert_eq(ct_tokens_batch_starts(t, &o, k, got), CT_OK);
        documented_starts(o.seed, 0xDA7A0004u, (uint32_t)k, 990, 64, want);
        for (int r = 0; r < 64; r++) cr_expect_eq(got[r], want[r], "batch %lld row %d", (long long)k, r);
        cr_assert_eq(ct_tokens_eval_starts(t, &o, k, got), CT_OK);
        documented_starts(o.seed, 0xDA7A0005u, (uint32_t)k, 990, 64, want);
        for (int r = 0; r < 64; r++) cr_expect_eq(got[r], want[r], "eval batch %lld row %d", (long long)k, r);
    }
    ct_tokens_free(t);
}

Test(windows, every_start_within_range) {
    /* n - T - 1 is the last start: its target ends on the last token. */
    static const int64_t sizes[][2] = {{9, 8}, {10, 8}, {13, 8}, {1000, 1}, {1000, 999}};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        int64_t n = sizes[c][0], T = sizes[c][1];
        ct_tokens *t = iota(n);
        ct_tokens_batch_opts o = {.batch_size = 50, .block_size = T, .seed = 11};
        int64_t starts[50];
        int64_t lo = n, hi = -1;
        for (int64_t k = 0; k < 200; k++) {
            cr_assert_eq(ct_tokens_batch_starts(t, &o, k, starts), CT_OK);
            for (int r = 0; r < 50; r++) {
                cr_assert(starts[r] >= 0 && starts[r] <= n - T - 1, "start %lld, n %lld, T %lld",
                          (long long)starts[r], (long long)n, (long long)T);
                if (starts[r] < lo) lo = starts[r];
                if (starts[r] > hi) hi = starts[r];
            }
        }
        /* 10000 draws reach both ends of every range here. */
        cr_expect_eq(lo, 0, "n %lld T %lld", (long long)n, (long long)T);
        cr_expect_eq(hi, n - T - 1, "n %lld T %lld", (long long)n, (long long)T);
        ct_tokens_free(t);
    }
}

Test(windows, eval_batches_are_fixed) {
    ct_tokens *t = iota(5000);
    ct_tokens_batch_opts o = {.batch_size = 8, .block_size = 16, .seed = 99};
    int32_t x1[128], y1[128], x2[128], y2[128], xt[128], yt[128];
    int64_t starts[8];
    for (int64_t j = 0; j < 4; j++) {
        cr_assert_eq(ct_tokens_eval_batch(t, &o, j, x1, y1), CT_OK);
        cr_assert_eq(ct_tokens_batch(t, &o, j, xt, yt), CT_OK); /* training in between changes nothing */
        cr_assert_eq(ct_tokens_eval_batch(t, &o, j, x2, y2), CT_OK);
        cr_expect_eq(memcmp(x1, x2, sizeof x1), 0);
        cr_expect_eq(memcmp(y1, y2, sizeof y1), 0);
        cr_expect_neq(memcmp(x1, xt, sizeof x1), 0, "evaluation batch %lld is training batch %lld", (long long)j,
                      (long long)j);
        cr_assert_eq(ct_tokens_eval_starts(t, &o, j, starts), CT_OK);
        expect_windows(x1, y1, starts, 8, 16);
    }
    /* Sequential: the evaluation batches walk the sequence from its start. */
    o.sequential = true;
    cr_assert_eq(ct_tokens_eval_starts(t, &o, 1, starts), CT_OK);
    for (int r = 0; r < 8; r++) cr_expect_eq(starts[r], (8 + r) * 16);
    ct_tokens_free(t);
}

Test(windows, epoch_steps) {
    ct_tokens *t = iota(100);
    ct_tokens_batch_opts o = {.batch_size = 2, .block_size = 8};
    cr_expect_eq(ct_tokens_epoch_steps(t, &o), 6); /* 100 / 16 */
    o.batch_size = 4;
    o.block_size = 30;
    cr_expect_eq(ct_tokens_epoch_steps(t, &o), 1); /* 100 / 120 is 0: at least 1 */
    o.block_size = 100;
    cr_expect_eq(ct_tokens_epoch_steps(t, &o), 0); /* no window fits */
    ct_tokens_free(t);
}

Test(windows, bad_options) {
    ct_tokens *t = iota(10);
    int32_t x[100], y[100];
    int64_t starts[10];
    ct_tokens_batch_opts o = {.batch_size = 0, .block_size = 4};
    cr_expect_eq(ct_tokens_batch(t, &o, 0, x, y), CT_ERR_INVALID_ARG);
    expect_msg_has("batch size 0 and block size 4, both must be >= 1");
    o = (ct_tokens_batch_opts){.batch_size = 1, .block_size = 0};
    cr_expect_eq(ct_tokens_batch(t, &o, 0, x, y), CT_ERR_INVALID_ARG);
    o.block_size = 10;
    cr_expect_eq(ct_tokens_batch(t, &o, 0, x, y), CT_ERR_INVALID_ARG);
    expect_msg_has("tokens: 10 tokens, too few for one window of block size 10");
    o.block_size = INT64_MAX;
    cr_expect_eq(ct_tokens_eval_batch(t, &o, 0, x, y), CT_ERR_INVALID_ARG);
    expect_msg_has("too few for one window");
    o.block_size = 9; /* the largest that fits: one window, at 0 */
    cr_expect_eq(ct_tokens_batch(t, &o, 0, x, y), CT_OK, "%s", ct_last_error());
    cr_expect(x[0] == 0 && y[8] == 9);
    cr_expect_eq(ct_tokens_batch(t, &o, -1, x, y), CT_ERR_INVALID_ARG);
    expect_msg_has("ct_tokens_batch: batch number -1 is negative");
    cr_expect_eq(ct_tokens_batch(t, &o, 0, x, NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_tokens_batch_starts(t, &o, 0, NULL), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_tokens_eval_starts(NULL, &o, 0, starts), CT_ERR_INVALID_ARG);
    o.batch_size = INT64_MAX / 4;
    cr_expect_eq(ct_tokens_check_batch(t, &o), CT_ERR_INVALID_ARG);
    expect_msg_has("too large");
    ct_tokens_free(t);
}

/* Streams: n = 100, B = 3: S = 99 / 3 = 33 tokens per stream (streams at 0,
 * 33, 66), T = 8: W = 33 / 8 = 4 windows per stream; row r of batch k at
 * 33 r + 8 (k mod 4). */
Test(windows, streams_walk_each_row_through_its_stream) {
    ct_tokens *t = iota(100);
    ct_tokens_batch_opts o = {.batch_size = 3, .block_size = 8, .streams = true, .seed = 7};
    cr_expect_eq(ct_tokens_epoch_steps(t, &o), 4);
    static const int64_t want[4][3] = {{0, 33, 66}, {8, 41, 74}, {16, 49, 82}, {24, 57, 90}};
    int64_t starts[3], prev[3] = {0};
    int32_t x[24], y[24];
    for (int64_t k = 0; k < 9; k++) {
        cr_assert_eq(ct_tokens_batch_starts(t, &o, k, starts), CT_OK, "%s", ct_last_error());
        for (int r = 0; r < 3; r++) {
            cr_expect_eq(starts[r], want[k % 4][r], "batch %lld row %d", (long long)k, r);
            /* Consecutive: the next window of the same stream, until the
             * stream starts again at k mod W = 0. */
            if (k % 4) cr_expect_eq(starts[r], prev[r] + 8, "batch %lld row %d", (long long)k, r);
            /* The last target is at most the token after the stream. */
            cr_expect_leq(starts[r] + 8, 33 * (r + 1), "batch %lld row %d", (long long)k, r);
            prev[r] = starts[r];
        }
        cr_assert_eq(ct_tokens_batch(t, &o, k, x, y), CT_OK);
        expect_windows(x, y, starts, 3, 8);
    }
    /* The evaluation batches are the training ones, from the start. */
    cr_assert_eq(ct_tokens_eval_starts(t, &o, 2, starts), CT_OK);
    for (int r = 0; r < 3; r++) cr_expect_eq(starts[r], want[2][r]);
    /* The tightest fit: n = B * T + 1 = 25 gives one window per stream, the
     * last target being the last token. */
    ct_tokens *u = iota(25);
    cr_expect_eq(ct_tokens_epoch_steps(u, &o), 1);
    cr_assert_eq(ct_tokens_batch(u, &o, 5, x, y), CT_OK, "%s", ct_last_error());
    cr_expect(x[0] == 0 && x[8] == 8 && x[16] == 16 && y[23] == 24);
    ct_tokens_free(u);
    ct_tokens_free(t);
}

Test(windows, streams_too_short_or_with_sequential_are_refused) {
    ct_tokens *t = iota(24); /* B * T + 1 = 25 needed */
    ct_tokens_batch_opts o = {.batch_size = 3, .block_size = 8, .streams = true};
    int32_t x[24], y[24];
    cr_expect_eq(ct_tokens_batch(t, &o, 0, x, y), CT_ERR_INVALID_ARG);
    expect_msg_has("tokens: 24 tokens make 3 streams of 7 tokens, too few for one window of block size 8 each "
                   "(streams need batch size x block size + 1 = 25 tokens)");
    cr_expect_eq(ct_tokens_epoch_steps(t, &o), 0);
    o.sequential = true;
    o.block_size = 2;
    cr_expect_eq(ct_tokens_check_batch(t, &o), CT_ERR_INVALID_ARG);
    expect_msg_has("sequential and streams are two layouts; set one");
    ct_tokens_free(t);
}
