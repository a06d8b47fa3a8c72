#!/usr/bin/env bash
# The semantics of `arl-batch run` on small job files written here, with `isolation: none` and
# with bubblewrap: exit codes, --fail-fast, --deadline, timeouts (and the process tree they
# kill), retries and backoff, env/workDir/FilePatch/templates, metrics, output capture limits
# and the runner's memory on a huge output, the sandbox's walls and network, and the read
# commands (results --format json, query).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 python3
make_tmp

MARK=$$$RANDOM # unique: the argument of our `sleep 30.$MARK` processes
LISTENER=
cleanup() {
	[ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null
	kill_procs_with "30\.$MARK"
	rm -f "/usr/arl-probe-$MARK" "/etc/arl-probe-$MARK" 2>/dev/null
	return 0
}
CLEANUP=cleanup

# pool MODE: the YAML of a pool named p in that isolation mode.
pool() {
	printf 'pools:\n  p: {isolation: %s, replicas: 4}\n' "$1"
}

# run_timed ARGS...: runner, plus ELAPSED_MS of wall time. A run still going after 300 s (a
# bound for a hang, never a timing asserted) is stopped by timeout(1): RC 124.
run_timed() {
	local t0
	t0=$(now_ms)
	set +e
	timeout -k 10 300 "$ARL_BATCH" "$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
	set -e
	ELAPSED_MS=$(($(now_ms) - t0))
}

# --- per isolation mode ------------------------------------------------------------------

for MODE in none bwrap; do
	D=$TMP/$MODE
	mkdir -p "$D"
	DB=$D/results.db

	echo "# [$MODE] exit code 0: every job succeeded"
	cat >"$D/ok.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - {name: one, steps: [{type: Command, command: ["true"]}]}
  - {name: two, steps: [{type: Command, command: ["sh", "-c", "echo two"]}]}
EOF
	runner run --progress none --db "$DB" "$D/ok.yaml"
	check_eq "[$MODE] run exits 0" "$RC" 0
	check_eq "[$MODE] run row: succeeded, exit 0, 2 total, 2 succeeded" \
		"$(sql "$DB" "SELECT status, exit_code, jobs_total, jobs_succeeded FROM runs WHERE id = (SELECT max(id) FROM runs)")" \
		"succeeded|0|2|2"
	if [ "$MODE" = none ]; then
		check_match "[none] the run's records say the isolation is none" \
			"$(sql "$DB" "SELECT isolation || ' ' || ifnull(notes, '') FROM runs ORDER BY id DESC LIMIT 1")" \
			'none'
	else
		check_eq "[bwrap] the run's records say bwrap" \
			"$(sql "$DB" "SELECT isolation FROM runs ORDER BY id DESC LIMIT 1")" bwrap
	fi

	echo "# [$MODE] exit code 1: a job failed"
	cat >"$D/fail.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - {name: good, steps: [{type: Command, command: ["true"]}]}
  - {name: bad, steps: [{type: Command, command: ["sh", "-c", "exit 5"]}]}
EOF
	runner run --progress none --db "$DB" "$D/fail.yaml"
	check_eq "[$MODE] run exits 1" "$RC" 1
	check_eq "[$MODE] failing job: Failed, exit 5, class failed" \
		"$(sql "$DB" "SELECT state, exit_code, error_class FROM jobs WHERE key = 'fail/bad'")" "Failed|5|failed"
	check_eq "[$MODE] run row: failed, exit 1, 1 succeeded, 1 failed" \
		"$(sql "$DB" "SELECT status, exit_code, jobs_succeeded, jobs_failed FROM runs ORDER BY id DESC LIMIT 1")" \
		"failed|1|1|1"

	echo "# [$MODE] exit code 4: --fail-fast at -j 1"
	cat >"$D/ff.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - {name: first-fails, steps: [{type: Command, command: ["sh", "-c", "exit 3"]}]}
  - {name: later-1, steps: [{type: Command, command: ["true"]}]}
  - {name: later-2, steps: [{type: Command, command: ["true"]}]}
  - {name: later-3, steps: [{type: Command, command: ["true"]}]}
  - {name: later-4, steps: [{type: Command, command: ["true"]}]}
EOF
	runner run --progress none --db "$DB" -j 1 --fail-fast "$D/ff.yaml"
	check_eq "[$MODE] --fail-fast run exits 4" "$RC" 4
	check_eq "[$MODE] --fail-fast: the failing job is Failed" \
		"$(sql "$DB" "SELECT state FROM jobs WHERE key = 'ff/first-fails'")" Failed
	check_eq "[$MODE] --fail-fast: the 4 later jobs Cancelled, class cancelled, never attempted" \
		"$(sql "$DB" "SELECT count(*) FROM jobs WHERE key LIKE 'ff/later-%' AND state = 'Cancelled'
		   AND error_class = 'cancelled' AND attempts = 0
		   AND run_id = (SELECT max(id) FROM runs)")" 4
	check_eq "[$MODE] --fail-fast: run row counts 1 failed, 4 cancelled, exit 4" \
		"$(sql "$DB" "SELECT jobs_failed, jobs_cancelled, exit_code FROM runs ORDER BY id DESC LIMIT 1")" "1|4|4"

	echo "# [$MODE] exit code 4: --deadline 1s"
	cat >"$D/dl.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - {name: sleeper, timeout: 60s, steps: [{type: Command, command: ["sh", "-c", "sleep 30.$MARK"]}]}
  - {name: after, steps: [{type: Command, command: ["true"]}]}
EOF
	run_timed run --progress none --db "$DB" -j 1 --deadline 1s "$D/dl.yaml"
	check_eq "[$MODE] --deadline run exits 4" "$RC" 4
	# The deadline, not the end of `sleep 30`, ended it: no wall-clock window on a busy machine.
	check_eq "[$MODE] --deadline 1s: the sleeping step was killed by SIGTERM (exit 143), not waited for" \
		"$(sql "$DB" "SELECT s.exit_code FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
		   WHERE j.name = 'sleeper' AND j.run_id = (SELECT max(id) FROM runs)")" 143
	check_ge "[$MODE] --deadline 1s: not before it (ms)" "$ELAPSED_MS" 1000
	check_eq "[$MODE] --deadline: the sleeping job and the one after it are Cancelled" \
		"$(sql "$DB" "SELECT group_concat(name || ':' || state || ':' || error_class, ',') FROM
		   (SELECT name, state, error_class FROM jobs WHERE run_id = (SELECT max(id) FROM runs) ORDER BY name)")" \
		"after:Cancelled:cancelled,sleeper:Cancelled:cancelled"
	check_eq "[$MODE] --deadline: no 'sleep 30.$MARK' left" "$(leftover "30\.$MARK")" ""

	echo "# [$MODE] a step timeout kills the step's process tree"
	cat >"$D/to.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - name: step-timeout
    timeout: 20s
    steps:
      - {name: sleeps, type: Command, timeout: 1s,
         command: ["sh", "-c", "echo started; (while :; do sleep 30.$MARK; done) & sleep 30.$MARK; wait"]}
      - {name: after, type: Command, command: ["echo", "not reached"]}
EOF
	# The background sibling never ends by itself and holds the output pipe: the run ends at
	# all (not 124 from run_timed's bound) only if the timeout killed the whole tree.
	run_timed run --progress none --db "$DB" "$D/to.yaml"
	check_eq "[$MODE] timeout run exits 1 (124: it waited for the tree)" "$RC" 1
	check_eq "[$MODE] the timed-out step was killed by SIGTERM (exit 143)" \
		"$(sql "$DB" "SELECT s.exit_code FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
		   WHERE j.key = 'to/step-timeout' AND s.name = 'sleeps' AND j.run_id = (SELECT max(id) FROM runs)")" 143
	step_ms=$(sql "$DB" "SELECT s.duration_ms FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
	          WHERE j.key = 'to/step-timeout' AND s.name = 'sleeps' AND j.run_id = (SELECT max(id) FROM runs)")
	check_ge "[$MODE] the step ran for its 1 s (ms)" "${step_ms:-0}" 950
	echo "   measured [$MODE]: timeout 1s -> step duration ${step_ms} ms, whole run ${ELAPSED_MS} ms"
	check_eq "[$MODE] timed-out job: Failed, class timeout" \
		"$(sql "$DB" "SELECT state, error_class FROM jobs WHERE key = 'to/step-timeout' AND run_id = (SELECT max(id) FROM runs)")" \
		"Failed|timeout"
	check_eq "[$MODE] timed-out step Failed with its output kept; the next Skipped" \
		"$(sql "$DB" "SELECT group_concat(s.name || ':' || s.state || ':' || rtrim(ifnull(s.stdout, ''), char(10)), ',')
		   FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
		   WHERE j.key = 'to/step-timeout' AND j.run_id = (SELECT max(id) FROM runs)")" \
		"sleeps:Failed:started,after:Skipped:"
	check_eq "[$MODE] no 'sleep 30.$MARK' left after the timeout (nor its background sibling)" \
		"$(leftover "30\.$MARK")" ""

	echo "# [$MODE] retries, backoff, env, workDir, FilePatch, templates, metrics"
	cat >"$D/sem.yaml" <<EOF
version: 1
name: semantics
$(pool "$MODE")
defaults:
  timeout: 20s
jobs:
  - name: retry-failed
    retries: 2
    retryOn: [failed]
    backoff: 200ms
    steps:
      - {type: Command, command: ["sh", "-c", "echo try {{ attempt }}; exit 1"]}
  - name: no-retry-on-failed
    retries: 2
    retryOn: [timeout, infra]
    backoff: 10ms
    steps:
      - {type: Command, command: ["sh", "-c", "exit 7"]}
  - name: "tmpl-{{ item.x }}"
    foreach:
      items:
        - {x: alpha, n: {y: beta}}
    env: {JOBV: "job-{{ item.x }}", SHARED: from-job}
    steps:
      - name: patch
        type: FilePatch
        path: /workspace/deep/a/b/c/file.txt
        content: "x={{ item.x }} y={{ item.n.y }} attempt={{ attempt }} run={{ run.id }} job={{ job.name }}"
      - name: show
        type: Command
        workDir: /workspace/deep/a
        env: {STEPV: from-step, SHARED: from-step}
        command: ["sh", "-c", "pwd; cat b/c/file.txt; echo; echo JOBV=\$JOBV STEPV=\$STEPV SHARED=\$SHARED"]
      - name: job-env-only
        type: Command
        command: ["sh", "-c", "echo SHARED=\$SHARED STEPV=\${STEPV-unset}"]
  - name: metrics
    steps:
      - type: Command
        metrics: json
        command: ["sh", "-c", "echo some output; echo '{\"score\": 0.75, \"label\": \"abc\", \"ok\": true, \"nested\": {\"a\": 1}, \"list\": [1]}'; echo"]
EOF
	runner run --progress none --db "$DB" "$D/sem.yaml"
	check_eq "[$MODE] semantics run exits 1 (two jobs fail on purpose)" "$RC" 1
	RUN=$(sql "$DB" "SELECT max(id) FROM runs")
	jid() { sql "$DB" "SELECT id FROM jobs WHERE run_id = $RUN AND name = '$1'"; }

	check_eq "[$MODE] retryOn [failed], retries 2: Failed after 3 attempts" \
		"$(sql "$DB" "SELECT state, attempts, error_class FROM jobs WHERE id = $(jid retry-failed)")" "Failed|3|failed"
	check_eq "[$MODE] attempts rows numbered 1..3, each rendering {{ attempt }}" \
		"$(sql "$DB" "SELECT group_concat(a.number || '=' || rtrim(s.stdout, char(10)), ',') FROM
		   (SELECT * FROM attempts WHERE job_id = $(jid retry-failed) ORDER BY number) a
		   JOIN steps s ON s.attempt_id = a.id")" "1=try 1,2=try 2,3=try 3"
	gaps=$(python3 - "$DB" "$(jid retry-failed)" <<'EOF'
import datetime, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT started_at, finished_at FROM attempts WHERE job_id = ? ORDER BY number",
    (int(sys.argv[2]),)).fetchall()
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
print(" ".join(str(round((t(b[0]) - t(a[1])).total_seconds() * 1000)) for a, b in zip(rows, rows[1:])))
EOF
	)
	echo "   measured [$MODE]: backoff gaps between attempts: $gaps ms (200ms, doubled)"
	read -r gap1 gap2 <<<"$gaps"
	check_ge "[$MODE] gap between attempt 1 finished_at and attempt 2 started_at >= 200 ms" "${gap1:-0}" 200
	check_ge "[$MODE] the backoff doubled: gap 2->3 >= 400 ms" "${gap2:-0}" 400
	check_eq "[$MODE] retryOn without failed: a non-zero exit is not retried" \
		"$(sql "$DB" "SELECT state, attempts, exit_code, (SELECT count(*) FROM attempts WHERE job_id = j.id)
		   FROM jobs j WHERE id = $(jid no-retry-on-failed)")" "Failed|1|7|1"

	T=$(jid tmpl-alpha)
	check_eq "[$MODE] foreach job named from {{ item.x }} Succeeded" \
		"$(sql "$DB" "SELECT state FROM jobs WHERE id = ${T:-0}")" Succeeded
	show=$(sql "$DB" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id
	       WHERE a.job_id = ${T:-0} AND s.name = 'show'")
	check_match "[$MODE] workDir: the step ran in /workspace/deep/a" "$(head -n1 <<<"$show")" '/deep/a$'
	if [ "$MODE" = bwrap ]; then
		check_eq "[bwrap] workDir is the path inside the sandbox" "$(head -n1 <<<"$show")" /workspace/deep/a
	fi
	check_eq "[$MODE] FilePatch created nested dirs; item.x, item.n.y, attempt, run.id, job.name rendered" \
		"$(sed -n 2p <<<"$show")" "x=alpha y=beta attempt=1 run=$RUN job=tmpl-alpha"
	check_eq "[$MODE] job env rendered, step env added and overriding" \
		"$(sed -n 3p <<<"$show")" "JOBV=job-alpha STEPV=from-step SHARED=from-step"
	check_eq "[$MODE] a step without env sees only the job's" \
		"$(sql "$DB" "SELECT rtrim(s.stdout, char(10)) FROM steps s JOIN attempts a ON a.id = s.attempt_id
		   WHERE a.job_id = ${T:-0} AND s.name = 'job-env-only'")" "SHARED=from-job STEPV=unset"
	check_eq "[$MODE] item stored as JSON" \
		"$(sql "$DB" "SELECT json_extract(item, '$.n.y') FROM jobs WHERE id = ${T:-0}")" beta

	check_eq "[$MODE] metrics: json: the scalars of the last non-empty line, typed" \
		"$(sql "$DB" "SELECT group_concat(name || '=' || value || ':' || typeof(value), ',') FROM
		   (SELECT * FROM metrics WHERE job_id = $(jid metrics) ORDER BY name)")" \
		"label=abc:text,ok=1.0:real,score=0.75:real"

	echo "# [$MODE] 50 MiB of stdout"
	cat >"$D/big.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - name: big
    steps:
      - {type: Command, command: ["sh", "-c", "echo head-marker; head -c 52428800 /dev/zero | tr '\\\\0' x; echo; echo tail-marker"]}
EOF
	if [ -x /usr/bin/time ] && /usr/bin/time -f %M true >/dev/null 2>&1; then
		set +e
		ASAN_OPTIONS="$ASAN_SMALL_QUARANTINE" /usr/bin/time -f %M -o "$D/rss" \
			"$ARL_BATCH" run --progress none --db "$DB" "$D/big.yaml" >"$TMP/out" 2>"$TMP/err"
		RC=$?
		set -e
		rss_kb=$(tail -n1 "$D/rss")
		how="GNU time %M"
	else
		# No GNU time: poll VmHWM of the runner while it runs.
		"$ARL_BATCH" run --progress none --db "$DB" "$D/big.yaml" >"$TMP/out" 2>"$TMP/err" &
		pid=$!
		rss_kb=0
		while kill -0 "$pid" 2>/dev/null; do
			v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
			[ -n "$v" ] && [ "$v" -gt "$rss_kb" ] && rss_kb=$v
			sleep 0.02
		done
		set +e
		wait "$pid"
		RC=$?
		set -e
		how="VmHWM polling"
	fi
	echo "   measured [$MODE]: runner peak RSS on 50 MiB of stdout: ${rss_kb} KiB ($how)"
	check_eq "[$MODE] the 50 MiB job succeeded" "$RC" 0
	check_le "[$MODE] the runner's peak RSS stays under 100 MB (KiB)" "${rss_kb:-999999999}" 97656
	IFS='|' read -r len trunc head tail marker <<<"$(sql "$DB" "SELECT length(stdout), stdout_truncated,
		substr(stdout, 1, 11), rtrim(substr(stdout, -12), char(10)),
		stdout GLOB '*[[]... [0-9]* bytes truncated ...]*'
		FROM steps WHERE attempt_id = (SELECT max(id) FROM attempts)")"
	echo "   measured [$MODE]: stored stdout ${len} chars"
	check_eq "[$MODE] stdout_truncated = 1" "$trunc" 1
	check_ge "[$MODE] stored length near the 1 MiB default cap (lower bound)" "${len:-0}" $((1048576 - 64))
	check_le "[$MODE] stored length near the 1 MiB default cap (upper bound)" "${len:-999999999}" $((1048576 + 256))
	check_eq "[$MODE] head kept, tail kept, truncation marker present" "$head $tail $marker" \
		"head-marker tail-marker 1"

	echo "# [$MODE] --capture-max 4096"
	cat >"$D/cap.yaml" <<EOF
version: 1
$(pool "$MODE")
jobs:
  - name: cap
    steps:
      - {type: Command, command: ["sh", "-c", "head -c 100000 /dev/zero | tr '\\\\0' y; echo small >&2"]}
EOF
	runner run --progress none --db "$DB" --capture-max 4096 "$D/cap.yaml"
	check_eq "[$MODE] --capture-max run exits 0" "$RC" 0
	IFS='|' read -r len trunc elen etrunc <<<"$(sql "$DB" "SELECT length(stdout), stdout_truncated,
		length(stderr), stderr_truncated FROM steps WHERE attempt_id = (SELECT max(id) FROM attempts)")"
	check_eq "[$MODE] --capture-max: stdout truncated" "$trunc" 1
	check_ge "[$MODE] --capture-max 4096: stored stdout >= 4000 chars" "${len:-0}" 4000
	check_le "[$MODE] --capture-max 4096: stored stdout <= 4096 + marker" "${len:-999999}" $((4096 + 256))
	check_eq "[$MODE] --capture-max: a small stderr is whole and not truncated" "$elen $etrunc" "6 0"
done

# --- mode-independent ------------------------------------------------------------------------

D=$TMP/common
mkdir -p "$D"
DB=$D/results.db

echo "# exit code 2: an invalid file next to a valid one"
cat >"$D/good.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none}
jobs:
  - {name: would-run, steps: [{type: Command, command: ["true"]}]}
EOF
cat >"$D/bad.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none}
jobs:
  - name: broken
    timeout: soon
    stepz: []
EOF
runner run --progress none --db "$D/invalid.db" "$D/good.yaml" "$D/bad.yaml"
check_eq "invalid file: run exits 2" "$RC" 2
check_match "invalid file: errors reported as FILE:LINE:COL" "$(cat "$TMP/err")" 'bad\.yaml:[0-9]+:[0-9]+: '
check_eq "invalid file: every error reported (missing steps, bad duration, unknown key)" \
	"$(grep -oE 'bad\.yaml:[0-9]+:[0-9]+: ' "$TMP/err" | tr -d '\n')" "bad.yaml:5:5: bad.yaml:6:14: bad.yaml:7:5: "
if [ -s "$D/invalid.db" ]; then
	check_eq "invalid file: no run row written" "$(sql "$D/invalid.db" 'SELECT count(*) FROM runs' 2>&1)" 0
else
	ok "invalid file: no run row written (no database)"
fi
check_eq "invalid file: no sandbox was made" "$(ls -A "$D/invalid.db.sandboxes" 2>/dev/null || true)" ""

echo "# the bwrap sandbox's walls"
echo "top secret $MARK" >"$TMP/secret.txt"
# validate refuses the FilePatch escapes below on a local pool (tests/jobfiles/invalid/): a
# Kubernetes pool run with --backend local brings them to the local backend's own check.
cat >"$D/walls.yaml" <<EOF
version: 1
pools:
  p: {backend: kubernetes, replicas: 4}
jobs:
  - name: probes
    steps:
      - type: Command
        command:
          - sh
          - -c
          - |
            for d in /usr /etc; do
              if touch \$d/arl-probe-$MARK 2>/dev/null; then echo "\$d writable"; else echo "\$d read-only"; fi
            done
            if cat $TMP/secret.txt 2>/dev/null; then echo "secret readable"; else echo "secret hidden"; fi
            if ls /workspace/.. 2>/dev/null | grep -q "$(basename "$TMP")"; then echo "host visible"; else echo "host hidden"; fi
  - name: etc-patched
    steps:
      - {type: FilePatch, path: /etc/arl-probe-$MARK, content: "inside"}
      - {type: Command, command: ["cat", "/etc/arl-probe-$MARK"]}
  - name: patch-proc
    steps:
      - {type: FilePatch, path: /proc/sys/kernel/arl-probe-$MARK, content: x}
  - name: patch-dotdot
    steps:
      - {type: FilePatch, path: "/workspace/../../../arl-escape-$MARK", content: x}
  - name: patch-symlink
    steps:
      - {type: Command, command: ["ln", "-s", "$TMP", "/workspace/link"]}
      - {type: FilePatch, path: "/workspace/link/arl-escape-$MARK", content: x}
EOF
runner run --progress none --db "$DB" --backend local "$D/walls.yaml"
check_eq "walls run exits 1 (the escapes fail)" "$RC" 1
# /usr and /etc are copy-on-write (writable inside, never on the host: the check below).
check_eq "sandbox: /usr and /etc writable inside, a host file outside the workspace unreadable" \
	"$(sql "$DB" "SELECT stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
	   WHERE j.name = 'probes'")" $'/usr writable\n/etc writable\nsecret hidden\nhost hidden'
check "sandbox: nothing written to the host's /usr or /etc" \
	test ! -e "/usr/arl-probe-$MARK" -a ! -e "/etc/arl-probe-$MARK"
check_eq "FilePatch into /proc, with '..', or through a symlink: each step Failed" \
	"$(sql "$DB" "SELECT group_concat(name || ':' || state, ',') FROM (SELECT name, state FROM jobs
	   WHERE name LIKE 'patch-%' ORDER BY name)")" "patch-dotdot:Failed,patch-proc:Failed,patch-symlink:Failed"
check_eq "FilePatch to /etc writes the container's copy-on-write /etc (the host's: checked above)" \
	"$(sql "$DB" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
	   WHERE j.name = 'etc-patched' AND s.idx = 1")" "inside"
check_eq "FilePatch escapes left no file on the host" \
	"$(find "$TMP" / -maxdepth 1 -name "arl-escape-$MARK" 2>/dev/null; find "$TMP" -name "arl-escape-$MARK" 2>/dev/null)" ""

echo "# network"
python3 - "$D/port" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(120)
while True:
    try:
        c, _ = s.accept()
        c.sendall(b"hello\n")
        c.close()
    except OSError:
        break
EOF
LISTENER=$!
wait_until 120 "the listener's port file" test -s "$D/port"
PORT=$(cat "$D/port")
check "the listener on 127.0.0.1:$PORT accepts connections from the host" \
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)"
CONNECT="import socket; socket.create_connection(('127.0.0.1', $PORT), 1); print('connected')"
cat >"$D/net.yaml" <<EOF
version: 1
pools:
  nonet: {}
  withnet: {network: true}
jobs:
  - {name: no-network, pool: nonet, steps: [{type: Command, command: ["python3", "-c", "$CONNECT"]}]}
  - {name: with-network, pool: withnet, steps: [{type: Command, command: ["python3", "-c", "$CONNECT"]}]}
EOF
runner run --progress none --db "$DB" "$D/net.yaml"
check_eq "network run exits 1 (the default pool has no network)" "$RC" 1
check_eq "default bwrap pool: connecting to the host's listener fails" \
	"$(sql "$DB" "SELECT state FROM jobs WHERE name = 'no-network'")" Failed
check_eq "pool network: true: connecting succeeds" \
	"$(sql "$DB" "SELECT j.state || ':' || rtrim(s.stdout, char(10)) FROM jobs j JOIN attempts a ON a.job_id = j.id
	   JOIN steps s ON s.attempt_id = a.id WHERE j.name = 'with-network'")" "Succeeded:connected"
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true
LISTENER=

echo "# results --format json"
DB=$TMP/bwrap/results.db
runner results --db "$DB" --run semantics --format json
check_eq "results --format json exits 0" "$RC" 0
check_eq "results json: an array of Task-shaped objects" "$(python3 - "$TMP/out" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a, list) and len(a) == 4, a
by = {}
for t in a:
    assert isinstance(t["metadata"]["name"], str)
    st = t["status"]
    assert st["state"] in ("Succeeded", "Failed", "Cancelled", "Skipped", "Pending", "Running"), st
    for k in ("exitCode", "stdout", "stderr", "duration", "startTime", "completionTime"):
        assert k in st, k
    assert isinstance(t["attempts"], int) and isinstance(t["steps"], list), t
    assert "errorClass" in t, t
    by[t["metadata"]["name"]] = t
r = by["retry-failed"]
assert (r["status"]["state"], r["status"]["exitCode"], r["attempts"], r["errorClass"]) == \
    ("Failed", 1, 3, "failed"), r
n = by["no-retry-on-failed"]
assert (n["status"]["exitCode"], n["attempts"]) == (7, 1), n
m = by["metrics"]
assert m["metrics"]["score"] == 0.75 and m["metrics"]["label"] == "abc", m
t = by["tmpl-alpha"]
assert t["status"]["state"] == "Succeeded" and [s["name"] for s in t["steps"]] == \
    ["patch", "show", "job-env-only"], t
print("ok")
EOF
)" ok

