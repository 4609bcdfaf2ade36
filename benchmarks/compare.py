#!/usr/bin/env python3
"""Runs `ctrain bench` and its PyTorch twins with the same flags and prints
the ratio table (ctrain's rate over PyTorch's: above 1, ctrain is faster).

    python3 benchmarks/compare.py --workload all --device cpu
    python3 benchmarks/compare.py --out benchmarks/results/cpu -- --quick
    python3 benchmarks/compare.py --from ctrain.json torch.json
    python3 benchmarks/compare.py --interleave --workload all --device cpu
    python3 benchmarks/compare.py --interleave --rounds 3 --workload all --device cpu

Every flag it does not know itself goes to both runners (`ctrain bench
--help` lists them). Where PyTorch is not installed it says so and prints
ctrain's figures alone. The two JSON records and the table (compare.md) are
left in --out.

By default each runner times every workload in one process, ctrain's all
before PyTorch's. --interleave runs them workload by workload instead,
ctrain's then PyTorch's, so each ratio comes from two runs a few seconds
apart: on a machine whose speed drifts over minutes (a shared VM), a
memory-bound workload's ratio otherwise measures the drift. The records
are then the runs' results joined in workload order. --rounds N repeats
the interleaved runs N times and adds a table of each workload's ratio per
round with the median: one pair of runs can still fall on both sides of a
change of the machine's speed, the median of several rarely does.
"""

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def find_ctrain(given):
    """./build first (the Makefile's), then other build* folders, never a
    sanitizer or fuzzing build: their instrumentation makes every figure
    several times slower."""
    if given:
        return given
    dirs = sorted(d for d in os.listdir(ROOT) if d.startswith("build")
                  and not any(w in d for w in ("asan", "san", "fuzz")))
    for d in sorted(dirs, key=lambda d: d != "build"):
        cand = os.path.join(ROOT, d, "tools", "ctrain")
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("ctrain")


def rate(r):
    """The figure a workload is judged by, and its unit."""
    if r.get("status") != "ok":
        return None, ""
    if r["kind"] == "model":
        # A language model's samples are tokens (records before the GPT
        # workloads have no sample_unit: their samples are samples).
        return r.get("samples_per_s"), f"{r.get('sample_unit') or 'samples'}/s"
    if r["metric"] == "flops":
        return r.get("gflops"), "GFLOP/s"
    return r.get("gbps"), "GB/s"


