#!/usr/bin/env bash
# --rerun and --resume go by each key's standing result (issue 12):
#   A. --rerun: a Skipped row of an earlier --rerun stands for the failure it points at, so the
#      next --rerun of that class runs it; a run with no rows (killed while starting) hides
#      nothing; a carried failure makes the run 'failed', exit 1, and shows as carried in the
#      summary, runs, results json/csv/junit and the report; a carried Cancelled runs again
#      under --rerun cancelled.
#   B. --resume killed at ten points of a 3,000-job run (several while it starts: right after
#      its run row shows, or a few ms later), then a final --resume: no recorded success was
#      executed again, and every key has exactly one Succeeded row.
#   C. prune --keep 2 reaches its fixed point in one pass: a second prune deletes nothing.
#   D. show of a Skipped job says what result it carries and from which run, and shows that
#      job's attempts and output.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
# Steps need not run as this user (a root runner maps them to another uid): they may read
# the flag files and append to the ledger.
chmod 755 "$TMP"

MARK=$$$RANDOM # slow steps run `sleep 30.$MARK`
RUNNER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	kill_procs_with "30\.$MARK"
	return 0
}
CLEANUP=cleanup

# names_where DB RUN_ID SQL-CONDITION: the sorted, comma-joined names of that run's jobs.
names_where() {
	sql "$1" "SELECT group_concat(name, ',') FROM (SELECT name FROM jobs WHERE run_id = $2 AND ($3) ORDER BY name)"
}
last_run() {
	sql "$1" "SELECT max(id) FROM runs"
}

# ------------------------------------------------------------------------------------------
echo "# A. --rerun by standing results; carried failures are failures"
D=$TMP/rr
mkdir -p "$D"
DB=$D/r.db
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 4, isolation: none}"
	echo "jobs:"
	for t in t1 t2; do
		echo "  - {name: $t, timeout: 200ms, steps: [{type: Command, command: [\"sh\", \"-c\", \"test -e $D/slow && exec sleep 30.$MARK; true\"]}]}"
	done
	echo "  - {name: f1, steps: [{type: Command, command: [\"sh\", \"-c\", \"echo boom >&2; test ! -e $D/bad\"]}]}"
	echo '  - {name: ok1, steps: [{type: Command, command: ["true"]}]}'
} >"$D/rr.yaml"
touch "$D/slow" "$D/bad"
runner run --progress none --db "$DB" --run-name rr "$D/rr.yaml"
check_eq "[A] first run: two timeouts and a failure, exit 1" "$RC" 1
R1=$(last_run "$DB")

runner run --progress none --db "$DB" --run-name rr --rerun infra "$D/rr.yaml"
check_eq "[A] --rerun infra with no infra job carries the 3 failures: exit 1" "$RC" 1
R2=$(last_run "$DB")
check_eq "[A] ... nothing ran" "$(names_where "$DB" "$R2" "state != 'Skipped'")" ""
check_eq "[A] ... the run is 'failed' with exit 1" \
	"$(sql "$DB" "SELECT status, exit_code FROM runs WHERE id = $R2")" "failed|1"
check_match "[A] ... the summary names the carried failures" "$(tail -n 1 "$TMP/err")" \
	"failed \(exit 1\) .*: 0 succeeded, 4 skipped \(carried from earlier runs: 3 failed \(1 failed, 2 timeout, 0 infra\), 0 cancelled\), 0 failed"
runner runs --db "$DB" --format json
check_eq "[A] runs --format json: 3 carried failures" "$(python3 -c '
import json, sys
r = [x for x in json.load(open(sys.argv[1])) if x["id"] == int(sys.argv[2])][0]
print(r["status"], r["jobs"]["skipped"], r["jobs"]["carriedFailed"], r["jobs"]["carriedCancelled"])' "$TMP/out" "$R2")" \
	"failed 4 3 0"
runner runs --db "$DB"
check_match "[A] runs (table): FAILED shows them as carried" "$(grep "^ *$R2 " "$TMP/out")" " 0\+3 carried "
runner results --db "$DB" --run "$R2" --format json
check_eq "[A] results json: each Skipped job carries its result, run and job" "$(python3 -c '
import json, sys
out = []
for j in sorted(json.load(open(sys.argv[1])), key=lambda j: j["key"]):
    c = j.get("carried") or {}
    out.append("%s:%s:%s:%s:%s:%s" % (j["key"], j["status"]["state"], c.get("state"),
               c.get("errorClass"), c.get("fromRun"), c.get("fromJob") == j["skippedFrom"]))
