#!/bin/sh
# Builds the fuzz target with clang, replays a seed corpus made from the example and corpus
# job files, then fuzzes for ${FUZZ_SECONDS:-60} seconds. Any crash, leak or sanitizer report
# fails the script.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
CC=clang cmake -S "$src" -B "$build" -DARL_FUZZ=ON -DARL_SANITIZE=address,undefined >/dev/null
cmake --build "$build" --target fuzz_jobfile -j2 >/dev/null
corpus="$build/fuzz-corpus"
mkdir -p "$corpus"
cp "$src"/jobs/*.yaml "$src"/tests/jobfiles/valid/*.yaml "$src"/tests/jobfiles/invalid/*.yaml "$corpus"/
"$build/tests/fuzz/fuzz_jobfile" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=65536 \
	-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/" "$corpus"
echo "fuzz: no crash, leak or sanitizer report"
