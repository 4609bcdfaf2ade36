/* Writes the small, partly broken data files the CLI tests feed to
 * `ctrain train` and `ctrain eval` (tools/CMakeLists.txt):
 *
 *   DIR/good/        a valid IDX set: 64 training and 32 test images, 8x8
 *   DIR/truncated/   training images cut short of what the header says
 *   DIR/magic/       a label file where the images should be (wrong magic)
 *   DIR/count/       64 images but 50 labels
 *   DIR/good.csv     two separable classes, 120 rows with a header
 *   DIR/ragged.csv   a row with a missing field
 *   DIR/nan.csv      a field that is not a number
 *   DIR/bad.safetensors   not a safetensors file at all
 *   DIR/rej/...      hostile inputs for tools/bad_input_data.cmake: labels
 *                    outside the classes, overflowing IDX sizes, CSV values
 *                    that overflow a float, fake headers, hex, NUL bytes,
 *                    gzip with trailing bytes, weights with NaN/inf and a
 *                    degenerate normalisation record (see rejects())
 *
 * Binary files cannot be written from a CMake script, hence this program.
 * Usage: ctrain_testdata DIR
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;

static void die(const char *what) {
    fprintf(stderr, "ctrain_testdata: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void mkdir_p(const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) die(path);
}

static FILE *open_out(const char *sub) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    return f;
}

static void be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* n images of side x side whose brightest pixel row tells the class
 * (0..3), so that even a tiny model learns them; `keep` images actually
 * written (fewer than n makes a truncated file). */
static void images(const char *sub, uint32_t magic, uint32_t n, uint32_t keep, uint32_t side) {
    FILE *f = open_out(sub);
    be32(f, magic);
    be32(f, n);
    be32(f, side);
    be32(f, side);
    for (uint32_t i = 0; i < keep; i++)
        for (uint32_t r = 0; r < side; r++)
            for (uint32_t c = 0; c < side; c++) fputc(r == 2 * (i % 4) ? 200 : (int)((i * 7 + c) % 30), f);
    if (fclose(f) != 0) die(sub);
}

/* n labels 0..3 in turn; record `bad_at` (if < n) gets `bad` instead. */
static void labels_with(const char *sub, uint32_t n, uint32_t bad_at, int bad) {
    FILE *f = open_out(sub);
    be32(f, 0x00000801u);
    be32(f, n);
    for (uint32_t i = 0; i < n; i++) fputc(i == bad_at ? bad : (int)(i % 4), f);
    if (fclose(f) != 0) die(sub);
}

static void labels(const char *sub, uint32_t n) { labels_with(sub, n, n, 0); }

static void idx_set(const char *dir, uint32_t img_magic, uint32_t n_img, uint32_t keep, uint32_t n_lab) {
    char a[256], b[256];
    mkdir_p(dir);
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte", dir);
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte", dir);
    images(a, img_magic, n_img, keep, 8);
    labels(b, n_lab);
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte", dir);
    images(a, 0x00000803u, 32, 32, 8);
    labels(b, 32);
}

static void text(const char *sub, const char *content) {
    FILE *f = open_out(sub);
    fputs(content, f);
    if (fclose(f) != 0) die(sub);
}

static void bytes(const char *sub, const void *data, size_t len) {
    FILE *f = open_out(sub);
    fwrite(data, 1, len, f);
    if (fclose(f) != 0) die(sub);
}

static void le32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, f);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

/* content as a gzip member of one stored deflate block (no zlib needed),
 * then `tail` appended. */
static void gzip_stored(const char *sub, const char *content, const char *tail) {
    FILE *f = open_out(sub);
    size_t n = strlen(content);
    const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    fwrite(head, 1, 10, f);
    const unsigned char blk[5] = {1, (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)~n,
                                  (unsigned char)(~n >> 8)};
    fwrite(blk, 1, 5, f);
    fwrite(content, 1, n, f);
    le32(f, crc32_of((const unsigned char *)content, n));
    le32(f, (uint32_t)n);
    fputs(tail, f);
    if (fclose(f) != 0) die(sub);
}

