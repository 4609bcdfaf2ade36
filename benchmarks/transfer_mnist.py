#!/usr/bin/env python3
"""Transfer learning with `ctrain train --init-from --reset-head --freeze`:
fine-tuning a pretrained model against training from scratch on a small
subset of a new task (docs/tooling.md records a run). Accuracy, not time.

usage: transfer_mnist.py CTRAIN MNIST_DIR WORKDIR

Fashion-MNIST is not available here, so the two tasks are made from MNIST:
  A (pretraining): digits 0-4, the whole training set of them (~30,600);
  B (new task):    digits 5-9 relabelled 0-4; N training samples (N = 100,
                   500, 2000), tested on all ~4,860 test images of 5-9.
Both are written as IDX files in MNIST's layout, so both read as --data mnist
with the same normalisation. The model is the default MLP 784-512-256-10
(the MNIST loader declares 10 classes; labels 5-9 stay unused in both
tasks). For each N: from scratch; fine-tuning everything from A with a fresh
head (--reset-head); and training only the head (--freeze fc1.,fc2.), all
with the trainer's defaults (AdamW, lr 1e-3, cosine) for the same epochs;
and the head alone again with lr 1e-2 (a linear layer from scratch in few
steps wants a larger rate).
"""
import gzip
import os
import re
import struct
import subprocess
import sys

CTRAIN, MNIST, WORK = sys.argv[1:4]


def read(split):
    with gzip.open(os.path.join(MNIST, "%s-images-idx3-ubyte.gz" % split)) as f:
        head = f.read(16)
        n = struct.unpack(">IIII", head)[1]
        images = f.read()
    with gzip.open(os.path.join(MNIST, "%s-labels-idx1-ubyte.gz" % split)) as f:
        labels = f.read()[8:]
    return n, images, labels


def write_task(d, digits, shift):
    os.makedirs(d, exist_ok=True)
    for split in ("train", "t10k"):
        n, images, labels = read(split)
        keep = [i for i in range(n) if labels[i] in digits]
        with open(os.path.join(d, "%s-images-idx3-ubyte" % split), "wb") as f:
            f.write(struct.pack(">IIII", 0x803, len(keep), 28, 28))
            for i in keep:
                f.write(images[i * 784:(i + 1) * 784])
        with open(os.path.join(d, "%s-labels-idx1-ubyte" % split), "wb") as f:
            f.write(struct.pack(">II", 0x801, len(keep)))
            f.write(bytes(labels[i] - shift for i in keep))


def train(args):
    p = subprocess.run([CTRAIN, "train", "--quiet"] + args, capture_output=True, text=True, check=True)
    m = re.search(r"test accuracy ([0-9.]+)%", p.stdout)
    return float(m.group(1))


a, b = os.path.join(WORK, "digits0to4"), os.path.join(WORK, "digits5to9")
write_task(a, range(5), 0)
write_task(b, range(5, 10), 5)
pre = os.path.join(WORK, "pretrained.safetensors")
acc = train(["--data-dir", a, "--epochs", "3", "--save", pre])
print("pretrained on digits 0-4 (3 epochs): test accuracy %.2f%%" % acc)
print("| train samples of 5-9 | epochs | from scratch | fine-tune all | head only | head only, lr 1e-2 |")
print("|---:|---:|---:|---:|---:|---:|")
for n, epochs in ((100, 30), (500, 20), (2000, 10)):
    base = ["--data-dir", b, "--train-limit", str(n), "--epochs", str(epochs)]
    tune = base + ["--init-from", pre, "--reset-head"]
    head = tune + ["--freeze", "fc1.,fc2."]
    got = [train(base), train(tune), train(head), train(head + ["--lr", "1e-2"])]
    print("| %d | %d | " % (n, epochs) + " | ".join("%.2f%%" % v for v in got) + " |", flush=True)
