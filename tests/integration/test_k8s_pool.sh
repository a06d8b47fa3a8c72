#!/usr/bin/env bash
# WarmPools: `arl-batch pool create|get|list|wait|delete` against the fake ARL API server
# (the body the SDK's WarmPoolManager.create_warmpool sends), a job file's pool with
# `create:` made and waited for before its jobs start, and a missing pool without it failing
# the run at its start with the list of pools that do exist.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"

require_fake
make_tmp
start_fake --pool sandbox=1 --pool other/elsewhere=1

echo "# pool list / get"
runner pool wait sandbox --timeout 20s --kubeconfig "$KC"
check_eq "pool wait of the pre-created pool exits 0" "$RC" 0
runner pool list --kubeconfig "$KC"
check_eq "pool list exits 0" "$RC" 0
check_match "pool list shows the pre-created pool as ready" "$(cat "$TMP/out")" \
	'sandbox +default +1 +1 +0 +yes'
runner pool list --kubeconfig "$KC" -n other
check_match "pool list -n other shows that namespace's pool" "$(cat "$TMP/out")" 'elsewhere +other'
runner pool get nosuch --kubeconfig "$KC"
check_eq "pool get of a missing pool exits 1" "$RC" 1
check_match "... and names the pools that exist" "$(cat "$TMP/err")" \
	"warmpool 'nosuch' not found in namespace 'default' \\(warmpools there: 'sandbox'\\)"
runner pool get Bad_Name --kubeconfig "$KC"
check_eq "an invalid pool name is a usage error (2)" "$RC" 2

echo "# pool create: the SDK's body"
runner pool create swe --image python:3.11-slim --sidecar-image arl-sidecar:test --replicas 2 \
	--testbed-path /testbed --wait --timeout 30s --kubeconfig "$KC" -- /bin/sh -c "sleep 1d"
check_eq "pool create --wait exits 0" "$RC" 0
check_match "... and reports the pool ready" "$(cat "$TMP/out")" "warmpool 'swe' is ready"
runner pool get swe -o json --kubeconfig "$KC"
check_eq "pool get -o json exits 0" "$RC" 0
check_eq "the body is create_warmpool's" "$(python3 - "$TMP/out" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
s = p["spec"]["template"]["spec"]
ex, sc = s["containers"]
mounts = [(m["name"], m["mountPath"]) for m in ex["volumeMounts"]]
print(p["spec"]["replicas"], ex["name"], ex["image"], ex["command"], mounts,
      sc["name"], sc["image"], sc["imagePullPolicy"],
      [(x["name"], x["containerPort"]) for x in sc["ports"]],
      [(m["name"], m["mountPath"]) for m in sc["volumeMounts"]] == mounts,
      sorted(v["name"] for v in s["volumes"]))
EOF
)" "2 executor python:3.11-slim ['/bin/sh', '-c', 'sleep 1d'] [('workspace', '/workspace'), ('testbed', '/testbed')] sidecar arl-sidecar:test Always [('http', 8080), ('grpc', 9090)] True ['testbed', 'workspace']"
runner pool wait swe --timeout 10s --kubeconfig "$KC"
check_eq "pool wait of a ready pool exits 0" "$RC" 0
runner pool create swe --image x --sidecar-image y --kubeconfig "$KC"
check_eq "creating it again fails (exit 3)" "$RC" 3
check_match "... with the server's 409" "$(cat "$TMP/err")" "cannot create warmpools in namespace 'default': HTTP 409"
runner pool create nosidecar --image x --kubeconfig "$KC"
check_eq "--sidecar-image is required (2)" "$RC" 2

echo "# pool delete"
runner pool delete swe --kubeconfig "$KC"
check_eq "pool delete exits 0" "$RC" 0
runner pool delete swe --kubeconfig "$KC"
check_eq "deleting it again exits 1" "$RC" 1
runner pool delete swe --ignore-not-found --kubeconfig "$KC"
check_eq "... unless --ignore-not-found" "$RC" 0

echo "# a job file's pool with create:"
cat >"$TMP/create.yaml" <<'EOF'
version: 1
pools:
  made-here:
    backend: kubernetes
    replicas: 2
    create: {image: "python:3.9-slim", sidecarImage: "arl-sidecar:latest", testbedPath: /testbed}
jobs:
  - {name: hello, steps: [{type: Command, command: [echo, hello]}]}
