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
