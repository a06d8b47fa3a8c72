#!/usr/bin/env bash
# Out-of-contract answers of a gateway to an execute (../shared/arl-gateway.md's
# ExecuteResponse) are never recorded as an exit code: a scripted gateway (not the test
# gateway of tests/fake_gateway/, which always answers in contract) answers each job's step
# with a crafted body chosen by the step's argv, and the job must end infra ("malformed
# answer from the gateway"), or as the well-formed control answers say; an answer far larger
# than a step's output can make it is refused before it is parsed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools python3 sqlite3
make_tmp
GW_PID=
cleanup() { stop_server GW_PID; }
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=cleanup

timeout 600 python3 - "$TMP/deletes" >"$TMP/gw.out" 2>"$TMP/gw.err" <<'PY' &
import http.server, json, re, sys
DELETES = sys.argv[1]
ok = lambda code: {"output": {"stdout": "", "stderr": "", "exit_code": code}, "duration_ms": 1}
CASES = {
    "good": lambda n: [ok(0)] * n,
    "three": lambda n: [ok(0)] * (n - 1) + [ok(3)],
    "empty": lambda n: [ok(0)] * (n - 1) + [{}],
    "strexit": lambda n: [ok(0)] * (n - 1) + [{"output": {"exit_code": "0"}}],
    "wrap": lambda n: [ok(0)] * (n - 1) + [ok(4294967296)],
    "huge": lambda n: [ok(0)] * (n - 1) + [ok(1e300)],
    "frac": lambda n: [ok(0)] * (n - 1) + [ok(0.7)],
    "short": lambda n: [ok(0)],          # one result for a body of two steps
    "outlist": lambda n: [ok(0)] * (n - 1) + [{"output": [0]}],
    "noresults": lambda n: None,
    "flood": lambda n: [ok(0)] * n,  # well-formed, with 8 MiB of [0,0,...] beside it
}
sessions = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, code, obj):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")
    def do_GET(self):
        self.answer(404, {"error": "session not found"})
    def do_DELETE(self):
        with open(DELETES, "a") as f:
            f.write(self.path + "\n")
        self.answer(204, None)
    def do_POST(self):
        global sessions
        b = self.body()
        if self.path == "/v1/sessions":
            sessions += 1
            if b.get("image") == "noid":
                return self.answer(201, {"sandboxName": "s%d" % sessions})
            if b.get("image") == "oddid":
                return self.answer(201, {"id": "s%d\x1b[2J" % sessions})
            if b.get("image") == "bigcreate":
                return self.answer(201, {"id": "s%d" % sessions, "pad": "x" * (100 << 10)})
            return self.answer(201, {"id": "s%d" % sessions})
        if re.match(r"^/v1/sessions/[^/]+/execute$", self.path):
            steps = b["steps"]
            case = steps[-1]["command"][-1]
            results = CASES[case](len(steps))
            ans = {"results": results} if results is not None else {"x": 1}
            if case == "flood":
                ans["pad"] = [0] * (4 << 20)
            return self.answer(200, ans)
        self.answer(400, {"error": "unexpected"})
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("http://127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
PY
GW_PID=$!
server_url URL "$GW_PID" "$TMP/gw.out" || true
check "the scripted gateway started" test -n "$URL"
export ARL_GATEWAY_URL=$URL ARL_API_KEY=k

cat >"$TMP/j.yaml" <<EOF
version: 1
pools:
  gw: {backend: gateway, image: x, replicas: 4}
jobs:
  - name: "{{ item.c }}"
    foreach: {matrix: {c: [good, three, empty, strexit, wrap, huge, frac, short, outlist, noresults, flood]}}
    retries: 0
    steps: [{name: s, type: Command, command: [echo, "{{ item.c }}"]}]
EOF
runner run --progress none --db "$TMP/r.db" "$TMP/j.yaml"
check_eq "the run is incomplete (exit 3: infra)" "$RC" 3
got() { sql "$TMP/r.db" "SELECT state || ':' || ifnull(error_class, '') || ':' || ifnull(exit_code, '') FROM jobs WHERE name = '$1'"; }
check_eq "a well-formed exit 0 succeeds" "$(got good)" "Succeeded::0"
check_eq "a well-formed exit 3 fails with 3" "$(got three)" "Failed:failed:3"
for c in empty strexit wrap huge frac short outlist noresults; do
	check_eq "'$c' is infra, no exit code" "$(got "$c")" "Failed:infra:"
	check_match "... saying the answer is malformed" \
		"$(sql "$TMP/r.db" "SELECT error FROM jobs WHERE name = '$c'")" "malformed answer from the gateway"
done

# An answer is parsed whole: one far larger than a step's output can make it (2 x the
# capture limit + 64 KiB) is refused unread, not parsed (8 MiB of [0,0,...] cost ~300 MB).
check_eq "an 8 MiB execute answer is infra" "$(got flood)" "Failed:infra:"
check_match "... over the limit" "$(sql "$TMP/r.db" "SELECT error FROM jobs WHERE name = 'flood'")" \
	"larger than the limit of 2162688 bytes"

echo "# a create answered 2xx without a usable session id"
cat >"$TMP/c.yaml" <<EOF
version: 1
pools:
  noid: {backend: gateway, image: noid}
  oddid: {backend: gateway, image: oddid}
  big: {backend: gateway, image: bigcreate}
jobs:
  - {name: noid, pool: noid, retries: 0, steps: [{name: s, type: Command, command: [echo, good]}]}
  - {name: oddid, pool: oddid, retries: 0, steps: [{name: s, type: Command, command: [echo, good]}]}
  - {name: big, pool: big, retries: 0, steps: [{name: s, type: Command, command: [echo, good]}]}
EOF
: >"$TMP/deletes"
runner run --progress none --db "$TMP/c.db" "$TMP/c.yaml"
err_of() { sql "$TMP/c.db" "SELECT error_class || ': ' || error FROM jobs WHERE name = '$1'"; }
check_match "no id: infra, and a session may have been made" "$(err_of noid)" \
	"^infra: .*names no session id .*a session may have been made"
check_match "an answer over 64 KiB: infra, and a session may have been made" "$(err_of big)" \
	"^infra: .*larger than the limit.*|^infra: .*a session may have been made"
check_match "... (that hint)" "$(err_of big)" "a session may have been made"
check_match "an id with control characters: infra, the session it named deleted" "$(err_of oddid)" \
	"^infra: .*the session it named was deleted"
check_eq "... by its escaped name" "$(grep -c '^/v1/sessions/s[0-9]*%1B%5B2J$' "$TMP/deletes")" 1
check "no control character reached the terminal" eval "! grep -q \$'\\x1b' '$TMP/err' '$TMP/out'"

summary
