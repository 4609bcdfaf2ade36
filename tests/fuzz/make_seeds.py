#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/seeds/<harness>/: a few tiny valid
files of each format (and a few near misses), so that the fuzzers start
from inputs that reach deep into each parser. Run from anywhere:

    tests/fuzz/make_seeds.py [BUILD_DIR]

With BUILD_DIR (a -DCTRAIN_FUZZ=ON build), the checkpoint seed is written
by fuzz_checkpoint itself (CTRAIN_FUZZ_MKSEED), trained with the options
it resumes with; without it that seed is left as it is. The files are
committed; rerun only when a format changes.
"""
import gzip
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")


def put(harness, name, data):
    d = os.path.join(SEEDS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def gz(data):
    return gzip.compress(data, mtime=0)


def idx_images(count, rows, cols):
    px = bytes((i * 37 + 11) % 256 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + px


def idx_labels(count, classes=3):
    return struct.pack(">II", 0x801, count) + bytes(i % classes for i in range(count))


def idx_seeds():
    # fuzz_idx: 2 bytes (little-endian) = the image file's length, then both files.
    for name, (n, r, c) in {"tiny": (2, 2, 2), "rect": (3, 1, 4), "one": (1, 3, 3)}.items():
        img, lab = idx_images(n, r, c), idx_labels(n)
        put("idx", name, struct.pack("<H", len(img)) + img + lab)
        gimg = gz(img)
        put("idx", name + "_gz", struct.pack("<H", len(gimg)) + gimg + gz(lab))
    img = idx_images(2, 2, 2)
    put("idx", "short", struct.pack("<H", len(img) - 1) + img[:-1] + idx_labels(2))
    # fuzz_idx_gz: the same split, compressed by the harness.
    for name, (n, r, c) in {"tiny": (2, 2, 2), "one": (1, 3, 3)}.items():
        img, lab = idx_images(n, r, c), idx_labels(n)
        put("idx_gz", name, struct.pack("<H", len(img)) + img + lab + b"\x00")


def csv_seeds():
    # fuzz_csv: 1 byte of options (0: defaults), then the file.
    put("csv", "header", b"\x00a,b,label\n0.5,1,0\n-2e3,3.25,1\n7,8,2\n")
    put("csv", "plain", b"\x08" + b"1,2,0\n3,4,1\r\n\n5,6,1\n")
    put("csv", "quoted", b"\x00\"x\", \"y\" ,z\n\"1.5\", 2 ,3.0\n4,5,0\n")
    put("csv", "tab", b"\x10f1\tf2\tc\n1\t2\t1\n3\t4\t0\n")
    put("csv", "first_label", b"\x05" + b"0,1.0,2.0\n2,3.0,4.0\n")
    put("csv", "gz", b"\x00" + gz(b"a,b\n1,0\n2,1\n"))


def cifar_seeds():
    # fuzz_cifar: 2 bytes = the first file's length, then one or two files.
    def rec(label, k):
        return bytes([label]) + bytes((i * k + label) % 256 for i in range(3072))
    one, two = rec(3, 7), rec(9, 13) + rec(0, 5)
    put("cifar", "one", struct.pack("<H", len(one)) + one)
    put("cifar", "two_files", struct.pack("<H", len(one)) + one + two)
    g = gz(one)
    put("cifar", "gz", struct.pack("<H", len(g)) + g)


def safetensors(tensors, meta=None):
    """tensors: (name, dtype, shape, raw bytes); laid out in the order given."""
    header, blob = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, -2, 0.5, 3, 1e-3, -7)
    put("safetensors", "f32", safetensors([("w", "F32", [2, 3], f32), ("b", "F32", [3], f32[:12])],
                                          {"format": "pt"}))
    put("safetensors", "mixed", safetensors([
        ("d", "F64", [2], struct.pack("<2d", 1.5, -2.25)),
        ("h", "F16", [2], struct.pack("<2H", 0x3C00, 0xC000)),
        ("bf", "BF16", [1, 2], struct.pack("<2H", 0x3F80, 0x7F80)),
        ("i", "I64", [2], struct.pack("<2q", 5, -1)),
        ("u", "U8", [3], b"\x01\x02\xff"),
        ("i32", "I32", [1], struct.pack("<i", 7)),
        ("ok", "BOOL", [2], b"\x00\x01"),
        ("s", "F32", [], struct.pack("<f", 2.0)),
        ("e", "F32", [0, 4], b""),
    ]))
    put("safetensors", "empty", safetensors([], {"a": "b"}))


def config_seeds():
    put("config", "basic", json.dumps({"lr": 0.01, "hidden": [64, 32], "epochs": 2, "nesterov": False}))
    put("config", "sgd", json.dumps({"optimizer": "sgd", "momentum": 0.9, "nesterov": True,
                                     "schedule": "onecycle", "batch-size": 32, "seed": 5}))
    put("config", "lm", json.dumps({"data": "text", "model": "gpt", "n-layer": 2, "block-size": 16,
                                    "precision": "bf16", "device": "cpu", "augment": "none"}))
    put("config", "images", json.dumps({"data": "cifar10", "model": "cnn", "augment": "crop,flip",
                                        "crop-pad": 2, "save": "x.safetensors", "save-every": 1,
                                        "betas": [0.8, 0.99], "quiet": True, "early-stop": 3,
                                        "val-split": 0.1}))
    put("config", "bad", b'{"lr": -1, "bogus": null}')


def text_seeds():
    put("text_vocab", "ascii", b"First Citizen:\nBefore we proceed any further, hear me speak.\n")
    put("text_vocab", "utf8", "na\u00efve \u00e9t\u00e9 \u2014 \u65e5\u672c \U0001F600\r\n".encode())
    put("text_vocab", "nul", b"a\x00b\x00a")
    put("vocab_json", "ascii", b"[10,32,33,65,97]")
    put("vocab_json", "spaces", b" [ 0 , 233 ,\n 65535, 1114111 ] ")
    put("vocab_json", "one", b"[128512]")


def tokens_file(ids):
    header = [20240520, 1, len(ids)] + [0] * 253
    return struct.pack("<256i", *header) + struct.pack("<%dH" % len(ids), *ids)


def tokens_seeds():
    # fuzz_tokens: 1 byte picks the vocabulary size (0: GPT-2's), then the file.
    put("tokens", "gpt2", b"\x00" + tokens_file([50256, 15496, 11, 995, 0]))
    put("tokens", "small", b"\x03" + tokens_file([1, 2, 3, 4, 5, 6, 0, 1]))
    put("tokens", "gz", b"\x01" + gz(tokens_file([65, 66, 67, 10])))
    put("tokens", "text", b"\x00To be, or not to be\n")


def checkpoint_seed(build):
    exe = os.path.join(build, "tests", "fuzz", "fuzz_checkpoint")
    d = os.path.join(SEEDS, "checkpoint")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, "tiny_mlp")
    env = dict(os.environ, CTRAIN_FUZZ_MKSEED=out, OMP_NUM_THREADS="1")
    subprocess.run([exe], env=env, check=True)
    with open(out, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    # A bare weights file of the same model (what --init-from takes).
    weights = [(k, v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
               for k, v in header.items() if k.startswith("fc")]
    put("checkpoint", "weights_only", safetensors(weights, {"format": "pt"}))


def main():
    idx_seeds()
    csv_seeds()
    cifar_seeds()
    safetensors_seeds()
    config_seeds()
    text_seeds()
    tokens_seeds()
    if len(sys.argv) > 1:
        checkpoint_seed(sys.argv[1])


if __name__ == "__main__":
    main()
