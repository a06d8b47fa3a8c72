#!/usr/bin/env bash
# shellcheck disable=SC2154 # the per-side figures are set with declare "name=..."
# The gateway backend against the test gateway (tests/fake_gateway/server.py) beside a client
# that does what the ARL SDK does (bench/gateway_sdk_client.py: create the session, execute
# with a uuid operationID, on 202 poll the operation every 2.0 s, delete; one thread per
# session). For each IN_FLIGHT level C and each STEP (a command of known length), N one-step
# jobs: arl-batch at -j C (a gateway pool of C replicas) and the SDK-like client with C
# threads, alternating, ROUNDS times, against one test gateway per level (its image pool
# unbounded; each session starts a bwrap container). Reports jobs/s; requests per job as the
# gateway counted them (every request it answered, 429s included) against the issue's target
# (4 per job plus 1 per second of step time) and how many were 429s (see GW_RATE); and the
# per-step latency (median, p95 in ms) from the gateway's log: from the execute to the answer
# that carried the result (see counted).
#
# Usage: bench/gateway_throughput.sh [ROUNDS] [C...]     (default 1, levels 16 64 256)
# Env:   ARL_BATCH=path to skip the release build; BENCH_TSV=file for bench/run_all.sh;
#        GW_JOBS_MIN (16) and GW_JOBS_PER (2): N = max(GW_JOBS_MIN, GW_JOBS_PER * C);
#        GW_STEPS: the steps' seconds, each run as `true` (0) or `sleep S` (default "0 0.5 2");
#        GW_RATE="RPS BURST": the gateway's per-IP rate limit (default its binary's 2048 4096;
#        the Helm chart's is "100 200").
set -euo pipefail
rounds=${1:-1}
shift || true
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(16 64 256)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
read -r -a steps <<<"${GW_STEPS:-0 0.5 2}"
read -r -a rate <<<"${GW_RATE:-}"
key=bench-key
tmp=$(mktemp -d)
gw_pid=
cleanup() { [ -z "$gw_pid" ] || { kill "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null; }; rm -rf "$tmp"; }
trap cleanup EXIT
ctl() { python3 -c 'import sys, urllib.request
r = urllib.request.Request(sys.argv[2], method=sys.argv[1],
                           headers={"Authorization": "Bearer " + sys.argv[3]})
sys.stdout.buffer.write(urllib.request.urlopen(r, timeout=30).read())' "$1" "$url$2" "$key"; }
# counted FILE: "REQUESTS 429S" from the gateway's log once it stops growing (a request is
# logged just after its answer left, so the last few may still be on their way when a side
# has ended); FILE gets each step's latency in ms, from the start of its execute request to the
# end of the last request about its operation (the execute itself on a 200, else the poll
# that saw it done): what either client waited for the result, measured the same way.
counted() {
	local a b=-1
	while :; do
		ctl GET /_fake/requests >"$tmp/log.json"
		a=$(python3 - "$tmp/log.json" "$1" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
ops = {}
for r in log:
    op = r.get("operation")
    if r["endpoint"] not in ("execute", "operation") or not op or r["status"] not in (200, 202):
        continue
    end, start = r["time"], r["time"] - r["duration_ms"] / 1000.0
    s0, e0 = ops.get(op, (start, end))
    ops[op] = (min(s0, start) if r["endpoint"] == "execute" else s0, max(e0, end))
with open(sys.argv[2], "w") as f:
    f.write("".join("%.1f\n" % ((e - s) * 1000) for s, e in ops.values()))
print(len(log), sum(1 for r in log if r["status"] == 429))
PY
		)
		[ "$a" != "$b" ] || break
		b=$a
		sleep 0.3
	done
	echo "$a"
}
# stats: "median p95" of the numbers on stdin (nearest rank).
stats() { sort -n | awk '{a[NR]=$1} END { if (!NR) { print "- -"; exit }
	m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; i = int(0.95*NR + 0.999); printf "%.0f %.0f\n", m, a[i] }'; }

printf '%-8s %-9s %5s  %-9s %7s %7s %6s %6s %8s %8s %7s\n' in-flight step jobs side "jobs/s" \
	"req/job" target "429s" "p50 ms" "p95 ms" "wall s"
for c in "${levels[@]}"; do
	n=$(( ${GW_JOBS_PER:-2} * c ))
	[ "$n" -ge "${GW_JOBS_MIN:-16}" ] || n=${GW_JOBS_MIN:-16}
	: >"$tmp/gw.out"
	timeout 3600 python3 "$src/tests/fake_gateway/server.py" --port 0 --api-key "$key:user" \
		${rate:+--rps "${rate[0]}" --burst "${rate[1]}"} >"$tmp/gw.out" 2>"$tmp/gw.err" &
	gw_pid=$!
	for _ in $(seq 1 300); do [ -s "$tmp/gw.out" ] && break; sleep 0.1; done
	url=$(head -n1 "$tmp/gw.out")
	[ -n "$url" ] || { echo "the test gateway did not start:"; cat "$tmp/gw.err"; exit 1; }
	seq 1 "$n" | sed 's/.*/{"i": &}/' >"$tmp/items.jsonl"
	for s in "${steps[@]}"; do
		if [ "$s" = 0 ]; then cmd=(true); else cmd=(sleep "$s"); fi
		label=${cmd[*]}
		cat >"$tmp/g.yaml" <<YAML
version: 1
pools:
  p: {backend: gateway, image: bench, replicas: $c}
jobs:
  - name: "g-{{ item.i }}"
    foreach: {file: items.jsonl}
    steps:
      - {type: Command, command: $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${cmd[@]}")}
YAML
		declare -A w=() rq=() lat=() th=()
		for r in $(seq 1 "$rounds"); do
			for side in arl sdk; do
				ctl DELETE /_fake/requests >/dev/null
				t0=$(date +%s.%N)
				if [ $side = arl ]; then
					db=$tmp/g-$c-$s-$r.db
					(cd "$tmp" && ARL_GATEWAY_URL=$url ARL_API_KEY=$key "$bin" run --db "$db" \
						--progress none -j "$c" g.yaml >/dev/null 2>"$tmp/run.err") ||
						{ echo "arl-batch run failed at C=$c, $label:"; tail -n 5 "$tmp/run.err"; }
				else
					python3 "$src/bench/gateway_sdk_client.py" --url "$url" --api-key "$key" \
						--image bench --jobs "$n" --in-flight "$c" --command "${cmd[@]}" >"$tmp/sdk.json"
				fi
				wall=$(echo "$(date +%s.%N) - $t0" | bc)
				read -r nreq n429 <<<"$(counted "$tmp/lat")"
				lat[$side]+="$(tr '\n' ' ' <"$tmp/lat")"
				w[$side]+="$wall " rq[$side]+="$nreq " th[$side]+="$n429 "
			done
		done
		ok_arl=$(sqlite3 "$tmp/g-$c-$s-1.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")
		ok_sdk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$tmp/sdk.json")
		target=$(echo "4 + $s" | bc -l)
		for side in arl sdk; do
			mw=$(echo "${w[$side]}" | tr ' ' '\n' | grep . | median %.4f)
			mr=$(echo "${rq[$side]}" | tr ' ' '\n' | grep . | median %.4f)
			read -r p50 p95 <<<"$(echo "${lat[$side]}" | tr ' ' '\n' | grep . | stats)"
			declare "jps_$side=$(echo "$n / $mw" | bc -l)" "rpj_$side=$(echo "$mr / $n" | bc -l)"
			declare "p50_$side=$p50" "p95_$side=$p95"
			mt=$(echo "${th[$side]}" | tr ' ' '\n' | grep . | median %.0f)
			printf '%-8s %-9s %5d  %-9s %7.1f %7.2f %6.1f %6s %8s %8s %7.2f\n' "$c" "$label" "$n" \
				"$([ $side = arl ] && echo arl-batch || echo sdk-poll)" "$(echo "$n / $mw" | bc -l)" \
				"$(echo "$mr / $n" | bc -l)" "$target" "$mt" "$p50" "$p95" "$mw"
		done
		echo "         (round 1: arl-batch $ok_arl of $n jobs Succeeded; last round: sdk-poll $ok_sdk)"
		tsv gateway "C=$c, N=$n, $label: jobs/s (arl-batch vs sdk-poll)" "$(printf '%.1f' "$jps_arl")" \
			"$(printf '%.1f' "$jps_sdk")" "$(echo "$jps_arl / $jps_sdk" | bc -l | xargs printf '%.2f')" "$ok_arl/$n ok"
		tsv gateway "C=$c, $label: requests/job" "$(printf '%.2f' "$rpj_arl")" "$(printf '%.2f' "$target")" \
			"$(echo "$rpj_arl / $target" | bc -l | xargs printf '%.2f')" "target 4 + step s; sdk-poll $(printf '%.2f' "$rpj_sdk")"
		tsv gateway "C=$c, $label: step ms p50 / p95" "$p50_arl / $p95_arl" "$p50_sdk / $p95_sdk" "" "baseline: sdk-poll"
	done
	kill "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null || true
	gw_pid=
done
