#!/usr/bin/env bash
# shellcheck disable=SC2154,SC2034,SC2119 # figures set by declare, r read by the eval'd sides
# Two or more arl-batch builds side by side in one session, beside the bare `bwrap ... true`
# loop of bench/local_steps.sh: SHAPE "steps" is J jobs x 5 one-line steps (local_steps.sh's
# job file), "one" is J one-step `true` jobs (local_throughput.sh's bwrap side), "long" one
# job of J `true` steps (the agent's cost per step, in one sandbox). Sides
# alternate within each round, so machine noise hits all of them; wall and CPU (user + sys,
# children included) medians, and each build's ratio to the bare loop of J x steps sandboxes.
# Usage: bench/local_versus.sh SHAPE J ROUNDS BINARY...   (e.g. a worktree of an older commit's
# build/arl-batch beside this one's)
set -euo pipefail
shape=$1 jobs=$2 rounds=$3
shift 3
export ARL_BATCH=$1 # lib.sh builds nothing when it is set
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $shape in
steps) per=5 ;;
one) per=1 ;;
long) per=$jobs jobs=1 ;;
*)
	echo "SHAPE is steps, one or long" >&2
	exit 2
	;;
esac
{
	printf 'version: 1\npools:\n  p: {replicas: 2}\njobs:\n  - name: "t-{{ item.i }}"\n'
	printf '    foreach: {file: items.jsonl}\n    steps:\n'
	if [ "$shape" = steps ]; then
		cat <<'YAML'
      - {type: Command, command: ["sh", "-c", "echo one > /workspace/a"]}
      - {type: Command, command: ["cat", "/workspace/a"]}
      - {type: Command, command: ["true"]}
      - {type: Command, command: ["sh", "-c", "echo $HOME"]}
      - {type: Command, command: ["true"]}
YAML
	else
		for _ in $(seq 1 "$per"); do echo '      - {type: Command, command: ["true"]}'; done
	fi
} >"$tmp/jobs.yaml"
seq 1 "$jobs" | sed 's/.*/{"i": &}/' >"$tmp/items.jsonl"
mkdir -p "$tmp/ws"
bwrap_argv=$(bare_bwrap_argv "$tmp/ws")
sandboxes=$((jobs * per))
bins=()
for b in "$@"; do bins+=("$(realpath "$b")"); done

side_bwraploop() { seq 1 "$sandboxes" | xargs -P 2 -n 1 sh -c "bwrap $bwrap_argv true" _; }
for i in "${!bins[@]}"; do
	eval "side_b$i() { (cd \"\$tmp\" && \"${bins[$i]}\" run --db \"\$tmp/b$i-\$r.db\" --progress none -j 2 jobs.yaml 2>/dev/null); }"
done

declare -A t c
for r in $(seq 1 "$rounds"); do
	time_side bwraploop
	for i in "${!bins[@]}"; do time_side "b$i"; done
done
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
mw=$(med "${t[bwraploop]}") mc=$(med "${c[bwraploop]}")
printf '%s: %d jobs x %d steps, -j 2, median of %d rounds (s); load %s\n' "$shape" "$jobs" "$per" \
	"$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-60s %8s %8s %7s %7s\n' side wall cpu wall/b cpu/b
printf '%-60s %8.3f %8.3f\n' "xargs -P 2 bwrap ... true ($sandboxes sandboxes)" "$mw" "$mc"
for i in "${!bins[@]}"; do
	w=$(med "${t[b$i]}") cc=$(med "${c[b$i]}")
	ok=$(sqlite3 "$tmp/b$i-1.db" "SELECT count(*) FROM jobs WHERE state='Succeeded'")
	printf '%-60s %8.3f %8.3f %7.2f %7.2f\n' "${bins[$i]} ($ok ok)" "$w" "$cc" \
		"$(echo "$w / $mw" | bc -l)" "$(echo "$cc / $mc" | bc -l)"
done
