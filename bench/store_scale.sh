#!/usr/bin/env bash
# The store: insert throughput of finished jobs, and `results --state Failed` and `diff`
# latency on a database of 10^6 jobs.
#
# Insert throughput: a real run of N1 (default 10 000) one-step `true` jobs (isolation none,
# -j 2), every job, attempt and step committed by the runner; jobs/s = N1 / wall.
#
# The 10^6-job database is not made by running 10^6 jobs (about 20 minutes): a small real run
# of T (100) jobs, 5% of them failing with a few lines of stderr, is the template, and
# sqlite3 copies its jobs, attempts and steps rows with INSERT ... SELECT over a recursive
# counter (keys suffixed '#copy', ids offset, every foreign key remapped) into two more runs of
# the same name of TOTAL/2 jobs each; the second one flips 1% of its jobs' states, so `diff`
# has fixed and broken jobs to list. The rows are exactly what the runner writes, in the
# runner's own schema and indexes. Then: `results --state Failed` (latest run, table) and
# `diff` (latest run against the one before it) are timed, median of ROUNDS.
#
# Usage: bench/store_scale.sh [TOTAL] [N1] [ROUNDS]   (default 1000000 10000 5)
# Env:   ARL_BATCH=path to skip the release build; BENCH_TSV=file appends machine-readable
#        rows (section, metric, value, baseline, ratio, note) for bench/run_all.sh.
set -euo pipefail
total=${1:-1000000}
n1=${2:-10000}
rounds=${3:-5}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | awk '{printf "%.4f", $1}'; }

# 1. Insert throughput.
seq 1 "$n1" | sed 's/.*/{"i": &}/' >"$tmp/ins.jsonl"
cat >"$tmp/ins.yaml" <<'YAML'
version: 1
pools:
  p: {replicas: 2, isolation: none}
jobs:
  - name: "t-{{ item.i }}"
    foreach: {file: ins.jsonl}
    steps:
      - {type: Command, command: ["true"]}
YAML
s=$(now)
(cd "$tmp" && "$bin" run --db "$tmp/ins.db" --progress none -j 2 ins.yaml 2>/dev/null)
w=$(since "$s")
rec=$(sqlite3 "$tmp/ins.db" "SELECT count(*) FROM jobs j JOIN attempts a ON a.job_id = j.id JOIN steps s ON s.attempt_id = a.id WHERE j.state = 'Succeeded'")
ips=$(echo "$n1 / $w" | bc -l | awk '{printf "%.0f", $1}')
echo "insert: $n1 finished jobs (job+attempt+step rows: $rec) recorded by a real run in $w s = $ips jobs/s"
tsv store "finished jobs recorded by run -j 2 (jobs/s, N=$n1)" "$ips" "" "" "job+attempt+step rows per job, spawn included"

# 2. The template: T jobs, 5 in 100 failing.
t=100
awk -v n=$t 'BEGIN { for (i = 1; i <= n; i++) printf "{\"i\": %d, \"fail\": %d}\n", i, (i % 20 == 0) }' >"$tmp/tpl.jsonl"
cat >"$tmp/tpl.yaml" <<'YAML'
version: 1
name: store-bench
pools:
  p: {replicas: 2, isolation: none}
jobs:
  - name: "t-{{ item.i }}"
    foreach: {file: tpl.jsonl}
    steps:
      - type: Command
        command: ["sh", "-c", "echo running {{ item.i }}; if [ {{ item.fail }} = 1 ]; then echo 'Traceback (most recent call last):' >&2; echo 'AssertionError: expected 1, got 0' >&2; exit 1; fi"]
YAML
(cd "$tmp" && "$bin" run --db "$tmp/big.db" --progress none -j 2 tpl.yaml >/dev/null 2>&1) || true
copies=$((total / 2 / t))
s=$(now)
# ids: run r (2 or 3) gets jobs (r-1)*10^8 + c*T + rank, attempts and steps likewise.
sqlite3 "$tmp/big.db" >/dev/null <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA foreign_keys = OFF;
CREATE TEMP TABLE c(n INTEGER PRIMARY KEY);
WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n + 1 < $copies)
INSERT INTO c SELECT n FROM k;
CREATE TEMP TABLE jr AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS rk FROM jobs WHERE run_id = 1;
CREATE TEMP TABLE ar AS SELECT a.id, row_number() OVER (ORDER BY a.id) - 1 AS rk, jr.rk AS jrk
  FROM attempts a JOIN jr ON jr.id = a.job_id;
