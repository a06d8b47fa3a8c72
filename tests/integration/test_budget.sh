#!/usr/bin/env bash
# Budgets (issue 16): `budget: {metric, max}` in a job file and `run --budget METRIC=MAX`.
#   A. Once the run's finished jobs' metric sums to max, no new job starts: the rest are
#      Cancelled naming the budget, the run exits 4 and says which budget halted it
#      (runs.halted_by, a budget.reached event valid against the schema, the report, a note
#      with spent/max).
#   B. --budget on the command line halts too; a budget never reached changes nothing but the
#      note; --max-failures now records its halt in halted_by as well.
#   C. Bad budgets: file:line:col from validate, a usage error for --budget.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
cd "$TMP"

# gen FILE BUDGET-LINE: six jobs, one at a time, each costing 1.
gen() {
	{
		echo "version: 1"
		[ -n "$2" ] && echo "$2"
		echo "pools:"
		echo "  p: {replicas: 1, isolation: none}"
		echo "jobs:"
		for i in 1 2 3 4 5 6; do
			echo "  - {name: j$i, steps: [{type: Command, metrics: json, command: [\"sh\", \"-c\", \"echo '{\\\"cost_usd\\\": 1, \\\"other\\\": 5}'\"]}]}"
		done
	} >"$1"
}

echo "# A. a job file's budget halts the run"
gen b.yaml "budget: {metric: cost_usd, max: 2.5}"
runner run --progress none --db b.db --events ev.jsonl b.yaml
check_eq "[A] exit 4 (halted)" "$RC" 4
check_match "[A] it says which budget halted it" "$(cat "$TMP/err")" \
	"halted: budget cost_usd 2.5 reached \\(3\\); no new job started"
check_eq "[A] three ran, three were Cancelled naming the budget" \
	"$(sql b.db "SELECT state, count(*), group_concat(DISTINCT coalesce(error_class, '') || ':' || coalesce(error, '')) FROM jobs GROUP BY state ORDER BY state")" \
	"$(printf 'Cancelled|3|cancelled:not started: budget cost_usd 2.5 reached (3)\nSucceeded|3|:')"
check_eq "[A] runs.halted_by and the spent/max note" \
	"$(sql b.db "SELECT halted_by, instr(notes, 'budget cost_usd: 3 of 2.5 spent') > 0, status, exit_code FROM runs")" \
	"budget cost_usd 2.5 reached (3)|1|failed|4"
check_eq "[A] one budget.reached event, before the cancelled jobs" \
	"$(python3 -c '
import json, sys
ev = [json.loads(l) for l in open("ev.jsonl")]
b = [i for i, e in enumerate(ev) if e["event"] == "budget.reached"]
c = [i for i, e in enumerate(ev) if e["event"] == "job.finished" and e["state"] == "Cancelled"]
print(len(b), ev[b[0]]["metric"], ev[b[0]]["max"], ev[b[0]]["spent"], all(i > b[0] for i in c))
')" "1 cost_usd 2.5 3 True"
if /usr/bin/python3 -c 'import jsonschema; jsonschema.Draft202012Validator' 2>/dev/null; then
	check "[A] the events are valid against schemas/events.schema.json" /usr/bin/python3 -c '
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(schema)
for line in open("ev.jsonl"):
    v.validate(json.loads(line))
' "$SOURCE_DIR/schemas/events.schema.json"
fi
runner report --db b.db -o r.html
check "[A] the report shows the budget that halted the run" grep -q 'halted by <b>budget cost_usd 2.5 reached (3)' r.html
check "[A] ... and what it spent" grep -q 'budget cost_usd: 3 of 2.5 spent' r.html
check "[A] the header shows the budget: metric, spent / max, that it halted the run" \
	grep -q '<span class="budget">budget <b>cost_usd</b> spent <b>3 / 2.5</b> <b class="bad">halted the run</b></span>' r.html

echo "# B. --budget, budgets not reached, other halts"
gen n.yaml ""
runner run --progress none --db b.db --budget cost_usd=2 n.yaml
check_eq "[B] --budget cost_usd=2: exit 4 after two jobs" \
	"$RC|$(sql b.db "SELECT jobs_succeeded, jobs_cancelled, halted_by FROM runs ORDER BY id DESC LIMIT 1")" \
	"4|2|4|budget cost_usd 2 reached (2)"
runner run --progress none --db b.db --budget other=100 n.yaml
check_eq "[B] a budget not reached: exit 0, no halt, the note says what was spent" \
	"$RC|$(sql b.db "SELECT jobs_succeeded, halted_by IS NULL, instr(notes, 'budget other: 30 of 100 spent') > 0 FROM runs ORDER BY id DESC LIMIT 1")" \
	"0|6|1|1"
runner report --db b.db --run 3 -o r3.html
check "[B] the report's header shows a budget not reached" \
	grep -q '<span class="budget">budget <b>other</b> spent <b>30 / 100</b> not reached</span>' r3.html
check "[B] ... and no halt" test "$(grep -c 'halted' r3.html)" = 0
{
	echo "version: 1"
	echo "pools: {p: {replicas: 1, isolation: none}}"
	echo "jobs:"
	echo "  - {name: bad, steps: [{type: Command, command: [\"false\"]}]}"
	echo "  - {name: later, steps: [{type: Command, command: [\"true\"]}]}"
} >f.yaml
runner run --progress none --db b.db --fail-fast f.yaml
check_eq "[B] --fail-fast's halt is recorded in halted_by too" \
	"$RC|$(sql b.db "SELECT halted_by FROM runs ORDER BY id DESC LIMIT 1")" "4|--fail-fast: a job failed"

echo "# C. bad budgets"
for bad in "budget: {metric: cost_usd}" "budget: {metric: cost_usd, max: -1}" \
	"budget: {metric: cost_usd, max: lots}" "budget: {metric: cost_usd, max: 1, min: 0}" \
	"budget: 25" "budget: {metric: 'cost: x', max: 1}" "budget: {metric: 'a;b', max: 1}"; do
	gen bad.yaml "$bad"
	runner validate bad.yaml
	check_match "[C] '$bad' is refused with file:line:col" "$RC|$(cat "$TMP/err")" '^2\|bad.yaml:2:[0-9]+: error: .*budget'
done
runner run --budget cost_usd n.yaml
check_match "[C] --budget without =MAX: usage error" "$RC|$(cat "$TMP/err")" \
	"^2\\|.*invalid value 'cost_usd' for --budget: expected METRIC=MAX"
runner run --budget 'cost: usd=1' n.yaml
check_match "[C] --budget with a ':' in METRIC: usage error" "$RC|$(cat "$TMP/err")" \
	"^2\\|.*invalid value 'cost: usd=1' for --budget: expected METRIC=MAX.*without ':' or ';'"

summary