def fmt(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def cell(r):
    if r is None:
        return "-"
    if r.get("status") != "ok":
        return r.get("status", "?")
    return fmt(rate(r)[0])


def table(ct, pt):
    """Markdown lines: one row per ctrain workload."""
    variants = []
    if pt:
        for r in pt["results"]:
            if r["variant"] not in variants:
                variants.append(r["variant"])
    head = ["workload", "config", "unit", "ctrain"] + [f"torch {v}" for v in variants]
    head += [f"ctrain / {v}" for v in variants]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for r in ct["results"]:
        v_ct, unit = rate(r)
        config = r.get("config") or r.get("reason", "")
        row = [r["workload"], config if r.get("status") == "ok" else r.get("status", ""), unit, cell(r)]
        ratios = []
        for v in variants:
            tw = next((t for t in pt["results"] if t["workload"] == r["workload"] and t["variant"] == v), None)
            row.append(cell(tw))
            v_pt = rate(tw)[0] if tw else None
            if tw and tw.get("status") == "ok" and r.get("status") == "ok" and tw.get("config") != r.get("config"):
                ratios.append("config differs")
                notes.append(f"{r['workload']}: ctrain ran {r['config']}, torch {v} ran {tw['config']}")
            elif v_ct and v_pt:
                ratios.append(f"{v_ct / v_pt:.2f}")
            else:
                ratios.append("-")
        lines.append("| " + " | ".join(row + ratios) + " |")
    return lines, notes


def cpu_ms(r):
    """CPU time per step in ms (every thread, user + system), or '-'."""
    if not r or r.get("status") != "ok":
        return "-"
    c = r.get("step_seconds", {}).get("cpu_median")
    return f"{1e3 * c:.3g}" if c else "-"


def cpu_table(ct, pt):
    """Markdown lines: wall and CPU time per step of each side; CPU time
    above wall time x cores means threads spinning or waiting."""
    variants = []
    for r in (pt["results"] if pt else []):
        if r["variant"] not in variants:
            variants.append(r["variant"])
    head = ["workload", "ctrain wall ms", "ctrain CPU ms"]
    for v in variants:
        head += [f"torch {v} wall ms", f"torch {v} CPU ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in ct["results"]:
        row = [r["workload"]]
        for x in [r] + [next((t for t in pt["results"] if t["workload"] == r["workload"] and t["variant"] == v),
                             None) for v in variants]:
            ok = x and x.get("status") == "ok"
            row += [f"{1e3 * x['step_seconds']['median']:.3g}" if ok else "-", cpu_ms(x)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def describe(rec):
    m, v, p = rec["machine"], rec["versions"], rec["peak"]
    peak = f"{fmt(p.get('gflops'))} GFLOP/s ({p.get('gflops_what')}), {fmt(p.get('gbps'))} GB/s ({p.get('gbps_what')})"
    if p.get("timer"):
        peak += f"; timed by {p['timer']}"
    if rec["engine"] == "ctrain":
        sw = f"ctrain {v['ctrain']} (commit {v['commit'][:12]}), {v['blas']}"
    else:
        sw = f"PyTorch {v['torch']} ({v['blas']}, {v['threads']} threads), Python {v['python']}"
    gpu = f", GPU {m['gpu']['name']}" if m.get("gpu") else ""
    return (f"- {rec['engine']}: {sw}; measured peak {peak}\n"
            f"  on {m['hostname']}: {m['cpu_model']}, {m['cpu_cores']} cores{gpu}; {rec['date']}")


def report(ct, pt, torch_missing, commands):
    out = ["# ctrain vs PyTorch", ""]
    out += ["Commands:", ""] + [f"    {c}" for c in commands] + [""]
    out += [describe(ct)]
    if pt:
        out += [describe(pt)]
    env = {k: v for k, v in ct["env"].items() if v is not None}
    out += [f"- environment: {env if env else 'no thread or wait-policy variables set'}", ""]
    if torch_missing:
        out += [f"PyTorch is not installed here ({torch_missing}): ctrain's figures only.", ""]
    lines, notes = table(ct, pt)
    out += lines
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    out += ["", "Rates are medians over the repetitions (the JSON records hold the spread); "
            "the ratio is ctrain's rate over PyTorch's, so above 1 ctrain is faster.", "",
            "Time per step, wall and CPU (the process's user + system time over all its threads; "
            "medians over the repetitions):", ""]
    out += cpu_table(ct, pt)
    return "\n".join(out) + "\n"


def torch_status(python):
    if importlib.util.find_spec("torch") is not None and python == sys.executable:
        return None
    r = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    if r.returncode == 0:
        return None
    last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
    return last


def workload_list(ctrain, rest):
    """The workloads --workload names (ctrain bench --list for all), and
    the other flags."""
    names, others, i = "all", [], 0
    while i < len(rest):
        if rest[i] == "--workload" and i + 1 < len(rest):
            names, i = rest[i + 1], i + 2
            continue
        if rest[i].startswith("--workload="):
            names = rest[i].split("=", 1)[1]
        else:
            others.append(rest[i])
        i += 1
    if names != "all":
        return names.split(","), others
    out = subprocess.run([ctrain, "bench", "--list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()], others


def joined(parts):
    """One record from several runs of one runner: the first's header, every
    run's results, the largest resident size."""
    if not parts:
        return None
    rec = dict(parts[0])
    rec["results"] = [r for part in parts for r in part["results"]]
    rec["max_rss_bytes"] = max(part.get("max_rss_bytes") or 0 for part in parts)
    return rec


def run_record(cmd, path):
    """Runs cmd (which writes the JSON record at path); the record, or None."""
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    if not os.path.exists(path):
        return rc, None
    with open(path) as f:
        rec = json.load(f)
    os.remove(path)
    return rc, rec


def interleaved(a, ctrain, rest, missing, names, others):
    """ctrain's and PyTorch's records, workload by workload (--interleave)."""
    part = os.path.join(a.out, "part.json")
    cts, pts, rc = [], [], 0
    for w in names:
        flags = ["--workload", w] + others
        wrc, rec = run_record([ctrain, "bench"] + flags + ["--json", part], part)
        rc = rc or wrc
        if rec:
            cts.append(rec)
        if not missing:
            _, rec = run_record([a.python, os.path.join(HERE, "torch_bench.py")] + flags + ["--json", part], part)
            if rec:
                pts.append(rec)
    return rc, joined(cts), joined(pts)


def from_records(paths):
    """The table from saved records (--from)."""
    recs = []
    for path in paths:
        with open(path) as f:
            recs.append(json.load(f))
    ct = next((r for r in recs if r.get("engine") == "ctrain"), None)
    pt = next((r for r in recs if r.get("engine") == "pytorch"), None)
    if not ct:
        print("compare: no ctrain record among " + ", ".join(paths), file=sys.stderr)
        return 2
    print(report(ct, pt, None if pt else "no PyTorch record given", ["(from saved records)"]), end="")
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ctrain", help="the ctrain executable (default: build*/tools/ctrain, then PATH)")
    p.add_argument("--python", default=sys.executable, help="the Python that runs the twins")
    p.add_argument("--out", default="bench-out", help="directory for the records and compare.md")
    p.add_argument("--from", dest="records", nargs="+", metavar="JSON",
                   help="make the table from saved records (ctrain's, then PyTorch's) instead of running")
    p.add_argument("--interleave", action="store_true",
                   help="run the two engines workload by workload, one right after the other")
    p.add_argument("--rounds", type=int, default=1, metavar="N",
                   help="with --interleave: repeat it N times and add each ratio's median (default 1)")
    a, rest = p.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]

    if a.records:
        return from_records(a.records)

    ctrain = find_ctrain(a.ctrain)
    if not ctrain:
        print("compare: no ctrain executable found; build it (make build) or pass --ctrain PATH",
              file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    ct_json, pt_json = os.path.join(a.out, "ctrain.json"), os.path.join(a.out, "torch.json")
    # Records of an earlier run in the same --out must not stand in for a
    # runner that fails this time (a CPU record against a GPU run).
    for old in (ct_json, pt_json):
        if os.path.exists(old):
            os.remove(old)
    if a.rounds < 1:
        print(f"compare: --rounds {a.rounds}: it must be 1 or more", file=sys.stderr)
        return 2
    if a.rounds > 1 and not a.interleave:
        print("compare: --rounds needs --interleave", file=sys.stderr)
        return 2
    if a.interleave:
        return run_interleaved(a, ctrain, rest, ct_json, pt_json)
    ct_cmd = [ctrain, "bench"] + rest + ["--json", ct_json]
    print("$ " + " ".join(ct_cmd), flush=True)
    rc = subprocess.run(ct_cmd).returncode
    if not os.path.exists(ct_json):
        print(f"compare: ctrain bench exited {rc} without a record", file=sys.stderr)
        return 1
    commands = [" ".join(["ctrain", "bench"] + rest)]

    missing = torch_missing(a.python)
    pt = None
    if not missing:
        pt_cmd = [a.python, os.path.join(HERE, "torch_bench.py")] + rest + ["--json", pt_json]
        print("\n$ " + " ".join(pt_cmd), flush=True)
        prc = subprocess.run(pt_cmd).returncode
        if os.path.exists(pt_json):
            with open(pt_json) as f:
                pt = json.load(f)
            commands.append(" ".join(["python3", "benchmarks/torch_bench.py"] + rest))
        else:
            missing = f"torch_bench.py exited {prc} without a record"
    with open(ct_json) as f:
        ct = json.load(f)
    write_report(a.out, ct, pt, missing, commands)
    return rc


def torch_missing(python):
    """Why PyTorch cannot run here (said on the terminal), or None."""
    missing = torch_status(python)
    if missing:
        print(f"\ncompare: PyTorch is not installed here ({missing}); reporting ctrain's figures only",
              flush=True)
    return missing


def write_report(out, ct, pt, missing, commands, extra=()):
    """The ratio table (and extra lines) into out/compare.md and on the
    terminal."""
    text = report(ct, pt, missing, commands) + "".join(line + "\n" for line in extra)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(text)
    print("\n" + text, end="")
    print(f"\n(records and compare.md in {out}; {datetime.date.today()})")


def run_interleaved(a, ctrain, rest, ct_json, pt_json):
    missing = torch_missing(a.python)
    names, others = workload_list(ctrain, rest)
    rounds = []
    for i in range(a.rounds):
        if a.rounds > 1:
            print(f"\ncompare: round {i + 1} of {a.rounds}", flush=True)
        rounds.append(interleaved(a, ctrain, rest, missing, names, others))
    _, ct, pt = rounds[0]
    rc = max(r[0] for r in rounds)
    if not ct:
        print(f"compare: ctrain bench exited {rc} without a record", file=sys.stderr)
        return 1
    if not pt and not missing:
        missing = "torch_bench.py wrote no record"
    for rec, path in ((ct, ct_json), (pt, pt_json)):
        if rec:
            with open(path, "w") as f:
                json.dump(rec, f, indent=1)
    commands = ["interleaved, workload by workload: " + " ".join(["ctrain", "bench"] + rest)]
    if pt:
        commands.append(" ".join(["python3", "benchmarks/torch_bench.py"] + rest))
    extra = []
    if a.rounds > 1:
        for i, (_, c, t) in enumerate(rounds):
            for rec, name in ((c, "ctrain"), (t, "torch")):
                if rec:
                    with open(os.path.join(a.out, f"{name}-round{i + 1}.json"), "w") as f:
                        json.dump(rec, f, indent=1)
        extra = rounds_table(rounds)
    write_report(a.out, ct, pt, missing, commands, extra)
    return rc


def round_ratio(ct, pt, workload, variant):
    """ctrain's rate over PyTorch's for one workload in one round, or None."""
    if not ct or not pt:
        return None
    r = next((x for x in ct["results"] if x["workload"] == workload), None)
    t = next((x for x in pt["results"] if x["workload"] == workload and x["variant"] == variant), None)
    v_ct, v_pt = (rate(r)[0] if r else None), (rate(t)[0] if t else None)
    if not v_ct or not v_pt or r.get("config") != t.get("config"):
        return None
    return v_ct / v_pt


def rounds_table(rounds):
    """Markdown lines: each workload's ratio in each round, and the median."""
    ct0, pt0 = rounds[0][1], rounds[0][2]
    if not ct0 or not pt0:
        return []
    variants = []
    for r in pt0["results"]:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    n = len(rounds)
    head = ["workload", "ratio to"] + [f"round {i + 1}" for i in range(n)] + ["median"]
    lines = ["", f"Ratios (ctrain / PyTorch) in each of {n} rounds, each round one interleaved pass over "
             "the workloads; the table above is round 1's:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in ct0["results"]:
        for v in variants:
            xs = [round_ratio(c, t, r["workload"], v) for _, c, t in rounds]
            got = sorted(x for x in xs if x is not None)
            if not got:
                continue
            mid = got[len(got) // 2] if len(got) % 2 else (got[len(got) // 2 - 1] + got[len(got) // 2]) / 2
            cells = [f"{x:.2f}" if x is not None else "-" for x in xs]
            lines.append("| " + " | ".join([r["workload"], v] + cells + [f"**{mid:.2f}**"]) + " |")
    return lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
