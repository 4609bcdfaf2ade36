#!/usr/bin/env python3
"""Writes tests/ref/rnn_ref.safetensors: small torch.nn.RNN / LSTM / GRU
models in float64 (PyTorch's own modules, their own random initialisation
under a fixed seed), an input, initial states, and PyTorch's outputs,
final states and every gradient of
    loss = sum(y * Ry) + sum(h_n * Rh) [+ sum(c_n * Rc)]
(R* fixed random weights, so no gradient is all ones), for
tests/test_rnn_reference.c to compare ctrain's layers against.

Each case's tensors are "<case>.<what>": x, h0, c0 (where used), Ry, Rh,
Rc, y, h_n, c_n, the parameters under their state_dict names
("<case>.weight_ih_l0", ...), and the gradients "<case>.grad.<name>" of
every parameter and of x, h0 and c0.

Run it again only when the reference itself must change:
    python3 tests/ref/rnn_reference.py tests/ref/rnn_ref.safetensors
"""
import sys

import torch
from safetensors.torch import save_file

# name: (module, nonlinearity, input, hidden, layers, bidirectional,
#        batch_first, bias, T, B, with initial states)
CASES = {
    "lstm": ("LSTM", None, 3, 4, 2, True, False, True, 5, 3, True),
    "gru": ("GRU", None, 3, 4, 2, True, True, True, 4, 2, False),
    "rnn_tanh": ("RNN", "tanh", 3, 4, 1, False, False, True, 6, 2, True),
    "rnn_relu": ("RNN", "relu", 2, 5, 2, False, True, True, 3, 3, True),
    "gru_nobias": ("GRU", None, 2, 3, 1, False, False, False, 5, 2, True),
    "lstm_nobias": ("LSTM", None, 2, 3, 1, True, True, False, 3, 2, False),
}


def run_case(name, spec, out):
    kind, nl, inp, hid, layers, bidir, bf, bias, T, B, states = spec
    kw = dict(input_size=inp, hidden_size=hid, num_layers=layers, bidirectional=bidir, batch_first=bf, bias=bias)
    if nl:
        kw["nonlinearity"] = nl
    m = getattr(torch.nn, kind)(**kw).double()
    D = 2 if bidir else 1
    x = torch.randn((B, T, inp) if bf else (T, B, inp), dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(layers * D, B, hid, dtype=torch.float64, requires_grad=True) if states else None
    c0 = torch.randn(layers * D, B, hid, dtype=torch.float64, requires_grad=True) if states else None
    if kind == "LSTM":
        y, (hn, cn) = m(x, (h0, c0)) if states else m(x)
    else:
        y, hn = m(x, h0) if states else m(x)
        cn = None
    Ry, Rh = torch.randn_like(y), torch.randn_like(hn)
    loss = (y * Ry).sum() + (hn * Rh).sum()
    Rc = None
    if cn is not None:
        Rc = torch.randn_like(cn)
        loss = loss + (cn * Rc).sum()
    loss.backward()
    t = {"x": x, "y": y, "h_n": hn, "Ry": Ry, "Rh": Rh, "grad.x": x.grad}
    if cn is not None:
        t.update({"c_n": cn, "Rc": Rc})
    if states:
        t.update({"h0": h0, "grad.h0": h0.grad})
        if kind == "LSTM":
            t.update({"c0": c0, "grad.c0": c0.grad})
    for pn, p in m.named_parameters():
        t[pn] = p
        t["grad." + pn] = p.grad
    for k, v in t.items():
        out[f"{name}.{k}"] = v.detach().contiguous().clone()


def main():
    torch.manual_seed(20261207)
    out = {}
    for name, spec in CASES.items():
        run_case(name, spec, out)
    save_file(out, sys.argv[1])


if __name__ == "__main__":
    main()
