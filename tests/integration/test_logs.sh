#!/usr/bin/env bash
# `arl-batch logs JOB [-f] [--attempt N] [--step NAME] [--run R]`: the stored output of a
# finished job (every attempt, or one; one step; a Skipped job shows its result's); the live
# output of a running one, seen before its step ends (synchronised on a FIFO the step waits
# on, never on sleeps); -f follows to the next step and exits once the job's result is
# committed, or when the run is interrupted; the live files are private (0600 in 0700
# directories), bounded (rotated at half the capture limit) and gone once the run ends. Both
# local isolations (none: spawn; bwrap: the sandbox agent).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
MARK=$$$RANDOM
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	kill_procs_with "sleep [0-9]*\.$MARK"
	return 0
}
CLEANUP=cleanup
mkfifo "$TMP/go" "$TMP/go2" "$TMP/go3" "$TMP/go4"
steps_may_use "$TMP/go" "$TMP/go2" "$TMP/go3" "$TMP/go4"

has() { grep -qF -- "$2" "$1" 2>/dev/null; }
# The state of the only job of DB, read while its runner writes (a busy timeout of its own).
job_state() { sqlite3 -batch -cmd ".timeout 10000" "$1" "SELECT state FROM jobs" 2>/dev/null || true; }

echo "# a finished job"
cat >"$TMP/f.yaml" <<'EOF'
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: flaky
    retries: 1
    retryOn: [failed]
    backoff: 0s
    steps:
      - {name: prep, type: Command, command: ["sh", "-c", "echo prep {{ attempt }}"]}
      - {name: test, type: Command, command: ["sh", "-c", "echo out {{ attempt }}; echo err {{ attempt }} >&2; [ {{ attempt }} -ge 2 ]"]}
EOF
runner run --progress none --db "$TMP/f.db" "$TMP/f.yaml"
check_eq "the run succeeds on the second attempt" "$RC" 0
runner logs --db "$TMP/f.db" flaky
check_eq "logs: every attempt, every step, stdout then stderr, with headers" "$(cat "$TMP/out")" \
	"==> attempt 1, step 'prep', stdout <==
prep 1
==> attempt 1, step 'test', stdout <==
out 1
==> attempt 1, step 'test', stderr <==
err 1
==> attempt 2, step 'prep', stdout <==
prep 2
==> attempt 2, step 'test', stdout <==
out 2
==> attempt 2, step 'test', stderr <==
err 2"
runner logs --db "$TMP/f.db" --attempt 2 --step test f/flaky
check_eq "--attempt and --step" "$(cat "$TMP/out")" "==> attempt 2, step 'test', stdout <==
out 2
==> attempt 2, step 'test', stderr <==
err 2"
runner logs --db "$TMP/f.db" -f flaky
check_eq "-f on a finished job prints it and exits 0" "$RC:$(grep -c '==>' "$TMP/out")" "0:6"
runner run --progress none --db "$TMP/f.db" --resume "$TMP/f.yaml"
runner logs --db "$TMP/f.db" --run 2 --attempt 2 --step prep flaky
check_eq "a Skipped job shows the output of the result it stands for" "$(cat "$TMP/out")" \
	"==> attempt 2, step 'prep', stdout <==
prep 2"
runner logs --db "$TMP/f.db" nosuch
check_eq "no such job: exit 1" "$RC" 1
check_match "... saying so" "$(cat "$TMP/err")" "no job 'nosuch'"
runner logs --db "$TMP/f.db"
check_eq "no JOB: usage, exit 2" "$RC" 2
check_eq "no live directory is left after the runs" "$(ls -d "$TMP"/f.db.live 2>/dev/null || true)" ""

echo "# following a running job (isolation none)"
cat >"$TMP/l.yaml" <<EOF
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: live
    timeout: 5m
    steps:
      - {name: agent, type: Command, command: ["sh", "-c", "echo thinking; echo warn >&2; read x <$TMP/go; echo answered"]}
      - {name: test, type: Command, command: ["sh", "-c", "echo second step"]}
