#!/usr/bin/env bash
# The copy-on-write root of local containers (issue 14), through arl-batch, as root and (when
# we are root) as uid 65534 via setpriv with a state directory of its own: writes to
# /usr/local and /etc succeed inside and persist across steps, the host is unchanged,
# /etc/shadow stays unreadable, workspace writes do not reach the pool's workspace, two
# sandboxes do not see each other's writes, keepAlive keeps the upper layer and release
# removes it; ARL_BATCH_NO_OVERLAY=1 forces the fallback (today's copy), which says so once
# on stderr and in runs.notes; gc deletes the skeleton of a runner killed with -9; a run
# reuses the skeleton an earlier one kept until the host trees change (kept_skeleton). As root,
# a pool's workspace is copied once per run (shared_lower), and gc deletes that copy too; a
# state directory on an overlayfs makes the agent's overlay mount really fail (overlay_refused).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3
make_tmp

MARK=$$$RANDOM
# The skeletons our runs kept (skel_cache.h) that no run holds now, and kept_skeleton's host
# directory if it stopped halfway.
kept_before=$(compgen -G '/dev/shm/arl-batch-skel-c-*' || true)
cleanup() {
	local d
	rmdir "/usr/local/arl-skel-$MARK" 2>/dev/null || true
	for d in /dev/shm/arl-batch-skel-c-*; do
		[ -d "$d" ] && ! grep -qxF -- "$d" <<<"$kept_before" || continue
		flock -n -x "$d" rm -rf "$d" 2>/dev/null || true
	done
	return 0
}
CLEANUP=cleanup

# stdout DB JOB N: the recorded stdout of the job's main step N (from 0).
stdout() {
	sql "$1" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id
	   JOIN jobs j ON j.id = a.job_id WHERE j.name = '$2' AND s.phase = 'main'
	   ORDER BY s.idx LIMIT 1 OFFSET $3"
}

