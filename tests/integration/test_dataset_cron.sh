#!/usr/bin/env bash
# Dataset-scale and scheduled-evaluation features (issue 5), end to end on small job files with
# `isolation: none` pools (no bubblewrap needed):
#   - content-keyed --resume: exactly the unchanged succeeded jobs are Skipped (skipped_from
#     pointing at the job whose success stands), a job whose step changed and the failed ones
#     run again;
#   - --rerun infra: only the jobs that ended in infra run, everything else is Skipped;
#   - the per-name run lock: overlapping runs end 0 and 75 (one line naming pid, host, since),
#     --overlap allow and wait, a stale lock of a runner killed with -9 is taken over;
#   - --only, --limit, --shard I/N (the shards partition the jobs exactly);
#   - prune --keep / --older-than / --name leaves a consistent database;
#   - diff on two prepared runs: flips, counts, pass rates, McNemar's exact p, metrics,
#     --fail-on-regression;
#   - exit codes 3 (a job ended in infra) and 4 (--max-failures), 3 winning over 4;
#   - results --format junit (validated with xmllint against tests/integration/junit.xsd) and
#     --format csv with a column per metric.
#
# A real `infra` outcome on the local backend: a job's first step deletes its own sandbox
# directory (`rm -rf "$PWD"`, possible only with isolation none), so the next FilePatch step
# cannot open the sandbox, which the backend reports as infra. Whether it does so is switched
# by a marker file, so the same unchanged job ends infra in one run and succeeds in the next,
# as a job hit by a flaky cluster would. No results are forged with UPDATE.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
steps_may_use # the steps test files under $TMP
# As root, a step is the sandbox uid and reaches its workspace through a mount point of its
# own: infra_job deletes its directory by name, in a state directory it may write (sticky).
export XDG_STATE_HOME=$TMP/xdg
mkdir -p "$XDG_STATE_HOME/arl-batch"
chmod 1777 "$XDG_STATE_HOME/arl-batch"

MARK=$$$RANDOM # unique: the argument of our `sleep N.$MARK` processes
BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	kill_procs_with "sleep [0-9]*\.$MARK"
	return 0
}
CLEANUP=cleanup

# pool: a pool named p that runs plain processes, 4 at a time.
POOL='pools:
  p: {isolation: none, replicas: 4}'

# infra_job NAME MARKER: a job that ends in infra while MARKER exists and succeeds otherwise.
infra_job() {
	cat <<EOF
  - name: $1
    retries: 0
    steps:
      - name: maybe-vanish
        type: Command
        command:
          - sh
          - -c
          - |
            [ -e '$2' ] || exit 0
            m=\$(awk '\$5 == "/run/arl-batch/workspace" { print \$4 }' /proc/self/mountinfo)
            if [ -n "\$m" ]; then rm -rf "$XDG_STATE_HOME/arl-batch/\${m##*/}"; else rm -rf "\$PWD"; fi
      - {name: patch, type: FilePatch, path: /workspace/out.txt, content: "x"}
EOF
}

# names_where DB RUN_ID SQL-CONDITION: the sorted, comma-joined names of that run's jobs matching it.
names_where() {
	sql "$1" "SELECT ifnull(group_concat(name, ','), '') FROM (SELECT name FROM jobs WHERE run_id = $2 AND ($3) ORDER BY name)"
}

last_run() {
	sql "$1" "SELECT max(id) FROM runs"
}

# ------------------------------------------------------------------------------------------
echo "# content-keyed --resume"
D=$TMP/resume
mkdir -p "$D"
DB=$D/r.db
write_suite() { # $1: the output of job 'chg'
	cat >"$D/suite.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: s1, steps: [{type: Command, command: ["true"]}]}
  - {name: s2, steps: [{type: Command, command: ["sh", "-c", "echo two"]}]}
  - {name: s3, steps: [{type: FilePatch, path: /workspace/f, content: "three"}]}
  - {name: chg, steps: [{name: say, type: Command, command: ["echo", "$1"]}]}
  - {name: bad, steps: [{type: Command, command: ["sh", "-c", "exit 1"]}]}
  - {name: flaky, steps: [{type: Command, command: ["sh", "-c", "test ! -e '$D/flaky-on'"]}]}
EOF
}
write_suite v1
touch "$D/flaky-on"
runner run --progress none --db "$DB" --run-name ds "$D/suite.yaml"
check_eq "first run exits 1 (bad and flaky fail)" "$RC" 1
R1=$(last_run "$DB")
check_eq "first run: 4 succeeded, bad and flaky failed" \
	"$(names_where "$DB" "$R1" "state = 'Succeeded'")/$(names_where "$DB" "$R1" "state = 'Failed'")" \
	"chg,s1,s2,s3/bad,flaky"

# Change one step (the job's spec hash changes), let flaky pass from now on.
write_suite v2
rm -f "$D/flaky-on"
runner run --progress none --db "$DB" --run-name ds --resume "$D/suite.yaml"
check_eq "resumed run exits 1 (bad still fails)" "$RC" 1
R2=$(last_run "$DB")
check_eq "resumed run: exactly the unchanged succeeded jobs are Skipped" \
	"$(names_where "$DB" "$R2" "state = 'Skipped'")" "s1,s2,s3"
