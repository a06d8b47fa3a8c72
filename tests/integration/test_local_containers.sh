#!/usr/bin/env bash
# One container per attempt (issue 14), local backend with bwrap: a server started in step 1
# answers in step 2; /tmp keeps its files across steps; a step's timeout kills that step's
# process group only (a process an earlier step left keeps running); releasing the sandbox
# leaves no bwrap and, as root, no process of the sandbox uid; an agent killed under a step
# makes the attempt infra, with no step result recorded; a runner killed with SIGKILL
# leaves nothing running (bwrap --die-with-parent) and `gc` deletes its sandbox directory.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 pgrep python3
make_tmp

MARK=$$$RANDOM
# As root, a sandbox uid of this test's own: the leftover checks count that uid's processes,
# and other tests' sandboxes (the default uid) may be running beside it (ctest -j). No
# skeleton is kept for it in /dev/shm.
export ARL_SANDBOX_UID=65410 ARL_SANDBOX_GID=65410 ARL_BATCH_SKEL_KEEP=0
SB_UID=$ARL_SANDBOX_UID
RUNNER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	kill_procs_with "$MARK"
	return 0
}
CLEANUP=cleanup

# stdout JOB PHASE N: the recorded stdout of the phase's step N (from 0).
stdout() {
	sql "$DB" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id
	   JOIN jobs j ON j.id = a.job_id WHERE j.name = '$1' AND s.phase = '$2'
	   ORDER BY s.idx LIMIT 1 OFFSET $3"
}
# Live processes (zombies reparented to init do not run) that carry MARK or, as root, are the
# sandbox uid's: prints "PID ARGS" for each.
leftovers() {
	local _
	for _ in $(seq 300); do # bounded wait for a dying namespace, not a timing assertion
		ps -eo pid=,uid=,stat=,args= >"$TMP/ps"
		awk -v u="$(id -u)" -v sb="$SB_UID" -v m="$MARK" \
			'$3 !~ /^Z/ && (index($0, m) || (u == 0 && $2 == sb)) { print $1, $4, $5 }' "$TMP/ps" >"$TMP/left"
		[ -s "$TMP/left" ] || break
		sleep 0.1
	done
	tr '\n' ' ' <"$TMP/left"
}

DB=$TMP/pod.db
cat >"$TMP/pod.yaml" <<EOF
version: 1
pools:
  p: {replicas: 1}
jobs:
  - name: server
    timeout: 60s
    steps:
      - {type: Command, command: ["sh", "-c", "python3 -m http.server 8765 --bind 127.0.0.1 >/dev/null 2>&1 & echo \$! > /tmp/server.pid; echo started"]}
      # Bounded retry while the server binds (a hang's bound, not a timing assertion).
      - type: Command
        command: ["python3", "-c", "import time, urllib.request\nfor i in range(600):\n    try:\n        print(urllib.request.urlopen('http://127.0.0.1:8765/').status); break\n    except OSError: time.sleep(0.05)"]
  - name: tmp
    steps:
      - {type: Command, command: ["sh", "-c", "echo kept-$MARK > /tmp/f; mkdir -p /tmp/d && echo x > /tmp/d/y"]}
      - {type: Command, command: ["sh", "-c", "cat /tmp/f /tmp/d/y"]}
  - name: step-timeout
    retries: 0
    steps:
      - {type: Command, command: ["sh", "-c", "sleep 301.$MARK & echo ok"]}
      - {type: Command, timeout: 1s, command: ["sh", "-c", "sleep 302.$MARK & exec sleep 303.$MARK"]}
    callbacks:
      on_task_failure:
        - {type: Command, command: ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\\\0' ' ' < \$p/cmdline; echo; done | grep -o 'sleep 30[1-3][^ ]*' | sort"]}
EOF
runner run --progress none --db "$DB" "$TMP/pod.yaml"
check_eq "the run exits 1 (one job times out)" "$RC" 1
check_eq "a server started in step 1 answers in step 2" "$(stdout server main 1)" "200"
check_eq "/tmp keeps its files from one step to the next" "$(stdout tmp main 1)" "kept-$MARK
x"
check_eq "a step's timeout: recorded as timeout" \
	"$(sql "$DB" "SELECT state || ':' || error_class FROM jobs WHERE name = 'step-timeout'")" \
	"Failed:timeout"
check_eq "a step's timeout kills its own group only: an earlier step's process lives on" \
	"$(stdout step-timeout callback 0)" "sleep 301.$MARK"
check_eq "release leaves no bwrap and no process of the sandbox" "$(leftovers)" ""

# The agent killed under a running step: the attempt is infra, and no step result is recorded
# for what the dead agent could not report.
DB=$TMP/agent.db
cat >"$TMP/agent.yaml" <<EOF
version: 1
pools:
  p: {replicas: 1}
jobs:
  - {name: orphaned, retries: 0, timeout: 600s, steps: [{type: Command, command: ["sleep", "404.$MARK"]}]}
EOF
"$ARL_BATCH" run --progress none --db "$DB" "$TMP/agent.yaml" >"$TMP/agent.out" 2>&1 &
RUNNER_PID=$!
if wait_until 120 "the step to start" eval "[ -n \"\$(procs_with '^sleep 404\\.$MARK')\" ]"; then
	# The step's parent is the agent (PID 1 of the sandbox).
	kill -9 "$(ps -o ppid= -p "$(procs_with "^sleep 404\\.$MARK" | head -1)" | tr -d ' ')"
fi
wait_pid 120 "$RUNNER_PID"
RUNNER_PID=
check_eq "a dead agent: the run exits 3 (results incomplete: infra)" "$RC" 3
check_eq "a dead agent: the attempt is infra" \
	"$(sql "$DB" "SELECT state || ':' || error_class FROM attempts")" "Failed:infra"
check_eq "a dead agent: no step result recorded" \
	"$(sql "$DB" "SELECT count(*) FROM steps WHERE exit_code IS NOT NULL")" 0
check_eq "a dead agent: nothing of the sandbox left" "$(leftovers)" ""

# kill -9 of the runner while a step runs: nothing of the sandbox survives, gc cleans up.
DB=$TMP/killed.db
cat >"$TMP/killed.yaml" <<EOF
version: 1
pools:
  p: {replicas: 1}
jobs:
  - {name: sleeper, timeout: 600s, steps: [{type: Command, command: ["sh", "-c", "sleep 401.$MARK & sleep 402.$MARK"]}]}
EOF
"$ARL_BATCH" run --progress none --db "$DB" "$TMP/killed.yaml" >/dev/null 2>&1 &
RUNNER_PID=$!
wait_until 120 "the step to start" eval "[ \$(procs_with '^sleep 40[12]\\.$MARK' | wc -l) -ge 2 ]"
kill -9 "$RUNNER_PID"
{ wait "$RUNNER_PID"; } 2>/dev/null || true # no "Killed" job notice
RUNNER_PID=
check_eq "kill -9 of the runner leaves no process of the sandbox" "$(leftovers)" ""
check "its sandbox directory is still there before gc" \
	eval "ls -d '$TMP'/killed.db.sandboxes/sb-* >/dev/null 2>&1"
runner gc --db "$DB" --yes
check_eq "gc exits 0" "$RC" 0
check "gc deletes the dead runner's sandbox directory" \
	eval "! ls -d '$TMP'/killed.db.sandboxes/sb-* >/dev/null 2>&1"

summary
