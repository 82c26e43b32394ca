#!/usr/bin/env bash
# Builds tkv's libFuzzer targets (clang, ASan + UBSan, coverage inside the
# libraries too), replays the seed corpora and saved regressions, then
# fuzzes each target for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS [TARGET...]]
#
# SECONDS per target (default 30; 0 only replays). TARGETs default to
# frame, request, keycodec, reply, backup, repl, watch and shardmap. Exits
# non-zero if any replay or fuzzing run crashed, leaked, hit a sanitizer
# report or broke an invariant; crashing inputs are kept in the scratch
# directory it prints - copy them to tests/fuzz/regressions/fuzz_<target>/
# (not named crash-*: .gitignore ignores those) so the replay step keeps
# testing them.
#
# Environment:
#   TKV_FUZZ_STORE  the store behind fuzz_request: memory (default) or
#                   leveldb - see README.md. The build is configured with
#                   -Dstore=<it> (the other targets do not use the store).
#   TKV_FUZZ_BUILD  build directory (default: build-fuzz-mem in the
#                   repository for the memory store, build-fuzz for LevelDB)
#   TKV_FUZZ_JOBS   targets fuzzed at the same time (default 1; at most 2
#                   on a shared machine)
#   TKV_FUZZ_KEEP   keep the scratch directory (grown corpora, logs) even
#                   when everything passed
#   TKV_FUZZ_KNOWN  reported findings to let through while fuzzing, so it
#                   can look for others (comma-separated tags; fuzz_request.c
#                   lists them - none is open now; storage-faults turns off
#                   fault injection). Replaying regressions ignores it.
#
# The build is configured, if build.ninja is missing, with
#   CC=clang meson setup BUILD -Dfuzz=true -Db_sanitize=address,undefined \
#     -Db_lundef=false -Dc_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=all' \
#     -Dstore=$TKV_FUZZ_STORE
# -fsanitize=fuzzer-no-link instruments libtkvproto and libtkvserver for
# coverage (the top-level meson.build cannot add it); tests/fuzz/meson.build
# adds -fsanitize=fuzzer to the fuzz executables only.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame request keycodec reply backup repl watch shardmap)
store=${TKV_FUZZ_STORE:-memory}
case "$store" in
memory) build=${TKV_FUZZ_BUILD:-$root/build-fuzz-mem} ;;
leveldb) build=${TKV_FUZZ_BUILD:-$root/build-fuzz} ;;
*) echo "run.sh: TKV_FUZZ_STORE must be memory or leveldb, got '$store'" >&2; exit 2 ;;
esac
jobs=${TKV_FUZZ_JOBS:-1}

case "$seconds" in
'' | *[!0-9]*) echo "run.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2 ;;
esac
for t in "${targets[@]}"; do
    [ -f "$here/fuzz_$t.c" ] || { echo "run.sh: no target '$t'" >&2; exit 2; }
done

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false \
        "-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -g1" -Dstore="$store" \
        >/dev/null || {
        echo "run.sh: meson setup failed (clang, libclang-rt-dev, meson installed?)" >&2
        exit 2
    }
else
    # An existing build keeps its options: switch its store if it differs.
    configured=$(meson introspect --buildoptions "$build" 2>/dev/null | python3 -c \
        'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "store"][0])' \
        2>/dev/null)
    if [ "$configured" != "$store" ]; then
        meson configure "$build" -Dstore="$store" >/dev/null || {
            echo "run.sh: cannot switch $build to -Dstore=$store" >&2
            exit 2
        }
    fi
fi
echo "run.sh: fuzz_request runs on the $store store (build $build)"
ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz_}" >/dev/null || {
    echo "run.sh: build failed" >&2
    exit 2
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/tkv-fuzz-run.XXXXXX")
echo "run.sh: scratch directory $scratch"
# fuzz_request's data directories: on tmpfs when there is one (LevelDB
# syncs every commit), removed at the end even if a crash left them behind.
if [ -z "${TKV_FUZZ_DIR:-}" ]; then
    if [ -w /dev/shm ]; then
        TKV_FUZZ_DIR=$(mktemp -d /dev/shm/tkv-fuzz-run.XXXXXX)
    else
        TKV_FUZZ_DIR=$scratch/data
        mkdir -p "$TKV_FUZZ_DIR"
    fi
    export TKV_FUZZ_DIR
    trap 'rm -rf "$TKV_FUZZ_DIR"' EXIT
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

