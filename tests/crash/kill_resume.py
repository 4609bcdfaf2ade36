#!/usr/bin/env python3
"""Crash safety of checkpoints: `ctrain train` killed with SIGKILL at
random moments - inside a checkpoint's write too - never leaves a
checkpoint that fails to load, and `--resume` from whatever is on disk
ends at exactly the weights of an uninterrupted run (docs/reliability.md).

  1. A reference run trains a tiny MNIST MLP (--train-limit) for a few
     epochs, saving a checkpoint after every epoch (--save-every 1), and
     ends with its final checkpoint.
  2. Each chain starts the same run afresh and kills it after a random
     delay; then, while killed runs remain, resumes from what is on disk
     (`--resume`) and kills that too at a random moment; finally lets a
     resumed run finish. After every kill the file on disk is checked: it
     is absent (killed before the first save) or a whole safetensors file
     whose tensors all lie inside it; the next `--resume` then loads it
     (a failing load fails the test).
  3. Every chain's final checkpoint must hold bit for bit the reference's
     tensors (weights and optimizer state), and the test accuracy line
     `ctrain train` prints must be the reference's.

Usage: kill_resume.py --ctrain BUILD/tools/ctrain --data-dir DATA/mnist
                      [--kills 20] [--long] [--seed S] [--workdir DIR]
--long is --kills 50. Exit status 0 when every check holds.
Python 3 standard library only.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

# Small enough for ~1 s runs, big enough that a checkpoint (about 1.2 MB:
# weights plus AdamW's two moments) takes a while to write.
# Eight steps per epoch and a save after each: most of a run is spent
# around checkpoint writes, so many kills land inside one.
EPOCHS = 40
# Chains in a row that may end before their kill; each one adapts the
# kill times to the fastest run seen, so more means the timing is broken.
MAX_IDLE_CHAINS = 25
TRAIN_ARGS = ["train", "--data", "mnist", "--train-limit", "128", "--hidden", "128",
              "--batch-size", "16", "--epochs", str(EPOCHS), "--save-every", "1", "--seed", "3"]


def read_tensors(path):
    """The tensors of a safetensors file as {name: (dtype, shape, bytes)};
    raises ValueError if the file is not whole and well-formed."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("shorter than the 8-byte header length")
    n = struct.unpack("<Q", raw[:8])[0]
    if 8 + n > len(raw):
        raise ValueError("header length %d past the end (%d bytes)" % (n, len(raw)))
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out, end = {}, 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        if not 0 <= a <= b <= len(data):
            raise ValueError("tensor %s at [%d, %d) outside %d data bytes" % (name, a, b, len(data)))
        out[name] = (t["dtype"], tuple(t["shape"]), data[a:b])
        end = max(end, b)
    if end != len(data):
        raise ValueError("data is %d bytes, the tensors end at %d" % (len(data), end))
    return out


