#!/usr/bin/env bash
# `arl-batch report`: the HTML report of a run with failures (one with markup in its stderr),
# a timeout, retries, metrics, labels and two pools, compared with an earlier run.
#
# The page is self-contained (nothing it could fetch, a CSP that forbids fetching), every
# number in its data-* attributes matches the database (and `diff` for the comparison),
# text from the database is escaped, and headless Chromium renders it: the page's script
# runs to its end, the console stays silent, and a screenshot is taken. A page with a
# script error and one loading an image check that the console check can fail.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools sqlite3 python3
make_tmp
steps_may_use # the steps read $TMP/phase
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)

cat >"$TMP/suite.yaml" <<EOF
version: 1
name: nightly
pools:
  cpu: {isolation: none, replicas: 4}
  gpu: {isolation: none, replicas: 2}
jobs:
  - name: "task-{{ item.id }}"
    pool: cpu
    foreach:
      items:
        - {id: "01", sec: 0.12, suite: unit, fail1: 0, fail2: 0, score: 0.91}
        - {id: "02", sec: 0.08, suite: unit, fail1: 0, fail2: 0, score: 0.88}
        - {id: "03", sec: 0.35, suite: unit, fail1: 1, fail2: 0, score: 0.42}
        - {id: "04", sec: 0.2, suite: unit, fail1: 0, fail2: 1, score: 0.77}
        - {id: "05", sec: 0.9, suite: integration, fail1: 1, fail2: 1, score: 0.31}
        - {id: "06", sec: 0.6, suite: integration, fail1: 0, fail2: 0, score: 0.83}
        - {id: "07", sec: 0.45, suite: integration, fail1: 0, fail2: 0, score: 0.5}
        - {id: "08", sec: 1.1, suite: e2e, fail1: 0, fail2: 1, score: 0.64}
    labels: {suite: "{{ item.suite }}", owner: "<team & co>"}
    steps:
      - name: work
        type: Command
        command: ["sh", "-c", "sleep {{ item.sec }}; f={{ item.fail1 }}; [ \$(cat $TMP/phase) = 2 ] && f={{ item.fail2 }}; if [ \$f = 1 ]; then echo 'assert x == 1' >&2; echo '<script>alert(1)</script> & <b>bold</b>' >&2; exit 7; fi; echo '{\"score\": {{ item.score }}, \"tokens\": {{ item.id }}00, \"verdict\": \"pass\"}'"]
        metrics: json
  - name: flaky
    pool: gpu
    retries: 2
    backoff: 100ms
    retryOn: [failed]
    labels: {suite: e2e}
    steps: [{name: fetch, type: Command, command: ["sh", "-c", "[ {{ attempt }} -ge 2 ] || { echo 'connection reset' >&2; exit 1; }"]}]
  - name: hangs
    pool: gpu
    timeout: 600ms
    retries: 1
    backoff: 100ms
    labels: {suite: e2e}
    steps: [{name: wait, type: Command, command: ["sleep", "5"]}]
EOF
echo 1 >"$TMP/phase"
runner run --progress none --db "$TMP/r.db" "$TMP/suite.yaml"
check_eq "run 1 exits 1" "$RC" 1
echo 2 >"$TMP/phase"
runner run --progress none --db "$TMP/r.db" "$TMP/suite.yaml"
check_eq "run 2 exits 1" "$RC" 1

echo "# the report"
runner report --db "$TMP/r.db" --run latest --compare 1 -o "$TMP/report.html"
check_eq "report exits 0" "$RC" 0
check_eq "... prints nothing" "$(cat "$TMP/out" "$TMP/err")" ""
check_eq "... and leaves no temporary file" "$(find "$TMP" -name 'report.html.tmp-*' | wc -l)" 0
HTML=$TMP/report.html
check_le "the page is small" "$(stat -c %s "$HTML")" 200000
check_eq "self-contained: no URL, no src/href, no @import or url()" \
	"$(grep -ciE 'https?:|src=|href=|@import|url\(' "$HTML" || true)" 0
check_match "a CSP forbids any fetch" "$(cat "$HTML")" "Content-Security-Policy\" content=\"default-src 'none'"
check_eq "stderr markup is escaped" "$(grep -c '&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold' "$HTML")" 3
check_eq "... and never raw" "$(grep -c '<script>alert\|<b>bold' "$HTML" || true)" 0
check_match "labels are escaped" "$(cat "$HTML")" 'owner=&lt;team &amp; co&gt;'

runner diff --db "$TMP/r.db" --format json 1 2
cp "$TMP/out" "$TMP/diff.json"

check_eq "the page's numbers match the database" "$(python3 - "$HTML" "$TMP/r.db" "$TMP/diff.json" <<'PY'
import json, math, sqlite3, sys
from html.parser import HTMLParser

