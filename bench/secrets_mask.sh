#!/usr/bin/env bash
# What masking secrets costs (issue 16): 1 MiB of captured output (the default capture of one
# stream) through the masking every step's stdout and stderr go through when its file has
# `secrets:`, with 1 and 4 secrets, the value present 0 and 16 times; log-like text whose
# bytes often start a secret ('s'). Medians of 7 rounds of 20, in ms per MiB. A step's output
# is masked twice (after the step, and with the attempt's other texts).
# Usage: bench/secrets_mask.sh  (builds the release libraries first, like lib.sh;
# BENCH_BUILD=dir uses that build's libarl_core.a).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
build=${BENCH_BUILD:-$src/build-release}
cmake --build "$build" --target arl_core -j2 >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prog=$tmp/secrets_mask
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -std=c11 -D_GNU_SOURCE -O2 -iquote "$src/runner" "$src/bench/secrets_mask.c" \
	"$build/libarl_core.a" -o "$prog" $(pkg-config --libs yaml-0.1 libcjson sqlite3 libcurl) \
	-lcrypto -lpthread -lm
for nsec in 1 4; do
	for hits in 0 16; do
		m=$("$prog" "$nsec" "$hits" | median "%.2f")
		echo "secrets_mask: $nsec secret(s), $hits hits: $m ms per MiB"
		tsv secrets_mask "1 MiB, $nsec secrets, $hits hits" "masked" "$m ms" "" ""
	done
done
