#!/usr/bin/env bash
# Scale without surprises: a dataset of 10^6 lines and a job file of 10^5 literal jobs load
# in bounded memory (GNU time's maximum RSS: at most 2 GiB, which holds under ASan too, and
# under 1 KiB more per record from 10^5 to 10^6 records), a file beyond the node limit is
# refused with the limit named, and the dry run lists every job.
# Speed is the benchmarks' business (bench/dataset_scale.sh); nothing here is timed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -x /usr/bin/time ]; then
	echo "SKIP: GNU time (/usr/bin/time, Debian package 'time') is not installed"
	exit 77
fi
require_tools python3
make_tmp
cd "$TMP"

python3 - <<'PY'
import json
with open('big.jsonl', 'w') as f:
    for i in range(1000000):
        f.write(json.dumps({'id': i, 'repo': 'org/repo%d' % (i % 97), 'text': 'x' * 40}) + '\n')
with open('big.jsonl') as src, open('small.jsonl', 'w') as dst:
    for i, line in zip(range(100000), src):
        dst.write(line)
for name in ('big', 'small'):
    open(name + '.yaml', 'w').write(
        'version: 1\npools: {p: {isolation: none}}\njobs:\n'
        '  - name: "t-{{ item.id }}"\n    foreach: {file: %s.jsonl}\n'
        '    labels: {repo: "{{ item.repo }}"}\n'
        '    steps: [{type: Command, command: [echo, "{{ item.text }}"]}]\n' % name)
with open('many.yaml', 'w') as f:
    f.write('version: 1\npools: {p: {isolation: none}}\njobs:\n')
    for i in range(100000):
        f.write('  - {name: j%d, labels: {n: "%d"}, steps: [{type: Command, command: [echo, "%d"]}]}\n'
                % (i, i, i))
# 4.2 million scalars in 8.4 MB: under the 16 MiB size limit, over the node limit.
open('nodes.yaml', 'w').write('version: 1\npools: {p: {}}\nx-many: [' + 'a,' * 4200000 + 'a]\njobs: []\n')
PY

# measure NAME ARGS...: runs arl-batch ARGS, sets RC, OUT (stdout) and RSS (peak KiB).
measure() {
	local name=$1
	shift
	RC=0
	/usr/bin/time -o "$TMP/time.$name" -f %M "$ARL_BATCH" "$@" >"$TMP/out.$name" 2>"$TMP/err.$name" || RC=$?
	RSS=$(tail -n 1 "$TMP/time.$name")
	OUT=$(cat "$TMP/out.$name")
	echo "   measured: $name: exit $RC, peak RSS $RSS KiB"
}

echo "# a dataset of 10^6 lines"
measure small validate small.yaml
rss_small=$RSS
check_eq "10^5 records: validate exits 0" "$RC|$OUT" "0|small.yaml: ok (100000 jobs, 1 pool)"
measure big validate big.yaml
check_eq "10^6 records: validate exits 0" "$RC|$OUT" "0|big.yaml: ok (1000000 jobs, 1 pool)"
per=$(((RSS - rss_small) * 1024 / 900000))
echo "   measured: $per bytes of RSS per record from 10^5 to 10^6 (records of ~80 bytes)"
check_le "memory grows by under 1 KiB per record (bytes)" "$per" 1024
check_le "10^6 records in under 2 GiB (KiB)" "$RSS" 2097152

echo "# 10^5 literal jobs in one file"
measure many validate many.yaml
check_eq "validate exits 0" "$RC|$OUT" "0|many.yaml: ok (100000 jobs, 1 pool)"
check_le "10^5 jobs (1.7 million YAML nodes) in under 2 GiB (KiB)" "$RSS" 2097152
measure dry run --dry-run --db "$TMP/r.db" many.yaml
check_eq "dry run exits 0 and lists every job" "$RC|$(grep -c '^many/j[0-9]' "$TMP/out.dry")" "0|100000"
check_eq "the last job is there with its pool" \
	"$(grep '^many/j99999 ' "$TMP/out.dry" | awk '{print $2}')" p

echo "# beyond the node limit"
measure nodes validate nodes.yaml
check_eq "validate exits 2" "$RC" 2
check_match "the limit is named with its position" "$(cat "$TMP/err.nodes")" \
	'^nodes\.yaml:3:[0-9]+: error: document has more than 4000000 nodes'
check_le "refused in under 2 GiB (KiB)" "$RSS" 2097152

summary
