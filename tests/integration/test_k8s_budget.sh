#!/usr/bin/env bash
# Budgets and merging shards on the kubernetes backend (issue 16), against the fake ARL API
# server: a budget over `metrics: json` of kubernetes steps halts the run (exit 4, the rest
# Cancelled, runs.halted_by, the report's header), and two shards run on kubernetes merge into one
# database that `results` reads whole.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --pool sandbox=1
cd "$TMP"

gen() {
	{
		echo "version: 1"
		[ -n "$2" ] && echo "$2"
		echo "pools:"
		echo "  sandbox: {backend: kubernetes, replicas: 1}"
		echo "jobs:"
		for i in 1 2 3 4 5; do
			echo "  - {name: j$i, steps: [{type: Command, metrics: json, command: [sh, -c, \"echo '{\\\"cost_usd\\\": 1}'\"]}]}"
		done
	} >"$1"
}

echo "# a budget halts a kubernetes run"
gen kb.yaml "budget: {metric: cost_usd, max: 2}"
runner run --progress none --db b.db --kubeconfig "$KC" kb.yaml
check_eq "exit 4 (halted)" "$RC" 4
check_match "it says which budget halted it" "$(cat "$TMP/err")" "halted: budget cost_usd 2 reached \\(2\\)"
check_eq "two ran, three Cancelled, halted_by recorded" \
	"$(sql b.db "SELECT jobs_succeeded, jobs_cancelled, halted_by FROM runs")" \
	"2|3|budget cost_usd 2 reached (2)"
runner report --db b.db -o r.html
check "the report's header shows the budget" \
	grep -q '<span class="budget">budget <b>cost_usd</b> spent <b>2 / 2</b> <b class="bad">halted the run</b></span>' r.html

echo "# shards run on kubernetes merge into one database"
gen ks.yaml ""
runner run --progress none --db s1.db --kubeconfig "$KC" --shard 1/2 ks.yaml
check_eq "shard 1/2: exit 0" "$RC" 0
runner run --progress none --db s2.db --kubeconfig "$KC" --shard 2/2 ks.yaml
check_eq "shard 2/2: exit 0" "$RC" 0
runner merge s1.db s2.db -o all.db
check_eq "merge: exit 0" "$RC" 0
check_eq "one run with the five jobs, their metrics carried" \
	"$(sql all.db "SELECT count(DISTINCT r.id), count(*), sum(m.value) FROM runs r JOIN jobs j ON j.run_id = r.id JOIN metrics m ON m.job_id = j.id AND m.name = 'cost_usd'")" \
	"1|5|5.0"
runner results --db all.db --format csv
check_eq "results reads the whole benchmark" "$(grep -c ',Succeeded,' "$TMP/out")" 5

summary