/* A bare safetensors file of the MLP 64-8-C ("--hidden 8" on the 8x8
 * images): fc1.weight, fc1.bias, fc2.weight, fc2.bias, all `fill`, with
 * fc1.weight[poison_at] = poison; metadata `meta` (a JSON object's inside,
 * may be empty). */
static void mlp_weights(const char *sub, int classes, float fill, int poison_at, float poison, const char *meta) {
    const int sizes[4] = {8 * 64, 8, classes * 8, classes};
    char hdr[2048];
    size_t off = 0;
    int len = snprintf(hdr, sizeof hdr, "{");
    if (*meta) len += snprintf(hdr + len, sizeof hdr - (size_t)len, "\"__metadata__\":{%s},", meta);
    const char *names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    for (int t = 0; t < 4; t++) {
        char shape[32];
        if (t % 2 == 0)
            snprintf(shape, sizeof shape, "%d,%d", t == 0 ? 8 : classes, t == 0 ? 64 : 8);
        else
            snprintf(shape, sizeof shape, "%d", sizes[t]);
        len += snprintf(hdr + len, sizeof hdr - (size_t)len,
                        "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}", t ? "," : "",
                        names[t], shape, off, off + 4 * (size_t)sizes[t]);
        off += 4 * (size_t)sizes[t];
    }
    len += snprintf(hdr + len, sizeof hdr - (size_t)len, "}");
    while (len % 8) hdr[len++] = ' ';
    FILE *f = open_out(sub);
    le32(f, (uint32_t)len);
    le32(f, 0);
    fwrite(hdr, 1, (size_t)len, f);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < sizes[t]; i++) {
            float v = t == 0 && i == poison_at ? poison : fill;
            fwrite(&v, 4, 1, f);
        }
    if (fclose(f) != 0) die(sub);
}

/* An IDX set in rej/<dir> like "good", with one bad label. */
static void idx_bad_label(const char *dir, bool test, uint32_t at, int label) {
    char a[256], b[256];
    mkdir_p(dir);
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte", dir);
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte", dir);
    images(a, 0x00000803u, 64, 64, 8);
    labels_with(b, 64, test ? 64 : at, label);
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte", dir);
    images(a, 0x00000803u, 32, 32, 8);
    labels_with(b, 32, test ? at : 32, label);
}

