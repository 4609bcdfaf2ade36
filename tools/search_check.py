#!/usr/bin/env python3
"""Checks `ctrain search` end to end on a small MNIST subset (CTest runs it).

usage: search_check.py CTRAIN WORKDIR CASE    CASE: random | halving | failing | resume

random:  4 random trials, 2 at a time: 4 lines in trials.jsonl, a table, and
         best.json, which `ctrain train --config best.json` reruns to the very
         same validation loss (the float's bits: training is deterministic).
halving: 5 configs, eta 2, 3 epochs: rungs of 1, 2 and 3 epochs with 5, 2 and
         1 trials; the best is from the last rung.
failing: a trial whose batch is larger than the data fails; it is recorded as
         failed with the trainer's message and the search goes on.
resume:  the search is killed (SIGKILL) while a trial runs; --resume-search
         runs only the trials that had not finished, leaves the finished ones
         and their lines as they were, and ends with every trial recorded once.
"""
import json
import os
import signal
import subprocess
import sys
import time

CTRAIN, WORK, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
TRAIN = ["--train-limit", "1000", "--test-limit", "200", "--epochs", "1", "--val-split", "0.1", "--batch-size", "32"]
SPACE = {"lr": {"min": 1e-4, "max": 1e-1, "scale": "log"}, "hidden": ["32", "64,32", [16]],
         "dropout": {"min": 0, "max": 0.5}}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def fresh(name, space=SPACE):
    d = os.path.join(WORK, name)
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, name + "-space.json")
    with open(path, "w") as f:
        json.dump(space, f)
    return d, path


def search(args, rc=0):
    p = subprocess.run([CTRAIN, "search"] + args, capture_output=True, text=True)
    print(p.stdout + p.stderr)
    if p.returncode != rc:
        fail("ctrain search %s: exit %d, wanted %d" % (" ".join(args), p.returncode, rc))
    return p.stdout


def lines(d):
    with open(os.path.join(d, "trials.jsonl")) as f:
        return [json.loads(l) for l in f]


def final_val_loss(metrics):
    with open(metrics) as f:
        return json.loads(f.readlines()[-1])["val_loss"]


