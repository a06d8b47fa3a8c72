#!/usr/bin/env bash
# Secrets and parameters on the kubernetes backend (issue 16), against the fake ARL API server:
# the step gets the secret (from the runner's environment: the server does not have it), what
# it prints is masked, and the value is nowhere under the database's directory; a parameter
# renders into the pool's jobs as on the local backend.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
require_tools sha256sum
make_tmp
unset CANARY_KEY
start_fake --pool sandbox=2 # its steps see the server's environment: no canary there

CANARY="sk-k8s-canary-$$-$RANDOM$RANDOM"
WANT_SHA=$(printf %s "$CANARY" | sha256sum | cut -d' ' -f1)
D=$TMP/db
mkdir -p "$D"
cat >"$TMP/ks.yaml" <<'YAML'
version: 1
secrets: [CANARY_KEY]
params: {model: m1}
pools:
  sandbox: {backend: kubernetes, replicas: 2}
jobs:
  - name: prints
    steps:
      - type: Command
        command: [sh, -c, 'printf %s "$CANARY_KEY" | sha256sum; echo "model={{ params.model }} key=$CANARY_KEY"; echo "err $CANARY_KEY" >&2; printf "{\"leak\": \"%s\"}\n" "$CANARY_KEY"; exit 2']
        metrics: json
YAML
CANARY_KEY=$CANARY runner run --progress plain --db "$D/k.db" --kubeconfig "$KC" --events "$D/ev.jsonl" \
	--set model=m2 "$TMP/ks.yaml"
check_eq "the job fails (exit 2 on purpose): run exit 1" "$RC" 1
cp "$TMP/err" "$D/stderr.txt"
runner show --db "$D/k.db" ks/prints
check_match "the step received the secret (its sha256)" "$(cat "$TMP/out")" "$WANT_SHA"
check_match "stdout masked, the parameter rendered" "$(cat "$TMP/out")" "model=m2 key=\\*\\*\\*"
check_match "stderr masked" "$(cat "$TMP/out")" "err \\*\\*\\*"
check_match "metrics masked" "$(cat "$TMP/out")" "leak=\\*\\*\\*"
runner report --db "$D/k.db" -o "$D/report.html"
runner results --db "$D/k.db" --format json
cp "$TMP/out" "$D/results.json"
leaks=$(grep -rlaF -e "$CANARY" "$D" "$TMP/out" "$TMP/err" || true)
check_eq "no trace of the value under the database's directory" "$leaks" ""

summary
