#!/usr/bin/env bash
# The outside-consumer test: install a built ctrain into a temporary prefix,
# then build programs against the installed copy the two ways a user would,
# each with the shared and the static library, and run them:
#
#   1. CMake:      find_package(ctrain), ctrain::ctrain / ctrain::ctrain_static
#   2. pkg-config: cc app.c $(pkg-config --cflags --libs ctrain), and --static
#
# plus the program of README.md's C API section (pkg-config, shared). Also
# checks the shared library's SONAME, that it exports only ct_* names, and
# that the installed `ctrain` tool runs.
#
#   tests/consumer/run.sh [BUILD_DIR]       (default: build; must be built)
#
# Nothing outside a temporary directory is written; CC picks the compiler.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
here=$root/tests/consumer
cc=${CC:-cc}
[[ -f $build/CMakeCache.txt ]] || { echo "run.sh: $build is not a CMake build directory" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
step() { printf -- '-- %s\n' "$*"; }
die() { echo "run.sh: FAILED: $*" >&2; exit 1; }

step "installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; die "install"; }
so=$(find "$prefix" -name 'libctrain.so' | head -n 1)
[[ -n $so ]] || die "no libctrain.so installed"
libdir=$(dirname "$so")

step "SONAME and exports of $so"
major=$(sed -n 's/^#define CTRAIN_VERSION_MAJOR \([0-9]*\).*/\1/p' "$prefix/include/ctrain/version.h")
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[[ $soname == "libctrain.so.$major" ]] || die "SONAME is '$soname', expected libctrain.so.$major"
echo "   SONAME $soname"
others=$(nm -D --defined-only "$so" | awk '$3 !~ /^ct_/ {print $3}')
[[ -z $others ]] || die "libctrain.so exports names outside the API: $others"
echo "   $(nm -D --defined-only "$so" | wc -l) exported functions, all ct_*"

# Runs a built consumer and checks how it links libctrain: "shared" (it
# needs the SONAME) or "static" (it does not).
check() {
    local exe=$1 kind=$2 needed
    needed=$(readelf -d "$exe" | grep -c "NEEDED.*\[libctrain\.so" || true)
    if [[ $kind == shared && $needed -ne 1 ]]; then die "$exe does not link libctrain.so"; fi
    if [[ $kind == static && $needed -ne 0 ]]; then die "$exe links libctrain.so, not libctrain.a"; fi
    "$exe" || die "$exe exited with $?"
}

for kind in shared static; do
    step "CMake find_package(ctrain), $kind"
    flag=OFF; [[ $kind == static ]] && flag=ON
    CC=$cc cmake -S "$here" -B "$tmp/cmake-$kind" -DCMAKE_PREFIX_PATH="$prefix" -DCONSUMER_STATIC=$flag \
        >"$tmp/cmake-$kind.log" 2>&1 || { cat "$tmp/cmake-$kind.log"; die "configuring the consumer ($kind)"; }
    cmake --build "$tmp/cmake-$kind" >>"$tmp/cmake-$kind.log" 2>&1 ||
        { cat "$tmp/cmake-$kind.log"; die "building the consumer ($kind)"; }
    check "$tmp/cmake-$kind/consumer" $kind
done

export PKG_CONFIG_PATH=$libdir/pkgconfig
step "pkg-config ctrain $(pkg-config --modversion ctrain), shared"
# shellcheck disable=SC2046  # pkg-config's output is meant to be split
$cc -std=c11 -Wall -Wextra -Werror "$here/consumer.c" -o "$tmp/pc-shared" \
    $(pkg-config --cflags --libs ctrain) -Wl,-rpath,"$libdir"
check "$tmp/pc-shared" shared

step "pkg-config --static, libctrain.a"
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror "$here/consumer.c" -o "$tmp/pc-static" \
    $(pkg-config --cflags ctrain) "$libdir/libctrain.a" $(pkg-config --libs --static ctrain | sed 's/-lctrain\b//')
check "$tmp/pc-static" static

step "README.md's C API program"
awk '/^## The C API/ {on = 1} on && /^```c$/ {code = 1; next} code && /^```$/ {exit} code' \
    "$root/README.md" >"$tmp/readme.c"
[[ -s $tmp/readme.c ]] || die "no \`\`\`c block under '## The C API' in README.md"
# shellcheck disable=SC2046
$cc -std=c11 -Wall -Wextra -Werror "$tmp/readme.c" -o "$tmp/readme" \
    $(pkg-config --cflags --libs ctrain) -Wl,-rpath,"$libdir"
check "$tmp/readme" shared

step "the installed ctrain tool"
"$prefix/bin/ctrain" info | head -n 1

step "all passed"
