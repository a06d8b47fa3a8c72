#!/usr/bin/env bash
# `arl-batch gc` and the sweep at the start of `run`: sandboxes of a live runner are left
# alone, whatever times its steps give their /workspace, and so are a runner's in another PID
# namespace (its run is not marked interrupted either); those of a runner killed with -9 are
# found, listed and deleted; keepAlive ones stay.
# A bwrap sandbox's /workspace is an overlay whose upper layer is SANDBOX/upper/workspace:
# the test reads steps' files there, and lets waiting steps go with a signal (SIGUSR1 to the
# step's shell, found by a marker), as overlayfs never shows a file written into its upper
# from outside to a step that already looked for it.
set -euo pipefail
. "$SOURCE_DIR/tests/integration/lib.sh"
require_bwrap

tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"

# n_sb DIR: how many sandboxes of runs are in DIR.
n_sb() {
	find "$1" -mindepth 1 -maxdepth 1 -name 'sb-*' 2>/dev/null | wc -l
}

# wait_files PID N GLOB: until N files match GLOB, or runner PID has exited (no time limit:
# ctest's timeout is the backstop on a machine too busy to get there).
wait_files() {
	local p=$1 n=$2 glob=$3
	while [ "$(compgen -G "$glob" | wc -l)" -lt "$n" ] && kill -0 "$p" 2>/dev/null; do
		sleep 0.05
	done
}
marker="sleep 20.$$"
# go MARK [SIG]: signals (USR1 by default) the steps whose command carries MARK.
go() {
	local p
	for p in $(procs_with "$1"); do kill -"${2:-USR1}" "$p" 2>/dev/null || true; done
}
mark="touch /workspace/started; $marker"
cat >slow.yaml <<YAML
version: 1
pools: {p: {replicas: 2}}
jobs:
  - name: "s-{{ item.i }}"
    foreach: {items: [{i: 1}, {i: 2}, {i: 3}]}
    timeout: 60s
    steps: [{type: Command, command: ["sh", "-c", "$mark"]}]
YAML
cat >keep.yaml <<'YAML'
version: 1
pools: {p: {}}
jobs:
  - {name: kept, keepAlive: true, steps: [{type: Command, command: ["true"]}]}
YAML

"$ARL_BATCH" run --db k.db --progress none keep.yaml 2>/dev/null
check_eq "keepAlive sandbox kept under keep-" "1" "$(ls k.db.sandboxes | grep -c '^keep-sb-')"
"$ARL_BATCH" gc --db k.db --yes >gc-keep.out
check_eq "gc leaves keepAlive sandboxes" "1" "$(ls k.db.sandboxes | grep -c '^keep-sb-')"

"$ARL_BATCH" run --db g.db --progress none slow.yaml 2>/dev/null &
pid=$!
wait_files "$pid" 2 "g.db.sandboxes/sb-*/upper/workspace/started"
"$ARL_BATCH" gc --db g.db --yes >gc-live.out
check_match "gc spares a live runner's sandboxes" "$(cat gc-live.out)" '^no orphaned sandboxes'
check_eq "live sandboxes still there" "yes" "$([ "$(ls g.db.sandboxes | grep -c '^sb-')" -ge 2 ] && echo yes || echo no)"

kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=
check_eq "no process of the killed run" "" "$(leftover "$marker")"
left=$(n_sb g.db.sandboxes)
check_eq "kill -9 leaves sandboxes behind" "yes" "$([ "$left" -ge 2 ] && echo yes || echo no)"
"$ARL_BATCH" gc --db g.db >gc-list.out
check_eq "gc lists each orphan" "$left" "$(grep -c '^orphaned ' gc-list.out)"
check_eq "gc without --yes deletes nothing" "$left" "$(ls g.db.sandboxes | grep -c '^sb-')"
"$ARL_BATCH" gc --db g.db --yes >gc-del.out
check_eq "gc --yes deletes them" "0" "$(ls g.db.sandboxes | grep -c '^sb-' || true)"

# The sweep at run start: orphans of a killed run are gone after the next run.
"$ARL_BATCH" run --db g.db --progress none slow.yaml 2>/dev/null &
pid=$!
wait_files "$pid" 2 "g.db.sandboxes/sb-*/upper/workspace/started"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=
"$ARL_BATCH" run --db g.db --progress none keep.yaml 2>sweep.err
check_match "run sweeps orphans at start" "$(cat sweep.err)" 'deleted [0-9]+ sandbox'
check_eq "only the kept sandbox remains" "0" "$(ls g.db.sandboxes | grep -c '^sb-' || true)"

