#!/bin/bash
# ctrain's BF16 step against its own FP32 step, same binary, one right
# after the other, five pairs per model: the VM's slow and fast phases
# last minutes, so only adjacent runs compare. Run from the repository root.
out=benchmarks/results/cpu-2core-session30/bf16-vs-fp32
{ date; uptime; } > $out/load.txt
: > $out/pairs.txt
for w in mlp-mnist cnn-mnist gpt-char lstm-char gru-char; do
  for i in 1 2 3 4 5; do
    for p in fp32 bf16; do
      build-cpu/tools/ctrain bench --workload $w --precision $p 2>&1 | grep -E "^$w " | sed "s/^/$p pair$i /" >> $out/pairs.txt
    done
  done
done
{ date; uptime; } >> $out/load.txt
