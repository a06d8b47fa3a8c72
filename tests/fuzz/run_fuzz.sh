#!/bin/sh
# Builds the fuzz targets with clang, replays a seed corpus for each (made from the example
# and test files), then fuzzes: the job-file loader for ${FUZZ_SECONDS:-60} seconds, the
# dataset readers, the kubeconfig reader, the API-server JSON readers, the sandbox agent's
# frames as the runner reads them and the image store's archive readers for
# ${FUZZ_SECONDS_EACH:-20} seconds each. Any crash, leak or sanitizer report fails the script.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
CC=clang cmake -S "$src" -B "$build" -DARL_FUZZ=ON -DARL_SANITIZE=address,undefined >/dev/null
cmake --build "$build" --target fuzz_jobfile fuzz_dataset fuzz_kubeconfig fuzz_k8s_json \
	fuzz_agent_frames fuzz_image -j2 >/dev/null

# fuzz TARGET SECONDS: runs TARGET over its corpus $build/fuzz-corpus/TARGET.
fuzz() {
	"$build/tests/fuzz/$1" -max_total_time="$2" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$build/$1-" "$build/fuzz-corpus/$1"
}

c=$build/fuzz-corpus
mkdir -p "$c/fuzz_jobfile" "$c/fuzz_dataset" "$c/fuzz_kubeconfig" "$c/fuzz_k8s_json" \
	"$c/fuzz_agent_frames" "$c/fuzz_image"
cp "$src"/jobs/*.yaml "$src"/tests/jobfiles/valid/*.yaml "$src"/tests/jobfiles/invalid/*.yaml \
	"$c/fuzz_jobfile"/

# Dataset seeds: the first byte picks the reader (0 .jsonl, 1 .json, 2 .csv).
for f in "$src"/jobs/data/*.jsonl "$src"/tests/jobfiles/*/data/*.jsonl; do
	{ printf '\000'; cat "$f"; } >"$c/fuzz_dataset/jsonl-$(basename "$(dirname "$(dirname "$f")")")-$(basename "$f")"
done
for f in "$src"/tests/jobfiles/*/data/*.json; do
	{ printf '\001'; cat "$f"; } >"$c/fuzz_dataset/json-$(basename "$(dirname "$(dirname "$f")")")-$(basename "$f")"
done
for f in "$src"/tests/jobfiles/*/data/*.csv; do
	{ printf '\002'; cat "$f"; } >"$c/fuzz_dataset/csv-$(basename "$(dirname "$(dirname "$f")")")-$(basename "$f")"
done

cp "$src"/tests/unit/fixtures/kubeconfig/*.yaml "$c/fuzz_kubeconfig"/

# API server seeds: watch events and lists as the fake ARL server sends them.
j=$c/fuzz_k8s_json
printf '%s\n' '{"type":"ADDED","object":{"apiVersion":"arl.infra.io/v1alpha1","kind":"Sandbox","metadata":{"name":"arl-1-abcd1234-1-x","resourceVersion":"12"},"status":{"phase":"Ready","podName":"py-abc"}}}' \
	'{"type":"MODIFIED","object":{"kind":"Sandbox","metadata":{"name":"s","resourceVersion":"13"},"status":{"phase":"Failed","conditions":[{"type":"Ready","message":"pod failed"}]}}}' >"$j/sandbox-events"
printf '%s\n' '{"type":"MODIFIED","object":{"kind":"Task","metadata":{"name":"t-1","resourceVersion":"20"},"status":{"state":"Succeeded","exitCode":3,"stdout":"hi\n","stderr":"","startTime":"2026-01-08T11:41:36Z","completionTime":"2026-01-08T11:41:37.5+02:00","duration":"1.5s"}}}' \
	'{"type":"DELETED","object":{"kind":"Task","metadata":{"name":"t-1","resourceVersion":"21"}}}' \
	'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"22"}}}' >"$j/task-events"
printf '%s\n' '{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}' >"$j/gone"
printf '%s' '{"kind":"SandboxList","metadata":{"resourceVersion":"30","continue":"abc"},"items":[{"metadata":{"name":"a"},"status":{"phase":"Pending"}}]}' >"$j/list"
printf '%s' '{"kind":"WarmPool","metadata":{"name":"py"},"spec":{"replicas":2},"status":{"readyReplicas":1}}' >"$j/warmpool"
printf '%s' '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":"x","expirationTimestamp":"2030-01-01T00:00:00Z"}}' >"$j/exec"

# Sandbox agent seeds: frames after a 2-byte little-endian length (fuzz_agent_frames.c).
# HELLO (protocol 1, pid 1); STDOUT "hi\n", STDERR "e", EXIT 0 for request 1; OK for 2.
a=$c/fuzz_agent_frames
hello='\020\000\000\000\000\000\000\000\001\000\000\000\001\000\000\000'
printf "\020\000$hello\013\000\021\000\000\000\001\000\000\000hi\n\011\000\022\000\000\000\001\000\000\000e\020\000\023\000\000\000\001\000\000\000\000\000\000\000\000\000\000\000\010\000\024\000\000\000\002\000\000\000" >"$a/session"
# A killed step, then an ERROR for the write.
printf "\020\000$hello\020\000\023\000\000\000\001\000\000\000\001\000\000\000\011\000\000\000\020\000\025\000\000\000\002\000\000\000\002\000\000\000nope" >"$a/errors"

# Image seeds (fuzz_image.c): parts split by "\n====\n", "@I" the digest of part I. An OCI
# layout (index -> manifest -> config, one layer) and a docker-archive (manifest.json).
printf 'hello\n' >"$c/f" && tar -C "$c" -cf "$c/layer.tar" f && rm -f "$c/f"
{ printf '{"manifests":[{"digest":"@1","annotations":{"io.containerd.image.name":"fz/a:1"}}]}\n====\n'
  printf '{"config":{"digest":"@2"},"layers":[{"digest":"@3"}]}\n====\n'
  printf '{"config":{"Env":["A=b"],"WorkingDir":"/w","User":"u"},"rootfs":{"diff_ids":["@3"]}}\n====\n'
  cat "$c/layer.tar"; } >"$c/fuzz_image/oci"
{ printf '[{"Config":"p1","RepoTags":["fz/d:1"],"Layers":["p2"]}]\n====\n'
  printf '{"config":{"Env":["A=b"]},"rootfs":{"diff_ids":["@2"]}}\n====\n'
  cat "$c/layer.tar"; } >"$c/fuzz_image/docker"
rm -f "$c/layer.tar"

fuzz fuzz_jobfile "${FUZZ_SECONDS:-60}"
for t in fuzz_dataset fuzz_kubeconfig fuzz_k8s_json fuzz_agent_frames fuzz_image; do
	fuzz "$t" "${FUZZ_SECONDS_EACH:-20}"
done
echo "fuzz: no crash, leak or sanitizer report"
