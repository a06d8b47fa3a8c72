#!/usr/bin/env bash
# The disk holding the results database fills up (issue 7). On a small tmpfs:
#   1. the database fills mid-run from the jobs' output: the run stops starting jobs, stops the
#      one in flight, leaves no process and no sandbox, prints one clear error and exits 3; the
#      database passes integrity_check, keeps every job recorded before, and once the tmpfs is
#      grown `run --resume` completes the rest without running a recorded job again;
#   2. a job fills the disk to the last byte, so not even the run's row can be closed: reading
#      commands still work on the full disk (another connection keeps the WAL index) and the
#      next open after space is freed repairs the run to 'interrupted';
#   3. the disk is full before the run: a new database cannot be created (clear error, exit 3,
#      no stray file, nothing run), an existing one cannot take the run (same, and intact);
#   4. the sandboxes share the full disk with the database (the default state dir): the same
#      stop, no sandbox left, and --resume completes the run.
# Needs root (mount -t tmpfs); anyone else gets SKIP (77).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 pgrep mount umount mountpoint
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: mounting a small tmpfs needs root"
	exit 77
fi
make_tmp

MARK=$$$RANDOM # the long step runs `sleep 20.$MARK`
MNT=$TMP/mnt
RUNNER_PID=
HOLDER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	[ -n "$HOLDER_PID" ] && kill -9 "$HOLDER_PID" 2>/dev/null
	kill_procs_with "20\.$MARK"
	if mountpoint -q "$MNT"; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	return 0
}
CLEANUP=cleanup

# small_disk SIZE: a fresh tmpfs of SIZE at $MNT.
small_disk() {
	if mountpoint -q "$MNT"; then umount "$MNT"; fi
	mkdir -p "$MNT"
	mount -t tmpfs -o "size=$1,mode=0755" tmpfs "$MNT"
	steps_may_use "$MNT" # a job fills it
}
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=1m tmpfs "$MNT" 2>/dev/null; then
	echo "SKIP: cannot mount a tmpfs here"
	exit 77
fi

# Fills $MNT to the last byte.
fill_disk() {
	head -c 200M /dev/zero >"$MNT/filler.$1" 2>/dev/null || true
}

# is_count DESC VALUE: VALUE is a count (else a failure is reported; the caller goes on).
is_count() {
	[[ $2 =~ ^[0-9]+$ ]] && return 0
	ko "$1" "got: $2"
	return 1
}

# What the runner said on stderr that is an error (the progress lines are not).
errors() {
	grep '^arl-batch: cannot' "$1" || true
}

# Files in DIR but lock files (flock(2) locks stay beside the database by design).
files_in() {
	find "$1" -mindepth 1 -maxdepth 1 ! -name '.*' ! -name '*.lock-*' ! -name 'filler.*' -printf '%f\n' |
		sort |
		tr '\n' ' '
}

# ---------------------------------------------------------------------------------------------
echo "# 1. the database fills mid-run from the jobs' output (state dir elsewhere)"
small_disk 2m
DB=$MNT/r.db
STATE=$TMP/state1
LEDGER=$TMP/ledger
N=25 # the slow job and 24 that print 200 kB each: the 2 MB disk takes about 8 of them
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 2, isolation: none}"
	echo "jobs:"
	echo "  - {name: slow, timeout: 60s, steps: [{type: Command, command: [\"sh\", \"-c\", \"echo slow >> $LEDGER; test -e $TMP/fast || sleep 20.$MARK\"]}]}"
	for i in $(seq -w 1 24); do
		echo "  - {name: out$i, steps: [{type: Command, command: [\"sh\", \"-c\", \"echo out$i >> $LEDGER; head -c 150000 /dev/urandom | base64 -w 100\"]}]}"
	done
} >"$TMP/out.yaml"
: >"$LEDGER"
steps_may_use "$LEDGER"
"$ARL_BATCH" run --progress plain --db "$DB" --state-dir "$STATE" "$TMP/out.yaml" \
	>"$TMP/out1" 2>"$TMP/err1" &
RUNNER_PID=$!
wait_exit 300 # a hang's bound (RC 999), not a timing
echo "   measured: the run ended after $((ELAPSED_MS / 1000)) s"
check_eq "[1] the run exits 3" "$RC" 3
# Without waiting for the slow job: it ended before that job's `sleep 20` could (the sleep's
# own length, not a guess at how fast a busy machine is).
check_le "[1] ... before the slow job's sleep 20 could end (ms)" "$ELAPSED_MS" 19999
err=$(errors "$TMP/err1")
check_match "[1] one clear error: the file, the cause, what was kept, what to do" "$err" \
	"^arl-batch: cannot write to results database '$DB': database or disk is full \(([0-9]+) of $N jobs recorded, ([0-9]+) not started\); free space and run again with --resume$"
