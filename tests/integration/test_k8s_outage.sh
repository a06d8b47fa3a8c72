#!/usr/bin/env bash
# The kubernetes backend when the API server goes away for 30 s in the middle of a run, and
# comes back refusing half of the creates for a while (the thundering herd after an outage).
# The outage and the refusals start and end at points of the run's progress that the fake
# server counts, never after a sleep, so the test means the same on a busy machine. The run must wait it out and finish: attempts cut off by the outage end as infra
# and are retried (never recorded as the job's failure or timeout), nothing is left on the
# server, the client backs off instead of storming the server while it is down, and the
# window of creates in flight shrinks while creates are refused and grows back afterwards.
# Then a run whose --deadline passes during an outage ends on time (exit 4), leaving only
# objects that carry its owner labels (what `arl-batch gc` looks for).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --pool sandbox=8 --seed 11

# until_ok SECONDS COMMAND...: retries COMMAND every 0.2 s; fails after SECONDS.
until_ok() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.2
	done
}
server_up() { fake_get /_fake/state >/dev/null; }
# finish PID SECONDS: waits for the run; a run still going after SECONDS is a hang: it is
# killed and RC is 124. Sets RC and ELAPSED (ms since START).
finish() {
	local end=$(($(now_ms) + $2 * 1000))
	while kill -0 "$1" 2>/dev/null && [ "$(now_ms)" -lt "$end" ]; do
		sleep 0.1
	done
	ELAPSED=$(($(now_ms) - START))
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
		RC=124
		return
	fi
	set +e
	wait "$1"
	RC=$?
	set -e
}

write_many "$TMP/jobs.yaml" 48 sandbox 8 1
# Steps of ~0.3 s; an attempt's 12 s run out during the outage (so some are cut off by it).
sed -i -e 's/timeout: 60s, retries: 3, backoff: 100ms/timeout: 12s, retries: 4, backoff: 200ms/' \
	-e 's/command: \[echo, "{{ item.i }}"\]/command: [sh, -c, "sleep 0.3; echo {{ item.i }}"]/' \
	"$TMP/jobs.yaml"
grep -q 'timeout: 12s' "$TMP/jobs.yaml" && grep -q 'sleep 0.3' "$TMP/jobs.yaml"
DB=$TMP/outage.db

# down_window: the last outage as "SINCE_MS UNTIL_MS" (epoch ms, from the server).
down_window() {
	fake_get /_fake/state | python3 -c '
import json, sys
d = json.load(sys.stdin)["down"]
print(int(d["since"] * 1000), int(d["until"] * 1000))'
}
# jobs_before DB MS: jobs of the run that had ended by epoch ms MS.
jobs_before() {
	sql "$1" "SELECT count(*) FROM jobs WHERE state IN ('Succeeded', 'Failed')
	          AND (julianday(finished_at) - 2440587.5) * 86400000.0 <= $2"
}

echo "# 48 jobs at -j 8; after a few finished, the server is down for 30 s"
# The outage begins at the run's 25th create, not after some time, so that it falls in the
# middle of the run on a machine of any speed: 8 Sandboxes are in use at once, each for one
# job and its one Task, so 4 jobs at least have ended by then and 36 at least have not
# started. It brings 503 for half the creates, ending after 12 refusals; the 72 or more
# creates left are enough for the window to grow back from 1 to 8 (28 successes).
fake_post "/_fake/down?seconds=30&after=24" "503=0.5:verbs=create:max=12"
START=$(now_ms)
ARL_K8S_STATS=1 "$ARL_BATCH" run --progress none -j 8 --db "$DB" --kubeconfig "$KC" \
	"$TMP/jobs.yaml" >"$TMP/out" 2>"$TMP/err" &
pid=$!
finish "$pid" 120
fake_post /_fake/faults ""
read -r down_ms up_ms <<<"$(down_window)"
before=$(jobs_before "$DB" "$down_ms")
echo "       $before jobs done before the outage; the run took $ELAPSED ms" \
	"(outage at +$((down_ms - START)) ms, back at +$((up_ms - START)) ms)"
check_eq "the run finished (no hang)" "$([ "$RC" != 124 ] && echo yes)" yes
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
check_ge "the outage began after a few jobs had ended" "$before" 1
check_ge "... and before the run's last job ended" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE (julianday(finished_at) - 2440587.5) * 86400000.0 > $up_ms")" 1
ended=$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'
                   OR (state = 'Failed' AND error_class = 'infra')")
check_eq "every job Succeeded, or ended as infra once its attempts ran out" "$ended" 48
infra_jobs=$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Failed'")
check_eq "exit code per docs/cli.md (0, or 3 for jobs ended as infra)" "$RC" \
	"$([ "$infra_jobs" = 0 ] && echo 0 || echo 3)"
not_infra="FROM attempts WHERE state != 'Succeeded' AND error_class != 'infra'"
check_eq "no attempt failed or timed out: the outage is infra" \
	"$(sql "$DB" "SELECT count(*) $not_infra")" 0
sql "$DB" "SELECT job_id, number, sandbox, error_class, error, started_at, duration_ms, prepare_ms $not_infra" |
	sed 's/^/       /'
check_ge "attempts cut off by the outage were retried as infra" \
	"$(sql "$DB" "SELECT count(*) FROM attempts WHERE error_class = 'infra'")" 1
check_eq "every job that succeeded printed its own number" \
	"$(sql "$DB" "SELECT count(*) FROM jobs j JOIN attempts a ON a.job_id = j.id
	              JOIN steps s ON s.attempt_id = a.id WHERE j.state = 'Succeeded'
	              AND s.state = 'Succeeded' AND s.stdout = substr(j.name, 5) || char(10)")" \
	"$(sql "$DB" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")"