def saved_epoch(path):
    """The completed epochs a checkpoint records (its ctrain.epoch)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return int(json.loads(f.read(n))["__metadata__"]["ctrain.epoch"])


def final_line(output):
    lines = [l for l in output.splitlines() if l.startswith("test accuracy")]
    return lines[-1].split(" after ")[0] if lines else None


class Runner:
    def __init__(self, args, work):
        self.ctrain = os.path.abspath(args.ctrain)
        self.data_dir = os.path.abspath(args.data_dir)
        self.work = work
        self.env = dict(os.environ, OMP_NUM_THREADS="1")
        self.stale = 0

    def cmd(self, ckpt, resume):
        base = [self.ctrain] + TRAIN_ARGS + ["--data-dir", self.data_dir, "--quiet"]
        return base + (["--resume", ckpt] if resume else ["--save", ckpt])

    def run(self, ckpt, resume):
        p = subprocess.run(self.cmd(ckpt, resume), cwd=self.work, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            sys.exit("FAIL: %s exited %d:\n%s" % (" ".join(self.cmd(ckpt, resume)), p.returncode, p.stdout))
        return p.stdout

    def run_timed(self, ckpt):
        """A whole fresh run; returns its output, when the first checkpoint
        appeared and when it ended (seconds from its start)."""
        t0 = time.monotonic()
        p = subprocess.Popen(self.cmd(ckpt, False), cwd=self.work, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = None
        while p.poll() is None:
            if first is None and os.path.exists(ckpt):
                first = time.monotonic() - t0
            time.sleep(0.005)
        out = p.communicate()[0]
        if p.returncode != 0:
            sys.exit("FAIL: the reference run exited %d:\n%s" % (p.returncode, out))
        end = time.monotonic() - t0
        return out, (first if first is not None else end), end

    def run_killed(self, ckpt, resume, delay):
        """Starts the run and SIGKILLs it after delay seconds; True if it
        was killed, False if it had already finished (then it must have
        succeeded)."""
        p = subprocess.Popen(self.cmd(ckpt, resume), cwd=self.work, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.communicate()
            return True
        out = p.communicate()[0]
        if p.returncode != 0:
            sys.exit("FAIL: a run that was not killed exited %d:\n%s" % (p.returncode, out))
        return False


def check_on_disk(ckpt, log):
    if not os.path.exists(ckpt):
        log.append("nothing on disk")
        return False
    try:
        read_tensors(ckpt)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        sys.exit("FAIL: the checkpoint left by a killed run is broken: %s" % e)
    log.append("checkpoint whole")
    return True


def chain(runner, rng, ckpt, kills_left, ref_tensors, ref_line):
    """One run killed and resumed until kills_left kills are spent, then
    finished; returns the number of kills that landed."""
    # Killed writes leave their "<path>.tmp.<pid>" behind (counted, then
    # removed with the last chain's checkpoint).
    for f in os.listdir(runner.work):
        if os.path.join(runner.work, f).startswith(ckpt):
            runner.stale += ".tmp." in f
            os.remove(os.path.join(runner.work, f))
    landed, log = 0, []
    have = False
    while landed < kills_left:
        # Both times scale with the fastest whole run seen so far, so every
        # draw lies inside a run as fast as that one.
        end = runner.end
        first = end * runner.first_share
        # A fresh run is killed while it saves (from a little before its
        # first checkpoint); a resumed one anywhere in what is left of it,
        # its start included.
        left = 1.0 - saved_epoch(ckpt) / EPOCHS if have else 1.0
        delay = rng.uniform(first * (0.3 if have else 0.8), first + (end - first) * left * 0.95)
        t0 = time.monotonic()
        if not runner.run_killed(ckpt, have, delay):
            # Finished before the kill: the chain ends here. A whole run
            # was faster than any before; later draws aim earlier.
            if not have:
                runner.end = min(runner.end, time.monotonic() - t0)
            break
        landed += 1
        log.append("kill at %.2fs" % delay)
        have = check_on_disk(ckpt, log)
    out = runner.run(ckpt, have)
    got = read_tensors(ckpt)
    if got != ref_tensors:
        diff = sorted(k for k in set(got) | set(ref_tensors) if got.get(k) != ref_tensors.get(k))
        sys.exit("FAIL: after %s the final tensors differ from the reference: %s" % ("; ".join(log), diff[:8]))
    if final_line(out) != ref_line:
        sys.exit("FAIL: final line %r, reference %r (%s)" % (final_line(out), ref_line, "; ".join(log)))
    print("  chain: %s; final weights bit-identical" % "; ".join(log), flush=True)
    return landed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctrain", required=True)
    ap.add_argument("--data-dir", required=True, help="the MNIST directory")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--long", action="store_true", help="at least 50 kills")
    ap.add_argument("--seed", type=int, default=None, help="of the kill delays (default: from the clock)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    kills = max(args.kills, 50) if args.long else args.kills
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    work = args.workdir or tempfile.mkdtemp(prefix="ctrain-kill-")
    os.makedirs(work, exist_ok=True)
    runner = Runner(args, work)
    print("kill_resume: %d kills, seed %d, in %s" % (kills, seed, work), flush=True)

    # The first run pays for cold caches (the binary, MNIST's files) and
    # would set the kill times too late for every later run: it only
    # warms up, and must agree bit for bit with the timed one.
    ref = os.path.join(work, "reference.safetensors")
    runner.run(ref, False)
    warm_tensors = read_tensors(ref)
    os.remove(ref)
    out, first, end = runner.run_timed(ref)
    runner.end, runner.first_share = end, min(first / end, 0.9)
    ref_line = final_line(out)
    ref_tensors = read_tensors(ref)
    if ref_tensors != warm_tensors:
        sys.exit("FAIL: two uninterrupted runs of the same command end with different tensors")
    print("  reference run: %.2fs (first checkpoint at %.2fs), %r, %d tensors"
          % (end, first, ref_line, len(ref_tensors)), flush=True)

    ckpt = os.path.join(work, "killed.safetensors")
    landed = chains = idle = 0
    while landed < kills:
        got = chain(runner, rng, ckpt, min(5, kills - landed), ref_tensors, ref_line)
        landed, chains = landed + got, chains + 1
        idle = 0 if got else idle + 1
        # Never a hang: a machine whose runs keep ending before every
        # kill is reported, not waited on.
        if idle == MAX_IDLE_CHAINS:
            sys.exit("FAIL: %d chains in a row ended before their kill (%d kills landed; whole "
                     "runs take %.2fs)" % (idle, landed, runner.end))
    stale = runner.stale + sum(".tmp." in f for f in os.listdir(work))
    print("kill_resume: passed: %d kills in %d chains, every checkpoint loaded, every final state "
          "bit-identical (%d temporary files of killed writes left behind)" % (landed, chains, stale))
    if not args.workdir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
