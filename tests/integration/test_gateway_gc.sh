#!/usr/bin/env bash
# `arl-batch gc --backend gateway` after a runner on a gateway pool is killed with -9 (against
# the test gateway, tests/fake_gateway/): the killed run's sessions are still on the gateway,
# gc lists exactly those (not a live runner's, whose sessions the same database records), gc
# --yes deletes them, and nothing is left on the gateway afterwards. Then a run stopped while
# the gateway answers its deletes with 429 leaves its sessions, and says so: gc deletes them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
make_tmp
MARK=$$$RANDOM # the long steps run `sleep 6X.$MARK`: 60 the killed run, 61 the live one, 62 the last
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	stop_gateway
	kill_procs_with "6[012]\.$MARK"
	return 0
}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=cleanup
start_gateway

# long FILE SECONDS: six jobs on a gateway pool of four sessions, each sleeping SECONDS.MARK.
long() { long_jobs "$1" 'gw: {backend: gateway, image: arl-test, replicas: 4}' 120s "$2.$MARK"; }
long "$TMP/dead.yaml" 60
long "$TMP/live.yaml" 61
sleeps_ge() { [ "$(procs_with "$1\.$MARK" | wc -l)" -ge "$2" ]; }
DB=$TMP/r.db

echo "# a runner killed with -9 beside a live one, both recording in one database"
"$ARL_BATCH" run --progress none --db "$DB" "$TMP/dead.yaml" >"$TMP/dead.out" 2>"$TMP/dead.err" &
DEAD_PID=$!
PIDS+=("$DEAD_PID")
check "the first runner's four sleep steps run" wait_until 120 "4 sleeps of the first run" sleeps_ge 60 4
"$ARL_BATCH" run --progress none --db "$DB" "$TMP/live.yaml" >"$TMP/live.out" 2>"$TMP/live.err" &
LIVE_PID=$!
PIDS+=("$LIVE_PID")
check "the second runner's four sleep steps run" wait_until 120 "4 sleeps of the second run" sleeps_ge 61 4
gw_sessions | sort >"$TMP/all"
check_eq "eight sessions on the gateway" "$(wc -l <"$TMP/all")" 8

runner gc --backend gateway --db "$DB"
check_eq "gc while both runners live exits 0" "$RC" 0
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err"
check_eq "... and lists no session of the gateway" "$(grep -cFf "$TMP/all" "$TMP/out" || true)" 0

kill -9 "$DEAD_PID"
wait "$DEAD_PID" 2>/dev/null || true
check_eq "kill -9 leaves the killed run's four sessions on the gateway" "$(gw_session_count)" 8
# The killed run's sessions: those the database's leases record for the run named dead.
sql "$DB" "SELECT l.name FROM leases l JOIN runs r ON r.id = l.run_id WHERE r.name = 'dead'" |
	sort >"$TMP/dead.ids"
check_eq "the database names each of them (leases of the run 'dead')" \
	"$(comm -12 "$TMP/dead.ids" "$TMP/all" | wc -l)" 4

runner gc --backend gateway --db "$DB"
check_eq "gc exits 0" "$RC" 0
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err"
check_eq "gc lists each of the killed run's sessions" "$(grep -cFf "$TMP/dead.ids" "$TMP/out" || true)" 4
check_eq "... and none of the live run's" "$(grep -Ff "$TMP/all" "$TMP/out" | grep -cvFf "$TMP/dead.ids" || true)" 0
check_eq "gc without --yes deletes nothing" "$(gw_session_count)" 8

runner gc --backend gateway --yes --db "$DB"
check_eq "gc --yes exits 0" "$RC" 0
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err"
gw_sessions | sort >"$TMP/after"
check_eq "gc --yes deleted the killed run's sessions" "$(comm -12 "$TMP/dead.ids" "$TMP/after" | wc -l)" 0
check_eq "... and its steps are gone with them" "$(leftover "60\.$MARK")" ""
check_eq "the live run's four sessions are untouched" "$(wc -l <"$TMP/after")" 4
check_eq "the live runner still runs" "$(kill -0 "$LIVE_PID" 2>/dev/null && echo yes || echo no)" yes
runner gc --backend gateway --db "$DB"
check_eq "a second gc lists nothing" "$(grep -cFf "$TMP/all" "$TMP/out" || true)" 0

kill -INT "$LIVE_PID"
wait_pid 300 "$LIVE_PID"
check_eq "the live run, interrupted, exits 130" "$RC" 130
check_eq "... and deletes its own sessions: none is left on the gateway" "$(gw_session_count)" 0

echo "# a run stopped while the gateway refuses its deletes leaves them to gc"
long "$TMP/refused.yaml" 62
"$ARL_BATCH" run --progress none --db "$DB" "$TMP/refused.yaml" >"$TMP/refused.out" 2>"$TMP/refused.err" &
REFUSED_PID=$!
PIDS+=("$REFUSED_PID")
check "its four sleep steps run" wait_until 120 "4 sleeps of the run" sleeps_ge 62 4
gw_faults "429=1:endpoints=delete"
kill -INT "$REFUSED_PID"
wait_pid 300 "$REFUSED_PID"
gw_faults ""
check_eq "the run, interrupted, exits 130" "$RC" 130
check_eq "its four sessions are left on the gateway" "$(gw_session_count)" 4
check_eq "it said so for each, and what deletes it" \
	"$(grep -c "cannot delete session .*429.* \`arl-batch gc --backend gateway\` deletes it" "$TMP/refused.err" || true)" 4
runner gc --backend gateway --yes --db "$DB"
check_eq "gc --yes exits 0" "$RC" 0
check_eq "gc --yes deleted the four, their run interrupted" \
	"$(grep -c 'its runner is gone (run interrupted): deleted$' "$TMP/out" || true)" 4
check_eq "no session left on the gateway" "$(gw_session_count)" 0
check_eq "... nor a step of theirs" "$(leftover "62\.$MARK")" ""

summary