check_eq "each Skipped row points at the same key's Succeeded job of run $R1, same spec_hash" \
	"$(sql "$DB" "SELECT count(*) FROM jobs j JOIN jobs p ON p.id = j.skipped_from
	   WHERE j.run_id = $R2 AND j.state = 'Skipped' AND p.run_id = $R1 AND p.key = j.key
	   AND p.state = 'Succeeded' AND p.spec_hash = j.spec_hash")" 3
check_eq "Skipped jobs have no attempts of their own" \
	"$(sql "$DB" "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id
	   WHERE j.run_id = $R2 AND j.state = 'Skipped'")" 0
check_eq "the changed job ran again (new spec_hash, new output)" \
	"$(sql "$DB" "SELECT j.state, j.spec_hash != p.spec_hash, rtrim(s.stdout, char(10))
	   FROM jobs j JOIN jobs p ON p.key = j.key AND p.run_id = $R1
	   JOIN attempts a ON a.job_id = j.id JOIN steps s ON s.attempt_id = a.id
	   WHERE j.run_id = $R2 AND j.name = 'chg'")" "Succeeded|1|v2"
check_eq "the failed jobs ran again: bad fails, flaky now succeeds" \
	"$(sql "$DB" "SELECT group_concat(name || ':' || state || ':' || attempts, ',') FROM
	   (SELECT name, state, attempts FROM jobs WHERE run_id = $R2 AND name IN ('bad', 'flaky') ORDER BY name)")" \
	"bad:Failed:1,flaky:Succeeded:1"
check_eq "run row: 6 jobs, 2 succeeded, 1 failed, 3 skipped" \
	"$(sql "$DB" "SELECT jobs_total, jobs_succeeded, jobs_failed, jobs_skipped FROM runs WHERE id = $R2")" \
	"6|2|1|3"
SUMMARY=$(tail -n 1 "$TMP/err")
check_match "cron summary: one line with status, exit, counts per state and class, db and run id" \
	"$SUMMARY" "^arl-batch: run $R2 'ds' failed \(exit 1\) in [0-9.]+m?s: 2 succeeded, 3 skipped \(succeeded before, spec unchanged; 1 more succeeded before but their spec changed: run again\), 1 failed \(1 failed, 0 timeout, 0 infra\), 0 cancelled; see: arl-batch results --db $DB --run $R2\$"

runner run --progress none --db "$DB" --run-name ds --resume "$D/suite.yaml"
R3=$(last_run "$DB")
check_eq "a second resume skips everything that succeeded, only bad runs" \
	"$(names_where "$DB" "$R3" "state != 'Skipped'")" "bad"
check_eq "skipped_from always names the job whose success stands (run $R1 for s1, run $R2 for chg)" \
	"$(sql "$DB" "SELECT group_concat(j.name || ':' || p.run_id, ',') FROM (SELECT * FROM jobs
	   WHERE run_id = $R3 AND name IN ('chg', 's1') ORDER BY name) j JOIN jobs p ON p.id = j.skipped_from")" \
	"chg:$R2,s1:$R1"
runner run --progress none --db "$DB" --run-name other --resume "$D/suite.yaml"
check_eq "--resume with no earlier run of that name runs everything" \
	"$(sql "$DB" "SELECT jobs_skipped FROM runs WHERE id = $(last_run "$DB")")" 0

# ------------------------------------------------------------------------------------------
echo "# --rerun infra, and exit code 3"
D=$TMP/rerun
mkdir -p "$D"
DB=$D/r.db
{
	echo "version: 1"
	echo "$POOL"
	echo "jobs:"
	infra_job i1 "$D/infra-on"
	infra_job i2 "$D/infra-on"
	echo '  - {name: f1, steps: [{type: Command, command: ["sh", "-c", "exit 2"]}]}'
	echo "  - {name: t1, timeout: 300ms, steps: [{type: Command, command: [\"sleep\", \"5.$MARK\"]}]}"
	echo '  - {name: ok1, steps: [{type: Command, command: ["true"]}]}'
	echo '  - {name: ok2, steps: [{type: Command, command: ["true"]}]}'
} >"$D/rr.yaml"
touch "$D/infra-on"
runner run --progress none --db "$DB" --run-name rr "$D/rr.yaml"
check_eq "a run where jobs ended in infra exits 3 (results incomplete)" "$RC" 3
R1=$(last_run "$DB")
check_eq "first run: classes per job" \
	"$(sql "$DB" "SELECT group_concat(name || ':' || state || ':' || ifnull(error_class, '-'), ',') FROM
	   (SELECT name, state, error_class FROM jobs WHERE run_id = $R1 ORDER BY name)")" \
	"f1:Failed:failed,i1:Failed:infra,i2:Failed:infra,ok1:Succeeded:-,ok2:Succeeded:-,t1:Failed:timeout"
check_match "the summary counts the infra jobs" "$(tail -n 1 "$TMP/err")" \
	"failed \(exit 3\) .*4 failed \(1 failed, 1 timeout, 2 infra\)"

rm -f "$D/infra-on" # the "cluster" is healthy again
echo '  - {name: late, steps: [{type: Command, command: ["true"]}]}' >>"$D/rr.yaml"
runner run --progress none --db "$DB" --run-name rr --rerun infra "$D/rr.yaml"
check_eq "--rerun infra exits 1 (the rerun jobs pass; f1's and t1's failures are carried)" "$RC" 1
R2=$(last_run "$DB")
check_eq "--rerun infra ran exactly the infra-ended jobs and the new one" \
	"$(names_where "$DB" "$R2" "state != 'Skipped'")" "i1,i2,late"
