/* The safetensors writer: tensors collected in memory, saved atomically.
 *
 * Saving writes a temporary file beside the target and renames it over the
 * target only once every byte is on disk, so readers (and a process that
 * crashes half-way) see either the old file or the new one, never a mix.
 * The layout and the JSON follow the reference writer closely enough that
 * the same tensors give byte-identical files, which the tests check.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "ctrain/safetensors.h"
#include "io/st_dtype.h"
#include "io/st_target.h"

typedef struct st_wtensor {
    char *name;
    const st_dtype_info *dt;
    ct_shape shape;
    void *data;
    size_t bytes;
} st_wtensor;

struct ct_st_writer {
    st_wtensor *t;
    int n, cap;
    char **meta_key, **meta_val;
    int n_meta, cap_meta;
};

ct_st_writer *ct_st_writer_new(void) {
    ct_st_writer *w = calloc(1, sizeof *w);
    if (!w) ct_error(CT_ERR_OOM, "ct_st_writer_new: out of memory");
    return w;
}

void ct_st_writer_free(ct_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_key[i]);
        free(w->meta_val[i]);
    }
    free(w->t);
    free(w->meta_key);
    free(w->meta_val);
    free(w);
}

static ct_status add_tensor(ct_st_writer *w, const char *name, const st_dtype_info *dt, ct_shape shape,
                            const void *data);

ct_status ct_st_writer_add(ct_st_writer *w, const char *name, ct_dtype dtype, ct_shape shape,
                           const void *data) {
    const st_dtype_info *dt = st_dtype_by_ct(dtype);
    if (!dt)
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add '%.200s': invalid dtype %d", name ? name : "(null)",
                        (int)dtype);
    return add_tensor(w, name, dt, shape, data);
}

/* The integer dtypes ctrain stores but does not compute in (I8 for int8
 * weights): whole bytes per element, so the layout rules hold unchanged. */
ct_status ct_st_writer_add_int(ct_st_writer *w, const char *name, const char *file_dtype, ct_shape shape,
                               const void *data) {
    const st_dtype_info *dt = st_dtype_by_name(file_dtype);
    if (!dt || (dt->kind != ST_KIND_SINT && dt->kind != ST_KIND_UINT) || dt->bits % 8 != 0 ||
        strcmp(dt->name, "BOOL") == 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add_int '%.200s': '%.20s' is not an integer dtype",
                        name ? name : "(null)", file_dtype ? file_dtype : "(null)");
    return add_tensor(w, name, dt, shape, data);
}

static ct_status add_tensor(ct_st_writer *w, const char *name, const st_dtype_info *dt, ct_shape shape,
                            const void *data) {
    if (!w || !name) return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add: writer or name is NULL");
    size_t len = strlen(name);
    if (len == 0 || !st_utf8_valid(name, len))
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add: tensor names must be non-empty UTF-8");
    /* The one key the format reserves: a tensor under it would be read
     * back as metadata. */
    if (strcmp(name, "__metadata__") == 0)
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add: '__metadata__' is reserved, not a tensor name");
    if (shape.ndim < 0 || shape.ndim > CT_MAX_DIMS)
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add '%.200s': ndim %d is not in [0, %d]", name,
                        shape.ndim, CT_MAX_DIMS);
    size_t esize = (size_t)dt->bits / 8, numel = 1;
    bool overflow = false, empty = false;
    for (int i = 0; i < shape.ndim; i++) {
        int64_t d = shape.dim[i];
        if (d < 0)
            return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add '%.200s': dimension %d is negative (%" PRId64 ")",
                            name, i, d);
        if (d == 0) empty = true;
    }
    /* A zero anywhere makes the tensor empty however large the rest. */
    for (int i = 0; !empty && !overflow && i < shape.ndim; i++) {
        if (numel > SIZE_MAX / esize / (uint64_t)shape.dim[i]) overflow = true;
        numel *= (size_t)shape.dim[i];
    }
    if (empty) numel = 0;
    if (overflow) return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add '%.200s': the shape is too large", name);
    size_t bytes = numel * esize;
    if (bytes > 0 && !data) return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add '%.200s': data is NULL", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_add: a tensor named '%.200s' was already added", name);

    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        st_wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return ct_error(CT_ERR_OOM, "ct_st_writer_add: out of memory");
        w->t = t;
        w->cap = cap;
    }
    st_wtensor *t = &w->t[w->n];
    t->name = strdup(name);
    t->data = malloc(bytes ? bytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return ct_error(CT_ERR_OOM, "ct_st_writer_add '%.200s': out of memory for %zu bytes", name, bytes);
    }
    if (bytes) memcpy(t->data, data, bytes);
    t->dt = dt;
    t->shape = shape;
    t->bytes = bytes;
    w->n++;
    return CT_OK;
}