def check_random():
    d, space = fresh("random")
    out = search(["--space", space, "--trials", "4", "--parallel", "2", "--out", d] + TRAIN)
    got = lines(d)
    if len(got) != 4 or sorted(t["trial"] for t in got) != [0, 1, 2, 3]:
        fail("want trials 0..3 in trials.jsonl, got %s" % [t["trial"] for t in got])
    if any(t["status"] != "ok" or t["val_loss"] is None for t in got):
        fail("every trial should finish with a val_loss")
    seeds = {t["options"]["seed"] for t in got}
    if len(seeds) != 4:
        fail("each trial should have its own seed: %s" % seeds)
    for t in got:
        for key in ("lr", "hidden", "dropout"):
            if key not in t["options"]:
                fail("trial %d lacks %s" % (t["trial"], key))
        if not 1e-4 <= t["options"]["lr"] <= 1e-1 or not 0 <= t["options"]["dropout"] <= 0.5:
            fail("a drawn value is out of its range: %s" % t["options"])
    best = min(got, key=lambda t: (t["val_loss"], t["trial"]))
    rows = [l for l in out.splitlines() if l.startswith("trial-")]
    if len(rows) != 4 or not rows[0].startswith("trial-%03d" % best["trial"]):
        fail("the table should list 4 trials, best first")
    with open(os.path.join(d, "best.json")) as f:
        if json.load(f) != best["options"]:
            fail("best.json is not the best trial's options")
    metrics = os.path.join(d, "rerun.jsonl")
    # With as many threads as the trial had: the sums of a product may
    # group differently with another count of threads.
    env = dict(os.environ, OMP_NUM_THREADS=str(best["threads"]), OPENBLAS_NUM_THREADS=str(best["threads"]))
    p = subprocess.run([CTRAIN, "train", "--config", os.path.join(d, "best.json"), "--metrics", metrics, "--quiet"],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        fail("rerunning best.json: " + p.stderr)
    again = final_val_loss(metrics)
    if again != best["val_loss"]:
        fail("best.json reran to val_loss %r, the trial had %r" % (again, best["val_loss"]))
    print("best.json reran trial %d to the same val_loss %r" % (best["trial"], again))
    # A new search into the same DIR is refused and loses nothing.
    with open(os.path.join(d, "trials.jsonl")) as f:
        kept = f.read()
    search(["--space", space, "--out", d] + TRAIN, rc=2)
    with open(os.path.join(d, "trials.jsonl")) as f:
        if f.read() != kept:
            fail("a refused search changed trials.jsonl")


def check_halving():
    d, space = fresh("halving")
    train = list(TRAIN)
    train[train.index("--epochs") + 1] = "3"
    search(["--space", space, "--method", "halving", "--trials", "5", "--eta", "2", "--out", d] + train)
    got = lines(d)
    by_rung = {}
    for t in got:
        by_rung.setdefault(t["rung"], []).append(t)
    if {r: len(v) for r, v in by_rung.items()} != {0: 5, 1: 2, 2: 1}:
        fail("want rungs of 5, 2, 1 trials, got %s" % {r: len(v) for r, v in by_rung.items()})
    for r, epochs in ((0, 1), (1, 2), (2, 3)):
        if any(int(t["options"]["epochs"]) != epochs for t in by_rung[r]):
            fail("rung %d should train %d epochs" % (r, epochs))
    top2 = sorted(by_rung[0], key=lambda t: (t["val_loss"], t["trial"]))[:2]
    if sorted(t["config"] for t in by_rung[1]) != sorted(t["config"] for t in top2):
        fail("rung 1 should hold the two best configs of rung 0")
    with open(os.path.join(d, "best.json")) as f:
        if json.load(f) != by_rung[2][0]["options"]:
            fail("best.json should be the last rung's trial")


def check_failing():
    d, space = fresh("failing", {"batch-size": [32, 5000]})
    search(["--space", space, "--method", "grid", "--out", d] + [a for a in TRAIN if a not in ("--batch-size", "32")])
    got = {t["options"]["batch-size"]: t for t in lines(d)}
    if got[32]["status"] != "ok" or got[5000]["status"] != "failed":
        fail("batch 32 should pass and batch 5000 fail: %s" % got)
    if "batch_size 5000" not in got[5000]["error"] or got[5000]["exit"] != 1:
        fail("the failed trial should carry the trainer's message and exit code: %s" % got[5000])


def check_resume():
    d, space = fresh("resume")
    train = list(TRAIN)
    train[train.index("--train-limit") + 1] = "3000"
    args = ["--space", space, "--trials", "4", "--out", d] + train
    proc = subprocess.Popen([CTRAIN, "search"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jsonl = os.path.join(d, "trials.jsonl")
    deadline = time.time() + 300
    # Kill once one trial has finished and the next has started.
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(jsonl) and os.path.getsize(jsonl) > 0:
            n = len(open(jsonl).readlines())
            if os.path.exists(os.path.join(d, "trial-%03d" % n, "log.txt")):
                break
        time.sleep(0.01)
    if proc.poll() is not None:
        fail("the search ended before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(jsonl) as f:
        before = f.read()
    done = [json.loads(l)["trial"] for l in before.splitlines()]
    if not 1 <= len(done) < 4:
        fail("the kill should come while trials remain: %s finished" % done)
    stamps = {i: os.stat(os.path.join(d, "trial-%03d" % i, "log.txt")).st_mtime_ns for i in done}
    time.sleep(1.1)
    out = search(["--resume-search", d])
    ran = [l for l in out.splitlines() if l.startswith("[")]
    if len(ran) != 4 - len(done) or any(("trial-%03d" % i) in " ".join(ran) for i in done):
        fail("the resume should run only the %d unfinished trials, it ran: %s" % (4 - len(done), ran))
    with open(jsonl) as f:
        after = f.read()
    if not after.startswith(before):
        fail("the lines written before the kill changed")
    ids = sorted(json.loads(l)["trial"] for l in after.splitlines())
    if ids != [0, 1, 2, 3]:
        fail("every trial should be recorded once: %s" % ids)
    for i, t in stamps.items():
        if os.stat(os.path.join(d, "trial-%03d" % i, "log.txt")).st_mtime_ns != t:
            fail("finished trial %d ran again" % i)
    print("killed after %d trial(s); the resume ran the other %d" % (len(done), 4 - len(done)))


{"random": check_random, "halving": check_halving, "failing": check_failing, "resume": check_resume}[CASE]()
print("ok")