check_eq "... and they succeeded" "$(names_where "$DB" "$R2" "state = 'Succeeded'")" "i1,i2,late"
check_eq "only those three have attempts in the rerun" \
	"$(sql "$DB" "SELECT count(DISTINCT a.job_id) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.run_id = $R2")" 3
check_eq "the other jobs of the earlier run are Skipped, pointing at their result in run $R1" \
	"$(sql "$DB" "SELECT group_concat(j.name || ':' || p.state, ',') FROM (SELECT * FROM jobs
	   WHERE run_id = $R2 AND state = 'Skipped' ORDER BY name) j JOIN jobs p ON p.id = j.skipped_from
	   AND p.key = j.key AND p.run_id = $R1")" \
	"f1:Failed,ok1:Succeeded,ok2:Succeeded,t1:Failed"
check_eq "a job no earlier run had has no standing result: it runs" \
	"$(sql "$DB" "SELECT state, ifnull(skipped_from, 'null') FROM jobs WHERE run_id = $R2 AND name = 'late'")" \
	"Succeeded|null"
runner run --progress none --db "$DB" --run-name rr --rerun failed,timeout "$D/rr.yaml"
check_eq "--rerun failed,timeout after that rerun runs the failures its Skipped rows stand for" \
	"$(names_where "$DB" "$(last_run "$DB")" "state != 'Skipped'")" "f1,t1"
runner run --progress none --db "$DB" --run-name rr --rerun bogus "$D/rr.yaml"
check_eq "--rerun with an unknown class is a usage error" "$RC" 2
runner run --progress none --db "$DB" --run-name rr --rerun infra --resume "$D/rr.yaml"
check_eq "--rerun and --resume together are a usage error" "$RC" 2

# ------------------------------------------------------------------------------------------
echo "# exit code 4 (--max-failures) and 3 winning over 4"
D=$TMP/halt
mkdir -p "$D"
DB=$D/h.db
{
	echo "version: 1"
	echo "$POOL"
	echo "jobs:"
	echo '  - {name: a-fails, steps: [{type: Command, command: ["sh", "-c", "exit 1"]}]}'
	for i in 1 2 3 4; do echo "  - {name: b-later-$i, steps: [{type: Command, command: [\"true\"]}]}"; done
} >"$D/halt.yaml"
runner run --progress none --db "$DB" -j 1 --max-failures 1 "$D/halt.yaml"
check_eq "--max-failures 1 halts the run: exit 4" "$RC" 4
check_eq "... the rest are Cancelled" \
	"$(sql "$DB" "SELECT group_concat(state, ',') FROM (SELECT DISTINCT state FROM jobs WHERE name LIKE 'b-later-%')")" \
	Cancelled
check_match "... and the summary says so" "$(tail -n 1 "$TMP/err")" "failed \(exit 4\).* 4 cancelled;"
{
	echo "version: 1"
	echo "$POOL"
	echo "jobs:"
	infra_job a-infra "$D/infra-on"
	echo '  - {name: b-fails, steps: [{type: Command, command: ["sh", "-c", "exit 1"]}]}'
	echo '  - {name: c-later, steps: [{type: Command, command: ["true"]}]}'
} >"$D/both.yaml"
touch "$D/infra-on"
runner run --progress none --db "$DB" -j 1 --max-failures 1 "$D/both.yaml"
check_eq "infra and a --max-failures halt: 3 wins over 4" "$RC" 3
check_eq "... infra does not count as a failure for --max-failures; b-fails then halted it" \
	"$(sql "$DB" "SELECT group_concat(name || ':' || state, ',') FROM (SELECT name, state FROM jobs
	   WHERE run_id = $(last_run "$DB") ORDER BY name)")" \
	"a-infra:Failed,b-fails:Failed,c-later:Cancelled"
HALT_DB=$DB

# ------------------------------------------------------------------------------------------
echo "# overlapping runs: the per-name lock"
D=$TMP/lock
mkdir -p "$D"
DB=$D/l.db
# The holder runs until the test creates $D/release (or $D is gone), not for a guessed time
# (nor the default 30 s timeout).
cat >"$D/hold.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: hold, timeout: 1h, steps: [{type: Command, command: ["sh", "-c", "while [ -d '$D' ] && [ ! -e '$D/release' ]; do sleep 0.$MARK; done"]}]}
EOF
cat >"$D/quick.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: quick, steps: [{type: Command, command: ["true"]}]}
EOF
# wait_holder PID: waits (at most 120 s: a hang's bound) until the lock file of run 'lk' names PID.
wait_holder() {
	local i
	for i in $(seq 1200); do
		if grep -qs "^pid $1 " "$DB".lock-lk-*; then return 0; fi
		sleep 0.1
	done
	return 1
}
"$ARL_BATCH" run --progress none --db "$DB" --run-name lk "$D/hold.yaml" >"$D/first.out" 2>"$D/first.err" &
FIRST=$!
BG_PIDS+=("$FIRST")
check "the first run takes the lock" wait_holder "$FIRST"
# The holder never ends by itself: a second run that waited for it would be stopped by
# timeout(1) (exit 124) rather than hang the test.
set +e
timeout 120 "$ARL_BATCH" run --progress none --db "$DB" --run-name lk "$D/quick.yaml" >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
check_eq "a second run of the same name while the first holds the lock exits 75 (124: it waited)" "$RC" 75
check "... at once: the holder is still running" kill -0 "$FIRST"
check_eq "... printing exactly one line" "$(wc -l <"$TMP/err")" 1
check_match "... naming the holder's pid, host and since when" "$(cat "$TMP/err")" \
	"already running \(pid $FIRST on $(uname -n) since [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z\)"
