#!/usr/bin/env python3
"""Checks `ctrain predict` (CTest runs it).

usage: predict_check.py CTRAIN WORKDIR [MNIST_DIR]

csv:   a small MLP trained on a CSV file; its predictions on new rows equal
       the probabilities computed here in double precision from the
       checkpoint's own tensors and normalisation record (read from the
       safetensors file directly), to float precision; --top-k gives the same
       values, most probable first.
bad:   an input of another width, a line that is no number, an unreadable
       input, an --out that cannot be written: one line each, exit 1, and
       an existing --out is left as it was.
mnist: (with MNIST_DIR) the classes predicted for the gzipped IDX test
       images agree with `ctrain eval`'s accuracy on the same checkpoint.
gpt, lstm: tiny character models: the most probable next token is the one
       `ctrain generate --temperature 0` picks, and the probabilities of
       every token sum to 1.
"""
import gzip
import json
import math
import os
import random
import struct
import subprocess
import sys

CTRAIN, WORK = sys.argv[1], sys.argv[2]
MNIST = sys.argv[3] if len(sys.argv) > 3 else None
os.makedirs(WORK, exist_ok=True)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def ctrain(args, rc=0):
    p = subprocess.run([CTRAIN] + args, capture_output=True, text=True)
    print("$ ctrain " + " ".join(args) + "\n" + p.stdout + p.stderr)
    if p.returncode != rc:
        fail("exit %d, wanted %d" % (p.returncode, rc))
    return p


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = (v["shape"], struct.unpack("<%df" % ((b - a) // 4), data[a:b]))
    return out, header.get("__metadata__", {})


def path(name):
    return os.path.join(WORK, name)


def rows(p):
    with open(p) as f:
        return [l.split(",") for l in f.read().splitlines()]


def check_csv():
    rng = random.Random(5)
    with open(path("train.csv"), "w") as f:
        for i in range(120):
            c = i % 3
            x = [rng.gauss(2.0 * c, 1.0), rng.gauss(-c, 0.5) * 10, rng.gauss(100.0, 5.0)]
            f.write("%s,%d\n" % (",".join("%.4f" % v for v in x), c))
    new = [[rng.uniform(-1, 5), rng.uniform(-30, 10), rng.uniform(90, 110)] for _ in range(37)]
    with open(path("new.csv"), "w") as f:
        f.write("a,b,c\n")
        for x in new:
            f.write(",".join("%.6f" % v for v in x) + "\n")
    ckpt = path("csv.safetensors")
    ctrain(["train", "--data", "csv", "--train-file", path("train.csv"), "--hidden", "5", "--epochs", "20",
            "--batch-size", "16", "--lr", "0.01", "--save", ckpt, "--quiet"])
    ctrain(["predict", "--checkpoint", ckpt, "--input", path("new.csv"), "--out", path("pred.csv"),
            "--batch-size", "16"])
    t, meta = safetensors(ckpt)
    norm = json.loads(meta["cli.normalize"])
    (w1s, w1), (_, b1), (w2s, w2), (_, b2) = t["fc1.weight"], t["fc1.bias"], t["fc2.weight"], t["fc2.bias"]
    got = rows(path("pred.csv"))
    if got[0] != ["sample", "class", "p0", "p1", "p2"] or len(got) != 1 + len(new):
        fail("want a header and %d rows, got %s" % (len(new), got[:2]))
    worst = 0.0
    for i, x in enumerate(new):
        x = [(float("%.6f" % v) - m) / s for v, m, s in zip(x, norm["mean"], norm["std"])]
        h = [max(0.0, b1[j] + sum(w1[j * w1s[1] + k] * x[k] for k in range(3))) for j in range(w1s[0])]
        z = [b2[c] + sum(w2[c * w2s[1] + j] * h[j] for j in range(w2s[1])) for c in range(w2s[0])]
        e = [math.exp(v - max(z)) for v in z]
        p = [v / sum(e) for v in e]
        row = got[1 + i]
        if int(row[0]) != i or int(row[1]) != max(range(3), key=lambda c: (z[c], -c)):
            fail("row %d: class %s, want %d" % (i, row[1], max(range(3), key=lambda c: z[c])))
        worst = max(worst, max(abs(float(row[2 + c]) - p[c]) for c in range(3)))
    if worst > 2e-6:
        fail("probabilities differ from the reference by %g" % worst)
    print("csv: %d rows, largest difference from the reference %.2g" % (len(new), worst))
    ctrain(["predict", "--checkpoint", ckpt, "--input", path("new.csv"), "--out", path("top.csv"), "--top-k", "2"])
    top = rows(path("top.csv"))
    if top[0] != ["sample", "class", "top1", "p_top1", "top2", "p_top2"]:
        fail("top-k header: %s" % top[0])
    for full, t2 in zip(got[1:], top[1:]):
        probs = [float(v) for v in full[2:]]
        order = sorted(range(3), key=lambda c: (-probs[c], c))[:2]
        if [int(t2[2]), int(t2[4])] != order or [float(t2[3]), float(t2[5])] != [probs[c] for c in order]:
            fail("top-k row %s does not match %s" % (t2, full))
    return ckpt


def check_bad(ckpt):
    with open(path("keep.csv"), "w") as f:
        f.write("precious\n")
    with open(path("wide.csv"), "w") as f:
        f.write("1,2,3,4\n")
    with open(path("word.csv"), "w") as f:
        f.write("1,2,3\n1,x,3\n")
    cases = [(["--input", path("wide.csv"), "--out", path("keep.csv")], "samples of 4 values, the model of"),
             (["--input", path("word.csv"), "--out", path("keep.csv")], "line 2, column 2 is not a finite number"),
             (["--input", path("missing.csv"), "--out", path("keep.csv")], "missing.csv': No such file"),
             (["--input", path("new.csv"), "--out", path("no/such/dir/p.csv")], "--out '.*no/such/dir/p.csv'")]
    for args, want in cases:
        p = ctrain(["predict", "--checkpoint", ckpt] + args, rc=1)
        lines = p.stderr.strip().splitlines()
        import re
        if len(lines) != 1 or not re.search(want, lines[0]):
            fail("want one line matching '%s', got %s" % (want, lines))
    with open(path("keep.csv")) as f:
        if f.read() != "precious\n":
            fail("a failed predict changed --out")
    if [n for n in os.listdir(WORK) if ".tmp-" in n]:
        fail("a temporary file was left behind")


def check_mnist():
    ckpt = path("mnist.safetensors")
    ctrain(["train", "--train-limit", "1000", "--test-limit", "100", "--epochs", "1", "--hidden", "32",
            "--save", ckpt, "--quiet"])
    images = os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")
    ctrain(["predict", "--checkpoint", ckpt, "--input", images, "--out", path("mnist.csv"), "--top-k", "1"])
    with gzip.open(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = f.read()[8:]
    got = rows(path("mnist.csv"))[1:]
    correct = sum(int(r[1]) == labels[i] for i, r in enumerate(got))
    p = ctrain(["eval", "--checkpoint", ckpt])
    if "(%d/10000)" % correct not in p.stdout:
        fail("predict got %d of 10000 right, eval says %s" % (correct, p.stdout))


def check_lm(name, model_flags):
    with open(path("tiny.txt"), "w") as f:
        f.write("the quick brown fox jumps over the lazy dog. " * 30)
    ckpt = path(name + ".safetensors")
    ctrain(["train", "--data", "text", "--train-file", path("tiny.txt")] + model_flags +
           ["--block-size", "8", "--steps", "30", "--batch-size", "8", "--lr", "0.01", "--save", ckpt, "--quiet"])
    ctrain(["predict", "--checkpoint", ckpt, "--prompt", "the qu", "--out", path("next.csv"), "--top-k", "28"])
    with open(path("next.csv")) as f:
        lines = f.read().splitlines()
    probs = [float(l.rsplit(",", 1)[1]) for l in lines[1:]]
    if lines[0] != "rank,token,text,probability" or abs(sum(probs) - 1) > 1e-5 or probs != sorted(probs)[::-1]:
        fail("want every token once, most probable first, summing to 1: %s" % lines[:4])
    greedy = ctrain(["generate", "--checkpoint", ckpt, "--prompt", "the qu", "--tokens", "1", "--temperature", "0"])
    first = lines[1].split(",", 2)[2].rsplit(",", 1)[0].strip('"')
    if greedy.stdout.rstrip("\n") != "the qu" + first:
        fail("generate picks %r, predict ranks %r first" % (greedy.stdout, first))


ckpt = check_csv()
check_bad(ckpt)
if MNIST:
    check_mnist()
check_lm("gpt", ["--n-layer", "1", "--n-head", "2", "--n-embd", "16"])
check_lm("lstm", ["--model", "lstm", "--hidden-size", "16", "--num-layers", "1"])
print("ok")