html_path, db, diff_path = sys.argv[1:4]
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.body = {}; self.rows = []; self.sections = {}; self.metrics = {}; self.flips = {}
        self.p = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body": self.body = a
        if tag == "tr" and "data-group" in a: self.rows.append(a)
        if tag == "tr" and "data-class" in a and "data-key" in a: self.rows.append(dict(a, failed=1))
        if tag == "section" and "id" in a: self.sections[a["id"]] = a
        if tag == "div" and "data-metric" in a: self.metrics[a["data-metric"]] = a
        if tag == "p" and "data-p50" in a: self.p.append(a)
p = P(); p.feed(open(html_path, encoding="utf-8").read())
con = sqlite3.connect(db)
q = lambda sql, *a: con.execute(sql, a).fetchall()
bad = []
def want(what, got, exp):
    if str(got) != str(exp): bad.append("%s: got %r, want %r" % (what, got, exp))
run = int(p.body["data-run-id"])
want("run", run, q("SELECT max(id) FROM runs")[0][0])
for attr, state in [("succeeded", "Succeeded"), ("failed", "Failed"), ("skipped", "Skipped"), ("cancelled", "Cancelled")]:
    want(attr, p.body["data-" + attr], q("SELECT count(*) FROM jobs WHERE run_id = ? AND state = ?", run, state)[0][0])
for cls in ("failed", "timeout", "infra"):
    want("class " + cls, p.body["data-class-" + cls], q("SELECT count(*) FROM jobs WHERE run_id = ? AND error_class = ?", run, cls)[0][0])
want("total", p.body["data-jobs-total"], q("SELECT count(*) FROM jobs WHERE run_id = ?", run)[0][0])
d = json.load(open(diff_path))
want("pass rate = diff's", round(float(p.body["data-pass-rate"]), 6), round(d["runs"][1]["passRate"], 6))
agg = " count(*), sum(state = 'Succeeded'), sum(state = 'Failed' AND error_class IN ('failed','timeout'))"
groups = {("all", "all"): q("SELECT" + agg + " FROM jobs WHERE run_id = ?", run)[0]}
for r in q("SELECT pool," + agg + " FROM jobs WHERE run_id = ? GROUP BY pool", run):
    groups[("pool", r[0])] = r[1:]
for r in q("SELECT l.key || '=' || l.value," + agg + " FROM jobs, json_each(labels) l WHERE run_id = ? GROUP BY 1", run):
    groups[("label", r[0])] = r[1:]
shown = {(r["data-group"], r["data-name"]): (int(r["data-total"]), int(r["data-passed"]), int(r["data-failed"]))
         for r in p.rows if "data-group" in r}
want("pass-rate groups", sorted(shown), sorted(groups))
for k, v in groups.items():
    want("group %s" % (k,), shown.get(k), tuple(v))
failed = {r["data-key"]: (r["data-class"], r["data-exit"]) for r in p.rows if r.get("failed")}
want("failed table", failed, {k: (c, "" if x is None else str(x)) for k, c, x in
     q("SELECT key, error_class, exit_code FROM jobs WHERE run_id = ? AND state = 'Failed'", run)})
for name, cnt, mean in q("SELECT m.name, count(*), avg(m.value) FROM metrics m JOIN jobs j ON j.id = m.job_id"
                         " WHERE j.run_id = ? AND typeof(m.value) IN ('integer','real') GROUP BY 1", run):
    m = p.metrics.get(name, {})
    want("metric %s count" % name, m.get("data-count"), cnt)
    if not m or not math.isclose(float(m["data-mean"]), mean, rel_tol=1e-9):
        bad.append("metric %s mean: %r vs %r" % (name, m.get("data-mean"), mean))
want("text metric", p.metrics.get("verdict", {}).get("data-kind"), "text")
durs = sorted(r[0] for r in q("SELECT duration_ms FROM jobs WHERE run_id = ? AND attempts > 0", run))
want("durations counted", p.sections["durations"]["data-count"], len(durs))
want("median", p.p[0]["data-p50"], durs[math.ceil(0.5 * len(durs)) - 1])
want("max", p.p[0]["data-max"], durs[-1])
att = p.sections["attempts"]
want("attempts", att["data-attempts"], q("SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?", run)[0][0])
want("retried", att["data-retried"], q("SELECT count(*) FROM jobs WHERE run_id = ? AND attempts > 1", run)[0][0])
want("recovered", att["data-recovered"], q("SELECT count(*) FROM jobs WHERE run_id = ? AND attempts > 1 AND state = 'Succeeded'", run)[0][0])
want("exhausted", att["data-exhausted"], q("SELECT count(*) FROM jobs WHERE run_id = ? AND attempts > 1 AND state = 'Failed'", run)[0][0])
cmp = p.sections["compare"]
for flip, n in d["counts"].items():
    want("compare " + flip, cmp["data-" + flip], n)
print("ok" if not bad else "\n".join(bad))
PY
)" ok
check_match "the failed table shows the tail of stderr" "$(cat "$HTML")" \
	'<pre>assert x == 1'$'\n''&lt;script&gt;'