said_recorded=${BASH_REMATCH[1]:-x}
said_not_started=${BASH_REMATCH[2]:-x}
check_eq "[1] no process of the run left (sleep 20.$MARK)" "$(leftover "20\.$MARK")" ""
check_eq "[1] no sandbox left in the state dir" "$(files_in "$STATE" 2>/dev/null)" ""
check_eq "[1] integrity_check on the full disk" "$(sql "$DB" 'PRAGMA integrity_check')" ok
recorded=$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'" || echo "(sqlite3 failed)")
is_count "[1] the database reads on the full disk" "$recorded" || recorded=-1
echo "   $recorded jobs recorded before the disk was full; stderr said $said_recorded recorded, $said_not_started not started"
check_eq "[1] the count in the message is what the database holds" "$said_recorded" "$recorded"
said_ok=$(sed -n "s/^arl-batch: run 1 .*: \([0-9]*\) succeeded, .*/\1/p" "$TMP/err1")
check_eq "[1] the summary's 'succeeded' is what the database holds, not what ran" \
	"${said_ok:-no summary}" "$recorded"
check_ge "[1] jobs were recorded before the disk filled" "$recorded" 3
check_le "[1] ... and the disk did fill" "$recorded" 20
check_eq "[1] every recorded job has its attempt and its 200 kB of output" \
	"$(sql "$DB" "SELECT count(*) FROM jobs j JOIN attempts a ON a.job_id = j.id JOIN steps s
	              ON s.attempt_id = a.id WHERE j.state = 'Succeeded' AND length(s.stdout) = 202000")" \
	"$recorded"
# Two jobs ran unrecorded: the slow one and the one whose result found the disk full (or whose
# start did: then the one before it was recorded). Every other job never started.
execs=$(wc -l <"$LEDGER")
check_le "[1] no job started after the failure (executions: $execs)" "$execs" $((recorded + 2))
check_eq "[1] ... the message counts all the others as not started" "$said_not_started" \
	$((N - recorded - 2))
run1=$(sql "$DB" 'SELECT status, exit_code FROM runs WHERE id = 1' || echo "(sqlite3 failed)")
echo "   the run row on the full disk: $run1"
check_match "[1] the run row: interrupted with exit 3, or left for the repair" "$run1" \
	'^(interrupted\|3|running\|)$'
cp "$LEDGER" "$LEDGER.1"
: >"$LEDGER"

mount -o remount,size=64m "$MNT"
touch "$TMP/fast"
runner runs --db "$DB"
check_eq "[1] after freeing space: runs opens the database" "$RC" 0
check_eq "[1] ... the run is interrupted, no job left Pending or Running" \
	"$(sql "$DB" "SELECT status || '|' || (SELECT count(*) FROM jobs WHERE state IN ('Pending', 'Running'))
	              FROM runs WHERE id = 1")" "interrupted|0"
runner run --progress none --resume --db "$DB" --state-dir "$STATE" "$TMP/out.yaml"
check_eq "[1] run --resume completes the rest" "$RC" 0
check_eq "[1] integrity_check after the resume" "$(sql "$DB" 'PRAGMA integrity_check')" ok
check_eq "[1] the jobs recorded before the failure are all still there" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = 1 AND state = 'Succeeded'")" "$recorded"
check_eq "[1] the resume skipped exactly those" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = 2 AND state = 'Skipped'")" "$recorded"
check_eq "[1] every job has exactly one Succeeded result" \
	"$(sql "$DB" "SELECT count(*) FROM (SELECT key FROM jobs WHERE state = 'Succeeded'
	              GROUP BY key HAVING count(*) = 1)")" "$N"
sql "$DB" "SELECT name FROM jobs WHERE run_id = 1 AND state = 'Succeeded'" | sort >"$TMP/done1"
check_eq "[1] no job recorded in the first run ran again" \
	"$(sort "$LEDGER" | comm -12 - "$TMP/done1" | tr '\n' ' ')" ""
check_eq "[1] the resume ran each of the others once" "$(wc -l <"$LEDGER")" $((N - recorded))

