#!/usr/bin/env bash
# The gateway backend against the test gateway's faults (tests/fake_gateway/, contract
# ../shared/arl-gateway.md): the status codes a batch client meets (401, 403, 404 on delete,
# 404 of a forgotten operation or session, 429, 500 of a create, 503), a 429 storm, resets of
# safe requests, a truncated download, a stuck operation, an allocation that never ends, a
# gateway restart mid-step (with and without its sessions), a database that refuses the
# session's record, kill -9 then gc, and kill -9 then the next run's sweep. No session is
# left on the gateway after any of them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
make_tmp
# The idle reaper sweeps only when the test asks (/_fake/reap): a periodic sweep could take
# the orphan below before it is counted.
start_gateway --seed 7 --api-key other-user-key:user --reap-interval 3600
ARL=$ARL_BATCH

# job FILE JOBS-YAML [POOL-EXTRA]: a job file with one gateway pool of 4 replicas.
jobfile() {
	cat >"$1" <<YAML
version: 1
pools:
  gw: {backend: gateway, image: "python:3.12", replicas: 4${3:+, $3}}
jobs:
$2
YAML
}
state_of() { sql "$1" "SELECT group_concat(state || ':' || ifnull(error_class, ''), ',') FROM (SELECT * FROM jobs ORDER BY id)"; }
faults() { gw_faults "$1"; gw_http DELETE /_fake/requests >/dev/null; }
status_count() { # STATUS [ENDPOINT]
	gw_get /_fake/requests | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["status"] == int(sys.argv[1]) and (len(sys.argv) < 3 or r["endpoint"] == sys.argv[2])))' "$@"
}

FOUR='  - {name: a, steps: [{name: s, type: FilePatch, path: /workspace/f, content: "x"}, {name: t, type: Command, command: [cat, /workspace/f]}], artifacts: [{path: /workspace/f}]}
  - {name: b, steps: [{name: s, type: Command, command: [sh, -c, "sleep 1; echo b"]}]}
  - {name: c, steps: [{name: s, type: Command, command: [echo, c]}]}
  - {name: d, steps: [{name: s, type: Command, command: [sh, -c, "exit 3"]}]}'
jobfile "$TMP/four.yaml" "$FOUR"
WANT_FOUR="Succeeded:,Succeeded:,Succeeded:,Failed:failed"

echo "# 401: a key the gateway does not know fails the run at its start"
ARL_API_KEY=not-a-key runner run --progress none --db "$TMP/401.db" "$TMP/four.yaml"
check_eq "exit 3" "$RC" 3
check_match "the message says the key was refused" "$(cat "$TMP/err")" "refused the API key \(HTTP 401"
check "the key is not printed" eval "! grep -q not-a-key '$TMP/err' '$TMP/out'"
check_eq "no job ran" "$(sql "$TMP/401.db" "SELECT count(*) FROM attempts")" 0

echo "# 500 to a create for a profile the gateway has no pool for"
jobfile "$TMP/prof.yaml" '  - {name: p, retries: 0, steps: [{name: s, type: Command, command: [echo, x]}]}'
sed -i 's/image: "python:3.12"/profile: no-such-profile/' "$TMP/prof.yaml"
runner run --progress none --db "$TMP/prof.db" "$TMP/prof.yaml"
check_eq "infra" "$(state_of "$TMP/prof.db")" "Failed:infra"
check_match "the error quotes the gateway" "$(sql "$TMP/prof.db" "SELECT error FROM attempts")" \
	'HTTP 500: no pool found for profile "no-such-profile"'
check_no_session "no session left"

echo "# a FilePatch the pod's agent refuses (500 executor error): the step's failure, not retried"
jobfile "$TMP/fp.yaml" '  - {name: fp, timeout: 60s, retries: 0, steps: [{name: p, type: FilePatch, path: /proc/nope/x, content: "x"}]}'
gw_http DELETE /_fake/requests >/dev/null
runner run --progress none --db "$TMP/fp.db" "$TMP/fp.yaml"
check_eq "failed (not infra)" "$(state_of "$TMP/fp.db")" "Failed:failed"
check_match "stderr is the agent's error" "$(sql "$TMP/fp.db" "SELECT stderr FROM steps")" "^executor error: "
check_eq "one upload: a refusal is not retried until the deadline" "$(gw_requests upload)" 1
check_no_session "no session left"

echo "# a 429 storm (Retry-After: 1, every request refused 24 times)"
faults "429=1:max=24"
runner run --progress none --db "$TMP/429.db" "$TMP/four.yaml"
check_eq "the jobs end as without the storm" "$(state_of "$TMP/429.db")" "$WANT_FOUR"
check_eq "the gateway answered 429 24 times" "$(status_count 429)" 24
check_no_session "no session left after the storm"

