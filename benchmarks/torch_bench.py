#!/usr/bin/env python3
"""PyTorch twins of `ctrain bench`'s workloads.

Same workloads, same shapes, same synthetic data distributions, same
optimizer settings and the same timing method (warm-up steps, then
repetitions of timed steps, each timed by two CUDA events on the stream on a
GPU and by the monotonic clock on the CPU; median and spread), written to a JSON record with the same fields
as `ctrain bench --json`, so that benchmarks/compare.py can put the two side
by side. Each workload runs eagerly and, where it works, under torch.compile.

The sizes below mirror tools/bench_model.c, bench_cnn.c, bench_gpt.c, bench_rnn.c,
bench_matmul.c, bench_micro.c and bench_peak.c: a change there must be made here too
(compare.py refuses to compare rows whose configurations differ). In fp16 and
bf16 the model workloads run under torch.autocast on the same device, with a
GradScaler for fp16, as ctrain's mixed-precision step.

    python3 benchmarks/torch_bench.py --workload all --device cpu --json torch.json
"""

import argparse
import datetime
import json
import os
import platform
import resource
import socket
import sys
import time
import warnings

from torch_gpt import GPT2_CPU_REFUSAL, GPTS, gpt_describe, gpt_flops_per_sequence, gpt_shape, make_gpt
from torch_rnn import RNNS, make_rnn, rnn_describe, rnn_flops_per_sequence, rnn_shape

SCHEMA = "ctrain-bench/1"
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
WORKLOADS = ("mlp-mnist", "mlp-small", "mlp-wide", "cnn-mnist", "gpt-char", "gpt2-124m", "lstm-char", "gru-char", "matmul-square", "matmul-skinny",
             "matmul-tall", "optim-sgd", "optim-adamw", "softmax-xent")
MODELS = ("mlp-mnist", "mlp-small", "mlp-wide", "cnn-mnist", "gpt-char", "gpt2-124m", "lstm-char", "gru-char")
KINDS = {w: ("model" if w in MODELS else "micro") for w in WORKLOADS}

# {M, K, N} per device, as in tools/bench_matmul.c.
MATMUL = {
    "matmul-square": {"cpu": (1024, 1024, 1024), "cuda": (8192, 8192, 8192)},
    "matmul-skinny": {"cpu": (16, 4096, 4096), "cuda": (16, 16384, 16384)},
    "matmul-tall": {"cpu": (16384, 256, 256), "cuda": (1048576, 256, 256)},
}
ENV_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT",
            "CUDA_VISIBLE_DEVICES", "TORCHINDUCTOR_COMPILE_THREADS")


