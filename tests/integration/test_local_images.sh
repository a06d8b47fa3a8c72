#!/usr/bin/env bash
# Images as local sandboxes' root (issue 15), through arl-batch, on the busybox test image
# (tests/images/build_busybox.py), as root and (when we are root) as uid 65534:
#   A. A pool's image: a step sees the image's files (layer 2's over layer 1's: a whiteout,
#      an opaque dir), none of the host's; its Env (under the job's env), WorkingDir (a
#      step's workDir wins) and User (uid 1000 'app', owning the image's files); writes over
#      the image's /etc and /bin stay in the sandbox: the cached layers are unchanged.
#   B. A job's own image, templated from its item (a store name) or written (a docker-archive:
#      path), on a pool without one: replicas still bound the pool (1: attempts never overlap).
#      A path rendered from an item is refused (a record must not pick host files to load).
#   C. A missing image: validate and run exit 2 naming it and saying how to load it; nothing
#      runs. A job-level image on a kubernetes pool is refused at validation.
#   D. --resume trusts a success only with the same image: the spec hash has the image id.
#   E. As root, a store the sandbox uid cannot pass through is one error before the run.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_bwrap
require_tools sqlite3 python3
[ -x /bin/busybox ] || { echo "SKIP: busybox-static is not installed"; exit 77; }
make_tmp
# As root the sandbox uid binds the layers by path: the store must be where it may pass.
chmod 0755 "$TMP"
python3 "$SOURCE_DIR/tests/images/build_busybox.py" "$TMP/img" >/dev/null
. "$TMP/img/image.env"
chmod -R a+rX "$TMP/img"


# stdout DB JOB [N]: the recorded stdout of the job's main step N (from 0).
stdout() {
	sql "$1" "SELECT s.stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id
	   JOIN jobs j ON j.id = a.job_id WHERE j.name = '$2' AND s.phase = 'main'
	   ORDER BY s.idx LIMIT 1 OFFSET ${3:-0}"
}

