/* TensorBoard event files (ctrain/tfevents.h): the file, its name and the
 * TFRecord framing around the Event messages of tfevents_proto.c.
 *
 * Every record goes through stdio's buffer and reaches the file at
 * ct_tfevents_flush (the trainer flushes after each metrics line), so a
 * TensorBoard following the directory sees whole groups of values. A
 * failed write leaves the records before it intact: a reader stops at the
 * first incomplete record. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "ctrain/tfevents.h"
#include "io/crc32c.h"
#include "io/tfevents_proto.h"

#define FILE_VERSION "brain.Event:2"
#define DEFAULT_BINS 30
#define MAX_SUFFIX 1000

struct ct_tfevents {
    FILE *f;
    char *path;
    ct_pb buf; /* one serialised Event, reused */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mkdir -p: each missing component is created; an existing one must be a
 * directory. */
static ct_status make_dirs(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ct_error(CT_ERR_OOM, "out of memory");
    ct_status st = CT_OK;
    for (char *s = p + 1;; s++) {
        bool end = *s == 0;
        if (!end && *s != '/') continue;
        *s = 0;
        struct stat sb;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            st = ct_error(CT_ERR_IO, "cannot create the TensorBoard directory '%s': %s", p, strerror(errno));
        else if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = ct_error(CT_ERR_IO, "cannot use '%s' as the TensorBoard directory: it is not a directory", p);
        if (st != CT_OK || end) break;
        *s = '/';
        while (s[1] == '/') s++;
        if (s[1] == 0) break;
    }
    free(p);
    return st;
}

/* events.out.tfevents.<time>.<host>[.k] in dir, created exclusively. */
static ct_status create_file(ct_tfevents *w, const char *dir) {
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    long long t = (long long)time(NULL);
    size_t cap = strlen(dir) + strlen(host) + 64;
    if (!(w->path = malloc(cap))) return ct_error(CT_ERR_OOM, "out of memory");
    for (int k = 0; k < MAX_SUFFIX; k++) {
        int n = snprintf(w->path, cap, "%s/events.out.tfevents.%010lld.%s", dir, t, host);
        if (k) snprintf(w->path + n, cap - (size_t)n, ".%d", k);
        int fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return ct_error(CT_ERR_IO, "cannot create the event file '%s': %s", w->path, strerror(errno));
        if (!(w->f = fdopen(fd, "wb"))) {
            close(fd);
            return ct_error(CT_ERR_IO, "cannot open the event file '%s': %s", w->path, strerror(errno));
        }
        return CT_OK;
    }
    return ct_error(CT_ERR_IO, "cannot create an event file in '%s': %d names taken", dir, MAX_SUFFIX);
}

static void le_bytes(unsigned char *dst, uint64_t v, int n) {
    for (int i = 0; i < n; i++) dst[i] = (unsigned char)(v >> (8 * i));
}

/* One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
static ct_status write_record(ct_tfevents *w) {
    if (w->buf.oom) return ct_error(CT_ERR_OOM, "out of memory");
    unsigned char head[12], tail[4];
    le_bytes(head, (uint64_t)w->buf.len, 8);
    le_bytes(head + 8, ct_crc32c_mask(ct_crc32c(head, 8)), 4);
    le_bytes(tail, ct_crc32c_mask(ct_crc32c(w->buf.data, w->buf.len)), 4);
    if (fwrite(head, 1, sizeof head, w->f) != sizeof head || fwrite(w->buf.data, 1, w->buf.len, w->f) != w->buf.len ||
        fwrite(tail, 1, sizeof tail, w->f) != sizeof tail)
        return ct_error(CT_ERR_IO, "cannot write the event file '%s': %s", w->path, strerror(errno));
    return CT_OK;
}

ct_tfevents *ct_tfevents_open(const char *dir) {
    if (!dir || !*dir) {
        ct_error(CT_ERR_INVALID_ARG, "ct_tfevents_open: the directory is NULL or empty");
        return NULL;
    }
    ct_tfevents *w = calloc(1, sizeof *w);
    if (!w) {
        ct_error(CT_ERR_OOM, "out of memory");
        return NULL;
    }
    ct_status st = make_dirs(dir);
    if (st == CT_OK) st = create_file(w, dir);
    if (st == CT_OK) {
        ct_pb_event_version(&w->buf, now_s(), FILE_VERSION);
        st = write_record(w);
    }
    if (st == CT_OK) st = ct_tfevents_flush(w);
    if (st != CT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ct_last_error());
        if (w->f) remove(w->path); /* nothing but our own empty file */
        ct_tfevents_close(w);
        ct_error(st, "%s", msg);
        return NULL;
    }
    return w;
}

