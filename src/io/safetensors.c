/* The safetensors reader.
 *
 * The whole file is read into memory and every byte range is checked once in
 * ct_st_open, so the accessors never need to check anything but an index:
 * a malformed or hostile file is refused up front with a message, never
 * half-used. The writer lives in st_writer.c, loading a program's weights
 * in weights.c.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "ctrain/safetensors.h"
#include "io/st_dtype.h"
#include "io/st_target.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader hands out the bytes as they are"
#endif

/* As in the reference implementation: a header this large is a corrupt
 * length field, not a real file, and would only make us allocate for it. */
#define ST_MAX_HEADER 100000000u

/* Largest integer a JSON number (a double, in cJSON) holds exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */

typedef struct st_tensor {
    char *name;
    const st_dtype_info *dt;
    int ndim;
    int64_t *dims; /* ndim entries inside ct_st_file.dims */
    uint64_t numel;
    uint64_t begin, end; /* relative to the start of the data */
} st_tensor;

struct ct_st_file {
    unsigned char *buf; /* the whole file */
    size_t size;
    const unsigned char *data; /* buf + 8 + header length */
    size_t data_size;
    int n;
    st_tensor *t;
    st_tensor **by_name; /* sorted by name, for ct_st_find */
    int64_t *dims;
    int n_meta;
    char **meta_key, **meta_val;
};

/* ------------------------------------------------------------ reading bytes */

