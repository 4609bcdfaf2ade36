/* Internal: the protobuf encoding of TensorBoard's Event records.
 *
 * An event file (tfevents.c) is a sequence of serialised `tensorboard.Event`
 * messages. ctrain writes three kinds, and this file encodes exactly the
 * fields they use (numbers from tensorboard/compat/proto/event.proto and
 * summary.proto):
 *
 *   Event          1 wall_time double, 2 step int64, 3 file_version string,
 *                  5 summary Summary
 *   Summary        1 value repeated Value
 *   Value          1 tag string, 2 simple_value float, 5 histo HistogramProto
 *   HistogramProto 1 min, 2 max, 3 num, 4 sum, 5 sum_squares (double),
 *                  6 bucket_limit, 7 bucket (packed repeated double)
 *
 * The bytes are those of the reference protobuf runtime: fields in number
 * order, proto3 scalars left out when zero (wall_time, step, tag, the
 * histogram's doubles), oneof members (file_version, simple_value, histo)
 * always written. tests/test_tfevents.c compares them with bytes produced by
 * Python's protobuf (tests/ref/tfevents_reference.py).
 */
#ifndef CT_IO_TFEVENTS_PROTO_H
#define CT_IO_TFEVENTS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer; `oom` is set (and later appends ignored) when an
 * allocation fails, so a message is built with one check at the end. */
typedef struct ct_pb {
    unsigned char *data;
    size_t len, cap;
    bool oom;
} ct_pb;

void ct_pb_free(ct_pb *b);

/* A histogram as HistogramProto holds it: bucket i counts the values in
 * (limit[i-1], limit[i]] (the first from -inf). */
typedef struct ct_pb_histo {
    double min, max, num, sum, sum_squares;
    const double *limit, *count;
    int n;
} ct_pb_histo;

/* Each appends one serialised Event to out (cleared first) and returns
 * false if memory ran out. */
bool ct_pb_event_version(ct_pb *out, double wall_time, const char *file_version);
bool ct_pb_event_scalar(ct_pb *out, double wall_time, int64_t step, const char *tag, float value);
bool ct_pb_event_histo(ct_pb *out, double wall_time, int64_t step, const char *tag, const ct_pb_histo *h);

#endif