check_eq "... and recording nothing" "$(sql "$DB" "SELECT count(*) FROM runs WHERE name = 'lk'")" 1
runner run --progress none --db "$DB" --run-name lk --overlap allow "$D/quick.yaml"
check_eq "--overlap allow runs anyway: exit 0" "$RC" 0
check "... while the first run is still going" kill -0 "$FIRST"
runner run --progress none --db "$DB" --run-name other-name "$D/quick.yaml"
check_eq "a run of another name is not blocked" "$RC" 0
"$ARL_BATCH" run --progress none --db "$DB" --run-name lk --overlap wait "$D/quick.yaml" \
	>"$D/waiter.out" 2>"$D/waiter.err" &
WAITER=$!
BG_PIDS+=("$WAITER")
# A blocked flock(2) shows in /proc/locks as "N: -> FLOCK ... PID ..." until it is granted.
check "--overlap wait blocks on the holder's lock" \
	wait_until 120 "the waiter to block on the lock" grep -Eq "^[0-9]+: -> FLOCK +ADVISORY +WRITE +$WAITER " /proc/locks
check "... while the holder still runs" kill -0 "$FIRST"
touch "$D/release"
wait_pid 120 "$FIRST"
check_eq "the first run ends 0 once released" "$RC" 0
wait_pid 120 "$WAITER"
check_eq "--overlap wait then succeeds" "$RC" 0
WAITED=$(last_run "$DB")
check_eq "... the waiting run started only after the first run finished" \
	"$(sql "$DB" "SELECT (SELECT started_at FROM runs WHERE id = $WAITED) >=
	   (SELECT finished_at FROM runs WHERE name = 'lk' AND id = (SELECT min(id) FROM runs WHERE name = 'lk'))")" 1

echo "# a stale lock (runner killed with -9) is taken over"
cat >"$D/long.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: long, steps: [{type: Command, command: ["sleep", "30.$MARK"]}]}
EOF
"$ARL_BATCH" run --progress none --db "$DB" --run-name lk "$D/long.yaml" >/dev/null 2>&1 &
VICTIM=$!
BG_PIDS+=("$VICTIM")
check "the victim run takes the lock" wait_holder "$VICTIM"
# wait_job_running PID: waits (at most 120 s) until the run of PID has its job Running.
wait_job_running() {
	local i
	for i in $(seq 1200); do
		if [ "$(sql "$DB" "SELECT count(*) FROM jobs j JOIN runs r ON r.id = j.run_id
		        WHERE r.pid = $1 AND j.state = 'Running'" 2>/dev/null)" = 1 ]; then return 0; fi
		sleep 0.1
	done
	return 1
}
check "... and runs its job" wait_job_running "$VICTIM"
kill -9 "$VICTIM"
wait "$VICTIM" 2>/dev/null || true
runner run --progress none --db "$DB" --run-name lk "$D/quick.yaml"
check_eq "the next run of that name is not refused: exit 0" "$RC" 0
check "... and now the lock file names it" grep -q "^pid [0-9]* on" "$DB".lock-lk-*
check_eq "... the dead runner's run is marked interrupted" \
	"$(sql "$DB" "SELECT status FROM runs WHERE pid = $VICTIM")" interrupted
# isolation none has no --die-with-parent: the killed runner's step is left to us.
kill_procs_with "sleep 30\.$MARK"

# ------------------------------------------------------------------------------------------
echo "# --only, --limit, --shard"
D=$TMP/select
mkdir -p "$D"
DB=$D/s.db
python3 -c 'import json
for i in range(30): print(json.dumps({"id": i, "v": "x%d" % i}))' >"$D/items.jsonl"
cat >"$D/big.yaml" <<EOF
version: 1
$POOL
jobs:
  - name: "j-{{ item.id }}"
    foreach: {file: items.jsonl}
    steps: [{type: Command, command: ["echo", "{{ item.v }}"]}]
EOF
cat >"$D/small.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: k-0, steps: [{type: Command, command: ["true"]}]}
  - {name: k-1, steps: [{type: Command, command: ["true"]}]}
  - {name: k-2, steps: [{type: Command, command: ["true"]}]}
EOF
# plan ARGS...: the job keys a dry run would run, one per line, in plan order.
plan() {
	runner run --dry-run "$@" "$D/big.yaml" "$D/small.yaml"
	[ "$RC" -eq 0 ] || echo "dry run failed: $RC $(cat "$TMP/err")"
	awk 'NR > 1 { print $1 }' "$TMP/out"
}
ALL=$(plan)
check_eq "the plan has all 33 jobs" "$(echo "$ALL" | wc -l)" 33
check_eq "--only 'j-1*' selects by name glob" "$(plan --only 'j-1*' | tr '\n' ' ')" \
	"big/j-1 big/j-10 big/j-11 big/j-12 big/j-13 big/j-14 big/j-15 big/j-16 big/j-17 big/j-18 big/j-19 "
check_eq "--only matches the key too ('small/*')" "$(plan --only 'small/*' | tr '\n' ' ')" \
	"small/k-0 small/k-1 small/k-2 "
