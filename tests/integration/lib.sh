# shellcheck shell=bash disable=SC2034  # PASS/FAIL/RC/TMP are read by the sourcing script
# Shared helpers of the integration tests (sourced by test_*.sh, not a test itself).
#
# Environment: ARL_BATCH (the binary) and SOURCE_DIR (the repository root), both set by ctest;
# run by hand they default to /tmp/build-it/arl-batch and the repository holding this file.

: "${SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${ARL_BATCH:=/tmp/build-it/arl-batch}"
export SOURCE_DIR ARL_BATCH

PASS=0
FAIL=0

# Exits 77 (skip) unless bubblewrap can make a sandbox here.
# For peak-RSS checks (GNU time %M): under ASan freed blocks wait in a 256 MB quarantine and
# count as RSS (138-141 MB once the copy-on-write root came in); a small one keeps the peak
# the runner's own. Other builds ignore the variable.
ASAN_SMALL_QUARANTINE="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"

require_bwrap() {
	if ! command -v bwrap >/dev/null 2>&1 ||
		! bwrap --unshare-pid --ro-bind / / true >/dev/null 2>&1; then
		echo "SKIP: bwrap cannot run here"
		exit 77
	fi
}

require_tools() {
	local t
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			echo "FAIL: required tool '$t' is missing"
			exit 1
		fi
	done
	if [ ! -x "$ARL_BATCH" ]; then
		echo "FAIL: ARL_BATCH='$ARL_BATCH' is not an executable"
		exit 1
	fi
}

# A temp dir removed on exit; sets TMP. Extra cleanup commands go in CLEANUP (a function name).
make_tmp() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/arl-it.XXXXXX")
	# shellcheck disable=SC2154 # rc is assigned inside the trap
	trap 'rc=$?; if [ -n "${CLEANUP:-}" ]; then "$CLEANUP" || true; fi; rm -rf "$TMP"; exit $rc' EXIT
}

# steps_may_use [PATH...]: run as root, arl-batch runs isolation none steps as their own
# sandbox uid, not as us: let it reach $TMP and own each PATH (a missing one is made an empty
# file), as an ordinary user's steps could use the user's files.
steps_may_use() {
	local p uid=${ARL_SANDBOX_NONE_UID:-$((${ARL_SANDBOX_UID:-65530} + 1))}
	[ "$(id -u)" = 0 ] || return 0
	chmod o+x "$TMP"
	for p in "$@"; do
		[ -e "$p" ] || : >"$p"
		chown "$uid:${ARL_SANDBOX_NONE_GID:-$uid}" "$p"
	done
}

ok() {
	PASS=$((PASS + 1))
	echo "ok   - $1"
}

ko() {
	FAIL=$((FAIL + 1))
	echo "FAIL - $1"
	shift
	local l
	for l in "$@"; do
		echo "       $l"
	done
}

# check DESC COMMAND...: passes when COMMAND succeeds.
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else ko "$d" "command failed: $*"; fi
}

# check_eq DESC GOT WANT
check_eq() {
	if [ "$2" == "$3" ]; then
		ok "$1"
	else
		ko "$1" "got:  $(printf '%q' "$2")" "want: $(printf '%q' "$3")"
	fi
}

# check_match DESC GOT EXTENDED-REGEX
check_match() {
	if [[ "$2" =~ $3 ]]; then
		ok "$1"
	else
		ko "$1" "got:  $(printf '%q' "${2:0:400}")" "want: /$3/"
	fi
}

# check_le DESC A B (integers): A <= B
check_le() {
	if [ "$2" -le "$3" ] 2>/dev/null; then
		ok "$1 ($2 <= $3)"
	else
		ko "$1" "expected $2 <= $3"
	fi
}

# check_ge DESC A B (integers): A >= B
check_ge() {
	if [ "$2" -ge "$3" ] 2>/dev/null; then
		ok "$1 ($2 >= $3)"
	else
		ko "$1" "expected $2 >= $3"
	fi
}

# sql DB STATEMENT: prints rows, '|' separated, NULL as the empty string.
sql() {
	sqlite3 -batch -bail "$1" "$2"
}

# runner ARGS...: runs arl-batch and sets RC (never trips set -e); output in $TMP/out, $TMP/err.
runner() {
	set +e
	"$ARL_BATCH" "$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
	set -e
}

