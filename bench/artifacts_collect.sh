#!/usr/bin/env bash
# Keeping artifacts (issue 16): what collecting costs a run. 200 jobs of one step that writes a
# 4 KiB file, with and without `artifacts:` keeping it (all 200 with the same content, so one
# stored file; then 200 distinct ones), on a bwrap pool and an isolation: none pool; and one
# job keeping a 64 MiB file (the stream through the agent, the digest, the store). Sides
# alternate round by round; medians of the wall time in ms.
# Usage: bench/artifacts_collect.sh [ROUNDS]
set -euo pipefail
rounds=${1:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d -p /var/tmp)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

# job file ISOLATION KEEP(none|same|distinct)
jobfile() {
	local keep=""
	[ "$2" = none ] || keep='    artifacts: [{path: /workspace/out.bin}]'
	local content='head -c 4096 /dev/zero > /workspace/out.bin'
	[ "$2" != distinct ] || content='head -c 4090 /dev/zero > /workspace/out.bin; printf %06d {{ item.n }} >> /workspace/out.bin'
	cat <<EOF
version: 1
pools:
  p: {isolation: $1, replicas: 2}
jobs:
  - name: "j-{{ item.n }}"
    foreach: {matrix: {n: [$(seq -s, 1 200)]}}
$keep
    steps: [{type: Command, command: ["sh", "-c", "$content"]}]
EOF
}

ms() { # ms FILE: run it into a fresh database, print the wall time in ms
	local db=$tmp/db-$RANDOM$RANDOM.db s e
	s=$(date +%s%N)
	"$ARL_BATCH" run -j 2 --progress none --db "$db" "$1" >/dev/null 2>&1 || true
	e=$(date +%s%N)
	rm -rf "$db" "$db".*
	echo $(((e - s) / 1000000))
}

declare -A t
for iso in bwrap none; do
	for keep in none same distinct; do
		jobfile "$iso" "$keep" >"$tmp/$iso-$keep.yaml"
	done
done
cat >"$tmp/big.yaml" <<'EOF'
version: 1
pools:
  p: {}
jobs:
  - name: big
    timeout: 5m
    artifacts: [{path: /workspace/big.bin, maxSize: 100Mi}]
    steps: [{type: Command, command: ["sh", "-c", "head -c 67108864 /dev/urandom > /workspace/big.bin"]}]
  - name: big-not-kept
    timeout: 5m
    steps: [{type: Command, command: ["sh", "-c", "head -c 67108864 /dev/urandom > /workspace/big.bin"]}]
EOF
sed '/^  - name: big-not-kept/,$d' "$tmp/big.yaml" >"$tmp/big-kept.yaml"
sed '/^  - name: big$/,/^    steps/d' "$tmp/big.yaml" >"$tmp/big-plain.yaml"

for r in $(seq 1 "$rounds"); do
	for side in bwrap-none bwrap-same bwrap-distinct none-none none-same none-distinct \
		big-plain big-kept; do
		t[$side]+="$(ms "$tmp/$side.yaml") "
	done
done
printf '%-34s %8s\n' "side (200 jobs, -j 2)" "median ms"
for side in bwrap-none bwrap-same bwrap-distinct none-none none-same none-distinct; do
	printf '%-34s %8s\n' "$side" "$(echo "${t[$side]}" | tr ' ' '\n' | grep . | median %.0f)"
done
printf '%-34s %8s\n' "one job, 64 MiB file not kept" "$(echo "${t[big-plain]}" | tr ' ' '\n' | grep . | median %.0f)"
printf '%-34s %8s\n' "one job, 64 MiB file kept" "$(echo "${t[big-kept]}" | tr ' ' '\n' | grep . | median %.0f)"