static ct_status read_whole_file(const char *path, unsigned char **out, size_t *out_size) {
    *out = NULL;
    *out_size = 0;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever, before the check below could refuse it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ct_error(CT_ERR_IO, "ct_st_open: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ct_error(CT_ERR_IO, "ct_st_open: cannot stat '%s': %s", path, strerror(e));
    }
    /* A directory opens fine on Linux and only fails at read(); a FIFO or a
     * device would block or never end. None is a safetensors file. */
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ct_error(CT_ERR_IO, "ct_st_open: '%s' is %s, not a regular file", path, ct_file_kind(st.st_mode));
    }
    /* Back to blocking reads for the regular file. */
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
        int e = errno;
        close(fd);
        return ct_error(CT_ERR_IO, "ct_st_open: '%s': %s", path, strerror(e));
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)SIZE_MAX - 1) {
        close(fd);
        return ct_error(CT_ERR_IO, "ct_st_open: '%s' is too large to read", path);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return ct_error(CT_ERR_OOM, "ct_st_open: '%s': out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        size_t want = size - got;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30; /* read() caps counts anyway */
        ssize_t r = read(fd, buf + got, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            if (r == 0)
                return ct_error(CT_ERR_IO, "ct_st_open: '%s' shrank while being read (%zu of %zu bytes)",
                                path, got, size);
            return ct_error(CT_ERR_IO, "ct_st_open: cannot read '%s': %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *out_size = size;
    return CT_OK;
}

/* ------------------------------------------------------------ helpers */

static void dims_str(const int64_t *dims, int ndim, char *buf, size_t cap) {
    size_t n = 0;
    int w = snprintf(buf, cap, "[");
    n = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < ndim && n < cap; i++) {
        w = snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", dims[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* A JSON number that is a non-negative integer small enough to be exact. */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* ------------------------------------------------------------ parsing */

/* The messages all start "ct_st_open: '<path>': " so that a failure deep in
 * a checkpoint load still says which file is at fault. */
#define FAIL(st, ...)                                                                              \
    do {                                                                                           \
        char msg_[768];                                                                            \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                                  \
        status = ct_error((st), "ct_st_open: '%s': %s", path, msg_);                               \
        goto done;                                                                                 \
    } while (0)

static ct_status parse_metadata(ct_st_file *f, const cJSON *m, const char *path) {
    ct_status status = CT_OK;
    if (!cJSON_IsObject(m)) FAIL(CT_ERR_FORMAT, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(m);
    f->meta_key = calloc((size_t)n + 1, sizeof *f->meta_key);
    f->meta_val = calloc((size_t)n + 1, sizeof *f->meta_val);
    if (!f->meta_key || !f->meta_val) FAIL(CT_ERR_OOM, "out of memory");
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring)
            FAIL(CT_ERR_FORMAT, "__metadata__ value of '%.200s' is not a string", e->string ? e->string : "");
        for (int k = 0; k < f->n_meta; k++)
            if (strcmp(f->meta_key[k], e->string) == 0)
                FAIL(CT_ERR_FORMAT, "__metadata__ key '%.200s' appears twice", e->string);
        f->meta_key[f->n_meta] = strdup(e->string);
        f->meta_val[f->n_meta] = strdup(e->valuestring);
        if (!f->meta_key[f->n_meta] || !f->meta_val[f->n_meta]) {
            free(f->meta_key[f->n_meta]);
            free(f->meta_val[f->n_meta]);
            FAIL(CT_ERR_OOM, "out of memory");
        }
        f->n_meta++;
    }
done:
    return status;
}

/* A tensor's shape, into t->dims (= dims) and t->ndim, with its element
 * count and its size in bits (*nbits), neither of which may wrap. */
static ct_status parse_shape(st_tensor *t, const cJSON *js, int64_t *dims, uint64_t *nbits, const char *name,
                             const char *path) {
    ct_status status = CT_OK;
    if (!cJSON_IsArray(js)) FAIL(CT_ERR_FORMAT, "tensor '%.200s': shape is not an array", name);
    t->dims = dims;
    t->ndim = 0;
    bool has_zero = false;
    for (const cJSON *d = js->child; d; d = d->next) {
        uint64_t v;
        if (!json_uint(d, &v))
            FAIL(CT_ERR_FORMAT, "tensor '%.200s': shape entry %d is not a non-negative integer below 2^53",
                 name, t->ndim);
        dims[t->ndim++] = (int64_t)v;
        if (v == 0) has_zero = true;
    }
    /* The element count must not wrap: a wrapped product could match a
     * small byte range and make a huge tensor look valid. */
    uint64_t numel = 1;
    if (has_zero) {
        numel = 0;
    } else {
        for (int i = 0; i < t->ndim; i++) {
            uint64_t d = (uint64_t)dims[i];
            if (numel > UINT64_MAX / d) {
                char s[160];
                dims_str(dims, t->ndim, s, sizeof s);
                FAIL(CT_ERR_FORMAT, "tensor '%.200s': shape %s has too many elements", name, s);
            }
            numel *= d;
        }
    }
    t->numel = numel;
    if (numel > UINT64_MAX / (uint64_t)t->dt->bits) {
        char s[160];
        dims_str(dims, t->ndim, s, sizeof s);
        FAIL(CT_ERR_FORMAT, "tensor '%.200s': %s %s is too large", name, t->dt->name, s);
    }
    *nbits = numel * (uint64_t)t->dt->bits;
    if (*nbits % 8 != 0) {
        char s[160];
        dims_str(dims, t->ndim, s, sizeof s);
        FAIL(CT_ERR_FORMAT, "tensor '%.200s': %s %s is not a whole number of bytes", name, t->dt->name, s);
    }
done:
    return status;
}

/* One tensor entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}.
 * Fields other than these three are ignored, as the reference does not
 * promise there will never be more. */
static ct_status parse_tensor(ct_st_file *f, st_tensor *t, const cJSON *e, int64_t *dims,
                              const char *path) {
    ct_status status = CT_OK;
    const char *name = e->string;
    if (!cJSON_IsObject(e)) FAIL(CT_ERR_FORMAT, "tensor '%.200s': entry is not an object", name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!jd || !js || !jo)
        FAIL(CT_ERR_FORMAT, "tensor '%.200s': missing \"%s\"", name,
             !jd ? "dtype" : !js ? "shape" : "data_offsets");
    if (!cJSON_IsString(jd) || !jd->valuestring)
        FAIL(CT_ERR_FORMAT, "tensor '%.200s': dtype is not a string", name);
    t->dt = st_dtype_by_name(jd->valuestring);
    if (!t->dt) FAIL(CT_ERR_FORMAT, "tensor '%.200s': unknown dtype '%.40s'", name, jd->valuestring);
    uint64_t nbits = 0;
    if ((status = parse_shape(t, js, dims, &nbits, name, path)) != CT_OK) goto done;

    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &t->begin) ||
        !json_uint(jo->child->next, &t->end))
        FAIL(CT_ERR_FORMAT, "tensor '%.200s': data_offsets is not [begin, end] of non-negative integers",
             name);
    if (t->begin > t->end)
        FAIL(CT_ERR_FORMAT, "tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
             name, t->begin, t->end);
    if (t->end > f->data_size)
        FAIL(CT_ERR_FORMAT,
             "tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data (%zu bytes)",
             name, t->begin, t->end, f->data_size);
    if (t->end - t->begin != nbits / 8) {
        char s[160];
        dims_str(dims, t->ndim, s, sizeof s);
        FAIL(CT_ERR_FORMAT,
             "tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
             " bytes, but %s %s needs %" PRIu64,
             name, t->begin, t->end, t->end - t->begin, t->dt->name, s, nbits / 8);
    }
    t->name = strdup(name);
    if (!t->name) FAIL(CT_ERR_OOM, "out of memory");
done:
    return status;
}

/* The 8-byte header length, then the header: a private NUL-terminated copy
 * (*hdr) parsed as a JSON object (*root); both are the caller's to free,
 * also on failure. Sets f->data and f->data_size. */
static ct_status parse_header(ct_st_file *f, const char *path, char **hdr_out, cJSON **root_out) {
    ct_status status = CT_OK;
    if (f->size < 8)
        FAIL(CT_ERR_FORMAT, "the file is %zu bytes, too short for the 8-byte header length", f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->buf[i];
    if (n > f->size - 8)
        FAIL(CT_ERR_FORMAT, "header length %" PRIu64 " runs past the end of the file (%zu bytes)", n,
             f->size);
    if (n > ST_MAX_HEADER)
        FAIL(CT_ERR_FORMAT, "header length %" PRIu64 " is over the limit of %u bytes", n, ST_MAX_HEADER);
    f->data = f->buf + 8 + n;
    f->data_size = f->size - 8 - (size_t)n;

    /* A private NUL-terminated copy: cJSON's strings then cannot run into
     * the tensor data, and embedded NULs are caught before they could cut
     * a name short. The JSON must be UTF-8, as for every other reader. */
    char *hdr = *hdr_out = malloc((size_t)n + 1);
    if (!hdr) FAIL(CT_ERR_OOM, "out of memory for a header of %" PRIu64 " bytes", n);
    memcpy(hdr, f->buf + 8, (size_t)n);
    hdr[n] = '\0';
    if (n == 0 || hdr[0] != '{') FAIL(CT_ERR_FORMAT, "the header does not start with '{'");
    if (memchr(hdr, '\0', (size_t)n)) FAIL(CT_ERR_FORMAT, "the header contains a NUL byte");
    if (!st_utf8_valid(hdr, (size_t)n)) FAIL(CT_ERR_FORMAT, "the header is not valid UTF-8");
    const char *end = NULL;
    cJSON *root = *root_out = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root)
        FAIL(CT_ERR_FORMAT, "the header is not valid JSON (error near byte %td of %" PRIu64 ")",
             end ? end - hdr : (ptrdiff_t)-1, n);
    /* The reference writer pads the header with spaces to a multiple of 8;
     * anything else after the JSON object is not ours to ignore. */
    for (const char *p = end; p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            FAIL(CT_ERR_FORMAT, "unexpected bytes after the header's JSON (at byte %td)", p - hdr);
    if (!cJSON_IsObject(root)) FAIL(CT_ERR_FORMAT, "the header is not a JSON object");
done:
    return status;
}

/* The tensor entries' count, the shape entries they hold in all (for one
 * dims array), and the one __metadata__ entry, if any. */
static ct_status count_entries(const cJSON *root, const char *path, int *n_entries, size_t *n_dims,
                               const cJSON **meta) {
    ct_status status = CT_OK;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (*meta) FAIL(CT_ERR_FORMAT, "__metadata__ appears twice");
            *meta = e;
            continue;
        }
        (*n_entries)++;
        if (cJSON_IsObject(e)) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "shape");
            if (cJSON_IsArray(s)) *n_dims += (size_t)cJSON_GetArraySize(s);
        }
    }