class Unsupported(Exception):
    """This workload cannot run with these options; the message says why."""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="all", help="a name, a comma-separated list, or all")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--hidden", type=int, default=0)
    p.add_argument("--layers", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the runner")
    p.add_argument("--json", help="write the record here")
    p.add_argument("--variants", default="eager,compile", help="eager, compile or both (comma-separated)")
    a = p.parse_args(argv)
    names = WORKLOADS if a.workload == "all" else tuple(a.workload.split(","))
    for n in names:
        if n not in WORKLOADS:
            p.error(f"unknown workload '{n}' (known: {', '.join(WORKLOADS)})")
    a.names = names
    a.variant_list = tuple(v for v in a.variants.split(",") if v)
    for v in a.variant_list:
        if v not in ("eager", "compile"):
            p.error(f"--variants wants eager and/or compile, not '{v}'")
    if a.warmup is None:
        a.warmup = 1 if a.quick else 3
    if a.steps is None:
        a.steps = 2 if a.quick else 10
    if a.reps is None:
        a.reps = 3 if a.quick else 5
    if a.steps < 1 or a.reps < 1 or a.warmup < 0:
        p.error("--steps and --reps want at least 1, --warmup at least 0")
    a.argv = ["torch_bench.py"] + list(argv)
    return a


# ---- timing ----------------------------------------------------------------------

def quantile(v, q):
    """Linear interpolation between order statistics, as bench_timing.c."""
    pos = q * (len(v) - 1)
    lo = int(pos)
    if lo >= len(v) - 1:
        return v[-1]
    return v[lo] + (pos - lo) * (v[lo + 1] - v[lo])


def measure(torch, device, step, warmup, steps, reps):
    """As bench_timing.c: on a GPU, two CUDA events on the current stream
    time each repetition on the device's own clock (ctrain's ct_device_timer
    records its events on the one stream of its backend); on the CPU, the
    monotonic clock (perf_counter)."""
    for _ in range(warmup):
        step()
    per_step, cpu = [], []  # cpu: the process's CPU seconds per step (CPU runs)
    if device.type == "cuda":
        stream = torch.cuda.current_stream(device)
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        for _ in range(reps):
            start.record(stream)
            for _ in range(steps):
                step()
            stop.record(stream)
            stop.synchronize()
            per_step.append(start.elapsed_time(stop) / 1e3 / steps)
        timer = "cuda events"
    else:
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            per_step.append((time.perf_counter() - t0) / steps)
            cpu.append((time.process_time() - c0) / steps)
        timer = "monotonic clock"
    per_step.sort()
    cpu.sort()
    return {"median": quantile(per_step, 0.5), "min": per_step[0], "max": per_step[-1],
            "q1": quantile(per_step, 0.25), "q3": quantile(per_step, 0.75),
            "cpu_median": quantile(cpu, 0.5) if cpu else None, "reps": reps,
            "steps_per_rep": steps, "timer": timer}


# ---- workloads -------------------------------------------------------------------

def dtype_of(torch, precision):
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


def dtype_name(torch, dt):
    return {torch.float16: "f16", torch.bfloat16: "bf16"}.get(dt, "f32")


def check_precision(a, dev):
    if a.precision == "tf32" and dev.type == "cpu":
        raise Unsupported("tf32 is a GPU flag (NVIDIA tensor cores, torch.backends.cuda.matmul.allow_tf32); "
                          "the CPU has no tf32 mode")


def mlp_dims(name, a, dev):
    if name == "mlp-mnist":
        return [784, 1024, 1024, 10]
    if name == "mlp-small":
        return [784, 128, 10]
    h = a.hidden or (64 if a.quick else 1024 if dev.type == "cpu" else 4096)
    layers = a.layers or (2 if a.quick else 4)
    return [h] * (layers + 1) + [10]


def mlp_describe(d):
    parts, i = [], 0
    while i < len(d):
        run = 1
        while i + run < len(d) and d[i + run] == d[i]:
            run += 1
        if run < 3:
            run = 1
        parts.append(f"{d[i]}(x{run})" if run > 1 else str(d[i]))
        i += run
    return "-".join(parts)


def mlp_flops_per_sample(d):
    # forward, weight gradient, and input gradient except for the first layer
    return sum(2.0 * d[i] * d[i + 1] * (2 if i == 0 else 3) for i in range(len(d) - 1))


def cnn_sizes(a):
    """tools/bench_cnn.c: the CLI's --model cnn (width 32, hidden 128); --quick
    shrinks the widths, not the 28x28 image."""
    return (4, 16) if a.quick else (32, 128)


def cnn_flops_per_sample(width, hidden, classes=10, side=28, k=5):
    """Convolutions as products of [Cout, Cin k k] and [Cin k k, OH OW]: forward,
    weight gradient, and input gradient except for the first layer."""
    f, cin = 0.0, 1
    for i in (1, 2):
        cout = width * i
        side = side - k + 1
        f += 2.0 * cout * cin * k * k * side * side * (2 if i == 1 else 3)
        side //= 2
        cin = cout
    for n_in, n_out in ((cin * side * side, hidden), (hidden, classes)):
        f += 6.0 * n_in * n_out  # forward, weight and input gradients
    return f


def build_model(torch, name, a, dev):
    """The model, its input shape per sample, its description and its FLOPs per
    sample, as ctrain's bench_model.c and bench_cnn.c."""
    nn = torch.nn
    if name == "cnn-mnist":
        w, h = cnn_sizes(a)
        model = nn.Sequential(nn.Conv2d(1, w, 5), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(w, 2 * w, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(2 * w * 16, h), nn.ReLU(), nn.Linear(h, 10))
        return model, (1, 28, 28), f"cnn {w}-{2 * w}-{h}-10", cnn_flops_per_sample(w, h)
    d = mlp_dims(name, a, dev)
    layers = []
    for i in range(len(d) - 1):
        layers.append(nn.Linear(d[i], d[i + 1]))
        if i + 2 < len(d):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers), (d[0],), mlp_describe(d), mlp_flops_per_sample(d)


def check_finite(loss):
    """A broken step must fail, not pass for a fast one."""
    v = loss.detach().float().item()
    if v != v or v in (float("inf"), float("-inf")):
        raise RuntimeError(f"the loss is {v} after the timed steps")


def tensor_bytes(ts):
    return sum(t.numel() * t.element_size() for t in ts)


def optimizer_state_bytes(opt):
    return sum(tensor_bytes(v for v in st.values() if hasattr(v, "numel") and v.dim() > 0)
               for st in opt.state.values())


def make_adamw(torch, params, lr, wd, groups=None, betas=(0.9, 0.999)):
    """Fused where this PyTorch has it on the device: ctrain's update is one
    fused pass too."""
    kw = dict(lr=lr, weight_decay=wd, betas=betas)
    try:
        return torch.optim.AdamW(groups or params, fused=True, **kw), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups or params, foreach=True, **kw), "foreach"


