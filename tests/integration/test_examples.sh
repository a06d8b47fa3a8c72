#!/usr/bin/env bash
# Runs every example of jobs/ into a fresh database and checks that each job ended the way its
# file's comment says, that the run's counters agree with its jobs, and that validate and
# --dry-run accept them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 python3
make_tmp

DB=$TMP/examples.db
# An example marked '# Needs: one container per sandbox' runs only in test_pod_semantics.sh
# (on both backends) until the local backend has what it needs; then it joins here.
mapfile -t JOBS < <(grep -L -e '^# Needs: one container per sandbox' -e '^# Needs: a gateway' "$SOURCE_DIR"/jobs/*.yaml)
NJOBFILES=${#JOBS[@]}

# 12-images runs from the busybox test image: loaded as its comment says, in a store of our
# own (where, as root, the sandbox uid may pass).
chmod 0755 "$TMP"
export ARL_BATCH_IMAGES=$TMP/images
for tag in 1 2; do
	python3 "$SOURCE_DIR/tests/images/build_busybox.py" "$TMP/bb$tag" --tag "arl-test/busybox:$tag" >/dev/null
	runner image load "$TMP/bb$tag/docker.tar"
	check_eq "the busybox test image loads as arl-test/busybox:$tag" "$RC" 0
done

echo "# validate"
runner validate "${JOBS[@]}"
check_eq "validate jobs/*.yaml exits 0" "$RC" 0
check_eq "validate prints one line per file" "$(grep -c ': ok' "$TMP/out" || true)" "$NJOBFILES"

echo "# run --dry-run"
runner run --dry-run --progress none --db "$TMP/dry.db" "${JOBS[@]}"
check_eq "run --dry-run exits 0" "$RC" 0
check_eq "--dry-run prints a header and one line per job (24 jobs)" "$(wc -l <"$TMP/out")" 25
check_match "--dry-run header names the columns" "$(head -n1 "$TMP/out")" '^KEY +POOL'
for key in 01-basic/basic 05-error-handling/flaky 06-timeout/step-timeout \
	09-swebench/swe-demo__calc-101 09-swebench/swe-demo__calc-105; do
	check "--dry-run lists $key" grep -q "^$key " "$TMP/out"
done
if [ -f "$TMP/dry.db" ]; then
	check_eq "--dry-run records no run" "$(sql "$TMP/dry.db" 'SELECT count(*) FROM runs')" 0
else
	ok "--dry-run creates no database"
fi

echo "# run jobs/*.yaml"
runner run --progress plain --db "$DB" "${JOBS[@]}"
check_eq "run exits 1 (some examples fail on purpose)" "$RC" 1
check_match "progress lines go to stderr" "$(cat "$TMP/err")" '\[24/24\]'
check_eq "stdout of run is empty" "$(cat "$TMP/out")" ""

# state|attempts|exit_code|error_class of one job, by key.
job() {
	sql "$DB" "SELECT state, attempts, ifnull(exit_code, ''), ifnull(error_class, '')
	           FROM jobs WHERE key = '$1'"
}
jobid() {
	sql "$DB" "SELECT id FROM jobs WHERE key = '$1'"
}
metric() {
	sql "$DB" "SELECT value FROM metrics WHERE job_id = $(jobid "$1") AND name = '$2'"
}
# The steps of a job's attempt N as idx:name:phase:state, one per line.
steps_of() {
	sql "$DB" "SELECT s.idx || ':' || s.name || ':' || s.phase || ':' || s.state
	           FROM steps s JOIN attempts a ON a.id = s.attempt_id
	           WHERE a.job_id = $(jobid "$1") AND a.number = $2 ORDER BY s.idx"
}

echo "# the run row"
check_eq "one run row" "$(sql "$DB" 'SELECT count(*) FROM runs')" 1
check_eq "run status failed, exit code 1, finished" \
	"$(sql "$DB" 'SELECT status, exit_code, finished_at IS NOT NULL FROM runs')" "failed|1|1"
check_eq "run counters: 24 total, 17 succeeded, 7 failed, 0 skipped, 0 cancelled" \
	"$(sql "$DB" 'SELECT jobs_total, jobs_succeeded, jobs_failed, jobs_skipped, jobs_cancelled FROM runs')" \
	"24|17|7|0|0"
check_eq "run counters agree with the jobs table" \
	"$(sql "$DB" "SELECT jobs_total = (SELECT count(*) FROM jobs WHERE run_id = r.id)
	   AND jobs_succeeded = (SELECT count(*) FROM jobs WHERE run_id = r.id AND state = 'Succeeded')
	   AND jobs_failed = (SELECT count(*) FROM jobs WHERE run_id = r.id AND state = 'Failed')
	   AND jobs_skipped = (SELECT count(*) FROM jobs WHERE run_id = r.id AND state = 'Skipped')
	   AND jobs_cancelled = (SELECT count(*) FROM jobs WHERE run_id = r.id AND state = 'Cancelled')
	   FROM runs r")" 1
check_eq "run files lists the $NJOBFILES job files" \
	"$(sql "$DB" 'SELECT json_array_length(files) FROM runs')" "$NJOBFILES"
check_eq "no job left Pending or Running" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE state IN ('Pending', 'Running')")" 0
check_eq "every job has started_at, finished_at and duration_ms" \
	"$(sql "$DB" 'SELECT count(*) FROM jobs WHERE started_at IS NULL OR finished_at IS NULL OR duration_ms IS NULL')" 0
check_eq "jobs.attempts equals its attempts rows, numbered 1..N" \
	"$(sql "$DB" 'SELECT count(*) FROM jobs j WHERE j.attempts != (SELECT count(*) FROM attempts WHERE job_id = j.id)
	   OR j.attempts != (SELECT ifnull(max(number), 0) FROM attempts WHERE job_id = j.id)')" 0
check_eq "every key is FILE_STEM/JOB_NAME" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE key NOT LIKE '%/' || name")" 0

echo "# 01..04, 07, 10: succeed"
for key in 01-basic/basic 02-pipeline/pipeline 03-env/env 04-workdir/workdir 07-session/session \
	10-service/service; do
	check_eq "$key Succeeded in 1 attempt, exit 0" "$(job $key)" "Succeeded|1|0|"
done
for key in 12-images/in-image 12-images/instance-one 12-images/instance-two; do
	check_eq "$key Succeeded in 1 attempt, exit 0" "$(job $key)" "Succeeded|1|0|"
done
check_eq "12-images: the image's User, WorkingDir, Env and files" \
	"$(sql "$DB" "SELECT stdout FROM steps WHERE name = 'whoami'")" "app
/home/app
from-image
hello from the image"
check_eq "01-basic: count_lines printed 3" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'count_lines'")" 3
check_eq "01-basic: FilePatch prints 'File created: PATH'" \
	"$(sql "$DB" "SELECT stdout FROM steps WHERE name = 'write_config'")" "File created: /workspace/config.txt"
check_eq "02-pipeline: metrics count=5 total=150 mean=30" \
	"$(metric 02-pipeline/pipeline count) $(metric 02-pipeline/pipeline total) $(metric 02-pipeline/pipeline mean)" \
	"5.0 150.0 30.0"
check_match "03-env: step env over job env, numbers and booleans as text" \
	"$(sql "$DB" "SELECT stdout FROM steps WHERE name = 'step_env'")" \
	'MY_VAR=hello API_KEY=secret-123 APP_ENV=batch WORKERS=4 VERBOSE=true'
check_eq "04-workdir: relative workDir" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'run_relative'")" "running in /workspace/project"
check_eq "07-session: counter went 1, 2, 3" \
	"$(sql "$DB" "SELECT group_concat(rtrim(stdout, char(10)), ',') FROM (SELECT stdout FROM steps WHERE name LIKE 'count__' ORDER BY idx)")" \
	"count = 1,count = 2,count = 3"

echo "# 05-error-handling"
check_eq "exit-42: Failed, exit 42, class failed, not retried (default retryOn)" \
	"$(job 05-error-handling/exit-42)" "Failed|1|42|failed"
check_eq "exit-42: its step after the failing one is Skipped" \
	"$(steps_of 05-error-handling/exit-42 1)" $'0:fail:main:Failed\n1:never_runs:main:Skipped'
check_eq "exit-42: stdout and stderr captured" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) || '/' || rtrim(stderr, char(10)) FROM steps WHERE name = 'fail'")" \
	"about to fail/something went wrong"
check_match "missing-binary: Failed, class failed, non-zero exit" \
	"$(job 05-error-handling/missing-binary)" '^Failed\|1\|[1-9][0-9]*\|failed$'
check_eq "always-fails: Failed after retries+1 = 3 attempts" \
	"$(job 05-error-handling/always-fails)" "Failed|3|1|failed"
check_eq "always-fails: attempts rows 1,2,3 all Failed" \
	"$(sql "$DB" "SELECT group_concat(number || state, ',') FROM (SELECT number, state FROM attempts
	   WHERE job_id = $(jobid 05-error-handling/always-fails) ORDER BY number)")" "1Failed,2Failed,3Failed"
check_eq "always-fails: {{ attempt }} rendered per attempt" \
	"$(sql "$DB" "SELECT group_concat(rtrim(s.stdout, char(10)), ',') FROM (SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id
	   WHERE a.job_id = $(jobid 05-error-handling/always-fails) ORDER BY a.number) s")" \
	"attempt 1,attempt 2,attempt 3"
check_eq "flaky: Succeeded on its 3rd attempt" "$(job 05-error-handling/flaky)" "Succeeded|3|0|"
check_eq "flaky: attempts rows 1 Failed, 2 Failed, 3 Succeeded" \
	"$(sql "$DB" "SELECT group_concat(number || state, ',') FROM (SELECT number, state FROM attempts
	   WHERE job_id = $(jobid 05-error-handling/flaky) ORDER BY number)")" "1Failed,2Failed,3Succeeded"
check_eq "flaky: each retry waited for its backoff (100ms, then 200ms)" \
	"$(sql "$DB" "SELECT count(*) FROM attempts a JOIN attempts b ON b.job_id = a.job_id AND b.number = a.number + 1
	   WHERE a.job_id = $(jobid 05-error-handling/flaky)
	   AND (julianday(b.started_at) - julianday(a.finished_at)) * 86400000.0 >= 100 * (1 << (a.number - 1)) - 2")" 2

echo "# 06-timeout"
check_eq "long-running: Succeeded" "$(job 06-timeout/long-running | cut -d'|' -f1,4)" "Succeeded|"
check_eq "step-timeout: Failed with class timeout" "$(job 06-timeout/step-timeout | cut -d'|' -f1,2,4)" "Failed|1|timeout"
# No upper bound in wall-clock terms (a busy machine is slow to kill): killed by the timer's
# SIGTERM (143), not by the escalation, and before `sleep 30` could end.
step_ms=$(sql "$DB" "SELECT duration_ms FROM steps WHERE name = 'sleeps_too_long'")
check_eq "step-timeout: killed by SIGTERM at its limit (exit 143)" \
	"$(sql "$DB" "SELECT exit_code FROM steps WHERE name = 'sleeps_too_long'")" 143
check_le "step-timeout: killed before sleep 30 ends (ms)" "$step_ms" 29999
check_ge "step-timeout: not before its 1 s limit (ms)" "$step_ms" 950
check_eq "step-timeout: output before the kill is kept" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'sleeps_too_long'")" "sleeping"
check_eq "attempt-timeout: Failed with class timeout" \
	"$(job 06-timeout/attempt-timeout | cut -d'|' -f1,4)" "Failed|timeout"
check_eq "attempt-timeout: first step ran, second hit the attempt's limit" \
	"$(steps_of 06-timeout/attempt-timeout 1)" $'0:first:main:Succeeded\n1:second:main:Failed'
att_ms=$(sql "$DB" "SELECT duration_ms FROM jobs WHERE key = '06-timeout/attempt-timeout'")
check_ge "attempt-timeout: not before its 3 s limit (ms)" "$att_ms" 2950
# `sleep 2.5` alone fits in 3 s: it was cut short because the first step's time counted.
check_eq "attempt-timeout: the second step was killed by SIGTERM (exit 143)" \
	"$(sql "$DB" "SELECT exit_code FROM steps WHERE name = 'second'")" 143
check_le "attempt-timeout: ... before its sleep 2.5 ended (ms)" \
	"$(sql "$DB" "SELECT duration_ms FROM steps WHERE name = 'second'")" 2499

echo "# 08-callbacks"
check_eq "tests-pass: Succeeded" "$(job 08-callbacks/tests-pass)" "Succeeded|1|0|"
check_eq "tests-pass: main steps, then on_task_success, then on_task_complete" \
	"$(steps_of 08-callbacks/tests-pass 1)" \
	$'0:write_test:main:Succeeded\n1:write_cleanup:main:Succeeded\n2:test:main:Succeeded\n3:report_success:callback:Succeeded\n4:show_report:callback:Succeeded\n5:callback_script:callback:Succeeded'
check_eq "tests-pass: {{ job.name }} rendered in the callback" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'show_report'")" "# tests-pass: passed"
check_eq "tests-fail: Failed, exit 3, class failed" "$(job 08-callbacks/tests-fail)" "Failed|1|3|failed"
check_eq "tests-fail: main steps, then on_task_failure, then on_task_complete" \
	"$(steps_of 08-callbacks/tests-fail 1)" \
	$'0:write_test:main:Succeeded\n1:write_cleanup:main:Succeeded\n2:test:main:Failed\n3:collect_log:callback:Succeeded\n4:callback_script:callback:Succeeded'
check_match "tests-fail: on_task_failure collected the log" \
	"$(sql "$DB" "SELECT stdout FROM steps WHERE name = 'collect_log'")" 'FAIL: test_everything'
check_eq "callbacks recorded with phase='callback' (5 rows)" \
	"$(sql "$DB" "SELECT count(*) FROM steps WHERE phase = 'callback'")" 5

echo "# 09-swebench"
check_eq "swebench: 4 Succeeded, 1 Failed" \
	"$(sql "$DB" "SELECT group_concat(state || ':' || n, ',') FROM (SELECT state, count(*) n FROM jobs
	   WHERE key LIKE '09-swebench/%' GROUP BY state ORDER BY state)")" "Failed:1,Succeeded:4"
check_eq "swebench: demo__calc-105 is the one that failed (class failed)" \
	"$(job 09-swebench/swe-demo__calc-105 | cut -d'|' -f1,4)" "Failed|failed"
for n in 101 102 103 104; do
	check_eq "swebench: swe-demo__calc-$n resolved=1 in metrics" \
		"$(metric 09-swebench/swe-demo__calc-$n resolved)" "1.0"
done
check_eq "swebench: swe-demo__calc-105 stores its metrics line too (resolved=0)" \
	"$(metric 09-swebench/swe-demo__calc-105 resolved)" "0.0"
check_eq "swebench: all 5 jobs have fail_to_pass_total and pass_to_pass_total metrics" \
	"$(sql "$DB" "SELECT count(*) FROM jobs j WHERE key LIKE '09-swebench/%' AND
	   (SELECT count(*) FROM metrics WHERE job_id = j.id AND name IN ('fail_to_pass_total', 'pass_to_pass_total')) = 2")" 5
check_eq "swebench: item JSON and templated labels stored" \
	"$(sql "$DB" "SELECT json_extract(item, '$.instance_id') || ' ' || (json_extract(labels, '$.repo') IS NOT NULL)
	   FROM jobs WHERE key = '09-swebench/swe-demo__calc-103'")" "demo__calc-103 1"
check_eq "swebench: the workspace was copied into the sandbox (patch applied)" \
	"$(sql "$DB" "SELECT count(*) FROM steps WHERE name = 'apply_patch' AND state = 'Succeeded'")" 5
check_eq "swebench: each job keeps its patch and its test log as artifacts" \
	"$(sql "$DB" "SELECT count(*) FROM artifacts x JOIN attempts a ON a.id = x.attempt_id
	   JOIN jobs j ON j.id = a.job_id WHERE j.key LIKE '09-swebench/%' AND x.sha256 IS NOT NULL
	   AND x.path IN ('/workspace/fix.patch', '/workspace/test.log')")" 10
check_match "swebench: the failed job's test log says why" \
	"$("$ARL_BATCH" artifacts 09-swebench/swe-demo__calc-105 --db "$DB" -o "$TMP/swe-out" >/dev/null &&
	   cat "$TMP/swe-out/workspace/test.log")" "demo__calc-105: NOT resolved"

echo "# invariants over all steps"
check_eq "every main step after a failing main step is Skipped" \
	"$(sql "$DB" "SELECT count(*) FROM steps s2 JOIN steps s1 ON s1.attempt_id = s2.attempt_id
	   AND s1.phase = 'main' AND s1.state = 'Failed' AND s1.idx < s2.idx
	   WHERE s2.phase = 'main' AND s2.state != 'Skipped'")" 0
check_eq "Skipped steps have no exit code and no start time" \
	"$(sql "$DB" "SELECT count(*) FROM steps WHERE state = 'Skipped' AND (exit_code IS NOT NULL OR started_at IS NOT NULL)")" 0
check_eq "idx is 0..n-1 within each attempt" \
	"$(sql "$DB" 'SELECT count(*) FROM (SELECT attempt_id, count(*) c, max(idx) m FROM steps GROUP BY attempt_id) WHERE m != c - 1')" 0
check_eq "callbacks come after every main step" \
	"$(sql "$DB" "SELECT count(*) FROM steps c JOIN steps m ON m.attempt_id = c.attempt_id
	   WHERE c.phase = 'callback' AND m.phase = 'main' AND m.idx > c.idx")" 0
check_eq "metrics only for jobs with metrics: json (02-pipeline, 09-swebench)" \
	"$(sql "$DB" "SELECT count(DISTINCT j.key) FROM metrics m JOIN jobs j ON j.id = m.job_id
	   WHERE j.key NOT LIKE '09-swebench/%' AND j.key != '02-pipeline/pipeline'")" 0

echo "# sandboxes"
kept=$(sql "$DB" "SELECT a.sandbox FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.key = '07-session/session'")
left=$(find "$DB.sandboxes" -mindepth 1 -maxdepth 1 ! -name '.*' -printf '%f\n' 2>/dev/null | sort || true)
check_eq "only the keepAlive sandbox (07-session) is left in the state dir" "$left" "keep-$kept"

echo "# read commands"
runner results --db "$DB" --format json
check_eq "results --format json exits 0" "$RC" 0
check_eq "results json: 24 Task-shaped objects whose states match the db" \
	"$(python3 - "$TMP/out" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a, list), type(a)
print(len(a), sorted({t["status"]["state"] for t in a}),
      {t["metadata"]["name"]: t["status"]["exitCode"] for t in a}["exit-42"])
EOF
)" "24 ['Failed', 'Succeeded'] 42"
runner show --db "$DB" 05-error-handling/exit-42
check_eq "show exits 0" "$RC" 0
check_match "show prints the step's stderr and the skipped step" "$(cat "$TMP/out")" 'something went wrong.*never_runs'
runner runs --db "$DB"
check_match "runs lists the run as failed" "$(cat "$TMP/out")" ' 1 .* failed '

echo "# a job file named by a relative path"
runner_rel() {
	set +e
	(cd "$SOURCE_DIR" && "$ARL_BATCH" run --progress none --db "$TMP/rel.db" jobs/09-swebench.yaml) \
		>"$TMP/out" 2>"$TMP/err"
	RC=$?
	set -e
}
runner_rel
check_eq "run jobs/09-swebench.yaml from the repo root exits 1 (pool workspace resolved)" "$RC" 1
check_eq "... with 4 Succeeded" \
	"$(sql "$TMP/rel.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'" 2>/dev/null || echo none)" 4

summary
