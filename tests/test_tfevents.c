/* TensorBoard event files: CRC-32C against its published vectors, the
 * Event encoding and TFRecord framing byte for byte against records that
 * TensorBoard's own Python classes wrote (tests/ref/tfevents_reference.py),
 * the file's name and creation rules, bad arguments, and the trainer's
 * tensorboard_dir: one file, every record intact, the expected scalars.
 * tests/tensorboard_check.py reads a real run's file with TensorBoard's
 * reader and compares it with the metrics file. */
#include <criterion/criterion.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ctrain/ctrain.h>
#include <ctrain/tfevents.h>

#include "io/crc32c.h"
#include "io/tfevents_proto.h"
#include "tmpfiles.h"

/* ------------------------------------------------------------ CRC-32C */

Test(crc32c, known_vectors) {
    /* "123456789": the CRC catalogue's check value; the rest: RFC 3720 B.4. */
    cr_assert_eq(ct_crc32c("123456789", 9), 0xE3069283u);
    unsigned char b[32];
    memset(b, 0, sizeof b);
    cr_assert_eq(ct_crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    cr_assert_eq(ct_crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    cr_assert_eq(ct_crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
    cr_assert_eq(ct_crc32c(b, 32), 0x113FDB5Cu);
    cr_assert_eq(ct_crc32c("", 0), 0u);
}

Test(crc32c, extend_equals_whole) {
    const char *s = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++)
        cr_assert_eq(ct_crc32c_extend(ct_crc32c(s, k), s + k, n - k), ct_crc32c(s, n), "split at %zu", k);
}

Test(crc32c, masked_as_tensorflow) {
    /* Values of TensorBoard's masked_crc32c (tensorflow_stub). */
    cr_assert_eq(ct_crc32c_mask(ct_crc32c("123456789", 9)), 0xC78AB0E5u);
    cr_assert_eq(ct_crc32c_mask(0), 0xA282EAD8u);
}

/* ------------------------------------------------------------ files */

typedef struct bytes {
    unsigned char *data;
    size_t len;
} bytes;

static bytes read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    bytes b = {malloc(1 << 20), 0};
    cr_assert_not_null(b.data);
    b.len = fread(b.data, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Checks the framing of every record; returns their count and the offset
 * where record 1 (the second) starts. */
static int check_records(const bytes *b, size_t *second) {
    size_t off = 0;
    int n = 0;
    while (off < b->len) {
        cr_assert(off + 12 <= b->len, "record %d: truncated header", n);
        uint64_t len = le(b->data + off, 8);
        cr_assert_eq(le(b->data + off + 8, 4), ct_crc32c_mask(ct_crc32c(b->data + off, 8)), "record %d: length CRC", n);
        cr_assert(off + 12 + len + 4 <= b->len, "record %d: truncated data", n);
        cr_assert_eq(le(b->data + off + 12 + len, 4), ct_crc32c_mask(ct_crc32c(b->data + off + 12, len)),
                     "record %d: data CRC", n);
        off += 12 + len + 4;
        if (++n == 1 && second) *second = off;
    }
    return n;
}

static const char *file_in(const char *dir) {
    static char path[4608];
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            n++;
        }
    closedir(d);
    cr_assert_eq(n, 1, "%d files in %s", n, dir);
    return path;
}

Test(tfevents, bytes_equal_tensorboards_own) {
    char *dir = make_tmpdir();
    ct_tfevents *w = ct_tfevents_open(dir);
    cr_assert_not_null(w, "%s", ct_last_error());
    static const struct { const char *tag; int64_t step; double v; } sc[] = {
        {"train/loss", 0, 2.5}, {"val/accuracy", 7, 0.0}, {"train/lr", 300, -0.001},
        {"x", (1LL << 40) + 3, 1e-30}, {"test/loss", -2, 3.4028234663852886e38}};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ct_tfevents_add_scalar(w, sc[i].tag, sc[i].step, sc[i].v, 1700000001.5), CT_OK, "%s",
                     ct_last_error());
    const float h[] = {-1, -0.5f, 0, 0.25f, 1, 2, NAN};
    cr_assert_eq(ct_tfevents_add_histogram(w, "weights/fc.weight", 12, h, 7, 3, 1700000002.0), CT_OK, "%s",
                 ct_last_error());
    cr_assert_eq(ct_tfevents_close(w), CT_OK);

    bytes got = read_all(file_in(dir));
    bytes ref = read_all(CTRAIN_TEST_SOURCE_DIR "/ref/tfevents_ref.bin");
    size_t g1 = 0, r1 = 0;
    cr_assert_eq(check_records(&got, &g1), 7);
    cr_assert_eq(check_records(&ref, &r1), 7);
    /* Everything after the file_version record: same bytes. */
    cr_assert_eq(got.len - g1, ref.len - r1, "%zu vs %zu bytes", got.len - g1, ref.len - r1);
    for (size_t i = 0; i < got.len - g1; i++)
        cr_assert_eq(got.data[g1 + i], ref.data[r1 + i], "byte %zu of the records after the first differs", i);
    /* The file_version record had the time of day; encoded at the
     * reference's time it is the reference's record. */
    ct_pb pb = {0};
    cr_assert(ct_pb_event_version(&pb, 1700000000.25, "brain.Event:2"));
    cr_assert_eq(r1, 12 + pb.len + 4);
    cr_assert_eq(le(ref.data, 8), pb.len);
    cr_assert_eq(memcmp(ref.data + 12, pb.data, pb.len), 0);
    cr_assert_eq(g1, r1, "the file_version record has another length");
    bool found = false;
    for (size_t i = 0; i + 13 <= g1; i++) found |= memcmp(got.data + i, "brain.Event:2", 13) == 0;
    cr_assert(found, "no file_version in the first record");
    ct_pb_free(&pb);
    free(got.data);
    free(ref.data);
    rm_tmpdir(dir);
}

Test(tfevents, file_name_and_no_overwrite) {
    char *dir = make_tmpdir();
    const char *sub = path_in(dir, "a/b//c/");
    ct_tfevents *w1 = ct_tfevents_open(sub), *w2 = ct_tfevents_open(sub);
    cr_assert(w1 && w2, "%s", ct_last_error());
    regex_t re;
    cr_assert_eq(regcomp(&re, "/events\\.out\\.tfevents\\.[0-9]{10}\\.[^/]+$", REG_EXTENDED), 0);
    cr_assert_eq(regexec(&re, ct_tfevents_path(w1), 0, NULL, 0), 0, "%s", ct_tfevents_path(w1));
    cr_assert_eq(regexec(&re, ct_tfevents_path(w2), 0, NULL, 0), 0, "%s", ct_tfevents_path(w2));
    regfree(&re);
    cr_assert_str_neq(ct_tfevents_path(w1), ct_tfevents_path(w2), "two writers share a file");
    cr_assert_eq(ct_tfevents_add_scalar(w1, "a", 1, 1.0, 0), CT_OK);
    cr_assert_eq(ct_tfevents_close(w1), CT_OK);
    cr_assert_eq(ct_tfevents_close(w2), CT_OK);
    rm_tmpdir(dir);
}

Test(tfevents, bad_arguments) {
    char *dir = make_tmpdir();
    const char *file = path_in(dir, "plain");
    write_bytes(file, "x", 1);
    cr_assert_null(ct_tfevents_open(file));
    cr_assert_eq(ct_last_status(), CT_ERR_IO);
    cr_assert(strstr(ct_last_error(), "plain") && strstr(ct_last_error(), "not a directory"), "%s", ct_last_error());
    cr_assert_null(ct_tfevents_open(path_in(dir, "plain/sub")));
    cr_assert(strstr(ct_last_error(), "plain"), "%s", ct_last_error());
    cr_assert_null(ct_tfevents_open(""));
    cr_assert_eq(ct_last_status(), CT_ERR_INVALID_ARG);

    ct_tfevents *w = ct_tfevents_open(dir);
    cr_assert_not_null(w);
    cr_assert_eq(ct_tfevents_add_scalar(w, "", 1, 1.0, 0), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_tfevents_add_scalar(w, NULL, 1, 1.0, 0), CT_ERR_INVALID_ARG);
    const float nan[2] = {NAN, INFINITY};
    cr_assert_eq(ct_tfevents_add_histogram(w, "h", 1, nan, 2, 0, 0), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "no finite value"), "%s", ct_last_error());
    cr_assert_eq(ct_tfevents_add_histogram(w, "h", 1, nan, 2, -1, 0), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_tfevents_close(w), CT_OK);
    cr_assert_eq(ct_tfevents_close(NULL), CT_OK);
    rm_tmpdir(dir);
}

