#!/usr/bin/env bash
# Sandbox escape attempts on the local backend (bwrap), beyond what test_backend_local.c and
# test_run_semantics.sh already prove (FilePatch with '..', outside /workspace or through a
# symlink; /usr and /etc read-only; a host file unreadable; no network): a workDir outside
# /workspace or through a planted symlink, writes to host paths, the runner's database and
# its directory, signals to the runner and to another host process, the runner's
# environment, and an abstract unix socket listening on the host. Each attempt must fail,
# and the test checks on the host that nothing happened. (Not hidden: the workspace's host
# path, and so the database's directory with the default --state-dir, shows in bwrap's
# /proc/1/cmdline and in /proc/self/mountinfo; the path is visible, nothing behind it is.)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 python3
make_tmp

VICTIM_PID=
LISTENER_PID=
cleanup() {
	[ -n "$VICTIM_PID" ] && kill -9 "$VICTIM_PID" 2>/dev/null
	[ -n "$LISTENER_PID" ] && kill -9 "$LISTENER_PID" 2>/dev/null
	return 0
}
CLEANUP=cleanup

MARK=arl-escape-$$-$RANDOM
DB=$TMP/db/results.db
mkdir -p "$TMP/db" "$TMP/host"
echo "host secret $MARK" >"$TMP/host/secret.txt"
sleep 300 &
VICTIM_PID=$!
disown "$VICTIM_PID" # no "Killed" notice at cleanup
# A host process listening on an abstract unix socket (no file to hide): reachable only
# from the host's network namespace.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[1]); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"reached the host\n"); c.close()
' "$MARK" &
LISTENER_PID=$!
disown "$LISTENER_PID"
CONNECT='import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(chr(0) + sys.argv[1]); print(s.recv(100).decode())'

# RUNNER_PID is replaced by the pid the runner will have (the shell that execs it).
cat >"$TMP/escape.tmpl" <<EOF
version: 1
pools:
  p: {replicas: 4}
jobs:
  - name: workdir-dotdot
    steps: [{type: Command, workDir: "/workspace/../../..", command: ["sh", "-c", "pwd; touch $MARK"]}]
  - name: workdir-host
    steps: [{type: Command, workDir: "$TMP/host", command: ["cat", "secret.txt"]}]
  - name: workdir-symlink
    steps:
      - {type: Command, command: ["ln", "-s", "$TMP/host", "/workspace/out"]}
      - {type: Command, workDir: /workspace/out, command: ["cat", "secret.txt"]}
  - name: symlink-read
    steps:
      - {type: Command, command: ["ln", "-s", "$TMP/host/secret.txt", "/workspace/s"]}
      - {type: Command, command: ["cat", "/workspace/s"]}
  - name: write-host
    steps: [{type: Command, command: ["sh", "-c", "echo x > $TMP/host/$MARK"]}]
  - name: write-root
    steps: [{type: Command, command: ["sh", "-c", "echo x > /$MARK && cat /$MARK"]}]
  - name: read-db
    steps: [{type: Command, command: ["sh", "-c", "ls $TMP/db || cat $DB || test -e $DB"]}]
  - name: db-in-env
    steps: [{type: Command, command: ["sh", "-c", "env | grep -F -e $TMP -e results.db -e ARL_BATCH_DB"]}]
  - name: db-via-proc
    steps: [{type: Command, command: ["sh", "-c", "ls -l /proc/*/fd/ 2>/dev/null | grep -F results.db || ls /proc/*/root$DB 2>/dev/null | grep -F results.db"]}]
  - name: signal-runner
    steps: [{type: Command, command: ["kill", "-0", "RUNNER_PID"]}]
  - name: kill-host-process
    steps: [{type: Command, command: ["kill", "-9", "$VICTIM_PID"]}]
  - name: see-host-process
    steps: [{type: Command, command: ["test", "-e", "/proc/$VICTIM_PID/cmdline"]}]
  - name: abstract-socket
    steps: [{type: Command, command: ["python3", "-c", "$CONNECT", "$MARK"]}]
  - name: control
    steps: [{type: Command, command: ["sh", "-c", "echo inside; kill -0 \$\$"]}]
EOF

# A relative workDir is refused before anything runs.
cat >"$TMP/relative.yaml" <<EOF
version: 1
pools: {p: {}}
jobs:
  - {name: j, steps: [{type: Command, workDir: "../../../..$TMP/host", command: ["cat", "secret.txt"]}]}
EOF
runner validate "$TMP/relative.yaml"
check_eq "a relative workDir climbing out with '..': validate exits 2" "$RC" 2
check_match "... saying workDir must be absolute" "$(cat "$TMP/err")" "'workDir' must be an absolute path inside the sandbox"

set +e
bash -c 'sed "s/RUNNER_PID/$$/" "$1" >"$2" && exec "$ARL_BATCH" run --progress none --db "$3" "$2"' \
	_ "$TMP/escape.tmpl" "$TMP/escape.yaml" "$DB" >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
check_eq "the run exits 1 (the attempts fail)" "$RC" 1
[ "$RC" = 1 ] || cat "$TMP/err"
check_eq "the control job succeeds" "$(sql "$DB" "SELECT state FROM jobs WHERE name = 'control'")" Succeeded

# failed NAME DESC: the job failed.
failed() {
	check_eq "$2" "$(sql "$DB" "SELECT state FROM jobs WHERE name = '$1'")" Failed
}
failed workdir-host "a workDir naming a host directory fails"
failed workdir-symlink "a workDir through a planted symlink to the host fails"
failed symlink-read "reading the host through a planted symlink fails"
failed write-host "writing a host path fails"
failed read-db "the runner's database and its directory are invisible"
failed db-in-env "neither the database path nor the runner's environment is in the step's env"
failed db-via-proc "no open file of the runner nor its root is reachable through /proc"
failed signal-runner "kill -0 \$RUNNER_PID fails (PID namespace)"
failed kill-host-process "kill -9 of a host process fails"
failed see-host-process "a host process is not in /proc"
failed abstract-socket "an abstract unix socket on the host is unreachable (network namespace)"
wd=$(sql "$DB" "SELECT j.state || ':' || coalesce(s.stdout, '') FROM jobs j JOIN attempts a ON a.job_id = j.id
	JOIN steps s ON s.attempt_id = a.id WHERE j.name = 'workdir-dotdot'")
check_match "workDir /workspace/../../.. is refused or stays in the sandbox" "$wd" '^(Failed:.*|Succeeded:/)'

check_eq "writing / succeeds in the sandbox's own root (a tmpfs) ..." \
	"$(sql "$DB" "SELECT state FROM jobs WHERE name = 'write-root'")" Succeeded
check_eq "no step output carries the host secret" \
	"$(sql "$DB" "SELECT count(*) FROM steps WHERE instr(stdout, 'host secret') OR instr(stderr, 'host secret')")" 0
check "the host process is alive" kill -0 "$VICTIM_PID"
check_eq "... and nothing was written on the host" \
	"$(find / -maxdepth 1 -name "$MARK" 2>/dev/null; find "$TMP" -name "$MARK")" ""
check_match "the control: the listener answers on the host" \
	"$(python3 -c "$CONNECT" "$MARK" 2>&1)" 'reached the host'
check_eq "the control: the database holds the run" "$(sql "$DB" "SELECT count(*) FROM runs")" 1

summary
