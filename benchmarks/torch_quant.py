#!/usr/bin/env python3
"""The PyTorch twin of `ctrain quantize` + `ctrain eval` on an int8 model.

Loads a ctrain MLP checkpoint (its tensors are a torch module's state_dict:
fc1.weight, fc1.bias, ...), quantizes it with PyTorch's eager-mode
post-training quantization under ctrain's scheme (weights int8 symmetric per
output channel in [-127, 127], each linear layer's input uint8 affine from
min/max over the first N training batches), and evaluates the int8 and the
F32 model on the MNIST test set with the same batch and the same timing rule
as `ctrain eval` (one untimed batch, then the batch loop on the monotonic
clock), printing lines in ctrain's format:

    python3 benchmarks/torch_quant.py --checkpoint mlp.safetensors [--calib-batches 10] [--batch-size 1000]

Differences that remain by design: PyTorch's quantized linear layers hand
the next layer quantized outputs (with an output scale observed after the
fused ReLU), ctrain dequantises every layer's output to F32 and quantizes
the next input with its own calibrated parameters; so accuracies may differ
by a few test images. Threads: torch.set_num_threads follows --threads
(default: torch's default), so compare with ctrain run under the same
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS.
"""

import argparse
import gzip
import json
import os
import struct
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from torch.ao.quantization import (DeQuantStub, MinMaxObserver, PerChannelMinMaxObserver, QConfig, QuantStub,
                                   convert, prepare)

MEAN, STD = 0.1307, 0.3081


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist(directory, train):
    prefix = "train" if train else "t10k"
    x = idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.from_numpy(((x - MEAN) / STD).reshape(len(x), -1)), torch.from_numpy(y)


class MLP(nn.Module):
    """ctrain's MLP: fc1..fcL with ReLU between (no batch norm, no dropout at evaluation)."""

    def __init__(self, sizes):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.names = [f"fc{i + 1}" for i in range(len(sizes) - 1)]
        for name, (a, b) in zip(self.names, zip(sizes[:-1], sizes[1:])):
            setattr(self, name, nn.Linear(a, b))
            if name != self.names[-1]:
                setattr(self, "relu" + name[2:], nn.ReLU())

    def forward(self, x):
        x = self.quant(x)
        for name in self.names:
            x = getattr(self, name)(x)
            if name != self.names[-1]:
                x = getattr(self, "relu" + name[2:])(x)
        return self.dequant(x)


def load(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        model = json.loads(meta.get("cli.model", '{"model": "mlp"}'))
        if model.get("model") != "mlp" or model.get("batchnorm") or model.get("activation", "relu") != "relu":
            raise SystemExit("torch_quant.py: the twin covers ctrain's ReLU MLP without batch norm")
        sizes = [f.get_tensor("fc1.weight").shape[1]] + list(model["hidden"]) + [model["classes"]]
        state = {k: f.get_tensor(k) for k in f.keys() if k.startswith("fc")}
    m = MLP(sizes)
    m.load_state_dict(state)
    return m.eval()


def evaluate(model, x, y, batch):
    with torch.no_grad():
        model(x[:batch])  # untimed, as ctrain eval
        correct, loss, t0 = 0, 0.0, time.perf_counter()
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch])
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
            loss += nn.functional.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        seconds = time.perf_counter() - t0
    return correct, loss / len(x), seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--calib-batches", type=int, default=10)
    ap.add_argument("--calib-batch-size", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")  # torch.ao's eager-mode deprecation notices
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.quantized.engine = "fbgemm"
    f32 = load(a.checkpoint)
    q = load(a.checkpoint)
    q.qconfig = QConfig(
        activation=MinMaxObserver.with_args(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False),
        weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                  quant_min=-127, quant_max=127))
    prepare(q, inplace=True)
    xt, _ = mnist(a.data_dir, True)
    with torch.no_grad():
        for k in range(a.calib_batches):
            q(xt[k * a.calib_batch_size:(k + 1) * a.calib_batch_size])
    convert(q, inplace=True)
    x, y = mnist(a.data_dir, False)
    for what, model in (("int8", q), ("f32", f32)):
        c, l, s = evaluate(model, x, y, a.batch_size)
        print(f"{what:<5} accuracy {100 * c / len(x):.2f}% ({c}/{len(x)})  loss {l:.4f}  {len(x) / s:.0f} samples/s  "
              f"(torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch_size})")


if __name__ == "__main__":
    main()
