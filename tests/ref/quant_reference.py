"""Writes tests/ref/quant_ref.safetensors: int8 quantization parameters and
quantized values computed by PyTorch, for tests/test_quant.c.

    python3 tests/ref/quant_reference.py

Weights: torch.ao.quantization.PerChannelMinMaxObserver (qint8,
per_channel_symmetric, quant_min=-127, quant_max=127) and
torch.quantize_per_channel. Activations: MinMaxObserver (quint8,
per_tensor_affine) and torch.quantize_per_tensor. Percentiles:
torch.quantile (linear interpolation). The inputs include rows whose values
divided by the scale are exact halves, so round-half-to-even is checked.
"""
import os

import torch
from safetensors.torch import save_file
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

torch.manual_seed(19)
out = {}

w = torch.randn(6, 37) * 0.1
w[2] = 0.0  # an all-zero row: scale eps, all zeros
# scale 1 exactly (max 127): every other value an exact half
w[3] = torch.tensor([127.0] + [k + 0.5 for k in range(-18, 18)])
w[4] = -w[3]
obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                               quant_min=-127, quant_max=127)
obs(w)
ws, wz = obs.calculate_qparams()
out["w"] = w
out["w_scale"] = ws.float()
out["w_q"] = torch.quantize_per_channel(w, ws, wz, 0, torch.qint8).int_repr()

for name, x in [("x", torch.randn(5, 23) * 2 + 0.5), ("xpos", torch.rand(4, 19) * 6)]:
    obs = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    obs(x)
    s, z = obs.calculate_qparams()
    out[name] = x
    out[name + "_scale"] = s.float().reshape(1)
    out[name + "_zp"] = z.int().reshape(1)
    out[name + "_q"] = torch.quantize_per_tensor(x, float(s), int(z), torch.quint8).int_repr()

v = torch.randn(1001)
out["p_vals"] = v
out["p_hi"] = torch.quantile(v.double(), 0.9999).float().reshape(1)
out["p_lo"] = torch.quantile(v.double(), 0.0001).float().reshape(1)
out["p_mid"] = torch.quantile(v.double(), 0.5).float().reshape(1)

# Fake quantization (quantization-aware training): forward values and the
# straight-through gradient of torch.fake_quantize_per_*_affine.
x = torch.randn(3, 10, dtype=torch.float32) * 1.5
x[0] = torch.arange(-5, 5, dtype=torch.float32) * 0.25 + 0.125  # x / 0.25 exact halves
x.requires_grad_(True)
gy = torch.randn(3, 10)
y = torch.fake_quantize_per_tensor_affine(x, 0.25, 3, 0, 255)
y.backward(gy)
out["fq_x"], out["fq_gy"] = x.detach().clone(), gy
out["fq_t_y"], out["fq_t_dx"] = y.detach().clone(), x.grad.clone()
x.grad = None
sc = torch.tensor([0.05, 0.02, 0.1])
zp = torch.tensor([0, 1, -2], dtype=torch.int32)
y = torch.fake_quantize_per_channel_affine(x, sc, zp, 0, -127, 127)
y.backward(gy)
out["fq_c_scale"], out["fq_c_zp"] = sc, zp.float()
out["fq_c_y"], out["fq_c_dx"] = y.detach().clone(), x.grad.clone()

save_file({k: t.contiguous() for k, t in out.items()},
          os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant_ref.safetensors"))
print("wrote quant_ref.safetensors:", ", ".join(sorted(out)))
