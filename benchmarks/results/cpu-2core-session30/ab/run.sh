#!/bin/bash
# The old build (5102f0c, in a worktree at /tmp/oldwt) and the new one
# (build-cpu), one right after the other, five pairs per workload. Run from
# the repository root with nothing else running.
out=benchmarks/results/cpu-2core-session30/ab
old=/tmp/oldwt/build/tools/ctrain new=build-cpu/tools/ctrain
{ date; uptime; } > $out/load.txt
: > $out/old-vs-new.txt
for wp in "gpt-char bf16" "gpt-char fp32" "cnn-mnist bf16" "cnn-mnist fp32" "mlp-mnist bf16"; do
  bash $out/pairs.sh $wp 5 $old $new >> $out/old-vs-new.txt
done
{ date; uptime; } >> $out/load.txt