/* ------------------------------------------------------------ the trainer */

#define FEAT 6
#define CLASSES 3

static ct_node model(ct_graph *g, ct_node x, bool training, void *user) {
    (void)training;
    (void)user;
    ct_node h = ct_activation(g, ct_linear(g, "fc1", x, 8, true, NULL), "relu");
    return ct_linear(g, "fc2", h, CLASSES, true, NULL);
}

static ct_dataset *blobs(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n * FEAT) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && y);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(ct_philox_u32(seed, 1, 0, (uint64_t)i) % CLASSES);
        for (int f = 0; f < FEAT; f++)
            x[i * FEAT + f] = (float)((f % CLASSES == y[i] ? 2.0 : 0.0) +
                                      ct_philox_uniform(seed, 2, 0, (uint64_t)(i * FEAT + f)) - 0.5);
    }
    ct_dataset *ds;
    cr_assert_eq(ct_dataset_from_arrays(n, (ct_shape){1, {FEAT}}, x, y, CLASSES, &ds), CT_OK, "%s", ct_last_error());
    free(x);
    free(y);
    return ds;
}

static uint64_t varint(const unsigned char **p) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        unsigned char c = *(*p)++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return v;
    }
}

/* The first length-delimited field `field` of the message [p, end), or NULL. */
static const unsigned char *field_of(const unsigned char *p, const unsigned char *end, int field, uint64_t *len) {
    while (p < end) {
        uint64_t key = varint(&p);
        int wire = (int)(key & 7);
        uint64_t n = wire == 0 ? varint(&p) : wire == 1 ? 8 : wire == 5 ? 4 : varint(&p);
        if (wire == 2 && (int)(key >> 3) == field) {
            *len = n;
            return p;
        }
        if (wire != 0) p += n;
    }
    return NULL;
}

