#!/bin/bash
# A second set after the local CI: cnn-mnist and gpt-char only, seven
# adjacent pairs each (fp32 then bf16, the same binary). Run from the
# repository root with nothing else running.
out=benchmarks/results/cpu-2core-session30/bf16-vs-fp32
{ date; uptime; } > $out/load7.txt
: > $out/pairs7.txt
for w in cnn-mnist gpt-char; do
  for i in 1 2 3 4 5 6 7; do
    for p in fp32 bf16; do
      build-cpu/tools/ctrain bench --workload $w --precision $p 2>&1 | grep -E "^$w " | sed "s/^/$p pair$i /" >> $out/pairs7.txt
    done
  done
done
{ date; uptime; } >> $out/load7.txt
