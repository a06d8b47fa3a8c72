#!/usr/bin/env bash
# Secrets (issue 16): `secrets: [NAME]` passes the runner's environment variable NAME to steps;
# its value is never stored. A canary printed by steps (stdout, stderr, split across writes,
# cut by the output's elision, in the metrics line, in a failure's reason) appears nowhere
# under the database's directory (the database, its -wal, the events file, the report, the
# run's own stderr), while the step did receive it (its sha256 is checked). A missing or too
# short secret is an error naming it before anything runs; the spec hash has the name, not
# the value.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 sha256sum
make_tmp
D=$TMP/db
mkdir -p "$D"
DB=$D/s.db

CANARY="sk-canary-$$-$RANDOM$RANDOM-zq"
WANT_SHA=$(printf %s "$CANARY" | sha256sum | cut -d' ' -f1)
# The canary's head cut at the elision of a 1 KiB capture (512 bytes kept each side).
PAD=$(head -c 500 /dev/zero | tr '\0' a)

cat >"$TMP/s.yaml" <<YAML
version: 1
secrets: [CANARY_KEY]
pools:
  p: {replicas: 2, isolation: none}
jobs:
  - name: prints
    steps:
      - type: Command
        command: [sh, -c, 'printf %s "\$CANARY_KEY" | sha256sum; echo "out \$CANARY_KEY"; echo "err \$CANARY_KEY" >&2; printf "%s" "\$(echo \$CANARY_KEY | cut -c1-7)"; sleep 0.2; printf "%s\n" "\$(echo \$CANARY_KEY | cut -c8-)"; printf "{\"score\": 1, \"leak\": \"%s\"}\n" "\$CANARY_KEY"']
        metrics: json
  - name: fails
    steps:
      - {type: Command, command: [sh, -c, 'echo "cannot log in with \$CANARY_KEY" >&2; exit 3']}
  - name: files
    artifacts: [{path: "/workspace/out/*"}]
    steps:
      - {type: Command, command: [sh, -c, 'mkdir -p out && echo kept >"out/\$CANARY_KEY.txt"']}
  - name: cut
    steps:
      - {type: Command, command: [sh, -c, 'printf "%s%s" "$PAD" "\$CANARY_KEY"; head -c 2000 /dev/zero | tr "\\\\0" b']}
YAML

echo "# a missing or short secret"
(
	unset CANARY_KEY
	runner run --progress none --db "$DB" "$TMP/s.yaml"
	check_match "missing: exit 2, named" "$RC|$(cat "$TMP/err")" "^2\\|.*secret 'CANARY_KEY' is not set in the environment"
)
CANARY_KEY=abc runner run --progress none --db "$DB" "$TMP/s.yaml"
check_match "shorter than 4 bytes: exit 2, not its value" "$RC|$(cat "$TMP/err")" \
	"^2\\|.*secret 'CANARY_KEY' is shorter than 4 bytes"
check "no run was recorded" test ! -e "$DB"

echo "# a run whose steps print the canary"
export CANARY_KEY=$CANARY
runner run --progress plain --capture-max 1024 --db "$DB" --events "$D/events.jsonl" "$TMP/s.yaml"
check_eq "exit 1 (one job fails)" "$RC" 1
cp "$TMP/err" "$D/runner-stderr.txt"
runner show --db "$DB" s/prints
check_match "the step received the value (its sha256)" "$(cat "$TMP/out")" "$WANT_SHA"
check_match "stdout masked" "$(cat "$TMP/out")" "out \\*\\*\\*"
check_match "stderr masked" "$(cat "$TMP/out")" "err \\*\\*\\*"
check_match "split across writes, still masked" "$(cat "$TMP/out")" $'\n *\\*\\*\\*\n'
check_match "metrics masked, others kept" "$(cat "$TMP/out")" "metrics: +leak=\\*\\*\\*.*score=1|metrics: +score=1.*leak=\\*\\*\\*"
check_eq "a value cut by the elision: the part before it masked too" \
	"$(sql "$DB" "SELECT substr(s.stdout, 499, 16) FROM steps s JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id WHERE j.key = 's/cut'")" \
	"aa************"$'\n'"["
check_eq "an artifact named after the value: its path masked" \
	"$(sql "$DB" "SELECT path FROM artifacts")" "/workspace/out/***.txt"
