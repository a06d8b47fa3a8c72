#!/usr/bin/env bash
# `arl-batch merge` (issue 16): shards of one benchmark, one database each, merge into one.
#   A. A 40-job file sharded 3 ways merges into one run of 40 jobs whose results, by key, are
#      those of an unsharded run (state, exit code, metrics); diff, results and report see all
#      40; the inputs are not modified.
#   B. Keys in more than one input: refused naming them (exit 1, output unchanged), or
#      --prefer newest; the same shard merged twice copies nothing; a later shard joins with
#      --into.
#   C. Artifacts: rows carried, their content copied beside the output; a digest that is not
#      a digest (path traversal) is not followed.
#   D. Inputs of an older schema (v1) are upgraded in a copy, read-only ones read; newer ones,
#      runs still running, an input given twice or being the output, and an existing -o are
#      refused; a failed -o leaves no file.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3 sha256sum
make_tmp
cd "$TMP"
# merge copies its inputs under $TMPDIR: a private one shows what it leaves behind.
mkdir "$TMP/tmpdir"
export TMPDIR=$TMP/tmpdir

{
	echo "version: 1"
	echo "pools:"
	echo "  p: {replicas: 4, isolation: none}"
	echo "jobs:"
	for i in $(seq 1 40); do
		echo "  - {name: i$i, steps: [{type: Command, metrics: json, command: [\"sh\", \"-c\", \"echo '{\\\"score\\\": $i}'; test \$(( $i % 7 )) != 0\"]}]}"
	done
} >bench.yaml

# by_key DB RUN: one line per job, sorted by key: key state exit score.
by_key() {
	sql "$1" "SELECT j.key, j.state, j.exit_code, (SELECT value FROM metrics m WHERE m.job_id = j.id AND m.name = 'score') FROM jobs j WHERE j.run_id = $2 ORDER BY j.key"
}

# ------------------------------------------------------------------------------------------
echo "# A. three shards merge into the whole benchmark"
for s in 1 2 3; do
	runner run --progress none --db "s$s.db" --shard "$s/3" bench.yaml
	check_match "[A] shard $s ran (exit 0 or 1)" "$RC" '^[01]$'
done
runner run --progress none --db full.db --run-name full bench.yaml
check_eq "[A] the unsharded run: 5 failures, exit 1" "$RC" 1
sums_before=$(sha256sum s1.db s2.db s3.db)
runner merge -o all.db s1.db s2.db s3.db
check_eq "[A] merge exits 0" "$RC|$(cat "$TMP/err")" "0|"
check_match "[A] it says where each run went and what it copied" "$(cat "$TMP/out")" \
	"s1.db run 1 'bench' \\([0-9]+ jobs\\) -> run 1 \\(new\\).*s2.db run 1 'bench' \\([0-9]+ jobs\\) -> run 1.*merged 3 runs into 'all.db' \\(1 new\\): 40 jobs copied"
check_eq "[A] one run of 40 jobs" "$(sql all.db "SELECT count(*), sum(jobs_total), sum(jobs_succeeded), sum(jobs_failed) FROM runs")" "1|40|35|5"
check_eq "[A] every attempt and step came along" \
	"$(sql all.db "SELECT (SELECT count(*) FROM attempts), (SELECT count(*) FROM steps), (SELECT count(*) FROM metrics)")" \
	"$(sql full.db "SELECT (SELECT count(*) FROM attempts), (SELECT count(*) FROM steps), (SELECT count(*) FROM metrics)")"
check_eq "[A] results by key equal the unsharded run's" "$(by_key all.db 1)" "$(by_key full.db 1)"
check_eq "[A] the inputs are not modified" "$(sha256sum s1.db s2.db s3.db)" "$sums_before"
check_eq "[A] the run says where it came from" \
	"$(sql all.db "SELECT status, exit_code, pid IS NULL, notes LIKE '%merged from s1.db run 1%merged from s3.db run 1%' FROM runs")" \
	"failed|1|1|1"
check_match "[A] the run spans its shards" \
	"$(sql all.db "SELECT (SELECT min(started_at) FROM runs) = (SELECT started_at FROM runs), duration_ms >= 0 FROM runs")" '^1\|1$'
runner results --db all.db
check_match "[A] results sees 40 jobs" "$(cat "$TMP/out")" "40 jobs, 35 succeeded, 5 failed"
runner merge --into all.db full.db
check_eq "[A] a run of another name merges as a run of its own" "$RC" 0
runner diff --db all.db bench full
check_match "[A] diff against the unsharded run: nothing added, missing, fixed or broken" \
	"$(cat "$TMP/out")" "fixed 0, broken 0, still failing 5, still passing 35, added 0, missing 0"
