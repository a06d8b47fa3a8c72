#!/usr/bin/env bash
# Time and peak memory of `arl-batch merge` for S shard databases of N jobs each (default 3 x
# 20 000): each job one attempt, one step with 1 KiB of stdout and 100 bytes of stderr, and
# two metrics, as a sharded benchmark leaves them. The shards are made with SQL (a real
# one-job run first gives each its schema and run row), so only the merge is measured.
#
# Measures: merge -o (median of 3) and its peak RSS (GNU time), and a second merge --into of the
# same shards (every job already there: the idempotence check's cost).
#
# Usage: bench/merge_scale.sh [N] [S]   (builds a release binary unless ARL_BATCH is set)
set -euo pipefail
n=${1:-20000}
shards=${2:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
inputs=()
for s in $(seq 1 "$shards"); do
	printf 'version: 1\npools: {p: {replicas: 1, isolation: none}}\njobs:\n  - {name: seed%s, steps: [{type: Command, command: ["true"]}]}\n' "$s" >b.yaml
	"$ARL_BATCH" run --progress none --db "s$s.db" --run-name bench b.yaml >/dev/null 2>&1
	sqlite3 "s$s.db" "
	WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < $n)
	INSERT INTO jobs (run_id, key, name, file, state, attempts, exit_code, started_at,
	                  finished_at, duration_ms, spec_hash)
	SELECT 1, 'b/s$s-' || x, 's$s-' || x, 'b.yaml', 'Succeeded', 1, 0,
	       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 5,
	       printf('%032x', x) FROM i;
	INSERT INTO attempts (job_id, number, sandbox, state, exit_code, started_at, finished_at,
	                      duration_ms)
	SELECT id, 1, 'sb', 'Succeeded', 0, started_at, finished_at, 5 FROM jobs WHERE id > 1;
	INSERT INTO steps (attempt_id, idx, name, type, state, exit_code, stdout, stderr)
	SELECT id, 0, 'step-1', 'Command', 'Succeeded', 0, printf('%.1024c', 'o'),
	       printf('%.100c', 'e') FROM attempts WHERE job_id > 1;
	INSERT INTO metrics (job_id, name, value) SELECT id, 'score', id % 7 FROM jobs WHERE id > 1;
	INSERT INTO metrics (job_id, name, value) SELECT id, 'cost_usd', 0.01 FROM jobs WHERE id > 1;
	UPDATE runs SET jobs_total = $n + 1, jobs_succeeded = $n + 1;"
	inputs+=("s$s.db")
done
in_bytes=$(du -cb "${inputs[@]}" | tail -1 | cut -f1)
ts=()
for r in 1 2 3; do
	rm -rf all.db*
	/usr/bin/time -f '%e %M' -o t.txt "$ARL_BATCH" merge -o all.db "${inputs[@]}" >/dev/null
	ts+=("$(cat t.txt)")
done
med=$(printf '%s\n' "${ts[@]}" | cut -d' ' -f1 | median '%.2f')
rss=$(printf '%s\n' "${ts[@]}" | cut -d' ' -f2 | sort -n | tail -1)
/usr/bin/time -f '%e %M' -o t.txt "$ARL_BATCH" merge --into all.db "${inputs[@]}" >/dev/null
again=$(cut -d' ' -f1 t.txt)
jobs=$(sqlite3 all.db "SELECT count(*) FROM jobs")
echo "merge of $shards x $n jobs ($((in_bytes / 1048576)) MiB of inputs): -o ${med}s (median of 3), peak RSS $((rss / 1024)) MiB; again with --into (all already there): ${again}s; $jobs jobs in the output"
tsv merge "merge -o $shards x $n jobs" "$med" s "peak RSS $((rss / 1024)) MiB" ""