runner results --db "$DB" --format json
cp "$TMP/out" "$D/results.json"
check_match "the failure's reason is masked" "$(cat "$TMP/out")" "cannot log in with \\*\\*\\*"
runner results --db "$DB" --format csv
cp "$TMP/out" "$D/results.csv"
runner results --db "$DB" --format junit
cp "$TMP/out" "$D/results.xml"
runner report --db "$DB" -o "$D/report.html"
check_eq "report written" "$RC" 0
# The -wal of a database still open: a reader holds it while we look.
sqlite3 "$DB" "PRAGMA journal_mode" >/dev/null
ls "$D" >"$TMP/files"
leaks=$(grep -rlaF -e "$CANARY" -e "${CANARY:0:12}" -e "${CANARY:7}" "$D" "$TMP/out" "$TMP/err" || true)
check_eq "no trace of the value under the database's directory (db, wal, events, report, results, stderr)" "$leaks" ""
check_match "the events file was written" "$(wc -c <"$D/events.jsonl")" "^[1-9]"
check_eq "the secret's value is in no table (checked in SQL too)" \
	"$(sql "$DB" "SELECT count(*) FROM steps WHERE instr(CAST(stdout AS TEXT), '$CANARY') OR instr(CAST(stderr AS TEXT), '$CANARY')")" 0

echo "# a secret's value given as a parameter too"
sed 's/^secrets:.*/&\nparams: {model: x}/' "$TMP/s.yaml" >"$TMP/p.yaml"
mkdir -p "$TMP/p"
runner run --progress none --db "$TMP/p/p.db" --only prints --set model="$CANARY" "$TMP/p.yaml"
check_eq "runs.params holds it masked" "$(sql "$TMP/p/p.db" "SELECT params FROM runs")" '{"model":"***"}'
runner show --db "$TMP/p/p.db" p/prints
check_match "show's params line has it masked" "$(cat "$TMP/out")" "  params: +model=\\*\\*\\*"
check "show does not print the secret" test "$(grep -c -- "$CANARY" "$TMP/out")" = 0
cat >"$TMP/n.yaml" <<'YAML'
version: 1
secrets: [CANARY_KEY]
params: {model: x}
pools: {p: {replicas: 1, isolation: none}}
jobs:
  - name: "eval-{{ params.model }}"
    steps: [{type: Command, command: ["true"]}]
  - name: lab
    labels: {model: "{{ params.model }}"}
    steps: [{type: Command, command: ["true"]}]
YAML
mkdir -p "$TMP/n"
runner run --progress none --db "$TMP/n/n.db" --events "$TMP/n/ev.jsonl" --set model="$CANARY" "$TMP/n.yaml"
check_match "a secret's value rendered into a job's name: the run is refused (exit 2)" \
	"$RC|$(cat "$TMP/err")" "^2\\|.*job 'n/eval-\\*\\*\\*': its name holds the value of a secret"
runner run --progress none --db "$TMP/n/n.db" --events "$TMP/n/ev.jsonl" --only lab --set model="$CANARY" "$TMP/n.yaml"
check_match "... into a job's labels too" "$RC|$(cat "$TMP/err")" "^2\\|.*job 'n/lab': its labels hold"
check_eq "... before anything is recorded: the value is nowhere" \
	"$(grep -rlaF -- "$CANARY" "$TMP/n" "$TMP/err" || true)" ""

echo "# the spec hash has the name, not the value"
H1=$(sql "$DB" "SELECT spec_hash FROM jobs WHERE key = 's/prints'")
CANARY_KEY="another-value-$RANDOM" runner run --progress none --db "$DB" --resume "$TMP/s.yaml"
check_eq "--resume with another value skips the succeeded jobs" \
	"$(sql "$DB" "SELECT state FROM jobs WHERE run_id = 2 AND key = 's/prints'")" "Skipped"
sed '/^secrets:/d' "$TMP/s.yaml" >"$TMP/s2.yaml"
mkdir -p "$TMP/o" && cp "$TMP/s2.yaml" "$TMP/o/s.yaml"
runner run --progress none --db "$TMP/o/o.db" "$TMP/o/s.yaml"
check "a file without the secret hashes differently" \
	test "$(sql "$TMP/o/o.db" "SELECT spec_hash FROM jobs WHERE key = 's/prints'")" != "$H1"

summary
