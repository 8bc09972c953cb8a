#!/bin/sh
# fuzz.sh BUILD SECONDS NAME... — runs fuzz_NAME from BUILD for SECONDS each,
# starting from fuzz/corpus/NAME (plus the real model files for gguf).
# Prints each fuzzer's executions and fails on any crash.
set -eu
build=$1; seconds=$2; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/crashes"
for name in "$@"; do
    work="$build/corpus-$name"
    rm -rf "$work"; mkdir -p "$work"
    cp "$root/fuzz/corpus/$name/"* "$work/" 2>/dev/null || true
    if [ "$name" = gguf ] && [ -f "$root/../shared/models/stories260K/stories260K.gguf" ]; then
        cp "$root/../shared/models/stories260K/stories260K.gguf" "$work/"
    fi
    echo "fuzz: $name for ${seconds}s"
    "$build/fuzz_$name" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$build/crashes/$name-" -print_final_stats=1 "$work" 2>"$build/fuzz-$name.log" || {
        tail -40 "$build/fuzz-$name.log"; echo "fuzz: $name FAILED"; exit 1; }
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$build/fuzz-$name.log" | sed "s/^/fuzz: $name: /"
done
echo "fuzz: all fuzzers ran clean"
