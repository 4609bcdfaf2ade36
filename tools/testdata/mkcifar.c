/* Writes small files in the CIFAR-10 binary format for the CLI tests
 * (tools/CMakeLists.txt):
 *
 *   DIR/cifar/cifar-10-batches-bin/   data_batch_1..5.bin (8 records each)
 *                                     and test_batch.bin (20), as the
 *                                     archive unpacks; the class (0..3) is
 *                                     the brightest channel, so a tiny
 *                                     model learns it
 *   DIR/cifar_label/     the same, with a label of 12 in data_batch_3.bin
 *   DIR/cifar_short/     the same, with test_batch.bin cut short
 *
 * Usage: ctrain_testcifar DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RECORD 3073

static void die(const char *what) {
    fprintf(stderr, "ctrain_testcifar: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void mkdir_p(const char *path) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST) die(path);
}

/* n records; bad_label >= 0 puts label 12 in that record; cut bytes are
 * left off the end. */
static void batch(const char *path, int file, int n, int bad_label, int cut) {
    unsigned char *d = malloc((size_t)n * RECORD);
    if (!d) die("malloc");
    for (int r = 0; r < n; r++) {
        unsigned char *rec = d + (size_t)r * RECORD;
        int cls = (file + r) % 4;
        rec[0] = (unsigned char)(r == bad_label ? 12 : cls);
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 1024; k++)
                rec[1 + c * 1024 + k] = (unsigned char)(c == cls % 3 && (cls < 3 || k < 512) ? 200 : (k * 13 + r) % 40);
    }
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    if (fwrite(d, 1, (size_t)n * RECORD - (size_t)cut, f) != (size_t)n * RECORD - (size_t)cut || fclose(f) != 0)
        die(path);
    free(d);
}

static void set(const char *root, const char *name, int bad_file, int cut_test) {
    char dir[4096], sub[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    mkdir_p(dir);
    mkdir_p(sub);
    for (int f = 1; f <= 5; f++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", sub, f);
        batch(path, f, 8, f == bad_file ? 5 : -1, 0);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", sub);
    batch(path, 0, 20, -1, cut_test);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ctrain_testcifar DIR\n");
        return 2;
    }
    mkdir_p(argv[1]);
    set(argv[1], "cifar", 0, 0);
    set(argv[1], "cifar_label", 3, 0);
    set(argv[1], "cifar_short", 0, 1000);
    return 0;
}