check_eq "--limit 4: the first 4 jobs of each file" "$(plan --limit 4 | tr '\n' ' ')" \
	"big/j-0 big/j-1 big/j-2 big/j-3 small/k-0 small/k-1 small/k-2 "
check_eq "--only then --limit" "$(plan --only 'j-2*' --limit 3 | tr '\n' ' ')" "big/j-2 big/j-20 big/j-21 "
S1=$(plan --shard 1/3)
S2=$(plan --shard 2/3)
S3=$(plan --shard 3/3)
check_eq "the three shards together are all jobs" \
	"$(printf '%s\n%s\n%s\n' "$S1" "$S2" "$S3" | sed '/^$/d' | sort)" "$(echo "$ALL" | sort)"
check_eq "... and disjoint (no key twice)" \
	"$(printf '%s\n%s\n%s\n' "$S1" "$S2" "$S3" | sed '/^$/d' | sort | uniq -d)" ""
check "... none of them empty" test -n "$S1" -a -n "$S2" -a -n "$S3"
check_eq "the split is stable" "$(plan --shard 2/3)" "$S2"
check_eq "--shard 1/1 is everything" "$(plan --shard 1/1)" "$ALL"
runner run --progress none --db "$DB" --shard 2/3 "$D/big.yaml" "$D/small.yaml"
check_eq "a real run of shard 2/3 exits 0" "$RC" 0
check_eq "... and records exactly the keys of its plan" \
	"$(sql "$DB" "SELECT key FROM jobs ORDER BY key")" "$(echo "$S2" | LC_ALL=C sort)"
for bad in 0/3 4/3 3 a/b 1/0; do
	runner run --dry-run --shard "$bad" "$D/big.yaml"
	check_eq "--shard $bad is a usage error" "$RC" 2
done
runner run --dry-run --limit 0 "$D/big.yaml"
check_eq "--limit 0 is a usage error" "$RC" 2

# ------------------------------------------------------------------------------------------
echo "# prune"
D=$TMP/prune
mkdir -p "$D"
DB=$D/p.db
cat >"$D/pa.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: m, steps: [{type: Command, command: ["sh", "-c", "echo '{\"score\": 1}'"], metrics: json}]}
  - {name: x, steps: [{type: Command, command: ["sh", "-c", "echo out; echo err >&2; exit 1"]}]}
  - {name: y, retries: 1, retryOn: [failed], steps: [{type: Command, command: ["sh", "-c", "exit 1"]}]}
EOF
for i in 1 2 3 4; do
	runner run --progress none --db "$DB" --run-name pa --resume "$D/pa.yaml"
done
for i in 1 2; do
	runner run --progress none --db "$DB" --run-name pb "$D/pa.yaml"
done
# consistent DB: the checks every prune must leave true.
consistent() {
	local what=$1
	check_eq "$what: integrity_check ok" "$(sql "$DB" "PRAGMA integrity_check")" ok
	check_eq "$what: foreign_key_check empty" "$(sql "$DB" "PRAGMA foreign_key_check")" ""
	check_eq "$what: no orphan jobs/attempts/steps/metrics, no dangling skipped_from" \
		"$(sql "$DB" "SELECT
		   (SELECT count(*) FROM jobs WHERE run_id NOT IN (SELECT id FROM runs)),
		   (SELECT count(*) FROM attempts WHERE job_id NOT IN (SELECT id FROM jobs)),
		   (SELECT count(*) FROM steps WHERE attempt_id NOT IN (SELECT id FROM attempts)),
		   (SELECT count(*) FROM metrics WHERE job_id NOT IN (SELECT id FROM jobs)),
		   (SELECT count(*) FROM jobs WHERE skipped_from IS NOT NULL
		      AND skipped_from NOT IN (SELECT id FROM jobs))")" "0|0|0|0|0"
}
ids_of() {
	sql "$DB" "SELECT group_concat(id, ',') FROM (SELECT id FROM runs WHERE name = '$1' ORDER BY id)"
}
PA=$(ids_of pa)
PB=$(ids_of pb)
check_eq "6 runs to prune from" "$(sql "$DB" "SELECT count(*) FROM runs")" 6
consistent "before prune"
runner prune --db "$DB" --keep 2 --dry-run
check_eq "prune --dry-run exits 0" "$RC" 0
# pa's first run stays: the resumed runs' Skipped jobs stand on its result (prune keeps such
# runs, or the next --resume would redo those jobs). So --keep 2 deletes only pa's second run.
check_eq "... lists the 1 run it would delete" "$(grep -c '^would delete run' "$TMP/out")" 1
check_eq "... and deletes nothing" "$(sql "$DB" "SELECT count(*) FROM runs")" 6
runner prune --db "$DB" --keep 2
check_eq "prune --keep 2 exits 0" "$RC" 0
check_eq "... keeps the 2 newest runs of pa, and the first whose results stand" "$(ids_of pa)" \
	"$(echo "$PA" | cut -d, -f1,3,4)"
check_eq "... and both of pb" "$(ids_of pb)" "$PB"
consistent "after --keep 2"
check_eq "... the steps, attempts and metrics of the deleted runs are gone" \
	"$(sql "$DB" "SELECT (SELECT count(*) FROM jobs) * 100 + (SELECT count(*) FROM metrics)")" \
	"$(sql "$DB" "SELECT (SELECT count(*) FROM jobs WHERE run_id IN (SELECT id FROM runs)) * 100 +
	   (SELECT count(*) FROM metrics m JOIN jobs j ON j.id = m.job_id)")"
