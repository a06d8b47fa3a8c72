#!/usr/bin/env bash
# The pod-semantics suite: tests/pod_semantics/*.yaml and the jobs/ examples that need one
# container per sandbox (10-service, 11-install) run on the kubernetes backend against the
# fake ARL server (each pod one persistent container, steps exec'd into it), on the gateway
# backend against the test gateway (tests/fake_gateway/: each session such a container too)
# and on the local backend. The kubernetes and gateway sides must show pod semantics
# (asserted value by value); then the recorded results of each (per job and step: state,
# class, exit code, stdout and stderr, as `arl-batch results --format json` gives them) are
# compared with the local ones. A job listed in KNOWN_LOCAL_GAPS has its differences printed
# but not failed; one that agrees while listed fails (empty the list as the local backend
# catches up).
# With --no-pod-container passed to the fake (FAKE_ARGS), the kubernetes checks must fail.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/k8s_lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/gateway_lib.sh"

# Jobs (FILE_STEM/JOB_NAME) whose local results still differ from ARL's pod semantics: the
# local container's root is not writable until its copy-on-write root lands (issue 14).
KNOWN_LOCAL_GAPS=""

require_fake
make_tmp
stop_both() {
	stop_fake
	stop_gateway
}
# shellcheck disable=SC2086 # FAKE_ARGS: extra server options, split on purpose
start_fake --pool pods=4 --pool sandbox=2 ${FAKE_ARGS:-}
# shellcheck disable=SC2034 # read by make_tmp's EXIT trap (start_fake set stop_fake)
CLEANUP=stop_both
start_gateway --pool default=default:arl-test:4 # for the pools without image: or profile:

JOBS=("$SOURCE_DIR"/tests/pod_semantics/*.yaml "$SOURCE_DIR/jobs/10-service.yaml"
	"$SOURCE_DIR/jobs/11-install.yaml")
MARK=arl-pod-semantics

echo "# the suite on the three backends"
check_eq "the fake server runs steps in one container per pod" \
	"$(fake_get /_fake/state | python3 -c 'import json, sys; print(json.load(sys.stdin)["podContainers"])')" \
	"True"
runner run --progress none --db "$TMP/k8s.db" --backend kubernetes --kubeconfig "$KC" "${JOBS[@]}"
check_eq "kubernetes run exits 1 (timeout/step-timeout fails on purpose)" "$RC" 1
runner results --db "$TMP/k8s.db" --format json
cp "$TMP/out" "$TMP/k8s.json"
runner run --progress none --db "$TMP/gateway.db" --backend gateway "${JOBS[@]}"
check_eq "gateway run exits 1 (timeout/step-timeout fails on purpose)" "$RC" 1
[ "$RC" = 1 ] || sed 's/^/       /' "$TMP/err" | tail -n 20
runner results --db "$TMP/gateway.db" --format json
cp "$TMP/out" "$TMP/gateway.json"
check_eq "no session left on the gateway" "$(gw_session_count)" 0
runner run --progress none --db "$TMP/local.db" "${JOBS[@]}"
check "local run finishes (exit 0 or 1)" test "$RC" -le 1
runner results --db "$TMP/local.db" --format json
cp "$TMP/out" "$TMP/local.json"
check "no write of the sandboxes reached the host's /usr/local" test ! -e "/usr/local/share/$MARK"

# norm SIDE KEY: one job's record, normalized where ARL differs by design: KEY|state|class|
# exit|attempts and the job's stdout and stderr (JSON strings) from `results --format json`,
# then per step (of the last attempt) NAME|phase|state|exit and its own stdout and stderr as
# `show` prints them. A timed-out step's exit code is 'killed' (-1 on ARL, 128+signal
# locally), and the sidecar ends every line it captures with a newline, so a last line
# without one is terminated. Times a step prints (unittest's "Ran 1 test in 0.005s") are masked.
cat >"$TMP/norm.py" <<'EOF'
import json, re, sys

def term(s):
    s = re.sub(r"(Ran \d+ tests?) in [0-9.]+s", r"\1 in Xs", s)
    return s if not s or s.endswith("\n") else s + "\n"

def show_outputs(text):
    """{step number: {stream: text}} of the last attempt that `show` prints."""
    steps, cur, stream = {}, None, None
    for line in text.splitlines():
        if line.startswith("attempt "):
            steps, cur, stream = {}, None, None
        m = re.match(r"  step (\d+) ", line)
        if m:
            cur, stream = steps.setdefault(int(m.group(1)), {}), None
            continue
        m = re.match(r"    (stdout|stderr)( \(truncated[^)]*\))?:$", line)
        if m and cur is not None:
            stream = m.group(1) + (" (truncated)" if m.group(2) else "")
            cur[stream] = ""
        elif stream and line.startswith("      "):
            cur[stream] += line[6:] + "\n"
        else:
            stream = None
    return steps

def norm(job, outputs):
    st, timeout = job["status"], job.get("errorClass") == "timeout"
    lines = ["%s|%s|%s|%s|%s" % (job["key"], st["state"], job.get("errorClass") or "",
                                 "killed" if timeout else st.get("exitCode"), job["attempts"])]
    for name in ("stdout", "stderr"):
        lines.append("  job %s%s %s" % (name, " (truncated)" if job.get(name + "Truncated") else "",
                                        json.dumps(term(st.get(name) or ""))))
    for i, s in enumerate(job.get("steps") or [], 1):
        c = s.get("exitCode")
        if timeout and s["state"] == "Failed":
            c = "killed"
        lines.append("  step %s|%s|%s|%s" % (s["name"], s["phase"], s["state"], "" if c is None else c))
        for name, text in sorted(outputs.get(i, {}).items()):
            lines.append("    %s %s" % (name, json.dumps(term(text))))
    return "\n".join(lines)

job = next(j for j in json.load(open(sys.argv[1])) if j["key"] == sys.argv[3])
print(norm(job, show_outputs(open(sys.argv[2]).read())))
EOF
norm() {
	local f=$TMP/show.$1.${2//\//_}
	[ -f "$f" ] || "$ARL_BATCH" show --db "$TMP/$1.db" "$2" >"$f"
	python3 "$TMP/norm.py" "$TMP/$1.json" "$f" "$2"
}
# field KEY EXPR: a Python expression over job KEY on side $SIDE (j: the job, st: its status).
field() {
	python3 -c '
import json, sys
j = next(j for j in json.load(open(sys.argv[1])) if j["key"] == sys.argv[2])
st = j["status"]
print(eval(sys.argv[3]))' "$TMP/$SIDE.json" "$1" "$2"
}

# pod_semantics SIDE: the checks of pod semantics on SIDE (k8s, gateway).
pod_semantics() {
	SIDE=$1
	local p="[$1]"
	check_eq "$p every job ran once, all but step-timeout succeeded" \
		"$(python3 -c 'import json, sys; print(" ".join(sorted(j["key"] + ":" + j["status"]["state"]
		   for j in json.load(open(sys.argv[1])))))' "$TMP/$SIDE.json")" \
		"10-service/service:Succeeded 11-install/install:Succeeded env_workdir/env-and-workdir:Succeeded filepatch/filepatch-then-command:Succeeded files/tmp-and-usr-local:Succeeded output/large-output:Succeeded output/no-trailing-newline:Succeeded service/background-service:Succeeded timeout/step-timeout:Failed"
	check_eq "$p a service started in the background by step 1 answers step 2" \
		"$(field service/background-service 'st["stdout"]')" $'File created: /workspace/svc.py\nstarted\npong from step 1'
	check_eq "$p /tmp, /usr/local and /workspace keep what the previous step wrote" \
		"$(field files/tmp-and-usr-local 'st["stdout"]')" $'written\nkept-in-tmp\nkept-in-usr-local\nkept-in-workspace'
	check_eq "$p a step's env over the job's, its workDir, neither inherited by the next" \
		"$(field env_workdir/env-and-workdir 'st["stdout"]')" \
		$'hello step in /workspace/sub\nhello job in /workspace/sub/dir\nhello job in /workspace'
	check_eq "$p step timeout: class timeout, the later step skipped, the failure callback ran" \
		"$(field timeout/step-timeout '" ".join([j["errorClass"]] + [s["name"] + ":" + s["state"] for s in j["steps"]])')" \
		"timeout start_background:Succeeded sleeps_too_long:Failed never_runs:Skipped background_still_alive:Succeeded"
	check_eq "$p step timeout: the output before the kill kept" \
		"$(field timeout/step-timeout 'st["stdout"]')" $'background started\nsleeping'
	check_eq "$p FilePatch then Command: the steps run, change and see the patched file" \
		"$(field filepatch/filepatch-then-command 'st["stdout"]')" \
		"$(printf '%s\n' 'File created: /workspace/tools/greet.sh' 'greetings from /workspace/tools/greet.sh' \
			'greetings from /workspace/tools/greet.sh' changed 'File created: /workspace/tools/greet.sh' 'patched again')"
	if [ "$SIDE" = k8s ]; then
		check_eq "$p a last line without a newline is recorded (terminated, as ARL's sidecar does)" \
			"$(field output/no-trailing-newline 'repr(st["stdout"]) + " " + repr(st["stderr"])')" \
			"'first\\nno newline at the end\\n' 'err without newline\\n'"
	else
		check_eq "$p a last line without a newline is recorded as it was printed" \
			"$(field output/no-trailing-newline 'repr(st["stdout"]) + " " + repr(st["stderr"])')" \
			"'first\\nno newline at the end' 'err without newline'"
	fi
	check_eq "$p 1.25 MiB of output: capped at 1 MiB, head and tail kept around the marker" \
		"$(field output/large-output '" ".join([str(j["stdoutTruncated"]), str(len(st["stdout"].encode()) <= 1048576 + 64),
		   st["stdout"][:8], st["stdout"].splitlines()[-1][:8], str("bytes truncated ...]" in st["stdout"]), st["stderr"]])')" \
		"True True 0000000  0013106  True done"
	check_eq "$p jobs/10-service: the service's tests passed in the next step" \
		"$(field 10-service/service 'st["stdout"].splitlines()[-1] + "|" + st["stderr"].splitlines()[-1]')" "2|OK"
	check_eq "$p jobs/11-install: the tool installed into /usr/local/bin is found and runs" \
		"$(field 11-install/install '[l for l in st["stdout"].splitlines() if not l.startswith("File created")]')" \
		"['installed', '/usr/local/bin/wordfreq', '4 the', '2 cat', '2 saw']"
}

# same_as_local SIDE NAME: each job's record on SIDE is the local backend's (norm).
same_as_local() {
	local key gap
	keys=$(python3 -c 'import json, sys; print("\n".join(sorted(j["key"] for j in json.load(open(sys.argv[1])))))' \
		"$TMP/$1.json")
	for key in $keys; do
		gap=0
		case " ${KNOWN_LOCAL_GAPS//$'\n'/ } " in *" $key "*) gap=1 ;; esac
		if [ "$(norm "$1" "$key")" = "$(norm local "$key")" ]; then
			if [ $gap = 1 ]; then
				ko "[$1] $key agrees now: remove it from KNOWN_LOCAL_GAPS"
			else
				ok "[$1] $key: the same on $2 and local"
			fi
			continue
		fi
		if [ $gap = 1 ]; then
			echo "gap  - [$1] $key differs (KNOWN_LOCAL_GAPS):"
		else
			ko "[$1] $key differs:"
		fi
		diff <(norm "$1" "$key") <(norm local "$key") |
			sed -e "s/^</       $(printf '%-11s' "$2:")/" -e 's/^>/       local:     /' -e '/^---$/d' \
				-e 's/^\([0-9]\)/       \1/' |
			cut -c1-400 || true
	done
}

echo "# kubernetes: pod semantics"
pod_semantics k8s
echo "# gateway: pod semantics"
pod_semantics gateway
echo "# the same results on the local backend"
same_as_local k8s kubernetes
same_as_local gateway gateway

summary
