#!/usr/bin/env bash
# The smaller items of issue 16, through the command line:
#   A. run --dry-run with --resume / --rerun: per job, run or skip and why, read from the
#      database without writing it (none is created when it does not exist).
#   B. --resume's summary: how many were skipped because they succeeded with an unchanged spec,
#      and how many succeeded before but changed.
#   C. pools with hashWorkspace: true put the workspace tree (paths, modes, contents, symlink
#      targets; not times) into the spec hash; other pools' hashes do not change.
#   D. diff's metric means say how many jobs each is over (table and JSON).
#   E. JUnit: a suite's time is its wall time, the run's the run's, not sums of job durations.
#   F. prune --older-than takes days and weeks (30d, 2w).
#   G. show --tail N: the last N lines of each stream, saying how many are not shown.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
cd "$TMP"

plan_of() { # the PLAN and WHY of key $1 in $TMP/out
	awk -v k="$1" '$2 == k { w = $1; $1 = $2 = $3 = $4 = $5 = $6 = $7 = ""; sub(/^ +/, ""); print w "|" $0 }' "$TMP/out"
}

echo "# A. --dry-run with --resume and --rerun"
cat >r.yaml <<'EOF'
version: 1
pools: {p: {replicas: 2, isolation: none}}
jobs:
  - {name: ok1, steps: [{type: Command, command: ["true"]}]}
  - {name: ok2, steps: [{type: Command, command: ["true"]}]}
  - {name: bad, steps: [{type: Command, command: ["false"]}]}
EOF
runner run --dry-run --resume --db r.db r.yaml
check_eq "[A] no database yet: every job would run, none created" \
	"$RC|$(plan_of r/ok1)|$(tail -1 "$TMP/out")|$(ls r.db* 2>/dev/null | wc -l)" \
	"0|run|no earlier result|would run 3 jobs, skip 0|0"
runner run --progress none --db r.db r.yaml
sed -i 's/name: ok2, steps: \[{type: Command, command: \["true"\]}\]/name: ok2, steps: [{type: Command, command: ["true", "changed"]}]/' r.yaml
before=$(sha256sum r.db)
runner run --dry-run --resume --db r.db r.yaml
check_eq "[A] --resume: an unchanged success is skipped" "$(plan_of r/ok1)" "skip|succeeded in run 1, spec unchanged"
check_eq "[A] --resume: a changed one runs" "$(plan_of r/ok2)" "run|spec changed since its success in run 1"
check_eq "[A] --resume: a failure runs" "$(plan_of r/bad)" "run|Failed (failed) in run 1"
check_eq "[A] --resume: the counts" "$(tail -1 "$TMP/out")" "would run 2 jobs, skip 1"
runner run --dry-run --rerun failed --db r.db r.yaml
check_eq "[A] --rerun failed: the failure runs, successes are skipped" \
	"$(plan_of r/bad)#$(plan_of r/ok2)" "run|Failed (failed) in run 1, a --rerun class#skip|Succeeded in run 1"
runner run --dry-run --rerun infra --db r.db r.yaml
check_eq "[A] --rerun infra: a failure of another class is skipped" "$(plan_of r/bad)" "skip|Failed (failed) in run 1, not a --rerun class"
check_eq "[A] dry runs leave the database as it was" "$(sha256sum r.db)" "$before"

echo "# B. --resume says why it skipped"
runner run --resume --progress none --db r.db r.yaml
check_match "[B] skipped because unchanged, and how many changed" "$(cat "$TMP/err")" \
	"1 skipped \\(succeeded before, spec unchanged; 1 more succeeded before but their spec changed: run again\\)"

echo "# C. hashWorkspace"
mkdir -p ws/sub
echo hi >ws/a.txt
echo x >ws/sub/b
ln -s a.txt ws/link
cat >h.yaml <<'EOF'
version: 1
pools: {p: {replicas: 1, isolation: none, workspace: ./ws, hashWorkspace: true}}
jobs:
  - {name: j, steps: [{type: Command, command: ["true"]}]}
EOF
sed 's/, hashWorkspace: true//' h.yaml >plain.yaml
runner run --progress none --db h.db h.yaml
runner run --progress none --db p.db plain.yaml
decide() {
	runner run --dry-run --resume --db "$1" "$2"
	plan_of "${2%.yaml}/j" | cut -d'|' -f1
}
check_eq "[C] unchanged: skipped" "$(decide h.db h.yaml)" skip
echo changed >ws/sub/b
check_eq "[C] a file's content changed: runs" "$(decide h.db h.yaml)" run
check_eq "[C] ... but not for a pool without hashWorkspace" "$(decide p.db plain.yaml)" skip
echo x >ws/sub/b
check_eq "[C] changed back: skipped" "$(decide h.db h.yaml)" skip
chmod 600 ws/sub/b
check_eq "[C] a mode changed: runs" "$(decide h.db h.yaml)" run
chmod 644 ws/sub/b
ln -sfn sub ws/link
check_eq "[C] a symlink's target changed: runs" "$(decide h.db h.yaml)" run
ln -sfn a.txt ws/link
touch -d 2001-01-01 ws/a.txt ws/sub
check_eq "[C] times alone do not count" "$(decide h.db h.yaml)" skip
touch ws/new
check_eq "[C] a new file: runs" "$(decide h.db h.yaml)" run
rm ws/new
mkfifo ws/fifo
runner validate h.yaml
check_match "[C] a fifo cannot be hashed: validate says so at the pool" "$RC|$(cat "$TMP/err")" \
	"^2\\|h.yaml:2:[0-9]+: error: hashWorkspace of .*: workspace entry 'fifo' is not a file, directory or symbolic link"
