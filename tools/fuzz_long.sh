#!/usr/bin/env bash
# The long fuzzing run: builds the harnesses of tests/fuzz (clang,
# -DCTRAIN_FUZZ=ON, in build-fuzz/ unless BUILD_DIR says otherwise) and
# runs each for SECONDS (default 3600), growing its corpus under
# BUILD_DIR/fuzz-work/; a second run continues from that corpus. The goal
# for a release is about 10^6 executions per harness without a crash
# (docs/reliability.md); the summary prints each harness's count.
#
#   tools/fuzz_long.sh [SECONDS] [BUILD_DIR] [HARNESS...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3600}
build=${2:-build-fuzz}
shift $(( $# < 2 ? $# : 2 ))
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCTRAIN_CUDA=OFF -DCTRAIN_MPI=OFF -DCTRAIN_FUZZ=ON -DCTRAIN_TESTS=OFF -DCTRAIN_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"
exec tests/fuzz/run.sh "$build" "$secs" "$@"
