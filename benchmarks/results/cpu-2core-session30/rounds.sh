#!/bin/bash
# cnn-mnist and gpt-char against PyTorch, three interleaved rounds, FP32
# then BF16 (autocast). Run from the repository root with nothing else
# running; the load before and after each set goes to load-rounds.txt.
d=benchmarks/results/cpu-2core-session30
: > $d/load-rounds.txt
for p in fp32 bf16; do
  { echo "== $p"; date; uptime; } >> $d/load-rounds.txt
  python3 benchmarks/compare.py --interleave --rounds 3 --ctrain build-cpu/tools/ctrain \
      --workload cnn-mnist,gpt-char --device cpu --precision $p --out $d/rounds-$p > $d/rounds-$p.log 2>&1
  { date; uptime; } >> $d/load-rounds.txt
done
