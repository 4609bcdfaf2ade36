/* The protobuf wire format for TensorBoard's Event messages
 * (tfevents_proto.h): varints, little-endian fixed 32/64-bit values and
 * length-delimited fields, the only three wire types these messages use.
 * A nested message is built in a buffer of its own, then appended behind
 * its length, as the reference runtime's output has it. */
#include "io/tfevents_proto.h"

#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

void ct_pb_free(ct_pb *b) {
    free(b->data);
    *b = (ct_pb){0};
}

static void put(ct_pb *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void put_varint(ct_pb *b, uint64_t v) {
    unsigned char tmp[10];
    int n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7F);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    put(b, tmp, (size_t)n);
}

static void put_key(ct_pb *b, int field, int wire) { put_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_le(ct_pb *b, uint64_t v, int bytes) {
    unsigned char tmp[8];
    for (int i = 0; i < bytes; i++) tmp[i] = (unsigned char)(v >> (8 * i));
    put(b, tmp, (size_t)bytes);
}

static uint64_t bits64(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* A proto3 double: absent when its bits are zero (0.0, not -0.0). */
static void put_double(ct_pb *b, int field, double d) {
    if (bits64(d) == 0) return;
    put_key(b, field, WIRE_FIXED64);
    put_le(b, bits64(d), 8);
}

static void put_bytes(ct_pb *b, int field, const void *data, size_t n) {
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    put(b, data, n);
}

static void put_message(ct_pb *b, int field, ct_pb *inner) {
    if (inner->oom) b->oom = true;
    put_bytes(b, field, inner->data, inner->len);
}

static void put_packed_doubles(ct_pb *b, int field, const double *v, int n) {
    if (n <= 0) return; /* an empty packed field is left out */
    put_key(b, field, WIRE_LEN);
    put_varint(b, (uint64_t)n * 8);
    for (int i = 0; i < n; i++) put_le(b, bits64(v[i]), 8);
}

/* Event fields 1 and 2, common to every record. */
static void event_head(ct_pb *out, double wall_time, int64_t step) {
    out->len = 0;
    out->oom = false;
    put_double(out, 1, wall_time);
    if (step != 0) {
        put_key(out, 2, WIRE_VARINT);
        put_varint(out, (uint64_t)step); /* int64: negatives as 10-byte two's complement */
    }
}

bool ct_pb_event_version(ct_pb *out, double wall_time, const char *file_version) {
    event_head(out, wall_time, 0);
    put_bytes(out, 3, file_version, strlen(file_version));
    return !out->oom;
}

/* Event{head, summary: Summary{value: [value]}} around a built Value. */
static bool event_with_value(ct_pb *out, double wall_time, int64_t step, ct_pb *value) {
    ct_pb summary = {0};
    put_message(&summary, 1, value);
    event_head(out, wall_time, step);
    put_message(out, 5, &summary);
    ct_pb_free(&summary);
    ct_pb_free(value);
    return !out->oom;
}

static void put_tag(ct_pb *v, const char *tag) {
    size_t n = strlen(tag);
    if (n) put_bytes(v, 1, tag, n);
}

bool ct_pb_event_scalar(ct_pb *out, double wall_time, int64_t step, const char *tag, float value) {
    ct_pb v = {0};
    put_tag(&v, tag);
    uint32_t u;
    memcpy(&u, &value, sizeof u);
    put_key(&v, 2, WIRE_FIXED32);
    put_le(&v, u, 4);
    return event_with_value(out, wall_time, step, &v);
}

bool ct_pb_event_histo(ct_pb *out, double wall_time, int64_t step, const char *tag, const ct_pb_histo *h) {
    ct_pb hp = {0}, v = {0};
    put_double(&hp, 1, h->min);
    put_double(&hp, 2, h->max);
    put_double(&hp, 3, h->num);
    put_double(&hp, 4, h->sum);
    put_double(&hp, 5, h->sum_squares);
    put_packed_doubles(&hp, 6, h->limit, h->n);
    put_packed_doubles(&hp, 7, h->count, h->n);
    put_tag(&v, tag);
    put_message(&v, 5, &hp);
    ct_pb_free(&hp);
    return event_with_value(out, wall_time, step, &v);
}
