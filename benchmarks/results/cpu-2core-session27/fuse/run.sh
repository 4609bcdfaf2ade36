#!/bin/bash
# Fused (the default) against CTRAIN_NO_FUSE=1, the same binary, one right
# after the other, three pairs a workload and precision, then one --profile
# each. Run from the repository root.
out=benchmarks/results/cpu-2core-session27/fuse
b=build-cpu/tools/ctrain
{ date; uptime; } > $out/load.txt
: > $out/steps.txt
: > $out/profile.txt
for prec in fp32 bf16; do
  for w in cnn-mnist mlp-mnist; do
    for pair in 1 2 3; do
      for nf in 0 1; do
        echo "== $w $prec pair $pair CTRAIN_NO_FUSE=$nf" >> $out/steps.txt
        CTRAIN_NO_FUSE=$nf $b bench --workload $w --precision $prec 2>&1 | grep -E "^$w " >> $out/steps.txt
      done
    done
    for nf in 0 1; do
      echo "== $w $prec CTRAIN_NO_FUSE=$nf --profile" >> $out/profile.txt
      CTRAIN_NO_FUSE=$nf $b bench --workload $w --precision $prec --profile 2>&1 | sed -n '/time per step by op/,$p' >> $out/profile.txt
    done
  done
done
{ date; uptime; } >> $out/load.txt