print(" ".join(out))' "$TMP/out")" \
	"rr/f1:Skipped:Failed:failed:$R1:True rr/ok1:Skipped:Succeeded:None:$R1:True rr/t1:Skipped:Failed:timeout:$R1:True rr/t2:Skipped:Failed:timeout:$R1:True"
runner results --db "$DB" --run "$R2" --format csv
check_eq "[A] results csv: carried_from_run, carried_state, carried_class" "$(python3 -c '
import csv, sys
rows = sorted(csv.DictReader(open(sys.argv[1], newline="")), key=lambda r: r["key"])
print(" ".join("%s:%s:%s:%s:%s" % (r["key"], r["state"], r["carried_from_run"], r["carried_state"],
               r["carried_class"]) for r in rows))' "$TMP/out")" \
	"rr/f1:Skipped:$R1:Failed:failed rr/ok1:Skipped:$R1:Succeeded: rr/t1:Skipped:$R1:Failed:timeout rr/t2:Skipped:$R1:Failed:timeout"
runner results --db "$DB" --run "$R2" --format junit
check_eq "[A] junit: carried failures are <failure> saying where they come from, a carried success <skipped>" \
	"$(python3 -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
out = [r.get("failures"), r.get("errors")]
for tc in sorted(r.iter("testcase"), key=lambda t: t.get("name")):
    f = tc.find("failure")
    out.append("%s:%s" % (tc.get("name"), "failure(%s)" % f.get("message").split(":")[0] if f is not None
               else "skipped" if tc.find("skipped") is not None else "passed"))
print(" ".join(out))' "$TMP/out")" \
	"3 0 f1:failure(carried from run $R1) ok1:skipped t1:failure(carried from run $R1) t2:failure(carried from run $R1)"
check_match "[A] junit: the carried failure keeps the failed attempt's stderr" "$(cat "$TMP/out")" \
	"<system-err>boom"
runner report --db "$DB" --run "$R2" -o "$D/r2.html"
check_eq "[A] report exits 0" "$RC" 0
check_eq "[A] report: badge 'failed', 3 carried failures listed with the run they come from" \
	"$(grep -o 'class="badge [a-z]*"' "$D/r2.html")|$(grep -o 'data-carried-failed="[0-9]*"' "$D/r2.html")|$(grep -c "data-carried-from=\"$R1\"" "$D/r2.html")" \
	"class=\"badge failed\"|data-carried-failed=\"3\"|3"

# A runner killed while starting left a run with no rows (as before the plan was one
# transaction): it must hide nothing.
sql "$DB" "INSERT INTO runs (name, status, started_at, host, pid) VALUES ('rr', 'interrupted',
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'elsewhere', 1)"
rm "$D/slow"
runner run --progress none --db "$DB" --run-name rr --rerun timeout "$D/rr.yaml"
R3=$(last_run "$DB")
check_eq "[A] --rerun timeout after a --rerun infra and an empty run runs the timeouts" \
	"$(names_where "$DB" "$R3" "state != 'Skipped'")" "t1,t2"
check_eq "[A] ... they pass now, f1's failure is still carried: exit 1" "$RC" 1
check_eq "[A] ... Skipped rows point at the standing result itself (run $R1), not at a Skipped row" \
	"$(sql "$DB" "SELECT group_concat(j.name || ':' || p.run_id || ':' || p.state, ',') FROM
	   (SELECT * FROM jobs WHERE run_id = $R3 AND state = 'Skipped' ORDER BY name) j
	   JOIN jobs p ON p.id = j.skipped_from")" \
	"f1:$R1:Failed,ok1:$R1:Succeeded"
rm "$D/bad"
runner run --progress none --db "$DB" --run-name rr --rerun failed "$D/rr.yaml"
R4=$(last_run "$DB")
check_eq "[A] --rerun failed runs f1, whose failure stood through two reruns" \
	"$(names_where "$DB" "$R4" "state != 'Skipped'")" "f1"
check_eq "[A] ... every standing result is a success now: exit 0, 'succeeded'" \
	"$RC|$(sql "$DB" "SELECT status FROM runs WHERE id = $R4")" "0|succeeded"
runner run --progress none --db "$DB" --run-name rr --rerun failed,timeout "$D/rr.yaml"
check_eq "[A] a further --rerun failed,timeout runs nothing and exits 0" \
	"$RC|$(names_where "$DB" "$(last_run "$DB")" "state != 'Skipped'")" "0|"