/* The tags of the records after the first, in order, as one string:
 * Event.summary (5) .value (1) .tag (1). */
static void record_tags(const bytes *b, char *out, size_t cap) {
    size_t off = 0;
    out[0] = 0;
    for (int n = 0; off < b->len; n++) {
        uint64_t len = le(b->data + off, 8), l1, l2, l3;
        const unsigned char *d = b->data + off + 12, *s = NULL, *v = NULL, *t = NULL;
        if (n > 0 && (s = field_of(d, d + len, 5, &l1)) && (v = field_of(s, s + l1, 1, &l2)) &&
            (t = field_of(v, v + l2, 1, &l3))) {
            size_t used = strlen(out);
            snprintf(out + used, cap - used, "%s%.*s", used ? " " : "", (int)l3, (const char *)t);
        }
        cr_assert(n == 0 || t, "record %d has no tag", n);
        off += 12 + len + 4;
    }
}

Test(tfevents, trainer_writes_the_metrics_values) {
    char *dir = make_tmpdir();
    ct_dataset *train = blobs(120, 1), *val = blobs(30, 2), *test = blobs(30, 3);
    ct_train_opts o = {.model = model, .batch_size = 40, .epochs = 2, .seed = 3,
                       .optim = {.kind = CT_OPTIM_SGD, .lr = 0.1}, .clip_norm = 1.0,
                       .tensorboard_dir = path_in(dir, "tb"), .tensorboard_histograms = 2, .quiet = true};
    ct_trainer *t = ct_trainer_new(&o, train, val, test);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_OK, "%s", ct_last_error());
    ct_trainer_free(t);
    bytes b = read_all(file_in(path_in(dir, "tb")));
    /* 1 + epoch 1 (6 scalars) + epoch 2 (6 and 4 histograms) + the final
     * line's test loss and accuracy, and its samples_per_s, a time-based
     * value that differs from the epoch line's (unless, by a fluke of
     * timing, not as a float32). */
    int n = check_records(&b, NULL);
    cr_assert(n == 1 + 6 + 10 + 3 || n == 1 + 6 + 10 + 2, "%d records", n);
    char tags[2048];
    record_tags(&b, tags, sizeof tags);
    const char *epochs = "train/loss train/lr train/samples_per_s train/grad_norm val/loss val/accuracy "
                         "train/loss train/lr train/samples_per_s train/grad_norm val/loss val/accuracy "
                         "weights/fc1.weight weights/fc1.bias weights/fc2.weight weights/fc2.bias ";
    char expect[1024];
    snprintf(expect, sizeof expect, "%s%stest/loss test/accuracy", epochs, n == 20 ? "train/samples_per_s " : "");
    cr_assert_str_eq(tags, expect);
    free(b.data);
    ct_dataset_free(train);
    ct_dataset_free(val);
    ct_dataset_free(test);
    rm_tmpdir(dir);
}

Test(tfevents, trainer_refuses_an_unusable_directory_before_training) {
    char *dir = make_tmpdir();
    write_bytes(path_in(dir, "file"), "x", 1);
    ct_dataset *train = blobs(40, 1);
    ct_train_opts o = {.model = model, .batch_size = 40, .epochs = 1, .optim = {.kind = CT_OPTIM_SGD, .lr = 0.1},
                       .tensorboard_dir = path_in(dir, "file"), .quiet = true};
    ct_trainer *t = ct_trainer_new(&o, train, NULL, NULL);
    cr_assert_not_null(t, "%s", ct_last_error());
    ct_train_result r;
    cr_assert_eq(ct_trainer_run(t, &r), CT_ERR_IO);
    cr_assert(strstr(ct_last_error(), "TensorBoard directory") && strstr(ct_last_error(), "file"), "%s",
              ct_last_error());
    cr_assert_eq(r.steps, 0, "trained before failing");
    ct_trainer_free(t);
    o.tensorboard_dir = dir;
    o.tensorboard_histograms = -1;
    cr_assert_null(ct_trainer_new(&o, train, NULL, NULL));
    cr_assert(strstr(ct_last_error(), "tensorboard_histograms"), "%s", ct_last_error());
    ct_dataset_free(train);
    rm_tmpdir(dir);
}