check_match "the comparison lists the broken jobs" "$(cat "$HTML")" \
	'data-flip="broken" data-count="2".*suite/task-04.*suite/task-08'

echo "# options and errors"
runner report --db "$TMP/r.db" -o - --run 1
check_match "-o - writes the page to stdout" "$(head -c 15 "$TMP/out")" '^<!DOCTYPE html>'
check_match "... of the run asked for" "$(cat "$TMP/out")" 'data-run-id="1"'
runner report --db "$TMP/r.db"
check_eq "no -o: usage error" "$RC" 2
runner report --db "$TMP/r.db" --run 99 -o "$TMP/x.html"
check_eq "no such run: exit 1" "$RC" 1
check_match "... saying so" "$(cat "$TMP/err")" "no run 99 in"
runner report --db "$TMP/none.db" -o "$TMP/x.html"
check_eq "no database: exit 3" "$RC" 3
check_eq "... and no file written" "$(ls "$TMP"/x.html* 2>/dev/null | wc -l)" 0
runner report --db "$TMP/r.db" -o "$TMP/no/such/dir/r.html"
check_eq "an unwritable path: exit 3" "$RC" 3

echo "# a crafted database: attempts beyond 32 bits"
cp "$TMP/r.db" "$TMP/crafted.db"
ENDED=$(sql "$TMP/crafted.db" "SELECT count(*) FROM jobs WHERE run_id = 1 AND attempts > 0
	AND state IN ('Succeeded', 'Failed', 'Cancelled')")
# 2^32 read as an int was 0 and 2^31 was INT_MIN: both indexed the chart's counts out of bounds
sql "$TMP/crafted.db" "UPDATE jobs SET attempts = 4294967296 WHERE run_id = 1 AND state = 'Succeeded';
	UPDATE jobs SET attempts = 2147483648 WHERE run_id = 1 AND state != 'Succeeded'"
runner report --db "$TMP/crafted.db" --run 1 -o "$TMP/crafted.html"
check_eq "report of a crafted database exits 0" "$RC" 0
check_match "... every ended job in the last bin, as retried" "$(cat "$TMP/crafted.html")" \
	"<section id=\"attempts\" data-attempts=\"[0-9]*\" data-retried=\"$ENDED\""

# --- headless Chromium ----------------------------------------------------------------------

if [ -z "$CHROMIUM" ]; then
	echo "SKIP: chromium is not installed (apt-get install chromium chromium-driver); the page was not rendered"
	summary
	exit $?
fi

# chrome LOG ARGS...: headless Chromium with a fresh profile, nothing fetched in the background.
chrome() {
	local log=$1
	shift
	rm -rf "$TMP/profile"
	timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--disable-default-apps --user-data-dir="$TMP/profile" --enable-logging=stderr --v=0 \
		"$@" 2>"$log"
}
console() {
	grep -E ':CONSOLE[(:]|Uncaught' "$1" || true
}

echo "# the console check can fail"
printf '<!DOCTYPE html><title>t</title><script>undefinedFunction();</script>\n' >"$TMP/broken.html"
chrome "$TMP/broken.log" --dump-dom "file://$TMP/broken.html" >/dev/null
check_match "a script error shows in Chromium's log" "$(console "$TMP/broken.log")" 'Uncaught ReferenceError'
sed 's|</main>|<img src="http://127.0.0.1:9/x.png"></main>|' "$HTML" >"$TMP/fetching.html"
chrome "$TMP/fetching.log" --dump-dom "file://$TMP/fetching.html" >/dev/null
check_match "the page's CSP refuses a fetch (and says so on the console)" \
	"$(console "$TMP/fetching.log")" 'Content Security Policy.*blocked'

echo "# the report in Chromium"
chrome "$TMP/dom.log" --dump-dom "file://$HTML" >"$TMP/dom.html"
check_match "the page's script ran to its end" "$(grep -o '<body[^>]*>' "$TMP/dom.html")" 'data-rendered="ok"'
check_eq "no console message at all (no error, no CSP violation)" "$(console "$TMP/dom.log")" ""
check_eq "exactly one script element: nothing from the database became one" \
	"$(grep -o '<script' "$TMP/dom.html" | wc -l)" 1
chrome "$TMP/shot.log" --hide-scrollbars --window-size=1280,2000 --screenshot="$TMP/report.png" "file://$HTML" >/dev/null
check_eq "the screenshot is a PNG" "$(head -c 8 "$TMP/report.png" | od -An -tx1 | tr -d ' \n')" 89504e470d0a1a0a
check_ge "... of a page with something on it" "$(stat -c %s "$TMP/report.png")" 30000
check_eq "no console message while taking it" "$(console "$TMP/shot.log")" ""
[ -z "${REPORT_SCREENSHOT:-}" ] || cp "$TMP/report.png" "$REPORT_SCREENSHOT"

summary
