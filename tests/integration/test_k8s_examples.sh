#!/usr/bin/env bash
# Every example of jobs/ on the kubernetes backend, against the fake ARL API server: the
# same job states, classes, exit codes, metrics and step output as the same files on the
# local backend, and afterwards no Sandbox or Task left on the server but 07-session's
# (keepAlive). Also: the requests one job costs, from the server's request log.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --pool sandbox=4 --pool swebench=3 \
	--pool-seed "swebench=$SOURCE_DIR/jobs/fixtures/calc"

# An example marked '# Needs: one container per sandbox' runs only in test_pod_semantics.sh
# (on both backends) until the local backend has what it needs; then it joins here.
# 12-images names a job's own image, which a WarmPool cannot run (validate refuses it there).
mapfile -t JOBS < <(grep -L -e '^# Needs: one container per sandbox' \
	-e '^# Needs: the busybox test image' -e '^# Needs: a gateway' "$SOURCE_DIR"/jobs/*.yaml)
K8S=$TMP/k8s.db
LOCAL=$TMP/local.db

echo "# run jobs/*.yaml on both backends"
runner run --progress plain --db "$LOCAL" "${JOBS[@]}"
check_eq "local run exits 1 (some examples fail on purpose)" "$RC" 1
runner run --progress plain --db "$K8S" --backend kubernetes --kubeconfig "$KC" "${JOBS[@]}"
check_eq "kubernetes run exits 1, as the local one" "$RC" 1
if [ "$RC" != 1 ]; then
	sed 's/^/       /' "$TMP/err" | tail -n 30
fi
check_match "progress lines on stderr" "$(cat "$TMP/err")" '\[21/21\]'
check_match "the pool's workspace: is reported as local-only" "$(cat "$TMP/err")" \
	"pool 'swebench': 'workspace' is a local-backend setting"

# One line per job: key|state|attempts|class|exit code. A timed-out job's code is 'killed'
# (-1 on ARL, 128+signal locally); a program that cannot be started is 'nonzero' (the
# sidecar says exit 1 "failed to start command", a shell 127).
jobs_of() {
	sql "$1" "SELECT key || '|' || state || '|' || attempts || '|' || ifnull(error_class, '') ||
	          '|' || CASE WHEN error_class = 'timeout' THEN 'killed'
	                      WHEN key = '05-error-handling/missing-binary' THEN 'nonzero'
	                      ELSE ifnull(exit_code, '') END
	          FROM jobs ORDER BY key"
}
# key/attempt/step|state|exit|stdout of every step that ran to its end (timeouts aside).
# The sidecar ends every line it captures with a newline, so a trailing one is dropped, and
# times printed by the steps (ls -l, unittest, test_seconds) are masked.
steps_of() {
	sql "$1" "SELECT j.key || '/' || a.number || '/' || s.idx || ':' || s.name || '|' || s.state ||
	          '|' || CASE WHEN j.key = '05-error-handling/missing-binary' THEN 'nonzero'
	                      ELSE ifnull(s.exit_code, '') END ||
	          '|' || replace(rtrim(ifnull(s.stdout, ''), char(10)), char(10), '\\n')
	          FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id
	          WHERE ifnull(a.error_class, '') != 'timeout' AND s.state != 'Skipped'
	          ORDER BY j.key, a.number, s.idx" |
		sed -E 's/[A-Z][a-z]{2} +[0-9]+ +[0-9]{2}:[0-9]{2}/DATE/g;
		        s/(Ran [0-9]+ tests?) in [0-9.]+s/\1 in Xs/g;
		        s/"test_seconds": [0-9.e-]+/"test_seconds": X/g'
}
metrics_of() {
	sql "$1" "SELECT j.key || '|' || m.name || '|' || m.value FROM metrics m
	          JOIN jobs j ON j.id = m.job_id WHERE m.name != 'test_seconds' ORDER BY 1"
}

echo "# the same outcomes"
check_eq "jobs: states, attempts, classes and exit codes match the local run" \
	"$(jobs_of "$K8S")" "$(jobs_of "$LOCAL")"
check_eq "steps: states, exit codes and stdout match the local run" \
	"$(steps_of "$K8S")" "$(steps_of "$LOCAL")"
check_eq "metrics match the local run" "$(metrics_of "$K8S")" "$(metrics_of "$LOCAL")"
check_eq "step-timeout: killed by the operator's timer (exit -1) with its output kept" \
	"$(sql "$K8S" "SELECT exit_code || '|' || rtrim(stdout, char(10)) FROM steps WHERE name = 'sleeps_too_long'")" \
	"-1|sleeping"
step_ms=$(sql "$K8S" "SELECT duration_ms FROM steps WHERE name = 'sleeps_too_long'")
check_le "step-timeout: killed before sleep 30 ends (ms)" "$step_ms" 29999
check_ge "step-timeout: not less than its 1 s limit (ms)" "$step_ms" 950
check_eq "attempt-timeout: the second step hit the attempt's limit" \
	"$(sql "$K8S" "SELECT s.state FROM steps s WHERE s.name = 'second'")" "Failed"
check_eq "every attempt names its sandbox (a DNS label of at most 52 characters)" \
	"$(sql "$K8S" "SELECT count(*) FROM attempts WHERE sandbox IS NULL OR length(sandbox) > 52
	               OR sandbox NOT GLOB 'arl-[0-9]*-*'")" 0

echo "# nothing left behind"
check_eq "no Task left on the server" "$(fake_count tasks)" 0
check_eq "no Sandbox left but 07-session's (keepAlive)" \
	"$(fake_count sandboxes 07-session.session)" 0
check_eq "07-session's sandbox was kept" "$(fake_count sandboxes)" 1
check_match "the kept sandbox is reported with how to delete it" "$(cat "$TMP/err")" \
	"keeping sandbox 'arl-[0-9a-z-]+' in namespace 'default' \\(keepAlive\\)"

echo "# requests per job (server's request log)"
write_many "$TMP/one.yaml" 20 sandbox 4 1
write_many "$TMP/three.yaml" 20 sandbox 4 3
fake_delete /_fake/requests
runner run --progress none --db "$TMP/one.db" --kubeconfig "$KC" "$TMP/one.yaml"
check_eq "20 one-step jobs succeed" "$RC|$(sql "$TMP/one.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")" "0|20"
one=$(($(fake_requests create sandboxes) + $(fake_requests delete sandboxes) +
	$(fake_requests create tasks) + $(fake_requests delete tasks) +
	$(fake_requests get sandboxes) + $(fake_requests get tasks) +
	$(fake_requests list sandboxes) + $(fake_requests list tasks)))
gets=$(($(fake_requests get sandboxes) + $(fake_requests get tasks)))
watches=$(($(fake_requests watch sandboxes) + $(fake_requests watch tasks)))
echo "       one-step jobs: $one requests for 20 jobs (+ $watches watch streams)"
check_eq "no GET of a Sandbox or Task: readiness and results come from the watches" "$gets" 0
check_le "a one-step job costs at most 4 requests (+ per run 2 lists for the watches, 2 for the gc sweep)" "$one" $((20 * 4 + 4))
check_le "2 watch streams for the whole run (one per kind)" "$watches" 2
fake_delete /_fake/requests
runner run --progress none --db "$TMP/three.db" --kubeconfig "$KC" "$TMP/three.yaml"
check_eq "20 three-step jobs succeed" "$RC|$(sql "$TMP/three.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")" "0|20"
three=$(($(fake_requests create sandboxes) + $(fake_requests delete sandboxes) +
	$(fake_requests create tasks) + $(fake_requests delete tasks) +
	$(fake_requests get sandboxes) + $(fake_requests get tasks) +
	$(fake_requests list sandboxes) + $(fake_requests list tasks)))
echo "       three-step jobs: $three requests for 20 jobs"
check_le "each step adds 2 requests (create and delete its Task)" "$three" $((20 * (2 + 3 * 2) + 4))
check_eq "still nothing left behind" "$(fake_count tasks)|$(fake_count sandboxes 07-session.session)" "0|0"

summary
