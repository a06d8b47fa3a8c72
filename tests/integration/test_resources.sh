#!/usr/bin/env bash
# Pool resources enforced with cgroups (issue 14), as root on a host with cgroup controllers:
# a step allocating 256 MiB under a 64 MiB limit ends OOMKilled with exit 137 while a job in
# the same run succeeds; a process that forks until it cannot stops below pids: 64 and the
# run goes on; cpus is written to the cgroup; every sandbox cgroup is removed after the run,
# after SIGINT, and (after kill -9) by `arl-batch gc`; as uid 65534 without a delegated cgroup
# the run fails at its start, saying why.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: cgroup limits need root here (no delegated cgroup v2 subtree)"
	exit 77
fi
require_bwrap
require_tools sqlite3 pgrep python3
make_tmp

# The directories under which this shell's (and so the runner's) sandbox cgroups go.
cgroup_bases() {
	local id ctl path c
	while IFS=: read -r id ctl path; do
		if [ "$id" = 0 ] && [ -z "$ctl" ]; then
			if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
				echo "/sys/fs/cgroup${path%/}"
			else
				echo "/sys/fs/cgroup/unified${path%/}"
			fi
			continue
		fi
		for c in ${ctl//,/ }; do
			case $c in memory | pids | cpu) echo "/sys/fs/cgroup/$c${path%/}" ;; esac
		done
	done </proc/self/cgroup
}
# sb_cgroups [OWNER_PID]: the sandbox cgroups there are (of one runner, by its pid).
sb_cgroups() {
	local b
	for b in $(cgroup_bases); do
		find "$b" -mindepth 1 -maxdepth 1 -type d -name "sb-*-${1:-}*" 2>/dev/null || true
	done
}
has_cgroups() { [ -n "$(sb_cgroups "$1")" ]; }
# in_sb_cgroup OWNER PID: PID is in one of OWNER's sandbox cgroups.
in_sb_cgroup() {
	local g
	for g in $(sb_cgroups "$1"); do grep -qx "$2" "$g/cgroup.procs" && return 0; done
	return 1
}
no_cgroups() { [ -z "$(sb_cgroups "$1")" ]; }

MARK=$$$RANDOM
RUNNER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill -9 "$RUNNER_PID" 2>/dev/null
	kill_procs_with "3[01]\.$MARK"
	return 0
}
CLEANUP=cleanup

# No cgroup at all here: nothing to test (the unit tests cover the logic).
cat >"$TMP/probe.yaml" <<YAML
version: 1
pools:
  p: {resources: {memory: 64Mi}}
jobs:
  - {name: probe, steps: [{type: Command, command: ["true"]}]}
YAML
runner run --db "$TMP/probe.db" "$TMP/probe.yaml"
if [ "$RC" != 0 ] && grep -q "resources need a cgroup" "$TMP/err"; then
	echo "SKIP: no writable cgroup here: $(cat "$TMP/err")"
	exit 77
fi
check_eq "a limited pool runs a job" "$RC" 0

# step_col DB JOB COLUMN: that column of the job's first step.
step_col() {
	sql "$1" "SELECT s.$3 FROM steps s JOIN attempts a ON s.attempt_id = a.id JOIN jobs j ON a.job_id = j.id WHERE j.name = '$2' ORDER BY a.number DESC, s.idx LIMIT 1"
}

# --- OOM, pids, and a job beside them -----------------------------------------------------
cat >"$TMP/limits.yaml" <<YAML
version: 1
pools:
  small: {replicas: 2, resources: {memory: 64Mi, cpus: "0.5", pids: 64}}