runner prune --db "$DB" --keep 1 --name pb
check_eq "prune --keep 1 --name pb keeps pb's newest" "$(ids_of pb)" "$(echo "$PB" | cut -d, -f2)"
check_eq "... and leaves pa alone" "$(ids_of pa)" "$(echo "$PA" | cut -d, -f1,3,4)"
consistent "after --keep 1 --name pb"
OLD=$(echo "$PA" | cut -d, -f3)
sql "$DB" "UPDATE runs SET started_at = '2001-01-01T00:00:00.000Z' WHERE id = $OLD"
runner prune --db "$DB" --older-than 720h
check_eq "prune --older-than 720h deletes only the run that started long ago" \
	"$(sql "$DB" "SELECT group_concat(id, ',') FROM runs")" \
	"$(echo "$PA" | cut -d, -f1,4),$(echo "$PB" | cut -d, -f2)"
consistent "after --older-than"
runner prune --db "$DB"
check_eq "prune without --keep or --older-than is a usage error" "$RC" 2
runner run --progress none --db "$DB" --run-name pa --resume "$D/pa.yaml"
check_eq "a run after pruning still works (exit 1: x and y fail)" "$RC" 1

# ------------------------------------------------------------------------------------------
echo "# diff"
D=$TMP/diff
mkdir -p "$D/A" "$D/B"
DB=$D/d.db
# ev.yaml in both directories (same stem, so the same job keys ev/NAME).
job() { # NAME EXIT [SCORE]
	if [ -n "${3:-}" ]; then
		echo "  - {name: $1, steps: [{type: Command, command: [\"sh\", \"-c\", \"echo '{\\\"score\\\": $3}'; exit $2\"], metrics: json}]}"
	else
		echo "  - {name: $1, steps: [{type: Command, command: [\"sh\", \"-c\", \"exit $2\"]}]}"
	fi
}
{
	echo "version: 1"
	echo "$POOL"
	echo "jobs:"
	job br1 0; job br2 0; job br3 0 # broken: pass -> fail
	job fx1 1                       # fixed: fail -> pass
	job sf1 1; job sf2 1            # still failing
	job sp1 0 1; job sp2 0 2        # still passing, score 1 and 2
	job gone1 0                     # missing from B
	job inf1 0                      # infra in B
} >"$D/A/ev.yaml"
{
	echo "version: 1"
	echo "$POOL"
	echo "jobs:"
	job br1 1; job br2 1; job br3 1
	job fx1 0
	job sf1 1; job sf2 1
	job sp1 0 3; job sp2 0 4
	job new1 0 # added in B
	infra_job inf1 "$D/infra-on"
} >"$D/B/ev.yaml"
runner run --progress none --db "$DB" --run-name ev "$D/A/ev.yaml"
RA=$(last_run "$DB")
touch "$D/infra-on"
runner run --progress none --db "$DB" --run-name ev "$D/B/ev.yaml"
RB=$(last_run "$DB")
check_eq "run B exits 3 (inf1 ended in infra)" "$RC" 3
runner diff --db "$DB" --format json
check_eq "diff (default: the two latest runs of the name) exits 0" "$RC" 0
cp "$TMP/out" "$D/diff.json"
check_eq "diff json: runs, lists, counts, pass rates and McNemar p" "$(python3 - "$D/diff.json" "$RA" "$RB" <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
ra, rb = int(sys.argv[2]), int(sys.argv[3])
out = []
def want(what, got, exp):
    if got != exp:
        out.append("%s: got %r want %r" % (what, got, exp))
want("run ids", [r["id"] for r in d["runs"]], [ra, rb])
j = d["jobs"]
want("fixed", j["fixed"], ["ev/fx1"])
want("broken", j["broken"], ["ev/br1", "ev/br2", "ev/br3"])
want("still_failing", j["still_failing"], ["ev/sf1", "ev/sf2"])
want("added", j["added"], ["ev/new1"])
want("missing", j["missing"], ["ev/gone1"])
want("infra", j["infra"], ["ev/inf1"])
c = d["counts"]
want("counts", {k: c[k] for k in ("fixed", "broken", "still_failing", "still_passing", "added",
                                  "missing", "infra")},
     {"fixed": 1, "broken": 3, "still_failing": 2, "still_passing": 2, "added": 1,
      "missing": 1, "infra": 1})
