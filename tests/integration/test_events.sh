#!/usr/bin/env bash
# `run --events`: real streams validated against schemas/events.schema.json (JSON Schema
# 2020-12, Python's jsonschema) and checked against the database: one job.finished per job
# with its state, one attempt.started/finished per attempts row, one step.finished per steps
# row, retries, sandboxes, the run's counters and exit code, the order of each job's events,
# and seq counting 1..N. Scenarios: failures, a timeout, retries, callbacks and metrics; a
# --resume run whose jobs are Skipped (to stdout with '-'); a --max-failures run whose jobs
# are cancelled before they start.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3
if ! /usr/bin/python3 -c 'import jsonschema; jsonschema.Draft202012Validator' 2>/dev/null; then
	echo "SKIP: /usr/bin/python3 has no jsonschema with draft 2020-12 (apt-get install python3-jsonschema)"
	exit 77
fi
make_tmp
SCHEMA=$SOURCE_DIR/schemas/events.schema.json

cat >"$TMP/ev.yaml" <<'EOF'
version: 1
params: {model: m1}
pools:
  p: {isolation: none, replicas: 3}
jobs:
  - name: "ok-{{ item.n }}"
    foreach: {matrix: {n: [1, 2, 3]}}
    artifacts: [{path: /workspace/x.txt}, {path: /workspace/none-such}]
    steps:
      - {name: write, type: FilePatch, path: /workspace/x.txt, content: "hi"}
      - {name: score, type: Command, command: ["sh", "-c", "echo '{\"score\": 0.{{ item.n }}}'"], metrics: json}
  - name: fails
    steps:
      - {name: one, type: Command, command: ["sh", "-c", "echo bad >&2; exit 4"]}
      - {name: never, type: Command, command: ["true"]}
    callbacks:
      on_task_failure: [{name: cleanup, type: Command, command: ["true"]}]
  - name: flaky
    retries: 2
    backoff: 100ms
    retryOn: [failed]
    steps: [{name: f, type: Command, command: ["sh", "-c", "[ {{ attempt }} -ge 3 ]"]}]
  - name: slow
    timeout: 500ms
    retries: 1
    backoff: 100ms
    steps: [{name: s, type: Command, command: ["sleep", "5"]}]
EOF

# check_stream FILE DB RC: validates and cross-checks; prints "ok" or what is wrong.
check_stream() {
	/usr/bin/python3 - "$1" "$2" "$3" "$SCHEMA" <<'PY'
import json, sqlite3, sys
from collections import Counter, defaultdict
import jsonschema

path, db, rc, schema_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
schema = json.load(open(schema_path))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
bad = []
ev = []
for n, line in enumerate(open(path), 1):
    e = json.loads(line)
    for err in v.iter_errors(e):
        bad.append("line %d (%s): %s" % (n, e.get("event"), err.message[:200]))
    ev.append(e)
def want(what, got, exp):
    if got != exp:
        bad.append("%s: got %r, want %r" % (what, got, exp))

want("seq", [e["seq"] for e in ev], list(range(1, len(ev) + 1)))
want("first event", ev[0]["event"], "run.started")
want("last event", ev[-1]["event"], "run.finished")
run_id = ev[0]["run_id"]
want("one run id", {e["run_id"] for e in ev}, {run_id})
con = sqlite3.connect(db)
q = lambda sql, *a: con.execute(sql, a).fetchall()
run = q("SELECT status, exit_code, jobs_total, jobs_succeeded, jobs_failed, jobs_skipped,"
        " jobs_cancelled FROM runs WHERE id = ?", run_id)[0]
fin = ev[-1]
want("run.finished", (fin["status"], fin["exit_code"], fin["jobs_total"], fin["jobs_succeeded"],
     fin["jobs_failed"], fin["jobs_skipped"], fin["jobs_cancelled"]), run)
want("run.finished exit code = the process's", fin["exit_code"], rc)
want("run.started jobs", ev[0]["jobs_total"], run[2])

count = Counter(e["event"] for e in ev)
jobs = {k: (i, s, a) for k, i, s, a in q("SELECT key, id, state, attempts FROM jobs WHERE run_id = ?", run_id)}
want("job.finished per job", count["job.finished"], len(jobs))
want("job.started per job that ran", count["job.started"], sum(1 for j in jobs.values() if j[2] > 0))
for e in ev:
    if e["event"].startswith("job.") or e["event"] in ("attempt.started", "attempt.finished"):
        want("job id of " + e["job_key"], e["job_id"], jobs[e["job_key"]][0])
    if e["event"] == "job.finished":
        want("state of " + e["job_key"], e["state"], jobs[e["job_key"]][1])
        want("attempts of " + e["job_key"], e["attempts"], jobs[e["job_key"]][2])
attempts = {(j, n): (s, c, x, sb) for j, n, s, c, x, sb in q(
    "SELECT a.job_id, a.number, a.state, a.error_class, a.exit_code, a.sandbox FROM attempts a"
    " JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?", run_id)}
want("attempt.started per attempt", count["attempt.started"], len(attempts))
kept = q("SELECT count(*) FROM artifacts x JOIN attempts a ON a.id = x.attempt_id"
         " JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ? AND x.sha256 IS NOT NULL", run_id)[0][0]
want("artifact per file kept", count["artifact"], kept)
want("attempt.finished per attempt", count["attempt.finished"], len(attempts))
for e in ev:
    if e["event"] == "attempt.finished":
        want("attempt %s/%d" % (e["job_key"], e["attempt"]),
             (e["state"], e["class"], e["exit_code"], e["sandbox"]), attempts[(e["job_id"], e["attempt"])])
want("sandbox.allocated per sandbox", count["sandbox.allocated"], sum(1 for a in attempts.values() if a[3]))
want("sandbox.released per sandbox", count["sandbox.released"], count["sandbox.allocated"])
steps = q("SELECT count(*), count(s.started_at) FROM steps s JOIN attempts a ON a.id = s.attempt_id"
          " JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?", run_id)[0]
want("step.finished per steps row", count["step.finished"], steps[0])
want("step.started per step that ran", count["step.started"], steps[1])
want("retry.scheduled per retried attempt", count["retry.scheduled"],
     sum(1 for (j, n) in attempts if n < max(m for (jj, m) in attempts if jj == j)))
# Each job's events in order: started, (attempt started .. finished, retry)*, finished.
seq = defaultdict(list)
for e in ev:
    if "job_key" in e and e["event"] in ("job.started", "attempt.started", "attempt.finished",
                                         "retry.scheduled", "job.finished"):
        seq[e["job_key"]].append(e["event"].replace(".scheduled", "").replace(".started", "+").replace(".finished", "-"))
for key, s in seq.items():
    a = jobs[key][2]
    if a == 0:
        want("events of " + key, s, ["job-"])
    else:
        want("events of " + key, s, ["job+"] + (["attempt+", "attempt-", "retry"] * a)[:3 * a - 1] + ["job-"])
print("ok" if not bad else "\n".join(bad[:20]))
print("counts:", dict(sorted(count.items())), file=sys.stderr)
PY
}