# A carried Cancelled is a failure of the run too; --rerun cancelled runs it.
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 4, isolation: none}"
	echo "jobs:"
	for t in s1 s2; do
		echo "  - {name: $t, timeout: 60s, steps: [{type: Command, command: [\"sh\", \"-c\", \"test -e $D/slow && exec sleep 30.$MARK; true\"]}]}"
	done
	echo '  - {name: ok1, steps: [{type: Command, command: ["true"]}]}'
} >"$D/cx.yaml"
touch "$D/slow"
# Interrupted once ok1 is recorded and both slow jobs are running: they end Cancelled.
"$ARL_BATCH" run --progress none --db "$DB" --run-name cx "$D/cx.yaml" >/dev/null 2>&1 &
RUNNER_PID=$!
cx_started() {
	[ "$(sql "$DB" "SELECT count(*) FROM jobs j JOIN runs r ON r.id = j.run_id WHERE r.name = 'cx'
	     AND ((j.name = 'ok1' AND j.state = 'Succeeded') OR j.state = 'Running')" 2>/dev/null)" = 3 ]
}
until cx_started || ! kill -0 "$RUNNER_PID" 2>/dev/null; do sleep 0.02; done
kill -INT "$RUNNER_PID" 2>/dev/null || true
wait_exit 60
C1=$(last_run "$DB")
check_eq "[A] an interrupt cancels the slow jobs (exit 130)" \
	"$RC|$(names_where "$DB" "$C1" "state = 'Cancelled'")" "130|s1,s2"
rm "$D/slow"
runner run --progress none --db "$DB" --run-name cx --rerun timeout "$D/cx.yaml"
check_eq "[A] --rerun timeout carries the Cancelled jobs: nothing runs, exit 1" \
	"$RC|$(names_where "$DB" "$(last_run "$DB")" "state != 'Skipped'")" "1|"
check_match "[A] ... the summary counts them as carried cancels" "$(tail -n 1 "$TMP/err")" \
	"carried from earlier runs: 0 failed \(0 failed, 0 timeout, 0 infra\), 2 cancelled"
runner report --db "$DB" --run "$(last_run "$DB")" -o "$D/cx.html"
check_eq "[A] ... the report: badge 'failed', 2 carried cancels" \
	"$(grep -o 'class="badge [a-z]*"' "$D/cx.html")|$(grep -o 'data-carried-cancelled="[0-9]*"' "$D/cx.html")|$(grep -c '2 carried from earlier runs' "$D/cx.html")" \
	"class=\"badge failed\"|data-carried-cancelled=\"2\"|1"
runner run --progress none --db "$DB" --run-name cx --rerun cancelled "$D/cx.yaml"
check_eq "[A] --rerun cancelled runs them: exit 0" \
	"$RC|$(names_where "$DB" "$(last_run "$DB")" "state != 'Skipped'")" "0|s1,s2"

# ------------------------------------------------------------------------------------------
echo "# B. --resume killed at ten points of a 3,000-job run"
D=$TMP/kill
mkdir -p "$D"
DB=$D/k.db
N=3000
LEDGER=$D/ledger
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 8, isolation: none}"
	echo "jobs:"
	for i in $(seq -w 1 $N); do
		echo "  - {name: j$i, steps: [{type: Command, command: [\"sh\", \"-c\", \"echo j$i >> $LEDGER\"]}]}"
	done
} >"$D/k.yaml"

# Polls while the runner lives; returns when COMMAND succeeds or the runner is gone.
until_seen() {
	until "$@"; do
		kill -0 "$RUNNER_PID" 2>/dev/null || return 0
		sleep 0.005
	done
}
runs_now() {
	[ -f "$DB" ] && sqlite3 -cmd ".timeout 5000" "$DB" "SELECT count(*) FROM runs" 2>/dev/null || echo 0
}
run_row_seen() { [ "$(runs_now)" -gt "$BEFORE" ]; }
ledger_has() { [ "$(wc -l <"$LEDGER")" -ge "$1" ]; }

