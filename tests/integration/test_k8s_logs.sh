#!/usr/bin/env bash
# `logs -f` on the kubernetes backend (issue 16), against the fake ARL API server: a Task's
# output arrives when its step ends, so -f shows each step's output then, while the job still
# runs its next step (which waits on our FIFO: no sleeps), and exits once the job is recorded.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --no-bwrap --pool sandbox=2 # steps on the host: they reach our FIFO
mkfifo "$TMP/go"
chmod 666 "$TMP/go"
chmod o+x "$TMP"
PIDS=()
stop_all() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	stop_fake
}
CLEANUP=stop_all
job_state() { sqlite3 -batch -cmd ".timeout 10000" "$1" "SELECT state FROM jobs" 2>/dev/null || true; }
has() { grep -qF -- "$2" "$1" 2>/dev/null; }

cat >"$TMP/kl.yaml" <<EOF
version: 1
pools:
  sandbox: {backend: kubernetes, replicas: 2}
jobs:
  - name: two
    timeout: 5m
    steps:
      - {name: first, type: Command, command: [sh, -c, "echo first-out; echo first-err >&2"]}
      - {name: second, type: Command, command: [sh, -c, "read x <$TMP/go && echo second-out"]}
EOF
"$ARL_BATCH" run --progress none --db "$TMP/k.db" --kubeconfig "$KC" "$TMP/kl.yaml" \
	>"$TMP/run.out" 2>"$TMP/run.err" &
RUN_PID=$!
PIDS+=("$RUN_PID")
wait_until 120 "the job to be Running" eval "[ \"\$(job_state $TMP/k.db)\" = Running ]"
"$ARL_BATCH" logs --db "$TMP/k.db" -f two >"$TMP/follow" 2>"$TMP/follow.err" &
LOGS_PID=$!
PIDS+=("$LOGS_PID")
wait_until 120 "logs -f to show the first step's output" has "$TMP/follow" first-err
check_eq "the first step's output shows while the second step runs" "$(job_state "$TMP/k.db")" Running
echo go >"$TMP/go"
wait_pid 120 "$LOGS_PID"
check_eq "logs -f exits 0 once the job is recorded" "$RC" 0
check_eq "... having shown both steps" "$(cat "$TMP/follow")" \
	"==> attempt 1, step 'first', stdout <==
first-out
==> attempt 1, step 'first', stderr <==
first-err
==> attempt 1, step 'second', stdout <==
second-out"
wait_pid 120 "$RUN_PID"
check_eq "the run succeeded" "$RC" 0
check_eq "no live directory is left" "$(ls -d "$TMP/k.db.live" 2>/dev/null || true)" ""

summary
