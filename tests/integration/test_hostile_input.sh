#!/usr/bin/env bash
# Hostile input: adversarial job files and datasets (alias bombs, deep nesting, huge numbers,
# invalid UTF-8, NUL bytes, terminal escapes, a 100 MB scalar; generated here, not committed) make
# `validate` exit 2 within a second or two of CPU time with a clear message, in bounded memory
# (GNU time's maximum RSS under 200 MB). Issue 12's findings follow, each in its own section. `query` refusing writes and ATTACH is covered by
# test_run_semantics.sh, credentials in outputs, events and databases by test_k8s_auth.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -x /usr/bin/time ]; then
	echo "SKIP: GNU time (/usr/bin/time, Debian package 'time') is not installed"
	exit 77
fi
require_tools python3
make_tmp
cd "$TMP"
mkdir data

python3 - <<'PY'
head = 'version: 1\npools: {p: {}}\n'
job = '  - {name: j, steps: [{type: Command, command: ["true"]}]}\n'
# Billion laughs: 10^9 nodes through 10 levels of aliases.
lines = [head + 'x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
for i in range(1, 10):
    lines.append(f'x-a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * 10) + ']')
open('bomb.yaml', 'w').write('\n'.join(lines) + '\njobs:\n  - {name: j, labels: *a9, steps: []}\n')
open('deep-flow.yaml', 'w').write(head + 'jobs: ' + '[' * 100000 + ']' * 100000 + '\n')
open('deep-block.yaml', 'w').write(head + 'jobs:\n' + ''.join('  ' * i + f'k{i}:\n' for i in range(1, 200)))
open('huge-numbers.yaml', 'w').write(head + 'concurrency: 99999999999999999999999999999999\njobs:\n'
     '  - {name: j, retries: 1e400, timeout: 99999999999999999999h, steps: [{type: Command, command: ["true"]}]}\n')
open('bad-utf8.yaml', 'wb').write(head.encode() + b'jobs:\n  - {name: "j\xff\xfe", steps: [{type: Command, command: ["true"]}]}\n')
open('overlong-utf8.yaml', 'wb').write(head.encode() + b'jobs:\n  - {name: "j\xc0\xaf", steps: [{type: Command, command: ["true"]}]}\n')
open('escapes.yaml', 'wb').write(head.encode() + b'jobs:\n  - {name: "j\x1b[31mred\x1b]0;title\x07", steps: [{type: Command, command: ["true"]}]}\n')
open('nul.yaml', 'wb').write(head.encode() + b'jobs:\n  - {name: j\x00x, steps: [{type: Command, command: ["true"]}]}\n')
big = 'aaaaaaaaaaaaaaaa' * (100 * 1024 * 1024 // 16)
with open('scalar-100mb.yaml', 'w') as f:
    f.write(head + 'jobs:\n  - {name: j, steps: [{type: FilePatch, path: /workspace/x, content: "' + big + '"}]}\n')
with open('scalar-12mb.yaml', 'w') as f:
    f.write(head + 'jobs:\n  - {name: j, steps: [{type: FilePatch, path: /workspace/x, content: "' + big[:12 << 20] + '"}]}\n')
# Datasets
open('data/deep.jsonl', 'w').write('{"a": ' + '[' * 100000 + ']' * 100000 + '}\n')
open('data/bad-utf8.jsonl', 'wb').write(b'{"a": "x"}\n{"a": "\xff"}\n')
open('data/nul.jsonl', 'wb').write(b'{"a": "x"}\x00\n')
open('data/nul.csv', 'wb').write(b'a,b\n1,\x002\n')
open('data/deep.json', 'w').write('[' * 100000 + ']' * 100000)
for n in ['deep.jsonl', 'bad-utf8.jsonl', 'nul.jsonl', 'nul.csv', 'deep.json']:
    open(f'ds-{n.replace(".", "-")}.yaml', 'w').write(
        head + f'jobs:\n  - name: "j-{{{{ item.a }}}}"\n    foreach: {{file: data/{n}}}\n'
        '    steps: [{type: Command, command: ["true"]}]\n')
PY

# refuse FILE REGEX: validate exits 2, fast, in bounded memory, with a message matching REGEX.
# CPU time, not wall time: a busy machine delays the process but does not make it work more.
refuse() {
	local f=$1 re=$2 cpu_ms rss
	set +e
	/usr/bin/time -o "$TMP/time" -f '%M %U %S' "$ARL_BATCH" validate "$f" >"$TMP/out" 2>"$TMP/err"
	RC=$?
	set -e
	read -r rss cpu_ms < <(tail -n 1 "$TMP/time" | awk '{ printf "%d %d\n", $1, ($2 + $3) * 1000 }')
	check_eq "$f: validate exits 2" "$RC" 2
	check_match "$f: the message says why" "$(head -c 2000 "$TMP/err")" "$re"
	check_le "$f: refused within 3 s of CPU time (ms)" "$cpu_ms" 3000
	check_le "$f: peak RSS under 200 MB (KB)" "$rss" 204800
}

refuse bomb.yaml 'alias expansion exceeds 1000000 nodes \(is this an alias bomb\?\)'
refuse deep-flow.yaml 'nesting deeper than 64 levels'
refuse deep-block.yaml 'nesting deeper than 64 levels'
refuse huge-numbers.yaml "'concurrency' must be an integer"
check_match "huge-numbers.yaml: retries refused too" "$(cat "$TMP/err")" "'retries'"
check_match "huge-numbers.yaml: timeout refused too" "$(cat "$TMP/err")" "timeout"
refuse bad-utf8.yaml 'invalid UTF-8 \(byte 0xff\)'
refuse overlong-utf8.yaml 'invalid UTF-8'
refuse nul.yaml 'NUL byte in a job file'
check "nul.yaml: the NUL is not echoed to the terminal" bash -c "! grep -qaP '\\x00' '$TMP/err'"
refuse escapes.yaml 'control characters are not allowed'
check "escapes.yaml: no escape sequence is echoed to the terminal" bash -c "! grep -qaP '[\\x1b\\x07]' '$TMP/err'"
refuse scalar-100mb.yaml 'exceeds the limit of 16777216 bytes'
refuse scalar-12mb.yaml 'scalar of [0-9]+ bytes exceeds the limit of 8388608 bytes'
refuse ds-deep-jsonl.yaml 'data/deep.jsonl:1:[0-9]+: error: invalid JSON'
refuse ds-deep-json.yaml 'data/deep.json:1:[0-9]+: error: '
refuse ds-bad-utf8-jsonl.yaml 'data/bad-utf8.jsonl:.*not valid UTF-8'
refuse ds-nul-jsonl.yaml 'data/nul.jsonl:1:11: error: NUL byte in a dataset'
refuse ds-nul-csv.yaml 'data/nul.csv:2:3: error: NUL byte in a dataset'

# --- links planted beside the database (issue 12) ---------------------------------------------
# Whoever can write beside the database plants a symlink, a hard link or a FIFO under a name the
# runner creates or rewrites (the run lock, the database and its -wal/-shm, the default state
# directory): the run refuses it and the file it points at is unchanged.
mkdir links
cd links
printf 'version: 1\npools: {p: {isolation: none}}\njobs:\n  - {name: j, steps: [{type: Command, command: ["true"]}]}\n' >job.yaml
"$ARL_BATCH" run --db r.db --progress none job.yaml >/dev/null 2>&1
LOCK=$(ls r.db.lock-*)
echo precious >victim.orig
# plant NAME KIND: NAME becomes a symlink or a hard link to a fresh victim, or a FIFO.
plant() {
	rm -rf "$1"
	cp victim.orig victim
	case $2 in
	symlink) ln -s "$PWD/victim" "$1" ;;
	hardlink) ln victim "$1" ;;
	fifo) mkfifo "$1" ;;
	esac
}
for target in "$LOCK:symlink" "$LOCK:hardlink" "$LOCK:fifo" r.db-wal:symlink r.db-wal:hardlink \
	r.db-shm:symlink r.db-shm:fifo; do
	name=${target%%:*} kind=${target#*:}
	plant "$name" "$kind"
	set +e
	timeout 60 "$ARL_BATCH" run --db r.db --progress none job.yaml >"$TMP/out" 2>"$TMP/err"
	RC=$?
	set -e
	check_eq "$name as a $kind: the run refuses it" "$RC" 3
	check_match "$name as a $kind: the message names it" "$(cat "$TMP/err")" "'[^']*$name' (is a symbolic link|has more than one hard link|is not a regular file); refusing it"
	check "$name as a $kind: the victim is unchanged" cmp -s victim victim.orig
	rm -f "$name"
done
# The database itself: a fresh name that is a link to the victim.
for kind in symlink hardlink; do
	plant l.db "$kind"
	runner run --db l.db --progress none job.yaml
	check_eq "the database as a $kind: the run refuses it" "$RC" 3
	check_match "the database as a $kind: the message names it" "$(cat "$TMP/err")" "'l.db' (is a symbolic link|has more than one hard link); refusing it"
	check "the database as a $kind: the victim is unchanged" cmp -s victim victim.orig
	rm -f l.db
done
mkdir elsewhere
rm -rf r.db.sandboxes
ln -s "$PWD/elsewhere" r.db.sandboxes
runner run --db r.db --progress none job.yaml
check_match "the state directory as a symlink: refused" "$(cat "$TMP/err")" "state directory '[^']*r.db.sandboxes' is a symbolic link; refusing it"
check_eq "the state directory as a symlink: nothing was made in its target" "$(ls -A elsewhere)" ""
rm r.db.sandboxes
runner run --db r.db --progress none job.yaml
check_eq "without the planted links the run succeeds" "$RC" 0
mkdir real
ln -s real via
runner run --db via/s.db --progress none job.yaml
check_eq "a symlinked directory above the database is fine" "$RC" 0
check "the database is in its target" test -f real/s.db
cd "$TMP"

# --- terminal control sequences in stored output (issue 12) --------------------------------
# A step prints a title change, a screen clear, a colour, a BEL, an 8-bit CSI (invalid UTF-8)
# and a UTF-8 C1 CSI, and names a metric with an ESC: every human-readable view shows them as
# \xNN, never raw; json keeps the exact bytes.
mkdir esc
cd esc
cat >job.yaml <<'YAML'
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: j
    steps:
      - type: Command
        metrics: json
        command: ["sh", "-c", "printf 'a\\033]0;owned\\007b\\033[2Jc\\033[31md\\233e\\302\\233f\\n'; printf 'x\\033[2Jy\\n' >&2; printf '{\"m\\\\u001b[2J\": 1}\\n'; exit 3"]
YAML
runner run --db e.db --progress none job.yaml
check_eq "the escape job ran and failed" "$RC" 1
runner run --db e.db --progress none job.yaml
# raw_ctl FILE: does FILE hold a C0 control (but tab and newline), DEL, or a C1 (raw or UTF-8)?
raw_ctl() {
	LC_ALL=C grep -qaP '[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]|\xc2[\x80-\x9f]' "$1"
}
no_ctl() {
	! raw_ctl "$TMP/out" && ! raw_ctl "$TMP/err"
}
for cmd in "show j" "results" "runs" "diff --metrics" "diff --metrics --format markdown" \
	"query select\ name\ from\ metrics" "query select\ stdout\ from\ steps"; do
	eval "runner $cmd --db e.db"
	check "$cmd: no control character reaches the terminal" no_ctl
done
runner show j --db e.db
check_match "show: the output is there, escapes made visible" "$(cat "$TMP/out")" 'a\\x1b\]0;owned\\x07b\\x1b\[2Jc\\x1b\[31md.*e\\xc2\\x9bf'
check_match "show: stderr too" "$(cat "$TMP/out")" 'x\\x1b\[2Jy'
check_match "show: the metric name too" "$(cat "$TMP/out")" 'm\\x1b\[2J=1'
runner show jj --db e.db
check "show's 'did you mean' of a name: no raw control" no_ctl
runner results --db e.db --format json
check "results --format json keeps the exact bytes (JSON-escaped)" grep -q 'u001b\[2J' "$TMP/out"
runner query --db e.db --format csv "select stdout from steps limit 1"
check "query --format csv keeps the exact bytes" raw_ctl "$TMP/out"
cd "$TMP"

# --- CSV cells a spreadsheet would run (issue 12) --------------------------------------------
# Job names (a template over a dataset makes them anyone's) starting with = + - @ tab or CR
# get a leading ' in `results --format csv` and `query --format csv`; plain numbers stay.
mkdir csv
cd csv
printf 'n\n=1+2\n@SUM(A1)\n+1\n-2+3\n-5\n+1.5e3\n' >names.csv
cat >job.yaml <<'YAML'
version: 1
pools: {p: {isolation: none}}
jobs:
  - name: "{{ item.n }}"
    foreach: {file: names.csv}
    steps: [{type: Command, command: ["true"]}]
YAML
runner run --db c.db --progress none job.yaml
check_eq "the formula-named jobs ran" "$RC" 0
runner results --db c.db --format csv
check_eq "results --format csv: formulas neutralized, numbers kept" "$(python3 -c '
import csv, sys
print(" ".join(repr(r["name"]) for r in csv.DictReader(open(sys.argv[1], newline=""))))' "$TMP/out")" \
	"\"'=1+2\" \"'@SUM(A1)\" '+1' \"'-2+3\" '-5' '+1.5e3'"
runner query --db c.db --format csv "select name from jobs union all select char(9) || 'x' union all select char(13) || 'y'"
check_eq "query --format csv: the same" "$(python3 -c '
import csv, sys
print(" ".join(repr(r[0]) for r in list(csv.reader(open(sys.argv[1], newline="")))[1:]))' "$TMP/out")" \
	"\"'=1+2\" \"'@SUM(A1)\" '+1' \"'-2+3\" '-5' '+1.5e3' \"'\\tx\" \"'\\ry\""
cd "$TMP"

# --- userinfo in a kubeconfig server URL (issue 12) ------------------------------------------
# https://user:pass@host is a credential: error messages show REDACTED@host (unit.kubeconfig
# checks describe(), tls-server-name and proxy-url).
cat >kc-userinfo.yaml <<'YAML'
apiVersion: v1
kind: Config
current-context: a
clusters: [{name: a, cluster: {server: 'http://alice:SECRET@127.0.0.1:9'}}]
users: [{name: u, user: {token: tok}}]
contexts: [{name: a, context: {cluster: a, user: u, namespace: ns}}]
YAML
runner gc --backend kubernetes --kubeconfig kc-userinfo.yaml --db gc.db
check_match "gc against an unreachable server fails, naming it redacted" "$(cat "$TMP/err")" "server http://REDACTED@127\.0\.0\.1:9"
check "the password is in no message" bash -c "! grep -q SECRET '$TMP/out' '$TMP/err'"

# --- one dataset record is capped; CSV header names are unique (issue 12) -------------------
# A 40 MiB record (a 150 MB one cost 743 MB) is refused where it starts, by the default cap of
# 16 MiB, in memory bounded by what this build needs for a tiny dataset + the file + 3x the cap
# (the old reader held several copies of the record: 4x the file). --max-record raises the cap.
# Under ASan, freed blocks would stay resident in its quarantine: none is kept here.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0
mkdir cap cap/data
cd cap
python3 - <<'PY'
big = 'x' * (40 << 20)
open('data/big.jsonl', 'w').write('{"a": 1}\n{"a": 2, "b": "' + big + '"}\n')
open('data/big.json', 'w').write('[{"a": 1},\n {"a": 2, "b": "' + big + '"}]\n')
open('data/big.csv', 'w').write('a,b\n1,\n2,"' + big + '"\n')
open('data/dup.csv', 'w').write('a,b,a\n1,2,3\n')
open('data/tiny.csv', 'w').write('a\n1\n')
for n in ['big.jsonl', 'big.json', 'big.csv', 'dup.csv', 'tiny.csv']:
    open(n.replace('.', '-') + '.yaml', 'w').write(
        'version: 1\npools: {p: {isolation: none}}\njobs:\n  - name: "j-{{ item.a }}"\n'
        f'    foreach: {{file: data/{n}}}\n    steps: [{{type: Command, command: ["true"]}}]\n')
PY
/usr/bin/time -o "$TMP/time" -f '%M' "$ARL_BATCH" validate tiny-csv.yaml >/dev/null 2>&1
base_kb=$(tail -n 1 "$TMP/time")
for f in big-jsonl:2:1 big-json:2:2 big-csv:3:1; do
	name=${f%%:*} pos=${f#*:}
	set +e
	/usr/bin/time -o "$TMP/time" -f '%M' "$ARL_BATCH" validate "$name.yaml" >"$TMP/out" 2>"$TMP/err"
	RC=$?
	set -e
	check_eq "$name: a 40 MiB record is refused" "$RC" 2
	check_match "$name: at its position, naming the limit and the flag" "$(head -c 2000 "$TMP/err")" \
		"data/${name/-/.}:$pos: error: record of more than 16777216 bytes \(the limit; raise it with --max-record\)"
	check_le "$name: peak RSS within tiny ($base_kb KB) + file + 3 x cap (KB)" \
		"$(tail -n 1 "$TMP/time")" $((base_kb + (40 + 3 * 16) * 1024))
done
runner validate --max-record 67108864 big-jsonl.yaml
check_eq "validate --max-record 64 MiB accepts it" "$RC" 0
runner run --max-record 67108864 --db cap.db --progress none big-jsonl.yaml
check_eq "run --max-record 64 MiB runs it" "$RC" 0
runner validate --max-record 12 big-jsonl.yaml
check_eq "--max-record below 1024 is a usage error" "$RC" 2
check_match "it says what is allowed" "$(cat "$TMP/err")" \
	"invalid value '12' for --max-record: expected a byte count from 1024"
runner validate dup-csv.yaml
check_eq "a repeated CSV header name is refused" "$RC" 2
check_match "it names both columns, at the header" "$(cat "$TMP/err")" \
	"data/dup.csv:1:1: error: header column 3 repeats the name 'a' of column 1"
cd "$TMP"

# --- maps grow in O(n) (issue 12) ------------------------------------------------------------
# 200,000 labels took 111 s to validate (each key compared with every earlier one); the same
# held for env entries, step names (100,000 steps: 40 s) and anchors looked up per alias
# (10,000 anchors, 900,000 aliases: 26 s). No clock window: the CPU time of 8x the entries is
# compared with the CPU time this machine took for 1x (linear: about 8x; n log n: under 10x;
# quadratic: 64x).
for spec in labels:25000 env:25000 steps:12500 aliases:25000; do
	kind=${spec%%:*} n=${spec#*:}
	read -r rc1 us1 rc8 us8 < <(python3 - "$ARL_BATCH" "$kind" "$n" <<'PY'
import resource, subprocess, sys
arl, kind, n1 = sys.argv[1], sys.argv[2], int(sys.argv[3])
def cpu_us(n):
    path = f'map-{kind}-{n}.yaml'
    job = '  - name: j\n'
    top = ''
    if kind in ('labels', 'env'):
        job += f'    {kind}: {{' + ', '.join(f'K{i}: v' for i in range(n)) + '}\n'
    if kind == 'steps':
        job += '    steps: [' + ', '.join(f'{{name: s{i}, type: Command, command: ["true"]}}'
                                   for i in range(n)) + ']\n'
    else:
        job += '    steps: [{type: Command, command: ["true"]}]\n'
    if kind == 'aliases':  # n/20 anchors, n aliases of the oldest
        top = ('x-anchors: [' + ', '.join(f'&a{i} v' for i in range(n // 20)) + ']\n'
               'x-aliases: [' + ', '.join('*a0' for _ in range(n)) + ']\n')
    with open(path, 'w') as f:
        f.write('version: 1\npools: {p: {isolation: none}}\n' + top + 'jobs:\n' + job)
    t0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rc = subprocess.run([arl, 'validate', path], stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True)
    t1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    us = (t1.ru_utime + t1.ru_stime - t0.ru_utime - t0.ru_stime) * 1e6
    # x- keys are not part of a job file: the only errors allowed are those two.
    ok = rc.returncode == 0 or (kind == 'aliases' and rc.stderr.count(' error: ') == 2 and
                                rc.stderr.count("unknown key 'x-") == 2)
    return 0 if ok else rc.returncode, max(1, int(us))
a, b = cpu_us(n1), cpu_us(8 * n1)
print(a[0], a[1], b[0], b[1])
PY
	)
	check_eq "$n $kind validate" "$rc1" 0
	check_eq "$((8 * n)) $kind validate" "$rc8" 0
	check_le "$((8 * n)) $kind: CPU time at most 24x that of $n (us)" "$us8" $((24 * us1))
done

summary
