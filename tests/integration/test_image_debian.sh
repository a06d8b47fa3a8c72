#!/usr/bin/env bash
# A real Debian root filesystem as a local pool's image (issue 15; slow): mmdebstrap builds
# Debian 12 (minbase, python3) from Debian's archive, cached under the build directory between
# runs (build/test-cache/); the test wraps it as a one-layer docker-archive, loads it and runs
# `python3 -c ...` in a sandbox from it: the image's Python and /etc, a marker file only the
# image has, pip's site-packages writable (copy-on-write) with the cached layer unchanged.
# Skipped (77) without mmdebstrap or when the archive cannot be reached.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools python3 sqlite3
command -v mmdebstrap >/dev/null || { echo "SKIP: mmdebstrap is not installed"; exit 77; }
make_tmp
chmod 0755 "$TMP" # as root the sandbox uid reaches the layers by path

cache=$(cd "$(dirname "$ARL_BATCH")" && pwd)/test-cache
rootfs=$cache/debian12-python3.tar
mkdir -p "$cache"
# Only a regular file counts (mmdebstrap picks its output format from the name).
[ -f "$rootfs" ] || rm -rf "$rootfs"
if [ ! -s "$rootfs" ]; then
	echo "# mmdebstrap: Debian 12 minbase with python3 into $rootfs (cached for later runs)"
	if ! mmdebstrap --quiet --format=tar --variant=minbase --include=python3-minimal bookworm \
		"$cache/partial.tar" >"$TMP/mm.log" 2>&1; then
		tail -n 5 "$TMP/mm.log"
		rm -rf "$cache/partial.tar"
		echo "SKIP: mmdebstrap could not build the root filesystem (no Debian archive?)"
		exit 77
	fi
	mv "$cache/partial.tar" "$rootfs"
fi

# One layer (the root filesystem without its device nodes, plus a marker), its config, a manifest: a docker-archive.
python3 - "$rootfs" "$TMP/debian.tar" <<'PY'
import hashlib, io, json, sys, tarfile
src, dst = sys.argv[1:]
layer = io.BytesIO()
with tarfile.open(src) as t, tarfile.open(fileobj=layer, mode="w") as out:
    for m in t.getmembers():
        if m.ischr() or m.isblk():
            continue  # mmdebstrap's /dev nodes: an image has none (the sandbox makes /dev)
        out.addfile(m, t.extractfile(m) if m.isfile() else None)
    data = b"from-the-image\n"
    ti = tarfile.TarInfo("etc/arl-image-marker")
    ti.size = len(data)
    out.addfile(ti, io.BytesIO(data))
layer = layer.getvalue()
diff = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                        "LANG=C.UTF-8"], "WorkingDir": "/root"},
                     "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
cname = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": cname, "RepoTags": ["arl-test/debian-python:12"],
                        "Layers": ["layer/layer.tar"]}]).encode()
with tarfile.open(dst, "w") as out:
    for name, data in ((cname, config), ("layer/layer.tar", layer), ("manifest.json", manifest)):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        out.addfile(ti, io.BytesIO(data))
PY
export ARL_BATCH_IMAGES=$TMP/store
runner image load "$TMP/debian.tar"
check_eq "the Debian image loads" "$RC" 0
check_eq "load says its tag" "$(cat "$TMP/out")" "Loaded image: arl-test/debian-python:12"

cat >"$TMP/py.yaml" <<'EOF2'
version: 1
pools:
  debian: {image: "arl-test/debian-python:12", replicas: 1}
jobs:
  - name: python
    timeout: 60s
    steps:
      - type: Command
        command: ["python3", "-c", "import os, sys, sysconfig; print(sys.version_info[:2] >= (3, 11)); print(open('/etc/arl-image-marker').read().strip()); print(os.getcwd()); print(os.getuid())"]
      - type: Command
        command: ["sh", "-c", "d=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'); mkdir -p $d && echo 'VALUE = 42' > $d/arlmod.py && python3 -c 'import arlmod; print(arlmod.VALUE)'"]
EOF2
runner run --progress none --db "$TMP/py.db" "$TMP/py.yaml"
check_eq "python3 from the Debian image: the run succeeds" "$RC" 0
[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
out() {
	sql "$TMP/py.db" "SELECT s.stdout FROM steps s WHERE s.phase = 'main' ORDER BY s.idx LIMIT 1 OFFSET $1"
}
check_eq "the image's python3, /etc, WorkingDir and (no User) root" "$(out 0)" "True
from-the-image
/root
0"
check_eq "a module installed into the image's site-packages imports" "$(out 1)" "42"
check_eq "the cached layer has no such module" \
	"$(find "$TMP/store/layers" -name arlmod.py | wc -l)" 0
summary
