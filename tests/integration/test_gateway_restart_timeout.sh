#!/usr/bin/env bash
# A step sent again after a gateway restart forgot its operation (tests/fake_gateway/, the
# Redis-like restart that keeps sessions) has only the time it has left: restarted near the
# end of its 6 s, it ends as `timeout`, not `infra` (sent again with its whole 6 s, the
# gateway killed it past the runner's deadline and grace, and the attempt was infra).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
make_tmp
MARK=$$$RANDOM
cleanup() {
	stop_gateway
	kill_procs_with "sleep 300\\.$MARK"
	return 0
}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=cleanup
start_gateway

cat >"$TMP/t.yaml" <<EOF
version: 1
pools:
  gw: {backend: gateway, image: arl-test, replicas: 1}
jobs:
  - {name: t, retries: 0, timeout: 6s, steps: [{name: s, type: Command, command: [sleep, "300.$MARK"]}]}
EOF
# The step's age in seconds (its oldest sleep process), or 0.
age() {
	local p
	p=$(procs_with "^sleep 300\\.$MARK" | head -n1)
	[ -n "$p" ] && ps -o etimes= -p "$p" | tr -d ' ' || echo 0
}
"$ARL_BATCH" run --progress none --db "$TMP/r.db" "$TMP/t.yaml" >"$TMP/run.out" 2>"$TMP/run.err" &
PID=$!
wait_until 60 "the step to have run 5 of its 6 s" eval '[ "$(age)" -ge 5 ]'
gw_post /_fake/restart '{"keepSessions": true}'
wait_pid 120 "$PID"
check_eq "the run exits 1 (a job failed)" "$RC" 1
check_eq "the step ends as timeout" \
	"$(sql "$TMP/r.db" "SELECT state || ':' || ifnull(error_class, '') FROM jobs")" "Failed:timeout"
check_match "the runner said it sent it again, or found its time gone" "$(cat "$TMP/run.err")" \
	"forgotten"
check_no_session "no session left"
check_eq "no step left running" "$(leftover "sleep 300\\.$MARK")" ""

summary
