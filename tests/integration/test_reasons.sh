#!/usr/bin/env bash
# Why did a job fail, at a glance: `results` gives each failed job a reason (the failing step,
# the class, the last non-empty stderr line, or the timeout/infra message) in the table, and a
# `reason` field/column in JSON and CSV; a Skipped job carrying a failure gives that reason;
# a cut line in a narrow terminal; controls in stderr are escaped in the table.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
steps_may_use
# As root, a step reaches its workspace through a mount point: infra deletes its directory by
# name, in a state directory it may write (sticky), as test_dataset_cron does.
export XDG_STATE_HOME=$TMP/xdg
mkdir -p "$XDG_STATE_HOME/arl-batch"
chmod 1777 "$XDG_STATE_HOME/arl-batch"

cat >"$TMP/r.yaml" <<EOF
version: 1
pools:
  p: {isolation: none, replicas: 4}
jobs:
  - name: ok
    steps: [{name: a, type: Command, command: ["true"]}]
  - name: fails
    steps:
      - {name: prep, type: Command, command: ["sh", "-c", "echo prep-noise >&2"]}
      - name: test
        type: Command
        command: ["sh", "-c", "echo first >&2; printf 'AssertionError: 2 != 3\\\\033[2J\\\\n  \\\\n\\\\n' >&2; exit 4"]
  - name: quiet
    steps: [{name: q, type: Command, command: ["sh", "-c", "echo only-stdout; exit 3"]}]
  - name: slow
    timeout: 300ms
    steps: [{name: s, type: Command, command: ["sh", "-c", "echo still-going >&2; exec sleep 30"]}]
  - name: vanish
    steps:
      - name: gone
        type: Command
        command:
          - sh
          - -c
          - |
            m=\$(awk '\$5 == "/run/arl-batch/workspace" { print \$4 }' /proc/self/mountinfo)
            if [ -n "\$m" ]; then rm -rf "$XDG_STATE_HOME/arl-batch/\${m##*/}"; else rm -rf "\$PWD"; fi
      - {name: patch, type: FilePatch, path: /workspace/out.txt, content: "x"}
EOF

runner run --progress none --db "$TMP/r.db" "$TMP/r.yaml"
check_eq "the run has an infra job: exit 3" "$RC" 3

echo "# table"
runner results --db "$TMP/r.db"
T=$(cat "$TMP/out")
check_match "the table has a REASON column" "$T" "DURATION  REASON"
check_match "a failure: step, class, last non-empty stderr line (controls escaped)" \
	"$(grep 'r/fails' <<<"$T")" 'test: failed: AssertionError: 2 != 3\\x1b\[2J$'
check_match "no stderr: the exit code" "$(grep 'r/quiet' <<<"$T")" 'q: failed: exited with 3$'
check_match "a timeout: its message, not the step's last line" "$(grep 'r/slow' <<<"$T")" \
	's: timeout: timed out$'
check_match "infra: the backend's message" "$(grep 'r/vanish' <<<"$T")" 'patch: infra: .+'
check_match "a success has none" "$(grep 'r/ok' <<<"$T")" 'Succeeded +r/ok +1 +0 +[0-9.]+m?s$'

echo "# json and csv"
ESC=$(printf '\033')
runner results --db "$TMP/r.db" --format json
check_eq "json: a reason per job (null when it succeeded)" \
	"$(python3 -c 'import json,sys; [print(j["key"], j["reason"]) for j in json.load(open(sys.argv[1]))]' "$TMP/out" | grep -v vanish)" \
	"r/ok None
r/fails test: failed: AssertionError: 2 != 3$ESC[2J
r/quiet q: failed: exited with 3
r/slow s: timeout: timed out"
runner results --db "$TMP/r.db" --format csv
check_eq "csv: a reason column after the fixed ones" \
	"$(python3 -c 'import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(list(r[0].keys())[-1]); [print(x["key"], x["reason"]) for x in r if x["key"] != "r/vanish"]' "$TMP/out")" \
	"reason
r/ok 
r/fails test: failed: AssertionError: 2 != 3$ESC[2J
r/quiet q: failed: exited with 3
r/slow s: timeout: timed out"

echo "# a Skipped job carries its result's reason"
runner run --progress none --db "$TMP/r.db" --rerun infra "$TMP/r.yaml"
runner results --db "$TMP/r.db"
check_match "carried: run, state and reason" "$(grep 'r/fails' "$TMP/out")" \
	'carried from run 1 \(Failed\): test: failed: AssertionError'

echo "# a narrow terminal cuts the reason"
if command -v script >/dev/null 2>&1; then
	COLUMNS=60 script -qec "$ARL_BATCH results --db $TMP/r.db --run 1" /dev/null >"$TMP/tty" || true
	check_match "cut with an ellipsis" "$(grep 'r/fails' "$TMP/tty")" 'test: fa[^ ]*…'
fi

summary