check_eq "no Task or Sandbox left on the server" "$(fake_count tasks)|$(fake_count sandboxes)" "0|0"

# The request log: every request the server reset while down is logged with fault "down".
fake_get /_fake/requests >"$TMP/requests.log"
read -r down_total down_peak down_creates down_deletes down_watches storm_creates <<<"$(
	python3 - "$TMP/requests.log" "$up_ms" <<'EOF'
import collections, json, sys
log = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
up = int(sys.argv[2]) / 1000.0
down = [e for e in log if e.get("fault") == "down"]
per_s = collections.Counter(int(e["time"]) for e in down)
creates = sum(1 for e in down if e["method"] == "POST")
deletes = sum(1 for e in down if e["method"] == "DELETE")
watches = sum(1 for e in down if e["watch"])
storm = sum(1 for e in log if e["method"] == "POST" and up - 1 <= e["time"] <= up + 4)
print(len(down), max(per_s.values() or [0]), creates, deletes, watches, storm)
EOF
)"
echo "       while down: $down_total requests ($down_creates creates, $down_deletes deletes," \
	"$down_watches watch reconnects), at most $down_peak in one second;" \
	"$storm_creates creates in the 4 s after"
# Nothing storms. At most 10 request loops run at once (8 workers, 2 watches); each backs off
# from 100-200 ms to 2.5-5 s (doubling, jittered), about 17 tries in 30 s, and a worker that
# moves on to its next request (a delete after a failed create) starts again at 100 ms, about
# 5 quick tries more: 10 x 17 + 8 x 5 = 210 at most. In the first second, 10 loops x 3 tries.
# Retrying without backoff would make thousands (a refused connection costs ~1 ms).
check_le "requests while the server was down stay within what backoff allows" "$down_total" 210
check_le "no burst while down (requests in any one second)" "$down_peak" 40
check_ge "the server was asked while down (the outage was felt)" "$down_total" 1
err=$(cat "$TMP/err")
check_match "the creation window shrank while creates were refused" "$err" \
	"server refusing, creation window 8 -> 4"
check_match "... and grew back to 8 once they were not" \
	"$(sed -n '/creation window 8 -> 4/,$p' "$TMP/err")" "grew back from [0-9]+ to 8"
grep 'creation window' "$TMP/err" | sed 's/^/       /'

echo "# --deadline 10s passes while the server is down"
write_many "$TMP/slow.yaml" 16 sandbox 4 1
sed -i 's/command: \[echo, "{{ item.i }}"\]/command: [sh, -c, "sleep 0.5; echo {{ item.i }}"]/' \
	"$TMP/slow.yaml"
# Down at the 5th Task create: 4 jobs had their Tasks, one of them ended (4 Sandboxes at once)
# and the 5th job's Sandbox exists (it comes before its Task), which the run cannot delete
# while the server is away; 11 jobs at least cannot end before the deadline.
fake_post "/_fake/down?seconds=30&after=4&resource=tasks" ""
START=$(now_ms)
"$ARL_BATCH" run --progress none -j 4 --deadline 10s --db "$TMP/deadline.db" \
	--kubeconfig "$KC" "$TMP/slow.yaml" >"$TMP/out" 2>"$TMP/err" &
pid=$!
finish "$pid" 60
end_ms=$(now_ms)
read -r down_ms up_ms <<<"$(down_window)"
echo "       the run took $ELAPSED ms (outage at +$((down_ms - START)) ms, back at +$((up_ms - START)) ms)"
check_eq "run exits 4 (halted by --deadline)" "$RC" 4
[ "$RC" = 4 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
check_ge "a job finished before the outage" "$(jobs_before "$TMP/deadline.db" "$down_ms")" 1
# Its cleanup has a bound of its own (5 s once cancelled), far inside the 30 s outage.
check_le "it ended while the server was still down: the cleanup did not wait for it (ms)" \
	"$((end_ms - START))" "$((up_ms - START))"
check_eq "jobs Succeeded or Cancelled, none Failed" \
	"$(sql "$TMP/deadline.db" "SELECT count(*) FROM jobs WHERE state NOT IN ('Succeeded', 'Cancelled')")" 0
check_ge "the ones the deadline caught are Cancelled" \
	"$(sql "$TMP/deadline.db" "SELECT count(*) FROM jobs WHERE state = 'Cancelled'")" 1
check "the server comes back" until_ok 45 server_up
# What the run could not delete while the server was away carries its owner's labels, so
# `arl-batch gc` (or the next run's sweep) finds it; each object is listed.
left=$(fake_get /_fake/state | python3 -c '
import json, sys
d = json.load(sys.stdin)
pid, host = sys.argv[1], None
bad = 0
for kind in ("sandboxes", "tasks"):
    for o in d["objects"][kind]:
        l = o.get("labels", {})
        if l.get("arl.infra.io/owner-pid") != pid or not l.get("arl.infra.io/owner-host") \
           or l.get("app.kubernetes.io/managed-by") != "arl-batch":
            bad += 1
print(sum(len(d["objects"][k]) for k in ("sandboxes", "tasks")), bad)' "$pid")
echo "       objects left after the cancelled run: ${left% *}"
check_ge "the run left what it could not delete (the 5th job's Sandbox at least)" "${left% *}" 1
check_eq "anything left carries the dead run's owner labels" "${left#* }" 0
check_match "... and the run said what it left" "$(cat "$TMP/err")" \
	"cannot delete .* labelled for \`arl-batch gc\`"

summary