max_len() {
    case "$1" in
    frame) echo 16384 ;;   # repeated up to 16 times: enough to fill the reader
    request) echo 4096 ;;  # up to 256 requests
    reply) echo 4096 ;;    # a few replies, each decoded for every command
    backup) echo 4096 ;;   # a backup of a few dozen records
    *) echo 1024 ;;
    esac
}

# Per-input leak checks re-run inputs under LSan whenever they allocate more
# than they free; the request target's engine caches by design, so there
# they only cost time. LSan still checks at exit.
leak_flag() {
    [ "$1" = request ] && echo "-detect_leaks=0" || echo "-detect_leaks=1"
}

failed=0
declare -A result

# ---- replay ------------------------------------------------------------------
for t in "${targets[@]}"; do
    bin="$build/tests/fuzz/fuzz_$t"
    log="$scratch/replay-$t.log"
    if ! (cd "$scratch" && env -u TKV_FUZZ_KNOWN "$bin" -runs=0 \
        "$here/corpus/fuzz_$t" >"$log" 2>&1); then
        echo "run.sh: replaying corpus/fuzz_$t FAILED (log: $log)"
        grep -E "INVARIANT|ERROR|SUMMARY|^  " "$log" | head -5
        failed=1
    fi
    for f in "$here/regressions/fuzz_$t"/*; do
        [ -f "$f" ] || continue
        rlog="$scratch/replay-$t-$(basename "$f").log"
        if ! (cd "$scratch" && env -u TKV_FUZZ_KNOWN "$bin" "$f" >"$rlog" 2>&1); then
            echo "run.sh: regression fuzz_$t/$(basename "$f") FAILS (log: $rlog)"
            grep -E "INVARIANT|ERROR: |SUMMARY|^  " "$rlog" | head -3 | sed 's/^/    /'
            failed=1
        fi
    done
done

# ---- fuzz ---------------------------------------------------------------------
fuzz_one() {
    local t=$1 bin="$build/tests/fuzz/fuzz_$1"
    local corpus="$scratch/corpus-$t" log="$scratch/fuzz-$t.log"
    mkdir -p "$corpus" "$scratch/artifacts"
    cp "$here/corpus/fuzz_$t"/* "$corpus"/ 2>/dev/null
    (cd "$scratch" && "$bin" "$corpus" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
        -timeout=30 -print_final_stats=1 "$(leak_flag "$t")" \
        -artifact_prefix="$scratch/artifacts/$t-" >"$log" 2>&1)
}

if [ "$seconds" -gt 0 ]; then
    pids=()
    names=()
    for t in "${targets[@]}"; do
        echo "run.sh: fuzzing $t for ${seconds}s"
        fuzz_one "$t" &
        pids+=($!)
        names+=("$t")
        if [ ${#pids[@]} -ge "$jobs" ]; then
            wait "${pids[0]}"
            result[${names[0]}]=$?
            pids=("${pids[@]:1}")
            names=("${names[@]:1}")
        fi
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}"
        result[${names[$i]}]=$?
    done

    echo
    printf '%-10s %14s %10s  %s\n' target executions new_units result
    for t in "${targets[@]}"; do
        log="$scratch/fuzz-$t.log"
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
        status=ok
        if [ "${result[$t]}" -ne 0 ]; then
            status="FAILED (exit ${result[$t]}, log: $log)"
            failed=1
        fi
        printf '%-10s %14s %10s  %s\n' "$t" "${execs:-?}" "${units:-?}" "$status"
        if [ "${result[$t]}" -ne 0 ]; then
            grep -E "INVARIANT|ERROR: |SUMMARY|^  " "$log" | head -4 | sed 's/^/    /'
        fi
    done
    ls "$scratch/artifacts"/* >/dev/null 2>&1 &&
        echo "run.sh: inputs that failed are in $scratch/artifacts/"
fi

if [ $failed -eq 0 ] && [ -z "${TKV_FUZZ_KEEP:-}" ]; then
    rm -rf "$scratch"
else
    echo "run.sh: logs and inputs kept in $scratch"
fi
exit $failed
