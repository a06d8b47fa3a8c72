#!/usr/bin/env bash
# `artifacts:` through the command line: globs, a literal path and a path outside /workspace
# (bwrap), maxSize, a pattern matching nothing, files kept from failed and timed-out attempts
# (callbacks ran first), the same content stored once (0600 files, 0700 directories), a
# symlink pointing outside the sandbox and a FIFO not followed nor read (bwrap and isolation:
# none), foreach jobs, `artifacts -o` (and a path escaping -o DIR refused), `show`, prune
# deleting the stored files no remaining row names.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 sha256sum
make_tmp
DB=$TMP/r.db
STORE=$DB.artifacts

# stored DIGEST: the path of a stored file
stored() {
	echo "$STORE/sha256/${1:0:2}/$1"
}

# The host's secret, which a symlink in the sandbox points at: it must never be stored.
echo "host-secret-$$" >"$TMP/secret"
chmod 644 "$TMP/secret"

HAVE_BWRAP=0
if command -v bwrap >/dev/null 2>&1 && bwrap --unshare-pid --ro-bind / / true >/dev/null 2>&1; then
	HAVE_BWRAP=1
fi

cat >"$TMP/none.yaml" <<EOF
version: 1
pools:
  p: {isolation: none}
defaults:
  artifacts:
    - path: /workspace/out/*.json
    - path: /workspace/big.bin
      maxSize: 1Ki
    - path: /workspace/none-such
jobs:
  - name: ok
    steps:
      - type: Command
        command: ["sh", "-c", "mkdir out && echo one > out/a.json && echo two > out/b.json && echo one > out/c.txt && echo one > out/.hidden.json && head -c 1024 /dev/zero > big.bin && ln -s $TMP/secret out/evil.json && mkfifo out/fifo.json && mkdir out/dir.json && ln -s $TMP out/link && echo x > out/link.json"]
  - name: failed
    steps:
      - {type: Command, command: ["sh", "-c", "mkdir out && echo one > out/a.json && head -c 1025 /dev/zero > big.bin && exit 3"]}
    callbacks:
      on_task_failure: [{type: Command, command: ["sh", "-c", "echo cb > out/cb.json"]}]
  - name: timedout
    timeout: 1s
    steps:
      - {type: Command, command: ["sh", "-c", "mkdir out && echo late > out/t.json && exec sleep 600"]}
  - name: "each-{{ item.n }}"
    foreach: {matrix: {n: [1, 2]}}
    artifacts: [{path: "/workspace/item-{{ item.n }}.txt"}]
    steps:
      - {type: Command, command: ["sh", "-c", "echo {{ item.n }} > item-{{ item.n }}.txt"]}
EOF
steps_may_use
runner run "$TMP/none.yaml" --db "$DB"
check_eq "a run with a failed and a timed-out job exits 1" "$RC" 1

rows() { # rows KEY: its attempts' artifacts, "path|size|+ or - (stored or not)|error"
	sql "$DB" "SELECT a.path, a.size, CASE WHEN a.sha256 IS NULL THEN '-' ELSE '+' END,
	  coalesce(a.error, '') FROM artifacts a JOIN attempts t ON t.id = a.attempt_id
	  JOIN jobs j ON j.id = t.job_id WHERE j.key = '$1' ORDER BY a.id"
}
check_eq "isolation none: globs, maxSize, nothing matched, symlinks/FIFOs/directories refused" \
	"$(rows none/ok)" "/workspace/out/a.json|4|+|
/workspace/out/b.json|4|+|
/workspace/out/dir.json|0|-|not kept: a directory
/workspace/out/evil.json|0|-|not kept: a symlink: not followed
/workspace/out/fifo.json|0|-|not kept: not a regular file
/workspace/out/link.json|2|+|
/workspace/big.bin|1024|+|
/workspace/none-such|0|-|no file matches"
check_eq "a failed attempt keeps its files, after its callbacks; over maxSize: a row, no content" \
	"$(rows none/failed)" "/workspace/out/a.json|4|+|
/workspace/out/cb.json|3|+|
/workspace/big.bin|1025|-|not kept: larger than its maxSize (1025 bytes; 1024 allowed)
/workspace/none-such|0|-|no file matches"
check_match "a timed-out attempt keeps its files" "$(rows none/timedout)" \
	'^/workspace/out/t.json\|5\|\+\|'
check_eq "foreach jobs: the pattern rendered per item" "$(rows none/each-2)" \
	"/workspace/item-2.txt|2|+|"

ONE=$(printf 'one\n' | sha256sum | cut -d' ' -f1)
check_eq "the digest is the content's sha256" \
	"$(sql "$DB" "SELECT DISTINCT sha256 FROM artifacts WHERE path = '/workspace/out/a.json'")" \
	"$ONE"
check_eq "the same content is stored once" "$(cat "$(stored "$ONE")")" "one"
check_eq "stored files: one per distinct digest" \
	"$(find "$STORE/sha256" -type f | wc -l)" \
	"$(sql "$DB" "SELECT count(DISTINCT sha256) FROM artifacts")"
check_eq "stored files are 0600, directories 0700" \
	"$(find "$STORE" \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \) | wc -l)" 0
check_eq "nothing left in the temporary directory" "$(find "$STORE/tmp" -type f | wc -l)" 0
check_eq "the host file a symlink pointed at was never stored" \
	"$(grep -rl "host-secret-$$" "$STORE" | wc -l)" 0

if [ "$HAVE_BWRAP" = 1 ]; then
	cat >"$TMP/box.yaml" <<EOF
version: 1
pools:
  p: {}
jobs:
  - name: ok
    artifacts:
      - path: /workspace/out/*.json
      - path: /tmp/*.log
      - path: /etc/hostnam?
    steps:
      - type: Command
        command: ["sh", "-c", "mkdir /workspace/out && echo one > /workspace/out/a.json && ln -s /etc/hostname /workspace/out/evil.json && mkfifo /workspace/out/fifo.json && echo log > /tmp/t.log"]
  - name: timedout
    timeout: 1s
    artifacts: [{path: /workspace/t.txt, maxSize: 10}]
    steps:
      - {type: Command, command: ["sh", "-c", "echo late > /workspace/t.txt && exec sleep 600"]}
EOF
	runner run "$TMP/box.yaml" --db "$DB"
	check_eq "bwrap: the run exits 1 (a timeout)" "$RC" 1
	check_eq "bwrap: globs inside and outside /workspace, symlink and FIFO refused" \
		"$(rows box/ok)" "/workspace/out/a.json|4|+|
/workspace/out/evil.json|0|-|not kept: a symlink: not followed
/workspace/out/fifo.json|0|-|not kept: not a regular file
/tmp/t.log|4|+|
/etc/hostname|$(stat -c %s /etc/hostname)|+|"
	check_eq "bwrap: a timed-out attempt keeps its files" "$(rows box/timedout)" \
		"/workspace/t.txt|5|+|"
	# An image's root: the agent's binary is not reachable there; the files are the image's.
	# (A sanitizer build's agent is dynamic and runs on the host's root only.)
	if [ -x /bin/busybox ] && ! ldd "$(dirname "$ARL_BATCH")/arl-batch-agent" >/dev/null 2>&1; then
		python3 "$SOURCE_DIR/tests/images/build_busybox.py" "$TMP/img" >/dev/null
		TAG=$(. "$TMP/img/image.env" && echo "$TAG")
		export ARL_BATCH_IMAGES=$TMP/images
		runner image load "$TMP/img/docker.tar"
		cat >"$TMP/img.yaml" <<EOF
version: 1
pools:
  p: {image: "$TAG"}
jobs:
  - name: a
    artifacts: [{path: /workspace/x.txt}, {path: "/etc/passw?"}]
    steps: [{type: Command, command: ["sh", "-c", "echo hi > /workspace/x.txt"]}]
EOF
		runner run "$TMP/img.yaml" --db "$DB"
		check_eq "an image's root: the run exits 0" "$RC" 0
		check_match "an image's root: files kept, /etc/passwd too" "$(rows img/a)" \
			'^/workspace/x.txt\|3\|\+\|
/etc/passwd\|[0-9]+\|\+\|$'
		check "and that /etc/passwd is the image's, not the host's" test \
			"$(sql "$DB" "SELECT sha256 FROM artifacts WHERE path = '/etc/passwd'")" != \
			"$(sha256sum </etc/passwd | cut -d' ' -f1)"
	fi
else
	echo "skip - bwrap cannot run here: the container path is not tested"
fi

# A secret's value in a kept file: the file is not stored (masking would change it), its name
# is masked, and the value is nowhere under the database's directory.
CANARY="arl-canary-$$-$RANDOM$RANDOM"
cat >"$TMP/sec.yaml" <<'EOF'
version: 1
secrets: [ARL_TEST_CANARY]
pools:
  p: {isolation: none}
jobs:
  - name: s
    artifacts: [{path: "/workspace/*.txt"}]
    steps:
      - {type: Command, command: ["sh", "-c", "printf 'x%s' \"$ARL_TEST_CANARY\" > leak.txt; head -c 70000 /dev/zero > split.txt; printf '%s' \"$ARL_TEST_CANARY\" >> split.txt; echo clean > ok.txt; echo 1 > \"$ARL_TEST_CANARY.txt\""]}
EOF
ARL_TEST_CANARY=$CANARY runner run "$TMP/sec.yaml" --db "$DB"
check_eq "a run keeping files with a secret in them: exit 0" "$RC" 0
check_eq "files holding a secret's value are not kept; a name spelling one is masked" \
	"$(rows sec/s)" "/workspace/***.txt|2|+|
/workspace/leak.txt|$((${#CANARY} + 1))|-|not kept: it holds the value of a secret (secrets are never stored)
/workspace/ok.txt|6|+|
/workspace/split.txt|$((70000 + ${#CANARY}))|-|not kept: it holds the value of a secret (secrets are never stored)"
check_eq "the value is nowhere under the database's directory" \
	"$(grep -rlaF -e "$CANARY" "$TMP" | grep -v "sec.yaml" || true)" ""

# prune while a run is going: a file it stored whose row is not committed yet (its job is in
# its retry backoff) is spared; the row that names it comes when the job ends.
cat >"$TMP/race.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none}
jobs:
  - name: r
    retries: 1
    retryOn: [failed]
    backoff: 5m
    artifacts: [{path: /workspace/a.txt}]
    steps: [{type: Command, command: ["sh", "-c", "echo race-$$ > a.txt; exit 1"]}]
EOF
"$ARL_BATCH" run "$TMP/race.yaml" --db "$DB" --progress none >"$TMP/race.out" 2>&1 &
RACE_PID=$!
race_cleanup() { kill -KILL "$RACE_PID" 2>/dev/null || true; }
CLEANUP=race_cleanup
RACE_SHA=""
for _ in $(seq 1 600); do # until attempt 1's file is stored (the run waits 5 min then)
	RACE_SHA=$({ grep -rl "^race-" "$STORE/sha256" 2>/dev/null || true; } | head -1 | xargs -r basename)
	[ -z "$RACE_SHA" ] || break
	sleep 0.1
done
check_match "the running run stored attempt 1's file" "$RACE_SHA" '^[0-9a-f]{64}$'
check_eq "... and has no row for it yet" \
	"$(sql "$DB" "SELECT count(*) FROM artifacts WHERE sha256 = '$RACE_SHA'")" 0
runner prune --db "$DB" --keep 0 --name no-such-run
check "prune spares it while that run is going" test -f "$(stored "$RACE_SHA")"
kill -INT "$RACE_PID"
wait "$RACE_PID" || true
CLEANUP=
check_eq "the interrupted run recorded the attempt with its file" \
	"$(sql "$DB" "SELECT count(*) FROM artifacts WHERE sha256 = '$RACE_SHA'")" 1
check "the file its row names is there" test -f "$(stored "$RACE_SHA")"

# ---- the commands ----
runner show none/failed --db "$DB"
check_match "show lists an attempt's artifacts, kept or not" "$(cat "$TMP/out")" \
	"artifacts .*
    /workspace/out/a.json  4 bytes  sha256 ${ONE:0:12}
.*    /workspace/big.bin  not kept: larger than its maxSize"

runner artifacts none/ok --db "$DB"
check_eq "artifacts lists path, size and stored file (or why not kept)" \
	"$(head -2 "$TMP/out")" "/workspace/out/a.json	4	$(stored "$ONE")
/workspace/out/b.json	4	$(stored "$(printf 'two\n' | sha256sum | cut -d' ' -f1)")"

runner artifacts ok --db "$DB" --run 1 -o "$TMP/o1"
check_eq "artifacts -o exits 0" "$RC" 0
check_eq "artifacts -o writes the kept files at their sandbox paths under DIR" \
	"$(cd "$TMP/o1" && find . -type f | sort | tr '\n' ' ')" \
	"./workspace/big.bin ./workspace/out/a.json ./workspace/out/b.json ./workspace/out/link.json "
check_eq "with their content" "$(cat "$TMP/o1/workspace/out/b.json")" "two"
check_match "and says how many were not kept" "$(cat "$TMP/out")" \
	"^wrote 4 files \(1034 bytes\) under .*; 4 not kept"

runner artifacts none/failed --db "$DB" --attempt 2
check_eq "a missing attempt: exit 1" "$RC" 1
runner artifacts none/nope --db "$DB"
check_eq "a missing job: exit 1" "$RC" 1

# A crafted database: a path that would escape DIR, and a stored file changed since.
cp "$DB" "$TMP/crafted.db"
cp -a "$STORE" "$TMP/crafted.db.artifacts"
sql "$TMP/crafted.db" "UPDATE artifacts SET path = '/workspace/../../../escaped'
  WHERE path = '/workspace/out/a.json' AND attempt_id = (SELECT min(attempt_id) FROM artifacts)"
TWO=$(printf 'two\n' | sha256sum | cut -d' ' -f1)
chmod u+w "$TMP/crafted.db.artifacts/sha256/${TWO:0:2}/$TWO"
echo changed >"$TMP/crafted.db.artifacts/sha256/${TWO:0:2}/$TWO"
mkdir "$TMP/o2"
runner artifacts none/ok --db "$TMP/crafted.db" -o "$TMP/o2/d"
check_eq "a crafted database: exit 3" "$RC" 3
check_match "a path escaping DIR is refused" "$(cat "$TMP/err")" \
	"refusing '/workspace/../../../escaped': it would leave DIR"
check_match "a stored file that lost its digest is not written" "$(cat "$TMP/err")" \
	"'/workspace/out/b.json' not written: the stored file .* no longer has its digest"
check_eq "nothing was written outside DIR, nor the changed file" \
	"$(cd "$TMP/o2" && find . -type f | sort | tr '\n' ' ')" \
	"./d/workspace/big.bin ./d/workspace/out/link.json "
# A FIFO planted as a stored file: refused, not opened for reading (that would block forever:
# `timeout` only keeps a regression from hanging the suite).
BIG=$(head -c 1024 /dev/zero | sha256sum | cut -d' ' -f1)
rm -f "$TMP/crafted.db.artifacts/sha256/${BIG:0:2}/$BIG"
mkfifo "$TMP/crafted.db.artifacts/sha256/${BIG:0:2}/$BIG"
set +e
timeout 300 "$ARL_BATCH" artifacts none/ok --db "$TMP/crafted.db" -o "$TMP/o2/f" >"$TMP/out" 2>"$TMP/err"
RC=$?
set -e
check_match "a FIFO as a stored file: exit 3, refused" "$RC|$(cat "$TMP/err")" \
	"^3\\|.*'/workspace/big.bin' not written: the stored file .* is not a regular file"

# The report lists the run's artifacts and links each kept one to its stored file.
mkdir "$TMP/rep"
runner report --db "$DB" --run 1 -o "$TMP/rep/r.html"
check_eq "report exits 0" "$RC" 0
check_match "the report has an artifacts section with the counts" "$(cat "$TMP/rep/r.html")" \
	'<section id="artifacts" data-kept="[1-9][0-9]*" data-not-kept="[1-9][0-9]*">'
HREF=$(grep -o 'href="[^"]*/sha256/[^"]*"' "$TMP/rep/r.html" | head -1 | sed 's/^href="//; s/"$//')
check_match "its links are relative" "$HREF" '^\.\./r\.db\.artifacts/sha256/[0-9a-f]{2}/[0-9a-f]{64}$'
check "a link leads to the stored file" test -f "$TMP/rep/$HREF"
check_match "a file not kept shows why" "$(cat "$TMP/rep/r.html")" \
	'not kept: a symlink: not followed'

# prune: the runs go with their rows; a stored file goes once no row names it.
NFILES=$(find "$STORE/sha256" -type f | wc -l)
runner prune --db "$DB" --keep 0 --name none
check_eq "prune exits 0" "$RC" 0
check_eq "prune keeps the files the runs left still name" \
	"$(find "$STORE/sha256" -type f | wc -l)" \
	"$(sql "$DB" "SELECT count(DISTINCT sha256) FROM artifacts")"
check_match "and says how many stored files it deleted" "$(cat "$TMP/out")" \
	"deleted [0-9]+ stored artifacts? \([0-9]+ bytes\)"
runner prune --db "$DB" --keep 0
check_eq "pruning every run deletes every stored file" "$(find "$STORE" -type f | wc -l)" 0
check_eq "the rows went with their runs" "$(sql "$DB" "SELECT count(*) FROM artifacts")" 0
check_le "files were there to delete" 1 "$NFILES"

echo "# $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
