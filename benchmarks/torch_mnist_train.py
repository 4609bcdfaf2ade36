#!/usr/bin/env python3
"""The PyTorch twin of `ctrain train` with its defaults (what `make train`
runs; benchmarks/results/mnist_mlp_cpu.md):

    ctrain train            # = --data mnist --model mlp --hidden 512,256 --epochs 10
                            #   --batch-size 64 --optim adamw --lr 1e-3 --weight-decay 0.01
                            #   --schedule cosine (per step, to 0) --seed 1

so the two engines' epochs can be timed on the same machine in the same
run: MNIST's 60,000 training images scaled to [0, 1] and normalised with
mean 0.1307 / std 0.3081, an MLP 784-512-256-10 with ReLU and PyTorch's
default initialisation, AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight
decay 0.01 on the weight matrices only, as ctrain's default groups), the
learning rate on a cosine from 1e-3 to 0 over all the run's steps (updated
every step), batch 64 reshuffled every epoch (the last, partial batch of
each epoch kept, as ctrain does), cross-entropy loss, then the 10,000 test
images in batches of 1000.

The data are tensors in memory and each batch is an index into them: the
fastest plain eager PyTorch loop (no DataLoader workers), the fair twin of
ctrain's in-memory loader. Shuffling uses PyTorch's generator, so the runs
agree in distribution, not batch for batch.

    python3 benchmarks/torch_mnist_train.py [--data-dir ../shared/data/mnist]
        [--epochs N] [--threads N] [--compile] [--train-limit N] [--json FILE]

Prints one JSON line per epoch (training loss, the epoch's training seconds
of wall and of process CPU time, samples/s), then one with the test
accuracy and the totals. Timings include nothing but the training steps of
each epoch; compare them with the seconds per epoch of `ctrain train
--metrics FILE` (docs: benchmarks/README.md, "The default training job").
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    """An IDX file (gzip or not) as a uint8 tensor of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    sys.exit(f"error: {stem}[.gz] not found in {data_dir}")


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(find(data_dir, f"{prefix}-images-idx3-ubyte")).reshape(-1, 784).float() / 255.0
    y = read_idx(find(data_dir, f"{prefix}-labels-idx1-ubyte")).long()
    # subtract then divide, as ctrain (and torchvision's Normalize) do
    return (x - 0.1307) / 0.3081, y


def make_model():
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def make_optimizer(model, args):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)


@torch.no_grad()
def test(model, x, y):
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), 1000):
        logits = model(x[i:i + 1000])
        loss += F.cross_entropy(logits, y[i:i + 1000], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + 1000]).sum().item()
    model.train()
    return correct / len(x), loss / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data-dir", default=os.path.join(here, "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: PyTorch's own)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--train-limit", type=int, default=0, help="use only the first N training images (a smoke test)")
    ap.add_argument("--json", help="also append the JSON lines to this file")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x, y = load(args.data_dir, "train")
    if args.train_limit > 0:
        x, y = x[:args.train_limit], y[:args.train_limit]
    xt, yt = load(args.data_dir, "test")
    model = make_model()
    opt = make_optimizer(model, args)
    steps_per_epoch = math.ceil(len(x) / args.batch_size)
    total = steps_per_epoch * args.epochs
    # ctrain's cosine over the whole run, per step: lr at step s (0-based)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 + math.cos(math.pi * s / total)) / 2)
    step_fn = model
    if args.compile:
        step_fn = torch.compile(model)
    gen = torch.Generator().manual_seed(args.seed)
    out = open(args.json, "a") if args.json else None

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")

    emit({"engine": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
          "compile": args.compile, "epochs": args.epochs, "batch_size": args.batch_size,
          "steps_per_epoch": steps_per_epoch})
    wall0, cpu0 = time.perf_counter(), time.process_time()
    train_wall = train_cpu = 0.0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(x), generator=gen)
        t0, c0 = time.perf_counter(), time.process_time()
        loss_sum = 0.0
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.cross_entropy(step_fn(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
        loss_mean = (loss_sum / len(x)).item()  # the one sync per epoch
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        train_wall += wall
        train_cpu += cpu
        emit({"epoch": epoch, "train_loss": round(loss_mean, 6), "epoch_seconds": round(wall, 3),
              "epoch_cpu_seconds": round(cpu, 3), "samples_per_s": round(len(x) / wall, 1)})
    acc, test_loss = test(model, xt, yt)
    emit({"test_accuracy": acc, "test_loss": round(test_loss, 6), "train_seconds": round(train_wall, 3),
          "train_cpu_seconds": round(train_cpu, 3), "seconds_per_epoch": round(train_wall / args.epochs, 3),
          "wall_seconds": round(time.perf_counter() - wall0, 3),
          "cpu_seconds": round(time.process_time() - cpu0, 3)})
    if out:
        out.close()


if __name__ == "__main__":
    main()
