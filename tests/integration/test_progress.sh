#!/usr/bin/env bash
# Live progress of `arl-batch run` on a real terminal and off one.
#
# Under tmux (a real pty): the bar's fields (done/total, ok, failed by class, running,
# retrying, rate, elapsed, ETA, the longest-running job) read back from the screen with
# capture-pane, colour unless NO_COLOR, a resize to a narrower window leaving no fragments,
# and a clean end: the failures' lines, the summary, no trace of the bar. Off a terminal
# (stderr to a file, as under cron or CI): one line per job and periodic status lines, with
# not one escape code; --color always, --progress bar and --progress none do what they say.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3
make_tmp

SOCK=arl-progress-$$
cleanup() {
	tmux -L "$SOCK" kill-server 2>/dev/null || true
}
CLEANUP=cleanup

# The jobs: a few seconds of work on 4 slots, one failure, one timeout, one retry that
# recovers (in a 3 s backoff, long enough to be seen), and one long job.
cat >"$TMP/prog.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none, replicas: 4}
jobs:
  - name: "w-{{ item.n }}"
    foreach: {matrix: {n: [1, 2, 3, 4, 5, 6, 7, 8]}}
    steps: [{type: Command, command: ["sh", "-c", "sleep 1.{{ item.n }}"]}]
  - name: breaks
    steps: [{type: Command, command: ["sh", "-c", "sleep 1; echo boom >&2; exit 3"]}]
  - name: stuck
    timeout: 2s
    steps: [{type: Command, command: ["sleep", "30"]}]
  - name: flaky
    retries: 1
    backoff: 3s
    retryOn: [failed]
    steps: [{type: Command, command: ["sh", "-c", "sleep 0.5; [ {{ attempt }} -gt 1 ]"]}]
  - name: long-runner-with-a-name
    steps: [{type: Command, command: ["sleep", "7"]}]
EOF
NJOBS=12

# --- off a terminal -----------------------------------------------------------------------

echo "# plain: stderr to a file"
set +e
ARL_BATCH_STATUS_EVERY=700ms "$ARL_BATCH" run --db "$TMP/plain.db" "$TMP/prog.yaml" \
	>"$TMP/plain.out" 2>"$TMP/plain.err"
RC=$?
set -e
check_eq "plain: the run exits 1 (a job failed)" "$RC" 1
check_eq "plain: not one escape code on stderr" "$(grep -c $'\x1b' "$TMP/plain.err" || true)" 0
check_eq "plain: not one carriage return" "$(grep -c $'\r' "$TMP/plain.err" || true)" 0
check_eq "plain: one line per finished job" \
	"$(grep -cE '^\[[0-9]+/12\] (ok|failed|timeout) ' "$TMP/plain.err")" "$NJOBS"
check_match "plain: the retry has its line" "$(cat "$TMP/plain.err")" \
	$'\\[[0-9]+/12\\] retry     prog/flaky \\(attempt 1: failed; again in 3s\\)'
check_match "plain: periodic status lines with the counts, rate, ETA and the longest job" \
	"$(grep 'arl-batch: status: ' "$TMP/plain.err" | tail -n 1)" \
	'^arl-batch: status: [0-9]+/12 done, [0-9]+ succeeded, [0-9]+ failed.*, [0-9]+ running, [0-9]+ retrying, [0-9.]+ jobs/s, elapsed [0-9]+s, ETA [^;]+; longest running: prog/long-runner-with-a-name \([0-9]+s\)'
check_match "plain: the summary is the last line" "$(tail -n 1 "$TMP/plain.err")" \
	"^arl-batch: run 1 'prog' failed \(exit 1\) in .*: 10 succeeded, 0 skipped, 2 failed \(1 failed, 1 timeout, 0 infra\)"
check_eq "plain: nothing on stdout" "$(wc -c <"$TMP/plain.out")" 0

