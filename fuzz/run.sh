#!/usr/bin/env bash
# run.sh — a short libFuzzer run of every harness in fuzz/ (wal2json parser,
# replication wire decoder, config loader), for CI and by hand.
#
#   bash fuzz/run.sh [TARGET...]       default: fuzz_w2j fuzz_wire fuzz_config fuzz_redact
#                                      fuzz_copytext
#   FUZZ_SECONDS=60                    time budget per target (default 60)
#   FUZZ_BUILD_DIR=DIR                 where fuzz/build.sh builds (default <source>/build-fuzz)
#   FUZZ_KEEP_CORPUS=1                 keep the generated corpus directory
#
# Seed corpora are generated at run time into a temporary directory (nothing
# generated is committed): one file per line of tests/fixtures/wal2json/*.jsonl;
# the same messages wrapped in a 25-byte 'w' XLogData header plus keepalives;
# deploy/examples/*.json and a clinic config written by tests/harness; for the
# redaction harness, passwords in keyword and URI connection strings; for the COPY
# text codec, hostile values and escaped lines.
# Dictionaries: fuzz/w2j.dict, fuzz/config.dict.
# A crash, leak or sanitizer report fails the run; the reproducer is kept in
# FUZZ_BUILD_DIR/artifacts/ (replay: FUZZ_BUILD_DIR/fuzz_w2j ARTIFACT).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
((${#targets[@]})) || targets=(fuzz_w2j fuzz_wire fuzz_config fuzz_redact fuzz_copytext)

bash "$root/fuzz/build.sh" "$build"

work=$(mktemp -d /tmp/walbridge-fuzz.XXXXXX)
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ ${FUZZ_KEEP_CORPUS:-0} == 1 ]]; then
        echo "fuzz/run.sh: kept corpus in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# 8 big-endian bytes of a decimal number, as printf escapes.
be64() {
    local v=$1 i s=""
    for ((i = 56; i >= 0; i -= 8)); do
        s+=$(printf '\\x%02x' $(((v >> i) & 255)))
    done
    printf '%s' "$s"
}

seed_w2j() {
    local dir=$work/fuzz_w2j n=0 f line
    mkdir -p "$dir"
    for f in "$root"/tests/fixtures/wal2json/*.jsonl; do
        while IFS= read -r line || [[ -n $line ]]; do
            [[ -n $line ]] || continue
            n=$((n + 1))
            printf '%s' "$line" >"$dir/seed-$n"
        done <"$f"
    done
}

seed_wire() {
    local dir=$work/fuzz_wire n=0 f hdr
    mkdir -p "$dir"
    hdr="w$(be64 22369624)$(be64 22369672)$(be64 817657565715963)"
    for f in "$work"/fuzz_w2j/seed-*; do
        n=$((n + 1))
        { printf '%b' "$hdr"; cat "$f"; } >"$dir/xlog-$n"
    done
    printf '%b' "k$(be64 22369672)$(be64 817657565715963)\\x01" >"$dir/keepalive-1"
    printf '%b' "k$(be64 0)$(be64 0)\\x00" >"$dir/keepalive-0"
    printf '%b' "w$(be64 0)$(be64 0)$(be64 0)" >"$dir/xlog-empty"
    printf 'w' >"$dir/short"
}

seed_config() {
    local dir=$work/fuzz_config f n=0
    mkdir -p "$dir"
    for f in "$root"/deploy/examples/*.json; do
        n=$((n + 1))
        cp "$f" "$dir/example-$n.json"
    done
    (
        # shellcheck source=../tests/harness/clinic_config.sh
        source "$root/tests/harness/clinic_config.sh"
        export SOURCE_DSN="host=127.0.0.1 port=5432 user=postgres dbname=src"
        export TARGET_DSN="postgresql://postgres:secret@127.0.0.1:5433/dst?sslmode=verify-full"
        export WB_TMP=/tmp
        wb_write_config "$dir/clinic.json" \
            '"stream": { "batch_max_rows": 50, "heartbeat_interval_s": 5 }' \
            '"backfill": { "batch_rows": 1000 }'
        wb_write_config "$dir/clinic-two.json" --tables orders,patients,doctors,offices,profiles
    )
}

seed_redact() {
    local dir=$work/fuzz_redact form
    mkdir -p "$dir"
    for form in 0 1 2 3 4; do
        printf '%b' "\\x0${form}Src-pw-7Kq9xVZt\nhost=127.0.0.1 port=5432 user=wb dbname=postgres" >"$dir/kw-$form"
        printf '%b' "\\x0${form}Tgt.pw~3M\n127.0.0.1:5432/postgres?sslmode=verify-full&sslrootcert=/etc/ca.crt" >"$dir/uri-$form"
        printf '%b' "\\x0${form}abc123def\n'x y' password=other dbname='a\\\\'b' options='-c a=b'" >"$dir/quote-$form"
    done
}

seed_copytext() {
    local dir=$work/fuzz_copytext
    mkdir -p "$dir"
    printf '%b' '\x02it'"'"'s "q"\0\0back\\slash \\N\0tab\there\nnl\r\0\x01\x1f\x7f' >"$dir/values"
    printf '%b' '\x001\tAlice\t\\N\t\\\\\\t\\n\tend' >"$dir/line"
    printf '%b' '\xff\0\0\0' >"$dir/nulls"
}

seed_w2j
seed_wire
seed_config
seed_redact
seed_copytext

mkdir -p "$build/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
    corpus=$work/$t
    mkdir -p "$corpus"
    dict=()
    case $t in
    fuzz_w2j | fuzz_wire) dict=(-dict="$root/fuzz/w2j.dict") ;;
    fuzz_config) dict=(-dict="$root/fuzz/config.dict") ;;
    esac
    echo "==== $t: ${seconds}s, $(find "$corpus" -type f | wc -l) seeds ===="
    if ! "$build/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$corpus" \
        >"$build/$t.log" 2>&1; then
        status=1
        echo "fuzz/run.sh: $t FAILED; reproducer(s):" >&2
        ls -1 "$build/artifacts/$t-"* >&2 2>/dev/null || true
        grep -E -A25 "ERROR: |runtime error|deadly signal" "$build/$t.log" | head -n 60 >&2 || true
    else
        grep -E "stat::number_of_executed_units|cov: " "$build/$t.log" | tail -n 2
        echo "$t: no crash (log: $build/$t.log)"
    fi
done
exit "$status"
