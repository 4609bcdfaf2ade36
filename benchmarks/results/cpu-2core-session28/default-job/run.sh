#!/bin/bash
# make train's job (MLP 784-512-256-10, batch 64, AdamW; 2 epochs) and its
# PyTorch twin, one after the other, six pairs. Run from the repository root.
out=benchmarks/results/cpu-2core-session28/default-job
: > $out/uptime.txt
for i in 1 2 3 4 5 6; do
  uptime >> $out/uptime.txt
  build-cpu/tools/ctrain train --epochs 2 --metrics $out/ctrain_$i.jsonl > /dev/null
  python3 benchmarks/torch_mnist_train.py --epochs 2 --json $out/torch_$i.jsonl > /dev/null
done
uptime >> $out/uptime.txt
