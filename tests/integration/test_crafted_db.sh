#!/usr/bin/env bash
# The read commands on a crafted database (CHECK constraints bypassed): a state or error class
# this build does not know is printed as stored, not as Pending or no class, and an exit code
# beyond 32 bits is printed whole, as the commands did before the store read rows into structs.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3
make_tmp
steps_may_use

cat >"$TMP/j.yaml" <<'EOF'
version: 1
name: crafted
pools:
  cpu: {isolation: none, replicas: 2}
jobs:
  - name: a
    pool: cpu
    steps: [{name: s, type: Command, command: ["true"]}]
  - name: b
    pool: cpu
    steps: [{name: s, type: Command, command: ["true"]}]
EOF
runner run --progress none --db "$TMP/h.db" "$TMP/j.yaml"
check_eq "the run succeeds" "$RC" 0
DB=$TMP/h.db
sql "$DB" "PRAGMA ignore_check_constraints = 1;
	UPDATE jobs SET state = 'Weird', error_class = 'odd', exit_code = 99999999999 WHERE name = 'a';
	UPDATE attempts SET state = 'Strange', error_class = 'odd2', exit_code = 99999999998
	 WHERE job_id = (SELECT id FROM jobs WHERE name = 'a');
	UPDATE steps SET state = 'Queer', exit_code = 99999999997 WHERE attempt_id IN
	 (SELECT a.id FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.name = 'a');
	UPDATE runs SET exit_code = 99999999996"

echo "# results"
runner results --db "$DB"
check_match "table: the state, the whole exit code and the class as stored" "$(cat "$TMP/out")" \
	'Weird +j/a +1 +99999999999 .* odd'
runner results --db "$DB" --format json
OUT=$(tr -d ' \t\n' <"$TMP/out")
check_match "json: the job's state and exit code" "$OUT" '"state":"Weird","exitCode":99999999999,'
check_match "json: its class" "$OUT" '"errorClass":"odd"'
check_match "json: its step's state and exit code" "$OUT" '"state":"Queer","exitCode":99999999997,'
runner results --db "$DB" --format csv
check_match "csv: state, exit code and class" "$(cat "$TMP/out")" \
	',cpu,Weird,1,99999999999,odd,'
runner results --db "$DB" --format junit
check_match "junit: a state it does not know is not finished, by its name" "$(cat "$TMP/out")" \
	'<skipped message="not finished \(Weird\)"/>'

echo "# show"
runner show --db "$DB" j/a
check_match "the job's state and class" "$(cat "$TMP/out")" 'state: +Weird \(odd\)'
check_match "its exit code" "$(cat "$TMP/out")" 'exit code: 99999999999'
check_match "the attempt's" "$(cat "$TMP/out")" 'attempt 1: Strange \(odd2\), exit 99999999998,'
check_match "the step's" "$(cat "$TMP/out")" 'step 1 s \(Command\): Queer, exit 99999999997,'

echo "# runs"
runner runs --db "$DB" --format json
check_match "the run's exit code, whole" "$(tr -d ' \t\n' <"$TMP/out")" '"exitCode":99999999996,'

summary
