/* Temporary directories and small files for the tests that write data
 * files of their own (IDX, CSV, CIFAR-10). Static functions: each test
 * executable that includes this gets its own copy. */
#ifndef CTRAIN_TESTS_TMPFILES_H
#define CTRAIN_TESTS_TMPFILES_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh temporary directory per test; rm_tmpdir empties and removes it. */
static inline char *make_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char *t = malloc(4096);
    cr_assert_not_null(t);
    snprintf(t, 4096, "%s/ctrain_data_XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(t), "mkdtemp failed");
    return t;
}

/* Removes dir with everything below it. */
static inline void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4352];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
            if (unlink(p) != 0) rm_tree(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static inline void rm_tmpdir(char *dir) {
    rm_tree(dir);
    free(dir);
}

/* dir/name in a static ring of buffers, enough for the few paths a test holds. */
static inline const char *path_in(const char *dir, const char *name) {
    static char ring[8][4608];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", dir, name);
    return p;
}

static inline void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

#endif
