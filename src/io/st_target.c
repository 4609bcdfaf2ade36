/* The target of a save: symbolic links resolved, non-regular files refused,
 * temporary files named and cleaned (see st_target.h for the rules). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/st_target.h"

/* As the kernel's own limit on links followed in one lookup. */
#define MAX_LINK_HOPS 40

const char *ct_file_kind(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

/* The link's target, relative ones taken from the link's directory. */
static char *follow(const char *link) {
    char buf[4096];
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    if (n < 0) return NULL;
    buf[n] = 0;
    const char *slash = strrchr(link, '/');
    if (buf[0] == '/' || !slash) return strdup(buf);
    size_t dir = (size_t)(slash - link) + 1;
    char *out = malloc(dir + (size_t)n + 1);
    if (!out) return NULL;
    memcpy(out, link, dir);
    memcpy(out + dir, buf, (size_t)n + 1);
    return out;
}

ct_status ct_st_target_resolve(const char *path, char **real) {
    *real = NULL;
    char *cur = strdup(path);
    if (!cur) return ct_error(CT_ERR_OOM, "'%s': out of memory", path);
    for (int hop = 0;; hop++) {
        struct stat st;
        /* Nothing there (or no such directory): the save itself says why
         * it cannot create the file. */
        if (lstat(cur, &st) != 0) break;
        if (S_ISREG(st.st_mode)) break;
        if (!S_ISLNK(st.st_mode)) {
            ct_status s = ct_error(CT_ERR_IO, "'%s'%s%s%s is %s, not a regular file: refusing to replace it", path,
                                   strcmp(cur, path) ? " (a link to '" : "", strcmp(cur, path) ? cur : "",
                                   strcmp(cur, path) ? "')" : "", ct_file_kind(st.st_mode));
            free(cur);
            return s;
        }
        char *next = hop < MAX_LINK_HOPS ? follow(cur) : NULL;
        if (!next) {
            ct_status s = ct_error(CT_ERR_IO, "'%s': cannot follow the symbolic link '%s'%s", path, cur,
                                   hop < MAX_LINK_HOPS ? "" : " (too many levels of links)");
            free(cur);
            return s;
        }
        free(cur);
        cur = next;
    }
    *real = cur;
    return CT_OK;
}

char *ct_st_temp_name(const char *real) {
    size_t cap = strlen(real) + 32;
    char *tmp = malloc(cap);
    if (tmp) snprintf(tmp, cap, "%s.tmp.%ld", real, (long)getpid());
    return tmp;
}

/* The pid of a name "<base>.tmp.<digits>", or 0. */
static long temp_pid(const char *name, const char *base, size_t blen) {
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) return 0;
    const char *d = name + blen + 5;
    if (!*d) return 0;
    long pid = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || pid > 100000000) return 0;
        pid = pid * 10 + (*d - '0');
    }
    return pid;
}

void ct_st_clean_stale_temps(const char *real) {
    const char *slash = strrchr(real, '/');
    const char *base = slash ? slash + 1 : real;
    char *dir = slash ? strndup(real, slash == real ? 1 : (size_t)(slash - real)) : strdup(".");
    DIR *d = dir ? opendir(dir) : NULL;
    size_t blen = strlen(base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = temp_pid(e->d_name, base, blen);
        /* A live process (or one not ours to signal) may be writing it. */
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char p[8192];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p && lstat(p, &st) == 0 &&
            S_ISREG(st.st_mode))
            (void)unlink(p);
    }
    if (d) closedir(d);
    free(dir);
}

ct_status ct_st_target_check(const char *path) {
    char *real = NULL;
    ct_status st = ct_st_target_resolve(path, &real);
    if (st != CT_OK) return st;
    ct_st_clean_stale_temps(real);
    char *tmp = ct_st_temp_name(real);
    if (!tmp) {
        free(real);
        return ct_error(CT_ERR_OOM, "'%s': out of memory", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    /* EEXIST: this process is saving there right now (or a namesake
     * process left it): the directory takes files either way. */
    if (fd < 0 && errno != EEXIST)
        st = ct_error(CT_ERR_IO, "cannot write '%s': creating '%s' failed: %s", path, tmp, strerror(errno));
    else if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    free(real);
    return st;
}