echo "# 503s and resets of the requests that are safe to repeat"
faults "503=0.3:endpoints=operation|delete|upload|download|execute,reset=0.2:endpoints=operation|delete|execute|download"
runner run --progress none --db "$TMP/503.db" "$TMP/four.yaml"
check_eq "the jobs end as without the faults" "$(state_of "$TMP/503.db")" "$WANT_FOUR"
check_ge "503s were answered" "$(status_count 503)" 1
check_ge "connections were dropped" "$(status_count 0)" 1
check_eq "the artifact is whole" "$(sql "$TMP/503.db" "SELECT size || '|' || sha256 FROM artifacts")" \
	"1|$(printf x | sha256sum | cut -d' ' -f1)"
check_no_session "no session left after 503s and resets"

echo "# a download cut after it began (no trailers): fetched again"
faults "reset=1:endpoints=download:after=1:max=1"
runner run --progress none --db "$TMP/dl.db" "$TMP/four.yaml"
check_eq "the artifact is whole" "$(sql "$TMP/dl.db" "SELECT size || '|' || ifnull(sha256, error) FROM artifacts")" \
	"1|$(printf x | sha256sum | cut -d' ' -f1)"
check_ge "downloaded twice" "$(gw_requests download)" 2
check_no_session "no session left"

echo "# 404 to a DELETE that did delete: already gone"
faults "404=1:endpoints=delete:after=1"
runner run --progress none --db "$TMP/404.db" "$TMP/four.yaml"
check_eq "the jobs end as usual" "$(state_of "$TMP/404.db")" "$WANT_FOUR"
check "no warning about a session left" eval "! grep -q 'gc --backend gateway' '$TMP/err'"
check_eq "no lease left" "$(sql "$TMP/404.db" "SELECT count(*) FROM leases")" 0
check_no_session "no session left"

echo "# 500 to a create that made a session: never created again blindly"
faults "500=1:endpoints=create:after=1:max=1"
jobfile "$TMP/c500.yaml" '  - {name: one, retries: 1, steps: [{name: s, type: Command, command: [echo, one]}]}' "idleTimeout: 1s"
runner run --progress none --db "$TMP/c500.db" "$TMP/c500.yaml"
check_eq "the job succeeds on its second attempt" \
	"$(sql "$TMP/c500.db" "SELECT state || '|' || attempts FROM jobs")" "Succeeded|2"
check_match "the first attempt is infra and says a session may exist" \
	"$(sql "$TMP/c500.db" "SELECT error_class || ' ' || error FROM attempts WHERE number = 1")" \
	"^infra .*HTTP 500"
check_eq "two creates, no more" "$(gw_requests create)" 2
check_eq "the orphan is the only session left" "$(gw_session_count)" 1
sleep 1.2 # its idleTimeoutSeconds (1 s) passes: the gateway's reaper takes it
gw_post /_fake/reap
check_no_session "the gateway's idle reaper took the orphan (idleTimeoutSeconds sent)"

echo "# an allocation that never ends: the job's prepareTimeout"
faults "alloc-hang=1"
jobfile "$TMP/hang.yaml" '  - {name: hang, prepareTimeout: 2s, retries: 0, steps: [{name: s, type: Command, command: [echo, x]}]}'
runner run --progress none --db "$TMP/hang.db" "$TMP/hang.yaml"
check_eq "infra" "$(state_of "$TMP/hang.db")" "Failed:infra"
check_match "the error says no session came" "$(sql "$TMP/hang.db" "SELECT error FROM attempts")" \
	"sandbox not ready after 2s"
check_no_session "no session left"

echo "# an operation that stays running (a pod that never becomes ready): infra"
faults "stuck-op=1"
jobfile "$TMP/stuck.yaml" '  - {name: stuck, retries: 0, steps: [{name: s, type: Command, timeout: 1s, command: [echo, x]}]}'
runner run --progress none --db "$TMP/stuck.db" "$TMP/stuck.yaml"
check_eq "infra, not the step's timeout" "$(state_of "$TMP/stuck.db")" "Failed:infra"
check_match "the error says the gateway did not end it" "$(sql "$TMP/stuck.db" "SELECT error FROM attempts")" \
	"still not done"
check_no_session "no session left"
faults ""

# mid_step FILE DB RESTART-BODY: runs FILE in the background and restarts the gateway while
# its step s runs (the server waits for that and restarts under its lock: a restart seen
# from here could come after a loaded machine's step ended).
mid_step() {
	"$ARL" run --progress none --db "$2" "$1" >"$TMP/out" 2>"$TMP/err" &
	local pid=$!
	gw_post /_fake/restart "$3"
	wait_pid 120 "$pid"
}
jobfile "$TMP/long.yaml" '  - {name: long, retries: 0, steps: [{name: s, type: Command, command: [sh, -c, "echo run >> /workspace/runs; sleep 2; wc -l < /workspace/runs"]}]}'