echo "# query is read-only"
before=$(sql "$DB" "SELECT count(*) FROM jobs")
version=$(sql "$DB" "PRAGMA user_version")
runner query --db "$DB" "SELECT count(*) FROM jobs"
check_eq "query SELECT count(*) FROM jobs exits 0" "$RC" 0
check_match "query SELECT prints the count" "$(cat "$TMP/out")" "(^|[^0-9])$before([^0-9]|$)"
runner query --db "$DB" --format csv "SELECT count(*) AS n FROM jobs"
check_eq "query --format csv (CRLF per RFC 4180)" "$(tr -d '\r' <"$TMP/out")" $'n\n'"$before"
# SQL that starts with a comment reads as an option, as it did with getopt: after -- it is SQL.
runner query --db "$DB" $'-- how many\nSELECT count(*) FROM jobs'
check_eq "query '-- ...' is an unknown option (exit 2)" "$RC:$(head -n 1 "$TMP/err")" \
	"2:arl-batch query: unknown option '-- how many"
runner query --db "$DB" --format csv -- $'-- how many\nSELECT count(*) AS n FROM jobs'
check_eq "query -- '-- ...': the SQL, comment and all" "$RC:$(tr -d '\r' <"$TMP/out")" \
	"0:n"$'\n'"$before"
