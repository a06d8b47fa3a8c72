#!/usr/bin/env bash
# Nothing is left behind on the kubernetes backend when a run is cut short: SIGINT while
# steps run (exit 130, jobs Cancelled), --deadline (exit 4), and an attempt's timeout that
# the runner enforces itself on a step the operator would let run on.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --pool sandbox=4 --grpc-timeout 0

long_jobs "$TMP/long.yaml" 'sandbox: {backend: kubernetes, replicas: 4}' 60s 30

# running_ge N: N or more Tasks are Running on the server.
running_ge() {
	[ "$(fake_get /_fake/state | grep -o '"state": *"Running"' | wc -l)" -ge "$1" ]
}
# wait_for_running N: until N Tasks are Running (a bound of 120 s for a hang, not a timing).
wait_for_running() {
	wait_until 120 "$1 Running Tasks" running_ge "$1"
}

echo "# SIGINT while steps run"
"$ARL_BATCH" run --progress none --db "$TMP/int.db" --kubeconfig "$KC" "$TMP/long.yaml" \
	>"$TMP/out" 2>"$TMP/err" &
pid=$!
check "four sleep steps are running" wait_for_running 4
kill -INT "$pid"
wait_pid 300 "$pid"
check_eq "run exits 130" "$RC" 130
# Promptly: it cut the steps rather than waiting for their `sleep 30` (no wall-clock window).
check_le "it stopped the steps before their sleep 30 ended (longest, ms)" \
	"$(sql "$TMP/int.db" "SELECT ifnull(max(duration_ms), 30000) FROM steps WHERE name = 'sleep'")" 29999
check_eq "every job Cancelled" \
	"$(sql "$TMP/int.db" "SELECT group_concat(DISTINCT state) FROM jobs")" Cancelled
check_eq "the interrupted steps are recorded as Failed (cancelled), not left Running" \
	"$(sql "$TMP/int.db" "SELECT count(*) FROM steps WHERE name = 'sleep' AND state = 'Failed'")" 4
check_eq "no Task left on the server" "$(fake_count tasks)" 0
check_eq "no Sandbox left on the server" "$(fake_count sandboxes)" 0

echo "# SIGINT while a sandbox waits for a pod: Cancelled, not an infra failure"
fake_post /_fake/faults "no-idle=starved"
runner pool create starved --image python:3.9-slim --sidecar-image arl-sidecar:latest \
	--replicas 1 --kubeconfig "$KC"
cat >"$TMP/starved.yaml" <<'EOF'
version: 1
pools:
  starved: {backend: kubernetes, replicas: 2}
jobs:
  - {name: a, timeout: 60s, steps: [{type: Command, command: ["true"]}]}
  - {name: b, timeout: 60s, steps: [{type: Command, command: ["true"]}]}
EOF
"$ARL_BATCH" run --progress none --db "$TMP/alloc.db" --kubeconfig "$KC" "$TMP/starved.yaml" \
	>"$TMP/out" 2>"$TMP/err" &
pid=$!
sandboxes_ge() { [ "$(fake_count sandboxes)" -ge "$1" ]; }
check "both Sandboxes were created (and wait for a pod)" wait_until 120 "2 Sandboxes" sandboxes_ge 2
kill -INT "$pid"
wait_pid 300 "$pid"
check_eq "run exits 130" "$RC" 130
check_eq "both jobs Cancelled (not infra)" \
	"$(sql "$TMP/alloc.db" "SELECT group_concat(state || ':' || ifnull(error_class, '')) FROM jobs")" \
	"Cancelled:cancelled,Cancelled:cancelled"
check_eq "their Sandboxes were deleted" "$(fake_count sandboxes)" 0
fake_post /_fake/faults ""

echo "# --deadline"
runner run --progress none --db "$TMP/dl.db" --deadline 3s --kubeconfig "$KC" "$TMP/long.yaml"
check_eq "run exits 4" "$RC" 4
check_eq "every job Cancelled" \
	"$(sql "$TMP/dl.db" "SELECT group_concat(DISTINCT state) FROM jobs")" Cancelled
check_eq "nothing left on the server" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

echo "# the attempt's timeout, enforced by the runner"
cat >"$TMP/attempt.yaml" <<'EOF'
version: 1
pools:
  sandbox: {backend: kubernetes}
jobs:
  - name: too-slow
    timeout: 3s
    retries: 1
    backoff: 100ms
    steps:
      - {name: sleep, type: Command, command: [sleep, "30"]}
EOF
runner run --progress none --db "$TMP/to.db" --kubeconfig "$KC" "$TMP/attempt.yaml"
check_eq "run exits 1 (a timeout is the job's failure)" "$RC" 1
check_eq "two attempts, both timeout" \
	"$(sql "$TMP/to.db" "SELECT group_concat(number || error_class) FROM attempts")" "1timeout,2timeout"
# Near its limit: from its own records, not a wall-clock window (a busy machine is slow to kill).
read -r step_min step_max <<<"$(sql "$TMP/to.db" "SELECT min(duration_ms) || ' ' || max(duration_ms) FROM steps WHERE name = 'sleep'")"
check_ge "each attempt's step ran until the 3 s limit (shortest, ms)" "${step_min:-0}" 2950
check_le "... and was cut before its sleep 30 ended (longest, ms)" "${step_max:-30000}" 29999
check_eq "nothing left on the server" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

echo "# the operator's gRPC deadline (HTTP_CLIENT_TIMEOUT) cuts a longer step: a timeout"
stop_fake
start_fake --pool sandbox=1 --grpc-timeout 1
cat >"$TMP/grpc.yaml" <<'EOF'
version: 1
pools:
  sandbox: {backend: kubernetes}
jobs:
  - name: cut
    timeout: 20s
    steps:
      - {name: long, type: Command, timeout: 10s, command: [sh, -c, "echo lost; sleep 3"]}
EOF
runner run --progress none --db "$TMP/grpc.db" --kubeconfig "$KC" "$TMP/grpc.yaml"
check_eq "run exits 1" "$RC" 1
check_eq "the step failed with exit 1, class timeout (retried by default, 1 attempt here)" \
	"$(sql "$TMP/grpc.db" "SELECT s.exit_code || '|' || a.error_class FROM steps s
	                       JOIN attempts a ON a.id = s.attempt_id")" "1|timeout"
check_match "its stderr is the operator's DeadlineExceeded" \
	"$(sql "$TMP/grpc.db" "SELECT stderr FROM steps")" "DeadlineExceeded"

summary