# Where each round is killed: right away, after a few ms, once its run row shows (and a few
# ms after), or once its steps have run 1, 200, 500 times. Whatever the moment, the checks
# after the last round must hold.
POINTS=("now" "ledger 200" "row" "row 0.01" "sleep 0.02" "ledger 1" "row 0.05" "ledger 500" "row" "sleep 0.15")
: >"$LEDGER"
chmod 666 "$LEDGER"
: >"$D/rounds"
KILLED=0
round=0
for point in "${POINTS[@]}"; do
	round=$((round + 1))
	BEFORE=$(runs_now)
	set +e
	"$ARL_BATCH" run --db "$DB" --progress none --resume -j 8 "$D/k.yaml" >"$D/out.$round" 2>&1 &
	RUNNER_PID=$!
	set -e
	read -r what arg <<<"$point"
	case $what in
	sleep) sleep "$arg" ;;
	row)
		until_seen run_row_seen
		[ -n "${arg:-}" ] && sleep "$arg"
		;;
	ledger) until_seen ledger_has "$arg" ;;
	esac
	if kill -9 "$RUNNER_PID" 2>/dev/null; then KILLED=$((KILLED + 1)); fi
	{ wait "$RUNNER_PID"; } 2>/dev/null || true
	RUNNER_PID=
	[ -f "$DB" ] || continue
	runner runs --db "$DB" # closes the dead run
	run_id=$(last_run "$DB")
	mv "$LEDGER" "$LEDGER.$round" && : >"$LEDGER" && chmod 666 "$LEDGER"
	echo "$round $run_id" >>"$D/rounds"
	echo "   round $round ($point): run ${run_id:-none}, $(wc -l <"$LEDGER.$round") executions," \
		"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = '$run_id'") rows"
	check_eq "[B] round $round: integrity_check" "$(sql "$DB" "PRAGMA integrity_check")" ok
done
check_ge "[B] the runner was killed in most rounds" "$KILLED" 8
runner run --db "$DB" --progress none --resume -j 8 "$D/k.yaml"
check_eq "[B] the final --resume exits 0" "$RC" 0
mv "$LEDGER" "$LEDGER.final"
echo "final $(last_run "$DB")" >>"$D/rounds"
check_eq "[B] no key has more than one Succeeded row" \
	"$(sql "$DB" "SELECT count(*) FROM (SELECT key FROM jobs WHERE state = 'Succeeded' GROUP BY key HAVING count(*) > 1)")" 0
check_eq "[B] every key has exactly one Succeeded row" \
	"$(sql "$DB" "SELECT count(*) FROM (SELECT key FROM jobs WHERE state = 'Succeeded' GROUP BY key HAVING count(*) = 1)")" "$N"
while read -r round run_id; do
	sed "s/\$/|$run_id/" "$LEDGER.$round"
done <"$D/rounds" | sort >"$D/execs"
sql "$DB" "SELECT substr(key, instr(key, '/') + 1), run_id FROM jobs WHERE state = 'Succeeded'" |
	sort >"$D/done"
check_eq "[B] no recorded success was executed again in a later run" \
	"$(join -t'|' "$D/execs" "$D/done" | awk -F'|' '$2 > $3' | wc -l)" 0
echo "   $(wc -l <"$D/execs") executions for $N jobs over $(wc -l <"$D/rounds") runs"

# ------------------------------------------------------------------------------------------
echo "# C. prune --keep 2 reaches its fixed point in one pass"
D=$TMP/prune
mkdir -p "$D"
DB=$D/p.db
pf_yaml() { # VERSION: c's command changes with it, so --resume runs c again
	{
		echo "version: 1"
		echo "pools:"
		echo "  p: {replicas: 2, isolation: none}"
		echo "jobs:"
		echo '  - {name: b, steps: [{type: Command, command: ["true"]}]}'
		echo "  - {name: c, steps: [{type: Command, command: [\"sh\", \"-c\", \"test ! -e $D/cbad && : $1\"]}]}"
	} >"$D/pf.yaml"
}
pf_yaml v1
touch "$D/cbad"
runner run --progress none --db "$DB" --run-name pf "$D/pf.yaml" # P1: b ok, c fails
rm "$D/cbad"
runner run --progress none --db "$DB" --run-name pf --resume "$D/pf.yaml" # P2: c ok
runner run --progress none --db "$DB" --run-name pf --resume "$D/pf.yaml" # P3 stands on P2
pf_yaml v2
runner run --progress none --db "$DB" --run-name pf --resume "$D/pf.yaml" # P4: c v2 runs
runner run --progress none --db "$DB" --run-name pf --resume "$D/pf.yaml" # P5
P=$(sql "$DB" "SELECT group_concat(id, ',') FROM (SELECT id FROM runs WHERE name = 'pf' ORDER BY id)")
check_eq "[C] only P3 stands on P2, and P4 and P5 stand on P1" \
	"$(sql "$DB" "SELECT group_concat(k.run_id || '>' || t.run_id, ',') FROM (SELECT * FROM jobs
	   WHERE state = 'Skipped' ORDER BY run_id, name) k JOIN jobs t ON t.id = k.skipped_from
	   WHERE k.run_id IN (SELECT id FROM runs WHERE name = 'pf')")" \
	"$(echo "$P" | awk -F, '{printf "%s>%s,%s>%s,%s>%s,%s>%s,%s>%s,%s>%s", $2,$1, $3,$1, $3,$2, $4,$1, $5,$1, $5,$4}')"
