#!/usr/bin/env bash
# shellcheck disable=SC2154 # the per-side figures are set with declare "name=..."
# Sandboxes from a cached image (issue 15): N one-step jobs at -j 2 on a pool whose sandboxes run
# from the busybox test image (tests/images/build_busybox.py, loaded into a store of its own and
# unpacked by a first run), beside the same jobs on a pool over the host's root, sides alternating.
# Targets: the image pool's wall time <= 1.2x the host-root pool's; a sandbox's median
# preparation (attempts.prepare_ms: directory, container, agent's mounts) within 10 ms of the
# host root's; on disk, one unpacked copy per layer whatever the pools, replicas and runs.
# Usage: bench/image_sandbox.sh [N] [ROUNDS]  (builds a release binary first; ARL_BATCH=path
# measures that one instead). Env: BENCH_TSV=file appends rows for bench/run_all.sh.
set -euo pipefail
n=${1:-1000}
rounds=${2:-3}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bin=$ARL_BATCH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp" # as root the sandbox uid reaches the layers by path
export ARL_BATCH_IMAGES=$tmp/store
python3 "$src/tests/images/build_busybox.py" "$tmp/img" >/dev/null
"$bin" image load "$tmp/img/docker.tar" >/dev/null
# Two pools of 2 replicas, half the jobs each: the disk figure counts what they share.
seq 1 $((n / 2)) | sed 's/.*/{"i": &}/' >"$tmp/items.jsonl"
for side in host image; do
	pool="{replicas: 2}"
	[ "$side" = host ] || pool="{replicas: 2, image: \"arl-test/busybox:1\"}"
	cat >"$tmp/$side.yaml" <<YAML
version: 1
pools:
  p: $pool
  q: $pool
jobs:
  - name: "p-{{ item.i }}"
    pool: p
    foreach: {file: items.jsonl}
    steps: [{type: Command, command: ["true"]}]
  - name: "q-{{ item.i }}"
    pool: q
    foreach: {file: items.jsonl}
    steps: [{type: Command, command: ["true"]}]
YAML
done

side_host() { (cd "$tmp" && "$bin" run --db "$tmp/host-$r.db" --progress none -j 2 host.yaml 2>/dev/null); }
side_image() { (cd "$tmp" && "$bin" run --db "$tmp/image-$r.db" --progress none -j 2 image.yaml 2>/dev/null); }

# A first run unpacks the layers: the figures are for a cached image, as the issue asks.
(cd "$tmp" && "$bin" run --db "$tmp/warm.db" --progress none --limit 2 image.yaml >/dev/null 2>&1)
declare -A t c
for r in $(seq 1 "$rounds"); do
	time_side host
	time_side image
done
prep() { sqlite3 "$1" "SELECT prepare_ms FROM attempts" | median '%.1f'; }
ok_host=$(sqlite3 "$tmp/host-1.db" "SELECT count(*) FROM jobs WHERE state='Succeeded'")
ok_image=$(sqlite3 "$tmp/image-1.db" "SELECT count(*) FROM jobs WHERE state='Succeeded'")
printf '%d one-step jobs, -j 2, median of %d rounds (seconds); succeeded: host %s, image %s\n' \
	"$n" "$rounds" "$ok_host" "$ok_image"
printf '%-40s %8s %8s %12s\n' "side" "wall" "cpu" "prepare ms"
for k in host image; do
	m=$(echo "${t[$k]}" | tr ' ' '\n' | grep . | median)
	mc=$(echo "${c[$k]}" | tr ' ' '\n' | grep . | median)
	p=$(for r in $(seq 1 "$rounds"); do prep "$tmp/$k-$r.db"; done | median '%.1f')
	declare "m_$k=$m" "c_$k=$mc" "p_$k=$p"
	case $k in
	host) label="pool over the host's root" ;;
	image) label="pool from the busybox image (cached)" ;;
	esac
	printf '%-40s %8.3f %8.3f %12s\n' "$label" "$m" "$mc" "$p"
done
# Disk: every run above (3 x rounds + 1, 2 replicas each) used the image's 2 layers.
layers=$(find "$tmp/store/layers" -mindepth 2 -maxdepth 2 -type d ! -name '.*' | wc -l)
layer_kb=$(du -sk "$tmp/store/layers" | cut -f1)
r() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
d=$(echo "$p_image - $p_host" | bc -l | xargs printf '%.1f')
printf 'ratio image/host: wall %s, cpu %s; prepare +%s ms; unpacked layers on disk: %s (%s KiB) for %d runs\n' \
	"$(r "$m_image" "$m_host")" "$(r "$c_image" "$c_host")" "$d" "$layers" "$layer_kb" $((2 * rounds + 1))
tsv image "N=$n one-step jobs from a cached image: wall s (vs host root)" "$(printf %.3f "$m_image")" "$(printf %.3f "$m_host")" "$(r "$m_image" "$m_host")" "target <= 1.2"
tsv image "sandbox preparation, median ms (vs host root)" "$p_image" "$p_host" "+$d ms" "target: within 10 ms"
tsv image "unpacked layers on disk after $((2 * rounds + 1)) runs x 2 pools x 2 replicas" "$layers" "2" "" "one copy per layer"
