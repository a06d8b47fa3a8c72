# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run). Sets src, the repository, and ARL_BATCH, the
# binary to measure: the one ARL_BATCH names, else a release build made in
# ${BENCH_BUILD:-$src/build-release}.
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARL_BATCH=${ARL_BATCH:-}
if [ -z "$ARL_BATCH" ]; then
	build=${BENCH_BUILD:-$src/build-release}
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" --target arl-batch arl-batch-agent -j2 >/dev/null
	ARL_BATCH=$build/arl-batch
fi
ARL_BATCH=$(cd "$(dirname "$ARL_BATCH")" && pwd)/$(basename "$ARL_BATCH")

# The median of the numbers on stdin, one per line; $1 a printf format for it (default: awk's).
median() {
	sort -n | awk -v f="${1:-}" '{a[NR]=$1} END {
		m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
		if (f == "") print m; else printf f "\n", m }'
}

# One row for bench/run_all.sh's table, when it asks for them (BENCH_TSV=file).
tsv() { [ -z "${BENCH_TSV:-}" ] || printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_TSV"; }

# Where time_side counts a side's CPU: a cgroup of its own, so every process the side starts is
# counted, including those in PID namespaces that end without being reaped through the side
# (bash's `time` sees only children reaped through it). cgroup v1's cpuacct, else v2's
# cpu.stat; none when we may not make one (not root): then `time`'s user + sys.
bench_cg_root=
if [ "$(id -u)" = 0 ]; then
	for d in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/unified /sys/fs/cgroup; do
		if [ -e "$d/cpuacct.usage" ] || [ -e "$d/cpu.stat" ]; then
			bench_cg_root=$d
			break
		fi
	done
fi
# The CPU seconds cgroup $1 has used.
bench_cg_cpu() {
	case $1 in
	*/cpuacct/*) echo "$(cat "$1/cpuacct.usage") / 1000000000" | bc -l ;;
	*) echo "$(awk '$1 == "usage_usec" {print $2}' "$1/cpu.stat") / 1000000" | bc -l ;;
	esac
}

# `time_side SIDE` runs side_SIDE once and appends its wall time to t[SIDE] and its CPU time (user
# + sys of what it started, see bench_cg_root) to c[SIDE]: the caller declares `declare -A t c`.
time_side() {
	local w u s cg='' TIMEFORMAT='%R %U %S'
	if [ -n "$bench_cg_root" ]; then
		cg=$bench_cg_root/arl-bench-$$
		mkdir "$cg" 2>/dev/null || cg=
	fi
	# The process substitution's shell joins the cgroup, then times the side.
	read -r w u s < <({
		[ -z "$cg" ] || echo "$BASHPID" >"$cg/cgroup.procs"
		time "side_$1" >/dev/null 2>&1
	} 2>&1)
	t[$1]+="$w "
	if [ -n "$cg" ]; then
		c[$1]+="$(bench_cg_cpu "$cg") "
		for _ in $(seq 50); do
			if rmdir "$cg" 2>/dev/null; then break; fi
			sleep 0.1
		done
	else
		c[$1]+="$(echo "$u + $s" | bc) "
	fi
}

# The bare sandbox the local benchmarks compare with: bwrap over the host's /usr and /etc with
# $1 as /workspace, as the runner's sandboxes were before containers.
bare_bwrap_argv() {
	echo "--die-with-parent --unshare-pid --unshare-net --ro-bind /usr /usr --ro-bind /etc /etc" \
		"--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc" \
		"--dev /dev --tmpfs /tmp --bind $1 /workspace --chdir /workspace"
}