suite() {
	local who=$1 dir=$TMP/$1 db before
	db=$dir/img.db
	mkdir -p "$dir"
	[ "$who" = root ] || chown -R $NOBODY:$NOBODY "$dir"
	export ARL_BATCH_IMAGES=$dir/store
	as "$who" "$ARL_BATCH" image load "$TMP/img/docker.tar"
	check_eq "[$who] the image loads" "$RC" 0

	# A
	cat >"$dir/pool.yaml" <<EOF
version: 1
pools:
  bb: {image: "$TAG", replicas: 2}
jobs:
  - name: look
    env: {JOB_VAR: from-job}
    steps:
      - {type: Command, command: ["sh", "-c", "id -u; id -g; pwd; echo \$IMAGE_VAR \$JOB_VAR \$PATH; cat /etc/os-release; ls /data /opt/app; cat /home/app/hello.txt; test -e /usr/bin/python3 -o -e /etc/debian_version || echo no-host; ls -ln /bin/busybox | (read m l u g r; echo \$u)"]}
      - {type: Command, command: ["sh", "-c", "echo changed > /etc/os-release && touch /bin/new-file && cat /etc/os-release && ls /bin/new-file"]}
      - {type: Command, workDir: /tmp, env: {IMAGE_VAR: from-step}, command: ["sh", "-c", "pwd; echo \$IMAGE_VAR"]}
EOF
	as "$who" "$ARL_BATCH" run --progress none --db "$db" "$dir/pool.yaml"
	check_eq "[$who] a pool's image: the run succeeds" "$RC" 0
	[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
	check_eq "[$who] the image's files, Env under the job's, WorkingDir and User" \
		"$(stdout "$db" look 0)" "1000
1000
/home/app
from-image from-job /usr/local/bin:/usr/bin:/bin
ID=arl-test
LAYER=layer2
/data:
keep.txt

/opt/app:
c.txt
hello from the image
no-host
1000"
	check_eq "[$who] writes over the image's /etc and /bin work inside" "$(stdout "$db" look 1)" \
		"changed
/bin/new-file"
	check_eq "[$who] a step's workDir and env win over the image's" "$(stdout "$db" look 2)" "/tmp
from-step"
	check_eq "[$who] the cached layers are unchanged" \
		"$(grep -rhI '^LAYER=' "$dir/store" | sort | tr '\n' ' '; find "$dir/store" -name new-file | wc -l)" \
		"LAYER=layer1 LAYER=layer2 0"

	# B
	cat >"$dir/per-job.yaml" <<EOF
version: 1
pools:
  host: {replicas: 1}
jobs:
  - name: "each-{{ item.n }}"
    image: "{{ item.ref }}"
    foreach:
      items:
        - {n: 1, ref: "$TAG"}
        - {n: 3, ref: "$TAG"}
    steps:
      - {type: Command, command: ["sh", "-c", "cat /etc/os-release | tail -n 1; id -un"]}
  - name: each-2
    image: "docker-archive:$TMP/img/docker.tar"
    steps:
      - {type: Command, command: ["sh", "-c", "cat /etc/os-release | tail -n 1; id -un"]}
  - name: plain
    steps:
      - {type: Command, command: ["sh", "-c", "test -e /etc/debian_version && echo host-root"]}
EOF
	as "$who" "$ARL_BATCH" run --progress none --db "$dir/per.db" "$dir/per-job.yaml"
	check_eq "[$who] per-job images: the run succeeds" "$RC" 0
	[ "$RC" = 0 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
	check_eq "[$who] each job runs in its own image" \
		"$(for n in 1 2 3; do echo "$(stdout "$dir/per.db" each-$n)"; done)" "LAYER=layer2
app
LAYER=layer2
app
LAYER=layer2
app"
	check_eq "[$who] a job without one runs on the host's root" "$(stdout "$dir/per.db" plain)" "host-root"
	sed '0,/ref: "[^"]*"}/s||ref: "oci-archive:/etc/shadow"}|' "$dir/per-job.yaml" >"$dir/per-path.yaml"
	as "$who" "$ARL_BATCH" validate "$dir/per-path.yaml"
	check_eq "[$who] a path rendered from an item: validate exits 2" "$RC" 2
	check_match "[$who] it says an item may only name a store image" "$(cat "$TMP/err")" \
		"per-path.yaml:6:12: error: 'image' rendered to 'oci-archive:/etc/shadow': an image rendered from an item must be a name"
	check_eq "[$who] replicas: 1 bounds the pool whatever the images: no two attempts overlap" \
		"$(sql "$dir/per.db" "SELECT count(*) FROM attempts a, attempts b WHERE a.id < b.id
		    AND a.started_at < b.finished_at AND b.started_at < a.finished_at")" 0

	# C
	sed "s|$TAG|arl-test/missing:9|" "$dir/pool.yaml" >"$dir/missing.yaml"
	before=$(find "$dir/store" | sort | sha256sum)
	as "$who" "$ARL_BATCH" validate "$dir/missing.yaml"
	check_eq "[$who] validate: a missing image exits 2" "$RC" 2
	check_match "[$who] validate names it and says how to load it" "$(cat "$TMP/err")" \
		"arl-test/missing:9.*arl-batch image load"
	as "$who" "$ARL_BATCH" run --progress none --db "$dir/missing.db" "$dir/missing.yaml"
	check_eq "[$who] run: a missing image exits 2" "$RC" 2
	check_match "[$who] run says so, and that nothing ran" "$(cat "$TMP/err")" \
		"arl-test/missing:9.*image load.*nothing was run"
	check "[$who] nothing was recorded" test ! -e "$dir/missing.db"
	check_eq "[$who] the store is unchanged" "$(find "$dir/store" | sort | sha256sum)" "$before"

	# D
	as "$who" "$ARL_BATCH" run --progress none --db "$db" --resume "$dir/pool.yaml"
	check_eq "[$who] --resume with the same image skips the job" \
		"$(sql "$db" "SELECT count(*) FROM jobs WHERE run_id = 2 AND skipped_from IS NOT NULL")" 1
	# The same name for another image (its config differs: another id).
	python3 - "$TMP/img/docker.tar" "$dir/other.tar" <<'PY'
import io, json, sys, tarfile, hashlib
src, dst = sys.argv[1:]
with tarfile.open(src) as t:
    members = {m.name: t.extractfile(m).read() if m.isfile() else None for m in t.getmembers()}
    infos = {m.name: m for m in t.getmembers()}
man = json.loads(members["manifest.json"])
cfg = json.loads(members[man[0]["Config"]])
cfg["config"]["Env"].append("OTHER=1")
data = json.dumps(cfg).encode()
name = hashlib.sha256(data).hexdigest() + ".json"
del members[man[0]["Config"]]
members[name] = data
man[0]["Config"] = name
members["manifest.json"] = json.dumps(man).encode()
with tarfile.open(dst, "w") as out:
    for n, d in members.items():
        ti = infos.get(n) or tarfile.TarInfo(n)
        if d is None:
            out.addfile(ti)
            continue
        ti = tarfile.TarInfo(n) if n not in infos or n == "manifest.json" else ti
        ti.size = len(d)
        out.addfile(ti, io.BytesIO(d))
PY
	[ "$who" = root ] || chown $NOBODY "$dir/other.tar"
	as "$who" "$ARL_BATCH" image load "$dir/other.tar"
	check_eq "[$who] another image under the same tag loads" "$RC" 0
	as "$who" "$ARL_BATCH" run --progress none --db "$db" --resume "$dir/pool.yaml"
	check_eq "[$who] --resume after the image changed runs the job again" \
		"$(sql "$db" "SELECT count(*) FROM jobs WHERE run_id = 3 AND skipped_from IS NULL")" 1
}

suite root
[ "$(id -u)" != 0 ] || suite nobody

# As root, a store the sandbox uid cannot pass through: one error before anything runs.
if [ "$(id -u)" = 0 ]; then
	mkdir -m 0700 "$TMP/closed"
	export ARL_BATCH_IMAGES=$TMP/closed/store
	runner image load "$TMP/img/docker.tar"
	printf 'version: 1\npools: {p: {}}\njobs:\n  - {name: j, image: "%s", steps: [{type: Command, command: ["true"]}]}\n' \
		"$TAG" >"$TMP/closed.yaml"
	runner run --progress none --db "$TMP/closed.db" "$TMP/closed.yaml"
	check_eq "a store out of the sandbox uid's reach: run exits 2" "$RC" 2
	check_match "it says where and what to do" "$(cat "$TMP/err")" \
		"out of the sandbox uid [0-9]+'s reach \('$TMP/closed' is mode 0700\).*nothing was run"
fi

# A job's own image on a kubernetes pool: refused, saying why.
cat >"$TMP/k8s.yaml" <<EOF
version: 1
pools:
  k: {backend: kubernetes, replicas: 1, create: {image: "$TAG"}}
jobs:
  - {name: j, image: "$TAG", steps: [{type: Command, command: ["true"]}]}
EOF
runner validate "$TMP/k8s.yaml"
check_eq "kubernetes pool + a job's own image: exit 2" "$RC" 2
check_match "it says a WarmPool runs one image" "$(cat "$TMP/err")" \
	"k8s.yaml:5:.*names its own image.*WarmPool runs one image"
summary