EOF
"$ARL_BATCH" run --progress none --db "$TMP/l.db" "$TMP/l.yaml" >"$TMP/run.out" 2>"$TMP/run.err" &
RUN_PID=$!
PIDS+=("$RUN_PID")
wait_until 60 "the job to be Running" eval "[ \"\$(job_state $TMP/l.db)\" = Running ]"
"$ARL_BATCH" logs --db "$TMP/l.db" -f live >"$TMP/follow" 2>"$TMP/follow.err" &
LOGS_PID=$!
PIDS+=("$LOGS_PID")
wait_until 60 "logs -f to show the step's first line" has "$TMP/follow" thinking
wait_until 60 "logs -f to show the step's stderr line" has "$TMP/follow" warn
check_eq "logs -f showed output while the step still runs (it waits on our FIFO)" \
	"$(job_state "$TMP/l.db")" Running
runner logs --db "$TMP/l.db" live
check_eq "logs without -f: what is there now, and exits" "$RC:$(cat "$TMP/out")" \
	"0:==> attempt 1, step 'agent', stdout <==
thinking
==> attempt 1, step 'agent', stderr <==
warn"
D=$TMP/l.db.live
check_eq "live files are private: directories 0700, files 0600" \
	"$(stat -c %a "$D" "$D"/* "$D"/*/* | sort -u | tr '\n' ' ') $(find "$D" -type f -exec stat -c %a {} + | sort -u | tr '\n' ' ')" \
	"700  600 "
echo go >"$TMP/go"
wait_pid 60 "$LOGS_PID"
check_eq "logs -f exits 0 once the job is committed" "$RC" 0
check_eq "... having followed into the next step" "$(cat "$TMP/follow")" \
	"==> attempt 1, step 'agent', stdout <==
thinking
==> attempt 1, step 'agent', stderr <==
warn
==> attempt 1, step 'agent', stdout <==
answered
==> attempt 1, step 'test', stdout <==
second step"
wait_pid 60 "$RUN_PID"
check_eq "the run succeeded" "$RC" 0
check_eq "the live directory is gone after the run" "$(ls -d "$D" 2>/dev/null || true)" ""

echo "# a step that has printed nothing has no live files (they are made on its first bytes)"
cat >"$TMP/q.yaml" <<EOF
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: quiet
    timeout: 5m
    steps:
      - {name: wait, type: Command, command: ["sh", "-c", "read x <$TMP/go4"]}
      - {name: speak, type: Command, command: ["sh", "-c", "echo spoke"]}
EOF
"$ARL_BATCH" run --progress none --db "$TMP/q.db" "$TMP/q.yaml" >"$TMP/run.out" 2>"$TMP/run.err" &
RUN_PID=$!
PIDS+=("$RUN_PID")
wait_until 60 "the job to be Running" eval "[ \"\$(job_state $TMP/q.db)\" = Running ]"
check_eq "the running quiet step has no live files (only the run's directory)" \
	"$(cd "$TMP/q.db.live" && find . | sort | tr '\n' ' ')" ". ./1 "
runner logs --db "$TMP/q.db" quiet
check_eq "logs of it: nothing yet, exit 0" "$RC:$(cat "$TMP/out")" "0:"
echo go >"$TMP/go4"
wait_pid 60 "$RUN_PID"
check_eq "the run succeeded" "$RC" 0
runner logs --db "$TMP/q.db" quiet
check_eq "the step that printed has its output, the quiet one none" "$(cat "$TMP/out")" \
	"==> attempt 1, step 'speak', stdout <==
spoke"
check_eq "the live directory is gone after the run" "$(ls -d "$TMP/q.db.live" 2>/dev/null || true)" ""