done:
    return status;
}

/* Every tensor entry but meta, in the file's order; order gets room for
 * the overlap check. */
static ct_status parse_tensors(ct_st_file *f, const cJSON *root, const cJSON *meta, int n_entries, size_t n_dims,
                               st_tensor ***order, const char *path) {
    ct_status status = CT_OK;
    f->t = calloc((size_t)n_entries + 1, sizeof *f->t);
    f->by_name = malloc(((size_t)n_entries + 1) * sizeof *f->by_name);
    *order = malloc(((size_t)n_entries + 1) * sizeof **order);
    f->dims = malloc((n_dims + 1) * sizeof *f->dims);
    if (!f->t || !f->by_name || !*order || !f->dims) FAIL(CT_ERR_OOM, "out of memory");
    size_t used = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (e == meta) continue;
        st_tensor *t = &f->t[f->n];
        if (parse_tensor(f, t, e, f->dims + used, path) != CT_OK) {
            free(t->name);
            t->name = NULL;
            status = ct_last_status();
            goto done;
        }
        used += (size_t)t->ndim;
        f->by_name[f->n] = t;
        f->n++;
    }
done:
    return status;
}

/* Names unique (sorting by_name for ct_st_find), byte ranges disjoint. */
static ct_status check_tensors(ct_st_file *f, st_tensor **order, const char *path) {
    ct_status status = CT_OK;
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            FAIL(CT_ERR_FORMAT, "tensor '%.200s' appears twice", f->by_name[i]->name);

    /* Empty tensors occupy no bytes and so cannot overlap anything. */
    int n_order = 0;
    for (int i = 0; i < f->n; i++)
        if (f->t[i].end > f->t[i].begin) order[n_order++] = &f->t[i];
    qsort(order, (size_t)n_order, sizeof *order, cmp_begin);
    for (int i = 1; i < n_order; i++)
        if (order[i]->begin < order[i - 1]->end)
            FAIL(CT_ERR_FORMAT,
                 "tensors '%.150s' [%" PRIu64 ", %" PRIu64 "] and '%.150s' [%" PRIu64 ", %" PRIu64
                 "] overlap",
                 order[i - 1]->name, order[i - 1]->begin, order[i - 1]->end, order[i]->name,
                 order[i]->begin, order[i]->end);
done:
    return status;
}