# Each run's own pass rate, infra left out: A passes br1-3, sp1-2, gone1, inf1 and fails fx1,
# sf1-2; B passes fx1, sp1-2, new1 and fails br1-3, sf1-2 (inf1 is infra).
a, b = d["runs"]
want("A passed/failed", (a["passed"], a["failed"]), (7, 3))
want("B passed/failed", (b["passed"], b["failed"]), (4, 5))
want("A pass rate", round(a["passRate"], 6), round(7 / 10, 6))
want("B pass rate", round(b["passRate"], 6), round(4 / 9, 6))
# McNemar's exact test: two-sided binomial tail of min(broken, fixed) in broken + fixed, p=1/2.
n, k = 3 + 1, 1
p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
want("mcnemarP", round(d["mcnemarP"], 9), round(p, 9))
want("p is 0.625", round(p, 9), 0.625)
m = {x["name"]: x for x in d["metrics"]}
want("metric score", (m["score"]["meanA"], m["score"]["meanB"], m["score"]["delta"]), (1.5, 3.5, 2.0))
print("; ".join(out) if out else "ok")
EOF
)" ok
runner diff --db "$DB" --format json --metrics "$RA" "$RB"
check_eq "diff RUN_A RUN_B --metrics: metric deltas per job" "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(",".join("%s:%s:%g->%g:%+g" % (x["key"], x["name"], x["a"], x["b"], x["delta"]) for x in d["jobMetrics"]))
' "$TMP/out")" "ev/sp1:score:1->3:+2,ev/sp2:score:2->4:+2"
runner diff --db "$DB" --format json "$RB"
check_eq "diff RUN: that run against the one before it of its name" \
	"$(python3 -c 'import json, sys; print([r["id"] for r in json.load(open(sys.argv[1]))["runs"]])' "$TMP/out")" \
	"[$RA, $RB]"
runner diff --db "$DB" --format json "$RA"
check_eq "diff RUN with no earlier run of its name exits 1" "$RC" 1
runner diff --db "$DB" --fail-on-regression
check_eq "diff --fail-on-regression exits 1 when jobs broke" "$RC" 1
check_match "... the table names the broken jobs and the p-value" "$(cat "$TMP/out")" \
	"fixed 1, broken 3, still failing 2.*McNemar exact p = 0.625.*broken \(3\):.*ev/br1"
runner diff --db "$DB" --format markdown "$RA" "$RB"
check_match "diff --format markdown: a table of both runs and the lists" "$(cat "$TMP/out")" \
	"\| run \| name \| passed \| failed \| pass rate \|.*\| $RB \| ev \| 4 \| 5 \| 44\.4% \|.*- \`ev/br1\`"
# Three broken and none fixed: p = 2 * (1/2)^3 = 0.25.
{
	echo "version: 1"
	echo "$POOL"
	echo "jobs:"
	job br1 0; job br2 0; job br3 0; job fx1 0
	job sf1 1; job sf2 1; job sp1 0 3; job sp2 0 4; job new1 0; job inf1 0
} >"$D/A/ev.yaml"
runner run --progress none --db "$DB" --run-name ev "$D/A/ev.yaml"
RX=$(last_run "$DB")
runner diff --db "$DB" --format json "$RX" "$RB"
check_eq "3 broken, 0 fixed: p = 0.25" "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["counts"]["broken"], d["counts"]["fixed"], round(d["mcnemarP"], 9))' "$TMP/out")" "3 0 0.25"
runner diff --db "$DB" --fail-on-regression "$RB" "$RX"
check_eq "diff --fail-on-regression exits 0 when nothing broke" "$RC" 0
runner diff --db "$DB" 999 "$RB"
check_eq "diff of a run that does not exist exits 1" "$RC" 1

# ------------------------------------------------------------------------------------------
echo "# results --format junit and csv"
D=$TMP/export
mkdir -p "$D/one" "$D/two"
DB=$D/e.db
cat >"$D/one/exp1.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: ok, steps: [{type: Command, command: ["sh", "-c", "printf '<a & b> \"q\" \\\\001\\\\n'; echo '{\"score\": 0.5}'"], metrics: json}]}
  - {name: fail, steps: [{type: Command, command: ["sh", "-c", "echo boom >&2; exit 2"]}]}
  - {name: tmo, timeout: 300ms, steps: [{type: Command, command: ["sleep", "5.$MARK"]}]}
  - {name: big, steps: [{type: Command, command: ["sh", "-c", "seq 1 5000; echo THE-END; exit 1"]}]}
$(infra_job inf "$D/infra-on")
EOF
cat >"$D/two/exp2.yaml" <<EOF
version: 1
$POOL
jobs:
  - {name: a, steps: [{type: Command, command: ["sh", "-c", "echo '{\"acc\": 1, \"label\": \"x,y\"}'"], metrics: json}]}
  - {name: b, steps: [{type: Command, command: ["true"]}]}
EOF
touch "$D/infra-on"
runner run --progress none --db "$DB" --run-name exp "$D/one/exp1.yaml" "$D/two/exp2.yaml"
check_eq "export run exits 3" "$RC" 3
runner run --progress none --db "$DB" --run-name exp --resume "$D/one/exp1.yaml" "$D/two/exp2.yaml"
E1=$(sql "$DB" "SELECT min(id) FROM runs")
E2=$(last_run "$DB")

# junit_check RUN FILE: validates with xmllint; prints what the python checks found.
junit_check() {
	local rc=0
	"$ARL_BATCH" results --db "$2" --run "$1" --format junit >"$TMP/junit.xml" 2>"$TMP/junit.err" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "results --format junit exited $rc: $(cat "$TMP/junit.err")"
		return
	fi
	if ! command -v xmllint >/dev/null; then
		echo "xmllint missing (apt-get install libxml2-utils)"
		return
	fi
	if ! xmllint --noout --schema "$SOURCE_DIR/tests/integration/junit.xsd" "$TMP/junit.xml" 2>"$TMP/xmllint.err"; then
		echo "xmllint: $(cat "$TMP/xmllint.err")"
		return
	fi
	echo valid
}
check_eq "junit of run $E1 validates against junit.xsd" "$(junit_check "$E1" "$DB")" valid
check_eq "junit: a suite per file, a case per job, outcome elements by class, output tails" \
	"$(python3 - "$TMP/junit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
