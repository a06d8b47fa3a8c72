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

# `time_side SIDE` runs side_SIDE once and appends its wall time to t[SIDE] and its CPU time (user
# + sys, children included) to c[SIDE]: the caller declares `declare -A t c`.
time_side() {
	local w u s TIMEFORMAT='%R %U %S'
	read -r w u s < <({ time "side_$1" >/dev/null 2>&1; } 2>&1)
	t[$1]+="$w "
	c[$1]+="$(echo "$u + $s" | bc) "
}

# The bare sandbox the local benchmarks compare with: bwrap over the host's /usr and /etc with
# $1 as /workspace, as the runner's sandboxes were before containers.
bare_bwrap_argv() {
	echo "--die-with-parent --unshare-pid --unshare-net --ro-bind /usr /usr --ro-bind /etc /etc" \
		"--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc" \
		"--dev /dev --tmpfs /tmp --bind $1 /workspace --chdir /workspace"
}