CREATE TEMP TABLE sr AS SELECT s.id, row_number() OVER (ORDER BY s.id) - 1 AS rk, ar.rk AS ark
  FROM steps s JOIN ar ON ar.id = s.attempt_id;
BEGIN;
INSERT INTO runs (id, name, status, started_at, finished_at, files, jobs_total, jobs_succeeded,
                  jobs_failed, duration_ms, exit_code, host, pid, isolation)
SELECT r.v, name, status, started_at, finished_at, files, $copies * jobs_total,
       $copies * jobs_succeeded, $copies * jobs_failed, duration_ms, exit_code, host, pid, isolation
  FROM runs, (SELECT 2 AS v UNION ALL SELECT 3) r WHERE id = 1;
INSERT INTO jobs (id, run_id, key, name, file, pool, state, attempts, exit_code, error_class,
                  error, started_at, finished_at, duration_ms, item, labels, spec_hash)
SELECT r.v * 100000000 + c.n * $t + jr.rk, r.v, j.key || '#' || c.n, j.name || '#' || c.n, j.file,
       j.pool,
       CASE WHEN r.v = 3 AND (c.n * $t + jr.rk) % 100 = 7
            THEN (CASE j.state WHEN 'Failed' THEN 'Succeeded' ELSE 'Failed' END) ELSE j.state END,
       j.attempts, j.exit_code, j.error_class, j.error, j.started_at, j.finished_at,
       j.duration_ms, j.item, j.labels, j.spec_hash
  FROM (SELECT 2 AS v UNION ALL SELECT 3) r, c, jr JOIN jobs j ON j.id = jr.id;
INSERT INTO attempts (id, job_id, number, sandbox, state, exit_code, error_class, error,
                      started_at, finished_at, duration_ms)
SELECT r.v * 100000000 + c.n * (SELECT count(*) FROM ar) + ar.rk,
       r.v * 100000000 + c.n * $t + ar.jrk, a.number, a.sandbox, a.state, a.exit_code,
       a.error_class, a.error, a.started_at, a.finished_at, a.duration_ms
  FROM (SELECT 2 AS v UNION ALL SELECT 3) r, c, ar JOIN attempts a ON a.id = ar.id;
INSERT INTO steps (attempt_id, idx, name, type, phase, state, exit_code, stdout, stderr,
                   stdout_truncated, stderr_truncated, started_at, finished_at, duration_ms)
SELECT r.v * 100000000 + c.n * (SELECT count(*) FROM ar) + sr.ark, s.idx, s.name, s.type,
       s.phase, s.state, s.exit_code, s.stdout, s.stderr, s.stdout_truncated,
       s.stderr_truncated, s.started_at, s.finished_at, s.duration_ms
  FROM (SELECT 2 AS v UNION ALL SELECT 3) r, c, sr JOIN steps s ON s.id = sr.id;
COMMIT;
ANALYZE;
SQL

gen=$(since "$s")
nj=$(sqlite3 "$tmp/big.db" "SELECT count(*) FROM jobs")
nf=$(sqlite3 "$tmp/big.db" "SELECT count(*) FROM jobs WHERE run_id = 3 AND state = 'Failed'")
echo "database: $nj jobs ($copies copies x $t template jobs x 2 runs + the template run)," \
	"$(du -h "$tmp/big.db" | cut -f1), generated with sqlite3 INSERT ... SELECT in $gen s;" \
	"latest run: $nf Failed"

res="" dif=""
for _ in $(seq 1 "$rounds"); do
	s=$(now); "$bin" results --db "$tmp/big.db" --state Failed >"$tmp/failed.txt"; res+="$(since "$s") "
	s=$(now); "$bin" diff --db "$tmp/big.db" >"$tmp/diff.txt" || true; dif+="$(since "$s") "
done
mr=$(echo "$res" | tr ' ' '\n' | grep . | median %.4f)
md=$(echo "$dif" | tr ' ' '\n' | grep . | median %.4f)
echo "results --state Failed ($(($(wc -l <"$tmp/failed.txt") - 1)) lines): median $mr s (runs: $res)"
echo "diff (latest vs previous, $(grep -c . "$tmp/diff.txt") lines): median $md s (runs: $dif)"
tsv store "results --state Failed, $nj jobs (ms)" "$(echo "$mr * 1000" | bc | awk '{printf "%.0f", $1}')" "200" "$(echo "$mr * 1000 / 200" | bc -l | awk '{printf "%.2f", $1}')" "target <200 ms; ratio = / target"
tsv store "diff latest vs previous, $nj jobs (ms)" "$(echo "$md * 1000" | bc | awk '{printf "%.0f", $1}')" "" "" "2 runs x $((total / 2)) jobs"