out = []
def want(what, got, exp):
    if got != exp:
        out.append("%s: got %r want %r" % (what, got, exp))
suites = root.findall("testsuite")
want("suites", [s.get("name") for s in suites], ["exp1", "exp2"])
for s in suites:
    cases = s.findall("testcase")
    for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        want(s.get("name") + " " + attr, int(s.get(attr)), sum(1 for c in cases if c.find(tag) is not None))
    want(s.get("name") + " tests", int(s.get("tests")), len(cases))
    want(s.get("name") + " classnames", {c.get("classname") for c in cases}, {s.get("name")})
for attr in ("tests", "failures", "errors"):
    want("root " + attr, int(root.get(attr)), sum(int(s.get(attr)) for s in suites))
c = {tc.get("name"): tc for s in suites for tc in s.findall("testcase")}
want("cases", sorted(c), ["a", "b", "big", "fail", "inf", "ok", "tmo"])
def outcome(n):
    for tag in ("failure", "error", "skipped"):
        e = c[n].find(tag)
        if e is not None:
            return tag + ":" + (e.get("type") or "")
    return "passed"
want("outcomes", {n: outcome(n) for n in c},
     {"a": "passed", "b": "passed", "ok": "passed", "fail": "failure:failed",
      "tmo": "failure:timeout", "big": "failure:failed", "inf": "error:infra"})
want("stderr of fail", c["fail"].findtext("system-err"), "boom\n")
ok = c["ok"].findtext("system-out")
want("escaped output comes back", ok.startswith('<a & b> "q" \ufffd\n'), True)
big = c["big"].findtext("system-out")
want("big: a tail of about 4 KiB", 3800 < len(big.encode()) < 4400, True)
want("big: ends with the last line", big.endswith("4999\n5000\nTHE-END\n"), True)
want("big: says it was cut", big.startswith("[arl-batch: the last "), True)
print("; ".join(out) if out else "ok")
EOF
)" ok
check_eq "junit of the resumed run $E2 validates" "$(junit_check "$E2" "$DB")" valid
check_eq "junit of the resumed run: Skipped jobs are <skipped/> naming the run whose result stands" \
	"$(python3 - "$TMP/junit.xml" "$E1" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
sk = sorted((tc.get("name"), tc.find("skipped").get("message"))
            for tc in root.iter("testcase") if tc.find("skipped") is not None)
print(";".join("%s=%s" % x for x in sk))
EOF
)" "a=the result of run $E1 stands: Succeeded;b=the result of run $E1 stands: Succeeded;ok=the result of run $E1 stands: Succeeded"
check_eq "junit of the --max-failures run (Cancelled jobs) validates" "$(junit_check latest "$HALT_DB")" valid
check_match "... Cancelled jobs are <error type=\"cancelled\">" "$(cat "$TMP/junit.xml")" \
	'<testcase name="c-later" classname="both" time="[0-9.]+">[[:space:]]*<error type="cancelled"'
runner results --db "$DB" --run "$E1" --format junit --state Failed
cp "$TMP/out" "$TMP/junit.xml"
check_eq "junit --state Failed: only the failed cases, counts to match" "$(python3 -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
print(r.get("tests"), ",".join(sorted(t.get("name") for t in r.iter("testcase"))), [s.get("name") for s in r])' "$TMP/junit.xml")" \
	"4 big,fail,inf,tmo ['exp1']"

runner results --db "$DB" --run "$E1" --format csv
check_eq "csv exits 0" "$RC" 0
cp "$TMP/out" "$D/e1.csv"
runner results --db "$DB" --run "$E2" --format csv
check_eq "csv of the resumed run exits 0" "$RC" 0
cp "$TMP/out" "$D/e2.csv"
check_eq "csv: a metric_<name> column per metric after the fixed columns" "$(python3 - "$D/e1.csv" "$D/e2.csv" <<'EOF'
import csv, sys
out = []
def want(what, got, exp):
    if got != exp:
        out.append("%s: got %r want %r" % (what, got, exp))
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
hdr = next(csv.reader(open(sys.argv[1], newline="")))
want("header", hdr[:3] + hdr[-9:], ["run_id", "key", "name", "duration_ms", "skipped_from",
                                    "carried_from_run", "carried_state", "carried_class",
                                    "reason", "metric_acc", "metric_label", "metric_score"])
by = {r["key"]: r for r in rows}
want("rows", len(rows), 7)
want("ok score", float(by["exp1/ok"]["metric_score"]), 0.5)
want("a acc", float(by["exp2/a"]["metric_acc"]), 1.0)
want("a label (quoted comma)", by["exp2/a"]["metric_label"], "x,y")
want("no metric: empty", (by["exp1/fail"]["metric_score"], by["exp2/b"]["metric_acc"]), ("", ""))
rows2 = {r["key"]: r for r in csv.DictReader(open(sys.argv[2], newline=""))}
want("resumed: ok Skipped", rows2["exp1/ok"]["state"], "Skipped")
want("resumed: the Skipped job carries the metrics of the result it stands for",
     float(rows2["exp1/ok"]["metric_score"]), 0.5)
want("resumed: skipped_from set", rows2["exp1/ok"]["skipped_from"] != "", True)
print("; ".join(out) if out else "ok")
EOF
)" ok

summary
