#!/usr/bin/env bash
# One command-line dialect (issue 13): every command parses its options from one table
# (runner/cmd/options.c), so every command answers an unknown option, a bad value and a
# missing value in the same form (the message, the synopsis, a pointer to --help) with exit
# code 2 and nothing on stdout; --help prints the usage the table generates; --opt=value and
# --opt value are the same; `--` ends the options. Nothing here runs a job or needs bwrap.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_tools sqlite3
make_tmp
cd "$TMP"

cat >three.yaml <<'EOF'
version: 1
pools:
  p:
    backend: local
    replicas: 1
jobs:
  - name: a
    steps: [{name: s, type: Command, command: ["true"]}]
  - name: b
    steps: [{name: s, type: Command, command: ["true"]}]
  - name: c
    steps: [{name: s, type: Command, command: ["true"]}]
EOF
cp three.yaml ./-dash.yaml

# usage_error DESC CMD FIRST-LINE ARGS...: exit 2, nothing on stdout, and on stderr exactly
# FIRST-LINE, the command's synopsis, and the pointer to its --help.
usage_error() {
	local desc=$1 cmd=$2 first=$3 name
	shift 3
	runner "$@"
	name="arl-batch${cmd:+ $cmd}"
	check_eq "$desc: exit 2" "$RC" 2
	check_eq "$desc: nothing on stdout" "$(cat "$TMP/out")" ""
	check_eq "$desc: the message" "$(head -n 1 "$TMP/err")" "$first"
	# A subcommand's (pool get) is its command's (pool).
	check_match "$desc: then the synopsis" "$(sed -n 2p "$TMP/err")" \
		"^usage: arl-batch${cmd:+ ${cmd%% *}}( |$)"
	check_eq "$desc: then where the options are" "$(tail -n 1 "$TMP/err")" \
		"see '$name --help'"
}

echo "# an unknown option, the same form in every command"
for cmd in run validate runs results show query diff report prune gc "pool get" ""; do
	# shellcheck disable=SC2086 # $cmd is a command and maybe a subcommand
	usage_error "${cmd:-arl-batch}: unknown option" "$cmd" \
		"arl-batch${cmd:+ $cmd}: unknown option '--no-such-option'" $cmd --no-such-option
done
usage_error "an unknown short option" "validate" "arl-batch validate: unknown option '-x'" \
	validate -qx three.yaml

echo "# a bad value: what was given, for which option, and what is expected"
usage_error "run --concurrency" run \
	"arl-batch run: invalid value 'x' for --concurrency: expected a number from 1 to 100000" \
	run --concurrency x three.yaml
usage_error "run -j (named by its long name)" run \
	"arl-batch run: invalid value '0' for --concurrency: expected a number from 1 to 100000" \
	run -j 0 three.yaml
usage_error "run --deadline" run \
	"arl-batch run: invalid value 'soon' for --deadline: expected a duration of at least 1ms, such as 90s, 5m or 1h30m" \
	run --deadline soon three.yaml
# Durations stop at 100 years: a deadline past a clock's end overflowed it (the run stopped at
# once), and a cutoff before year 0 pruned runs started today.
usage_error "run --deadline past what a duration is read to" run \
	"arl-batch run: invalid value '9223372036854775' for --deadline: expected a duration of at least 1ms, such as 90s, 5m or 1h30m" \
	run --deadline 9223372036854775 three.yaml
usage_error "prune --older-than past 100 years" prune \
	"arl-batch prune: invalid value '100000000h' for --older-than: expected a duration from 0s to 876000h (720h, 90m) or whole days or weeks (30d, 2w)" \
	prune --older-than 100000000h --dry-run
usage_error "run --progress" run \
	"arl-batch run: invalid value 'fancy' for --progress: expected auto, bar, plain or none" \
	run --progress fancy three.yaml
usage_error "run --kube-qps (an option the kubernetes backend owns and checks)" run \
	"arl-batch run: invalid value '0' for --kube-qps: expected a number from 1 to 100000" \
	run --kube-qps 0 three.yaml
usage_error "validate --max-record" validate \
	"arl-batch validate: invalid value '12' for --max-record: expected a byte count from 1024 to 1073741824" \
	validate --max-record 12 three.yaml
usage_error "runs --limit" runs \
	"arl-batch runs: invalid value '-1' for --limit: expected a number from 0 to 2147483647" \
	runs --limit -1
usage_error "results --format" results \
	"arl-batch results: invalid value 'xml' for --format: expected table, json, csv or junit" \
	results --format xml
usage_error "results --state" results \
	"arl-batch results: invalid value 'Failed,Lost' for --state: unknown state 'Lost' (Pending, Running, Succeeded, Failed, Skipped, Cancelled)" \
	results --state Failed,Lost
usage_error "query --format" query \
	"arl-batch query: invalid value 'xml' for --format: expected table, csv or json" \
	query --format xml 'SELECT 1'
usage_error "diff --format" diff \
	"arl-batch diff: invalid value 'html' for --format: expected table, json or markdown" \
	diff --format html
usage_error "report --max-failed" report \
	"arl-batch report: invalid value '0' for --max-failed: expected a number from 1 to 100000" \
	report --max-failed 0 -o r.html
usage_error "prune --keep" prune \
	"arl-batch prune: invalid value 'all' for --keep: expected a number from 0 to 2147483647" \
	prune --keep all
usage_error "prune --older-than" prune \
	"arl-batch prune: invalid value '30x' for --older-than: expected a duration from 0s to 876000h (720h, 90m) or whole days or weeks (30d, 2w)" \
	prune --older-than 30x