static ct_status parse(ct_st_file *f, const char *path) {
    cJSON *root = NULL;
    char *hdr = NULL;
    st_tensor **order = NULL;
    const cJSON *meta = NULL;
    int n_entries = 0;
    size_t n_dims = 0;
    ct_status status = parse_header(f, path, &hdr, &root);
    if (status == CT_OK) status = count_entries(root, path, &n_entries, &n_dims, &meta);
    if (status == CT_OK && meta && parse_metadata(f, meta, path) != CT_OK) status = ct_last_status();
    if (status == CT_OK) status = parse_tensors(f, root, meta, n_entries, n_dims, &order, path);
    if (status == CT_OK) status = check_tensors(f, order, path);
    free(order);
    free(hdr);
    cJSON_Delete(root);
    return status;
}

#undef FAIL

/* ------------------------------------------------------------ public API */

void ct_st_close(ct_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    free(f->t);
    free(f->by_name);
    free(f->dims);
    free(f->buf);
    free(f);
}

ct_st_file *ct_st_open(const char *path) {
    if (!path) return ct_error(CT_ERR_INVALID_ARG, "ct_st_open: path is NULL"), NULL;
    ct_st_file *f = calloc(1, sizeof *f);
    if (!f) return ct_error(CT_ERR_OOM, "ct_st_open: '%s': out of memory", path), NULL;
    if (read_whole_file(path, &f->buf, &f->size) != CT_OK || parse(f, path) != CT_OK) {
        ct_st_close(f);
        return NULL;
    }
    return f;
}