jobs:
  - name: hog
    pool: small
    timeout: 120s
    steps:
      - {type: Command, command: ["python3", "-c", "s = b'x' * (256 << 20); print(len(s))"]}
  - name: beside
    pool: small
    steps:
      - {type: Command, command: ["sh", "-c", "echo fine"]}
  # tmpfs pages (/tmp, and /etc's upper) count in the cgroup but in no process: the kill
  # may take the sandbox's agent, and the step is still OOMKilled, never infra.
  - name: tmpfill
    pool: small
    timeout: 120s
    retries: 0
    steps:
      - type: Command
        command:
          - sh
          - -c
          - |
            echo before
            # until the agent has read the line: the kill may take the agent next
            python3 -c 'import fcntl, struct, termios, time
            while struct.unpack("i", fcntl.ioctl(1, termios.FIONREAD, b"1234"))[0]: time.sleep(0.01)'
            head -c 256M /dev/zero > /etc/fill; head -c 256M /dev/zero > /tmp/fill
  - name: forker
    pool: small
    timeout: 120s
    steps:
      - type: Command
        command:
          - python3
          - -c
          - |
            import os, signal
            n = 0
            try:
                while n < 10000:
                    if os.fork() == 0:
                        signal.pause()
                    n += 1
            except OSError as e:
                print("stopped", n, e.strerror)
  - name: bomb
    pool: small
    steps:
      - {type: Command, timeout: 60s, command: ["bash", "-c", "b() { b | b & }; b; sleep 2", "bomb-$MARK"]}
YAML
runner run --db "$TMP/limits.db" -j 2 "$TMP/limits.yaml"
check_eq "the run fails only for the hog and tmpfill" "$RC" 1
check_eq "hog: exit 137, class failed" \
	"$(sql "$TMP/limits.db" "SELECT exit_code, state, error_class FROM jobs WHERE name = 'hog'")" "137|Failed|failed"
check_match "hog: the error says OOMKilled" \
	"$(sql "$TMP/limits.db" "SELECT error FROM jobs WHERE name = 'hog'")" "exited with 137 \(OOMKilled\)"
check_match "hog: the step's stderr says why" "$(step_col "$TMP/limits.db" hog stderr)" \
	"OOMKilled: the step went over the pool's memory limit \(resources: memory 64Mi\)"
check_eq "tmpfill: exit 137, class failed, OOMKilled, one attempt" \
	"$(sql "$TMP/limits.db" "SELECT exit_code, state, error_class, attempts FROM jobs WHERE name = 'tmpfill'")" \
	"137|Failed|failed|1"
check_eq "tmpfill: what it printed before is kept" "$(step_col "$TMP/limits.db" tmpfill stdout)" before
# Which process the kernel kills decides the wording: the agent (the sandbox went over) or
# only head (the step did); both are the sandbox's own limit.
check_match "tmpfill: the step's stderr says why" "$(step_col "$TMP/limits.db" tmpfill stderr)" \
	"OOMKilled: (the step|the sandbox \(its processes, files in /tmp and under /etc\)) went over the pool's memory limit"
check_eq "beside: succeeded in the same run" \
	"$(sql "$TMP/limits.db" "SELECT state FROM jobs WHERE name = 'beside'") $(step_col "$TMP/limits.db" beside stdout)" "Succeeded fine"
FORK=$(step_col "$TMP/limits.db" forker stdout)
check_match "forker: fork failed with EAGAIN" "$FORK" "^stopped [0-9]+ Resource temporarily unavailable"
N=$(echo "$FORK" | awk '{print $2}')
check_le "forker: stopped below pids: 64" "${N:-999}" 63
check_ge "forker: got most of the way there" "${N:-0}" 32
check_eq "forker: the job succeeded" \
	"$(sql "$TMP/limits.db" "SELECT state FROM jobs WHERE name = 'forker'")" Succeeded
# Whether the bomb's own shell could still fork its sleep is its business; that it ended is ours.
check_match "bomb: the job ended" "$(sql "$TMP/limits.db" "SELECT state FROM jobs WHERE name = 'bomb'")" "^(Succeeded|Failed)$"
check_eq "bomb: none of its processes is left" "$(leftover "bomb-$MARK")" ""
check "no sandbox cgroup is left after the run" no_cgroups ""

# --- cpus in the cgroup, then SIGINT --------------------------------------------------------
cat >"$TMP/slow.yaml" <<YAML
version: 1
pools:
  half: {resources: {cpus: 500m, memory: 1Gi, pids: 1024}}
jobs:
  - {name: slow, pool: half, timeout: 300s, steps: [{type: Command, command: ["sh", "-c", "sleep 30.$MARK; true"]}]}
