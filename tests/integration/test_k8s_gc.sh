#!/usr/bin/env bash
# `arl-batch gc` on the kubernetes backend (issue 7): a runner killed with -9 leaves its
# Sandboxes and Tasks; gc lists exactly those (not a live runner's, not another host's, not a
# keepAlive Sandbox, not an object without owner labels), `gc --yes` deletes them, and the
# next `run` sweeps a killed run's leftovers when it starts. Also: pid reuse and a reboot
# read as dead, `--host` gives a host up, `--namespace` and the fallback when listing across
# namespaces is forbidden, a bare `gc` never contacts a cluster, and an unreachable one is 3.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
# Two runs of four sleeping steps at once: more operator workers than its default 4.
start_fake --pool sandbox=4 --grpc-timeout 0 --task-workers 12

PIDS=()
kill_runners() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	stop_fake
}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap
CLEANUP=kill_runners

long_jobs "$TMP/long.yaml" 'sandbox: {backend: kubernetes, replicas: 4}' 120s 60
cat >"$TMP/quick.yaml" <<'EOF'
version: 1
pools:
  sandbox: {backend: kubernetes}
jobs:
  - {name: quick, steps: [{type: Command, command: ["true"]}]}
EOF
cat >"$TMP/keep.yaml" <<'EOF'
version: 1
pools:
  sandbox: {backend: kubernetes}
jobs:
  - {name: kept, keepAlive: true, steps: [{type: Command, command: ["true"]}]}
EOF

# count_run KIND RUN: objects of KIND (sandboxes, tasks) labelled arl.infra.io/run=RUN.
count_run() {
	fake_get /_fake/state | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for o in d["objects"][sys.argv[1]]
          if o.get("labels", {}).get("arl.infra.io/run") == sys.argv[2]))' "$@"
}
# running_of RUN: Tasks of RUN in state Running.
running_of() {
	fake_get /_fake/state | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for o in d["objects"]["tasks"]
          if o.get("labels", {}).get("arl.infra.io/run") == sys.argv[1] and o.get("state") == "Running"))' "$1"
}
# run_label ERRFILE: the run label a runner announced on stderr (waits up to 120 s).
run_label() {
	local i l
	for i in $(seq 1 1200); do
		l=$(grep -o 'objects labelled arl.infra.io/run=[^ ]*' "$1" 2>/dev/null | sed 's/.*=//' || true)
		if [ -n "$l" ]; then
			echo "$l"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
# wait_running RUN N: until N Tasks of RUN are Running (at most 120 s: a bound for a hang).
wait_running() {
	local i
	for i in $(seq 1 1200); do
		[ "$(running_of "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# wait_gone RUN: until no Sandbox or Task of RUN is left (finalizers; at most 120 s).
wait_gone() {
	local i
	for i in $(seq 1 1200); do
		[ "$(count_run sandboxes "$1")|$(count_run tasks "$1")" == "0|0" ] && return 0
		sleep 0.1
	done
	return 1
}
# start_long NAME: `run` of long.yaml at -j 4 in the background; sets LONG_PID, LONG_RUN.
start_long() {
	"$ARL_BATCH" run --progress none -j 4 --db "$TMP/$1.db" --kubeconfig "$KC" "$TMP/long.yaml" \
		>"$TMP/$1.out" 2>"$TMP/$1.err" &
	LONG_PID=$!
	PIDS+=("$LONG_PID")
	LONG_RUN=$(run_label "$TMP/$1.err")
}
# make_obj KIND NS NAME LABELS-JSON [IDLE]: creates a Sandbox (IDLE: its idleTimeoutSeconds,
# default 600; "none": without) or a Task straight through the API.
make_obj() {
	python3 - "$FAKE_URL" "$@" <<'EOF'
import json, sys, urllib.request
url, kind, ns, name, labels = sys.argv[1:6]
idle = sys.argv[6] if len(sys.argv) > 6 else "600"
if kind == "Sandbox":
    spec = {"poolRef": "sandbox", "keepAlive": True}
    if idle != "none":
        spec["idleTimeoutSeconds"] = int(idle)
    plural = "sandboxes"
else:
    spec = {"sandboxRef": "nosuch", "steps": [{"name": "s", "type": "Command", "command": ["true"]}]}
    plural = "tasks"
body = {"apiVersion": "arl.infra.io/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": json.loads(labels)}, "spec": spec}
req = urllib.request.Request("%s/apis/arl.infra.io/v1alpha1/namespaces/%s/%s" % (url, ns, plural),
                             data=json.dumps(body).encode(), method="POST",
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=10).read()
EOF
}
# exists KIND NS NAME: 1 when that object is on the server (being deleted or not), else 0.
exists() {
	fake_get /_fake/state | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for o in d["objects"][sys.argv[1]] if (o["namespace"], o["name"]) == (sys.argv[2], sys.argv[3])))' "$@"
}

