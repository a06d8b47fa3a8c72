#!/usr/bin/env bash
# Interrupting a run: SIGINT and SIGTERM while 4 of 20 sleeping jobs run in bubblewrap must
# end the runner quickly with 130 / 143, kill every process of the run, remove its sandboxes,
# and leave the run 'interrupted' with every job Cancelled or finished. A runner killed with
# SIGKILL leaves no process behind (bwrap --die-with-parent) and its run is repaired to
# 'interrupted' by the next command that reads the database.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 pgrep
make_tmp

MARK=$$$RANDOM # every step runs `sleep 20.$MARK`
RUNNER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	kill_procs_with "20\.$MARK"
	return 0
}
CLEANUP=cleanup

JOBFILE=$TMP/sleepers.yaml
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 4}"
	echo "jobs:"
	for i in $(seq -w 1 20); do
		echo "  - {name: sleeper-$i, timeout: 60s, steps: [{type: Command, command: [\"sh\", \"-c\", \"sleep 20.$MARK\"]}]}"
	done
} >"$JOBFILE"

# Waits until the run has 4 jobs Running and 4 sleeps started (at most 120 s: a hang's bound).
wait_running() {
	local db=$1 i running procs
	for i in $(seq 1200); do
		running=$(sql "$db" "SELECT count(*) FROM jobs WHERE state = 'Running'" 2>/dev/null || echo 0)
		procs=$(pgrep -f "^sleep 20\.$MARK" | wc -l || true)
		if [ "$running" = 4 ] && [ "$procs" -ge 4 ]; then
			return 0
		fi
		if ! kill -0 "$RUNNER_PID" 2>/dev/null; then
			echo "   the runner exited early"
			return 1
		fi
		sleep 0.1
	done
	echo "   after 120 s: $running jobs Running, $procs sleeps"
	return 1
}

# interrupt SIGNAL EXPECTED_EXIT
interrupt() {
	local sig=$1 want=$2 D DB STATE
	D=$TMP/$sig
	DB=$D/results.db
	STATE=$D/state
	mkdir -p "$D"
	echo "# $sig while 4 of 20 jobs run (bwrap, -j 4)"
	"$ARL_BATCH" run --progress plain --db "$DB" --state-dir "$STATE" -j 4 "$JOBFILE" \
		>"$D/out" 2>"$D/err" &
	RUNNER_PID=$!
	if wait_running "$DB"; then
		ok "[$sig] 4 jobs Running, 4 sleeps started"
	else
		ko "[$sig] 4 jobs Running, 4 sleeps started"
	fi
	kill -s "$sig" "$RUNNER_PID"
	wait_exit 300 # a hang's bound (RC 999), not a timing
	echo "   measured: $sig -> runner exit after ${ELAPSED_MS} ms"
	check_eq "[$sig] the runner exits $want" "$RC" "$want"
	# Promptly: it cut the running steps rather than waiting out their sleep 20.
	check_le "[$sig] the interrupted steps were cut before their sleep 20 ended (longest, ms)" \
		"$(sql "$DB" "SELECT ifnull(max(duration_ms), 20000) FROM steps")" 19999
	check_eq "[$sig] no process of the run left (sleep 20.$MARK)" "$(leftover "20\.$MARK")" ""
	check_eq "[$sig] no sandbox directory left in the state dir" \
		"$(find "$STATE" -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null | head -n 5)" ""
	check_eq "[$sig] run row: interrupted, exit code $want, finished" \
		"$(sql "$DB" 'SELECT status, exit_code, finished_at IS NOT NULL FROM runs')" "interrupted|$want|1"
	check_eq "[$sig] no job Pending or Running" \
		"$(sql "$DB" "SELECT count(*) FROM jobs WHERE state IN ('Pending', 'Running')")" 0
	check_eq "[$sig] all 20 jobs Cancelled (class cancelled)" \
		"$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Cancelled' AND error_class = 'cancelled'")" 20
	check_eq "[$sig] the 4 in-flight jobs have one Cancelled attempt each" \
		"$(sql "$DB" "SELECT count(*), count(DISTINCT job_id) FROM attempts WHERE state = 'Cancelled'")" "4|4"
	check_eq "[$sig] no attempt left Running" \
		"$(sql "$DB" "SELECT count(*) FROM attempts WHERE state = 'Running' OR finished_at IS NULL")" 0
	check_eq "[$sig] run counters: 20 total, 20 cancelled" \
		"$(sql "$DB" 'SELECT jobs_total, jobs_succeeded + jobs_failed + jobs_skipped, jobs_cancelled FROM runs')" \
		"20|0|20"
	check_match "[$sig] the runner said so on stderr" "$(cat "$D/err")" 'interrupted'
}

interrupt INT 130
interrupt TERM 143

echo "# SIGKILL mid-run"
D=$TMP/KILL
DB=$D/results.db
mkdir -p "$D"
"$ARL_BATCH" run --progress none --db "$DB" -j 4 "$JOBFILE" >"$D/out" 2>"$D/err" &
RUNNER_PID=$!
KILLED_PID=$RUNNER_PID
if wait_running "$DB"; then
	ok "[KILL] 4 jobs Running, 4 sleeps started"
else
	ko "[KILL] 4 jobs Running, 4 sleeps started"
fi
children=$(procs_with "20\.$MARK" | tr '\n' ' ')
kill -9 "$RUNNER_PID"
wait_exit 300
check_eq "[KILL] the runner died of SIGKILL" "$RC" 137
left=$(leftover "20\.$MARK")
check_eq "[KILL] bwrap --die-with-parent: no process of the run left" "$left" ""
if [ -n "$left" ]; then
	echo "   killing the leftovers by PID: $left"
	for p in $left; do kill -9 "$p" 2>/dev/null || true; done
fi
echo "   (the run's processes were: $children)"
check_eq "[KILL] before any repair the run row still says running" \
	"$(sql "$DB" 'SELECT status, pid FROM runs')" "running|$KILLED_PID"
runner runs --db "$DB"
check_eq "[KILL] arl-batch runs exits 0" "$RC" 0
check_match "[KILL] arl-batch runs shows the run interrupted" "$(cat "$TMP/out")" ' 1 +sleepers +interrupted '
check_eq "[KILL] the repaired run row: interrupted, finished" \
	"$(sql "$DB" 'SELECT status, finished_at IS NOT NULL FROM runs')" "interrupted|1"
check_eq "[KILL] after the repair no job is Pending or Running" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE state IN ('Pending', 'Running')")" 0
check_eq "[KILL] after the repair no attempt is Running" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE state = 'Running'")" 0
check_eq "[KILL] repaired counters agree with the jobs" \
	"$(sql "$DB" "SELECT jobs_cancelled = (SELECT count(*) FROM jobs WHERE state = 'Cancelled') AND jobs_total = 20 FROM runs")" 1
echo "   sandboxes left by the killed run (for gc): $(find "$DB.sandboxes" -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null | wc -l)"

summary