const char *ct_tfevents_path(const ct_tfevents *w) { return w ? w->path : NULL; }

static ct_status check_args(const ct_tfevents *w, const char *tag, const char *fn) {
    if (!w || !tag || !*tag) return ct_error(CT_ERR_INVALID_ARG, "%s: writer or tag is NULL or empty", fn);
    return CT_OK;
}

ct_status ct_tfevents_add_scalar(ct_tfevents *w, const char *tag, int64_t step, double value, double wall_time) {
    ct_status st = check_args(w, tag, "ct_tfevents_add_scalar");
    if (st != CT_OK) return st;
    ct_pb_event_scalar(&w->buf, wall_time > 0 ? wall_time : now_s(), step, tag, (float)value);
    return write_record(w);
}

/* Equal-width buckets over [min, max] of the finite values. */
static ct_status fill_histo(const float *x, size_t n, int bins, ct_pb_histo *h, double *limit, double *count) {
    *h = (ct_pb_histo){.min = INFINITY, .max = -INFINITY, .limit = limit, .count = count, .n = bins};
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v)) continue;
        h->min = v < h->min ? v : h->min;
        h->max = v > h->max ? v : h->max;
        h->num += 1;
        h->sum += v;
        h->sum_squares += v * v;
    }
    if (h->num == 0) return ct_error(CT_ERR_INVALID_ARG, "ct_tfevents_add_histogram: no finite value");
    double width = (h->max - h->min) / bins;
    for (int b = 0; b < bins; b++) {
        limit[b] = b == bins - 1 ? h->max : h->min + width * (b + 1);
        count[b] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v)) continue;
        int b = width > 0 ? (int)((v - h->min) / width) : 0;
        /* (limit[b-1], limit[b]]: a value on an edge belongs below it */
        while (b > 0 && v <= limit[b - 1]) b--;
        while (b < bins - 1 && v > limit[b]) b++;
        count[b] += 1;
    }
    return CT_OK;
}

ct_status ct_tfevents_add_histogram(ct_tfevents *w, const char *tag, int64_t step, const float *values, size_t n,
                                    int bins, double wall_time) {
    ct_status st = check_args(w, tag, "ct_tfevents_add_histogram");
    if (st != CT_OK) return st;
    if (!values && n) return ct_error(CT_ERR_INVALID_ARG, "ct_tfevents_add_histogram: values is NULL");
    if (bins < 0) return ct_error(CT_ERR_INVALID_ARG, "ct_tfevents_add_histogram: bins is %d", bins);
    if (bins == 0) bins = DEFAULT_BINS;
    double *limit = malloc(2 * (size_t)bins * sizeof *limit);
    if (!limit) return ct_error(CT_ERR_OOM, "out of memory");
    ct_pb_histo h;
    st = fill_histo(values, n, bins, &h, limit, limit + bins);
    if (st == CT_OK) {
        ct_pb_event_histo(&w->buf, wall_time > 0 ? wall_time : now_s(), step, tag, &h);
        st = write_record(w);
    }
    free(limit);
    return st;
}

ct_status ct_tfevents_flush(ct_tfevents *w) {
    if (!w) return ct_error(CT_ERR_INVALID_ARG, "ct_tfevents_flush: writer is NULL");
    if (fflush(w->f) != 0)
        return ct_error(CT_ERR_IO, "cannot write the event file '%s': %s", w->path, strerror(errno));
    return CT_OK;
}

ct_status ct_tfevents_close(ct_tfevents *w) {
    if (!w) return CT_OK;
    ct_status st = CT_OK;
    if (w->f && fclose(w->f) != 0)
        st = ct_error(CT_ERR_IO, "cannot write the event file '%s': %s", w->path, strerror(errno));
    free(w->path);
    ct_pb_free(&w->buf);
    free(w);
    return st;
}