ct_status ct_st_writer_meta(ct_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value) return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_meta: NULL argument");
    if (!st_utf8_valid(key, strlen(key)) || !st_utf8_valid(value, strlen(value)))
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_meta: key and value must be UTF-8");
    char *v = strdup(value);
    if (!v) return ct_error(CT_ERR_OOM, "ct_st_writer_meta: out of memory");
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_key[i], key) == 0) {
            free(w->meta_val[i]);
            w->meta_val[i] = v;
            return CT_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **k = realloc(w->meta_key, (size_t)cap * sizeof *k);
        if (k) w->meta_key = k;
        char **vv = k ? realloc(w->meta_val, (size_t)cap * sizeof *vv) : NULL;
        if (vv) w->meta_val = vv;
        if (!k || !vv) {
            free(v);
            return ct_error(CT_ERR_OOM, "ct_st_writer_meta: out of memory");
        }
        w->cap_meta = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return ct_error(CT_ERR_OOM, "ct_st_writer_meta: out of memory");
    }
    w->meta_key[w->n_meta] = k;
    w->meta_val[w->n_meta] = v;
    w->n_meta++;
    return CT_OK;
}

/* ------------------------------------------------------------ the header */

typedef struct strbuf {
    char *p;
    size_t n, cap;
    bool oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(strbuf *b, uint64_t v) {
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_put(b, tmp, (size_t)len);
}

/* A JSON string, escaped as serde_json (the reference) escapes it. */
static void sb_json_str(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* The reference writer's layout: wider dtypes first, then by name. */
static int cmp_layout(const void *a, const void *b) {
    const st_wtensor *x = *(st_wtensor *const *)a, *y = *(st_wtensor *const *)b;
    if (x->dt->rank != y->dt->rank) return x->dt->rank > y->dt->rank ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Builds the padded header and the write order. */
static ct_status build_header(const ct_st_writer *w, strbuf *b, st_wtensor ***order_out) {
    st_wtensor **order = malloc(((size_t)w->n + 1) * sizeof *order);
    char **keys = malloc(((size_t)w->n_meta + 1) * sizeof *keys);
    if (!order || !keys) {
        free(order);
        free(keys);
        return ct_error(CT_ERR_OOM, "ct_st_writer_save: out of memory");
    }
    for (int i = 0; i < w->n; i++) order[i] = &w->t[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_layout);

    sb_put(b, "{", 1);
    bool first = true;
    if (w->n_meta > 0) {
        /* Sorted so that the same writer always gives the same bytes. */
        for (int i = 0; i < w->n_meta; i++) keys[i] = w->meta_key[i];
        qsort(keys, (size_t)w->n_meta, sizeof *keys, cmp_str);
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            const char *val = NULL;
            for (int k = 0; k < w->n_meta; k++)
                if (w->meta_key[k] == keys[i]) val = w->meta_val[k];
            if (i) sb_put(b, ",", 1);
            sb_json_str(b, keys[i]);
            sb_put(b, ":", 1);
            sb_json_str(b, val);
        }
        sb_put(b, "}", 1);
        first = false;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wtensor *t = order[i];
        if (!first) sb_put(b, ",", 1);
        first = false;
        sb_json_str(b, t->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, t->dt->name);
        sb_str(b, "\",\"shape\":[");
        for (int k = 0; k < t->shape.ndim; k++) {
            if (k) sb_put(b, ",", 1);
            sb_u64(b, (uint64_t)t->shape.dim[k]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, off);
        sb_put(b, ",", 1);
        off += t->bytes;
        sb_u64(b, off);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    /* Padding to a multiple of 8 keeps the data start, and so every tensor
     * laid out widest-first, aligned for readers that map the file. */
    while (!b->oom && b->n % 8 != 0) sb_put(b, " ", 1);
    free(keys);
    if (b->oom) {
        free(order);
        return ct_error(CT_ERR_OOM, "ct_st_writer_save: out of memory for the header");
    }
    *order_out = order;
    return CT_OK;
}

/* ------------------------------------------------------------ saving */

/* Makes the rename itself durable. Best effort: the new file is already in
 * place and complete, and some filesystems refuse fsync on a directory. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

static bool write_all(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n; }

/* Every byte of the file into tmp, flushed and fsync'ed; on failure tmp
 * is removed again. */
static ct_status write_temp(const ct_st_writer *w, st_wtensor **order, const strbuf *hdr, const char *tmp) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        ct_status st = ct_error(CT_ERR_IO, "ct_st_writer_save: cannot create '%s': %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return st; /* nothing was left */
    }
    unsigned char len8[8];
    uint64_t hl = hdr->n;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
    const char *what = "write";
    bool ok = write_all(fp, len8, 8) && write_all(fp, hdr->p, hdr->n);
    for (int i = 0; ok && i < w->n; i++) ok = write_all(fp, order[i]->data, order[i]->bytes);
    /* fflush hands the bytes to the kernel, fsync gets them to the disk:
     * without both, a crash after the rename could leave a file of the
     * right name holding zeros. */
    if (ok && fflush(fp) != 0) what = "flush", ok = false;
    if (ok && fsync(fileno(fp)) != 0) what = "fsync", ok = false;
    int err = errno;
    if (fclose(fp) != 0 && ok) what = "close", ok = false, err = errno;
    if (ok) return CT_OK;
    ct_status st = ct_error(CT_ERR_IO, "ct_st_writer_save: cannot %s '%s': %s", what, tmp, strerror(err));
    unlink(tmp);
    return st;
}

ct_status ct_st_writer_save(const ct_st_writer *w, const char *path) {
    if (!w || !path || !*path)
        return ct_error(CT_ERR_INVALID_ARG, "ct_st_writer_save: writer or path is NULL or empty");
    strbuf hdr = {0};
    st_wtensor **order = NULL;
    ct_status st = build_header(w, &hdr, &order);
    if (st != CT_OK) {
        free(hdr.p);
        return st;
    }
    /* Symbolic links are followed (the file they point to is the one
     * meant) and anything but a regular file is refused: rename() would
     * replace a device node or a FIFO as readily as a file. */
    char *real = NULL, *tmp = NULL;
    if ((st = ct_st_target_resolve(path, &real)) != CT_OK) {
        st = ct_error(st, "ct_st_writer_save: %s", ct_last_error());
        goto out;
    }
    /* Same directory as the target: rename() is atomic only within one
     * filesystem. The pid keeps two processes saving the same path apart,
     * and tells a killed process's leftovers, which go now. */
    ct_st_clean_stale_temps(real);
    if (!(tmp = ct_st_temp_name(real))) {
        st = ct_error(CT_ERR_OOM, "ct_st_writer_save: out of memory");
        goto out;
    }
    if ((st = write_temp(w, order, &hdr, tmp)) != CT_OK) goto out;
    if (rename(tmp, real) != 0) {
        int err = errno;
        st = ct_error(CT_ERR_IO, "ct_st_writer_save: cannot rename '%s' to '%s': %s", tmp, real, strerror(err));
        unlink(tmp);
        goto out;
    }
    sync_parent_dir(real);
out:
    free(tmp);
    free(real);
    free(hdr.p);
    free(order);
    return st;
}
