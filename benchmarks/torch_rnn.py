"""The recurrent character models of `ctrain bench`'s lstm-char and gru-char
workloads, in PyTorch.

ctrain's CLI model (tools/model_rnn.c): nn.Embedding(V, H) -> nn.LSTM or
nn.GRU(H, H, num_layers=2, batch_first=True) -> nn.Linear(H, V), PyTorch's
default initialisation. The shapes and AdamW settings mirror
tools/bench_rnn.c: a change there must be made here too.

torch is passed in rather than imported, so that torch_bench.py can still
say "PyTorch is not installed" and exit 3.
"""

CHAR_VOCAB = 65
# name: (cell, hidden, layers, block, vocab), default batch, AdamW (lr, betas, wd)
RNNS = {
    "lstm-char": {"shape": ("lstm", 256, 2, 64, CHAR_VOCAB), "quick": ("lstm", 32, 2, 16, CHAR_VOCAB), "batch": 32,
                  "adamw": (2e-3, (0.9, 0.99), 0.01)},
    "gru-char": {"shape": ("gru", 256, 2, 64, CHAR_VOCAB), "quick": ("gru", 32, 2, 16, CHAR_VOCAB), "batch": 32,
                 "adamw": (2e-3, (0.9, 0.99), 0.01)},
}


def rnn_shape(name, quick):
    return RNNS[name]["quick" if quick else "shape"]


def rnn_describe(shape):
    cell, H, L, T, V = shape
    return f"{cell} L{L} H{H} T{T} V{V}"


def rnn_flops_per_sequence(shape):
    """Matrix products, forward and backward, per token: per layer the input
    projection 2 G H I and the hidden product 2 G H H (I = H), the head
    2 H V; backward twice the forward (tools/bench_rnn.c)."""
    cell, H, L, T, V = shape
    G = 4 if cell == "lstm" else 3
    return T * 6.0 * (L * G * H * (H + H) + H * V)


def make_rnn(torch, shape):
    nn = torch.nn
    cell, H, L, T, V = shape

    class CharRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(H, H, num_layers=L, batch_first=True)
            self.head = nn.Linear(H, V)

        def forward(self, x):
            y, _ = self.rnn(self.embed(x))
            return self.head(y)

    return CharRNN()
