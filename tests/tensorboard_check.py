#!/usr/bin/env python3
"""Reads the TensorBoard event file of a real `ctrain train --tensorboard`
run with TensorBoard's own reader and checks that it holds exactly the
values of the run's --metrics file: the same tags, steps and values, each
value the float32 rounding of the JSON number, to the bit.

    tensorboard_check.py CASE OUT_DIR CTRAIN [DATA_DIR] [-- LAUNCHER...]

CASE: mnist (a short MNIST run with validation every 20 steps, clipping and
weight histograms), mnist-epoch (one whole MNIST epoch: the issue's target,
slow on a CPU), fp16 (train/loss_scale), lm (a tiny character GPT: val/loss,
tokens/s), mpi (the launcher after "--" starts 2 ranks: one file, rank 0's).
Prints "SKIPPED: ..." and exits 0 when the tensorboard module is missing
(CTest counts that as skipped); CI installs it (.ci/run).
"""
import glob
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader, RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util
except ImportError as e:
    print(f"SKIPPED: the tensorboard Python module is missing ({e}); pip install tensorboard")
    sys.exit(0)

# metrics key -> tag, in the order ctrain writes a line's values
TAGS = [("train_loss", "train/loss"), ("lr", "train/lr"), ("samples_per_s", "train/samples_per_s"),
        ("tokens_per_s", "train/tokens_per_s"), ("grad_norm", "train/grad_norm"),
        ("loss_scale", "train/loss_scale"), ("val_loss", "val/loss"), ("val_acc", "val/accuracy"),
        ("test_loss", "test/loss"), ("test_acc", "test/accuracy")]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def expected(metrics_path, scaled):
    """Per tag, the (step, float32 bits) the event file must hold: every
    non-null value of every line, except one equal (step and float) to the
    last one written for its tag. loss_scale only with loss scaling."""
    want, last = {}, {}
    with open(metrics_path) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    if not lines:
        fail(f"{metrics_path} is empty")
    for line in lines:
        for key, tag in TAGS:
            v = line.get(key)
            if v is None or (key == "loss_scale" and not scaled):
                continue
            item = (int(line["step"]), f32_bits(float(v)))
            if last.get(tag) == item:
                continue
            last[tag] = item
            want.setdefault(tag, []).append(item)
    return want, lines


def read_events(path):
    """Per tag, (step, float32 bits) in file order, through EventFileLoader
    (which turns simple_value into a scalar tensor, as TensorBoard shows it);
    the raw records are checked to carry simple_value."""
    got, first = {}, None
    for ev in EventFileLoader(path).Load():
        if first is None:
            first = ev
            continue
        for v in ev.summary.value:
            if v.tag.startswith("weights/"):
                continue
            x = tensor_util.make_ndarray(v.tensor)
            if x.dtype.name != "float32" or x.shape != ():
                fail(f"{v.tag} at step {ev.step} is a {x.dtype} {x.shape}, not a float32 scalar")
            got.setdefault(v.tag, []).append((ev.step, f32_bits(float(x))))
    if first is None or first.file_version != "brain.Event:2":
        fail(f"the first event is not file_version brain.Event:2: {first}")
    for raw in RawEventFileLoader(path).Load():
        ev = event_pb2.Event.FromString(raw)
        for v in ev.summary.value:
            kind = v.WhichOneof("value")
            if kind != ("histo" if v.tag.startswith("weights/") else "simple_value"):
                fail(f"{v.tag}: stored as {kind}")
    return got


def compare(want, got):
    if set(want) != set(got):
        fail(f"tags differ: metrics {sorted(want)}, events {sorted(got)}")
    n = 0
    for tag in want:
        if want[tag] != got[tag]:
            fail(f"{tag}: metrics {want[tag]}\n  events {got[tag]}")
        n += len(want[tag])
    return n


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    print(r.stdout[-3000:])
    if r.returncode != 0:
        fail(f"exit {r.returncode}")


