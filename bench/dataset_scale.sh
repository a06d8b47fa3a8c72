#!/usr/bin/env bash
# Memory and time at dataset scale: a JSONL dataset of N records expanded by `foreach` into one
# job per record (one `true` step, isolation: none), for each N given. Reports the peak RSS and
# wall time (GNU time -v) of `validate`, `run --dry-run` and a real `run -j 2` (every result
# committed to SQLite), then the same for the exports, and the growth per job between the
# smallest and the largest N. Not a test: it prints a table.
#
# Usage: bench/dataset_scale.sh [N...]        (default: 10000 100000)
# Env:   ARL_BATCH=path/to/arl-batch to skip the release build; BENCH_BUILD=dir for it;
#        KEEP=1 keeps the temporary directory; BENCH_TSV=file appends machine-readable rows
#        for bench/run_all.sh.
# Needs: GNU time at /usr/bin/time (Debian package `time`), python3, sqlite3.
set -euo pipefail
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install time" >&2; exit 1; }
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT

# measure LABEL N CMD...: runs CMD (stdout discarded) under GNU time; records wall s and RSS KiB.
declare -A wall rss rc
declare -a dbsize okjobs
measure() {
	local label=$1 n=$2 code=0
	shift 2
	/usr/bin/time -v -o "$tmp/time.txt" "$@" >/dev/null 2>"$tmp/stderr.txt" || code=$?
	rc[$label,$n]=$code
	rss[$label,$n]=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")
	# "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.34"
	wall[$label,$n]=$(awk -F': ' '/Elapsed \(wall clock\)/ {
		n = split($2, p, ":"); s = 0
		for (i = 1; i <= n; i++) s = s * 60 + p[i]
		printf "%.2f", s }' "$tmp/time.txt")
}

phases=(validate dry-run run results-csv results-junit)
for n in "${sizes[@]}"; do
	d=$tmp/n$n
	mkdir -p "$d"
	# SWE-bench-like records: an id, a repository, a ~200-byte patch and a test command.
	python3 - "$n" >"$d/instances.jsonl" <<'EOF'
import json, sys
patch = "--- a/src/m.py\n+++ b/src/m.py\n@@ -1,3 +1,3 @@\n-def f(x):\n-    return x\n+def f(x):\n+    return x + 1\n" * 2
for i in range(int(sys.argv[1])):
    print(json.dumps({"instance_id": "org__repo-%06d" % i, "repo": "org/repo",
                      "patch": patch, "test_cmd": "pytest -x tests/test_m.py"}))
EOF
	cat >"$d/scale.yaml" <<'EOF'
version: 1
pools:
  p: {isolation: none, replicas: 2}
jobs:
  - name: "swe-{{ item.instance_id }}"
    foreach: {file: instances.jsonl}
    labels: {repo: "{{ item.repo }}"}
    steps:
      - {name: test, type: Command, command: ["true"]}
EOF
	measure validate "$n" "$ARL_BATCH" validate "$d/scale.yaml"
	measure dry-run "$n" "$ARL_BATCH" run --dry-run "$d/scale.yaml"
	measure run "$n" "$ARL_BATCH" run --progress none -j 2 --db "$d/r.db" "$d/scale.yaml"
	ok=$(sqlite3 "$d/r.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")
	dbsize[$n]=$(stat -c %s "$d/r.db")
	okjobs[$n]=$ok
	measure results-csv "$n" "$ARL_BATCH" results --db "$d/r.db" --format csv
	measure results-junit "$n" "$ARL_BATCH" results --db "$d/r.db" --format junit
done

printf '\narl-batch %s, %s CPUs; one job per record, one `true` step, isolation none, -j 2\n' \
	"$("$ARL_BATCH" --version 2>/dev/null | head -n 1 | sed "s/^arl-batch //" || echo "?")" "$(nproc)"
printf '%-14s %9s %10s %12s %5s\n' phase records "wall (s)" "peak RSS MiB" exit
for n in "${sizes[@]}"; do
	for p in "${phases[@]}"; do
		printf '%-14s %9d %10s %12.1f %5s\n' "$p" "$n" "${wall[$p,$n]}" \
			"$(echo "${rss[$p,$n]} / 1024" | bc -l)" "${rc[$p,$n]}"
	done
	printf '%-14s %9d   %s jobs Succeeded, database %.1f MiB, %.3f ms per job\n' "(run)" "$n" \
		"${okjobs[$n]}" "$(echo "${dbsize[$n]} / 1048576" | bc -l)" \
		"$(echo "${wall[run,$n]} * 1000 / $n" | bc -l)"
done
for n in "${sizes[@]}"; do
	for p in validate dry-run run; do
		tsv scale "$p, $n jobs: peak RSS MiB / wall s" \
			"$(echo "${rss[$p,$n]} / 1024" | bc -l | xargs printf '%.1f') / ${wall[$p,$n]}" "" "" \
			"$([ "$n" -ge 100000 ] && echo "target RSS < 100 MiB" || true)"
	done
done
if [ ${#sizes[@]} -ge 2 ]; then
	lo=${sizes[0]}
	hi=${sizes[${#sizes[@]} - 1]}
	printf '\ngrowth per job between %d and %d records (peak RSS difference / job difference):\n' "$lo" "$hi"
	for p in "${phases[@]}"; do
		tsv scale "$p: RSS growth per job, $lo..$hi (bytes)" \
			"$(echo "(${rss[$p,$hi]} - ${rss[$p,$lo]}) * 1024 / ($hi - $lo)" | bc -l | xargs printf '%.0f')" "" "" \
			"dataset itself: $(( $(stat -c %s "$tmp/n$hi/instances.jsonl") / hi )) bytes/record; target < 1 KB beyond"
		printf '  %-14s %8.0f bytes/job   wall %+.2f s\n' "$p" \
			"$(echo "(${rss[$p,$hi]} - ${rss[$p,$lo]}) * 1024 / ($hi - $lo)" | bc -l)" \
			"$(echo "${wall[$p,$hi]} - ${wall[$p,$lo]}" | bc -l)"
	done
fi