runner report --db all.db --run bench -o report.html
check_eq "[A] report of the merged run" "$RC" 0
# The failures are spread over the shards: the report lists them all.
for i in 7 14 21 28 35; do
	check "[A] the report lists the failure of bench/i$i" grep -q "bench/i$i<" report.html
done

# ------------------------------------------------------------------------------------------
echo "# B. overlapping keys, merging twice, --into"
runner run --progress none --db again.db bench.yaml
before=$(sql all.db "SELECT count(*) FROM jobs; SELECT count(*) FROM steps; SELECT group_concat(notes) FROM runs")
runner merge --into all.db again.db
check_eq "[B] keys in two inputs: refused, exit 1" "$RC" 1
check_match "[B] naming the keys and --prefer newest" "$(cat "$TMP/err")" \
	"40 keys of run 'bench' have results in more than one input \\(bench/i1, bench/i2, .*, \\.\\.\\.\\).*--prefer newest"
check_eq "[B] nothing printed on stdout, the output unchanged" \
	"$(cat "$TMP/out")|$(sql all.db "SELECT count(*) FROM jobs; SELECT count(*) FROM steps; SELECT group_concat(notes) FROM runs")" "|$before"
runner merge -o p.db s1.db s2.db s3.db
runner merge --into p.db again.db --prefer newest
check_match "[B] --prefer newest keeps the later results" "$RC|$(cat "$TMP/out")" \
	"^0\\|.*0 jobs copied, 40 replaced an older result"
check_eq "[B] still one run of 40" "$(sql p.db "SELECT count(*), sum(jobs_total) FROM runs; SELECT count(*) FROM jobs")" "$(printf '1|40\n40')"
check_eq "[B] the kept results are again.db's" \
	"$(sql p.db "SELECT group_concat(started_at) FROM (SELECT started_at FROM jobs ORDER BY key)")" \
	"$(sql again.db "SELECT group_concat(started_at) FROM (SELECT started_at FROM jobs ORDER BY key)")"
runner merge -o two.db s1.db s2.db
runner merge --into two.db s2.db s3.db
check_match "[B] a shard merged again copies nothing, a later one joins the run" "$RC|$(cat "$TMP/out")" \
	"^0\\|.*s3.db run 1 'bench' \\([0-9]+ jobs\\) -> run 1\$.*[0-9]+ jobs copied, [0-9]+ already there"
check_eq "[B] ... giving the same 40 results" "$(by_key two.db 1)" "$(by_key full.db 1)"

echo "# B2. --resume runs of the shards: two runs, the Skipped rows point at the merged results"
for s in 1 2 3; do
	runner run --progress none --db "r$s.db" --shard "$s/3" bench.yaml
	runner run --progress none --db "r$s.db" --shard "$s/3" --resume bench.yaml
done
runner merge -o r.db r1.db r2.db r3.db
check_eq "[B2] two runs of 40, the second's 35 successes Skipped" \
	"$(sql r.db "SELECT id, jobs_total, jobs_skipped FROM runs ORDER BY id")" "$(printf '1|40|0\n2|40|35')"
check_eq "[B2] each Skipped row stands for the merged run 1's success of its key" \
	"$(sql r.db "SELECT count(*) FROM jobs k JOIN jobs f ON f.id = k.skipped_from WHERE k.run_id = 2 AND f.run_id = 1 AND f.key = k.key AND f.state = 'Succeeded'")" 35
runner run --progress none --db r.db --run-name bench --resume bench.yaml
check_match "[B2] --resume on the merged database reruns only the failures" "$RC|$(sql r.db "SELECT jobs_skipped FROM runs ORDER BY id DESC LIMIT 1")" '^1\|35$'

