#!/bin/bash
# Synchronised per-op profiles (ctrain bench --profile), FP32 and BF16,
# and gpt-char's BF16 step with the casts fused and with CTRAIN_NO_FUSE=1,
# three interleaved pairs. Run from the repository root, nothing else running.
d=benchmarks/results/cpu-2core-session30/profiles
{ date; uptime; } > $d/load.txt
for w in gpt-char cnn-mnist; do
  for p in fp32 bf16; do build-cpu/tools/ctrain bench --workload $w --precision $p --profile > $d/$w-$p.txt 2>&1; done
done
for i in 1 2 3; do
  build-cpu/tools/ctrain bench --workload gpt-char --precision bf16 --profile > $d/gpt-char-bf16-fused-$i.txt 2>&1
  CTRAIN_NO_FUSE=1 build-cpu/tools/ctrain bench --workload gpt-char --precision bf16 --profile > $d/gpt-char-bf16-nofuse-$i.txt 2>&1
done
{ date; uptime; } >> $d/load.txt