runner prune --db "$DB" --keep 2 --dry-run
check_eq "[C] prune --keep 2 --dry-run lists P3 and P2" "$(grep -c '^would delete run' "$TMP/out")" 2
check_eq "[C] ... and deletes nothing" "$(sql "$DB" "SELECT count(*) FROM runs WHERE name = 'pf'")" 5
runner prune --db "$DB" --keep 2
check_eq "[C] prune --keep 2 deletes P2 and P3 at once, keeps P1 (P4 and P5 stand on it)" \
	"$RC|$(sql "$DB" "SELECT group_concat(id, ',') FROM (SELECT id FROM runs WHERE name = 'pf' ORDER BY id)")" \
	"0|$(echo "$P" | cut -d, -f1,4,5)"
runner prune --db "$DB" --keep 2
check_match "[C] a second prune deletes nothing more" "$(cat "$TMP/out")" "^pruned 0 runs"
check_eq "[C] no dangling skipped_from" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE skipped_from IS NOT NULL AND skipped_from NOT IN (SELECT id FROM jobs)")" 0

# ------------------------------------------------------------------------------------------
echo "# D. show JOB of a Skipped job says what it carries, from which run, and its attempts"
D=$TMP/show
mkdir -p "$D"
DB=$D/s.db
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 2, isolation: none}"
	echo "jobs:"
	echo '  - {name: f1, steps: [{type: Command, command: ["sh", "-c", "echo boom-f1 >&2; exit 3"]}]}'
	echo '  - {name: ok1, steps: [{type: Command, command: ["sh", "-c", "echo fine-ok1"]}]}'
} >"$D/s.yaml"
runner run --progress none --db "$DB" --run-name sh "$D/s.yaml"
S1=$(last_run "$DB")
F1=$(sql "$DB" "SELECT id FROM jobs WHERE run_id = $S1 AND name = 'f1'")
runner run --progress none --db "$DB" --run-name sh --rerun infra "$D/s.yaml"
S2=$(last_run "$DB")
check_eq "[D] --rerun infra skipped both" "$(names_where "$DB" "$S2" "state = 'Skipped'")" "f1,ok1"
runner show --db "$DB" s/f1
check_eq "[D] show of a carried failure exits 0" "$RC" 0
check_match "[D] ... it is the job of the --rerun run" "$(head -n 1 "$TMP/out")" "^job s/f1 \\(run $S2 "
check_match "[D] ... says it carries run $S1's failure, never that it succeeded" "$(cat "$TMP/out")" \
	"carried: +Failed, exit 3, 1 attempt, from run $S1 'sh' \\(job id $F1\\)"
check_eq "[D] ... and never says 'succeeded'" "$(grep -ci succeeded "$TMP/out" || true)" 0
check_match "[D] ... names the command that shows that run's job" "$(cat "$TMP/out")" \
	"attempts of run $S1, whose result this job carries \\(arl-batch show s/f1 --run $S1\\)"
check_match "[D] ... and shows the failed attempt with its step's stderr" "$(cat "$TMP/out")" \
	"attempt 1: Failed, exit 3.*step 1 step-1 \\(Command\\): Failed, exit 3.*boom-f1"
runner show --db "$DB" ok1
check_match "[D] show of a carried success says where it succeeded, with its output" \
	"$RC|$(tr '\n' ' ' <"$TMP/out")" "^0\\|.*carried: +Succeeded, exit 0, 1 attempt, from run $S1 .*fine-ok1"
runner show --db "$DB" --run "$S1" s/f1
check_eq "[D] show --run $S1 shows the original job, with no 'carried' line" \
	"$RC|$(grep -c "carried" "$TMP/out" || true)|$(grep -c boom-f1 "$TMP/out")" "0|0|1"
sql "$DB" "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = $S1"
runner show --db "$DB" s/f1
check_match "[D] when the carried run is gone, show says so" "$RC|$(cat "$TMP/out")" \
	"^0\\|.*carried: +nothing: the earlier result it stood for was pruned"

summary
