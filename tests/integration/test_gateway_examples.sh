#!/usr/bin/env bash
# jobs/ examples marked '# Needs: a gateway' run against the test gateway (tests/fake_gateway/)
# as their comments say; then what a gateway pool costs in requests (docs/gateway.md: at most
# 4 + 1 per second of step time for a one-step job, 3 on a gateway that answers 200), both
# execute answers (the immediate 202 and the older blocking 200), and no session left.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
make_tmp
start_gateway

mapfile -t JOBS < <(grep -l '^# Needs: a gateway' "$SOURCE_DIR"/jobs/*.yaml)
check_ge "jobs/ has a gateway example" "${#JOBS[@]}" 1

echo "# run the gateway examples"
DB=$TMP/ex.db
runner run --progress none --db "$DB" "${JOBS[@]}"
check_eq "run exits 1 (13-gateway/gateway-timeout times out on purpose)" "$RC" 1
job() { sql "$DB" "SELECT state || '|' || ifnull(error_class, '') FROM jobs WHERE key = '$1'"; }
check_eq "13-gateway/gateway-session succeeded" "$(job 13-gateway/gateway-session)" "Succeeded|"
check_eq "13-gateway/gateway-timeout ended in class timeout (the gateway said exit 1)" \
	"$(job 13-gateway/gateway-timeout)" "Failed|timeout"
check_eq "its output before the kill is kept" \
	"$(sql "$DB" "SELECT stdout FROM steps WHERE name = 'too_slow'")" "working"
check_eq "the session's /workspace persists across steps (count 1, 2)" \
	"$(sql "$DB" "SELECT group_concat(rtrim(stdout, char(10)), ',') FROM steps WHERE name LIKE 'count_%' ORDER BY idx")" \
	"count = 1,count = 2"
check_eq "FilePatch prints 'File created: PATH'" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'write_script'")" \
	"File created: /workspace/count.sh"
check_eq "workDir is honoured" \
	"$(sql "$DB" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'report'")" "ran in /workspace/out"
check_eq "the artifact came back whole (download-file, trailer SHA checked)" \
	"$(sql "$DB" "SELECT path || '|' || size || '|' || sha256 FROM artifacts")" \
	"/workspace/out/report.txt|22|$(printf 'ran in /workspace/out\n' | sha256sum | cut -d' ' -f1)"
check_eq "every attempt names its session" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE sandbox IS NULL OR sandbox = ''")" 0
check_eq "preparation (the create's wait) is recorded" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE prepare_ms IS NULL")" 0
check_eq "no lease is left in the database" "$(sql "$DB" "SELECT count(*) FROM leases")" 0
check_no_session "no session left on the gateway"
check "the API key is in neither the database nor the output" \
	eval "! grep -q -- \"$ARL_API_KEY\" \"$DB\" \"$TMP/out\" \"$TMP/err\""

# requests of one one-step job: N JOB-FILE
one_step() {
	cat >"$TMP/one.yaml" <<YAML
version: 1
pools:
  gw: {backend: gateway, image: "python:3.12", replicas: 1}
jobs:
  - {name: quick, steps: [{name: s, type: Command, command: ["sh", "-c", "$1"]}]}
YAML
	gw_http DELETE /_fake/requests >/dev/null
	runner run --progress none --db "$TMP/one.db" "$TMP/one.yaml"
}

# allowed: 4 plus one per started second the attempt spent past its preparation (its step
# and the delete), as measured by the run itself: a busy machine slows the step, not the rule.
allowed() {
	echo $((4 + $(sql "$TMP/one.db" "SELECT (duration_ms - prepare_ms + 999) / 1000 FROM attempts ORDER BY id DESC LIMIT 1")))
}

echo "# requests per one-step job"
one_step "echo hi"
check_eq "a quick step succeeds" "$RC" 0
# The run's own probe (a GET of a session that does not exist) comes once per run and pool.
check_eq "one probe per run" "$(gw_requests get)" 1
check_le "create, execute, polls, delete: at most 4 + 1 per second (202 answer)" \
	"$(($(gw_requests) - $(gw_requests get)))" "$(allowed)"
check_eq "one execute" "$(gw_requests execute)" 1
one_step "sleep 3"
check_eq "a 3 s step succeeds" "$RC" 0
check_le "a 3 s step: at most 4 + 1 per second" "$(($(gw_requests) - $(gw_requests get)))" "$(allowed)"
check_ge "... and it was polled while it ran (a 202 answer)" "$(gw_requests operation)" 3

echo "# the older gateways' blocking 200"
gw_post /_fake/config '{"old_execute": true}'
one_step "echo blocking"
check_eq "a step answered 200 succeeds" "$RC" 0
check_eq "its output is recorded" \
	"$(sql "$TMP/one.db" "SELECT rtrim(stdout, char(10)) FROM steps ORDER BY id DESC LIMIT 1")" "blocking"
check_eq "no poll: create, execute, delete" "$(($(gw_requests) - $(gw_requests get)))" 3

gw_post /_fake/config '{"old_execute": false}'
check_no_session "no session left on the gateway"
summary
