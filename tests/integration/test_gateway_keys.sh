#!/usr/bin/env bash
# Where the API key goes (docs/gateway.md, "API keys"): only to the gateway the operator bound
# it to. $ARL_API_KEY goes to $ARL_GATEWAY_URL's origin alone, further gateways take the keys
# of $ARL_GATEWAY_CREDENTIALS (a 0600 file of the runner's user); a job file naming another
# url, or a results database whose leases name one, gets no key sent there; a job file cannot
# name a key file. A second tiny server (not the test gateway, tests/fake_gateway/) logs the
# Authorization header of every request it gets.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

require_gateway
make_tmp
SPY_PID=
cleanup() {
	stop_server SPY_PID
	stop_gateway
}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=cleanup
start_gateway

# The spy: answers 401 to everything, logs "METHOD PATH AUTHORIZATION" a line.
timeout 600 python3 - "$TMP/spy.log" >"$TMP/spy.out" 2>/dev/null <<'PY' &
import http.server, sys
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        log.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Authorization", "-")))
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = b'{"error":"unauthorized"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_DELETE = do_PUT = handle_one
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("http://127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
PY
SPY_PID=$!
: >"$TMP/spy.log"
server_url SPY "$SPY_PID" "$TMP/spy.out" || true
check "the spy server started" test -n "$SPY"
spy_keys() { grep -v ' -$' "$TMP/spy.log" | grep -c . || true; }

cat >"$TMP/other.yaml" <<EOF
version: 1
pools:
  gw: {backend: gateway, url: "$SPY", image: arl-test, replicas: 1}
jobs:
  - {name: a, steps: [{name: s, type: Command, command: [echo, hi]}]}
EOF

echo "# a job file's pool url that is not \$ARL_GATEWAY_URL's gets no key"
runner run --progress none --db "$TMP/other.db" "$TMP/other.yaml"
check_eq "the run does not start (exit 3)" "$RC" 3
check_match "the message says no key is bound to that origin" "$(cat "$TMP/err")" \
	"no API key is bound to http://127.0.0.1:[0-9]+"
check_eq "the spy got no Authorization header" "$(spy_keys)" 0
check "the key is not printed" eval "! grep -qF -- '$ARL_API_KEY' '$TMP/err' '$TMP/out'"
check_eq "not even a request without one" "$(grep -c . "$TMP/spy.log" || true)" 0

echo "# \$ARL_GATEWAY_CREDENTIALS binds another gateway to its own key"
printf '# operator keys\n%s spy-key\n' "$SPY" >"$TMP/creds"
chmod 0644 "$TMP/creds"
ARL_GATEWAY_CREDENTIALS=$TMP/creds runner run --progress none --db "$TMP/c.db" "$TMP/other.yaml"
check_eq "a credentials file others can read is refused (exit 3)" "$RC" 3
check_match "... saying so" "$(cat "$TMP/err")" "not readable or writable by others"
chmod 0600 "$TMP/creds"
ARL_GATEWAY_CREDENTIALS=$TMP/creds runner run --progress none --db "$TMP/c.db" "$TMP/other.yaml"
check_eq "with mode 0600 the spy's 401 fails the run (exit 3)" "$RC" 3
check_eq "the spy got its own key" "$(grep -c 'Bearer spy-key$' "$TMP/spy.log" || true)" "$(grep -c . "$TMP/spy.log")"
check "... and never \$ARL_API_KEY" eval "! grep -qF -- '$ARL_API_KEY' '$TMP/spy.log'"
: >"$TMP/spy.log"

echo "# apiKeyFile in a job file is refused where it is written"
echo "s3cr3t-contents" >"$TMP/secret"
cat >"$TMP/keyfile.yaml" <<EOF
version: 1
pools:
  gw: {backend: gateway, image: arl-test, replicas: 1,
       apiKeyFile: $TMP/secret}
jobs:
  - {name: a, steps: [{name: s, type: Command, command: [echo, hi]}]}
EOF
runner validate "$TMP/keyfile.yaml"
check_eq "validate exits 2" "$RC" 2
check_match "file:line:col of the key" "$(cat "$TMP/err" "$TMP/out")" "keyfile.yaml:4:[0-9]+: .*apiKeyFile"
runner run --progress none --db "$TMP/kf.db" "$TMP/keyfile.yaml"
check_eq "run exits 2" "$RC" 2
check "the file's contents are not printed" eval "! grep -q s3cr3t-contents '$TMP/err' '$TMP/out'"

cat >"$TMP/ok.yaml" <<EOF
version: 1
pools:
  gw: {backend: gateway, image: arl-test, replicas: 1}
jobs:
  - {name: a, steps: [{name: s, type: Command, command: [echo, hi]}]}
EOF
echo "# a URL with credentials is refused, not printed, not recorded (also http://@host)"
for u in "http://@127.0.0.1:1" "http://user:pw-$$@127.0.0.1:1"; do
	sed "s|url: \"$SPY\"|url: \"$u\"|" "$TMP/other.yaml" >"$TMP/cred.yaml"
	runner validate "$TMP/cred.yaml"
	check_eq "validate refuses url '$u' (exit 2)" "$RC" 2
	check_match "... at its file:line:col" "$(cat "$TMP/err" "$TMP/out")" "cred.yaml:3:[0-9]+: .*credentials"
done
ARL_GATEWAY_URL="http://user:pw-$$@${GW_URL#http://}" runner run --progress none --db "$TMP/cr.db" "$TMP/ok.yaml"
check_eq "\$ARL_GATEWAY_URL with credentials: the run does not start (exit 3)" "$RC" 3
check_match "... saying why" "$(cat "$TMP/err")" "must not hold credentials"
check "... without printing them" eval "! grep -q 'pw-$$' '$TMP/err' '$TMP/out'"
check "... or recording them" eval "! grep -qa 'pw-$$' '$TMP/cr.db' 2>/dev/null"

echo "# gc --yes with a database whose lease names another gateway sends it no key"
runner run --progress none --db "$TMP/gc.db" "$TMP/ok.yaml"
check_eq "a run on the test gateway succeeds" "$RC" 0
sql "$TMP/gc.db" "INSERT INTO leases (run_id, backend, location, name, job_key, attempt, created_at)
	SELECT id, 'gateway', '$SPY', 'crafted-1', 'a', 1, '2026-01-01T00:00:00Z' FROM runs;
	INSERT INTO leases (run_id, backend, location, name, job_key, attempt, created_at)
	SELECT id, 'gateway', '$SPY', 'crafted-3' || char(27) || '[2J', 'a' || char(7), 1, '2026-01-01T00:00:00Z' FROM runs;
	INSERT INTO leases (run_id, backend, location, name, job_key, attempt, created_at)
	SELECT id, 'gateway', '$GW_URL', 'crafted-2', 'a', 1, '2026-01-01T00:00:00Z' FROM runs"
runner gc --backend gateway --db "$TMP/gc.db" --yes
check_eq "gc exits 3 (a session it may not delete)" "$RC" 3
check_match "it says no key is bound to the crafted location" "$(cat "$TMP/err")" "no API key is bound to"
check_eq "the spy got no request" "$(grep -c . "$TMP/spy.log" || true)" 0
check_match "the lease at \$ARL_GATEWAY_URL is done with the operator's key" "$(cat "$TMP/out")" \
	"session crafted-2 .*already gone"
check_eq "the crafted leases stay for an operator who binds a key" \
	"$(sql "$TMP/gc.db" "SELECT count(*) FROM leases WHERE location = '$SPY'")" 2
check "a lease's control characters are printed escaped" eval "! grep -q \$'[\\x1b\\x07]' '$TMP/out' '$TMP/err'"
check_match "... as \\x1b" "$(cat "$TMP/out")" 'crafted-3\\x1b\[2J'
runner gc --backend gateway --db "$TMP/gc.db"
check "... also by gc without --yes" eval "! grep -q \$'[\\x1b\\x07]' '$TMP/out' '$TMP/err'"
check_no_session "no session left on the test gateway"

echo "# prune keeps a run that still has leases (gc would not see them again)"
runner prune --keep 0 --db "$TMP/gc.db"
check_eq "prune exits 0" "$RC" 0
check_match "it says it keeps the run and why" "$(cat "$TMP/out")" "keeping run 1 .*still has sessions"
check_eq "the run and its leases stay" "$(sql "$TMP/gc.db" "SELECT (SELECT count(*) FROM runs) || ':' || count(*) FROM leases")" "1:2"
sql "$TMP/gc.db" "DELETE FROM leases"
runner prune --keep 0 --db "$TMP/gc.db"
check_eq "without leases it is pruned" "$RC:$(sql "$TMP/gc.db" "SELECT count(*) FROM runs")" "0:0"

summary