echo "# bounded: a stream's live file is rotated at half the capture limit"
cat >"$TMP/b.yaml" <<EOF
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: flood
    timeout: 5m
    steps:
      - {name: s, type: Command, command: ["sh", "-c", "i=0; while [ \$i -lt 20000 ]; do echo line-\$i; i=\$((i+1)); done; echo last-line; read x <$TMP/go2"]}
EOF
"$ARL_BATCH" run --progress none --db "$TMP/b.db" --capture-max 64Ki "$TMP/b.yaml" >/dev/null 2>&1 &
RUN_PID=$!
PIDS+=("$RUN_PID")
F=$TMP/b.db.live/1/1/1-0.out
wait_until 60 "the flood's last line in its live file" has "$F" last-line
check_le "the live file holds at most half the 64 KiB capture limit (and its marker)" \
	"$(stat -c %s "$F")" $((32768 + 100))
check_match "... and says what it left out" "$(head -n 1 "$F")" \
	'^\[\.\.\. [0-9]+ earlier bytes of this stream left the live view \.\.\.\]$'
runner logs --db "$TMP/b.db" flood
check_match "logs shows the live tail" "$(tail -n 1 "$TMP/out")" '^last-line$'
echo go >"$TMP/go2"
wait_pid 60 "$RUN_PID"
check_eq "the flood's run succeeded" "$RC" 0

echo "# secrets are masked in live output too, even split across writes"
CANARY=canary-$RANDOM-Zq81-secret
cat >"$TMP/s.yaml" <<EOF
version: 1
secrets: [LIVE_CANARY]
pools: {p: {isolation: none}}
jobs:
  - name: leak
    timeout: 5m
    steps:
      - name: s
        type: Command
        command: ["sh", "-c", "echo key=\$LIVE_CANARY; printf 'half:%s' \$(echo \$LIVE_CANARY | cut -c1-9); read x <$TMP/go3; echo \$LIVE_CANARY | cut -c10-; echo \$LIVE_CANARY >&2"]
EOF
LIVE_CANARY=$CANARY "$ARL_BATCH" run --progress none --db "$TMP/s.db" "$TMP/s.yaml" >/dev/null 2>&1 &
RUN_PID=$!
PIDS+=("$RUN_PID")
F=$TMP/s.db.live/1/1/1-0.out
wait_until 60 "the step's first lines in its live file" has "$F" "half:"
check_eq "live: the secret's first line is masked, the start of its second held back" \
	"$(cat "$F")" "key=***
half:"
echo go >"$TMP/go3"
wait_pid 60 "$RUN_PID"
check_eq "the run succeeded" "$RC" 0
runner logs --db "$TMP/s.db" leak
check_eq "logs: masked" "$(cat "$TMP/out")" "==> attempt 1, step 's', stdout <==
key=***
half:***
==> attempt 1, step 's', stderr <==
***"
check_eq "the canary is nowhere under the test's directory" \
	"$(grep -rlF -- "$CANARY" "$TMP" 2>/dev/null || true)" ""

echo "# the runner killed with -9: logs -f does not follow for ever"
cat >"$TMP/k.yaml" <<EOF
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: orphan
    timeout: 5m
    steps: [{name: s, type: Command, command: ["sh", "-c", "echo started; exec sleep 300.$MARK"]}]
EOF
"$ARL_BATCH" run --progress none --db "$TMP/k.db" "$TMP/k.yaml" >/dev/null 2>&1 &
RUN_PID=$!
PIDS+=("$RUN_PID")
wait_until 60 "the job to be Running" eval "[ \"\$(job_state $TMP/k.db)\" = Running ]"
"$ARL_BATCH" logs --db "$TMP/k.db" -f orphan >"$TMP/kfollow" 2>&1 &
LOGS_PID=$!
PIDS+=("$LOGS_PID")
wait_until 60 "logs -f to show the step's line" has "$TMP/kfollow" started
kill -9 "$RUN_PID"
wait_pid 60 "$LOGS_PID"
check_eq "logs -f exits 0 once the database's repair cancels the dead runner's job" \
	"$RC:$(job_state "$TMP/k.db")" "0:Cancelled"
