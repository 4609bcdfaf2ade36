"""The GPT of `ctrain bench`'s gpt-char and gpt2-124m workloads, in PyTorch.

nanoGPT's model (and ctrain's ct_gpt, include/ctrain/gpt.h): token and
position embeddings, pre-LN blocks of causal self-attention
(F.scaled_dot_product_attention, is_causal=True) and a GELU MLP (exact
GELU), LayerNorm eps 1e-5, biases everywhere, the final LayerNorm and the
lm_head tied to the token embedding; nanoGPT's initialisation. Dropout is 0,
as in ctrain's workloads. The shapes and AdamW settings mirror
tools/bench_gpt.c: a change there must be made here too.

torch is passed in rather than imported, so that torch_bench.py can still
say "PyTorch is not installed" and exit 3.
"""

import math

# name: (n_layer, n_head, n_embd, block_size, vocab_size), default batch,
# AdamW (lr, betas, weight decay), as tools/bench_gpt.c.
CHAR_VOCAB, GPT2_VOCAB = 65, 50257
GPTS = {
    "gpt-char": {"shape": (4, 4, 128, 64, CHAR_VOCAB), "quick": (2, 2, 32, 16, CHAR_VOCAB), "batch": 12,
                 "adamw": (1e-3, (0.9, 0.99), 0.1)},
    "gpt2-124m": {"shape": (12, 12, 768, 1024, GPT2_VOCAB), "quick": (2, 2, 32, 8, GPT2_VOCAB), "batch": 4,
                  "adamw": (6e-4, (0.9, 0.95), 0.1)},
}
GPT2_CPU_REFUSAL = ("gpt2-124m is GPU-sized (about 3.5 TFLOP per step at batch 4, minutes on a CPU): run it with "
                    "--device cuda (--quick runs a shrunken copy that checks the runner)")


def gpt_shape(name, quick):
    return GPTS[name]["quick" if quick else "shape"]


def gpt_describe(shape):
    L, H, C, T, V = shape
    return f"gpt L{L} H{H} C{C} T{T} V{V}"


def gpt_flops_per_sequence(shape):
    """Matrix products, forward and backward, per token: the linear layers
    72 L C^2, attention 12 L T C (the full T x T square), the lm_head 6 C V;
    times T tokens (tools/bench_gpt.c, nanoGPT's estimate_mfu)."""
    L, _, C, T, V = shape
    return T * (72.0 * L * C * C + 12.0 * L * T * C + 6.0 * C * V)


def make_gpt(torch, shape):
    """A GPT of this shape, initialised as nanoGPT's _init_weights."""
    nn, F = torch.nn, torch.nn.functional
    L, H, C, T, V = shape

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):
            B, Tx, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, Tx, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, Tx, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(C, 4 * C)
            self.c_proj = nn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x)))  # exact (erf) GELU

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C, eps=1e-5)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(C, eps=1e-5)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(V, C), wpe=nn.Embedding(T, C),
                h=nn.ModuleList(Block() for _ in range(L)), ln_f=nn.LayerNorm(C, eps=1e-5)))
            self.lm_head = nn.Linear(C, V, bias=False)
            self.lm_head.weight = self.transformer.wte.weight  # tied
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))

        @staticmethod
        def _init_weights(m):
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

        def forward(self, idx):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            return self.lm_head(self.transformer.ln_f(x))

    return GPT()
