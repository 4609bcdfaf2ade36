/* Reading a whole data file into memory, gunzipping it on the way.
 *
 * Compression is told from the gzip magic (1f 8b), not from the name: data
 * sets are renamed, and some mirrors serve MNIST's ".gz" files already
 * unpacked. Everything is read before anything is parsed, so a parser
 * checks sizes against bytes actually present and never allocates what a
 * corrupt header merely claims.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#ifdef CTRAIN_HAVE_ZLIB
#include <zlib.h>
#endif

#include "core/error.h"
#include "data/data_internal.h"

/* Room for more than `need` bytes (the terminator), growing by half again
 * so a stream of unknown length costs amortised linear time; a first
 * reservation of the known size is exact. */
static ct_status reserve(unsigned char **buf, size_t *cap, size_t need, const char *path) {
    if (need < *cap) return CT_OK;
    if (need > SIZE_MAX / 2) return ct_error(CT_ERR_OOM, "%s: file too large", path);
    size_t c = *cap + *cap / 2;
    if (c < (size_t)1 << 16) c = (size_t)1 << 16;
    if (c <= need) c = need + 1;
    unsigned char *nb = realloc(*buf, c);
    if (!nb) return ct_error(CT_ERR_OOM, "%s: out of memory reading %zu bytes", path, need);
    *buf = nb;
    *cap = c;
    return CT_OK;
}

static ct_status read_plain(FILE *f, const char *path, size_t hint, unsigned char **buf,
                            size_t *cap, size_t *len) {
    ct_status s = reserve(buf, cap, hint, path);
    for (;;) {
        if (s != CT_OK) return s;
        size_t got = fread(*buf + *len, 1, *cap - 1 - *len, f);
        *len += got;
        if (got == 0) break;
        s = reserve(buf, cap, *len + 1, path);
    }
    if (ferror(f)) return ct_error(CT_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    return CT_OK;
}

#ifdef CTRAIN_HAVE_ZLIB
/* The bytes after a gzip member: nothing, or another member (gzip(1)
 * concatenates them). Anything else is an error: zlib's gzread skips such
 * trailing bytes without a word, and they mean a damaged or wrongly
 * assembled file. */
static ct_status after_member(const char *path, const unsigned char *next, size_t rest, bool *more) {
    *more = rest > 0;
    if (rest == 0 || (rest >= 2 && next[0] == 0x1f && next[1] == 0x8b)) return CT_OK;
    return ct_error(CT_ERR_FORMAT, "%s: %zu bytes of trailing garbage after the gzip stream", path, rest);
}

/* zlib's status after inflate as this module's error. */
static ct_status inflate_error(const char *path, int ret, const z_stream *z) {
    if (ret == Z_MEM_ERROR) return ct_error(CT_ERR_OOM, "%s: out of memory in zlib", path);
    return ct_error(CT_ERR_FORMAT, "%s: corrupt gzip stream: %s", path,
                    z->msg && *z->msg ? z->msg : "unknown zlib error");
}

/* The compressed file in[0..in_len) gunzipped into *buf. inflate is fed
 * the whole file, so that what follows the last member is seen. */
static ct_status gunzip(const char *path, const unsigned char *in, size_t in_len, size_t hint,
                        unsigned char **buf, size_t *cap, size_t *len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) return ct_error(CT_ERR_OOM, "%s: out of memory in zlib", path);
    ct_status s = reserve(buf, cap, hint, path);
    size_t fed = 0; /* bytes of in handed to zlib so far */
    while (s == CT_OK) {
        if (z.avail_in == 0 && fed < in_len) {
            size_t n = in_len - fed > UINT_MAX ? UINT_MAX : in_len - fed;
            z.next_in = (unsigned char *)(uintptr_t)(in + fed);
            z.avail_in = (unsigned)n;
            fed += n;
        }
        if (*cap - 1 == *len) {
            s = reserve(buf, cap, *len + 1, path);
            continue;
        }
        size_t room = *cap - 1 - *len;
        unsigned ask = room > UINT_MAX ? UINT_MAX : (unsigned)room;
        z.next_out = *buf + *len;
        z.avail_out = ask;
        int ret = inflate(&z, Z_NO_FLUSH);
        *len += ask - z.avail_out;
        if (ret == Z_STREAM_END) {
            bool more;
            size_t rest = in_len - fed + z.avail_in;
            s = after_member(path, z.avail_in ? z.next_in : in + fed, rest, &more);
            if (s != CT_OK || !more) break;
            inflateReset(&z);
        } else if (ret == Z_BUF_ERROR && z.avail_in == 0 && fed == in_len) {
            /* zlib's "unexpected end of file": the stream stops before its
             * end marker and checksum, so the bytes cannot be trusted. */
            s = ct_error(CT_ERR_FORMAT, "%s: gzip stream cut off (unexpected end of file)", path);
        } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
            s = inflate_error(path, ret, &z);
        }
    }
    inflateEnd(&z);
    return s;
}
#endif