# ------------------------------------------------------------------------------------------
echo "# C. artifacts are carried"
cp s1.db art.db
rm -f art.db-wal art.db-shm
content="kept patch $$"
digest=$(printf '%s' "$content" | sha256sum | cut -c1-64)
mkdir -p "art.db.artifacts/sha256/${digest:0:2}"
printf '%s' "$content" >"art.db.artifacts/sha256/${digest:0:2}/$digest"
evil="../../../../../../../../../../../../../../../../../../../../etc/passwd"
evil=${evil:0:53}xxxxxxxxxxx
# A row whose stored file is not the content its digest names (a forged or damaged input).
truth=$(printf 'truth' | sha256sum | cut -c1-64)
mkdir -p "art.db.artifacts/sha256/${truth:0:2}"
printf 'lie' >"art.db.artifacts/sha256/${truth:0:2}/$truth"
aid=$(sql art.db "SELECT min(id) FROM attempts")
sql art.db "INSERT INTO artifacts (attempt_id, path, size, sha256) VALUES ($aid, '/workspace/forged', 5, '$truth')"
sql art.db "INSERT INTO artifacts (attempt_id, path, size, sha256) VALUES ($aid, '/workspace/model.patch', ${#content}, '$digest'), ($aid, '/workspace/evil', 1, '$evil'), ($aid, '/workspace/big', 99, NULL)"
sql art.db "UPDATE artifacts SET error = 'over its size cap' WHERE sha256 IS NULL"
runner merge -o a.db art.db
check_match "[C] merge copies the content, counts the one it cannot" "$RC|$(cat "$TMP/out")" \
	"^0\\|.*1 artifact file copied, 1 not in the input \\(rows kept\\), 1 not matching their digest"
check_eq "[C] the rows came along" "$(sql a.db "SELECT path, size, sha256 IS NULL, error FROM artifacts ORDER BY path")" \
	"$(printf '/workspace/big|99|1|over its size cap\n/workspace/evil|1|0|\n/workspace/forged|5|0|\n/workspace/model.patch|%s|0|' "${#content}")"
check "[C] content not matching its digest is not stored under it" test ! -e "a.db.artifacts/sha256/${truth:0:2}/$truth"
check_eq "[C] the content is beside the output" "$(cat "a.db.artifacts/sha256/${digest:0:2}/$digest")" "$content"
check_eq "[C] nothing else under a digest named by a row" \
	"$(find a.db.artifacts/sha256 -type f | grep -c -e "$digest" -e "$truth")" 1

# ------------------------------------------------------------------------------------------
echo "# D. schemas, read-only inputs, refusals"
sqlite3 old.db <"$SOURCE_DIR/tests/unit/fixtures/store/results-v1.sql"
sql old.db "INSERT INTO runs (name, status, started_at, finished_at, files) VALUES ('old', 'succeeded', '2025-01-01T00:00:00.000Z', '2025-01-01T00:01:00.000Z', '[]');
INSERT INTO jobs (run_id, key, name, file, state, attempts, exit_code) VALUES (1, 'old/a', 'a', 'old.yaml', 'Succeeded', 1, 0);"
chmod 0444 old.db
sum=$(sha256sum old.db)
runner merge --into all.db old.db
check_eq "[D] a v1 database merges" "$RC|$(cat "$TMP/err")" "0|"
check_eq "[D] ... as a run of its own, left as it was (v1, same bytes)" \
	"$(sql all.db "SELECT jobs_total, jobs_succeeded FROM runs WHERE name = 'old'")|$(sql old.db 'PRAGMA user_version')|$(sha256sum old.db)" \
	"1|1|1|$sum"
cp s1.db new.db
sql new.db "PRAGMA user_version = 99"
runner merge -o x.db new.db
check_match "[D] a newer schema is refused" "$RC|$(cat "$TMP/err")" "^3\\|.*'new.db' has schema version 99, newer than this arl-batch"
check_eq "[D] a failed -o leaves no file" "$(ls x.db* 2>/dev/null | wc -l)" 0
cp s1.db live.db
sql live.db "UPDATE runs SET status = 'running', host = 'elsewhere'"
runner merge -o x.db live.db
check_match "[D] a run still running is refused" "$RC|$(cat "$TMP/err")" "^1\\|.*run 1 of 'live.db' is still running"
runner merge -o x.db s1.db s1.db
check_match "[D] an input given twice" "$RC|$(cat "$TMP/err")" "^2\\|.*'s1.db' is given twice"
runner merge --into s1.db s1.db
check_match "[D] the output as an input" "$RC|$(cat "$TMP/err")" "^2\\|.*'s1.db' is the output database itself"
runner merge -o all.db s1.db
check_match "[D] -o of an existing database" "$RC|$(cat "$TMP/err")" "^2\\|.*'all.db' .*already exists: use --into"
runner merge --into nothere.db s1.db
check_match "[D] --into a missing database" "$RC|$(cat "$TMP/err")" "^3\\|.*no results database 'nothere.db'"
runner merge -o x.db
check_eq "[D] no inputs: usage error" "$RC" 2
check_eq "[D] no copies left in TMPDIR" "$(find "$TMPDIR" -mindepth 1 | wc -l)" 0

summary
