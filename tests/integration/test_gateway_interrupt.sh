#!/usr/bin/env bash
# Nothing is left on the gateway when a run on a gateway pool is cut short (against the test
# gateway, tests/fake_gateway/): SIGINT while steps run (exit 130, every attempt recorded as
# it ended, no session left), SIGTERM (143), SIGINT while sessions wait to be allocated (the
# creates in flight leave no session either), SIGINT while creates wait for a full pool that
# frees up right after, and --deadline (exit 4).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
make_tmp
MARK=$$$RANDOM # the long steps run `sleep 30.$MARK`: found on the host by that
RUNNER_PID=
cleanup() {
	[ -z "$RUNNER_PID" ] || kill -9 "$RUNNER_PID" 2>/dev/null || true
	stop_gateway
	kill_procs_with "30\.$MARK"
	return 0
}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=cleanup
start_gateway

long_jobs "$TMP/long.yaml" 'gw: {backend: gateway, image: arl-test, replicas: 4}' 60s "30.$MARK"

# start_long NAME: `run` of long.yaml into $TMP/NAME.db in the background; sets RUNNER_PID.
start_long() {
	"$ARL_BATCH" run --progress none --db "$TMP/$1.db" "$TMP/long.yaml" >"$TMP/out" 2>"$TMP/err" &
	RUNNER_PID=$!
}
sleeps_ge() { [ "$(procs_with "30\.$MARK" | wc -l)" -ge "$1" ]; }
no_queued() {
	[ "$(gw_get /_fake/state | python3 -c 'import json, sys; print(sum(p["queued"] for p in json.load(sys.stdin)["pools"]))')" = 0 ]
}
queued_ge() {
	[ "$(gw_get /_fake/state | python3 -c 'import json, sys; print(sum(p["queued"] for p in json.load(sys.stdin)["pools"]))')" -ge "$1" ]
}

echo "# SIGINT while steps run"
start_long int
check "four sleep steps run in their sessions" wait_until 120 "4 sleep steps" sleeps_ge 4
check_eq "four sessions on the gateway" "$(gw_session_count)" 4
kill -INT "$RUNNER_PID"
wait_exit 300
check_eq "run exits 130" "$RC" 130
[ "$RC" = 130 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
# Promptly: it cut the steps rather than waiting for their `sleep 30` (no wall-clock window).
check_le "it stopped the steps before their sleep 30 ended (longest, ms)" \
	"$(sql "$TMP/int.db" "SELECT ifnull(max(duration_ms), 30000) FROM steps WHERE name = 'sleep'")" 29999
check_eq "every job Cancelled" "$(sql "$TMP/int.db" "SELECT group_concat(DISTINCT state) FROM jobs")" Cancelled
check_eq "four attempts, each cancelled" \
	"$(sql "$TMP/int.db" "SELECT count(*) || ':' || group_concat(DISTINCT ifnull(error_class, '-')) FROM attempts")" \
	"4:cancelled"
check_eq "in each, the first step Succeeded and the interrupted one is Failed, not left Running" \
	"$(sql "$TMP/int.db" "SELECT group_concat(n, ' ') FROM (SELECT name || ':' || state || ':' || count(*) AS n
	                      FROM steps GROUP BY name, state ORDER BY name, state)")" \
	"sleep:Failed:4 started:Succeeded:4"
check_eq "every attempt has its session recorded" \
	"$(sql "$TMP/int.db" "SELECT count(*) FROM attempts WHERE ifnull(sandbox, '') != ''")" 4
check_eq "no session left on the gateway" "$(gw_session_count)" 0
check_eq "no step left running (sleep 30.$MARK)" "$(leftover "30\.$MARK")" ""

echo "# SIGTERM while steps run"
start_long term
check "four sleep steps run in their sessions" wait_until 120 "4 sleep steps" sleeps_ge 4
kill -TERM "$RUNNER_PID"
wait_exit 300
check_eq "run exits 143" "$RC" 143
check_eq "every job Cancelled" "$(sql "$TMP/term.db" "SELECT group_concat(DISTINCT state) FROM jobs")" Cancelled
check_eq "no session left on the gateway" "$(gw_session_count)" 0
check_eq "no step left running (sleep 30.$MARK)" "$(leftover "30\.$MARK")" ""

echo "# SIGINT while sessions wait to be allocated"
gw_faults "slow-alloc=600s"
start_long alloc
check "four creates wait on the gateway" wait_until 120 "4 queued creates" queued_ge 4
kill -INT "$RUNNER_PID"
wait_exit 300
check_eq "run exits 130" "$RC" 130
check_eq "every job Cancelled (not infra)" \
	"$(sql "$TMP/alloc.db" "SELECT group_concat(DISTINCT state || ':' || ifnull(error_class, '')) FROM jobs")" \
	"Cancelled:cancelled"
check "the gateway saw the creates end" wait_until 60 "no queued create" no_queued
check_eq "no session left on the gateway" "$(gw_session_count)" 0
gw_faults ""

echo "# SIGINT while creates wait for a full pool that frees up right after"
# The pool may hold one session and a session of ours holds it: the run's creates wait. After
# the SIGINT the pool is unbounded, so the creates the runner still waits for are answered:
# the runner must delete those sessions (or have dropped the creates, which then make none).
gw_post /_fake/config '{"max_replicas": 1}'
blocker=$(python3 - "$GW_URL" "$GW_KEY" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v1/sessions", method="POST",
                             data=json.dumps({"image": "arl-test"}).encode(),
                             headers={"Authorization": "Bearer " + sys.argv[2],
                                      "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=60))["id"])
PY
)
gw_http DELETE /_fake/requests >/dev/null
start_long full
check "four creates wait on the gateway" wait_until 120 "4 queued creates" queued_ge 4
kill -INT "$RUNNER_PID"
gw_post /_fake/config '{"max_replicas": 0}'
wait_exit 300
check_eq "run exits 130" "$RC" 130
check_eq "every job Cancelled" \
	"$(sql "$TMP/full.db" "SELECT group_concat(DISTINCT state || ':' || ifnull(error_class, '')) FROM jobs")" \
	"Cancelled:cancelled"
check "the gateway saw the creates end" wait_until 60 "no queued create" no_queued
echo "       the gateway answered $(gw_get /_fake/requests | python3 -c 'import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["endpoint"] == "create" and r["status"] == 201))') of the run's creates"
check_eq "only our own session is left on the gateway" "$(gw_sessions)" "$blocker"
python3 - "$GW_URL" "$GW_KEY" "$blocker" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/v1/sessions/" + sys.argv[3], method="DELETE",
                       headers={"Authorization": "Bearer " + sys.argv[2]}), timeout=60).read()
PY
check_eq "no session left on the gateway" "$(gw_session_count)" 0

echo "# --deadline"
runner run --progress none --db "$TMP/dl.db" --deadline 3s "$TMP/long.yaml"
check_eq "run exits 4" "$RC" 4
check_eq "every job Cancelled" "$(sql "$TMP/dl.db" "SELECT group_concat(DISTINCT state) FROM jobs")" Cancelled
check_eq "no session left on the gateway" "$(gw_session_count)" 0
check_eq "no step left running (sleep 30.$MARK)" "$(leftover "30\.$MARK")" ""

summary