echo "# plain with --color always, --progress bar and --progress none, into files"
cat >"$TMP/two.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none, replicas: 2}
jobs:
  - {name: a, steps: [{type: Command, command: ["true"]}]}
  - {name: b, steps: [{type: Command, command: ["false"]}]}
EOF
runner run --db "$TMP/two.db" --progress plain --color always "$TMP/two.yaml"
check_match "--color always colours plain lines even into a file" "$(cat "$TMP/err")" \
	$'\x1b\\[32mok'
NO_COLOR=1 runner run --db "$TMP/two.db" --progress plain --color always "$TMP/two.yaml"
check_match "--color always wins over NO_COLOR" "$(cat "$TMP/err")" $'\x1b\\[31mfailed'
runner run --db "$TMP/two.db" --progress bar "$TMP/two.yaml"
check_match "--progress bar draws in place even into a file" "$(cat "$TMP/err")" $'\r.*\x1b\\[K'
runner run --db "$TMP/two.db" --progress none "$TMP/two.yaml"
check_eq "--progress none: only the summary" "$(wc -l <"$TMP/err")" 1
runner run --db "$TMP/two.db" --progress fancy "$TMP/two.yaml"
check_eq "--progress fancy is a usage error" "$RC" 2
runner run --db "$TMP/two.db" --color sometimes "$TMP/two.yaml"
check_eq "--color sometimes is a usage error" "$RC" 2

# --- on a terminal: tmux --------------------------------------------------------------------

if ! command -v tmux >/dev/null 2>&1; then
	echo "SKIP: tmux is not installed (apt-get install tmux); the terminal half did not run"
	summary
	exit $?
fi

# start_run NAME WIDTH ENV...: a detached tmux window running the jobs; EXIT=<code> at the end.
start_run() {
	local name=$1 width=$2
	shift 2
	cat >"$TMP/$name.sh" <<EOF
#!/bin/sh
cd "$TMP"
env $* "$ARL_BATCH" run --db "$TMP/$name.db" "$TMP/prog.yaml"
echo "EXIT=\$?"
sleep 120
EOF
	chmod +x "$TMP/$name.sh"
	tmux -L "$SOCK" -f /dev/null new-session -d -s "$name" -x "$width" -y 40 "$TMP/$name.sh"
}

# capture NAME [-e]: the visible screen, trailing blank lines dropped.
capture() {
	tmux -L "$SOCK" capture-pane -p ${2:+"$2"} -t "$1" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
}

# wait_exit NAME FILE: captures every 0.25 s into FILE.N until the run printed EXIT= (for at
# most 1200 captures: a hang's bound; a busy machine only makes more of them).
wait_exit() {
	local i
	for i in $(seq 1 1200); do
		capture "$1" >"$2.$i"
		capture "$1" -e >"$2.e.$i"
		if grep -q '^EXIT=' "$2.$i"; then
			echo "$i"
			return 0
		fi
		sleep 0.25
	done
	echo "$i"
}

echo "# tmux: the bar, then a clean summary"
start_run bar 160 -u NO_COLOR
last=$(wait_exit bar "$TMP/bar")
all=$(cat "$TMP"/bar.[0-9]*)
BAR_RE='[0-9]+/12  ok [0-9]+  failed [0-9]+.*running [0-9]+.*[0-9.]+/s  elapsed [0-9]+s  ETA '
check_match "the bar: done/total, ok, failed, running, rate, elapsed and ETA" "$all" "$BAR_RE"
check_match "the bar shows the retrying job during its backoff" "$all" \
	'running [0-9]+  retrying 1  '
check_match "the bar names the longest-running job" "$all" \
	'longest: prog/long-runner-with-a-name [0-9]+s'
check_match "the bar breaks the failures down by class" "$all" \
	'failed 2 \(1 failed, 1 timeout\)'
