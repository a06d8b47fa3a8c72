#!/usr/bin/env bash
# Size and render time of `arl-batch report` for a run of N jobs (default 100 000).
#
# The run is real: N one-step jobs (isolation: none, -j 2) through the real scheduler and
# store, about 2 minutes for 100 000. 5% of them fail with a few lines of stderr, 2% fail
# their first attempt and succeed on the retry, every job reports metrics (score, tokens and
# a text verdict) and carries a low-cardinality label (suite) and a unique one (instance).
# Set REPORT_DB=path to measure an existing database instead (its latest run), and
# REPORT_SAVE_DB=path to keep the one made here.
#
# Measures: report generation (median of 3), the file's size (and gzipped), and headless
# Chromium: wall time to load the page and dump its DOM, against the same for an empty page
# (browser start-up), the page's own script-end time (performance.now(), from data-script-ms),
# and a 1280x2000 screenshot.
#
# Usage: bench/report_scale.sh [N]   (builds a release binary first; needs chromium, sqlite3)
set -euo pipefail
n=${1:-100000}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v chromium >/dev/null || { echo "chromium is not installed"; exit 1; }

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | awk '{printf "%.3f", $1}'; }

db=${REPORT_DB:-}
if [ -z "$db" ]; then
	db=$tmp/scale.db
	awk -v n="$n" 'BEGIN {
		srand(42);
		suites[0] = "unit"; suites[1] = "integration"; suites[2] = "e2e"; suites[3] = "bench";
		for (i = 1; i <= n; i++) {
			r = rand();
			kind = r < 0.05 ? "fail" : r < 0.07 ? "flaky" : "ok";
			printf "{\"i\": %d, \"suite\": \"%s\", \"kind\": \"%s\", \"score\": %.3f, \"tokens\": %d}\n",
			       i, suites[int(rand() * 4)], kind, rand(), 100 + int(rand() * rand() * 20000);
		}
	}' >"$tmp/items.jsonl"
	cat >"$tmp/scale.yaml" <<'YAML'
version: 1
name: scale
pools:
  p: {replicas: 2, isolation: none}
jobs:
  - name: "t-{{ item.i }}"
    foreach: {file: items.jsonl}
    labels: {suite: "{{ item.suite }}", instance: "i-{{ item.i }}"}
    retries: 1
    backoff: 100ms
    retryOn: [failed]
    steps:
      - type: Command
        metrics: json
        command: ["sh", "-c", "case {{ item.kind }} in fail) echo 'Traceback (most recent call last):' >&2; echo '  File \"test_{{ item.i }}.py\", line 12' >&2; echo 'AssertionError: expected 1, got 0' >&2; exit 1;; flaky) [ {{ attempt }} -gt 1 ] || { echo 'connection reset' >&2; exit 1; };; esac; echo '{\"score\": {{ item.score }}, \"tokens\": {{ item.tokens }}, \"verdict\": \"{{ item.kind }}\"}'"]
YAML
	s=$(now)
	(cd "$tmp" && "$bin" run --db "$db" --progress none -j 2 scale.yaml 2>/dev/null) || true
	echo "run of $n jobs: $(since "$s") s"
	# REPORT_SAVE_DB=path keeps the database for later measurements (REPORT_DB=path).
	[ -z "${REPORT_SAVE_DB:-}" ] || sqlite3 "$db" ".backup '$REPORT_SAVE_DB'"
fi
echo "jobs in the latest run: $(sqlite3 "$db" 'SELECT count(*) FROM jobs WHERE run_id = (SELECT max(id) FROM runs)')," \
	"attempts: $(sqlite3 "$db" 'SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.run_id = (SELECT max(id) FROM runs)')," \
	"database: $(du -h "$db" | cut -f1)"

gen=""
for _ in 1 2 3; do
	s=$(now)
	"$bin" report --db "$db" -o "$tmp/report.html"
	gen+="$(since "$s") "
done
echo "report generation: median $(echo "$gen" | tr ' ' '\n' | grep . | median %.3f) s (runs: $gen)"
echo "report size: $(stat -c %s "$tmp/report.html") bytes, $(gzip -c "$tmp/report.html" | wc -c) gzipped"

chrome() {
	rm -rf "$tmp/profile"
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$tmp/profile" "$@" 2>/dev/null
}
echo '<!DOCTYPE html><title>empty</title><p>empty' >"$tmp/empty.html"
base="" load="" shot="" script=""
for _ in 1 2 3; do
	s=$(now); chrome --dump-dom "file://$tmp/empty.html" >/dev/null; base+="$(since "$s") "
	s=$(now); chrome --dump-dom "file://$tmp/report.html" >"$tmp/dom.html"; load+="$(since "$s") "
	script+="$(grep -o 'data-script-ms="[0-9]*"' "$tmp/dom.html" | grep -o '[0-9]*') "
	s=$(now); chrome --hide-scrollbars --window-size=1280,2000 --screenshot="$tmp/shot.png" "file://$tmp/report.html" >/dev/null; shot+="$(since "$s") "
done
grep -q 'data-rendered="ok"' "$tmp/dom.html" && echo "page script ran: yes" || echo "page script ran: NO"
b=$(echo "$base" | tr ' ' '\n' | grep . | median %.3f)
l=$(echo "$load" | tr ' ' '\n' | grep . | median %.3f)
echo "chromium: empty page $b s, report $l s (load and dump the DOM; difference $(echo "$l - $b" | bc | awk '{printf "%.3f", $1}') s)"
echo "chromium: page script done at median $(echo "$script" | tr ' ' '\n' | grep . | median | cut -d. -f1) ms after navigation start (runs: $script)"
echo "chromium: screenshot 1280x2000 median $(echo "$shot" | tr ' ' '\n' | grep . | median) s"
