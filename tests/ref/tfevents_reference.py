#!/usr/bin/env python3
"""Writes tests/ref/tfevents_ref.bin: TensorBoard event records serialised
by TensorBoard's own protobuf classes (tensorboard.compat.proto) and framed
by its own RecordWriter (masked CRC-32C from its pywrap_tensorflow stub),
for tests/test_tfevents.c to compare ctrain's encoder with byte for byte.

The events, in order (test_tfevents.c writes the same ones):
  1. file_version "brain.Event:2" at wall_time 1700000000.25
  2. scalars at wall_time 1700000001.5: ("train/loss", step 0, 2.5),
     ("val/accuracy", step 7, 0.0), ("train/lr", step 300, -0.001),
     ("x", step 2**40 + 3, 1e-30), ("test/loss", step -2, 3.4028234663852886e38)
  3. a histogram at wall_time 1700000002.0, "weights/fc.weight", step 12,
     of [-1, -0.5, 0, 0.25, 1, 2, nan] in 3 equal-width buckets:
     limits [0, 1, 2], counts [3, 2, 1] (a value on an edge counts below it)

Run it again only when the reference itself must change:
    python3 tests/ref/tfevents_reference.py tests/ref/tfevents_ref.bin
"""
import io
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

SCALARS = [("train/loss", 0, 2.5), ("val/accuracy", 7, 0.0), ("train/lr", 300, -0.001),
           ("x", 2**40 + 3, 1e-30), ("test/loss", -2, 3.4028234663852886e38)]


def scalar_event(tag, step, value):
    v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(wall_time=1700000001.5, step=step, summary=summary_pb2.Summary(value=[v]))


def histo_event():
    xs = [-1.0, -0.5, 0.0, 0.25, 1.0, 2.0]
    h = summary_pb2.HistogramProto(min=-1.0, max=2.0, num=6, sum=sum(xs), sum_squares=sum(x * x for x in xs),
                                   bucket_limit=[0.0, 1.0, 2.0], bucket=[3, 2, 1])
    v = summary_pb2.Summary.Value(tag="weights/fc.weight", histo=h)
    return event_pb2.Event(wall_time=1700000002.0, step=12, summary=summary_pb2.Summary(value=[v]))


def main(path):
    buf = io.BytesIO()
    w = RecordWriter(buf)
    w.write(event_pb2.Event(wall_time=1700000000.25, file_version="brain.Event:2").SerializeToString())
    for tag, step, value in SCALARS:
        w.write(scalar_event(tag, step, value).SerializeToString())
    w.write(histo_event().SerializeToString())
    with open(path, "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/ref/tfevents_ref.bin")