def decay_groups(model, wd):
    """As ctrain's AdamW (and nanoGPT's configure_optimizers): decay the
    parameters of two or more dimensions, not the biases and norm weights.
    model.parameters() lists a tied weight once."""
    return [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]


def training_step(torch, a, dev, variant, model, opt, loss_fn, xs, ys):
    """One training step as ctrain's bench_model_step: copy batch k of the
    pool xs/ys ([4, ...] in host memory) to the device, forward and loss
    (compiled for the compile variant), backward, optimizer update. Returns
    step, check and the note's precision part; runs one step first so the
    optimizer's state exists and can be counted."""
    # ctrain's upload copies the batch into pinned memory and queues the DMA
    # without waiting; a copy from pageable memory would make the host wait
    # for the GPU every step, and the idle GPU would be timed.
    cuda = dev.type == "cuda"
    if cuda:
        xs, ys = xs.pin_memory(), ys.pin_memory()
    x = torch.empty(xs.shape[1:], dtype=xs.dtype, device=dev)
    y = torch.empty(ys.shape[1:], dtype=ys.dtype, device=dev)
    fn = torch.compile(loss_fn) if variant == "compile" else loss_fn
    # Mixed precision as ctrain's: autocast for the forward pass and the loss,
    # FP32 master weights, and for fp16 GradScaler's dynamic loss scale.
    half = dtype_of(torch, a.precision) if a.precision in ("fp16", "bf16") else None
    scaler = torch.amp.GradScaler(dev.type) if a.precision == "fp16" else None
    state = {"k": 0, "loss": None}

    def step():
        k = state["k"]
        state["k"] = (k + 1) % 4
        x.copy_(xs[k], non_blocking=cuda)  # one batch from host memory, as ctrain's set_input
        y.copy_(ys[k], non_blocking=cuda)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=half, enabled=half is not None):
            loss = fn(x, y)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        state["loss"] = loss

    def check():
        check_finite(state["loss"])

    try:
        step()  # creates the optimizer state, so its size can be counted
    except RuntimeError as e:
        if half is None:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise Unsupported(f"PyTorch {torch.__version__} refuses {a.precision} autocast on {dev.type}: {msg}")
    note = (f"; autocast {a.precision}" if half is not None else "") + ("; GradScaler" if scaler else "")
    return step, check, note


