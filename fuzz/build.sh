#!/usr/bin/env bash
# build.sh — builds the libFuzzer harnesses in fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) against the walbridge library sources.
# Not part of the default gcc/CMake build.
#
#   bash fuzz/build.sh [OUT_DIR]     default OUT_DIR: <source>/build-fuzz
#   CC=clang-16 bash fuzz/build.sh   another clang
#
# Produces OUT_DIR/fuzz_w2j, OUT_DIR/fuzz_wire, OUT_DIR/fuzz_config.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build-fuzz}
cc=${CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz/build.sh: $cc not found (libFuzzer needs clang)" >&2
    exit 2
fi
mkdir -p "$out/obj"

pkgs=(libpq libcjson uuid libmicrohttpd)
read -ra pkg_cflags <<<"$(pkg-config --cflags "${pkgs[@]}")"
read -ra pkg_libs <<<"$(pkg-config --libs "${pkgs[@]}")"
cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer -I"$root"
    -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DWALBRIDGE_VERSION=\"fuzz\"
    "${pkg_cflags[@]}")
# shellcheck disable=SC2054  # one flag with a comma-separated value
san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
libs=("${pkg_libs[@]}" -lm)

# The library: everything CMake puts into walbridge_core (all but main.c),
# instrumented for coverage (fuzzer-no-link) and the sanitizers.
objs=()
for src in "$root"/common/*.c "$root"/backfill/*.c "$root"/cdc/*.c; do
    [[ $(basename "$src") == main.c ]] && continue
    rel=${src#"$root"/}
    obj=$out/obj/${rel//\//_}.o
    if [[ ! -f $obj || $src -nt $obj ]] || [[ -n $(find "$root/common" "$root/cdc" "$root/backfill" -name '*.h' -newer "$obj" -print -quit) ]]; then
        "$cc" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    objs+=("$obj")
done
rm -f "$out/libwalbridge_fuzz.a"
ar rcs "$out/libwalbridge_fuzz.a" "${objs[@]}"

for harness in "$root"/fuzz/fuzz_*.c; do
    name=$(basename "$harness" .c)
    "$cc" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer -Wall -Wextra -Wpedantic \
        "$harness" "$out/libwalbridge_fuzz.a" "${libs[@]}" -o "$out/$name"
    echo "built $out/$name"
done
