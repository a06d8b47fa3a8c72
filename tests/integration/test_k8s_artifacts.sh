#!/usr/bin/env bash
# Artifacts on the kubernetes backend, against the fake ARL API server: a collecting Task prints
# the files base64-encoded and the runner stores them as on the local backend (globs, maxSize,
# a symlink not followed, a pattern matching nothing, a failed attempt's files, the per-attempt
# budget of a Task's output), and `artifacts -o` writes them out.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
require_tools sha256sum sqlite3
make_tmp
start_fake --pool sandbox=2
DB=$TMP/k.db

cat >"$TMP/ka.yaml" <<'YAML'
version: 1
pools:
  sandbox: {backend: kubernetes, replicas: 2}
jobs:
  - name: ok
    artifacts:
      - path: "/workspace/out/*.json"
      - {path: /workspace/big.bin, maxSize: 1Ki}
      - path: "/workspace/with space.txt"
      - path: /workspace/none-such
    steps:
      - type: Command
        command: [sh, -c, 'mkdir -p /workspace/out && cd /workspace && echo one > out/a.json && printf "two\n" > out/b.json && ln -sf /etc/hostname out/evil.json && head -c 2000 /dev/zero > big.bin && echo sp > "with space.txt"']
  - name: failed
    artifacts: [{path: /workspace/log.txt}]
    steps:
      - {type: Command, command: [sh, -c, 'echo why > /workspace/log.txt; exit 3']}
  - name: budget
    artifacts: [{path: "/workspace/b*.bin", maxSize: 1Mi}]
    steps:
      - {type: Command, command: [sh, -c, 'cd /workspace && head -c 300000 /dev/urandom > b1.bin && head -c 300000 /dev/urandom > b2.bin']}
YAML
runner run --progress plain --db "$DB" --kubeconfig "$KC" "$TMP/ka.yaml"
check_eq "the run exits 1 (one job fails on purpose)" "$RC" 1
check_eq "validate does not warn about artifacts on kubernetes pools any more" \
	"$("$ARL_BATCH" validate "$TMP/ka.yaml" 2>&1 | grep -c warning || true)" 0

rows() {
	sql "$DB" "SELECT a.path, a.size, CASE WHEN a.sha256 IS NULL THEN '-' ELSE '+' END,
	  coalesce(a.error, '') FROM artifacts a JOIN attempts t ON t.id = a.attempt_id
	  JOIN jobs j ON j.id = t.job_id WHERE j.key = '$1' ORDER BY a.id"
}
check_eq "kubernetes: globs, maxSize, a symlink, a space, nothing matched" "$(rows ka/ok)" \
	"/workspace/out/a.json|4|+|
/workspace/out/b.json|4|+|
/workspace/out/evil.json|0|-|not kept: a symlink: not followed
/workspace/big.bin|2000|-|not kept: larger than its maxSize (2000 bytes; 1024 allowed)
/workspace/with space.txt|3|+|
/workspace/none-such|0|-|no file matches"
check_eq "the digest is the content's" \
	"$(sql "$DB" "SELECT sha256 FROM artifacts WHERE path = '/workspace/out/b.json'")" \
	"$(printf 'two\n' | sha256sum | cut -d' ' -f1)"
check_eq "a failed attempt keeps its files" "$(rows ka/failed)" "/workspace/log.txt|4|+|"
check_match "past the Task-output budget: a row saying so" "$(rows ka/budget)" \
	"^/workspace/b1.bin\|300000\|\+\|
/workspace/b2.bin\|300000\|-\|not kept: past the [0-9]+ bytes an attempt keeps on kubernetes"

runner artifacts ka/ok --db "$DB" -o "$TMP/out-dir"
check_eq "artifacts -o: exit 0" "$RC" 0
check_eq "artifacts -o writes them" "$(cat "$TMP/out-dir/workspace/with space.txt")" "sp"

summary
