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
RUNNER_PID=
LINGER_PID=
KEYS=
LEASE=
CORE=
cleanup() {
	[ -n "$VICTIM_PID" ] && kill -9 "$VICTIM_PID" 2>/dev/null
	[ -n "$LISTENER_PID" ] && kill -9 "$LISTENER_PID" 2>/dev/null
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	[ -n "$LINGER_PID" ] && kill -9 "$LINGER_PID" 2>/dev/null
	for k in $KEYS; do keyctl unlink "$k" @u >/dev/null 2>&1 || true; done
	# Should a step have changed them after all, the host gets its values back.
	if [ -n "$LEASE" ] && [ "$(cat /proc/sys/fs/lease-break-time)" != "$LEASE" ]; then
		echo "$LEASE" >/proc/sys/fs/lease-break-time
	fi
	if [ -n "$CORE" ] && [ "$(cat /proc/sys/kernel/core_pattern)" != "$CORE" ]; then
		echo "$CORE" >/proc/sys/kernel/core_pattern
	fi
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

echo "# a step is never the host's root, and its env reaches only the program inside"
# Run as root (the README's set-up), a step used to be the host's uid 0: it could write host
# sysctls (kernel.core_pattern runs a program as root) and possess root's keyrings. And
# bwrap ran with the step's env on the host: LD_PRELOAD and LD_DEBUG_OUTPUT acted there.
require_tools keyctl cc
SECRET="arl-secret-$MARK-value"
HOLD="300.${MARK//[!0-9]/}" # the argument of the step we inspect from the host while it runs
KEY_S=$(keyctl add user "arl-s-$MARK" "session secret" @s)
KEY_U=$(keyctl add user "arl-u-$MARK" "user secret" @u)
KEYS="$KEY_U"
mkdir -p "$TMP/cwd"
# A library that marks the host when it is loaded (a relative LD_PRELOAD: the runner's cwd).
printf '#include <fcntl.h>\n#include <unistd.h>\n%s\n' \
	"__attribute__((constructor)) static void m(void) { close(open(\"$TMP/preloaded-$MARK\", O_WRONLY | O_CREAT, 0644)); }" \
	>"$TMP/evil.c"
cc -shared -fPIC -o "$TMP/cwd/evil.so" "$TMP/evil.c"
LEASE=$(cat /proc/sys/fs/lease-break-time)
CORE=$(cat /proc/sys/kernel/core_pattern)
cat >"$TMP/root.yaml" <<EOF
version: 1
pools:
  p: {replicas: 2}
jobs:
  - name: hold
    env: {ARL_SECRET: "$SECRET", LD_PRELOAD: ./evil.so}
    steps: [{type: Command, command: ["sh", "-c", "echo \"env \$ARL_SECRET\"; exec sleep $HOLD"]}]
  - name: ld-debug
    env: {LD_DEBUG: all, LD_DEBUG_OUTPUT: "$TMP/lddebug-$MARK"}
    steps: [{type: Command, command: ["true"]}]
  - name: sysctl-all
    steps:
      - type: Command
        command:
          - sh
          - -c
          - |
            n=0; w=0
            for f in \$(find /proc/sys -type f); do
              n=\$((n+1)); if (: >>"\$f") 2>/dev/null; then w=\$((w+1)); echo "writable \$f"; fi
            done
            echo "\$w of \$n writable"; [ "\$n" -gt 100 ]
  - name: sysctl-lease
    steps: [{type: Command, command: ["sh", "-c", "echo 7 > /proc/sys/fs/lease-break-time"]}]
  - name: core-pattern
    steps:
      - {type: FilePatch, path: /workspace/core.sh, content: "#!/bin/sh\ntouch $TMP/core-$MARK\n"}
      - {type: Command, command: ["sh", "-c", "chmod +x core.sh && echo \"|\$PWD/core.sh\" > /proc/sys/kernel/core_pattern"]}
  - name: sysrq
    steps: [{type: Command, command: ["sh", "-c", "echo h > /proc/sysrq-trigger"]}]
  - name: keyring
    steps:
      - type: Command
        command:
          - sh
          - -c
          - |
            keyctl request user arl-s-$MARK && echo "session key possessed"
            keyctl request user arl-u-$MARK && echo "user key found"
            keyctl print $KEY_S && echo "session key readable"
            keyctl print $KEY_U && echo "user key readable"
            grep -F arl- /proc/keys
            keyctl add user own mine @s >/dev/null && echo "own keyring works"
EOF
cd "$TMP/cwd"
"$ARL_BATCH" run --progress none --db "$TMP/root.db" "$TMP/root.yaml" >"$TMP/out" 2>"$TMP/err" &
RUNNER_PID=$!
cd - >/dev/null
# The held step is up when its sleep is; 60 s only guards against a hang.
for _ in $(seq 600); do
	[ -n "$(procs_with "sleep $HOLD")" ] || ! kill -0 "$RUNNER_PID" 2>/dev/null && break
	sleep 0.1
done
uids="" seen=0 leaked=""
for pid in $(procs_with "$HOLD"); do
	u=$(awk '/^Uid:/ {print $2 "," $3 "," $4 "," $5}' "/proc/$pid/status" 2>/dev/null) || continue
	if [ -n "$u" ]; then
		seen=$((seen + 1))
		uids="$uids $u"
	fi
done
# Every host process's argv, read from the host (no process carries the secret itself).
for f in /proc/[0-9]*/cmdline; do
	c=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
	if [[ $c == *"$SECRET"* ]]; then leaked="$leaked ${f%/cmdline}"; fi
done
check_ge "the held step's processes are seen from the host (bwrap, its pid 1, the program)" "$seen" 1
check_eq "... none of them is the host's uid 0 (real, effective, saved, fs):$uids" \
	"$(echo "$uids" | tr ' ,' '\n\n' | grep -cx 0 || true)" 0
check_eq "the step's secret env value is in no host process's argv" "$leaked" ""
for pid in $(procs_with "sleep $HOLD"); do kill -TERM "$pid" 2>/dev/null || true; done
wait_exit 60
check_eq "the root run ends (exit 1: the probes fail)" "$RC" 1

state() { sql "$TMP/root.db" "SELECT state FROM jobs WHERE name = '$1'"; }
out() {
	sql "$TMP/root.db" "SELECT group_concat(s.stdout, '') FROM steps s JOIN attempts a ON a.id = s.attempt_id
		JOIN jobs j ON j.id = a.job_id WHERE j.name = '$1'"
}
check_eq "the program inside sees its env" "$(out hold)" "env $SECRET"
check_eq "LD_PRELOAD of the step loaded nothing on the host" "$(find "$TMP" -name "preloaded-$MARK")" ""
check_eq "LD_DEBUG_OUTPUT of the step wrote nothing on the host" "$(find "$TMP" -name "lddebug-$MARK*")" ""
check_match "opening every /proc/sys file for writing fails" "$(out sysctl-all)" '^0 of [0-9]+ writable$'
check_eq "... the job ran all of them" "$(state sysctl-all)" Succeeded
check_eq "writing fs.lease-break-time fails" "$(state sysctl-lease)" Failed
check_eq "... and the host's value is unchanged" "$(cat /proc/sys/fs/lease-break-time)" "$LEASE"
check_eq "pointing kernel.core_pattern at the workspace fails" "$(state core-pattern)" Failed
check_eq "... and the host's value is unchanged" "$(cat /proc/sys/kernel/core_pattern)" "$CORE"
check_eq "/proc/sysrq-trigger cannot be written" "$(state sysrq)" Failed
check_eq "the host's session and user keys are neither possessed nor readable; its own keyring works" \
	"$(out keyring)" "own keyring works"

echo "# inherited fds reach no step"
# A runner started by cron or CI inherits their fds (a pipe they wait on); steps must not.
cat >"$TMP/fds.yaml" <<EOF
version: 1
pools:
  b: {}
  n: {isolation: none}
jobs:
  - {name: fds-bwrap, pool: b, steps: [{type: Command, command: ["ls", "/proc/self/fd"]}]}
  - {name: fds-none, pool: n, steps: [{type: Command, command: ["ls", "/proc/self/fd"]}]}
EOF
set +e
"$ARL_BATCH" run --progress none --db "$TMP/fds.db" "$TMP/fds.yaml" >"$TMP/out" 2>"$TMP/err" 9>/dev/null 8</etc/hostname 7>&1
RC=$?
set -e
check_eq "the run with fds 7-9 open succeeds" "$RC" 0
[ "$RC" = 0 ] || cat "$TMP/err"
fds() {
	sql "$TMP/fds.db" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id
		JOIN jobs j ON j.id = a.job_id WHERE j.name = '$1'"
}
# 3 is the directory ls reads (bwrap closes its --args fd 3 before the program runs).
check_eq "a bwrap step holds only 0-2 (and ls its directory)" "$(fds fds-bwrap | tr -s '\n' ' ')" "0 1 2 3 "
check_eq "an isolation none step holds only 0-2 (and ls its directory)" "$(fds fds-none | tr -s '\n' ' ')" "0 1 2 3 "

if [ "$(id -u)" = 0 ]; then
	echo "# as root: isolation none steps cannot reach bwrap steps, nor where only root can go"
	# A root-only directory holding a world-readable one: only root's cwd could get there.
	mkdir -p "$TMP/rootonly/sub"
	echo "root-only $MARK" >"$TMP/rootonly/sub/secret.txt"
	chmod 0700 "$TMP/rootonly"
	chmod 0755 "$TMP/rootonly/sub"
	chmod 0644 "$TMP/rootonly/sub/secret.txt"
	cat >"$TMP/cwd.yaml" <<EOF
version: 1
pools: {n: {isolation: none}}
jobs:
  - name: cwd-symlink
    pool: n
    steps:
      - {type: Command, command: ["ln", "-s", "$TMP/rootonly/sub", "w"]}
      - {type: Command, workDir: /workspace/w, command: ["cat", "secret.txt"]}
EOF
	runner run --progress none --db "$TMP/cwd.db" "$TMP/cwd.yaml"
	check_eq "a workDir through a planted symlink into a root-only directory: the run fails" "$RC" 1
	check_eq "... the job failed" "$(sql "$TMP/cwd.db" "SELECT state FROM jobs WHERE name = 'cwd-symlink'")" Failed
	check_eq "... no output carries the root-only file" \
		"$(sql "$TMP/cwd.db" "SELECT count(*) FROM steps WHERE instr(stdout, 'root-only') OR instr(stderr, 'root-only')")
$(grep -c "root-only $MARK" "$TMP/out" "$TMP/err" | grep -vc ':0$' || true)" "0
0"
	check_match "... the step failed, saying the directory cannot be entered" \
		"$(sql "$TMP/cwd.db" "SELECT group_concat(a.error_class || ': ' || s.stderr, ' ') FROM steps s
			JOIN attempts a ON a.id = s.attempt_id WHERE s.name = 'step-2'")" \
		"^failed: arl-batch: workDir '/workspace/w': cannot change directory to '/run/arl-batch/workspace/w': Permission denied"

	# An isolation none step leaves a process behind (setsid, output elsewhere). It then looks,
	# when told to, for a bwrap step of another run on another database: its workspace file
	# through /proc/PID/root, its environment through /proc/PID/environ.
	LG=$TMP/lg
	mkdir "$LG"
	chmod 0777 "$LG"
	chmod o+x "$TMP"
	VSECRET="victim-env-$MARK"
	VHOLD="301.${MARK//[!0-9]/}"
	cat >"$LG/scan.sh" <<EOF
echo \$\$ >$LG/pid
while [ ! -e $LG/go ]; do sleep 0.05; done
seen=0
for p in /proc/[0-9]*; do
	case "\$(tr '\\0' ' ' <\$p/cmdline 2>/dev/null)" in *"$VHOLD"*) ;; *) continue ;; esac
	seen=\$((seen + 1))
	cat \$p/root/workspace/marker.txt >>$LG/read 2>/dev/null
	tr '\\0' '\\n' <\$p/environ >>$LG/read 2>/dev/null
	kill -0 \${p#/proc/} 2>/dev/null && echo "signalled \$p" >>$LG/read
done
echo \$seen >$LG/seen
: >$LG/done
while [ ! -e $LG/stop ]; do sleep 0.05; done
EOF
	cat >"$TMP/linger.yaml" <<EOF
version: 1
pools: {n: {isolation: none}}
jobs:
  - name: linger
    pool: n
    steps: [{type: Command, command: ["sh", "-c", "setsid sh $LG/scan.sh </dev/null >/dev/null 2>&1 & while [ ! -s $LG/pid ]; do sleep 0.05; done"]}]
EOF
	cat >"$TMP/victim.yaml" <<EOF
version: 1
pools: {b: {}}
jobs:
  - name: victim
    pool: b
    env: {VICTIM_SECRET: "$VSECRET"}
    steps: [{type: Command, command: ["sh", "-c", "echo 'workspace $VSECRET' > /workspace/marker.txt; exec sleep $VHOLD"]}]
EOF
	runner run --progress none --db "$TMP/linger.db" "$TMP/linger.yaml"
	check_eq "the isolation none run that leaves a process behind succeeds" "$RC" 0
	wait_until 120 "the left-behind process" test -s "$LG/pid"
	LINGER_PID=$(cat "$LG/pid")
	"$ARL_BATCH" run --progress none --db "$TMP/victim.db" "$TMP/victim.yaml" >"$TMP/vout" 2>"$TMP/verr" &
	RUNNER_PID=$!
	wait_until 120 "the victim step to hold" eval '[ -n "$(procs_with "sleep $VHOLD")" ]'
	: >"$LG/go"
	wait_until 120 "the left-behind process to look" test -e "$LG/done"
	check_ge "the left-behind process saw the victim's processes in /proc" "$(cat "$LG/seen" 2>/dev/null || echo 0)" 1
	check_eq "... but read neither its workspace file nor its environment, nor signalled it" \
		"$(cat "$LG/read" 2>/dev/null)" ""
	for pid in $(procs_with "sleep $VHOLD"); do kill -TERM "$pid" 2>/dev/null || true; done
	wait_exit 120
	check_eq "the victim run ends" "$RC" 1
	: >"$LG/stop"
	wait_until 120 "the left-behind process to end" eval '! kill -0 "$LINGER_PID" 2>/dev/null'
	LINGER_PID=
fi

summary
