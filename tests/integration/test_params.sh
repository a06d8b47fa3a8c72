#!/usr/bin/env bash
# Parameters (issue 16): 'params:' defaults, --set and --set-file on run and validate,
# {{ params.NAME }} in steps, names and the file's name; unknown and undefined names are errors
# (the latter at FILE:LINE:COL); runs.params records them; a param a job uses is in its spec
# hash (--resume runs it again), one it does not use is not; two runs with different params
# diff by key.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3
make_tmp
D=$TMP
DB=$D/p.db

cat >"$D/ev.yaml" <<'YAML'
version: 1
name: "ev-{{ params.model }}"
params:
  model: gpt-4o
  temperature: "0.2"
  prompt: ~
  unused: x
pools:
  p: {replicas: 2, isolation: none}
jobs:
  - name: "case-{{ item.id }}"
    foreach: {items: [{id: 1}, {id: 2}, {id: 3}]}
    steps:
      - type: Command
        command: [sh, -c, 'echo "{{ params.model }} t={{ params.temperature }} p={{ params.prompt }}"']
  - name: plain
    steps: [{type: Command, command: ["true"]}]
YAML

echo "# validate"
runner validate "$D/ev.yaml"
check_match "a required param without --set is an error at its line" "$RC|$(cat "$TMP/err")" \
	"^2\\|.*ev.yaml:6:11: error: parameter 'prompt' has no default: give it with --set prompt=VALUE"
runner validate --set prompt=hi "$D/ev.yaml"
check_eq "validate --set prompt=hi passes" "$RC" 0
runner validate --set prompt=hi --set modle=x "$D/ev.yaml"
check_match "an unknown --set name is an error" "$RC|$(cat "$TMP/err")" \
	"^2\\|.*--set modle: no job file declares a parameter 'modle'"
runner validate --set noequals "$D/ev.yaml"
check_match "--set without '=' is a usage error" "$RC|$(cat "$TMP/err")" "^2\\|.*expected NAME=VALUE"
sed 's/params.temperature/params.temprature/' "$D/ev.yaml" >"$D/bad.yaml"
runner validate --set prompt=hi "$D/bad.yaml"
check_match "a template naming an undefined param: FILE:LINE:COL" "$RC|$(cat "$TMP/err")" \
	"^2\\|.*bad.yaml:15:27: error: '\\{\\{ params.temprature \\}\\}': the file declares no parameter 'temprature'"

runner run --dry-run --set prompt=hi --set model=m9 "$D/ev.yaml"
check_match "--dry-run says the parameters (stderr: stdout is the plan)" "$RC|$(cat "$TMP/err")|$(head -1 "$TMP/out")" \
	"^0\\|.*ev.yaml: params: model=m9 temperature=0.2 prompt=hi unused=x\\|KEY +POOL"

echo "# run: defaults, --set, --set-file"
printf 'from a file\n' >"$D/prompt.txt"
runner run --progress none --db "$DB" --set-file prompt="$D/prompt.txt" "$D/ev.yaml"
check_eq "run with defaults and --set-file: exit 0" "$RC" 0
runner show --db "$DB" ev/case-1
check_match "steps saw the defaults and the file's content (one newline dropped)" "$(cat "$TMP/out")" \
	"gpt-4o t=0.2 p=from a file"
check_eq "runs.params records every param" \
	"$(sql "$DB" "SELECT name, params FROM runs WHERE id = 1")" \
	'ev-gpt-4o|{"model":"gpt-4o","temperature":"0.2","prompt":"from a file","unused":"x"}'
runner run --progress none --db "$DB" --events "$D/ev.jsonl" --set model=m2 --set prompt=hi --set temperature=0.7 "$D/ev.yaml"
check_eq "run with --set model=m2: exit 0" "$RC" 0
check_match "the run.started event carries the params" "$(head -1 "$D/ev.jsonl")" \
	'"event":"run.started".*"params":\{"model":"m2","temperature":"0.7","prompt":"hi","unused":"x"\}'
runner show --db "$DB" --run 2 ev/case-2
check_match "--set overrides defaults" "$(cat "$TMP/out")" "m2 t=0.7 p=hi"
check_match "show says the run's params" "$(cat "$TMP/out")" \
	"  params: +model=m2, temperature=0.7, prompt=hi, unused=x"
check_eq "keys do not include the param: the same keys in both runs" \
	"$(sql "$DB" "SELECT group_concat(key, ',') FROM (SELECT key FROM jobs WHERE run_id = 2 ORDER BY key)")" \
	"ev/case-1,ev/case-2,ev/case-3,ev/plain"
check_eq "the run's name renders the param" "$(sql "$DB" "SELECT name FROM runs WHERE id = 2")" "ev-m2"
runner runs --db "$DB" --format json
check_match "runs --format json shows the params" "$(tr -d ' \t\n' <"$TMP/out")" '"params":\{"model":"m2","temperature":"0.7","prompt":"hi","unused":"x"\}'
runner diff --db "$DB" 1 2
check_match "diff of the two models matches jobs by key" "$(cat "$TMP/out")" \
	"still passing 4, added 0, missing 0"
runner results --db "$DB" --run 2 --format junit
check_match "JUnit: a property per param" "$(cat "$TMP/out")" '<property name="arl-batch.param.model" value="m2"/>'
runner report --db "$DB" --run 2 -o "$D/r.html"
check_match "the report shows the params" "$(cat "$D/r.html")" "<span>model <b>m2</b></span>"

echo "# the spec hash and --resume"
H=$(sql "$DB" "SELECT key || '=' || spec_hash FROM jobs WHERE run_id = 1 ORDER BY key")
H2=$(sql "$DB" "SELECT key || '=' || spec_hash FROM jobs WHERE run_id = 2 ORDER BY key")
check_eq "a job using no param keeps its hash across params" \
	"$(echo "$H" | grep plain)" "$(echo "$H2" | grep plain)"
check "jobs using a param change hash with it" test "$(echo "$H" | grep case-1)" != "$(echo "$H2" | grep case-1)"
runner run --progress none --db "$DB" --run-name ev-m2 --resume --set model=m2 --set prompt=hi --set temperature=0.7 "$D/ev.yaml"
check_eq "--resume, same params: every job skipped" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = 3 AND state = 'Skipped'")" 4
runner run --progress none --db "$DB" --run-name ev-m2 --resume --set model=m2 --set prompt=hi --set temperature=0.8 "$D/ev.yaml"
check_eq "--resume, a used param changed: those jobs run, the rest skipped" \
	"$(sql "$DB" "SELECT group_concat(name || ':' || state, ',') FROM (SELECT name, state FROM jobs WHERE run_id = 4 ORDER BY name)")" \
	"case-1:Succeeded,case-2:Succeeded,case-3:Succeeded,plain:Skipped"
runner run --progress none --db "$DB" --run-name ev-m2 --resume --set model=m2 --set prompt=hi --set temperature=0.8 --set unused=y "$D/ev.yaml"
check_eq "--resume, only an unused param changed: every job skipped" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE run_id = 5 AND state = 'Skipped'")" 4
runner run --progress none --db "$DB" --set prompt=hi --set nope=1 "$D/ev.yaml"
check_match "run with an unknown --set: exit 2, nothing run" "$RC|$(cat "$TMP/err")|$(sql "$DB" "SELECT count(*) FROM runs")" \
	"^2\\|.*no job file declares a parameter 'nope'.*\\|5$"

summary