echo "# a gateway restart that keeps its sessions (Redis) but forgets operations"
mid_step "$TMP/long.yaml" "$TMP/rk.db" '{"keepSessions": true, "whenStepRunning": "s", "waitSeconds": 25}'
check_eq "the step is sent again and succeeds" "$(state_of "$TMP/rk.db")" "Succeeded:"
check_match "the runner says it sent the step again" "$(cat "$TMP/err")" "forgotten .*sending the step again"
check_no_session "no session left"

echo "# a gateway restart that forgets its sessions"
mid_step "$TMP/long.yaml" "$TMP/rf.db" '{"whenStepRunning": "s", "waitSeconds": 25}'
check_eq "infra" "$(state_of "$TMP/rf.db")" "Failed:infra"
check_no_session "no session left"

echo "# a database that refuses the session's record"
sqlite3 "$TMP/ro.db" "PRAGMA user_version" >/dev/null
runner run --progress none --db "$TMP/ro.db" "$TMP/c500.yaml" # creates the schema
sql "$TMP/ro.db" "CREATE TRIGGER refuse BEFORE INSERT ON leases BEGIN SELECT RAISE(ABORT, 'no more writes'); END"
jobfile "$TMP/ro.yaml" '  - {name: ro, retries: 0, steps: [{name: s, type: Command, command: [echo, x]}]}'
runner run --progress none --db "$TMP/ro.db" "$TMP/ro.yaml"
check_eq "the attempt fails as infra" "$(sql "$TMP/ro.db" "SELECT state || ':' || error_class FROM jobs WHERE name = 'ro'")" "Failed:infra"
check_match "it says the session was deleted" "$(sql "$TMP/ro.db" "SELECT a.error FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.name = 'ro'")" \
	"deleted: its id cannot be recorded.*no more writes"
check_no_session "no session left"

echo "# kill -9, then gc (403 with another user's key, then the owner's)"
jobfile "$TMP/kill.yaml" '  - {name: k1, steps: [{name: s, type: Command, command: [sleep, "60"]}]}
  - {name: k2, steps: [{name: s, type: Command, command: [sleep, "60"]}]}'
"$ARL" run --progress none --db "$TMP/kill.db" "$TMP/kill.yaml" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_until 60 "two steps to run" eval '[ "$(gw_busy_count)" -ge 2 ]'
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
check_eq "two sessions left by the killed runner" "$(gw_session_count)" 2
ARL_API_KEY=other-user-key runner gc --backend gateway --db "$TMP/kill.db" --yes
check_eq "gc with another user's key: exit 3" "$RC" 3
check_match "it says access was denied (403)" "$(cat "$TMP/err")" "forbidden.*HTTP 403"
check_eq "the sessions are still there" "$(gw_session_count)" 2
check_eq "and so are their leases" "$(sql "$TMP/kill.db" "SELECT count(*) FROM leases")" 2
runner gc --backend gateway --db "$TMP/kill.db"
check_eq "gc lists both" "$(grep -c '^session ' "$TMP/out")" 2
check_eq "without --yes nothing is deleted" "$(gw_session_count)" 2
runner gc --backend gateway --db "$TMP/kill.db" --yes
check_eq "gc --yes exits 0" "$RC" 0
check_eq "it deletes both" "$(grep -c ': deleted$' "$TMP/out")" 2
check_eq "the leases go" "$(sql "$TMP/kill.db" "SELECT count(*) FROM leases")" 0
check_no_session "no session left after gc"
runner gc --backend gateway --db "$TMP/kill.db"
check_match "a second gc finds nothing" "$(cat "$TMP/out")" "^no leftover gateway sessions"

echo "# kill -9, then the next run on the database sweeps what it left"
"$ARL" run --progress none --db "$TMP/kill.db" "$TMP/kill.yaml" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_until 60 "two steps to run" eval '[ "$(gw_busy_count)" -ge 2 ]'
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
check_eq "two sessions left by the killed runner" "$(gw_session_count)" 2
runner run --progress none --db "$TMP/kill.db" "$TMP/ro.yaml"
check_eq "the next run succeeds" "$RC" 0
check_eq "it says it deleted both" "$(grep -c "deleted session .* that run [0-9]* left (its runner is gone" "$TMP/err")" 2
check_eq "no lease left" "$(sql "$TMP/kill.db" "SELECT count(*) FROM leases")" 0
check_no_session "no session left after the sweep"
summary
