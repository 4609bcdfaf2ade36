#!/bin/sh
# Eval speed of a neuron-pruned MLP before and after `ctrain prune`
# (docs/compression.md): the same weights masked at full width, and the
# physically smaller model. Each is evaluated REPS times on MNIST's 60,000
# training images (so the products dominate the data loading) on one
# device, and the best wall time is printed; the ratio is the speed-up.
# Run it on a quiet machine:
#
#   benchmarks/compression_eval_speed.sh build/tools/ctrain neuron50.safetensors small.safetensors [cpu|cuda] [REPS]
#
# where neuron50.safetensors comes from
#   ctrain train --prune-sparsity 0.5 --prune-structure neuron --prune-scope layer \
#       --prune-start 938 --prune-end 6566 --prune-every 100 --save neuron50.safetensors
# and small.safetensors from
#   ctrain prune --checkpoint neuron50.safetensors --out small.safetensors
set -eu
CTRAIN=$1 FULL=$2 SMALL=$3 DEVICE=${4:-cpu} REPS=${5:-5}
best() {
    b=""
    i=0
    while [ "$i" -lt "$REPS" ]; do
        t0=$(date +%s.%N)
        "$CTRAIN" eval --checkpoint "$1" --split train --device "$DEVICE" --batch-size 1000 > /dev/null
        t1=$(date +%s.%N)
        t=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
        i=$((i + 1))
    done
    echo "$b"
}
"$CTRAIN" eval --checkpoint "$FULL" --device "$DEVICE"
"$CTRAIN" eval --checkpoint "$SMALL" --device "$DEVICE"
full=$(best "$FULL")
small=$(best "$SMALL")
printf 'full width %.3f s, pruned %.3f s (best of %s, %s): speed-up %.2fx\n' "$full" "$small" "$REPS" "$DEVICE" \
    "$(echo "$full / $small" | bc -l)"