rm ws/fifo
sed 's/, workspace: .\/ws//' h.yaml >nows.yaml
runner validate nows.yaml
check_match "[C] hashWorkspace without a workspace" "$RC|$(cat "$TMP/err")" "^2\\|.*'hashWorkspace: true' needs a 'workspace:'"

echo "# D. diff: how many jobs each metric mean is over"
{
	echo "version: 1"
	echo "pools: {p: {replicas: 2, isolation: none}}"
	echo "jobs:"
	for i in 1 2 3; do
		echo "  - {name: m$i, steps: [{type: Command, metrics: json, command: [\"sh\", \"-c\", \"test $i = 3 && [ -e $TMP/only2 ] && exit 0; echo '{\\\"score\\\": $i}'\"]}]}"
	done
} >m.yaml
steps_may_use
runner run --progress none --db m.db m.yaml
touch only2
chmod 644 only2
runner run --progress none --db m.db m.yaml
runner diff --db m.db
check_match "[D] table: mean (jobs) for each run" "$(cat "$TMP/out")" \
	"metrics \\(mean A \\(jobs\\) -> mean B \\(jobs\\), delta\\):.*score +2 \\(3\\) -> 1.5 \\(2\\) +-0.5"
runner diff --db m.db --format json
check_eq "[D] JSON: countA and countB" \
	"$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"][0]; print(m["countA"], m["countB"])' "$TMP/out")" "3 2"

echo "# E. JUnit times are wall times"
{
	echo "version: 1"
	echo "pools: {p: {replicas: 4, isolation: none}}"
	echo "jobs:"
	for i in 1 2 3 4; do
		# Each job waits until all four have started: they overlap for sure.
		echo "  - {name: w$i, steps: [{type: Command, command: [\"sh\", \"-c\", \"touch $TMP/bar/$i; while [ \$(ls $TMP/bar | wc -l) -lt 4 ]; do sleep 0.05; done; sleep 0.2\"]}]}"
	done
} >w.yaml
mkdir bar
chmod 777 bar
runner run --progress none --db w.db w.yaml
runner results --db w.db --format junit
check_eq "[E] JUnit's times: the run's wall time, a suite's below the sum of its cases" \
	"$(python3 - "$TMP/out" "$(sql w.db 'SELECT duration_ms FROM runs')" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root.find("testsuite")
cases = sum(float(c.get("time")) for c in suite.findall("testcase"))
run_ms = int(sys.argv[2])
print(abs(float(root.get("time")) * 1000 - run_ms) < 1.5,
      float(suite.get("time")) < cases, float(suite.get("time")) <= run_ms / 1000 + 0.001)
EOF
)" "True True True"

echo "# F. prune --older-than in days and weeks"
for a in 30d 2w 720h; do
	runner prune --db m.db --older-than "$a" --dry-run
	check_match "[F] --older-than $a" "$RC|$(cat "$TMP/out")" "^0\\|would prune 0 runs"
done
runner prune --db m.db --older-than 0d --dry-run
check_match "[F] --older-than 0d: every finished run" "$RC|$(cat "$TMP/out")" "^0\\|.*would prune 2 runs"
for a in 1.5d x -1d d 36501d 100000000h; do
	runner prune --db m.db --older-than "$a" --dry-run
	check_match "[F] --older-than $a is refused" "$RC|$(cat "$TMP/err")" \
		"^2\\|.*expected a duration from 0s to 876000h \\(720h, 90m\\) or whole days or weeks \\(30d, 2w\\)"
done

echo "# G. show --tail"
cat >t.yaml <<'EOF'
version: 1
pools: {p: {replicas: 1, isolation: none}}
jobs:
  - {name: big, steps: [{type: Command, command: ["sh", "-c", "seq 1 50000; echo e1 >&2; echo e2 >&2"]}]}
EOF
runner run --progress none --db t.db t.yaml
runner show --db t.db --tail 2 big
check_match "[G] the last lines, and how many are not shown" "$RC|$(cat "$TMP/out")" \
	"^0\\|.*stdout:
      \\[\\.\\.\\. 49998 earlier lines not shown \\(--tail 2\\) \\.\\.\\.\\]
      49999
      50000
    stderr:
      e1
      e2"
runner show --db t.db --tail 0 big
check_eq "[G] --tail 0 is a usage error" "$RC" 2

summary