def setup_model(torch, name, a, dev, variant):
    check_precision(a, dev)
    F = torch.nn.functional
    model, sample, desc, flops = build_model(torch, name, a, dev)
    batch = a.batch_size or (8 if a.quick else 256 if name == "mlp-wide" else 32 if name == "mlp-small" else 128)
    model = model.to(dev)
    opt, how = make_adamw(torch, None, 1e-3, 0.01, decay_groups(model, 0.01))
    g = torch.Generator().manual_seed(a.seed)
    xs = torch.randn(4, batch, *sample, generator=g)
    ys = torch.randint(0, 10, (4, batch), generator=g)

    def loss_fn(x, y):
        return F.cross_entropy(model(x), y)

    step, check, note = training_step(torch, a, dev, variant, model, opt, loss_fn, xs, ys)
    pbytes = tensor_bytes(list(model.parameters()))
    info = {
        "config": f"{desc} adamw",
        "batch_size": batch,
        "samples_per_step": batch,
        "flops_per_step": flops * batch,
        "bytes_per_step": None,
        "metric": "flops",
        "note": f"AdamW {how}" + note,
        "memory": {"params": pbytes, "grads": pbytes, "optimizer_state": optimizer_state_bytes(opt)},
    }
    return step, check, info


def token_model_step(torch, a, dev, variant, model, opt_spec, shape, batch, flops, describe):
    """The training step of a language model on random tokens (gpt-char,
    gpt2-124m, lstm-char, gru-char): AdamW, the loss the mean over all B x T
    positions, rates in tokens."""
    F = torch.nn.functional
    T, V = shape[3], shape[4]
    lr, betas, wd = opt_spec
    opt, how = make_adamw(torch, None, lr, wd, decay_groups(model, wd), betas)
    g = torch.Generator().manual_seed(a.seed)
    xs = torch.randint(0, V, (4, batch, T), generator=g)
    ys = torch.randint(0, V, (4, batch, T), generator=g)

    def loss_fn(x, y):
        return F.cross_entropy(model(x).view(-1, V), y.view(-1))

    step, check, note = training_step(torch, a, dev, variant, model, opt, loss_fn, xs, ys)
    pbytes = tensor_bytes(list(model.parameters()))
    info = {
        "config": f"{describe} adamw",
        "batch_size": batch,
        "samples_per_step": batch * T,
        "sample_unit": "tokens",
        "flops_per_step": flops * batch,
        "bytes_per_step": None,
        "metric": "flops",
        "note": f"AdamW {how}" + note,
        "memory": {"params": pbytes, "grads": pbytes, "optimizer_state": optimizer_state_bytes(opt)},
    }
    return step, check, info


def setup_gpt(torch, name, a, dev, variant):
    """gpt-char and gpt2-124m (torch_gpt.py, tools/bench_gpt.c)."""
    check_precision(a, dev)
    if name == "gpt2-124m" and dev.type == "cpu" and not a.quick:
        raise Unsupported(GPT2_CPU_REFUSAL)
    shape = gpt_shape(name, a.quick)
    batch = a.batch_size or (8 if a.quick else GPTS[name]["batch"])
    model = make_gpt(torch, shape).to(dev)
    return token_model_step(torch, a, dev, variant, model, GPTS[name]["adamw"], shape, batch,
                            gpt_flops_per_sequence(shape), gpt_describe(shape))


def setup_rnn(torch, name, a, dev, variant):
    """lstm-char and gru-char (torch_rnn.py, tools/bench_rnn.c): cuDNN's RNN
    on a GPU, PyTorch's own cells on a CPU."""
    check_precision(a, dev)
    shape = rnn_shape(name, a.quick)
    batch = a.batch_size or (8 if a.quick else RNNS[name]["batch"])
    model = make_rnn(torch, shape).to(dev)
    return token_model_step(torch, a, dev, variant, model, RNNS[name]["adamw"], shape, batch,
                            rnn_flops_per_sequence(shape), rnn_describe(shape))


def quick_mkn(m, k, n):
    m = 4 if m <= 16 else 512 if m >= 16384 else 64
    k = 128 if k >= 4096 else 64 if k >= 1024 else 32
    return m, k, k


