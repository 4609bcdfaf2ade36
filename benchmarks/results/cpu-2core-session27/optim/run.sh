#!/bin/bash
# The two optimizer workloads, ctrain and PyTorch eager one after the
# other, eight times: on this VM a memory-bound step moves 2x between
# minutes, so one pair of runs says little. Run from the repository root.
out=benchmarks/results/cpu-2core-session27/optim
{ date; uptime; } > $out/load.txt
: > $out/pairs.txt
for i in $(seq 1 8); do
  echo "== pair $i" >> $out/pairs.txt
  build-cpu/tools/ctrain bench --workload optim-sgd,optim-adamw 2>&1 | grep -E "^optim" | sed 's/^/ctrain /' >> $out/pairs.txt
  python3 benchmarks/torch_bench.py --workload optim-sgd,optim-adamw --device cpu --variants eager 2>&1 \
    | grep -E "^optim" | sed 's/^/torch /' >> $out/pairs.txt
done
{ date; uptime; } >> $out/load.txt
