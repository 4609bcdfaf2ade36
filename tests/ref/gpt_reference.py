#!/usr/bin/env python3
"""Writes tests/ref/gpt_ref.safetensors: a small GPT's weights, a batch, and
PyTorch's logits, loss, gradients and the weights after three AdamW steps,
all in float64, for tests/test_gpt.c to compare ctrain's GPT against.

The model is nanoGPT's architecture (pre-LN blocks, causal SDPA, exact GELU,
LayerNorm eps 1e-5, biases, lm_head tied to wte), written out here with
torch.nn.functional so the reference depends on PyTorch alone. The AdamW
steps use nanoGPT's parameter groups: weight decay on tensors of two or more
dimensions, none on biases and LayerNorm weights.

Run it again only when the reference itself must change:
    python3 tests/ref/gpt_reference.py tests/ref/gpt_ref.safetensors
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

V, T, C, H, L, B = 11, 7, 8, 2, 2, 3
LR, BETAS, EPS, WD, STEPS = 1e-2, (0.9, 0.99), 1e-8, 0.1, 3


def make_params(gen):
    """nanoGPT's state_dict names, in its order, with random values (not the
    init: every weight, LayerNorm ones included, is exercised)."""
    shapes = [("transformer.wte.weight", (V, C)), ("transformer.wpe.weight", (T, C))]
    for i in range(L):
        p = f"transformer.h.{i}."
        shapes += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
                   (p + "attn.c_attn.weight", (3 * C, C)), (p + "attn.c_attn.bias", (3 * C,)),
                   (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
                   (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
                   (p + "mlp.c_fc.weight", (4 * C, C)), (p + "mlp.c_fc.bias", (4 * C,)),
                   (p + "mlp.c_proj.weight", (C, 4 * C)), (p + "mlp.c_proj.bias", (C,))]
    shapes += [("transformer.ln_f.weight", (C,)), ("transformer.ln_f.bias", (C,))]
    params = {}
    for name, shape in shapes:
        scale = 0.3 if len(shape) == 2 else 0.1
        v = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            v = v + 1.0
        params[name] = v.requires_grad_(True)
    return params


def forward(P, idx):
    b, t = idx.shape
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][torch.arange(t)]
    for i in range(L):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], 1e-5)
        qkv = F.linear(h, P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"])
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in qkv.split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, C)
        x = x + F.linear(y, P[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], 1e-5)
        h = F.gelu(F.linear(h, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"]))
        x = x + F.linear(h, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], 1e-5)
    return F.linear(x, P["transformer.wte.weight"])


def save(path, tensors):
    """safetensors, little-endian, by hand: the format is a JSON header and
    the raw bytes (no dependency beyond PyTorch)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dt = {torch.float64: "F64", torch.int32: "I32"}[t.dtype]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    gen = torch.Generator().manual_seed(20261206)
    P = make_params(gen)
    idx = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    tgt = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    out = {n: v.detach().clone() for n, v in P.items()}
    out["idx"] = idx.to(torch.int32)
    out["targets"] = tgt.to(torch.int32)
    logits = forward(P, idx)
    loss = F.cross_entropy(logits.view(-1, V), tgt.view(-1))
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for n, v in P.items():
        out["grad." + n] = v.grad.detach().clone()
    decay = [v for v in P.values() if v.dim() >= 2]
    no_decay = [v for v in P.values() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        l = F.cross_entropy(forward(P, idx).view(-1, V), tgt.view(-1))
        losses.append(l.item())
        l.backward()
        opt.step()
    out["step_losses"] = torch.tensor(losses, dtype=torch.float64)
    for n, v in P.items():
        out["after." + n] = v.detach().clone()
    save(sys.argv[1], out)
    print(f"loss {loss.item():.12f} (ln V = {math.log(V):.6f}), step losses {losses}")


if __name__ == "__main__":
    main()