echo "# a killed runner's objects, next to a live runner's"
start_long dead
check "the first runner's four sleep steps are running" wait_running "$LONG_RUN" 4
DEAD_PID=$LONG_PID
DEAD=$LONG_RUN
start_long live
check "the second runner's four sleep steps are running" wait_running "$LONG_RUN" 4
LIVE_PID=$LONG_PID
LIVE=$LONG_RUN

runner gc --kubeconfig "$KC"
check_eq "gc while both runners live exits 0" "$RC" 0
check_eq "... and lists nothing" "$(grep -c '^orphaned ' "$TMP/out" || true)" 0
check_match "... saying so" "$(cat "$TMP/out")" "no orphaned Sandboxes or Tasks in context 'fake-arl', all namespaces"

kill -9 "$DEAD_PID"
wait "$DEAD_PID" 2>/dev/null || true
n_sb=$(count_run sandboxes "$DEAD")
n_task=$(count_run tasks "$DEAD")
check_eq "kill -9 leaves the killed run's 4 Sandboxes behind" "$n_sb" 4
check_eq "... and the Tasks of its 4 running steps" "$n_task" 4

runner gc --kubeconfig "$KC"
check_eq "gc exits 0" "$RC" 0
check_eq "gc lists each of the killed run's Tasks" \
	"$(grep -c "^orphaned Task default/.* run=$DEAD owner=.* (not running)\$" "$TMP/out" || true)" "$n_task"
check_eq "gc lists each of the killed run's Sandboxes" \
	"$(grep -c "^orphaned Sandbox default/.* run=$DEAD owner=.* (not running)\$" "$TMP/out" || true)" "$n_sb"
check_eq "gc lists nothing else (the live run's objects are not orphans)" \
	"$(grep -c '^orphaned ' "$TMP/out" || true)" $((n_sb + n_task))
check_eq "... not one of the live run's" "$(grep -c "run=$LIVE" "$TMP/out" || true)" 0
check_match "gc says how many and how to delete them" "$(cat "$TMP/out")" \
	"$((n_sb + n_task)) orphaned objects in context 'fake-arl', all namespaces; run again with --yes"
check_eq "the Tasks are listed before the Sandboxes (the order of deletion)" \
	"$(grep '^orphaned ' "$TMP/out" | awk '{print $2}' | uniq | tr '\n' ' ')" "Task Sandbox "
check_eq "gc without --yes deletes nothing" \
	"$(count_run sandboxes "$DEAD")|$(count_run tasks "$DEAD")" "$n_sb|$n_task"

runner gc --yes --kubeconfig "$KC"
check_eq "gc --yes exits 0" "$RC" 0
check_eq "gc --yes deletes each orphan" "$(grep -c "^deleting .* run=$DEAD " "$TMP/out" || true)" \
	$((n_sb + n_task))
check "nothing of the killed run is left on the server" wait_gone "$DEAD"
check_eq "the live run's Sandboxes are untouched" "$(count_run sandboxes "$LIVE")" 4
check_eq "the live runner still runs" "$(kill -0 "$LIVE_PID" 2>/dev/null && echo yes || echo no)" yes
runner gc --backend kubernetes --kubeconfig "$KC"
check_match "a second gc finds nothing" "$(cat "$TMP/out")" "^no orphaned Sandboxes or Tasks"

kill -INT "$LIVE_PID"
set +e
wait "$LIVE_PID"
RC=$?
set -e
check_eq "the live run, interrupted, exits 130" "$RC" 130
check_eq "... and cleans up after itself" "$(count_run sandboxes "$LIVE")|$(count_run tasks "$LIVE")" "0|0"

echo "# run sweeps what a killed run of this host left, when it starts"
start_long swept
check "a run's four sleep steps are running" wait_running "$LONG_RUN" 4
kill -9 "$LONG_PID"
wait "$LONG_PID" 2>/dev/null || true
SWEPT=$LONG_RUN
left=$(($(count_run sandboxes "$SWEPT") + $(count_run tasks "$SWEPT")))
check_eq "the killed run left 4 Sandboxes and 4 Tasks" "$left" 8
runner run --progress none --db "$TMP/quick.db" --kubeconfig "$KC" "$TMP/quick.yaml"
check_eq "the next run exits 0" "$RC" 0
check_eq "it says it deletes each object of the killed run, one line each" \
	"$(grep -c "^arl-batch: kubernetes: deleting \(Task\|Sandbox\) default/.* run=$SWEPT .*(not running)\$" "$TMP/err" || true)" \
	"$left"
