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
 *
 * Binary files cannot be written from a CMake script, hence this program.
 * Usage: ctrain_testdata DIR
 */
#include <errno.h>
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

static void labels(const char *sub, uint32_t n) {
    FILE *f = open_out(sub);
    be32(f, 0x00000801u);
    be32(f, n);
    for (uint32_t i = 0; i < n; i++) fputc((int)(i % 4), f);
    if (fclose(f) != 0) die(sub);
}

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
    return 0;
}
