#!/usr/bin/env bash
# The kubernetes backend under an unreliable API server: 200 jobs with 10% 5xx, 5% 429 (with
# Retry-After), connection resets (some after the request was carried out, so a retried
# create meets 409 AlreadyExists), watch streams cut every few seconds or answered 410 Gone,
# and Sandboxes that go Failed. Every job must still finish with its own correct output,
# infrastructure failures must be retried (never recorded as the job's failure), and nothing
# may be left on the server.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --pool sandbox=20 --seed 7 \
	--faults "500=0.05,503=0.05,429=0.05,reset=0.02:after=0.5,watch-cut=3s,watch-410=0.2"

write_many "$TMP/many.yaml" 200 sandbox 20 2
DB=$TMP/faults.db

echo "# 200 jobs through 5xx, 429, resets, cut and expired watches"
start=$(now_ms)
runner run --progress none --db "$DB" --kubeconfig "$KC" --kube-qps 500 --kube-burst 500 \
	"$TMP/many.yaml"
echo "       took $(($(now_ms) - start)) ms"
check_eq "run exits 0" "$RC" 0
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
check_eq "200 jobs Succeeded" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")" 200
check_eq "every job printed its own number" \
	"$(sql "$DB" "SELECT count(*) FROM steps s JOIN attempts a ON a.id = s.attempt_id
	              JOIN jobs j ON j.id = a.job_id
	              WHERE s.name = 'show' AND s.state = 'Succeeded'
	              AND s.stdout = substr(j.name, 5) || char(10)")" 200
check_eq "no attempt failed for a reason other than infrastructure" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE state != 'Succeeded' AND error_class != 'infra'")" 0
log=$(fake_get /_fake/requests)
faults=$(printf '%s\n' "$log" | grep -c '"fault":"[0-9a-z-]' || true)
check_ge "the server injected faults (>= 100)" "$faults" 100
check_ge "some creates were retried into 409 AlreadyExists" \
	"$(printf '%s\n' "$log" | grep -c '"verb":"create".*"status":409' || true)" 1
check_eq "no Task left on the server" "$(fake_count tasks)" 0
check_eq "no Sandbox left on the server" "$(fake_count sandboxes)" 0

echo "# Sandboxes that go Failed: retried as infra"
# Exactly the next 5 Sandboxes fail (a chance per Sandbox could hit none of the 40).
fake_post /_fake/faults "sandbox-fail=1:max=5,500=0.05,watch-cut=2s"
write_many "$TMP/few.yaml" 40 sandbox 20 1
sed -i 's/retries: 3/retries: 8/' "$TMP/few.yaml"
runner run --progress none --db "$TMP/fail.db" --kubeconfig "$KC" --kube-qps 500 "$TMP/few.yaml"
check_eq "run exits 0" "$RC" 0
check_eq "40 jobs Succeeded" \
	"$(sql "$TMP/fail.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")" 40
check_eq "the 5 failed Sandboxes were recorded as 5 infra attempts" \
	"$(sql "$TMP/fail.db" "SELECT count(*) FROM attempts WHERE error_class = 'infra'
	                       AND error LIKE '%sandbox%failed%'")" 5
check_eq "no Task or Sandbox left" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

echo "# the API server unreachable for 4 s in the middle of a run"
fake_post /_fake/faults ""
write_many "$TMP/outage.yaml" 60 sandbox 10 2
# Down at the run's 21st create (of 120 or more), not after some time: the middle of the run
# on a machine of any speed.
fake_post "/_fake/down?seconds=4&after=20" ""
runner run --progress none --db "$TMP/outage.db" --kubeconfig "$KC" "$TMP/outage.yaml"
check_eq "run exits 0" "$RC" 0
check_ge "the outage hit the run (its requests reset while down)" \
	"$(fake_get /_fake/requests | grep -c '"fault":"down"' || true)" 1
check_eq "60 jobs Succeeded, every attempt too (requests and watches waited it out)" \
	"$(sql "$TMP/outage.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")|$(sql "$TMP/outage.db" "SELECT count(*) FROM attempts")" \
	"60|60"
check_eq "no Task or Sandbox left" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

echo "# slow responses (every request 50-400 ms late): slower, nothing else"
fake_post /_fake/faults "latency=50ms-400ms"
write_many "$TMP/slow.yaml" 30 sandbox 10 2
runner run --progress none --db "$TMP/slow.db" --kubeconfig "$KC" "$TMP/slow.yaml"
check_eq "run exits 0" "$RC" 0
check_eq "30 jobs Succeeded in one attempt each" \
	"$(sql "$TMP/slow.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded' AND attempts = 1")" 30
check_eq "no Task or Sandbox left" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

echo "# Task creates held back 8 s by the API server: the step still has its whole 10 s"
# The operator's timer starts when it runs the Task, and so does our own limit: counted from
# before the create (10 s + 2 s grace), it cut this 5 s step off at 12 s as a timeout.
fake_post /_fake/faults "latency=8s:verbs=create:resources=tasks"
cat >"$TMP/held.yaml" <<'EOF2'
version: 1
pools:
  sandbox: {backend: kubernetes, replicas: 1}
jobs:
  - {name: held, timeout: 10s, retries: 0, steps: [{name: s, type: Command, command: [sh, -c, "sleep 5; echo done"]}]}
EOF2
runner run --progress none --db "$TMP/held.db" --kubeconfig "$KC" "$TMP/held.yaml"
check_eq "run exits 0" "$RC" 0
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 5
check_eq "the step Succeeded and printed its line" \
	"$(sql "$TMP/held.db" "SELECT state || ':' || stdout FROM steps")" "Succeeded:done"
check_eq "no Task or Sandbox left" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

echo "# a pool without an idle pod: the job's prepareTimeout bounds the wait (infra)"
fake_post /_fake/faults "no-idle=starved"
runner pool create starved --image python:3.9-slim --sidecar-image arl-sidecar:latest \
	--replicas 1 --kubeconfig "$KC"
check_eq "pool create exits 0" "$RC" 0
runner pool wait starved --timeout 1s --kubeconfig "$KC"
check_eq "pool wait: not ready in time, exit 1" "$RC" 1
check_match "... saying how many replicas are ready" "$(cat "$TMP/err")" \
	"not ready after [0-9]+s: 0 of 1 replicas ready"
cat >"$TMP/starved.yaml" <<'EOF2'
version: 1
pools:
  starved: {backend: kubernetes, replicas: 1}
jobs:
  - {name: never, prepareTimeout: 2s, steps: [{type: Command, command: ["true"]}]}
EOF2
runner run --progress none --db "$TMP/starved.db" --kubeconfig "$KC" "$TMP/starved.yaml"
check_eq "run exits 3 (infra)" "$RC" 3
# Which bound ended the wait is in the message below (the prepareTimeout, not the job's
# timeout nor the 10m default); how long it took on a busy machine is not asserted.
check_ge "it waited the whole 2 s prepareTimeout (attempts.prepare_ms)" \
	"$(sql "$TMP/starved.db" "SELECT ifnull(max(prepare_ms), -1) FROM attempts")" 2000
check_match "the attempt says no pod was allocated in time" \
	"$(sql "$TMP/starved.db" "SELECT error_class || ': ' || error FROM attempts")" \
	"^infra: sandbox not ready after 2s \\(pool 'starved', the job's prepareTimeout\\): .*not Ready after [0-9]+s \\(phase '(Pending|none yet)'\\)"
check_eq "its Sandbox was deleted" "$(fake_count sandboxes)" 0

summary
