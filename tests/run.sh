#!/usr/bin/env bash
# run.sh — the test command (README): builds walbridge, runs every test, then
# rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit
# tests again, failing on any sanitizer report.
#
#   bash tests/run.sh            from anywhere; build dirs go under the source tree
#   WB_JOBS=N                    parallel build jobs (default: nproc)
#   WB_CTEST_ARGS="-R harness"   extra arguments for the first ctest run
#   WALBRIDGE_BUILD_DIR, WALBRIDGE_ASAN_BUILD_DIR   override ./build and ./build-asan
#
# Integration tests start their own PostgreSQL 15 clusters (tests/harness/lib.sh),
# so PostgreSQL 15 + wal2json must be installed (tests/harness/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=${WB_JOBS:-$(nproc 2>/dev/null || echo 2)}
build=${WALBRIDGE_BUILD_DIR:-$root/build}
build_asan=${WALBRIDGE_ASAN_BUILD_DIR:-$root/build-asan}

step() {
    printf '\n==== %s ====\n' "$*"
}

step "build ($build)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWALBRIDGE_SANITIZE=OFF
cmake --build "$build" -j "$jobs"

step "all tests"
all_status=0
# shellcheck disable=SC2086
(cd "$build" && ctest --output-on-failure --timeout 900 ${WB_CTEST_ARGS:-}) 2>&1 |
    tee "$build/ctest-all.log" || all_status=$?
# ctest's own summary ("100% tests passed, 0 tests failed out of 34"), repeated
# as the last line of the run once every stage is done.
summary=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$build/ctest-all.log" | tail -n 1)
total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
failed=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$summary")
# Carry on with the sanitizer run either way, so one run reports everything.

step "sanitizer build ($build_asan)"
cmake -S "$root" -B "$build_asan" -DCMAKE_BUILD_TYPE=Debug -DWALBRIDGE_SANITIZE=ON
cmake --build "$build_asan" -j "$jobs"

step "unit tests under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
log=$build_asan/unit-sanitized.log
status=0
# -V: keep every test's output so reports from tests that still "pass" are seen.
(cd "$build_asan" && ctest -L unit --output-on-failure -V --timeout 600) >"$log" 2>&1 || status=$?
tail -n 40 "$log"
if grep -Eq "LeakSanitizer|AddressSanitizer|runtime error:" "$log"; then
    echo "run.sh: sanitizer report in the unit tests (full log: $log):" >&2
    grep -E -B2 -A20 "LeakSanitizer|AddressSanitizer|runtime error:" "$log" | head -n 120 >&2
    exit 1
fi
if ((status != 0)); then
    echo "run.sh: unit tests failed under the sanitizers (full log: $log)" >&2
    exit 1
fi
if ((all_status != 0)); then
    echo "run.sh: some tests failed in the first run (see its ctest output above);" \
        "the sanitized unit tests passed" >&2
    exit 1
fi
unit_count=$(grep -c "Test *#[0-9]*: unit\." "$log" || true)
if [[ $unit_count == 0 ]]; then
    echo "run.sh: no unit tests ran under the sanitizers" >&2
    exit 1
fi

step "all tests passed (sanitized unit tests: see $log)"

# ---------------------------------------------------------------- fuzz (fuzz/run.sh)
# A short libFuzzer run of each harness (wal2json parser, wire decoder, config
# loader, password redaction, COPY text codec), built with clang apart from the
# gcc build.
# FUZZ_SECONDS per target (default 60: 5 minutes plus a 1-minute build);
# WB_FUZZ=0 skips the stage.
if [[ ${WB_FUZZ:-1} != 0 ]]; then
    step "fuzz: ${FUZZ_SECONDS:-60}s per target"
    if ! command -v clang >/dev/null 2>&1; then
        echo "run.sh: clang not found: the fuzz stage needs it (WB_FUZZ=0 skips it)" >&2
        exit 1
    fi
    if ! FUZZ_SECONDS=${FUZZ_SECONDS:-60} bash "$root/fuzz/run.sh"; then
        echo "run.sh: the fuzzers found a crash (reproducers in ${FUZZ_BUILD_DIR:-$root/build-fuzz}/artifacts)" >&2
        exit 1
    fi
    step "fuzz passed"
fi

printf '\ntests: %d passed, %d failed\n' "$((total - failed))" "$failed"
