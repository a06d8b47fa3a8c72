#!/usr/bin/env bash
# shellcheck disable=SC2154 # m_* and the per-side figures are set with declare "name=..."
# Wall time of N one-step `true` jobs at -j 2, every result recorded in SQLite, beside
# `xargs -P 2` running the same N commands and a shell loop starting the same bwrap sandboxes
# two at a time, and GNU parallel (`parallel -j 2 --joblog`) running the same N commands.
# Each side's CPU time (user + sys, its processes and theirs) is printed too: on a shared
# 2-core machine the wall times swing with the load, the CPU times much less.
# Usage: bench/local_throughput.sh [N] [ROUNDS]  (builds a release binary first)
# Env: BENCH_TSV=file appends machine-readable rows for bench/run_all.sh;
#      ARL_BATCH=path measures that arl-batch binary instead (nothing is built), e.g. to
#      compare two builds in turn.
set -euo pipefail
n=${1:-1000}
rounds=${2:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for iso in none bwrap; do
	cat >"$tmp/bench-$iso.yaml" <<YAML
version: 1
pools:
  p: {replicas: 2, isolation: $iso}
jobs:
  - name: "t-{{ item.i }}"
    foreach: {file: items.jsonl}
    steps:
      - {type: Command, command: ["true"]}
YAML
done
seq 1 "$n" | sed 's/.*/{"i": &}/' >"$tmp/items.jsonl"

bwrap_argv=$(bare_bwrap_argv "$tmp/ws")
mkdir -p "$tmp/ws"

declare -A t c
have_parallel=
if parallel --version 2>/dev/null | grep -q 'GNU parallel'; then have_parallel=1; else echo "GNU parallel is not installed (Debian package parallel): that comparison is skipped"; fi

# The sides; $r is the round. Their own output is not part of the measure.
side_xargs() { seq 1 "$n" | xargs -P 2 -n 1 sh -c 'true' _; }
side_parallel() { seq 1 "$n" | parallel -j 2 --joblog "$tmp/joblog-$r" sh -c true _; }
side_none() { (cd "$tmp" && "$bin" run --db "$tmp/none-$r.db" --progress none -j 2 bench-none.yaml 2>/dev/null); }
side_bwraploop() { seq 1 "$n" | xargs -P 2 -n 1 sh -c "bwrap $bwrap_argv true" _; }
side_bwrap() { (cd "$tmp" && "$bin" run --db "$tmp/bwrap-$r.db" --progress none -j 2 bench-bwrap.yaml 2>/dev/null); }

# Wall (bash's `time`: real) and CPU (user + sys of the side's processes, children included).
for r in $(seq 1 "$rounds"); do
	# Alternate the sides within a round so that machine noise hits both.
	time_side xargs
	[ -z "$have_parallel" ] || time_side parallel
	time_side none
	time_side bwraploop
	time_side bwrap
done
recorded=$(sqlite3 "$tmp/bwrap-1.db" "SELECT count(*) FROM jobs WHERE state='Succeeded'")
recorded_none=$(sqlite3 "$tmp/none-1.db" "SELECT count(*) FROM jobs WHERE state='Succeeded'")

printf '%d jobs, -j 2, median of %d rounds (seconds); every arl-batch result in SQLite (%s + %s recorded)\n' \
	"$n" "$rounds" "$recorded_none" "$recorded"
printf '%-40s %8s %8s\n' "side" "wall" "cpu"
for k in xargs parallel none bwraploop bwrap; do
	[ -n "${t[$k]:-}" ] || continue
	m=$(echo "${t[$k]}" | tr ' ' '\n' | grep . | median)
	mc=$(echo "${c[$k]}" | tr ' ' '\n' | grep . | median)
	declare "m_$k=$m" "c_$k=$mc"
	case $k in
	xargs) label="xargs -P 2 sh -c true" ;;
	parallel) label="parallel -j 2 --joblog sh -c true" ;;
	none) label="arl-batch, isolation: none" ;;
	bwraploop) label="xargs -P 2 bwrap ... true (bare loop)" ;;
	bwrap) label="arl-batch, isolation: bwrap" ;;
	esac
	printf '%-40s %8.3f %8.3f\n' "$label" "$m" "$mc"
done
r() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
tsv local "N=$n isolation none: wall s (vs xargs -P 2)" "$(printf %.3f "$m_none")" "$(printf %.3f "$m_xargs")" "$(r "$m_none" "$m_xargs")" "target <= 1.3"
[ -z "$have_parallel" ] || tsv local "N=$n isolation none: wall s (vs parallel --joblog)" "$(printf %.3f "$m_none")" "$(printf %.3f "$m_parallel")" "$(r "$m_none" "$m_parallel")" "target <= 0.33 (3x faster)"
tsv local "N=$n isolation bwrap: wall s (vs bare bwrap loop)" "$(printf %.3f "$m_bwrap")" "$(printf %.3f "$m_bwraploop")" "$(r "$m_bwrap" "$m_bwraploop")" "target <= 1.2; $recorded recorded"
tsv local "N=$n isolation none: CPU s (vs xargs -P 2)" "$(printf %.3f "$c_none")" "$(printf %.3f "$c_xargs")" "$(r "$c_none" "$c_xargs")" "user+sys, children included; steadier than wall"
tsv local "N=$n isolation bwrap: CPU s (vs bare bwrap loop)" "$(printf %.3f "$c_bwrap")" "$(printf %.3f "$c_bwraploop")" "$(r "$c_bwrap" "$c_bwraploop")" "user+sys, children included; steadier than wall"
[ -z "$have_parallel" ] || printf 'ratio none/parallel: %.2f\n' "$(r "$m_none" "$m_parallel")"
printf 'ratio none/xargs: %.2f   ratio bwrap/bare-bwrap: %.2f   (cpu: %.2f and %.2f)\n' \
	"$(echo "$m_none / $m_xargs" | bc -l)" "$(echo "$m_bwrap / $m_bwraploop" | bc -l)" \
	"$(echo "$c_none / $c_xargs" | bc -l)" "$(echo "$c_bwrap / $c_bwraploop" | bc -l)"
