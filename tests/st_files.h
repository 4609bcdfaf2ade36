/* Helpers of the safetensors and weight-file tests: a fresh temporary
 * directory per test (Criterion runs each test in its own process) and
 * small files written and read byte for byte. Static inline: each test
 * executable that includes this gets its own copy. */
#ifndef CTRAIN_TESTS_ST_FILES_H
#define CTRAIN_TESTS_ST_FILES_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory per test; Criterion runs each test in its own process,
 * and everything is removed at the end so reruns start clean. */
static char g_dir[64];

static inline void make_dir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/ct_st_test_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static inline void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[512];
                if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub) continue;
                remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void cleanup_dir(void) { remove_tree(g_dir); }


static const char *in_dir(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static inline void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, fp), n);
    cr_assert_eq(fclose(fp), 0);
}

/* The whole file, or NULL if it does not exist. Caller frees. */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

/* Entries of a directory other than . and .. */
static inline int dir_entries(const char *path) {
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A file made of a header (padding included, as given) and data. */
static inline void write_st(const char *path, const char *header, const void *data, size_t ndata) {
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (ndata) memcpy(buf + 8 + hl, data, ndata);
    write_bytes(path, buf, 8 + hl + ndata);
    free(buf);
}

/* A PyTorch-like state_dict: safetensors.numpy.save_file({"weight": float32
 * arange(6).reshape(2,3) * 0.5, "num_batches_tracked": int64 7 (a scalar),
 * "bias": float16 [1,-2]}, path, metadata={"format": "pt"}). */
static const char k_ref_sd_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
    "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
    "\"bias\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[32,36]}}   ";
static const unsigned char k_ref_sd_data[36] = {
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x20, 0x40,
    0x00, 0x3c, 0x00, 0xc0,
};

#endif
