#!/usr/bin/env bash
# What a new user found (issue 12): getting a sandbox is not charged to the job's timeout and
# has its own bound (prepareTimeout, infra when exceeded, attempts.prepare_ms recorded);
# `metrics: json` says why it recorded nothing; validate refuses the FilePatch paths a local
# pool refuses at run time. No wall-clock windows: every limit comes from what the test
# measured here.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
unset XDG_STATE_HOME

# --- preparing the sandbox is not the job's timeout --------------------------------------

echo "# calibration: how long a 'true' step takes here"
cat >"$TMP/cal.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none}
jobs:
  - {name: c1, steps: [{type: Command, command: ["true"]}]}
  - {name: c2, steps: [{type: Command, command: ["true"]}]}
  - {name: c3, steps: [{type: Command, command: ["true"]}]}
EOF
runner run --progress none --db "$TMP/cal.db" "$TMP/cal.yaml"
check_eq "calibration run exits 0" "$RC" 0
STEP_MS=$(sql "$TMP/cal.db" "SELECT max(duration_ms) FROM steps")
# The job's timeout: ample for the step, even on a busier machine than the calibration saw.
TIMEOUT_MS=$((STEP_MS * 10 + 500))
echo "# a 'true' step took at most ${STEP_MS} ms: the job's timeout is ${TIMEOUT_MS} ms"

# A workspace of many small files (copying is per-file work, not bandwidth), grown until
# copying it here takes twice the job's timeout.
WS=$TMP/ws
mkdir "$WS"
files=0
want=4000
copy_ms=0
while [ "$copy_ms" -lt $((TIMEOUT_MS * 2)) ]; do
	python3 - "$WS" "$files" "$want" <<'EOF'