# A step sets its /workspace's times, as touch -d, tar -x, cp -a and rsync -a do: into the
# past (older than its runner) and into the future. Its runner is alive, so gc and a second
# run's sweep leave both sandboxes alone, and both jobs succeed.
cat >touchy.yaml <<'YAML'
version: 1
pools: {p: {replicas: 2}}
jobs:
  - name: "t-{{ item.d }}"
    foreach: {items: [{d: "2000-01-01"}, {d: "2100-01-01"}]}
    timeout: 600s
    steps:
      - type: Command
        command: ["sh", "-c", "trap 'exit 0' USR1; touch /workspace/ready && touch -d {{ item.d }} /workspace/. &&
          while :; do sleep 0.05; done # arl-go-touchy"]
YAML
cat >quick.yaml <<'YAML'
version: 1
pools: {p: {}}
jobs:
  - {name: q, steps: [{type: Command, command: ["true"]}]}
YAML
"$ARL_BATCH" run --db t.db --progress none touchy.yaml >touchy.out 2>touchy.err &
pid=$!
wait_files "$pid" 2 "t.db.sandboxes/sb-*/upper/workspace/ready"
dirs=$(dirname t.db.sandboxes/sb-*/upper/workspace/ready)
# The step's touch -d comes after its ready file: wait for the directory times it sets.
for d in $dirs; do
	while t=$(stat -c %Y "$d" 2>/dev/null) && [ "$t" -gt 946771200 ] && [ "$t" -lt 4102358400 ]; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
done
check_eq "the steps moved their directories' mtimes to 2000 and 2100" \
	"$(for d in $dirs; do date -u -d "@$(stat -c %Y "$d")" +%Y; done | sort | tr '\n' ' ' | sed 's/ $//')" "2000 2100"
"$ARL_BATCH" gc --db t.db --yes >gc-touchy.out
check_match "gc finds no orphan beside a live run that set its times" "$(cat gc-touchy.out)" \
	'^no orphaned sandboxes'
rc=0
"$ARL_BATCH" run --db t.db --progress none quick.yaml 2>quick.err || rc=$?
check_eq "a second run on the same database succeeds" "$rc" "0"
gone=0
for d in $dirs; do
	[ -d "$d" ] || gone=$((gone + 1))
done
check_eq "both live sandboxes survive gc and the second run's sweep (none gone)" "$gone" "0"
go arl-go-touchy
rc=0
wait "$pid" || rc=$?
pid=
check_eq "the run whose steps set their times succeeds" "$rc" "0"
check_eq "both its jobs succeeded" \
	"$(sql t.db "SELECT state FROM jobs WHERE run_id = 1 ORDER BY id" | tr '\n' ' ' | sed 's/ $//')" \
	"Succeeded Succeeded"

# A runner in another PID namespace, as in a container that shares this host's name and this
# directory: its pid means nothing here (it is not running here), so neither `runs` nor gc
# nor another run's sweep judges it, and its job succeeds.
if ! unshare --pid --fork --mount-proc true 2>/dev/null || [ ! -w /proc/sys/kernel/ns_last_pid ]; then
	echo "skip - no PID namespaces here: the other-namespace part is not run"
else
	# A pid no process has here, for the runner inside (ns_last_pid: the next one is +1).
	p=$((20000 + $$ % 10000))
	while [ -e "/proc/$p" ]; do
		p=$((p + 1))
	done
	cat >ns.yaml <<'YAML'
version: 1
pools: {p: {}}
jobs:
  - name: inside
    timeout: 600s
    steps:
      - type: Command
        command: ["sh", "-c", "trap 'exit 0' USR1; touch /workspace/ready && while :; do sleep 0.05; done # arl-go-ns"]
YAML
	# --kill-child: killing unshare (the EXIT trap) takes the whole namespace with it.
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --pid --fork --kill-child --mount-proc sh -c \
		'echo $(($1 - 1)) >/proc/sys/kernel/ns_last_pid && "$2" run --db u.db --progress none ns.yaml; exit $?' \
		sh "$p" "$ARL_BATCH" >ns.out 2>ns.err &
	pid=$!
	wait_files "$pid" 1 "u.db.sandboxes/sb-*/upper/workspace/ready"
	d=$(dirname "$(dirname "$(dirname u.db.sandboxes/sb-*/upper/workspace/ready)")")
	check_eq "the runner inside has pid $p there" "$(sql u.db "SELECT pid FROM runs WHERE id = 1")" "$p"
	if [ -e "/proc/$p" ]; then
		echo "note - pid $p was taken here meanwhile: this part shows less than it could"
	fi
	"$ARL_BATCH" runs --db u.db >ns-runs.out
	check_eq "runs leaves the other namespace's run running" \
		"$(sql u.db "SELECT status FROM runs WHERE id = 1")" "running"
	"$ARL_BATCH" gc --db u.db --yes >ns-gc.out
	check_match "gc leaves the other namespace's sandbox alone" "$(cat ns-gc.out)" \
		'^no orphaned sandboxes'
	check_match "gc says it did not judge them" "$(cat ns-gc.out)" \
		'[0-9]+ sandbox(es)? of runners in another PID namespace not checked'
	"$ARL_BATCH" run --db u.db --progress none quick.yaml 2>/dev/null
	check_eq "the other namespace's sandbox survives gc and a run's sweep" \
		"$([ -d "$d" ] && echo yes || echo no)" "yes"
	go arl-go-ns
	rc=0
	wait "$pid" || rc=$?
	pid=
	check_eq "the runner in the other namespace succeeds" "$rc" "0"
	check_eq "its run is recorded succeeded" \
		"$(sql u.db "SELECT r.status || '|' || j.state FROM runs r JOIN jobs j ON j.run_id = r.id WHERE r.id = 1")" \
		"succeeded|Succeeded"
fi

# A sandbox directory deleted from the host while its step runs (a cleaner, an admin, another
# tool): the step's failure is not its own. The attempt is infra, and the retry (in a new
# sandbox) succeeds. The step waits for a file the test writes, never for a duration.
for iso in bwrap none; do
	cat >gone-$iso.yaml <<YAML
version: 1
pools: {p: {isolation: $iso}}
jobs:
  - name: g
    retries: 1
    backoff: 0s
    steps:
      - type: Command
        command: ["sh", "-c", 'trap "exit 0" USR1; trap "exit 1" USR2; touch "\$ARL_WORKSPACE/started"; while :; do sleep 0.05; done # arl-go-gone-$iso']
YAML
	# Where a step's /workspace/started is on the host, and its sandbox directory.
	started="gone-$iso.db.sandboxes/sb-*/started"
	[ $iso = none ] || started="gone-$iso.db.sandboxes/sb-*/upper/workspace/started"
	"$ARL_BATCH" run --db gone-$iso.db --progress none gone-$iso.yaml >gone-$iso.out 2>&1 &
	pid=$!
	wait_files "$pid" 1 "$started"
	first=$(compgen -G "$started" | head -n 1 || true)
	# The step, whose files went with its directory, fails on its own (USR2: as it would
	# by finding them gone, which it cannot through an overlay).
	[ -z "$first" ] || { rm -rf "${first%%.sandboxes/*}.sandboxes/$(echo "${first#*.sandboxes/}" | cut -d/ -f1)" && go "arl-go-gone-$iso" USR2; }
	wait_files "$pid" 1 "$started"
	go "arl-go-gone-$iso"
	rc=0
	wait "$pid" || rc=$?
	pid=
	check_eq "[$iso] a job whose sandbox was deleted under its step succeeds on its retry" \
		"$rc|$(sql gone-$iso.db "SELECT state || ',' || attempts FROM jobs")" "0|Succeeded,2"
	check_eq "[$iso] ... its first attempt is infra, not a failure of the step" \
		"$(sql gone-$iso.db "SELECT state || ',' || error_class FROM attempts WHERE number = 1")" \
		"Failed,infra"
	check_match "[$iso] ... and says the sandbox directory was removed" \
		"$(sql gone-$iso.db "SELECT error FROM attempts WHERE number = 1")" \
		"^step 'step-1': the sandbox directory '.*/gone-$iso\.db\.sandboxes/sb-[^']*' was removed from the host while the step ran\$"
done
summary
