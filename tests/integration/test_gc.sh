#!/usr/bin/env bash
# `arl-batch gc` and the sweep at the start of `run`: sandboxes of a live runner are left
# alone, those of a runner killed with -9 are found, listed and deleted; keepAlive ones stay.
set -euo pipefail
. "$SOURCE_DIR/tests/integration/lib.sh"
require_bwrap

tmp=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"
pid=0
marker="sleep 20.$$"
cat >slow.yaml <<YAML
version: 1
pools: {p: {replicas: 2}}
jobs:
  - name: "s-{{ item.i }}"
    foreach: {items: [{i: 1}, {i: 2}, {i: 3}]}
    timeout: 60s
    steps: [{type: Command, command: ["sh", "-c", "$marker"]}]
YAML
cat >keep.yaml <<'YAML'
version: 1
pools: {p: {}}
jobs:
  - {name: kept, keepAlive: true, steps: [{type: Command, command: ["true"]}]}
YAML

"$ARL_BATCH" run --db k.db --progress none keep.yaml 2>/dev/null
check_eq "keepAlive sandbox kept under keep-" "1" "$(ls k.db.sandboxes | grep -c '^keep-sb-')"
"$ARL_BATCH" gc --db k.db --yes >gc-keep.out
check_eq "gc leaves keepAlive sandboxes" "1" "$(ls k.db.sandboxes | grep -c '^keep-sb-')"

"$ARL_BATCH" run --db g.db --progress none slow.yaml 2>/dev/null &
pid=$!
for _ in $(seq 50); do
	[ "$(ls g.db.sandboxes 2>/dev/null | grep -c '^sb-')" -ge 2 ] && break
	sleep 0.1
done
"$ARL_BATCH" gc --db g.db --yes >gc-live.out
check_match "gc spares a live runner's sandboxes" "$(cat gc-live.out)" '^no orphaned sandboxes'
check_eq "live sandboxes still there" "yes" "$([ "$(ls g.db.sandboxes | grep -c '^sb-')" -ge 2 ] && echo yes || echo no)"

kill -9 "$pid"
wait "$pid" 2>/dev/null || true
sleep 0.3
left=$(ls g.db.sandboxes | grep -c '^sb-' || true)
check_eq "kill -9 leaves sandboxes behind" "yes" "$([ "$left" -ge 2 ] && echo yes || echo no)"
check_eq "no process of the killed run" "" "$(pgrep -f "$marker" || true)"
"$ARL_BATCH" gc --db g.db >gc-list.out
check_eq "gc lists each orphan" "$left" "$(grep -c '^orphaned ' gc-list.out)"
check_eq "gc without --yes deletes nothing" "$left" "$(ls g.db.sandboxes | grep -c '^sb-')"
"$ARL_BATCH" gc --db g.db --yes >gc-del.out
check_eq "gc --yes deletes them" "0" "$(ls g.db.sandboxes | grep -c '^sb-' || true)"

# The sweep at run start: orphans of a killed run are gone after the next run.
"$ARL_BATCH" run --db g.db --progress none slow.yaml 2>/dev/null &
pid=$!
sleep 1
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
"$ARL_BATCH" run --db g.db --progress none keep.yaml 2>sweep.err
check_match "run sweeps orphans at start" "$(cat sweep.err)" 'deleted [0-9]+ sandbox'
check_eq "only the kept sandbox remains" "0" "$(ls g.db.sandboxes | grep -c '^sb-' || true)"
summary
