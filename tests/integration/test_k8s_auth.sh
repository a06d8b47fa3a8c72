#!/usr/bin/env bash
# Credentials and TLS on the kubernetes backend, each carrying a real run against the fake
# ARL API server: HTTPS with a CA from certificate-authority-data, bearer tokens, client
# certificates, an exec credential plugin (run once, its credential cached), a token file
# rotated in the middle of a run (401, re-read, retry), and the messages for 401 and 403.
# No credential may show up in any output or in the results database.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
require_tools openssl
make_tmp

JOB=$SOURCE_DIR/jobs/01-basic.yaml
TOKEN=SECRET-tok-$RANDOM$RANDOM

# no_secret DESC SECRET: the secret is nowhere in the last run's output, in any database
# (with its WAL) or in any event stream (--events) written so far.
no_secret() {
	local hits
	hits=$(cat "$TMP/out" "$TMP/err" "$TMP"/*.db "$TMP"/*.db-wal "$TMP"/*.events 2>/dev/null |
		grep -c -a -- "$2" || true)
	check_eq "$1: the credential appears in no output, database or event stream" "$hits" 0
}

# user_kubeconfig FILE USER-YAML: the server's kubeconfig with its user entry replaced.
user_kubeconfig() {
	python3 - "$KC" "$1" "$2" <<'EOF'
import sys, yaml
kc = yaml.safe_load(open(sys.argv[1]))
kc["users"] = [{"name": kc["users"][0]["name"], "user": yaml.safe_load(sys.argv[3])}]
yaml.safe_dump(kc, open(sys.argv[2], "w"))
EOF
}

echo "# HTTPS with a CA and a bearer token"
start_fake --tls --token "$TOKEN" --pool sandbox=2
check_match "the server speaks HTTPS" "$FAKE_URL" '^https://'
check "the kubeconfig carries the CA as certificate-authority-data" \
	grep -q certificate-authority-data "$KC"
runner run --progress none --db "$TMP/tls.db" --events "$TMP/tls.events" --backend kubernetes --kubeconfig "$KC" "$JOB"
check_eq "a run over TLS with a token succeeds" "$RC" 0
no_secret "token" "$TOKEN"
check_ge "the event stream was written" "$(wc -l <"$TMP/tls.events")" 5
check_eq "every request carried the token (no 401 in the log)" \
	"$(fake_get /_fake/requests | grep -c '"status":401' || true)" 0

echo "# a wrong token: 401 says which request was refused"
user_kubeconfig "$TMP/bad.kc" "{token: SECRET-wrong-token}"
runner run --progress none --db "$TMP/bad.db" --events "$TMP/bad.events" --backend kubernetes --kubeconfig "$TMP/bad.kc" "$JOB"
check_eq "run exits 3" "$RC" 3
check_match "the error names the verb and the object" "$(cat "$TMP/err")" \
	"unauthorized: cannot get warmpools 'sandbox' in namespace 'default'"
no_secret "wrong token" "SECRET-wrong-token"

echo "# no CA: the server's certificate is refused"
python3 - "$KC" "$TMP/noca.kc" <<'EOF'
import sys, yaml
kc = yaml.safe_load(open(sys.argv[1]))
del kc["clusters"][0]["cluster"]["certificate-authority-data"]
yaml.safe_dump(kc, open(sys.argv[2], "w"))
EOF
runner run --progress none --db "$TMP/noca.db" --backend kubernetes --kubeconfig "$TMP/noca.kc" "$JOB"
check_eq "run exits 3" "$RC" 3
check_match "the error is about the certificate" "$(cat "$TMP/err")" "(certificate|SSL)"

echo "# tls-server-name: the certificate is checked against that name, not the URL's host"
# tls_kubeconfig FILE NAME: the server's kubeconfig with tls-server-name NAME.
tls_kubeconfig() {
	python3 - "$KC" "$1" "$2" <<'EOF'
import sys, yaml
kc = yaml.safe_load(open(sys.argv[1]))
kc["clusters"][0]["cluster"]["tls-server-name"] = sys.argv[3]
yaml.safe_dump(kc, open(sys.argv[2], "w"))
EOF
}
tls_kubeconfig "$TMP/sni.kc" localhost
runner run --progress none --db "$TMP/sni.db" --backend kubernetes --kubeconfig "$TMP/sni.kc" "$JOB"
check_eq "server 127.0.0.1 with tls-server-name localhost (in the certificate): succeeds" "$RC" 0
tls_kubeconfig "$TMP/sni-bad.kc" wrong.example.test
runner run --progress none --db "$TMP/sni-bad.db" --backend kubernetes --kubeconfig "$TMP/sni-bad.kc" "$JOB"
check_eq "tls-server-name not in the certificate: refused (exit 3)" "$RC" 3
check_match "... naming the certificate problem" "$(cat "$TMP/err")" "(certificate|SSL|subject)"

echo "# an exec credential plugin, run once and cached until its expiry"
cat >"$TMP/plugin.sh" <<EOF
#!/bin/sh
echo run >>"$TMP/plugin.count"
case "\$KUBERNETES_EXEC_INFO" in *'"interactive":false'*) ;; *) echo "bad exec info" >&2; exit 2;; esac
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2099-01-01T00:00:00Z"}}\n' "\$PLUGIN_TOKEN"
EOF
chmod +x "$TMP/plugin.sh"
user_kubeconfig "$TMP/exec.kc" "{exec: {apiVersion: client.authentication.k8s.io/v1, command: $TMP/plugin.sh, interactiveMode: Never, env: [{name: PLUGIN_TOKEN, value: $TOKEN}]}}"
runner run --progress none --db "$TMP/exec.db" --events "$TMP/exec.events" --backend kubernetes --kubeconfig "$TMP/exec.kc" "$JOB"
check_eq "a run authenticated by an exec plugin succeeds" "$RC" 0
check_eq "the plugin ran once for the whole run" "$(wc -l <"$TMP/plugin.count")" 1
no_secret "exec token" "$TOKEN"
user_kubeconfig "$TMP/exec-bad.kc" "{exec: {apiVersion: client.authentication.k8s.io/v1, command: $TMP/no-such-plugin, installHint: 'install it from the intranet'}}"
runner run --progress none --db "$TMP/exec-bad.db" --backend kubernetes --kubeconfig "$TMP/exec-bad.kc" "$JOB"
check_eq "a missing plugin: exit 3" "$RC" 3
check_match "... with its installHint" "$(cat "$TMP/err")" "no-such-plugin.*install it from the intranet"
stop_fake

echo "# a client certificate"
start_fake --tls --client-cert --pool sandbox=2
check "the kubeconfig carries client-certificate-data" grep -q client-certificate-data "$KC"
runner run --progress none --db "$TMP/cert.db" --backend kubernetes --kubeconfig "$KC" "$JOB"
check_eq "a run authenticated by a client certificate succeeds" "$RC" 0
# The same certificate from an exec plugin (clientCertificateData/clientKeyData).
python3 - "$KC" "$TMP/cred.json" <<'EOF'
import base64, json, sys, yaml
u = yaml.safe_load(open(sys.argv[1]))["users"][0]["user"]
pem = lambda k: base64.b64decode(u[k]).decode()
json.dump({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
           "status": {"clientCertificateData": pem("client-certificate-data"),
                      "clientKeyData": pem("client-key-data")}}, open(sys.argv[2], "w"))
EOF
printf '#!/bin/sh\ncat "%s"\n' "$TMP/cred.json" >"$TMP/cert-plugin.sh"
chmod +x "$TMP/cert-plugin.sh"
user_kubeconfig "$TMP/cert-exec.kc" "{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: $TMP/cert-plugin.sh}}"
runner run --progress none --db "$TMP/cert-exec.db" --backend kubernetes --kubeconfig "$TMP/cert-exec.kc" "$JOB"
check_eq "a run with a client certificate from an exec plugin (v1beta1) succeeds" "$RC" 0
no_secret "client key" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["clientKeyData"].splitlines()[1])' "$TMP/cred.json")"
stop_fake

echo "# a token file rotated during the run"
start_fake --token SECRET-first --pool sandbox=1 --no-kubeconfig-credentials
printf 'SECRET-first\n' >"$TMP/token"
user_kubeconfig "$TMP/file.kc" "{tokenFile: $TMP/token}"
cat >"$TMP/slow.yaml" <<'EOF'
version: 1
pools:
  sandbox: {backend: kubernetes}
jobs:
  - name: slow
    timeout: 30s
    steps:
      - {name: wait, type: Command, command: [sleep, "2"]}
      - {name: after, type: Command, command: [echo, rotated]}
EOF
"$ARL_BATCH" run --progress none --db "$TMP/file.db" --events "$TMP/file.events" --kubeconfig "$TMP/file.kc" "$TMP/slow.yaml" \
	>"$TMP/out" 2>"$TMP/err" &
pid=$!
# Rotate while the first step runs (its Task Running), not after a guessed second: the run
# has used the old token and its next Task needs the new one.
task_running() { fake_get /_fake/state | grep -q '"state": *"Running"'; }
check "the first step is running before the rotation" wait_until 120 "the first step's Task to run" task_running
printf 'SECRET-second\n' >"$TMP/token.new"
mv "$TMP/token.new" "$TMP/token"
fake_post /_fake/tokens "SECRET-second"
set +e
wait "$pid"
RC=$?
set -e
check_eq "the run survives the rotation" "$RC" 0
check_eq "the step after the rotation ran" \
	"$(sql "$TMP/file.db" "SELECT rtrim(stdout, char(10)) FROM steps WHERE name = 'after'")" rotated
no_secret "rotated token" "SECRET-second"
check_eq "nothing left behind" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"
stop_fake

echo "# 403: which verb on which resource was refused"
start_fake --pool sandbox=1 --faults "forbid=create/sandboxes"
runner run --progress none --db "$TMP/403.db" --backend kubernetes --kubeconfig "$KC" "$JOB"
check_eq "run exits 3 (infra)" "$RC" 3
check_match "the attempt says what was forbidden" \
	"$(sql "$TMP/403.db" "SELECT error FROM attempts LIMIT 1")" \
	"forbidden: cannot create sandboxes in namespace 'default'"
stop_fake

echo "# a watch that is forbidden fails the run at its start"
start_fake --pool sandbox=1 --faults "forbid=list/tasks"
runner run --progress none --db "$TMP/403w.db" --backend kubernetes --kubeconfig "$KC" "$JOB"
check_eq "run exits 3" "$RC" 3
check_match "the message names the list" "$(cat "$TMP/err")" \
	"forbidden: cannot list tasks in namespace 'default'"

summary