ct_status ct_data_read_file(const char *path, unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (!path) return ct_error(CT_ERR_INVALID_ARG, "NULL file path");
    FILE *f = fopen(path, "rb");
    if (!f) return ct_error(CT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t hint = 0;
    if (fstat(fileno(f), &st) == 0) {
        /* fopen succeeds on a directory; the first fread would fail with a
         * less helpful EISDIR. */
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            return ct_error(CT_ERR_IO, "%s: is a directory, not a file", path);
        }
        if (S_ISREG(st.st_mode) && st.st_size > 0) hint = (size_t)st.st_size + 1;
    }
    const size_t file_size = hint; /* + 1: the room read_plain wants for a terminator */
    unsigned char magic[2] = {0, 0};
    size_t nmagic = fread(magic, 1, 2, f);
    bool gzip = nmagic == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzip && hint > 18) {
        /* A gzip member ends with its uncompressed size mod 2^32: the exact
         * size for any single-member file under 4 GiB, and only a first
         * guess otherwise, since the buffer still grows as needed. */
        unsigned char t[4];
        if (fseek(f, -4, SEEK_END) == 0 && fread(t, 1, 4, f) == 4) {
            size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
            /* A damaged trailer must not reserve gigabytes for a small file. */
            if (isize / 64 < hint) hint = isize + 1;
        }
    }
    unsigned char *buf = NULL;
    size_t cap = 0;
    ct_status s;
    if (!gzip) {
        s = reserve(&buf, &cap, nmagic + 1, path);
        if (s == CT_OK) {
            memcpy(buf, magic, nmagic);
            *len = nmagic;
            s = read_plain(f, path, hint, &buf, &cap, len);
        }
        fclose(f);
    } else {
#ifdef CTRAIN_HAVE_ZLIB
        unsigned char *comp = NULL;
        size_t ccap = 0, clen = 0;
        /* The trailer probe above moved the position (a pipe never gets
         * that far): back to just after the magic, which is copied. */
        s = reserve(&comp, &ccap, file_size > 3 ? file_size : 3, path);
        if (s == CT_OK && file_size > 18 && fseek(f, 2, SEEK_SET) != 0)
            s = ct_error(CT_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
        if (s == CT_OK) {
            memcpy(comp, magic, 2);
            clen = 2;
            s = read_plain(f, path, file_size, &comp, &ccap, &clen);
        }
        fclose(f);
        if (s == CT_OK) s = gunzip(path, comp, clen, hint, &buf, &cap, len);
        free(comp);
#else
        fclose(f);
        s = ct_error(CT_ERR_UNSUPPORTED,
                     "%s: gzip-compressed, but this ctrain was built without zlib; "
                     "gunzip it first", path);
#endif
    }
    if (s != CT_OK) {
        free(buf);
        *len = 0;
        return s;
    }
    buf[*len] = '\0';
    *data = buf;
    return CT_OK;
}

ct_status ct_data_find_file(const char *dir, const char *name, char **out) {
    *out = NULL;
    size_t dl = strlen(dir);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    size_t cap = dl + 1 + strlen(name) + 4;
    char *p = malloc(cap);
    if (!p) return ct_error(CT_ERR_OOM, "out of memory");
    struct stat st;
    snprintf(p, cap, "%s%s%s", dir, slash ? "" : "/", name);
    if (stat(p, &st) == 0) {
        *out = p;
        return CT_OK;
    }
    snprintf(p, cap, "%s%s%s.gz", dir, slash ? "" : "/", name);
    if (stat(p, &st) == 0) {
        *out = p;
        return CT_OK;
    }
    free(p);
    return CT_OK;
}

ct_status ct_data_check_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) return ct_error(CT_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return ct_error(CT_ERR_IO, "%s: not a directory", dir);
    return CT_OK;
}