# long_jobs FILE POOL TIMEOUT SLEEP: writes six jobs long-1..long-6 on POOL (one `pools:`
# entry, e.g. 'gw: {backend: gateway, image: arl-test, replicas: 4}'), each with TIMEOUT, that
# echo "started" then run `sleep SLEEP` (the interrupt and gc tests' long-running batch).
long_jobs() {
	cat >"$1" <<EOF
version: 1
pools:
  $2
jobs:
  - name: "long-{{ item.i }}"
    foreach: {matrix: {i: [1, 2, 3, 4, 5, 6]}}
    timeout: $3
    steps:
      - {name: started, type: Command, command: [echo, started]}
      - {name: sleep, type: Command, command: [sleep, "$4"]}
EOF
}

# Milliseconds since the epoch.
now_ms() {
	date +%s%3N
}

# Does any process still carry MARKER on its command line?
procs_with() {
	pgrep -f -- "$1" || true
}

# kill_procs_with PATTERN: SIGKILLs every process whose command line matches PATTERN (a
# cleanup's way to end the steps a test marked).
kill_procs_with() {
	local p
	for p in $(procs_with "$1"); do kill -9 "$p" 2>/dev/null || true; done
}

# server_url VAR PID OUT: waits up to 30 s for the background server PID to print its URL as
# the first line of OUT; sets VAR to it (empty, and returns 1, when PID exited first or the 30 s
# passed: a bound for a hang, not a timing).
server_url() {
	local _url _
	for _ in $(seq 1 300); do
		_url=$(head -n1 "$3" 2>/dev/null || true)
		if [ -n "$_url" ]; then
			printf -v "$1" %s "$_url"
			return 0
		fi
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	printf -v "$1" %s ""
	return 1
}

# stop_server VAR: kills and reaps the background server whose PID VAR holds; empties VAR.
stop_server() {
	local pid=${!1:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf -v "$1" %s ""
}

# wait_exit SECS: waits up to SECS for the background runner RUNNER_PID to exit; sets RC
# (999: it did not, and was killed) and ELAPSED_MS.
wait_exit() {
	local secs=$1 t0 i
	t0=$(now_ms)
	for i in $(seq $((secs * 20))); do
		kill -0 "$RUNNER_PID" 2>/dev/null || break
		sleep 0.05
	done
	ELAPSED_MS=$(($(now_ms) - t0))
	if kill -0 "$RUNNER_PID" 2>/dev/null; then
		RC=999
		kill -9 "$RUNNER_PID" 2>/dev/null || true
		{ wait "$RUNNER_PID"; } 2>/dev/null || true
	else
		set +e
		{ wait "$RUNNER_PID"; } 2>/dev/null # no "Killed" job notice
		RC=$?
		set -e
	fi
	RUNNER_PID=
}

# leftover PATTERN: waits up to 30 s (a bound for a namespace's teardown on a busy disk, over
# as soon as nothing is left) for the processes whose command line matches PATTERN to be
# gone; prints the PIDs of those left (nothing when none is).
leftover() {
	local left
	for _ in $(seq 300); do
		left=$(procs_with "$1")
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "$left" | tr '\n' ' '
}

# wait_until SECS WHAT COMMAND...: polls COMMAND until it succeeds (returns 0). After SECS, a
# bound for a hung test and never a timing the test asserts, it records "timed out waiting for
# WHAT" as a failure and returns 1.
wait_until() {
	local secs=$1 what=$2 end
	shift 2
	end=$(($(now_ms) + secs * 1000))
	until "$@"; do
		if [ "$(now_ms)" -ge "$end" ]; then
			ko "timed out waiting for $what" "not so after $secs s: $*"
			return 1
		fi
		sleep 0.05
	done
}

# wait_pid SECS PID: waits for our background PID to exit (after SECS: killed, a failure);
# sets RC to its exit status.
wait_pid() {
	if wait_until "$1" "pid $2 to exit" eval "! kill -0 $2 2>/dev/null"; then
		set +e
		wait "$2"
		RC=$?
		set -e
	else
		kill -9 "$2" 2>/dev/null || true
		wait "$2" 2>/dev/null || true
		RC=999
	fi
}

summary() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# The uid the tests run the runner as when they want an ordinary user.
NOBODY=65534

# as WHO CMD... (WHO: root or nobody): runs CMD as root (ourselves) or as uid 65534; sets RC, stdout/stderr in $TMP.
as() {
	local who=$1
	shift
	set +e
	if [ "$who" = root ]; then
		"$@" >"$TMP/out" 2>"$TMP/err"
	else
		setpriv --reuid $NOBODY --regid $NOBODY --clear-groups env HOME=/ "$@" >"$TMP/out" 2>"$TMP/err"
	fi
	RC=$?
	set -e
}