def setup_matmul_mkn(torch, a, dev, m, k, n, dt, variant):
    g = torch.Generator().manual_seed(a.seed)
    A = torch.randn(m, k, generator=g).to(dev, dt)
    B = torch.randn(k, n, generator=g).to(dev, dt)

    def mm(x, y):
        return x @ y

    fn = torch.compile(mm) if variant == "compile" else mm
    out = {}

    def step():
        out["c"] = fn(A, B)

    es = A.element_size()
    info = {
        "config": f"{m}x{k}x{n} {dtype_name(torch, dt)}",
        "batch_size": None, "samples_per_step": None,
        "flops_per_step": 2.0 * m * n * k,
        "bytes_per_step": float((m * k + k * n + m * n) * es),
        "metric": "flops",
        "memory": {"inputs": (m * k + k * n) * es, "arena": m * n * es},
    }
    return step, None, info


def setup_matmul(torch, name, a, dev, variant):
    check_precision(a, dev)
    m, k, n = MATMUL[name]["cpu" if dev.type == "cpu" else "cuda"]
    if a.quick:
        m, k, n = quick_mkn(m, k, n)
    step, check, info = setup_matmul_mkn(torch, a, dev, m, k, n, dtype_of(torch, a.precision), variant)
    if name == "matmul-skinny":
        info["metric"] = "bytes"
    return step, check, info


def setup_optim(torch, name, a, dev, variant):
    check_precision(a, dev)
    n = 4096 if a.quick else (1 << 22 if dev.type == "cpu" else 1 << 26)
    g = torch.Generator().manual_seed(a.seed)
    w = torch.nn.Parameter((torch.rand(n, generator=g) * 2 - 1).to(dev))
    w.grad = torch.randn(n, generator=g).to(dev)
    if name == "optim-sgd":
        try:
            opt, how = torch.optim.SGD([w], lr=0.01, momentum=0.9, fused=True), "fused"
        except (RuntimeError, TypeError, ValueError):
            opt, how = torch.optim.SGD([w], lr=0.01, momentum=0.9, foreach=True), "foreach"
        touched, kind = 5, "sgd"
    else:
        opt, how = make_adamw(torch, [w], 1e-3, 0.01)
        touched, kind = 7, "adamw"
    fn = torch.compile(opt.step) if variant == "compile" else opt.step

    def step():
        fn()

    step()
    info = {
        "config": f"{n} params {kind}",
        "batch_size": None, "samples_per_step": None, "flops_per_step": None,
        "bytes_per_step": float(touched * n * 4),
        "metric": "bytes",
        "note": f"{kind} {how}" + ("" if a.precision == "fp32" else
                                   "; parameters and state stay F32 (master weights)"),
        "memory": {"params": n * 4, "grads": n * 4, "optimizer_state": optimizer_state_bytes(opt)},
    }
    return step, None, info


def setup_xent(torch, name, a, dev, variant):
    check_precision(a, dev)
    F = torch.nn.functional
    cpu = dev.type == "cpu"
    b = a.batch_size or (8 if a.quick else 1024 if cpu else 8192)
    c = 16 if a.quick else 1000 if cpu else 32768
    dt = dtype_of(torch, a.precision)
    g = torch.Generator().manual_seed(a.seed)
    logits = torch.randn(b, c, generator=g).to(dev, dt).requires_grad_(True)
    labels = torch.randint(0, c, (b,), generator=g).to(dev)

    def loss_fn(x, y):
        return F.cross_entropy(x, y)

    fn = torch.compile(loss_fn) if variant == "compile" else loss_fn
    state = {}

    def step():
        logits.grad = None
        loss = fn(logits, labels)
        loss.backward()
        state["loss"] = loss

    def check():
        check_finite(state["loss"])

    es = logits.element_size()
    info = {
        "config": f"{b}x{c} {dtype_name(torch, dt)}",
        "batch_size": b, "samples_per_step": b, "flops_per_step": None,
        "bytes_per_step": 3.0 * b * c * es + 2.0 * b * 4,
        "metric": "bytes",
        "memory": {"inputs": b * c * es + b * 8, "arena": b * c * es},
    }
    return step, check, info