import os, sys
ws, have, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(have, want):
    d = os.path.join(ws, "d%d" % (i // 1000))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "w") as f:
        f.write("x" * 100)
EOF
	files=$want
	rm -rf "$TMP/copy"
	t0=$(now_ms)
	cp -a "$WS" "$TMP/copy"
	copy_ms=$(($(now_ms) - t0))
	rm -rf "$TMP/copy"
	if [ "$files" -ge 1024000 ]; then
		break
	fi
	want=$((files * 2))
done
echo "# workspace: $files files, copied by cp -a in ${copy_ms} ms"
check_ge "the workspace takes longer to copy than the job's timeout (ms)" "$copy_ms" "$TIMEOUT_MS"

cat >"$TMP/slow.yaml" <<EOF
version: 1
pools:
  p: {isolation: none, workspace: $WS}
jobs:
  - name: quick
    timeout: ${TIMEOUT_MS}ms
    retries: 0
    steps: [{type: Command, command: ["true"]}]
EOF
runner run --progress none --db "$TMP/slow.db" "$TMP/slow.yaml"
check_eq "a slow preparation does not time the job out: exit 0" "$RC" 0
check_eq "the job Succeeded in one attempt" \
	"$(sql "$TMP/slow.db" "SELECT state || ' ' || attempts || ' ' || coalesce(error, '-') FROM jobs")" \
	"Succeeded 1 -"
PREP_MS=$(sql "$TMP/slow.db" "SELECT coalesce(prepare_ms, -1) FROM attempts" || echo -1)
check_ge "attempts.prepare_ms is recorded" "$PREP_MS" 0
if [ "$PREP_MS" -gt "$TIMEOUT_MS" ]; then
	ok "its preparation (${PREP_MS} ms) outlasted the job's timeout (${TIMEOUT_MS} ms)"
else
	echo "# note: a warm sandbox was ready first (${PREP_MS} ms); the job's success still holds"
fi
runner show --db "$TMP/slow.db" slow/quick
check_match "show prints the preparation time" "$(cat "$TMP/out")" \
	"attempt 1: Succeeded.*, prepared in [0-9.]+(ms|s)"

echo "# prepareTimeout exceeded: infra, saying so, nothing left behind"
cat >"$TMP/bound.yaml" <<EOF
version: 1
pools:
  p: {isolation: none, workspace: $WS}
jobs:
  - name: starved
    prepareTimeout: 1ms
    retries: 0
    steps: [{type: Command, command: ["true"]}]
EOF
runner run --progress none --db "$TMP/bound.db" "$TMP/bound.yaml"
check_eq "run exits 3 (infra)" "$RC" 3
check_match "the attempt is infra and says the sandbox was not ready" \
	"$(sql "$TMP/bound.db" "SELECT error_class || ': ' || error FROM attempts")" \
	"^infra: sandbox not ready after 1ms \\(pool 'p', the job's prepareTimeout\\): the job's prepareTimeout passed while copying workspace '$WS'$"
check_eq "its step is recorded as not run" \
	"$(sql "$TMP/bound.db" "SELECT state FROM steps")" "Skipped"
check_eq "no sandbox directory is left" \
	"$(find "$TMP/bound.db.sandboxes" -mindepth 1 -maxdepth 1 | wc -l)" 0

echo "# SIGINT while the workspace is being copied: the copy stops, the attempt is Cancelled"
sed 's/name: starved/name: interrupted/; /prepareTimeout/d' \
	"$TMP/bound.yaml" >"$TMP/cancel.yaml"
"$ARL_BATCH" run --progress none --db "$TMP/cancel.db" "$TMP/cancel.yaml" \
	>"$TMP/out" 2>"$TMP/err" &
RUNNER_PID=$!
# The first file of a copy has landed: the rest takes about as long as cp -a took.
for _ in $(seq 600); do
	find "$TMP/cancel.db.sandboxes" -mindepth 2 -maxdepth 2 2>/dev/null | grep -q . && break
	kill -0 "$RUNNER_PID" 2>/dev/null || break
	sleep 0.05
done
kill -INT "$RUNNER_PID" 2>/dev/null || true
wait_exit 300
check_eq "run exits 130" "$RC" 130
check_eq "the attempt is Cancelled while its workspace was copied" \
	"$(sql "$TMP/cancel.db" "SELECT state || ': ' || error FROM attempts")" \
	"Cancelled: cannot allocate a sandbox from pool 'p': cancelled while copying workspace '$WS'"
check_eq "no sandbox directory is left" \
	"$(find "$TMP/cancel.db.sandboxes" -mindepth 1 -maxdepth 1 | wc -l)" 0

# --- metrics: json says why it stored nothing, or not everything ------------------------

cat >"$TMP/metrics.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none, replicas: 4}
jobs:
  - name: ok
    steps: [{type: Command, metrics: json, command: ["echo", '{"score": 1}']}]
  - name: not-json
    steps:
      - {type: Command, metrics: json, command: ["sh", "-c", "echo '{\"score\": 1}'; echo done"]}
  - name: nested
    steps:
      - type: Command
        metrics: json
        command: ["echo", '{"score": 0.5, "detail": {"x": 1}, "tags": [1], "n": null}']
  - name: silent
    steps: [{type: Command, metrics: json, command: ["true"]}]
EOF
runner run --progress none --db "$TMP/m.db" --events "$TMP/m.events" "$TMP/metrics.yaml"
check_eq "the metrics run exits 0 (a bad metrics line does not fail the step)" "$RC" 0
check_eq "each step records why metrics were not (all) stored" \
	"$(sql "$TMP/m.db" "SELECT j.name || ': ' || coalesce(s.metrics_error, '-') FROM steps s
		JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id ORDER BY j.id")" \
	"ok: -
not-json: the last stdout line is not a JSON object: 'done'
nested: not stored: 'detail' (an object), 'tags' (an array), 'n' (null); a metric is a number, boolean or string
silent: no output: \`metrics: json\` reads the last non-empty stdout line"
check_eq "the scalar beside them is still stored" \
	"$(sql "$TMP/m.db" "SELECT j.name || '=' || m.value FROM metrics m
		JOIN jobs j ON j.id = m.job_id ORDER BY j.id")" \
	"ok=1.0
nested=0.5"
runner show --db "$TMP/m.db" metrics/nested
check_match "show prints the step's metrics error" "$(cat "$TMP/out")" \
	"step 1 step-1 \\(Command\\): Succeeded[^
]*
    metrics: not stored: 'detail' \\(an object\\)"
runner report --db "$TMP/m.db" -o "$TMP/m.html"
check_eq "report exits 0" "$RC" 0
check_match "the report lists the steps whose metrics were not stored" "$(cat "$TMP/m.html")" \
	"<section id=\"metric-errors\" data-total=\"3\">.*not-json.*the last stdout line is not a JSON object"
check_eq "the step.finished events carry it" "$(grep -c '"metrics_error"' "$TMP/m.events")" 3

summary
