#!/usr/bin/env bash
# shellcheck disable=SC2154 # the per-side figures are set with declare "name=..."
# Multi-step jobs in local containers (issue 14): J jobs of 5 one-line steps at -j 2, every
# result recorded in SQLite, beside J x 5 bare `bwrap ... true` sandboxes at `xargs -P 2`
# (what the steps cost when each was a sandbox of its own). Target: arl-batch at least 2x
# faster (ratio <= 0.5), aiming for 3x. Wall and CPU (user + sys, children included) medians.
# Usage: bench/local_steps.sh [J] [ROUNDS]  (builds a release binary first; ARL_BATCH=path
# measures that one instead). Env: BENCH_TSV=file appends rows for bench/run_all.sh.
set -euo pipefail
jobs=${1:-200}
rounds=${2:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
steps=$((jobs * 5))

cat >"$tmp/steps.yaml" <<YAML
version: 1
pools:
  p: {replicas: 2}
jobs:
  - name: "t-{{ item.i }}"
    foreach: {file: items.jsonl}
    steps:
      - {type: Command, command: ["sh", "-c", "echo one > /workspace/a"]}
      - {type: Command, command: ["cat", "/workspace/a"]}
      - {type: Command, command: ["true"]}
      - {type: Command, command: ["sh", "-c", "echo \$HOME"]}
      - {type: Command, command: ["true"]}
YAML
seq 1 "$jobs" | sed 's/.*/{"i": &}/' >"$tmp/items.jsonl"
mkdir -p "$tmp/ws"
bwrap_argv=$(bare_bwrap_argv "$tmp/ws")

side_bwraploop() { seq 1 "$steps" | xargs -P 2 -n 1 sh -c "bwrap $bwrap_argv true" _; }
side_steps() { (cd "$tmp" && "$bin" run --db "$tmp/steps-$r.db" --progress none -j 2 steps.yaml 2>/dev/null); }

declare -A t c
for r in $(seq 1 "$rounds"); do
	time_side bwraploop
	time_side steps
done
recorded=$(sqlite3 "$tmp/steps-1.db" "SELECT count(*) FROM jobs WHERE state='Succeeded'")
printf '%d jobs x 5 steps, -j 2, median of %d rounds (seconds); %s jobs Succeeded\n' "$jobs" "$rounds" "$recorded"
printf '%-44s %8s %8s\n' "side" "wall" "cpu"
for k in bwraploop steps; do
	m=$(echo "${t[$k]}" | tr ' ' '\n' | grep . | median)
	mc=$(echo "${c[$k]}" | tr ' ' '\n' | grep . | median)
	declare "m_$k=$m" "c_$k=$mc"
	case $k in
	bwraploop) label="xargs -P 2 bwrap ... true ($steps sandboxes)" ;;
	steps) label="arl-batch, $jobs jobs x 5 steps" ;;
	esac
	printf '%-44s %8.3f %8.3f\n' "$label" "$m" "$mc"
done
r() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
tsv local "J=$jobs x 5 steps: wall s (vs $steps bare bwrap)" "$(printf %.3f "$m_steps")" "$(printf %.3f "$m_bwraploop")" "$(r "$m_steps" "$m_bwraploop")" "target <= 0.5 (2x faster); $recorded recorded"
tsv local "J=$jobs x 5 steps: CPU s (vs $steps bare bwrap)" "$(printf %.3f "$c_steps")" "$(printf %.3f "$c_bwraploop")" "$(r "$c_steps" "$c_bwraploop")" "user+sys, children included"
printf 'ratio arl-batch/bare-bwrap: wall %s, cpu %s\n' "$(r "$m_steps" "$m_bwraploop")" "$(r "$c_steps" "$c_bwraploop")"
