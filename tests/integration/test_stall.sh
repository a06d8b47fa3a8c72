#!/usr/bin/env bash
# stallTimeout: a step that prints nothing for that long is killed (its process group) and
# recorded as class timeout with the reason "no output for DURATION" (as written), in results,
# the database and the events (reason "stall"); a slow step that keeps printing lives past it;
# a background child holding stdout open does not keep a silent step alive. Both local
# isolations (none: spawn, bwrap: the sandbox agent). Kubernetes pools refuse the key at
# validation (their output arrives when a step ends). A stallTimeout is part of the spec hash.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
MARK=$$$RANDOM # the argument of our `sleep N.$MARK` processes
cleanup() {
	kill_procs_with "sleep [0-9]*\.$MARK"
	return 0
}
CLEANUP=cleanup

POOLS="  p: {isolation: none, replicas: 6}"
ISOS=none
if command -v bwrap >/dev/null 2>&1 && bwrap --unshare-pid --ro-bind / / true >/dev/null 2>&1; then
	POOLS="$POOLS
  c: {replicas: 6}"
	ISOS="none bwrap"
fi

for iso in $ISOS; do
	pool=p
	[ "$iso" = bwrap ] && pool=c
	# The chatty step prints every 0.1 s for 2.5 s under a 2 s stallTimeout: only a 2 s gap
	# between two of its lines (not a busy machine's) would stall it.
	cat >"$TMP/s-$iso.yaml" <<EOF
version: 1
pools:
$POOLS
defaults: {pool: $pool, retries: 0}
jobs:
  - name: silent
    stallTimeout: 300ms
    steps: [{name: agent, type: Command, command: ["sh", "-c", "echo asked the model; exec sleep 30.$MARK"]}]
  - name: chatty
    stallTimeout: 2s
    steps: [{name: work, type: Command, command: ["sh", "-c", "i=0; while [ \$i -lt 25 ]; do echo \$i; sleep 0.1; i=\$((i+1)); done"]}]
  - name: background
    steps:
      - {name: b, type: Command, stallTimeout: 0.3s, command: ["sh", "-c", "sleep 31.$MARK & echo started; wait"]}
EOF
	echo "# isolation $iso"
	runner run --progress none --db "$TMP/$iso.db" --events "$TMP/$iso.jsonl" "$TMP/s-$iso.yaml"
	check_eq "$iso: the run fails (exit 1)" "$RC" 1
	check_eq "$iso: silent and background stalled (timeout), chatty succeeded" \
		"$(sql "$TMP/$iso.db" "SELECT name || ':' || state || ':' || ifnull(error_class, '') FROM jobs ORDER BY id" | tr '\n' ' ')" \
		"silent:Failed:timeout chatty:Succeeded: background:Failed:timeout "
	check_eq "$iso: the error says how long it was silent, as written" \
		"$(sql "$TMP/$iso.db" "SELECT error FROM jobs WHERE error IS NOT NULL ORDER BY id" | tr '\n' ' ')" \
		"step 'agent': no output for 300ms step 'b': no output for 0.3s "
	check_ge "$iso: chatty ran past its stallTimeout" \
		"$(sql "$TMP/$iso.db" "SELECT duration_ms FROM jobs WHERE name = 'chatty'")" 2000
	check_eq "$iso: what the silent step printed is kept" \
		"$(sql "$TMP/$iso.db" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id WHERE j.name = 'silent'")" \
		"asked the model"
	runner results --db "$TMP/$iso.db"
	check_match "$iso: results gives the reason" "$(grep 's-[a-z]*/silent' "$TMP/out")" \
		'agent: timeout: no output for 300ms$'
	check_eq "$iso: events: step.finished and attempt.finished say stall" \
		"$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("reason") == "stall":
        print(e["event"], e["job_key"].split("/")[1], e.get("class", ""))' "$TMP/$iso.jsonl" | sort | tr '\n' ' ')" \
		"attempt.finished background timeout attempt.finished silent timeout step.finished background  step.finished silent  "
	check_eq "$iso: no sleep of the stalled steps is left" "$(leftover "sleep 3[01]\.$MARK")" ""
done

echo "# events schema"
if /usr/bin/python3 -c 'import jsonschema' 2>/dev/null; then
	check_eq "the events validate against schemas/events.schema.json" "$(/usr/bin/python3 -c '
import json, sys, jsonschema
s = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(s)
bad = [e.message for l in open(sys.argv[2]) for e in v.iter_errors(json.loads(l))]
print(bad[:3] if bad else "ok")' "$SOURCE_DIR/schemas/events.schema.json" "$TMP/none.jsonl")" ok
fi

echo "# validation"
cat >"$TMP/k.yaml" <<'EOF'
version: 1
pools:
  k: {backend: kubernetes}
jobs:
  - name: a
    pool: k
    stallTimeout: 10m
    steps: [{name: s, type: Command, command: ["true"]}]
EOF
runner validate "$TMP/k.yaml"
check_eq "a kubernetes pool refuses stallTimeout (exit 2)" "$RC" 2
check_match "... saying why, at the key" "$(cat "$TMP/out" "$TMP/err")" \
	"k.yaml:7:19: error: 'stallTimeout' cannot work on pool 'k' \(backend kubernetes\): a step's output arrives only when the step ends"
cat >"$TMP/bad.yaml" <<'EOF'
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: a
    steps: [{name: s, type: FilePatch, path: /workspace/x, content: "", stallTimeout: 1s}]
  - name: b
    stallTimeout: soon
    steps: [{name: s, type: Command, command: ["true"]}]
EOF
runner validate "$TMP/bad.yaml"
check_match "a FilePatch step has no stallTimeout" "$(cat "$TMP/out" "$TMP/err")" \
	"bad.yaml:5:73: error: unknown key 'stallTimeout' in a FilePatch step"
check_match "a bad duration is refused" "$(cat "$TMP/out" "$TMP/err")" "bad.yaml:7:19: error: .*stallTimeout"

echo "# the spec hash"
cat >"$TMP/h.yaml" <<'EOF'
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: a
    steps: [{name: s, type: Command, command: ["true"]}]
EOF
runner run --progress none --db "$TMP/h.db" "$TMP/h.yaml"
sed -i 's/  - name: a/  - name: a\n    stallTimeout: 1m/' "$TMP/h.yaml"
runner run --progress none --db "$TMP/h.db" --resume "$TMP/h.yaml"
check_eq "adding a stallTimeout changes the spec: --resume runs the job again" \
	"$(sql "$TMP/h.db" "SELECT state FROM jobs ORDER BY id" | tr '\n' ' ')" "Succeeded Succeeded "

summary