# ---------------------------------------------------------------------------------------------
echo "# 2. a job fills the disk to the last byte: the run's row cannot be closed"
small_disk 1m
DB=$MNT/k.db
STATE=$TMP/state2
rm -f "$TMP/fast"
cat >"$TMP/warm.yaml" <<EOF
version: 1
pools: {p: {isolation: none}}
jobs: [{name: w, steps: [{type: Command, command: ["true"]}]}]
EOF
cat >"$TMP/fill.yaml" <<EOF
version: 1
pools:
  p: {replicas: 2, isolation: none}
jobs:
  - {name: slow, timeout: 60s, steps: [{type: Command, command: ["sh", "-c", "sleep 20.$MARK"]}]}
  - {name: a, steps: [{type: Command, command: ["echo", "a"]}]}
  - {name: fill, steps: [{type: Command, command: ["sh", "-c", "head -c 200M /dev/zero > $MNT/filler.job 2>/dev/null; echo filled"]}]}
  - {name: b, steps: [{type: Command, command: ["echo", "b"]}]}
EOF
runner run --progress none --db "$DB" --state-dir "$STATE" "$TMP/warm.yaml"
check_eq "[2] a first run creates the database" "$RC" 0
# Another reader keeps the database open, as `arl-batch results` in another terminal would:
# the WAL and its index then outlive the runner, so reading needs no new space.
mkfifo "$TMP/hold"
sqlite3 "$DB" <"$TMP/hold" >"$TMP/hold.out" 2>&1 &
HOLDER_PID=$!
exec 3>"$TMP/hold"
echo "SELECT 'holding', count(*) FROM runs;" >&3
wait_until 120 "the reader to hold the database" grep -q holding "$TMP/hold.out" || true
check_match "[2] another reader holds the database open" "$(cat "$TMP/hold.out")" '^holding\|1'
"$ARL_BATCH" run --progress plain --db "$DB" --state-dir "$STATE" "$TMP/fill.yaml" \
	>"$TMP/out2" 2>"$TMP/err2" &
RUNNER_PID=$!
wait_exit 300
check_eq "[2] the run exits 3" "$RC" 3
check_le "[2] ... before the slow job's sleep 20 could end (ms)" "$ELAPSED_MS" 19999
check_match "[2] one clear error" "$(errors "$TMP/err2")" \
	"^arl-batch: cannot write to results database '$DB': database or disk is full \(1 of 4 jobs recorded, 1 not started\); free space and run again with --resume$"
check_eq "[2] no process of the run left" "$(leftover "20\.$MARK")" ""
check_eq "[2] no sandbox left in the state dir" "$(files_in "$STATE" 2>/dev/null)" ""
# The run's live output directory (DB.live/RUN, deleted at its end) may give back a block
# or two; a few KiB is still a disk no run could write a job to.
check_le "[2] the disk is full (a few KiB at most)" \
	"$(df --output=avail -k "$MNT" | tail -n 1 | tr -d ' ')" 16
runner results --db "$DB" --run 2
check_eq "[2] results still reads the full disk's database" "$RC" 0
check_match "[2] ... and shows the job recorded before it filled" "$(cat "$TMP/out")" 'Succeeded +fill/a '
check_eq "[2] the run row could not be closed: still 'running' (the repair could not write)" \
	"$(sql "$DB" 'SELECT status FROM runs WHERE id = 2')" running
check_eq "[2] integrity_check on the full disk" "$(sql "$DB" 'PRAGMA integrity_check')" ok
exec 3>&-
wait "$HOLDER_PID" 2>/dev/null || true
HOLDER_PID=
rm -f "$MNT"/filler.*
runner runs --db "$DB"
check_eq "[2] after freeing space: runs exits 0" "$RC" 0
check_eq "[2] the next open repaired the run: interrupted, nothing Pending or Running" \
	"$(sql "$DB" "SELECT status || '|' || (SELECT count(*) FROM jobs WHERE run_id = 2 AND state IN ('Pending', 'Running'))
	              FROM runs WHERE id = 2")" "interrupted|0"
check_match "[2] ... and says why" "$(sql "$DB" 'SELECT notes FROM runs WHERE id = 2')" \
	'marked interrupted: its runner \(pid [0-9]+'
check_eq "[2] the job recorded before is kept" \
	"$(sql "$DB" "SELECT state FROM jobs WHERE run_id = 2 AND name = 'a'")" Succeeded
check_eq "[2] integrity_check after the repair" "$(sql "$DB" 'PRAGMA integrity_check')" ok

