#!/usr/bin/env bash
# Crash safety: a run of 200 short jobs (isolation: none) is killed with SIGKILL at random
# moments, 5 times, with `run --resume` in between. After every kill the database opens and
# passes PRAGMA integrity_check, the killed run is closed as 'interrupted' by the next command
# that opens the database, and at the end `--resume` has completed every job: per key exactly
# one Succeeded result across all runs, the final run holding the others as Skipped pointing
# at it, and no job executed again after it had been recorded Succeeded (every execution is
# logged to a host file and must belong to a recorded attempt).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3
make_tmp
# Steps need not run as this user (a root runner maps them to another uid): they may read
# the flag files and append to the ledger.
chmod 755 "$TMP"

RUNNER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	return 0
}
CLEANUP=cleanup

N=200
DB=$TMP/crash.db
LEDGER=$TMP/ledger
JOBFILE=$TMP/crashy.yaml
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 8, isolation: none}"
	echo "jobs:"
	for i in $(seq -w 1 $N); do
		echo "  - {name: j$i, timeout: 30s, steps: [{type: Command, command: [\"sh\", \"-c\", \"echo j$i >> $LEDGER; sleep 0.0$((10#$i % 10))\"]}]}"
	done
} >"$JOBFILE"

# Every execution appends its job's name to $LEDGER; after each round the ledger is moved to
# $LEDGER.ROUND and the round's run id noted, so each execution is tied to its run.
: >"$LEDGER"
chmod 666 "$LEDGER"
: >"$TMP/rounds"

KILLS=0
for round in 1 2 3 4 5; do
	set +e
	"$ARL_BATCH" run --db "$DB" --progress none --resume -j 4 "$JOBFILE" >"$TMP/out.$round" 2>&1 &
	RUNNER_PID=$!
	set -e
	# Killed at a random point of its progress, 5 to 24 executions into the round, not of
	# the clock: a fast machine finished the jobs left before a kill timed at 0.2-1.0 s.
	want=$((5 + RANDOM % 20))
	for _ in $(seq 3000); do # a bound (60 s) for a hung run, not a timing
		[ "$(wc -l <"$LEDGER")" -lt "$want" ] && kill -0 "$RUNNER_PID" 2>/dev/null || break
		sleep 0.02
	done
	if kill -9 "$RUNNER_PID" 2>/dev/null; then
		KILLS=$((KILLS + 1))
	fi
	{ wait "$RUNNER_PID"; } 2>/dev/null || true
	RUNNER_PID=
	[ -f "$DB" ] || continue # killed before it created the database
	run_id=$(sql "$DB" "SELECT max(id) FROM runs")
	mv "$LEDGER" "$LEDGER.$round" && : >"$LEDGER" && chmod 666 "$LEDGER"
	echo "$round $run_id" >>"$TMP/rounds"
	check_eq "round $round: integrity_check" "$(sql "$DB" "PRAGMA integrity_check")" "ok"
	# The next command that opens the database closes the dead run.
	runner runs --db "$DB" --format json
	check_eq "round $round: 'runs' opens the database" "$RC" "0"
	check_eq "round $round: no run left 'running'" \
		"$(sql "$DB" "SELECT count(*) FROM runs WHERE status = 'running'")" "0"
	last=$(sql "$DB" "SELECT status FROM runs ORDER BY id DESC LIMIT 1")
	check_match "round $round: the killed run is interrupted (or finished first)" "$last" \
		'^(interrupted|succeeded)$'
done
check_ge "the runner was killed mid-run" "$KILLS" 3
check_ge "interrupted runs recorded" \
	"$(sql "$DB" "SELECT count(*) FROM runs WHERE status = 'interrupted'")" 1

runner run --db "$DB" --progress none --resume -j 8 "$JOBFILE"
check_eq "the final --resume succeeds" "$RC" "0"
mv "$LEDGER" "$LEDGER.final"
echo "final $(sql "$DB" "SELECT max(id) FROM runs")" >>"$TMP/rounds"
check_eq "integrity_check at the end" "$(sql "$DB" "PRAGMA integrity_check")" "ok"
final=$(sql "$DB" "SELECT max(id) FROM runs")
check_eq "the final run holds every job" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = $final")" "$N"
check_eq "the final run: every job Succeeded or Skipped" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = $final AND state IN ('Succeeded','Skipped')")" "$N"
check_eq "exactly one Succeeded result per key across all runs" \
	"$(sql "$DB" "SELECT count(*) FROM (SELECT key FROM jobs WHERE state = 'Succeeded' GROUP BY key HAVING count(*) = 1)")" "$N"
check_eq "no key succeeded twice" \
	"$(sql "$DB" "SELECT count(*) FROM (SELECT key FROM jobs WHERE state = 'Succeeded' GROUP BY key HAVING count(*) > 1)")" "0"
check_eq "every Skipped job points at that key's Succeeded job" \
	"$(sql "$DB" "SELECT count(*) FROM jobs s LEFT JOIN jobs o ON o.id = s.skipped_from
	              WHERE s.state = 'Skipped' AND (o.id IS NULL OR o.key != s.key OR o.state != 'Succeeded')")" "0"
# Each execution (key, run id) must come no later than the run that recorded the key's
# Succeeded job: an execution in a later run would be a finished job run twice.
while read -r round run_id; do
	sed "s/\$/|$run_id/" "$LEDGER.$round"
done <"$TMP/rounds" | sort >"$TMP/execs"
sql "$DB" "SELECT substr(key, instr(key, '/') + 1), run_id FROM jobs WHERE state = 'Succeeded'" |
	sort >"$TMP/done"
check_eq "every key executed at least once" "$(cut -d'|' -f1 "$TMP/execs" | sort -u | wc -l)" "$N"
check_eq "no key executed in a run after the one that recorded it Succeeded" \
	"$(join -t'|' "$TMP/execs" "$TMP/done" | awk -F'|' '$2 > $3' | wc -l)" "0"
check_eq "each key executed in the run that recorded it Succeeded" \
	"$(join -t'|' "$TMP/execs" "$TMP/done" | awk -F'|' '$2 == $3 {print $1}' | sort -u | wc -l)" "$N"
echo "   $(wc -l <"$TMP/execs") executions for $N jobs over $(wc -l <"$TMP/rounds") runs"

summary
