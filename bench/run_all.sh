#!/usr/bin/env bash
# The whole benchmark suite: builds a release binary (build-release/, git-ignored) and runs
# local_throughput.sh, dataset_scale.sh, store_scale.sh, k8s_throughput.sh and
# gateway_throughput.sh, each comparison's sides alternating in the same invocation, then
# prints one table (medians; ratio = arl-batch / baseline, or / target where the baseline
# column is a target). Each script's own output goes to stderr as it runs. Not a test: figures
# only.
#
# Usage: bench/run_all.sh
# Env (sizes; defaults keep the whole suite near 5 minutes on 2 cores):
#   LOCAL_N=1000 LOCAL_ROUNDS=3  SCALE_SIZES="1000 10000 100000"  STORE_TOTAL=1000000
#   STORE_N1=10000  K8S_ROUNDS=2  K8S_LEVELS="1 16 64 256"
#   GW_ROUNDS=1  GW_LEVELS="16 64"  GW_STEPS="0 2" (bench/gateway_throughput.sh; 256 too: ~10 min)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
export ARL_BATCH # built once here for every script
BENCH_TSV=$(mktemp)
export BENCH_TSV
trap 'rm -f "$BENCH_TSV"' EXIT
start=$(date +%s)
"$src/bench/local_throughput.sh" "${LOCAL_N:-1000}" "${LOCAL_ROUNDS:-3}" >&2
"$src/bench/local_steps.sh" "${STEPS_J:-200}" "${LOCAL_ROUNDS:-3}" >&2
# shellcheck disable=SC2086
"$src/bench/dataset_scale.sh" ${SCALE_SIZES:-1000 10000 100000} >&2
"$src/bench/store_scale.sh" "${STORE_TOTAL:-1000000}" "${STORE_N1:-10000}" 5 >&2
# shellcheck disable=SC2086
"$src/bench/k8s_throughput.sh" "${K8S_ROUNDS:-2}" ${K8S_LEVELS:-1 16 64 256} >&2
# shellcheck disable=SC2086
GW_STEPS=${GW_STEPS:-0 2} "$src/bench/gateway_throughput.sh" "${GW_ROUNDS:-1}" ${GW_LEVELS:-16 64} >&2

echo
echo "arl-batch $("$ARL_BATCH" --version 2>/dev/null | head -n1 | sed 's/^arl-batch //'), $(nproc) CPUs," \
	"$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); suite took $(($(date +%s) - start)) s"
awk -F'\t' 'BEGIN { fmt = "| %-8s | %-58s | %-17s | %-17s | %-6s | %s\n"
	printf fmt, "section", "measure", "arl-batch", "baseline/target", "ratio", "note"
	printf fmt, "--------", "----------------------------------------------------------", "-----------------", "-----------------", "------", "----" }
	{ printf fmt, $1, $2, $3, $4, $5, $6 }' "$BENCH_TSV"
