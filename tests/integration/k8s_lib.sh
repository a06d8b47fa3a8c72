# Helpers of the kubernetes integration tests (sourced after lib.sh; not a test itself).
#
# start_fake ARGS... starts tests/fake_arl/server.py on a free loopback port with a kubeconfig
# at $KC and sets FAKE_URL and FAKE_PID; the EXIT trap of make_tmp stops it (CLEANUP).

# Exits 77 unless the fake server can run here: python3 with PyYAML (it reads the CRDs) and
# bubblewrap (its pods run commands under bwrap, so /workspace paths work).
require_fake() {
	require_tools python3 sqlite3
	if ! python3 -c 'import yaml' 2>/dev/null; then
		echo "SKIP: python3 has no PyYAML (the fake API server reads the CRDs with it)"
		exit 77
	fi
	require_bwrap
	FAKE_CRD_ARGS=()
	if [ -d "$SOURCE_DIR/../shared/arl-crds" ]; then
		FAKE_CRD_ARGS=(--crd-dir "$SOURCE_DIR/../shared/arl-crds")
	elif [ -n "${ARL_CRD_DIR:-}" ]; then
		FAKE_CRD_ARGS=(--crd-dir "$ARL_CRD_DIR")
	fi
}

stop_fake() { stop_server FAKE_PID; }

start_fake() {
	KC=$TMP/kubeconfig
	CLEANUP=stop_fake
	: >"$TMP/fake.out"
	# timeout(1): a test killed from outside cannot leave the server running for ever.
	timeout 1200 python3 "$SOURCE_DIR/tests/fake_arl/server.py" --listen 127.0.0.1:0 --kubeconfig "$KC" \
		"${FAKE_CRD_ARGS[@]}" "$@" >"$TMP/fake.out" 2>"$TMP/fake.err" &
	FAKE_PID=$!
	# up to 30 s (--tls makes a CA with openssl first)
	if server_url FAKE_URL "$FAKE_PID" "$TMP/fake.out"; then
		export FAKE_URL KC
		return 0
	fi
	echo "FAIL: the fake API server did not start"
	sed 's/^/       /' "$TMP/fake.err"
	exit 1
}

# fake_get PATH / fake_post PATH BODY / fake_delete PATH: the control endpoints (never
# faulted, no auth). python3's urllib rather than curl, which CI machines may lack.
# /_fake/down resets them too, so a request that gets no answer is tried again (each is safe
# to repeat: the server answers before it acts) for up to 120 s, longer than any outage a
# test starts.
fake_http() {
	python3 - "$1" "$FAKE_URL$2" "${3-}" <<'EOF'
import http.client, ssl, sys, time, urllib.error, urllib.request
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
end = time.monotonic() + 120
while True:
    req = urllib.request.Request(url, method=method,
                                 data=body.encode() if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            sys.stdout.buffer.write(r.read())
        break
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        if time.monotonic() >= end:
            sys.exit("fake_http %s %s: no answer: %s" % (method, url, e))
        time.sleep(0.2)
EOF
}
fake_get() { fake_http GET "$1"; }
fake_post() { fake_http POST "$1" "$2" >/dev/null; }
fake_delete() { fake_http DELETE "$1" >/dev/null; }

# fake_count KIND [JOB_LABEL_TO_IGNORE]: objects of KIND (sandboxes, tasks) on the server,
# not counting those whose arl.infra.io/job label is the second argument.
fake_count() {
	fake_get /_fake/state | python3 -c '
import json, sys
d = json.load(sys.stdin)
skip = sys.argv[2] if len(sys.argv) > 2 else None
print(sum(1 for o in d["objects"][sys.argv[1]]
          if not skip or o.get("labels", {}).get("arl.infra.io/job") != skip))' "$@"
}

# fake_requests VERB RESOURCE: requests in the log with that verb on that resource.
fake_requests() {
	fake_get /_fake/requests | python3 -c '
import json, sys
print(sum(1 for l in sys.stdin if l.strip()
          and (lambda r: r["verb"] == sys.argv[1] and r["resource"] == sys.argv[2])(json.loads(l))))' "$@"
}

# write_many FILE N POOL REPLICAS STEPS: a job file of N jobs, each writing its number and
# printing it back (STEPS 1: only the print; 2: write and print; 3: write, print, check).
write_many() {
	local file=$1 n=$2 pool=$3 replicas=$4 steps=$5 items
	items=$(seq -s, 1 "$n")
	{
		echo "version: 1"
		echo "pools:"
		echo "  $pool: {backend: kubernetes, replicas: $replicas}"
		echo "defaults: {timeout: 60s, retries: 3, backoff: 100ms}"
		echo "jobs:"
		echo "  - name: \"job-{{ item.i }}\""
		echo "    foreach: {matrix: {i: [$items]}}"
		echo "    steps:"
		if [ "$steps" -ge 2 ]; then
			echo "      - {name: write, type: FilePatch, path: /workspace/n.txt, content: \"{{ item.i }}\"}"
			echo "      - {name: show, type: Command, command: [cat, /workspace/n.txt]}"
		else
			echo "      - {name: show, type: Command, command: [echo, \"{{ item.i }}\"]}"
		fi
		if [ "$steps" -ge 3 ]; then
			echo "      - {name: check, type: Command, command: [sh, -c, \"test \$(cat /workspace/n.txt) = {{ item.i }}\"]}"
		fi
	} >"$file"
}
