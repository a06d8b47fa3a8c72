#!/usr/bin/env bash
# Floods in the bwrap sandbox: a step printing 1 GiB (the runner keeps head and tail within
# --capture-max and its peak RSS stays under 100 MB), a step starting 2000 background
# processes (it ends at its timeout as class 'timeout' and no process of it survives: its PID
# namespace dies with it), and a step writing 64 MiB into /tmp (a private tmpfs per step:
# the file counts against the host's memory, is gone when the step ends and never reaches
# the host's /tmp).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 pgrep
if [ ! -x /usr/bin/time ]; then
	echo "SKIP: GNU time (/usr/bin/time, Debian package 'time') is not installed"
	exit 77
fi
make_tmp

MARK=$$$RANDOM # the background sleeps run `sleep 30.$MARK`
cleanup() {
	local p
	for p in $(procs_with "30\.$MARK"); do kill -9 "$p" 2>/dev/null || true; done
	return 0
}
CLEANUP=cleanup
DB=$TMP/floods.db

cat >"$TMP/floods.yaml" <<EOF
version: 1
pools:
  p: {replicas: 3}
jobs:
  - name: gib-of-output
    timeout: 60s
    steps: [{type: Command, command: ["sh", "-c", "head -c 1073741824 /dev/zero | tr '\\\\0' x; echo; echo the-end"]}]
  - name: process-flood
    timeout: 3s
    steps: [{type: Command, command: ["sh", "-c", "for i in \$(seq 2000); do sleep 30.$MARK & done; echo started; wait"]}]
  - name: fill-tmp
    steps:
      - {type: Command, command: ["sh", "-c", "head -c 67108864 /dev/zero > /tmp/fill-$MARK && stat -c %s /tmp/fill-$MARK"]}
      - {type: Command, command: ["sh", "-c", "test ! -e /tmp/fill-$MARK && echo gone"]}
EOF

t0=$(now_ms)
set +e
/usr/bin/time -o "$TMP/rss" -f %M "$ARL_BATCH" run --progress none --db "$DB" "$TMP/floods.yaml" \
	>"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
ms=$(($(now_ms) - t0))
rss=$(tail -n 1 "$TMP/rss")
echo "   measured: the run took ${ms} ms, runner peak RSS ${rss} KiB"
check_eq "the run exits 1 (the process flood times out)" "$RC" 1
check_le "the runner's peak RSS stays under 100 MB with 1 GiB of output (KiB)" "$rss" 102400

state() {
	sql "$DB" "SELECT j.state || ':' || coalesce(a.error_class, '') FROM jobs j
	           JOIN attempts a ON a.job_id = j.id WHERE j.name = '$1' ORDER BY a.number DESC LIMIT 1"
}
check_match "1 GiB of output: the job succeeds" "$(state gib-of-output)" '^Succeeded:'
check_eq "1 GiB of output: stdout is marked truncated" \
	"$(sql "$DB" "SELECT s.stdout_truncated FROM steps s JOIN attempts a ON a.id = s.attempt_id
	   JOIN jobs j ON j.id = a.job_id WHERE j.name = 'gib-of-output'")" 1
check_match "1 GiB of output: head and tail kept around the marker" \
	"$(sql "$DB" "SELECT length(s.stdout) <= 1100000, substr(s.stdout, -8)
	   FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
	   WHERE j.name = 'gib-of-output'") $(sql "$DB" "SELECT instr(s.stdout, 'bytes truncated') > 0
	   FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
	   WHERE j.name = 'gib-of-output'")" '^1\|the-end 1$'

check_eq "2000 processes: all were started before the timeout" \
	"$(sql "$DB" "SELECT rtrim(s.stdout, char(10)) FROM steps s JOIN attempts a ON a.id = s.attempt_id
	   JOIN jobs j ON j.id = a.job_id WHERE j.name = 'process-flood'")" started
check_match "2000 processes: the job ends at its timeout, class timeout" \
	"$(state process-flood)" '^Failed:timeout$'
left=
for i in $(seq 50); do
	left=$(procs_with "30\.$MARK")
	[ -z "$left" ] && break
	sleep 0.1
done
check_eq "2000 processes: none survives the step" "$(echo -n "$left" | wc -w)" 0

check_eq "64 MiB into /tmp: written in the step, gone in the next" \
	"$(sql "$DB" "SELECT group_concat(rtrim(s.stdout, char(10)), ',') FROM steps s
	   JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id WHERE j.name = 'fill-tmp'")" \
	"67108864,gone"
check "64 MiB into /tmp: nothing in the host's /tmp" test ! -e "/tmp/fill-$MARK"
check_le "the whole run took under 30 s (ms)" "$ms" 30000

summary
