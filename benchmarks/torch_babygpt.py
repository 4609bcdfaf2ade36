#!/usr/bin/env python3
"""The PyTorch twin of the language-model target run: the 4-layer, 4-head,
128-wide character GPT on Tiny Shakespeare with the settings of

    ctrain train --data text --train-file input.txt --model gpt --n-layer 4 --n-head 4 --n-embd 128
        --block-size 64 --batch-size 12 --steps 2000 --lr 1e-3 --betas 0.9,0.99 --weight-decay 0.1
        --warmup 100 --eta-min 1e-4 --clip-norm 1.0 --eval-every 250

so the two engines' validation losses and tokens/s can be compared on the
same machine: the same model (benchmarks/torch_gpt.py), data split (first
90% of the characters, nanoGPT's), vocabulary, AdamW groups (decay on
matrices and embeddings), learning rate (linear warmup over 100 steps from
lr/100, then cosine to 1e-4 over the remaining steps, as ctrain's trainer),
clipping, and validation (the mean cross-entropy per token over 50 fixed
batches of 12 windows). The windows are drawn uniformly as ctrain's are,
from PyTorch's generator rather than Philox, so the runs agree in
distribution, not batch for batch.

    python3 benchmarks/torch_babygpt.py ../shared/data/tinyshakespeare/input.txt [--steps N] [--threads N]

Prints one JSON line per evaluation and a summary line with wall and CPU
seconds.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lm_twin import batch, evaluate, lr_at  # noqa: E402
from torch_gpt import make_gpt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eta-min", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = open(args.text, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = int(len(ids) * 0.9)
    train, val = ids[:n], ids[n:]
    V, T, B = len(chars), args.block_size, args.batch_size
    model = make_gpt(torch, (4, 4, 128, T, V))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(args.seed + 1)
    eval_starts = [torch.randint(0, len(val) - T, (B,), generator=gen) for _ in range(args.eval_batches)]
    wall0, cpu0, eval_s = time.perf_counter(), time.process_time(), 0.0
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        x, y = batch(train, torch.randint(0, len(train) - T, (B,), generator=gen), T)
        loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        if done % args.eval_every == 0 or done == args.steps:
            e0 = time.perf_counter()
            vl = evaluate(model, val, eval_starts, T, V)
            eval_s += time.perf_counter() - e0
            print(json.dumps({"step": done, "train_loss": loss.item(), "val_loss": vl}), flush=True)
    # training time as ctrain reports it: evaluation excluded
    wall, cpu = time.perf_counter() - wall0 - eval_s, time.process_time() - cpu0
    print(json.dumps({"summary": True, "steps": args.steps, "wall_s": wall, "cpu_s": cpu,
                      "tokens_per_s": args.steps * B * T / wall, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