SETUP = {"mlp-mnist": setup_model, "mlp-small": setup_model, "mlp-wide": setup_model, "cnn-mnist": setup_model,
         "gpt-char": setup_gpt, "gpt2-124m": setup_gpt, "lstm-char": setup_rnn, "gru-char": setup_rnn,
         "matmul-square": setup_matmul, "matmul-skinny": setup_matmul, "matmul-tall": setup_matmul,
         "optim-sgd": setup_optim, "optim-adamw": setup_optim, "softmax-xent": setup_xent}


# ---- peak, machine, record ---------------------------------------------------------

def measure_peak(torch, a, dev):
    peak = {"gflops": None, "gflops_what": "", "gbps": None, "gbps_what": "", "timer": None}
    n = 128 if a.quick else 2048 if dev.type == "cpu" else 8192
    dt = dtype_of(torch, a.precision)
    try:
        step, _, info = setup_matmul_mkn(torch, a, dev, n, n, n, dt, "eager")
        t = measure(torch, dev, step, 1, 1, 3 if a.quick else 5)
        peak["gflops"] = info["flops_per_step"] / t["min"] / 1e9
        peak["gflops_what"] = f"matmul {n}x{n}x{n} {dtype_name(torch, dt)}"
    except Exception as e:  # noqa: BLE001 - a probe that fails is reported, not fatal
        peak["gflops_what"] = f"matmul probe failed: {e}"[:90]
    mib = 4 if a.quick else 256 if dev.type == "cpu" else 1024
    src = torch.ones(mib << 20, dtype=torch.uint8, device=dev)
    dst = torch.zeros_like(src)
    t = measure(torch, dev, lambda: dst.copy_(src), 1, 1, 5)
    peak["gbps"] = 2.0 * (mib << 20) / t["min"] / 1e9
    peak["gbps_what"] = f"copy {mib} MiB"
    peak["timer"] = t["timer"]
    return peak


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(torch, dev):
    m = {"hostname": socket.gethostname(),
         "os": f"{platform.system()} {platform.release()} {platform.machine()}",
         "cpu_model": cpu_model(), "cpu_cores": os.cpu_count()}
    try:
        m["memory_bytes"] = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        m["load_average"] = list(os.getloadavg())
    except (ValueError, OSError):
        pass
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        m["gpu"] = {"name": p.name, "memory_bytes": p.total_memory,
                    "compute_capability": f"{p.major}.{p.minor}"}
    return m


def versions(torch):
    v = {"torch": torch.__version__, "python": platform.python_version(),
         "blas": torch.__config__.show().split("BLAS_INFO=")[1].split(",")[0]
         if "BLAS_INFO=" in torch.__config__.show() else "unknown",
         "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        v["cuda_runtime"] = torch.version.cuda
        v["cudnn"] = str(torch.backends.cudnn.version())
    return v


def max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_one(torch, name, a, dev, variant, peak):
    r = {"workload": name, "kind": KINDS[name], "variant": variant, "precision": a.precision}
    try:
        step, check, info = SETUP[name](torch, name, a, dev, variant)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t = measure(torch, dev, step, a.warmup, a.steps, a.reps)
        if check:
            check()
    except Unsupported as e:
        r.update(status="unsupported", reason=str(e))
        return r
    except Exception as e:  # noqa: BLE001 - one failing workload must not stop the others
        r.update(status="failed", reason=f"{type(e).__name__}: {e}".splitlines()[0][:400])
        return r
    rate = 1.0 / t["median"]
    mem = {k: 0 for k in ("arena", "scratch", "inputs", "params", "grads", "buffers", "optimizer_state")}
    mem.update(info.pop("memory"))
    mem["device_total"] = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
                           else sum(mem.values()))
    r.update(status="ok", config=info["config"], batch_size=info["batch_size"],
             samples_per_step=info["samples_per_step"], flops_per_step=info["flops_per_step"],
             bytes_per_step=info["bytes_per_step"], metric=info["metric"], step_seconds=t,
             steps_per_s=rate)
    r["samples_per_s"] = info["samples_per_step"] * rate if info["samples_per_step"] else None
    r["sample_unit"] = info.get("sample_unit", "samples") if info["samples_per_step"] else None
    r["tokens_per_s"] = r["samples_per_s"] if r["sample_unit"] == "tokens" else None
    r["gflops"] = info["flops_per_step"] * rate / 1e9 if info["flops_per_step"] else None
    r["gbps"] = info["bytes_per_step"] * rate / 1e9 if info["bytes_per_step"] else None
    key = "gflops" if info["metric"] == "flops" else "gbps"
    r["peak_fraction"] = r[key] / peak[key] if r[key] and peak[key] else None
    r["memory"] = mem
    r["max_rss_bytes"] = max_rss()
    if info.get("note"):
        r["note"] = info["note"]
    return r


