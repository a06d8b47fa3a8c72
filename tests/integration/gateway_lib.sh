# shellcheck shell=bash
# Helpers of the gateway integration tests (sourced after lib.sh; not a test itself). A test
# that uses them names tests/fake_gateway/ in its own text, which labels it `gateway`.
#
# start_gateway ARGS... starts tests/fake_gateway/server.py on a free loopback port with one
# user key, exports ARL_GATEWAY_URL and ARL_API_KEY for the runner, and sets GW_URL and
# GW_PID; the EXIT trap of make_tmp stops it (CLEANUP=stop_gateway, or call it from yours).

# Exits 77 unless the test gateway can run here: python3, and bwrap for its sessions' pods.
require_gateway() {
	require_tools python3 sqlite3
	require_bwrap
}

# A shutdown the server gave up after 60 s (its faulthandler watchdog) shows its stacks.
stop_gateway() {
	stop_server GW_PID
	if grep -q '^Timeout (' "$TMP/gw.err" 2>/dev/null; then
		echo "WARNING: the test gateway hung in its shutdown; its threads:" >&2
		sed 's/^/       /' "$TMP/gw.err" >&2
	fi
}

# shellcheck disable=SC2120 # ARGS: the server's options, when a test wants any
start_gateway() {
	CLEANUP=${CLEANUP:-stop_gateway}
	GW_KEY=${GW_KEY:-gw-test-key}
	GW_ADMIN_KEY=${GW_ADMIN_KEY:-gw-admin-key}
	: >"$TMP/gw.out"
	# timeout(1): a test killed from outside cannot leave the server running for ever.
	timeout 1200 python3 "$SOURCE_DIR/tests/fake_gateway/server.py" --port 0 \
		--api-key "$GW_KEY:user" --api-key "$GW_ADMIN_KEY:admin" \
		"$@" >"$TMP/gw.out" 2>"$TMP/gw.err" &
	GW_PID=$!
	if server_url GW_URL "$GW_PID" "$TMP/gw.out"; then
		ARL_GATEWAY_URL=$GW_URL
		ARL_API_KEY=$GW_KEY
		export GW_URL ARL_GATEWAY_URL ARL_API_KEY
		return 0
	fi
	echo "FAIL: the test gateway did not start"
	sed 's/^/       /' "$TMP/gw.err"
	exit 1
}

# gw_http METHOD PATH [BODY]: a control request (/_fake/*: no auth, never faulted).
gw_http() {
	python3 - "$1" "$GW_URL$2" "${3-}" <<'EOF'
import sys, urllib.request
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, method=method, data=body.encode() if method in ("POST", "PUT") else None)
with urllib.request.urlopen(req, timeout=30) as r:
    sys.stdout.buffer.write(r.read())
EOF
}
gw_get() { gw_http GET "$1"; }
gw_post() { gw_http POST "$1" "${2-}" >/dev/null; }

# gw_sessions: the ids of the sessions alive on the gateway, one a line.
gw_sessions() {
	gw_get /_fake/sessions | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))'
}
# gw_session_count: how many sessions are alive on the gateway.
gw_session_count() {
	gw_get /_fake/sessions | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}
# gw_busy_count: sessions running a step right now.
gw_busy_count() {
	gw_get /_fake/state | python3 -c 'import json, sys; print(sum(1 for s in json.load(sys.stdin)["sessions"] if s["busy"]))'
}

# gw_faults SPEC: replaces the gateway's fault SPEC (tests/fake_gateway/README.md); '' clears it.
gw_faults() {
	gw_post /_fake/faults "$(python3 -c 'import json, sys; print(json.dumps({"spec": sys.argv[1]}))' "$1")"
}
# gw_requests [ENDPOINT]: requests in the gateway's log (all, or those to ENDPOINT: create,
# execute, operation, delete, upload, download, ...), dropped connections included.
gw_requests() {
	gw_get /_fake/requests | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin) if len(sys.argv) < 2 or r["endpoint"] == sys.argv[1]))' "$@"
}
# check_no_session DESC: no session is left on the gateway.
check_no_session() {
	check_eq "$1" "$(gw_session_count)" 0
}