for q in "DELETE FROM jobs" \
	"ATTACH DATABASE '$D/other.db' AS other" \
	"UPDATE jobs SET state = 'Failed'" \
	"WITH x AS (SELECT 1) DELETE FROM jobs" \
	"SELECT 1; DELETE FROM jobs" \
	"DROP TABLE metrics" \
	"PRAGMA user_version = 9" \
	"VACUUM INTO '$D/copy.db'"; do
	runner query --db "$DB" "$q"
	if [ "$RC" -ne 0 ]; then ok "query refuses: $q (exit $RC)"; else ko "query refuses: $q" "it exited 0"; fi
done
check_eq "the database is unchanged (jobs count, user_version, tables)" \
	"$(sql "$DB" "SELECT count(*), (SELECT count(*) FROM metrics) > 0 FROM jobs; PRAGMA user_version")" \
	"$before|1"$'\n'"$version"
check "ATTACH and VACUUM INTO created no file" test ! -e "$D/other.db" -a ! -e "$D/copy.db"

echo "# query calls only plainly read-only functions (issue 12)"
# fts3_tokenizer() leaks a pointer and registers tokenizers; the others load code, write the
# log or hand out an API pointer. A function not on the allowlist is refused by name.
for q in "SELECT fts3_tokenizer('simple')" "SELECT hex(FTS3_TOKENIZER('porter'))" \
	"SELECT load_extension('/nonexistent')" "SELECT sqlite_log(1, 'x')" "SELECT fts5(NULL)" \
	"SELECT 1 WHERE fts3_tokenizer('simple') IS NULL"; do
	runner query --db "$DB" "$q"
	check_eq "query refuses: $q" "$RC" 2
	check_match "query names the function: $q" "$(cat "$TMP/err")" "read-only query: function '[a-z0-9_]+' is not allowed"
done
runner query --db "$DB" --format csv "SELECT count(*), max(length(key)) > 0, json_object('n', count(*)) ->> 'n', \
	date('2026-01-02'), round(abs(-1.25), 1), row_number() OVER () FROM jobs"
check_eq "query allows the ordinary functions (aggregate, JSON, date, math, window)" \
	"$(tr -d '\r' <"$TMP/out" | tail -n 1)" "$before,1,$before,2026-01-02,1.3,1"

echo "# the database is its owner's alone"
# It holds every step's output; an isolation: none step (another uid as root) must not read it.
check_eq "a new database, its -wal and -shm are mode 600" \
	"$(stat -c %a "$DB" "$DB-wal" "$DB-shm" 2>/dev/null | sort -u)" "600"

summary