def check_run(out, cmd, scaled=False, must_have=(), env=None):
    tb, metrics = os.path.join(out, "tb"), os.path.join(out, "metrics.jsonl")
    shutil.rmtree(out, ignore_errors=True)
    run(cmd + ["--metrics", metrics, "--tensorboard", tb], env)
    files = glob.glob(os.path.join(tb, "*"))
    if len(files) != 1:
        fail(f"{len(files)} files in {tb}, wanted one event file: {files}")
    if not re.fullmatch(r"events\.out\.tfevents\.\d{10}\.[^/]+", os.path.basename(files[0])):
        fail(f"file name {files[0]}")
    want, lines = expected(metrics, scaled)
    got = read_events(files[0])
    n = compare(want, got)
    for tag in must_have:
        if tag not in got:
            fail(f"no {tag} in the event file")
    print(f"ok: {len(lines)} metrics lines, {n} scalars under {len(got)} tags equal to the bit of a float32")
    return files[0], lines


def check_histograms(path, lines, names):
    acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.HISTOGRAMS: 0})
    acc.Reload()
    epochs = [l["step"] for l in lines if l["event"] == "epoch"]
    for name, numel in names:
        hs = acc.Histograms("weights/" + name)
        if [h.step for h in hs] != epochs:
            fail(f"weights/{name}: histograms at steps {[h.step for h in hs]}, epochs end at {epochs}")
        for h in hs:
            v = h.histogram_value
            if v.num != numel or not v.min < v.max or sum(v.bucket) != numel:
                fail(f"weights/{name} at step {h.step}: num {v.num}, min {v.min}, max {v.max}, buckets {sum(v.bucket)}")
    print(f"ok: histograms of {len(names)} weights at every epoch end, each counting every element")


def main():
    argv = sys.argv[1:]
    launcher = []
    if "--" in argv:
        launcher = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    case, out, ctrain = argv[:3]
    data = argv[3] if len(argv) > 3 else None
    mnist = ["train", "--device", "cpu", "--quiet"]
    if case == "mnist":
        path, lines = check_run(out, [ctrain] + mnist + ["--train-limit", "3000", "--test-limit", "1000",
                                "--val-split", "0.1", "--epochs", "2", "--eval-every", "20", "--clip-norm", "1",
                                "--tensorboard-histograms", "1"],
                                must_have=["train/loss", "train/lr", "train/samples_per_s", "train/grad_norm",
                                           "val/loss", "val/accuracy", "test/loss", "test/accuracy"])
        check_histograms(path, lines, [("fc1.weight", 784 * 512), ("fc1.bias", 512), ("fc3.weight", 256 * 10)])
    elif case == "mnist-epoch":
        check_run(out, [ctrain] + mnist + ["--epochs", "1", "--val-split", "0.1"],
                  must_have=["train/loss", "val/loss", "test/accuracy"])
    elif case == "fp16":
        check_run(out, [ctrain] + mnist + ["--train-limit", "1000", "--test-limit", "500", "--steps", "30",
                                           "--eval-every", "10", "--val-split", "0.1", "--precision", "fp16"],
                  scaled=True, must_have=["train/loss_scale"])
    elif case == "lm":
        os.makedirs(out, exist_ok=True)
        text = os.path.join(os.path.dirname(out.rstrip("/")), "tb_tiny.txt")
        with open(text, "w") as f:
            f.write("hello world, this is a tiny text for a tiny model.\n" * 40)
        check_run(out, [ctrain, "train", "--data", "text", "--train-file", text, "--n-layer", "1", "--n-head", "2",
                        "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--eval-batches", "4",
                        "--device", "cpu", "--steps", "25", "--eval-every", "10", "--quiet"],
                  must_have=["train/loss", "train/tokens_per_s", "val/loss"])
    elif case == "mpi":
        if not launcher or not data:
            fail("mpi needs DATA_DIR and the launcher after --")
        check_run(out, launcher + [ctrain, "train", "--data-dir", data, "--hidden", "16", "--epochs", "2",
                                   "--batch-size", "16", "--optim", "sgd", "--lr", "0.05", "--no-prefetch",
                                   "--quiet", "--val-split", "0.2"],
                  must_have=["train/loss", "val/loss", "test/accuracy"])
    else:
        fail(f"unknown case {case}")


if __name__ == "__main__":
    main()
