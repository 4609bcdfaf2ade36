#!/usr/bin/env bash
# Runs every libFuzzer harness of tests/fuzz for a fixed time each and
# fails on the first crash (docs/reliability.md).
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS_EACH] [HARNESS...]
#
# BUILD_DIR is a -DCTRAIN_FUZZ=ON build (CC=clang). SECONDS_EACH defaults
# to 15 (the CI's short run); tools/fuzz_long.sh runs them for longer.
# Each harness starts from a copy of its committed seeds (tests/fuzz/seeds),
# so the corpus it grows stays out of the tree, under
# BUILD_DIR/fuzz-work/<name>/ with any crash input (crash-*) beside it.
# The executions per harness are printed at the end (and written to
# BUILD_DIR/fuzz-work/summary.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR [SECONDS_EACH] [HARNESS...]}
secs=${2:-15}
shift $(( $# < 2 ? $# : 2 ))
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
    harnesses=(idx idx_gz csv cifar safetensors checkpoint config text_vocab vocab_json tokens)
fi
work="$build/fuzz-work"
mkdir -p "$work"
summary="$work/summary.txt"
: >"$summary"
# One thread per harness: the models and datasets are tiny, and OpenMP's
# thread start-up would only slow every execution down.
export OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TMPDIR="$work"
failed=0
for name in "${harnesses[@]}"; do
    exe="$build/tests/fuzz/fuzz_$name"
    [[ -x $exe ]] || { echo "run.sh: no $exe (configure with CC=clang -DCTRAIN_FUZZ=ON)"; exit 1; }
    corpus="$work/$name"
    mkdir -p "$corpus"
    cp -n "$here/seeds/$name"/* "$corpus/" 2>/dev/null || true
    log="$work/$name.log"
    # -close_fd_mask=2: the library's error messages would flood the log;
    # libFuzzer keeps its own and the sanitizers' reports on a copy of stderr.
    # 8 KiB inputs hold two CIFAR records; -timeout catches hangs.
    if "$exe" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2 \
        -print_final_stats=1 -artifact_prefix="$work/$name-" "$corpus" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed=1
    fi
    rm -f "$work"/ctrain-fuzz-* # the harnesses' input files
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    printf '%-12s %-6s %10s execs in %ss  %s\n' "$name" "$status" "${execs:-?}" "$secs" "$cov" | tee -a "$summary"
    if [[ $status == CRASH ]]; then
        echo "---- fuzz_$name: last lines of $log"
        tail -40 "$log"
    fi
done
if ((failed)); then
    echo "run.sh: a harness crashed; its input is $work/<name>-crash-* (rerun: fuzz_<name> FILE)"
    exit 1
fi