def rate_str(v):
    """Three significant digits without an exponent, as bench_report.c."""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def print_row(r, peak):
    name = f"{r['workload']} [{r['variant']}]"
    if r["status"] != "ok":
        print(f"{name:<24} {r['status']}: {r['reason']}", flush=True)
        return
    t = r["step_seconds"]
    scale, unit = (1.0, "s") if t["median"] >= 1 else (1e3, "ms") if t["median"] >= 1e-3 else (1e6, "us")
    spread = (f"{rate_str(scale * t['median'])} {unit} "
              f"[{rate_str(scale * t['min'])} - {rate_str(scale * t['max'])}]")
    ach = f"{r['gflops']:.1f} GFLOP/s" if r["metric"] == "flops" else f"{r['gbps']:.2f} GB/s"
    frac = f"{100 * r['peak_fraction']:.0f}%" if r.get("peak_fraction") else "-"
    samples = rate_str(r["samples_per_s"]) if r.get("samples_per_s") else "-"
    if r.get("sample_unit") == "tokens":
        samples += " tok"
    print(f"{name:<24} {r['config']:<30} {spread:>27} {rate_str(r['steps_per_s']):>9} {samples:>10} "
          f"{ach:>15} {frac:>6}", flush=True)


def main(argv):
    a = parse_args(argv)
    # torch.compile otherwise starts a pool of compiler processes that stay
    # alive and compete with the timed steps for the cores.
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    # PyTorch warns at import when NumPy is absent; nothing here uses NumPy.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    try:
        import torch
    except ImportError as e:
        print(f"torch_bench: PyTorch is not installed here ({e})", file=sys.stderr)
        return 3
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("torch_bench: --device cuda: PyTorch sees no CUDA device here", file=sys.stderr)
        return 1
    if dev.type == "cuda":
        # ctrain's flags: TF32 only in matrix products and only under tf32;
        # F32 convolutions never (cuDNN's FMA math, k_conv.cu), where PyTorch's
        # cudnn.allow_tf32 defaults to True; and FP32 split-K sums in half
        # products (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION).
        torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.manual_seed(a.seed)
    peak = measure_peak(torch, a, dev)
    print(f"torch {torch.__version__} bench on {dev}, {a.precision}; {cpu_model()}, "
          f"{torch.get_num_threads()} threads")
    print(f"peak (measured): {peak['gflops'] or 0:.1f} GFLOP/s ({peak['gflops_what']}), "
          f"{peak['gbps'] or 0:.1f} GB/s ({peak['gbps_what']})\n")
    results = []
    for name in a.names:
        for variant in a.variant_list:
            r = run_one(torch, name, a, dev, variant, peak)
            print_row(r, peak)
            results.append(r)
    if a.json:
        rec = {"schema": SCHEMA, "engine": "pytorch",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "argv": a.argv, "device": str(dev),
               "flags": {"device": a.device, "precision": a.precision, "batch_size": a.batch_size or None,
                         "hidden": a.hidden or None, "layers": a.layers or None, "warmup": a.warmup,
                         "steps": a.steps, "reps": a.reps, "seed": a.seed, "quick": a.quick,
                         "workload": a.workload, "variants": list(a.variant_list)},
               "machine": machine(torch, dev), "versions": versions(torch),
               "env": {k: os.environ.get(k) for k in ENV_VARS}, "peak": peak, "results": results,
               "max_rss_bytes": max_rss()}
        with open(a.json, "w") as f:
            json.dump(rec, f, indent=2)
            f.write("\n")
        print(f"\nwrote {a.json}")
    return 1 if any(r["status"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
