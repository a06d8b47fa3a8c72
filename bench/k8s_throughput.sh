#!/usr/bin/env bash
# shellcheck disable=SC2154 # m_* and the per-side figures are set with declare "name=..."
# The Kubernetes backend against the fake ARL API server (tests/fake_arl/server.py) with zero
# simulated latency (--pod-delay 0 --sandbox-delay 0 --task-delay 0, --no-bwrap: a Task's
# `true` runs directly on the host, so the server's cost is the API and the operator loop).
# For each IN_FLIGHT level C: a server with one WarmPool of C replicas (and C task workers),
# N jobs of one `true` step; arl-batch at -j C against the seed SDK's way (bench/sdk_client.py:
# create the Sandbox, GET it every 1 s until Ready, create the Task, GET it every 0.5 s until
# done, delete both), alternating, ROUNDS times. Reports jobs/s, requests per job (the
# server's request log, watches included), and CPU seconds of the server (utime+stime+
# children from /proc/PID/stat) beside the client's (arl-batch: GNU time; SDK: its own).
#
# Usage: bench/k8s_throughput.sh [ROUNDS] [C...]     (default 3, levels 1 16 64 256)
# Env:   ARL_BATCH=path to skip the release build; BENCH_TSV=file for bench/run_all.sh;
#        K8S_JOBS_MIN (8) and K8S_JOBS_PER (2): N = max(K8S_JOBS_MIN, K8S_JOBS_PER * C);
#        K8S_QPS=Q runs arl-batch with --kube-qps Q --kube-burst Q (default: its own, scaled to the pool).
set -euo pipefail
rounds=${1:-3}
shift || true
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 16 64 256)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
python3 -c 'import yaml' 2>/dev/null || { echo "k8s: python3 has no PyYAML (the fake server needs it); skipped"; exit 0; }
tmp=$(mktemp -d)
fake_pid=
cleanup() { [ -z "$fake_pid" ] || { kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null; }; rm -rf "$tmp"; }
trap cleanup EXIT
crd=()
[ -d "$src/../shared/arl-crds" ] && crd=(--crd-dir "$src/../shared/arl-crds")
tck=$(getconf CLK_TCK)
# CPU seconds of PID and its waited-for children so far.
cpu_of() { awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13 + $14 + $15) / t }' "/proc/$1/stat"; }
ctl() { python3 -c 'import sys, urllib.request
r = urllib.request.Request(sys.argv[2], method=sys.argv[1])
sys.stdout.buffer.write(urllib.request.urlopen(r, timeout=30).read())' "$1" "$url$2"; }

printf '%-8s %6s  %-10s %8s %8s %9s %9s %8s\n' in-flight jobs side "jobs/s" "req/job" "srv CPU s" "cli CPU s" "wall s"
for c in "${levels[@]}"; do
	n=$(( ${K8S_JOBS_PER:-2} * c ))
	[ "$n" -ge "${K8S_JOBS_MIN:-8}" ] || n=${K8S_JOBS_MIN:-8}
	: >"$tmp/fake.out"
	timeout 1800 python3 "$src/tests/fake_arl/server.py" --listen 127.0.0.1:0 --kubeconfig "$tmp/kc" \
		"${crd[@]}" --pool "p=$c" --pod-delay 0 --sandbox-delay 0 --task-delay 0 --no-bwrap \
		--task-workers "$c" >"$tmp/fake.out" 2>"$tmp/fake.err" &
	fake_pid=$!
	for _ in $(seq 1 300); do [ -s "$tmp/fake.out" ] && break; sleep 0.1; done
	srv_pid=$(cat "/proc/$fake_pid/task/$fake_pid/children" | awk '{print $1}') # python under timeout(1)
	url=$(head -n1 "$tmp/fake.out")
	"$bin" pool wait p --timeout 120s --kubeconfig "$tmp/kc" >/dev/null
	seq 1 "$n" | sed 's/.*/{"i": &}/' >"$tmp/items.jsonl"
	cat >"$tmp/k.yaml" <<YAML
version: 1
pools:
  p: {backend: kubernetes, replicas: $c}
jobs:
  - name: "k-{{ item.i }}"
    foreach: {file: items.jsonl}
    steps:
      - {type: Command, command: ["true"]}
YAML
	declare -A w=() rq=() sc=() cc=()
	for r in $(seq 1 "$rounds"); do
		for side in arl sdk; do
			ctl DELETE /_fake/requests >/dev/null
			s0=$(cpu_of "$srv_pid")
			t0=$(date +%s.%N)
			if [ $side = arl ]; then
				(cd "$tmp" && /usr/bin/time -f '%U %S' -o "$tmp/time" "$bin" run --db "$tmp/k-$c-$r.db" \
					--progress none -j "$c" --kubeconfig "$tmp/kc" ${K8S_QPS:+--kube-qps "$K8S_QPS" --kube-burst "$K8S_QPS"} k.yaml >/dev/null 2>"$tmp/run.err") ||
					{ echo "arl-batch run failed at C=$c:"; tail -n 5 "$tmp/run.err"; }
				ccpu=$(awk '{printf "%.3f", $1 + $2}' "$tmp/time")
			else
				python3 "$src/bench/sdk_client.py" --kubeconfig "$tmp/kc" --pool p --jobs "$n" \
					--in-flight "$c" >"$tmp/sdk.json"
				ccpu=$(python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["cpu_s"])' "$tmp/sdk.json")
			fi
			wall=$(echo "$(date +%s.%N) - $t0" | bc)
			s1=$(cpu_of "$srv_pid")
			nreq=$(ctl GET /_fake/requests | grep -c .)
			w[$side]+="$wall " rq[$side]+="$nreq " sc[$side]+="$(echo "$s1 - $s0" | bc) " cc[$side]+="$ccpu "
		done
	done
	ok=$(sqlite3 "$tmp/k-$c-1.db" "SELECT count(*) FROM jobs WHERE state = 'Succeeded'")
	for side in arl sdk; do
		mw=$(echo "${w[$side]}" | tr ' ' '\n' | grep . | median %.4f)
		mr=$(echo "${rq[$side]}" | tr ' ' '\n' | grep . | median %.4f)
		ms=$(echo "${sc[$side]}" | tr ' ' '\n' | grep . | median %.4f)
		mc=$(echo "${cc[$side]}" | tr ' ' '\n' | grep . | median %.4f)
		declare "jps_$side=$(echo "$n / $mw" | bc -l)" "rpj_$side=$(echo "$mr / $n" | bc -l)"
		declare "srv_$side=$ms" "cli_$side=$mc"
		printf '%-8s %6d  %-10s %8.1f %8.2f %9.2f %9.2f %8.2f\n' "$c" "$n" \
			"$([ $side = arl ] && echo arl-batch || echo sdk-poll)" "$(echo "$n / $mw" | bc -l)" \
			"$(echo "$mr / $n" | bc -l)" "$ms" "$mc" "$mw"
	done
	echo "         (arl-batch: $ok of $n jobs Succeeded in round 1)"
	f2() { printf '%.2f' "$1"; }
	qn=${K8S_QPS:+, --kube-qps $K8S_QPS}
	tsv k8s "C=$c, N=$n$qn: jobs/s (arl-batch vs sdk-poll)" "$(printf '%.1f' "$jps_arl")" "$(printf '%.1f' "$jps_sdk")" \
		"$(echo "$jps_arl / $jps_sdk" | bc -l | xargs printf '%.2f')" "$ok/$n ok"
	tsv k8s "C=$c: requests/job" "$(f2 "$rpj_arl")" "$(f2 "$rpj_sdk")" \
		"$(echo "$rpj_arl / $rpj_sdk" | bc -l | xargs printf '%.2f')" "target <= 5 (1 step, 1 attempt)"
	tsv k8s "C=$c: CPU s server / client (arl-batch)" "$srv_arl / $cli_arl" "$srv_sdk / $cli_sdk" "" "baseline column: sdk-poll"
	kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null || true
	fake_pid=
done
