#!/usr/bin/env bash
# Messages from worker threads under `run --progress bar` on a real terminal (tmux): the local
# backend's keepAlive line and the kubernetes backend's "creation window" line each stand on
# a line of their own, the bar is drawn again under them, and no message is glued to a bar
# line, neither while the run goes on nor in what stays on the screen after it.
#
# One run with both backends: a local keepAlive job, a kubernetes job whose first sandbox
# creates the fake server refuses (503, a fixed number of times: the window shrinks 2 -> 1),
# and a local job that holds the run open until the test has read the screen.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

if ! command -v tmux >/dev/null 2>&1; then
	echo "SKIP: tmux is not installed (apt-get install tmux)"
	exit 77
fi
require_fake
make_tmp
start_fake --pool sandbox=2 --seed 3
SOCK=arl-progress-msgs-$$
cleanup() {
	tmux -L "$SOCK" kill-server 2>/dev/null || true
	stop_fake
}
CLEANUP=cleanup
steps_may_use # the holding step looks for $TMP/go as its own uid

cat >"$TMP/msgs.yaml" <<EOF
version: 1
pools:
  p: {isolation: none, replicas: 2}
  sandbox: {backend: kubernetes, replicas: 2}
jobs:
  - {name: kept, pool: p, keepAlive: true, steps: [{type: Command, command: ["true"]}]}
  - {name: remote, pool: sandbox, steps: [{type: Command, command: [echo, hi]}]}
  - name: hold
    pool: p
    steps: [{type: Command, command: [sh, -c, "while [ ! -e $TMP/go ]; do sleep 0.1; done"]}]
EOF
# Four refusals in a row make the client's window shrink (http/throttle.c); the fifth try
# is answered.
fake_post /_fake/faults "503=1:verbs=create:resources=sandboxes:max=4"

cat >"$TMP/run.sh" <<EOF
#!/bin/sh
cd "$TMP"
"$ARL_BATCH" run --progress bar --db "$TMP/msgs.db" --kubeconfig "$KC" "$TMP/msgs.yaml"
echo "EXIT=\$?"
sleep 300
EOF
chmod +x "$TMP/run.sh"
tmux -L "$SOCK" -f /dev/null new-session -d -s msgs -x 200 -y 40 -e NO_COLOR=1 "$TMP/run.sh"

# The screen, wrapped lines joined (a message glued to a long bar may wrap).
capture() {
	tmux -L "$SOCK" capture-pane -p -J -t msgs | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
}
BAR='[0-9]+/3  ok [0-9]+'
KEPT="job 'kept': keeping sandbox '[^']*' \\(keepAlive\\)"
WINDOW="kubernetes: server refusing, creation window 2 -> 1"

# Both messages are on the screen and a bar was drawn on a row below the last of them
# (whether or not a message is glued to a bar: that is for the checks below to say).
both_then_bar() {
	capture >"$TMP/during"
	awk -v kept="$KEPT" -v win="$WINDOW" -v bar="$BAR" '
		$0 ~ kept { k = NR } $0 ~ win { w = NR } $0 ~ bar { b = NR }
		END { exit !(k && w && b > k && b > w) }' "$TMP/during"
}
wait_until 120 "both messages on the screen, a bar under them" both_then_bar || true
during=$(cat "$TMP/during")
: >"$TMP/go"

check_match "the keepAlive message starts a line of its own" "$during" \
	$'(^|\n)arl-batch: '"$KEPT"$'(\n|$)'
check_match "the creation window message starts a line of its own" "$during" \
	$'(^|\n)arl-batch: '"$WINDOW"' \(one create at a time\)'$'(\n|$)'
check_eq "no message is glued to a bar line" \
	"$(grep -E "$BAR" <<<"$during" | grep -c 'arl-batch:' || true)" 0
check_match "the bar is drawn again below the messages" "$(tail -n 1 <<<"$during")" "^.*$BAR"
check_eq "... once: one bar on the screen" "$(grep -cE "$BAR" <<<"$during" || true)" 1

ended() {
	capture >"$TMP/final"
	grep -q '^EXIT=' "$TMP/final"
}
wait_until 300 "the run to end" ended || true
final=$(cat "$TMP/final")
check_match "the run succeeded" "$final" $'(^|\n)EXIT=0(\n|$)'
check_match "after the run, the keepAlive message is still on a line of its own" "$final" \
	$'(^|\n)arl-batch: '"$KEPT"$'\n'
check_match "... and so is the creation window's" "$final" $'(^|\n)arl-batch: '"$WINDOW"
check_eq "... with no bar glued to any of them (nothing left in the scrollback)" \
	"$(grep -cE "$BAR" <<<"$final" || true)" 0
check_match "... and the summary" "$final" \
	"arl-batch: run 1 'msgs' succeeded \(exit 0\) in [^:]*: 3 succeeded"

summary