# ---------------------------------------------------------------------------------------------
echo "# 3. the disk is full before the run starts"
before=$(sql "$DB" 'SELECT count(*) FROM jobs') # (the sqlite3 shell cannot open it on a full disk)
# (a) a new database: nothing can be created.
fill_disk 3
: >"$LEDGER"
runner run --progress none --db "$MNT/new.db" --state-dir "$TMP/state3" "$TMP/out.yaml"
check_eq "[3a] a new database on a full disk: exit 3" "$RC" 3
check_eq "[3a] one clear error, and only that" "$(cat "$TMP/err")" \
	"arl-batch: cannot write to results database '$MNT/new.db': database or disk is full"
check_eq "[3a] no stray database file (nor -journal, -wal, -shm)" "$(files_in "$MNT")" "k.db "
check_eq "[3a] nothing ran" "$(wc -l <"$LEDGER")" 0
check_eq "[3a] no sandbox made" "$(files_in "$TMP/state3" 2>/dev/null)" ""
# (b) an existing database with no room for the run.
runner run --progress none --db "$DB" --state-dir "$TMP/state3" "$TMP/out.yaml"
check_eq "[3b] an existing database on a full disk: exit 3" "$RC" 3
check_match "[3b] one clear error" "$(cat "$TMP/err")" \
	"^arl-batch: cannot write to results database '$DB': (database or disk is full|disk I/O error \(No space left on device\))$"
check_eq "[3b] nothing ran" "$(wc -l <"$LEDGER")" 0
# SQLite may leave the empty -wal and -shm it tried to open; the next close removes them.
check_match "[3b] no stray file but SQLite's own" "$(files_in "$MNT")" '^k\.db (k\.db-shm k\.db-wal )?$'
rm -f "$MNT"/filler.*
check_eq "[3b] the database is intact after freeing space" \
	"$(sql "$DB" 'PRAGMA integrity_check; SELECT count(*) FROM jobs')" "ok
$before"
check_eq "[3b] ... and then no stray file at all" "$(files_in "$MNT")" "k.db "

# ---------------------------------------------------------------------------------------------
echo "# 4. the sandboxes share the full disk with the database"
small_disk 2m
DB=$MNT/s.db
if bwrap --unshare-pid --ro-bind / / true >/dev/null 2>&1; then
	ISO=bwrap
else
	ISO=none
	echo "   (bwrap cannot run here: isolation none)"
fi
# Each sandbox takes a few kB of the disk and each result 200 kB, so the database is what
# fills first (were it the sandboxes, the jobs would fail with small results that still fit).
mkdir -p "$TMP/ws"
head -c 3000 /dev/urandom | base64 >"$TMP/ws/data.txt"
{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 3, isolation: $ISO, workspace: ./ws}"
	echo "jobs:"
	for i in $(seq -w 1 20); do
		echo "  - name: s$i"
		echo "    steps:"
		echo "      - {type: FilePatch, path: /workspace/note.txt, content: \"s$i\"}"
		echo "      - {type: Command, command: [\"sh\", \"-c\", \"cp /workspace/data.txt /workspace/copy && head -c 150000 /dev/urandom | base64 -w 100\"]}"
	done
} >"$TMP/share.yaml"
runner run --progress plain --db "$DB" "$TMP/share.yaml"
check_eq "[4] the run exits 3" "$RC" 3
check_match "[4] one clear error" "$(errors "$TMP/err")" \
	"^arl-batch: cannot write to results database '$DB': database or disk is full \([0-9]+ of 20 jobs recorded, [0-9]+ not started\); free space and run again with --resume$"
check_eq "[4] no sandbox left on the full disk" "$(files_in "$DB.sandboxes" 2>/dev/null)" ""
check_eq "[4] integrity_check on the full disk" "$(sql "$DB" 'PRAGMA integrity_check')" ok
recorded=$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = 1 AND state = 'Succeeded'" || echo "(sqlite3 failed)")
is_count "[4] the database reads on the full disk" "$recorded" || recorded=-1
check_ge "[4] jobs were recorded before the disk filled" "$recorded" 1
mount -o remount,size=64m "$MNT"
runner run --progress none --resume --db "$DB" "$TMP/share.yaml"
check_eq "[4] after freeing space run --resume completes the rest" "$RC" 0
check_eq "[4] every job has exactly one Succeeded result" \
	"$(sql "$DB" "SELECT count(*) FROM (SELECT key FROM jobs WHERE state = 'Succeeded'
	              GROUP BY key HAVING count(*) = 1)")" 20
check_eq "[4] the resume kept the $recorded recorded before" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = 2 AND state = 'Skipped'")" "$recorded"
check_eq "[4] no sandbox left" "$(files_in "$DB.sandboxes" 2>/dev/null)" ""

summary