static const st_tensor *tensor_at(const ct_st_file *f, int i) {
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

int ct_st_count(const ct_st_file *f) { return f ? f->n : 0; }

const char *ct_st_name(const ct_st_file *f, int i) {
    const st_tensor *t = tensor_at(f, i);
    return t ? t->name : NULL;
}

int ct_st_find(const ct_st_file *f, const char *name) {
    if (!f || !name) return -1;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return (int)(f->by_name[mid] - f->t);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

ct_status ct_st_info(const ct_st_file *f, int i, ct_dtype *dtype, ct_shape *shape) {
    const st_tensor *t = tensor_at(f, i);
    if (!t) return ct_error(CT_ERR_INVALID_ARG, "ct_st_info: no tensor %d (the file has %d)", i, ct_st_count(f));
    if (dtype) *dtype = t->dt->ct;
    if (t->ndim > CT_MAX_DIMS)
        return ct_error(CT_ERR_UNSUPPORTED, "ct_st_info: tensor '%.200s' has %d dimensions, more than %d",
                        t->name, t->ndim, CT_MAX_DIMS);
    if (shape) {
        memset(shape, 0, sizeof *shape);
        shape->ndim = t->ndim;
        for (int k = 0; k < t->ndim; k++) shape->dim[k] = t->dims[k];
    }
    return CT_OK;
}

const char *ct_st_dtype_name(const ct_st_file *f, int i) {
    const st_tensor *t = tensor_at(f, i);
    return t ? t->dt->name : NULL;
}

size_t ct_st_nbytes(const ct_st_file *f, int i) {
    const st_tensor *t = tensor_at(f, i);
    return t ? (size_t)(t->end - t->begin) : 0;
}

const void *ct_st_data(const ct_st_file *f, int i) {
    const st_tensor *t = tensor_at(f, i);
    return t ? f->data + t->begin : NULL;
}

const char *ct_st_meta(const ct_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

int ct_st_meta_count(const ct_st_file *f) { return f ? f->n_meta : 0; }

const char *ct_st_meta_key(const ct_st_file *f, int i) {
    return f && i >= 0 && i < f->n_meta ? f->meta_key[i] : NULL;
}

/* ------------------------------------------------------------ conversion */

/* Element reads through memcpy: the data need not be aligned. */
static double load_float(const unsigned char *p, ct_dtype dt) {
    switch (dt) {
    case CT_F64: {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    case CT_F32: {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case CT_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ct_f16_to_f32(h);
    }
    default: { /* BF16, the last float kind */
        uint16_t h;
        memcpy(&h, p, 2);
        return ct_bf16_to_f32(h);
    }
    }
}

static int64_t load_sint(const unsigned char *p, int bits) {
    switch (bits) {
    case 8: return (int8_t)p[0];
    case 16: { int16_t v; memcpy(&v, p, 2); return v; }
    case 32: { int32_t v; memcpy(&v, p, 4); return v; }
    default: { int64_t v; memcpy(&v, p, 8); return v; }
    }
}

static uint64_t load_uint(const unsigned char *p, int bits) {
    switch (bits) {
    case 8: return p[0];
    case 16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 32: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static void store_float(unsigned char *q, ct_dtype dt, double v) {
    switch (dt) {
    case CT_F64: memcpy(q, &v, 8); break;
    case CT_F32: { float x = (float)v; memcpy(q, &x, 4); break; }
    /* F64 sources reach F16/BF16 through F32; the second rounding can differ
     * from a direct one only on exact ties, far below weight noise. */
    case CT_F16: { uint16_t h = ct_f32_to_f16((float)v); memcpy(q, &h, 2); break; }
    default: { uint16_t h = ct_f32_to_bf16((float)v); memcpy(q, &h, 2); break; }
    }
}

ct_status ct_st_read(const ct_st_file *f, int i, ct_dtype dtype, void *dst, size_t bytes) {
    const st_tensor *t = tensor_at(f, i);
    if (!t) return ct_error(CT_ERR_INVALID_ARG, "ct_st_read: no tensor %d (the file has %d)", i, ct_st_count(f));
    size_t esize = ct_dtype_size(dtype);
    if (esize == 0) return ct_error(CT_ERR_INVALID_ARG, "ct_st_read: invalid dtype %d", (int)dtype);
    if (t->numel > SIZE_MAX / esize || bytes != t->numel * esize || (!dst && bytes > 0))
        return ct_error(CT_ERR_SHAPE, "ct_st_read: tensor '%.200s' is %" PRIu64 " elements, %" PRIu64
                                      " bytes as %s; got a buffer of %zu bytes",
                        t->name, t->numel, t->numel * (uint64_t)esize, ct_dtype_name(dtype), bytes);
    const unsigned char *src = f->data + t->begin;
    unsigned char *out = dst;
    size_t n = (size_t)t->numel;
    size_t in_size = (size_t)t->dt->bits / 8;
    if (t->dt->ct == dtype) {
        if (bytes) memcpy(out, src, bytes);
        return CT_OK;
    }
    if (t->dt->kind == ST_KIND_RAW)
        return ct_error(CT_ERR_UNSUPPORTED, "ct_st_read: tensor '%.200s' is %s, which ctrain does not convert",
                        t->name, t->dt->name);
    if (ct_dtype_is_float(dtype)) {
        for (size_t k = 0; k < n; k++) {
            const unsigned char *p = src + k * in_size;
            double v = t->dt->kind == ST_KIND_FLOAT  ? load_float(p, t->dt->ct)
                       : t->dt->kind == ST_KIND_SINT ? (double)load_sint(p, t->dt->bits)
                                                     : (double)load_uint(p, t->dt->bits);
            store_float(out + k * esize, dtype, v);
        }
        return CT_OK;
    }
    if (t->dt->kind == ST_KIND_FLOAT)
        return ct_error(CT_ERR_DTYPE, "ct_st_read: tensor '%.200s' is %s; converting floats to %s is refused",
                        t->name, t->dt->name, ct_dtype_name(dtype));
    /* Integer to I32 or U8: every value must fit, since a silently wrapped
     * label or index is worse than an error. */
    int64_t lo = dtype == CT_I32 ? INT32_MIN : 0;
    int64_t hi = dtype == CT_I32 ? INT32_MAX : UINT8_MAX;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *p = src + k * in_size;
        int64_t v;
        bool fits;
        if (t->dt->kind == ST_KIND_SINT) {
            v = load_sint(p, t->dt->bits);
            fits = v >= lo && v <= hi;
        } else {
            uint64_t u = load_uint(p, t->dt->bits);
            fits = u <= (uint64_t)hi;
            v = fits ? (int64_t)u : 0;
            if (!fits)
                return ct_error(CT_ERR_NUMERIC, "ct_st_read: tensor '%.200s' element %zu (%" PRIu64
                                                ") does not fit in %s",
                                t->name, k, u, ct_dtype_name(dtype));
        }
        if (!fits)
            return ct_error(CT_ERR_NUMERIC, "ct_st_read: tensor '%.200s' element %zu (%" PRId64
                                            ") does not fit in %s",
                            t->name, k, v, ct_dtype_name(dtype));
        if (dtype == CT_I32) {
            int32_t x = (int32_t)v;
            memcpy(out + k * 4, &x, 4);
        } else {
            out[k] = (unsigned char)v;
        }
    }
    return CT_OK;
}