# suite WHO: the checks, as WHO, in a directory WHO owns.
suite() {
	local who=$1 dir=$TMP/$1 db ws kept
	db=$dir/cow.db
	ws=$dir/ws
	mkdir -p "$ws/pkg"
	echo orig >"$ws/src.txt"
	[ "$who" = root ] || chown -R $NOBODY:$NOBODY "$dir"
	cat >"$dir/cow.yaml" <<EOF
version: 1
pools:
  p: {replicas: 2, workspace: $ws}
jobs:
  - name: writer
    steps:
      - {type: Command, command: ["sh", "-c", "echo u-$MARK > /usr/local/arl-cow-$MARK && echo e-$MARK > /etc/arl-cow-$MARK && echo changed > /workspace/src.txt && echo new > /workspace/pkg/new.txt"]}
      - {type: FilePatch, path: /workspace/pkg/patched.txt, content: "patched"}
      - {type: Command, command: ["sh", "-c", "cat /usr/local/arl-cow-$MARK /etc/arl-cow-$MARK /workspace/src.txt /workspace/pkg/new.txt /workspace/pkg/patched.txt; echo; cat /etc/shadow >/dev/null 2>&1 && echo shadow-readable || echo shadow-hidden"]}
  - name: other
    steps:
      - {type: Command, command: ["sh", "-c", "test -e /usr/local/arl-cow-$MARK && echo seen || echo isolated; cat /workspace/src.txt"]}
  - name: kept
    keepAlive: true
    steps:
      - {type: Command, command: ["sh", "-c", "echo k > /usr/local/kept-$MARK && echo e > /etc/kept-$MARK"]}
EOF
	as "$who" "$ARL_BATCH" run --progress none --db "$db" "$dir/cow.yaml"
	check_eq "[$who] the run succeeds" "$RC" 0
	[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
	check_eq "[$who] /usr/local, /etc and /workspace writes persist across steps; /etc/shadow hidden" \
		"$(stdout "$db" writer 2)" "u-$MARK
e-$MARK
changed
new
patched
shadow-hidden"
	check_eq "[$who] another sandbox sees none of it, and the pool's workspace as it was" \
		"$(stdout "$db" other 0)" "isolated
orig"
	check_eq "[$who] the host's /usr/local and /etc are unchanged" \
		"$(ls /usr/local/arl-cow-$MARK /etc/arl-cow-$MARK /usr/local/kept-$MARK /etc/kept-$MARK 2>/dev/null || true)" ""
	check_eq "[$who] the pool's workspace is unchanged" \
		"$(cat "$ws/src.txt"; find "$ws" | sort | sed "s|^$ws||" | tr '\n' ' ')" "orig
 /pkg /src.txt "
	check_eq "[$who] no runs.notes (no fallback)" "$(sql "$db" 'SELECT ifnull(notes, "") FROM runs')" ""
	kept=$(sql "$db" "SELECT a.sandbox FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.name = 'kept'")
	check_eq "[$who] keepAlive keeps the sandbox's upper layer, /etc's too (in memory otherwise)" \
		"$(cat "$db.sandboxes/keep-$kept/upper/usr/local/kept-$MARK" \
			"$db.sandboxes/keep-$kept/upper/etc/kept-$MARK" 2>/dev/null || true)" "k
e"
	# As root, with the run's copy of the workspace its upper layer stands on (ws_lower.h).
	check_eq "[$who] released sandboxes are gone (only the kept one is left)" \
		"$(find "$db.sandboxes" -mindepth 1 -maxdepth 1 ! -name '.*' -printf '%f\n' | sed 's/^keep-ws-sb-.*/keep-ws/' | sort)" \
		"keep-$kept$([ "$who" = root ] && printf '\nkeep-ws')"
	check_eq "[$who] no skeleton is left in /dev/shm" \
		"$(find /dev/shm -maxdepth 1 -name 'arl-batch-skel-sb-*' -user "$([ "$who" = root ] && echo "${ARL_SANDBOX_UID:-65530}" || echo $NOBODY)" -newer "$dir/cow.yaml" | wc -l)" 0

	# Without a workspace, /workspace is the upper itself, bound (mounts.c: an overlay on an
	# empty lower shows just that, and costs more): written across steps, empty again in the
	# next sandbox of the same directory (replicas 1).
	cat >"$dir/nows.yaml" <<EOF
version: 1
pools:
  p: {replicas: 1}
jobs:
  - name: first
    steps:
      - {type: Command, command: ["sh", "-c", "echo one > /workspace/f && mkdir /workspace/d && mv /workspace/f /workspace/d/g"]}
      - {type: Command, command: ["sh", "-c", "cat /workspace/d/g; stat -c %a /workspace; awk '\$5 == \"/workspace\" { sub(/.* - /, \"\"); print \$1 }' /proc/self/mountinfo"]}
  - name: second
    steps:
      - {type: Command, command: ["sh", "-c", "ls -A /workspace | wc -l"]}
EOF
	as "$who" "$ARL_BATCH" run --progress none --db "$dir/nows.db" "$dir/nows.yaml"
	check_eq "[$who] no workspace: the run succeeds" "$RC" 0
	check_eq "[$who] no workspace: /workspace is a bind (not an overlay), mode 700, kept across steps" \
		"$(stdout "$dir/nows.db" first 1)" "one
700
$(findmnt -n -o FSTYPE --target "$dir")"
	check_eq "[$who] no workspace: the next sandbox's /workspace is empty" \
		"$(stdout "$dir/nows.db" second 0)" 0

	# The fallback, forced: one warning, in runs.notes too; /usr is read-only again.
	cat >"$dir/fallback.yaml" <<EOF
version: 1
pools:
  p: {replicas: 2, workspace: $ws}
jobs:
  - name: ro
    steps:
      - {type: Command, command: ["sh", "-c", "touch /usr/local/arl-cow-$MARK 2>/dev/null && echo writable || echo read-only; cat /workspace/src.txt"]}
EOF
	as "$who" env ARL_BATCH_NO_OVERLAY=1 "$ARL_BATCH" run --progress none --db "$dir/fb.db" "$dir/fallback.yaml"
	check_eq "[$who] fallback: the run succeeds" "$RC" 0
	check_eq "[$who] fallback: /usr is read-only, the workspace copied" "$(stdout "$dir/fb.db" ro 0)" "read-only
orig"
	check_eq "[$who] fallback: one warning on stderr" \
		"$(grep -c 'no copy-on-write root' "$TMP/err" || true)" 1
	check_match "[$who] fallback: recorded in runs.notes" \
		"$(sql "$dir/fb.db" 'SELECT notes FROM runs')" 'ARL_BATCH_NO_OVERLAY=1: no copy-on-write root'
}

# As root, a pool's workspace is copied once per run, not once per sandbox (ws_lower.h): the
# copy, owned by the sandbox uid (0 inside), is the read-only lower layer of every sandbox's
# /workspace; steps write its files in place; the host's workspace is unchanged.
shared_lower() {
	local dir=$TMP/shared db ws n=6 copies uppers
	db=$dir/s.db
	ws=$dir/ws
	mkdir -p "$ws/d"
	echo orig >"$ws/src.txt"
	for i in $(seq 1 200); do head -c 20000 /dev/urandom >"$ws/d/f$i"; done
	{
		printf 'version: 1\npools:\n  p: {replicas: 3, workspace: %s}\njobs:\n' "$ws"
		for i in $(seq 1 $n); do
			printf '  - name: j%s\n    keepAlive: true\n    steps:\n' "$i"
			printf '      - {type: Command, command: ["sh", "-c", "echo more-%s >> /workspace/src.txt && stat -c %%u /workspace/d/f1 && cat /workspace/src.txt"]}\n' "$i"
		done
	} >"$dir.yaml"
	"$ARL_BATCH" run --progress none --db "$db" "$dir.yaml" >"$TMP/out" 2>"$TMP/err" && RC=0 || RC=$?
	check_eq "[shared] the run succeeds" "$RC" 0
	[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
	check_eq "[shared] steps append to a workspace file in place; its files are uid 0 inside" \
		"$(stdout "$db" j4 0)" "0
orig
more-4"
	copies=$(find "$db.sandboxes" -mindepth 1 -maxdepth 1 -name 'keep-ws-sb-*' | wc -l)
	check_eq "[shared] $n sandboxes, one copy of the workspace" "$copies" 1
	uppers=$(find "$db.sandboxes"/keep-sb-*/upper/workspace -type f | wc -l)
	check_eq "[shared] each sandbox's upper holds only the file it wrote" "$uppers" "$n"
	check_eq "[shared] the copy is the sandbox uid's and as the workspace was" \
		"$(stat -c %u "$db.sandboxes"/keep-ws-sb-*/d/f7; cat "$db.sandboxes"/keep-ws-sb-*/src.txt)" \
		"${ARL_SANDBOX_UID:-65530}
orig"
	check_eq "[shared] the host's workspace is unchanged" "$(cat "$ws/src.txt"; stat -c %u "$ws/d/f1")" "orig
0"

	# The job's prepareTimeout bounds that copy (or the wait for the preparer's).
	cat >"$dir/bound.yaml" <<EOF
version: 1
pools:
  p: {workspace: $ws}
jobs:
  - {name: starved, prepareTimeout: 1ms, retries: 0, steps: [{type: Command, command: ["true"]}]}
EOF
	runner run --progress none --db "$dir/bound.db" "$dir/bound.yaml"
	if [ "$RC" = 0 ]; then
		echo "# note: the preparer's copy was ready first; the job's success still holds"
	else
		check_eq "[shared] prepareTimeout: infra, said as for a copy" \
			"$(sql "$dir/bound.db" "SELECT error_class || ': ' || error FROM attempts")" \
			"infra: sandbox not ready after 1ms (pool 'p', the job's prepareTimeout): the job's prepareTimeout passed while copying workspace '$ws'"
	fi
	check_eq "[shared] prepareTimeout: no copy or sandbox is left" \
		"$(find "$dir/bound.db.sandboxes" -mindepth 1 -maxdepth 1 | wc -l)" 0
}

# A real overlay failure, not the test hook: a state directory on an overlayfs, which the
# kernel refuses as another overlay's upper layer. The run falls back to copies, says so once
# with the agent's reason, records it in runs.notes, and its jobs succeed read-only.
overlay_refused() {
	local dir=$TMP/refused m
	m=$dir/m
	mkdir -p "$dir/l" "$dir/u" "$dir/w" "$m" "$dir/ws"
	echo orig >"$dir/ws/src.txt"
	if ! mount -t overlay overlay -o "lowerdir=$dir/l,upperdir=$dir/u,workdir=$dir/w" "$m" 2>/dev/null; then
		echo "skip - cannot mount an overlayfs here: the refused-overlay part is not run"
		return
	fi
	chmod 755 "$dir" "$m"
	cat >"$dir/r.yaml" <<EOF
version: 1
pools:
  p: {replicas: 2, workspace: $dir/ws}
jobs:
  - name: ro
    steps:
      - {type: Command, command: ["sh", "-c", "touch /usr/local/arl-cow-$MARK 2>/dev/null && echo writable || echo read-only; echo more >> /workspace/src.txt; cat /workspace/src.txt"]}
EOF
	runner run --progress none --db "$m/r.db" "$dir/r.yaml"
	check_eq "[refused] the run succeeds on the fallback" "$RC" 0
	check_eq "[refused] /usr read-only, the workspace a copy" "$(stdout "$m/r.db" ro 0)" "read-only
orig
more"
	check_eq "[refused] one warning, with the agent's reason" \
		"$(grep -c "the sandbox agent cannot mount an overlay on '/usr'" "$TMP/err" || true)" 1
	check_match "[refused] recorded in runs.notes" "$(sql "$m/r.db" 'SELECT notes FROM runs')" \
		"^local sandboxes: the sandbox agent cannot mount an overlay on '/usr': .*: workspaces are copied, and /usr and /etc are read-only$"
	check_eq "[refused] the pool's workspace is unchanged" "$(cat "$dir/ws/src.txt")" orig
	umount "$m"
}

# A runner killed with -9 cannot delete its skeleton, nor as root its copy of a workspace:
# gc (and the next run's sweep) does. ARL_BATCH_SKEL_KEEP=0: a skeleton of its own, as a
# kept one is not its (kept_skeleton).
skeleton_gc() {
	local db=$TMP/killed.db pid skel lower
	mkdir -p "$TMP/killed-ws"
	echo x >"$TMP/killed-ws/x"
	cat >"$TMP/killed.yaml" <<EOF
version: 1
pools:
  p: {workspace: $TMP/killed-ws}
jobs:
  - {name: sleeper, timeout: 600s, steps: [{type: Command, command: ["sleep", "405.$MARK"]}]}
EOF
	ARL_BATCH_SKEL_KEEP=0 "$ARL_BATCH" run --progress none --db "$db" "$TMP/killed.yaml" >/dev/null 2>&1 &
	pid=$!
	wait_until 120 "the step to start" eval "[ -n \"\$(procs_with '^sleep 405\\.$MARK')\" ]"
	skel=$(compgen -G "/dev/shm/arl-batch-skel-sb-*-$pid-*" || true)
	lower=$(compgen -G "$db.sandboxes/ws-sb-*-$pid-*" || true)
	kill -9 "$pid"
	{ wait "$pid"; } 2>/dev/null || true
	check "the killed runner's skeleton is left in /dev/shm" test -n "$skel" -a -d "$skel"
	[ "$(id -u)" != 0 ] || check "the killed runner's copy of the workspace is left" test -n "$lower" -a -d "$lower"
	runner gc --db "$db" --yes
	check_eq "gc --yes exits 0" "$RC" 0
	check "gc --yes deletes the dead runner's skeleton" test ! -e "${skel:-/nonexistent}"
	[ "$(id -u)" != 0 ] || check "gc --yes deletes the dead runner's copy of the workspace" test ! -e "${lower:-/nonexistent}"
}

# Kept skeletons (skel_cache.h): a run reuses the skeleton an earlier one kept while the host
# trees are unchanged, rebuilds it when they change (a directory added to the host's /usr is
# the sandbox's own at once), and gc --yes deletes those no run holds, never a held one. A
# sandbox uid of its own, so no other test's run shares or holds these skeletons.
kept_skeleton() {
	local dir=$TMP/kept sbu=65520 k2 k3 pid newdir=/usr/local/arl-skel-$MARK
	mkdir -p "$dir"
	kept() { find /dev/shm -maxdepth 1 -name "arl-batch-skel-c-0-$sbu-$sbu-*" -printf '%f\n' | sort; }
	krun() { ARL_SANDBOX_UID=$sbu ARL_SANDBOX_GID=$sbu runner run --progress none --db "$dir/k.db" "$@"; }
	cat >"$dir/t.yaml" <<EOF
version: 1
pools: {p: {}}
jobs:
  - {name: t, steps: [{type: Command, command: ["true"]}]}
EOF
	cat >"$dir/hold.yaml" <<EOF
version: 1
pools: {p: {}}
jobs:
  - {name: hold, timeout: 600s, steps: [{type: Command, command: ["sleep", "406.$MARK"]}]}
EOF
	cat >"$dir/mk.yaml" <<EOF
version: 1
pools: {p: {}}
jobs:
  - {name: mk, steps: [{type: Command, command: ["sh", "-c", "mkdir $newdir/inner && echo made"]}]}
EOF
	krun "$dir/t.yaml"
	krun "$dir/t.yaml"
	k2=$(kept)
	check "a run keeps its skeleton in /dev/shm" test -n "$k2"
	krun "$dir/t.yaml"
	k3=$(kept)
	check_eq "the next run reuses it (no other is made)" "$RC:$k3" "0:$k2"
	# Another local user cannot open (so cannot flock) a kept skeleton: when it could, every
	# root run passed the locked one by and built and kept one more in /dev/shm.
	setpriv --reuid $NOBODY --regid $NOBODY --clear-groups \
		flock -x -n "/dev/shm/$k2" sh -c "echo locked; exec sleep 407.$MARK" >"$dir/lock.out" 2>/dev/null &
	pid=$!
	wait_until 60 "the other user's flock to hold or fail" \
		eval "grep -q locked '$dir/lock.out' || ! kill -0 $pid 2>/dev/null"
	check_eq "uid $NOBODY cannot lock the kept skeleton" "$(cat "$dir/lock.out")" ""
	krun "$dir/t.yaml"
	check_eq "... and the next run reuses it" "$RC:$(kept)" "0:$k2"
	kill "$pid" 2>/dev/null || true
	{ wait "$pid"; } 2>/dev/null || true
	for p in $(procs_with "^sleep 407\\.$MARK"); do kill "$p" 2>/dev/null || true; done
	# A host process running as the sandbox uid plants a file in the kept skeleton (its
	# directories are that uid's): the next run finds it stale and builds another.
	setpriv --reuid $sbu --regid $sbu --clear-groups touch "/dev/shm/$k2/skel/usr/local/planted-$MARK"
	check "uid $sbu could plant a file in the kept skeleton" test -e "/dev/shm/$k2/skel/usr/local/planted-$MARK"
	krun "$dir/t.yaml"
	check "... and the next run does not reuse it" eval "[ \"\$RC\" = 0 ] && ! kept | grep -qxF -- '$k2'"
	k2=$(kept)

	ARL_SANDBOX_UID=$sbu ARL_SANDBOX_GID=$sbu "$ARL_BATCH" run --progress none --db "$dir/h.db" \
		"$dir/hold.yaml" >/dev/null 2>&1 &
	pid=$!
	wait_until 120 "the holding run's step to start" eval "[ -n \"\$(procs_with '^sleep 406\\.$MARK')\" ]"
	runner gc --db "$dir/h.db" --yes
	check_eq "gc --yes leaves the kept skeleton a run holds" "$RC:$(kept)" "0:$k2"
	kill -INT "$pid"
	{ wait "$pid"; } 2>/dev/null || true
	runner gc --db "$dir/h.db"
	check_match "gc without --yes names the kept skeleton no run holds" "$(cat "$TMP/out")" \
		"unused /dev/shm/$k2 \\(a kept skeleton no run uses\\)"
	check_eq "... and leaves it" "$(kept)" "$k2"
	runner gc --db "$dir/h.db" --yes
	check_eq "gc --yes deletes it once no run holds it" "$RC:$(kept)" "0:"

	krun "$dir/t.yaml"
	k2=$(kept)
	check "the next run keeps a new one" test -n "$k2"
	mkdir "$newdir"
	krun "$dir/mk.yaml"
	check_eq "a directory the host's /usr gained since is the sandbox's own (the skeleton was rebuilt)" \
		"$RC:$(stdout "$dir/k.db" mk 0)" "0:made"
	check "the stale kept skeleton is deleted" eval "! kept | grep -qxF -- '$k2'"
	check "the host's new directory is unchanged" test ! -e "$newdir/inner"
	rmdir "$newdir"
	runner gc --db "$dir/k.db" --yes
}

suite root
skeleton_gc
if [ "$(id -u)" = 0 ]; then
	kept_skeleton
	shared_lower
	overlay_refused
	chmod 0755 "$TMP"
	suite nobody
else
	echo "skip - not root: the uid $NOBODY part is not run (this run was the non-root one)"
fi
summary