check_match "the bar has a progress graphic" "$all" '\[=+ *\] [0-9]+/12'
check_match "the bar is coloured on a terminal" "$(cat "$TMP"/bar.e.*)" $'\x1b\\[[0-9;]*32m'
# Columns, not bytes: the bar cuts names with an ellipsis (3 bytes in UTF-8).
widest=$(cat "$TMP"/bar.[0-9]* | LC_ALL=C.UTF-8 wc -L)
check_le "no line of the screen is wider than the terminal" "$widest" 160
final=$(cat "$TMP/bar.$last")
check_match "the end: each failure kept its line" "$final" \
	'\[[0-9]+/12\] failed    prog/breaks .*step .* exited with 3'
check_match "... and the timeout" "$final" '\[[0-9]+/12\] timeout   prog/stuck '
check_match "... the summary" "$final" \
	"arl-batch: run 1 'prog' failed \(exit 1\) in [^:]*: 10 succeeded, 0 skipped, 2 failed"
check_match "... right above the shell's next line" "$(tail -n 1 <<<"$final")" '^EXIT=1$'
check_eq "... and no trace of the bar" "$(grep -cE 'running [0-9]|ETA |longest:|/s  ' <<<"$final" || true)" 0
check_eq "... nor of the successes (the bar counted them)" "$(grep -c '\] ok ' <<<"$final" || true)" 0
check_eq "the database agrees: 10 succeeded, 2 failed" \
	"$(sql "$TMP/bar.db" "SELECT jobs_succeeded, jobs_failed FROM runs")" "10|2"

echo "# tmux: NO_COLOR"
start_run nocolor 160 NO_COLOR=1
last=$(wait_exit nocolor "$TMP/nocolor")
check_match "the bar is drawn without colour" "$(cat "$TMP"/nocolor.[0-9]*)" "$BAR_RE"
check_eq "no colour in any capture" "$(cat "$TMP"/nocolor.e.* | grep -c $'\x1b\\[[0-9;]*3[0-9]m' || true)" 0

echo "# tmux: a resize to a narrower window"
start_run narrow 160 -u NO_COLOR
wide_bar() {
	capture narrow >"$TMP/narrow.before"
	grep -q 'longest: ' "$TMP/narrow.before"
}
wait_until 120 "the wide bar with its longest job" wide_bar || true
tmux -L "$SOCK" resize-window -t narrow -x 72
# Until the runner has redrawn for the new width (not a guessed 0.8 s): tmux only cuts the
# old bar at 72 columns, the redraw erases it. A runner that never does fails here.
narrow_bar() {
	capture narrow >"$TMP/narrow.after"
	[ "$(grep -cE '[0-9]+/12  ok ' "$TMP/narrow.after")" = 1 ] &&
		! grep -qE 'longest:|elapsed [0-9]+s  ETA .*longest' "$TMP/narrow.after"
}
wait_until 120 "the bar redrawn for 72 columns, no fragment of the wide one left" narrow_bar || true
widest=$(LC_ALL=C.UTF-8 wc -L <"$TMP/narrow.after")
check_le "after the resize, nothing is wider than the new width" "$widest" 72
check_eq "... and exactly one bar is on the screen (the old one erased, no fragments)" \
	"$(grep -cE '[0-9]+/12  ok ' "$TMP/narrow.after")" 1
check_eq "... with no leftover of the wide bar" \
	"$(grep -cE 'longest:|elapsed [0-9]+s  ETA .*longest' "$TMP/narrow.after" || true)" 0
check_match "... which kept its most important fields" "$(cat "$TMP/narrow.after")" \
	'[0-9]+/12  ok [0-9]+  failed [0-9]+'
last=$(wait_exit narrow "$TMP/narrow")
check_eq "after the run, no trace of any bar" \
	"$(grep -cE 'running [0-9]|ETA ' "$TMP/narrow.$last" || true)" 0
check_match "... and the summary" "$(cat "$TMP/narrow.$last")" "failed \(exit 1\)"

summary