echo "# failures, a timeout, retries, callbacks, metrics"
runner run --progress none --db "$TMP/ev.db" --events "$TMP/one.jsonl" "$TMP/ev.yaml"
check_eq "the run exits 1" "$RC" 1
check_eq "the stream is valid and matches the database" "$(check_stream "$TMP/one.jsonl" "$TMP/ev.db" "$RC" 2>"$TMP/counts")" ok
cat "$TMP/counts"
check_match "callback steps are marked as such" \
	"$(grep '"step_name":"cleanup"' "$TMP/one.jsonl" | head -n 1)" '"phase":"callback"'
check_match "the skipped step has only its end, as Skipped" \
	"$(grep '"step_name":"never"' "$TMP/one.jsonl" | tr '\n' ' ')" '^\{"event":"step.finished".*"state":"Skipped","exit_code":null'
check_eq "two retries of flaky, one of slow" "$(grep -c '"event":"retry.scheduled"' "$TMP/one.jsonl")" 3

echo "# --resume: skipped jobs, the stream on stdout"
runner run --progress none --db "$TMP/ev.db" --resume --events - "$TMP/ev.yaml"
check_eq "the resumed run exits 1" "$RC" 1
check_eq "stdout is the stream: valid and matching the database" \
	"$(check_stream "$TMP/out" "$TMP/ev.db" "$RC" 2>/dev/null)" ok
check_eq "the 4 earlier successes are Skipped, finished without starting" \
	"$(grep -c '"event":"job.finished".*"state":"Skipped"' "$TMP/out")" 4
check_eq "stdout holds nothing else" "$(grep -vc '^{"event":' "$TMP/out" || true)" 0

echo "# --max-failures: jobs cancelled before they started"
runner run --progress none --db "$TMP/ev.db" -j 1 --max-failures 1 --run-name halt \
	--events "$TMP/halt.jsonl" "$TMP/ev.yaml"
check_eq "the halted run exits 4" "$RC" 4
check_eq "the stream is valid and matches the database" \
	"$(check_stream "$TMP/halt.jsonl" "$TMP/ev.db" "$RC" 2>/dev/null)" ok
check_match "cancelled jobs have a job.finished without a start" \
	"$(grep '"event":"job.finished".*"state":"Cancelled"' "$TMP/halt.jsonl" | head -n 1)" '"attempts":0'

echo "# errors"
runner run --progress none --db "$TMP/ev.db" --events "$TMP/no/such/dir/x.jsonl" "$TMP/ev.yaml"
check_eq "an events file that cannot be created: exit 3, nothing run" "$RC" 3
check_match "... saying why" "$(cat "$TMP/err")" "cannot open events file '.*/no/such/dir/x.jsonl'"
if [ -w /dev/full ]; then
	runner run --progress none --db "$TMP/ev.db" --events /dev/full --run-name full "$TMP/ev.yaml"
	check_eq "a full disk does not change the run's exit code" "$RC" 1
	check_match "... but is reported" "$(cat "$TMP/err")" "cannot write events to '/dev/full'"
fi

summary
