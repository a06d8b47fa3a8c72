#!/usr/bin/env bash
# First use of an image (issue 15: unpacking within 1.2x of `tar -x` of the same layers), side
# by side in one run, for one big layer as plain tar, tar+gzip and tar+zstd:
#   tar -x     GNU tar extracting the layer file (tar -xzf, tar --zstd -xf) into an empty dir
#   unpack     `arl-batch image inspect NAME` of an image already loaded (`image load`), its
#              layer not yet unpacked: read, both sha256 digests checked, unpacked
#   load+unpack  `arl-batch image inspect oci:DIR` into an empty store: the blob copied into the
#              store and verified, then unpacked (a pool naming an archive the first time)
# The layer is a tar of BENCH_IMAGE_PATHS (default /usr/include /usr/lib/python3.11
# /usr/share/doc: ~320 MB, ~20k files, like a Python image's big layer). RUNS runs each
# (default 3), medians printed. Needs python3, gzip, zstd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

runs=${RUNS:-3}
read -r -a paths <<<"${BENCH_IMAGE_PATHS:-/usr/include /usr/lib/python3.11 /usr/share/doc}"
w=$(mktemp -d "${TMPDIR:-/var/tmp}/arl-bench-image.XXXXXX")
trap 'rm -rf "$w"' EXIT
rel=()
for p in "${paths[@]}"; do rel+=("${p#/}"); done
tar -C / -cf "$w/layer.tar" "${rel[@]}"
gzip -6 -c "$w/layer.tar" >"$w/layer.gz"
zstd -q -3 -c "$w/layer.tar" >"$w/layer.zst"

# An OCI layout holding the one layer as it is: $1 the layer file, $2 the layout dir.
python3 - "$w" <<'PY'
import hashlib, json, os, sys
w = sys.argv[1]
diff = "sha256:" + hashlib.sha256(open(os.path.join(w, "layer.tar"), "rb").read()).hexdigest()
for comp, mt in (("tar", ""), ("gz", "+gzip"), ("zst", "+zstd")):
    d = os.path.join(w, "oci-" + comp)
    os.makedirs(os.path.join(d, "blobs", "sha256"))
    def put(b):
        h = hashlib.sha256(b).hexdigest()
        open(os.path.join(d, "blobs", "sha256", h), "wb").write(b)
        return "sha256:" + h, len(b)
    layer = open(os.path.join(w, "layer." + comp), "rb").read()
    ld, ls = put(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    cd, cs = put(cfg)
    man = json.dumps({"schemaVersion": 2, "config": {"digest": cd, "size": cs,
                      "mediaType": "application/vnd.oci.image.config.v1+json"},
                      "layers": [{"digest": ld, "size": ls,
                                  "mediaType": "application/vnd.oci.image.layer.v1.tar" + mt}]}).encode()
    md, ms = put(man)
    idx = {"schemaVersion": 2, "manifests": [{"digest": md, "size": ms,
           "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "annotations": {"io.containerd.image.name": "bench/" + comp + ":1"}}]}
    open(os.path.join(d, "index.json"), "w").write(json.dumps(idx))
    open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY

# The wall seconds of "$@" (output discarded), after a sync: the previous side's dirty pages and
# deletions are written back first, not billed to this one. ext4 makes files slower to create
# right after many were deleted (recently_deleted() in perf): both sides delete the same trees.
# Prints "WALL CPU" (CPU: user + sys): on a busy machine the CPU column is the steadier one.
secs() {
	local TIMEFORMAT='%R %U %S' w u s
	sync
	read -r w u s < <({ time "$@" >/dev/null 2>&1; } 2>&1)
	echo "$w $(echo "$u + $s" | bc)"
}

printf 'layer: %s MB uncompressed, %s files; gzip %s MB, zstd %s MB; %s runs, medians\n' \
	"$(($(stat -c %s "$w/layer.tar") / 1000000))" "$(tar -tf "$w/layer.tar" | wc -l)" \
	"$(($(stat -c %s "$w/layer.gz") / 1000000))" "$(($(stat -c %s "$w/layer.zst") / 1000000))" \
	"$runs"
printf '%-5s %10s %10s %8s %13s   %10s %10s %8s\n' layer "tar -x s" "unpack s" ratio \
	"load+unpack s" "tar cpu s" "unp cpu s" "cpu ratio"
for comp in tar gz zst; do
	case $comp in
	tar) topt=(-xf) ;;
	gz) topt=(-xzf) ;;
	zst) topt=(--zstd -xf) ;;
	esac
	export ARL_BATCH_IMAGES=$w/store-$comp
	"$ARL_BATCH" image load "$w/oci-$comp" >/dev/null
	ta=() ua=() la=()
	for i in $(seq "$runs"); do
		# Alternating which side goes first, each into a tree the other side did not just delete.
		rm -rf "$w/x" "$ARL_BATCH_IMAGES"/layers/*/* && mkdir "$w/x"
		if [ $((i % 2)) = 1 ]; then
			ta+=("$(secs tar -C "$w/x" "${topt[@]}" "$w/layer.$comp")")
			ua+=("$(secs "$ARL_BATCH" image inspect "bench/$comp:1")")
		else
			ua+=("$(secs "$ARL_BATCH" image inspect "bench/$comp:1")")
			ta+=("$(secs tar -C "$w/x" "${topt[@]}" "$w/layer.$comp")")
		fi
		rm -rf "$w/fresh"
		la+=("$(ARL_BATCH_IMAGES=$w/fresh secs "$ARL_BATCH" image inspect "oci:$w/oci-$comp")")
	done
	t=$(printf '%s\n' "${ta[@]}" | cut -d' ' -f1 | median)
	u=$(printf '%s\n' "${ua[@]}" | cut -d' ' -f1 | median)
	l=$(printf '%s\n' "${la[@]}" | cut -d' ' -f1 | median)
	tc=$(printf '%s\n' "${ta[@]}" | cut -d' ' -f2 | median)
	uc=$(printf '%s\n' "${ua[@]}" | cut -d' ' -f2 | median)
	printf '%-5s %10.2f %10.2f %8.2f %13.2f   %10.2f %10.2f %8.2f\n' "$comp" "$t" "$u" \
		"$(echo "$u / $t" | bc -l)" "$l" "$tc" "$uc" "$(echo "$uc / $tc" | bc -l)"
	tsv image "first use of a $comp layer: unpack vs tar -x" "$u s" "$t s" \
		"$(printf '%.2f' "$(echo "$u / $t" | bc -l)")" "target <= 1.2"
	rm -rf "$ARL_BATCH_IMAGES" "$w/fresh"
done
