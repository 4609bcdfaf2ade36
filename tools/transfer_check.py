#!/usr/bin/env python3
"""Checks `ctrain train --init-from F --reset-head --freeze ...` (CTest runs it).

usage: transfer_check.py CTRAIN MNIST_DIR WORKDIR

A 10-class MNIST model is the pretrained one; the new task is digits 5-9 of
MNIST's test set relabelled 0-4 (5 classes, written as CSV), so the head's
shape differs and only --reset-head can load the rest. Checked:
  * without --reset-head: one line naming the mismatched tensor, exit 1;
  * the header says what loaded, what was re-initialised and what is frozen;
  * frozen parameters (fc1) are bit-identical to the pretrained ones after
    training, trained ones (fc2) are not;
  * the head is freshly initialised: frozen too, it equals the head of a
    from-scratch model of the same seed, bit for bit, and the loaded layers
    are the pretrained ones rather than that model's.
The safetensors files are read here directly (8-byte header size, JSON
header, raw data), so the check needs nothing outside Python.
"""
import gzip
import json
import os
import struct
import subprocess
import sys

CTRAIN, MNIST, WORK = sys.argv[1:4]
os.makedirs(WORK, exist_ok=True)
HIDDEN = ["--hidden", "64,32"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(args, rc=0):
    p = subprocess.run([CTRAIN, "train"] + args, capture_output=True, text=True)
    print("$ ctrain train " + " ".join(args) + "\n" + p.stdout + p.stderr)
    if p.returncode != rc:
        fail("exit %d, wanted %d" % (p.returncode, rc))
    return p


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return {k: (v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def write_task_csv(path, limit):
    with gzip.open(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")) as f:
        _, n, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(n * rows * cols)
    with gzip.open(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = f.read(n)
    k = 0
    with open(path, "w") as out:
        for i in range(n):
            if labels[i] >= 5 and k < limit:
                out.write(",".join(map(str, pixels[i * 784:(i + 1) * 784])) + ",%d\n" % (labels[i] - 5))
                k += 1


base = os.path.join(WORK, "base.safetensors")
task = os.path.join(WORK, "digits5to9.csv")
write_task_csv(task, 300)
run(["--train-limit", "1000", "--test-limit", "200", "--epochs", "1", "--save", base, "--quiet"] + HIDDEN)
new = ["--data", "csv", "--train-file", task, "--epochs", "2", "--seed", "7"] + HIDDEN

p = run(new + ["--init-from", base], rc=1)
if "fc3.weight" not in p.stderr or "--reset-head" not in p.stderr or len(p.stderr.strip().splitlines()) != 1:
    fail("a head of another shape should be one line naming it and --reset-head")

tuned = os.path.join(WORK, "tuned.safetensors")
p = run(new + ["--init-from", base, "--reset-head", "--freeze", "fc1.", "--save", tuned])
for want in ("initialised 4 of 6 tensors from %s; re-initialised the head fc3 (2 parameters)" % base,
             "frozen: fc1 (2 of 6 parameters)", "784-64-32-5"):
    if want not in p.stdout:
        fail("the header should say '%s'" % want)
b, t = tensors(base), tensors(tuned)
for name in ("fc1.weight", "fc1.bias"):
    if t[name] != b[name]:
        fail("%s is frozen but changed" % name)
for name in ("fc2.weight", "fc2.bias"):
    if t[name][1] == b[name][1]:
        fail("%s should have trained" % name)
if b["fc3.weight"][0] != [10, 32] or t["fc3.weight"][0] != [5, 32]:
    fail("the head should go from 10 to 5 classes")

# The head frozen as well: it stays as initialised, which a from-scratch
# model of the same seed shows.
head = os.path.join(WORK, "head.safetensors")
scratch = os.path.join(WORK, "scratch.safetensors")
run(new + ["--init-from", base, "--reset-head", "--freeze", "fc3.", "--save", head, "--quiet"])
run(new + ["--freeze", "fc3.", "--save", scratch, "--quiet"])
h, s = tensors(head), tensors(scratch)
for name in ("fc3.weight", "fc3.bias"):
    if h[name] != s[name]:
        fail("%s should be the fresh initialisation of seed 7" % name)
if h["fc1.weight"][1] == s["fc1.weight"][1]:
    fail("fc1 should come from the pretrained model, not the fresh one")
print("ok")