YAML
"$ARL_BATCH" run --db "$TMP/int.db" "$TMP/slow.yaml" >"$TMP/int.out" 2>&1 &
RUNNER_PID=$!
if wait_until 120 "the sandbox cgroup" has_cgroups "$RUNNER_PID"; then
	CPU=$(sb_cgroups "$RUNNER_PID" | grep '/cpu/' | head -1)
	if [ -n "$CPU" ]; then
		check_eq "cpus 500m: cfs quota" "$(cat "$CPU/cpu.cfs_quota_us")" 50000
		check_eq "cpus 500m: cfs period" "$(cat "$CPU/cpu.cfs_period_us")" 100000
	else
		CPU=$(sb_cgroups "$RUNNER_PID" | head -1)
		check_eq "cpus 500m: cpu.max" "$(cat "$CPU/cpu.max")" "50000 100000"
	fi
	MEM=$(sb_cgroups "$RUNNER_PID" | grep -v '/pids/\|/cpu/' | head -1)
	if [ -e "$MEM/memory.limit_in_bytes" ]; then
		check_eq "memory 1Gi: limit" "$(cat "$MEM/memory.limit_in_bytes")" 1073741824
	else
		check_eq "memory 1Gi: memory.max" "$(cat "$MEM/memory.max")" 1073741824
	fi
	wait_until 120 "the step to start" eval "[ -n \"\$(procs_with 'sleep 30\.$MARK')\" ]" || true
	# One of the runner's sandbox cgroups: the preparer keeps a warm container beside the job's.
	check "the step's processes are in the sandbox cgroup" in_sb_cgroup "$RUNNER_PID" \
		"$(procs_with "^sleep 30\.$MARK" | head -1)"
	OWNER=$RUNNER_PID
	kill -INT "$RUNNER_PID"
	wait_pid 120 "$RUNNER_PID"
	RUNNER_PID=
	check_eq "SIGINT: the runner exits 130" "$RC" 130
	check "SIGINT: no sandbox cgroup is left" no_cgroups "$OWNER"
fi

# --- kill -9, then gc ---------------------------------------------------------------------
"$ARL_BATCH" run --db "$TMP/kill.db" "$TMP/slow.yaml" >"$TMP/kill.out" 2>&1 &
RUNNER_PID=$!
if wait_until 120 "the sandbox cgroup" has_cgroups "$RUNNER_PID"; then
	OWNER=$RUNNER_PID
	kill -9 "$RUNNER_PID"
	wait "$RUNNER_PID" 2>/dev/null || true
	RUNNER_PID=
	check "kill -9 leaves the cgroups behind" has_cgroups "$OWNER"
	runner gc --yes --db "$TMP/kill.db"
	check_eq "gc exits 0" "$RC" 0
	check_match "gc names the cgroups it deletes" "$(cat "$TMP/out" "$TMP/err")" "deleting cgroup .*/sb-[0-9]+-$OWNER-"
	check "gc removed them" no_cgroups "$OWNER"
fi

# --- an ordinary user where no cgroup is delegated ---------------------------------------------
# Limits asked for and none writable: the run fails at its start, saying why, running nothing
# (where the host delegates a v2 subtree to that user, the limits apply as for root instead).
mkdir "$TMP/user"
cat >"$TMP/user/r.yaml" <<EOF
version: 1
pools:
  p: {resources: {memory: 64Mi, pids: 64}}
jobs:
  - {name: a, steps: [{type: Command, command: ["true"]}]}
EOF
chmod 755 "$TMP"
chown -R 65534:65534 "$TMP/user"
set +e
setpriv --reuid 65534 --regid 65534 --clear-groups env HOME=/ \
	"$ARL_BATCH" run --progress none --db "$TMP/user/r.db" "$TMP/user/r.yaml" >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
if grep -q "there is none" "$TMP/err"; then
	check_eq "[uid 65534] no writable cgroup: the run fails at its start (exit 3)" "$RC" 3
	check_match "[uid 65534] ... saying why and what to do" "$(cat "$TMP/err")" \
		"pool 'p' sets resources: resources need a cgroup this runner can write, and there is none: .*Delegate=yes"
else
	check_eq "[uid 65534] a delegated cgroup: the run succeeds under its limits" "$RC" 0
fi
summary
