#!/usr/bin/env bash
# Preparing a local sandbox whose pool workspace is large (issue 14): a 300 MB / 20,000-file
# workspace against an empty one, with the copy-on-write root (the workspace a lower layer:
# sandbox directory + uppers + container started until its agent answers), beside today's
# copy of the same workspace. Target: the large workspace within 20 ms of the empty one.
# Sides alternate round by round; medians in ms.
# Then the same through `arl-batch run` (the runner's own path; as root the pool's workspace is
# copied once per run, ws_lower.h): 20 one-step jobs per workspace, attempts.prepare_ms median
# and max (the max is the first sandbox's, which waits for the run's one copy as root).
# Usage: bench/cow_prepare.sh [ROUNDS]  (builds the release libraries first, like lib.sh).
set -euo pipefail
rounds=${1:-5}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
build=${BENCH_BUILD:-$src/build-release}
cmake --build "$build" --target arl_core -j2 >/dev/null
tmp=$(mktemp -d -p /var/tmp) # the sandbox uid must reach it: not a 0700 /tmp
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
prog=$tmp/cow_prepare
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -std=c11 -D_GNU_SOURCE -O2 -iquote "$src/runner" "$src/bench/cow_prepare.c" \
	"$build/libarl_core.a" -o "$prog" $(pkg-config --libs yaml-0.1 libcjson sqlite3 libcurl) \
	-lpthread -lm

# 20,000 files, 300 MB: 200 directories of 100 files of 15 KB.
mkdir -p "$tmp/empty" "$tmp/big"
for d in $(seq 1 200); do
	mkdir "$tmp/big/d$d"
	head -c 15000 /dev/urandom >"$tmp/big/d$d/f1"
	for f in $(seq 2 100); do cp "$tmp/big/d$d/f1" "$tmp/big/d$d/f$f"; done
done
[ "$(id -u)" != 0 ] || chown -R 65530:65530 "$tmp/big" "$tmp/empty"
echo "workspace: $(find "$tmp/big" -type f | wc -l) files, $(du -sm "$tmp/big" | cut -f1) MB"

: >"$tmp/cow-empty" && : >"$tmp/cow-big" && : >"$tmp/copy-big"
for r in $(seq 1 "$rounds"); do
	for side in empty big; do
		mkdir "$tmp/st-$side-$r" && chmod 755 "$tmp/st-$side-$r"
		[ "$(id -u)" != 0 ] || chown 65530:65530 "$tmp/st-$side-$r"
		"$prog" "$build/arl-batch-agent" "$tmp/st-$side-$r" "$tmp/$side" 3 2>>"$tmp/skel" |
			tail -n +2 >>"$tmp/cow-$side" # the first round warms the caches
	done
	mkdir "$tmp/st-copy-$r"
	"$prog" "$build/arl-batch-agent" "$tmp/st-copy-$r" "$tmp/big" 1 --copy >>"$tmp/copy-big"
done
e=$(median <"$tmp/cow-empty")
b=$(median <"$tmp/cow-big")
c=$(median <"$tmp/copy-big")
printf 'copy-on-write, empty workspace     %8.2f ms\n' "$e"
printf 'copy-on-write, 300 MB workspace    %8.2f ms  (difference %.2f ms; target <= 20)\n' "$b" \
	"$(echo "$b - $e" | bc -l)"
printf "today's copy of the 300 MB workspace %7.2f ms\n" "$c"
echo "$(median < <(grep -o '[0-9.]* ms' "$tmp/skel" | cut -d' ' -f1)) ms: skeleton of /usr and /etc, once per run (median)"

# Through the runner: 20 jobs, replicas 2, per workspace.
for side in empty big; do
	{
		printf 'version: 1\npools:\n  p: {replicas: 2, workspace: %s}\njobs:\n' "$tmp/$side"
		for j in $(seq 1 20); do
			printf '  - {name: j%s, prepareTimeout: 600s, steps: [{type: Command, command: ["true"]}]}\n' "$j"
		done
	} >"$tmp/run-$side.yaml"
	"$ARL_BATCH" run --progress none -j 2 --db "$tmp/run-$side.db" "$tmp/run-$side.yaml" >/dev/null
	sqlite3 "$tmp/run-$side.db" 'SELECT prepare_ms FROM attempts' >"$tmp/prep-$side"
	printf 'arl-batch run, %-5s workspace: prepare_ms median %6.2f, max %6.0f (20 jobs)\n' "$side" \
		"$(median <"$tmp/prep-$side")" "$(sort -n "$tmp/prep-$side" | tail -n 1)"
done
