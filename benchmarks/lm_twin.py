"""What the character-level PyTorch twins of `ctrain train` share
(torch_babygpt.py, torch_lstm_char.py): the learning rate of a step (linear
warmup, then cosine to eta_min, as ctrain's --warmup with the cosine
schedule), a batch of windows, and the validation loss over fixed batches.
"""
import math

import torch
import torch.nn.functional as F


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t_max = max(1, args.steps - args.warmup)
    return args.eta_min + (args.lr - args.eta_min) * (1 + math.cos(math.pi * (step - args.warmup) / t_max)) / 2


def batch(data, starts, T):
    x = torch.stack([data[s:s + T] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + T + 1] for s in starts.tolist()])
    return x, y


@torch.no_grad()
def evaluate(model, val, eval_starts, T, V):
    model.eval()
    total = 0.0
    for starts in eval_starts:
        x, y = batch(val, starts, T)
        total += F.cross_entropy(model(x).view(-1, V), y.view(-1)).item()
    model.train()
    return total / len(eval_starts)