/* The hostile inputs of tools/bad_input_data.cmake. */
static void rejects(void) {
    mkdir_p("rej");
    idx_bad_label("rej/label255", false, 5, 255);
    idx_bad_label("rej/test12", true, 7, 12);
    idx_bad_label("rej/test7", true, 7, 7);
    /* Images whose sizes multiply past 2^64 (2^16 x 2^17 x 2^31). */
    mkdir_p("rej/wrap");
    FILE *f = open_out("rej/wrap/train-images-idx3-ubyte");
    be32(f, 0x00000803u);
    be32(f, 0x10000u);
    be32(f, 0x20000u);
    be32(f, 0x80000000u);
    fclose(f);
    labels("rej/wrap/train-labels-idx1-ubyte", 4);
    images("rej/wrap/t10k-images-idx3-ubyte", 0x00000803u, 4, 4, 8);
    labels("rej/wrap/t10k-labels-idx1-ubyte", 4);

    text("rej/train4.csv", "a,b,label\n0.1,0.2,0\n0.3,0.1,1\n0.5,0.9,2\n0.7,0.4,3\n0.2,0.8,1\n0.6,0.3,2\n");
    text("rej/test12.csv", "a,b,label\n0.1,0.2,0\n0.3,0.1,12\n");
    text("rej/label2e9.csv", "a,b,label\n0.1,0.2,0\n0.3,0.1,2e9\n");
    text("rej/float1e39.csv", "a,b,label\n0.1,0.2,0\n0.3,1e39,1\n");
    text("rej/digits40.csv", "a,b,label\n0.1,0.2,0\n1234567890123456789012345678901234567890,0.1,1\n");
    text("rej/nan_first.csv", "0.1,nan,0\n0.3,0.1,1\n");
    text("rej/empty_first.csv", "0.1,,0\n0.3,0.1,1\n");
    text("rej/dots_first.csv", "0.1,2.5.1,0\n0.3,0.1,1\n");
    text("rej/hex.csv", "a,b,label\n0.1,0x2,0\n0.3,0.1,1\n");
    static const char nul[] = "a,b,label\n0.1,2\0,0\n0.3,0.1,1\n";
    bytes("rej/nul.csv", nul, sizeof nul - 1);
    gzip_stored("rej/trailing.csv.gz", "a,b,label\n0.1,0.2,0\n0.3,0.1,1\n", "garbage");
    gzip_stored("rej/gz_ok.csv.gz", "a,b,label\n0.1,0.2,0\n0.3,0.1,1\n", "");

    mlp_weights("rej/nan.safetensors", 10, 0.01f, 17, NAN, "");
    mlp_weights("rej/inf.safetensors", 10, 0.01f, 3, INFINITY, "");
    mlp_weights("rej/huge.safetensors", 10, 3e38f, -1, 0, "");
    mlp_weights("rej/norm_tiny.safetensors", 10, 0.01f, -1, 0,
                "\"cli.data\":\"mnist\",\"cli.normalize\":\"{\\\"mean\\\":[0.1],\\\"std\\\":[1e-45]}\"");
    mlp_weights("rej/norm_zero.safetensors", 10, 0.01f, -1, 0,
                "\"cli.data\":\"mnist\",\"cli.normalize\":\"{\\\"mean\\\":[0.1],\\\"std\\\":[0]}\"");
    mlp_weights("rej/norm_big.safetensors", 10, 0.01f, -1, 0,
                "\"cli.data\":\"mnist\",\"cli.normalize\":\"{\\\"mean\\\":[1e39],\\\"std\\\":[1]}\"");
    /* A model of 4 classes, as its record says (MNIST's data declares 10). */
    mlp_weights("rej/four.safetensors", 4, 0.01f, -1, 0,
                "\"cli.model\":\"{\\\"model\\\":\\\"mlp\\\",\\\"hidden\\\":[8],\\\"activation\\\":"
                "\\\"relu\\\",\\\"dropout\\\":0,\\\"batchnorm\\\":false,\\\"classes\\\":4}\"");
    mlp_weights("rej/ok.safetensors", 10, 0.01f, -1, 0, "");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ctrain_testdata DIR\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0777) != 0 && errno != EEXIST) die(root);
    idx_set("good", 0x00000803u, 64, 64, 64);
    idx_set("truncated", 0x00000803u, 64, 20, 64);
    idx_set("magic", 0x00000801u, 64, 64, 64);
    idx_set("count", 0x00000803u, 64, 64, 50);

    FILE *f = open_out("good.csv");
    fprintf(f, "a,b,label\n");
    for (int i = 0; i < 120; i++) {
        double x = (i * 37 % 101) / 50.0 - 1, y = (i * 53 % 97) / 48.0 - 1;
        int label = x + y > 0;
        if (x + y > -0.1 && x + y < 0.1) y += label ? 0.3 : -0.3;
        fprintf(f, "%.3f,%.3f,%d\n", x, y, label);
    }
    if (fclose(f) != 0) die("good.csv");
    text("ragged.csv", "a,b,label\n0.5,0.25,1\n0.1,0\n0.3,0.2,0\n");
    text("nan.csv", "a,b,label\n0.5,0.25,1\n0.1,zero,0\n0.3,0.2,0\n");
    text("bad.safetensors", "this is not a safetensors file, whatever its name says\n");
    rejects();
    return 0;
}