cleanup
check_eq "the killed runner left its live directory" "$(ls "$TMP/k.db.live")" 1
cat >"$TMP/k2.yaml" <<'EOF'
version: 1
pools: {p: {isolation: none}}
jobs: [{name: quick, steps: [{type: Command, command: ["true"]}]}]
EOF
runner run --progress none --db "$TMP/k.db" "$TMP/k2.yaml"
check_eq "the next run on the database deletes it (its runner is gone)" \
	"$RC:$(ls -d "$TMP/k.db.live" 2>/dev/null || true)" "0:"

if command -v bwrap >/dev/null 2>&1 && bwrap --unshare-pid --ro-bind / / true >/dev/null 2>&1; then
	echo "# following a running job in a bwrap sandbox (through the agent); the run interrupted"
	cat >"$TMP/c.yaml" <<EOF
version: 1
pools: {c: {}}
jobs:
  - name: boxed
    timeout: 5m
    steps:
      - {name: agent, type: Command, command: ["sh", "-c", "echo inside the box; exec sleep 300.$MARK"]}
EOF
	"$ARL_BATCH" run --progress none --db "$TMP/c.db" "$TMP/c.yaml" >/dev/null 2>&1 &
	RUN_PID=$!
	PIDS+=("$RUN_PID")
	wait_until 60 "the job to be Running" eval "[ \"\$(job_state $TMP/c.db)\" = Running ]"
	"$ARL_BATCH" logs --db "$TMP/c.db" -f boxed >"$TMP/cfollow" 2>&1 &
	LOGS_PID=$!
	PIDS+=("$LOGS_PID")
	wait_until 60 "logs -f to show the boxed step's line" has "$TMP/cfollow" "inside the box"
	check_eq "the boxed step still runs" "$(job_state "$TMP/c.db")" Running
	kill -INT "$RUN_PID"
	wait_pid 60 "$LOGS_PID"
	check_eq "logs -f exits 0 when the interrupted job is recorded Cancelled" \
		"$RC:$(job_state "$TMP/c.db")" "0:Cancelled"
	wait_pid 60 "$RUN_PID"
	check_eq "the interrupted run exits 130" "$RC" 130
	check_eq "the live directory is gone" "$(ls -d "$TMP/c.db.live" 2>/dev/null || true)" ""
fi

echo "# a DB.live planted beside a database: FIFOs, hard links and open directories not read"
cp "$TMP/f.db" "$TMP/p.db"
# A job that looks Running under a runner on another host (so no repair ends it).
sql "$TMP/p.db" "UPDATE runs SET status = 'running', host = 'elsewhere.invalid', finished_at = NULL WHERE id = 1;
  UPDATE jobs SET state = 'Running' WHERE run_id = 1"
PJ=$(sql "$TMP/p.db" "SELECT id FROM jobs WHERE run_id = 1 AND name = 'flaky'")
PD=$TMP/p.db.live/1/$PJ
mkdir -p "$PD"
chmod 700 "$TMP/p.db.live" "$TMP/p.db.live/1" "$PD"
echo "host-secret-$$" >"$TMP/hostfile"
ln "$TMP/hostfile" "$PD/1-0.out"
mkfifo "$PD/1-0.err" "$PD/1-1.step"
echo "visible" >"$PD/1-1.out"
set +e
timeout 300 "$ARL_BATCH" logs --db "$TMP/p.db" --run 1 flaky >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
check_eq "logs of a planted live directory exits 0 (no FIFO blocks it)" "$RC" 0
check_eq "a hard-linked live file is not read" "$(grep -c "host-secret-$$" "$TMP/out" || true)" 0
check_match "a plain live file is" "$(cat "$TMP/out")" "visible"
chmod 777 "$PD"
runner logs --db "$TMP/p.db" --run 1 flaky
check_eq "a live directory others can write is not read" "$RC|$(grep -c visible "$TMP/out" || true)" "0|0"

summary