usage_error "gc --backend" gc \
	"arl-batch gc: invalid value 'docker' for --backend: expected local, kubernetes, gateway or all" \
	gc --backend docker
usage_error "pool get --output" "pool get" \
	"arl-batch pool get: invalid value 'yaml' for --output: expected table or json" \
	pool get p --output yaml
usage_error "pool wait --timeout" "pool wait" \
	"arl-batch pool wait: invalid value 'later' for --timeout: expected a duration such as 90s, 5m or 1h30m" \
	pool wait p --timeout later

echo "# a missing value, a value given to a flag, an ambiguous abbreviation"
usage_error "show --run at the end" show "arl-batch show: option '--run' needs a value" \
	show job --run
usage_error "report -o at the end" report "arl-batch report: option '-o' needs a value" \
	report -o
usage_error "a flag given a value" run "arl-batch run: option '--dry-run' takes no value" \
	run --dry-run=yes three.yaml
usage_error "the top level's flag given a value" "" \
	"arl-batch: option '--version' takes no value" --version=2
usage_error "an ambiguous abbreviation" run "arl-batch run: ambiguous option '--co'" \
	run --co 2 three.yaml
usage_error "no name is no abbreviation" run "arl-batch run: unknown option '--=x'" \
	run --=x three.yaml

echo "# usage errors found after parsing, in the same form"
usage_error "run without files" run "arl-batch run: no job files given" run --dry-run
usage_error "runs with an operand" runs "arl-batch runs: unexpected argument 'x'" runs x
usage_error "prune with an operand" prune "arl-batch prune: unexpected argument 'x'" \
	prune --keep 1 x
usage_error "diff with a third run" diff "arl-batch diff: unexpected argument '3'" diff 1 2 3
usage_error "report without -o" report "arl-batch report: where to? give -o FILE.html" report
usage_error "an unknown command" "" "arl-batch: unknown command 'frobnicate'" frobnicate

echo "# --help: the usage generated from the table, on stdout, exit 0"
for cmd in run validate runs results show query diff report prune gc pool ""; do
	# shellcheck disable=SC2086
	runner $cmd --help
	check_eq "${cmd:-arl-batch} --help: exit 0" "$RC" 0
	check_eq "${cmd:-arl-batch} --help: nothing on stderr" "$(cat "$TMP/err")" ""
	check_match "${cmd:-arl-batch} --help: the synopsis first" "$(head -n 1 "$TMP/out")" \
		"^usage: arl-batch${cmd:+ $cmd}( |$)"
	check_match "${cmd:-arl-batch} --help: -h, --help listed by the table" "$(cat "$TMP/out")" \
		$'\n  -h, --help              show this help(\n|$)'
done
runner run --help
check_match "run --help: an option with its value's name and help" "$(cat "$TMP/out")" \
	$'\n  -j, --concurrency N     jobs in flight at most'
check_match "run --help: a choice lists its names" "$(cat "$TMP/out")" \
	$'\n      --progress auto\\|bar\\|plain\\|none\n'
check_match "run --help: the backends' own options, from their tables" "$(cat "$TMP/out")" \
	$'\n      --kubeconfig PATH   kubernetes: the kubeconfig'
for cmd in run runs results show query diff report prune; do
	runner $cmd --help
	check_eq "$cmd --help: --db, the same in every command" \
		"$(grep -- '^      --db PATH' "$TMP/out")" \
		'      --db PATH           results database (default $ARL_BATCH_DB, else ./arl-batch.db)'
done
runner validate -h
check_match "-h is --help" "$(head -n 1 "$TMP/out")" "^usage: arl-batch validate "

echo "# --opt=value and --opt value"
runner run --dry-run --limit 1 three.yaml
check_eq "--limit 1: exit 0" "$RC" 0
check_eq "--limit 1: one job planned" "$(grep -c '^three/' "$TMP/out")" 1
runner run --dry-run --limit=2 three.yaml
check_eq "--limit=2: two jobs planned" "$(grep -c '^three/' "$TMP/out")" 2
runner run --dry-run --only=three/c three.yaml
check_eq "--only=GLOB" "$(grep -o '^three/[a-z]*' "$TMP/out")" "three/c"
runner run --dry-run three.yaml --only three/b
check_eq "an option after the files" "$(grep -o '^three/[a-z]*' "$TMP/out")" "three/b"
runner run --dry-run -j2 --lim 1 three.yaml
check_eq "-j2 and a unique abbreviation (--lim)" "$RC:$(grep -c '^three/' "$TMP/out")" "0:1"
runner validate --max-record=1Mi three.yaml
check_eq "--max-record=1Mi (a size with a suffix)" "$RC" 0
runner run --dry-run --db=eq.db three.yaml
check_eq "--db=PATH" "$RC" 0
runner run --dry-run --db sp.db three.yaml
check_eq "--db PATH" "$RC" 0

echo "# -- ends the options"
runner validate -- -dash.yaml
check_eq "validate -- -dash.yaml: exit 0" "$RC" 0
check_eq "... it validated the file named -dash.yaml" "$(cat "$TMP/out")" \
	"-dash.yaml: ok (3 jobs, 1 pool)"
usage_error "without --, -dash.yaml is options" validate \
	"arl-batch validate: unknown option '-d'" validate -dash.yaml
runner validate -q -- three.yaml -q
check_eq "an option word after -- is a file" "$RC:$(head -n 1 "$TMP/err")" \
	"2:-q: error: cannot open '-q': No such file or directory"

summary