EOF
runner run --progress plain --db "$TMP/create.db" --kubeconfig "$KC" "$TMP/create.yaml"
check_eq "the run creates the pool, waits for it and succeeds" "$RC" 0
check_match "it says it creates the pool" "$(cat "$TMP/err")" "creating warmpool 'made-here' in namespace 'default'"
runner pool get made-here -o json --kubeconfig "$KC"
check_eq "the pool exists afterwards with the file's settings" "$(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
c = p["spec"]["template"]["spec"]["containers"]
print(p["spec"]["replicas"], c[0]["image"], c[1]["image"],
      sorted(v["name"] for v in p["spec"]["template"]["spec"]["volumes"]))' "$TMP/out")" \
	"2 python:3.9-slim arl-sidecar:latest ['testbed', 'workspace']"
runner run --progress none --db "$TMP/create2.db" --kubeconfig "$KC" "$TMP/create.yaml"
check_eq "a second run uses the existing pool" "$RC" 0

echo "# resources: go into the executor's requests and limits, as written"
cat >"$TMP/res.yaml" <<'EOF'
version: 1
pools:
  limited:
    backend: kubernetes
    resources: {memory: 2Gi, cpus: "1.5", pids: 1024}
    create: {image: "python:3.9-slim"}
jobs:
  - {name: hello, steps: [{type: Command, command: [echo, hello]}]}
EOF
runner run --progress none --db "$TMP/res.db" --kubeconfig "$KC" "$TMP/res.yaml"
check_eq "a pool with resources is created and runs" "$RC" 0
runner pool get limited -o json --kubeconfig "$KC"
check_eq "the executor's resources are the file's" "$(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["spec"]["template"]["spec"]["containers"][0]
print(json.dumps(c.get("resources"), sort_keys=True))' "$TMP/out")" \
	'{"limits": {"cpu": "1.5", "memory": "2Gi"}, "requests": {"cpu": "1.5", "memory": "2Gi"}}'

sed 's/memory: 2Gi/memory: 2048Mi/' "$TMP/res.yaml" >"$TMP/res-same.yaml"
runner run --progress none --db "$TMP/res2.db" --kubeconfig "$KC" "$TMP/res-same.yaml"
check_eq "the existing pool with the same limits (2048Mi == 2Gi) runs" "$RC" 0
check_eq "... without a warning" "$(grep -c 'exists with other limits' "$TMP/err" || true)" 0
sed 's/memory: 2Gi/memory: 4Gi/' "$TMP/res.yaml" >"$TMP/res-other.yaml"
runner run --progress none --db "$TMP/res3.db" --kubeconfig "$KC" "$TMP/res-other.yaml"
check_eq "an existing pool with other limits still runs" "$RC" 0
check_match "... and the run warns that its pods keep the pool's own" "$(cat "$TMP/err")" \
	"pool 'limited': warmpool 'limited' in namespace 'default' exists with other limits than the pool's resources \\(memory 4Gi, cpus 1.5\\)"

echo "# a missing pool without create: fails the run at its start"
cat >"$TMP/missing.yaml" <<'EOF'
version: 1
pools:
  not-there: {backend: kubernetes}
jobs:
  - {name: never, steps: [{type: Command, command: [echo, never]}]}
EOF
fake_delete /_fake/requests
runner run --progress none --db "$TMP/missing.db" --kubeconfig "$KC" "$TMP/missing.yaml"
check_eq "run exits 3" "$RC" 3
check_match "the message lists the pools that exist" "$(cat "$TMP/err")" \
	"warmpool 'not-there' does not exist in namespace 'default' \\(warmpools there: .*'sandbox'"
check_eq "no Sandbox was created" "$(fake_requests create sandboxes)" 0

echo "# a pool in another namespace"
cat >"$TMP/ns.yaml" <<'EOF'
version: 1
pools:
  elsewhere: {backend: kubernetes, namespace: other}
jobs:
  - {name: there, steps: [{type: Command, command: [echo, there]}]}
EOF
runner run --progress none --db "$TMP/ns.db" --kubeconfig "$KC" "$TMP/ns.yaml"
check_eq "a job runs on a pool of namespace 'other'" "$RC" 0
check_eq "its Sandbox was created in namespace 'other'" \
	"$(fake_get /_fake/requests | grep '"verb":"create","resource":"sandboxes"' | grep -c '"namespace":"other"' || true)" 1

summary
