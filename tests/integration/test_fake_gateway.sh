#!/usr/bin/env bash
# The fake ARL gateway's own tests (tests/fake_gateway/test_server.py, stdlib unittest):
# every status code of ../shared/arl-gateway.md, both execute answers, SSE frames,
# uploads/downloads with SHA checks and trailers, the rate limit, ownership, faults,
# and no session, pod process or temp dir left. Then the bash helpers of gateway_lib.sh.
# Exits 77 (skip) without python3 or a working bwrap.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
echo "# tests/fake_gateway/test_server.py"
if /usr/bin/python3 "$SOURCE_DIR/tests/fake_gateway/test_server.py"; then
	ok "the fake gateway's own tests"
else
	ko "the fake gateway's own tests"
fi

echo "# gateway_lib.sh"
make_tmp
start_gateway --rps 100 --burst 200
# api METHOD PATH [BODY]: a request with the user key from the environment, prints "STATUS BODY".
api() {
	python3 - "$1" "$ARL_GATEWAY_URL$2" "${3-}" <<'PY'
import os, sys, urllib.error, urllib.request
method, url, body = sys.argv[1:4]
req = urllib.request.Request(url, method=method, data=body.encode() if body else None,
                             headers={"Authorization": "Bearer " + os.environ["ARL_API_KEY"]})
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
}
check_match "ARL_GATEWAY_URL is the loopback URL" "$ARL_GATEWAY_URL" '^http://127\.0\.0\.1:[0-9]+$'
out=$(api POST /v1/sessions '{"image":"debian:12"}')
check_match "a session is created with ARL_API_KEY" "$out" '^201 '
sid=$(printf '%s' "${out#201 }" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
check_eq "gw_sessions lists it" "$(gw_sessions)" "$sid"
check_eq "gw_session_count counts it" "$(gw_session_count)" 1
gw_faults "500=1:endpoints=delete:max=1"
check_match "gw_faults injects a fault" "$(api DELETE "/v1/sessions/$sid")" '^500 '
check_match "the next delete works" "$(api DELETE "/v1/sessions/$sid")" '^204'
check_no_session "check_no_session: none left"
check_eq "gw_requests counts per endpoint" "$(gw_requests delete) $(gw_requests create)" "2 1"
server=$(pgrep -P "$GW_PID" python3 || true)
stop_gateway
check "stop_gateway stops the server" test -n "$server" -a ! -e "/proc/$server"
check_eq "and its temp dir is gone" "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name "fake-arl.$server.*" | wc -l)" "0"
summary
