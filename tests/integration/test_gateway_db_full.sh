#!/usr/bin/env bash
# A results database that stops accepting writes mid-run leaks no session on the gateway
# (against the test gateway, tests/fake_gateway/): the database is on a small tmpfs that the
# jobs' output fills (each job prints 200 kB), while a slow job holds a session running a long
# step (the others print only once it runs). The run stops with the error test_disk_full checks (exit 3), and every session it
# made, the slow one's included, is deleted; no step is left running in a session.
# Needs root (mount -t tmpfs); anyone else gets SKIP (77).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
require_tools mount umount mountpoint
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: mounting a small tmpfs needs root"
	exit 77
fi
make_tmp
MARK=$$$RANDOM # the slow step runs `sleep 60.$MARK`
MNT=$TMP/mnt
RUNNER_PID=
cleanup() {
	[ -z "$RUNNER_PID" ] || kill -9 "$RUNNER_PID" 2>/dev/null || true
	stop_gateway
	kill_procs_with "60\.$MARK"
	if mountpoint -q "$MNT"; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	return 0
}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=cleanup
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=2m,mode=0755 tmpfs "$MNT" 2>/dev/null; then
	echo "SKIP: cannot mount a tmpfs here"
	exit 77
fi
start_gateway

N=25 # the slow job and 24 that print 200 kB each: the 2 MB disk takes about 8 of them
# The slow job's step listens on a loopback port (the sessions share the host's network:
# network: true) and sleeps; the others print only once that port answers, so the database
# fills while the slow step runs, however the machine schedules them.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# py_job NAME: a job whose one Command step is `python3 -c` and the script lines that follow.
py_job() {
	echo "  - name: $1"
	echo "    timeout: 120s"
	echo "    steps:"
	echo "      - type: Command"
	echo "        command:"
	echo "          - python3"
	echo "          - -c"
	echo "          - |"
}
{
	echo "version: 1"
	echo "pools:"
	echo "  gw: {backend: gateway, image: arl-test, replicas: 3, network: true}"
	echo "jobs:"
	py_job slow
	echo "            import os, socket"
	echo "            s = socket.socket()"
	echo "            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)"
	echo "            s.bind(('127.0.0.1', $PORT))"
	echo "            s.listen(64)"
	echo "            os.set_inheritable(s.fileno(), True)"
	echo "            os.execvp('sleep', ['sleep', '60.$MARK'])"
	for i in $(seq -w 1 24); do
		py_job "out$i"
		echo "            import base64, os, socket, sys, time"
		echo "            while True:"
		echo "                try:"
		echo "                    socket.create_connection(('127.0.0.1', $PORT), 5).close()"
		echo "                    break"
		echo "                except OSError:"
		echo "                    time.sleep(0.05)"
		echo "            sys.stdout.write(base64.encodebytes(os.urandom(150000)).decode())"
	done
} >"$TMP/out.yaml"
DB=$MNT/r.db

"$ARL_BATCH" run --progress none --db "$DB" --state-dir "$TMP/state" "$TMP/out.yaml" \
	>"$TMP/out" 2>"$TMP/err" &
RUNNER_PID=$!
wait_exit 300 # a hang's bound (RC 999), not a timing
echo "   measured: the run ended after $((ELAPSED_MS / 1000)) s"
check_eq "the run exits 3" "$RC" 3
[ "$RC" = 3 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
check_match "it says the database is full" "$(grep '^arl-batch: cannot write' "$TMP/err" || true)" \
	"^arl-batch: cannot write to results database '$DB': database or disk is full \([0-9]+ of $N jobs recorded"
# Without waiting for the slow job: it ended before that job's `sleep 60` could.
check_le "... before the slow job's sleep 60 could end (ms)" "$ELAPSED_MS" 59999
recorded=$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'" || echo -1)
check_ge "jobs were recorded before the disk filled" "$recorded" 1
check_le "... and the disk did fill" "$recorded" 20
check_eq "each of them an out job with its 200 kB of output (the slow step ran first)" \
	"$(sql "$DB" "SELECT count(*) FROM jobs j JOIN attempts a ON a.job_id = j.id JOIN steps s
	              ON s.attempt_id = a.id WHERE j.state = 'Succeeded' AND j.name LIKE 'out%'
	              AND length(s.stdout) > 200000")" "$recorded"
check_eq "no session left on the gateway" "$(gw_session_count)" 0
# count ENDPOINT STATUS: the gateway's answers of STATUS to ENDPOINT, from its request log.
count() {
	gw_get /_fake/requests | python3 -c 'import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["endpoint"] == sys.argv[1] and r["status"] == int(sys.argv[2])))' "$@"
}
creates=$(count create 201)
check_ge "sessions were made for more jobs than were recorded (the slow one's too)" "$creates" $((recorded + 1))
check_eq "each session the run made it deleted" "$(count delete 204)" "$creates"
check_eq "no step left running in a session (sleep 60.$MARK)" "$(leftover "60\.$MARK")" ""

summary