check "nothing of the killed run is left on the server" wait_gone "$SWEPT"

echo "# keepAlive Sandboxes stay"
runner run --progress none --db "$TMP/keep.db" --kubeconfig "$KC" "$TMP/keep.yaml"
check_eq "the keepAlive run exits 0" "$RC" 0
KEPT=$(run_label "$TMP/err")
check_eq "its Sandbox is kept" "$(count_run sandboxes "$KEPT")" 1
runner gc --yes --kubeconfig "$KC"
check_eq "gc --yes passes over it (its runner is gone, but the job asked to keep it)" \
	"$(grep -c "run=$KEPT" "$TMP/out" || true)|$(count_run sandboxes "$KEPT")" "0|1"
runner run --progress none --db "$TMP/quick.db" --kubeconfig "$KC" "$TMP/quick.yaml"
check_eq "so does the next run's sweep" "$(grep -c "run=$KEPT" "$TMP/err" || true)|$(count_run sandboxes "$KEPT")" "0|1"

echo "# how owners are judged: pid reuse, reboot, incomplete labels, other hosts"
ME=$(fake_get /_fake/state | python3 -c '
import json, sys
print([o for o in json.load(sys.stdin)["objects"]["sandboxes"]
       if o["labels"].get("arl.infra.io/run") == sys.argv[1]][0]["labels"]["arl.infra.io/owner-host"])' "$KEPT")
START=$(sed 's/.*) //' /proc/$$/stat | awk '{print $20}')
BOOT=$(cat /proc/sys/kernel/random/boot_id)
lab() { # lab HOST PID [START [BOOT]]: owner labels as JSON
	printf '{"app.kubernetes.io/managed-by": "arl-batch", "arl.infra.io/run": "t-1", "arl.infra.io/owner-host": "%s", "arl.infra.io/owner-pid": "%s"%s%s}' \
		"$1" "$2" "${3:+, \"arl.infra.io/owner-start\": \"$3\"}" "${4:+, \"arl.infra.io/owner-boot\": \"$4\"}"
}
for i in $(seq 1 25); do
	make_obj Task default "t-page-$i" "$(lab "$ME" 2147483646)"
done
fake_delete /_fake/requests
runner gc --kubeconfig "$KC" --backend kubernetes
check_eq "gc lists all 25 dead-owner Tasks" \
	"$(grep -c '^orphaned Task default/t-page-' "$TMP/out" || true)" 25
check_eq "... read in pages (a Task may hold megabytes of output)" "$(fake_requests list tasks)" 2
runner gc --kubeconfig "$KC" --backend kubernetes --yes
check_eq "gc --yes deletes them all" "$(fake_count tasks)" 0
make_obj Sandbox default t-alive "$(lab "$ME" $$ "$START" "$BOOT")"
make_obj Sandbox default t-reused "$(lab "$ME" $$ 1 "$BOOT")"
make_obj Sandbox default t-rebooted "$(lab "$ME" $$ "$START" 00000000-0000-4000-8000-000000000000)"
make_obj Task default t-old-style "$(lab "$ME" 2147483646)"
make_obj Sandbox default t-no-pid \
	'{"app.kubernetes.io/managed-by": "arl-batch", "arl.infra.io/run": "t-1", "arl.infra.io/owner-host": "'"$ME"'"}'
make_obj Sandbox default t-not-ours \
	'{"app.kubernetes.io/managed-by": "someone", "arl.infra.io/run": "t-1", "arl.infra.io/owner-host": "'"$ME"'", "arl.infra.io/owner-pid": "2147483646"}'
make_obj Sandbox default t-ghost "$(lab gone-host 1 1)"
make_obj Sandbox other t-ghost "$(lab gone-host 1 1)"
make_obj Sandbox default t-ghost-kept "$(lab gone-host 1 1)" none
runner gc --kubeconfig "$KC"
check_eq "gc exits 0" "$RC" 0
check_eq "what it lists, and why" "$(grep '^orphaned ' "$TMP/out" | sed 's/ run=.*(/ (/' | sort | tr '\n' ';')" \
	"orphaned Sandbox default/t-rebooted (the host rebooted since);orphaned Sandbox default/t-reused (its pid is another process now);orphaned Task default/t-old-style (not running);"
check_match "it counts the other host's objects and says how to give it up" "$(cat "$TMP/out")" \
	"3 objects of other hosts \\(gone-host\\) not checked: .*--host NAME"

runner gc --kubeconfig "$KC" --host gone-host
check_eq "gc --host gone-host lists that host's objects in every namespace, but the kept one" \
	"$(grep '^orphaned ' "$TMP/out" | awk '{print $2, $3}' | sort | tr '\n' ';')" \
	"Sandbox default/t-ghost;Sandbox other/t-ghost;"
check_eq "... and none of this host's, nor a count of them" \
	"$(grep -c "owner=$ME \|of other hosts" "$TMP/out" || true)" 0

echo "# --namespace, and listing across namespaces forbidden"
runner gc --kubeconfig "$KC" --host gone-host -n other
check_eq "-n other looks in that namespace only" \
	"$(grep '^orphaned ' "$TMP/out" | awk '{print $3}' | tr '\n' ';')" "other/t-ghost;"
fake_post /_fake/faults "forbid=list/sandboxes:scope=cluster,forbid=list/tasks:scope=cluster"
runner gc --kubeconfig "$KC" --host gone-host
check_eq "forbidden across namespaces: gc still exits 0" "$RC" 0
check_match "... says it looked in the context's namespace only" "$(cat "$TMP/err")" \
	"cannot list across namespaces \\(.*forbidden.*\\): looked in namespace 'default' only"
check_eq "... and lists what is there" "$(grep '^orphaned ' "$TMP/out" | awk '{print $3}' | tr '\n' ';')" \
	"default/t-ghost;"
fake_post /_fake/faults ""

runner gc --kubeconfig "$KC" --host gone-host --yes
check_eq "gc --host gone-host --yes exits 0" "$RC" 0
check_eq "... deletes that host's objects but the kept Sandbox" \
	"$(exists sandboxes default t-ghost)$(exists sandboxes other t-ghost)$(exists sandboxes default t-ghost-kept)" "001"
runner gc --kubeconfig "$KC" --yes
check_eq "gc --yes deletes the reused-pid, rebooted and dead-pid objects" \
	"$(exists sandboxes default t-reused)$(exists sandboxes default t-rebooted)$(exists tasks default t-old-style)" "000"
check_eq "... and leaves a live owner's, an unlabelled and a foreign object alone" \
	"$(exists sandboxes default t-alive)$(exists sandboxes default t-no-pid)$(exists sandboxes default t-not-ours)" "111"

echo "# which backends gc looks at"
fake_delete /_fake/requests
(cd "$TMP" && KUBECONFIG=$KC "$ARL_BATCH" gc >"$TMP/out" 2>"$TMP/err") && RC=0 || RC=$?
check_eq "a bare gc exits 0" "$RC" 0
check_eq "... and never contacts the cluster, even with \$KUBECONFIG set" \
	"$(fake_get /_fake/requests | grep -c . || true)" 0
(cd "$TMP" && KUBECONFIG=$KC "$ARL_BATCH" gc --backend kubernetes >"$TMP/out" 2>"$TMP/err") && RC=0 || RC=$?
check_eq "gc --backend kubernetes uses \$KUBECONFIG" "$RC|$(grep -c 'sandboxes in ' "$TMP/out" || true)" "0|0"
check_match "... and reports on the cluster only" "$(cat "$TMP/out")" "no orphaned Sandboxes or Tasks"
runner gc --backend all --kubeconfig "$KC" --db "$TMP/quick.db"
check_match "gc --backend all reports on both" "$(cat "$TMP/out")" \
	"no orphaned sandboxes in .*quick.db.sandboxes.*no orphaned Sandboxes or Tasks"
runner gc --backend bogus
check_eq "an unknown backend is a usage error" "$RC" 2
runner gc --backend local --host gone-host
check_eq "a kubernetes option with --backend local is a usage error" "$RC" 2

sed 's#server: .*#server: http://127.0.0.1:1#' "$KC" >"$TMP/dead-kc"
runner gc --kubeconfig "$TMP/dead-kc"
check_eq "an unreachable cluster: exit 3" "$RC" 3
check_match "... with a message naming the context, the server and the cause" "$(cat "$TMP/err")" \
	"arl-batch gc: kubernetes: context 'fake-arl', server http://127.0.0.1:1: cannot list .*connect"
# In seconds: gc's 4 tries back off 0.2 + 0.4 + 0.8 s at most, where the client's default 10 take
# most of a minute. Counted, not timed (a busy machine is slow, not wrong).
check_match "... giving up after gc's 4 tries, not the default 10" "$(cat "$TMP/err")" "\\(after 4 tries\\)"

summary
